/* One tools/call: input schema → gate → audit intent → handler → output
 * schema → audit result.  Every path, refusals included, leaves exactly
 * one audit row (reads) or an intent plus a result row (mutations). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fleetmcp/fm_audit.h"
#include "fleetmcp/fm_approval.h"
#include "fleetmcp/fm_gate.h"
#include "fleetmcp/fm_plan.h"
#include "fleetmcp/fm_policy.h"
#include "fleetmcp/fm_mcp.h"
#include "fleetmcp/fm_registry.h"
#include "fleetmcp/fm_schema.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_util.h"

json_t *fm_result_error(const fm_err *err)
{
    char text[600];
    snprintf(text, sizeof text, "%s: %s", fm_strerror(err->code), err->text);
    json_t *r =
        json_pack("{s:[{s:s, s:s}], s:b}", "content", "type", "text", "text", text, "isError", 1);
    if (!r) /* text was not valid UTF-8: keep the code word at least */
        r = json_pack("{s:[{s:s, s:s}], s:b}", "content", "type", "text", "text",
                      fm_strerror(err->code), "isError", 1);
    return r;
}

/* The result with its text already dumped (steals structured).  Without
 * structured, content only: the caller splices structuredContent in.
 * Built directly rather than with json_pack (which parses its format on
 * every call), and the text is taken unchecked: it is jansson's own dump,
 * valid UTF-8 by construction, and checking it costs a pass over every
 * byte of the result. */
static json_t *result_with_text(json_t *structured, const char *text)
{
    json_t *r = json_object(), *content = json_array(), *item = json_object();
    if (!r || !content || !item ||
        json_object_set_new_nocheck(item, "type", json_string_nocheck("text")) ||
        json_object_set_new_nocheck(item, "text", json_string_nocheck(text ? text : "{}")) ||
        json_array_append(content, item) || json_object_set_nocheck(r, "content", content)) {
        json_decref(r), json_decref(content), json_decref(item), json_decref(structured);
        return NULL;
    }
    json_decref(content), json_decref(item);
    if (structured) json_object_set_new_nocheck(r, "structuredContent", structured);
    return r;
}

/* A result's text, for content[0] and the audit row. */
static char *result_text(const json_t *structured)
{
    size_t n;
    return fm_json_dumps_compact(structured, JSON_COMPACT | JSON_REAL_PRECISION(15), &n);
}

json_t *fm_result_ok(json_t *structured)
{
    char *text = result_text(structured);
    json_t *r = result_with_text(structured, text);
    free(text);
    return r;
}

/* A call whose audit row could not be written: it fails, and says what
 * happened, rather than answer with no trace in the log.  `what` is what
 * the call had come to (refused, ran...). */
/* A refused or failed call's result; the code goes to ctx->last_err_code,
 * where fm_tools_call_audited (and a task's runner) read it: the text is
 * for people. */
static json_t *refused(fm_ctx *ctx, const fm_err *err)
{
    ctx->last_err_code = err->code;
    return fm_result_error(err);
}

static json_t *unaudited(fm_ctx *ctx, const fm_tool_def *t, const fm_err *aerr, const char *what)
{
    fm_err e = {0};
    fm_err_set(&e, FM_ERR_IO,
               "%s %s, but its audit row could not be written (%s): every call leaves an audit"
               " row, so this one fails; retry when the store is writable",
               t->name, what, aerr->text[0] ? aerr->text : "store error");
    return refused(ctx, &e);
}

/* The node an action concerns, for the audit row's node column. */
static const char *arg_node(const json_t *args)
{
    const char *n = fm_json_str(args, "node", NULL);
    if (n) return n;
    const json_t *sig = json_object_get(args, "signals");
    return fm_json_str(sig, "node", NULL);
}

/* Asks the client's user to approve plan_id (elicitation/create).  0 with
 * an approval id when accepted; -1 when declined, cancelled or unanswered;
 * 1 when the question went into ctx->input_required (stateless). */
