/* Internal to src/workflow/: the persisted workflow row and its writers. */
#ifndef FM_WF_INT_H
#define FM_WF_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "fleetmcp/fm_error.h"
#include "fleetmcp/fm_workflow.h"

struct fm_ctx;

#define WF_LEASE_MS 15000 /* renewed every step and every poll of a wait */

typedef struct wf_row {
    char id[FM_WORKFLOW_ID_LEN];
    char plan_id[40];
    char approval_id[40];
    char node[64];
    char fault_class[64];
    char runbook[80];
    long long runbook_version;
    char status[16];
    int step_index; /* next step to run (or the one in flight) */
    bool failing;   /* a step failed: running rollback / on_failure */
    int64_t call_ref;
    long long owner_pid;
    int64_t lease_until_ms;
    json_t *content;       /* owned: the plan content being run */
    json_t *vars;          /* owned: what steps remember (boot time before, bundle...) */
    const char *stopped;   /* why this process stopped running it (static text), or NULL */
    int64_t park_until_ms; /* set by a monitor step: park the workflow until then */
    /* Not persisted: what this process saw, for a one-step tool workflow's
     * result (fm_workflow_output, fm_workflow_failure). */
    json_t *last_out; /* owned: the last step's output */
    fm_err failure;   /* the first failing step's error */
    /* The gate decided the call driving it for this very workflow (a
     * tool's one-step workflow, begun or resumed by its own tool): no
     * second kill-switch decision per step. */
    bool gated;
} wf_row;

void wf_row_free(wf_row *w);

/* Inserts w (id generated here) as running, owned by this process. */
int wf_insert(struct fm_ctx *ctx, wf_row *w, fm_err *err);
/* Persists status, step_index, failing, vars and renews the lease. */
int wf_save(struct fm_ctx *ctx, const wf_row *w, fm_err *err);
/* Renews the lease only (cheap; called while waiting). */
void wf_renew(struct fm_ctx *ctx, const wf_row *w);
/* Renews it for ms: a step gets its whole timeout, so a slow step is
 * never mistaken for a dead owner by another host. */
void wf_renew_for(struct fm_ctx *ctx, const wf_row *w, int64_t ms);
/* Parks w as "monitoring" with no owner until due_ms: whoever drives
 * workflows (fm_workflow_run_due) claims it once the lease (= due_ms)
 * has passed.  Nothing holds a process while it waits. */
int wf_park(struct fm_ctx *ctx, const wf_row *w, int64_t due_ms, fm_err *err);
/* Reopens a step row parked as "monitoring" for its next sample. */
void wf_step_reopen(struct fm_ctx *ctx, int64_t row);
/* Loads a workflow by id.  NOT_FOUND if unknown. */
int wf_load(struct fm_ctx *ctx, const char *id, wf_row *w, fm_err *err);
/* Takes ownership of w if its owner is dead and nobody else took it
 * first (compare-and-set on owner and lease).  True if now ours. */
bool wf_claim(struct fm_ctx *ctx, wf_row *w);

/* Step rows: started (committed before the action), then finished. */
int64_t wf_step_start(struct fm_ctx *ctx, const wf_row *w, const json_t *step,
                      const char *state_before, fm_err *err);
int wf_step_end(struct fm_ctx *ctx, int64_t row, const char *status, const char *state_after,
                const char *output, const char *error, fm_err *err);
/* A wait step's deadline (store clock, ms), fixed when the step first
 * started (an earlier row of it), else now + timeout_ms; recorded on row. */
int64_t wf_step_deadline(struct fm_ctx *ctx, const wf_row *w, int64_t row, int64_t timeout_ms);
/* The status of the last row for (workflow, step index): "started",
 * "done", "failed", "skipped", or "" if none. */
/* Marks the unfinished row of (workflow, step index) interrupted. */
void wf_step_interrupt(struct fm_ctx *ctx, const char *wf, int index);
/* Sets the workflow's error text (NULL clears it). */
void wf_set_error(struct fm_ctx *ctx, const char *wf, const char *error);
void wf_step_last(struct fm_ctx *ctx, const char *wf, int index, char *status, size_t len);

void wf_event(struct fm_ctx *ctx, const char *wf, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A live workflow (running/waiting, owner alive) other than except on
 * node, into id (empty if none). */
void wf_live_on_node(struct fm_ctx *ctx, const char *node, const char *except, char *id,
                     size_t len);

/* The workflow of this store on node that owns a drain with reason (the
 * check fm_workflow_owns_drain makes), into id_out: 1 found, 0 none
 * (id_out empty), -1 the store failed. */
int wf_drain_owner(struct fm_ctx *ctx, const char *node, const char *reason,
                   char id_out[FM_WORKFLOW_ID_LEN]);

/* True if pid (of this host) is alive. */
bool wf_pid_alive(long long pid);
/* Whether a workflow's owner is gone: its lease ran out, or (pid > 0:
 * this host's) its process is. */
/* Leases and due times are on the store's clock (fm_store_now_ms): the
 * server's on PostgreSQL, so hosts whose clocks differ agree on them. */
int64_t wf_clock_ms(struct fm_ctx *ctx);
bool wf_owner_dead(struct fm_ctx *ctx, long long pid, int64_t lease_until_ms);
/* This process's host, as recorded in workflows.owner_host. */
const char *wf_host(void);

/* ---- reads of workflows for the engine's recovery and summary (every
 * statement on the workflow tables is in store.c) ---- */
/* Ids of workflows running or waiting (new array). */
json_t *wf_ids_unfinished(struct fm_ctx *ctx);
/* Ids of parked monitors due now (or whose sampling driver died), oldest
 * lease first, at most limit (new array). */
json_t *wf_ids_due(struct fm_ctx *ctx, int limit);
/* Calls fn for each workflow running, waiting or monitoring. */
typedef void (*wf_live_fn)(const char *id, const char *node, int64_t owner_pid,
                           int64_t lease_until_ms, const char *status, const char *owner_host,
                           void *arg);
void wf_each_unfinished(struct fm_ctx *ctx, wf_live_fn fn, void *arg);
/* {status: count} over every workflow (new object). */
json_t *wf_status_counts(struct fm_ctx *ctx);
/* The ten latest failed or escalated workflows, newest first: new array
 * of {workflow_id, node, status, error, updated}. */
json_t *wf_recent_failures(struct fm_ctx *ctx);

#endif
