/* A distributed job slowed or timed out by one node that runs hot or
 * clocked down: the job waits for that node at every collective, so the
 * node is its straggler (straggler_node), whatever made it slow; the heat
 * is the straggler's cause, told as evidence.  A hot node under a job of
 * its own stays gpu_thermal. */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "diag_int.h"

/* A collective that timed out, or a job told slower step by step. */
static bool job_waits(const tline *l)
{
    static const char *const w[] = {"collective operation timeout",
                                    "NCCL timeout",
                                    "NCCL watchdog",
                                    "Watchdog caught",
                                    "straggler",
                                    "waiting for rank",
                                    "ncclTimeout"};
    return l->src != DS_KERNEL && facts_any(l, w, NOF(w));
}

/* "16-node", "8 nodes", "across 4 nodes": a job of more than one node. */
static bool nodes_told(const tline *l)
{
    for (size_t i = 0; i + 5 < l->len; i++) {
        if (!isdigit((unsigned char)l->s[i]) || (i && isalnum((unsigned char)l->s[i - 1])))
            continue;
        char *e;
        long n = strtol(l->s + i, &e, 10);
        size_t j = (size_t)(e - l->s);
        /* "16-node", "8 nodes"; not "8800 node=" (a step, then a key) */
        if (n >= 2 && n < 100000 && j + 5 < l->len &&
            ((l->s[j] == '-' && strncasecmp(l->s + j + 1, "node", 4) == 0) ||
             (l->s[j] == ' ' && strncasecmp(l->s + j + 1, "nodes", 5) == 0)))
            return true;
        i = j;
    }
    return false;
}

/* The job spans nodes: a Slurm node list of several, or said so.  NCCL
 * alone is no proof: one node's eight GPUs talk NCCL too. */
static bool distributed(const run *r)
{
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        if (l->src == DS_JOBS && facts_has(l, "nodes=") &&
            (memchr(l->s, '[', l->len) || memchr(l->s, ',', l->len)))
            return true;
        if (l->src != DS_KERNEL && l->src != DS_JOBS && nodes_told(l)) return true;
    }
    return false;
}

/* Heat or its cause on record: a fan or cooling failure, a thermal
 * slowdown, a GPU at 85 C or more. */
static bool hot_told(const tline *l)
{
    static const char *const w[] = {"thermal", "overheat", "over-temp", "fan fail",
                                    "fan3",    "fan ",     "cooling",   "throttl"};
    static const char *const bad[] = {"fail",     "critical", "going low", "asserted",
                                      "slowdown", "throttl",  "degraded",  "fault"};
    if (facts_any(l, w, NOF(w)) && facts_any(l, bad, NOF(bad))) return true;
    for (size_t i = 0; i + 2 < l->len; i++)
        if (isdigit((unsigned char)l->s[i]) && (i == 0 || !isalnum((unsigned char)l->s[i - 1]))) {
            char *e;
            long v = strtol(l->s + i, &e, 10);
            if (v >= 85 && v < 130 && *e == ' ' && e[1] == 'C') return true;
            if (v >= 85 && v < 130 && *e == 'C' && !isalpha((unsigned char)e[1])) return true;
            i = (size_t)(e - l->s);
        }
    return false;
}

/* A row of a per-host listing: a host name in it (a word with a dash that
 * starts with a letter and ends with a digit: first, or after a rank's
 * number or keys), then its readings.  Its shape is the letters after the host, so
 * rows of one listing match; the value is the first number after it. */
