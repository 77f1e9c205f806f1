/* fm_diag_run: signals -> evidence hits -> per-class confidence ->
 * correlation rules -> ranked, capped, corroboration-checked result.
 *
 * Confidence: hits in one evidence group (a signature's group seen from
 * one source kind) count once, at their strongest; groups combine by
 * noisy-OR.  Weak-only classes are capped below `report`; destructive
 * classes without corroboration (a decisive hit, or two source kinds with
 * one strong) are capped below `act`. */
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

/* ---- small helpers ------------------------------------------------------ */

void *diag_grow(void *p, int *cap, int need, size_t elem, bool *oom)
{
    if (need <= *cap) return p;
    int nc = *cap ? *cap * 2 : 64;
    while (nc < need)
        nc *= 2;
    void *np = realloc(p, (size_t)nc * elem);
    if (!np) {
        *oom = true;
        return p;
    }
    *cap = nc;
    return np;
}

char *diag_own(run *r, char *s)
{
    if (!s) {
        r->oom = true;
        return NULL;
    }
    r->owned = diag_grow(r->owned, &r->capowned, r->nowned + 1, sizeof *r->owned, &r->oom);
    if (r->nowned >= r->capowned) {
        free(s);
        return NULL;
    }
    r->owned[r->nowned++] = s;
    return s;
}

char *diag_fmt(const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    char *s = NULL;
    if (vasprintf(&s, f, ap) < 0) s = NULL;
    va_end(ap);
    return s;
}

/* A Prometheus exposition line, as a scrape pasted into events or a job
 * log: NAME{label="value",...} VALUE [TIMESTAMP_MS].  A sample object
 * ({name, labels, value[, ts]}) or NULL when the line is not one.  Bare
 * "NAME VALUE" lines count only for DCGM's fields (other text has that
 * shape too). */
json_t *prom_sample(const char *s, size_t len)
{
    const char *p = s, *e = s + len;
    while (p < e && (*p == ' ' || *p == '\t'))
        p++;
    const char *nm = p;
    if (p == e || !(isalpha((unsigned char)*p) || *p == '_' || *p == ':')) return NULL;
    while (p < e && (isalnum((unsigned char)*p) || *p == '_' || *p == ':'))
        p++;
    size_t nl = (size_t)(p - nm);
    if (nl < 3 || nl > 200) return NULL;
    json_t *labels = json_object();
    if (!labels) return NULL;
    bool braces = p < e && *p == '{';
    if (braces) {
        p++;
        for (int nlab = 0;; nlab++) {
            while (p < e && (*p == ' ' || *p == ','))
                p++;
            if (p < e && *p == '}') {
                p++;
                break;
            }
            const char *k = p;
            while (p < e && (isalnum((unsigned char)*p) || *p == '_'))
                p++;
            size_t kl = (size_t)(p - k);
            while (p < e && *p == ' ')
                p++;
            if (!kl || kl > 100 || nlab >= 32 || p >= e || *p != '=') goto no;
            p++;
            while (p < e && *p == ' ')
                p++;
            if (p >= e || *p != '"') goto no;
            char val[256], key[104];
            size_t vl = 0;
            for (p++; p < e && *p != '"'; p++) {
                char c = *p;
                if (c == '\\' && p + 1 < e) {
                    c = *++p;
                    if (c == 'n') c = '\n';
                }
                if (vl < sizeof val - 1) val[vl++] = c;
            }
            if (p >= e) goto no;
            p++;
            val[vl] = 0;
            memcpy(key, k, kl);
            key[kl] = 0;
            json_object_set_new(labels, key, json_stringn(val, vl));
        }
    } else if (nl < 8 || strncmp(nm, "DCGM_FI_", 8) != 0) {
        goto no;
    }
    if (p >= e || (*p != ' ' && *p != '\t')) goto no;
    while (p < e && (*p == ' ' || *p == '\t'))
        p++;
    char num[64];
    size_t n = 0;
    while (p < e && *p != ' ' && *p != '\t' && n < sizeof num - 1)
        num[n++] = *p++;
    num[n] = 0;
    char *end;
    double v = strtod(num, &end);
    if (!n || *end || isnan(v) || isinf(v)) goto no;
    while (p < e && (*p == ' ' || *p == '\t'))
        p++;
    double ts = NAN;
    if (p < e) {
        n = 0;
        while (p < e && isdigit((unsigned char)*p) && n < sizeof num - 1)
            num[n++] = *p++;
        num[n] = 0;
        while (p < e && (*p == ' ' || *p == '\t'))
            p++;
        if (!n || p != e) goto no;
        ts = strtod(num, NULL) / 1000.0;
    }
    json_t *o = json_object();
    if (!o) goto no;
    json_object_set_new(o, "name", json_stringn(nm, nl));
    json_object_set_new(o, "labels", labels);
    json_object_set_new(o, "value", json_real(v));
    if (!isnan(ts)) json_object_set_new(o, "ts", json_real(ts));
    return o;
no:
    json_decref(labels);
    return NULL;
}

