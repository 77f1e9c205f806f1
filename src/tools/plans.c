/* plan_get and plan_approve. */
#include <stdio.h>

#include "fm_tools.gen.h"
#include "fleetmcp/fm_approval.h"
#include "fleetmcp/fm_plan.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_util.h"

/* Returns a new object. */
json_t *fm_tool_plan_get(fm_call *call, fm_err *err)
{
    return fm_plan_get(call->ctx, fm_json_str(call->args, "plan_id", ""), err);
}

/* Returns a new object. */
json_t *fm_tool_plan_approve(fm_call *call, fm_err *err)
{
    const json_t *a = call->args;
    const char *plan = fm_json_str(a, "plan_id", ""), *who = fm_json_str(a, "approver", "");
    json_int_t expires = json_integer_value(json_object_get(a, "expires_ms"));
    char id[FM_APPROVAL_ID_LEN], when[32];
    if (fm_approval_record(call->ctx, plan, who, expires, fm_json_str(a, "signature", ""), id, err))
        return NULL;
    fm_iso_time(expires, when);
    return json_pack("{s:s, s:s, s:s, s:s}", "approval_id", id, "plan_id", plan, "approver", who,
                     "expires", when);
}
