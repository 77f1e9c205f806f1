/* Metric signatures over DCGM / Prometheus samples: thresholds, sustained
 * and rising series, outliers among peers, counters that did not move. */
#include "diag_int.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ---- metrics ---------------------------------------------------------------- */

static bool cmp(int op, double v, double t)
{
    switch (op) {
    case OP_GT:
        return v > t;
    case OP_GE:
        return v >= t;
    case OP_LT:
        return v < t;
    case OP_LE:
        return v <= t;
    case OP_EQ:
        return v == t;
    case OP_NE:
        return v != t;
    case OP_AND:
        return ((long long)v & (long long)t) != 0;
    }
    return false;
}

const char *host_of(const json_t *labels, char *buf, size_t n)
{
    /* dcgm-exporter's label was Hostname until its May 2026 rename */
    const char *h = json_string_value(json_object_get(labels, "Hostname"));
    if (!h) h = json_string_value(json_object_get(labels, "hostname"));
    if (!h) h = json_string_value(json_object_get(labels, "node"));
    if (!h) h = json_string_value(json_object_get(labels, "instance"));
    if (!h) return "";
    snprintf(buf, n, "%s", h);
    char *c = strchr(buf, ':');
    if (c) *c = '\0';
    return buf;
}

/* "host|gpu|instance|device": samples of one GPU share it (missing parts
 * are empty, so two samples that both lack a label still agree). */
static void device_key(const json_t *labels, char *out, size_t n)
{
    char h[128];
    const char *g = json_string_value(json_object_get(labels, "gpu"));
    const char *mi = json_string_value(json_object_get(labels, "GPU_I_ID"));
    const char *d = json_string_value(json_object_get(labels, "device"));
    snprintf(out, n, "%s\x1f%.32s\x1f%.32s\x1f%.32s", host_of(labels, h, sizeof h), g ? g : "",
             mi ? mi : "", d ? d : "");
}

static bool labels_ok(run *r, const diag_metric *m, const json_t *labels)
{
    for (int i = 0; i < m->nlabels; i++) {
        const char *v = json_string_value(json_object_get(labels, m->label_key[i]));
        if (!v || !diag_re_match(&m->label_re[i], v, strlen(v), r->md)) return false;
    }
    return true;
}

static char *metric_evidence(const char *name, const json_t *labels, double v, const char *note)
{
    char lb[200] = "";
    size_t o = 0;
    static const char *const keys[] = {"Hostname", "hostname", "instance",   "node",      "gpu",
                                       "GPU_I_ID", "device",   "mountpoint", "partition", "account",
                                       "reason",   "pod",      "hpc_job",    "Location",  "job"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys && o < sizeof lb - 40; i++) {
        const char *x = json_string_value(json_object_get(labels, keys[i]));
        if (x)
            o +=
                (size_t)snprintf(lb + o, sizeof lb - o, "%s%s=\"%.40s\"", o ? "," : "", keys[i], x);
    }
    char pre[400];
    snprintf(pre, sizeof pre, "metrics: %.100s{%s} = %g%s", name, lb, v, note ? note : "");
    return diag_evidence(pre, "", 0);
}

/* Per sample: the first and last index of its series (same name and labels),
 * so "latest sample" and "delta since the first" are O(1).  Returns a new
 * object key -> [first, last]; keys[i] (owned by the caller) is i's key. */
static json_t *series_index(const json_t *metrics, size_t n, char **keys, bool *oom)
{
    json_t *idx = json_object();
    for (size_t i = 0; idx && i < n; i++) {
        const json_t *s = json_array_get(metrics, i);
        char *lb = json_dumps(json_object_get(s, "labels"), JSON_COMPACT | JSON_SORT_KEYS);
        keys[i] = diag_fmt("%s\x1f%s", json_string_value(json_object_get(s, "name")), lb ? lb : "");
        free(lb);
        if (!keys[i]) {
            *oom = true;
            break;
        }
        json_t *e = json_object_get(idx, keys[i]);
        if (!e)
            json_object_set_new(idx, keys[i], json_pack("[I,I]", (json_int_t)i, (json_int_t)i));
        else
            json_array_set_new(e, 1, json_integer((json_int_t)i));
    }
    return idx;
}

/* A sample's value.  DCGM's clock-event reasons are a bitmask: on a GPU
 * that also reports itself idle (bit 0x1) the SW power cap bit (0x4) is
 * the idle GPU resting at its cap's floor, not power holding back work,
 * so it reads as clear. */
