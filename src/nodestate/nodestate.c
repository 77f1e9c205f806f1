/* Node remediation state: the tables node_states and node_attempts and
 * every statement on them (see fm_nodestate.h).  Moved out of the gate
 * (src/gate/guardrails.c) unchanged: the same statements, in the caller's
 * transactions; the gate keeps the decisions. */
#include "fleetmcp/fm_nodestate.h"

#include <stdio.h>
#include <string.h>

#include "fleetmcp/fm_policy.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_util.h"

static const char fleet_ddl[] =
    "CREATE TABLE IF NOT EXISTS node_states(node TEXT PRIMARY KEY, state TEXT NOT NULL,"
    " fault_class TEXT, workflow_id TEXT, rack TEXT, sku TEXT, partition TEXT,"
    " since_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS node_states_state ON node_states(state);"
    "CREATE TABLE IF NOT EXISTS node_attempts(node TEXT NOT NULL, fault_class TEXT NOT NULL,"
    " ts_ms INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS node_attempts_key ON node_attempts(node, fault_class, ts_ms);";

/* States that hold a node out of the pool for the blast radius. */
#define IN_REMEDIATION "('quarantined','repairing','validating')"

int fm_node_state_init(fm_ctx *ctx, fm_err *err)
{
    return fm_store_migrate(&ctx->store, "fleet", 1, fleet_ddl, err);
}

int fm_node_state_get(fm_ctx *ctx, const char *node, char *buf, size_t len)
{
    static const char sql[] = "SELECT state FROM node_states WHERE node=?";
    snprintf(buf, len, "healthy");
    fm_db_text_buf out = {buf, len, 0};
    int rc = fm_db_run(ctx->store.db, sql, fm_db_row_text, &out, "t", node);
    if (rc == FM_DB_ROW || rc == FM_DB_DONE) return 0;
    /* A failed read is not a healthy node: the runbook's node_states
     * precondition would pass on it. */
    snprintf(buf, len, "unknown");
    return -1;
}

json_t *fm_node_state_counts(fm_ctx *ctx)
{
    json_t *out = json_object();
    fm_db_run(ctx->store.db, "SELECT state, count(*) FROM node_states GROUP BY state",
              fm_store_row_count_by, out, "");
    return out;
}

typedef struct {
    const json_t *except;
    json_t *out;
} busy_acc;

static int busy_row(fm_db_stmt *row, void *arg)
{
    static const char *const cols[] = {"rack", "sku", "partition"};
    busy_acc *a = arg;
    const char *node = (const char *)fm_db_column_text(row, 0);
    size_t k;
    json_t *e;
    json_array_foreach(a->except, k, e) if (node && json_is_string(e) &&
                                            !strcmp(json_string_value(e), node)) return 0;
    for (int i = 0; i < 3; i++) {
        const unsigned char *v = fm_db_column_text(row, i + 1);
        if (!v) continue;
        char key[160];
        snprintf(key, sizeof key, "%s=%s", cols[i], (const char *)v);
        json_object_set_new(a->out, key,
                            json_integer(json_integer_value(json_object_get(a->out, key)) + 1));
    }
    return 0;
}

json_t *fm_node_state_domain_busy(fm_ctx *ctx, const json_t *except)
{
    busy_acc a = {except, json_object()};
    fm_db_run(ctx->store.db,
              "SELECT node, rack, sku, partition FROM node_states WHERE state IN " IN_REMEDIATION,
              busy_row, &a, "");
    return a.out;
}

long long fm_node_state_in_domain(fm_ctx *ctx, const char *column, const char *value,
                                  const char *node)
{
    /* One literal per column: the column is never pasted into SQL, and
     * each statement is kept prepared. */
    static const char *const sql[] = {
        "SELECT count(*) FROM node_states WHERE rack=? AND node<>? AND state IN " IN_REMEDIATION,
        "SELECT count(*) FROM node_states WHERE sku=? AND node<>? AND state IN " IN_REMEDIATION,
        "SELECT count(*) FROM node_states WHERE partition=? AND node<>? AND state "
        "IN " IN_REMEDIATION,
    };
    static const char *const cols[] = {"rack", "sku", "partition"};
    for (int i = 0; i < 3; i++) {
        if (strcmp(column, cols[i])) continue;
        return fm_db_count(ctx->store.db, sql[i], "tt", value, node);
    }
    return 0;
}

