/* One HTTP exchange: a POST body in, the messages to send back out.  The
 * HTTP layer knows sockets and headers; this file knows what MCP asks of
 * them (session ids for the stateful revisions, routing headers for the
 * stateless one) and then hands the message to the same dispatch stdio
 * uses, with a transport that collects instead of writing.
 *
 * Nothing here is remembered between requests (but a cache of what
 * sealed ids say, which is the ids' own content): a stateful session
 * lives in its sealed Mcp-Session-Id, a log level in the shared store, so
 * any replica can answer any request. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleetmcp/fm_jsonrpc.h"
#include "fleetmcp/fm_mcp.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_transport.h"
#include "fleetmcp/fm_util.h"

/* A stateful session is good for a day; then the client initializes again. */
#define SESSION_TTL_MS (24LL * 3600 * 1000)
#define LEVEL_KEY "http_log_level:"
/* A session ended by DELETE: its sealed id stays valid, so the end is
 * recorded in the store, where every replica sees it. */
#define ENDED_KEY "http_session_ended:"

static void fail(fm_mcp_http *x, int status, const json_t *id, int code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void fail(fm_mcp_http *x, int status, const json_t *id, int code, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    x->status = status;
    json_array_append_new(x->out, fm_rpc_error(id, code, msg));
}

/* What a sealed session id says, once its MAC has been checked: the
 * sealed id is the session (nothing else is remembered), so a worker
 * keeps the last few it opened rather than decode and check the same
 * bytes on every request of a session (base64, a JSON parse and an
 * HMAC: a tenth of an audited call's instructions).  An entry is only
 * the token's own content under the key that checked it, so every
 * replica still answers alike; what can change (an end by DELETE, the
 * log level) is read from the store on every request, as before. */
#define SESSION_CACHE 8
#define SESSION_CACHE_TOKEN 512 /* longer ids are checked every time */
typedef struct {
    char token[SESSION_CACHE_TOKEN];
    unsigned char key[sizeof((fm_ctx *)0)->state_key];
    json_int_t issued;
    struct { /* as fm_session's fields of the same names */
        char id[sizeof((fm_session *)0)->id];
        char protocol[sizeof((fm_session *)0)->protocol];
        char client_name[sizeof((fm_session *)0)->client_name];
        char client_version[sizeof((fm_session *)0)->client_version];
        bool elicitation, sampling;
    } s;
} session_entry;
/* Per thread: the HTTP service's serving threads each keep their own. */
static _Thread_local session_entry session_cache[SESSION_CACHE];
static _Thread_local unsigned session_next;

static const session_entry *session_cached(const fm_ctx *ctx, const char *token)
{
    if (!ctx->state_key_ready || strlen(token) >= SESSION_CACHE_TOKEN) return NULL;
    for (int i = 0; i < SESSION_CACHE; i++) {
        const session_entry *e = &session_cache[i];
        if (e->token[0] && !strcmp(e->token, token) &&
            !memcmp(e->key, ctx->state_key, sizeof e->key))
            return e;
    }
    return NULL;
}

/* The sealed id's fields, checked, into e (not yet cached); -1 if the id
 * is not ours. */
static int session_open(fm_ctx *ctx, const char *token, session_entry *e)
{
    json_t *p = fm_state_open(ctx, token, NULL);
    if (!p || strcmp(fm_json_str(p, "k", ""), "session")) {
        json_decref(p);
        return -1;
    }
    memset(e, 0, sizeof *e);
    e->issued = json_integer_value(json_object_get(p, "t"));
    __typeof__(e->s) *s = &e->s;
    snprintf(s->id, sizeof s->id, "%s", fm_json_str(p, "s", ""));
    snprintf(s->protocol, sizeof s->protocol, "%s", fm_json_str(p, "v", ""));
    snprintf(s->client_name, sizeof s->client_name, "%s", fm_json_str(p, "n", "unknown"));
    snprintf(s->client_version, sizeof s->client_version, "%s", fm_json_str(p, "cv", ""));
    s->elicitation = json_is_true(json_object_get(p, "e"));
    s->sampling = json_is_true(json_object_get(p, "sa"));
    json_decref(p);
    return 0;
}

/* Loads the session a sealed id describes into ctx->session; -1 if the id
 * is not ours, has expired or was ended. */
static int session_load(fm_ctx *ctx, const char *token)
{
    session_entry fresh;
    const session_entry *e = token ? session_cached(ctx, token) : NULL;
    if (!e) {
        if (session_open(ctx, token, &fresh)) return -1;
        /* The key is loaded now (fm_state_open checked the MAC with it). */
        if (strlen(token) < SESSION_CACHE_TOKEN) {
            session_entry *slot = &session_cache[session_next++ % SESSION_CACHE];
            *slot = fresh;
            snprintf(slot->token, sizeof slot->token, "%s", token);
            memcpy(slot->key, ctx->state_key, sizeof slot->key);
        }
        e = &fresh;
    }
    if (e->issued + SESSION_TTL_MS < fm_now_ms()) return -1;
    char ended[96], v[8];
    fm_cat3(ended, sizeof ended, ENDED_KEY, e->s.id, NULL);
    if (!fm_store_setting_get(&ctx->store, ended, v, sizeof v)) return -1;
    fm_session *s = &ctx->session;
    memcpy(s->id, e->s.id, sizeof s->id);
    memcpy(s->protocol, e->s.protocol, sizeof s->protocol);
    memcpy(s->client_name, e->s.client_name, sizeof s->client_name);
    memcpy(s->client_version, e->s.client_version, sizeof s->client_version);
    s->elicitation = e->s.elicitation;
    s->sampling = e->s.sampling;
    s->initiator = fm_session_initiator(s);
    s->initialized = true;
    char key[80], lv[16];
    fm_cat3(key, sizeof key, LEVEL_KEY, s->id, NULL);
    s->log_level =
        fm_store_setting_get(&ctx->store, key, lv, sizeof lv) ? -1 : fm_log_level_index(lv);
    return 0;
}

/* The sealed id for the session initialize just set up (malloc'd). */
static char *session_seal(fm_ctx *ctx)
{
    const fm_session *s = &ctx->session;
    json_t *p = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:b, s:I}", "k", "session", "s", s->id,
                          "v", s->protocol, "n", s->client_name, "cv", s->client_version, "e",
                          s->elicitation, "sa", s->sampling, "t", (json_int_t)fm_now_ms());
    char *tok = p ? fm_state_seal(ctx, p, NULL) : NULL;
    json_decref(p);
    return tok;
}

