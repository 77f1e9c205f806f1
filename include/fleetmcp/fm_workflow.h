/* Workflows: a runbook run on one node, persisted step by step so a
 * server that dies mid-run (kill -9) leaves enough behind for the next one
 * to resume it or escalate it.
 *
 * Tables (store subsystem "workflows"): workflows (id wf-<16hex>, plan,
 * node, fault class, runbook + version, status running|waiting|monitoring|
 * done|failed|escalated, current step, owner pid + lease), workflow_steps (one
 * row per step attempt: action, status, times, node state before/after,
 * output summary, error) and workflow_events.
 *
 * Every step: "started" is committed first, then the action runs through
 * the backends (Slurm's own interfaces, the SSH executor, tickets), then
 * the result, the node state and an audit row (phase "step", call_ref =
 * the repair_execute intent row) are written.  Actions are idempotent, so
 * re-running a step whose result was never written is safe.
 *
 * Single-node tools (node_drain, node_resume, job_requeue) run here as
 * one-step workflows (fm_workflow_tool_content); the node operations the
 * others still call directly (node_reboot, gpu_reset, health_probe) live
 * here too (src/workflow/ops.c) so a tool and a runbook step do exactly
 * the same thing. */
#ifndef FM_WORKFLOW_H
#define FM_WORKFLOW_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "fleetmcp/fm_error.h"
#include "fleetmcp/fm_tool.h"

struct fm_ctx;
struct fm_runbook;
struct fm_guard_req;

#define FM_WORKFLOW_ID_LEN 20 /* "wf-" + 16 hex + NUL */

/* Creates the workflow tables if needed (cheap after the first time). */
int fm_workflow_init(struct fm_ctx *ctx, fm_err *err);

/* ---- plan content (src/workflow/content.c) ---------------------------- */

/* The hashed content of a repair of node for fault_class with runbook rb
 * (new): fm_plan_content(the runs_plan tool, {node, fault_class, runbook},
 * [node], steps, rb id, rb version), steps being every phase of the
 * runbook flattened to {phase, id, action, args, timeout_s}.  The same
 * inputs always give the same hash; a new runbook version gives another. */
json_t *fm_workflow_content(const char *node, const char *fault_class, const struct fm_runbook *rb);

/* The steps of content as a plan shows them (new array of {phase, id,
 * action, timeout_s}), and into req what those actions do to a node
 * (takes_capacity, destructive, superseded_by_reboot), so every planner
 * asks the guardrails the same question repair_execute's gate will. */
json_t *fm_workflow_steps_shown(const json_t *content, struct fm_guard_req *req);

/* For the planner (repair_execute {plan_id}): loads the stored plan,
 * finds its runbook in the CURRENT catalog and rebuilds the content, so a
 * changed runbook voids the approval.  *detail (new) gets risk, nodes,
 * autonomy (the runbook's) and approval_needed.  NULL with err. */
json_t *fm_workflow_plan_content(struct fm_ctx *ctx, const char *plan_id, json_t **detail,
                                 fm_err *err);

/* A single-node tool's call as a one-step workflow (new): the tool's
 * action (schemas/tools/NAME.json "action") with the arguments that
 * action takes, as the one step of fm_plan_content(the tool, its args,
 * [node]).  owner ("<plan id>" or "call-<audit row>") owns what it
 * drains and reserves, as the tool's drains always were; its presence
 * (call_owner) tells the engine the gate already decided this call.
 * NULL with err if the tool names no action. */
json_t *fm_workflow_tool_content(const fm_call *call, const char *owner, fm_err *err);

/* ---- running (src/workflow/engine.c) ---------------------------------- */

/* Runs the plan content (borrowed) as a new workflow for call (progress,
 * cancellation, audit attribution).  Returns the workflow summary (new),
 * also when the workflow ended failed or escalated; NULL with err only
 * when it could not start. */
json_t *fm_workflow_run(fm_call *call, const char *plan_id, const json_t *content, fm_err *err);

/* The same, a step at a time, so a pool plan can interleave several
 * workflows (one per node) in one call: begin checks and records it (NULL
 * with err when it cannot start: another workflow owns the node, or a
 * guardrail refuses), advance runs its next step (false once it ended or
 * stopped), abandon ends it failed before its next step (a pool rolling
 * back: no runbook rollback, no escalation), end returns what
 * fm_workflow_run returns and frees it. */
typedef struct fm_wf_run fm_wf_run;
/* Claims the dead one-step workflow id of call's tool (the gate named it:
 * fm_gate_decision.resume_workflow) and goes on with it as begin would:
 * an interrupted step is repeated when it is safe to, else the run
 * fails (fm_workflow_failure says why).  NULL with CONFLICT when another
 * server claimed it first. */
