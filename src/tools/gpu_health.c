/* gpu_health: one node's GPUs from DCGM metrics (dcgm-exporter names and
 * labels), each check with a status against metrics.gpu_health
 * thresholds, and the node's verdict.  One PromQL query fetches every
 * field for the node.  A GPU Slurm (or config) says should exist but that
 * has no series is crit: dcgm-exporter drops the series of a GPU that fell
 * off the bus.
 *
 * SBE, PCIe replay and NVLink CRC are counters that only ever grow until a
 * reset or reboot: their thresholds apply to the increase over
 * metrics.gpu_health.counter_window (default 1h, from a second query
 * with "offset"), so a GPU that had a burst last month is not flagged
 * forever.  Without a sample that far back the total is judged, and the
 * issue says so. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleetmcp/fm_metrics.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_slurm.h"
#include "fm_tools.gen.h"
#include "read_common.h"

#define MAX_GPUS 64

enum {
    M_TEMP,
    M_POWER,
    M_PLIMIT,
    M_XID,
    M_SBE,
    M_DBE,
    M_RFAIL,
    M_RPEND,
    M_RUNC,
    M_RCORR,
    M_PCIE,
    M_NVL,
    M_CLOCK,
    M_COUNT
};

/* alias: the same field under another name (dcgm-exporter renamed the
 * throttle field CLOCK_THROTTLE_REASONS to CLOCKS_EVENT_REASONS). */
static const struct {
    const char *metric; /* after DCGM_FI_DEV_ */
    const char *key;    /* in the detailed answer */
    const char *alias;
} METRICS[M_COUNT] = {
    [M_TEMP] = {"GPU_TEMP", "temp_c", NULL},
    [M_POWER] = {"POWER_USAGE", "power_w", NULL},
    [M_PLIMIT] = {"POWER_MGMT_LIMIT", "power_limit_w", NULL},
    [M_XID] = {"XID_ERRORS", "last_xid", NULL},
    [M_SBE] = {"ECC_SBE_VOL_TOTAL", "ecc_sbe_vol", NULL},
    [M_DBE] = {"ECC_DBE_VOL_TOTAL", "ecc_dbe_vol", NULL},
    [M_RFAIL] = {"ROW_REMAP_FAILURE", "row_remap_failure", NULL},
    [M_RPEND] = {"ROW_REMAP_PENDING", "row_remap_pending", NULL},
    [M_RUNC] = {"UNCORRECTABLE_REMAPPED_ROWS", "remapped_rows_unc", NULL},
    [M_RCORR] = {"CORRECTABLE_REMAPPED_ROWS", "remapped_rows_corr", NULL},
    [M_PCIE] = {"PCIE_REPLAY_COUNTER", "pcie_replay", NULL},
    [M_NVL] = {"NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL", "nvlink_crc", NULL},
    [M_CLOCK] = {"CLOCKS_EVENT_REASONS", "clock_events", "CLOCK_THROTTLE_REASONS"},
};

/* DCGM_FI_DEV_CLOCK_THROTTLE_REASONS bits (nvml clocksEventReasons). */
static const struct {
    unsigned bit;
    const char *name;
    bool bad;
} CLOCK_BITS[] = {
    {0x1, "gpu_idle", false},         {0x2, "app_clocks_setting", false},
    {0x4, "sw_power_cap", false},     {0x8, "hw_slowdown", true},
    {0x10, "sync_boost", false},      {0x20, "sw_thermal", true},
    {0x40, "hw_thermal", true},       {0x80, "hw_power_brake", true},
    {0x100, "display_clocks", false},
};

typedef enum { ST_OK = 0, ST_WARN = 1, ST_CRIT = 2 } status;
static const char *const ST_NAME[] = {"ok", "warn", "crit"};

typedef struct thresholds {
    double temp_warn, temp_crit, sbe_vol_warn, pcie_replay_warn, nvlink_crc_warn, remapped_unc_warn;
    char window[16];                     /* PromQL duration for counter increases, e.g. "1h" */
    const json_t *xid_crit, *xid_ignore; /* borrowed arrays, may be NULL */
    long long expected_gpus;             /* 0: unknown */
    char host_label[64]; /* "": Hostname or hostname (renamed by dcgm-exporter in 2026) */
} thresholds;

typedef struct gpu {
    bool seen;
    bool has[M_COUNT];
    double v[M_COUNT];
    char uuid[64], model[64], pci[32];
} gpu;

