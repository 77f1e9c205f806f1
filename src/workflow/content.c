/* What a repair would run, as plan content.  repair_plan records it,
 * the planner rebuilds it for repair_execute from the CURRENT runbook
 * catalog, and the engine runs exactly it: one function, so the hash an
 * approver signed is the hash of what runs. */
#include <stdio.h>
#include <string.h>

#include "fleetmcp/fm_gate.h"
#include "fleetmcp/fm_guardrails.h"
#include "fleetmcp/fm_plan.h"
#include "fleetmcp/fm_pool.h"
#include "fleetmcp/fm_runbook.h"
#include "fleetmcp/fm_registry.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_util.h"
#include "fleetmcp/fm_workflow.h"

/* Appends the steps of one runbook phase (borrowed array) to out. */
static void add_phase(json_t *out, const char *phase, const json_t *steps)
{
    size_t i;
    json_t *s;
    json_array_foreach(steps, i, s)
    {
        const char *action = fm_json_str(s, "action", "");
        const fm_action_def *a = fm_action_find(action);
        json_t *args = json_object_get(s, "args");
        json_t *to = json_object_get(s, "timeout_s");
        json_int_t timeout =
            json_is_integer(to) ? json_integer_value(to) : (a ? a->default_timeout_s : 60);
        json_t *step = json_pack("{s:s, s:s, s:s, s:O, s:I}", "phase", phase, "id",
                                 fm_json_str(s, "id", action), "action", action, "args",
                                 json_is_object(args) ? args : json_object(), "timeout_s", timeout);
        /* "O" took a reference to the temporary {} too: drop ours. */
        if (!json_is_object(args)) json_decref(json_object_get(step, "args"));
        if (json_is_true(json_object_get(s, "continue_on_failure")))
            json_object_set_new(step, "continue_on_failure", json_true());
        json_array_append_new(out, step);
    }
}

json_t *fm_workflow_steps_shown(const json_t *content, fm_guard_req *req)
{
    size_t i;
    json_t *s;
    json_t *steps = json_array();
    json_array_foreach(json_object_get(content, "steps"), i, s)
    {
        const fm_action_def *a = fm_action_find(fm_json_str(s, "action", ""));
        if (a && a->takes_capacity) req->takes_capacity = true;
        if (a && a->destructive) req->destructive = true;
        if (a && a->superseded_by_reboot) req->superseded_by_reboot = true;
        json_array_append_new(
            steps, json_pack("{s:O, s:O, s:O, s:O}", "phase", json_object_get(s, "phase"), "id",
                             json_object_get(s, "id"), "action", json_object_get(s, "action"),
                             "timeout_s", json_object_get(s, "timeout_s")));
    }
    return steps;
}

json_t *fm_workflow_content(const char *node, const char *fault_class, const fm_runbook *rb)
{
    const json_t *doc = rb->doc;
    json_t *steps = json_array();
    add_phase(steps, "steps", json_object_get(doc, "steps"));
    add_phase(steps, "verification", json_object_get(doc, "verification"));
    add_phase(steps, "on_success", json_object_get(doc, "on_success"));
    add_phase(steps, "rollback", json_object_get(doc, "rollback"));
    const json_t *esc = json_object_get(json_object_get(doc, "on_failure"), "escalate");
    if (json_is_object(esc))
        json_array_append_new(steps, json_pack("{s:s, s:s, s:s, s:O, s:I}", "phase", "on_failure",
                                               "id", "escalate", "action", "escalate", "args", esc,
                                               "timeout_s", (json_int_t)60));
    json_t *args =
        json_pack("{s:s, s:s, s:s}", "node", node, "fault_class", fault_class, "runbook", rb->id);
    json_t *nodes = json_pack("[s]", node);
    /* The plan is run by the tool that runs plans (the generator checks
     * there is exactly one). */
    json_t *c = fm_plan_content(fm_tool_with_flags(FM_TOOL_RUNS_PLAN)->name, args, nodes, steps,
                                rb->id, (int)rb->version);
    /* Top level too: the gate's guardrails key the retry budget on it. */
    json_object_set_new(c, "fault_class", json_string(fault_class));
    json_decref(args);
    json_decref(nodes);
    json_decref(steps);
    return c;
}

