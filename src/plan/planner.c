/* Plans for single actions: one step, the tool itself, on the nodes its
 * arguments name.  Runbook-driven repairs (repair_plan) build their own
 * content from the runbook's steps. */
#include "fleetmcp/fm_planner.h"

#include <string.h>

#include "fleetmcp/fm_plan.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_util.h"
#include "fleetmcp/fm_workflow.h"

/* The nodes a call touches (new array): "node" or "nodes" arguments. */
static json_t *call_nodes(const json_t *args)
{
    json_t *nodes = json_array();
    const char *one = fm_json_str(args, "node", NULL);
    if (one) json_array_append_new(nodes, json_string(one));
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(args, "nodes"), i, v) if (json_is_string(v))
        json_array_append(nodes, v);
    return nodes;
}

static const char *risk_of(const fm_tool_def *t, size_t nnodes)
{
    if (t->flags & FM_TOOL_DESTRUCTIVE) return nnodes > 1 ? "high" : "medium";
    return nnodes ? "medium" : "low";
}

json_t *fm_planner_content(fm_ctx *ctx, const fm_tool_def *t, const json_t *args, json_t **detail,
                           fm_err *err)
{
    /* A tool that runs a recorded repair plan: its content is rebuilt from
     * the stored plan with the runbook as it is NOW, so the hash the
     * approval binds to changes when the runbook does. */
    if (t->flags & FM_TOOL_RUNS_PLAN)
        return fm_workflow_plan_content(ctx, fm_json_str(args, "plan_id", ""), detail, err);
    json_t *nodes = call_nodes(args);
    json_t *a = json_deep_copy(args);
    json_object_del(a, "approval_id");
    json_t *steps = json_pack("[{s:s, s:o}]", "action", t->name, "args", a);
    json_t *content = fm_plan_content(t->name, args, nodes, steps, NULL, 0);
    *detail = json_pack("{s:s, s:b, s:s}", "risk", risk_of(t, json_array_size(nodes)),
                        "approval_needed", 1, "autonomy", fm_autonomy_name(t->autonomy));
    json_decref(nodes);
    json_decref(steps);
    return content;
}
