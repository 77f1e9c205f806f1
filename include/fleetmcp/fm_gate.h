/* The policy gate: the only place that allows or denies a tool call.
 * Checks run in a fixed order, like redis' processCommand():
 *   1. the tool is enabled (hidden tools never reach here: unknown tool)
 *   2. read autonomy: allow
 *   3. kill switch (store setting or file): deny every mutation except
 *      engaging it again
 *   4. rate limit for create tools (per tool and hour)
 *   5. mode: shadow records node actions as recommendations, runs none
 *   6. hitl / canary: needs an approval bound to the exact plan
 * A denial carries a stable code word and a reason an agent can act on. */
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
} fm_gate_decision;

void fm_gate_decide(struct fm_ctx *ctx, int tool_index, const json_t *args,
                    fm_gate_decision *d);

/* The kill switch as the gate sees it: the store setting or the file. */
bool fm_killswitch_engaged(struct fm_ctx *ctx, char *why, size_t whylen);

/* Allowed calls of a create tool per hour (0 = unlimited). */
long long fm_gate_rate_limit(const struct fm_ctx *ctx, const char *tool);

const char *fm_gate_verdict_name(fm_gate_verdict v);

#endif
