/* Pool plans: a selector to nodes, the nodes to batches, and the batches
 * run through the workflow engine.  The batching (fm_pool_batches) is a
 * function of data only, so it is unit-tested on a generated fleet; the
 * rest reads live state through the same guardrails, gate and engine a
 * one-node plan uses. */
#include "fleetmcp/fm_pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleetmcp/fm_audit.h"
#include "fleetmcp/fm_gate.h"
#include "fleetmcp/fm_guardrails.h"
#include "fleetmcp/fm_plan.h"
#include "fleetmcp/fm_registry.h"
#include "fleetmcp/fm_runbook.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_slurm.h"
#include "fleetmcp/fm_util.h"
#include "fleetmcp/fm_workflow.h"

/* ---- batching (data only) ---------------------------------------------- */

static const char *const DOMAIN_COLS[] = {"rack", "sku", "partition"};

static json_int_t geti(const json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

static void bump(json_t *o, const char *k, json_int_t by)
{
    json_object_set_new(o, k, json_integer(geti(o, k) + by));
}

/* The node's domain keys ("rack=r01", ...) into keys[3]; returns how many. */
static int domain_keys(const json_t *node, char keys[3][160])
{
    int n = 0;
    const json_t *d = json_object_get(node, "domains");
    for (int i = 0; i < 3; i++) {
        const char *v = fm_json_str(d, DOMAIN_COLS[i], NULL);
        if (v) snprintf(keys[n++], sizeof keys[0], "%s=%s", DOMAIN_COLS[i], v);
    }
    return n;
}

typedef struct {
    json_t *names; /* array */
    json_t *count; /* domain key -> nodes of this batch */
    json_t *taken; /* partition of its nodes -> schedulable nodes this batch takes */
    bool closed;   /* a node that fails alone: nothing joins it */
} pool_batch;

static bool share_ok(const json_t *cap, long long taken, double min_share)
{
    json_int_t total = geti(cap, "total"), now = geti(cap, "schedulable_now");
    long long after = (long long)now - taken;
    double frac = total > 0 ? (double)after / (double)total : 0;
    return after >= 0 && frac + 1e-9 >= min_share;
}

static bool fits(const pool_batch *b, const json_t *node, const json_t *busy,
                 const json_t *capacity, const fm_pool_limits *lim)
{
    char keys[3][160];
    int nk = domain_keys(node, keys);
    for (int i = 0; i < nk; i++)
        if (geti(busy, keys[i]) + geti(b->count, keys[i]) + 1 > lim->per_domain) return false;
    /* As the one-node guardrail judges it: a node out of service already
     * takes nothing, but its partition must still hold the share. */
    int takes = fm_guard_schedulable(node) ? 1 : 0;
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(node, "partitions"), i, p)
    {
        const json_t *cap = json_object_get(capacity, json_string_value(p));
        if (cap && !share_ok(cap, geti(b->taken, json_string_value(p)) + takes, lim->min_share))
            return false;
    }
    return true;
}

static void take(pool_batch *b, const json_t *node)
{
    char keys[3][160];
    int nk = domain_keys(node, keys);
    for (int i = 0; i < nk; i++)
        bump(b->count, keys[i], 1);
    json_array_append_new(b->names, json_string(fm_json_str(node, "name", "")));
    int takes = fm_guard_schedulable(node) ? 1 : 0;
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(node, "partitions"), i, p)
        bump(b->taken, json_string_value(p), takes);
}

/* The batch's verdicts: one blast_radius (the fullest domain, or the
 * first over), one capacity per partition of its nodes. */