static bool host_row(const tline *l, char *host, size_t hc, char *shape, size_t sc, double *v)
{
    size_t a = 0, b = 0;
    for (size_t i = 0; i < l->len && i < 80; i = b + 1) {
        while (i < l->len && !isalnum((unsigned char)l->s[i]))
            i++;
        b = i;
        while (b < l->len && (isalnum((unsigned char)l->s[b]) || strchr("-_.", l->s[b])))
            b++;
        if (b - i >= 3 && b - i < hc && isalpha((unsigned char)l->s[i]) &&
            memchr(l->s + i, '-', b - i) && isdigit((unsigned char)l->s[b - 1])) {
            a = i;
            break;
        }
        /* before the host: a rank's number, or a key of "key: value" pairs
         * (a table's row read with its header) */
        bool key = b < l->len && (l->s[b] == ':' || l->s[b] == '=');
        if (b - i > 16 || (b > i && isalpha((unsigned char)l->s[i]) && !key)) return false;
    }
    if (b <= a || b - a < 3) return false;
    memcpy(host, l->s + a, b - a);
    host[b - a] = 0;
    /* the first number after it that is no rank's id ("ranks[16..23]",
     * "rank 24") */
    size_t j = b;
    while (j < l->len && !isdigit((unsigned char)l->s[j])) {
        if (l->s[j] == '[') {
            const char *e = memchr(l->s + j, ']', l->len - j);
            j = e ? (size_t)(e - l->s) : l->len;
        } else if (strncasecmp(l->s + j, "rank", 4) == 0) {
            j += 4;
            while (j < l->len && (isalpha((unsigned char)l->s[j]) || strchr(" :=#", l->s[j])))
                j++;
            while (j < l->len && (isdigit((unsigned char)l->s[j]) || strchr(".-,", l->s[j])))
                j++;
            continue;
        }
        j++;
    }
    if (j >= l->len) return false;
    *v = strtod(l->s + j, NULL);
    size_t o = 0;
    for (size_t k = b; k < l->len && o + 1 < sc; k++)
        if (isalpha((unsigned char)l->s[k])) shape[o++] = (char)tolower((unsigned char)l->s[k]);
    shape[o] = 0;
    return true;
}

bool facts_line_host(const tline *l, char *host, size_t cap)
{
    char shape[8];
    double v;
    return host_row(l, host, cap, shape, sizeof shape, &v);
}

/* This node's row of a per-host listing against its peers' median: the
 * ratio, NAN without such a listing; *li its line. */
static double node_vs_peers(const run *r, int *li)
{
    if (!r->node || !*r->node) return NAN;
    for (int i = 0; i < r->nlines; i++) {
        char h[64], sh[64], ph[64], psh[64];
        double v, pv, peers[32];
        if (!host_row(&r->lines[i], h, sizeof h, sh, sizeof sh, &v) || !same_host(h, r->node))
            continue;
        int n = 0;
        for (int j = i - 32 < 0 ? 0 : i - 32; j < r->nlines && j <= i + 32 && n < 32; j++)
            if (j != i && r->lines[j].src == r->lines[i].src &&
                host_row(&r->lines[j], ph, sizeof ph, psh, sizeof psh, &pv) &&
                !same_host(ph, r->node) && strcmp(sh, psh) == 0)
                peers[n++] = pv;
        if (n < 2) continue;
        qsort(peers, (size_t)n, sizeof *peers, diag_cmp_double);
        double med = n % 2 ? peers[n / 2] : (peers[n / 2 - 1] + peers[n / 2]) / 2;
        if (med <= 0) continue;
        *li = i;
        return v / med;
    }
    return NAN;
}

static bool node_off_peers(const run *r)
{
    int li;
    double q = node_vs_peers(r, &li);
    return !isnan(q) && (q <= 0.75 || q >= 1.25);
}

/* What the listing measures, from its row and the lines above it: 1 a
 * time (step, iteration, latency: higher is slower), -1 a rate
 * (throughput, tokens/s, TFLOPS: lower is slower), 0 neither. */
static int perf_sense(const run *r, int li)
{
    static const char *const t[] = {"step_time",      "step time", "steptime",  "iter_time",
                                    "iteration time", "sec/step",  "s/step",    "ms/step",
                                    "latency",        "step (s)",  "step (ms)", "time/step"};
    static const char *const rt[] = {"tokens/s", "tok/s", "samples/s", "tflops", "throughput",
                                     "it/s",     "mfu",   "gb/s",      "busbw"};
    for (int j = li; j >= 0 && j >= li - 12; j--) {
        const tline *l = &r->lines[j];
        if (l->src != r->lines[li].src) break;
        if (facts_any(l, t, NOF(t))) return 1;
        if (facts_any(l, rt, NOF(rt))) return -1;
    }
    return 0;
}

/* A per-rank or per-host table of step times (or throughput) in which
 * this node is 30% or more slower than its peers' median: the node the
 * job waits for.  Only the node being diagnosed: a table naming another
 * host slow does not move this node. */
static void straggler_table(run *r, int strag)
{
    int li;
    double q = node_vs_peers(r, &li);
    if (isnan(q)) return;
    int sense = perf_sense(r, li);
    if (!((sense > 0 && q >= 1.3) || (sense < 0 && q <= 1 / 1.3))) return;
    add_hit(r, strag, DK_CORR, ST_STRONG, "facts-straggler-table",
            line_evidence(r, li,
                          "[this node 30% or more slower than its peers' median in a "
                          "per-host listing of step time or throughput: a straggler] "));
}

