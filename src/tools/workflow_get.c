/* workflow_get: one workflow as persisted.  A read: it never resumes a
 * workflow whose server died (that acts on a node, so only a gated
 * repair_execute may, in a mode that acts); it shows the dead owner. */
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_util.h"
#include "fleetmcp/fm_workflow.h"
#include "fm_tools.gen.h"

/* Returns a new object (schemas/tools/workflow_get.json). */
json_t *fm_tool_workflow_get(fm_call *call, fm_err *err)
{
    return fm_workflow_get(call->ctx, fm_json_str(call->args, "workflow_id", ""), err);
}
