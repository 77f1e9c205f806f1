/* Tasks (io.modelcontextprotocol/tasks, SEP-2663) for the long calls.
 *
 * A task is a row in the store (mcp_tasks), written before the
 * CreateTaskResult goes out, so any worker or replica sharing the store
 * answers tasks/get for it at once.  The work runs in a runner: a
 * detached process (double fork, setsid) that continues the very handler
 * that asked for the background, with its own store connection and
 * backends opened afresh (no connection, socket or SSH session crosses
 * the fork), and writes the result into the row.  The runner outlives the
 * server process that made it, so a task survives a server restart; a
 * runner that dies leaves the row "working" with a dead pid, which
 * tasks/get reports as failed (a repair's workflow is then resumed by
 * repair_execute with the same plan, as after any crash).
 *
 * Task ids are 128 random bits and bound to the caller (the verified token
 * subject on HTTP with auth, else OS user and client name): another caller
 * gets "unknown task" for get, update and cancel alike.  Cancellation is
 * audited with the caller; the runner sees it at its next cancellation
 * check (the workflow engine's and long handlers' polls). */
/* Data access: this file owns the table mcp_tasks; every statement on
 * it is here, others call its functions (the data-access stage checks). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fleetmcp/fm_audit.h"
#include "fleetmcp/fm_db.h"
#include "fleetmcp/fm_jsonrpc.h"
#include "fleetmcp/fm_mcp.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_util.h"
#include "../workflow/wf_int.h"

/* How often a client should poll. */
#define POLL_MS 500
/* Tasks per page of tasks/list. */
#define LIST_PAGE 50
/* The runner reads its cancel flag at most this often. */
#define CANCEL_POLL_MS 100
/* A question a runner asked waits this long for tasks/update. */
#define ASK_TIMEOUT_MS (10 * 60 * 1000)

static const char ddl[] =
    "CREATE TABLE IF NOT EXISTS mcp_tasks(id TEXT PRIMARY KEY, owner TEXT NOT NULL,"
    " tool TEXT NOT NULL, status TEXT NOT NULL, result TEXT, error TEXT,"
    " input_requests TEXT, input_responses TEXT, cancel_requested INTEGER NOT NULL DEFAULT 0,"
    " runner_pid INTEGER, runner_host TEXT, status_message TEXT, workflow_id TEXT,"
    " created_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL, ttl_ms INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS mcp_tasks_created ON mcp_tasks(created_ms);";

static int tasks_init(fm_ctx *ctx, fm_err *err)
{
    return fm_store_migrate(&ctx->store, "mcp_tasks", 1, ddl, err);
}

bool fm_tasks_available(const fm_ctx *ctx)
{
    return strcmp(ctx->cfg.db_path, ":memory:") != 0;
}

bool fm_call_in_task(const fm_call *call)
{
    return call->ctx->task_id[0] != '\0';
}

/* Runs a literal statement with text/int binds: "t" text (NULL: null),
 * "i" int64.  Returns rows changed, or -1 with err. */
static int exec_sql(fm_ctx *ctx, const char *sql, fm_err *err, const char *types, ...)
{
    va_list ap;
    va_start(ap, types);
    int rc = fm_db_runv(ctx->store.db, sql, NULL, NULL, types, ap);
    va_end(ap);
    if (rc != FM_DB_DONE && rc != FM_DB_ROW)
        return fm_store_fail(&ctx->store, err, "mcp_tasks"), -1;
    return fm_db_changes(ctx->store.db);
}

static json_t *col_json(fm_db_stmt *s, int i)
{
    const char *t = (const char *)fm_db_column_text(s, i);
    return t ? json_loads(t, 0, NULL) : NULL;
}

/* ---- creating a task and its runner ---------------------------------- */

/* The runner's half of the fork: a fresh context on the same config and
 * store, keeping only what describes the call (session, content). */
