/* The workflow engine: runs a repair plan's steps one at a time,
 * persisting each before and after it runs, so the next server can pick
 * up where a dead one stopped.
 *
 * Order: the runbook's steps, verification and on_success run in turn; the
 * first failure (of a step without continue_on_failure) switches to the
 * rollback steps and then on_failure (escalate with a ticket).  Nothing
 * loops: every step runs once per attempt, waits are bounded by the
 * step's timeout_s, and the retry budget guardrail counts attempts per
 * node and fault class across workflows. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "fleetmcp/fm_audit.h"
#include "fleetmcp/fm_gate.h"
#include "fleetmcp/fm_guardrails.h"
#include "fleetmcp/fm_mcp.h"
#include "fleetmcp/fm_runbook.h"
#include "fleetmcp/fm_registry.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_slurm.h"
#include "fleetmcp/fm_tickets.h"
#include "fleetmcp/fm_util.h"
#include "fleetmcp/fm_workflow.h"
#include "fm_actions.gen.h"
#include "wf_int.h"

#define POLL_MS 1000

typedef struct fm_step_ctx {
    fm_call *call;
    wf_row *w;
    const json_t *step;
    const fm_action_def *def;
    json_t *out; /* what the step reports (borrowed, filled by the action) */
    int64_t row; /* this attempt's workflow_steps row */
    /* The node state the step leaves when the action's args choose it
     * (static text), else NULL: the action's state_after. */
    const char *state_after;
} step_ctx;

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static long long var_int(const wf_row *w, const char *k)
{
    return (long long)json_integer_value(json_object_get(w->vars, k));
}

static void var_set_int(wf_row *w, const char *k, long long v)
{
    json_object_set_new(w->vars, k, json_integer((json_int_t)v));
}

/* Marks the repair's start on the node's own clock (vars
 * repair_at_node_s), the reference its Xid check compares kernel stamps
 * with: this server's clock would be off by the two hosts' skew. */
static int mark_repair(step_ctx *sc, fm_err *err)
{
    long long t = fm_wf_node_clock(sc->call->ctx, sc->w->node, err);
    if (t < 0) return -1;
    var_set_int(sc->w, "repair_at_node_s", t);
    return 0;
}

/* A single-node tool's one-step workflow (fm_workflow_tool_content): the
 * gate decided the call that runs it, and its drain is owned by the plan
 * or call (content call_owner), as the tool's drains always were. */
static bool tool_run(const wf_row *w)
{
    return json_is_string(json_object_get(w->content, "call_owner"));
}

/* Who owns what the workflow drains and reserves: the call for a tool's
 * one-step workflow, else the workflow. */
static const char *owner_of(const wf_row *w)
{
    return fm_json_str(w->content, "call_owner", w->id);
}

/* Polls until done(sc) says yes, the step's timeout passes or the client
 * cancels.  The lease is renewed on every poll.  The timeout counts from
 * the step's first start (stored with its row): a workflow resumed after
 * a crash waits only for what is left, and fails at once past it. */
static int wait_until(step_ctx *sc, bool (*done)(step_ctx *, char *, size_t, fm_err *), fm_err *err)
{
    long long timeout = json_integer_value(json_object_get(sc->step, "timeout_s"));
    if (timeout <= 0) timeout = sc->def ? sc->def->default_timeout_s : 60;
    fm_ctx *ctx = sc->call->ctx;
    int64_t at = wf_step_deadline(ctx, sc->w, sc->row, timeout * 1000);
    int64_t left = at - wf_clock_ms(ctx);
    if (left <= 0) {
        char iso[32];
        fm_iso_time(at, iso);
        fm_err_set(err, FM_ERR_TIMEOUT,
                   "%s: its timeout_s (%lld s, counted from the step's first start) ran out at"
                   " %s, before this resume",
                   fm_json_str(sc->step, "id", "?"), timeout, iso);
        return -1;
    }
    /* This host's clock from here on: the remaining time is what counts. */
    int64_t deadline = fm_now_ms() + left;
    snprintf(sc->w->status, sizeof sc->w->status, "waiting");
    wf_save(sc->call->ctx, sc->w, NULL);
    int rc = -1;
    char what[200] = "";
    for (int polls = 0;; polls++) {
        fm_err e = {0};
        if (done(sc, what, sizeof what, &e)) {
            rc = 0;
            break;
        }
        if (e.code) {
            fm_err_set(err, e.code, "%s", e.text);
            break;
        }
        if (fm_now_ms() >= deadline) {
            fm_err_set(err, FM_ERR_TIMEOUT, "%s: still %s after %lld s (the step's timeout_s)",
                       fm_json_str(sc->step, "id", "?"), what, timeout);
            break;
        }
        wf_renew(sc->call->ctx, sc->w);
        char msg[300];
        snprintf(msg, sizeof msg, "%s: %s", fm_json_str(sc->step, "id", "?"), what);
        /* Progress only grows: the step's index plus the share of its
         * timeout used so far. */
        double frac = (double)(fm_now_ms() - (deadline - timeout * 1000)) / (timeout * 1000.0);
        double total = (double)json_array_size(json_object_get(sc->w->content, "steps"));
        if ((polls % 5 == 0 &&
             !fm_call_progress(sc->call, sc->w->step_index + (frac < 0.99 ? frac : 0.99), total,
                               msg)) ||
            fm_call_cancelled(sc->call)) {
            fm_err_set(err, FM_ERR_CANCELLED, "the client cancelled while %s", what);
            break;
        }
        /* SIGTERM or a closed stdin: nobody is left to report to, and the
         * node must not be acted on once the wait ends.  Not a failure
         * either (no rollback): the step stays open for recovery. */
        if ((sc->w->stopped = fm_call_stopping(sc->call))) {
            fm_err_set(err, FM_ERR_CANCELLED, "the server is stopping (%s) while %s",
                       sc->w->stopped, what);
            break;
        }
        sleep_ms(POLL_MS);
    }
    snprintf(sc->w->status, sizeof sc->w->status, "running");
    return rc;
}

/* ---- actions -------------------------------------------------------------- */

int fm_act_drain(step_ctx *sc, fm_err *err)
{
    bool noop = false;
    const char *text = fm_json_str(json_object_get(sc->step, "args"), "reason", "remediation");
    if (fm_wf_drain(sc->call->ctx, sc->w->node, owner_of(sc->w), text, &noop, err)) return -1;
    json_object_set_new(sc->out, "noop", json_boolean(noop));
    return 0;
}

static bool idle_now(step_ctx *sc, char *what, size_t len, fm_err *err)
{
    json_t *jobs = fm_wf_jobs_on(sc->call->ctx, sc->w->node, err);
    if (!jobs) return false;
    size_t n = json_array_size(jobs);
    snprintf(what, len, "waiting for %zu job(s) on %s to end (first: %s)", n, sc->w->node,
             n ? fm_json_str(json_array_get(jobs, 0), "job_id", "?") : "-");
    if (n) {
        json_t *id = json_object_get(json_array_get(jobs, 0), "job_id");
        if (json_is_integer(id))
            snprintf(what, len, "waiting for %zu job(s) on %s to end (first: %lld)", n, sc->w->node,
                     (long long)json_integer_value(id));
    }
    json_decref(jobs);
    return n == 0;
}

int fm_act_wait_idle(step_ctx *sc, fm_err *err)
{
    int64_t t0 = fm_now_ms();
    if (wait_until(sc, idle_now, err)) return -1;
    json_object_set_new(sc->out, "waited_s", json_integer((fm_now_ms() - t0) / 1000));
    return 0;
}

