/* Workflow persistence: the workflow row, its steps and events.  Every
 * write commits on its own (the store runs each in BEGIN IMMEDIATE), so a
 * kill -9 loses at most the step in flight, whose "started" row says so. */
/* Data access: this file owns the tables workflow_events, workflow_steps, workflows; every
 * statement on them is here, others call its functions (the data-access stage checks). */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "fleetmcp/fm_audit.h"
#include "fleetmcp/fm_plan.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_slurm.h"
#include "fleetmcp/fm_util.h"
#include "wf_int.h"

static const char wf_ddl[] =
    "CREATE TABLE IF NOT EXISTS workflows(id TEXT PRIMARY KEY, plan_id TEXT, approval_id TEXT,"
    " node TEXT NOT NULL, fault_class TEXT, runbook TEXT, runbook_version INTEGER,"
    " content TEXT NOT NULL, vars TEXT NOT NULL DEFAULT '{}', status TEXT NOT NULL,"
    " current_step TEXT, step_index INTEGER NOT NULL DEFAULT 0, failing INTEGER NOT NULL"
    " DEFAULT 0, call_ref INTEGER, session TEXT, owner_pid INTEGER, owner_host TEXT,"
    " lease_until_ms INTEGER, started_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
    " error TEXT);"
    "CREATE INDEX IF NOT EXISTS workflows_status ON workflows(status, lease_until_ms);"
    "CREATE INDEX IF NOT EXISTS workflows_node ON workflows(node, status);"
    "CREATE TABLE IF NOT EXISTS workflow_steps(id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " workflow_id TEXT NOT NULL, step_index INTEGER NOT NULL, step_id TEXT NOT NULL,"
    " phase TEXT NOT NULL, action TEXT NOT NULL, status TEXT NOT NULL, started_ms INTEGER"
    " NOT NULL, ended_ms INTEGER, state_before TEXT, state_after TEXT, output TEXT,"
    " error TEXT, pid INTEGER);"
    "CREATE INDEX IF NOT EXISTS workflow_steps_wf ON workflow_steps(workflow_id, step_index);"
    "CREATE TABLE IF NOT EXISTS workflow_events(id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " workflow_id TEXT NOT NULL, ts_ms INTEGER NOT NULL, kind TEXT NOT NULL, message TEXT"
    " NOT NULL);"
    "CREATE INDEX IF NOT EXISTS workflow_events_wf ON workflow_events(workflow_id, id);";

/* v2: a wait step's deadline on the store's clock, fixed when the step
 * first starts: a resume after a crash waits only for what is left. */
static const char wf_ddl_v2[] = "ALTER TABLE workflow_steps ADD COLUMN deadline_ms INTEGER;";

int fm_workflow_init(fm_ctx *ctx, fm_err *err)
{
    return fm_store_migrate(&ctx->store, "workflows", 1, wf_ddl, err) ||
                   fm_store_migrate(&ctx->store, "workflows", 2, wf_ddl_v2, err)
               ? -1
               : 0;
}

void wf_row_free(wf_row *w)
{
    json_decref(w->content);
    json_decref(w->vars);
    json_decref(w->last_out);
    w->content = w->vars = w->last_out = NULL;
}

/* The host that owns a workflow.  FLEETMCP_HOST_ID names it when the
 * kernel's hostname does not tell processes apart (containers cloned
 * from one image; tests that stand in for two hosts). */
const char *wf_host(void)
{
    /* Per thread: serving threads would race on a shared first fill. */
    static _Thread_local char h[64];
    if (!h[0]) fm_host_id(h, sizeof h);
    return h;
}