static void become_runner(fm_ctx *ctx, const char *id)
{
    char config[sizeof ctx->cfg.path], db[sizeof ctx->cfg.db_path];
    snprintf(config, sizeof config, "%s", ctx->cfg.path);
    snprintf(db, sizeof db, "%s", ctx->cfg.db_path);
    fm_session session = ctx->session;
    const struct fm_content_ops *content = ctx->content;
    fm_call *current = ctx->current;
    int depth = ctx->call_depth;
    setsid();
    /* SQLite keeps per-process lock bookkeeping per database file that a
     * new connection would share with the inherited one: that one is
     * closed properly (it is between statements, and the parent's own
     * shared lock keeps this close from checkpointing the WAL).  A
     * PostgreSQL connection is abandoned instead: closing it would tell
     * the server to end the parent's session. */
    if (!fm_db_is_pg_url(ctx->cfg.db_path)) fm_store_close(&ctx->store);
    /* Nothing else of the server's: not its client's stdin/stdout, nor
     * its sockets (closed without a word on them: the parent still uses
     * the connections behind them). */
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
    }
    close_range(3, ~0U, 0);
    fm_err err = {0};
    if (fm_ctx_open(ctx, config[0] ? config : NULL, db, &err)) {
        fm_log("error", "task %s: the runner cannot open the store: %s", id, err.text);
        _exit(1);
    }
    ctx->session = session;
    ctx->content = content;
    ctx->current = current;
    ctx->call_depth = depth;
    ctx->task_depth = depth;
    snprintf(ctx->task_id, sizeof ctx->task_id, "%s", id);
}

json_t *fm_call_background(fm_call *call, fm_err *err)
{
    fm_ctx *ctx = call->ctx;
    if (ctx->task_id[0] || !ctx->session.tasks || ctx->call_depth != 1 ||
        !(call->tool->flags & (FM_TOOL_TASK | FM_TOOL_TASK_REQUIRED)) || !fm_tasks_available(ctx))
        return NULL;
    if (tasks_init(ctx, err)) return NULL;
    char id[48], hex[33], owner[300];
    fm_random_hex(hex, 16);
    snprintf(id, sizeof id, "task-%s", hex);
    fm_mcp_caller_id(ctx, owner, sizeof owner);
    int64_t now = fm_now_ms();
    int64_t ttl = ctx->task_ttl_ms > 0 ? ctx->task_ttl_ms : FM_TASK_TTL_MAX_MS;
    fm_err e2 = {0};
    /* Expired tasks go when new ones come: the table stays bounded. */
    exec_sql(ctx, "DELETE FROM mcp_tasks WHERE created_ms + ttl_ms < ?", &e2, "i", now);
    if (exec_sql(ctx,
                 "INSERT INTO mcp_tasks(id, owner, tool, status, created_ms, updated_ms, ttl_ms)"
                 " VALUES(?, ?, ?, 'working', ?, ?, ?)",
                 err, "tttiii", id, owner, call->tool->name, now, now, ttl) < 0)
        return NULL;
    int fds[2];
    if (pipe(fds)) {
        exec_sql(ctx, "DELETE FROM mcp_tasks WHERE id = ?", &e2, "t", id);
        return NULL; /* no task: the call runs in the request */
    }
    fflush(NULL);
    pid_t mid = fork();
    if (mid == 0) {
        close(fds[0]);
        pid_t runner = fork();
        if (runner == 0) {
            close(fds[1]);
            become_runner(ctx, id);
            return NULL; /* the handler goes on, in the runner */
        }
        long long p = runner;
        if (write(fds[1], &p, sizeof p) != (ssize_t)sizeof p) p = -1;
        _exit(runner > 0 ? 0 : 1);
    }
    close(fds[1]);
    long long runner = -1;
    if (mid > 0) {
        if (read(fds[0], &runner, sizeof runner) != (ssize_t)sizeof runner) runner = -1;
        while (waitpid(mid, NULL, 0) < 0 && errno == EINTR) {
        }
    }
    close(fds[0]);
    if (runner <= 0) {
        exec_sql(ctx, "DELETE FROM mcp_tasks WHERE id = ?", &e2, "t", id);
        fm_log("warning", "task for %s: cannot start a runner (%s); running it in the request",
               call->tool->name, strerror(errno));
        return NULL;
    }
    exec_sql(ctx, "UPDATE mcp_tasks SET runner_pid = ?, runner_host = ? WHERE id = ?", &e2, "itt",
             (int64_t)runner, wf_host(), id);
    char ts[32];
    fm_iso_time(now, ts);
    ctx->task_created = true;
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:i}", "resultType", "task", "taskId", id,
                     "status", "working", "createdAt", ts, "lastUpdatedAt", ts, "ttlMs",
                     (json_int_t)ttl, "pollIntervalMs", POLL_MS);
}