void gpu_key(const json_t *labels, char *out, size_t n)
{
    char h[128];
    const char *g = json_string_value(json_object_get(labels, "gpu"));
    const char *mi = json_string_value(json_object_get(labels, "GPU_I_ID"));
    snprintf(out, n, "%s\x1f%.32s\x1f%.32s", host_of(labels, h, sizeof h), g ? g : "",
             mi ? mi : "");
}

/* The GPUs whose latest utilisation sample reads under 5%: idle. */
static json_t *idle_gpus(const json_t *metrics, size_t n)
{
    json_t *idle = json_object();
    for (size_t i = 0; idle && i < n; i++) {
        const json_t *s = json_array_get(metrics, i);
        const char *nm = json_string_value(json_object_get(s, "name"));
        if (!nm || strcmp(nm, "DCGM_FI_DEV_GPU_UTIL") != 0) continue;
        char k[300];
        gpu_key(json_object_get(s, "labels"), k, sizeof k);
        json_object_set_new(idle, k,
                            json_boolean(json_number_value(json_object_get(s, "value")) < 5));
    }
    return idle;
}

static double sample_value(const run *r, const json_t *o)
{
    double v = json_number_value(json_object_get(o, "value"));
    const char *nm = json_string_value(json_object_get(o, "name"));
    if (nm && strstr(nm, "_REASONS") && v >= 0 && v < 9.0e15) {
        long long b = (long long)v;
        char k[300];
        if (b & 0x4) gpu_key(json_object_get(o, "labels"), k, sizeof k);
        /* the idle bit, or a utilisation of nothing on the same GPU (a
         * context open, no work: the idle bit stays clear) */
        if ((b & 0x4) && ((b & 0x1) || json_is_true(json_object_get(r->idle, k))))
            v = (double)(b & ~0x4LL);
    }
    return v;
}

/* Device keys of the samples that satisfy a signature's `with` condition
 * (new object key -> true). */
static json_t *with_devices(run *r, const diag_metric *m, const json_t *metrics, size_t n)
{
    json_t *dev = json_object();
    for (size_t j = 0; dev && j < n; j++) {
        const json_t *o = json_array_get(metrics, j);
        const char *on = json_string_value(json_object_get(o, "name"));
        if (!diag_re_match(&m->with_name, on, strlen(on), r->md) ||
            !cmp(m->with_op, sample_value(r, o), m->with_thr))
            continue;
        char k[300];
        device_key(json_object_get(o, "labels"), k, sizeof k);
        json_object_set_new(dev, k, json_true());
    }
    return dev;
}

/* Device key -> latest value of the samples named like a signature's `vs`
 * field (new object). */
static json_t *vs_values(run *r, const diag_metric *m, const json_t *metrics, size_t n)
{
    json_t *dev = json_object();
    for (size_t j = 0; dev && j < n; j++) {
        const json_t *o = json_array_get(metrics, j);
        const char *on = json_string_value(json_object_get(o, "name"));
        if (!diag_re_match(&m->vs_name, on, strlen(on), r->md)) continue;
        char k[300];
        device_key(json_object_get(o, "labels"), k, sizeof k);
        json_object_set_new(dev, k, json_real(json_number_value(json_object_get(o, "value"))));
    }
    return dev;
}

/* host and node name the same machine (short name or FQDN of it). */
bool same_host(const char *host, const char *node)
{
    size_t h = strlen(host), n = strlen(node);
    if (h == n) return strcmp(host, node) == 0;
    if (h > n) return strncmp(host, node, n) == 0 && host[n] == '.';
    return strncmp(node, host, h) == 0 && node[h] == '.';
}

/* A node-scope class only takes samples of the node being diagnosed: a hot
 * or broken neighbour in the same answer says nothing about this one. */
static bool foreign_for(run *r, const json_t *labels, int cls)
{
    char h[128];
    const char *host = host_of(labels, h, sizeof h);
    return r->node && *r->node && *host && !same_host(host, r->node) &&
           strcmp(r->db->classes[cls].scope, "node") == 0;
}

typedef struct metric_ev {
    const char *name;
    const json_t *labels;
    double v;
} metric_ev;

static char *metric_xid_ev(run *r, int line, const char *extra, const void *arg)
{
    (void)r;
    (void)line;
    const metric_ev *m = arg;
    char note[320];
    snprintf(note, sizeof note, " %.290s(gauge of the last Xid)", extra);
    return metric_evidence(m->name, m->labels, m->v, note);
}

