/* The remediation CLI: single actions, each a one-step plan the gate has
 * already approved (or allowed on a canary node).  node_drain, node_resume
 * and job_requeue run as one-step workflows of their action (the tool's
 * schema names it) through the engine; the others still act here through
 * Slurm's own interface and the SSH executor's catalog, via the same node
 * operations the workflow engine uses (src/workflow/ops.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleetmcp/fm_guardrails.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_slurm.h"
#include "fleetmcp/fm_util.h"
#include "fleetmcp/fm_workflow.h"
#include "fm_tools.gen.h"

/* Who owns a drain this call makes: the plan it executes, else the call's
 * audit row (a canary call without a plan). */
static void owner_of(const fm_call *call, char *buf, size_t len)
{
    if (call->plan_id && *call->plan_id)
        snprintf(buf, len, "%s", call->plan_id);
    else
        snprintf(buf, len, "call-%lld", (long long)call->audit_id);
}

/* Runs the call as a one-step workflow of its tool's action, through the
 * same engine, reservation and node-state code as a runbook: a workflow
 * row, a step row and an audit step row, recoverable if this process
 * dies mid-step.  owner gets who owns what the step drains and reserves
 * (this call's, or the resumed workflow's first call's).  Returns the
 * step's output (new), or NULL with the step's own error (or the
 * engine's, when it could not start). */
static json_t *run_one_step(fm_call *call, char *owner, size_t len, fm_err *err)
{
    owner_of(call, owner, len);
    fm_wf_run *r = NULL;
    if (call->resume_workflow) {
        /* The gate found this tool's own one-step workflow on the node
         * with its owner dead, and let this call resume it. */
        r = fm_workflow_resume_tool(call, call->resume_workflow, err);
        if (r) snprintf(owner, len, "%s", fm_workflow_owner(r));
    } else {
        json_t *content = fm_workflow_tool_content(call, owner, err);
        if (!content) return NULL;
        r = fm_workflow_begin(call, call->plan_id, content, err);
        json_decref(content);
    }
    if (!r) return NULL;
    while (fm_workflow_advance(call, r)) {
    }
    const fm_err *f = fm_workflow_failure(r);
    fm_err failed = f ? *f : (fm_err){0};
    json_t *out = json_incref((json_t *)fm_workflow_output(r));
    fm_err e = {0};
    json_t *summary = fm_workflow_end(call, r, &e);
    if (failed.code || !summary) {
        *err = failed.code ? failed : e;
        json_decref(out);
        out = NULL;
    } else if (!out) {
        out = json_object();
    }
    json_decref(summary);
    return out;
}

static json_t *slurm_state(fm_ctx *ctx, const char *node)
{
    char st[256] = "";
    fm_wf_node_boot(ctx, node, st, sizeof st, NULL, 0, NULL);
    return json_string(st);
}

static json_int_t running_jobs(fm_ctx *ctx, const char *node, fm_err *err)
{
    json_t *jobs = fm_wf_jobs_on(ctx, node, err);
    if (!jobs) return -1;
    json_int_t n = (json_int_t)json_array_size(jobs);
    json_decref(jobs);
    return n;
}

/* Returns a new object (schemas/tools/node_drain.json). */
json_t *fm_tool_node_drain(fm_call *call, fm_err *err)
{
    fm_ctx *ctx = call->ctx;
    const char *node = fm_json_str(call->args, "node", "");
    const char *text = fm_json_str(call->args, "reason", "");
    char owner[48];
    /* The drain step reserves the node (the blast radius re-checked
     * atomically, so two servers draining two nodes of one rack cannot
     * both win), then drains it under the call's owner. */
    json_t *step = run_one_step(call, owner, sizeof owner, err);
    if (!step) return NULL;
    bool noop = json_is_true(json_object_get(step, "noop"));
    json_decref(step);
    char full[256];
    snprintf(full, sizeof full, "%s%s: %s", FM_SLURM_OWNED_PREFIX, owner, text);
    fm_err je = {0};
    json_int_t jobs = running_jobs(ctx, node, &je);
    json_t *out = json_pack("{s:s, s:b, s:b, s:s, s:o, s:s}", "node", node, "drained", 1, "noop",
                            noop, "reason", full, "slurm_state", slurm_state(ctx, node),
                            "remediation_state", "quarantined");
    if (jobs >= 0) json_object_set_new(out, "running_jobs", json_integer(jobs));
    return out;
}

/* Returns a new object (schemas/tools/node_resume.json). */
json_t *fm_tool_node_resume(fm_call *call, fm_err *err)
{
    fm_ctx *ctx = call->ctx;
    const char *node = fm_json_str(call->args, "node", "");
    char reason[256], owner[48];
    if (fm_wf_node_boot(ctx, node, NULL, 0, reason, sizeof reason, err) < 0) return NULL;
    /* The resume step holds the ownership rule (someone else's drain is
     * theirs to lift unless a human approved the call) and returns the
     * node's state. */
    json_t *step = run_one_step(call, owner, sizeof owner, err);
    if (!step) return NULL;
    bool noop = json_is_true(json_object_get(step, "noop"));
    json_decref(step);
    return json_pack("{s:s, s:b, s:b, s:s, s:o, s:s}", "node", node, "resumed", 1, "noop", noop,
                     "previous_reason", reason, "slurm_state", slurm_state(ctx, node),
                     "remediation_state", "returned");
}

