/* Guardrails on live state.  Slurm is read through the same backend
 * interface the tools use; the node remediation states they count are
 * src/nodestate's data (fm_nodestate.h): this file decides from them. */
#include "fleetmcp/fm_guardrails.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleetmcp/fm_gate.h"
#include "fleetmcp/fm_nodestate.h"
#include "fleetmcp/fm_policy.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_slurm.h"
#include "fleetmcp/fm_util.h"
#include "fleetmcp/fm_workflow.h"

int fm_guard_init(fm_ctx *ctx, fm_err *err)
{
    if (fm_node_state_init(ctx, err)) return -1;
    return fm_breaker_init(ctx, err) || fm_offender_init(ctx, err) || fm_diagnosis_init(ctx, err)
               ? -1
               : 0;
}

static const json_t *section(fm_ctx *ctx, const char *name)
{
    return fm_config_section(&ctx->cfg, name);
}

static void add(json_t *verdicts, const char *name, bool ok, const char *fix, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void add_v(json_t *verdicts, const char *name, bool ok, const char *fix, const char *fmt,
                  va_list ap) __attribute__((format(printf, 5, 0)));

static void add_v(json_t *verdicts, const char *name, bool ok, const char *fix, const char *fmt,
                  va_list ap)
{
    char detail[600];
    vsnprintf(detail, sizeof detail, fmt, ap);
    json_t *v = json_pack("{s:s, s:b, s:s}", "guardrail", name, "ok", ok, "detail", detail);
    if (!ok && fix) json_object_set_new(v, "fix", json_string(fix));
    json_array_append_new(verdicts, v);
}

static void add(json_t *verdicts, const char *name, bool ok, const char *fix, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_v(verdicts, name, ok, fix, fmt, ap);
    va_end(ap);
}

void fm_guard_add(json_t *verdicts, const char *name, bool ok, const char *fix, const char *fmt,
                  ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_v(verdicts, name, ok, fix, fmt, ap);
    va_end(ap);
}

static bool str_in(const json_t *list, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) if (json_is_string(v) && s &&
                                       !strcmp(json_string_value(v), s)) return true;
    return false;
}

static bool any_in(const json_t *list, const json_t *values)
{
    size_t i;
    json_t *v;
    json_array_foreach(values, i, v) if (str_in(list, json_string_value(v))) return true;
    return false;
}

static bool state_has(const json_t *node, const char *word)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(node, "state"), i,
                       v) if (!strcasecmp(json_string_value(v), word)) return true;
    return false;
}

/* Schedulable: Slurm would start a job there now. */
static bool schedulable(const json_t *node)
{
    return fm_slurm_node_schedulable(node);
}

bool fm_guard_schedulable(const json_t *node)
{
    return fm_slurm_node_schedulable(node);
}

bool fm_guard_all_canary(fm_ctx *ctx, const json_t *nodes)
{
    const json_t *c = section(ctx, "canary");
    const json_t *list = json_object_get(c, "nodes");
    const char *feature = fm_cfg_str(c, "feature", "canary");
    if (!json_array_size(nodes)) return false;
    size_t i;
    json_t *n;
    json_array_foreach(nodes, i, n)
    {
        const char *name = json_string_value(n);
        if (str_in(list, name)) continue;
        if (!ctx->be.slurm) return false;
        fm_err err = {0};
        json_t *node = ctx->be.slurm->node(ctx->be.slurm_st, name, &err);
        bool yes = node && str_in(json_object_get(node, "features"), feature);
        json_decref(node);
        if (!yes) return false;
    }
    return true;
}

/* guardrails.max_per_domain, or what emergency mode raised it to. */
static long long max_per_domain(fm_ctx *ctx)
{
    long long cfg = fm_cfg_int(section(ctx, "guardrails"), "max_per_domain", 1);
    return (long long)fm_policy_limit(ctx, "max_per_domain", (double)cfg, NULL);
}

void fm_guard_limits(fm_ctx *ctx, long long *per_domain, double *min_share)
{
    *per_domain = max_per_domain(ctx);
    *min_share = fm_policy_limit(
        ctx, "min_schedulable_share",
        fm_cfg_real(section(ctx, "guardrails"), "min_schedulable_share", 0.5), NULL);
}