void add_line(run *r, int src, const char *s, size_t len, int entry)
{
    if ((src == DS_EVENTS || src == DS_JOB) && len < 2048 &&
        json_array_size(r->textm) < MAX_METRICS) {
        json_t *o = prom_sample(s, len);
        if (o) {
            /* a metric sample, judged as one (not as words) */
            if (!r->textm) r->textm = json_array();
            if (!r->textm || json_array_append_new(r->textm, o)) r->oom = true;
            return;
        }
    }
    r->lines = diag_grow(r->lines, &r->caplines, r->nlines + 1, sizeof *r->lines, &r->oom);
    if (r->nlines >= r->caplines) return;
    r->lines[r->nlines++] = (tline){src, s, len, entry};
    r->nsrc[src]++;
}

/* Evidence text: "<source>: <clipped line>" with control bytes blanked. */
char *diag_evidence(const char *prefix, const char *s, size_t len)
{
    size_t pl = strlen(prefix);
    size_t n = len > EVIDENCE_CLIP ? EVIDENCE_CLIP : len;
    char *out = malloc(pl + n + 8);
    if (!out) return NULL;
    memcpy(out, prefix, pl);
    size_t o = pl;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        out[o++] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
    }
    if (len > n) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}

void add_hit(run *r, int cls, int kind, int strength, const char *group, char *text)
{
    r->hits = diag_grow(r->hits, &r->caphits, r->nhits + 1, sizeof *r->hits, &r->oom);
    if (r->nhits >= r->caphits || cls < 0) {
        free(text);
        return;
    }
    hit *h = &r->hits[r->nhits++];
    /* A drain reason is what an operator wrote when the node was drained,
     * often long ago; it is never refreshed when the GPU is repaired.  When
     * sources collected now were given, they decide a destructive class: the
     * reason alone is history, one weak report however many words match. */
    bool stale = r->cur_reason && r->db->classes[cls].destructive;
    if (stale) {
        char *t = diag_fmt("[drain reason only, not seen in the sources collected now: history] %s",
                           text ? text : "");
        free(text);
        text = t;
        strength = ST_WEAK;
        group = "drain-reason-history";
    }
    h->cls = cls;
    h->kind = kind;
    h->strength = strength;
    h->p = r->db->pstrength[strength];
    snprintf(h->group, sizeof h->group, "%s/%d", group, kind);
    h->text = text;
    h->old = r->cur_old || stale;
}

/* An anomaly: evidence of something wrong that no class explains (yet).
 * One per group, the strongest kept; text is taken over. */
void add_anomaly(run *r, int strength, int level, const char *group, char *text)
{
    for (int i = 0; i < r->nanoms; i++)
        if (strcmp(r->anoms[i].group, group) == 0) {
            if (strength > r->anoms[i].strength) {
                free(r->anoms[i].text);
                r->anoms[i].text = text;
                r->anoms[i].strength = strength;
            } else {
                free(text);
            }
            return;
        }
    r->anoms = diag_grow(r->anoms, &r->capanoms, r->nanoms + 1, sizeof *r->anoms, &r->oom);
    if (r->nanoms >= r->capanoms || !text) {
        free(text);
        return;
    }
    anomaly *a = &r->anoms[r->nanoms++];
    a->strength = strength;
    a->level = level;
    snprintf(a->group, sizeof a->group, "%s", group);
    a->text = text;
}

/* Resolution buckets by severity: what the driver or NVIDIA asks for. */
int action_rank(const char *a)
{
    if (strcmp(a, "RESTART_BM") == 0) return 3;
    if (strcmp(a, "RESET_GPU") == 0) return 2;
    if (strcmp(a, "IGNORE") == 0) return 0;
    return 1;
}

