/* Multi round-trip input (2026-07-28): instead of sending the client a
 * request and waiting on the open call, a stateless server answers
 * InputRequiredResult with its questions and a sealed requestState, and
 * the client calls again with inputResponses and that state.
 *
 * Two users: the approval of one plan (fm_mcp_input_approval), on the same
 * terms as the elicitation path (configured, trusted client, declared
 * capability), whose state names the plan, its hash and the caller and is
 * spent once, so a tampered, replayed, expired or foreign state approves
 * nothing; and any handler that needs the client's input (fm_mcp_input*),
 * whose state is bound to the caller and the tool or prompt it came from. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleetmcp/fm_approval.h"
#include "fleetmcp/fm_mcp.h"
#include "fleetmcp/fm_plan.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_util.h"

#define STATE_TTL_MS 120000
#define USED_KEY "mrtr_used:"
#define INPUT_KEY "approve"

/* Who is calling, as far as this server can tell; a state minted for one
 * caller is void for another.  A verified principal is named by its
 * source and subject, so two tokens sharing a client name do not share
 * states. */
void fm_mcp_caller_id(const fm_ctx *ctx, char *out, size_t len)
{
    const fm_session *s = &ctx->session;
    if (s->verified)
        snprintf(out, len, "%s:%s|%s", fm_principal_source_name(s->principal.source),
                 s->principal.subject, s->principal.client_id);
    else
        snprintf(out, len, "%s|%s", fm_session_os_user(s), s->client_name);
}

/* Marks nonce spent; -1 when it already was (a replay) or the store
 * failed.  The mark's primary key decides: of two servers (or hosts)
 * spending one nonce at once, one insert goes in and the other changes
 * nothing, so no write lock is needed (fm_store_begin_rows).  Spent marks
 * older than any live state are pruned here. */
static int spend(fm_ctx *ctx, const char *nonce, fm_err *err)
{
    char key[96];
    snprintf(key, sizeof key, USED_KEY "%s", nonce);
    if (fm_store_begin_rows(&ctx->store, err)) return -1;
    fm_store_setting_prune(&ctx->store, USED_KEY, fm_now_ms() - 2 * STATE_TTL_MS);
    int added = fm_store_setting_add(&ctx->store, key, "1", err);
    if (added < 0) {
        fm_store_rollback(&ctx->store);
        return -1;
    }
    if (!added) {
        fm_store_rollback(&ctx->store);
        return fm_err_set(err, FM_ERR_APPROVAL,
                          "requestState was already used: each approval"
                          " answer counts once; call again without it to be asked anew"),
               -1;
    }
    return fm_store_commit(&ctx->store, err);
}

/* Checks the state the client brought back against the plan the gate
 * just made for these same arguments.  0 when it holds. */
static int state_holds(fm_ctx *ctx, const char *token, const char *plan_id, fm_err *err)
{
    json_t *st = fm_state_open(ctx, token, err);
    if (!st) return -1;
    int rc = -1;
    char caller[300];
    fm_mcp_caller_id(ctx, caller, sizeof caller);
    json_t *plan = fm_plan_get(ctx, plan_id, err);
    if (strcmp(fm_json_str(st, "k", ""), "approval"))
        fm_err_set(err, FM_ERR_APPROVAL, "requestState is not an approval state");
    else if (json_integer_value(json_object_get(st, "exp")) < fm_now_ms())
        fm_err_set(err, FM_ERR_APPROVAL,
                   "requestState expired; call again without it to be"
                   " asked anew");
    else if (strcmp(fm_json_str(st, "caller", ""), caller))
        fm_err_set(err, FM_ERR_APPROVAL, "requestState was issued to another caller");
    else if (!plan || strcmp(fm_json_str(st, "plan", ""), plan_id) ||
             strcmp(fm_json_str(st, "hash", ""), fm_json_str(plan, "hash", "-")))
        fm_err_set(err, FM_ERR_APPROVAL,
                   "requestState is for another plan (or the plan changed)"
                   "; call again without it to be asked about this one");
    else
        rc = spend(ctx, fm_json_str(st, "nonce", ""), err);
    json_decref(plan);
    json_decref(st);
    return rc;
}

