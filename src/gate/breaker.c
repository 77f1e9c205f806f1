/* Circuit breaker (NVSentinel's fault-quarantine breaker): when fleetmcp
 * has drained more than a configured share of the fleet or of one
 * partition within a sliding window, something is wrong with the
 * diagnosis or the fleet, not with that many nodes.  The breaker trips and
 * no drain runs until a human resets it (guardrail_reset, an approval).
 *
 * Every drain fleetmcp makes enters remediation through fm_guard_reserve,
 * which records it here in the same transaction: auto_drains holds one row
 * per drained node and partition.  The trip is a store setting, so every
 * server sharing the store sees it. */
/* Data access: this file owns the table auto_drains; every statement on
 * it is here, others call its functions (the data-access stage checks). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleetmcp/fm_guardrails.h"
#include "fleetmcp/fm_policy.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_slurm.h"
#include "fleetmcp/fm_util.h"

static const char ddl[] =
    "CREATE TABLE IF NOT EXISTS auto_drains(node TEXT NOT NULL, partition TEXT NOT NULL,"
    " ts_ms INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS auto_drains_ts ON auto_drains(ts_ms, partition);";
static const char fleet_sql[] =
    "SELECT count(DISTINCT node) FROM auto_drains WHERE ts_ms>=? AND node<>?";
static const char part_sql[] =
    "SELECT count(DISTINCT node) FROM auto_drains WHERE ts_ms>=? AND node<>? AND partition=?";
#define UNREAD_FIX "call again once the store answers (the server's log says why it did not)"
static const char insert_sql[] = "INSERT INTO auto_drains(node,partition,ts_ms) VALUES(?,?,?)";

#define TRIP_KEY "circuit_breaker"
#define RESET_KEY "circuit_breaker_reset_ms"
#define RESET_FIX                                                                                  \
    "a human finds out why so many nodes were drained, then resets the breaker:"                   \
    " mcp-cli call guardrail_reset guardrail=circuit_breaker reason=... (it needs an"              \
    " approval)"

int fm_breaker_init(fm_ctx *ctx, fm_err *err)
{
    return fm_store_migrate(&ctx->store, "breaker", 1, ddl, err);
}

typedef struct {
    double share;
    long long window_s;
} bconf;

/* guardrails.circuit_breaker; NVSentinel's example is the default. */
static bconf conf(fm_ctx *ctx)
{
    const json_t *c =
        json_object_get(fm_config_section(&ctx->cfg, "guardrails"), "circuit_breaker");
    return (bconf){
        fm_policy_limit(ctx, "circuit_breaker_max_share", fm_cfg_real(c, "max_share", 0.5), NULL),
        fm_cfg_int(c, "window_s", 300)};
}

/* Start of the window: the sliding window, but never before a reset. */
static int64_t window_start(fm_ctx *ctx, const bconf *c)
{
    char v[32];
    /* The store's clock, as the drains and the reset were stamped: a host
     * whose clock ran a window ahead counted none of the others'. */
    int64_t since = fm_store_now_ms(&ctx->store) - c->window_s * 1000;
    if (fm_store_setting_get(&ctx->store, RESET_KEY, v, sizeof v) == 0) {
        long long r = strtoll(v, NULL, 10);
        if (r > since) since = r;
    }
    return since;
}

/* Distinct nodes drained since, other than node, in partition (NULL: the
 * whole fleet); -1 when the store cannot be read. */
static long long drained(fm_ctx *ctx, int64_t since, const char *node, const char *partition)
{
    return partition ? fm_db_count(ctx->store.db, part_sql, "itt", since, node, partition)
                     : fm_db_count(ctx->store.db, fleet_sql, "it", since, node);
}

static int count_node(void *ud, const json_t *node, fm_err *err)
{
    (void)node;
    (void)err;
    ++*(long long *)ud;
    return 0;
}

/* The capacity verdict's total for partition, or -1. */
static long long capacity_total(const json_t *verdicts, const char *partition)
{
    size_t i;
    json_t *v;
    json_array_foreach(verdicts, i, v)
    {
        const json_t *n = json_object_get(v, "numbers");
        if (!strcmp(fm_json_str(v, "guardrail", ""), "capacity") &&
            !strcmp(fm_json_str(n, "partition", ""), partition))
            return json_integer_value(json_object_get(n, "total"));
    }
    return -1;
}