/* The first domain (rack, sku, partition) whose remediation count would
 * pass the limit with node added, into why; false if none. */
static bool blast_exceeded(fm_ctx *ctx, const char *node, const json_t *domains, long long limit,
                           char *why, size_t len)
{
    static const char *const cols[] = {"rack", "sku", "partition"};
    for (int i = 0; i < 3; i++) {
        const char *val = fm_json_str(domains, cols[i], NULL);
        if (!val) continue;
        long long n = fm_node_state_in_domain(ctx, cols[i], val, node);
        if (n < 0) {
            snprintf(why, len,
                     "the nodes in remediation in %s %s cannot be counted (%s), so adding %s"
                     " counts as over the limit; call again once the store answers",
                     cols[i], val, fm_db_errmsg(ctx->store.db), node);
            return true;
        }
        if (n + 1 > limit) {
            snprintf(why, len,
                     "%s %s already has %lld node%s in remediation; adding %s makes"
                     " %lld, over the limit of %lld per %s",
                     cols[i], val, n, n == 1 ? "" : "s", node, n + 1, limit, cols[i]);
            return true;
        }
    }
    return false;
}

/* Counts one partition from the listing (backends without an aggregate). */
static int count_listing(fm_ctx *ctx, const char *partition, long *total, long *now, fm_err *err)
{
    fm_slurm_node_filter f = {.partition = partition};
    json_t *all = ctx->be.slurm->nodes(ctx->be.slurm_st, &f, err);
    if (!all) return -1;
    size_t k;
    json_t *n;
    *total = (long)json_array_size(all);
    *now = 0;
    json_array_foreach(all, k, n) *now += schedulable(n);
    json_decref(all);
    return 0;
}

json_t *fm_guard_capacity(fm_ctx *ctx, const json_t *node, bool takes, fm_err *err)
{
    const json_t *parts = json_object_get(node, "partitions");
    json_t *out = json_object();
    size_t np = json_array_size(parts);
    /* Slurm's own aggregate, every partition in one query when the backend
     * has one (a fraction of a full listing on a large fleet); otherwise
     * count the listing. */
    for (size_t base = 0; base < np; base += FM_SLURM_MAX_PARTS) {
        const char *names[FM_SLURM_MAX_PARTS];
        long t[FM_SLURM_MAX_PARTS], in[FM_SLURM_MAX_PARTS];
        size_t n = np - base < FM_SLURM_MAX_PARTS ? np - base : FM_SLURM_MAX_PARTS;
        for (size_t i = 0; i < n; i++)
            names[i] = json_string_value(json_array_get(parts, base + i));
        fm_err cerr = {0};
        bool agg = ctx->be.slurm->partition_capacity &&
                   ctx->be.slurm->partition_capacity(ctx->be.slurm_st, names, n, t, in, &cerr) == 0;
        for (size_t i = 0; i < n; i++) {
            if (!agg && count_listing(ctx, names[i], &t[i], &in[i], err)) {
                json_decref(out);
                return NULL;
            }
            size_t now = (size_t)in[i];
            size_t after = now - (takes && schedulable(node) && now ? 1 : 0);
            json_object_set_new(out, names[i] ? names[i] : "",
                                json_pack("{s:I, s:I, s:I}", "total", (json_int_t)t[i],
                                          "schedulable_now", (json_int_t)now, "schedulable_after",
                                          (json_int_t)after));
        }
    }
    return out;
}

