#include "fleetmcp/fm_gate.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fleetmcp/fm_approval.h"
#include "fleetmcp/fm_approval_roles.h"
#include "fleetmcp/fm_audit.h"
#include "fleetmcp/fm_guardrails.h"
#include "fleetmcp/fm_runbook.h"
#include "fleetmcp/fm_plan.h"
#include "fleetmcp/fm_planner.h"
#include "fleetmcp/fm_policy.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_util.h"
#include "fleetmcp/fm_workflow.h"

#define HOUR_MS 3600000LL
#define DEFAULT_CREATE_PER_HOUR 60
#define DEFAULT_TICKETS_PER_HOUR 20

const char *fm_gate_verdict_name(fm_gate_verdict v)
{
    switch (v) {
    case FM_GATE_ALLOW:
        return "allow";
    case FM_GATE_DENY:
        return "deny";
    case FM_GATE_SHADOW:
        return "shadow";
    }
    return "deny";
}

bool fm_killswitch_engaged(fm_ctx *ctx, char *why, size_t whylen)
{
    char val[256];
    struct stat sb;
    if (ctx->cfg.killswitch_file[0] && stat(ctx->cfg.killswitch_file, &sb) == 0) {
        snprintf(why, whylen, "kill switch file %s exists", ctx->cfg.killswitch_file);
        return true;
    }
    /* Fail closed here too: only "no such file" says it is absent.  A
     * shared mount that does not answer (EIO, ESTALE), a path that cannot
     * be searched or a symlink loop may hide one. */
    if (ctx->cfg.killswitch_file[0] && errno != ENOENT && errno != ENOTDIR) {
        snprintf(why, whylen,
                 "kill switch file %s cannot be checked (%s), so it counts as present; fix"
                 " the path or its mount",
                 ctx->cfg.killswitch_file, strerror(errno));
        return true;
    }
    int got = fm_store_setting_get(&ctx->store, "killswitch", val, sizeof val);
    if (got == 0 && !strncmp(val, "engaged", 7)) {
        snprintf(why, whylen, "kill switch engaged in the store (%s)", val);
        return true;
    }
    /* Fail closed: a store that cannot be read (another process holds it
     * locked) may well say "engaged". */
    if (got == -2) {
        snprintf(why, whylen,
                 "the kill switch setting cannot be read (%s), so it counts as"
                 " engaged",
                 fm_db_errmsg(ctx->store.db));
        return true;
    }
    return false;
}

long long fm_gate_rate_limit(const fm_ctx *ctx, int ti)
{
    const fm_tool_def *t = &fm_tool_table[ti];
    /* Turning safety on is never rate-limited, whatever the config says. */
    if (t->autonomy != FM_AUTONOMY_CREATE || (t->flags & FM_TOOL_NEVER_RATE_LIMITED)) return 0;
    json_t *v = json_object_get(fm_config_section(&ctx->cfg, "rate_limits"), t->name);
    if (json_is_integer(v)) return json_integer_value(v);
    if (t->rate_config) {
        /* "section.key": the generator checked the shape. */
        char section[64];
        const char *dot = strchr(t->rate_config, '.');
        size_t n = dot ? (size_t)(dot - t->rate_config) : 0;
        if (dot && n < sizeof section) {
            memcpy(section, t->rate_config, n);
            section[n] = '\0';
            return fm_cfg_int(fm_config_section(&ctx->cfg, section), dot + 1, t->rate_per_hour);
        }
    }
    return t->rate_per_hour;
}

static bool in_list(const json_t *list, const char *name)
{
    size_t i;
    json_t *v;
    json_array_foreach(list, i,
                       v) if (json_is_string(v) && !strcmp(json_string_value(v), name)) return true;
    return false;
}

bool fm_gate_visible(const fm_ctx *ctx, int ti, char *why, size_t whylen)
{
    const fm_tool_def *t = &fm_tool_table[ti];
    const json_t *enabled = json_object_get(ctx->cfg.root, "enabled_tools");
    const json_t *disabled = json_object_get(ctx->cfg.root, "disabled_tools");
    if (json_array_size(enabled) && !in_list(enabled, t->name)) {
        if (why)
            snprintf(why, whylen, "%s is not in enabled_tools in this server's config", t->name);
        return false;
    }
    if (in_list(disabled, t->name)) {
        if (why) snprintf(why, whylen, "%s is in disabled_tools in this server's config", t->name);
        return false;
    }
    if (ctx->cfg.read_only && t->autonomy != FM_AUTONOMY_READ &&
        !(t->flags & FM_TOOL_READ_ONLY_EXEMPT)) {
        if (why) snprintf(why, whylen, "this server is read_only: %s changes things", t->name);
        return false;
    }
    return true;
}