/* Default Xids that mean the GPU needs a reset or more (NVIDIA's Xid
 * catalog: 48 DBE, 61/62 internal micro-controller, 63/64 row remap,
 * 74 NVLink, 79 fell off the bus, 92 high SBE, 94/95 contained/uncontained
 * ECC, 119/120 GSP). */
static const int XID_CRIT_DEFAULT[] = {48, 61, 62, 63, 64, 74, 79, 92, 94, 95, 119, 120};

static double thr_num(const json_t *sec, const char *key, double dflt)
{
    const json_t *v = json_object_get(sec, key);
    return json_is_number(v) ? json_number_value(v) : dflt;
}

static void load_thresholds(const fm_config *cfg, thresholds *t)
{
    const json_t *g = json_object_get(fm_config_section(cfg, "metrics"), "gpu_health");
    t->temp_warn = thr_num(g, "temp_warn", 85);
    t->temp_crit = thr_num(g, "temp_crit", 90);
    t->sbe_vol_warn = thr_num(g, "sbe_vol_warn", 100);
    t->pcie_replay_warn = thr_num(g, "pcie_replay_warn", 100);
    t->nvlink_crc_warn = thr_num(g, "nvlink_crc_warn", 100);
    t->remapped_unc_warn = thr_num(g, "remapped_unc_warn", 8);
    t->xid_crit = json_object_get(g, "xid_crit");
    t->xid_ignore = json_object_get(g, "xid_ignore");
    t->expected_gpus = (long long)thr_num(g, "expected_gpus", 0);
    fm_read_counter_window(cfg, t->window);
    const char *hl = json_string_value(json_object_get(g, "host_label"));
    snprintf(t->host_label, sizeof t->host_label, "%s", hl ? hl : "");
}

static bool int_in(const json_t *arr, long long x)
{
    size_t i;
    const json_t *e;
    json_array_foreach(arr, i, e)
    {
        if (json_integer_value(e) == x) return true;
    }
    return false;
}

static status xid_status(const thresholds *t, long long xid)
{
    if (xid <= 0 || int_in(t->xid_ignore, xid)) return ST_OK;
    if (t->xid_crit) return int_in(t->xid_crit, xid) ? ST_CRIT : ST_WARN;
    for (size_t i = 0; i < sizeof XID_CRIT_DEFAULT / sizeof *XID_CRIT_DEFAULT; i++)
        if (XID_CRIT_DEFAULT[i] == xid) return ST_CRIT;
    return ST_WARN;
}

/* One check: records value and status in detail (if not NULL), an issue
 * text when not ok, and returns the status. */
static status check(json_t *detail, json_t *issues, const char *key, double value, status st,
                    const char *issue)
{
    if (detail) {
        json_t *o = json_object();
        json_object_set_new(o, "value",
                            value == floor(value) && fabs(value) < 9e15
                                ? json_integer((json_int_t)value)
                                : json_real(value));
        json_object_set_new(o, "status", json_string(ST_NAME[st]));
        json_object_set_new(detail, key, o);
    }
    if (st != ST_OK) json_array_append_new(issues, json_sprintf("%s (%s)", issue, ST_NAME[st]));
    return st;
}

static status max_st(status a, status b)
{
    return a > b ? a : b;
}

/* Judges one GPU; returns a new object (compact unless detail). */
/* A counter's growth over the window: now minus then, or now when the
 * counter was reset in between.  Returns false when there is no sample
 * from then (the total is all there is). */
static bool growth(const gpu *g, const gpu *then, int m, double *inc)
{
    if (!then || !then->has[m]) return false;
    double a = then->v[m], b = g->v[m];
    *inc = b >= a ? b - a : b;
    return true;
}

/* A counter check: the increase over the window against warn, or the
 * total when there is no history. */
static status counter_check(const thresholds *t, json_t *d, json_t *issues, const gpu *g,
                            const gpu *then, int m, const char *what, double warn)
{
    char txt[128];
    double inc = 0;
    bool rated = growth(g, then, m, &inc);
    double judged = rated ? inc : g->v[m];
    if (rated)
        snprintf(txt, sizeof txt, "%s +%.0f in %s (total %.0f)", what, inc, t->window, g->v[m]);
    else
        snprintf(txt, sizeof txt, "%s %.0f (total: no sample from %s ago)", what, g->v[m],
                 t->window);
    status st = check(d, issues, METRICS[m].key, g->v[m], judged >= warn ? ST_WARN : ST_OK, txt);
    json_t *o = d ? json_object_get(d, METRICS[m].key) : NULL;
    if (o) {
        json_object_set_new(o, "increase", rated ? json_real(inc) : json_null());
        json_object_set_new(o, "window", json_string(t->window));
    }
    return st;
}

