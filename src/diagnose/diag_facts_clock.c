/* A GPU's memory clock far below its own maximum, or below the node's
 * other GPUs, with no clock event reason to explain it (no thermal, power
 * or sync boost slowdown): no fault class names that, so it is an anomaly
 * for a human (inconclusive, the node's), never healthy.  Read from rows
 * of nvidia-smi's query output or any "key: value" layout, and from
 * DCGM's memory clock field. */
#include "diag_int.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_GPUS 64
#define LOW_FACTOR 0.8 /* below 80% of its maximum or of its peers' median */

typedef struct gclock {
    char gpu[32];
    double cur, max; /* MHz; max 0 when not given */
    int reason;      /* 1 a clock event reason active, 0 none, -1 not told */
    int line;        /* -1 from metrics */
} gclock;

static bool has(const char *key, const char *w)
{
    return strstr(key, w) != NULL;
}

/* A memory clock's key: "clocks.mem", "memory clock", "mem_clock",
 * "clocks.current.memory"; max tells its maximum ("clocks.max.mem"). */
static bool mem_clock_key(const char *key, bool *max)
{
    bool mem = has(key, "mem"), clk = has(key, "clock") || has(key, "clk");
    *max = has(key, "max");
    return mem && clk && !has(key, "util") && !has(key, "reason");
}

/* A clock event reason's value: a bit mask, 0 none; words. */
static int reason_value(const char *v, size_t n)
{
    char buf[40];
    size_t k = n < sizeof buf - 1 ? n : sizeof buf - 1;
    memcpy(buf, v, k);
    buf[k] = 0;
    char *end;
    unsigned long long m = strtoull(buf, &end, 0);
    if (end != buf) return m != 0;
    return !(strstr(buf, "None") || strstr(buf, "none") || strstr(buf, "Not Active") ||
             strstr(buf, "Idle") || strstr(buf, "N/A"));
}

/* One row of a table (or one line of pairs): its GPU's memory clock. */
static bool row_clock(const tline *l, int li, gclock *g)
{
    facts_pair p[24];
    int np = facts_pairs(l, p, 24);
    memset(g, 0, sizeof *g);
    g->reason = -1;
    g->line = li;
    bool any = false;
    for (int i = 0; i < np; i++) {
        const char *v = l->s + p[i].val;
        bool max;
        if (mem_clock_key(p[i].key, &max)) {
            double x = strtod(v, NULL);
            if (x <= 0) continue;
            if (max)
                g->max = x;
            else
                g->cur = x, any = true;
        } else if (has(p[i].key, "reason") || has(p[i].key, "throttle")) {
            g->reason = reason_value(v, p[i].vlen);
        } else if (!strcmp(p[i].key, "index") || !strcmp(p[i].key, "gpu") ||
                   has(p[i].key, "pci.bus") || !strcmp(p[i].key, "uuid")) {
            snprintf(g->gpu, sizeof g->gpu, "%.*s", (int)(p[i].vlen < 31 ? p[i].vlen : 31), v);
        }
    }
    return any;
}

/* nvidia-smi -q's sections: "Clocks" / "Max Clocks" each with a bare
 * "Memory : 1593 MHz", "Clocks Event Reasons" (or Throttle) with "... :
 * Active" lines, under a "GPU 00000000:1B:00.0" header. */
typedef struct smiq {
    int sect; /* 0 other, 1 clocks, 2 max clocks, 3 reasons */
    int cur;  /* the GPU being read, -1 none */
} smiq;

static int find_gpu(gclock *g, int *n, int cap, const char *id, size_t idn)
{
    for (int k = 0; k < *n; k++)
        if (strlen(g[k].gpu) == idn && strncmp(g[k].gpu, id, idn) == 0) return k;
    if (*n == cap) return -1;
    memset(&g[*n], 0, sizeof g[*n]);
    snprintf(g[*n].gpu, sizeof g[*n].gpu, "%.*s", (int)(idn < 31 ? idn : 31), id);
    g[*n].reason = -1;
    g[*n].line = -1;
    return (*n)++;
}