/* A header value equals want, ignoring the optional whitespace HTTP
 * allows around it. */
static bool header_is(const char *hdr, const char *want)
{
    if (!hdr) return false;
    while (*hdr == ' ' || *hdr == '\t')
        hdr++;
    size_t n = strlen(hdr);
    while (n && (hdr[n - 1] == ' ' || hdr[n - 1] == '\t'))
        n--;
    return n == strlen(want) && !strncmp(hdr, want, n);
}

/* Stateless requests repeat their method (and the name they act on) in
 * headers for routers; a mismatch means someone rewrote one of them. */
static int routing_headers_ok(const fm_mcp_http *x, const fm_rpc_msg *m, char *why)
{
    if (!header_is(x->method_hdr, m->method)) {
        snprintf(why, 256, "Header mismatch: Mcp-Method header %s the body's method",
                 x->method_hdr ? "differs from" : "is missing; it must repeat");
        return -1;
    }
    const char *key = NULL;
    if (!strcmp(m->method, "tools/call") || !strcmp(m->method, "prompts/get"))
        key = "name";
    else if (!strcmp(m->method, "resources/read"))
        key = "uri";
    else if (!strcmp(m->method, "tasks/get") || !strcmp(m->method, "tasks/update") ||
             !strcmp(m->method, "tasks/cancel"))
        key = "taskId";
    const char *want = key ? fm_json_str(m->params, key, NULL) : NULL;
    if (want && !header_is(x->name_hdr, want)) {
        snprintf(why, 256, "Header mismatch: Mcp-Name header %s params.%s",
                 x->name_hdr ? "differs from" : "is missing; it must repeat", key);
        return -1;
    }
    return 0;
}