static json_t *judge(const thresholds *t, int idx, const gpu *g, const gpu *then, bool detail,
                     status *out)
{
    json_t *issues = json_array();
    json_t *d = detail ? json_object() : NULL;
    status st = ST_OK;
    char txt[128];
    const double *v = g->v;
    if (g->has[M_TEMP]) {
        snprintf(txt, sizeof txt, "temperature %.0f C", v[M_TEMP]);
        st = max_st(st, check(d, issues, "temp_c", v[M_TEMP],
                              v[M_TEMP] >= t->temp_crit   ? ST_CRIT
                              : v[M_TEMP] >= t->temp_warn ? ST_WARN
                                                          : ST_OK,
                              txt));
    }
    if (g->has[M_XID]) {
        snprintf(txt, sizeof txt, "Xid %.0f", v[M_XID]);
        st = max_st(
            st, check(d, issues, "last_xid", v[M_XID], xid_status(t, (long long)v[M_XID]), txt));
    }
    if (g->has[M_DBE]) {
        snprintf(txt, sizeof txt, "ECC volatile DBE %.0f", v[M_DBE]);
        st = max_st(st,
                    check(d, issues, "ecc_dbe_vol", v[M_DBE], v[M_DBE] > 0 ? ST_CRIT : ST_OK, txt));
    }
    if (g->has[M_SBE])
        st = max_st(
            st, counter_check(t, d, issues, g, then, M_SBE, "ECC volatile SBE", t->sbe_vol_warn));
    if (g->has[M_RFAIL]) {
        st = max_st(st, check(d, issues, "row_remap_failure", v[M_RFAIL],
                              v[M_RFAIL] > 0 ? ST_CRIT : ST_OK, "row remap failure"));
    }
    if (g->has[M_RPEND]) {
        st = max_st(st,
                    check(d, issues, "row_remap_pending", v[M_RPEND],
                          v[M_RPEND] > 0 ? ST_WARN : ST_OK, "row remap pending (needs GPU reset)"));
    }
    if (g->has[M_RUNC]) {
        snprintf(txt, sizeof txt, "%.0f uncorrectable remapped rows", v[M_RUNC]);
        st = max_st(st, check(d, issues, "remapped_rows_unc", v[M_RUNC],
                              v[M_RUNC] >= t->remapped_unc_warn ? ST_WARN : ST_OK, txt));
    }
    if (g->has[M_RCORR] && d) check(d, issues, "remapped_rows_corr", v[M_RCORR], ST_OK, "");
    if (g->has[M_PCIE])
        st = max_st(
            st, counter_check(t, d, issues, g, then, M_PCIE, "PCIe replays", t->pcie_replay_warn));
    if (g->has[M_NVL])
        st = max_st(st, counter_check(t, d, issues, g, then, M_NVL, "NVLink CRC errors",
                                      t->nvlink_crc_warn));
    if (g->has[M_CLOCK]) {
        unsigned mask = (unsigned)v[M_CLOCK];
        json_t *reasons = json_array();
        status cst = ST_OK;
        char bad[96] = "";
        for (size_t i = 0; i < sizeof CLOCK_BITS / sizeof *CLOCK_BITS; i++) {
            if (!(mask & CLOCK_BITS[i].bit)) continue;
            json_array_append_new(reasons, json_string(CLOCK_BITS[i].name));
            if (CLOCK_BITS[i].bad) {
                cst = ST_WARN;
                size_t l = strlen(bad);
                snprintf(bad + l, sizeof bad - l, "%s%s", l ? "," : "", CLOCK_BITS[i].name);
            }
        }
        if (cst != ST_OK)
            json_array_append_new(issues, json_sprintf("clock events %s (warn)", bad));
        st = max_st(st, cst);
        if (d)
            json_object_set_new(d, "clock_events",
                                json_pack("{s:I, s:o, s:s}", "value", (json_int_t)mask, "reasons",
                                          reasons, "status", ST_NAME[cst]));
        else
            json_decref(reasons);
    }
    if (g->has[M_POWER] && d) {
        json_t *p = json_pack("{s:f, s:s}", "value", v[M_POWER], "status", "ok");
        if (g->has[M_PLIMIT]) json_object_set_new(p, "limit", json_real(v[M_PLIMIT]));
        json_object_set_new(d, "power_w", p);
    }
    json_t *o = json_pack("{s:i, s:s}", "gpu", idx, "status", ST_NAME[st]);
    if (d) {
        if (*g->uuid) json_object_set_new(o, "uuid", json_string(g->uuid));
        if (*g->model) json_object_set_new(o, "model", json_string(g->model));
        if (*g->pci) json_object_set_new(o, "pci_bus_id", json_string(g->pci));
        json_object_update(o, d);
        json_decref(d);
    }
    json_object_set_new(o, "issues", issues);
    *out = st;
    return o;
}