bool fm_gate_scope_ok(const fm_ctx *ctx, int ti, char *why, size_t whylen)
{
    const fm_tool_def *t = &fm_tool_table[ti];
    if (!ctx->session.verified || fm_principal_allows(&ctx->session.principal, t->autonomy))
        return true;
    if (why) {
        const char *scope = ctx->auth ? fm_auth_scope_name(ctx->auth, t->autonomy) : NULL;
        snprintf(why, whylen,
                 "%s is a %s tool and this token lacks the scope %s; ask the authorization"
                 " server for a token that includes it",
                 t->name, fm_autonomy_name(t->autonomy), scope ? scope : "for that level");
    }
    return false;
}

/* Config hints for each backend bit, in FM_BACKEND_* order. */
static const struct {
    unsigned bit;
    const char *key, *hint;
} backend_hints[] = {
    {FM_BACKEND_SLURM, "slurm", "slurm.backend: rest or cli"},
    {FM_BACKEND_METRICS, "metrics", "metrics.url of Prometheus or Grafana"},
    {FM_BACKEND_SSH, "ssh", "ssh.user, key_file, known_hosts and hosts"},
    {FM_BACKEND_TICKETS, "tickets", "tickets.backend: local or jira"},
};

int fm_gate_backends(const fm_ctx *ctx, int ti, fm_err *err)
{
    unsigned open =
        (ctx->be.slurm ? FM_BACKEND_SLURM : 0) | (ctx->be.metrics ? FM_BACKEND_METRICS : 0) |
        (ctx->be.exec ? FM_BACKEND_SSH : 0) | (ctx->be.tickets ? FM_BACKEND_TICKETS : 0);
    unsigned missing = fm_tool_table[ti].backends & ~open;
    for (size_t i = 0; i < sizeof backend_hints / sizeof *backend_hints; i++)
        if (missing & backend_hints[i].bit) {
            fm_backend_missing(err, backend_hints[i].key, backend_hints[i].hint);
            return -1;
        }
    return 0;
}

static void deny(fm_gate_decision *d, fm_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void deny(fm_gate_decision *d, fm_code code, const char *fmt, ...)
{
    d->verdict = FM_GATE_DENY;
    d->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->reason, sizeof d->reason, fmt, ap);
    va_end(ap);
}

/* The call does what a pending reboot does (a GPU reset): by the tool's
 * flag, or by a step of its runbook. */
static bool superseded_by_reboot(const fm_tool_def *t, const json_t *content)
{
    if (t->flags & FM_TOOL_SUPERSEDED_BY_REBOOT) return true;
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(content, "steps"), i, s)
    {
        const fm_action_def *a = fm_action_find(fm_json_str(s, "action", ""));
        if (a && a->superseded_by_reboot) return true;
    }
    return false;
}

/* Guardrail verdicts for a planned node action (new array), or NULL with
 * err when live state cannot be read. */
