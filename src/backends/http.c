/* libcurl with the bounds every backend needs: a total timeout, a cap on
 * the answer's size, no redirects, no signals (the server is single
 * threaded, and SIGALRM-based resolver timeouts would hit it). */
#include "fm_http.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct sink {
    char *buf;
    size_t len, cap, max;
    int over;
    CURL *c;
    const fm_http_req *req;
    int streaming; /* 0 undecided, 1 to req->stream, -1 buffered */
    size_t streamed;
    bool stopped; /* req->stream said stop */
} sink;

static size_t on_data(char *p, size_t sz, size_t n, void *ud)
{
    sink *s = ud;
    size_t add = sz * n;
    if (s->len + s->streamed + add > s->max) {
        s->over = 1;
        return 0; /* aborts the transfer */
    }
    if (!s->streaming) {
        long status = 0;
        curl_easy_getinfo(s->c, CURLINFO_RESPONSE_CODE, &status);
        s->streaming = s->req->stream && status < 400 ? 1 : -1;
    }
    if (s->streaming > 0) {
        s->streamed += add;
        if (s->req->stream(s->req->stream_ud, p, add)) {
            s->stopped = true;
            return 0;
        }
        return add;
    }
    if (s->len + add + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 16384;
        while (cap < s->len + add + 1)
            cap *= 2;
        char *nb = realloc(s->buf, cap);
        if (!nb) return 0;
        s->buf = nb;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, p, add);
    s->len += add;
    s->buf[s->len] = '\0';
    return add;
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static void global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

int fm_http_perform(const fm_http_req *req, fm_http_resp *resp, fm_err *err)
{
    memset(resp, 0, sizeof *resp);
    pthread_once(&init_once, global_init);
    CURL *c = curl_easy_init();
    if (!c) return fm_err_set(err, FM_ERR_NOMEM, "curl handle"), -1;
    sink s = {.max = req->max_bytes ? req->max_bytes : (8u << 20), .c = c, .req = req};
    char ebuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *hl = NULL;
    for (const char *const *h = req->headers; h && *h; h++)
        hl = curl_slist_append(hl, *h);
    if (req->post_body) {
        char ct[96];
        snprintf(ct, sizeof ct, "Content-Type: %s",
                 req->content_type ? req->content_type : "application/x-www-form-urlencoded");
        hl = curl_slist_append(hl, ct);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->post_body);
    }
    hl = curl_slist_append(hl, "Accept: application/json");
    curl_easy_setopt(c, CURLOPT_URL, req->url);
    if (req->method) curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
    if (req->unix_socket) curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, req->unix_socket);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    long to = req->timeout_ms > 0 ? req->timeout_ms : 5000;
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, to);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, to);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "fleetmcp");
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
    curl_easy_cleanup(c);
    curl_slist_free_all(hl);
    const char *what = req->what ? req->what : req->url;
    const char *hint = req->hint ? req->hint : "check the backend's config";
    if (rc != CURLE_OK) {
        free(s.buf);
        char why[200];
        fm_clip(why, sizeof why, *ebuf ? ebuf : curl_easy_strerror(rc));
        if (s.stopped) {
            if (err && !err->code)
                fm_err_set(err, FM_ERR_PARSE, "%s: its answer could not be read", what);
        } else if (s.over)
            fm_err_set(err, FM_ERR_TOO_LARGE,
                       "%s answered more than %zu bytes: narrow "
                       "the query",
                       what, s.max);
        else if (rc == CURLE_OPERATION_TIMEDOUT)
            fm_err_set(err, FM_ERR_TIMEOUT, "%s did not answer within %ld ms (%s): %s", what, to,
                       why, req->timeout_hint ? req->timeout_hint : hint);
        else
            fm_err_set(err, FM_ERR_UNAVAILABLE, "%s not reachable (%s): %s", what, why, hint);
        return -1;
    }
    resp->body = s.buf ? s.buf : strdup("");
    resp->len = s.len;
    /* An error answer is quoted in error text, and some servers echo the
     * request: the values of the headers we sent (credentials) go. */
    if (resp->status >= 400 && resp->body) {
        const char *vals[17];
        size_t nv = 0;
        for (const char *const *h = req->headers; h && *h && nv + 2 < 17; h++) {
            const char *v = strchr(*h, ':');
            if (!v) continue;
            vals[nv++] = v + 1 + strspn(v + 1, " ");
            const char *last = strrchr(v, ' ');
            if (last && last[1]) vals[nv++] = last + 1; /* the token after "Bearer " */
        }
        vals[nv] = NULL;
        fm_scrub(resp->body, vals);
    }
    return 0;
}

void fm_http_resp_free(fm_http_resp *resp)
{
    free(resp->body);
    resp->body = NULL;
    resp->len = 0;
}