/* ---- inside the runner ------------------------------------------------ */

/* The runner's view of its row: whether tasks/cancel was called. */
bool fm_task_cancel_requested(fm_ctx *ctx)
{
    if (!ctx->task_id[0]) return false;
    int64_t now = fm_now_ms();
    if (now - ctx->task_polled_ms < CANCEL_POLL_MS) return false;
    ctx->task_polled_ms = now;
    int64_t c = 0;
    return fm_db_run(ctx->store.db, "SELECT cancel_requested FROM mcp_tasks WHERE id = ?",
                     fm_db_row_int64, &c, "t", ctx->task_id) == FM_DB_ROW &&
           c != 0;
}

/* fm_call_ask's poll: the task's status and the answers so far (new). */
typedef struct {
    char status[24];
    json_t *answers;
} ask_poll;

static int ask_row(fm_db_stmt *s, void *arg)
{
    ask_poll *p = arg;
    fm_clip(p->status, sizeof p->status, (const char *)fm_db_column_text(s, 0));
    p->answers = col_json(s, 1);
    return 1;
}

json_t *fm_call_ask(fm_call *call, json_t *requests, fm_err *err)
{
    fm_ctx *ctx = call->ctx;
    if (!ctx->task_id[0] || !json_is_object(requests) || !json_object_size(requests)) {
        json_decref(requests);
        fm_err_set(err, FM_ERR_INVALID, "fm_call_ask outside a task's runner");
        return NULL;
    }
    char *text = json_dumps(requests, JSON_COMPACT);
    json_decref(requests);
    int n = text ? exec_sql(ctx,
                            "UPDATE mcp_tasks SET status = 'input_required', input_requests = ?,"
                            " input_responses = '{}', updated_ms = ? WHERE id = ? AND status ="
                            " 'working'",
                            err, "tit", text, fm_now_ms(), ctx->task_id)
                 : -1;
    free(text);
    if (n <= 0) {
        if (n == 0) fm_err_set(err, FM_ERR_CANCELLED, "the task was cancelled");
        return NULL;
    }
    int64_t deadline = fm_now_ms() + ASK_TIMEOUT_MS;
    /* Bounded by time; tasks/update moves each answer over and turns the
     * task back to working when none is left. */
    while (fm_now_ms() < deadline && !ctx->stop) {
        ask_poll p = {"", NULL};
        int rc =
            fm_db_run(ctx->store.db, "SELECT status, input_responses FROM mcp_tasks WHERE id = ?",
                      ask_row, &p, "t", ctx->task_id);
        if (rc != FM_DB_ROW && rc != FM_DB_DONE) {
            fm_store_fail(&ctx->store, err, "mcp_tasks");
            return NULL;
        }
        json_t *answers = p.answers;
        char *status = p.status;
        if (!strcmp(status, "working")) return answers ? answers : json_object();
        json_decref(answers);
        if (strcmp(status, "input_required")) {
            call->cancelled = !strcmp(status, "cancelled");
            fm_err_set(err, FM_ERR_CANCELLED, "the task is %s", status[0] ? status : "gone");
            return NULL;
        }
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    fm_err_set(err, FM_ERR_TIMEOUT, "no answer to the task's questions within %d s",
               ASK_TIMEOUT_MS / 1000);
    return NULL;
}

void fm_task_finish(fm_ctx *ctx, const json_t *result, const char *sc_text)
{
    json_t *full = json_deep_copy(result);
    if (sc_text) json_object_set_new(full, "structuredContent", json_loads(sc_text, 0, NULL));
    /* A handler that failed inside (not a tool error it reported) is a
     * protocol-level failure: status failed with a JSON-RPC error. */
    bool failed = ctx->last_err_code == FM_ERR_INTERNAL;
    char *rtext = NULL, *etext = NULL;
    if (failed) {
        const json_t *c0 = json_array_get(json_object_get(full, "content"), 0);
        json_t *e = json_pack("{s:i, s:s}", "code", FM_RPC_INTERNAL_ERROR, "message",
                              fm_json_str(c0, "text", "internal error"));
        etext = json_dumps(e, JSON_COMPACT);
        json_decref(e);
    } else {
        rtext = json_dumps(full, JSON_COMPACT | JSON_REAL_PRECISION(15));
    }
    json_decref(full);
    fm_err err = {0};
    /* A cancelled task stays cancelled. */
    if (exec_sql(ctx,
                 "UPDATE mcp_tasks SET status = ?, result = ?, error = ?, input_requests = NULL,"
                 " updated_ms = ? WHERE id = ? AND status IN ('working', 'input_required')",
                 &err, "tttit", failed ? "failed" : "completed", rtext, etext, fm_now_ms(),
                 ctx->task_id) < 0)
        fm_log("error", "task %s: its result could not be stored: %s", ctx->task_id, err.text);
    free(rtext);
    free(etext);
    fm_ctx_close(ctx);
    _exit(0);
}

void fm_task_note(fm_ctx *ctx, const char *workflow_id, const char *message)
{
    if (!ctx->task_id[0]) return;
    /* Progress comes often (the workflow engine reports every few polls):
     * one write per half second at most, but a workflow id always. */
    int64_t now = fm_now_ms();
    if (!workflow_id && now - ctx->task_noted_ms < POLL_MS) return;
    ctx->task_noted_ms = now;
    char m[300];
    fm_clip(m, sizeof m, message ? message : "");
    fm_err err = {0};
    exec_sql(ctx,
             "UPDATE mcp_tasks SET status_message = ?, workflow_id = COALESCE(?, workflow_id),"
             " updated_ms = ? WHERE id = ? AND status = 'working'",
             &err, "ttit", m, workflow_id, now, ctx->task_id);
}

/* ---- tasks/get, tasks/update, tasks/cancel ---------------------------- */

typedef struct {
    char status[24];
    json_t *result, *error, *requests;
    int64_t created, updated, ttl, pid;
    char host[64], message[300], workflow[48];
} task_row;

static void row_free(task_row *r)
{
    json_decref(r->result);
    json_decref(r->error);
    json_decref(r->requests);
}

/* A task's row as tasks/get and tasks/list select it (read_row's order);
 * tasks/get adds TASK_ANSWERS. */
#define TASK_COLS                                                                                  \
    "id, status, created_ms, updated_ms, ttl_ms, runner_pid, runner_host, status_message,"         \
    " workflow_id"
#define TASK_ANSWERS ", result, error, input_requests"

/* One row of TASK_COLS (and TASK_ANSWERS with answers) into r and id. */
static void read_row(fm_db_stmt *s, task_row *r, char *id, size_t id_len, bool answers)
{
    memset(r, 0, sizeof *r);
    fm_clip(id, id_len, (const char *)fm_db_column_text(s, 0));
    fm_clip(r->status, sizeof r->status, (const char *)fm_db_column_text(s, 1));
    r->created = fm_db_column_int64(s, 2);
    r->updated = fm_db_column_int64(s, 3);
    r->ttl = fm_db_column_int64(s, 4);
    r->pid = fm_db_column_int64(s, 5);
    fm_clip(r->host, sizeof r->host, (const char *)fm_db_column_text(s, 6));
    fm_clip(r->message, sizeof r->message, (const char *)fm_db_column_text(s, 7));
    fm_clip(r->workflow, sizeof r->workflow, (const char *)fm_db_column_text(s, 8));
    if (!answers) return;
    r->result = col_json(s, 9);
    r->error = col_json(s, 10);
    r->requests = col_json(s, 11);
}

/* Rows of mcp_tasks into r[0..max-1] (ids beside them), read_row's way. */
typedef struct {
    task_row *r;
    int max;
    char ids[LIST_PAGE + 1][48];
    int n;
    bool answers;
} task_read;

static int task_rows(fm_db_stmt *s, void *arg)
{
    task_read *t = arg;
    read_row(s, &t->r[t->n], t->ids[t->n], sizeof t->ids[t->n], t->answers);
    return ++t->n >= t->max;
}

/* The caller's task id: 1 found, 0 unknown (or someone else's, or
 * expired), -1 store error. */
static int load(fm_ctx *ctx, const char *id, task_row *r, fm_err *err)
{
    memset(r, 0, sizeof *r);
    char owner[300];
    fm_mcp_caller_id(ctx, owner, sizeof owner);
    task_read one = {r, 1, {{0}}, 0, true};
    int rc =
        fm_db_run(ctx->store.db,
                  "SELECT " TASK_COLS TASK_ANSWERS " FROM mcp_tasks WHERE id = ? AND owner = ?",
                  task_rows, &one, "tt", id, owner);
    if (rc != FM_DB_ROW && rc != FM_DB_DONE) return fm_store_fail(&ctx->store, err, "mcp_tasks");
    if (rc == FM_DB_DONE || r->created + r->ttl < fm_now_ms()) {
        row_free(r);
        return 0;
    }
    return 1;
}

static bool live(const char *status)
{
    return !strcmp(status, "working") || !strcmp(status, "input_required");
}

/* Whether pid is gone.  A zombie counts as gone: where PID 1 does not
 * reap orphans (some containers), a killed runner stays one. */
static bool runner_gone(long long pid)
{
    if (!wf_pid_alive(pid)) return true;
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%lld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')');
    return paren && paren[1] == ' ' && paren[2] == 'Z';
}

