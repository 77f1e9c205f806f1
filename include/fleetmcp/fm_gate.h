/* The policy gate: the only place that allows or denies a tool call.
 * It reads each tool's generated flags (fm_tool.h), never its name.
 * Checks run in a fixed order, like redis' processCommand():
 *   1. visible: enabled_tools, disabled_tools, and read_only hides every
 *      mutation but FM_TOOL_READ_ONLY_EXEMPT ones (fm_gate_visible; tools/list
 *      and name lookup ask the same question)        DENIED
 *   1b. scope: over HTTP with `auth`, the verified principal's scopes
 *      grant the tool's autonomy level (fm_gate_scope_ok; tools/list
 *      asks it too, a call names the scope to ask for)  DENIED
 *   (steps 1 and 1b come before the arguments are checked against the
 *   input schema (fm_gate_admit): a caller without the scope learns only
 *   that it lacks it, whatever it sent; everything after needs valid
 *   arguments)                                         INVALID
 *   2. every backend the tool needs is configured
 *      (fm_gate_backends)                              NOTCONFIGURED
 *   3. read autonomy: allow
 *   4. kill switch (store setting or file): deny every mutation but
 *      FM_TOOL_KILLSWITCH_EXEMPT ones                  DENIED
 *   5. rate limit for create tools (per tool and hour;
 *      FM_TOOL_NEVER_RATE_LIMITED ones are not counted) RATELIMITED
 *   6. hitl / canary: node actions pass the guardrails on live state
 *      (GUARDRAIL), then need an approval bound to the exact plan, except
 *      canary tools on canary nodes outside shadow mode; a canary runbook
 *      repair also needs a fresh recorded diagnosis of its class at or
 *      above `act` on every node (fm_gate_approval_why)  APPROVAL
 *   7. mode shadow: the decision above is recorded as a recommendation
 *      and nothing runs (verdict FM_GATE_SHADOW)
 * A denial carries a stable code word and a reason an agent can act on.
 *
 * Internal calls (a workflow step calling a tool: diag_bundle calls
 * node_diag_bundle, escalate and ticket call ticket_create) go through
 * fm_tools_call_internal: input schema, then fm_gate_decide_internal, the
 * same steps as the session driving the workflow, minus the exemptions
 * the action's data grants (schemas/actions/NAME.json calls.ticket.exempt):
 * escalate and ticket pass 4 and 5, since a node a repair left out of
 * service must reach a human whatever the kill switch or ticket_create's
 * hourly limit says; those tickets are not counted against the limit
 * either (deduplicated per node and fault class, bounded by the retry
 * budget).  Every other step is held to 1-7 like a client's call.
 * The repeat-offender ticket the gate files itself is a whole audited
 * call instead (fm_tools_call_audited): steps 1-7 with no exemption. */
#ifndef FM_GATE_H
#define FM_GATE_H

#include <jansson.h>
#include <stdbool.h>

#include "fleetmcp/fm_error.h"

struct fm_ctx;

typedef enum {
    FM_GATE_ALLOW = 0,
    FM_GATE_DENY = 1,
    FM_GATE_SHADOW = 2, /* recorded as a recommendation, nothing runs */
} fm_gate_verdict;

typedef struct fm_gate_decision {
    fm_gate_verdict verdict;
    fm_code code; /* DENIED, RATE_LIMITED, APPROVAL, GUARDRAIL when denied */
    char reason[768];
    char plan_id[40];
    char approval_id[40];
    char approvers[256]; /* released: the people counted, for the audit row */
    int scope_needed; /* step 1b refused it: the autonomy level + 1 whose scope the token lacks */
    /* A single-node tool called again on a node where its own one-step
     * workflow's owner died: that workflow (the guardrails excluded it
     * from running_workflow, as a plan's own), for the handler to resume.
     * Empty otherwise.  FM_WORKFLOW_ID_LEN fits. */
    char resume_workflow[24];
} fm_gate_decision;

void fm_gate_decide(struct fm_ctx *ctx, int tool_index, const json_t *args, fm_gate_decision *d);

/* What an internal call may pass (fm_action_call.exempt, from the action
 * table's data): steps 4 and 5, for create tools only (the generator
 * refuses it on others; the gate ignores it there); every other step
 * holds. */
#define FM_GATE_EXEMPT_KILLSWITCH 0x1u
#define FM_GATE_EXEMPT_RATE_LIMIT 0x2u

/* The same decision for an internal call, with the action's exemptions. */
void fm_gate_decide_internal(struct fm_ctx *ctx, int tool_index, const json_t *args,
                             unsigned exempt, fm_gate_decision *d);
/* Steps 1 and 1b alone, which need no arguments: the call pipeline asks
 * them before the input schema, so a token without the scope is DENIED
 * (missing scope) for any call above it, never INVALID.  true when both
 * pass; otherwise d holds the refusal.  fm_gate_decide asks them first. */
bool fm_gate_admit(struct fm_ctx *ctx, int tool_index, fm_gate_decision *d);

/* The kill switch as the gate sees it: the store setting or the file. */
bool fm_killswitch_engaged(struct fm_ctx *ctx, char *why, size_t whylen);

/* Allowed calls per hour of table row tool_index (0 = unlimited): the
 * config's rate_limits.<tool>, else the tool's rate_config key, else its
 * generated default.  0 for every tool that is not a rate-limited create. */
long long fm_gate_rate_limit(const struct fm_ctx *ctx, int tool_index);

/* Step 1: true if the tool may be listed and called under this config;
 * otherwise why (may be NULL) says which setting hides it. */
bool fm_gate_visible(const struct fm_ctx *ctx, int tool_index, char *why, size_t whylen);

/* Step 1b: true if the caller may see and call the tool: no verified
 * principal (stdio, or HTTP without `auth`), or one whose scopes grant the
 * tool's autonomy level; otherwise why (may be NULL) names the scope. */
bool fm_gate_scope_ok(const struct fm_ctx *ctx, int tool_index, char *why, size_t whylen);

/* Step 2: 0 if every backend the tool declares is open, else -1 with
 * NOTCONFIGURED naming the config section to add. */
int fm_gate_backends(const struct fm_ctx *ctx, int tool_index, fm_err *err);

/* Step 6's rule, for the gate and for plans that report it: true if
 * running content (a plan's content, borrowed) with tool t needs a human
 * approval.  hitl always; canary unless every node is a canary, the mode
 * is not shadow, the runbook (as it is now) is not hitl and no step's
 * action always needs a human. */
struct fm_tool_def;
bool fm_gate_approval_needed(struct fm_ctx *ctx, const struct fm_tool_def *t,
                             const json_t *content);

/* The same rule, saying why an approval is needed into why (may be NULL).
 * A canary runbook repair also needs, on every node, a recorded diagnosis
 * of the plan's fault class at or above the act threshold and younger
 * than diagnose.max_age_s (fm_diagnosis_basis); why then says which of
 * those failed and what to do. */
bool fm_gate_approval_why(struct fm_ctx *ctx, const struct fm_tool_def *t, const json_t *content,
                          char *why, size_t len);

const char *fm_gate_verdict_name(fm_gate_verdict v);

#endif