static void check_capacity(fm_ctx *ctx, const json_t *node, json_t *verdicts, fm_err *err)
{
    long long per_domain;
    double share;
    fm_guard_limits(ctx, &per_domain, &share);
    json_t *cap = fm_guard_capacity(ctx, node, true, err);
    const char *part;
    json_t *c;
    json_object_foreach(cap, part, c)
    {
        size_t total = (size_t)json_integer_value(json_object_get(c, "total"));
        size_t now = (size_t)json_integer_value(json_object_get(c, "schedulable_now"));
        size_t after = (size_t)json_integer_value(json_object_get(c, "schedulable_after"));
        double frac = total ? (double)after / (double)total : 0;
        char fix[200];
        snprintf(fix, sizeof fix,
                 "wait until more of partition %s is back in service, or lower"
                 " guardrails.min_schedulable_share",
                 part);
        add(verdicts, "capacity", frac + 1e-9 >= share, fix,
            "partition %s: %zu of %zu nodes schedulable now, %zu after (%.0f%%, minimum"
            " %.0f%%)",
            part, now, total, after, 100 * frac, 100 * share);
        json_object_set_new(json_array_get(verdicts, json_array_size(verdicts) - 1), "numbers",
                            json_pack("{s:s, s:I, s:I, s:I, s:f}", "partition", part, "total",
                                      (json_int_t)total, "schedulable_now", (json_int_t)now,
                                      "schedulable_after", (json_int_t)after, "min_share", share));
    }
    json_decref(cap);
}

/* Equivalent actions: a workflow already working on the node owns it (a
 * second plan points at it), and a pending reboot does what a GPU reset
 * would. */
static void check_equivalence(fm_ctx *ctx, const fm_guard_req *req, const json_t *node,
                              const char *name, json_t *verdicts)
{
    char wf[64];
    fm_workflow_live_on_node(ctx, name, req->workflow_id, wf, sizeof wf);
    add(verdicts, "running_workflow", !wf[0],
        "wait for that workflow to end (workflow_get shows its step and whether its owner"
        " lives; a dead one resumes by the same tool with the same arguments, or by"
        " repair_execute of its plan), or escalate it",
        wf[0] ? "workflow %s is already working on %s; see workflow_get %s"
              : "%s: no workflow is working on it",
        wf[0] ? wf : name, name, wf);
    /* A plan for a node a workflow owns is refused outright (repair_plan
     * reads this mark), not recorded for later. */
    if (wf[0])
        json_object_set_new(json_array_get(verdicts, json_array_size(verdicts) - 1), "refuses_plan",
                            json_true());
    if (!req->superseded_by_reboot) return;
    static const char *const pending[] = {"REBOOT_REQUESTED", "REBOOT_ISSUED", "REBOOT"};
    const char *word = NULL;
    for (size_t i = 0; i < sizeof pending / sizeof *pending && !word; i++)
        if (state_has(node, pending[i])) word = pending[i];
    add(verdicts, "equivalence", !word,
        "wait for the reboot: it resets every GPU; check the GPU again once the node is up",
        word ? "a reboot is pending on %s (Slurm state %s); it supersedes %s"
             : "%s: no reboot pending that would supersede %s",
        name, word ? word : req->action, req->action);
}

static void check_idle_gpu(fm_ctx *ctx, const char *name, json_t *verdicts, fm_err *err);