/* A runner on this host that is gone without writing a result. */
static void reap_dead_runner(fm_ctx *ctx, const char *id, task_row *r)
{
    if (!live(r->status) || r->pid <= 0 || strcmp(r->host, wf_host()) || !runner_gone(r->pid))
        return;
    json_t *e = json_pack("{s:i, s:s}", "code", FM_RPC_INTERNAL_ERROR, "message",
                          "the task's runner process ended without a result (killed, or the"
                          " host restarted); a repair's workflow is resumed by repair_execute"
                          " with the same plan_id (workflow_get shows where it stopped)");
    char *t = json_dumps(e, JSON_COMPACT);
    fm_err err = {0};
    int64_t now = fm_now_ms();
    if (exec_sql(ctx,
                 "UPDATE mcp_tasks SET status = 'failed', error = ?, updated_ms = ? WHERE id = ?"
                 " AND status IN ('working', 'input_required')",
                 &err, "tit", t, now, id) > 0) {
        snprintf(r->status, sizeof r->status, "failed");
        json_decref(r->error);
        r->error = json_incref(e);
        r->updated = now;
    }
    free(t);
    json_decref(e);
}

static json_t *detailed(const char *id, task_row *r)
{
    char c[32], u[32];
    fm_iso_time(r->created, c);
    fm_iso_time(r->updated, u);
    json_t *out =
        json_pack("{s:s, s:s, s:s, s:s, s:I, s:i}", "taskId", id, "status", r->status, "createdAt",
                  c, "lastUpdatedAt", u, "ttlMs", (json_int_t)r->ttl, "pollIntervalMs", POLL_MS);
    if (!strcmp(r->status, "completed") && r->result)
        json_object_set(out, "result", r->result);
    else if (!strcmp(r->status, "failed") && r->error)
        json_object_set(out, "error", r->error);
    else if (!strcmp(r->status, "input_required"))
        json_object_set_new(out, "inputRequests",
                            r->requests ? json_incref(r->requests) : json_object());
    /* What the runner last reported, and the workflow behind a repair:
     * its steps and events stay readable with workflow_get. */
    if (r->message[0] || r->workflow[0]) {
        char m[400];
        snprintf(m, sizeof m, "%s%s%s%s", r->message, r->message[0] && r->workflow[0] ? "; " : "",
                 r->workflow[0] ? "workflow " : "", r->workflow);
        json_object_set_new(out, "statusMessage", json_string(m));
    }
    return out;
}

