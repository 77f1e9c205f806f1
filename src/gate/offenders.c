/* Repeat offenders: a node repaired max_repairs times within the window
 * (guardrails.repeat_offenders; NVSentinel's rule is "more than once in 7
 * days") needs a human, not another repair.  The repair that reaches the
 * count escalates it with a ticket; from then on the repeat_offender
 * verdict refuses every action that takes the node, until a human clears
 * it with guardrail_reset (an approval).  Repairs before the clear no
 * longer count.  The retry budget differs: it is per fault class and
 * forgets by itself when its window passes. */
/* Data access: this file owns the table repeat_offenders; every statement on
 * it is here, others call its functions (the data-access stage checks). */
#include <stdio.h>
#include <string.h>

#include "fleetmcp/fm_guardrails.h"
#include "fleetmcp/fm_policy.h"
#include "fleetmcp/fm_runbook.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_tickets.h"
#include "fleetmcp/fm_util.h"
#include "fm_actions.gen.h"

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

#define CLEAR_FIX                                                                                  \
    "a human looks at the node (its hardware may need replacing), then clears it:"                 \
    " mcp-cli call guardrail_reset guardrail=repeat_offender node=NODE reason=... (it"             \
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

static int get_row(fm_db_stmt *s, void *arg)
{
    orow *r = arg;
    r->row = true;
    r->repairs = fm_db_column_int64(s, 0);
    const unsigned char *t = fm_db_column_text(s, 2);
    snprintf(r->ticket, sizeof r->ticket, "%s", t ? (const char *)t : "");
    r->active = fm_db_column_type(s, 3) == FM_DB_NULL;
    r->cleared_ms = r->active ? 0 : fm_db_column_int64(s, 3);
    return 1;
}

static orow get(fm_ctx *ctx, const char *node)
{
    orow r = {0};
    fm_db_run(ctx->store.db, get_sql, get_row, &r, "t", node);
    return r;
}

/* Repairs that count now: in the window and after the last clear. */
static long long counted(fm_ctx *ctx, const char *node, const oconf *c, const orow *r)
{
    /* The store's clock, as attempts and clears are stamped. */
    int64_t since = fm_store_now_ms(&ctx->store) - c->window_s * 1000;
    if (r->cleared_ms > since) since = r->cleared_ms;
    return fm_node_state_attempts(ctx, node, NULL, since);
}

static void put(fm_ctx *ctx, const char *node, long long repairs, const char *ticket)
{
    if (fm_db_run(ctx->store.db, put_sql, NULL, NULL, "tiit", node, (int64_t)repairs,
                  fm_store_now_ms(&ctx->store), ticket && *ticket ? ticket : NULL) != FM_DB_DONE)
        fm_log("error", "repeat offender %s: recording failed: %s", node,
               fm_db_errmsg(ctx->store.db));
}

/* The tool that files an escalation's ticket: the escalate action's
 * (schemas/actions, calls.ticket), found by its executor, not by a name. */
static const char *ticket_tool(void)
{
    for (size_t i = 0; i < fm_action_count; i++)
        if (fm_action_table[i].exec == fm_act_escalate) return fm_action_table[i].ticket.tool;
    return NULL;
}

/* The ticket goes through the whole call pipeline as the session whose
 * call made the repair: schema, every gate step (scope over HTTP, kill
 * switch, ticket_create's hourly limit), audit rows under the ticket
 * tool's name.  A refusal is audited there and logged; the node is
 * blocked by the repeat_offender verdict whether or not a ticket came.
 * Writes the ticket's key to key, or "". */