static void check_node(fm_ctx *ctx, const fm_guard_req *req, const char *name, json_t *verdicts,
                       fm_err *err)
{
    /* The caller's snapshot of this node, read moments ago in the same
     * call: reading it again costs slurmctld a node-table walk. */
    const json_t *snap = req->node;
    json_t *node = snap && !strcmp(fm_json_str(snap, "name", ""), name)
                       ? json_incref((json_t *)snap)
                       : ctx->be.slurm->node(ctx->be.slurm_st, name, err);
    if (!node) return;
    const json_t *ex = section(ctx, "exclusions");
    bool excluded =
        str_in(json_object_get(ex, "nodes"), name) ||
        any_in(json_object_get(ex, "partitions"), json_object_get(node, "partitions")) ||
        any_in(json_object_get(ex, "features"), json_object_get(node, "features"));
    add(verdicts, "exclusions", !excluded,
        "remove it from exclusions in the config if it must"
        " be touched",
        excluded ? "%s is excluded by config (node, partition or feature)" : "%s is not excluded",
        name);

    check_equivalence(ctx, req, node, name, verdicts);
    if (ctx->cfg.mode == FM_MODE_CANARY) {
        json_t *one = json_pack("[s]", name);
        bool canary = fm_guard_all_canary(ctx, one);
        json_decref(one);
        add(verdicts, "mode", canary, "set mode: fleet in the config to act beyond canary nodes",
            canary ? "mode canary: %s is a canary node" : "mode canary: %s is not a canary node",
            name);
    }
    if (req->takes_capacity) {
        fm_window_check(ctx, node, name, verdicts);
        long long limit = max_per_domain(ctx);
        char why[400];
        bool over =
            blast_exceeded(ctx, name, json_object_get(node, "domains"), limit, why, sizeof why);
        add(verdicts, "blast_radius", !over,
            "wait for the nodes in remediation in that domain"
            " to return, or raise guardrails.max_per_domain",
            over ? "%s" : "%s: within %lld node(s) per rack, sku and partition", over ? why : name,
            limit);
        check_capacity(ctx, node, verdicts, err);
        json_t *totals = err && err->code ? NULL : fm_breaker_totals(ctx, node, verdicts, err);
        if (totals) fm_breaker_check(ctx, name, totals, req->attempt, verdicts);
        json_decref(totals);
        fm_offender_check(ctx, name, verdicts);
    }
    const json_t *pre = json_object_get(req->runbook, "preconditions");
    if (pre) {
        char st[32];
        bool read = fm_node_state_get(ctx, name, st, sizeof st) == 0;
        const json_t *allowed = json_object_get(pre, "node_states");
        if (json_array_size(allowed) && !read)
            add(verdicts, "precondition_state", false, "call again once the store answers",
                "%s: its remediation state cannot be read (%s), so the runbook's node_states"
                " cannot be checked",
                name, fm_db_errmsg(ctx->store.db));
        else if (json_array_size(allowed))
            add(verdicts, "precondition_state", str_in(allowed, st),
                "finish or escalate the node's current workflow first",
                "%s is %s; the runbook starts from one of its node_states", name, st);
        size_t i;
        json_t *w;
        json_array_foreach(json_object_get(pre, "slurm_states_forbidden"), i, w)
        {
            if (state_has(node, json_string_value(w)))
                add(verdicts, "precondition_slurm", false, "resolve the Slurm state first",
                    "%s is %s in Slurm, which this runbook forbids", name, json_string_value(w));
        }
        json_t *maxj = json_object_get(pre, "max_running_jobs");
        if (json_is_integer(maxj)) {
            fm_slurm_job_filter jf = {.node = name, .state = "RUNNING"};
            json_t *jobs = ctx->be.slurm->jobs(ctx->be.slurm_st, &jf, err);
            if (jobs) {
                long long n = (long long)json_array_size(jobs);
                add(verdicts, "precondition_jobs", n <= json_integer_value(maxj),
                    "wait for the jobs to finish, or approve a plan that cancels them",
                    "%s runs %lld job(s); the runbook allows at most %lld", name, n,
                    (long long)json_integer_value(maxj));
                json_decref(jobs);
            }
        }
        if (json_is_true(json_object_get(pre, "requires_idle_gpu")))
            check_idle_gpu(ctx, name, verdicts, err);
    }
    if (req->fault_class) {
        const json_t *rb = json_object_get(req->runbook, "retry_budget");
        const json_t *g = json_object_get(section(ctx, "guardrails"), "retry_budget");
        long long max = fm_cfg_int(rb, "max_attempts", fm_cfg_int(g, "max_attempts", 2));
        long long win = fm_cfg_int(rb, "window_s", fm_cfg_int(g, "window_s", 86400));
        /* attempts are stamped on the store's clock (fm_node_state_set) */
        long long n = fm_node_state_attempts(ctx, name, req->fault_class,
                                             fm_store_now_ms(&ctx->store) - win * 1000);
        if (n < 0)
            add(verdicts, "retry_budget", false, "call again once the store answers",
                "%s: the attempts for %s cannot be counted (%s), so the budget counts as spent",
                name, req->fault_class, fm_db_errmsg(ctx->store.db));
        else
            add(verdicts, "retry_budget", n < max,
                "escalate to a human: repeating the same repair"
                " will not fix it",
                "%s: %lld of %lld attempts for %s in the last %lld s", name, n, max,
                req->fault_class, win);
    }
    if (req->resume) {
        /* The reason's prefix is only a claim (anyone can write
         * "fleetmcp: hold"): the drain is ours when its owner is a
         * workflow of ours on this node. */
        int owned = fm_workflow_owns_drain(ctx, name, fm_json_str(node, "reason", ""));
        add(verdicts, "ownership", owned == 1 || req->approved,
            "fleetmcp resumes only drains it owns; a human approval can override",
            owned == 1   ? "%s's drain is fleetmcp's (reason %s)"
            : owned == 0 ? "%s was drained by someone else (reason: %s; no workflow of this"
                           " store on the node is named in it)"
                         : "%s: the store cannot tell whose drain this is (reason: %s), so it"
                           " counts as someone else's",
            name, fm_json_str(node, "reason", ""));
    }
    json_decref(node);
}