/* update's read: the questions, the answers so far (both new) and
 * whether the task is waiting for them. */
typedef struct {
    json_t *req, *ans;
    bool waiting;
} pending_io;

static int pending_row(fm_db_stmt *s, void *arg)
{
    pending_io *io = arg;
    io->req = col_json(s, 0);
    io->ans = col_json(s, 1);
    io->waiting = !strcmp((const char *)fm_db_column_text(s, 2), "input_required");
    return 1;
}

/* tasks/update: moves the answers to pending questions over (unknown keys
 * are ignored) in one transaction; with none left the task works again. */
static int update(fm_ctx *ctx, const char *id, const json_t *responses, fm_err *err)
{
    /* Read, merge, write back: answers to one task queue on the task's
     * own lock row (PostgreSQL), so two answered at once on two hosts
     * both land; the runner writes input_requests only while the task
     * works (status 'working'), which the UPDATE below excludes. */
    char lock[160];
    snprintf(lock, sizeof lock, "mcp_task:%.140s", id);
    if (fm_store_begin_rows(&ctx->store, err)) return -1;
    if (fm_store_lock_row(&ctx->store, lock, err)) {
        fm_store_rollback(&ctx->store);
        return -1;
    }
    pending_io io = {NULL, NULL, false};
    int step = fm_db_run(ctx->store.db,
                         "SELECT input_requests, input_responses, status FROM mcp_tasks"
                         " WHERE id = ?",
                         pending_row, &io, "t", id);
    if (step != FM_DB_ROW && step != FM_DB_DONE) {
        fm_store_fail(&ctx->store, err, "mcp_tasks");
        fm_store_rollback(&ctx->store);
        return -1;
    }
    json_t *req = io.req, *ans = io.ans;
    bool waiting = io.waiting;
    int rc = 0;
    if (waiting && json_is_object(req)) {
        if (!json_is_object(ans)) {
            json_decref(ans);
            ans = json_object();
        }
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)responses, k, v)
        {
            if (!json_object_get(req, k)) continue;
            json_object_set(ans, k, v);
            json_object_del(req, k);
        }
        char *rt = json_dumps(req, JSON_COMPACT), *at = json_dumps(ans, JSON_COMPACT);
        rc = exec_sql(ctx,
                      "UPDATE mcp_tasks SET input_requests = ?, input_responses = ?, status = ?,"
                      " updated_ms = ? WHERE id = ? AND status = 'input_required'",
                      err, "tttit", rt, at, json_object_size(req) ? "input_required" : "working",
                      fm_now_ms(), id) < 0
                 ? -1
                 : 0;
        free(rt);
        free(at);
    }
    json_decref(req);
    json_decref(ans);
    if (rc || fm_store_commit(&ctx->store, err)) {
        fm_store_rollback(&ctx->store);
        return -1;
    }
    return 0;
}