static void smiq_line(const tline *l, int li, smiq *st, gclock *g, int *n, int cap)
{
    size_t a = 0;
    while (a < l->len && (l->s[a] == ' ' || l->s[a] == '\t'))
        a++;
    const char *s = l->s + a;
    size_t len = l->len - a;
    const char *colon = memchr(s, ':', len);
    if (len > 4 && strncmp(s, "GPU ", 4) == 0 && colon && len < 24) {
        st->cur = find_gpu(g, n, cap, s + 4, len - 4);
        st->sect = 0;
        return;
    }
    size_t after = colon ? len - (size_t)(colon - s) - 1 : 0;
    bool blank = true;
    for (size_t k = 0; colon && k < after; k++)
        blank &= colon[1 + k] == ' ' || colon[1 + k] == '\t';
    if (!colon || blank) {
        /* a section header: a name alone */
        tline t = {.s = s, .len = len};
        st->sect = facts_has_ci(&t, "reason") || facts_has_ci(&t, "throttle") ? 3
                   : facts_has_ci(&t, "max clocks")                           ? 2
                   : len >= 6 && strncasecmp(s, "Clocks", 6) == 0 && len < 10 ? 1
                                                                              : 0;
        return;
    }
    /* one GPU's output (nvidia-smi -q -i 6) has no GPU header: one GPU */
    if (st->cur < 0 && st->sect) st->cur = find_gpu(g, n, cap, "-", 1);
    if (st->cur < 0) return;
    gclock *c = &g[st->cur];
    const char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    if (st->sect == 3) {
        bool active = strncmp(v, "Active", 6) == 0;
        if (c->reason < 1) c->reason = active;
        return;
    }
    if ((st->sect == 1 || st->sect == 2) && len >= 6 && strncasecmp(s, "Memory", 6) == 0) {
        double x = strtod(v, NULL);
        if (x <= 0) return;
        if (st->sect == 1) {
            c->cur = x;
            c->line = li;
        } else {
            c->max = x;
        }
    }
}

static int text_clocks(const run *r, gclock *g, int cap)
{
    int n = 0;
    for (int i = 0; i < r->nlines && n < cap; i++) {
        const tline *l = &r->lines[i];
        /* a reading before a reset still counts: a clock that a reset did
         * not restore is this anomaly; one before a reboot or of another
         * host does not */
        int old = r->oldl ? r->oldl[i] : 0;
        if ((l->src != DS_EVENTS && l->src != DS_JOB) || old == 1 || old == 2) continue;
        if (!row_clock(l, i, &g[n])) continue;
        /* a GPU read again (after a reset): its latest reading */
        int k = 0;
        while (k < n && !(g[n].gpu[0] && strcmp(g[k].gpu, g[n].gpu) == 0))
            k++;
        if (k < n)
            g[k] = g[n];
        else
            n++;
    }
    return n;
}

static int smiq_clocks(const run *r, gclock *g, int cap)
{
    int n = 0;
    smiq st = {.sect = 0, .cur = -1};
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        int old = r->oldl ? r->oldl[i] : 0;
        if ((l->src != DS_EVENTS && l->src != DS_JOB) || old == 1 || old == 2) continue;
        smiq_line(l, i, &st, g, &n, cap);
    }
    int k = 0;
    for (int j = 0; j < n; j++)
        if (g[j].cur > 0) g[k++] = g[j];
    return k;
}

/* DCGM's memory clock per GPU (the latest sample), with its clock event
 * reasons when given. */
static int metric_clocks(run *r, const json_t *metrics, gclock *g, int cap)
{
    int n = 0;
    size_t i;
    const json_t *m;
    json_array_foreach(metrics, i, m)
    {
        const char *nm = json_string_value(json_object_get(m, "name"));
        if (!nm) continue;
        bool clk = strcmp(nm, "DCGM_FI_DEV_MEM_CLOCK") == 0;
        bool top = strcmp(nm, "DCGM_FI_DEV_MAX_MEM_CLOCK") == 0;
        bool why = strstr(nm, "CLOCKS_EVENT_REASONS") || strstr(nm, "CLOCK_THROTTLE_REASONS");
        if (!clk && !why && !top) continue;
        const json_t *labels = json_object_get(m, "labels");
        char hb[64], key[32];
        const char *h = host_of(labels, hb, sizeof hb);
        if (r->node && h && *h && !same_host(h, r->node)) continue;
        gpu_key(labels, key, sizeof key);
        int k = 0;
        while (k < n && strcmp(g[k].gpu, key) != 0)
            k++;
        if (k == n) {
            if (n == cap) continue;
            memset(&g[n], 0, sizeof g[n]);
            snprintf(g[n].gpu, sizeof g[n].gpu, "%s", key);
            g[n].reason = -1;
            g[n].line = -1;
            n++;
        }
        double v = json_number_value(json_object_get(m, "value"));
        if (clk)
            g[k].cur = v;
        else if (top)
            g[k].max = v;
        else
            g[k].reason = v != 0;
    }
    /* a reason without a clock is no reading */
    int k = 0;
    for (int j = 0; j < n; j++)
        if (g[j].cur > 0) g[k++] = g[j];
    return k;
}