json_t *fm_workflow_tool_content(const fm_call *call, const char *owner, fm_err *err)
{
    const fm_tool_def *t = call->tool;
    const fm_action_def *a = t && t->action ? fm_action_find(t->action) : NULL;
    if (!a)
        return fm_err_set(err, FM_ERR_INTERNAL,
                          "%s names no action to run (\"action\" in its schema file); please"
                          " report",
                          t ? t->name : "the tool"),
               NULL;
    /* The step takes the arguments its action declares (drain: reason;
     * gpu_reset: gpu), nothing else of the call's. */
    json_t *schema = json_loads(a->args_schema, 0, NULL);
    const json_t *props = json_object_get(schema, "properties");
    json_t *sargs = json_object();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)call->args, k, v) if (json_object_get(props, k))
        json_object_set(sargs, k, v);
    json_decref(schema);
    /* The tool's form of the action (its schema's action_args, checked
     * against the action by the generator) comes last: a caller cannot
     * change it. */
    json_t *fixed = t->action_args ? json_loads(t->action_args, 0, NULL) : NULL;
    if (fixed) json_object_update(sargs, fixed);
    json_decref(fixed);
    json_t *steps =
        json_pack("[{s:s, s:s, s:s, s:o, s:I}]", "phase", "steps", "id", t->name, "action", a->name,
                  "args", sargs, "timeout_s", (json_int_t)a->default_timeout_s);
    json_t *nodes = json_pack("[s]", fm_json_str(call->args, "node", ""));
    json_t *c = fm_plan_content(t->name, call->args, nodes, steps, NULL, 0);
    json_object_set_new(c, "call_owner", json_string(owner));
    json_decref(nodes);
    json_decref(steps);
    return c;
}

json_t *fm_workflow_plan_content(fm_ctx *ctx, const char *plan_id, json_t **detail, fm_err *err)
{
    *detail = NULL;
    json_t *plan = fm_plan_get(ctx, plan_id, err);
    if (!plan) return NULL;
    json_t *out = NULL;
    const json_t *args = json_object_get(plan, "args");
    const char *node = fm_json_str(args, "node", NULL);
    const char *fc = fm_json_str(args, "fault_class", NULL);
    const char *rbid = fm_json_str(plan, "runbook", NULL);
    bool pool = fm_pool_is(plan);
    if (strcmp(fm_json_str(plan, "tool", ""), fm_tool_with_flags(FM_TOOL_RUNS_PLAN)->name) ||
        (!node && !pool) || !fc || !rbid) {
        fm_err_set(err, FM_ERR_INVALID,
                   "plan %s is not a repair plan (make one with repair_plan {node, fault_class})",
                   plan_id);
        goto out;
    }
    if (fm_runbooks_load(ctx, err)) goto out;
    const fm_runbook *rb = fm_runbook_find(ctx->runbooks, rbid);
    if (!rb) {
        fm_err_set(err, FM_ERR_NOT_FOUND,
                   "runbook %s of plan %s is no longer in the catalog; make a new plan", rbid,
                   plan_id);
        goto out;
    }
    if (pool) {
        /* The batches as approved; the runbook as it is now. */
        json_t *sel = json_deep_copy(args);
        json_object_del(sel, "fault_class");
        json_object_del(sel, "runbook");
        out = fm_pool_content(sel, json_object_get(plan, "batches"), fc, rb);
        json_decref(sel);
    } else {
        out = fm_workflow_content(node, fc, rb);
    }
    /* The approval need follows the runbook as it is now, by the gate's
     * rule. */
    bool needs = fm_gate_approval_needed(ctx, fm_tool_with_flags(FM_TOOL_RUNS_PLAN), out);
    json_t *risk = json_object_get(plan, "risk");
    *detail = json_pack("{s:s, s:b, s:s, s:O, s:s, s:s}", "risk",
                        json_is_string(risk) ? json_string_value(risk) : "high", "approval_needed",
                        needs, "autonomy", fm_autonomy_name(rb->autonomy), "nodes",
                        json_object_get(out, "nodes"), "source_plan", plan_id, "fault_class", fc);
out:
    json_decref(plan);
    return out;
}
