/* Repeat offenders: a node repaired max_repairs times within the window
 * (guardrails.repeat_offenders; NVSentinel's rule is "more than once in 7
 * days") needs a human, not another repair.  The repair that reaches the
 * count escalates it with a ticket; from then on the repeat_offender
 * verdict refuses every action that takes the node, until a human clears
 * it with guardrail_reset (an approval).  Repairs before the clear no
 * longer count.  The retry budget differs: it is per fault class and
 * forgets by itself when its window passes. */
#include <stdio.h>
#include <string.h>

#include "fleetmcp/fm_guardrails.h"
#include "fleetmcp/fm_policy.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_tickets.h"
#include "fleetmcp/fm_util.h"

static const char ddl[] =
    "CREATE TABLE IF NOT EXISTS repeat_offenders(node TEXT PRIMARY KEY, repairs INTEGER NOT"
    " NULL, since_ms INTEGER NOT NULL, ticket TEXT, cleared_ms INTEGER, cleared_by TEXT);";
static const char get_sql[] =
    "SELECT repairs, since_ms, ticket, cleared_ms FROM repeat_offenders WHERE node=?";
static const char put_sql[] =
    "INSERT INTO repeat_offenders(node,repairs,since_ms,ticket) VALUES(?1,?2,?3,?4)"
    " ON CONFLICT(node) DO UPDATE SET repairs=?2, since_ms=?3, ticket=?4, cleared_ms=NULL,"
    " cleared_by=NULL";
static const char clear_sql[] =
    "UPDATE repeat_offenders SET cleared_ms=?, cleared_by=? WHERE node=? AND cleared_ms IS NULL";
static const char list_sql[] =
    "SELECT node, repairs, since_ms, ticket FROM repeat_offenders WHERE cleared_ms IS NULL"
    " ORDER BY node LIMIT 100";

#define CLEAR_FIX                                                                          \
    "a human looks at the node (its hardware may need replacing), then clears it:"        \
    " mcp-cli call guardrail_reset guardrail=repeat_offender node=NODE reason=... (it"     \
    " needs an approval)"

int fm_offender_init(fm_ctx *ctx, fm_err *err)
{
    return fm_store_migrate(&ctx->store, "offenders", 1, ddl, err);
}

typedef struct {
    long long max, window_s;
} oconf;

static oconf conf(fm_ctx *ctx)
{
    const json_t *c =
        json_object_get(fm_config_section(&ctx->cfg, "guardrails"), "repeat_offenders");
    return (oconf){fm_cfg_int(c, "max_repairs", 3), fm_cfg_int(c, "window_s", 604800)};
}

typedef struct {
    bool row, active;
    long long repairs;
    char ticket[64];
    int64_t cleared_ms;
} orow;

static orow get(fm_ctx *ctx, const char *node)
{
    orow r = {0};
    fm_db_stmt *s = fm_store_stmt(&ctx->store, get_sql, NULL);
    if (!s) return r;
    fm_db_bind_text(s, 1, node, -1, FM_DB_STATIC);
    if (fm_db_step(s) == FM_DB_ROW) {
        r.row = true;
        r.repairs = fm_db_column_int64(s, 0);
        const unsigned char *t = fm_db_column_text(s, 2);
        snprintf(r.ticket, sizeof r.ticket, "%s", t ? (const char *)t : "");
        r.active = fm_db_column_type(s, 3) == FM_DB_NULL;
        r.cleared_ms = r.active ? 0 : fm_db_column_int64(s, 3);
    }
    fm_db_reset(s);
    return r;
}

/* Repairs that count now: in the window and after the last clear. */
static long long counted(fm_ctx *ctx, const char *node, const oconf *c, const orow *r)
{
    int64_t since = fm_now_ms() - c->window_s * 1000;
    if (r->cleared_ms > since) since = r->cleared_ms;
    return fm_guard_repairs_since(ctx, node, since);
}

static void put(fm_ctx *ctx, const char *node, long long repairs, const char *ticket)
{
    fm_db_stmt *s = fm_store_stmt(&ctx->store, put_sql, NULL);
    if (!s) return;
    fm_db_bind_text(s, 1, node, -1, FM_DB_STATIC);
    fm_db_bind_int64(s, 2, repairs);
    fm_db_bind_int64(s, 3, fm_now_ms());
    if (ticket && *ticket) fm_db_bind_text(s, 4, ticket, -1, FM_DB_STATIC);
    if (fm_db_step(s) != FM_DB_DONE)
        fm_log("error", "repeat offender %s: recording failed: %s", node,
               fm_db_errmsg(ctx->store.db));
    fm_db_reset(s);
}