int fm_mcp_input_approval(fm_ctx *ctx, const char *plan_id, json_t *ask, char *ap_out)
{
    fm_err err = {0};
    const json_t *p = ctx->mrtr;
    const json_t *state = json_object_get(p, "requestState");
    const json_t *answer = json_object_get(json_object_get(p, "inputResponses"), INPUT_KEY);
    if (state) {
        json_decref(ask);
        const char *action = fm_json_str(answer, "action", "");
        /* The answer (or its absence) only counts with a state that holds;
         * a state is spent even when the human said no. */
        if (!json_is_string(state) || state_holds(ctx, json_string_value(state), plan_id, &err)) {
            fm_mcp_log(ctx, "warning", "gate", "approval of %s: %s", plan_id, err.text);
            return -1;
        }
        if (strcmp(action, "accept") ||
            !json_is_true(json_object_get(json_object_get(answer, "content"), "approve"))) {
            fm_mcp_log(ctx, "notice", "gate", "approval of %s: %s", plan_id,
                       action[0] ? action : "no answer to the approval request");
            return -1;
        }
        char who[FM_APPROVER_LEN];
        snprintf(who, sizeof who, "elicitation:%s", fm_session_who(&ctx->session));
        return fm_approval_record_elicited(ctx, plan_id, who, ap_out, &err) ? -1 : 0;
    }
    /* First round: ask. */
    json_t *plan = fm_plan_get(ctx, plan_id, &err);
    char nonce[33], caller[300];
    fm_random_hex(nonce, 16);
    fm_mcp_caller_id(ctx, caller, sizeof caller);
    json_t *sp = plan ? json_pack("{s:s, s:s, s:s, s:s, s:I, s:s}", "k", "approval", "plan",
                                  plan_id, "hash", fm_json_str(plan, "hash", ""), "caller", caller,
                                  "exp", (json_int_t)(fm_now_ms() + STATE_TTL_MS), "nonce", nonce)
                      : NULL;
    char *tok = sp ? fm_state_seal(ctx, sp, &err) : NULL;
    json_decref(sp);
    json_decref(plan);
    if (!tok) {
        json_decref(ask);
        fm_mcp_log(ctx, "warning", "gate", "cannot ask for approval of %s: %s", plan_id, err.text);
        return -1;
    }
    json_decref(ctx->input_required);
    ctx->input_required =
        json_pack("{s:s, s:{s:{s:s, s:o}}, s:s}", "resultType", "input_required", "inputRequests",
                  INPUT_KEY, "method", "elicitation/create", "params", ask, "requestState", tok);
    free(tok);
    return ctx->input_required ? 1 : -1;
}

/* ---- handlers' input ------------------------------------------------------ */

void fm_mcp_input_begin(fm_ctx *ctx, const json_t *params, const char *target)
{
    ctx->mrtr = params;
    snprintf(ctx->mrtr_target, sizeof ctx->mrtr_target, "%s", target);
}

void fm_mcp_input_end(fm_ctx *ctx)
{
    ctx->mrtr = NULL;
    ctx->mrtr_target[0] = '\0';
    json_decref(ctx->input_required);
    ctx->input_required = NULL;
    json_decref(ctx->mrtr_state);
    ctx->mrtr_state = NULL;
}