static json_t *batch_verdicts(const pool_batch *b, const json_t *busy, const json_t *capacity,
                              const fm_pool_limits *lim, bool *pass)
{
    json_t *v = json_array();
    *pass = true;
    const char *key, *worst = NULL;
    json_t *c;
    json_int_t worst_n = -1;
    bool over = false;
    json_object_foreach(b->count, key, c)
    {
        json_int_t n = json_integer_value(c) + geti(busy, key);
        if (over) continue;
        if (n > lim->per_domain) over = true;
        if (over || n > worst_n) {
            worst = key;
            worst_n = n;
        }
    }
    if (worst) {
        if (over) *pass = false;
        fm_guard_add(v, "blast_radius", !over,
                     "wait for the nodes in remediation in that domain to return, or raise"
                     " guardrails.max_per_domain",
                     "%s: %lld in this batch + %lld already in remediation, %s %lld per domain",
                     worst, (long long)geti(b->count, worst), (long long)geti(busy, worst),
                     over ? "over the limit of" : "limit", lim->per_domain);
    }
    json_object_foreach(b->taken, key, c)
    {
        const json_t *cap = json_object_get(capacity, key);
        if (!cap) continue;
        json_int_t total = geti(cap, "total"), now = geti(cap, "schedulable_now");
        long long after = (long long)now - json_integer_value(c);
        bool ok = share_ok(cap, json_integer_value(c), lim->min_share);
        if (!ok) *pass = false;
        char fix[200];
        snprintf(fix, sizeof fix,
                 "wait until more of partition %s is back in service, or lower"
                 " guardrails.min_schedulable_share",
                 key);
        fm_guard_add(v, "capacity", ok, fix,
                     "partition %s: %lld of %lld nodes schedulable now, %lld after this batch"
                     " (%.0f%%, minimum %.0f%%)",
                     key, (long long)now, (long long)total, after,
                     total ? 100.0 * (double)after / (double)total : 0.0, 100 * lim->min_share);
    }
    return v;
}

json_t *fm_pool_batches(const json_t *nodes, const json_t *busy, const json_t *capacity,
                        const fm_pool_limits *lim)
{
    size_t n = json_array_size(nodes), nb = 0;
    pool_batch *b = calloc(n ? n : 1, sizeof *b);
    json_t *out = json_array();
    if (!b) return out;
    size_t i;
    json_t *node;
    json_array_foreach(nodes, i, node)
    {
        size_t k = 0;
        while (k < nb && (b[k].closed || !fits(&b[k], node, busy, capacity, lim)))
            k++;
        if (k == nb) {
            /* A new batch: every node opens at most one, so nb <= n. */
            b[nb] = (pool_batch){json_array(), json_object(), json_object(), false};
            pool_batch empty = b[nb];
            b[nb].closed = !fits(&empty, node, busy, capacity, lim);
            nb++;
        }
        take(&b[k], node);
    }
    for (size_t k = 0; k < nb; k++) {
        bool pass = false;
        json_t *v = batch_verdicts(&b[k], busy, capacity, lim, &pass);
        json_array_append_new(out, json_pack("{s:I, s:o, s:b, s:o}", "batch", (json_int_t)k + 1,
                                             "nodes", b[k].names, "pass", pass, "verdicts", v));
        json_decref(b[k].count);
        json_decref(b[k].taken);
    }
    free(b);
    return out;
}

/* ---- content ----------------------------------------------------------- */

json_t *fm_pool_content(const json_t *selector, const json_t *batches, const char *fault_class,
                        const fm_runbook *rb)
{
    json_t *nodes = json_array();
    size_t i, j;
    json_t *b, *n;
    json_array_foreach(batches, i, b) json_array_foreach(b, j, n) json_array_append(nodes, n);
    /* The runbook's steps as a one-node plan has them: the same for every
     * node, so the pool plan lists them once. */
    json_t *c = fm_workflow_content(json_string_value(json_array_get(nodes, 0)), fault_class, rb);
    json_t *args = json_deep_copy(selector);
    json_object_set_new(args, "fault_class", json_string(fault_class));
    json_object_set_new(args, "runbook", json_string(rb->id));
    json_object_set_new(c, "args", args);
    json_object_set_new(c, "nodes", nodes);
    json_object_set_new(c, "batches", json_deep_copy(batches));
    return c;
}

bool fm_pool_is(const json_t *content)
{
    return json_is_array(json_object_get(content, "batches"));
}

/* ---- selectors --------------------------------------------------------- */

static int by_name(const void *a, const void *b)
{
    return strcmp(fm_json_str(*(json_t *const *)a, "name", ""),
                  fm_json_str(*(json_t *const *)b, "name", ""));
}

/* Sorted by name and without duplicates: the same selector on the same
 * fleet gives the same plan hash. */