json_t *fm_breaker_totals(fm_ctx *ctx, const json_t *node, const json_t *verdicts, fm_err *err)
{
    /* Counted while streaming the listing: the fleet can be large. */
    fm_slurm_node_filter f = {0};
    long long fleet = 0;
    if (ctx->be.slurm->node_count) {
        if (ctx->be.slurm->node_count(ctx->be.slurm_st, &fleet, err)) return NULL;
    } else if (ctx->be.slurm->nodes_each) {
        if (ctx->be.slurm->nodes_each(ctx->be.slurm_st, &f, count_node, &fleet, err)) return NULL;
    } else {
        json_t *all = ctx->be.slurm->nodes(ctx->be.slurm_st, &f, err);
        if (!all) return NULL;
        fleet = (long long)json_array_size(all);
        json_decref(all);
    }
    json_t *parts = json_object();
    json_t *out = json_pack("{s:I, s:o}", "fleet", (json_int_t)fleet, "partitions", parts);
    json_t *cap = NULL; /* every partition of the node, asked once if needed */
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(node, "partitions"), i, p)
    {
        if (!json_is_string(p)) continue;
        /* The capacity guardrail has just asked Slurm the same question. */
        long long known = capacity_total(verdicts, json_string_value(p));
        if (known < 0) {
            if (!cap && !(cap = fm_guard_capacity(ctx, node, false, err))) {
                json_decref(out);
                return NULL;
            }
            known = json_integer_value(
                json_object_get(json_object_get(cap, json_string_value(p)), "total"));
        }
        json_object_set_new(parts, json_string_value(p), json_integer(known));
    }
    json_decref(cap);
    return out;
}

/* One domain (the fleet, or a partition) over the share with name added:
 * 1 with why, 0, or -1 with why when the count cannot be read (fail
 * closed, as the trip state does: an unread count may be over). */
static int domain_over(fm_ctx *ctx, const bconf *c, int64_t since, const char *name,
                       const char *partition, long long total, char *why, size_t len)
{
    long long n = drained(ctx, since, name, partition) + 1;
    if (n < 1) {
        snprintf(why, len,
                 "the count of nodes fleetmcp drained in %s %s cannot be read (%s), so draining"
                 " %s counts as over the breaker's share",
                 partition ? "partition" : "the", partition ? partition : "fleet",
                 fm_db_errmsg(ctx->store.db), name);
        return -1;
    }
    double share = total > 0 ? (double)n / (double)total : 1;
    bool over = share > c->share + 1e-9;
    snprintf(why, len,
             "%s %s: fleetmcp drained %lld other node%s of %lld in the last %lld s; draining %s"
             " makes %lld (%.0f%%), %s the breaker's %.0f%%",
             partition ? "partition" : "the", partition ? partition : "fleet", n - 1,
             n - 1 == 1 ? "" : "s", total, c->window_s, name, n, 100 * share,
             over ? "over" : "within", 100 * c->share);
    return over;
}

/* The first domain over the share (1) or unreadable (-1), into why; 0
 * (why: the fleet's numbers) if none. */
static int over_share(fm_ctx *ctx, const char *name, const json_t *totals, char *why, size_t len)
{
    bconf c = conf(ctx);
    int64_t since = window_start(ctx, &c);
    int over = domain_over(ctx, &c, since, name, NULL,
                           json_integer_value(json_object_get(totals, "fleet")), why, len);
    if (over) return over;
    char fleet[400];
    snprintf(fleet, sizeof fleet, "%s", why);
    const char *p;
    json_t *t;
    json_object_foreach((json_t *)json_object_get(totals, "partitions"), p, t)
    {
        over = domain_over(ctx, &c, since, name, p, json_integer_value(t), why, len);
        if (over) return over;
    }
    snprintf(why, len, "%s", fleet);
    return 0;
}

bool fm_breaker_tripped(fm_ctx *ctx, char *why, size_t len)
{
    char v[700];
    int got = fm_store_setting_get(&ctx->store, TRIP_KEY, v, sizeof v);
    /* Fail closed, as the kill switch does: an unreadable setting may
     * well say "tripped". */
    if (got == -2) {
        snprintf(why, len, "state cannot be read (%s), so it counts as tripped",
                 fm_db_errmsg(ctx->store.db));
        return true;
    }
    if (got || strncmp(v, "tripped", 7)) return false;
    snprintf(why, len, "%s", v);
    return true;
}

static void trip(fm_ctx *ctx, const char *why)
{
    char at[32], v[700];
    fm_iso_time(fm_now_ms(), at);
    snprintf(v, sizeof v, "tripped at %s: %.600s", at, why);
    fm_err err = {0};
    if (fm_store_setting_set(&ctx->store, TRIP_KEY, v, &err))
        fm_log("error", "circuit breaker: recording the trip failed: %s", err.text);
    fm_log("warning", "circuit breaker %s", v);
}