static int elicit_approval(fm_ctx *ctx, const fm_tool_def *t, const char *plan_id, const char *why,
                           char ap_out[FM_APPROVAL_ID_LEN])
{
    fm_err err = {0};
    json_t *plan = fm_plan_get(ctx, plan_id, &err);
    if (!plan) return -1;
    char *steps = json_dumps(json_object_get(plan, "steps"), JSON_COMPACT);
    char *nodes = json_dumps(json_object_get(plan, "nodes"), JSON_COMPACT);
    char msg[1400];
    snprintf(msg, sizeof msg,
             "fleetmcp asks a human to approve %s (plan %s, risk %s) on nodes %s. Steps: %.600s."
             " Why approval is needed: %.300s",
             t->name, plan_id, fm_json_str(plan, "risk", "?"), nodes ? nodes : "[]",
             steps ? steps : "[]", why);
    free(steps);
    free(nodes);
    json_decref(plan);
    json_t *params = json_pack("{s:s, s:{s:s, s:{s:{s:s, s:s, s:s}}, s:[s]}}", "message", msg,
                               "requestedSchema", "type", "object", "properties", "approve", "type",
                               "boolean", "title", "Approve this plan", "description",
                               "Run exactly this plan once, now", "required", "approve");
    /* Stateless revisions ask by returning InputRequiredResult (1). */
    if (ctx->mrtr) return fm_mcp_input_approval(ctx, plan_id, params, ap_out);
    json_t *res = fm_mcp_request(ctx, "elicitation/create", params, 120000, &err);
    /* A copy: the answer is freed before the refusal names it. */
    char action[32];
    fm_clip(action, sizeof action, fm_json_str(res, "action", ""));
    bool yes = !strcmp(action, "accept") &&
               json_is_true(json_object_get(json_object_get(res, "content"), "approve"));
    json_decref(res);
    if (!yes) {
        fm_mcp_log(ctx, "notice", "gate", "approval of %s through elicitation: %s", plan_id,
                   err.code    ? err.text
                   : action[0] ? action
                               : "not approved");
        return -1;
    }
    char who[FM_APPROVER_LEN];
    snprintf(who, sizeof who, "elicitation:%s", fm_session_who(&ctx->session));
    return fm_approval_record_elicited(ctx, plan_id, who, ap_out, &err);
}

json_t *fm_tools_call(fm_ctx *ctx, int ti, const json_t *args, const json_t *progress_token,
                      const json_t *meta)
{
    return fm_tools_call_text(ctx, ti, args, progress_token, meta, NULL);
}

/* nested: why fleetmcp makes this call on its own behalf
 * (fm_tools_call_audited), or NULL for a client's call.  A nested call
 * elicits nothing (no client asked) and its audit rows say why it ran. */
static json_t *call_tool(fm_ctx *ctx, int ti, const json_t *args, const json_t *progress_token,
                         const json_t *meta, char **structured_text, const char *nested);

json_t *fm_tools_call_text(fm_ctx *ctx, int ti, const json_t *args, const json_t *progress_token,
                           const json_t *meta, char **structured_text)
{
    /* One read of the emergency setting serves the call's audit rows,
     * its gate and the marker on its result. */
    fm_emergency_call_begin(ctx);
    ctx->call_depth++;
    json_t *r = call_tool(ctx, ti, args, progress_token, meta, structured_text, NULL);
    /* A task's runner ends when the call it continues is done. */
    if (ctx->task_id[0] && ctx->call_depth == ctx->task_depth)
        fm_task_finish(ctx, r, structured_text ? *structured_text : NULL);
    ctx->call_depth--;
    fm_emergency_mark(ctx, r);
    fm_emergency_call_end(ctx);
    return r;
}

json_t *fm_tools_call_internal(fm_call *parent, const char *tool, unsigned exempt,
                               const json_t *args, fm_err *err)
{
    fm_ctx *ctx = parent->ctx;
    int ti = fm_tool_index(tool);
    if (ti < 0)
        return fm_err_set(err, FM_ERR_INTERNAL, "no tool %s in this build; please report", tool),
               NULL;
    const fm_tool_def *t = &fm_tool_table[ti];
    fm_err e = {0};
    const fm_schema *in = fm_registry_schema(ctx, ti, 0, err);
    if (!in) return NULL;
    if (fm_schema_check(in, args, &e))
        return fm_err_set(err, FM_ERR_INVALID, "arguments for %s (called by the workflow): %s",
                          t->name, e.text),
               NULL;
    fm_gate_decision d;
    fm_gate_decide_internal(ctx, ti, args, exempt, &d);
    if (d.verdict != FM_GATE_ALLOW)
        return fm_err_set(err, d.code ? d.code : FM_ERR_DENIED, "%s (called by the workflow): %s",
                          t->name, d.reason),
               NULL;
    /* The parent's intent row and plan: a ticket or bundle it makes is
     * traced to the call that started the workflow. */
    fm_call sub = {.ctx = ctx,
                   .tool = t,
                   .args = args,
                   .audit_id = parent->audit_id,
                   .plan_id = parent->plan_id,
                   .approval_id = parent->approval_id};
    json_t *r = t->handler(&sub, err);
    if (!r) {
        if (!err->code) fm_err_set(err, FM_ERR_INTERNAL, "%s returned no result", t->name);
        return NULL;
    }
    const fm_schema *out = fm_registry_schema(ctx, ti, 1, &e);
    if (!json_is_object(r) || !out || fm_schema_check(out, r, &e)) {
        fm_log("error", "%s result fails its outputSchema: %s", t->name, e.text);
        json_decref(r);
        return fm_err_set(err, FM_ERR_INTERNAL,
                          "%s produced a result that fails its output"
                          " schema (%s); please report this",
                          t->name, e.text),
               NULL;
    }
    return r;
}