/* The runbook's requires_idle_gpu: no running Slurm job on the node and no
 * process on any of its GPUs.  Jobs are asked first, so a busy node is
 * refused without a command on it; GPUs that cannot be read count as busy
 * (the verdict says so), never as idle. */
static void check_idle_gpu(fm_ctx *ctx, const char *name, json_t *verdicts, fm_err *err)
{
    static const char fix[] = "wait until the node's jobs end and its GPUs are idle (or drain it"
                              " first and let them finish), then plan again";
    fm_slurm_job_filter jf = {.node = name, .state = "RUNNING"};
    json_t *jobs = ctx->be.slurm->jobs(ctx->be.slurm_st, &jf, err);
    if (!jobs) return;
    size_t njobs = json_array_size(jobs);
    json_decref(jobs);
    if (njobs) {
        add(verdicts, "idle_gpu", false, fix,
            "%s runs %zu job(s) and the runbook requires idle GPUs", name, njobs);
        return;
    }
    if (!ctx->be.exec) {
        add(verdicts, "idle_gpu", false, "configure ssh so fleetmcp can read the GPUs' processes",
            "the runbook requires idle GPUs on %s and without ssh their processes cannot be"
            " read",
            name);
        return;
    }
    fm_err e = {0};
    int procs = fm_wf_gpu_processes(ctx, name, -1, &e);
    if (procs < 0)
        add(verdicts, "idle_gpu", false, fix,
            "the runbook requires idle GPUs on %s and their processes cannot be read: %s", name,
            e.text);
    else
        add(verdicts, "idle_gpu", procs == 0, fix,
            procs ? "%s has %d GPU process(es) and the runbook requires idle GPUs"
                  : "%s: no job, no GPU process (%d)",
            name, procs);
}

json_t *fm_guard_check(fm_ctx *ctx, const fm_guard_req *req, bool *all_ok, fm_err *err)
{
    json_t *verdicts = json_array();
    char why[600];
    bool ks = fm_killswitch_engaged(ctx, why, sizeof why);
    add(verdicts, "kill_switch", !ks, "a human releases it with killswitch_release",
        ks ? "%s" : "kill switch released", ks ? why : "");
    /* Loud: every verdict list says when emergency mode has raised limits. */
    if (fm_emergency_describe(ctx, why, sizeof why))
        add(verdicts, "emergency_mode", true, NULL, "%s", why);
    if (json_array_size(req->nodes) && !ctx->be.slurm) {
        json_decref(verdicts);
        fm_backend_missing(err, "slurm", "guardrails read live node state from Slurm");
        return NULL;
    }
    size_t i;
    json_t *n;
    json_array_foreach(req->nodes, i, n)
    {
        check_node(ctx, req, json_string_value(n), verdicts, err);
        if (err && err->code) {
            json_decref(verdicts);
            return NULL;
        }
    }
    *all_ok = true;
    json_array_foreach(verdicts, i, n) if (!json_is_true(json_object_get(n, "ok"))) *all_ok = false;
    return verdicts;
}