void fm_mcp_http_exchange(fm_ctx *ctx, fm_mcp_http *x)
{
    x->status = 200;
    x->out = json_array();
    x->session_id = NULL;
    x->log_level_set = false;
    x->step_up = 0;
    x->splice_msg = NULL;
    x->splice_key = NULL;
    x->splice_raw = NULL;
    json_error_t je;
    json_t *msg = json_loadb(x->body, x->len, JSON_REJECT_DUPLICATES, &je);
    if (!msg) {
        fail(x, 400, NULL, FM_RPC_PARSE_ERROR, "Parse error: %s at byte %d", je.text, je.position);
        return;
    }
    if (!json_is_object(msg)) {
        fail(x, 400, NULL, FM_RPC_INVALID_REQUEST,
             "Invalid Request: send one JSON-RPC message per POST (no batches over HTTP)");
        json_decref(msg);
        return;
    }
    fm_rpc_msg m;
    fm_rpc_classify(msg, &m);
    bool stateless = x->version_hdr
                         ? !fm_mcp_version_stateful(x->version_hdr)
                         : json_object_get(json_object_get(m.params, "_meta"),
                                           "io.modelcontextprotocol/protocolVersion") != NULL;
    bool initialize = m.kind == FM_MSG_REQUEST && !strcmp(m.method, "initialize");
    fm_session saved = ctx->session;
    char why[256];
    if (m.kind == FM_MSG_INVALID) {
        fail(x, 400, m.id, m.error_code, "%s", m.error);
        goto done;
    }
    if (!stateless && !initialize) {
        if (!x->session_hdr) {
            fail(x, 400, m.id, FM_RPC_INVALID_REQUEST,
                 "Bad Request: Mcp-Session-Id header is required; send initialize first");
            goto done;
        }
        if (session_load(ctx, x->session_hdr)) {
            fail(x, 404, m.id, FM_RPC_INVALID_REQUEST,
                 "Session not found: unknown or expired Mcp-Session-Id; initialize again");
            goto done;
        }
        if (x->version_hdr && strcmp(x->version_hdr, ctx->session.protocol)) {
            fail(x, 400, m.id, FM_RPC_INVALID_REQUEST,
                 "Bad Request: MCP-Protocol-Version %.16s is not this session's %s", x->version_hdr,
                 ctx->session.protocol);
            goto done;
        }
        if (m.kind == FM_MSG_RESPONSE) {
            /* The client's answer to a question a call of this session
             * asked on a response stream: to the store, where the asking
             * worker (this one or another) finds it. */
            fm_err e = {0};
            int st = fm_mcp_http_reply(ctx, msg, x->len, &e);
            if (st != 202)
                fail(x, st, NULL, FM_RPC_INVALID_REQUEST, "%s", e.text);
            else
                x->status = 202;
            goto done;
        }
    } else if (initialize) {
        ctx->session.initialized = false;
        fm_random_hex(ctx->session.id, 16);
    } else if (m.kind == FM_MSG_REQUEST && routing_headers_ok(x, &m, why)) {
        fail(x, 400, m.id, FM_RPC_HEADER_MISMATCH, "%s", why);
        goto done;
    }
    fm_transport tx;
    if (fm_tx_init_collect(&tx)) {
        fail(x, 500, m.id, FM_RPC_INTERNAL_ERROR, "Internal error: out of memory");
        goto done;
    }
    ctx->tx = &tx;
    ctx->xc = x;
    fm_mcp_handle_json(ctx, msg);
    ctx->tx = NULL;
    ctx->xc = NULL;
    json_array_extend(x->out, tx.collect);
    x->splice_msg = tx.splice_msg;
    x->splice_key = tx.splice_key;
    x->splice_raw = tx.splice_raw;
    tx.splice_raw = NULL;
    fm_tx_free(&tx);
    if (initialize && ctx->session.initialized) {
        x->session_id = session_seal(ctx);
        if (!x->session_id) {
            json_array_clear(x->out);
            x->splice_msg = NULL;
            fail(x, 500, m.id, FM_RPC_INTERNAL_ERROR,
                 "Internal error: cannot seal a session id; check the store is writable");
        }
    }
    if (x->log_level_set) {
        char key[80];
        fm_cat3(key, sizeof key, LEVEL_KEY, ctx->session.id, NULL);
        fm_err err = {0};
        if (fm_store_setting_set(&ctx->store, key, fm_log_level_name(ctx->session.log_level), &err))
            fm_log("warning", "log level for session %s not kept: %s", ctx->session.id, err.text);
    }
    if (m.kind != FM_MSG_REQUEST) x->status = 202;
done:
    ctx->session = saved;
    json_decref(msg);
}

int fm_mcp_http_end_session(fm_ctx *ctx, const char *session_hdr, fm_err *err)
{
    if (!session_hdr)
        return fm_err_set(err, FM_ERR_INVALID,
                          "Bad Request: DELETE needs the Mcp-Session-Id"
                          " header of the session to end"),
               400;
    fm_session saved = ctx->session;
    int rc = session_load(ctx, session_hdr);
    char key[96];
    fm_cat3(key, sizeof key, ENDED_KEY, ctx->session.id, NULL);
    ctx->session = saved;
    if (rc)
        return fm_err_set(err, FM_ERR_NOT_FOUND,
                          "Session not found: unknown, expired or already"
                          " ended Mcp-Session-Id"),
               404;
    /* Only writes (an upsert of the mark, a prune): no write lock
     * (fm_store_begin_rows); two ends of one session both succeed. */
    if (fm_store_begin_rows(&ctx->store, err)) return 500;
    /* Marks older than any live session are no longer needed. */
    fm_store_setting_prune(&ctx->store, ENDED_KEY, fm_now_ms() - SESSION_TTL_MS);
    if (fm_store_setting_set(&ctx->store, key, "1", err) || fm_store_commit(&ctx->store, err)) {
        fm_store_rollback(&ctx->store);
        return 500;
    }
    return 200;
}