long long fm_node_state_attempts(fm_ctx *ctx, const char *node, const char *fault_class,
                                 int64_t since_ms)
{
    return fault_class ? fm_db_count(ctx->store.db,
                                     "SELECT count(*) FROM node_attempts WHERE node=? AND"
                                     " fault_class=? AND ts_ms>=?",
                                     "tti", node, fault_class, since_ms)
                       : fm_db_count(ctx->store.db,
                                     "SELECT count(*) FROM node_attempts WHERE node=? AND ts_ms>=?",
                                     "ti", node, since_ms);
}

long long fm_node_state_nodes_repaired(fm_ctx *ctx, int64_t since_ms)
{
    int64_t n = 0;
    fm_db_run(ctx->store.db, "SELECT count(DISTINCT node) FROM node_attempts WHERE ts_ms>=?1",
              fm_db_row_int64, &n, "i", since_ms);
    return n;
}

typedef struct {
    void (*fn)(const char *node, void *arg);
    void *arg;
} each_acc;

static int each_row(fm_db_stmt *row, void *arg)
{
    each_acc *a = arg;
    a->fn((const char *)fm_db_column_text(row, 0), a->arg);
    return 0;
}

void fm_node_state_each_attempted(fm_ctx *ctx, int64_t since_ms,
                                  void (*fn)(const char *node, void *arg), void *arg)
{
    each_acc a = {fn, arg};
    fm_db_run(ctx->store.db, "SELECT DISTINCT node FROM node_attempts WHERE ts_ms>=?1", each_row,
              &a, "i", since_ms);
}

void fm_node_state_each_prefixed(fm_ctx *ctx, const char *prefix,
                                 void (*fn)(const char *node, void *arg), void *arg)
{
    /* The range scan on the primary key: cheap on a large fleet. */
    each_acc a = {fn, arg};
    fm_db_run(ctx->store.db,
              "SELECT node FROM node_states WHERE node >= ?1 AND node < ?1 || x'F48FBFBF'"
              " ORDER BY node LIMIT 100",
              each_row, &a, "t", prefix);
}

int fm_node_state_upsert(fm_ctx *ctx, const char *node, const char *state, const char *fc,
                         const char *wf, const json_t *domains, fm_err *err)
{
    int rc = fm_db_run(
        ctx->store.db,
        "INSERT INTO node_states(node,state,fault_class,workflow_id,rack,sku,partition,"
        "since_ms,updated_ms) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?8) ON CONFLICT(node) DO UPDATE"
        /* Qualified: PostgreSQL finds a bare column ambiguous beside excluded. */
        " SET state=?2, fault_class=coalesce(?3,node_states.fault_class),"
        " workflow_id=coalesce(?4,node_states.workflow_id), rack=coalesce(?5,node_states.rack),"
        " sku=coalesce(?6,node_states.sku), partition=coalesce(?7,node_states.partition),"
        " since_ms=CASE WHEN node_states.state=?2 THEN node_states.since_ms ELSE ?8 END,"
        " updated_ms=?8",
        NULL, NULL, "ttttttti", node, state, fc, wf, fm_json_str(domains, "rack", NULL),
        fm_json_str(domains, "sku", NULL), fm_json_str(domains, "partition", NULL),
        fm_store_now_ms(&ctx->store));
    return rc == FM_DB_DONE ? 0 : fm_store_fail(&ctx->store, err, "node state");
}

/* Stamps (since_ms, updated_ms, attempts' ts_ms) are on the store's clock
 * (fm_store_now_ms): the windows that count them (retry budget, repeat
 * offenders) are judged by other hosts whose clocks differ. */
int fm_node_state_set(fm_ctx *ctx, const char *node, const char *state, const char *workflow_id,
                      fm_err *err)
{
    if (fm_node_state_upsert(ctx, node, state, NULL, workflow_id, NULL, err)) return -1;
    if (strcmp(state, "repairing")) return 0;
    int rc = fm_db_run(ctx->store.db,
                       "INSERT INTO node_attempts(node,fault_class,ts_ms) SELECT node,"
                       " coalesce(fault_class,'unknown'), ? FROM node_states WHERE node=?",
                       NULL, NULL, "it", fm_store_now_ms(&ctx->store), node);
    if (rc != FM_DB_DONE) return fm_store_fail(&ctx->store, err, "node attempt");
    /* The repeat-offender rule counts this attempt (src/gate/offenders.c). */
    fm_offender_note(ctx, node);
    return 0;
}