/* A row of a per-GPU listing ("5    461", "GPU 5: 461", "| 5 | 461 |"):
 * the GPU's index and its first value after it. */
static bool gpu_row(const tline *l, int *gpu, double *v)
{
    size_t i = 0;
    while (i < l->len && (isspace((unsigned char)l->s[i]) || l->s[i] == '|'))
        i++;
    if (i + 3 < l->len && strncasecmp(l->s + i, "gpu", 3) == 0) {
        i += 3;
        while (i < l->len && (l->s[i] == ' ' || l->s[i] == '#'))
            i++;
    }
    if (i >= l->len || !isdigit((unsigned char)l->s[i])) return false;
    char *e;
    long g = strtol(l->s + i, &e, 10);
    size_t j = (size_t)(e - l->s);
    if (g > 15 || j >= l->len || !strchr(" \t:|,", l->s[j])) return false;
    while (j < l->len && strchr(" \t:|,", l->s[j]))
        j++;
    if (j >= l->len || !isdigit((unsigned char)l->s[j])) return false;
    *gpu = (int)g;
    *v = strtod(l->s + j, NULL);
    return true;
}

/* Each per-GPU listing of a measure (TFLOPS, bandwidth, step time) in
 * which one GPU is 25% or more worse than the median of the others; the
 * number of such listings, and in *li the last one's row. */
static int gpu_below_listings(const run *r, int *li)
{
    int found = 0;
    for (int i = 0; i < r->nlines;) {
        double v[16];
        int g, n = 0, j = i;
        for (; j < r->nlines && n < 16 && r->lines[j].src == r->lines[i].src &&
               gpu_row(&r->lines[j], &g, &v[n]);
             j++)
            n++;
        if (n < 4) {
            i = j > i ? j : i + 1;
            continue;
        }
        int sense = perf_sense(r, i);
        double sorted[16];
        memcpy(sorted, v, sizeof(double) * (size_t)n);
        qsort(sorted, (size_t)n, sizeof *sorted, diag_cmp_double);
        double med = sorted[n / 2];
        int worse = 0, at = -1;
        for (int k = 0; k < n; k++)
            if (med > 0 &&
                ((sense < 0 && v[k] <= 0.75 * med) || (sense > 0 && v[k] >= 1.33 * med))) {
                worse++;
                at = i + k;
            }
        if (sense && worse == 1) {
            found++;
            *li = at;
        }
        i = j;
    }
    return found;
}

/* One GPU measured well below the node's other GPUs, with no fault class
 * to explain it: the node's anomaly (inconclusive), never healthy. */
static void gpu_below_peers(run *r)
{
    int li = -1;
    if (!gpu_below_listings(r, &li) || anomaly_seen(r, "facts-gpu-below-peers")) return;
    add_anomaly(r, ST_STRONG, 1, "facts-gpu-below-peers",
                line_evidence(r, li,
                              "[one GPU 25% or more worse than the node's other GPUs in a "
                              "per-GPU measure: unexplained] "));
}

void straggler_heat_rule(run *r)
{
    int strag = diag_class_index(r->db, "straggler_node");
    int therm = diag_class_index(r->db, "gpu_thermal");
    gpu_below_peers(r);
    if (strag < 0 || therm < 0 || facts_class_hit(r, strag)) return;
    straggler_table(r, strag);
    if (facts_class_hit(r, strag)) return;
    bool waits = false, hot = false, hot_here = false;
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        waits |= job_waits(l);
        bool h = hot_told(l);
        hot |= h;
        /* the heat told of this node by name, among a job's many */
        hot_here |= h && r->node && *r->node && facts_has_ci(l, r->node);
    }
    bool therm_hit = false;
    for (int i = 0; i < r->nhits; i++)
        therm_hit |= r->hits[i].cls == therm && !r->hits[i].old;
    bool peers = node_off_peers(r);
    if (!waits || !(distributed(r) || peers) || !(hot || therm_hit) ||
        !(therm_hit || hot_here || peers))
        return;
    add_hit(r, strag, DK_CORR, ST_STRONG, "facts-straggler-hot-node",
            diag_fmt("%s", "a distributed job timed out or slowed while this node ran hot or "
                           "clocked below its peers: the job waits for it, a straggler"));
    facts_drop_class(r, therm);
}
