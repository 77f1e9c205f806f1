/* guardrail_reset: the human's side of the circuit breaker and of repeat
 * offenders.  A hitl tool, so it runs only with an approval bound to its
 * exact arguments; the policy itself lives in src/gate. */
#include <stdio.h>
#include <string.h>

#include "fm_tools.gen.h"
#include "fleetmcp/fm_policy.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_util.h"

/* Returns a new object (schemas/tools/guardrail_reset.json). */
json_t *fm_tool_guardrail_reset(fm_call *call, fm_err *err)
{
    fm_ctx *ctx = call->ctx;
    const char *which = fm_json_str(call->args, "guardrail", "");
    const char *node = fm_json_str(call->args, "node", NULL);
    const char *reason = fm_json_str(call->args, "reason", "");
    char by[208];
    snprintf(by, sizeof by, "%s:%s (%s)",
             ctx->session.initiator == FM_INITIATOR_HUMAN ? "human" : "agent",
             fm_session_who(&ctx->session), fm_session_os_user(&ctx->session));
    bool breaker = !strcmp(which, "circuit_breaker");
    if (breaker && node) {
        fm_err_set(err, FM_ERR_INVALID,
                   "the circuit breaker is fleet-wide: call again without node");
        return NULL;
    }
    if (!breaker && !node) {
        fm_err_set(err, FM_ERR_INVALID,
                   "repeat_offender needs node: the one fleet_status lists under"
                   " guardrails.repeat_offenders");
        return NULL;
    }
    if (breaker ? fm_breaker_reset(ctx, by, reason, err) : fm_offender_clear(ctx, node, by, err))
        return NULL;
    json_t *out = json_pack("{s:s, s:b, s:s, s:s}", "guardrail", which, "reset", true, "by", by,
                            "reason", reason);
    if (node) json_object_set_new(out, "node", json_string(node));
    return out;
}