bool wf_pid_alive(long long pid)
{
    if (pid <= 0) return false;
    if (pid == (long long)getpid()) return true;
    return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

int64_t wf_clock_ms(fm_ctx *ctx)
{
    return fm_store_now_ms(&ctx->store);
}

bool wf_owner_dead(fm_ctx *ctx, long long pid, int64_t lease_until_ms)
{
    /* The owner renews the lease for every step's whole timeout; on this
     * host a kill -9 is seen at once instead of after the lease. */
    return lease_until_ms < wf_clock_ms(ctx) || (pid > 0 && !wf_pid_alive(pid));
}

/* An optional text column: NULL for none or empty. */
static const char *opt(const char *v)
{
    return v && *v ? v : NULL;
}

static const char *current_step_id(const wf_row *w)
{
    json_t *st = json_array_get(json_object_get(w->content, "steps"), (size_t)w->step_index);
    return st ? fm_json_str(st, "id", NULL) : NULL;
}

int wf_insert(fm_ctx *ctx, wf_row *w, fm_err *err)
{
    char hex[17];
    fm_random_hex(hex, 8);
    snprintf(w->id, sizeof w->id, "wf-%s", hex);
    w->owner_pid = getpid();
    w->lease_until_ms = wf_clock_ms(ctx) + WF_LEASE_MS;
    snprintf(w->status, sizeof w->status, "running");
    char *content = fm_json_canonical(w->content), *vars = fm_json_canonical(w->vars);
    int64_t now = wf_clock_ms(ctx);
    int rc = 0;
    if (fm_db_run(ctx->store.db,
                  "INSERT INTO workflows(id,plan_id,approval_id,node,fault_class,runbook,"
                  "runbook_version,content,vars,status,current_step,step_index,failing,"
                  "call_ref,session,owner_pid,owner_host,lease_until_ms,started_ms,"
                  "updated_ms) VALUES(?,?,?,?,?,?,?,?,?,'running',?,0,0,?,?,?,?,?,?,?)",
                  NULL, NULL, "ttttttitttititiii", w->id, opt(w->plan_id), opt(w->approval_id),
                  w->node, opt(w->fault_class), opt(w->runbook), (int64_t)w->runbook_version,
                  content ? content : "{}", vars ? vars : "{}", opt(current_step_id(w)),
                  w->call_ref, ctx->session.id, (int64_t)w->owner_pid, wf_host(), w->lease_until_ms,
                  now, now) != FM_DB_DONE) {
        fm_store_fail(&ctx->store, err, "workflow insert");
        rc = -1;
    }
    free(content);
    free(vars);
    return rc;
}

int wf_save(fm_ctx *ctx, const wf_row *w, fm_err *err)
{
    char *vars = fm_json_canonical(w->vars);
    int rc = -1;
    int64_t now = wf_clock_ms(ctx), lease = now + WF_LEASE_MS;
    if (fm_db_run(ctx->store.db,
                  "UPDATE workflows SET status=?, step_index=?, failing=?, vars=?,"
                  " current_step=?, lease_until_ms=?, updated_ms=?, owner_pid=?,"
                  " owner_host=? WHERE id=? AND owner_pid=?8 AND"
                  " (owner_host=?9 OR owner_host IS NULL)",
                  NULL, NULL, "tnnttiiitt", w->status, w->step_index, (int)w->failing,
                  vars ? vars : "{}", opt(current_step_id(w)), lease, now, (int64_t)w->owner_pid,
                  wf_host(), w->id) != FM_DB_DONE)
        fm_store_fail(&ctx->store, err, "workflow update");
    else if (fm_db_changes(ctx->store.db) != 1) {
        /* Compare-and-set on the owner: a process whose lease ran out
         * and was taken over cannot overwrite the new owner's state.
         * Logged too: most callers save without asking. */
        fm_err_set(err, FM_ERR_CONFLICT,
                   "workflow %s is no longer owned by this process (pid %lld on %s): another"
                   " server took it over after its lease ran out; the workflow's status shows"
                   " its owner",
                   w->id, (long long)w->owner_pid, wf_host());
        fm_log("warning", "workflow %s: state not saved: owned by another process now", w->id);
    } else
        rc = 0;
    free(vars);
    return rc;
}

int wf_park(fm_ctx *ctx, const wf_row *w, int64_t due_ms, fm_err *err)
{
    return fm_db_run(ctx->store.db,
                     "UPDATE workflows SET status='monitoring', owner_pid=0, lease_until_ms=?,"
                     " updated_ms=? WHERE id=? AND owner_pid=? AND"
                     " (owner_host=? OR owner_host IS NULL)",
                     NULL, NULL, "iitit", due_ms, wf_clock_ms(ctx), w->id, (int64_t)w->owner_pid,
                     wf_host()) == FM_DB_DONE
               ? 0
               : fm_store_fail(&ctx->store, err, "workflow park");
}

void wf_step_reopen(fm_ctx *ctx, int64_t row)
{
    fm_db_run(ctx->store.db,
              "UPDATE workflow_steps SET status='started', ended_ms=NULL, pid=?"
              " WHERE id=? AND status='monitoring'",
              NULL, NULL, "ii", (int64_t)getpid(), row);
}

void wf_renew(fm_ctx *ctx, const wf_row *w)
{
    wf_renew_for(ctx, w, WF_LEASE_MS);
}

void wf_renew_for(fm_ctx *ctx, const wf_row *w, int64_t ms)
{
    /* Owner by pid and host: pids repeat across hosts (containers). */
    static const char sql[] = "UPDATE workflows SET lease_until_ms=?, updated_ms=? WHERE id=?"
                              " AND owner_pid=? AND (owner_host=? OR owner_host IS NULL)";
    int64_t now = wf_clock_ms(ctx);
    fm_db_run(ctx->store.db, sql, NULL, NULL, "iitit", now + ms, now, w->id, (int64_t)w->owner_pid,
              wf_host());
}

static void col_copy(fm_db_stmt *s, int i, char *dst, size_t len)
{
    const unsigned char *v = fm_db_column_text(s, i);
    snprintf(dst, len, "%s", v ? (const char *)v : "");
}

/* wf_load's row into the wf_row arg. */
static int wf_row_read(fm_db_stmt *s, void *arg)
{
    wf_row *w = arg;
    col_copy(s, 0, w->id, sizeof w->id);
    col_copy(s, 1, w->plan_id, sizeof w->plan_id);
    col_copy(s, 2, w->approval_id, sizeof w->approval_id);
    col_copy(s, 3, w->node, sizeof w->node);
    col_copy(s, 4, w->fault_class, sizeof w->fault_class);
    col_copy(s, 5, w->runbook, sizeof w->runbook);
    w->runbook_version = fm_db_column_int64(s, 6);
    w->content = json_loads((const char *)fm_db_column_text(s, 7), 0, NULL);
    w->vars = json_loads((const char *)fm_db_column_text(s, 8), 0, NULL);
    if (!json_is_object(w->vars)) {
        json_decref(w->vars);
        w->vars = json_object();
    }
    col_copy(s, 9, w->status, sizeof w->status);
    w->step_index = fm_db_column_int(s, 10);
    w->failing = fm_db_column_int(s, 11) != 0;
    w->call_ref = fm_db_column_int64(s, 12);
    w->owner_pid = fm_db_column_int64(s, 13);
    w->lease_until_ms = fm_db_column_int64(s, 14);
    /* A pid from another host says nothing here: only the lease does. */
    const unsigned char *h = fm_db_column_text(s, 15);
    if (h && strcmp((const char *)h, wf_host())) w->owner_pid = -w->owner_pid;
    return 1;
}

int wf_load(fm_ctx *ctx, const char *id, wf_row *w, fm_err *err)
{
    memset(w, 0, sizeof *w);
    int rc = fm_db_run(ctx->store.db,
                       "SELECT id,plan_id,approval_id,node,fault_class,runbook,"
                       "runbook_version,content,vars,status,step_index,failing,call_ref,"
                       "owner_pid,lease_until_ms,owner_host FROM workflows WHERE id=?",
                       wf_row_read, w, "t", id);
    if (rc != FM_DB_ROW && rc != FM_DB_DONE)
        return fm_store_fail(&ctx->store, err, "workflow read");
    if (rc == FM_DB_DONE) {
        char c[64];
        fm_clip(c, sizeof c, id);
        fm_err_set(err, FM_ERR_NOT_FOUND, "no workflow %s", c);
        return -1;
    }
    if (json_is_object(w->content)) return 0;
    fm_err_set(err, FM_ERR_PARSE, "workflow %s has unreadable content", id);
    return -1;
}

bool wf_claim(fm_ctx *ctx, wf_row *w)
{
    int64_t now = wf_clock_ms(ctx), lease = now + WF_LEASE_MS;
    if (!wf_owner_dead(ctx, w->owner_pid, w->lease_until_ms)) return false;
    long long old_pid = w->owner_pid < 0 ? -w->owner_pid : w->owner_pid;
    bool ok = fm_db_run(ctx->store.db,
                        "UPDATE workflows SET owner_pid=?, owner_host=?, lease_until_ms=?,"
                        " updated_ms=? WHERE id=? AND owner_pid=? AND lease_until_ms=? AND"
                        " status IN ('running','waiting','monitoring')",
                        NULL, NULL, "itiitii", (int64_t)getpid(), wf_host(), lease, now, w->id,
                        (int64_t)old_pid, w->lease_until_ms) == FM_DB_DONE &&
              fm_db_changes(ctx->store.db) == 1;
    if (ok) {
        w->owner_pid = getpid();
        w->lease_until_ms = lease;
    }
    return ok;
}

int64_t wf_step_start(fm_ctx *ctx, const wf_row *w, const json_t *step, const char *state_before,
                      fm_err *err)
{
    if (fm_db_run(ctx->store.db,
                  "INSERT INTO workflow_steps(workflow_id,step_index,step_id,phase,action,"
                  "status,started_ms,state_before,pid) VALUES(?,?,?,?,?,'started',?,?,?)",
                  NULL, NULL, "tntttiti", w->id, w->step_index, fm_json_str(step, "id", "?"),
                  fm_json_str(step, "phase", "steps"), fm_json_str(step, "action", "?"),
                  wf_clock_ms(ctx), opt(state_before), (int64_t)getpid()) != FM_DB_DONE) {
        fm_store_fail(&ctx->store, err, "step insert");
        return -1;
    }
    return fm_db_last_insert_rowid(ctx->store.db);
}

int wf_step_end(fm_ctx *ctx, int64_t row, const char *status, const char *state_after,
                const char *output, const char *error, fm_err *err)
{
    return fm_db_run(ctx->store.db,
                     "UPDATE workflow_steps SET status=?, ended_ms=?, state_after=?,"
                     " output=?, error=? WHERE id=?",
                     NULL, NULL, "tittti", status, wf_clock_ms(ctx), opt(state_after), opt(output),
                     opt(error), row) == FM_DB_DONE
               ? 0
               : fm_store_fail(&ctx->store, err, "step update");
}

int64_t wf_step_deadline(fm_ctx *ctx, const wf_row *w, int64_t row, int64_t timeout_ms)
{
    /* The step's first row: its deadline, or (a row from before v2, or a
     * crash before the deadline was written) its start plus the timeout,
     * on the clock of the host that started it. */
    int64_t dl = 0;
    int rc = fm_db_run(ctx->store.db,
                       "SELECT COALESCE(deadline_ms, started_ms + ?) FROM workflow_steps WHERE"
                       " workflow_id=? AND step_index=? AND id<? ORDER BY id LIMIT 1",
                       fm_db_row_int64, &dl, "itni", timeout_ms, w->id, w->step_index, row);
    if (rc != FM_DB_ROW) dl = wf_clock_ms(ctx) + timeout_ms;
    /* Every row of the step carries it (workflow_get shows the latest). */
    fm_db_run(ctx->store.db, "UPDATE workflow_steps SET deadline_ms=? WHERE id=?", NULL, NULL, "ii",
              dl, row);
    return dl;
}

void wf_step_interrupt(fm_ctx *ctx, const char *wf, int index)
{
    fm_db_run(ctx->store.db,
              "UPDATE workflow_steps SET status='interrupted', ended_ms=?, error="
              "'the server running it died mid-step' WHERE workflow_id=? AND"
              " step_index=? AND status='started'",
              NULL, NULL, "itn", wf_clock_ms(ctx), wf, index);
}

void wf_set_error(fm_ctx *ctx, const char *wf, const char *error)
{
    fm_db_run(ctx->store.db, "UPDATE workflows SET error=? WHERE id=?", NULL, NULL, "tt",
              opt(error), wf);
}

void wf_step_last(fm_ctx *ctx, const char *wf, int index, char *status, size_t len)
{
    snprintf(status, len, "%s", "");
    fm_db_text_buf t = {status, len, 0};
    fm_db_run(ctx->store.db,
              "SELECT status FROM workflow_steps WHERE workflow_id=? AND step_index=?"
              " ORDER BY id DESC LIMIT 1",
              fm_db_row_text, &t, "tn", wf, index);
}

void wf_event(fm_ctx *ctx, const char *wf, const char *kind, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fm_db_run(ctx->store.db,
              "INSERT INTO workflow_events(workflow_id,ts_ms,kind,message) VALUES(?,?,?,?)", NULL,
              NULL, "titt", wf, wf_clock_ms(ctx), kind, msg);
}

void wf_live_on_node(fm_ctx *ctx, const char *node, const char *except, char *id, size_t len)
{
    snprintf(id, len, "%s", "");
    /* Even a dead owner's workflow holds the node until recovery resumes
     * or escalates it: two workflows never share a node. */
    fm_db_text_buf t = {id, len, 0};
    fm_db_run(ctx->store.db,
              "SELECT id, owner_pid, lease_until_ms FROM workflows WHERE node=? AND"
              " status IN ('running','waiting','monitoring') AND id<>?",
              fm_db_row_text, &t, "tt", node, except ? except : "");
}

void fm_workflow_live_on_node(fm_ctx *ctx, const char *node, const char *except, char *id,
                              size_t len)
{
    wf_live_on_node(ctx, node, except, id, len);
}

/* ---- reading ------------------------------------------------------------ */

static json_t *col_json_str(fm_db_stmt *s, int i)
{
    const unsigned char *v = fm_db_column_text(s, i);
    return v ? json_string((const char *)v) : json_null();
}

static json_t *iso(int64_t ms)
{
    if (ms <= 0) return json_null();
    char b[32];
    fm_iso_time(ms, b);
    return json_string(b);
}

/* steps_of's rows: each step appended to out, its error to errors. */
typedef struct {
    json_t *out, *errors;
} steps_acc;

static int step_row(fm_db_stmt *s, void *arg)
{
    steps_acc *a = arg;
    json_t *st =
        json_pack("{s:i, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "index", fm_db_column_int(s, 0),
                  "step", col_json_str(s, 1), "phase", col_json_str(s, 2), "action",
                  col_json_str(s, 3), "status", col_json_str(s, 4), "started",
                  iso(fm_db_column_int64(s, 5)), "ended", iso(fm_db_column_int64(s, 6)),
                  "state_before", col_json_str(s, 7), "state_after", col_json_str(s, 8));
    json_t *o = col_json_str(s, 9);
    if (json_is_string(o)) {
        json_t *parsed = json_loads(json_string_value(o), 0, NULL);
        json_object_set_new(st, "output", parsed ? parsed : json_incref(o));
    }
    json_decref(o);
    if (fm_db_column_type(s, 10) != FM_DB_NULL) {
        json_object_set_new(st, "error", col_json_str(s, 10));
        json_array_append_new(a->errors, json_pack("{s:o, s:o}", "step", col_json_str(s, 1),
                                                   "error", col_json_str(s, 10)));
    }
    json_array_append_new(a->out, st);
    return 0;
}

static json_t *steps_of(fm_ctx *ctx, const char *id, json_t *errors)
{
    steps_acc a = {json_array(), errors};
    fm_db_run(ctx->store.db,
              "SELECT step_index,step_id,phase,action,status,started_ms,ended_ms,"
              "state_before,state_after,output,error FROM workflow_steps WHERE"
              " workflow_id=? ORDER BY id LIMIT 200",
              step_row, &a, "t", id);
    return a.out;
}

static int event_row(fm_db_stmt *s, void *arg)
{
    json_array_append_new(arg,
                          json_pack("{s:o, s:o, s:o}", "ts", iso(fm_db_column_int64(s, 0)), "kind",
                                    col_json_str(s, 1), "message", col_json_str(s, 2)));
    return 0;
}

static json_t *events_of(fm_ctx *ctx, const char *id)
{
    json_t *out = json_array();
    /* The alias: PostgreSQL refuses a subquery in FROM without one. */
    fm_db_run(ctx->store.db,
              "SELECT ts_ms, kind, message FROM (SELECT * FROM workflow_events WHERE"
              " workflow_id=? ORDER BY id DESC LIMIT 50) AS e ORDER BY id",
              event_row, out, "t", id);
    return out;
}

/* What workflow_get shows of a monitor step's window (new), from the
 * state act_monitor keeps in vars.monitor; NULL if none. */
static json_t *monitor_of(const json_t *m, bool parked, int64_t due_ms)
{
    if (!json_is_object(m)) return NULL;
    json_t *out = json_pack(
        "{s:s, s:I, s:o, s:o, s:I, s:I, s:O}", "step", fm_json_str(m, "step", "?"), "window_s",
        json_integer_value(json_object_get(m, "window_s")), "window_started",
        iso(json_integer_value(json_object_get(m, "started_ms"))), "window_end",
        iso(json_integer_value(json_object_get(m, "window_end_ms"))), "samples",
        json_integer_value(json_object_get(m, "samples")), "bad_samples",
        json_integer_value(json_object_get(m, "bad")), "recent", json_object_get(m, "recent"));
    if (!out) return NULL;
    if (parked) json_object_set_new(out, "next_sample", iso(due_ms));
    const char *r = fm_json_str(m, "result", NULL);
    if (r) json_object_set_new(out, "result", json_string(r));
    return out;
}

int fm_workflow_open_for_plan(fm_ctx *ctx, const char *plan_id, char id_out[FM_WORKFLOW_ID_LEN])
{
    fm_db_text_buf t = {id_out, FM_WORKFLOW_ID_LEN, 0};
    return fm_db_run(
               ctx->store.db,
               "SELECT id FROM workflows WHERE plan_id=? AND status IN"
               " ('running','waiting','monitoring') ORDER BY started_ms DESC, id DESC LIMIT 1",
               fm_db_row_text, &t, "t", plan_id) == FM_DB_ROW
               ? 0
               : -1;
}

/* The owner of a "fleetmcp:OWNER: text" reason into out; false when the
 * reason has no such form. */
static bool drain_owner(const char *reason, char *out, size_t len)
{
    size_t pl = strlen(FM_SLURM_OWNED_PREFIX);
    if (!reason || strncmp(reason, FM_SLURM_OWNED_PREFIX, pl)) return false;
    const char *o = reason + pl;
    size_t n = strcspn(o, ":");
    if (n == 0 || n >= len || o[n] != ':') return false;
    memcpy(out, o, n);
    out[n] = '\0';
    return true;
}

/* wf_drain_owner's rows: a single-node tool's one-step workflow whose
 * call owns what it drains (content call_owner) is the owner. */
typedef struct {
    const char *owner;
    char *id_out;
} drain_owner_acc;

/* Column i as JSON (new), NULL when it is not JSON or NULL. */
static json_t *col_json(fm_db_stmt *s, int i)
{
    const char *text = (const char *)fm_db_column_text(s, i);
    return text ? json_loads(text, 0, NULL) : NULL;
}

static int tool_owner_row(fm_db_stmt *s, void *arg)
{
    const drain_owner_acc *d = arg;
    json_t *c = col_json(s, 0);
    bool mine = !strcmp(fm_json_str(c, "call_owner", ""), d->owner);
    json_decref(c);
    if (mine) col_copy(s, 1, d->id_out, FM_WORKFLOW_ID_LEN);
    return mine;
}

/* A tool that takes a node out of service by itself (drain, reboot,
 * reset), not the one that runs plans (its workflows own their drains by
 * their own ids): by the schema's flags, never by name. */
static bool single_node_taker(const char *tool)
{
    int i = fm_tool_index(tool ? tool : "");
    return i >= 0 && (fm_tool_table[i].flags & FM_TOOL_TAKES_CAPACITY) &&
           !(fm_tool_table[i].flags & FM_TOOL_RUNS_PLAN);
}

/* A drain made before single-node tools ran as workflows: an older build
 * wrote "fleetmcp:call-N:" (N its intent's audit row) or "fleetmcp:<plan
 * id>:" and left no workflow.  It is fleetmcp's when the audit row N is
 * that call (intent allowed, on this node, of a tool that takes a node
 * out of service), or the plan is one of such a call on this node whose
 * approval was used (executed): what fleetmcp did, not a reason's claim.
 * A failed read counts as not proven (someone else's). */
static bool legacy_tool_drain(fm_ctx *ctx, const char *node, const char *owner, long long call)
{
    fm_err e = {0};
    bool mine = false;
    if (call > 0) {
        json_t *q = json_pack("{s:I, s:i}", "before_id", (json_int_t)call + 1, "limit", 1);
        json_t *rows = q ? fm_audit_query(&ctx->store, q, &e) : NULL;
        const json_t *r = json_array_get(rows, 0);
        mine = json_integer_value(json_object_get(r, "id")) == call &&
               !strcmp(fm_json_str(r, "phase", ""), "intent") &&
               !strcmp(fm_json_str(r, "decision", ""), "allow") &&
               !strcmp(fm_json_str(r, "node", ""), node) &&
               single_node_taker(fm_json_str(r, "tool", NULL));
        json_decref(rows);
        json_decref(q);
    } else if (!strncmp(owner, "pl-", 3)) {
        json_t *plan = fm_plan_get(ctx, owner, &e);
        mine = plan && !strcmp(fm_json_str(plan, "status", ""), "executed") &&
               !strcmp(fm_json_str(json_object_get(plan, "args"), "node", ""), node) &&
               single_node_taker(fm_json_str(plan, "tool", NULL));
        json_decref(plan);
    }
    return mine;
}

int wf_drain_owner(fm_ctx *ctx, const char *node, const char *reason,
                   char id_out[FM_WORKFLOW_ID_LEN])
{
    char owner[FM_WORKFLOW_ID_LEN + 40];
    id_out[0] = '\0';
    if (!node || !drain_owner(reason, owner, sizeof owner)) return 0;
    if (fm_workflow_init(ctx, NULL)) return -1;
    /* A runbook's (or plan's) workflow owns its drains by its own id. */
    fm_db_text_buf t = {id_out, FM_WORKFLOW_ID_LEN, 0};
    int rc = fm_db_run(ctx->store.db, "SELECT id FROM workflows WHERE node=? AND id=?",
                       fm_db_row_text, &t, "tt", node, owner);
    if (rc != FM_DB_DONE) return rc == FM_DB_ROW ? 1 : -1;
    /* "<plan id>" or "call-N": a single-node tool's drain, owned by the
     * one-step workflow of that plan or call (audit row N, its call_ref)
     * on this node, never by another workflow that shares the number.
     * The newest: a plan's tool calls share its id. */
    char *end = NULL;
    long long call = -1;
    if (!strncmp(owner, "call-", 5) && owner[5] >= '0' && owner[5] <= '9') {
        call = strtoll(owner + 5, &end, 10);
        if (*end) call = -1;
    }
    drain_owner_acc d = {owner, id_out};
    rc = fm_db_run(ctx->store.db,
                   "SELECT content, id FROM workflows WHERE node=? AND (plan_id=? OR call_ref=?)"
                   " ORDER BY started_ms DESC, id DESC",
                   tool_owner_row, &d, "tti", node, owner, (int64_t)call);
    if (rc == FM_DB_DONE && legacy_tool_drain(ctx, node, owner, call)) return 1; /* no id */
    return rc == FM_DB_ROW ? 1 : rc == FM_DB_DONE ? 0 : -1;
}

int fm_workflow_owns_drain(fm_ctx *ctx, const char *node, const char *reason)
{
    char id[FM_WORKFLOW_ID_LEN];
    return wf_drain_owner(ctx, node, reason, id);
}

/* fm_workflow_dead_tool_run's rows: the first of this tool's one-step
 * workflows with these arguments whose owner is dead, into id_out. */
typedef struct {
    fm_ctx *ctx;
    const char *tool;
    const json_t *want;
    char *id_out;
} dead_run_acc;

static int dead_run_row(fm_db_stmt *s, void *arg)
{
    dead_run_acc *d = arg;
    json_t *c = col_json(s, 1);
    /* A tool's one-step workflow (call_owner) of this very tool, with
     * these very arguments: the call's approval covers what it names,
     * so a call for GPU 3 never finishes a dead reset of GPU 1. */
    bool mine = json_is_string(json_object_get(c, "call_owner")) &&
                !strcmp(fm_json_str(c, "tool", ""), d->tool) &&
                json_equal(json_object_get(c, "args"), d->want);
    json_decref(c);
    long long pid = fm_db_column_int64(s, 2);
    const unsigned char *h = fm_db_column_text(s, 4);
    if (h && strcmp((const char *)h, wf_host())) pid = -pid; /* only the lease says */
    if (mine && wf_owner_dead(d->ctx, pid, fm_db_column_int64(s, 3))) {
        col_copy(s, 0, d->id_out, FM_WORKFLOW_ID_LEN);
        return 1;
    }
    return 0;
}

int fm_workflow_dead_tool_run(fm_ctx *ctx, const char *tool, const json_t *args,
                              char id_out[FM_WORKFLOW_ID_LEN])
{
    id_out[0] = '\0';
    if (fm_workflow_init(ctx, NULL)) return -1;
    /* Content keeps the call's arguments without approval_id
     * (fm_plan_content): compare like with like. */
    json_t *want = json_deep_copy(args);
    json_object_del(want, "approval_id");
    dead_run_acc d = {ctx, tool, want, id_out};
    fm_db_run(ctx->store.db,
              "SELECT id, content, owner_pid, lease_until_ms, owner_host FROM"
              " workflows WHERE node=? AND status IN ('running','waiting')"
              " ORDER BY started_ms DESC, id DESC LIMIT 8",
              dead_run_row, &d, "t", fm_json_str(args, "node", ""));
    json_decref(want);
    return id_out[0] ? 0 : -1;
}

/* fm_workflow_get's row as workflow_get's answer, its steps and events
 * read from inside (arg: struct with ctx and the json_t * out, new). */
typedef struct {
    fm_ctx *ctx;
    json_t *out;
} wf_get_acc;

static int wf_get_row(fm_db_stmt *s, void *arg)
{
    wf_get_acc *g = arg;
    long long pid = fm_db_column_int64(s, 8);
    int64_t lease = fm_db_column_int64(s, 9);
    const unsigned char *h = fm_db_column_text(s, 16);
    bool here = h && !strcmp((const char *)h, wf_host());
    bool alive = lease >= wf_clock_ms(g->ctx) && (!here || wf_pid_alive(pid));
    json_t *errors = json_array();
    json_t *out = json_pack(
        "{s:o, s:o, s:o, s:o, s:o, s:I, s:o, s:o, s:i, s:b, s:{s:I, s:b, s:o},"
        " s:o, s:o, s:o}",
        "workflow_id", col_json_str(s, 0), "plan_id", col_json_str(s, 1), "node",
        col_json_str(s, 2), "fault_class", col_json_str(s, 3), "runbook", col_json_str(s, 4),
        "runbook_version", (json_int_t)fm_db_column_int64(s, 5), "status", col_json_str(s, 6),
        "current_step", col_json_str(s, 7), "step_index", fm_db_column_int(s, 14), "failing",
        fm_db_column_int(s, 15) != 0, "owner", "pid", (json_int_t)pid, "alive", alive,
        "lease_until", iso(lease), "started", iso(fm_db_column_int64(s, 10)), "updated",
        iso(fm_db_column_int64(s, 11)), "approval_id", col_json_str(s, 13));
    char wid[FM_WORKFLOW_ID_LEN];
    col_copy(s, 0, wid, sizeof wid);
    json_t *vars = json_loads((const char *)fm_db_column_text(s, 17), 0, NULL);
    json_t *mon = monitor_of(json_object_get(vars, "monitor"),
                             !strcmp(fm_json_str(out, "status", ""), "monitoring"), lease);
    if (mon) json_object_set_new(out, "monitor", mon);
    json_decref(vars);
    json_object_set_new(out, "steps", steps_of(g->ctx, wid, errors));
    json_object_set_new(out, "events", events_of(g->ctx, wid));
    if (fm_db_column_type(s, 12) != FM_DB_NULL)
        json_array_append_new(
            errors, json_pack("{s:s, s:o}", "step", "workflow", "error", col_json_str(s, 12)));
    json_object_set_new(out, "errors", errors);
    g->out = out;
    return 1;
}

json_t *fm_workflow_get(fm_ctx *ctx, const char *id, fm_err *err)
{
    if (fm_workflow_init(ctx, err)) return NULL;
    wf_get_acc g = {ctx, NULL};
    int rc = fm_db_run(ctx->store.db,
                       "SELECT id,plan_id,node,fault_class,runbook,runbook_version,status,"
                       "current_step,owner_pid,lease_until_ms,started_ms,updated_ms,error,"
                       "approval_id,step_index,failing,owner_host,vars FROM workflows WHERE id=?",
                       wf_get_row, &g, "t", id);
    if (rc != FM_DB_ROW && rc != FM_DB_DONE) {
        fm_store_fail(&ctx->store, err, "workflow read");
        return NULL;
    }
    if (!g.out) {
        char c[64];
        fm_clip(c, sizeof c, id);
        fm_err_set(err, FM_ERR_NOT_FOUND, "no workflow %s (ids look like wf-0123456789abcdef)", c);
    }
    return g.out;
}

/* ---- reads for the engine's recovery and status summary ---- */

static int id_row(fm_db_stmt *row, void *arg)
{
    json_array_append_new(arg, json_string((const char *)fm_db_column_text(row, 0)));
    return 0;
}

json_t *wf_ids_unfinished(fm_ctx *ctx)
{
    json_t *ids = json_array();
    fm_db_run(ctx->store.db, "SELECT id FROM workflows WHERE status IN ('running','waiting')",
              id_row, ids, "");
    return ids;
}

json_t *wf_ids_due(fm_ctx *ctx, int limit)
{
    json_t *ids = json_array();
    fm_db_run(ctx->store.db,
              "SELECT id FROM workflows WHERE status='monitoring' AND"
              " (lease_until_ms<=? OR owner_pid<>0) ORDER BY lease_until_ms, id LIMIT ?",
              id_row, ids, "in", wf_clock_ms(ctx), limit);
    return ids;
}

typedef struct {
    wf_live_fn fn;
    void *arg;
} live_acc;

static int live_row(fm_db_stmt *row, void *arg)
{
    live_acc *a = arg;
    a->fn((const char *)fm_db_column_text(row, 0), (const char *)fm_db_column_text(row, 1),
          fm_db_column_int64(row, 2), fm_db_column_int64(row, 3),
          (const char *)fm_db_column_text(row, 4), (const char *)fm_db_column_text(row, 5), a->arg);
    return 0;
}

void wf_each_unfinished(fm_ctx *ctx, wf_live_fn fn, void *arg)
{
    live_acc a = {fn, arg};
    fm_db_run(ctx->store.db,
              "SELECT id, node, owner_pid, lease_until_ms, status, owner_host"
              " FROM workflows WHERE status IN ('running','waiting','monitoring')",
              live_row, &a, "");
}

json_t *wf_status_counts(fm_ctx *ctx)
{
    json_t *by = json_object();
    fm_db_run(ctx->store.db, "SELECT status, count(*) FROM workflows GROUP BY status",
              fm_store_row_count_by, by, "");
    return by;
}

static int failure_row(fm_db_stmt *row, void *arg)
{
    char ts[32];
    fm_iso_time(fm_db_column_int64(row, 4), ts);
    const unsigned char *e = fm_db_column_text(row, 3);
    json_array_append_new(arg, json_pack("{s:s, s:s, s:s, s:s, s:s}", "workflow_id",
                                         (const char *)fm_db_column_text(row, 0), "node",
                                         (const char *)fm_db_column_text(row, 1), "status",
                                         (const char *)fm_db_column_text(row, 2), "error",
                                         e ? (const char *)e : "", "updated", ts));
    return 0;
}

json_t *wf_recent_failures(fm_ctx *ctx)
{
    json_t *fails = json_array();
    fm_db_run(ctx->store.db,
              "SELECT id, node, status, error, updated_ms FROM workflows WHERE status"
              " IN ('failed','escalated') ORDER BY updated_ms DESC LIMIT 10",
              failure_row, fails, "");
    return fails;
}

/* ---- fleet metrics (fm_workflow_stats_since) ---- */

typedef struct {
    double v;
    bool null;
} real_cell;

static int real_row(fm_db_stmt *row, void *arg)
{
    real_cell *c = arg;
    if (fm_db_column_type(row, 0) != FM_DB_NULL) {
        c->v = fm_db_column_double(row, 0);
        c->null = false;
    }
    return 1;
}

static double real_since(fm_ctx *ctx, const char *sql, int64_t since, bool *null)
{
    real_cell c = {0, true};
    fm_db_run(ctx->store.db, sql, real_row, &c, "i", since);
    if (null) *null = c.null;
    return c.v;
}

static int repeat_row(fm_db_stmt *row, void *arg)
{
    json_array_append_new(arg, json_pack("{s:s, s:I}", "node", fm_db_column_text(row, 0),
                                         "workflows", fm_db_column_int64(row, 1)));
    return 0;
}

void fm_workflow_stats_since(fm_ctx *ctx, int64_t since, fm_workflow_stats *out)
{
    out->done = real_since(ctx,
                           "SELECT count(*) FROM workflows WHERE status='done' AND"
                           " started_ms>=?1",
                           since, NULL);
    out->failed = real_since(ctx,
                             "SELECT count(*) FROM workflows WHERE status IN"
                             " ('failed','escalated') AND started_ms>=?1",
                             since, NULL);
    out->mean_s = real_since(ctx,
                             "SELECT avg(updated_ms-started_ms)/1000.0 FROM workflows WHERE"
                             " status='done' AND started_ms>=?1",
                             since, &out->mean_null);
    /* Done, yet no step that repairs anything ran: the node was fine. */
    out->false_positive =
        real_since(ctx,
                   "SELECT count(*) FROM workflows w WHERE w.status='done' AND w.started_ms>=?1"
                   " AND NOT EXISTS (SELECT 1 FROM workflow_steps s WHERE s.workflow_id=w.id AND"
                   " s.status='done' AND s.action IN ('reboot','gpu_reset','cancel_jobs',"
                   "'requeue_jobs'))",
                   since, NULL);
    out->repeat_nodes = json_array();
    fm_db_run(ctx->store.db,
              "SELECT node, count(*) n FROM workflows WHERE started_ms>=? GROUP"
              " BY node HAVING n>=2 ORDER BY n DESC, node LIMIT 20",
              repeat_row, out->repeat_nodes, "i", since);
}