/* A text source logged Xid code: since its last reboot and not an
 * application's Xid of days ago (fresh), or at all. */
static bool xid_in_text(run *r, int code, bool fresh)
{
    const diag_xid *x = diag_xid_find(r->db, code);
    for (int k = 0; k < r->nraws; k++)
        if (r->db->sigs[r->raws[k].sig].xid && r->raws[k].xid == code &&
            (!fresh || (!before_boot(r, r->raws[k].line) && !app_xid_old(r, r->raws[k].line, x))))
            return true;
    return false;
}

static int healthy_idx(run *r)
{
    return diag_class_index(r->db, "healthy");
}

/* One series far above its peers: the latest value of every matching
 * series against their median.  One slow rank among many is its node; many
 * slow ones are the job (or the whole fabric), not one node. */
/* The asked node's series against its peers, host by host: several GPUs
 * of one node set alike (a power limit, clocks held low) are one outlier,
 * however many of its GPUs there are.  Only the node's mean far from the
 * median of the other hosts' means, and no other host so, counts. */
static bool node_outlier(run *r, const diag_sig *g, const json_t *metrics, const double *vals,
                         const size_t *at, int ns)
{
    enum { MAXH = 64 };
    char hosts[MAXH][128];
    double sum[MAXH], means[MAXH];
    int cnt[MAXH], nh = 0, mine = -1, first = -1;
    const diag_metric *m = &g->m;
    if (!r->node || !*r->node) return false;
    for (int q = 0; q < ns; q++) {
        char hb[128];
        const char *h =
            host_of(json_object_get(json_array_get(metrics, at[q]), "labels"), hb, sizeof hb);
        if (!*h) return false; /* a series of no known host: judged per series */
        int k = 0;
        while (k < nh && strcmp(hosts[k], h) != 0)
            k++;
        if (k == nh) {
            if (nh == MAXH) return false;
            snprintf(hosts[nh], sizeof hosts[nh], "%s", h);
            sum[nh] = 0;
            cnt[nh++] = 0;
        }
        sum[k] += vals[q];
        cnt[k]++;
        if (same_host(h, r->node)) {
            mine = k;
            if (first < 0) first = q;
        }
    }
    if (mine < 0 || nh < 2) return false;
    int no = 0;
    for (int k = 0; k < nh; k++)
        if (k != mine) means[no++] = sum[k] / cnt[k];
    qsort(means, (size_t)no, sizeof *means, diag_cmp_double);
    double med = means[no / 2], mean = sum[mine] / cnt[mine];
    bool low = m->outlier < 1;
    if (med <= 0) return false;
    for (int k = 0; k < nh; k++) {
        double v = sum[k] / cnt[k];
        bool out = low ? v <= m->outlier * med : v >= m->outlier * med;
        if (out != (k == mine)) return false;
    }
    const json_t *s = json_array_get(metrics, at[first]);
    const json_t *labels = json_object_get(s, "labels");
    if (m->has_with) {
        json_t *dev = with_devices(r, m, metrics, json_array_size(metrics));
        char k[300];
        device_key(labels, k, sizeof k);
        bool ok = dev && json_object_get(dev, k) != NULL;
        json_decref(dev);
        if (!ok) return false;
    }
    char note[200];
    snprintf(note, sizeof note,
             " (the node's %d series average %.2fx the median %g of %d other host%s)", cnt[mine],
             mean / med, med, no, no == 1 ? "" : "s");
    for (int c = 0; c < g->ncls; c++)
        add_hit(r, g->cls[c], DK_METRICS, g->strength, g->group,
                metric_evidence(json_string_value(json_object_get(s, "name")), labels, mean, note));
    return true;
}