static json_t *sorted_unique(json_t *nodes)
{
    size_t n = json_array_size(nodes);
    json_t **v = calloc(n ? n : 1, sizeof *v);
    json_t *out = json_array();
    if (!v) {
        json_decref(nodes);
        return out;
    }
    for (size_t i = 0; i < n; i++)
        v[i] = json_array_get(nodes, i);
    qsort(v, n, sizeof *v, by_name);
    for (size_t i = 0; i < n; i++)
        if (!i || by_name(&v[i - 1], &v[i])) json_array_append(out, v[i]);
    free(v);
    json_decref(nodes);
    return out;
}

/* Nodes whose latest recorded diagnosis (the newest diagnose audit row
 * naming the node) has fault_class on top: new array of names. */
typedef struct {
    const char *fault_class;
    json_t *out;
} diagnosed_acc;

static void diagnosed_node(const char *node, const char *result, void *arg)
{
    diagnosed_acc *a = arg;
    json_t *r = json_loads(result, 0, NULL);
    const char *top = fm_json_str(json_object_get(r, "top"), "fault_class", "");
    if (!strcmp(top, a->fault_class)) json_array_append_new(a->out, json_string(node));
    json_decref(r);
}

static json_t *diagnosed(fm_ctx *ctx, const char *fault_class, fm_err *err)
{
    diagnosed_acc a = {fault_class, json_array()};
    if (fm_audit_latest_diagnoses(&ctx->store, diagnosed_node, &a, err)) {
        json_decref(a.out);
        return NULL;
    }
    return a.out;
}

/* The selector's nodes (new array of normalized Slurm nodes, sorted), the
 * selector as recorded into *selector (new).  NULL with err. */
static json_t *select_nodes(fm_ctx *ctx, const json_t *args, const char *fault_class,
                            json_t **selector, fm_err *err)
{
    const struct fm_slurm_ops *sl = ctx->be.slurm;
    const json_t *names = json_object_get(args, "nodes");
    const char *part = fm_json_str(args, "partition", NULL);
    const char *rack = fm_json_str(args, "rack", NULL);
    int given =
        (names != NULL) + (part != NULL) + (rack != NULL) + (json_object_get(args, "node") != NULL);
    if (given > 1) {
        fm_err_set(err, FM_ERR_INVALID,
                   "give one selector: node, nodes, partition or rack (or only fault_class for"
                   " every node diagnosed with it)");
        return NULL;
    }
    json_t *found = NULL, *owned_names = NULL;
    if (part || rack) {
        fm_slurm_node_filter f = {.partition = part};
        json_t *all = sl->nodes(ctx->be.slurm_st, &f, err);
        if (!all) return NULL;
        found = json_array();
        size_t i;
        json_t *n;
        json_array_foreach(all, i, n)
        {
            if (rack && strcmp(fm_json_str(json_object_get(n, "domains"), "rack", ""), rack))
                continue;
            json_array_append(found, n);
        }
        json_decref(all);
        *selector = part ? json_pack("{s:s}", "partition", part) : json_pack("{s:s}", "rack", rack);
    } else {
        if (!names) {
            if (!fault_class) {
                fm_err_set(err, FM_ERR_INVALID,
                           "give a selector (node, nodes, partition, rack) or fault_class");
                return NULL;
            }
            names = owned_names = diagnosed(ctx, fault_class, err);
            if (!names) return NULL;
            *selector = json_pack("{s:s}", "diagnosed", fault_class);
        } else {
            *selector = json_pack("{s:O}", "nodes", names);
        }
        if (json_array_size(names) > FM_POOL_MAX_NODES) {
            fm_err_set(err, FM_ERR_INVALID,
                       "the selector matches %zu nodes; a pool plan takes at most %d: narrow it"
                       " (a list of nodes, a rack or a partition)",
                       json_array_size(names), FM_POOL_MAX_NODES);
            json_decref(owned_names);
            json_decref(*selector);
            *selector = NULL;
            return NULL;
        }
        found = json_array();
        size_t i;
        json_t *n;
        json_array_foreach(names, i, n)
        {
            json_t *node = sl->node(ctx->be.slurm_st, json_string_value(n), err);
            if (!node) {
                json_decref(found);
                json_decref(owned_names);
                json_decref(*selector);
                *selector = NULL;
                return NULL;
            }
            json_array_append_new(found, node);
        }
        json_decref(owned_names);
    }
    found = sorted_unique(found);
    const char *why = NULL;
    if (!json_array_size(found))
        why = "the selector matches no node (slurm_nodes lists them; diagnose records a class)";
    else if (json_array_size(found) > FM_POOL_MAX_NODES)
        why = "too many nodes";
    if (why) {
        if (json_array_size(found))
            fm_err_set(err, FM_ERR_INVALID,
                       "the selector matches %zu nodes; a pool plan takes at most %d: narrow it"
                       " (a list of nodes, a rack or a partition)",
                       json_array_size(found), FM_POOL_MAX_NODES);
        else
            fm_err_set(err, FM_ERR_NOT_FOUND, "%s", why);
        json_decref(found);
        json_decref(*selector);
        *selector = NULL;
        return NULL;
    }
    return found;
}