static void escalate(fm_ctx *ctx, const char *node, long long n, const oconf *c, char *key,
                     size_t keylen)
{
    key[0] = '\0';
    const char *tool = ticket_tool();
    char summary[200], line[120], why[200];
    snprintf(summary, sizeof summary,
             "%s repaired %lld times in %lld s: automation stopped, needs a human", node, n,
             c->window_s);
    snprintf(line, sizeof line, "repairs: %lld in %lld s (max_repairs %lld)", n, c->window_s,
             c->max);
    const fm_call *by = ctx->current;
    if (by && by->tool)
        snprintf(why, sizeof why,
                 "repeat offender escalation, filed by the gate for %s (audit"
                 " row %lld)",
                 by->tool->name, (long long)by->audit_id);
    else
        snprintf(why, sizeof why, "repeat offender escalation, filed by the gate");
    json_t *args =
        json_pack("{s:o, s:s, s:s, s:s, s:[s]}", "summary", fm_ticket_summary(summary), "node",
                  node, "fault_class", "repeat_offender", "severity", "high", "evidence", line);
    fm_err err = {0};
    json_t *t = tool ? fm_tools_call_audited(ctx, tool, args, why, &err) : NULL;
    if (!tool) fm_err_set(&err, FM_ERR_INTERNAL, "no action names a ticket tool; please report");
    if (t)
        snprintf(key, keylen, "%s", fm_json_str(t, "key", ""));
    else
        fm_log("error",
               "repeat offender %s: the ticket was not filed: %s: %s (the refusal is in"
               " the audit log; file one by hand)",
               node, fm_strerror(err.code), err.text);
    json_decref(t);
    json_decref(args);
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
    if (ctx->be.tickets) escalate(ctx, node, n, &c, key, sizeof key);
    put(ctx, node, n, key);
    fm_log("warning", "repeat offender %s: %lld repairs in %lld s; escalated%s%s", node, n,
           c.window_s,
           key[0]            ? " with ticket "
           : ctx->be.tickets ? " without a ticket (refused or failed, see above)"
                             : " (no tickets backend, so no ticket)",
           key);
}

void fm_offender_check(fm_ctx *ctx, const char *node, json_t *verdicts)
{
    oconf c = conf(ctx);
    orow r = get(ctx, node);
    long long n = counted(ctx, node, &c, &r);
    if (n < 0) {
        fm_guard_add(verdicts, "repeat_offender", false, "call again once the store answers",
                     "%s: its repairs cannot be counted (%s), so it counts as a repeat offender",
                     node, fm_db_errmsg(ctx->store.db));
        return;
    }
    if (r.active || n >= c.max) {
        fm_guard_add(verdicts, "repeat_offender", false, CLEAR_FIX,
                     "%s was repaired %lld times within %lld s (limit %lld) and is escalated to"
                     " a human%s%s; automation does not repair it until a human clears it",
                     node, r.active && r.repairs > n ? r.repairs : n, c.window_s, c.max,
                     r.ticket[0] ? ", ticket " : "", r.ticket);
        return;
    }
    fm_guard_add(verdicts, "repeat_offender", true, NULL, "%s: %lld of %lld repairs within %lld s",
                 node, n, c.max, c.window_s);
}

int fm_offender_clear(fm_ctx *ctx, const char *node, const char *by, fm_err *err)
{
    int rc = fm_db_run(ctx->store.db, clear_sql, NULL, NULL, "itt", fm_store_now_ms(&ctx->store),
                       by, node);
    if (rc != FM_DB_DONE) return fm_store_fail(&ctx->store, err, "repeat offender");
    if (fm_db_changes(ctx->store.db) == 0)
        return fm_err_set(err, FM_ERR_NOT_FOUND,
                          "%s is not an escalated repeat offender; fleet_status lists those", node);
    return 0;
}

static int list_row(fm_db_stmt *s, void *arg)
{
    char since[32];
    fm_iso_time(fm_db_column_int64(s, 2), since);
    json_t *o = json_pack("{s:s, s:I, s:s}", "node", fm_db_column_text(s, 0), "repairs",
                          fm_db_column_int64(s, 1), "since", since);
    if (fm_db_column_type(s, 3) != FM_DB_NULL)
        json_object_set_new(o, "ticket", json_string((const char *)fm_db_column_text(s, 3)));
    json_array_append_new(arg, o);
    return 0;
}

json_t *fm_offender_list(fm_ctx *ctx)
{
    json_t *out = json_array();
    fm_db_run(ctx->store.db, list_sql, list_row, out, "");
    return out;
}