int fm_act_reboot(step_ctx *sc, fm_err *err)
{
    fm_ctx *ctx = sc->call->ctx;
    const json_t *args = json_object_get(sc->step, "args");
    char st[256], reason[256], full[256];
    long long boot = fm_wf_node_boot(ctx, sc->w->node, st, sizeof st, reason, sizeof reason, err);
    if (boot < 0) return -1;
    /* Idempotent: a reboot this workflow already asked for is either
     * pending (REBOOT flags) or done (a newer boot time). */
    if (var_int(sc->w, "reboot_issued") &&
        (boot > var_int(sc->w, "boot_before") || strstr(st, "REBOOT"))) {
        json_object_set_new(sc->out, "noop", json_true());
        json_object_set_new(sc->out, "boot_before", json_integer(var_int(sc->w, "boot_before")));
        return 0;
    }
    /* No clock reading: Slurm reboots a node ssh may not reach, and the
     * Xid check reads the current boot only, which begins after this
     * reboot (wait_node_up saw the boot time move), so every line of it
     * counts (a reset's mark from before would not). */
    json_object_del(sc->w->vars, "repair_at_node_s");
    var_set_int(sc->w, "boot_before", boot);
    var_set_int(sc->w, "reboot_issued", 1);
    if (wf_save(ctx, sc->w, err)) return -1;
    snprintf(full, sizeof full, "%s%s: %s", FM_SLURM_OWNED_PREFIX, owner_of(sc->w),
             fm_json_str(args, "reason", "reboot"));
    /* Held DOWN after the reboot: no job can land before verification.
     * nextstate RESUME (the node_reboot tool's form): Slurm returns the
     * node to service by itself once it is back. */
    fm_slurm_node_op op = strcmp(fm_json_str(args, "nextstate", "DOWN"), "RESUME")
                              ? FM_SLURM_REBOOT_HOLD
                              : FM_SLURM_REBOOT;
    if (ctx->be.slurm->update_node(ctx->be.slurm_st, sc->w->node, op, full, err)) return -1;
    json_object_set_new(sc->out, "boot_before", json_integer(boot));
    return 0;
}

static bool node_up(step_ctx *sc, char *what, size_t len, fm_err *err)
{
    char st[256], reason[256];
    long long boot =
        fm_wf_node_boot(sc->call->ctx, sc->w->node, st, sizeof st, reason, sizeof reason, err);
    if (boot < 0) return false;
    snprintf(what, len, "waiting for %s to come back (Slurm state %s)", sc->w->node, st);
    if (strstr(st, "REBOOT") || strstr(st, "NOT_RESPONDING") || fm_slurm_state_has(st, "UNKNOWN"))
        return false;
    /* After our reboot the node is DOWN by design (nextstate=DOWN): slurmd
     * is back once the boot time moved and the reboot flags cleared. */
    if (var_int(sc->w, "reboot_issued")) return boot > var_int(sc->w, "boot_before");
    return !fm_slurm_state_has(st, "DOWN");
}

int fm_act_wait_node_up(step_ctx *sc, fm_err *err)
{
    if (wait_until(sc, node_up, err)) return -1;
    /* The node comes back DOWN (nextstate=DOWN); drain it under this
     * workflow's reason so the verify and resume steps own it. */
    bool noop = false;
    if (fm_wf_drain(sc->call->ctx, sc->w->node, sc->w->id, "verifying after reboot", &noop, err))
        return -1;
    json_object_set_new(sc->out, "redrained", json_boolean(!noop));
    json_object_set_new(
        sc->out, "boot_time",
        json_integer(fm_wf_node_boot(sc->call->ctx, sc->w->node, NULL, 0, NULL, 0, NULL)));
    return 0;
}

/* Compares one reset GPU's snapshots: what was wrong before and is not
 * after (temperature is not a fault). */
static json_t *cleared_of(const json_t *before, const json_t *after)
{
    json_t *cleared = json_array();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)before, k, v)
    {
        json_t *a = json_object_get(after, k);
        bool was = json_is_true(v) || (json_is_integer(v) && json_integer_value(v) > 0);
        bool now = json_is_true(a) || (json_is_integer(a) && json_integer_value(a) > 0);
        if (was && !now && strcmp(k, "temp_c")) json_array_append_new(cleared, json_string(k));
    }
    return cleared;
}

int fm_act_gpu_reset(step_ctx *sc, fm_err *err)
{
    fm_ctx *ctx = sc->call->ctx;
    const json_t *args = json_object_get(sc->step, "args");
    json_t *jobs = fm_wf_jobs_on(ctx, sc->w->node, err);
    if (!jobs) return -1;
    size_t nj = json_array_size(jobs);
    json_decref(jobs);
    if (nj) {
        fm_err_set(err, FM_ERR_CONFLICT,
                   "%zu job(s) still run on %s: a GPU reset would kill them; drain the node and"
                   " wait for them (node_drain), then reset",
                   nj, sc->w->node);
        return -1;
    }
    json_t *lost = NULL;
    json_t *gpus = fm_wf_gpus(ctx, sc->w->node, &lost, err);
    if (!gpus) {
        json_decref(lost);
        return -1;
    }
    json_t *want = json_object_get(args, "gpu");
    /* snapshot (the gpu_reset tool's form): each GPU compared before and
     * after, and a node still in service afterwards needs no remediation
     * state. */
    bool snapshot = json_is_true(json_object_get(args, "snapshot"));
    json_t *done = json_array();
    int rc = 0;
    size_t i, matched = 0;
    json_t *g;
    if (mark_repair(sc, err)) {
        json_decref(gpus);
        json_decref(lost);
        json_decref(done);
        return -1;
    }
    wf_save(ctx, sc->w, NULL);
    json_array_foreach(gpus, i, g)
    {
        json_int_t idx = json_integer_value(json_object_get(g, "index"));
        if (json_is_integer(want) && json_integer_value(want) != idx) continue;
        matched++;
        int procs = fm_wf_gpu_processes(ctx, sc->w->node, (int)idx, err);
        if (procs != 0) {
            if (procs > 0)
                fm_err_set(err, FM_ERR_CONFLICT, "GPU %lld on %s has %d process(es): not reset",
                           (long long)idx, sc->w->node, procs);
            rc = -1;
            break;
        }
        const char *bus = fm_json_str(g, "bus", "");
        json_t *before = NULL;
        if (snapshot && !(before = fm_wf_gpu_snapshot(ctx, sc->w->node, idx, NULL, 0, err))) {
            rc = -1;
            break;
        }
        json_t *one = json_object();
        int r = fm_wf_gpu_reset(ctx, sc->w->node, bus, one, err);
        if (snapshot && !r) {
            fm_err e2 = {0};
            json_t *after = fm_wf_gpu_snapshot(ctx, sc->w->node, idx, NULL, 0, &e2);
            if (!after) after = json_pack("{s:s}", "error", e2.text);
            json_object_set_new(sc->out, "cleared", cleared_of(before, after));
            json_object_set_new(sc->out, "after", after);
            json_object_set(sc->out, "output", json_object_get(one, "output"));
        }
        if (before) json_object_set_new(sc->out, "before", before);
        if (!r) json_object_del(one, "output"); /* "successfully reset": say it once */
        json_array_append_new(done, one);
        if (r) {
            rc = -1;
            break;
        }
    }
    if (!rc && json_is_integer(want) && !matched) {
        fm_err_set(err, FM_ERR_NOT_FOUND,
                   "GPU %lld of %s does not answer nvidia-smi (fallen off the bus or absent): a"
                   " reset cannot reach it; reboot the node instead",
                   (long long)json_integer_value(want), sc->w->node);
        rc = -1;
    }
    /* Resetting every GPU cannot reach the ones off the bus. */
    if (!rc && !json_is_integer(want) && json_array_size(lost)) {
        fm_err_set(err, FM_ERR_BACKEND,
                   "%zu GPU(s) fell off the bus on %s and cannot be reset:"
                   " reboot the node",
                   json_array_size(lost), sc->w->node);
        rc = -1;
    }
    if (!rc && snapshot) {
        char st[256] = "";
        fm_wf_node_boot(ctx, sc->w->node, st, sizeof st, NULL, 0, NULL);
        sc->state_after = strstr(st, "DRAIN") ? "repairing" : "returned";
    }
    json_object_set_new(sc->out, "reset", done);
    json_object_set_new(sc->out, "lost", lost);
    json_decref(gpus);
    return rc;
}