/* {partition: {total, schedulable_now, ...}} for every partition of nodes,
 * in one aggregate query when the backend has one (new), or NULL. */
static json_t *pool_capacity(fm_ctx *ctx, const json_t *nodes, fm_err *err)
{
    json_t *parts = json_array(), *seen = json_object();
    size_t i, j;
    json_t *n, *p;
    json_array_foreach(nodes, i, n) json_array_foreach(json_object_get(n, "partitions"), j, p)
    {
        if (json_object_get(seen, json_string_value(p))) continue;
        json_object_set_new(seen, json_string_value(p), json_true());
        json_array_append(parts, p);
    }
    json_decref(seen);
    json_t *probe = json_pack("{s:o, s:[]}", "partitions", parts, "state");
    json_t *cap = fm_guard_capacity(ctx, probe, false, err);
    json_decref(probe);
    return cap;
}

static bool batch_guardrail(const char *name)
{
    return !strcmp(name, "blast_radius") || !strcmp(name, "capacity");
}

/* ---- repair_plan with a selector --------------------------------------- */

json_t *fm_pool_plan(fm_call *call, const fm_runbook *rb, const char *fc, fm_err *err)
{
    fm_ctx *ctx = call->ctx;
    bool dry = json_is_true(json_object_get(call->args, "dry_run"));
    json_t *selector = NULL;
    /* Only an explicit fault_class selects by diagnosis; one taken from
     * the runbook does not. */
    json_t *nodes =
        select_nodes(ctx, call->args, fm_json_str(call->args, "fault_class", NULL), &selector, err);
    if (!nodes) return NULL;
    json_t *probe = fm_workflow_content(fm_json_str(json_array_get(nodes, 0), "name", ""), fc, rb);
    fm_guard_req fx = {0};
    json_t *steps = fm_workflow_steps_shown(probe, &fx);
    bool takes = fx.takes_capacity, destructive = fx.destructive,
         supersede = fx.superseded_by_reboot;
    json_decref(probe);
    json_t *out = NULL, *per_node = json_array(), *refused = json_array(), *ok_nodes = json_array();
    json_t *ok_names = json_array(), *busy = NULL, *cap = NULL, *batches = NULL;
    json_t *content = NULL;
    const fm_tool_def *runner = fm_tool_with_flags(FM_TOOL_RUNS_PLAN);
    size_t i;
    json_t *node;
    json_array_foreach(nodes, i, node)
    {
        const char *name = fm_json_str(node, "name", "");
        json_t *one = json_pack("[s]", name);
        fm_guard_req req = {.action = rb->id,
                            .nodes = one,
                            .fault_class = fc,
                            .runbook = rb->doc,
                            .takes_capacity = takes,
                            .destructive = destructive,
                            .superseded_by_reboot = supersede,
                            .node = node};
        bool pass = false;
        json_t *v = fm_guard_check(ctx, &req, &pass, err);
        if (!v) {
            json_decref(one);
            goto done;
        }
        /* Blast radius and capacity are the batches' to judge; every other
         * guardrail refuses the node, and the rest of the pool goes on. */
        json_t *verdicts = json_object();
        const char *why = NULL, *fix = NULL;
        size_t k;
        json_t *x;
        json_array_foreach(v, k, x)
        {
            const char *g = fm_json_str(x, "guardrail", "?");
            bool ok = json_is_true(json_object_get(x, "ok"));
            json_t *prev = json_object_get(verdicts, g);
            json_object_set_new(verdicts, g, json_boolean(ok && (!prev || json_is_true(prev))));
            if (!ok && !batch_guardrail(g) && !why) {
                why = fm_json_str(x, "detail", "");
                fix = fm_json_str(x, "fix", NULL);
            }
        }
        json_t *c1 = fm_workflow_content(name, fc, rb);
        bool needs = fm_gate_approval_needed(ctx, runner, c1);
        json_decref(c1);
        json_t *entry = json_pack("{s:s, s:b, s:b, s:o}", "node", name, "pass", why == NULL,
                                  "approval_needed", needs, "guardrails", verdicts);
        if (why) {
            char line[900];
            snprintf(line, sizeof line, "%s%s%s", why, fix ? "; to pass: " : "", fix ? fix : "");
            json_object_set_new(entry, "refused_by", json_string(line));
            json_array_append_new(refused, json_pack("{s:s, s:s}", "node", name, "why", line));
        } else {
            json_array_append(ok_nodes, node);
            json_array_append_new(ok_names, json_string(name));
        }
        json_array_append_new(per_node, entry);
        json_decref(v);
        json_decref(one);
    }
    fm_pool_limits lim = {.per_domain = 1000000, .min_share = 0};
    if (takes) fm_guard_limits(ctx, &lim.per_domain, &lim.min_share);
    busy = fm_node_state_domain_busy(ctx, ok_names);
    cap = pool_capacity(ctx, nodes, err);
    if (!cap) goto done;
    batches = fm_pool_batches(ok_nodes, busy, cap, &lim);
    bool pass = json_array_size(batches) > 0;
    json_t *names = json_array(), *b;
    json_array_foreach(batches, i, b)
    {
        pass &= json_is_true(json_object_get(b, "pass"));
        json_array_append(names, json_object_get(b, "nodes"));
        /* Each node's entry says its batch. */
        size_t k;
        json_t *nm;
        json_array_foreach(json_object_get(b, "nodes"), k, nm)
        {
            size_t m;
            json_t *e;
            json_array_foreach(per_node, m,
                               e) if (!strcmp(fm_json_str(e, "node", ""), json_string_value(nm)))
                json_object_set(e, "batch", json_object_get(b, "batch"));
        }
    }
    bool needs = false;
    char plan_id[FM_PLAN_ID_LEN] = "", hash[65] = "";
    if (json_array_size(names)) {
        content = fm_pool_content(selector, names, fc, rb);
        needs = fm_gate_approval_needed(ctx, runner, content);
        fm_plan_hash(content, hash);
    }
    json_decref(names);
    const char *risk = destructive ? "high" : "medium";
    char summary[600];
    if (!json_array_size(batches))
        snprintf(summary, sizeof summary, "every node of the pool is refused (see refused)");
    else if (!pass)
        snprintf(summary, sizeof summary,
                 "a batch fails its guardrails even with one node (see batches)");
    else
        snprintf(summary, sizeof summary, "%zu node(s) in %zu batch(es) pass; %zu refused",
                 json_array_size(ok_names), json_array_size(batches), json_array_size(refused));
    json_t *guard =
        json_pack("{s:b, s:s, s:O}", "pass", pass, "summary", summary, "batches", batches);
    if (content && !dry) {
        json_t *detail =
            json_pack("{s:s, s:b, s:s, s:O, s:O, s:O, s:s}", "risk", risk, "approval_needed", needs,
                      "autonomy", fm_autonomy_name(rb->autonomy), "nodes", ok_names, "capacity",
                      cap, "guardrails", guard, "fault_class", fc);
        int rc = fm_plan_create(ctx, content, detail, plan_id, err);
        json_decref(detail);
        if (rc) {
            json_decref(guard);
            goto done;
        }
    }
    char next[800];
    if (!content)
        snprintf(next, sizeof next, "nothing to plan: fix what refused lists and plan again");
    else if (dry)
        snprintf(next, sizeof next,
                 "dry run: nothing recorded or reserved; call repair_plan"
                 " again without dry_run to record the plan");
    else if (!pass)
        snprintf(next, sizeof next,
                 "guardrails refuse a batch now (%s); repair_execute would be"
                 " refused too",
                 summary);
    else if (needs)
        snprintf(next, sizeof next,
                 "a human approves the whole pool with: mcp-cli approve %s --key KEY --approver"
                 " NAME ; then call repair_execute {plan_id: %s, approval_id: ..., concurrency,"
                 " rollback}",
                 plan_id, plan_id);
    else
        snprintf(next, sizeof next,
                 "call repair_execute {plan_id: %s, concurrency, rollback}"
                 " (no approval needed: canary runbook on canary nodes)",
                 plan_id);
    out = json_pack("{s:O, s:I, s:O, s:s, s:{s:s, s:I, s:o, s:s, s:b}, s:o, s:s, s:O, s:o,"
                    " s:O, s:O, s:b, s:b, s:s}",
                    "selector", selector, "pool_size", (json_int_t)json_array_size(nodes), "nodes",
                    ok_names, "fault_class", fc, "runbook", "id", rb->id, "version",
                    (json_int_t)rb->version, "title",
                    json_string(fm_json_str(rb->doc, "title", "")), "autonomy",
                    fm_autonomy_name(rb->autonomy), "destructive", rb->destructive, "steps", steps,
                    "risk", risk, "capacity", cap, "guardrails", guard, "per_node", per_node,
                    "refused", refused, "approval_needed", needs, "dry_run", dry, "next", next);
    steps = NULL;
    if (content) json_object_set_new(out, "hash", json_string(hash));
    if (plan_id[0]) json_object_set_new(out, "plan_id", json_string(plan_id));
done:
    json_decref(steps);
    json_decref(content);
    json_decref(batches);
    json_decref(busy);
    json_decref(cap);
    json_decref(per_node);
    json_decref(refused);
    json_decref(ok_nodes);
    json_decref(ok_names);
    json_decref(selector);
    json_decref(nodes);
    return out;
}

