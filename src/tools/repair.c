/* repair_plan (dry run, recorded as a plan) and repair_execute (runs a
 * recorded plan as a workflow).  The plan content comes from one function
 * (fm_workflow_content), so what a human approves is what runs. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "fleetmcp/fm_gate.h"
#include "fleetmcp/fm_guardrails.h"
#include "fleetmcp/fm_plan.h"
#include "fleetmcp/fm_pool.h"
#include "fleetmcp/fm_policy.h"
#include "fleetmcp/fm_registry.h"
#include "fleetmcp/fm_runbook.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_slurm.h"
#include "fleetmcp/fm_util.h"
#include "fleetmcp/fm_workflow.h"
#include "fm_tools.gen.h"

/* The capacity numbers the guardrails already computed (each capacity
 * verdict's "numbers"), so a plan asks Slurm once.  New object, or NULL if
 * the verdicts hold none (then capacity() asks Slurm itself). */
static json_t *capacity_from_verdicts(const json_t *verdicts)
{
    json_t *out = json_object();
    size_t i;
    json_t *v;
    json_array_foreach(verdicts, i, v)
    {
        if (strcmp(fm_json_str(v, "guardrail", ""), "capacity")) continue;
        const json_t *num = json_object_get(v, "numbers");
        const char *part = fm_json_str(num, "partition", NULL);
        if (!part) {
            json_decref(out);
            return NULL;
        }
        json_object_set_new(out, part,
                            json_pack("{s:O, s:O, s:O}", "total", json_object_get(num, "total"),
                                      "schedulable_now", json_object_get(num, "schedulable_now"),
                                      "schedulable_after",
                                      json_object_get(num, "schedulable_after")));
    }
    if (!json_object_size(out)) {
        json_decref(out);
        return NULL;
    }
    return out;
}

static const fm_runbook *pick_runbook(fm_ctx *ctx, const json_t *args, const char **fc, fm_err *err)
{
    if (fm_runbooks_load(ctx, err)) return NULL;
    const char *rbid = fm_json_str(args, "runbook", NULL);
    *fc = fm_json_str(args, "fault_class", NULL);
    if (!rbid && !*fc) {
        fm_err_set(err, FM_ERR_INVALID,
                   "give fault_class (from diagnose) or runbook (runbook_list)");
        return NULL;
    }
    const fm_runbook *rb =
        rbid ? fm_runbook_find(ctx->runbooks, rbid) : fm_runbook_for_class(ctx->runbooks, *fc);
    if (!rb) {
        fm_err_set(err, FM_ERR_NOT_FOUND, "no runbook %s%s (runbook_list shows the catalog)",
                   rbid ? rbid : "for fault class ", rbid ? "" : *fc);
        return NULL;
    }
    const json_t *classes = json_object_get(rb->doc, "fault_classes");
    if (!*fc) {
        *fc = json_string_value(json_array_get(classes, 0));
        if (!*fc) *fc = "unknown";
    } else {
        bool covers = false;
        size_t i;
        json_t *c;
        json_array_foreach(classes, i, c) covers |= !strcmp(json_string_value(c), *fc);
        if (!covers) {
            fm_err_set(err, FM_ERR_INVALID, "runbook %s does not cover fault class %s", rb->id,
                       *fc);
            return NULL;
        }
    }
    return rb;
}

static void plan_end(fm_ctx *ctx)
{
    if (ctx->be.slurm->plan_end) ctx->be.slurm->plan_end(ctx->be.slurm_st);
}

/* When Slurm was read for the plan's capacity answer, where the backend
 * says ({at, age_ms, source, rechecked_at_execution}, new, or NULL): a
 * shared aggregate (another call's recent read, slurm.cli.
 * aggregate_max_age_s) may answer a plan, never the execution, whose
 * guard and reservation read Slurm again before the node is taken.  The
 * capacity verdicts say so too. */
static json_t *capacity_as_of(fm_ctx *ctx, json_t *verdicts)
{
    long long at = 0;
    int how = ctx->be.slurm->counts_as_of ? ctx->be.slurm->counts_as_of(ctx->be.slurm_st, &at) : -1;
    if (how < 0) return NULL;
    char iso[32];
    fm_iso_time(at, iso);
    long long age = fm_now_ms() - at;
    if (age < 0) age = 0;
    const char *src = how ? "shared_aggregate" : "read_now";
    json_t *o = json_pack("{s:s, s:I, s:s, s:b}", "at", iso, "age_ms", (json_int_t)age, "source",
                          src, "rechecked_at_execution", 1);
    size_t i;
    json_t *v;
    json_array_foreach(verdicts, i, v)
    {
        if (strcmp(fm_json_str(v, "guardrail", ""), "capacity")) continue;
        json_object_set(v, "as_of", o);
        if (!how) continue;
        char d[700];
        snprintf(d, sizeof d,
                 "%s; Slurm's counts as of %s (%lld ms old, another call's read"
                 " shared through the store): repair_execute checks capacity again with a fresh"
                 " read before the node is taken",
                 fm_json_str(v, "detail", ""), iso, age);
        json_object_set_new(v, "detail", json_string(d));
    }
    return o;
}

