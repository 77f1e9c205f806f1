/* Plans: what a mutating call would do, recorded before anyone approves
 * it.  A plan names the tool, its canonical arguments (without
 * approval_id), the nodes it touches, its steps, risk, capacity impact and
 * guardrail verdicts.  Its hash covers everything an approver signs off
 * on, so any change (other arguments, a new runbook version) voids the
 * approval. */
#ifndef FM_PLAN_H
#define FM_PLAN_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "fleetmcp/fm_error.h"

struct fm_ctx;

#define FM_PLAN_ID_LEN 20 /* "pl-" + 16 hex + NUL */

int fm_plan_init(struct fm_ctx *ctx, fm_err *err);

/* The hashed content of a plan (new): {tool, args, nodes, steps, runbook}.
 * args is borrowed; approval_id is dropped from the copy. */
json_t *fm_plan_content(const char *tool, const json_t *args, const json_t *nodes,
                        const json_t *steps, const char *runbook, int runbook_version);
void fm_plan_hash(const json_t *content, char out[65]);

/* Records a plan.  detail (borrowed) holds risk, capacity, guardrails,
 * approval_needed; content as from fm_plan_content.  Writes the id. */
int fm_plan_create(struct fm_ctx *ctx, const json_t *content, const json_t *detail,
                   char id_out[FM_PLAN_ID_LEN], fm_err *err);

/* The newest plan with this hash still awaiting approval, into id_out;
 * -1 if none.  A repeated refused call names the same plan, not a new one. */
int fm_plan_find_proposed(struct fm_ctx *ctx, const char *hash, char id_out[FM_PLAN_ID_LEN]);

/* The plan as stored (new), or NULL with FM_ERR_NOT_FOUND. */
json_t *fm_plan_get(struct fm_ctx *ctx, const char *id, fm_err *err);

/* Moves plan id from status `from` to `to` (proposed → approved when an
 * approval is recorded, approved → executed when it is consumed), or fails
 * with FM_ERR_APPROVAL when the plan is not in `from`: that is what makes
 * one approval release one execution.  Call inside the caller's
 * transaction. */
int fm_plan_transition(struct fm_ctx *ctx, const char *id, const char *from, const char *to,
                       fm_err *err);

#endif