int fm_act_health_probe(step_ctx *sc, fm_err *err)
{
    const json_t *args = json_object_get(sc->step, "args");
    json_t *jobs = fm_wf_jobs_on(sc->call->ctx, sc->w->node, err);
    if (!jobs) return -1;
    size_t nj = json_array_size(jobs);
    json_decref(jobs);
    if (nj) {
        fm_err_set(err, FM_ERR_CONFLICT,
                   "%zu job(s) run on %s: dcgmi diag would compete with them; probe an idle or"
                   " drained node",
                   nj, sc->w->node);
        return -1;
    }
    int level = (int)json_integer_value(json_object_get(args, "level"));
    if (level < 1) level = 1;
    json_t *d = fm_wf_diag(sc->call->ctx, sc->w->node, level, err);
    if (!d) return -1;
    bool passed = json_is_true(json_object_get(d, "passed"));
    /* report_failures (the health_probe tool's form): every test, and a
     * failed diagnostic is the answer, not a failed step. */
    if (json_is_true(json_object_get(args, "report_failures"))) {
        json_object_update(sc->out, d);
        json_decref(d);
        return 0;
    }
    /* Keep the step output small: failing tests only. */
    json_t *failed = json_array();
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(d, "tests"), i,
                       t) if (strcmp(fm_json_str(t, "status", ""), "Pass") &&
                              strcmp(fm_json_str(t, "status", ""), "Skip"))
        json_array_append(failed, t);
    json_object_set_new(sc->out, "passed", json_boolean(passed));
    json_object_set_new(sc->out, "tests",
                        json_integer((json_int_t)json_array_size(json_object_get(d, "tests"))));
    json_object_set_new(sc->out, "not_passed", failed);
    json_decref(d);
    if (!passed && !json_array_size(failed))
        fm_err_set(err, FM_ERR_BACKEND,
                   "dcgmi diag -r %d on %s ran no test (every result Skip, or none came back):"
                   " nothing shows the GPUs healthy; check dcgmi and the GPUs on the node",
                   level, sc->w->node);
    else if (!passed)
        fm_err_set(err, FM_ERR_BACKEND, "dcgmi diag -r %d failed on %s", level, sc->w->node);
    return passed ? 0 : -1;
}

int fm_act_diag_bundle(step_ctx *sc, fm_err *err)
{
    char id[32];
    if (fm_wf_diag_bundle(sc->call, &sc->def->bundle, sc->w->node, id, sizeof id, err)) return -1;
    json_object_set_new(sc->w->vars, "bundle_id", json_string(id));
    json_object_set_new(sc->out, "bundle_id", json_string(id));
    return 0;
}

int fm_act_verify_gpu(step_ctx *sc, fm_err *err)
{
    /* The repair's start on the node's clock, else the start of the
     * monitor window before this check (a cool-down), on the node's clock
     * too.  Without either (or with a mark an older build took on this
     * server's clock) every Xid line of the current boot counts: nothing
     * in this workflow cleared the ones before it. */
    long long since = var_int(sc->w, "repair_at_node_s");
    if (!since)
        since = json_integer_value(
            json_object_get(json_object_get(sc->w->vars, "monitor"), "started_node_s"));
    json_t *checks = json_object_get(json_object_get(sc->step, "args"), "checks");
    json_t *v = fm_wf_verify(sc->call->ctx, sc->w->node, checks, since, err);
    if (!v) return -1;
    bool ok = json_is_true(json_object_get(v, "ok"));
    json_object_update(sc->out, v);
    json_decref(v);
    if (!ok) {
        char first[300] = "";
        const char *k;
        json_t *c;
        json_object_foreach(json_object_get(sc->out, "checks"), k, c)
        {
            if (json_is_true(json_object_get(c, "ok"))) continue;
            snprintf(first, sizeof first, "%s: %s", k, fm_json_str(c, "detail", ""));
            break;
        }
        fm_err_set(err, FM_ERR_BACKEND, "verification failed on %s: the fault is still there (%s)",
                   sc->w->node, first);
        json_object_set_new(sc->w->vars, "verify_failed", json_string(first));
    }
    return ok ? 0 : -1;
}

int fm_act_resume(step_ctx *sc, fm_err *err)
{
    char st[256], reason[256];
    if (fm_wf_node_boot(sc->call->ctx, sc->w->node, st, sizeof st, reason, sizeof reason, err) < 0)
        return -1;
    /* Ours only when the reason names a workflow of ours on this node:
     * a human's "fleetmcp: hold" has the prefix and is theirs. */
    bool ours = fm_workflow_owns_drain(sc->call->ctx, sc->w->node, reason) == 1;
    /* Every state fm_wf_resume lifts, not only a drain: a node someone
     * set DOWN (or FAIL) with their own reason is theirs too. */
    bool out = strstr(st, "DRAIN") || strstr(st, "DOWN") || strstr(st, "FAIL");
    if (out && !ours && !sc->w->approval_id[0]) {
        char c[160];
        fm_clip(c, sizeof c, reason);
        fm_err_set(err, FM_ERR_GUARDRAIL,
                   "ownership: %s was taken out of service by someone else (%s, reason: %s);"
                   " fleetmcp resumes only its own drains: ask its owner, or have a human"
                   " approve the plan",
                   sc->w->node, st, c);
        return -1;
    }
    bool noop = false;
    if (fm_wf_resume(sc->call->ctx, sc->w->node, &noop, err)) return -1;
    json_object_set_new(sc->out, "noop", json_boolean(noop));
    return 0;
}

#define EVIDENCE_MAX 500 /* bytes per evidence line: ticket_create's schema */

/* Evidence for a ticket: what ran and what failed (new array). */
static json_t *evidence(fm_ctx *ctx, const wf_row *w)
{
    json_t *ev = json_array();
    char line[600];
    snprintf(line, sizeof line, "workflow %s, runbook %s v%lld, plan %s", w->id, w->runbook,
             w->runbook_version, w->plan_id[0] ? w->plan_id : "-");
    json_array_append_new(ev, fm_ticket_str_clip(line, EVIDENCE_MAX));
    const char *vf = fm_json_str(w->vars, "verify_failed", NULL);
    if (vf) {
        snprintf(line, sizeof line, "verification: %s", vf);
        json_array_append_new(ev, fm_ticket_str_clip(line, EVIDENCE_MAX));
    }
    const char *fe = fm_json_str(w->vars, "failed_step", NULL);
    if (fe) {
        snprintf(line, sizeof line, "failed step: %s", fe);
        json_array_append_new(ev, fm_ticket_str_clip(line, EVIDENCE_MAX));
    }
    (void)ctx;
    return ev;
}

int fm_act_escalate(step_ctx *sc, fm_err *err)
{
    fm_ctx *ctx = sc->call->ctx;
    const json_t *args = json_object_get(sc->step, "args");
    const char *bundle = fm_json_str(sc->w->vars, "bundle_id", NULL);
    char fresh[32] = "";
    if (!bundle || !*bundle) {
        /* Evidence first: a ticket without the node's state is half a ticket. */
        fm_err e = {0};
        if (!fm_wf_diag_bundle(sc->call, &sc->def->bundle, sc->w->node, fresh, sizeof fresh, &e) &&
            fresh[0])
            bundle = fresh;
        else
            json_object_set_new(sc->out, "bundle_error", json_string(e.text));
    }
    char summary[300];
    const char *fe = fm_json_str(sc->w->vars, "failed_step", NULL);
    snprintf(summary, sizeof summary, "%s: %s %s (team %s, severity %s)", sc->w->node,
             sc->w->fault_class, fe ? "repair failed, node kept out of service" : "needs a human",
             fm_json_str(args, "team", "?"), fm_json_str(args, "severity", "?"));
    /* The ticket tool's own arguments, checked by its schema and the
     * gate (the action's data says which steps an escalation passes). */
    json_t *targs = json_pack("{s:o, s:s, s:s, s:s, s:o}", "summary", fm_ticket_summary(summary),
                              "node", sc->w->node, "fault_class", sc->w->fault_class, "severity",
                              "high", "evidence", evidence(ctx, sc->w));
    if (bundle) json_object_set_new(targs, "bundle_id", json_string(bundle));
    json_t *t = NULL;
    if (sc->def->ticket.tool)
        t = fm_tools_call_internal(sc->call, sc->def->ticket.tool, sc->def->ticket.exempt, targs,
                                   err);
    else
        fm_err_set(err, FM_ERR_INTERNAL,
                   "%s names no ticket tool (calls.ticket in schemas/actions/%s.json); please"
                   " report",
                   sc->def->name, sc->def->name);
    json_decref(targs);
    if (!t) return -1;
    json_object_set_new(sc->out, "ticket", json_string(fm_json_str(t, "key", "")));
    json_object_set_new(sc->out, "deduplicated",
                        json_boolean(json_is_true(json_object_get(t, "deduplicated"))));
    if (bundle) json_object_set_new(sc->out, "bundle_id", json_string(bundle));
    json_object_set_new(sc->w->vars, "ticket", json_string(fm_json_str(t, "key", "")));
    var_set_int(sc->w, "escalated", 1);
    json_decref(t);
    return 0;
}