static void copy_label(char *dst, size_t len, const json_t *labels, const char *key)
{
    const char *s = json_string_value(json_object_get(labels, key));
    if (s && !*dst) fm_clip(dst, len, s);
}

/* Files each series (borrowed answer) under its GPU; returns the number of
 * GPUs seen. */
static int collect(const json_t *ans, gpu *gpus)
{
    int seen = 0;
    size_t i;
    const json_t *s;
    json_array_foreach(json_object_get(ans, "series"), i, s)
    {
        const json_t *lb = json_object_get(s, "labels");
        const char *name = json_string_value(json_object_get(lb, "__name__"));
        const char *gi = json_string_value(json_object_get(lb, "gpu"));
        const json_t *val = json_object_get(s, "value");
        if (!name || !gi || !json_is_number(val) || strncmp(name, "DCGM_FI_DEV_", 12) != 0)
            continue;
        char *end;
        long idx = strtol(gi, &end, 10);
        if (end == gi || *end || idx < 0 || idx >= MAX_GPUS) continue; /* "" is no GPU */
        for (int m = 0; m < M_COUNT; m++) {
            if (strcmp(name + 12, METRICS[m].metric) != 0 &&
                (!METRICS[m].alias || strcmp(name + 12, METRICS[m].alias) != 0))
                continue;
            gpu *g = &gpus[idx];
            if (!g->seen) seen++;
            g->seen = true;
            g->has[m] = true;
            g->v[m] = json_number_value(val);
            copy_label(g->uuid, sizeof g->uuid, lb, "UUID");
            copy_label(g->model, sizeof g->model, lb, "modelName");
            copy_label(g->pci, sizeof g->pci, lb, "pci_bus_id");
        }
    }
    return seen;
}

/* The fields no GPU of the node reported (new array): a stock
 * dcgm-exporter serves no ECC, NVLink CRC, row-remap-pending or
 * clock-event counters until its counters file enables them. */
static json_t *absent_fields(const gpu *gpus)
{
    json_t *a = json_array();
    for (int m = 0; m < M_COUNT; m++) {
        bool any = false;
        for (int i = 0; i < MAX_GPUS && !any; i++)
            any = gpus[i].has[m];
        if (!any) json_array_append_new(a, json_sprintf("DCGM_FI_DEV_%s", METRICS[m].metric));
    }
    return a;
}

