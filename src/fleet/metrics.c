#include "fleetmcp/fm_fleet.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fleetmcp/fm_audit.h"
#include "fleetmcp/fm_guardrails.h"
#include "fleetmcp/fm_nodestate.h"
#include "fleetmcp/fm_policy.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_workflow.h"

#define SHADOW_MATCH_MS (24LL * 3600 * 1000)

/* Overrides: human actions counted on the nodes fleetmcp attempted to
 * repair (the set from node state, the counts from the audit trail). */
typedef struct {
    json_t *attempted; /* node -> true */
    double n;
} override_acc;

static void attempted_node(const char *node, void *arg)
{
    if (node) json_object_set_new(arg, node, json_true());
}

static void human_actions(const char *node, int64_t n, void *arg)
{
    override_acc *a = arg;
    if (node && json_object_get(a->attempted, node)) a->n += (double)n;
}

static json_t *ratio(double num, double den)
{
    return den > 0 ? json_real(num / den) : json_null();
}

json_t *fm_fleet_metrics(fm_ctx *ctx, int64_t window_ms)
{
    /* On the store's clock, as the workflow and node-state rows are
     * stamped: every server sharing the store counts the same window. */
    int64_t since = fm_store_now_ms(&ctx->store) - window_ms;
    json_t *m = json_object();
    /* The workflow tables, made if missing (once per connection): asking
     * sqlite_master for them found none on PostgreSQL, so every workflow
     * there went uncounted. */
    bool wf = fm_workflow_init(ctx, NULL) == 0;
    double done = 0, bad = 0, fp = 0, mean = 0;
    bool mean_null = true;
    json_t *offenders;
    if (wf) {
        fm_workflow_stats w;
        fm_workflow_stats_since(ctx, since, &w);
        done = w.done;
        bad = w.failed;
        fp = w.false_positive;
        mean = w.mean_s;
        mean_null = w.mean_null;
        offenders = w.repeat_nodes;
    } else {
        offenders = json_array();
    }
    /* Overrides: a human acted on a node fleetmcp was remediating. */
    double remediations = (double)fm_node_state_nodes_repaired(ctx, since);
    /* The single node actions that move capacity, by their flags. */
    override_acc ov = {json_object(), 0};
    fm_node_state_each_attempted(ctx, since, attempted_node, ov.attempted);
    for (size_t i = 0; i < fm_tool_count && json_object_size(ov.attempted); i++) {
        unsigned f = fm_tool_table[i].flags;
        if (!(f & FM_TOOL_NODE_ACTION) || (f & FM_TOOL_RUNS_PLAN) ||
            !(f & (FM_TOOL_TAKES_CAPACITY | FM_TOOL_RETURNS_CAPACITY)))
            continue;
        fm_audit_human_actions_by_node(&ctx->store, fm_tool_table[i].name, since, human_actions,
                                       &ov);
    }
    json_decref(ov.attempted);
    double overrides = ov.n;
    /* Shadow agreement: a recommendation later carried out by a human. */
    int64_t recs64 = 0, agreed64 = 0;
    fm_audit_shadow_agreement(&ctx->store, since, SHADOW_MATCH_MS, &recs64, &agreed64);
    double recs = (double)recs64, agreed = (double)agreed64;

    json_t *states = fm_node_state_counts(ctx);
    json_int_t removed = 0;
    static const char *const out_of_pool[] = {"quarantined", "repairing", "validating",
                                              "escalated"};
    for (size_t i = 0; i < sizeof out_of_pool / sizeof *out_of_pool; i++)
        removed += json_integer_value(json_object_get(states, out_of_pool[i]));
    json_object_set_new(m, "window_days", json_integer(window_ms / 86400000));
    json_object_set_new(m, "automation_success_ratio", ratio(done, done + bad));
    json_object_set_new(m, "manual_override_ratio", ratio(overrides, remediations));
    json_object_set_new(m, "false_positive_quarantines", json_integer((json_int_t)fp));
    json_object_set_new(m, "mean_repair_seconds", mean_null ? json_null() : json_real(mean));
    json_object_set_new(m, "nodes", states);
    json_object_set_new(m, "capacity_removed_nodes", json_integer(removed));
    json_object_set_new(m, "repeat_offenders", offenders);
    json_object_set_new(m, "shadow_recommendations", json_integer((json_int_t)recs));
    json_object_set_new(m, "shadow_agreement_ratio", ratio(agreed, recs));
    /* Both ratios count rows labelled human, and that label is only ever
     * a stdio client's own name (a verified HTTP caller is an agent):
     * say so next to the numbers. */
    json_object_set_new(m, "human_label", json_string("self-declared"));
    return m;
}

