/* workflow_get: one workflow as persisted.  Reading it is also the lazy
 * moment to pick up workflows whose server died (cold start stays cheap:
 * nothing is scanned until a workflow tool is called). */
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_util.h"
#include "fleetmcp/fm_workflow.h"
#include "fm_tools.gen.h"

/* Returns a new object (schemas/tools/workflow_get.json). */
json_t *fm_tool_workflow_get(fm_call *call, fm_err *err)
{
    int recovered = fm_workflow_recover(call->ctx, call);
    json_t *out = fm_workflow_get(call->ctx, fm_json_str(call->args, "workflow_id", ""), err);
    if (out && recovered) json_object_set_new(out, "recovered", json_integer(recovered));
    return out;
}