/* Returns a new object (schemas/tools/node_reboot.json). */
json_t *fm_tool_node_reboot(fm_call *call, fm_err *err)
{
    fm_ctx *ctx = call->ctx;
    /* A reboot is followed by polling: as a task when the client can (the
     * task's runner comes back here and runs the one-step workflow). */
    json_t *task = fm_call_background(call, err);
    if (task) return task;
    const char *node = fm_json_str(call->args, "node", "");
    /* The reboot action's nextstate RESUME form (the schema's
     * action_args): reserves the node, reboots it when idle and lets
     * Slurm return it to service. */
    char owner[48], full[256];
    json_t *step = run_one_step(call, owner, sizeof owner, err);
    if (!step) return NULL;
    snprintf(full, sizeof full, "%s%s: %s", FM_SLURM_OWNED_PREFIX, owner,
             fm_json_str(call->args, "reason", ""));
    fm_err je = {0};
    json_int_t jobs = running_jobs(ctx, node, &je);
    json_t *out = json_pack(
        "{s:s, s:b, s:s, s:o, s:o}", "node", node, "reboot_requested", 1, "reason", full,
        "boot_time_before",
        fm_slurm_iso_time((long long)json_integer_value(json_object_get(step, "boot_before"))),
        "slurm_state", slurm_state(ctx, node));
    json_decref(step);
    if (jobs >= 0) json_object_set_new(out, "running_jobs", json_integer(jobs));
    return out;
}

/* Returns a new object (schemas/tools/gpu_reset.json). */
json_t *fm_tool_gpu_reset(fm_call *call, fm_err *err)
{
    const char *node = fm_json_str(call->args, "node", "");
    json_int_t index = json_integer_value(json_object_get(call->args, "gpu"));
    /* The gpu_reset action's snapshot form (the schema's action_args):
     * refuses a node with jobs or a GPU with processes, reserves the
     * node, compares the GPU before and after, and leaves a node still in
     * service returned, a drained one repairing. */
    char owner[48];
    json_t *step = run_one_step(call, owner, sizeof owner, err);
    if (!step) return NULL;
    json_t *one = json_array_get(json_object_get(step, "reset"), 0);
    json_t *out = json_pack(
        "{s:s, s:I, s:s, s:b, s:O, s:O, s:O}", "node", node, "gpu", index, "bus",
        fm_json_str(one, "bus", ""), "reset", 1, "before", json_object_get(step, "before"), "after",
        json_object_get(step, "after"), "cleared", json_object_get(step, "cleared"));
    json_t *text = json_object_get(step, "output");
    if (out && json_is_string(text)) json_object_set(out, "output", text);
    json_decref(step);
    if (!out)
        fm_err_set(err, FM_ERR_INTERNAL,
                   "the reset of GPU %lld on %s ran but reported no before/after snapshot;"
                   " see workflow_get for its step; please report",
                   (long long)index, node);
    return out;
}

/* Returns a new object (schemas/tools/job_requeue.json). */
json_t *fm_tool_job_requeue(fm_call *call, fm_err *err)
{
    fm_ctx *ctx = call->ctx;
    const char *node = fm_json_str(call->args, "node", "");
    json_int_t id = json_integer_value(json_object_get(call->args, "job_id"));
    /* Resuming its dead workflow, the job may have left the node already
     * (the requeue reached Slurm before the server died): the engine
     * decides what the interrupted step allows and says so, whatever the
     * job's state now. */
    json_t *jobs = call->resume_workflow ? json_pack("[{s:I, s:s}]", "job_id", id, "state", "")
                                         : fm_wf_jobs_on(ctx, node, err);
    if (!jobs) return NULL;
    const char *state = NULL;
    size_t i;
    json_t *j;
    json_array_foreach(jobs, i, j) if (json_integer_value(json_object_get(j, "job_id")) == id)
        state = fm_json_str(j, "state", "?");
    char st[32];
    snprintf(st, sizeof st, "%s", state ? state : "");
    json_decref(jobs);
    if (!state) {
        fm_err_set(err, FM_ERR_NOT_FOUND,
                   "job %lld does not run on %s (slurm_jobs {node} lists what does)", (long long)id,
                   node);
        return NULL;
    }
    /* The one-job form of requeue_jobs: that job, the node excluded. */
    char owner[48];
    json_t *step = run_one_step(call, owner, sizeof owner, err);
    if (!step) return NULL;
    json_decref(step);
    return json_pack("{s:I, s:b, s:s, s:s}", "job_id", id, "requeued", 1, "excluded_node", node,
                     "job_state_before", st);
}

/* Returns a new object (schemas/tools/health_probe.json). */
json_t *fm_tool_health_probe(fm_call *call, fm_err *err)
{
    fm_ctx *ctx = call->ctx;
    const char *node = fm_json_str(call->args, "node", "");
    json_int_t level = json_integer_value(json_object_get(call->args, "level"));
    /* dcgmi diag -r 3 runs for many minutes: a task when the client can.
     * A busy node is refused before a task is made (the step checks
     * again when it runs). */
    if (level >= 3) {
        json_int_t jobs = running_jobs(ctx, node, err);
        if (jobs < 0) return NULL;
        if (jobs > 0) {
            fm_err_set(err, FM_ERR_CONFLICT,
                       "%lld job(s) run on %s: dcgmi diag would compete with them; probe an idle"
                       " or drained node",
                       (long long)jobs, node);
            return NULL;
        }
        json_t *task = fm_call_background(call, err);
        if (task) return task;
    }
    /* The health_probe action's report_failures form (the schema's
     * action_args): every test, and a failed diagnostic is the answer. */
    char owner[48];
    json_t *d = run_one_step(call, owner, sizeof owner, err);
    if (!d) return NULL;
    json_object_set_new(d, "node", json_string(node));
    return d;
}
