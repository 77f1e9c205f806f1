/* The kill switch lives in the store's settings, so engaging it in one
 * server process stops mutations in every process sharing the database. */
#include <stdio.h>
#include <string.h>

#include "fm_tools.gen.h"
#include "fleetmcp/fm_gate.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_util.h"

static json_t *set_switch(fm_call *call, bool engage, fm_err *err)
{
    fm_ctx *ctx = call->ctx;
    const char *reason = fm_json_str(call->args, "reason", "");
    char by[208], since[32], value[900];
    snprintf(by, sizeof by, "%s:%s (%s)",
             ctx->session.initiator == FM_INITIATOR_HUMAN ? "human" : "agent",
             fm_session_who(&ctx->session), fm_session_os_user(&ctx->session));
    fm_iso_time(fm_now_ms(), since);
    snprintf(value, sizeof value, "%s: %s; by %s at %s", engage ? "engaged" : "released", reason,
             by, since);
    if (fm_store_setting_set(&ctx->store, "killswitch", value, err)) return NULL;
    char why[600];
    if (!engage && fm_killswitch_engaged(ctx, why, sizeof why)) {
        fm_err_set(err, FM_ERR_CONFLICT,
                   "the store setting is released, but %s: remove that file to release fully", why);
        return NULL;
    }
    return json_pack("{s:b, s:s, s:s, s:s}", "engaged", engage, "reason", reason, "since", since,
                     "by", by);
}

/* Returns a new object. */
json_t *fm_tool_killswitch_engage(fm_call *call, fm_err *err)
{
    return set_switch(call, true, err);
}

/* Returns a new object. */
json_t *fm_tool_killswitch_release(fm_call *call, fm_err *err)
{
    return set_switch(call, false, err);
}