/* An Xid whose NVIDIA action is to restart the application (or nothing) is
 * that application's fault; stamped a day or more before the latest record
 * collected, its job is long over and the GPU has worked since: history.
 * (Hardware Xids keep their weight: their fault outlives the line.) */
bool app_xid_old(run *r, int line, const diag_xid *x)
{
    if (line < 0 || !x ||
        (strcmp(x->action, "RESTART_APP") != 0 && strcmp(x->action, "IGNORE") != 0))
        return false;
    int year = 1970 + (int)(time(NULL) / 31556952);
    if (!r->newest_read) {
        r->newest_read = true;
        r->newest = NAN;
        for (int i = 0; i < r->nlines; i++) {
            double t = line_stamp(r->lines[i].s, r->lines[i].len, year);
            if (!isnan(t) && (isnan(r->newest) || t > r->newest)) r->newest = t;
        }
    }
    /* a search for Xid lines over a recent window that found none: any
     * such line shown is older than that window */
    if (r->lines[line].src != DS_KERNEL && xid_count_zero(r)) return true;
    double t = line_stamp(r->lines[line].s, r->lines[line].len, year);
    return !isnan(t) && !isnan(r->newest) && t < r->newest - 86400;
}

/* An Xid code seen in a line or a metric: evidence for its class, an
 * anomaly when the catalog gives it none (or does not know it), nothing
 * when it is informational. */
void xid_seen(run *r, int code, int kind, int cap, const char *group, int line,
              char *(*ev)(run *, int, const char *, const void *), const void *evarg)
{
    const diag_xid *x = diag_xid_find(r->db, code);
    char extra[400];
    /* before a reboot the log records history: the driver reloaded since */
    const char *old = cap == ST_WEAK && before_boot(r, line) ? OLD_NOTE[r->oldl[line]] : "";
    if (!*old && app_xid_old(r, line, x)) {
        /* marked, so that the line's failure words are this history too */
        if (r->oldl) r->oldl[line] = OLD_APP_XID;
        old = OLD_NOTE[OLD_APP_XID];
        cap = ST_WEAK;
    }
    int astr = *old ? ST_WEAK : ST_STRONG;
    if (!x) {
        snprintf(extra, sizeof extra,
                 "%s[Xid %d is not in the Xid catalog: unknown or newer code, escalate] ", old,
                 code);
        add_anomaly(r, astr, 1, "xid-unknown", ev(r, line, extra, evarg));
        return;
    }
    if (x->cls < 0) {
        if (x->informational) return;
        snprintf(extra, sizeof extra,
                 "%s[Xid %d %s (%s); NVIDIA action %s, investigate %s; no fault class covers it] ",
                 old, x->code, x->mnemonic, x->name, x->action, x->invest);
        add_anomaly(r, astr, 1, "xid-unclassed", ev(r, line, extra, evarg));
        return;
    }
    snprintf(extra, sizeof extra, "%s[Xid %d %s%s; NVIDIA action %s, investigate %s] ", old,
             x->code, x->name,
             x->contained == 1   ? " (contained)"
             : x->contained == 0 ? " (uncontained)"
                                 : "",
             x->action, x->invest);
    if (x->cls < r->db->nclasses && r->xidcls) r->xidcls[x->cls] = 1;
    add_hit(r, x->cls, kind, x->strength < cap ? x->strength : cap, group,
            ev(r, line, extra, evarg));
}

/* ---- hostlists ---------------------------------------------------------- */

static int one_item(const char *item, size_t n, const char *host)
{
    const char *lb = memchr(item, '[', n);
    if (!lb) return strlen(host) == n && strncmp(item, host, n) == 0;
    const char *rb = memchr(lb, ']', n - (size_t)(lb - item));
    if (!rb) return 0;
    size_t pre = (size_t)(lb - item), suf = n - (size_t)(rb - item) - 1, hl = strlen(host);
    if (hl < pre + suf + 1 || strncmp(host, item, pre) != 0 ||
        strncmp(host + hl - suf, rb + 1, suf) != 0)
        return 0;
    const char *mid = host + pre;
    size_t ml = hl - pre - suf;
    for (size_t i = 0; i < ml; i++)
        if (mid[i] < '0' || mid[i] > '9') return 0;
    long v = strtol(mid, NULL, 10);
    const char *p = lb + 1;
    while (p < rb) {
        const char *c = memchr(p, ',', (size_t)(rb - p));
        const char *end = c ? c : rb;
        const char *dash = memchr(p, '-', (size_t)(end - p));
        size_t w = (size_t)((dash ? dash : end) - p);
        long lo = strtol(p, NULL, 10), hi = dash ? strtol(dash + 1, NULL, 10) : lo;
        bool padded = w > 1 && p[0] == '0';
        if (v >= lo && v <= hi && (!padded || ml == w)) return 1;
        p = end + 1;
    }
    return 0;
}

