#include "fleetmcp/fm_transport.h"
#include "fleetmcp/fm_util.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define READ_CHUNK 65536
/* 15 digits: 0.6 prints as 0.6, not 0.59999999999999998. */
#define FM_TX_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

int fm_tx_init(fm_transport *tx, int in_fd, int out_fd, size_t max_message)
{
    memset(tx, 0, sizeof *tx);
    tx->in_fd = in_fd;
    tx->out_fd = out_fd;
    tx->max_message = max_message;
    tx->cap = READ_CHUNK * 2;
    tx->buf = malloc(tx->cap);
    tx->queued = json_array();
    return tx->buf && tx->queued ? 0 : -1;
}

int fm_tx_init_collect(fm_transport *tx)
{
    memset(tx, 0, sizeof *tx);
    tx->in_fd = tx->out_fd = -1;
    tx->eof = true;
    tx->queued = json_array();
    tx->collect = json_array();
    return tx->queued && tx->collect ? 0 : -1;
}

void fm_tx_free(fm_transport *tx)
{
    free(tx->buf);
    free(tx->out);
    json_decref(tx->queued);
    json_decref(tx->collect);
    free(tx->splice_raw);
    memset(tx, 0, sizeof *tx);
}

/* Drops n more bytes from the front.  Only an offset moves: the bytes are
 * shifted down once per read, not once per line, so a burst of pipelined
 * messages costs linear time. */
static void consume(fm_transport *tx, size_t n)
{
    tx->start += n;
    tx->scan = tx->start;
    if (tx->start == tx->len) tx->start = tx->len = tx->scan = 0;
}

static void compact(fm_transport *tx)
{
    if (!tx->start) return;
    memmove(tx->buf, tx->buf + tx->start, tx->len - tx->start);
    tx->len -= tx->start;
    tx->scan -= tx->start;
    tx->start = 0;
}

static fm_rx_status fill(fm_transport *tx, bool block)
{
    if (tx->eof || tx->in_fd < 0) return FM_RX_EOF;
    if (!block) {
        struct pollfd p = {.fd = tx->in_fd, .events = POLLIN};
        int r = poll(&p, 1, 0);
        if (r == 0) return FM_RX_AGAIN;
        if (r < 0) return errno == EINTR ? FM_RX_AGAIN : FM_RX_ERROR;
    }
    compact(tx);
    if (tx->cap - tx->len < READ_CHUNK) {
        /* Never grows past the cap plus one chunk: longer lines are
         * discarded, not buffered. */
        size_t ncap = tx->cap * 2;
        char *nb = realloc(tx->buf, ncap);
        if (!nb) return FM_RX_ERROR;
        tx->buf = nb;
        tx->cap = ncap;
    }
    ssize_t n = read(tx->in_fd, tx->buf + tx->len, READ_CHUNK - 1);
    if (n == 0) {
        tx->eof = true;
        return FM_RX_EOF;
    }
    if (n < 0) return errno == EINTR || errno == EAGAIN ? FM_RX_AGAIN : FM_RX_ERROR;
    tx->len += (size_t)n;
    return FM_RX_LINE;
}

fm_rx_status fm_tx_next(fm_transport *tx, bool block, const char **line, size_t *len)
{
    static char empty[1];
    /* The line returned last time stays valid until now: drop it first. */
    if (tx->pending) {
        consume(tx, tx->pending);
        tx->pending = 0;
    }
    for (;;) {
        char *nl = tx->len > tx->scan ? memchr(tx->buf + tx->scan, '\n', tx->len - tx->scan) : NULL;
        if (nl) {
            char *s = tx->buf + tx->start;
            size_t n = (size_t)(nl - s);
            if (tx->discarding) {
                /* The tail of an over-long line: skip it, keep what follows. */
                tx->discarding = false;
                consume(tx, n + 1);
                continue;
            }
            *nl = '\0';
            tx->pending = n + 1;
            if (n && s[n - 1] == '\r') s[--n] = '\0';
            *line = s;
            *len = n;
            return FM_RX_LINE;
        }
        tx->scan = tx->len;
        if (tx->len - tx->start > tx->max_message || (tx->discarding && tx->len > tx->start)) {
            bool first = !tx->discarding;
            tx->discarding = true;
            tx->start = tx->len = tx->scan = 0;
            if (first) {
                *line = empty;
                *len = 0;
                return FM_RX_TOO_LARGE;
            }
        }
        fm_rx_status st = fill(tx, block);
        if (st == FM_RX_EOF) {
            if (tx->len > tx->start && !tx->discarding) {
                /* A last message without a newline still counts; fill()
                 * always leaves room for the terminator. */
                tx->buf[tx->len] = '\0';
                *line = tx->buf + tx->start;
                *len = tx->len - tx->start;
                tx->pending = *len;
                return FM_RX_LINE;
            }
            return FM_RX_EOF;
        }
        if (st != FM_RX_LINE) return st;
    }
}

/* Dumps v into the reused buffer with room for extra more bytes after
 * it; returns the dump's length or 0. */
static size_t dump_out(fm_transport *tx, const json_t *v, size_t extra)
{
    /* One dump into the reused buffer; a second only when it grows. */
    size_t n =
        tx->out_cap > extra + 1 ? json_dumpb(v, tx->out, tx->out_cap - extra - 1, FM_TX_FLAGS) : 0;
    if (n == 0 || n + extra + 1 > tx->out_cap) {
        size_t need = n ? n : json_dumpb(v, NULL, 0, FM_TX_FLAGS);
        if (need == 0) return 0;
        size_t cap = need + extra + 1 > 4096 ? need + extra + 1 : 4096;
        char *nb = realloc(tx->out, cap);
        if (!nb) return 0;
        tx->out = nb;
        tx->out_cap = cap;
        n = json_dumpb(v, tx->out, need, FM_TX_FLAGS);
    }
    return n;
}

static int write_all(fm_transport *tx, size_t n)
{
    for (size_t off = 0; off < n;) {
        ssize_t w = write(tx->out_fd, tx->out + off, n - off);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        off += (size_t)w;
    }
    return 0;
}

int fm_tx_send(fm_transport *tx, const json_t *v)
{
    if (tx->collect) return json_array_append(tx->collect, (json_t *)v);
    size_t n = dump_out(tx, v, 0);
    if (!n) return -1;
    tx->out[n++] = '\n';
    return write_all(tx, n);
}

int fm_tx_send_spliced(fm_transport *tx, const json_t *v, const char *key, const char *raw)
{
    if (tx->collect) {
        /* The HTTP layer splices raw in when it dumps the reply (one
         * reply per exchange; a second one is not spliced). */
        if (tx->splice_raw) return 1;
        char *copy = strdup(raw);
        if (!copy || json_array_append(tx->collect, (json_t *)v)) {
            free(copy);
            return copy ? -1 : 1;
        }
        tx->splice_raw = copy;
        tx->splice_msg = v;
        tx->splice_key = key;
        return 0;
    }
    size_t n = dump_out(tx, v, fm_json_splice_room(key, raw) + 1);
    if (!n) return -1;
    n = fm_json_splice(tx->out, n, key, raw);
    if (!n) return 1;
    tx->out[n++] = '\n';
    return write_all(tx, n);
}