/* Returns a new object (schemas/tools/repair_plan.json). */
json_t *fm_tool_repair_plan(fm_call *call, fm_err *err)
{
    fm_ctx *ctx = call->ctx;
    const char *node_name = fm_json_str(call->args, "node", "");
    const char *fc = NULL;
    const fm_runbook *rb = pick_runbook(ctx, call->args, &fc, err);
    if (!rb) return NULL;
    /* A selector (or no node at all) makes a pool plan; one node keeps the
     * one-node plan exactly as before. */
    const json_t *args = call->args;
    if (!json_object_get(args, "node") || json_object_get(args, "nodes") ||
        json_object_get(args, "partition") || json_object_get(args, "rack"))
        return fm_pool_plan(call, rb, fc, err);
    bool dry = json_is_true(json_object_get(args, "dry_run"));
    /* The plan's own read where the backend has one (the CLI's: one node
     * from slurmctld, the capacity aggregate started beside it). */
    json_t *node = ctx->be.slurm->plan_node
                       ? ctx->be.slurm->plan_node(ctx->be.slurm_st, node_name, err)
                       : ctx->be.slurm->node(ctx->be.slurm_st, node_name, err);
    if (!node) {
        plan_end(ctx);
        return NULL;
    }
    json_t *content = fm_workflow_content(node_name, fc, rb);
    fm_guard_req fx = {0};
    json_t *steps = fm_workflow_steps_shown(content, &fx);
    bool takes = fx.takes_capacity, destructive = fx.destructive;
    json_t *nodes = json_pack("[s]", node_name);
    fm_guard_req req = {.action = rb->id,
                        .nodes = nodes,
                        .fault_class = fc,
                        .runbook = rb->doc,
                        .takes_capacity = takes,
                        .destructive = destructive,
                        .superseded_by_reboot = fx.superseded_by_reboot,
                        .node = node};
    bool pass = false;
    json_t *out = NULL, *detail = NULL, *cap = NULL, *verdicts = NULL, *diag = NULL, *as_of = NULL;
    verdicts = fm_guard_check(ctx, &req, &pass, err);
    if (!verdicts) goto done;
    /* A verdict the gate marks refuses_plan (another workflow owns the
     * node) refuses the plan itself: there is nothing to approve. */
    size_t i;
    json_t *s;
    json_array_foreach(verdicts, i, s) if (json_is_true(json_object_get(s, "refuses_plan")))
    {
        fm_err_set(err, FM_ERR_CONFLICT, "no plan for %s: %s; to pass: %s", node_name,
                   fm_json_str(s, "detail", ""), fm_json_str(s, "fix", ""));
        goto done;
    }
    cap = takes ? capacity_from_verdicts(verdicts) : NULL;
    if (!cap) cap = fm_guard_capacity(ctx, node, takes, err);
    if (!cap) goto done;
    as_of = capacity_as_of(ctx, verdicts);
    plan_end(ctx);
    fm_err je = {0};
    json_t *jobs = fm_wf_jobs_on(ctx, node_name, &je);
    json_int_t njobs = jobs ? (json_int_t)json_array_size(jobs) : -1;
    json_decref(jobs);
    const char *risk = destructive && njobs > 0 ? "high" : destructive ? "medium" : "low";
    /* What repair_execute's gate will ask: the gate's own rule. */
    char dwhy[600];
    bool needs = fm_gate_approval_needed(ctx, fm_tool_with_flags(FM_TOOL_RUNS_PLAN), content);
    /* The diagnosis this plan acts on, recorded with it; {enough: false}
     * and a summary saying what to do when none is recorded. */
    bool dok = false;
    diag = fm_diagnosis_basis(ctx, node_name, fc, &dok, dwhy, sizeof dwhy);
    if (!diag) diag = json_pack("{s:b}", "enough", 0);
    json_object_set_new(diag, "summary", json_string(dwhy));
    char why[600];
    fm_guard_explain(verdicts, why, sizeof why);
    json_t *guard =
        json_pack("{s:b, s:s, s:O}", "pass", pass, "summary", why, "verdicts", verdicts);
    detail =
        json_pack("{s:s, s:b, s:s, s:O, s:O, s:O, s:I, s:s}", "risk", risk, "approval_needed",
                  needs, "autonomy", fm_autonomy_name(rb->autonomy), "nodes", nodes, "capacity",
                  cap, "guardrails", guard, "running_jobs", njobs, "fault_class", fc);
    json_object_set(detail, "diagnosis", diag);
    char plan_id[FM_PLAN_ID_LEN] = "", hash[65];
    if (!dry && fm_plan_create(ctx, content, detail, plan_id, err)) {
        json_decref(guard);
        goto done;
    }
    fm_plan_hash(content, hash);
    char next[800];
    if (dry)
        snprintf(next, sizeof next,
                 "dry run: nothing recorded or reserved (%s); call"
                 " repair_plan again without dry_run to record the plan",
                 why);
    else if (!pass)
        snprintf(next, sizeof next,
                 "guardrails refuse this now (%s); repair_execute would be"
                 " refused too",
                 why);
    else if (needs)
        snprintf(next, sizeof next,
                 "a human approves with: mcp-cli approve %s --key KEY"
                 " --approver NAME ; then call repair_execute {plan_id: %s, approval_id: ...}",
                 plan_id, plan_id);
    else
        snprintf(next, sizeof next,
                 "call repair_execute {plan_id: %s} (no approval needed:"
                 " canary runbook on a canary node)",
                 plan_id);
    out = json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:I, s:o, s:s, s:b}, s:O, s:s, s:I, s:O,"
                    " s:o, s:b, s:s, s:O}",
                    "plan_id", plan_id, "hash", hash, "node", node_name, "fault_class", fc,
                    "runbook", "id", rb->id, "version", (json_int_t)rb->version, "title",
                    json_string(fm_json_str(rb->doc, "title", "")), "autonomy",
                    fm_autonomy_name(rb->autonomy), "destructive", rb->destructive, "steps", steps,
                    "risk", risk, "running_jobs", njobs, "capacity", cap, "guardrails", guard,
                    "approval_needed", needs, "next", next, "diagnosis", diag);
    if (out && as_of) json_object_set(out, "capacity_as_of", as_of);
    if (out && dry) {
        json_object_del(out, "plan_id");
        json_object_set_new(out, "dry_run", json_true());
    }