static void metric_outlier(run *r, const diag_sig *g, const json_t *metrics, size_t n, char **keys,
                           const json_t *idx)
{
    enum { MAXS = 512 };
    double vals[MAXS], sorted[MAXS];
    size_t at[MAXS];
    int ns = 0;
    const diag_metric *m = &g->m;
    for (size_t i = 0; i < n && ns < MAXS; i++) {
        const json_t *s = json_array_get(metrics, i);
        const char *name = json_string_value(json_object_get(s, "name"));
        const json_t *labels = json_object_get(s, "labels");
        if (!diag_re_match(&m->name, name, strlen(name), r->md) || !labels_ok(r, m, labels))
            continue;
        const json_t *e = json_object_get(idx, keys[i]);
        if ((size_t)json_integer_value(json_array_get(e, 1)) != i) continue;
        double v = json_number_value(json_object_get(s, "value"));
        if (!cmp(m->op, v, m->thr)) continue;
        vals[ns] = v;
        at[ns++] = i;
    }
    if (ns < m->min_series || ns < 3) return;
    if (node_outlier(r, g, metrics, vals, at, ns)) return;
    memcpy(sorted, vals, (size_t)ns * sizeof *vals);
    qsort(sorted, (size_t)ns, sizeof *sorted, diag_cmp_double);
    double med = sorted[ns / 2];
    /* outlier below 1: one series far BELOW its peers (one node's clocks
     * held low while the others run at speed) */
    bool low = m->outlier < 1;
    int worst = 0, slow = 0;
    for (int q = 0; q < ns; q++) {
        if (low ? vals[q] < vals[worst] : vals[q] > vals[worst]) worst = q;
        slow += low ? vals[q] <= m->outlier * med : vals[q] >= m->outlier * med;
    }
    if (med <= 0 || (low ? vals[worst] > m->outlier * med : vals[worst] < m->outlier * med) ||
        (slow > 1 && slow * 4 > ns))
        return;
    const json_t *s = json_array_get(metrics, at[worst]);
    const json_t *labels = json_object_get(s, "labels");
    if (m->has_with) {
        /* the outlier's own GPU must meet `with` (busy: an idle GPU's
         * clocks are low by design) */
        json_t *dev = with_devices(r, m, metrics, n);
        char k[300];
        device_key(labels, k, sizeof k);
        bool ok = dev && json_object_get(dev, k) != NULL;
        json_decref(dev);
        if (!ok) return;
    }
    char note[160];
    snprintf(note, sizeof note, " (%.2fx the median %g of %d series%s)", vals[worst] / med, med, ns,
             slow == 1 ? ", the only one" : "");
    for (int c = 0; c < g->ncls; c++)
        add_hit(r, g->cls[c], DK_METRICS, g->strength, g->group,
                metric_evidence(json_string_value(json_object_get(s, "name")), labels, vals[worst],
                                note));
}

/* A line that names a field's counter in words ("the PCIe replay and
 * NVLink CRC numbers have not moved"): the distinctive words of its name
 * (PCIE_REPLAY, NVLINK_CRC_FLIT, ECC_SBE), two of them or all there are. */
static bool names_counter(const tline *l, const char *name)
{
    static const char *const generic[] = {"DCGM",  "FI",    "DEV",    "PROF", "COUNT", "COUNTER",
                                          "TOTAL", "ERROR", "ERRORS", "VOL",  "AGG"};
    char tok[48];
    int ntok = 0, found = 0;
    for (const char *p = name; *p;) {
        size_t n = strcspn(p, "_");
        bool gen = n >= sizeof tok;
        for (size_t g = 0; g < sizeof generic / sizeof *generic && !gen; g++)
            gen = strlen(generic[g]) == n && strncmp(p, generic[g], n) == 0;
        if (!gen && n) {
            memcpy(tok, p, n);
            tok[n] = 0;
            ntok++;
            found += facts_has_ci(l, tok);
        }
        p += n + (p[n] == '_');
    }
    return ntok && found >= (ntok < 2 ? ntok : 2);
}

/* A cumulative counter (PCIe replays, NVLink CRC, ECC totals) holds its
 * lifetime: a large value that did not move over the window is history.
 * Flat: several samples of the series alike; an increase()/rate()/delta()
 * of its name given as 0; or a text line that says so (quote: flat). */
static bool counter_flat(run *r, const json_t *metrics, size_t n, size_t first, size_t last,
                         const char *name)
{
    if (first != last && sample_value(r, json_array_get(metrics, first)) ==
                             sample_value(r, json_array_get(metrics, last)))
        return true;
    /* the same GPU's counter in another sample whose other labels differ
     * (the exporter's Hostname label renamed hostname, a new pod or
     * instance between scrapes): one series, read twice alike */
    const json_t *me = json_array_get(metrics, last);
    char mk[300], ok[300];
    gpu_key(json_object_get(me, "labels"), mk, sizeof mk);
    for (size_t j = 0; j < n; j++) {
        const json_t *s = json_array_get(metrics, j);
        const char *nm = json_string_value(json_object_get(s, "name"));
        if (j == last || !nm || strcmp(nm, name) != 0) continue;
        gpu_key(json_object_get(s, "labels"), ok, sizeof ok);
        if (strcmp(mk, ok) == 0 && sample_value(r, s) == sample_value(r, me)) return true;
    }
    for (size_t j = 0; j < n; j++) {
        const json_t *s = json_array_get(metrics, j);
        const char *nm = json_string_value(json_object_get(s, "name"));
        const char *at = nm ? strstr(nm, name) : NULL;
        if (!at || at == nm || !memchr(nm, '(', (size_t)(at - nm))) continue;
        if (sample_value(r, s) == 0) return true;
    }
    size_t nl = strlen(name);
    for (int k = 0; k < r->nflat; k++)
        if ((nl && memmem(r->flat[k].s, r->flat[k].len, name, nl)) ||
            names_counter(&r->flat[k], name))
            return true;
    return false;
}

