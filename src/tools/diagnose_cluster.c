/* diagnose in cluster mode: triage a partition, a node list or the whole
 * fleet from bulk sources only, then rank the nodes.
 *
 * One Slurm node listing (states, reasons; streamed, never held whole),
 * one Prometheus query per DCGM field across all nodes (server-side
 * filtered to the values a signature could fire on, with the counters'
 * value one history window ago), no SSH.  Each node's bulk signals go
 * through the same engine as node mode (src/diagnose); a node whose Slurm
 * state is plainly in service and that has no metric worth a look is
 * counted healthy without a run.  The answer is bounded: the top N nodes
 * with their class, confidence and evidence, counts per class for all, and
 * the nodes a node-mode diagnose should look at (bulk evidence has no
 * kernel log, so it confirms before any repair).  It never acts. */
#include "diagnose_cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fleetmcp/fm_metrics.h"
#include "fleetmcp/fm_slurm.h"
#include "fleetmcp/fm_util.h"
#include "read_common.h"

#define MAX_CLUSTER_NODES 200000
#define MAX_NODE_SERIES 256 /* per node, all metrics together */
#define DEFAULT_TOP 20
#define MAX_EVIDENCE 3

/* What triage keeps of a node: small and flat, 16,384 of them fit in a
 * few MB (a jansson tree each would not); the evidence of the ranked few
 * is asked of the engine again once they are known. */
typedef struct cnode {
    char name[64];
    char state[128]; /* Slurm state words, "DOWN+NOT_RESPONDING" */
    char *reason;    /* Slurm's reason or NULL */
    json_t *metrics; /* diagnose signals.metrics, or NULL */
    int gpus;        /* Slurm's GPU count */
    int seen_gpus;   /* GPUs dcgm-exporter reports (0: none, or not asked) */
    char cls[64];    /* the engine's top class once judged */
    char runbook[64];
    double conf;
    bool healthy, corroborated;
} cnode;

typedef struct cset {
    cnode *n;
    size_t len, cap;
    json_t *want; /* requested names (object used as a set), or NULL */
    bool sorted;
} cset;

/* DCGM fields the signatures read, with the PromQL filter that keeps only
 * series a signature could fire on (every threshold in
 * runbooks/signatures.yaml is at or above it), and whether the field is a
 * counter whose growth over the window matters. */
static const struct {
    const char *name;
    const char *filter;
    bool counter;
} FIELDS[] = {
    {"DCGM_FI_DEV_XID_ERRORS", "> 0", false},
    {"DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "> 0", true},
    {"DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", ">= 100", true},
    {"DCGM_FI_DEV_ROW_REMAP_PENDING", "> 0", false},
    {"DCGM_FI_DEV_ROW_REMAP_FAILURE", "> 0", false},
    {"DCGM_FI_DEV_RETIRED_PENDING", "> 0", false},
    {"DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL", ">= 50", true},
    {"DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL", ">= 50", true},
    {"DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL", ">= 50", true},
    {"DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL", ">= 10", true},
    {"DCGM_FI_DEV_PCIE_REPLAY_COUNTER", ">= 100", true},
    {"DCGM_FI_DEV_GPU_TEMP", ">= 85", false},
    {"DCGM_FI_DEV_MEMORY_TEMP", ">= 85", false},
    {"DCGM_FI_DEV_CLOCKS_EVENT_REASONS", "> 0", false},
    {"DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", "> 0", false},
};

static void cset_free(cset *s)
{
    for (size_t i = 0; i < s->len; i++) {
        free(s->n[i].reason);
        json_decref(s->n[i].metrics);
    }
    free(s->n);
    json_decref(s->want);
}

/* fm_slurm_node_cb: keeps what triage reads of each node in scope. */
static int take_node(void *ud, const json_t *node, fm_err *err)
{
    cset *s = ud;
    const char *name = json_string_value(json_object_get(node, "name"));
    if (!name || !fm_slurm_valid_node_name(name)) return 0;
    if (s->want && !json_object_get(s->want, name)) return 0;
    if (s->len == MAX_CLUSTER_NODES)
        return fm_err_set(err, FM_ERR_TOO_LARGE,
                          "more than %d nodes in scope: narrow cluster to a partition or a node "
                          "list",
                          MAX_CLUSTER_NODES),
               -1;
    if (s->len == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        cnode *n = realloc(s->n, cap * sizeof *n);
        if (!n) return fm_err_set(err, FM_ERR_NOMEM, "cluster triage"), -1;
        s->n = n;
        s->cap = cap;
    }
    cnode *c = &s->n[s->len++];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(node, "state"), i, w)
    {
        size_t l = strlen(c->state);
        const char *word = json_string_value(w);
        if (word && l + strlen(word) + 2 < sizeof c->state)
            snprintf(c->state + l, sizeof c->state - l, "%s%s", l ? "+" : "", word);
    }
    json_int_t g = json_integer_value(json_object_get(node, "gpus"));
    c->gpus = g > 0 && g < 1024 ? (int)g : 0;
    const char *r = json_string_value(json_object_get(node, "reason"));
    if (r && *r) c->reason = strndup(r, 1000);
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const cnode *)a)->name, ((const cnode *)b)->name);
}