static json_t *guard(fm_ctx *ctx, const fm_tool_def *t, const json_t *args, const json_t *content,
                     bool approved, bool attempt, bool *ok, fm_gate_decision *d, fm_err *err)
{
    /* Running a plan whose workflow is already open resumes that
     * workflow; it is not a second one on the node.  Likewise a
     * single-node tool called again where its own one-step workflow's
     * owner died: the call resumes that workflow (the handler claims it). */
    char own[FM_WORKFLOW_ID_LEN] = "";
    const char *plan = fm_json_str(args, "plan_id", NULL);
    if ((t->flags & FM_TOOL_RUNS_PLAN) && plan && fm_workflow_open_for_plan(ctx, plan, own))
        own[0] = '\0';
    if (t->action && !own[0] && fm_workflow_dead_tool_run(ctx, t->name, args, own) == 0)
        snprintf(d->resume_workflow, sizeof d->resume_workflow, "%s", own);
    const char *rb_id = fm_json_str(content, "runbook", NULL);
    const json_t *rb_doc = NULL;
    if (rb_id) {
        if (!ctx->runbooks && fm_runbooks_load(ctx, err)) return NULL;
        const fm_runbook *rb = fm_runbook_find(ctx->runbooks, rb_id);
        if (!rb) {
            fm_err_set(err, FM_ERR_NOT_FOUND, "runbook %s is no longer in the catalog", rb_id);
            return NULL;
        }
        rb_doc = rb->doc;
    }
    fm_guard_req req = {.action = rb_id ? rb_id : t->name,
                        .nodes = json_object_get(content, "nodes"),
                        .fault_class = fm_json_str(content, "fault_class", NULL),
                        .runbook = rb_doc,
                        .takes_capacity = (t->flags & FM_TOOL_TAKES_CAPACITY) != 0,
                        .resume = (t->flags & FM_TOOL_RETURNS_CAPACITY) != 0,
                        .approved = approved,
                        .destructive = (t->flags & FM_TOOL_DESTRUCTIVE) != 0,
                        .attempt = attempt,
                        .superseded_by_reboot = superseded_by_reboot(t, content),
                        .workflow_id = own[0] ? own : NULL};
    return fm_guard_check(ctx, &req, ok, err);
}

/* why gets the reason an approval is needed (may be NULL). */
#define WHY(...) ((why ? (void)snprintf(why, len, __VA_ARGS__) : (void)0), true)

bool fm_gate_approval_why(fm_ctx *ctx, const fm_tool_def *t, const json_t *content, char *why,
                          size_t len)
{
    if (t->autonomy != FM_AUTONOMY_CANARY)
        return t->autonomy == FM_AUTONOMY_HITL ? WHY("%s is a hitl tool", t->name) : false;
    if (ctx->cfg.mode == FM_MODE_SHADOW) return WHY("mode is shadow");
    /* The runbook as it is now: a hitl runbook, or an action that always
     * needs a human (cancelling jobs), needs one even on a canary. */
    const char *rb_id = fm_json_str(content, "runbook", NULL);
    if (rb_id) {
        fm_err err = {0};
        if (!ctx->runbooks && fm_runbooks_load(ctx, &err))
            return WHY("the runbook catalog cannot be read: %s", err.text);
        const fm_runbook *rb = fm_runbook_find(ctx->runbooks, rb_id);
        if (!rb) return WHY("runbook %s is no longer in the catalog", rb_id);
        if (rb->autonomy == FM_AUTONOMY_HITL) return WHY("runbook %s is hitl", rb_id);
    }
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(content, "steps"), i, s)
    {
        const char *action = fm_json_str(s, "action", "");
        const fm_action_def *a = fm_action_find(action);
        if (a && a->needs_approval_always)
            return WHY("step action %s always needs a human", action);
    }
    const json_t *nodes = json_object_get(content, "nodes");
    if (!fm_guard_all_canary(ctx, nodes)) return WHY("not every node is a canary node");
    /* A runbook repair acts on a diagnosis: without a recorded one of the
     * same class, confident enough to act and fresh, a human decides. */
    if (rb_id) {
        const char *fc = fm_json_str(content, "fault_class", NULL);
        json_t *n;
        json_array_foreach(nodes, i, n)
        {
            bool enough = false;
            char b[600];
            json_decref(fm_diagnosis_basis(ctx, json_string_value(n), fc, &enough, b, sizeof b));
            if (!enough) return WHY("%s", b);
        }
    }
    return false;
}

bool fm_gate_approval_needed(fm_ctx *ctx, const fm_tool_def *t, const json_t *content)
{
    return fm_gate_approval_why(ctx, t, content, NULL, 0);
}

/* What releasing content takes (approvals.two_person, require_role, the
 * runbook's approval_role, separate_creator), decided here and nowhere
 * else.  creator is who created the plan, as fm_session_who named them.
 * -1 with err when the plan's runbook cannot be read: its role is then
 * unknown, and nothing is released. */