/* ---- repair_execute of a pool plan ------------------------------------- */

/* Re-checks one batch on live state: new verdicts, *pass. */
static json_t *live_batch(fm_ctx *ctx, const json_t *names, bool *pass, fm_err *err)
{
    json_t *nodes = json_array();
    size_t i;
    json_t *n;
    json_array_foreach(names, i, n)
    {
        json_t *node = ctx->be.slurm->node(ctx->be.slurm_st, json_string_value(n), err);
        if (!node) {
            json_decref(nodes);
            return NULL;
        }
        json_array_append_new(nodes, node);
    }
    json_t *busy = fm_node_state_domain_busy(ctx, names);
    json_t *cap = pool_capacity(ctx, nodes, err);
    json_t *v = NULL;
    if (cap) {
        fm_pool_limits lim;
        fm_guard_limits(ctx, &lim.per_domain, &lim.min_share);
        json_t *b = fm_pool_batches(nodes, busy, cap, &lim);
        /* Still one batch that passes: nothing has moved into its domains
         * since the plan was made. */
        *pass =
            json_array_size(b) == 1 && json_is_true(json_object_get(json_array_get(b, 0), "pass"));
        v = json_array();
        size_t k;
        json_t *x;
        json_array_foreach(b, k, x) json_array_extend(v, json_object_get(x, "verdicts"));
        if (json_array_size(b) > 1)
            fm_guard_add(v, "blast_radius", false, "wait for the nodes in remediation to return",
                         "the batch no longer fits at once: it would now need %zu batches",
                         json_array_size(b));
        json_decref(b);
    }
    json_decref(cap);
    json_decref(busy);
    json_decref(nodes);
    return v;
}

