/* mcp-cli --url: MCP over Streamable HTTP.  Every message is one POST;
 * the server answers with one JSON body or with an SSE stream that carries
 * progress and log notifications before the response.  libcurl is the
 * project's lazily loaded one (src/util/curl_lazy.c). */
#include <ctype.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "fleetmcp/fm_mcp.h"
#include "format.h"

#define HTTP_MAX_BODY (64u << 20)

typedef struct http_call {
    cli_client *c;
    CURL *h;
    long long want_id;
    json_t *reply; /* the response to want_id (new) */
    int kind;      /* 0 unknown, 1 JSON body, 2 SSE */
    char *buf;     /* body, or the SSE line in progress */
    size_t len, cap, total;
    char *data; /* the SSE event's data lines */
    size_t dlen, dcap;
    bool too_big, interrupted;
} http_call;

static int grow(char **p, size_t *cap, size_t need)
{
    if (need <= *cap) return 0;
    size_t n = *cap ? *cap : 4096;
    while (n < need)
        n *= 2;
    char *np = realloc(*p, n);
    if (!np) return -1;
    *p = np;
    *cap = n;
    return 0;
}

/* One message from the server: the response we wait for, a notification
 * to show, or a request mcp-cli cannot answer over HTTP. */
static void on_message(http_call *k, json_t *msg)
{
    if (json_is_array(msg)) {
        size_t i;
        json_t *m;
        json_array_foreach(msg, i, m) on_message(k, m);
        return;
    }
    const json_t *id = json_object_get(msg, "id");
    const char *method = json_string_value(json_object_get(msg, "method"));
    if (method && !id) {
        cli_show_notification(k->c, msg);
    } else if (method) {
        char m[64];
        cli_cell(json_object_get(msg, "method"), m, sizeof m - 1);
        fprintf(stderr,
                "mcp-cli: the server asked for %s, which mcp-cli does not answer over"
                " --url; the call may wait for it\n",
                m);
    } else if (json_is_integer(id) && json_integer_value(id) == k->want_id && !k->reply) {
        k->reply = json_incref(msg);
    }
}

static void sse_event(http_call *k)
{
    if (!k->dlen) return;
    json_t *msg = json_loadb(k->data, k->dlen, 0, NULL);
    k->dlen = 0;
    if (msg) on_message(k, msg);
    json_decref(msg);
}

/* One SSE line (without its end): data lines gather, a blank line ends
 * the event; event names, ids and comments need nothing here. */
static void sse_line(http_call *k, const char *line, size_t n)
{
    if (n && line[n - 1] == '\r') n--;
    if (!n) {
        sse_event(k);
        return;
    }
    if (n < 5 || strncmp(line, "data:", 5)) return;
    line += 5;
    n -= 5;
    if (n && *line == ' ') line++, n--;
    if (grow(&k->data, &k->dcap, k->dlen + n + 2)) return;
    if (k->dlen) k->data[k->dlen++] = '\n';
    memcpy(k->data + k->dlen, line, n);
    k->dlen += n;
}

static size_t on_body(char *p, size_t sz, size_t nm, void *ud)
{
    http_call *k = ud;
    size_t n = sz * nm;
    if ((k->total += n) > HTTP_MAX_BODY) {
        k->too_big = true;
        return 0;
    }
    if (!k->kind) {
        const char *ct = NULL;
        curl_easy_getinfo(k->h, CURLINFO_CONTENT_TYPE, &ct);
        k->kind = ct && !strncasecmp(ct, "text/event-stream", 17) ? 2 : 1;
    }
    if (grow(&k->buf, &k->cap, k->len + n + 1)) return 0;
    memcpy(k->buf + k->len, p, n);
    k->len += n;
    if (k->kind == 2) {
        /* Handle whole lines as they arrive, so progress shows live. */
        size_t start = 0;
        for (size_t i = 0; i < k->len; i++) {
            if (k->buf[i] != '\n') continue;
            sse_line(k, k->buf + start, i - start);
            start = i + 1;
        }
        memmove(k->buf, k->buf + start, k->len - start);
        k->len -= start;
    }
    return n;
}

static size_t on_header(char *p, size_t sz, size_t nm, void *ud)
{
    http_call *k = ud;
    size_t n = sz * nm;
    static const char name[] = "mcp-session-id:";
    if (n > sizeof name - 1 && !strncasecmp(p, name, sizeof name - 1)) {
        const char *v = p + sizeof name - 1;
        size_t vn = n - (sizeof name - 1);
        while (vn && (*v == ' ' || *v == '\t'))
            v++, vn--;
        while (vn && isspace((unsigned char)v[vn - 1]))
            vn--;
        /* Visible ASCII only (the spec's rule), so it is safe to send back
         * in a header. */
        bool okv = vn > 0 && vn < sizeof k->c->session;
        for (size_t i = 0; okv && i < vn; i++)
            okv = v[i] > 0x20 && v[i] < 0x7f;
        if (okv) {
            memcpy(k->c->session, v, vn);
            k->c->session[vn] = '\0';
        }
    }
    return n;
}

/* Ctrl-C ends the transfer; the caller then sends the cancel. */
static int on_tick(void *ud, curl_off_t a, curl_off_t b, curl_off_t c2, curl_off_t d)
{
    (void)a, (void)b, (void)c2, (void)d;
    http_call *k = ud;
    if (k->want_id && k->c->cancellable && cli_interrupt_pending()) k->interrupted = true;
    return k->interrupted;
}

