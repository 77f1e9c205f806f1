/* stdio transport: newline-delimited JSON.  The reader never buffers more
 * than the size cap: a longer line is reported once as TOO_LARGE and the
 * rest of it is discarded as it streams in.  The same struct in collect
 * mode serves one HTTP exchange: what the protocol core sends is gathered
 * into an array for the HTTP layer, and there is nothing to read. */
#ifndef FM_TRANSPORT_H
#define FM_TRANSPORT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum {
    FM_RX_LINE = 0,      /* *line holds one message (NUL-terminated, no newline) */
    FM_RX_TOO_LARGE = 1, /* a message exceeded the cap; it is being skipped */
    FM_RX_EOF = 2,
    FM_RX_AGAIN = 3, /* non-blocking poll found no complete line */
    FM_RX_ERROR = 4,
} fm_rx_status;

typedef struct fm_transport {
    int in_fd, out_fd;
    size_t max_message;
    char *buf;                    /* owned */
    size_t start, len, cap, scan; /* unread bytes are buf[start, len) */
    size_t pending;               /* bytes of the last returned line, dropped on the next call */
    bool discarding;              /* inside an over-long line */
    bool eof;
    json_t *queued; /* lines read while a call was in flight (array of strings) */
    char *out;      /* reusable output buffer */
    size_t out_cap;
    json_t *collect; /* collect mode: messages sent, in order (owned) */
    /* Collect mode: the message fm_tx_send_spliced appended, and what is
     * to be spliced into it when it is dumped (raw owned). */
    const json_t *splice_msg;
    const char *splice_key;
    char *splice_raw;
} fm_transport;

int fm_tx_init(fm_transport *tx, int in_fd, int out_fd, size_t max_message);
/* Collect mode: no input (always EOF), output appended to tx->collect. */
int fm_tx_init_collect(fm_transport *tx);
void fm_tx_free(fm_transport *tx);

/* Next message.  block=false returns FM_RX_AGAIN instead of waiting.  The
 * line stays valid until the next call. */
fm_rx_status fm_tx_next(fm_transport *tx, bool block, const char **line, size_t *len);

/* Writes v (borrowed) as one line, or appends it (referenced, not copied)
 * in collect mode.  Returns 0 or -1 (peer gone). */
int fm_tx_send(fm_transport *tx, const json_t *v);

/* Writes v with one more member, "key": raw (JSON text, trusted), added to
 * the object that is v's last member, so text already dumped is not
 * dumped again.  Returns 0, -1 (peer gone), or 1 when v does not end in
 * an object member (nothing written).  In collect mode v is appended and
 * raw kept in tx->splice_* for the dump (1: one is kept already). */
int fm_tx_send_spliced(fm_transport *tx, const json_t *v, const char *key, const char *raw);

#endif