static void metric_sig(run *r, const diag_sig *g, const json_t *metrics, size_t n, char **keys,
                       const json_t *idx)
{
    const struct fm_diag_db *db = r->db;
    const diag_metric *m = &g->m;
    int series = 0, first_hit = -1;
    if ((g->also.code && !any_line_matches(r, &g->also, ~(1u << DS_METRICS))) ||
        !cross_source_ok(r, g))
        return;
    if (m->outlier > 0) {
        metric_outlier(r, g, metrics, n, keys, idx);
        return;
    }
    json_t *dev = m->has_with ? with_devices(r, m, metrics, n) : NULL;
    json_t *vsv = m->has_vs ? vs_values(r, m, metrics, n) : NULL;
    for (size_t i = 0; i < n; i++) {
        const json_t *s = json_array_get(metrics, i);
        const char *name = json_string_value(json_object_get(s, "name"));
        const json_t *labels = json_object_get(s, "labels");
        if (!diag_re_match(&m->name, name, strlen(name), r->md) || !labels_ok(r, m, labels))
            continue;
        const json_t *e = json_object_get(idx, keys[i]);
        size_t first = (size_t)json_integer_value(json_array_get(e, 0));
        size_t last = (size_t)json_integer_value(json_array_get(e, 1));
        if (last != i) continue; /* several samples of a series: judge the latest */
        double v = sample_value(r, s);
        char note[128] = "";
        if (m->rising) {
            if (first == i) continue; /* one sample gives no rate */
            v -= json_number_value(json_object_get(json_array_get(metrics, first), "value"));
            snprintf(note, sizeof note, " (rose by %g)", v);
        } else if (m->counter && counter_flat(r, metrics, n, first, last, name)) {
            continue;
        }
        double thr = m->thr;
        if (vsv) {
            /* against another field of the same GPU: absent, not judged */
            char k[300];
            device_key(labels, k, sizeof k);
            const json_t *ov = json_object_get(vsv, k);
            if (!ov || json_real_value(ov) <= 0) continue;
            thr = m->vs_factor * json_real_value(ov);
            snprintf(note, sizeof note, " (%.0f%% of %g)", 100.0 * v / json_real_value(ov),
                     json_real_value(ov));
        }
        if (!cmp(m->op, v, thr)) continue;
        if (m->sustained && m->fell_from > 0) {
            /* busy, then idle: the last samples hold, one before them did
             * not and was at least fell_from */
            int tail = 0;
            bool broke = false, was = false;
            for (size_t j = last + 1; j-- > first;) {
                if (strcmp(keys[j], keys[i]) != 0) continue;
                double sv = json_number_value(json_object_get(json_array_get(metrics, j), "value"));
                if (!broke && cmp(m->op, sv, thr)) {
                    tail++;
                    continue;
                }
                broke = true;
                if (sv >= m->fell_from) was = true;
            }
            if (tail < m->sustained || !was) continue;
            snprintf(note, sizeof note, " (the last %d samples, after %g or more)", tail,
                     m->fell_from);
        } else if (m->sustained) {
            /* over time: every sample of this series, and enough of them */
            int ns = 0;
            bool all = true;
            for (size_t j = first; j <= last && all; j++)
                if (strcmp(keys[j], keys[i]) == 0) {
                    ns++;
                    all =
                        cmp(m->op,
                            json_number_value(json_object_get(json_array_get(metrics, j), "value")),
                            thr);
                }
            if (!all || ns < m->sustained) continue;
            snprintf(note, sizeof note, " (all %d samples)", ns);
        }
        if (dev) {
            char k[300];
            device_key(labels, k, sizeof k);
            if (!json_object_get(dev, k)) continue;
        }
        if (g->xid) {
            /* a gauge of the LAST Xid, which may be old: capped by the signature */
            const diag_xid *x = diag_xid_find(db, (int)v);
            int hc = healthy_idx(r);
            if ((x && x->cls >= 0 && foreign_for(r, labels, x->cls)) ||
                ((!x || x->cls < 0) && hc >= 0 && foreign_for(r, labels, hc)))
                continue;
            metric_ev mev = {name, labels, v};
            /* the gauge holds the LAST Xid, of unknown age: without a log
             * line of the same code it is a hint to look, not a diagnosis */
            bool alone = !xid_in_text(r, (int)v, true);
            /* with the Xid record of the window read (a kernel log, even an
             * empty one, or DCGM's health and events: marker group
             * xid-window-read) and no line of that code in it, the gauge
             * holds an old Xid: history, nothing to escalate; so it is
             * after a repair on record (a reset, a part swapped); and so
             * it is when the only lines of its code are history (an earlier
             * boot, an application's Xid of days ago): the gauge holds that */
            bool old = alone && (r->nsrc[DS_KERNEL] > 0 || r->kernel_given ||
                                 group_marked(r, "xid-window-read") || r->repaired ||
                                 xid_count_zero(r) || xid_in_text(r, (int)v, false));
            r->cur_old = old;
            xid_seen(r, (int)v, DK_METRICS, alone ? ST_WEAK : g->xid_cap, g->group, -1,
                     metric_xid_ev, &mev);
            r->cur_old = false;
            if (alone && !old && x && x->cls >= 0)
                add_anomaly(r, ST_STRONG, 1, "xid-gauge-only",
                            metric_xid_ev(r, -1,
                                          "[the last Xid, age unknown, and no log line of it: "
                                          "read the kernel log] ",
                                          &mev));
            continue;
        }
        if (g->anomaly) {
            /* a counter no class explains (a pause-frame storm): the node's
             * anomaly, unless the series is another host's */
            char hb[64];
            const char *h = host_of(labels, hb, sizeof hb);
            if (r->node && h && *h && !same_host(h, r->node)) continue;
            add_anomaly(r, g->strength, g->level >= 0 ? g->level : 1, g->group,
                        metric_evidence(name, labels, v, note));
            continue;
        }
        bool counted = false;
        for (int c = 0; c < g->ncls; c++) {
            if (foreign_for(r, labels, g->cls[c])) continue;
            if (!counted) {
                series++;
                counted = true;
                if (first_hit < 0) first_hit = r->nhits;
            }
            add_hit(r, g->cls[c], DK_METRICS, g->strength, g->group,
                    metric_evidence(name, labels, v, note));
        }
    }
    json_decref(dev);
    json_decref(vsv);
    if (!g->xid && series > 0 && series < m->min_series) {
        /* not enough series: withdraw this signature's hits */
        for (int k = first_hit; k < r->nhits; k++)
            free(r->hits[k].text);
        r->nhits = first_hit;
    }
}