int fm_act_ticket(step_ctx *sc, fm_err *err)
{
    int rc = fm_act_escalate(sc, err);
    json_object_del(sc->w->vars, "escalated");
    return rc;
}

/* runbooks.monitor: time_scale shrinks every window and interval (tests
 * run a day's window in seconds); sample_every_s is the runbook-time gap
 * between samples. */
static void monitor_timing(fm_ctx *ctx, long long window_s, int64_t *window_ms, int64_t *every_ms)
{
    const json_t *m = json_object_get(fm_config_section(&ctx->cfg, "runbooks"), "monitor");
    double scale = fm_cfg_real(m, "time_scale", 1.0);
    if (!(scale > 0 && scale <= 1)) scale = 1; /* the schema bounds it; never longer */
    long long every_s = fm_cfg_int(m, "sample_every_s", 300);
    if (every_s < 1) every_s = 300;
    *window_ms = (int64_t)((double)window_s * 1000.0 * scale);
    if (*window_ms < 1000) *window_ms = 1000;
    *every_ms = (int64_t)((double)every_s * 1000.0 * scale);
    if (*every_ms < 1000) *every_ms = 1000;
    if (*every_ms > *window_ms) *every_ms = *window_ms;
}

#define MONITOR_KEEP 20 /* recent samples kept in the workflow's vars */

/* One sample of the node's condition: true if every check is clean.
 * *first gets the first failing check ("xid: 1 Xid line(s)...").  now:
 * when it started. */
static bool monitor_sample(step_ctx *sc, json_t *mon, int64_t now, char *first, size_t len)
{
    const json_t *checks = json_object_get(json_object_get(sc->step, "args"), "checks");
    json_t *dflt = checks ? NULL : json_pack("[s,s,s]", "xid", "ecc_dbe", "nvlink");
    fm_err e = {0};
    /* The window's start on the node's clock (read at the first sample),
     * which its kernel stamps are compared with; started_ms is the
     * store's. */
    long long since = json_integer_value(json_object_get(mon, "started_node_s"));
    if (!since && (since = fm_wf_node_clock(sc->call->ctx, sc->w->node, &e)) > 0)
        json_object_set_new(mon, "started_node_s", json_integer(since));
    json_t *v = since > 0
                    ? fm_wf_verify(sc->call->ctx, sc->w->node, checks ? checks : dflt, since, &e)
                    : NULL;
    json_decref(dflt);
    bool ok = v && json_is_true(json_object_get(v, "ok"));
    first[0] = '\0';
    if (!v) {
        snprintf(first, len, "node unreadable: %s: %.200s", fm_strerror(e.code), e.text);
    } else if (!ok) {
        const char *k;
        json_t *c;
        json_object_foreach(json_object_get(v, "checks"), k, c)
        {
            if (json_is_true(json_object_get(c, "ok"))) continue;
            snprintf(first, len, "%s: %s", k, fm_json_str(c, "detail", ""));
            break;
        }
    }
    char at[32];
    fm_iso_time(fm_now_ms(), at);
    json_t *recent = json_object_get(mon, "recent");
    json_t *one = json_pack("{s:s, s:b}", "at", at, "ok", ok);
    if (!ok) json_object_set_new(one, "failed", json_string(first));
    json_array_append_new(recent, one);
    while (json_array_size(recent) > MONITOR_KEEP)
        json_array_remove(recent, 0);
    json_object_set_new(mon, "samples",
                        json_integer(json_integer_value(json_object_get(mon, "samples")) + 1));
    /* When it started: the next one is due a whole interval later, however
     * long this one's SSH round took. */
    json_object_set_new(mon, "last_sample_ms", json_integer(now));
    if (!ok)
        json_object_set_new(mon, "bad",
                            json_integer(json_integer_value(json_object_get(mon, "bad")) + 1));
    json_decref(v);
    return ok;
}

/* Holds the step's window without holding a process: samples the node's
 * condition now, then parks the workflow (w->park_until_ms) until the next
 * sample is due; whoever drives workflows claims it then and runs this
 * step again with the state kept in vars.monitor.  A bad sample fails the
 * step at once (the runbook's rollback and on_failure escalate); the
 * window ending with every sample clean lets the workflow continue. */
int fm_act_monitor(step_ctx *sc, fm_err *err)
{
    fm_ctx *ctx = sc->call->ctx;
    json_t *mon = json_object_get(sc->w->vars, "monitor");
    /* The store's clock: the park's due time is compared by other hosts. */
    int64_t now = wf_clock_ms(ctx);
    if (!json_is_object(mon) ||
        json_integer_value(json_object_get(mon, "index")) != sc->w->step_index) {
        long long window_s =
            json_integer_value(json_object_get(json_object_get(sc->step, "args"), "window_s"));
        int64_t window_ms, every_ms;
        monitor_timing(ctx, window_s > 0 ? window_s : 1800, &window_ms, &every_ms);
        mon = json_pack("{s:i, s:s, s:I, s:I, s:I, s:I, s:i, s:i, s:[]}", "index",
                        sc->w->step_index, "step", fm_json_str(sc->step, "id", "?"), "started_ms",
                        (json_int_t)now, "window_end_ms", (json_int_t)(now + window_ms), "every_ms",
                        (json_int_t)every_ms, "window_s", (json_int_t)window_s, "samples", 0, "bad",
                        0, "recent");
        json_object_set_new(sc->w->vars, "monitor", mon);
    }
    int64_t end = json_integer_value(json_object_get(mon, "window_end_ms"));
    int64_t every = json_integer_value(json_object_get(mon, "every_ms"));
    int64_t last = json_integer_value(json_object_get(mon, "last_sample_ms"));
    char first[300] = "";
    bool ok = true;
    /* Sampled when due (or at the window's end): a claim that comes early
     * takes no extra sample. */
    if (!last || now >= last + every || now >= end)
        ok = monitor_sample(sc, mon, now, first, sizeof first);
    long long samples = json_integer_value(json_object_get(mon, "samples"));
    json_object_set_new(sc->out, "samples", json_integer(samples));
    char endiso[32];
    fm_iso_time(end, endiso);
    json_object_set_new(sc->out, "window_end", json_string(endiso));
    if (!ok) {
        fm_err_set(err, FM_ERR_BACKEND,
                   "monitor %s on %s: sample %lld of the window was bad (%s); escalating per the"
                   " runbook",
                   fm_json_str(sc->step, "id", "?"), sc->w->node, samples, first);
        json_object_set_new(sc->out, "bad_sample", json_string(first));
        return -1;
    }
    if (now >= end) {
        json_object_set_new(sc->out, "clean", json_true());
        return 0;
    }
    int64_t due = (last && now < last + every ? last : now) + every;
    sc->w->park_until_ms = due < end ? due : end;
    json_object_set_new(sc->out, "monitoring", json_true());
    return 0;
}

int fm_act_set_state(step_ctx *sc, fm_err *err)
{
    (void)err;
    json_object_set_new(sc->out, "state",
                        json_string(fm_json_str(json_object_get(sc->step, "args"), "state", "?")));
    return 0;
}