done:
    plan_end(ctx);
    json_decref(as_of);
    json_decref(diag);
    json_decref(verdicts);
    json_decref(cap);
    json_decref(detail);
    json_decref(nodes);
    json_decref(steps);
    json_decref(content);
    json_decref(node);
    return out;
}

/* Returns a new object (schemas/tools/repair_execute.json). */
json_t *fm_tool_repair_execute(fm_call *call, fm_err *err)
{
    fm_ctx *ctx = call->ctx;
    /* A workflow takes minutes: with a client that declared the tasks
     * extension it runs as a task, polled with tasks/get. */
    json_t *task = fm_call_background(call, err);
    if (task) return task;
    const char *plan_id = fm_json_str(call->args, "plan_id", "");
    /* A workflow of this very plan whose server died or stopped: this
     * (approved again) call resumes it rather than starting another. */
    char orphan[FM_WORKFLOW_ID_LEN];
    bool resume =
        fm_workflow_init(ctx, NULL) == 0 && fm_workflow_open_for_plan(ctx, plan_id, orphan) == 0;
    int recovered = fm_workflow_recover(ctx, call);
    json_t *detail = NULL;
    json_t *content = NULL;
    json_t *out = NULL;
    if (resume) {
        out = fm_workflow_get(ctx, orphan, err);
        goto shape;
    }
    content = fm_workflow_plan_content(ctx, plan_id, &detail, err);
    if (!content) return NULL;
    /* Whether this plan needs an approval was the gate's decision. */
    if (fm_pool_is(content)) {
        json_t *c = json_object_get(call->args, "concurrency");
        out = fm_pool_run(call, call->plan_id ? call->plan_id : plan_id, content,
                          json_is_integer(c) ? (int)json_integer_value(c) : 1,
                          fm_json_str(call->args, "rollback", "stop"), err);
        json_decref(detail);
        json_decref(content);
        return out;
    }
    if (json_object_get(call->args, "concurrency") || json_object_get(call->args, "rollback")) {
        fm_err_set(err, FM_ERR_INVALID,
                   "concurrency and rollback are for pool plans (repair_plan"
                   " with nodes, partition, rack or only fault_class); this plan is for one node");
        json_decref(detail);
        json_decref(content);
        return NULL;
    }
    out = fm_workflow_run(call, call->plan_id ? call->plan_id : plan_id, content, err);
shape:
    if (out && recovered) json_object_set_new(out, "recovered", json_integer(recovered));
    if (out) {
        /* Steps say what happened; the event log stays in workflow_get. */
        json_object_del(out, "events");
        /* The ticket an escalation opened, for the agent's next step. */
        size_t i;
        json_t *st;
        json_array_foreach(json_object_get(out, "steps"), i, st)
        {
            const char *t = fm_json_str(json_object_get(st, "output"), "ticket", NULL);
            if (t && *t) json_object_set_new(out, "ticket", json_string(t));
        }
    }
    json_decref(detail);
    json_decref(content);
    return out;
}