fm_wf_run *fm_workflow_resume_tool(fm_call *call, const char *id, fm_err *err);
fm_wf_run *fm_workflow_begin(fm_call *call, const char *plan_id, const json_t *content,
                             fm_err *err);
bool fm_workflow_advance(fm_call *call, fm_wf_run *r);
const char *fm_workflow_run_id(const fm_wf_run *r);
/* Who owns what it drains and reserves: a tool's one-step workflow's
 * call ("<plan id>" or "call-N"), else the workflow itself. */
const char *fm_workflow_owner(const fm_wf_run *r);
/* A step failed: it runs its rollback and on_failure steps now. */
bool fm_workflow_failing(const fm_wf_run *r);
/* The last step's output (borrowed; NULL before any step ran) and the
 * first failing step's error (borrowed; NULL if none), until end. */
const json_t *fm_workflow_output(const fm_wf_run *r);
const fm_err *fm_workflow_failure(const fm_wf_run *r);
void fm_workflow_abandon(fm_call *call, fm_wf_run *r, const char *why);
json_t *fm_workflow_end(fm_call *call, fm_wf_run *r, fm_err *err);

/* Resumes or escalates workflows whose owner died (lease expired or pid
 * gone).  One indexed SELECT when there are none.  Acts on nodes, so it
 * runs only inside a mutating call the gate allowed (repair_execute) and
 * never in shadow mode: otherwise it returns 0 and touches nothing.
 * Returns how many were handled. */
int fm_workflow_recover(struct fm_ctx *ctx, fm_call *call);

/* Runs parked monitor steps whose next sample is due (at most max):
 * claims each (compare-and-set), samples, and parks it again, or goes on
 * with the runbook when its window ended clean, or fails the step on a
 * bad sample (rollback, escalation).  Same rules as recovery: only inside
 * a mutating call or driver, never in shadow mode (returns 0).  Returns
 * how many it ran.  Drivers: repair_execute (through recovery) and
 * `fleetmcp workflows run-due` (a timer). */
int fm_workflow_run_due(struct fm_ctx *ctx, fm_call *call, int max);
/* The workflow (running, waiting or monitoring) that executes plan_id, into id_out;
 * -1 if none. */
int fm_workflow_open_for_plan(struct fm_ctx *ctx, const char *plan_id,
                              char id_out[FM_WORKFLOW_ID_LEN]);

/* Whether a Slurm drain reason on node is fleetmcp's own: it starts
 * FM_SLURM_OWNED_PREFIX and the owner after it ("fleetmcp:OWNER: text")
 * names a workflow of this store on that node, by its id, its plan, or
 * (call-N) the call that started it.  The prefix alone proves nothing: a
 * human may write "fleetmcp: hold".  1 ours, 0 not (or no such prefix),
 * -1 when the store cannot tell (callers treat it as not ours). */
int fm_workflow_owns_drain(struct fm_ctx *ctx, const char *node, const char *reason);
/* A single-node tool's one-step workflow of tool on args' node (running
 * or waiting), started with the same arguments (approval_id aside), whose
 * owner died (lease out, or its process gone on this host), into id_out;
 * -1 if none.  The gate excludes it from the running_workflow guardrail
 * for that tool's next call, which resumes it (fm_workflow_resume_tool);
 * a call with other arguments is refused by running_workflow. */
int fm_workflow_dead_tool_run(struct fm_ctx *ctx, const char *tool, const json_t *args,
                              char id_out[FM_WORKFLOW_ID_LEN]);

/* ---- reading (src/workflow/store.c) ----------------------------------- */

/* {workflow_id, plan_id, node, fault_class, runbook, runbook_version,
 *  status, current_step, owner{pid, alive, lease_until}, started, updated,
 *  steps[...], events[...], errors[...]} (new), or NULL with NOT_FOUND. */
/* The running or waiting workflow on node other than except (NULL: any)
 * into id, "" if none: two workflows never share a node. */
void fm_workflow_live_on_node(struct fm_ctx *ctx, const char *node, const char *except, char *id,
                              size_t len);

json_t *fm_workflow_get(struct fm_ctx *ctx, const char *id, fm_err *err);

/* Workflows started since since_ms, for fleet metrics: done, failed or
 * escalated, done without any step that repairs (reboot, GPU reset, job
 * cancel or requeue: a false positive), the mean duration of the done
 * ones in seconds (mean_null: none), and repeat_nodes, a new array of
 * {node, workflows} for nodes with two or more, most first, at most 20.
 * Reads the workflow tables (src/workflow/store.c owns them). */