static int act_jobs(step_ctx *sc, bool requeue, fm_err *err)
{
    fm_ctx *ctx = sc->call->ctx;
    if (!sc->w->approval_id[0]) {
        fm_err_set(err, FM_ERR_APPROVAL,
                   "%s always needs a human approval; approve the plan"
                   " and run repair_execute with approval_id",
                   sc->def->name);
        return -1;
    }
    json_t *jobs = fm_wf_jobs_on(ctx, sc->w->node, err);
    if (!jobs) return -1;
    /* job_id: the one-job form (job_requeue): that job only, and it must
     * run on the node. */
    const json_t *one = json_object_get(json_object_get(sc->step, "args"), "job_id");
    json_t *done = json_array();
    size_t i;
    json_t *j;
    int rc = 0;
    json_array_foreach(jobs, i, j)
    {
        json_t *id = json_object_get(j, "job_id");
        if (!json_is_integer(id)) continue;
        if (one && !json_equal(id, (json_t *)one)) continue;
        uint64_t jid = (uint64_t)json_integer_value(id);
        if (requeue ? ctx->be.slurm->requeue_job(ctx->be.slurm_st, jid, sc->w->node, err)
                    : ctx->be.slurm->cancel_job(ctx->be.slurm_st, jid, err)) {
            rc = -1;
            break;
        }
        json_array_append(done, id);
    }
    json_decref(jobs);
    if (!rc && one && !json_array_size(done)) {
        fm_err_set(err, FM_ERR_NOT_FOUND,
                   "job %lld does not run on %s (slurm_jobs {node} lists what does)",
                   (long long)json_integer_value(one), sc->w->node);
        rc = -1;
    }
    json_object_set_new(sc->out, requeue ? "requeued" : "cancelled", done);
    return rc;
}

int fm_act_cancel_jobs(step_ctx *sc, fm_err *err)
{
    return act_jobs(sc, false, err);
}

int fm_act_requeue_jobs(step_ctx *sc, fm_err *err)
{
    return act_jobs(sc, true, err);
}

/* ---- the loop ------------------------------------------------------------- */

static bool is_failure_phase(const char *phase)
{
    return !strcmp(phase, "rollback") || !strcmp(phase, "on_failure");
}

static void audit_step(fm_call *call, const wf_row *w, const json_t *step, const char *before,
                       const char *after, const char *result, const fm_err *e, int64_t dur_us,
                       bool resumed)
{
    char ver[24], reason[200];
    snprintf(ver, sizeof ver, "%lld", w->runbook_version);
    snprintf(reason, sizeof reason, "workflow %s step %s (%s)%s", w->id,
             fm_json_str(step, "id", "?"), fm_json_str(step, "phase", "?"),
             resumed ? " resumed after the previous server died" : "");
    fm_audit_rec rec = {
        .phase = "step",
        .call_ref = w->call_ref,
        /* The tool whose call runs the content: the plan runner, or a
         * single-node tool's one-step workflow. */
        .tool = fm_json_str(w->content, "tool", fm_tool_with_flags(FM_TOOL_RUNS_PLAN)->name),
        .args = json_object_get(step, "args"),
        .autonomy = fm_autonomy_name(call->tool ? call->tool->autonomy : FM_AUTONOMY_CANARY),
        .decision = "allow",
        .reason = reason,
        .plan_id = w->plan_id[0] ? w->plan_id : NULL,
        .approval_id = w->approval_id[0] ? w->approval_id : NULL,
        .workflow_id = w->id,
        .node = w->node,
        .result = result,
        .error_code = e && e->code ? fm_strerror(e->code) : NULL,
        .error = e && e->code ? e->text : NULL,
        .duration_us = dur_us,
        .state_before = before,
        .state_after = after,
        .runbook = w->runbook[0] ? w->runbook : NULL,
        .runbook_version = w->runbook[0] ? ver : NULL};
    fm_audit_append(call->ctx, &rec, NULL);
}

/* Runs one step.  Returns 0 on success, -1 on failure (err set). */
static int run_step(fm_call *call, wf_row *w, const json_t *step, bool resumed, fm_err *err)
{
    fm_ctx *ctx = call->ctx;
    const char *action = fm_json_str(step, "action", "");
    const fm_action_def *def = fm_action_find(action);
    char before[32], after[32];
    fm_node_state_get(ctx, w->node, before, sizeof before);
    /* A monitor step coming back for its next sample keeps its one row:
     * a day's window is one step in workflow_get, not hundreds. */
    json_t *mon = json_object_get(w->vars, "monitor");
    int64_t row = -1;
    if (json_integer_value(json_object_get(mon, "index")) == w->step_index &&
        json_integer_value(json_object_get(mon, "row")) > 0) {
        row = json_integer_value(json_object_get(mon, "row"));
        wf_step_reopen(ctx, row);
    } else {
        row = wf_step_start(ctx, w, step, before, err);
    }
    if (row < 0) return -1;
    w->park_until_ms = 0;
    int64_t t0 = fm_now_ms();
    json_t *out = json_object();
    step_ctx sc = {.call = call, .w = w, .step = step, .def = def, .out = out, .row = row};
    int rc = 0;
    if (!def) {
        fm_err_set(err, FM_ERR_INVALID, "step %s names unknown action %s",
                   fm_json_str(step, "id", "?"), action);
        rc = -1;
    }
    /* A kill switch engaged mid-run stops every further change to the
     * node, in every phase: a runbook's rollback may drain, resume or
     * reboot too.  Escalation and set_state do not touch the node, so
     * they still record the failure and open the ticket. */
    char why[600];
    /* A tool's one-step workflow runs in the call the gate just allowed
     * (kill switch included): one decision per call, also when that call
     * resumes it (the gate decided the call for it).  Resumed by another
     * call (repair_execute's recovery), it is checked like any workflow. */
    if (!rc && def->touches_node && !w->gated && fm_killswitch_engaged(ctx, why, sizeof why)) {
        fm_err_set(err, FM_ERR_DENIED, "kill switch: %s", why);
        rc = -1;
    }
    /* The blast radius is enforced where capacity is taken: atomically,
     * across every server sharing the store.  The reservation names what
     * is happening to the node while the step runs, as the action's data
     * says: a drain quarantines it, a single-node tool's reset or reboot
     * that takes it is already repairing it (runbooks drain first, so
     * their reservation is the drain's). */
    bool reserved_now = false;
    if (!rc && def->takes_capacity && !var_int(w, "reserved")) {
        if (fm_guard_reserve(ctx, w->node, fm_node_state_name((fm_node_state)def->state_during),
                             w->fault_class[0] ? w->fault_class : NULL, owner_of(w), err)) {
            rc = -1;
            json_object_set_new(w->vars, "reserve_refused", json_true());
        } else {
            var_set_int(w, "reserved", 1);
            wf_save(ctx, w, NULL);
            reserved_now = true;
        }
    }
    if (!rc) {
        long long to = json_integer_value(json_object_get(step, "timeout_s"));
        /* A monitor's timeout_s covers its whole window, but this process
         * holds it for one sample only (its lease_s): a driver that dies
         * mid-sample must not strand it for a day. */
        if (def->lease_s > 0) to = def->lease_s;
        wf_renew_for(ctx, w, (to > 0 ? to : 600) * 1000 + WF_LEASE_MS);
        char msg[200];
        snprintf(msg, sizeof msg, "%s %s: %s", w->node, fm_json_str(step, "id", "?"), action);
        fm_call_progress(call, w->step_index,
                         (double)json_array_size(json_object_get(w->content, "steps")), msg);
        fm_call_log(call, "info", "workflow %s step %s", w->id, msg);
        rc = def->exec(&sc, err);
        if (rc)
            fm_call_log(call, "warning", "workflow %s step %s failed: %s: %s", w->id, msg,
                        fm_strerror(err->code), err->text);
    }
    snprintf(after, sizeof after, "%s", before);
    if (!rc && def) {
        const char *target = sc.state_after;
        if (!target && def->state_after == FM_ACTION_STATE_FROM_ARGS)
            target = fm_json_str(json_object_get(step, "args"), "state", NULL);
        else if (!target && def->state_after >= 0)
            target = fm_node_state_name((fm_node_state)def->state_after);
        fm_err se = {0};
        if (target && fm_node_state_set(ctx, w->node, target, owner_of(w), &se) == 0)
            snprintf(after, sizeof after, "%s", target);
    }
    /* A tool's one-step workflow has no rollback steps: the step that
     * took the node and then failed gives back its state. */
    if (rc && reserved_now && tool_run(w)) fm_node_state_set(ctx, w->node, before, NULL, NULL);
    json_decref(w->last_out);
    w->last_out = json_incref(out);
    char *text = json_dumps(out, JSON_COMPACT);
    char result[488];
    snprintf(result, sizeof result, "%.480s", text ? text : "{}");
    mon = json_object_get(w->vars, "monitor");
    if (json_integer_value(json_object_get(mon, "index")) == w->step_index) {
        json_object_set_new(mon, "row", json_integer(row));
        if (!w->park_until_ms)
            json_object_set_new(mon, "result", json_string(rc ? "bad sample" : "clean"));
    }
    if (w->stopped)
        /* The step did not end: its row stays "started", so the next
         * owner sees it interrupted and resumes or escalates. */
        snprintf(after, sizeof after, "%s", before);
    else
        wf_step_end(ctx, row,
                    rc                 ? "failed"
                    : w->park_until_ms ? "monitoring"
                                       : "done",
                    after, text, rc ? err->text : NULL, NULL);
    audit_step(call, w, step, before, after, rc ? NULL : result, rc ? err : NULL,
               (fm_now_ms() - t0) * 1000, resumed);
    free(text);
    json_decref(out);
    return rc;
}