static cnode *find(cset *s, const char *name)
{
    if (!name || strlen(name) >= sizeof s->n[0].name) return NULL;
    cnode key;
    snprintf(key.name, sizeof key.name, "%s", name);
    return bsearch(&key, s->n, s->len, sizeof *s->n, by_name);
}

static const char *host_of(const json_t *labels, const char *hl)
{
    if (hl && *hl) return json_string_value(json_object_get(labels, hl));
    const char *h = json_string_value(json_object_get(labels, "Hostname"));
    return h ? h : json_string_value(json_object_get(labels, "hostname"));
}

/* Adds an answer's numeric samples of field to the nodes in scope. */
static size_t add_series(cset *s, const json_t *ans, const char *field, const char *hl)
{
    size_t used = 0, i;
    json_t *ser;
    json_array_foreach(json_object_get(ans, "series"), i, ser)
    {
        const json_t *labels = json_object_get(ser, "labels");
        json_t *v = json_object_get(ser, "value");
        cnode *c = find(s, host_of(labels, hl));
        if (!c || !json_is_number(v)) continue;
        if (!c->metrics) c->metrics = json_array();
        if (json_array_size(c->metrics) >= MAX_NODE_SERIES) continue;
        json_t *lb = json_object();
        const char *k;
        json_t *lv;
        json_object_foreach((json_t *)labels, k, lv)
        {
            if (strcmp(k, "__name__") && json_is_string(lv) && json_object_size(lb) < 32)
                json_object_set(lb, k, lv);
        }
        json_array_append_new(
            c->metrics, json_pack("{s:s, s:o, s:O}", "name", field, "labels", lb, "value", v));
        used++;
    }
    return used;
}

static void note_err(json_t *errors, const char *what, const fm_err *e)
{
    if (json_array_size(errors) >= 8) return;
    char buf[600];
    snprintf(buf, sizeof buf, "%s: %s: %s", what, fm_strerror(e->code), e->text);
    json_array_append_new(errors, json_string(buf));
}

/* One instant query per field (and, for counters, one for the same series
 * a window ago, older samples first as the engine compares them). */