/* When DCGM metrics are given: the expected fields none of them carries
 * (a stock dcgm-exporter's default set lacks several). */
void metrics_absent(run *r, const json_t *metrics, size_t n)
{
    bool dcgm = false;
    for (size_t i = 0; i < n && !dcgm; i++)
        dcgm = strncmp(json_string_value(json_object_get(json_array_get(metrics, i), "name")),
                       "DCGM_FI_", 8) == 0;
    if (!dcgm || !r->db->nexpected) return;
    r->absent = json_array();
    for (int e = 0; e < r->db->nexpected; e++) {
        const char *want = r->db->expected[e];
        bool have = false;
        for (size_t i = 0; i < n && !have; i++) {
            const char *nm = json_string_value(json_object_get(json_array_get(metrics, i), "name"));
            /* the throttle field's old name counts for its new one */
            have =
                strcmp(nm, want) == 0 || (strcmp(want, "DCGM_FI_DEV_CLOCKS_EVENT_REASONS") == 0 &&
                                          strcmp(nm, "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS") == 0);
        }
        if (!have) json_array_append_new(r->absent, json_string(want));
    }
}

/* A sample's time: epoch seconds (number or digits) or ISO 8601 (Z or an
 * offset); NAN without one. */
double sample_time(const json_t *o)
{
    const json_t *t = json_object_get(o, "ts");
    if (json_is_number(t)) return json_number_value(t);
    const char *s = json_string_value(t);
    if (!s) return NAN;
    char *end;
    double v = strtod(s, &end);
    if (end != s && !*end) return v;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!rest) rest = strptime(s, "%Y-%m-%d %H:%M:%S", &tm);
    if (!rest) return NAN;
    double ep = (double)timegm(&tm);
    if (*rest == '.' || *rest == ',')
        for (rest++; isdigit((unsigned char)*rest); rest++) {
        }
    if ((*rest == '+' || *rest == '-') && isdigit((unsigned char)rest[1])) {
        int hh = 0, mm = 0;
        if (sscanf(rest + 1, "%2d:%2d", &hh, &mm) < 1) sscanf(rest + 1, "%2d%2d", &hh, &mm);
        ep -= (*rest == '+' ? 1 : -1) * (hh * 3600.0 + mm * 60.0);
    }
    return ep;
}