/* tasks/cancel: the row says cancelled at once (the runner stops at its
 * next check), and the audit says who cancelled what. */
static int cancel(fm_ctx *ctx, const char *id, fm_err *err)
{
    int n = exec_sql(ctx,
                     "UPDATE mcp_tasks SET cancel_requested = 1, status = 'cancelled',"
                     " input_requests = NULL, updated_ms = ? WHERE id = ? AND status IN"
                     " ('working', 'input_required')",
                     err, "it", fm_now_ms(), id);
    if (n < 0) return -1;
    if (n == 0) return 0; /* already terminal: the ack is the same */
    json_t *args = json_pack("{s:s}", "taskId", id);
    fm_audit_rec rec = {.phase = "call",
                        .tool = "tasks/cancel",
                        .args = args,
                        .autonomy = "read",
                        .decision = "allow",
                        .reason = "the caller that created the task cancelled it"};
    fm_err aerr = {0};
    if (fm_audit_append(ctx, &rec, &aerr) <= 0)
        fm_log("error", "task %s cancelled, but its audit row failed: %s", id, aerr.text);
    json_decref(args);
    return 0;
}

/* The JSON-RPC error for a store that failed under a tasks request. */
static void store_failed(const fm_err *err, int *code, char *why)
{
    *code = FM_RPC_INTERNAL_ERROR;
    snprintf(why, 256, "Internal error: the task store failed (%.120s); retry", err->text);
}

json_t *fm_tasks_request(fm_ctx *ctx, const char *method, const json_t *params, int *code,
                         char *why)
{
    const char *id = fm_json_str(params, "taskId", NULL);
    const json_t *responses = json_object_get(params, "inputResponses");
    bool is_update = !strcmp(method, "tasks/update");
    if (!id || (is_update && !json_is_object(responses))) {
        *code = FM_RPC_INVALID_PARAMS;
        snprintf(why, 256, "Invalid params: %s needs taskId (a string)%s", method,
                 is_update ? " and inputResponses (an object)" : "");
        return NULL;
    }
    fm_err err = {0};
    task_row r;
    int found = fm_tasks_available(ctx) && !tasks_init(ctx, &err) ? load(ctx, id, &r, &err) : 0;
    if (found <= 0) {
        char c[80];
        fm_clip(c, sizeof c, id);
        *code = FM_RPC_INVALID_PARAMS;
        if (found < 0)
            store_failed(&err, code, why);
        else
            snprintf(why, 256,
                     "Invalid params: unknown task %s (expired, or created by"
                     " another caller)",
                     c);
        return NULL;
    }
    json_t *out = NULL;
    if (!strcmp(method, "tasks/get")) {
        reap_dead_runner(ctx, id, &r);
        out = detailed(id, &r);
    } else if ((is_update ? update(ctx, id, responses, &err) : cancel(ctx, id, &err)) == 0) {
        out = json_object();
    } else {
        *code = FM_RPC_INTERNAL_ERROR;
        snprintf(why, 256, "Internal error: %s failed in the store (%.120s); retry", method,
                 err.text);
    }
    row_free(&r);
    return out;
}

