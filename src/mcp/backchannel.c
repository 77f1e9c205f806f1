/* Server-to-client requests over Streamable HTTP (2025 sessions).
 *
 * A tool call that asks the client something (elicitation/create,
 * sampling/createMessage) turns its POST's response into an SSE stream and
 * sends the request there; the client answers with a new POST carrying the
 * JSON-RPC response.  That POST may arrive on another connection, at
 * another worker process or another replica, while the asking call waits
 * inside its worker.  So the answer travels through what they all share,
 * the store: the asking call writes a row (sealed session id + request
 * id) before the question goes out, whichever worker receives the answer
 * fills the row in, and the asker polls its row with short sleeps until
 * the answer, its deadline, or its client's disconnect.  The row is
 * deleted in every case.
 *
 * Bounds: MAX_PER_SESSION questions pending per session, REPLY_MAX bytes
 * per answer, the caller's timeout per question, and at most
 * x->stream_waiters calls of one service waiting at once, so one worker
 * always stays free to take the answers (a worker that is waiting serves
 * nothing; see src/transport/http.c). */
/* Data access: this file owns the table mcp_client_requests; every statement on
 * it is here, others call its functions (the data-access stage checks). */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fleetmcp/fm_audit.h"
#include "fleetmcp/fm_jsonrpc.h"
#include "fleetmcp/fm_mcp.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_transport.h"
#include "fleetmcp/fm_util.h"

#define MAX_PER_SESSION 4
#define REPLY_MAX (64 * 1024)
/* Rows of a worker that died while waiting are swept after this. */
#define STALE_MS (60 * 1000)
#define ALIVE_CHECK_MS 250

static const char ddl[] =
    "CREATE TABLE IF NOT EXISTS mcp_client_requests(session_id TEXT NOT NULL,"
    " request_id TEXT NOT NULL, waiter TEXT NOT NULL, pid INTEGER NOT NULL,"
    " created_ms INTEGER NOT NULL,"
    " expires_ms INTEGER NOT NULL, reply TEXT, PRIMARY KEY(session_id, request_id));"
    "CREATE INDEX IF NOT EXISTS mcp_client_requests_waiter ON mcp_client_requests(waiter);";

/* Runs sql with text ('t') and int64 ('i') binds; rows changed, or the
 * first column of the first row as an integer when want_count; -1 with
 * err. */
static long long run(fm_ctx *ctx, const char *sql, bool want_count, fm_err *err, const char *types,
                     ...)
{
    int64_t n = 0;
    va_list ap;
    va_start(ap, types);
    int rc = fm_db_runv(ctx->store.db, sql, want_count ? fm_db_row_int64 : NULL, &n, types, ap);
    va_end(ap);
    if (rc != FM_DB_DONE && rc != FM_DB_ROW)
        return fm_store_fail(&ctx->store, err, "mcp_client_requests"), -1;
    return want_count ? n : fm_db_changes(ctx->store.db);
}

/* This service's workers on this host: worker processes share a parent,
 * serving threads a process (pid, when not 0). */
static void waiter_group(char *out, size_t n, int pid)
{
    char host[64] = "";
    gethostname(host, sizeof host - 1);
    snprintf(out, n, "%.63s:%d", host, pid ? pid : (int)getppid());
}

/* Rows of this service's workers that died waiting: their questions
 * will never be collected, and they must not hold the waiting budget. */
/* drop_dead's rows: the pids that are gone (at most 8 a sweep). */
typedef struct {
    long long dead[8];
    int n;
} dead_acc;

static int dead_row(fm_db_stmt *s, void *arg)
{
    dead_acc *d = arg;
    long long pid = fm_db_column_int64(s, 0);
    if (pid > 0 && kill((pid_t)pid, 0) && errno == ESRCH) d->dead[d->n++] = pid;
    return d->n == 8;
}

static void drop_dead(fm_ctx *ctx, const char *group)
{
    fm_err err = {0};
    dead_acc d = {.n = 0};
    fm_db_run(ctx->store.db, "SELECT DISTINCT pid FROM mcp_client_requests WHERE waiter = ?",
              dead_row, &d, "t", group);
    for (int i = 0; i < d.n; i++)
        run(ctx, "DELETE FROM mcp_client_requests WHERE waiter = ? AND pid = ?", false, &err, "ti",
            group, (int64_t)d.dead[i]);
}