/* DCGM fields whose latest reading of 0 on every GPU of the node says a
 * class's state is clean now (a remap pending clears only when a reset
 * applies it): that class's log lines from well before are history. */
static const struct {
    const char *metric, *cls;
} CLEAN_NOW[] = {{"DCGM_FI_DEV_ROW_REMAP_PENDING", "gpu_row_remap_pending"},
                 {"DCGM_FI_DEV_ROW_REMAP_FAILURE", "gpu_row_remap_failure"}};

void metrics_clean_now(run *r, const json_t *metrics)
{
    r->nclean = 0;
    r->clean_fell = false;
    r->clean_at = (double)time(NULL);
    double newest = NAN;
    for (size_t e = 0; e < sizeof CLEAN_NOW / sizeof *CLEAN_NOW; e++) {
        json_t *last = json_object(); /* per GPU: its latest sample */
        size_t n = json_array_size(metrics), nt = json_array_size(r->textm);
        for (size_t i = 0; i < n + nt; i++) {
            /* the samples given, and those pasted as exporter text */
            const json_t *o = i < n ? json_array_get(metrics, i) : json_array_get(r->textm, i - n);
            const char *nm = json_string_value(json_object_get(o, "name"));
            char hb[64], k[300];
            const char *h = host_of(json_object_get(o, "labels"), hb, sizeof hb);
            if (!last || !nm || strcmp(nm, CLEAN_NOW[e].metric) != 0 ||
                (r->node && h && *h && !same_host(h, r->node)))
                continue;
            gpu_key(json_object_get(o, "labels"), k, sizeof k);
            const json_t *prev = json_object_get(last, k);
            double t = sample_time(o);
            /* a set sample before a later 0 of the same GPU: the series
             * shows the state clearing, so its time needs no margin */
            bool set = json_number_value(json_object_get(o, "value")) > 0;
            if (prev && !isnan(t) && t < sample_time(prev)) {
                r->clean_fell |= set;
                continue;
            }
            if (prev && json_number_value(json_object_get(prev, "value")) > 0) r->clean_fell = true;
            json_object_set(last, k, (json_t *)o);
            if (!isnan(t) && (isnan(newest) || t > newest)) newest = t;
        }
        bool clean = last && json_object_size(last) > 0;
        const char *key;
        json_t *v;
        json_object_foreach(last, key, v) clean &=
            json_number_value(json_object_get(v, "value")) == 0;
        int c = diag_class_index(r->db, CLEAN_NOW[e].cls);
        if (clean && c >= 0 && r->nclean < 4) r->clean[r->nclean++] = c;
        json_decref(last);
    }
    if (!isnan(newest)) r->clean_at = newest;
}

typedef struct tsamp {
    double t;
    size_t i;
} tsamp;

static int cmp_tsamp(const void *a, const void *b)
{
    const tsamp *x = a, *y = b;
    if (x->t != y->t) return x->t < y->t ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i; /* stable */
}

/* The samples in time order: a series is judged from its first to its
 * latest sample by their timestamps, whatever order a collector listed them
 * in.  Samples without a time keep their places; those with one are sorted
 * among the places they held.  A new reference, or NULL out of memory. */