void fm_breaker_check(fm_ctx *ctx, const char *name, const json_t *totals, bool attempt,
                      json_t *verdicts)
{
    char why[700];
    if (fm_breaker_tripped(ctx, why, sizeof why)) {
        fm_guard_add(verdicts, "circuit_breaker", false, RESET_FIX,
                     "circuit breaker %s; no drain runs until a human resets it", why);
        return;
    }
    /* An unreadable count refuses this call but trips nothing: the
     * store, not the fleet, is what is wrong. */
    int over = over_share(ctx, name, totals, why, sizeof why);
    if (over > 0 && attempt) trip(ctx, why);
    fm_guard_add(verdicts, "circuit_breaker", !over,
                 over < 0  ? UNREAD_FIX
                 : attempt ? RESET_FIX
                           : "wait for the window to pass, or raise"
                             " guardrails.circuit_breaker.max_share",
                 "%s%s", why, over > 0 && attempt ? "; the breaker tripped" : "");
}

int fm_breaker_reserve(fm_ctx *ctx, const char *name, const json_t *totals, fm_err *err)
{
    char why[700];
    if (fm_breaker_tripped(ctx, why, sizeof why))
        return fm_err_set(err, FM_ERR_GUARDRAIL, "circuit breaker %s; to pass: %s", why, RESET_FIX);
    int over = over_share(ctx, name, totals, why, sizeof why);
    if (over < 0)
        return fm_err_set(err, FM_ERR_GUARDRAIL, "circuit breaker: %s; to pass: %s", why,
                          UNREAD_FIX);
    if (over) {
        trip(ctx, why);
        return fm_err_set(err, FM_ERR_GUARDRAIL,
                          "circuit breaker: %s; it tripped (another drain got there first);"
                          " to pass: %s",
                          why, RESET_FIX);
    }
    int64_t now = fm_store_now_ms(&ctx->store);
    const char *p;
    json_t *t;
    int rc = FM_DB_DONE;
    json_object_foreach((json_t *)json_object_get(totals, "partitions"), p, t)
    {
        (void)t;
        rc = fm_db_run(ctx->store.db, insert_sql, NULL, NULL, "tti", name, p, now);
        if (rc != FM_DB_DONE) break;
    }
    if (rc == FM_DB_DONE && !json_object_size(json_object_get(totals, "partitions")))
        /* A node in no partition still counts against the fleet. */
        rc = fm_db_run(ctx->store.db, insert_sql, NULL, NULL, "tti", name, "", now);
    return rc == FM_DB_DONE ? 0 : fm_store_fail(&ctx->store, err, "auto drain");
}

int fm_breaker_reset(fm_ctx *ctx, const char *by, const char *reason, fm_err *err)
{
    char at[32], v[700], ms[32];
    int64_t now = fm_store_now_ms(&ctx->store);
    fm_iso_time(now, at);
    snprintf(v, sizeof v, "reset at %s by %s: %.400s", at, by, reason);
    snprintf(ms, sizeof ms, "%lld", (long long)now);
    /* Two writes that depend on no read: atomic, no lock needed. */
    if (fm_store_begin_rows(&ctx->store, err)) return -1;
    if (fm_store_setting_set(&ctx->store, RESET_KEY, ms, err) ||
        fm_store_setting_set(&ctx->store, TRIP_KEY, v, err)) {
        fm_store_rollback(&ctx->store);
        return -1;
    }
    return fm_store_commit(&ctx->store, err);
}

json_t *fm_breaker_status(fm_ctx *ctx)
{
    bconf c = conf(ctx);
    char why[700];
    bool tripped = fm_breaker_tripped(ctx, why, sizeof why);
    long long n = drained(ctx, window_start(ctx, &c), "", NULL);
    /* -1: unreadable, and the reason says so (drains are refused then). */
    if (n < 0 && !tripped)
        snprintf(why, sizeof why, "the count of drains in the window cannot be read (%s)",
                 fm_db_errmsg(ctx->store.db));
    json_t *out = json_pack("{s:b, s:f, s:I, s:I}", "tripped", tripped, "max_share", c.share,
                            "window_s", (json_int_t)c.window_s, "drained_in_window", (json_int_t)n);
    if (tripped || n < 0) json_object_set_new(out, "reason", json_string(why));
    return out;
}