/* One pass of the loop over w's steps: runs the next step that applies.
 * 1: call again; 0: the steps are over (finish() records the outcome);
 * -1: stopped or refused, the workflow's row already says so.  A pool
 * plan interleaves several workflows by calling this in turn. */
static int execute_step(fm_call *call, wf_row *w, bool *resumed)
{
    fm_ctx *ctx = call->ctx;
    const json_t *steps = json_object_get(w->content, "steps");
    size_t n = json_array_size(steps);
    if ((size_t)w->step_index >= n) return 0;
    const json_t *step = json_array_get(steps, (size_t)w->step_index);
    const char *phase = fm_json_str(step, "phase", "steps");
    bool fail_phase = is_failure_phase(phase);
    if (!w->failing && fail_phase) return 0; /* success: rollback is not for us */
    if (w->failing && !fail_phase) {
        w->step_index++;
        return 1;
    }
    if (w->stopped || (w->stopped = fm_call_stopping(call))) {
        wf_event(ctx, w->id, "stopped",
                 "server pid %d stopping (%s) before step %d finished; left for recovery by"
                 " the next gated repair_execute of plan %s",
                 (int)getpid(), w->stopped, w->step_index, w->plan_id[0] ? w->plan_id : "-");
        wf_save(ctx, w, NULL);
        /* Expire the lease now: another host need not wait it out. */
        wf_renew_for(ctx, w, -1);
        return -1;
    }
    if (!w->failing && fm_call_cancelled(call)) {
        w->failing = true;
        json_object_set_new(w->vars, "failed_step", json_string("cancelled by the client"));
        wf_event(ctx, w->id, "cancelled", "the client cancelled; rolling back");
        wf_save(ctx, w, NULL);
        return 1;
    }
    fm_err e = {0};
    int rc = run_step(call, w, step, *resumed, &e);
    *resumed = false;
    if (w->stopped) return 1; /* recorded at the top of the next pass */
    if (!rc && w->park_until_ms) {
        /* Parked until the next sample: this process is done with it (a
         * pool's slot ends here too; the node stays held by the workflow). */
        json_t *mon = json_object_get(w->vars, "monitor");
        char due[32], end[32];
        fm_iso_time(w->park_until_ms, due);
        fm_iso_time(json_integer_value(json_object_get(mon, "window_end_ms")), end);
        if (json_integer_value(json_object_get(mon, "samples")) <= 1)
            wf_event(ctx, w->id, "monitoring",
                     "%s (monitor) holds its window until %s; next sample due %s",
                     fm_json_str(step, "id", "?"), end, due);
        snprintf(w->status, sizeof w->status, "monitoring");
        wf_save(ctx, w, NULL);
        wf_park(ctx, w, w->park_until_ms, NULL);
        fm_call_progress(call, w->step_index, (double)n, "monitoring");
        return -1;
    }
    if (rc) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s (%s) failed: %s: %s", fm_json_str(step, "id", "?"),
                 fm_json_str(step, "action", "?"), fm_strerror(e.code), e.text);
        wf_event(ctx, w->id, "step_failed", "%s", msg);
        if (!w->failure.code) w->failure = e;
        if (json_is_true(json_object_get(step, "continue_on_failure"))) {
            /* noted, not fatal */
        } else if (!w->failing) {
            w->failing = true;
            json_object_set_new(w->vars, "failed_step", json_string(msg));
            wf_set_error(ctx, w->id, msg);
            if (json_is_true(json_object_get(w->vars, "reserve_refused")) &&
                !var_int(w, "touched")) {
                /* Nothing was changed on the node: there is nothing to
                 * roll back or hand over; the refusal is the result. */
                snprintf(w->status, sizeof w->status, "failed");
                wf_save(ctx, w, NULL);
                return -1;
            }
        }
    } else {
        wf_event(ctx, w->id, "step_done", "%s (%s) done", fm_json_str(step, "id", "?"),
                 fm_json_str(step, "action", "?"));
        var_set_int(w, "touched", 1);
    }
    w->step_index++;
    wf_save(ctx, w, NULL);
    return 1;
}

/* Records how w ended, once its steps are over. */
static void finish(fm_call *call, wf_row *w)
{
    fm_ctx *ctx = call->ctx;
    size_t n = json_array_size(json_object_get(w->content, "steps"));
    if (!w->failing)
        snprintf(w->status, sizeof w->status, "%s", var_int(w, "escalated") ? "escalated" : "done");
    else
        snprintf(w->status, sizeof w->status, "%s",
                 var_int(w, "escalated") ? "escalated" : "failed");
    w->step_index = (int)n;
    wf_save(ctx, w, NULL);
    wf_event(ctx, w->id, "finished", "workflow %s on %s ended %s", w->id, w->node, w->status);
    fm_call_log(call, strcmp(w->status, "done") ? "error" : "notice", "workflow %s on %s ended %s",
                w->id, w->node, w->status);
    fm_call_progress(call, (double)n, (double)n, w->status);
}

/* Runs w from its step_index to the end. */
static void execute(fm_call *call, wf_row *w, bool resumed)
{
    int r;
    while ((r = execute_step(call, w, &resumed)) == 1) {
    }
    if (r == 0) finish(call, w);
}

/* Live-state guardrails at the start (and on resume): the gate checked
 * the call, this checks the runbook's own preconditions and budget. */
static int guard(fm_ctx *ctx, const wf_row *w, bool resume, fm_err *err)
{
    const fm_runbook *rb = NULL;
    if (!resume && !fm_runbooks_load(ctx, NULL)) rb = fm_runbook_find(ctx->runbooks, w->runbook);
    json_t *nodes = json_pack("[s]", w->node);
    fm_guard_req req = {.action = w->runbook,
                        .nodes = nodes,
                        .fault_class = resume ? NULL : w->fault_class,
                        .runbook = rb ? rb->doc : NULL,
                        .takes_capacity = true,
                        .approved = w->approval_id[0] != '\0',
                        .destructive = true,
                        .attempt = true,
                        .workflow_id = w->id};
    bool ok = false;
    json_t *v = fm_guard_check(ctx, &req, &ok, err);
    json_decref(nodes);
    if (!v) return -1;
    if (!ok) {
        char why[600];
        fm_guard_explain(v, why, sizeof why);
        fm_err_set(err, FM_ERR_GUARDRAIL, "%s", why);
    }
    json_decref(v);
    return ok ? 0 : -1;
}

struct fm_wf_run {
    wf_row w;
    bool resumed;
    int state; /* execute_step's last answer: 1 running, 0 steps over, -1 stopped */
};