/* Records the question before it is asked; -1 with err (busy, or the
 * store).  The counts and the insert are one decision per session and per
 * waiter group: on PostgreSQL their two lock rows (always group, then
 * session: no two adders wait on each other in a cycle) hold those two
 * still, not the store's one write lock.  A session's lock row is one of
 * SESSION_LOCKS by a hash of its id, so store_locks stays bounded however
 * many sessions come and go (two sessions sharing one only queue). */
#define SESSION_LOCKS 64u
static int pending_add(fm_ctx *ctx, const char *rid, int timeout_ms, const fm_mcp_http *x,
                       fm_err *err)
{
    if (fm_store_migrate(&ctx->store, "mcp_client_requests", 1, ddl, err) ||
        fm_store_begin_rows(&ctx->store, err))
        return -1;
    char group[96], lock[160];
    waiter_group(group, sizeof group, x->stream_group);
    snprintf(lock, sizeof lock, "client_requests:waiter:%s", group);
    if (fm_store_lock_row(&ctx->store, lock, err)) goto fail;
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const char *c = ctx->session.id; *c; c++)
        h = (h ^ (unsigned char)*c) * 16777619u;
    snprintf(lock, sizeof lock, "client_requests:session:%u", h % SESSION_LOCKS);
    if (fm_store_lock_row(&ctx->store, lock, err)) goto fail;
    drop_dead(ctx, group);
    int64_t now = fm_now_ms();
    const char *sid = ctx->session.id;
    long long per_session, per_group;
    if (run(ctx, "DELETE FROM mcp_client_requests WHERE expires_ms < ?", false, err, "i",
            now - STALE_MS) < 0 ||
        (per_session = run(ctx,
                           "SELECT COUNT(*) FROM mcp_client_requests WHERE session_id = ?"
                           " AND expires_ms >= ?",
                           true, err, "ti", sid, now)) < 0 ||
        (per_group = run(ctx,
                         "SELECT COUNT(*) FROM mcp_client_requests WHERE waiter = ?"
                         " AND expires_ms >= ?",
                         true, err, "ti", group, now)) < 0)
        goto fail;
    if (per_session >= MAX_PER_SESSION) {
        fm_err_set(err, FM_ERR_RATE_LIMITED,
                   "this session already waits for %d answers from its client; answer those"
                   " (or let them time out) first",
                   MAX_PER_SESSION);
        goto fail;
    }
    if (per_group >= x->stream_waiters) {
        fm_err_set(err, FM_ERR_RATE_LIMITED,
                   "%d call(s) already wait for their clients' answers and one HTTP worker"
                   " must stay free to receive them; retry shortly, or raise http.workers",
                   (int)per_group);
        goto fail;
    }
    if (run(ctx,
            "INSERT INTO mcp_client_requests(session_id, request_id, waiter, pid, created_ms,"
            " expires_ms) VALUES (?, ?, ?, ?, ?, ?)",
            false, err, "tttiii", sid, rid, group, (int64_t)getpid(), now, now + timeout_ms) < 0 ||
        fm_store_commit(&ctx->store, err))
        goto fail;
    return 0;
fail:
    fm_store_rollback(&ctx->store);
    return -1;
}

static void pending_drop(fm_ctx *ctx, const char *rid)
{
    fm_err err = {0};
    if (run(ctx, "DELETE FROM mcp_client_requests WHERE session_id = ? AND request_id = ?", false,
            &err, "tt", ctx->session.id, rid) < 0)
        fm_log("warning", "client request %s not cleaned up: %s", rid, err.text);
}

/* The answer to rid when it has come (new), else NULL. */
/* pending_reply's row: the reply parsed (arg: json_t **, new). */
static int reply_row(fm_db_stmt *s, void *arg)
{
    const char *t = (const char *)fm_db_column_text(s, 0);
    *(json_t **)arg = t ? json_loads(t, 0, NULL) : NULL;
    return 1;
}

static json_t *pending_reply(fm_ctx *ctx, const char *rid, fm_err *err)
{
    json_t *r = NULL;
    int rc = fm_db_run(ctx->store.db,
                       "SELECT reply FROM mcp_client_requests WHERE session_id = ?"
                       " AND request_id = ? AND reply IS NOT NULL",
                       reply_row, &r, "tt", ctx->session.id, rid);
    /* Busy is "not yet": the next poll reads again. */
    if (rc != FM_DB_ROW && rc != FM_DB_DONE && rc != FM_DB_BUSY)
        fm_store_fail(&ctx->store, err, "mcp_client_requests");
    return r;
}

static void nap(int ms)
{
    struct timespec ts = {0, (long)ms * 1000000L};
    nanosleep(&ts, NULL);
}

