/* A bounded libcurl request, shared by the HTTP backends (slurmrestd,
 * Prometheus/Grafana).  Internal to src/backends/. */
#ifndef FM_HTTP_H
#define FM_HTTP_H

#include <stddef.h>

#include "fleetmcp/fm_error.h"

typedef struct fm_http_req {
    const char *url;            /* full URL; with unix_socket the host part is ignored */
    const char *unix_socket;    /* NULL: TCP */
    const char *post_body;      /* NULL: GET; else POST with this body */
    const char *method;         /* NULL: GET or POST as above; else this verb (DELETE) */
    const char *content_type;   /* for POST; default form-encoded */
    const char *const *headers; /* NULL-terminated "Name: value" lines, may be NULL */
    long timeout_ms;
    size_t max_bytes;         /* answers above this fail with FM_ERR_TOO_LARGE */
    const char *what;         /* "slurmrestd socket /x" for messages */
    const char *hint;         /* "is slurmrestd running? check slurm.rest.socket" */
    const char *timeout_hint; /* for timeouts, if different (NULL: hint) */
    /* Optional: a successful (< 400) answer's body goes to stream piece by
     * piece as it arrives instead of into resp->body, so a large answer is
     * never held whole.  Nonzero stops the transfer: fm_http_perform then
     * returns -1, keeping the error stream set in err (FM_ERR_PARSE if it
     * set none).  Error answers are buffered as usual. */
    int (*stream)(void *ud, const char *p, size_t n);
    void *stream_ud;
} fm_http_req;

typedef struct fm_http_resp {
    long status;
    char *body; /* malloc'd, NUL-terminated; free with free() */
    size_t len;
} fm_http_resp;

/* Performs req.  Transport failures set err (TIMEOUT, UNAVAILABLE,
 * TOO_LARGE) naming req->what and req->hint, and return -1; any HTTP
 * status returns 0 with resp filled (the caller judges the status). */
int fm_http_perform(const fm_http_req *req, fm_http_resp *resp, fm_err *err);
void fm_http_resp_free(fm_http_resp *resp);

#endif