void fm_guard_explain(const json_t *verdicts, char *buf, size_t len)
{
    size_t i;
    json_t *v;
    size_t at = 0, failed = 0;
    snprintf(buf, len, "all guardrails pass");
    /* The first refusal in full, then the names of the others: an operator
     * who clears one obstacle should not meet the next only on retry. */
    json_array_foreach(verdicts, i, v)
    {
        if (json_is_true(json_object_get(v, "ok")) || at + 2 >= len) continue;
        const char *name = fm_json_str(v, "guardrail", "?");
        const char *fix = fm_json_str(v, "fix", NULL);
        int n = !failed++
                    ? snprintf(buf, len, "guardrail %s: %s%s%s", name, fm_json_str(v, "detail", ""),
                               fix ? "; to pass: " : "", fix ? fix : "")
                    : snprintf(buf + at, len - at, "%s%s",
                               failed == 2 ? " (also refused by " : ", ", name);
        at = n < 0 ? len : at + (size_t)n;
    }
    if (failed > 1 && at + 1 < len) snprintf(buf + at, len - at, ")");
}

int fm_guard_reserve(fm_ctx *ctx, const char *node, const char *state, const char *fault_class,
                     const char *workflow_id, fm_err *err)
{
    if (!ctx->be.slurm) return fm_backend_missing(err, "slurm", "reservations need domains");
    /* Read Slurm before the transaction: never hold the write lock across
     * a backend call. */
    json_t *n = ctx->be.slurm->node(ctx->be.slurm_st, node, err);
    if (!n) return -1;
    /* Capacity is decided again where it is taken, from a read made now
     * (never the shared aggregate a plan may have shown: a plan is a
     * proposal); the breaker reuses its totals. */
    json_t *cap = json_array();
    check_capacity(ctx, n, cap, err);
    char cwhy[600] = "";
    bool cap_ok = true;
    size_t ci;
    json_t *cv;
    json_array_foreach(cap, ci, cv) cap_ok = cap_ok && json_is_true(json_object_get(cv, "ok"));
    if (!cap_ok) fm_guard_explain(cap, cwhy, sizeof cwhy);
    json_t *domains = json_incref(json_object_get(n, "domains"));
    json_t *totals = err && err->code ? NULL : cap_ok ? fm_breaker_totals(ctx, n, cap, err) : NULL;
    json_decref(n);
    json_decref(cap);
    if (!totals) {
        if (!cap_ok)
            fm_err_set(err, FM_ERR_GUARDRAIL, "%s (Slurm read now, as the node is taken)", cwhy);
        json_decref(domains);
        return -1;
    }
    long long limit = max_per_domain(ctx);
    int rc = -1;
    char why[400];
    /* The counts below and the rows that raise them must not interleave
     * with another reservation's.  On PostgreSQL one lock row orders the
     * reservations of every host (and only them: approvals, tickets and
     * the audit chain do not wait for it), and each count, read after
     * the lock, sees the previous holder's commit.  One row, not one per
     * rack or partition: the circuit breaker counts drains fleet-wide,
     * so every reservation reads a count every other one raises. */
    if (fm_store_begin_rows(&ctx->store, err)) goto out;
    if (fm_store_lock_row(&ctx->store, "reservations", err)) {
        fm_store_rollback(&ctx->store);
        goto out;
    }
    if (blast_exceeded(ctx, node, domains, limit, why, sizeof why)) {
        fm_store_rollback(&ctx->store);
        fm_err_set(err, FM_ERR_GUARDRAIL,
                   "blast radius: %s (another workflow got there"
                   " first); wait for it to finish",
                   why);
        goto out;
    }
    /* Every drain fleetmcp makes passes here: the breaker counts it in
     * the same transaction, so servers sharing the store count together. */
    if (fm_breaker_reserve(ctx, node, totals, err) ||
        fm_node_state_upsert(ctx, node, state, fault_class, workflow_id, domains, err)) {
        fm_store_rollback(&ctx->store);
        goto out;
    }
    rc = fm_store_commit(&ctx->store, err);
out:
    json_decref(totals);
    json_decref(domains);
    return rc;
}
