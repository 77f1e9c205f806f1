/* Fleet policy guardrails that keep state across calls (issue 18): the
 * circuit breaker and repeat offenders.  Part of the gate: fm_guard_check
 * asks them for verdicts, fm_guard_reserve and fm_node_state_set record
 * what happened, and only guardrail_reset (a hitl tool, so a human
 * approval) clears them.  Limits come from guardrails.circuit_breaker and
 * guardrails.repeat_offenders in the config. */
#ifndef FM_POLICY_H
#define FM_POLICY_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "fleetmcp/fm_error.h"

struct fm_ctx;

/* ---- circuit breaker (src/gate/breaker.c) ---- */

int fm_breaker_init(struct fm_ctx *ctx, fm_err *err);

/* Node counts the breaker divides by, for node (a normalized Slurm node):
 * new {fleet: N, partitions: {name: N}}, or NULL with err.  Partition
 * totals come from the capacity verdicts in verdicts when there (may be
 * NULL), else from Slurm. */
json_t *fm_breaker_totals(struct fm_ctx *ctx, const json_t *node, const json_t *verdicts,
                          fm_err *err);

/* Appends the "circuit_breaker" verdict for draining name.  attempt: the
 * drain would really run now (not a plan, not shadow); a drain over the
 * share then trips the breaker. */
void fm_breaker_check(struct fm_ctx *ctx, const char *name, const json_t *totals, bool attempt,
                      json_t *verdicts);

/* Inside fm_guard_reserve's transaction: refuses (FM_ERR_GUARDRAIL) when
 * tripped or when draining name passes the share (and trips it);
 * otherwise records the drain.  Returns 0 or -1. */
int fm_breaker_reserve(struct fm_ctx *ctx, const char *name, const json_t *totals, fm_err *err);

/* True when tripped; why says when and by what drain. */
bool fm_breaker_tripped(struct fm_ctx *ctx, char *why, size_t len);

/* A human's reset: drains before now no longer count. */
int fm_breaker_reset(struct fm_ctx *ctx, const char *by, const char *reason, fm_err *err);

/* {tripped, reason?, max_share, window_s, drained_in_window} (new). */
json_t *fm_breaker_status(struct fm_ctx *ctx);

/* ---- repeat offenders (src/gate/offenders.c) ---- */

int fm_offender_init(struct fm_ctx *ctx, fm_err *err);

/* After a repair of node is recorded: at max_repairs within the window the
 * node is escalated (a ticket when a tickets backend is configured). */
void fm_offender_note(struct fm_ctx *ctx, const char *node);

/* Appends the "repeat_offender" verdict for repairing node. */
void fm_offender_check(struct fm_ctx *ctx, const char *node, json_t *verdicts);

/* A human clears node: repairs before now no longer count.  FM_ERR_NOT_FOUND
 * when node is not escalated. */
int fm_offender_clear(struct fm_ctx *ctx, const char *node, const char *by, fm_err *err);

/* Escalated nodes not cleared: [{node, repairs, since, ticket?}] (new). */
json_t *fm_offender_list(struct fm_ctx *ctx);

/* ---- emergency mode (src/gate/emergency.c) ---- */

/* The active emergency (new {limits, until_ms, until, by, reason}), or
 * NULL when none or expired: it ends by itself at until_ms.  Inside
 * fm_emergency_call_begin/end the setting is read from the store once
 * for the whole call (its audit rows, gate and result marker). */
json_t *fm_emergency_active(struct fm_ctx *ctx);
/* The same read through one store connection, outside any call (a
 * batch's commit reads it inside its own transaction); new or NULL. */
struct fm_store;
json_t *fm_emergency_active_in(struct fm_store *st);

/* Brackets one tools/call: the first fm_emergency_active reads the store,
 * later ones in the same call reuse that read.  Nested calls (workflow
 * steps) share the outer call's read.  emergency_start/end drop it, so
 * the rest of their own call sees the new state. */