static json_t *metrics_in_time_order(const json_t *metrics, size_t n)
{
    tsamp *ts = malloc((n ? n : 1) * sizeof *ts);
    size_t *pos = malloc((n ? n : 1) * sizeof *pos);
    json_t *out = json_array();
    if (!ts || !pos || !out) {
        free(ts);
        free(pos);
        json_decref(out);
        return NULL;
    }
    size_t nt = 0;
    for (size_t i = 0; i < n; i++) {
        double t = sample_time(json_array_get(metrics, i));
        if (!isnan(t)) {
            ts[nt] = (tsamp){t, i};
            pos[nt++] = i;
        }
    }
    qsort(ts, nt, sizeof *ts, cmp_tsamp);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t from = k < nt && pos[k] == i ? ts[k++].i : i;
        json_array_append(out, json_array_get(metrics, from));
    }
    free(ts);
    free(pos);
    if (json_array_size(out) != n) {
        json_decref(out);
        return NULL;
    }
    return out;
}

/* The codes DCGM's last-Xid gauge holds for this node when nothing read
 * could age them (no kernel log, even an empty one, and no DCGM record of
 * the window): a rule that asks for an Xid line may take the gauge's. */
void gauge_xids(run *r, const json_t *metrics)
{
    r->gauge_xids[0] = 0;
    if (r->nsrc[DS_KERNEL] > 0 || r->kernel_given) return;
    for (int k = 0; k < r->nraws; k++)
        if (strcmp(r->db->sigs[r->raws[k].sig].group, "xid-window-read") == 0) return;
    if (xid_count_zero(r)) return;
    size_t used = 0, n = json_array_size(metrics), nt = json_array_size(r->textm);
    for (size_t i = 0; i < n + nt; i++) {
        const json_t *m = i < n ? json_array_get(metrics, i) : json_array_get(r->textm, i - n);
        const char *name = json_string_value(json_object_get(m, "name"));
        double v = json_number_value(json_object_get(m, "value"));
        if (!name || strcmp(name, "DCGM_FI_DEV_XID_ERRORS") != 0 || !(v >= 1) || v > 1e6) continue;
        char hb[64];
        const char *h = host_of(json_object_get(m, "labels"), hb, sizeof hb);
        if (r->node && h && *h && !same_host(h, r->node)) continue;
        char one[24];
        int k = snprintf(one, sizeof one, "xid=%d ", (int)v);
        if (k <= 0 || used + (size_t)k >= sizeof r->gauge_xids || strstr(r->gauge_xids, one))
            continue;
        memcpy(r->gauge_xids + used, one, (size_t)k + 1);
        used += (size_t)k;
    }
}

int metric_hits(run *r, const json_t *metrics, fm_err *err)
{
    if (need_array(metrics, "metrics", MAX_METRICS, err)) return -1;
    size_t n = json_array_size(metrics);
    r->nsrc[DS_METRICS] = (int)n;
    for (size_t i = 0; i < n; i++) {
        const json_t *s = json_array_get(metrics, i);
        if (!json_is_object(s) || !json_is_string(json_object_get(s, "name")) ||
            !json_is_number(json_object_get(s, "value")))
            return fm_err_set(err, FM_ERR_INVALID,
                              "signals.metrics[%zu] needs name (string) and value (number)", i),
                   -1;
    }
    /* with the samples of a scrape pasted as text, bounded like the rest */
    json_t *all = NULL;
    if (json_array_size(r->textm)) {
        all = json_array();
        if (!all || (metrics && json_array_extend(all, (json_t *)metrics)) ||
            json_array_extend(all, r->textm)) {
            json_decref(all);
            r->oom = true;
            return 0;
        }
        while (json_array_size(all) > MAX_METRICS)
            json_array_remove(all, json_array_size(all) - 1);
        metrics = all;
        n = json_array_size(all);
        r->nsrc[DS_METRICS] = (int)n;
    }
    if (n == 0) return 0;
    json_t *sorted = metrics_in_time_order(metrics, n);
    json_decref(all); /* sorted holds its samples */
    r->idle = sorted ? idle_gpus(sorted, n) : NULL;
    if (!sorted) {
        r->oom = true;
        return 0;
    }
    metrics = sorted;
    metrics_absent(r, metrics, n);
    char **keys = calloc(n, sizeof *keys);
    json_t *idx = keys ? series_index(metrics, n, keys, &r->oom) : NULL;
    if (!keys || !idx) r->oom = true;
    for (int si = 0; !r->oom && si < r->db->nsigs; si++)
        if (r->db->sigs[si].is_metric) metric_sig(r, &r->db->sigs[si], metrics, n, keys, idx);
    for (size_t i = 0; keys && i < n; i++)
        free(keys[i]);
    free(keys);
    json_decref(idx);
    json_decref(sorted);
    json_decref(r->idle);
    r->idle = NULL;
    return 0;
}