static int approval_need(fm_ctx *ctx, const fm_tool_def *t, const json_t *content,
                         const json_t *verdicts, const char *creator, fm_approval_need *need,
                         fm_err *err)
{
    const json_t *approvals = fm_config_section(&ctx->cfg, "approvals");
    const char *rb_id = fm_json_str(content, "runbook", NULL);
    const char *role = NULL;
    if (rb_id) {
        if (!ctx->runbooks && fm_runbooks_load(ctx, err)) return -1;
        const fm_runbook *rb = fm_runbook_find(ctx->runbooks, rb_id);
        if (!rb) {
            fm_err_set(err, FM_ERR_NOT_FOUND, "runbook %.64s is no longer in the catalog", rb_id);
            return -1;
        }
        role = fm_json_str(rb->doc, "approval_role", NULL);
    }
    json_t *emergency = fm_emergency_active(ctx);
    fm_approval_need_for(approvals, json_array_size(json_object_get(content, "nodes")),
                         emergency != NULL, role, creator, need);
    json_decref(emergency);
    fm_approval_need_action(approvals, rb_id ? rb_id : t->name, need);
    /* A guardrail that judged the plan may name whose approval releases
     * it (guardrails.approval_roles): data, like the runbook's role. */
    fm_approval_need_guardrails(
        json_object_get(fm_config_section(&ctx->cfg, "guardrails"), "approval_roles"), verdicts,
        need);
    int starts = fm_emergency_approvals_required(ctx);
    if ((t->flags & FM_TOOL_STARTS_EMERGENCY) && starts > need->people) {
        need->people = starts;
        snprintf(need->why, sizeof need->why,
                 "emergency.approvals_required for starting emergency mode");
    }
    return 0;
}

/* The name part of a plan's created_by ("human:NAME",
 * "agent:NAME"). */
static const char *creator_of(const json_t *plan)
{
    const char *who = fm_json_str(plan, "created_by", "");
    const char *colon = strchr(who, ':');
    return colon ? colon + 1 : who;
}

/* Consumes approval for content (hash) if the plan's approvers, taken
 * together, meet what it takes; fills d either way. */
static void release(fm_ctx *ctx, const fm_tool_def *t, const json_t *content,
                    const json_t *verdicts, const char *hash, const char *approval,
                    fm_gate_decision *d)
{
    fm_err err = {0};
    char plan_id[FM_APPROVAL_ID_LEN], approvers[sizeof d->approvers] = "";
    json_t *plan = NULL;
    fm_approval_need need;
    if (fm_approval_plan_of(ctx, approval, plan_id, &err) ||
        !(plan = fm_plan_get(ctx, plan_id, &err))) {
        deny(d, FM_ERR_APPROVAL, "%s refused: %s", t->name, err.text);
        return;
    }
    int rc = approval_need(ctx, t, content, verdicts, creator_of(plan), &need, &err);
    json_decref(plan);
    if (rc || fm_approval_consume(ctx, approval, hash, &need, plan_id, approvers, sizeof approvers,
                                  &err)) {
        deny(d, FM_ERR_APPROVAL, "%s refused: %s", t->name, err.text);
        return;
    }
    snprintf(d->approval_id, sizeof d->approval_id, "%s", approval);
    snprintf(d->plan_id, sizeof d->plan_id, "%s", plan_id);
    memcpy(d->approvers, approvers, sizeof approvers);
    /* The people, not only the approval id, go on the audit row: in a
     * column of their own (approvers), and in the reason for a reader. */
    snprintf(d->reason, sizeof d->reason, "approved by %s (approval %s, plan %s)", approvers,
             approval, plan_id);
}

/* A call with approval_id runs if that approval is for exactly this plan
 * (same hash), unused and unexpired; it is consumed atomically.  Without
 * one, the call becomes a plan and the refusal names the command a human
 * runs to approve it. */