/* The one GPU far below its maximum or its peers' median, none of the
 * others so; -1 when none or several (every GPU idle is a power state). */
static int low_one(const gclock *g, int n)
{
    int low = -1, nlow = 0;
    for (int i = 0; i < n; i++) {
        double others[MAX_GPUS];
        int no = 0;
        for (int j = 0; j < n; j++)
            if (j != i) others[no++] = g[j].cur;
        double med = NAN;
        if (no >= 1) {
            qsort(others, (size_t)no, sizeof *others, diag_cmp_double);
            med = others[no / 2];
        }
        bool below_max = g[i].max > 0 && g[i].cur < LOW_FACTOR * g[i].max;
        bool below_peers = !isnan(med) && g[i].cur < LOW_FACTOR * med;
        /* against its own maximum only when it has no peers: several GPUs
         * all low are idle (a power state), not one GPU's anomaly */
        if (below_peers || (no == 0 && below_max)) {
            low = i;
            nlow++;
        }
    }
    return nlow == 1 ? low : -1;
}

static void judge(run *r, const gclock *g, int n, const char *what)
{
    int i = low_one(g, n);
    if (i < 0 || g[i].reason == 1) return;
    char extra[200];
    snprintf(extra, sizeof extra,
             "[GPU %s memory clock %.0f MHz%s, no clock event reason: an anomaly no class "
             "explains, escalate to a human] ",
             g[i].gpu[0] ? g[i].gpu : "?", g[i].cur, g[i].max > 0 ? " of its maximum" : "");
    if (g[i].max > 0) {
        size_t o = strlen(extra);
        snprintf(extra + o, sizeof extra - o, "(max %.0f) ", g[i].max);
    }
    char *ev = g[i].line >= 0 ? line_evidence(r, g[i].line, extra)
                              : diag_fmt("metrics: %s%s", extra, what);
    add_anomaly(r, ST_STRONG, 1, "mem-clock-low", ev);
}

/* MHz readings of a line in order ("1593 MHz", "2619MHz"); how many. */
static int mhz_values(const tline *l, double *v, int cap)
{
    int n = 0;
    /* <= : a reading that ends the line counts too */
    for (size_t i = 0; i + 3 <= l->len && n < cap; i++) {
        if (strncasecmp(l->s + i, "MHz", 3) != 0) continue;
        size_t e = i;
        while (e > 0 && l->s[e - 1] == ' ')
            e--;
        size_t b = e;
        while (b > 0 && (isdigit((unsigned char)l->s[b - 1]) || l->s[b - 1] == '.'))
            b--;
        if (b < e) v[n++] = strtod(l->s + b, NULL);
    }
    return n;
}

/* Told in words: a line about a memory clock with a reading far below
 * another it names (its maximum, its spec, the other GPUs'): "GPU 6
 * memory clock stuck at 1593 MHz, max 2619 MHz, others at 2619 MHz". */
static void prose_clock(run *r)
{
    static const char *const about[] = {"memory clock", "mem clock", "memclk", "memory clk",
                                        "hbm clock"};
    static const char *const active[] = {"slowdown : active",  "slowdown: active",
                                         "power cap : active", "power cap: active",
                                         "brake : active",     "brake: active"};
    for (int i = 0; i < r->nlines; i++)
        if (facts_any(&r->lines[i], active, sizeof active / sizeof *active)) return;
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        if ((l->src != DS_EVENTS && l->src != DS_JOB) ||
            !facts_any(l, about, sizeof about / sizeof *about) || facts_has_ci(l, "idle"))
            continue;
        double v[8];
        int n = mhz_values(l, v, 8);
        /* in any order: "spec 2619 MHz, GPU 3 reads 1980 MHz" as well */
        double top = 0, low = INFINITY;
        for (int k = 0; k < n; k++) {
            if (v[k] > top) top = v[k];
            if (v[k] > 0 && v[k] < low) low = v[k];
        }
        if (n < 2 || low >= LOW_FACTOR * top) continue;
        add_anomaly(r, ST_STRONG, 1, "mem-clock-low",
                    line_evidence(r, i,
                                  "[a memory clock far below its maximum or its peers', "
                                  "no clock event reason: an anomaly no class explains, "
                                  "escalate to a human] "));
        return;
    }
}