int fm_diag_hostlist_has(const char *hostlist, const char *host)
{
    if (!hostlist || !host || !*host) return 0;
    const char *p = hostlist;
    while (*p) {
        int depth = 0;
        const char *e = p;
        while (*e && (depth || *e != ',')) {
            if (*e == '[') depth++;
            if (*e == ']') depth--;
            e++;
        }
        if (one_item(p, (size_t)(e - p), host)) return 1;
        p = *e ? e + 1 : e;
    }
    return 0;
}

/* ---- scoring -------------------------------------------------------------- */

static void score(run *r, cstate *cs)
{
    const struct fm_diag_db *db = r->db;
    int *grp = malloc(((size_t)r->nhits + 1) * sizeof *grp); /* representative hit per group */
    double *gp = malloc(((size_t)r->nhits + 1) * sizeof *gp);
    if (!grp || !gp) {
        free(grp);
        free(gp);
        r->oom = true;
        return;
    }
    for (int c = 0; c < db->nclasses; c++) {
        cstate *s = &cs[c];
        memset(s, 0, sizeof *s);
        s->maxstr = -1;
        unsigned strong_kinds = 0;
        int ng = 0;
        for (int i = 0; i < r->nhits; i++) {
            const hit *h = &r->hits[i];
            if (h->cls != c) continue;
            s->any = true;
            s->kinds |= 1u << h->kind;
            if (h->strength >= ST_STRONG) strong_kinds |= 1u << h->kind;
            if (h->strength > s->maxstr) s->maxstr = h->strength;
            int g = 0;
            while (g < ng && strcmp(r->hits[grp[g]].group, h->group) != 0)
                g++;
            if (g == ng) {
                grp[ng] = i;
                gp[ng++] = h->p;
            } else if (h->p > gp[g]) {
                gp[g] = h->p;
            }
        }
        if (!s->any) continue;
        double prod = 1.0;
        for (int g = 0; g < ng; g++)
            prod *= 1.0 - gp[g];
        s->conf = 1.0 - prod;
        if (s->maxstr < ST_STRONG && s->conf > db->weak_cap) s->conf = db->weak_cap;
        int nk = __builtin_popcount(s->kinds);
        s->corroborated = s->maxstr == ST_DECISIVE || (nk >= 2 && strong_kinds != 0);
        if (db->classes[c].destructive && !s->corroborated && s->conf > db->uncorr_cap)
            s->conf = db->uncorr_cap;
    }
    free(grp);
    free(gp);
}

static void run_free(run *r)
{
    for (int i = 0; i < r->nowned; i++)
        free(r->owned[i]);
    for (int i = 0; i < r->nhits; i++)
        free(r->hits[i].text);
    for (int i = 0; i < r->nanoms; i++)
        free(r->anoms[i].text);
    free(r->anoms);
    free(r->xidcls);
    free(r->oldl);
    json_decref(r->absent);
    json_decref(r->textm);
    free(r->owned);
    free(r->hits);
    free(r->lines);
    free(r->raws);
    pcre2_match_data_free(r->md);
}