static size_t collect_metrics(fm_ctx *ctx, cset *s, json_t *info, bool *truncated)
{
    const json_t *gh = json_object_get(fm_config_section(&ctx->cfg, "metrics"), "gpu_health");
    const char *hl = json_string_value(json_object_get(gh, "host_label"));
    char window[16];
    fm_read_counter_window(&ctx->cfg, window);
    size_t total = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t f = 0; f < sizeof FIELDS / sizeof *FIELDS; f++) {
            if (pass == 0 && !FIELDS[f].counter) continue;
            char q[400];
            if (pass == 0) /* history of the series that matter now */
                snprintf(q, sizeof q, "(%s offset %s) and (%s %s)", FIELDS[f].name, window,
                         FIELDS[f].name, FIELDS[f].filter);
            else
                snprintf(q, sizeof q, "%s %s", FIELDS[f].name, FIELDS[f].filter);
            fm_err e = {0};
            json_t *ans = ctx->be.metrics->query_instant(ctx->be.metrics_st, q, 0, &e);
            if (!ans) {
                note_err(json_object_get(info, "errors"), FIELDS[f].name, &e);
                continue;
            }
            if (json_is_true(json_object_get(ans, "truncated"))) *truncated = true;
            total += add_series(s, ans, FIELDS[f].name, hl);
            json_decref(ans);
        }
    }
    /* GPUs per node that report at all: a GPU that fell off the bus
     * leaves the exporter's answer, which no filtered query shows. */
    char q[200];
    if (hl && *hl)
        snprintf(q, sizeof q, "count by (%s) (DCGM_FI_DEV_GPU_TEMP)", hl);
    else
        snprintf(q, sizeof q, "count by (Hostname, hostname) (DCGM_FI_DEV_GPU_TEMP)");
    fm_err e = {0};
    json_t *ans = ctx->be.metrics->query_instant(ctx->be.metrics_st, q, 0, &e);
    if (!ans) note_err(json_object_get(info, "errors"), "GPU count", &e);
    if (json_is_true(json_object_get(ans, "truncated"))) *truncated = true;
    size_t i;
    json_t *ser;
    json_array_foreach(json_object_get(ans, "series"), i, ser)
    {
        cnode *c = find(s, host_of(json_object_get(ser, "labels"), hl));
        double v = json_number_value(json_object_get(ser, "value"));
        if (c && v > 0 && v < 1024) c->seen_gpus = (int)v;
    }
    json_decref(ans);
    json_array_append_new(json_object_get(info, "sources"), json_string("metrics"));
    return total;
}

/* The exporter answers for the node but for fewer GPUs than Slurm has. */
static bool missing_gpus(const cnode *c)
{
    return c->seen_gpus > 0 && c->gpus > c->seen_gpus;
}

/* In service and nothing to say: Slurm would run a job there. */
static bool plain(const cnode *c)
{
    static const char *const ok[] = {"IDLE",  "ALLOCATED",  "ALLOC",
                                     "MIXED", "COMPLETING", "PLANNED"};
    if (c->reason || c->metrics || !*c->state || missing_gpus(c)) return false;
    char buf[sizeof c->state], *save = NULL;
    snprintf(buf, sizeof buf, "%s", c->state);
    for (char *w = strtok_r(buf, "+", &save); w; w = strtok_r(NULL, "+", &save)) {
        bool good = false;
        for (size_t k = 0; k < sizeof ok / sizeof *ok && !good; k++)
            good = !strcasecmp(w, ok[k]);
        if (!good) return false;
    }
    return true;
}

static int by_rank(const void *a, const void *b)
{
    const cnode *x = *(cnode *const *)a, *y = *(cnode *const *)b;
    if (x->healthy != y->healthy) return x->healthy ? 1 : -1;
    if (x->conf != y->conf) return x->conf < y->conf ? 1 : -1;
    return strcmp(x->name, y->name);
}

/* The engine's whole answer for one node's bulk signals (new), or NULL
 * with err. */
static json_t *run_engine(const struct fm_diag_db *db, const cnode *c, fm_err *err)
{
    json_t *slurm = json_pack("{s:s}", "node_state", c->state);
    if (c->reason) json_object_set_new(slurm, "reason", json_string(c->reason));
    json_t *sig = json_pack("{s:s, s:o}", "node", c->name, "slurm", slurm);
    if (c->metrics) json_object_set(sig, "metrics", c->metrics);
    if (missing_gpus(c)) {
        char ev[160];
        snprintf(ev, sizeof ev,
                 "dcgm-exporter: only %d of %d GPUs report DCGM_FI_DEV_GPU_TEMP (Slurm Gres)",
                 c->seen_gpus, c->gpus);
        json_object_set_new(sig, "events", json_pack("[s]", ev));
    }
    json_t *res = fm_diag_run(db, sig, NULL, err);
    json_decref(sig);
    return res;
}