int fm_mcp_input_open(fm_ctx *ctx, fm_err *err)
{
    /* Answers are result objects (ElicitResult, CreateMessageResult,
     * ListRootsResult): anything else is refused before a handler sees it. */
    const json_t *ir = json_object_get(ctx->mrtr, "inputResponses");
    const char *k;
    const json_t *v;
    if (ir && !json_is_object(ir))
        return fm_err_set(err, FM_ERR_INVALID, "inputResponses must be an object"), -1;
    json_object_foreach((json_t *)ir, k, v) if (!json_is_object(v)) return fm_err_set(
        err, FM_ERR_INVALID, "inputResponses.%.64s must be a result object", k),
        -1;
    const json_t *rs = json_object_get(ctx->mrtr, "requestState");
    if (!rs) return 0;
    json_t *st = json_is_string(rs) ? fm_state_open(ctx, json_string_value(rs), err) : NULL;
    if (!st) {
        fm_err_set(err, FM_ERR_INVALID, "requestState is not a string");
        return -1;
    }
    /* Approval states are checked against their plan by the gate's path. */
    if (!strcmp(fm_json_str(st, "k", ""), "approval")) {
        json_decref(st);
        return 0;
    }
    char caller[300];
    fm_mcp_caller_id(ctx, caller, sizeof caller);
    int rc = -1;
    if (strcmp(fm_json_str(st, "k", ""), "input") ||
        strcmp(fm_json_str(st, "target", ""), ctx->mrtr_target))
        fm_err_set(err, FM_ERR_INVALID, "requestState belongs to another request");
    else if (strcmp(fm_json_str(st, "caller", ""), caller))
        fm_err_set(err, FM_ERR_INVALID, "requestState was issued to another caller");
    else if (json_integer_value(json_object_get(st, "exp")) < fm_now_ms())
        fm_err_set(err, FM_ERR_INVALID, "requestState expired; call again without it");
    else
        rc = 0;
    if (rc == 0) ctx->mrtr_state = json_incref(json_object_get(st, "s"));
    json_decref(st);
    return rc;
}

const json_t *fm_mcp_input(const fm_ctx *ctx, const char *key)
{
    return json_object_get(json_object_get(ctx->mrtr, "inputResponses"), key);
}

const json_t *fm_mcp_input_state(const fm_ctx *ctx)
{
    return ctx->mrtr_state;
}

bool fm_mcp_client_can(const fm_ctx *ctx, const char *capability)
{
    if (!ctx->mrtr)
        return !strcmp(capability, "elicitation")
                   ? ctx->session.elicitation
                   : !strcmp(capability, "sampling") && ctx->session.sampling;
    const json_t *caps = json_object_get(json_object_get(ctx->mrtr, "_meta"),
                                         "io.modelcontextprotocol/clientCapabilities");
    return json_object_get(caps, capability) != NULL;
}

json_t *fm_mcp_input_required(fm_ctx *ctx, json_t *requests, json_t *state, fm_err *err)
{
    if (!ctx->mrtr) {
        json_decref(requests);
        json_decref(state);
        fm_err_set(err, FM_ERR_UNAVAILABLE,
                   "this request cannot ask for input: only"
                   " 2026-07-28 requests take multi round-trip answers");
        return NULL;
    }
    char caller[300];
    fm_mcp_caller_id(ctx, caller, sizeof caller);
    json_t *sp = json_pack("{s:s, s:s, s:s, s:I, s:o}", "k", "input", "target", ctx->mrtr_target,
                           "caller", caller, "exp", (json_int_t)(fm_now_ms() + STATE_TTL_MS), "s",
                           state ? state : json_null());
    char *tok = sp ? fm_state_seal(ctx, sp, err) : NULL;
    json_decref(sp);
    json_t *r = tok ? json_pack("{s:s, s:o, s:s}", "resultType", "input_required", "inputRequests",
                                requests, "requestState", tok)
                    : (json_decref(requests), NULL);
    free(tok);
    return r;
}

void fm_mcp_require_client(fm_ctx *ctx, const char *capability)
{
    json_decref(ctx->rpc_error_data);
    ctx->rpc_error_data = json_pack("{s:{s:{}}}", "requiredCapabilities", capability);
}