static struct curl_slist *headers(cli_client *c, const char *method)
{
    char h[512];
    struct curl_slist *l = NULL;
    l = curl_slist_append(l, "Content-Type: application/json");
    l = curl_slist_append(l, "Accept: application/json, text/event-stream");
    if (c->token) {
        /* Sized for the longest token read_token takes: a JWT cut to fit
         * a smaller buffer is refused by the server as a bad token. */
        char auth[sizeof "Authorization: Bearer " + CLI_MAX_TOKEN];
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", c->token);
        l = curl_slist_append(l, auth);
    }
    if (c->session[0]) {
        snprintf(h, sizeof h, "Mcp-Session-Id: %s", c->session);
        l = curl_slist_append(l, h);
    }
    if (c->protocol[0] && strcmp(method, "initialize")) {
        snprintf(h, sizeof h, "MCP-Protocol-Version: %s", c->protocol);
        l = curl_slist_append(l, h);
    }
    return l;
}

int cli_http_exchange(cli_client *c, const char *verb, const json_t *msg, long long want_id,
                      json_t **reply)
{
    *reply = NULL;
    static bool inited;
    if (!inited) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        inited = true;
    }
    char *body = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    const char *method = json_string_value(json_object_get(msg, "method"));
    http_call k = {.c = c, .want_id = want_id};
    k.h = curl_easy_init();
    if (!k.h || (msg && !body)) {
        free(body);
        if (k.h) curl_easy_cleanup(k.h);
        fprintf(stderr, "mcp-cli: cannot start an HTTP request (libcurl could not be loaded?)\n");
        return CLI_UNREACHABLE;
    }
    char ebuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *hl = headers(c, method ? method : "");
    curl_easy_setopt(k.h, CURLOPT_URL, c->url);
    curl_easy_setopt(k.h, CURLOPT_CUSTOMREQUEST, verb);
    if (body) curl_easy_setopt(k.h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(k.h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(k.h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(k.h, CURLOPT_WRITEDATA, &k);
    curl_easy_setopt(k.h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(k.h, CURLOPT_HEADERDATA, &k);
    curl_easy_setopt(k.h, CURLOPT_XFERINFOFUNCTION, on_tick);
    curl_easy_setopt(k.h, CURLOPT_XFERINFODATA, &k);
    curl_easy_setopt(k.h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(k.h, CURLOPT_ERRORBUFFER, ebuf);
    curl_easy_setopt(k.h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(k.h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(k.h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(k.h, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
    curl_easy_setopt(k.h, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(c->timeout_ms < 10000 ? c->timeout_ms : 10000));
    curl_easy_setopt(k.h, CURLOPT_USERAGENT, "mcp-cli/" FM_SERVER_VERSION);
    CURLcode rc = curl_easy_perform(k.h);
    long status = 0;
    curl_easy_getinfo(k.h, CURLINFO_RESPONSE_CODE, &status);
    if (k.kind == 2) {
        sse_line(&k, k.buf, k.len); /* a last line without its newline */
        sse_event(&k);
    }
    int out = 0;
    /* Ending a session is a courtesy a server may decline (405): quietly. */
    bool quiet = !strcmp(verb, "DELETE");
    if (quiet) {
        out = rc == CURLE_OK && status >= 200 && status <= 299 ? 0 : CLI_UNREACHABLE;
    } else if (k.interrupted) {
        out = CLI_CANCELLED;
    } else if (k.too_big) {
        fprintf(stderr, "mcp-cli: the answer from %s is larger than %u bytes\n", c->url,
                HTTP_MAX_BODY);
        out = CLI_UNREACHABLE;
    } else if (rc != CURLE_OK && !(k.reply && rc == CURLE_PARTIAL_FILE)) {
        fprintf(stderr, "mcp-cli: cannot reach %s: %s (is the server running? --url)\n", c->url,
                ebuf[0] ? ebuf : curl_easy_strerror(rc));
        out = CLI_UNREACHABLE;
    } else if (status == 401 || status == 403) {
        fprintf(stderr, "mcp-cli: DENIED: %s refused the token (HTTP %ld): check --token-file\n",
                c->url, status);
        out = CLI_UNREACHABLE;
    } else if (status == 404 && c->session[0] && want_id) {
        fprintf(stderr,
                "mcp-cli: the server no longer knows session %s (HTTP 404): start"
                " mcp-cli again\n",
                c->session);
        out = CLI_UNREACHABLE;
    } else if (status < 200 || status > 299) {
        char clip[200] = "";
        if (k.kind == 1 && k.len) {
            k.buf[k.len] = '\0';
            json_t *e = json_loads(k.buf, 0, NULL);
            const json_t *m = json_object_get(json_object_get(e, "error"), "message");
            if (m) cli_cell(m, clip, sizeof clip - 1);
            json_decref(e);
        }
        fprintf(stderr, "mcp-cli: HTTP %ld from %s%s%s\n", status, c->url, clip[0] ? ": " : "",
                clip);
        out = CLI_UNREACHABLE;
    } else if (k.kind == 1 && k.len) {
        json_t *m = json_loadb(k.buf, k.len, 0, NULL);
        if (m) on_message(&k, m);
        json_decref(m);
    }
    if (!out && want_id && !k.reply) {
        fprintf(stderr, "mcp-cli: %s answered HTTP %ld without a response to %s\n", c->url, status,
                method ? method : "the request");
        out = CLI_UNREACHABLE;
    }
    if (!out)
        *reply = k.reply;
    else
        json_decref(k.reply);
    curl_slist_free_all(hl);
    curl_easy_cleanup(k.h);
    free(k.buf);
    free(k.data);
    free(body);
    return out;
}