/* Returns a new object (see schemas/tools/gpu_health.json). */
json_t *fm_tool_gpu_health(fm_call *call, fm_err *err)
{
    fm_ctx *ctx = call->ctx;
    const char *node = fm_read_arg_str(call->args, "node");
    if (!fm_slurm_valid_node_name(node)) {
        fm_err_set(err, FM_ERR_INVALID, "node must be a node name");
        return NULL;
    }
    bool detail = fm_read_arg_bool(call->args, "detail", false);
    thresholds t;
    load_thresholds(&ctx->cfg, &t);
    /* node names are validated above, so they cannot break the matcher */
    char names[512] = "DCGM_FI_DEV_(", q[1400];
    for (int m = 0; m < M_COUNT; m++) {
        size_t l = strlen(names);
        snprintf(names + l, sizeof names - l, "%s%s%s%s", m ? "|" : "", METRICS[m].metric,
                 METRICS[m].alias ? "|" : "", METRICS[m].alias ? METRICS[m].alias : "");
    }
    strcat(names, ")");
    fm_read_dcgm_selector(q, sizeof q, names, t.host_label, node, "");
    json_t *ans = ctx->be.metrics->query_instant(ctx->be.metrics_st, q, 0, err);
    if (!ans) return NULL;
    gpu *gpus = calloc(2 * MAX_GPUS, sizeof *gpus), *then = gpus + MAX_GPUS;
    if (!gpus) {
        json_decref(ans);
        fm_err_set(err, FM_ERR_NOMEM, "gpu_health");
        return NULL;
    }
    int seen = collect(ans, gpus);
    json_t *absent = seen > 0 ? absent_fields(gpus) : NULL;
    bool truncated = json_is_true(json_object_get(ans, "truncated"));
    json_decref(ans);
    /* The counters as they were one window ago, to judge their growth.
     * Failing that, the totals are judged and the note says why. */
    char history_err[160] = "";
    if (seen > 0) {
        char cn[160], off[32];
        snprintf(cn, sizeof cn, "DCGM_FI_DEV_(%s|%s|%s)", METRICS[M_SBE].metric,
                 METRICS[M_PCIE].metric, METRICS[M_NVL].metric);
        snprintf(off, sizeof off, " offset %s", t.window);
        fm_read_dcgm_selector(q, sizeof q, cn, t.host_label, node, off);
        fm_err herr = {0};
        json_t *past = ctx->be.metrics->query_instant(ctx->be.metrics_st, q, 0, &herr);
        if (past)
            collect(past, then);
        else
            fm_clip(history_err, sizeof history_err, herr.text);
        json_decref(past);
    }

    long long expected = 0;
    const char *from = "metrics";
    if (ctx->be.slurm) {
        fm_err serr = {0};
        json_t *n = ctx->be.slurm->node(ctx->be.slurm_st, node, &serr);
        expected = n ? json_integer_value(json_object_get(n, "gpus")) : 0;
        json_decref(n);
        if (expected > 0) from = "slurm";
    }
    if (expected <= 0 && t.expected_gpus > 0) {
        expected = t.expected_gpus;
        from = "config";
    }
    int max_idx = -1;
    for (int i = 0; i < MAX_GPUS; i++)
        if (gpus[i].seen) max_idx = i;
    if (expected <= 0) expected = max_idx + 1;
    if (expected > MAX_GPUS) expected = MAX_GPUS;

    json_t *list = json_array();
    int counts[3] = {0, 0, 0};
    int last = (int)(expected > max_idx + 1 ? expected : max_idx + 1);
    for (int i = 0; i < last; i++) {
        status st;
        json_t *o;
        if (gpus[i].seen) {
            o = judge(&t, i, &gpus[i], then[i].seen ? &then[i] : NULL, detail, &st);
        } else if (seen > 0) {
            st = ST_CRIT;
            o = json_pack("{s:i, s:s, s:[s]}", "gpu", i, "status", "crit", "issues",
                          "no metrics: GPU missing (fell off the bus?) (crit)");
        } else {
            continue;
        }
        counts[st]++;
        if (detail || st != ST_OK)
            json_array_append_new(list, o);
        else
            json_decref(o);
    }
    free(gpus);
    const char *verdict = seen == 0       ? "unknown"
                          : counts[2] > 0 ? "faulty"
                          : counts[1] > 0 ? "degraded"
                                          : "healthy";
    json_t *out = json_object();
    json_object_set_new(out, "node", json_string(node));
    json_object_set_new(out, "verdict", json_string(verdict));
    json_object_set_new(out, "expected_gpus", expected > 0 ? json_integer(expected) : json_null());
    json_object_set_new(out, "expected_from", json_string(from));
    json_object_set_new(out, "seen_gpus", json_integer(seen));
    json_object_set_new(
        out, "counts",
        json_pack("{s:i, s:i, s:i}", "ok", counts[0], "warn", counts[1], "crit", counts[2]));
    json_object_set_new(out, "gpus", list);
    if (absent && json_array_size(absent))
        json_object_set_new(out, "absent_fields", absent);
    else
        json_decref(absent);
    if (seen == 0)
        json_object_set_new(out, "note",
                            json_sprintf("no DCGM series with %s=\"%s\": check dcgm-exporter on "
                                         "the node and its scrape (up{...}), or "
                                         "metrics.gpu_health.host_label",
                                         t.host_label[0] ? t.host_label : "Hostname or hostname",
                                         node));
    else if (history_err[0])
        json_object_set_new(out, "note",
                            json_sprintf("counters judged by their totals: the %s-old sample"
                                         " could not be read (%s)",
                                         t.window, history_err));
    else if (truncated)
        json_object_set_new(out, "note",
                            json_string("metrics answer truncated by metrics.max_series: raise it "
                                        "(13 series per GPU are needed)"));
    else if (!detail)
        json_object_set_new(out, "note",
                            json_string("only GPUs not ok are listed; detail: true "
                                        "lists all with values"));
    return out;
}