json_t *fm_mcp_http_request(fm_ctx *ctx, const char *method, json_t *params, int timeout_ms,
                            fm_err *err)
{
    fm_mcp_http *x = ctx->xc;
    if (!x || !x->stream || ctx->mrtr || !fm_mcp_version_stateful(ctx->session.protocol)) {
        json_decref(params);
        fm_err_set(err, FM_ERR_UNAVAILABLE,
                   "cannot ask the client (%s) on this request: server-to-client requests"
                   " need a 2025 session whose POST accepts text/event-stream and a service"
                   " with http.workers of 2 or more (2026-07-28 clients answer multi"
                   " round-trip input instead)",
                   method);
        return NULL;
    }
    /* The answer comes through another worker, which must see the
     * question (and what this call wrote before it) committed, and the
     * wait must not hold a group commit's write lock: the batch so far
     * commits, and the rest of the call runs outside it. */
    fm_audit_batch_flush(ctx);
    char rid[40], hex[17];
    fm_random_hex(hex, 8);
    snprintf(rid, sizeof rid, "fm-%s", hex);
    if (pending_add(ctx, rid, timeout_ms, x, err)) {
        json_decref(params);
        return NULL;
    }
    json_t *req = json_pack("{s:s, s:s, s:s, s:o}", "jsonrpc", "2.0", "id", rid, "method", method,
                            "params", params);
    /* Notifications collected so far go first, in order. */
    json_array_append_new(ctx->tx->collect, req);
    int rc = x->stream(x->stream_cls, ctx->tx->collect);
    json_array_clear(ctx->tx->collect);
    x->streamed = true;
    json_t *res = NULL;
    if (rc) {
        fm_err_set(err, FM_ERR_UNAVAILABLE, "the client is gone (its response stream closed)");
        goto out;
    }
    int64_t start = fm_now_ms(), deadline = start + timeout_ms, alive_at = start;
    int sleep_ms = 5;
    while (!ctx->stop) {
        fm_err qerr = {0};
        json_t *msg = pending_reply(ctx, rid, &qerr);
        if (msg) {
            res = fm_mcp_answer_result(msg, method, err);
            json_decref(msg);
            goto out;
        }
        if (qerr.code) {
            fm_err_set(err, qerr.code, "waiting for the client's answer to %s: %s", method,
                       qerr.text);
            goto out;
        }
        int64_t now = fm_now_ms();
        if (now >= deadline) break;
        if (now >= alive_at) {
            if (x->stream(x->stream_cls, NULL)) {
                fm_err_set(err, FM_ERR_UNAVAILABLE,
                           "the client closed its stream before answering %s", method);
                goto out;
            }
            alive_at = now + ALIVE_CHECK_MS;
        }
        if (x->stream_idle) x->stream_idle(x->stream_cls, true);
        nap(sleep_ms);
        if (x->stream_idle) x->stream_idle(x->stream_cls, false);
        if (sleep_ms < 40) sleep_ms *= 2;
    }
    if (ctx->stop)
        fm_err_set(err, FM_ERR_UNAVAILABLE,
                   "the server is stopping; %s was not answered (call again)", method);
    else
        fm_err_set(err, FM_ERR_TIMEOUT, "no answer to %s within %d s", method, timeout_ms / 1000);
out:
    pending_drop(ctx, rid);
    return res;
}

int fm_mcp_http_reply(fm_ctx *ctx, const json_t *msg, size_t len, fm_err *err)
{
    if (len > REPLY_MAX)
        return fm_err_set(err, FM_ERR_TOO_LARGE,
                          "Content Too Large: an answer to a server request is at most %d"
                          " bytes",
                          REPLY_MAX),
               413;
    const char *rid = json_string_value(json_object_get(msg, "id"));
    char *text = json_dumps(msg, JSON_COMPACT);
    if (fm_store_migrate(&ctx->store, "mcp_client_requests", 1, ddl, err)) {
        free(text);
        return 500;
    }
    long long n = rid && text ? run(ctx,
                                    "UPDATE mcp_client_requests SET reply = ? WHERE session_id"
                                    " = ? AND request_id = ? AND reply IS NULL AND expires_ms"
                                    " >= ?",
                                    false, err, "ttti", text, ctx->session.id, rid, fm_now_ms())
                              : 0;
    free(text);
    if (n < 0) return 500;
    if (n == 0)
        return fm_err_set(err, FM_ERR_NOT_FOUND,
                          "Not Found: this session has no pending request with that id"
                          " (unknown, already answered or timed out)"),
               404;
    return 202;
}