/* The ranked entry of one node (new): its evidence asked again. */
static json_t *entry(const struct fm_diag_db *db, const cnode *c)
{
    fm_err e = {0};
    json_t *res = run_engine(db, c, &e);
    json_t *ev = json_array();
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(json_object_get(res, "top"), "evidence"), i, x)
    {
        if (i >= MAX_EVIDENCE) break;
        char buf[301];
        fm_clip(buf, sizeof buf, json_string_value(x) ? json_string_value(x) : "");
        json_array_append_new(ev, json_string(buf));
    }
    if (!res) json_array_append_new(ev, json_string(e.text));
    json_decref(res);
    return json_pack("{s:s, s:s, s:f, s:b, s:o, s:o}", "node", c->name, "fault_class", c->cls,
                     "confidence", c->conf, "corroborated", c->corroborated, "runbook",
                     *c->runbook ? json_string(c->runbook) : json_null(), "evidence", ev);
}

/* The engine's verdict for one node; a run that fails is class "error".
 * *best keeps the whole answer of the worst node so far. */
static void judge(const struct fm_diag_db *db, cnode *c, json_t **best)
{
    if (plain(c)) {
        c->healthy = true;
        snprintf(c->cls, sizeof c->cls, "healthy");
        return;
    }
    fm_err e = {0};
    json_t *res = run_engine(db, c, &e);
    if (!res) {
        snprintf(c->cls, sizeof c->cls, "error");
        return;
    }
    const json_t *top = json_object_get(res, "top");
    snprintf(c->cls, sizeof c->cls, "%s", fm_json_str(top, "fault_class", "unknown"));
    snprintf(c->runbook, sizeof c->runbook, "%s", fm_json_str(top, "runbook", ""));
    c->conf = json_number_value(json_object_get(top, "confidence"));
    c->corroborated = json_is_true(json_object_get(top, "corroborated"));
    c->healthy = !strcmp(c->cls, "healthy");
    const json_t *bt = json_object_get(*best, "top");
    if (!c->healthy && (!*best || c->conf > json_number_value(json_object_get(bt, "confidence")))) {
        json_decref(*best);
        json_object_set_new(res, "node", json_string(c->name));
        *best = res;
        return;
    }
    json_decref(res);
}

static void no_act(json_t *res)
{
    json_object_set_new(res, "act", json_false());
    json_object_set_new(json_object_get(res, "top"), "act", json_false());
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(res, "classes"), i, c)
        json_object_set_new(c, "act", json_false());
}