void fm_offender_note(fm_ctx *ctx, const char *node)
{
    oconf c = conf(ctx);
    orow r = get(ctx, node);
    long long n = counted(ctx, node, &c, &r);
    if (n < c.max) return;
    if (r.active) {
        put(ctx, node, n, r.ticket);
        return;
    }
    char key[64] = "";
    if (ctx->be.tickets) {
        char summary[200];
        snprintf(summary, sizeof summary,
                 "%s repaired %lld times in %lld s: automation stopped, needs a human", node, n,
                 c.window_s);
        json_t *ev = json_pack("{s:I, s:I, s:I}", "repairs", (json_int_t)n, "max_repairs",
                               (json_int_t)c.max, "window_s", (json_int_t)c.window_s);
        fm_err err = {0};
        json_t *t = fm_ticket_escalate(ctx, node, "repeat_offender", summary, ev, NULL, &err);
        if (t)
            snprintf(key, sizeof key, "%s", fm_json_str(t, "key", ""));
        else
            fm_log("error", "repeat offender %s: the ticket failed: %s", node, err.text);
        json_decref(t);
        json_decref(ev);
    }
    put(ctx, node, n, key);
    fm_log("warning", "repeat offender %s: %lld repairs in %lld s; escalated%s%s", node, n,
           c.window_s, key[0] ? " with ticket " : " (no tickets backend, so no ticket)", key);
}

void fm_offender_check(fm_ctx *ctx, const char *node, json_t *verdicts)
{
    oconf c = conf(ctx);
    orow r = get(ctx, node);
    long long n = counted(ctx, node, &c, &r);
    if (r.active || n >= c.max) {
        fm_guard_add(verdicts, "repeat_offender", false, CLEAR_FIX,
                     "%s was repaired %lld times within %lld s (limit %lld) and is escalated to"
                     " a human%s%s; automation does not repair it until a human clears it",
                     node, r.active && r.repairs > n ? r.repairs : n, c.window_s, c.max,
                     r.ticket[0] ? ", ticket " : "", r.ticket);
        return;
    }
    fm_guard_add(verdicts, "repeat_offender", true, NULL,
                 "%s: %lld of %lld repairs within %lld s", node, n, c.max, c.window_s);
}

int fm_offender_clear(fm_ctx *ctx, const char *node, const char *by, fm_err *err)
{
    fm_db_stmt *s = fm_store_stmt(&ctx->store, clear_sql, err);
    if (!s) return -1;
    fm_db_bind_int64(s, 1, fm_now_ms());
    fm_db_bind_text(s, 2, by, -1, FM_DB_STATIC);
    fm_db_bind_text(s, 3, node, -1, FM_DB_STATIC);
    int rc = fm_db_step(s);
    fm_db_reset(s);
    if (rc != FM_DB_DONE) return fm_store_fail(&ctx->store, err, "repeat offender");
    if (fm_db_changes(ctx->store.db) == 0)
        return fm_err_set(err, FM_ERR_NOT_FOUND,
                          "%s is not an escalated repeat offender; fleet_status lists those",
                          node);
    return 0;
}

json_t *fm_offender_list(fm_ctx *ctx)
{
    json_t *out = json_array();
    fm_db_stmt *s = fm_store_stmt(&ctx->store, list_sql, NULL);
    if (!s) return out;
    while (fm_db_step(s) == FM_DB_ROW) {
        char since[32];
        fm_iso_time(fm_db_column_int64(s, 2), since);
        json_t *o = json_pack("{s:s, s:I, s:s}", "node", fm_db_column_text(s, 0), "repairs",
                              fm_db_column_int64(s, 1), "since", since);
        if (fm_db_column_type(s, 3) != FM_DB_NULL)
            json_object_set_new(o, "ticket", json_string((const char *)fm_db_column_text(s, 3)));
        json_array_append_new(out, o);
    }
    fm_db_reset(s);
    return out;
}