static void decide_approval(fm_ctx *ctx, const fm_tool_def *t, const json_t *args, bool shadow,
                            fm_gate_decision *d)
{
    fm_err err = {0};
    json_t *detail = NULL;
    char need_why[600] = "";
    json_t *content = fm_planner_content(ctx, t, args, &detail, &err);
    if (!content) {
        deny(d, err.code ? err.code : FM_ERR_DENIED, "%s cannot be planned: %s", t->name, err.text);
        return;
    }
    char hash[65];
    fm_plan_hash(content, hash);
    const char *approval = fm_json_str(args, "approval_id", NULL);
    /* Node actions pass the guardrails on live state first, with or
     * without an approval: an approval never overrides a guardrail, and a
     * refused call does not use its approval up. */
    if (t->flags & FM_TOOL_NODE_ACTION) {
        bool ok = false;
        /* Outside shadow mode this is automation asking to act (a plan is
         * only repair_plan's dry run): a drain over the share trips the
         * circuit breaker, approved or not. */
        bool attempt = !shadow;
        json_t *verdicts = guard(ctx, t, args, content, approval != NULL, attempt, &ok, d, &err);
        if (!verdicts) {
            deny(d, err.code, "%s refused: live state unavailable for the guardrails: %s", t->name,
                 err.text);
            goto out;
        }
        json_object_set_new(detail, "guardrails", verdicts);
        if (!ok) {
            char why[600];
            fm_guard_explain(verdicts, why, sizeof why);
            deny(d, FM_ERR_GUARDRAIL, "%s refused by %s", t->name, why);
            goto out;
        }
        if (!approval && !fm_gate_approval_why(ctx, t, content, need_why, sizeof need_why)) {
            snprintf(d->reason, sizeof d->reason,
                     "canary: every node is a canary node, all guardrails pass%s",
                     json_object_get(content, "runbook") ? " and a fresh diagnosis reached act"
                                                         : "");
            goto out;
        }
    }
    if (approval && shadow) {
        /* Shadow mode runs nothing, so it must not use an approval up; and
         * a replayed approval belongs to another store.  It answers "what
         * would happen if this approval is valid". */
        snprintf(d->reason, sizeof d->reason, "approval %s assumed valid", approval);
        goto out;
    }
    if (approval) {
        release(ctx, t, content, json_object_get(detail, "guardrails"), hash, approval, d);
        goto out;
    }
    char plan_id[FM_PLAN_ID_LEN];
    if (fm_plan_find_proposed(ctx, hash, plan_id) &&
        fm_plan_create(ctx, content, detail, plan_id, &err)) {
        deny(d, err.code, "%s needs an approval, and recording its plan failed: %s", t->name,
             err.text);
        goto out;
    }
    snprintf(d->plan_id, sizeof d->plan_id, "%s", plan_id);
    fm_approval_need need;
    char takes[512] = "", roles[200] = "";
    if (approval_need(ctx, t, content, json_object_get(detail, "guardrails"),
                      fm_session_who(&ctx->session), &need, &err) == 0 &&
        (need.people > 1 || need.role[0] || need.guard_role[0])) {
        fm_approval_need_roles(&need, roles, sizeof roles);
        snprintf(takes, sizeof takes,
                 " It takes %d distinct %s%.199s%s%.199s%s, each running that"
                 " command.",
                 need.people, need.people > 1 ? "people" : "person", roles, need.why[0] ? " (" : "",
                 need.why, need.why[0] ? ")" : "");
    }
    /* A canary that could have run alone says what stopped it; bounded,
     * so the approve command after it always fits the reason. */
    char because[340] = "";
    if (t->autonomy == FM_AUTONOMY_CANARY && need_why[0])
        snprintf(because, sizeof because, ": %.330s", need_why);
    deny(d, FM_ERR_APPROVAL,
         "%s needs a human approval (autonomy %s, risk %s%s). Plan %s records what would run."
         " A human approves it with: mcp-cli approve %s --key APPROVER_KEY --approver NAME"
         " ;%s then call %s again with the same arguments plus approval_id set to the id it"
         " prints",
         t->name, fm_autonomy_name(t->autonomy), fm_json_str(detail, "risk", "?"), because, plan_id,
         plan_id, takes, t->name);
out:
    json_decref(content);
    json_decref(detail);
}

bool fm_gate_admit(fm_ctx *ctx, int ti, fm_gate_decision *d)
{
    memset(d, 0, sizeof *d);
    const fm_tool_def *t = &fm_tool_table[ti];
    d->verdict = FM_GATE_ALLOW;

    /* 1. visible: enabled_tools, disabled_tools and read_only.  tools/list
     *    asks the same question, but a caller that bypasses it (the
     *    workflow engine) is held to it too. */
    char why[600];
    if (!fm_gate_visible(ctx, ti, why, sizeof why)) {
        deny(d, FM_ERR_DENIED, "%s; it cannot be called here", why);
        return false;
    }
    /* 1b. the verified caller's scopes grant the tool's level.  Asked
     *     here, not only by tools/list, so a caller that names a tool it
     *     was not shown is refused with the scope to ask for. */
    if (!fm_gate_scope_ok(ctx, ti, why, sizeof why)) {
        deny(d, FM_ERR_DENIED, "%s", why);
        d->scope_needed = (int)t->autonomy + 1;
        return false;
    }
    return true;
}