void mem_clock_rule(run *r, const json_t *metrics)
{
    if (!anomaly_seen(r, "mem-clock-low")) prose_clock(r);
    gclock *g = malloc(MAX_GPUS * sizeof *g);
    if (!g) {
        r->oom = true;
        return;
    }
    int n = text_clocks(r, g, MAX_GPUS);
    if (n >= 1) judge(r, g, n, "");
    n = smiq_clocks(r, g, MAX_GPUS);
    if (n >= 1) judge(r, g, n, "");
    n = metric_clocks(r, metrics, g, MAX_GPUS);
    if (n >= 2) judge(r, g, n, "DCGM_FI_DEV_MEM_CLOCK");
    free(g);
}

/* ---- a power cap that is policy ------------------------------------------ */

static bool slower_told(const tline *l);

/* A GPU at its power cap yet within spec: a diagnostic or burn-in that
 * passed, performance the same as its peers, the cap said to be expected
 * or set on purpose. */
static bool within_spec_told(const tline *l)
{
    static const char *const pass[] = {"Pass", "PASS", "passed"};
    static const char *const test[] = {"diag", "burn", "stress", "dcgmi", "gpu-burn", "HPL"};
    static const char *const even[] = {"same as",  "on par",     "equal to",    "within 1",
                                       "within 2", "within 3",   "at baseline", "matches its peers",
                                       "expected", "on purpose", "intended",    "by design"};
    /* "below expected", "31% slower than expected" tell the opposite */
    return (facts_any(l, pass, NOF(pass)) && facts_any(l, test, NOF(test))) ||
           (facts_any(l, even, NOF(even)) && !slower_told(l));
}

/* The measure a key names with its expected twin's prefix or suffix cut
 * ("expected_tokens_per_s" -> "tokens_per_s"); NULL when it has none. */
static const char *twin_of(const char *key, size_t *n)
{
    static const char *const w[] = {"expected", "baseline", "usual", "reference", "nominal", "max"};
    size_t kl = strlen(key);
    for (size_t k = 0; k < NOF(w); k++) {
        size_t wl = strlen(w[k]);
        if (kl > wl + 1 && strncmp(key, w[k], wl) == 0 && strchr("_ ", key[wl])) {
            *n = kl - wl - 1;
            return key + wl + 1;
        }
        if (kl > wl + 1 && strcmp(key + kl - wl, w[k]) == 0 && strchr("_ ", key[kl - wl - 1])) {
            *n = kl - wl - 1;
            return key;
        }
    }
    return NULL;
}

/* A line giving a measure beside its own expected value (logfmt, JSON or
 * "key: value": "tokens_per_s=2810 expected_tokens_per_s=4100",
 * "step_ms=1620 baseline_step_ms=1100") with the measure 15% or more on
 * the worse side (a time higher, a rate lower). */
static bool below_expected(const tline *l)
{
    facts_pair p[24];
    int np = facts_pairs(l, p, 24);
    for (int i = 0; i < np; i++) {
        size_t n;
        const char *m = twin_of(p[i].key, &n);
        tline kk = {.s = p[i].key, .len = strlen(p[i].key)};
        /* a maximum is an expectation of a clock alone (a power draw
         * below its maximum is no slowdown) */
        if (!m || (strstr(p[i].key, "max") && !facts_has_ci(&kk, "clock") &&
                   !facts_has_ci(&kk, "mhz") && !facts_has_ci(&kk, "clk")))
            continue;
        double want = strtod(l->s + p[i].val, NULL);
        for (int j = 0; j < np && want > 0; j++) {
            if (j == i || strlen(p[j].key) != n || strncmp(p[j].key, m, n) != 0) continue;
            double got = strtod(l->s + p[j].val, NULL);
            tline k = {.s = p[j].key, .len = n};
            static const char *const t[] = {"time", "ms", "latency", "duration", "sec"};
            bool lower_better = facts_any(&k, t, NOF(t));
            if (got > 0 && (lower_better ? got >= 1.15 * want : got <= 0.85 * want)) return true;
        }
    }
    return false;
}