/* A new array of the samples whose name is no DCGM field; NULL: no memory. */
static json_t *without_dcgm(const json_t *metrics)
{
    json_t *out = json_array();
    size_t i;
    const json_t *m;
    json_array_foreach(metrics, i, m)
    {
        const char *name = json_string_value(json_object_get(m, "name"));
        if (name && strncmp(name, "DCGM_FI_", 8) == 0) continue;
        if (out && json_array_append(out, (json_t *)m)) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

/* DCGM's blank values (int32 0x7ffffff0.., fp64 2^47.., int64 0x7ffffffffffffff0..)
 * say a field has no reading -- not supported, or the GPU did not answer --
 * never a count or a temperature. */
static bool dcgm_blank(const json_t *m)
{
    const char *name = json_string_value(json_object_get(m, "name"));
    double v = json_number_value(json_object_get(m, "value"));
    if (!name || strncmp(name, "DCGM_FI_", 8) != 0) return false;
    return (v >= 2147483632.0 && v <= 2147483647.0) ||
           (v >= 140737488355328.0 && v <= 140737488355343.0) || v >= 9223372036854775000.0;
}

/* The samples without DCGM's blanks: NULL when there are none to drop (or
 * on allocation failure, *oom set). */
static json_t *without_blank(const json_t *metrics, bool *oom)
{
    size_t i, nb = 0;
    const json_t *m;
    json_array_foreach(metrics, i, m) nb += dcgm_blank(m);
    if (!nb) return NULL;
    json_t *out = json_array();
    json_array_foreach(metrics, i, m)
    {
        if (dcgm_blank(m)) continue;
        if (!out || json_array_append(out, (json_t *)m)) {
            json_decref(out);
            *oom = true;
            return NULL;
        }
    }
    return out;
}

json_t *fm_diag_run(const struct fm_diag_db *db, const json_t *signals, const json_t *taxonomy,
                    fm_err *err)
{
    if (!db) return fm_err_set(err, FM_ERR_INTERNAL, "diagnose catalog not loaded"), NULL;
    if (!json_is_object(signals))
        return fm_err_set(err, FM_ERR_INVALID, "signals must be an object"), NULL;
    run r;
    memset(&r, 0, sizeof r);
    r.db = db;
    r.md = pcre2_match_data_create(db->max_caps + 1, NULL);
    r.node = json_string_value(json_object_get(signals, "node"));
    const json_t *slurm = json_object_get(signals, "slurm");
    json_t *out = NULL, *prom = NULL;
    const json_t *metrics = NULL;
    cstate *cs = calloc((size_t)db->nclasses, sizeof *cs);
    int *absorbed = malloc((size_t)db->nclasses * sizeof *absorbed);
    r.xidcls = calloc((size_t)db->nclasses, 1);
    if (!r.md || !cs || !absorbed || !r.xidcls) goto nomem;
    for (int c = 0; c < db->nclasses; c++)
        absorbed[c] = -1;
    /* an empty kernel log collected for the window is a clean one */
    r.kernel_given = json_is_array(json_object_get(signals, "kernel_log"));
    if (take_text(&r, json_object_get(signals, "kernel_log"), DS_KERNEL, "kernel_log", err) ||
        take_text(&r, json_object_get(signals, "job_log"), DS_JOB, "job_log", err) ||
        take_text(&r, json_object_get(signals, "events"), DS_EVENTS, "events", err) ||
        take_slurm(&r, slurm, err) || take_history(&r, json_object_get(signals, "history"), err))
        goto fail;
    scan_all(&r);
    drop_quoted(&r);
    prom = prom_metrics(signals);
    metrics = prom ? prom : json_object_get(signals, "metrics");
    if (r.injected) {
        /* DCGM's fields were injected: the samples read the test, not the
         * GPU, whether given as metrics or pasted as text */
        json_t *kept = json_is_array(metrics) ? without_dcgm(metrics) : NULL;
        json_t *kt = r.textm ? without_dcgm(r.textm) : NULL;
        if ((json_is_array(metrics) && !kept) || (r.textm && !kt)) {
            json_decref(kept);
            json_decref(kt);
            goto nomem;
        }
        if (kept) {
            json_decref(prom);
            prom = kept;
            metrics = kept;
        }
        if (kt) {
            json_decref(r.textm);
            r.textm = kt;
        }
    }
    if (json_is_array(metrics)) {
        json_t *kept = without_blank(metrics, &r.oom);
        if (r.oom) goto nomem;
        if (kept) {
            json_decref(prom);
            prom = kept;
            metrics = kept;
        }
    }
    if (r.textm) {
        json_t *kt = without_blank(r.textm, &r.oom);
        if (r.oom) goto nomem;
        if (kt) {
            json_decref(r.textm);
            r.textm = kt;
        }
    }
    {
        /* counted early: whether metrics were collected decides how much a
         * drain reason weighs in text_hits */
        const json_t *mv = metrics;
        if (json_is_array(mv) && json_array_size(mv) <= MAX_METRICS)
            r.nsrc[DS_METRICS] = (int)json_array_size(mv);
        r.nsrc[DS_METRICS] += (int)json_array_size(r.textm);
    }
    gauge_xids(&r, metrics);
    metrics_clean_now(&r, metrics);
    text_hits(&r);
    if (metric_hits(&r, metrics, err)) goto fail;
    warm_straggler(&r);
    job_facts_rule(&r, metrics);
    counter_rising_rule(&r);
    downed_series_rule(&r, metrics);
    mem_clock_rule(&r, metrics);
    batch_sweep_rule(&r);
    fleet_metric_rule(&r, metrics);
    if (r.oom) goto nomem;

    /* correlation rules see the evidence so far */
    score(&r, cs);
    for (int i = 0; i < db->nrules; i++) {
        const diag_rule *ru = &db->rules[i];
        switch (ru->type) {
        case RT_MULTI_JOB:
            rule_multi_job(&r, cs, ru, json_object_get(slurm, "jobs"));
            break;
        case RT_FOLLOWS_JOB:
        case RT_FOLLOWS_NODE:
        case RT_SAME_STEP_DIFF:
            rule_history(&r, cs, ru);
            break;
        case RT_CAPTURE_DISAGREE:
        case RT_DISTINCT_VALUES:
            rule_captures(&r, ru);
            break;
        case RT_OUTLIER:
            rule_outlier(&r, ru);
            break;
        case RT_BELOW_REFERENCE:
            rule_below_reference(&r, ru);
            break;
        case RT_CONFIG_CHOSEN:
            rule_config_chosen(&r, ru);
            break;
        case RT_UNOWNED:
            rule_unowned(&r, ru);
            break;
        case RT_SLOWDOWN_AFTER:
            rule_slowdown_after(&r, ru);
            break;
        default:
            break;
        }
    }
    /* after the rules above: a cap they read against its default may be policy */
    power_policy_rule(&r);
    power_slowdown_rule(&r);
    refuted_claim_rule(&r);
    extra_work_rule(&r);
    if (r.oom) goto nomem;
    score(&r, cs);

    /* one class explains another: conditions read the scores before demotion */
    double *pre = malloc((size_t)db->nclasses * sizeof *pre);
    if (!pre) goto nomem;
    for (int c = 0; c < db->nclasses; c++)
        pre[c] = cs[c].conf;
    for (int i = 0; i < db->nrules; i++) {
        const diag_rule *ru = &db->rules[i];
        if (ru->type != RT_EXPLAINS && ru->type != RT_ABSORB) continue;
        if (ru->if_anomaly[0] || ru->and_seen[0]) {
            if ((ru->if_anomaly[0] && !anomaly_seen(&r, ru->if_anomaly)) ||
                (ru->and_seen[0] && !group_marked(&r, ru->and_seen)))
                continue;
        } else if (pre[ru->cls] < ru->min) {
            continue;
        }
        for (int t = 0; t < ru->ntargets; t++) {
            int c = ru->targets[t];
            if (c == ru->cls || !cs[c].any) continue;
            if (ru->type == RT_ABSORB) {
                cstate *into = &cs[ru->cls];
                into->conf = 1.0 - (1.0 - into->conf) * (1.0 - pre[c]);
                into->kinds |= cs[c].kinds;
                into->corroborated |= __builtin_popcount(into->kinds) >= 2;
                absorbed[c] = ru->cls;
            }
            cs[c].conf *= ru->factor;
            /* ruled out by a state rather than explained by a class: what
             * made it likely is still unexplained, a human's to look at */
            if (ru->cls < 0 && pre[c] >= db->report)
                add_anomaly(&r, ST_STRONG, strcmp(db->classes[c].scope, "node") == 0, ru->id,
                            diag_fmt("evidence for %s (%.2f) that %s%s%s rules out: escalate to a "
                                     "human",
                                     db->classes[c].id, pre[c], ru->and_seen,
                                     ru->and_seen[0] && ru->if_anomaly[0] ? " with " : "",
                                     ru->if_anomaly));
        }
    }
    free(pre);
    apply_recovery(&r, cs);
    if (r.oom) goto nomem;

    /* rank */
    int order[256], n = 0;
    for (int c = 0; c < db->nclasses && n < 256; c++)
        if (cs[c].any && cs[c].conf >= 0.05 && strcmp(db->classes[c].id, "healthy") != 0)
            order[n++] = c;
    /* a class told only by history (before the node's current boot) ranks
     * after any told by what is fresh: it names no fault of now */
    bool fresh[256];
    for (int i = 0; i < n; i++) {
        fresh[i] = fresh_groups(&r, order[i]) > 0;
        /* a state read clean since, with nothing of it after that reading:
         * however many sources told its past, it names no fault of now */
        if (!fresh[i] && order[i] < 256 && r.cleared[order[i]] && cs[order[i]].conf > 0.25)
            cs[order[i]].conf = 0.25;
        /* so with a repair on record: every source that told it (the log
         * before the reboot, the ticket of the swap) told what was fixed */
        if (!fresh[i] && r.repaired && cs[order[i]].conf > 0.25) cs[order[i]].conf = 0.25;
    }
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0; j--) {
            const cstate *a = &cs[order[j]], *b = &cs[order[j - 1]];
            bool fa = fresh[j], fb = fresh[j - 1];
            bool before =
                (fa && !fb) ||
                (fa == fb && (a->conf > b->conf + 1e-9 ||
                              (fabs(a->conf - b->conf) <= 1e-9 && a->maxstr > b->maxstr)));
            if (!before) break;
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
            fresh[j] = fb;
            fresh[j - 1] = fa;
        }
    /* Several weak hints for one class are not noise: when independent
     * sources agree on a non-destructive class it is named (at `report`);
     * otherwise they are an anomaly, so the answer is inconclusive rather
     * than healthy (weak hints never act). */
    if (n && cs[order[0]].conf < db->report) {
        int c = order[0];
        unsigned k = cs[c].kinds & ~(1u << DK_CORR);
        bool two_groups = fresh_groups(&r, c) >= 2;
        if (two_groups) {
            if (!db->classes[c].destructive && __builtin_popcount(k) >= 2) {
                cs[c].conf = db->report;
            } else {
                char *t = diag_fmt("weak evidence for %s from %d signatures and %d source kind(s), "
                                   "not enough to name it",
                                   db->classes[c].id, fresh_groups(&r, c), __builtin_popcount(k));
                add_anomaly(&r, ST_STRONG, strcmp(db->classes[c].scope, "node") == 0, "weak-agree",
                            t);
            }
        }
    }
    double best = n ? cs[order[0]].conf : 0.0;
    out = json_object();
    json_t *classes = json_array();
    json_t *top;
    int ic = diag_class_index(db, "inconclusive");
    char names[120];
    /* Any anomaly no class explains, even a weak one, must not read as
     * healthy: known-benign noise is kept out of the anomaly signatures
     * (their exclude/unless), so what is left is unexplained. */
    bool unexplained = r.nanoms > 0;
    if (best >= db->report) {
        top = class_entry(&r, order[0], &cs[order[0]], taxonomy, absorbed);
    } else if (ic >= 0 && (unexplained || kinds_present(&r, names, sizeof names) == 0)) {
        top = inconclusive_entry(&r, best, taxonomy, ic);
        json_array_append(classes, top);
    } else {
        top = healthy_entry(&r, best, taxonomy);
        json_array_append(classes, top);
    }
    for (int i = 0; i < n && json_array_size(classes) < 5; i++)
        json_array_append_new(classes,
                              class_entry(&r, order[i], &cs[order[i]], taxonomy, absorbed));
    json_object_set_new(out, "act", json_boolean(json_is_true(json_object_get(top, "act"))));
    json_object_set_new(out, "top", top);
    json_object_set_new(out, "classes", classes);
    json_t *seen = json_object();
    json_object_set_new(seen, "kernel_log", json_integer(r.nsrc[DS_KERNEL]));
    json_object_set_new(seen, "job_log", json_integer(r.nsrc[DS_JOB]));
    json_object_set_new(seen, "events", json_integer(r.nsrc[DS_EVENTS]));
    json_object_set_new(seen, "metrics", json_integer(r.nsrc[DS_METRICS]));
    json_object_set_new(seen, "slurm_jobs", json_integer(r.nsrc[DS_JOBS]));
    json_object_set_new(seen, "history", json_integer(r.nsrc[DS_HISTORY]));
    json_object_set_new(seen, "matches", json_integer(r.nhits));
    json_object_set_new(out, "signals_seen", seen);
    if (r.node) json_object_set_new(out, "node", json_string(r.node));
    if (r.absent) json_object_set_new(out, "metrics_absent", json_incref(r.absent));
    goto done;
nomem:
    fm_err_set(err, FM_ERR_NOMEM, "out of memory while diagnosing; send fewer lines");
fail:
    json_decref(out);
    out = NULL;
done:
    free(cs);
    free(absorbed);
    json_decref(prom);
    run_free(&r);
    return out;
}