static void decide(fm_ctx *ctx, int ti, const json_t *args, unsigned exempt, fm_gate_decision *d);

void fm_gate_decide(fm_ctx *ctx, int ti, const json_t *args, fm_gate_decision *d)
{
    decide(ctx, ti, args, 0, d);
}

void fm_gate_decide_internal(fm_ctx *ctx, int ti, const json_t *args, unsigned exempt,
                             fm_gate_decision *d)
{
    decide(ctx, ti, args, exempt & (FM_GATE_EXEMPT_KILLSWITCH | FM_GATE_EXEMPT_RATE_LIMIT), d);
}

static void decide(fm_ctx *ctx, int ti, const json_t *args, unsigned exempt, fm_gate_decision *d)
{
    if (!fm_gate_admit(ctx, ti, d)) return;
    const fm_tool_def *t = &fm_tool_table[ti];
    char why[600];
    /* 2. every backend the tool needs is configured. */
    fm_err err = {0};
    if (fm_gate_backends(ctx, ti, &err)) {
        deny(d, err.code, "%s", err.text);
        return;
    }
    /* 3. reads always run. */
    if (t->autonomy == FM_AUTONOMY_READ) return;

    /* 4. kill switch.  Exempt tools pass: engaging again is harmless,
     *    releasing is exactly what a human must be able to do (it still
     *    needs an approval below), and recording an approval changes
     *    nothing in the fleet. */
    bool exempt_ks = (exempt & FM_GATE_EXEMPT_KILLSWITCH) && t->autonomy == FM_AUTONOMY_CREATE;
    if (!(t->flags & FM_TOOL_KILLSWITCH_EXEMPT) && !exempt_ks &&
        fm_killswitch_engaged(ctx, why, sizeof why)) {
        deny(d, FM_ERR_DENIED,
             "%s refused: %s; every mutation is stopped. A human releases it with"
             " `mcp-cli call killswitch_release` and an approval, or by removing the file",
             t->name, why);
        return;
    }
    /* 5. rate limit for create tools.  An exempt internal call is not
     *    counted either: it writes no audit row under the tool's name. */
    if (t->autonomy == FM_AUTONOMY_CREATE && (exempt & FM_GATE_EXEMPT_RATE_LIMIT)) return;
    if (t->autonomy == FM_AUTONOMY_CREATE) {
        long long limit = fm_gate_rate_limit(ctx, ti), oldest = 0;
        if (limit > 0) {
            int64_t oldest_ms = 0;
            long long used =
                fm_audit_allowed_since(&ctx->store, t->name, fm_now_ms() - HOUR_MS, &oldest_ms);
            oldest = oldest_ms;
            if (used >= limit) {
                char next[32];
                fm_iso_time(oldest + HOUR_MS, next);
                deny(d, FM_ERR_RATE_LIMITED,
                     "%s refused: %lld of %lld allowed calls in the last hour; the next is"
                     " allowed at %s (raise rate_limits.%s in the config if this is expected)",
                     t->name, used, limit, next, t->name);
                return;
            }
        }
        return;
    }
    /* 6 and 7. hitl and canary need an approval bound to the exact plan,
     * and node actions pass the guardrails.  In shadow mode the whole
     * decision is still taken, so the recommendation says what would have
     * happened, but nothing runs. */
    bool shadow = ctx->cfg.mode == FM_MODE_SHADOW;
    decide_approval(ctx, t, args, shadow, d);
    if (!shadow) return;
    char what[1024];
    if (d->verdict == FM_GATE_ALLOW) {
        d->code = FM_ERR_DENIED;
        snprintf(what, sizeof what,
                 "mode is shadow: %s would run%s%s; it was recorded as a"
                 " recommendation and nothing changed (set mode: canary or fleet to act)",
                 t->name, d->reason[0] ? ": " : "", d->reason);
    } else {
        /* The code word it would have had, so replay can compare it. */
        snprintf(what, sizeof what,
                 "mode is shadow, and nothing ran; it would have been"
                 " refused with %s: %s",
                 fm_strerror(d->code), d->reason);
    }
    d->verdict = FM_GATE_SHADOW;
    snprintf(d->reason, sizeof d->reason, "%.760s", what);
}