json_t *fm_tools_call_audited(fm_ctx *ctx, const char *tool, const json_t *args, const char *why,
                              fm_err *err)
{
    int ti = fm_tool_index(tool);
    if (ti < 0)
        return fm_err_set(err, FM_ERR_INTERNAL, "no tool %s in this build; please report", tool),
               NULL;
    fm_emergency_call_begin(ctx);
    ctx->call_depth++;
    json_t *r = call_tool(ctx, ti, args, NULL, NULL, NULL, why);
    ctx->call_depth--;
    fm_emergency_call_end(ctx);
    if (!r) return NULL;
    json_t *sc = json_incref(json_object_get(r, "structuredContent"));
    if (!sc) {
        /* Refused or failed (and audited): call_tool left the code in
         * ctx->last_err_code; the result's text is "<WORD>: <text>". */
        fm_code code = ctx->last_err_code ? (fm_code)ctx->last_err_code : FM_ERR_INTERNAL;
        const char *text =
            fm_json_str(json_array_get(json_object_get(r, "content"), 0), "text", "no result");
        size_t n = strlen(fm_strerror(code));
        if (!strncmp(text, fm_strerror(code), n) && text[n] == ':')
            text += n + 1 + (text[n + 1] == ' ');
        fm_err_set(err, code, "%s (%s): %s", tool, why, text);
    }
    json_decref(r);
    return sc;
}