void fm_emergency_call_begin(struct fm_ctx *ctx);
/* The store setting's key. */
#define FM_EMERGENCY_SETTING "emergency"
/* Inside a call, before its first read: take text (the setting as last
 * seen, "" for none) instead of reading the store.  Only for a caller
 * that then proves it (the PostgreSQL audit insert commits only while
 * the setting still holds that text, see fm_emergency_checked). */
void fm_emergency_assume(struct fm_ctx *ctx, const char *text);
/* The text to check the store against: the assumed one; NULL when the
 * call's state was read from the store (nothing to check). */
const char *fm_emergency_checked(const struct fm_ctx *ctx);
void fm_emergency_call_end(struct fm_ctx *ctx);

/* One loud line about the active emergency into buf; false if none. */
bool fm_emergency_describe(struct fm_ctx *ctx, char *buf, size_t len);

/* The limit name as the guardrails apply it now: the emergency's value
 * while one raises it (*raised true), else configured. */
double fm_policy_limit(struct fm_ctx *ctx, const char *name, double configured, bool *raised);

/* Distinct people whose approvals start emergency mode (emergency.
 * approvals_required, default 2); the gate asks for them.  While emergency
 * mode lasts, every approval needs two people (approvals.two_person.
 * emergency, default true). */
int fm_emergency_approvals_required(struct fm_ctx *ctx);

/* Adds the loud marker to a tools/call result while an emergency is
 * active: a text content item and _meta "io.fleetmcp/emergency". */
void fm_emergency_mark(struct fm_ctx *ctx, json_t *result);

/* ---- change windows (src/gate/windows.c) ---- */

/* Appends the "change_window" verdict for acting on node (a normalized
 * Slurm node) now. */
void fm_window_check(struct fm_ctx *ctx, const json_t *node, const char *name, json_t *verdicts);

/* ---- recorded diagnoses (src/gate/diagnoses.c) ---- */

#define FM_DIAGNOSIS_ID_LEN 24

typedef struct fm_diagnosis {
    char id[FM_DIAGNOSIS_ID_LEN];
    char fault_class[64]; /* diagnose's top class (or healthy, inconclusive) */
    double confidence;
    double act_threshold; /* the catalog's act threshold it was judged against */
    bool act;             /* the engine's own verdict: confident and corroborated */
    char source[24];      /* "collected" (node mode), "collected+caller" (node mode plus
                           * the caller's signals) or "signals" (the caller's alone) */
    bool collected_act;   /* the evidence fleetmcp collected itself, alone, named this
                           * class at act: the only diagnosis the gate acts on unapproved */
    int64_t at_ms;
} fm_diagnosis;

int fm_diagnosis_init(struct fm_ctx *ctx, fm_err *err);

/* Records d (its id and at_ms are set here) as node's latest diagnosis;
 * its new id into id_out (FM_DIAGNOSIS_ID_LEN, may be NULL). */
int fm_diagnosis_record(struct fm_ctx *ctx, const char *node, const fm_diagnosis *d, char *id_out,
                        fm_err *err);

/* node's latest diagnosis into d: 1 found, 0 none, -1 store error. */
int fm_diagnosis_latest(struct fm_ctx *ctx, const char *node, fm_diagnosis *d);

/* diagnose.max_age_s (default 3600): how long a diagnosis lets a canary
 * repair run without an approval. */
long long fm_diagnosis_max_age_s(const struct fm_ctx *ctx);

/* The gate's diagnosis rule for repairing node for fault_class without a
 * human: *enough when node's latest diagnosis names that class, reached
 * the act threshold (and the engine said act), rests on evidence fleetmcp
 * collected itself (collected_act) and is fresh.  why says which of those
 * failed and what to do, or what the basis is.  Returns the basis {id,
 * fault_class, confidence, act_threshold, act, source, collected_act, at,
 * age_s, agrees, fresh, enough} (new), or NULL when none is recorded. */
json_t *fm_diagnosis_basis(struct fm_ctx *ctx, const char *node, const char *fault_class,
                           bool *enough, char *why, size_t len);

#endif
