/* The audit log: one hash-chained row per tools/call (a read call) or two
 * (a mutation: the intent, committed before any side effect, then the
 * result), and one per workflow step.  Each row's hash covers every field
 * plus the previous row's hash, so `fleetmcp audit verify` finds the first
 * row that was edited, inserted or deleted.  Arguments are stored
 * canonically with secret fields redacted. */
#ifndef FM_AUDIT_H
#define FM_AUDIT_H

#include <jansson.h>
#include <stdint.h>

#include "fleetmcp/fm_error.h"

struct fm_ctx;
struct fm_store;

/* Results up to this size are kept whole, so a session can be replayed
 * and compared; longer ones are clipped (and replay says so). */
#define FM_AUDIT_MAX_RESULT (64 * 1024)
/* The os_user column's prefix on rows whose initiator is the client's own
 * claim (stdio, HTTP without auth): "self-declared:OSUSER".  Verified rows
 * carry "jwt:CLIENT" or "static-token:CLIENT" there instead. */
#define FM_SELF_DECLARED "self-declared:"

typedef struct fm_audit_rec {
    const char *phase; /* "call" | "intent" | "result" | "step" */
    int64_t call_ref;  /* intent row a result/step belongs to, or 0 */
    const char *tool;
    const json_t *args; /* borrowed; redacted and canonicalised here */
    const char *autonomy;
    const char *decision; /* allow | deny | shadow | invalid | need_approval */
    const char *reason;
    const char *plan_id;
    const char *approval_id;
    const char *workflow_id;
    const char *node;
    const char *result; /* the result's JSON text, clipped to FM_AUDIT_MAX_RESULT */
    const char *error_code;
    const char *error;
    int64_t duration_us;
    const char *state_before;
    const char *state_after;
    const char *runbook;
    const char *runbook_version;
    /* The people whose approvals released this action, as the gate
     * counted them ("alice, bob"); NULL when no approval was used. */
    const char *approvers;
    /* An intent of a rate-limited tool: at most this many allowed calls of
     * the tool in the last hour, counted in the same transaction as the
     * insert, so processes sharing the store cannot overshoot together.
     * 0: no limit. */
    long long rate_limit;
} fm_audit_rec;

int fm_audit_init(struct fm_ctx *ctx, fm_err *err);
/* Group commit (fm_store_batch_arm): ends the batch before a call that
 * must not ride in one (a mutation, anything but a read tools/call):
 * commits what is open, so the rows before it are durable before it acts,
 * and disarms, so it runs in transactions of its own as without a batch.
 * -1 (logged) when the batch was rolled back; the transport's batch.done
 * fails the held answers then. */
int fm_audit_batch_flush(struct fm_ctx *ctx);
/* check-config, on a store in probe mode (fm_store_open_probe): -1 with
 * err when the audit key the first message needs is unreadable, or
 * missing while keyed rows exist, or could not be created. */
int fm_audit_probe_key(struct fm_store *st, fm_err *err);

/* Appends a row stamped with the session (initiator, client, OS user) and
 * mode; returns its id, or -1 with err (FM_ERR_RATE_LIMITED when
 * rec->rate_limit is reached: nothing is written).  Commits before
 * returning, except in an armed group-commit batch (SQLite): there the
 * row waits for fm_store_batch_commit, which gives it its id, and the
 * return is its place in the batch (1, 2, ...); a row with a rate limit
 * or a shadow verdict (its id is quoted) is written at once. */
int64_t fm_audit_append(struct fm_ctx *ctx, const fm_audit_rec *rec, fm_err *err);

/* Allowed calls of tool ('call' and 'intent' rows) since since_ms, and
 * the time of the oldest of them in *oldest_ms; -1 if the store cannot be
 * read. */
long long fm_audit_allowed_since(struct fm_store *st, const char *tool, int64_t since_ms,
                                 int64_t *oldest_ms);

/* Brings the hourly call counters (audit_hourly) up to the newest row.
 * Readers of the counters call it first; appends call it every few
 * hundred rows.  0, or -1 with err. */
int fm_audit_fold(struct fm_store *st, fm_err *err);

/* Rows matching filter {node, tool, initiator, session, since_ms, until_ms,
 * decision, limit, before_id} newest first (new array). */
json_t *fm_audit_query(struct fm_store *st, const json_t *filter, fm_err *err);

/* Walks the chain.  Returns 0 if intact; otherwise -1 with the first
 * broken row id in *bad_id and why in err.  *rows gets the count checked.
 * Also checks every host's head in audit_heads (its MAC, that the chain
 * reaches it with that hash); when intact, moves this host's anchor file
 * and head forward to the chain's end (never back). */
int fm_audit_verify(struct fm_store *st, int64_t *rows, int64_t *bad_id, fm_err *err);

/* The row this host's anchor file records, or -1 when it has none. */
int64_t fm_audit_anchored(struct fm_store *st);

/* ---- reports over the trail (read only) ---- */

/* Human 'allow' calls and intents of tool since since_ms, per node:
 * fn(node, count) for each node that has any.  0, or -1 if the store
 * cannot be read. */
int fm_audit_human_actions_by_node(struct fm_store *st, const char *tool, int64_t since_ms,
                                   void (*fn)(const char *node, int64_t n, void *arg), void *arg);
/* Shadow recommendations (shadow node actions that would run or wait for
 * an approval) since since_ms, and how many of them a human carried out
 * (same tool, same node) within match_ms after.  0, or -1. */
int fm_audit_shadow_agreement(struct fm_store *st, int64_t since_ms, int64_t match_ms,
                              int64_t *recs, int64_t *agreed);
/* From the hourly counters (folded first), calls per tool and decision
 * from hour from_hour (ms / 3600000) on, in tool, decision order.  0, or
 * -1. */
int fm_audit_hourly_each(struct fm_store *st, int64_t from_hour,
                         void (*fn)(const char *tool, const char *decision, int64_t n, void *arg),
                         void *arg);
/* As fm_audit_hourly_each, per decision: new object {decision: calls}. */
json_t *fm_audit_decisions_since(struct fm_store *st, int64_t from_hour);
/* The newest row's id (0: empty). */
int64_t fm_audit_rows(struct fm_store *st);
/* The 20 most recent sessions among the newest 5000 rows, newest first:
 * fn(session, rows, first_ms, last_ms, client_name or NULL).  0, or -1
 * with err. */
typedef void (*fm_audit_session_fn)(const char *session, int64_t rows, int64_t first_ms,
                                    int64_t last_ms, const char *client, void *arg);
int fm_audit_recent_sessions(struct fm_store *st, fm_audit_session_fn fn, void *arg, fm_err *err);
/* Node names in the trail starting with prefix, in order, at most 100. */
void fm_audit_nodes_prefixed(struct fm_store *st, const char *prefix,
                             void (*fn)(const char *node, void *arg), void *arg);
/* Each node's latest recorded diagnosis (the newest diagnose row naming
 * it): fn(node, result JSON text).  0, or -1 with err. */
int fm_audit_latest_diagnoses(struct fm_store *st,
                              void (*fn)(const char *node, const char *result, void *arg),
                              void *arg, fm_err *err);

#endif