static void gauge(FILE *f, const char *name, const char *help, const json_t *v)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
    if (json_is_number(v)) fprintf(f, "%s %.6g\n", name, json_number_value(v));
}

static void tool_calls(const char *tool, const char *decision, int64_t n, void *arg)
{
    fprintf(arg, "fleetmcp_tool_calls{tool=\"%s\",decision=\"%s\"} %lld\n", tool, decision,
            (long long)n);
}

int fm_fleet_metrics_textfile(fm_ctx *ctx, const char *path, fm_err *err)
{
    json_t *m = fm_fleet_metrics(ctx, FM_FLEET_WINDOW_MS);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) {
        json_decref(m);
        return fm_err_set(err, FM_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
    }
    gauge(f, "fleetmcp_automation_success_ratio",
          "Workflows that completed, of those that ended, over 30 days",
          json_object_get(m, "automation_success_ratio"));
    gauge(f, "fleetmcp_manual_override_ratio",
          "Human node actions on nodes fleetmcp remediated, per remediated node, 30 days"
          " (human as self-declared by the stdio client)",
          json_object_get(m, "manual_override_ratio"));
    gauge(f, "fleetmcp_false_positive_quarantines",
          "Workflows that returned a node without repairing anything, 30 days",
          json_object_get(m, "false_positive_quarantines"));
    gauge(f, "fleetmcp_mean_repair_seconds", "Mean duration of completed workflows, 30 days",
          json_object_get(m, "mean_repair_seconds"));
    gauge(f, "fleetmcp_capacity_removed_nodes", "Nodes out of the pool by fleetmcp's hand",
          json_object_get(m, "capacity_removed_nodes"));
    json_t *rep = json_integer((json_int_t)json_array_size(json_object_get(m, "repeat_offenders")));
    gauge(f, "fleetmcp_repeat_offender_nodes", "Nodes with two or more workflows in 30 days", rep);
    json_decref(rep);
    gauge(f, "fleetmcp_shadow_agreement_ratio",
          "Shadow recommendations a human carried out within 24 h (human as self-declared by"
          " the stdio client)",
          json_object_get(m, "shadow_agreement_ratio"));
    json_t *cb = fm_breaker_status(ctx), *esc = fm_offender_list(ctx);
    json_t *tripped = json_integer(json_is_true(json_object_get(cb, "tripped")));
    gauge(f, "fleetmcp_circuit_breaker_tripped",
          "1 while the circuit breaker stops automated drains", tripped);
    gauge(f, "fleetmcp_circuit_breaker_drained_in_window",
          "Nodes fleetmcp drained in the breaker's window",
          json_object_get(cb, "drained_in_window"));
    json_t *nesc = json_integer((json_int_t)json_array_size(esc));
    gauge(f, "fleetmcp_escalated_repeat_offenders",
          "Nodes automation no longer repairs until a human clears them", nesc);
    json_decref(tripped);
    json_decref(nesc);
    json_decref(cb);
    json_decref(esc);
    fprintf(f, "# HELP fleetmcp_nodes Nodes fleetmcp tracks, by remediation state\n"
               "# TYPE fleetmcp_nodes gauge\n");
    static const char *const states[] = {"healthy",    "suspect",  "quarantined", "repairing",
                                         "validating", "returned", "escalated"};
    for (size_t i = 0; i < sizeof states / sizeof *states; i++)
        fprintf(
            f, "fleetmcp_nodes{state=\"%s\"} %lld\n", states[i],
            (long long)json_integer_value(json_object_get(json_object_get(m, "nodes"), states[i])));
    /* Calls by tool and decision over the last 24 hours, from the hourly
     * counters the audit keeps. */
    fprintf(f, "# HELP fleetmcp_tool_calls Tool calls in the last 24 h by tool and decision\n"
               "# TYPE fleetmcp_tool_calls gauge\n");
    fm_audit_hourly_each(&ctx->store, fm_store_now_ms(&ctx->store) / 3600000 - 23, tool_calls, f);
    json_decref(m);
    int bad = ferror(f);
    if (fclose(f) || bad || rename(tmp, path)) {
        unlink(tmp);
        return fm_err_set(err, FM_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    }
    return 0;
}