fm_wf_run *fm_workflow_begin(fm_call *call, const char *plan_id, const json_t *content, fm_err *err)
{
    fm_ctx *ctx = call->ctx;
    if (fm_workflow_init(ctx, err)) return NULL;
    if (!ctx->be.slurm) {
        fm_backend_missing(err, "slurm", "workflows act through Slurm");
        return NULL;
    }
    fm_wf_run *r = calloc(1, sizeof *r);
    if (!r) {
        fm_err_set(err, FM_ERR_NOMEM, "workflow");
        return NULL;
    }
    wf_row *w = &r->w;
    r->state = 1;
    const json_t *args = json_object_get(content, "args");
    snprintf(w->node, sizeof w->node, "%s", fm_json_str(args, "node", ""));
    snprintf(w->fault_class, sizeof w->fault_class, "%s", fm_json_str(args, "fault_class", ""));
    snprintf(w->runbook, sizeof w->runbook, "%s", fm_json_str(content, "runbook", ""));
    w->runbook_version = json_integer_value(json_object_get(content, "runbook_version"));
    snprintf(w->plan_id, sizeof w->plan_id, "%s", plan_id ? plan_id : "");
    snprintf(w->approval_id, sizeof w->approval_id, "%s",
             call->approval_id ? call->approval_id : "");
    w->call_ref = call->audit_id;
    char other[FM_WORKFLOW_ID_LEN + 8];
    wf_live_on_node(ctx, w->node, NULL, other, sizeof other);
    if (other[0]) {
        fm_err_set(err, FM_ERR_CONFLICT, "workflow %s is already working on %s; see workflow_get",
                   other, w->node);
        free(r);
        return NULL;
    }
    /* The gate took this call's one decision (guardrails, approval); a
     * tool's one-step workflow is not decided again here. */
    if (!json_is_string(json_object_get(content, "call_owner")) && guard(ctx, w, false, err)) {
        free(r);
        return NULL;
    }
    w->content = json_deep_copy(content);
    w->gated = tool_run(w);
    w->vars = json_object();
    if (wf_insert(ctx, w, err)) {
        wf_row_free(w);
        free(r);
        return NULL;
    }
    /* Run as a task: tasks/get names the workflow behind it. */
    fm_task_note(ctx, w->id, "workflow started");
    wf_event(ctx, w->id, "started", "%s:%s started %s v%lld on %s (plan %s, approval %s)",
             ctx->session.initiator ? "human" : "agent", fm_session_who(&ctx->session), w->runbook,
             w->runbook_version, w->node, w->plan_id[0] ? w->plan_id : "-",
             w->approval_id[0] ? w->approval_id : "none");
    return r;
}

bool fm_workflow_advance(fm_call *call, fm_wf_run *r)
{
    if (r->state != 1) return false;
    r->state = execute_step(call, &r->w, &r->resumed);
    if (r->state == 0) finish(call, &r->w);
    return r->state == 1;
}

const char *fm_workflow_run_id(const fm_wf_run *r)
{
    return r->w.id;
}

const char *fm_workflow_owner(const fm_wf_run *r)
{
    return owner_of(&r->w);
}

bool fm_workflow_failing(const fm_wf_run *r)
{
    return r->w.failing;
}

const json_t *fm_workflow_output(const fm_wf_run *r)
{
    return r->w.last_out;
}

const fm_err *fm_workflow_failure(const fm_wf_run *r)
{
    return r->w.failure.code ? &r->w.failure : NULL;
}

void fm_workflow_abandon(fm_call *call, fm_wf_run *r, const char *why)
{
    wf_row *w = &r->w;
    if (r->state != 1) return;
    r->state = -1;
    w->failing = true;
    snprintf(w->status, sizeof w->status, "failed");
    json_object_set_new(w->vars, "failed_step", json_string(why));
    wf_set_error(call->ctx, w->id, why);
    wf_save(call->ctx, w, NULL);
    wf_event(call->ctx, w->id, "abandoned", "%s at step %d", why, w->step_index);
}

json_t *fm_workflow_end(fm_call *call, fm_wf_run *r, fm_err *err)
{
    fm_ctx *ctx = call->ctx;
    wf_row *w = &r->w;
    json_t *out = NULL;
    if (w->stopped && tool_run(w))
        fm_err_set(err, FM_ERR_CANCELLED,
                   "the server is stopping (%s): %s on %s stopped without acting further and"
                   " stays recoverable (workflow %s); call %s on %s again (approved again where"
                   " it needs an approval) to resume it",
                   w->stopped, fm_json_str(w->content, "tool", "?"), w->node, w->id,
                   fm_json_str(w->content, "tool", "?"), w->node);
    else if (w->stopped)
        fm_err_set(err, FM_ERR_CANCELLED,
                   "the server is stopping (%s): workflow %s on %s stopped at step %d without"
                   " acting further and stays recoverable; the next repair_execute of plan %s"
                   " (approved again) resumes it",
                   w->stopped, w->id, w->node, w->step_index, w->plan_id[0] ? w->plan_id : "-");
    else if (!strcmp(w->status, "failed") &&
             json_is_true(json_object_get(w->vars, "reserve_refused")) && !var_int(w, "touched"))
        /* Lost the race for the failure domain before touching anything:
         * a refusal, like the gate's, not a failed repair. */
        fm_err_set(err, FM_ERR_GUARDRAIL, "%s (workflow %s recorded as failed; nothing changed)",
                   fm_json_str(w->vars, "failed_step", "blast radius"), w->id);
    else
        out = fm_workflow_get(ctx, w->id, err);
    wf_row_free(w);
    free(r);
    return out;
}

json_t *fm_workflow_run(fm_call *call, const char *plan_id, const json_t *content, fm_err *err)
{
    fm_wf_run *r = fm_workflow_begin(call, plan_id, content, err);
    if (!r) return NULL;
    while (fm_workflow_advance(call, r)) {
    }
    return fm_workflow_end(call, r, err);
}

/* Resuming or continuing a workflow acts on nodes.  The gate let call
 * run; still, a read (or a call with no tool) and shadow mode must never
 * reach a node through here, whoever calls it. */
static bool may_drive(fm_ctx *ctx, const fm_call *call)
{
    if (!call->tool || call->tool->autonomy == FM_AUTONOMY_READ || ctx->cfg.mode == FM_MODE_SHADOW)
        return false;
    return fm_workflow_init(ctx, NULL) == 0;
}

/* The ids a query selects (new array, empty if the store fails): read
 * whole before any is driven, so driving one never runs inside the
 * query's statement.  due: bind now and limit as the query's two
 * parameters. */
/* w was claimed from an owner that died: an interrupted step is marked,
 * and w goes on failing (rollback, escalation) instead of resuming when
 * that step is not safe to repeat or, with check, the guardrails no
 * longer pass.  false with the reason in why when it does not resume. */
static bool take_over(fm_ctx *ctx, wf_row *w, bool check, char *out, size_t len)
{
    char last[16];
    wf_step_last(ctx, w->id, w->step_index, last, sizeof last);
    const json_t *step =
        json_array_get(json_object_get(w->content, "steps"), (size_t)w->step_index);
    const fm_action_def *def = fm_action_find(fm_json_str(step, "action", ""));
    bool midstep = !strcmp(last, "started");
    if (midstep) wf_step_interrupt(ctx, w->id, w->step_index);
    fm_err e = {0};
    const char *why = NULL;
    char buf[600];
    if (midstep && def && !def->resumable)
        why = "the interrupted step is not safe to repeat";
    else if (check && !w->failing && guard(ctx, w, true, &e)) {
        snprintf(buf, sizeof buf, "guardrails no longer pass: %s", e.text);
        why = buf;
    }
    snprintf(w->status, sizeof w->status, "running");
    if (why && !w->failing) {
        w->failing = true;
        json_object_set_new(w->vars, "failed_step", json_string(why));
        wf_set_error(ctx, w->id, why);
        w->step_index++;
    }
    wf_event(ctx, w->id, why ? "escalating" : "resumed", "owner died; pid %d %s at step %d%s%s",
             (int)getpid(), why ? "escalates" : "resumes", w->step_index, why ? ": " : "",
             why ? why : "");
    wf_save(ctx, w, NULL);
    snprintf(out, len, "%s", why ? why : "");
    return !why;
}

