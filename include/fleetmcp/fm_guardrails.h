/* Guardrails: checked when planning and again, on live state, when
 * executing.  Part of the gate: handlers and the workflow engine never
 * decide; they ask here.  Every verdict names the guardrail, the numbers
 * and what would make it pass.
 *
 * Node remediation state lives in the store (node_states, owned by
 * src/nodestate, fm_nodestate.h, included here for the callers), and the blast
 * radius is enforced when a node enters remediation: fm_guard_reserve()
 * checks the per-domain count and records the node in one BEGIN IMMEDIATE
 * transaction, so several server processes sharing one database can never
 * exceed it together. */
#ifndef FM_GUARDRAILS_H
#define FM_GUARDRAILS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "fleetmcp/fm_error.h"
#include "fleetmcp/fm_nodestate.h"

struct fm_ctx;

typedef struct fm_guard_req {
    const char *action;      /* tool or runbook id, for messages */
    const json_t *nodes;     /* array of node names (borrowed) */
    const char *fault_class; /* retry budget key; NULL for single actions */
    const json_t *runbook;   /* runbook document (preconditions), or NULL */
    bool takes_capacity;     /* drains, reboots, resets: leaves the pool */
    bool resume;             /* returns the node: the ownership rule */
    bool approved;           /* a human approval is attached */
    bool destructive;
    bool attempt;              /* runs now (not a plan, not shadow): may trip the breaker */
    bool superseded_by_reboot; /* a pending reboot on the node makes it redundant */
    const char *workflow_id;   /* the workflow asking (its own run does not conflict) */
    const json_t *node;        /* optional: the caller's snapshot of the one
                                  node in nodes, read in this call (borrowed) */
} fm_guard_req;

/* Evaluates every guardrail on live state.  Returns a new array of
 * verdicts {guardrail, ok, detail, fix?, numbers?}; *all_ok tells whether
 * all passed.  NULL with err when live state cannot be read (a backend
 * down): the caller must refuse, never assume. */
json_t *fm_guard_check(struct fm_ctx *ctx, const fm_guard_req *req, bool *all_ok, fm_err *err);

/* Appends one verdict {guardrail, ok, detail, fix when !ok} to verdicts,
 * for the policy files (breaker.c, offenders.c). */
void fm_guard_add(json_t *verdicts, const char *name, bool ok, const char *fix, const char *fmt,
                  ...) __attribute__((format(printf, 5, 6)));

/* The first failed verdict as one sentence into buf ("GUARDRAIL blast
 * radius: ..."). */
void fm_guard_explain(const json_t *verdicts, char *buf, size_t len);

/* For each partition of node (a normalized Slurm node), in one backend
 * query when the backend has an aggregate: a new object {partition: {total,
 * schedulable_now, schedulable_after}}, "after" counting node out of the
 * pool when takes is true.  NULL with err if Slurm cannot be read. */
json_t *fm_guard_capacity(struct fm_ctx *ctx, const json_t *node, bool takes, fm_err *err);

/* True if every node of nodes is a canary node (config canary.nodes or the
 * canary feature in Slurm). */
bool fm_guard_all_canary(struct fm_ctx *ctx, const json_t *nodes);

/* Enters node into remediation as state (quarantined/repairing) for
 * workflow_id, re-checking the blast radius atomically.  FM_ERR_GUARDRAIL
 * if another process got there first. */
int fm_guard_reserve(struct fm_ctx *ctx, const char *node, const char *state,
                     const char *fault_class, const char *workflow_id, fm_err *err);

int fm_guard_init(struct fm_ctx *ctx, fm_err *err);

/* ---- for pool plans (src/plan/pool.c) ---- */

/* Slurm would start a job on node (a normalized Slurm node) now. */
bool fm_guard_schedulable(const json_t *node);

/* guardrails.max_per_domain and min_schedulable_share as they apply now
 * (emergency mode may raise them). */
void fm_guard_limits(struct fm_ctx *ctx, long long *per_domain, double *min_share);

#endif