/* Resumes node if this plan's workflow wf drained it, and takes it out of
 * remediation.  Appends what happened to done. */
static void undo(fm_ctx *ctx, const char *node, const char *wf, json_t *done)
{
    fm_err e = {0};
    json_t *n = ctx->be.slurm->node(ctx->be.slurm_st, node, &e);
    const char *reason = fm_json_str(n, "reason", "");
    char owner[80];
    snprintf(owner, sizeof owner, "%s%s", FM_SLURM_OWNED_PREFIX, wf);
    bool ours = !strncmp(reason, owner, strlen(owner));
    bool noop = true;
    int rc = ours ? fm_wf_resume(ctx, node, &noop, &e) : 0;
    if (!rc) fm_node_state_set(ctx, node, "healthy", wf, &e);
    json_t *entry = json_pack("{s:s, s:s, s:b}", "node", node, "workflow_id", wf, "resumed",
                              ours && !rc && !noop);
    if (e.code) json_object_set_new(entry, "error", json_string(e.text));
    json_array_append_new(done, entry);
    json_decref(n);
}

typedef struct {
    fm_wf_run *run;
    char node[64];
    char wf[FM_WORKFLOW_ID_LEN];
    bool alive, abandoned;
    json_t *entry; /* borrowed: the node's entry in the batch */
} pool_slot;