fm_wf_run *fm_workflow_resume_tool(fm_call *call, const char *id, fm_err *err)
{
    fm_ctx *ctx = call->ctx;
    if (fm_workflow_init(ctx, err)) return NULL;
    fm_wf_run *r = calloc(1, sizeof *r);
    if (!r) {
        fm_err_set(err, FM_ERR_NOMEM, "workflow");
        return NULL;
    }
    wf_row *w = &r->w;
    if (wf_load(ctx, id, w, err)) {
        wf_row_free(w);
        free(r);
        return NULL;
    }
    if (!tool_run(w) || strcmp(fm_json_str(w->content, "tool", ""), call->tool->name) ||
        !wf_claim(ctx, w)) {
        fm_err_set(err, FM_ERR_CONFLICT,
                   "workflow %s on %s was taken over by another server first (or is not a"
                   " dead %s of this node); see workflow_get %s",
                   w->id, w->node, call->tool->name, w->id);
        wf_row_free(w);
        free(r);
        return NULL;
    }
    /* The gate decided this call for this very workflow (it excluded it
     * from running_workflow): no second guardrail or kill-switch decision
     * here. */
    w->gated = true;
    char why[600];
    const json_t *step =
        json_array_get(json_object_get(w->content, "steps"), (size_t)w->step_index);
    if (!take_over(ctx, w, false, why, sizeof why)) {
        /* Not repeated (a requeue or cancel may have reached Slurm before
         * the server died): this call ends the workflow failed, and the
         * operator decides from what Slurm shows now. */
        char *args = json_dumps(json_object_get(step, "args"), JSON_COMPACT);
        fm_err_set(&w->failure, FM_ERR_CONFLICT,
                   "%s on %s not resumed: its interrupted %s step %.100s is not safe to repeat"
                   " and may have reached Slurm. Check there first (slurm_jobs {\"node\":\"%s\"}"
                   " or scontrol show job); if it did not take effect, call %s again (approved"
                   " again if needed). Workflow %s is ended (failed) and holds nothing;"
                   " workflow_get %s shows it",
                   call->tool->name, w->node, fm_json_str(step, "action", "?"), args ? args : "{}",
                   w->node, call->tool->name, w->id, w->id);
        free(args);
    }
    fm_task_note(ctx, w->id, "workflow resumed");
    r->resumed = true;
    r->state = 1;
    return r;
}

int fm_workflow_recover(fm_ctx *ctx, fm_call *call)
{
    if (!may_drive(ctx, call)) return 0;
    json_t *ids = wf_ids_unfinished(ctx);
    int handled = 0;
    size_t i;
    json_t *id;
    json_array_foreach(ids, i, id)
    {
        wf_row w;
        if (wf_load(ctx, json_string_value(id), &w, NULL)) {
            wf_row_free(&w);
            continue;
        }
        if (!wf_claim(ctx, &w)) {
            wf_row_free(&w);
            continue;
        }
        handled++;
        char why[600];
        take_over(ctx, &w, true, why, sizeof why);
        execute(call, &w, true);
        wf_row_free(&w);
    }
    json_decref(ids);
    /* Parked monitors whose next sample is due ride along. */
    return handled + fm_workflow_run_due(ctx, call, 100);
}

int fm_workflow_run_due(fm_ctx *ctx, fm_call *call, int max)
{
    /* A parked monitor was approved with its plan; what follows it
     * (verification, escalation) is that plan. */
    if (!may_drive(ctx, call)) return 0;
    json_t *ids = wf_ids_due(ctx, max > 0 ? max : 1);
    int handled = 0;
    size_t i;
    json_t *id;
    json_array_foreach(ids, i, id)
    {
        if (fm_call_stopping(call)) break;
        wf_row w;
        /* The claim is a compare-and-set: two drivers never sample the
         * same workflow twice.  Parked (no owner): due once the lease
         * passed.  Owned: only if its driver died mid-sample (pid gone on
         * this host, or the one-sample lease ran out). */
        if (wf_load(ctx, json_string_value(id), &w, NULL) || !wf_claim(ctx, &w)) {
            wf_row_free(&w);
            continue;
        }
        handled++;
        snprintf(w.status, sizeof w.status, "running");
        execute(call, &w, false);
        wf_row_free(&w);
    }
    json_decref(ids);
    return handled;
}

typedef struct {
    json_t *live, *orphans;
    const char *here;
    long long active;
    int64_t now; /* the store's clock (wf_clock_ms) */
} summary_acc;

static void summary_row(const char *id, const char *node, int64_t pid, int64_t lease,
                        const char *status, const char *h, void *arg)
{
    summary_acc *a = arg;
    bool local = h && !strcmp(h, a->here);
    /* A parked monitor has no owner by design: it holds its node
     * and waits for its next sample, it is not orphaned. */
    bool parked = !strcmp(status, "monitoring");
    bool alive = parked || (lease >= a->now && (!local || wf_pid_alive(pid)));
    if (alive) {
        a->active++;
        json_object_set_new(a->live, id, json_true());
    } else {
        json_array_append_new(
            a->orphans, json_pack("{s:s, s:s, s:s}", "workflow_id", id, "node", node, "status",
                                  "owner dead: the next repair_execute of its"
                                  " plan (approved again) resumes or escalates it"));
    }
}

/* A drain Slurm shows with a "fleetmcp:" reason, unless a live workflow
 * owns it (new, or NULL): whose it is by the check slurm_node and
 * slurm_nodes make (a workflow of this store on that node owns it, or an
 * older build's allowed call in the audit; not the prefix anyone can
 * write), and what a human does. */
static json_t *orphaned_drain(fm_ctx *ctx, const json_t *n, const char *owner, const json_t *live)
{
    const char *name = fm_json_str(n, "name", "");
    char id[FM_WORKFLOW_ID_LEN];
    bool ours = wf_drain_owner(ctx, name, fm_json_str(n, "reason", ""), id) == 1;
    if (ours && json_object_get(live, id)) return NULL;
    char st[32];
    fm_node_state_get(ctx, name, st, sizeof st);
    return json_pack(
        "{s:s, s:s, s:s, s:s, s:b, s:s}", "node", name, "owner", owner, "reason",
        fm_json_str(n, "reason", ""), "remediation_state", st, "fleetmcp_owned", ours, "next",
        ours ? "its workflow ended or its server died with the node drained: workflow_get (or"
               " audit_query) on the owner shows how; node_resume once the node is checked, or"
               " repair_execute of its plan again"
             : "not fleetmcp's: no workflow of this store on this node is its owner, nor an"
               " allowed call in its audit (a human's or another store's drain); fleetmcp will"
               " not resume it: a human checks the node and resumes it in Slurm");
}

json_t *fm_workflow_status_summary(fm_ctx *ctx)
{
    json_t *out = json_object(), *unavail = json_array();
    if (fm_workflow_init(ctx, NULL)) {
        json_array_append_new(unavail, json_string("workflows (store)"));
        json_object_set_new(out, "unavailable", unavail);
        return out;
    }
    json_t *live = json_object(), *orphans = json_array();
    summary_acc acc = {live, orphans, wf_host(), 0, wf_clock_ms(ctx)};
    wf_each_unfinished(ctx, summary_row, &acc);
    long long active = acc.active;
    json_t *by = wf_status_counts(ctx);
    json_t *fails = wf_recent_failures(ctx);

    /* Nodes Slurm shows drained with a fleetmcp reason and no live
     * workflow behind it: someone must look (escalated, or a single
     * node_drain, or a workflow whose server died). */
    json_t *drains = json_array();
    if (ctx->be.slurm) {
        fm_err e = {0};
        fm_slurm_node_filter f = {.reason = FM_SLURM_OWNED_PREFIX};
        json_t *nodes = ctx->be.slurm->nodes(ctx->be.slurm_st, &f, &e);
        size_t i;
        json_t *n;
        json_array_foreach(nodes, i, n)
        {
            const char *reason = fm_json_str(n, "reason", "");
            size_t pl = strlen(FM_SLURM_OWNED_PREFIX);
            if (strncmp(reason, FM_SLURM_OWNED_PREFIX, pl)) continue;
            char owner[48];
            snprintf(owner, sizeof owner, "%.*s", (int)strcspn(reason + pl, ":"), reason + pl);
            json_t *o = orphaned_drain(ctx, n, owner, live);
            if (o) json_array_append_new(drains, o);
        }
        if (!nodes) json_array_append_new(unavail, json_string("slurm (orphaned drains)"));
        json_decref(nodes);
    } else {
        json_array_append_new(unavail, json_string("slurm not configured (orphaned drains)"));
    }
    json_object_set_new(out, "active_workflows", json_integer(active));
    json_object_set_new(out, "by_state", by);
    json_object_set_new(out, "orphaned_workflows", orphans);
    json_object_set_new(out, "orphaned_drains", drains);
    json_object_set_new(out, "recent_failures", fails);
    if (json_array_size(unavail))
        json_object_set_new(out, "unavailable", unavail);
    else
        json_decref(unavail);
    json_decref(live);
    return out;
}