/* Performance told below what is expected of it, in words or numbers. */
static bool slower_told(const tline *l)
{
    static const char *const below[] = {
        "below baseline",  "under baseline", "than baseline", "% below",  "off baseline",
        "not at baseline", "below expected", "than expected", "% slower", "slower than"};
    return facts_any(l, below, NOF(below)) || below_expected(l);
}

/* A power cap or brake read as a reason (even the weak SW cap bit) with
 * performance told below its expected: the cap costs throughput, which
 * is the class's fault, in whatever layout the two are told. */
void power_slowdown_rule(run *r)
{
    int c = diag_class_index(r->db, "gpu_power");
    bool cap = false, slow = false;
    for (int i = 0; c >= 0 && i < r->nhits; i++)
        cap |= r->hits[i].cls == c && !r->hits[i].old;
    for (int i = 0; cap && i < r->nlines && !slow; i++)
        slow = r->lines[i].src != DS_KERNEL && slower_told(&r->lines[i]);
    if (!cap || !slow || facts_class_hit(r, c)) return;
    add_hit(r, c, DK_CORR, ST_STRONG, "facts-power-cap-slowdown",
            diag_fmt("%s", "a power cap or brake held the clocks while performance read below "
                           "its expected: the cap costs throughput"));
}

/* A power limit set by an approved change (a change ticket, a policy) while
 * the GPUs perform at baseline is no fault: the cap is what was asked for,
 * and a clock-event bitmask of 0x1 is the GPU idle, no slowdown.  So is a
 * cap told with the GPUs within spec (a diagnostic passing, performance
 * the same as peers, the cap expected).  gpu_power read from the cap alone
 * is dropped; a power brake, a PSU or a hardware slowdown keeps it (that is
 * no policy), and so does performance told below baseline. */
void power_policy_rule(run *r)
{
    static const char *const approved[] = {"approved", "change request", "per policy", "by policy",
                                           "policy:"};
    static const char *const limit[] = {"power limit", "power cap", "power-limit", "-pl "};
    static const char *const fault[] = {"power-brake", "psu-failure", "hw-slowdown"};
    static const char *const cap_only[] = {"power-capped-text"};
    int c = diag_class_index(r->db, "gpu_power");
    if (c < 0) return;
    bool policy = false, baseline = false, spec = false;
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        spec |= within_spec_told(l);
        if (l->src == DS_KERNEL) continue;
        policy |= facts_any(l, approved, sizeof approved / sizeof *approved) &&
                  facts_any(l, limit, sizeof limit / sizeof *limit);
        if (slower_told(l)) return;
        baseline |= facts_has_ci(l, "baseline");
    }
    bool in_spec = spec && facts_hits_only_from(r, c, cap_only, NOF(cap_only));
    if (!(policy && baseline) && !in_spec) return;
    for (int i = 0; i < r->nhits; i++) {
        if (r->hits[i].cls != c) continue;
        tline g = {.s = r->hits[i].group, .len = strlen(r->hits[i].group)};
        if (facts_any(&g, fault, sizeof fault / sizeof *fault)) return;
    }
    facts_drop_class(r, c);
}

/* ---- a claim of slowness that measurements refute ------------------------ */

/* Someone says a node is slow, and measurements on record put it with its
 * peers (within a few %, on par, at baseline): the claim is no evidence.
 * straggler_node told only by people's words (events, and the rules that
 * read them) is dropped; a measured outlier (a job log's times, metrics,
 * history) keeps it. */
void refuted_claim_rule(run *r)
{
    static const char *const even[] = {
        "within 1%",         "within 2%",      "within 3%",
        "within 1 %",        "on par",         "at baseline",
        "same as its peers", "like its peers", "in line with its peers"};
    int c = diag_class_index(r->db, "straggler_node");
    if (c < 0) return;
    bool refuted = false;
    for (int i = 0; i < r->nlines && !refuted; i++)
        refuted = r->lines[i].src != DS_KERNEL &&
                  facts_any(&r->lines[i], even, sizeof even / sizeof *even);
    if (!refuted) return;
    for (int i = 0; i < r->nhits; i++)
        if (r->hits[i].cls == c && (r->hits[i].kind == DK_JOB || r->hits[i].kind == DK_METRICS ||
                                    r->hits[i].kind == DK_HISTORY))
            return;
    facts_drop_class(r, c);
}