json_t *fm_diagnose_cluster(fm_call *call, const struct fm_diag_db *db, const json_t *scope,
                            fm_err *err)
{
    fm_ctx *ctx = call->ctx;
    if (!ctx->be.slurm) {
        fm_err_set(err, FM_ERR_NOT_CONFIGURED,
                   "cluster mode lists nodes through the slurm backend: add a slurm section");
        return NULL;
    }
    const char *part = json_string_value(json_object_get(scope, "partition"));
    const json_t *names = json_object_get(scope, "nodes");
    size_t topn = (size_t)(json_integer_value(json_object_get(scope, "top")) > 0
                               ? json_integer_value(json_object_get(scope, "top"))
                               : DEFAULT_TOP);
    cset s = {0};
    if (json_array_size(names)) {
        s.want = json_object();
        size_t i;
        json_t *v;
        json_array_foreach(names, i, v) json_object_set(s.want, json_string_value(v), json_true());
    }
    json_t *info = json_pack("{s:[], s:[], s:[]}", "sources", "missing", "errors");
    fm_slurm_node_filter f = {.partition = part};
    int rc = ctx->be.slurm->nodes_each
                 ? ctx->be.slurm->nodes_each(ctx->be.slurm_st, &f, take_node, &s, err)
                 : -1;
    if (!ctx->be.slurm->nodes_each) {
        json_t *all = ctx->be.slurm->nodes(ctx->be.slurm_st, &f, err);
        size_t i;
        json_t *n;
        rc = all ? 0 : -1;
        json_array_foreach(all, i, n) if ((rc = take_node(&s, n, err))) break;
        json_decref(all);
    }
    if (rc) {
        cset_free(&s);
        json_decref(info);
        return NULL;
    }
    if (!s.len) {
        fm_err_set(err, FM_ERR_NOT_FOUND,
                   "no Slurm node in that scope: check the partition or node names "
                   "(slurm_nodes lists them)");
        cset_free(&s);
        json_decref(info);
        return NULL;
    }
    json_array_append_new(json_object_get(info, "sources"), json_string("slurm"));
    qsort(s.n, s.len, sizeof *s.n, by_name);
    fm_call_progress(call, 1, 3, "Slurm listing read");
    bool truncated = false;
    size_t series = 0;
    if (ctx->be.metrics)
        series = collect_metrics(ctx, &s, info, &truncated);
    else
        json_array_append_new(json_object_get(info, "missing"), json_string("metrics"));
    fm_call_progress(call, 2, 3, "bulk metrics read");

    json_t *best = NULL;
    json_t *counts = json_object();
    cnode **rank = malloc(s.len * sizeof *rank);
    if (!rank) {
        fm_err_set(err, FM_ERR_NOMEM, "cluster triage");
        cset_free(&s);
        json_decref(info);
        json_decref(counts);
        return NULL;
    }
    for (size_t i = 0; i < s.len; i++) {
        judge(db, &s.n[i], &best);
        rank[i] = &s.n[i];
        const char *cls = s.n[i].cls;
        json_object_set_new(counts, cls,
                            json_integer(json_integer_value(json_object_get(counts, cls)) + 1));
    }
    qsort(rank, s.len, sizeof *rank, by_rank);
    json_t *ranked = json_array(), *follow = json_array();
    for (size_t i = 0; i < s.len && i < topn; i++) {
        if (rank[i]->healthy) break;
        json_array_append_new(ranked, entry(db, rank[i]));
        json_array_append_new(follow, json_string(rank[i]->name));
    }
    size_t unhealthy = 0;
    for (size_t i = 0; i < s.len; i++)
        unhealthy += !rank[i]->healthy;
    free(rank);

    json_t *cluster = json_pack(
        "{s:I, s:I, s:I, s:o, s:o, s:o, s:b, s:s}", "nodes_in_scope", (json_int_t)s.len,
        "unhealthy", (json_int_t)unhealthy, "metric_series", (json_int_t)series, "counts", counts,
        "ranked", ranked, "follow_up", follow, "metrics_truncated", truncated, "next",
        json_array_size(follow) ? "diagnose {node} on each follow_up node (adds kernel log and "
                                  "dcgmi over SSH) before any repair_plan"
                                : "nothing to follow up");
    if (s.want) { /* requested names Slurm does not have */
        json_t *unknown = json_array();
        size_t i;
        json_t *v;
        json_array_foreach(names, i, v)
        {
            if (json_array_size(unknown) < 20 && !find(&s, json_string_value(v)))
                json_array_append(unknown, v);
        }
        json_object_set_new(cluster, "unknown_nodes", unknown);
    }
    json_t *out = best;
    if (!out) /* all healthy: node mode's shape, with the healthy verdict */
        out = json_pack("{s:{s:s, s:f, s:s, s:[s], s:[s], s:[], s:n, s:b, s:b, s:b}, s:[], "
                        "s:{}, s:b}",
                        "top", "fault_class", "healthy", "confidence", 1.0, "scope", "cluster",
                        "evidence",
                        "every node in scope is in service with no DCGM field over "
                        "a signature's floor",
                        "sources", "slurm", "response", "runbook", "destructive", 0, "corroborated",
                        0, "act", 0, "classes", "signals_seen", "act", 0);
    no_act(out);
    json_object_set_new(out, "cluster", cluster);
    json_object_set_new(out, "collected", info);
    cset_free(&s);
    return out;
}