/* ---- tasks/list ------------------------------------------------------- */

/* A page's cursor: the last task's created_ms and id ("<ms>.<id>"), so
 * the next page starts after it whatever was created or expired since. */
static bool cursor_parse(const char *c, long long *ms, char *id, size_t len)
{
    char *end = NULL;
    errno = 0;
    *ms = strtoll(c, &end, 10);
    if (errno || end == c || *end != '.' || *ms < 0) return false;
    const char *t = end + 1;
    size_t n = strlen(t);
    if (n != 37 || strncmp(t, "task-", 5) || strspn(t + 5, "0123456789abcdef") != 32 || n >= len)
        return false;
    snprintf(id, len, "%s", t);
    return true;
}

json_t *fm_tasks_list(fm_ctx *ctx, const json_t *params, int *code, char *why)
{
    const json_t *cj = json_object_get(params, "cursor");
    long long after_ms = INT64_MAX;
    char after_id[48] = "";
    if (cj && (!json_is_string(cj) ||
               !cursor_parse(json_string_value(cj), &after_ms, after_id, sizeof after_id))) {
        *code = FM_RPC_INVALID_PARAMS;
        snprintf(why, 256,
                 "Invalid params: cursor is not one tasks/list gave; list again"
                 " without a cursor");
        return NULL;
    }
    json_t *tasks = json_array();
    fm_err err = {0};
    if (!fm_tasks_available(ctx) || tasks_init(ctx, &err)) {
        if (!err.code) return json_pack("{s:o}", "tasks", tasks);
        json_decref(tasks);
        store_failed(&err, code, why);
        return NULL;
    }
    char owner[300];
    fm_mcp_caller_id(ctx, owner, sizeof owner);
    /* The rows first, then the dead-runner checks (which write). */
    task_row rows[LIST_PAGE + 1];
    task_read page = {rows, LIST_PAGE + 1, {{0}}, 0, false};
    char(*ids)[48] = page.ids;
    int rc = fm_db_run(ctx->store.db,
                       "SELECT " TASK_COLS
                       " FROM mcp_tasks WHERE owner = ?1 AND created_ms + ttl_ms >= ?2"
                       " AND (created_ms < ?3 OR (created_ms = ?3 AND id < ?4))"
                       " ORDER BY created_ms DESC, id DESC LIMIT ?5",
                       task_rows, &page, "tiiti", owner, fm_now_ms(), (int64_t)after_ms, after_id,
                       (int64_t)(LIST_PAGE + 1));
    int n = page.n;
    if (rc != FM_DB_ROW && rc != FM_DB_DONE) {
        fm_store_fail(&ctx->store, &err, "mcp_tasks");
        for (int i = 0; i < n; i++)
            row_free(&rows[i]);
        json_decref(tasks);
        store_failed(&err, code, why);
        return NULL;
    }
    int shown = n > LIST_PAGE ? LIST_PAGE : n;
    for (int i = 0; i < shown; i++) {
        reap_dead_runner(ctx, ids[i], &rows[i]);
        json_array_append_new(tasks, detailed(ids[i], &rows[i]));
        row_free(&rows[i]);
    }
    json_t *out = json_pack("{s:o}", "tasks", tasks);
    if (n > LIST_PAGE) {
        char c[128];
        snprintf(c, sizeof c, "%lld.%s", (long long)rows[shown - 1].created, ids[shown - 1]);
        json_object_set_new(out, "nextCursor", json_string(c));
    }
    return out;
}
