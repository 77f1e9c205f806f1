/* Approver roles and the two-person rule (config approvals.keys[].roles,
 * .person, approvals.two_person, approvals.separate_creator).
 *
 * The approval layer verifies each signature; this module decides whether
 * the approvers of one plan, taken together, release it: how many distinct
 * people it takes, which role each must hold, and that the principal who
 * created the plan is not one of them.  Pure decisions over the config:
 * no store, no clock. */
#ifndef FM_APPROVAL_ROLES_H
#define FM_APPROVAL_ROLES_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "fleetmcp/fm_error.h"

/* What releasing one plan takes. */
typedef struct fm_approval_need {
    int people;          /* distinct people who must approve: 1 or 2 */
    char role[64];       /* the role each of them must hold; "" for any approver */
    char guard_role[64]; /* a second role each must hold, named by a guardrail that
                            judged the plan (guardrails.approval_roles); "" none */
    char guard[48];      /* that guardrail's name, for the refusal text */
    char creator[128];   /* who created the plan (token subject); "" unknown */
    bool separate;       /* the creator may not approve (approvals.separate_creator) */
    char why[200];       /* why two people, for the refusal text; "" when one */
} fm_approval_need;

/* What `approvals` (the config section, borrowed, may be NULL) asks of a
 * plan touching `nodes` nodes: two people above two_person.above_nodes and,
 * unless two_person.emergency is false, in emergency mode.  role is what
 * the runbook or guardrail names (NULL or "": none); creator is the plan's
 * creator (NULL or "": unknown). */
void fm_approval_need_for(const json_t *approvals, size_t nodes, bool emergency, const char *role,
                          const char *creator, fm_approval_need *need);

/* Adds what `approvals` says of one action (a tool name or runbook id):
 * two_person.actions lists actions that always need two people (a
 * fleet-wide blast radius no node count shows); require_role maps an
 * action to the role its approvers need, unless its runbook named one. */
void fm_approval_need_action(const json_t *approvals, const char *action, fm_approval_need *need);

/* Adds the role guardrails.approval_roles (the map, borrowed, may be NULL)
 * names for the first guardrail among verdicts (a plan's guardrail
 * verdicts, borrowed, may be NULL) that has one: every approver must then
 * hold it as well as need->role. */
void fm_approval_need_guardrails(const json_t *approval_roles, const json_t *verdicts,
                                 fm_approval_need *need);

/* " with role R", " with role R (guardrail G)", " with roles R and R2
 * (guardrail G)" or "": the roles need asks for, for refusal texts. */
void fm_approval_need_roles(const fm_approval_need *need, char *buf, size_t len);

/* 0 when the approvers (ids of approvals the approval layer verified for
 * this plan and its hash) release it; otherwise FM_ERR_APPROVAL with err
 * saying who else must approve.  Only key-signed approvals count toward a
 * role or a second person: an elicited one ("elicitation:...") has no key,
 * hence no role and no person the config vouches for.  On 0, counted_out
 * (may be NULL) names the people counted, ", "-separated, for the audit
 * row of the action they release. */
int fm_approval_quorum(const json_t *approvals, const fm_approval_need *need,
                       const char *const *approvers, size_t n, char *counted_out,
                       size_t counted_len, fm_err *err);

#endif