json_t *fm_pool_run(fm_call *call, const char *plan_id, const json_t *content, int concurrency,
                    const char *policy, fm_err *err)
{
    fm_ctx *ctx = call->ctx;
    if (fm_runbooks_load(ctx, err)) return NULL;
    const fm_runbook *rb = fm_runbook_find(ctx->runbooks, fm_json_str(content, "runbook", ""));
    if (!rb) {
        fm_err_set(err, FM_ERR_NOT_FOUND,
                   "the plan's runbook is no longer in the catalog; make a"
                   " new plan");
        return NULL;
    }
    if (concurrency < 1) concurrency = 1;
    if (concurrency > FM_POOL_MAX_CONCURRENCY) concurrency = FM_POOL_MAX_CONCURRENCY;
    const char *fc = fm_json_str(content, "fault_class", "");
    bool keep_going = !strcmp(policy, "continue"), roll = !strcmp(policy, "rollback");
    const json_t *batches = json_object_get(content, "batches");
    size_t total = json_array_size(json_object_get(content, "nodes")), ended = 0;
    json_t *out_batches = json_array(), *not_started = json_array(), *rolled = json_array();
    json_t *errors = json_array();
    bool stop = false, failed = false;
    int done = 0, max_in_flight = 0;
    size_t bi;
    json_t *names;
    json_array_foreach(batches, bi, names)
    {
        json_t *bo = json_pack("{s:I, s:[]}", "batch", (json_int_t)bi + 1, "nodes");
        json_array_append_new(out_batches, bo);
        json_t *entries = json_object_get(bo, "nodes");
        if (!stop && (fm_call_cancelled(call) || fm_call_stopping(call))) {
            json_array_append_new(errors, json_string("the client cancelled or the server is"
                                                      " stopping: no further batch starts"));
            stop = true;
        }
        if (stop) {
            json_array_extend(not_started, names);
            continue;
        }
        bool pass = false;
        fm_err le = {0};
        json_t *verdicts = live_batch(ctx, names, &pass, &le);
        if (!verdicts || !pass) {
            char why[700];
            if (verdicts)
                fm_guard_explain(verdicts, why, sizeof why);
            else
                snprintf(why, sizeof why, "live state unavailable: %s", le.text);
            char line[800];
            snprintf(line, sizeof line, "batch %zu refused, nothing ran on it: %s", bi + 1, why);
            json_array_append_new(errors, json_string(line));
            json_object_set_new(bo, "refused", json_string(why));
            if (verdicts) json_object_set(bo, "verdicts", verdicts);
            json_array_extend(not_started, names);
            json_decref(verdicts);
            failed = true;
            stop = !keep_going;
            continue;
        }
        json_decref(verdicts);
        size_t nb = json_array_size(names);
        for (size_t w0 = 0; w0 < nb && !stop; w0 += (size_t)concurrency) {
            pool_slot slot[FM_POOL_MAX_CONCURRENCY];
            memset(slot, 0, sizeof slot);
            int ns = 0, alive = 0;
            bool wave_failed = false;
            for (size_t k = w0; k < nb && k < w0 + (size_t)concurrency; k++, ns++) {
                pool_slot *sl = &slot[ns];
                snprintf(sl->node, sizeof sl->node, "%s",
                         json_string_value(json_array_get(names, k)));
                sl->entry = json_pack("{s:s}", "node", sl->node);
                json_array_append_new(entries, sl->entry);
                json_t *c1 = fm_workflow_content(sl->node, fc, rb);
                fm_err e = {0};
                sl->run = fm_workflow_begin(call, plan_id, c1, &e);
                json_decref(c1);
                if (!sl->run) {
                    json_object_set_new(sl->entry, "status", json_string("refused"));
                    json_object_set_new(sl->entry, "error", json_string(e.text));
                    wave_failed = true;
                    continue;
                }
                snprintf(sl->wf, sizeof sl->wf, "%s", fm_workflow_run_id(sl->run));
                json_object_set_new(sl->entry, "workflow_id", json_string(sl->wf));
                sl->alive = true;
                alive++;
            }
            if (alive > max_in_flight) max_in_flight = alive;
            if (wave_failed && roll)
                for (int k = 0; k < ns; k++)
                    if (slot[k].alive) {
                        fm_workflow_abandon(call, slot[k].run,
                                            "plan rollback: another node of"
                                            " the pool failed");
                        slot[k].abandoned = true;
                        slot[k].alive = false;
                        alive--;
                        ended++;
                    }
            /* Round robin, one step of each workflow in turn: the nodes of a
             * wave are in remediation together, and one node's wait does
             * not hold the others' actions back by more than a step.  The
             * pool reports its own progress (nodes ended of all), which
             * only grows; the workflows' per-step progress would not. */
            while (alive > 0) {
                for (int k = 0; k < ns; k++) {
                    pool_slot *sl = &slot[k];
                    if (!sl->alive) continue;
                    const json_t *token = call->progress_token;
                    call->progress_token = NULL;
                    sl->alive = fm_workflow_advance(call, sl->run);
                    call->progress_token = token;
                    if (fm_workflow_failing(sl->run) && !wave_failed) {
                        wave_failed = true;
                        if (roll)
                            for (int m = 0; m < ns; m++)
                                if (m != k && slot[m].alive) {
                                    fm_workflow_abandon(call, slot[m].run,
                                                        "plan rollback: another node of the"
                                                        " pool failed");
                                    slot[m].abandoned = true;
                                    slot[m].alive = false;
                                    alive--;
                                    ended++;
                                }
                    }
                    if (!sl->alive) {
                        alive--;
                        ended++;
                        char msg[160];
                        snprintf(msg, sizeof msg, "%s ended (%zu of %zu nodes)", sl->node, ended,
                                 total);
                        fm_call_progress(call, (double)ended, (double)total, msg);
                    }
                }
            }
            for (int k = 0; k < ns; k++) {
                pool_slot *sl = &slot[k];
                if (!sl->run) continue;
                fm_err e = {0};
                json_t *res = fm_workflow_end(call, sl->run, &e);
                /* No result: stopped with the server (recoverable), or
                 * refused at its reservation before touching the node. */
                const char *st = res                          ? fm_json_str(res, "status", "failed")
                                 : e.code == FM_ERR_CANCELLED ? "stopped"
                                                              : "refused";
                if (sl->abandoned) st = "rolled_back";
                json_object_set_new(sl->entry, "status", json_string(st));
                if (!res) json_object_set_new(sl->entry, "error", json_string(e.text));
                const char *t = NULL;
                size_t m;
                json_t *x;
                json_array_foreach(json_object_get(res, "steps"), m, x)
                {
                    const char *tk = fm_json_str(json_object_get(x, "output"), "ticket", NULL);
                    if (tk && *tk) t = tk;
                }
                if (t) json_object_set_new(sl->entry, "ticket", json_string(t));
                if (!strcmp(st, "done"))
                    done++;
                else if (!sl->abandoned)
                    wave_failed = true;
                json_decref(res);
                if (sl->abandoned) undo(ctx, sl->node, sl->wf, rolled);
            }
            if (wave_failed) {
                failed = true;
                stop = !keep_going;
                if (stop)
                    for (size_t k = w0 + (size_t)ns; k < nb; k++)
                        json_array_append(not_started, json_array_get(names, k));
            }
        }
    }
    const char *status = !failed       ? "done"
                         : roll        ? "rolled_back"
                         : !keep_going ? "stopped"
                         : done        ? "partial"
                                       : "failed";
    json_t *out = json_pack(
        "{s:s, s:b, s:s, s:i, s:s, s:i, s:i, s:I, s:o, s:o, s:o, s:o}", "plan_id", plan_id, "pool",
        1, "status", status, "concurrency", concurrency, "rollback", policy, "max_in_flight",
        max_in_flight, "nodes_done", done, "nodes_total", (json_int_t)total, "batches", out_batches,
        "not_started", not_started, "rolled_back", rolled, "errors", errors);
    return out;
}