static json_t *call_tool(fm_ctx *ctx, int ti, const json_t *args, const json_t *progress_token,
                         const json_t *meta, char **structured_text, const char *nested)
{
    (void)meta;
    const fm_tool_def *t = &fm_tool_table[ti];
    /* Group commit (HTTP): only what the gate lets through as a read, by
     * the tool's generated autonomy and flags, rides in the batch; a call
     * that writes an intent, runs as a task or changes the mode commits
     * the batch so far and then runs as it would alone. */
    if (ctx->store.batch.armed &&
        (t->autonomy != FM_AUTONOMY_READ ||
         (t->flags & (FM_TOOL_TASK | FM_TOOL_TASK_REQUIRED | FM_TOOL_STARTS_EMERGENCY))))
        fm_audit_batch_flush(ctx);
    int64_t t0 = fm_mono_us();
    json_t *empty = NULL;
    if (!args) args = empty = json_object();
    fm_err err = {0};
    fm_audit_rec rec = {.phase = "call",
                        .tool = t->name,
                        .args = args,
                        .autonomy = fm_autonomy_name(t->autonomy),
                        .node = arg_node(args),
                        .reason = nested};
    json_t *result = NULL;
    ctx->last_err_code = 0;

    /* The gate's first steps (visible, scope) need no arguments and come
     * before the schema: a token without the scope is told that, not
     * which argument was wrong (fm_gate.h). */
    fm_gate_decision d;
    bool admitted = fm_gate_admit(ctx, ti, &d);
    /* Arguments that fail the schema are a tool error the model can fix,
     * not a protocol error (MCP: isError result). */
    const fm_schema *in_schema = admitted ? fm_registry_schema(ctx, ti, 0, &err) : NULL;
    if (admitted && !in_schema) {
        json_decref(empty);
        return refused(ctx, &err);
    }
    if (admitted && fm_schema_check(in_schema, args, &err)) {
        fm_err e2 = {0};
        fm_err_set(&e2, FM_ERR_INVALID, "arguments for %s: %s", t->name, err.text);
        rec.decision = "invalid";
        rec.error_code = fm_strerror(e2.code);
        rec.error = e2.text;
        rec.duration_us = fm_mono_us() - t0;
        fm_err aerr = {0};
        bool logged = fm_audit_append(ctx, &rec, &aerr) > 0;
        json_decref(empty);
        return logged ? refused(ctx, &e2)
                      : unaudited(ctx, t, &aerr, "was refused (invalid arguments)");
    }

    if (admitted) fm_gate_decide(ctx, ti, args, &d);
    /* The second approval path: ask the user of a trusted client, then
     * take the whole decision again with the approval it gave. */
    json_t *elicited = NULL;
    if (!nested && d.verdict == FM_GATE_DENY && d.code == FM_ERR_APPROVAL && d.plan_id[0] &&
        !json_object_get(args, "approval_id") && fm_approval_elicitation_allowed(ctx)) {
        char ap[FM_APPROVAL_ID_LEN];
        if (elicit_approval(ctx, t, d.plan_id, d.reason, ap) == 0) {
            elicited = json_deep_copy(args);
            json_object_set_new(elicited, "approval_id", json_string(ap));
            args = elicited;
            rec.args = args;
            fm_gate_decide(ctx, ti, args, &d);
        }
    }
    rec.decision = fm_gate_verdict_name(d.verdict);
    rec.reason = d.reason[0] ? d.reason : NULL;
    char nested_reason[sizeof d.reason + 256];
    if (nested) {
        snprintf(nested_reason, sizeof nested_reason, "%.250s%s%s", nested, d.reason[0] ? "; " : "",
                 d.reason);
        rec.reason = nested_reason;
    }
    rec.plan_id = d.plan_id[0] ? d.plan_id : NULL;
    rec.approval_id = d.approval_id[0] ? d.approval_id : NULL;
    rec.approvers = d.approvers[0] ? d.approvers : NULL;
    if (d.verdict != FM_GATE_ALLOW) {
        fm_mcp_log(ctx, "notice", "gate", "%s %s: %s", t->name,
                   d.verdict == FM_GATE_SHADOW ? "recorded (shadow)" : "refused", d.reason);
        fm_err_set(&err, d.code, "%s", d.reason);
        rec.error_code = fm_strerror(d.code);
        rec.error = err.text;
        rec.duration_us = fm_mono_us() - t0;
        fm_err aerr = {0};
        int64_t row = fm_audit_append(ctx, &rec, &aerr);
        /* Over HTTP a missing scope is answered 403 with the scope to ask
         * for (step-up), after the refusal is recorded; not a nested
         * call's: the client's own call was allowed. */
        if (d.scope_needed && ctx->xc && !nested) ctx->xc->step_up = d.scope_needed;
        if (row <= 0) {
            json_decref(empty);
            json_decref(elicited);
            return unaudited(ctx, t, &aerr,
                             d.verdict == FM_GATE_SHADOW ? "was recorded as a shadow"
                                                           " recommendation and nothing ran"
                                                         : "was refused and nothing ran");
        }
        if (d.verdict == FM_GATE_SHADOW) {
            /* Say where the recommendation is recorded: replay and the
             * shadow agreement metric read it back. */
            fm_err e2 = {0};
            fm_err_set(&e2, FM_ERR_SHADOW, "%s (audit row %lld)", d.reason, (long long)row);
            json_decref(empty);
            json_decref(elicited);
            return refused(ctx, &e2);
        }
        json_decref(empty);
        json_decref(elicited);
        if (ctx->input_required) {
            ctx->last_err_code = d.code;
            json_t *ask = ctx->input_required;
            ctx->input_required = NULL;
            return ask;
        }
        return refused(ctx, &err);
    }

    /* A mutation's intent is committed before any side effect, so a crash
     * mid-call still leaves a trace of what was attempted. */
    bool mutates = t->autonomy != FM_AUTONOMY_READ;
    int64_t intent = 0;
    if (mutates) {
        rec.phase = "intent";
        /* The gate counted; the intent re-counts in its own transaction,
         * where a concurrent process cannot slip in between. */
        if (t->autonomy == FM_AUTONOMY_CREATE) rec.rate_limit = fm_gate_rate_limit(ctx, ti);
        intent = fm_audit_append(ctx, &rec, &err);
        rec.rate_limit = 0;
        if (intent < 0) {
            json_t *refusal = NULL;
            if (err.code == FM_ERR_RATE_LIMITED) {
                rec.phase = "call";
                rec.decision = fm_gate_verdict_name(FM_GATE_DENY);
                rec.error_code = fm_strerror(err.code);
                rec.error = err.text;
                fm_err aerr = {0};
                refusal =
                    fm_audit_append(ctx, &rec, &aerr) > 0
                        ? refused(ctx, &err)
                        : unaudited(ctx, t, &aerr, "was refused (rate limit) and nothing ran");
            }
            json_decref(empty);
            json_decref(elicited);
            return refusal ? refusal : refused(ctx, &err);
        }
    }

    fm_call call = {.ctx = ctx,
                    .tool = t,
                    .args = args,
                    .progress_token = progress_token,
                    .audit_id = intent,
                    .approval_id = rec.approval_id,
                    .plan_id = rec.plan_id,
                    .resume_workflow = d.resume_workflow[0] ? d.resume_workflow : NULL};
    /* A nested call returns to the call it was made for. */
    fm_call *outer = ctx->current;
    ctx->current = &call;
    json_t *structured = t->handler(&call, &err);
    ctx->current = outer;
    ctx->last_cancelled = call.cancelled;
    ctx->last_err_code = structured ? 0 : err.code;
    /* The handler went to the background: its CreateTaskResult is the
     * answer, and the runner writes the audit result when it is done. */
    if (ctx->task_created) {
        ctx->task_created = false;
        json_decref(empty);
        json_decref(elicited);
        return structured;
    }
    if (structured && call.cancelled) {
        json_decref(structured);
        structured = NULL;
        fm_err_set(&err, FM_ERR_CANCELLED, "the client cancelled the call");
    }
    if (structured && !json_is_object(structured)) {
        json_decref(structured);
        structured = NULL;
        fm_err_set(&err, FM_ERR_INTERNAL, "%s returned a non-object result", t->name);
    }
    /* A handler asking the client for input (stateless requests only):
     * its InputRequiredResult is this round's answer. */
    bool asks = structured && ctx->mrtr &&
                !strcmp(fm_json_str(structured, "resultType", ""), "input_required");
    if (structured && !asks) {
        fm_err oerr = {0};
        const fm_schema *out_schema = fm_registry_schema(ctx, ti, 1, &oerr);
        if (!out_schema || fm_schema_check(out_schema, structured, &oerr)) {
            /* A handler bug: never hand a client a result its schema
             * rejects; report it so it gets fixed. */
            fm_log("error", "%s result fails its outputSchema: %s", t->name, oerr.text);
            json_decref(structured);
            structured = NULL;
            fm_err_set(&err, FM_ERR_INTERNAL,
                       "%s produced a result that fails its output"
                       " schema (%s); please report this",
                       t->name, oerr.text);
        }
    }
    if (!structured && err.code == FM_OK)
        fm_err_set(&err, FM_ERR_INTERNAL, "%s returned no result", t->name);
    ctx->last_err_code = structured ? 0 : err.code;
    /* A backend that cannot be reached is what on-call wants to hear of. */
    if (!structured && (err.code == FM_ERR_UNAVAILABLE || err.code == FM_ERR_TIMEOUT ||
                        err.code == FM_ERR_INTERNAL))
        fm_mcp_log(ctx, "error", t->name, "%s: %s", fm_strerror(err.code), err.text);

    /* The whole result goes to the audit row (the audit clips it at
     * FM_AUDIT_MAX_RESULT): replay compares results field by field. */
    char *text = structured ? result_text(structured) : NULL;
    rec.phase = mutates ? "result" : "call";
    rec.call_ref = intent;
    rec.result = text;
    rec.error_code = structured ? NULL : fm_strerror(err.code);
    rec.error = structured ? NULL : err.text;
    rec.duration_us = fm_mono_us() - t0;
    if (mutates) rec.args = NULL; /* the intent row already holds them */
    fm_err aerr = {0};
    bool logged = fm_audit_append(ctx, &rec, &aerr) > 0;
    json_decref(empty);
    json_decref(elicited);
    if (!logged) {
        json_decref(structured);
        free(text);
        char what[96] = "ran";
        if (mutates)
            snprintf(what, sizeof what, "ran (its intent is audit row %lld)", (long long)intent);
        return unaudited(ctx, t, &aerr, what);
    }
    if (!structured) {
        free(text);
        return refused(ctx, &err);
    }
    if (asks || (t->flags & FM_TOOL_CONTENT_RESULT)) {
        free(text);
        if (!asks) json_object_del(structured, "structuredContent");
        return structured;
    }
    if (structured_text && text) {
        /* The caller splices the text in as structuredContent: the tree
         * is not dumped a second time. */
        json_decref(structured);
        *structured_text = text;
        return result_with_text(NULL, text);
    }
    result = result_with_text(structured, text);
    free(text);
    return result;
}