typedef struct fm_workflow_stats {
    double done, failed, false_positive, mean_s;
    bool mean_null;
    json_t *repeat_nodes;
} fm_workflow_stats;
void fm_workflow_stats_since(struct fm_ctx *ctx, int64_t since_ms, fm_workflow_stats *out);

/* For fleet_status (new): {active_workflows, by_state{status: n},
 * orphaned_drains[{node, reason, workflow_id}], recent_failures[...]}.
 * Never fails: a part that cannot be read is left out and named in
 * "unavailable". */
json_t *fm_workflow_status_summary(struct fm_ctx *ctx);

/* ---- node operations (src/workflow/ops.c) ----------------------------- */

/* Jobs running (or completing) on node: new array of normalized jobs. */
json_t *fm_wf_jobs_on(struct fm_ctx *ctx, const char *node, fm_err *err);

/* Drains node with reason "fleetmcp:<owner>: <text>" unless it is already
 * drained with a fleetmcp reason for owner (then *noop).  Returns 0. */
int fm_wf_drain(struct fm_ctx *ctx, const char *node, const char *owner, const char *text,
                bool *noop, fm_err *err);

/* Resumes node if drained/down; *noop when it already was in service. */
int fm_wf_resume(struct fm_ctx *ctx, const char *node, bool *noop, fm_err *err);

/* GPUs from nvidia-smi --query-gpu (new array of {index, bus, uuid, name,
 * temp_c, mem_used_mib, util, ecc_dbe_vol, ecc_dbe_agg}); lost GPUs are
 * listed in *lost (new array of bus ids) when lost is not NULL. */
json_t *fm_wf_gpus(struct fm_ctx *ctx, const char *node, json_t **lost, fm_err *err);

/* Processes using GPU bus (from nvidia-smi -q), or -1 with err. */
int fm_wf_gpu_processes(struct fm_ctx *ctx, const char *node, int index, fm_err *err);

/* Resets one GPU by PCI bus id.  Returns 0 when nvidia-smi says it was
 * reset; out (borrowed, may be NULL) gets {bus, exit_status, output}. */
int fm_wf_gpu_reset(struct fm_ctx *ctx, const char *node, const char *bus, json_t *out,
                    fm_err *err);

/* What gpu_reset compares before and after a reset, for GPU index (new
 * {ecc_dbe_vol, mem_used_mib, util, temp_c, row_remap_pending_on_node});
 * its bus id into bus when bus is not NULL.  NULL with NOT_FOUND when the
 * GPU does not answer nvidia-smi. */
json_t *fm_wf_gpu_snapshot(struct fm_ctx *ctx, const char *node, json_int_t index, char *bus,
                           size_t buslen, fm_err *err);

/* dcgmi diag -r level: new {level, passed, tests:[{category, name,
 * status, failed_gpus, warnings}]}. */
json_t *fm_wf_diag(struct fm_ctx *ctx, const char *node, int level, fm_err *err);

/* Runs the verify_gpu checks (array of names, borrowed) against the node
 * now.  since_s: kernel Xid lines at or after this epoch second of the
 * node's own clock (fm_wf_node_clock) count as "still there" (0: any line
 * of the current boot).  New {ok, checks:
 * {name: {ok, detail}}}; NULL with err only if the node is unreachable. */
json_t *fm_wf_verify(struct fm_ctx *ctx, const char *node, const json_t *checks, long long since_s,
                     fm_err *err);

/* Collects and stores a diag bundle by an internal call of the tool the
 * action's data names (via: its calls.bundle), so the tool's schema and
 * the gate hold as for any call; the id into id_out (empty on failure:
 * err says why). */
struct fm_action_call;
int fm_wf_diag_bundle(fm_call *call, const struct fm_action_call *via, const char *node,
                      char *id_out, size_t len, fm_err *err);

/* The node's own clock (epoch s, `date +%s` over ssh), or -1 with err
 * set.  A repair's time is taken from it, since the Xid check compares
 * it with the node's kernel stamps: this server's clock would miss an Xid
 * on a node whose clock runs behind, and count an old one on a node whose
 * clock runs ahead. */
long long fm_wf_node_clock(struct fm_ctx *ctx, const char *node, fm_err *err);
/* The node's Slurm boot time (epoch s, 0 unknown) and state words joined
 * ("IDLE+DRAIN") into state. */
long long fm_wf_node_boot(struct fm_ctx *ctx, const char *node, char *state, size_t len,
                          char *reason, size_t rlen, fm_err *err);

#endif
