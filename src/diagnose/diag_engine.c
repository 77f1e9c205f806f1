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

#define MAX_LINES 5000     /* per source */
#define MAX_LINE_LEN 32768 /* bytes per entry (the tool schema caps 8192 characters) */
#define MAX_METRICS 5000
#define MAX_JOBS 1000
#define MAX_HISTORY 100
#define MAX_EVIDENCE 5
#define EVIDENCE_CLIP 240
#define HAS_EVIDENCE 0.3 /* a class "has evidence" for correlation boosts */

static const int KIND_OF[DS_N] = {DK_KERNEL, DK_JOB,   DK_EVENTS,  DK_SLURM,
                                  DK_SLURM,  DK_SLURM, DK_HISTORY, DK_METRICS};
static const char *const KIND_NAME[DK_N] = {"kernel_log", "job_log", "events",     "metrics",
                                            "slurm",      "history", "correlation"};
/* What an anomaly from each source points at: the node (kernel, node
 * state and reason, metrics), the job (its log, its Slurm record, its
 * history), or neither alone (events mix node tools and pod events). */
static const int SRC_LEVEL[DS_N] = {1, 0, -1, 1, 1, 0, 0, 1};
static const char *const SRC_LABEL[DS_N] = {"kernel_log",   "job_log",          "events",
                                            "slurm.reason", "slurm.node_state", "slurm.jobs",
                                            "history",      "metrics"};

typedef struct tline {
    int src;
    const char *s;
    size_t len;
    int entry; /* index of the job / history entry it came from */
} tline;

typedef struct rawm {
    int sig;
    int line;
    int xid;
    char pid[32];
    char key[64];
    char val[64];
    char host[64];
} rawm;

typedef struct hit {
    int cls;
    int kind;
    int strength;
    double p;
    char group[80];
    char *text; /* owned evidence */
    bool old;   /* logged before the last reboot of its source */
} hit;

typedef struct anomaly {
    int strength;
    int level; /* what it points at: 2 the fleet, 1 the node, 0 the job, -1 neither alone */
    char group[80];
    char *text; /* owned */
} anomaly;

typedef struct run {
    const struct fm_diag_db *db;
    tline *lines;
    int nlines, caplines;
    char **owned; /* strings built for slurm.jobs / history / node_state */
    int nowned, capowned;
    rawm *raws;
    int nraws, capraws;
    hit *hits;
    int nhits, caphits;
    pcre2_match_data *md;
    const char *node;
    int nsrc[DS_N];
    bool oom;       /* allocation failure somewhere */
    anomaly *anoms; /* what no class explains */
    int nanoms, capanoms;
    const char *marks[32]; /* marker groups seen since the last reboot */
    int nmarks;
    const diag_xrec *rec; /* Xid 154: the driver's strongest recovery action */
    int rec_line;
    unsigned char *xidcls;      /* per class: evidence came from an Xid */
    json_t *absent;             /* metrics_expected missing from DCGM metrics given, or NULL */
    json_t *textm;              /* samples of Prometheus text pasted into events / a job log */
    json_t *idle;               /* host+GPU -> true: its latest utilisation reads (nearly) none */
    bool kernel_given;          /* a kernel log was collected, even if empty */
    bool injected;              /* a source says DCGM errors were injected on purpose */
    char gauge_xids[96];        /* "xid=62 xid=48": codes DCGM's last-Xid gauge holds on this
                                 * node with no Xid record of the window read to age them */
    unsigned char *oldl;        /* per line: logged before the node's current boot */
    bool cur_old;               /* hits being added come from before a reboot */
    bool repaired;              /* a repair (a reset, a part swapped) is on record */
    unsigned char cleared[256]; /* a class whose state a later reading shows clean */
    int clean[4], nclean;       /* classes a live metric reads clean on every GPU */
    double clean_at;            /* when (the latest sample's time, else now) */
    bool clean_fell;            /* the series itself went from set to 0 before it */
    bool cur_reason;            /* hits being added come from a drain reason while fresher
                                 * sources (kernel log, events, metrics) were collected */
    tline flat[16];             /* lines saying a counter did not move (taken out) */
    int nflat;
    double newest; /* the latest stamp of any line; NAN: none, or not yet read */
    bool newest_read;
} run;

typedef struct cstate {
    double conf;
    bool corroborated;
    unsigned kinds;
    int maxstr;
    bool any;
} cstate;

/* ---- small helpers ------------------------------------------------------ */

static void *grow(void *p, int *cap, int need, size_t elem, bool *oom)
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

static char *own(run *r, char *s)
{
    if (!s) {
        r->oom = true;
        return NULL;
    }
    r->owned = grow(r->owned, &r->capowned, r->nowned + 1, sizeof *r->owned, &r->oom);
    if (r->nowned >= r->capowned) {
        free(s);
        return NULL;
    }
    r->owned[r->nowned++] = s;
    return s;
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
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
static json_t *prom_sample(const char *s, size_t len)
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

static void add_line(run *r, int src, const char *s, size_t len, int entry)
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
    r->lines = grow(r->lines, &r->caplines, r->nlines + 1, sizeof *r->lines, &r->oom);
    if (r->nlines >= r->caplines) return;
    r->lines[r->nlines++] = (tline){src, s, len, entry};
    r->nsrc[src]++;
}

/* Evidence text: "<source>: <clipped line>" with control bytes blanked. */
static char *evidence(const char *prefix, const char *s, size_t len)
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

static void add_hit(run *r, int cls, int kind, int strength, const char *group, char *text)
{
    r->hits = grow(r->hits, &r->caphits, r->nhits + 1, sizeof *r->hits, &r->oom);
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
        char *t = fmt("[drain reason only, not seen in the sources collected now: history] %s",
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
static void add_anomaly(run *r, int strength, int level, const char *group, char *text)
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
    r->anoms = grow(r->anoms, &r->capanoms, r->nanoms + 1, sizeof *r->anoms, &r->oom);
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
static int action_rank(const char *a)
{
    if (strcmp(a, "RESTART_BM") == 0) return 3;
    if (strcmp(a, "RESET_GPU") == 0) return 2;
    if (strcmp(a, "IGNORE") == 0) return 0;
    return 1;
}

static bool before_boot(const run *r, int li);

/* Why a line is history: 1 before the node's current boot, 2 a record of
 * another host, 3 before a repair on record, 4 a job log's earlier run,
 * 5 an earlier attempt of the job. */
static const char *const OLD_NOTE[] = {NULL,
                                       "[before the last reboot: history] ",
                                       "[another host's record, not this node's: history] ",
                                       "[before a recorded repair: history] ",
                                       "[a day or more before the job's latest record: history] ",
                                       "[an earlier attempt of the job: history] ",
                                       "[an application's Xid a day or more before the latest "
                                       "record: history] ",
                                       "[before a later reading that shows it cleared: history] "};
#define OLD_APP_XID 6
#define OLD_CLEARED 7

static double line_stamp(const char *s, size_t len, int year);

/* An Xid whose NVIDIA action is to restart the application (or nothing) is
 * that application's fault; stamped a day or more before the latest record
 * collected, its job is long over and the GPU has worked since: history.
 * (Hardware Xids keep their weight: their fault outlives the line.) */
static bool app_xid_old(run *r, int line, const diag_xid *x)
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
    double t = line_stamp(r->lines[line].s, r->lines[line].len, year);
    return !isnan(t) && !isnan(r->newest) && t < r->newest - 86400;
}

/* An Xid code seen in a line or a metric: evidence for its class, an
 * anomaly when the catalog gives it none (or does not know it), nothing
 * when it is informational. */
static void xid_seen(run *r, int code, int kind, int cap, const char *group, int line,
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

/* ---- input -------------------------------------------------------------- */

static int need_array(const json_t *v, const char *name, size_t max, fm_err *err)
{
    if (!v) return 0;
    if (!json_is_array(v))
        return fm_err_set(err, FM_ERR_INVALID, "INVALID signals.%s must be an array", name), -1;
    if (json_array_size(v) > max)
        return fm_err_set(
                   err, FM_ERR_TOO_LARGE,
                   "signals.%s has %zu entries, at most %zu allowed; send the most recent ones",
                   name, json_array_size(v), max),
               -1;
    return 0;
}

/* Splits each string of arr into lines of source src. */
/* Tables whose columns are named only in a header line: CSV as
 * nvidia-smi --query-* prints it ("index, power.limit [W],
 * power.default_limit [W]") and pipe tables ("| rank | host | step time
 * (ms) |").  Their rows alone are bare numbers no signature can read; each
 * is added again with its columns named ("power.limit: 450.00 W"). */
#define TAB_MAX 24

typedef struct tabf {
    const char *s[TAB_MAX];
    size_t n[TAB_MAX];
    int k;
    char sep;
} tabf;

/* Splits on sep and trims blanks (a pipe table's outer bars dropped);
 * -1 when there are too many fields. */
static int tab_split(const char *s, size_t len, char sep, tabf *f)
{
    f->k = 0;
    f->sep = sep;
    while (len && isspace((unsigned char)s[len - 1]))
        len--;
    while (len && isspace((unsigned char)*s))
        s++, len--;
    if (sep == '|') {
        if (len && s[0] == '|') s++, len--;
        if (len && s[len - 1] == '|') len--;
    }
    size_t i = 0;
    while (i <= len) {
        if (f->k == TAB_MAX) return -1;
        size_t j = i;
        /* columns aligned with blanks: a run of them is one separator */
        while (j < len && (sep == ' ' ? !isspace((unsigned char)s[j]) : s[j] != sep))
            j++;
        size_t a = i, b = j;
        while (a < b && isspace((unsigned char)s[a]))
            a++;
        while (b > a && isspace((unsigned char)s[b - 1]))
            b--;
        f->s[f->k] = s + a;
        f->n[f->k++] = b - a;
        i = j + 1;
        if (sep == ' ')
            while (i < len && isspace((unsigned char)s[i]))
                i++;
    }
    return f->k;
}

/* A column name: a word, then words, dots, underscores, slashes, '%' and
 * a unit in brackets or parentheses.  Returns the length of the name
 * before its unit, 0 when the field is none; dotted tells a field name
 * ("power.limit", "step_ms") from a plain word. */
static size_t tab_name(const char *s, size_t n, bool *dotted)
{
    if (!n || !isalpha((unsigned char)s[0])) return 0;
    size_t i = 0, name = 0;
    for (; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '[' || c == '(') break;
        if (!isalnum(c) && !strchr(" ._/%-#", c)) return 0;
        *dotted |= c == '.' || c == '_';
        if (c != ' ') name = i + 1;
    }
    if (i < n && s[n - 1] != (s[i] == '[' ? ']' : ')')) return 0;
    return name;
}

/* A header: three or more fields (two aligned with blanks), every one a
 * name; CSV's and aligned ones must have a dotted one (plain words
 * separated by commas or blanks are prose). */
static bool tab_header(const tabf *h)
{
    if (h->k < (h->sep == ' ' ? 2 : 3)) return false;
    bool dotted = false;
    for (int i = 0; i < h->k; i++)
        if (!tab_name(h->s[i], h->n[i], &dotted)) return false;
    return dotted || h->sep == '|';
}

/* "name: value" for every column of a row under the header; a bare
 * number takes the header's unit ("power.limit: 450.00 W"). */
static char *tab_named(const tabf *h, const tabf *row)
{
    size_t cap = 64;
    for (int i = 0; i < h->k; i++)
        cap += h->n[i] + row->n[i] + 8;
    char *out = malloc(cap), *o = out;
    if (!out) return NULL;
    for (int i = 0; i < h->k; i++) {
        bool d = false;
        size_t nl = tab_name(h->s[i], h->n[i], &d);
        const char *unit = memchr(h->s[i], '[', h->n[i]);
        if (!unit) unit = memchr(h->s[i], '(', h->n[i]);
        bool bare = row->n[i] && strspn(row->s[i], "0123456789.-") == row->n[i];
        int un = unit && bare ? (int)(h->s[i] + h->n[i] - unit - 2) : 0;
        o += sprintf(o, "%s%.*s: %.*s%s%.*s", i ? ", " : "", (int)nl, h->s[i], (int)row->n[i],
                     row->s[i], un > 0 ? " " : "", un > 0 ? un : 0, un > 0 ? unit + 1 : "");
    }
    return out;
}

/* A field that marks a table row: a number, or a PCI bus id. */
static bool row_key(const char *s, size_t n)
{
    if (!n) return false;
    if (strspn(s, "0123456789.-") == n) return true;
    return strspn(s, "0123456789abcdefABCDEF:.") == n && memchr(s, ':', n);
}

/* One line of events or a job log: a header is kept (hdr), a row of as
 * many fields under it is added again with its columns named.  A line of
 * another shape ends the table; the command echoed above it (a "$"
 * prompt), a pipe table's rule ("|---|---|") and, inside a table with
 * bars or commas, any line that is not its row do not. */
static void add_table_line(run *r, int src, const char *s, size_t l, int entry, tabf *hdr)
{
    char sep = memchr(s, '|', l) ? '|' : memchr(s, ',', l) ? ',' : ' ';
    if (s[0] == '$') return;
    if (sep == '|' && strspn(s, "|-:+ ") == l) return;
    tabf f;
    if (tab_split(s, l, sep, &f) < 0) return;
    if (tab_header(&f)) {
        *hdr = f;
        return;
    }
    /* a row carries a number or a PCI bus id (a GPU's row with only yes/no
     * states beside it); a line of words is prose */
    bool num = false;
    for (int i = 0; i < f.k && !num; i++)
        num = row_key(f.s[i], f.n[i]);
    if (hdr->k && f.k == hdr->k && f.sep == hdr->sep && num) {
        char *named = own(r, tab_named(hdr, &f));
        if (named) add_line(r, src, named, strlen(named), entry);
    } else if (hdr->sep == ' ') {
        /* a table with bars or commas outlives interleaved log lines (its
         * rows are told by their shape); one aligned with blanks ends at
         * the first line that is not its row */
        hdr->k = 0;
    }
}

static void query_name(const char *s, size_t upto, char *out, size_t cap);

/* A query's answer printed as rows without a series name ("{hostname=
 * \"gpu-101\", gpu=\"0\"} 0.8", as promtool or a console prints an
 * aggregation): the rows are samples of the series the query line before
 * them names (metric:function), judged as metrics. */
static void add_query_row(run *r, int src, const char *s, size_t l, int entry, char *qname)
{
    size_t b = strspn(s, " \t");
    if (b < l && s[b] == '{' && qname[0] && l < 2048) {
        /* only a row of that shape; any other braces stay text as written */
        char *row = own(r, fmt("%s%.*s", qname, (int)(l - b), s + b));
        json_t *o = row ? prom_sample(row, strlen(row)) : NULL;
        if (o)
            add_line(r, src, row, strlen(row), entry);
        else
            add_line(r, src, s, l, entry);
        json_decref(o);
        return;
    }
    char q[128];
    query_name(s, l, q, sizeof q);
    if (q[0]) snprintf(qname, 128, "%s", q);
}

static int take_text(run *r, const json_t *arr, int src, const char *name, fm_err *err)
{
    tabf hdr = {.k = 0};
    char qname[128] = "";
    if (need_array(arr, name, MAX_LINES, err)) return -1;
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (!json_is_string(v))
            return fm_err_set(err, FM_ERR_INVALID, "signals.%s[%zu] must be a string", name, i), -1;
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        if (len > MAX_LINE_LEN)
            return fm_err_set(err, FM_ERR_TOO_LARGE,
                              "signals.%s[%zu] is %zu bytes, at most %d allowed; clip the line",
                              name, i, len, MAX_LINE_LEN),
                   -1;
        while (len) {
            const char *nl = memchr(s, '\n', len);
            size_t l = nl ? (size_t)(nl - s) : len;
            bool rows = l && (src == DS_EVENTS || src == DS_JOB);
            if (rows && s[strspn(s, " \t")] == '{' && qname[0])
                add_query_row(r, src, s, l, (int)i, qname);
            else if (l)
                add_line(r, src, s, l, (int)i);
            if (rows) {
                add_table_line(r, src, s, l, (int)i, &hdr);
                if (memchr(s, '(', l)) add_query_row(r, src, s, l, (int)i, qname);
            }
            if (!nl) break;
            len -= l + 1;
            s = nl + 1;
        }
    }
    return 0;
}

static const char *jstr(const json_t *o, const char *k, char *buf, size_t n)
{
    const json_t *v = json_object_get(o, k);
    if (json_is_string(v)) return json_string_value(v);
    if (json_is_integer(v)) {
        snprintf(buf, n, "%lld", (long long)json_integer_value(v));
        return buf;
    }
    if (json_is_real(v)) {
        snprintf(buf, n, "%g", json_real_value(v));
        return buf;
    }
    return "";
}

static int take_slurm(run *r, const json_t *sl, fm_err *err)
{
    if (!sl) return 0;
    if (!json_is_object(sl))
        return fm_err_set(err, FM_ERR_INVALID, "signals.slurm must be an object"), -1;
    const json_t *reason = json_object_get(sl, "reason");
    if (json_is_string(reason) && json_string_length(reason) <= MAX_LINE_LEN)
        add_line(r, DS_REASON, json_string_value(reason), json_string_length(reason), 0);
    const json_t *st = json_object_get(sl, "node_state");
    json_t *one = json_is_string(st) ? json_pack("[O]", st) : NULL; /* "IDLE+DRAIN" */
    if (one) st = one;
    if (need_array(st, "slurm.node_state", 32, err)) {
        json_decref(one);
        return -1;
    }
    size_t i;
    json_t *v;
    json_array_foreach(st, i, v)
    {
        if (!json_is_string(v) || json_string_length(v) > 256) continue;
        /* "DOWN+DRAIN" or "MIXED,DRAIN" count as separate words */
        char *dup = own(r, strdup(json_string_value(v)));
        for (char *save = NULL, *tok = dup ? strtok_r(dup, "+, ", &save) : NULL; tok;
             tok = strtok_r(NULL, "+, ", &save)) {
            /* sinfo prints states in lower case, scontrol in upper: one word */
            for (char *c = tok; *c; c++)
                *c = (char)toupper((unsigned char)*c);
            add_line(r, DS_STATE, tok, strlen(tok), 0);
        }
    }
    json_decref(one);
    const json_t *jobs = json_object_get(sl, "jobs");
    if (need_array(jobs, "slurm.jobs", MAX_JOBS, err)) return -1;
    json_array_foreach(jobs, i, v)
    {
        if (!json_is_object(v)) continue;
        char b1[32], b2[32], b3[32];
        char b4[32], b5[32], b6[32], b7[32];
        char *s =
            own(r, fmt("state=%.40s reason=%.80s exit=%.16s name=%.80s nodes=%.200s job=%.20s "
                       "partition=%.40s",
                       jstr(v, "state", b1, sizeof b1), jstr(v, "reason", b2, sizeof b2),
                       jstr(v, "exit_code", b3, sizeof b3), jstr(v, "name", b4, sizeof b4),
                       jstr(v, "nodes", b5, sizeof b5), jstr(v, "job_id", b6, sizeof b6),
                       jstr(v, "partition", b7, sizeof b7)));
        if (s) add_line(r, DS_JOBS, s, strlen(s), (int)i);
    }
    return 0;
}

static int take_history(run *r, const json_t *h, fm_err *err)
{
    if (need_array(h, "history", MAX_HISTORY, err)) return -1;
    size_t i;
    json_t *v;
    json_array_foreach(h, i, v)
    {
        if (!json_is_object(v)) continue;
        char b1[32], b2[32];
        const char *e = json_string_value(json_object_get(v, "error"));
        char *s = own(r, fmt("step=%s node=%.200s error=%.4000s", jstr(v, "step", b1, sizeof b1),
                             jstr(v, "node", b2, sizeof b2), e ? e : ""));
        if (s) add_line(r, DS_HISTORY, s, strlen(s), (int)i);
    }
    return 0;
}

/* ---- text matching -------------------------------------------------------- */

static void cap_copy(const char *line, const PCRE2_SIZE *ov, uint32_t n, char *dst, size_t dl)
{
    dst[0] = '\0';
    if (!n || ov[2 * n] == PCRE2_UNSET) return;
    size_t l = ov[2 * n + 1] - ov[2 * n];
    if (l >= dl) l = dl - 1;
    memcpy(dst, line + ov[2 * n], l);
    dst[l] = '\0';
}

typedef struct scanud {
    run *r;
    int line;
} scanud;

/* The MCA bank status word of a kernel machine-check record (Linux x86
 * MCE, Intel SDM / AMD APM): bit 63 VAL, 61 UC, 57 PCC.  Uncorrected means
 * valid and either not corrected or the processor context corrupt; a
 * word that is not valid says nothing, so it is neither. */
static int mca_kind(const char *hex)
{
    char *end;
    errno = 0;
    unsigned long long st = strtoull(hex, &end, 16);
    if (errno || end == hex || *end || !(st >> 63 & 1)) return 0;
    return (st >> 61 & 1) || (st >> 57 & 1) ? 1 : 2;
}

static void on_hit(void *ud, int sig, const char *s, size_t len, const PCRE2_SIZE *ov)
{
    (void)len;
    scanud *u = ud;
    run *r = u->r;
    const diag_sig *g = &r->db->sigs[sig];
    if (g->mca) {
        char st[24];
        cap_copy(s, ov, g->cap_mca, st, sizeof st);
        if (mca_kind(st) != g->mca) return;
    }
    r->raws = grow(r->raws, &r->capraws, r->nraws + 1, sizeof *r->raws, &r->oom);
    if (r->nraws >= r->capraws) return;
    rawm *m = &r->raws[r->nraws++];
    memset(m, 0, sizeof *m);
    m->sig = sig;
    m->line = u->line;
    char x[8];
    cap_copy(s, ov, g->cap_xid, x, sizeof x);
    m->xid = x[0] ? atoi(x) : -1;
    cap_copy(s, ov, g->cap_pid, m->pid, sizeof m->pid);
    cap_copy(s, ov, g->cap_key, m->key, sizeof m->key);
    cap_copy(s, ov, g->cap_val, m->val, sizeof m->val);
    cap_copy(s, ov, g->cap_host, m->host, sizeof m->host);
}

static void scan_all(run *r)
{
    uint32_t *stamp = calloc((size_t)r->db->nsigs + 1, sizeof *stamp);
    if (!stamp) {
        r->oom = true;
        return;
    }
    for (int i = 0; i < r->nlines; i++) {
        scanud u = {r, i};
        diag_scan_line(r->db, 1u << r->lines[i].src, r->lines[i].s, r->lines[i].len, r->md, stamp,
                       (uint32_t)i + 1, on_hit, &u);
    }
    free(stamp);
}

/* Quoted or hypothetical text (a ticket quoting a runbook or an old log,
 * "if dmesg shows ...", a line prefixed "> ") names alarms nobody saw now:
 * it is no evidence.  Its lines are taken out and the rest scanned again,
 * so no signature, rule or context reads them.  Kernel lines are never
 * quotes; the quote signatures read events and job logs only. */
/* A line DCGM wrote or a tool of it printed. */
static bool dcgm_line(const tline *l)
{
    static const char *const w[] = {"dcgm", "DCGM", "Dcgm", "Health Monitor"};
    for (size_t k = 0; k < sizeof w / sizeof *w; k++)
        if (memmem(l->s, l->len, w[k], strlen(w[k]))) return true;
    return false;
}

static void drop_quoted(run *r)
{
    unsigned char *q = NULL;
    for (int k = 0; k < r->nraws; k++) {
        const rawm *m = &r->raws[k];
        int qt = r->db->sigs[m->sig].quote;
        if (!qt) continue;
        if (!q && !(q = calloc((size_t)r->nlines + 1, 1))) {
            r->oom = true;
            return;
        }
        const tline *l = &r->lines[m->line];
        if (qt == 3 && r->nflat < 16 && !q[m->line]) r->flat[r->nflat++] = *l;
        /* a test that injects errors (dcgmi test --inject, a chaos run):
         * everything its log or events report is the test's, and so is
         * what DCGM reports in the window, wherever it is pasted */
        if (qt == 4) r->injected = true;
        bool whole = qt == 4 && (l->src == DS_EVENTS || l->src == DS_JOB);
        for (int i = 0; i < r->nlines; i++)
            if (i == m->line ||
                (qt == 2 && r->lines[i].src == l->src && r->lines[i].entry == l->entry) ||
                (whole && r->lines[i].src == l->src) ||
                (qt == 4 && r->lines[i].src != DS_KERNEL && dcgm_line(&r->lines[i])))
                q[i] = 1;
    }
    if (!q) return;
    int n = 0;
    for (int i = 0; i < r->nlines; i++) {
        if (q[i])
            r->nsrc[r->lines[i].src]--;
        else
            r->lines[n++] = r->lines[i];
    }
    r->nlines = n;
    r->nraws = 0;
    free(q);
    scan_all(r);
}

static bool any_line_matches(run *r, const diag_re *re, unsigned mask)
{
    for (int i = 0; i < r->nlines; i++)
        if ((mask & (1u << r->lines[i].src)) &&
            diag_re_match(re, r->lines[i].s, r->lines[i].len, r->md))
            return true;
    return false;
}

/* Another source must agree (requires) and none may explain it away
 * (unless): both read every text source. */
static bool cross_source_ok(run *r, const diag_sig *g)
{
    const unsigned text = ~(1u << DS_METRICS);
    /* the Xid a fresh last-Xid gauge holds agrees like a log line of it */
    return (!g->requires.code || any_line_matches(r, &g->requires, text) ||
            (r->gauge_xids[0] &&
             diag_re_match(&g->requires, r->gauge_xids, strlen(r->gauge_xids), r->md))) &&
           (!g->unless.code || !any_line_matches(r, &g->unless, text));
}

/* Looks back from line li (same source) for the context pattern. */
static bool context_ok(run *r, const diag_sig *g, int li)
{
    bool found = false;
    int src = r->lines[li].src, seen = 0;
    for (int i = li; i >= 0 && seen <= g->ctx_before; i--) {
        if (r->lines[i].src != src) continue;
        seen++;
        if (diag_re_match(&g->ctx, r->lines[i].s, r->lines[i].len, r->md)) {
            found = true;
            break;
        }
        if (i != li && g->ctx_stop.code &&
            diag_re_match(&g->ctx_stop, r->lines[i].s, r->lines[i].len, r->md))
            break;
    }
    return g->ctx_negate ? !found : found;
}

static char *line_evidence(run *r, int li, const char *extra)
{
    const tline *l = &r->lines[li];
    char pre[560];
    snprintf(pre, sizeof pre, "%s: %.500s", SRC_LABEL[l->src], extra ? extra : "");
    return evidence(pre, l->s, l->len);
}

static char *xid_line_ev(run *r, int line, const char *extra, const void *unused)
{
    (void)unused;
    return line_evidence(r, line, extra);
}

/* A line's own time: ISO 8601 or syslog's "Mon DD HH:MM:SS" (in year) at
 * its start; NAN without one. */
static double line_stamp(const char *s, size_t len, int year)
{
    char buf[40];
    size_t n = len < sizeof buf - 1 ? len : sizeof buf - 1;
    memcpy(buf, s, n);
    buf[n] = 0;
    const char *p = buf;
    while (*p == ' ' || *p == '[')
        p++;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    /* seconds since the epoch ("1764925321.512 host kernel: ...") */
    if (strspn(p, "0123456789") == 10 && (p[10] == '.' || p[10] == ' ') && p[0] == '1')
        return strtod(p, NULL);
    if (isdigit((unsigned char)*p)) {
        if (!strptime(p, "%Y-%m-%dT%H:%M:%S", &tm) && !strptime(p, "%Y-%m-%d %H:%M:%S", &tm) &&
            !strptime(p, "%Y-%m-%dT%H:%M", &tm) && !strptime(p, "%Y-%m-%d %H:%M", &tm))
            return NAN;
    } else if (strptime(p, "%a %b %d %H:%M:%S %Y", &tm)) { /* dmesg -T */
    } else {
        memset(&tm, 0, sizeof tm);
        if (!strptime(p, "%b %d %H:%M:%S", &tm) && !strptime(p, "%b %d %H:%M", &tm)) return NAN;
        tm.tm_year = year - 1900;
    }
    return (double)timegm(&tm);
}

/* "up 2 days,  3:41", "up 5 min", "up 1 day, 22 min": seconds, -1 */
static double uptime_secs(const char *key, const char *val)
{
    double t = key[0] ? atof(key) * 86400.0 : 0;
    int h = 0, m = 0;
    if (strchr(val, ':') && sscanf(val, "%d:%d", &h, &m) == 2)
        t += h * 3600.0 + m * 60.0;
    else if (val[0])
        t += atof(val) * 60.0;
    return key[0] || val[0] ? t : -1;
}

static void boot_id_norm(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    for (; *in && n + 1 < cap; in++)
        if (*in != '-') out[n++] = (char)tolower((unsigned char)*in);
    out[n] = 0;
}

/* A line's time: its leading stamp, else the stamp Slurm appends to a
 * reason ("... [root@2026-12-02T03:11:40]"). */
static double any_stamp(const char *s, size_t len, int year)
{
    double t = line_stamp(s, len, year);
    if (!isnan(t)) return t;
    const char *at = memchr(s, '@', len);
    if (at && at != s && at[-1] != ' ') return line_stamp(at + 1, len - (size_t)(at + 1 - s), year);
    /* an ISO 8601 time inside the line (sinfo -R's TIMESTAMP column) */
    for (size_t i = 0; i + 16 <= len; i++)
        if (isdigit((unsigned char)s[i]) && s[i + 4] == '-' && s[i + 7] == '-' &&
            s[i + 10] == 'T' && s[i + 13] == ':' && (i == 0 || !isdigit((unsigned char)s[i - 1])))
            return line_stamp(s + i, len - i, year);
    return NAN;
}

/* A repair's date: its stamp, or a bare date (the start of that day). */
static double repair_stamp(const char *v, int year)
{
    double t = line_stamp(v, strlen(v), year);
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (isnan(t) && strptime(v, "%Y-%m-%d", &tm)) t = (double)timegm(&tm);
    return t;
}

/* The host a syslog record names after its stamp ("Nov 28 02:14:51 h1
 * kernel: ...", "2026-11-28T02:14:51+00:00 h1 kernel: ...") or before it
 * as pdsh prints ("h1: [...] NVRM: ..."), copied to
 * out up to its first dot; false when the line is no such record. */
static bool syslog_host(const char *s, size_t len, char *out, size_t cap)
{
    const char *e = s + len, *p = s;
    if (len < 20) return false;
    /* pdsh / clush output: "host: <the host's kernel record>" */
    size_t pl = strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.");
    if (pl > 3 && pl < cap && pl + 2 < len && p[pl] == ':' && p[pl + 1] == ' ' &&
        memchr(p, '-', pl) && isalpha((unsigned char)p[0]) &&
        (memmem(p + pl, len - pl, "NVRM:", 5) || memmem(p + pl, len - pl, " kernel:", 8))) {
        size_t n = 0;
        for (; n < pl && p[n] != '.'; n++)
            out[n] = (char)tolower((unsigned char)p[n]);
        out[n] = 0;
        if (n && isdigit((unsigned char)out[n - 1])) return true;
    }
    const char *c;
    if (strspn(p, "0123456789") == 10 && (p[10] == '.' || p[10] == ' ')) {
        c = p + 10; /* seconds since the epoch */
    } else {
        if (isdigit((unsigned char)*p)) {
            if (p[4] != '-') return false;
        } else if (!(isupper((unsigned char)p[0]) && islower((unsigned char)p[1]) && p[3] == ' ')) {
            return false;
        }
        /* the stamp is the first word(s) up to the time's seconds */
        c = memchr(p, ':', (size_t)(e - p));
        if (!c || c - p > 16) return false;
    }
    while (c < e && *c != ' ')
        c++;
    while (c < e && *c == ' ')
        c++;
    const char *h = c;
    while (c < e && *c != ' ')
        c++;
    size_t hl = (size_t)(c - h);
    if (hl == 0 || hl >= cap || c + 8 > e) return false;
    if (strncmp(c, " kernel:", 8) != 0 && strncmp(c, " NVRM:", 6) != 0) return false;
    size_t n = 0;
    for (; n < hl && h[n] != '.'; n++) {
        if (!isalnum((unsigned char)h[n]) && h[n] != '-' && h[n] != '_') return false;
        out[n] = (char)tolower((unsigned char)h[n]);
    }
    out[n] = 0;
    return n > 0;
}

/* A repair a line states without a date (a timeline in chat, a ticket, a
 * table, the kernel's own reset record): what its source listed before it
 * is history, whatever the wording of those lines; stamped, it dates the
 * repair for every source (returned as the latest repair time). */
static double repair_in_order(run *r, const double *st, int year, int li, double fixed)
{
    const tline *rl = &r->lines[li];
    double t = !isnan(st[li]) ? st[li] : any_stamp(rl->s, rl->len, year);
    /* else a bare date in it ("closed 2026-12-02"): the start of that day,
     * so that nothing logged later that day passes for history */
    for (size_t i = 0; isnan(t) && i + 10 <= rl->len; i++)
        if (isdigit((unsigned char)rl->s[i]) && rl->s[i + 4] == '-' && rl->s[i + 7] == '-' &&
            (i == 0 || !isdigit((unsigned char)rl->s[i - 1]))) {
            char d[11];
            memcpy(d, rl->s + i, 10);
            d[10] = 0;
            t = repair_stamp(d, year);
        }
    for (int i = 0; i < li; i++) {
        if (r->lines[i].src != rl->src || r->oldl[i]) continue;
        /* both stamped: their times order them, not the listing */
        if (!isnan(t) && !isnan(st[i]) && st[i] > t) continue;
        r->oldl[i] = 3;
    }
    return !isnan(t) && (isnan(fixed) || t > fixed) ? t : fixed;
}

/* A repair signature of group "clears-<class>" (the class id with dashes)
 * reads one class's state clean now: that class's index, else -1. */
static int cleared_class(const struct fm_diag_db *db, const diag_sig *g)
{
    if (strncmp(g->group, "clears-", 7) != 0) return -1;
    char id[64];
    size_t n = 0;
    for (const char *p = g->group + 7; *p && n + 1 < sizeof id; p++)
        id[n++] = *p == '-' ? '_' : *p;
    id[n] = 0;
    return diag_class_index(db, id);
}

/* Whether a line holds evidence of class c: a signature of it, or an Xid
 * the catalog gives it. */
static bool line_of_class(const run *r, int li, int c)
{
    for (int k = 0; k < r->nraws; k++) {
        const rawm *m = &r->raws[k];
        if (m->line != li) continue;
        const diag_sig *h = &r->db->sigs[m->sig];
        const diag_xid *x = h->xid ? diag_xid_find(r->db, m->xid) : NULL;
        if (x && x->cls == c) return true;
        for (int d = 0; d < h->ncls; d++)
            if (h->cls[d] == c) return true;
    }
    return false;
}

/* The GPU a line names, as "b<bus:dev>" (a PCI bus id with its domain,
 * "0000:b7:00", or "2a:00.0") or "i<N>" (gpu 3, "gpu": 3, GPU: 3, index: 3);
 * empty when it names none.  Clock times ("07:58:41") are no bus id: the
 * domain before the bus has four hex digits or more. */
static void gpu_ident(const char *s, size_t n, char *out, size_t cap)
{
    out[0] = 0;
    for (size_t p = 0; p + 5 <= n; p++) {
        const char *q = s + p;
        if (!isxdigit((unsigned char)q[0]) || !isxdigit((unsigned char)q[1]) || q[2] != ':' ||
            !isxdigit((unsigned char)q[3]) || !isxdigit((unsigned char)q[4]))
            continue;
        size_t h = 0;
        while (p >= h + 2 && isxdigit((unsigned char)s[p - 2 - h]))
            h++;
        bool dom = p >= 1 && s[p - 1] == ':' && h >= 4;
        bool fn = p + 6 < n && q[5] == '.' && isdigit((unsigned char)q[6]);
        bool end = p + 5 == n || (!isalnum((unsigned char)q[5]) && q[5] != ':');
        if ((dom && end) || (!(p >= 1 && s[p - 1] == ':') && fn)) {
            snprintf(out, cap, "b%c%c%c%c", tolower((unsigned char)q[0]),
                     tolower((unsigned char)q[1]), tolower((unsigned char)q[3]),
                     tolower((unsigned char)q[4]));
            return;
        }
    }
    for (size_t p = 0; p + 4 < n; p++) {
        size_t w = strncasecmp(s + p, "gpu", 3) == 0     ? 3
                   : strncasecmp(s + p, "index", 5) == 0 ? 5
                                                         : 0;
        if (!w || (p && isalnum((unsigned char)s[p - 1]))) continue;
        size_t j = p + w, k = 0;
        while (j < n && k < 4 && s[j] && strchr(" _:=\x22\x27#-", s[j]))
            j++, k++;
        size_t d = j;
        while (j < n && isdigit((unsigned char)s[j]) && j - d < 4)
            j++;
        if (j > d && (j == n || !isalnum((unsigned char)s[j]))) {
            snprintf(out, cap, "i%.*s", (int)(j - d), s + d);
            return;
        }
    }
}

/* A reading that shows a class's state clean now ("Pending : No" after a
 * row remap was pending, "remapping failure: no"): that class's evidence
 * listed before it in the same source, or stamped before it in any, is
 * history (the state it told has cleared since: a reset applied it).  The
 * newest state wins; a fault after the reading stays. */
static void cleared_since(run *r, const double *st, int year, int k)
{
    const rawm *m = &r->raws[k];
    int c = cleared_class(r->db, &r->db->sigs[m->sig]);
    const tline *cl = &r->lines[m->line];
    double t = !isnan(st[m->line]) ? st[m->line] : any_stamp(cl->s, cl->len, year);
    /* a command's output takes the stamp of the command's line above it */
    for (int i = m->line - 1; isnan(t) && i >= 0 && i >= m->line - 8; i--)
        if (r->lines[i].src == cl->src) t = st[i];
    /* a reading of one GPU clears only that GPU's evidence when both name
     * their GPU the same way (several GPUs listed: one clean, one not) */
    char me[16], it[16];
    gpu_ident(cl->s, cl->len, me, sizeof me);
    for (int i = 0; i < r->nlines; i++) {
        if (i == m->line || r->oldl[i]) continue;
        if (me[0]) {
            gpu_ident(r->lines[i].s, r->lines[i].len, it, sizeof it);
            if (it[0] == me[0] && strcmp(it, me) != 0) continue;
        }
        bool both = !isnan(t) && !isnan(st[i]);
        /* unstamped across sources: with a reset or repair on record the
         * clean reading is what that repair left (a remap pends until one) */
        bool before = both                         ? st[i] < t - 60
                      : r->lines[i].src == cl->src ? i < m->line
                                                   : r->repaired;
        if (before && line_of_class(r, i, c)) r->oldl[i] = OLD_CLEARED;
    }
    if (c >= 0 && c < 256) r->cleared[c] = 1;
}

/* What each source logged before the node's current boot is history (the
 * driver reloaded, the GPU was re-initialised since).  The current boot
 * starts at the last boot marker of the source (journalctl's "-- Boot",
 * the kernel's first lines, a "current boot" header) or where dmesg's
 * seconds since boot went back.  History as well: a section a header says
 * is an earlier boot ("journalctl -b -1", "before reboot") up to the next
 * boot marker; a line of a boot id other than the current one (stated, or
 * the last one logged); a line stamped before the boot that "up 2 days"
 * puts, measured from the latest stamp collected, or that a boot time
 * (who -b, uptime -s, "booted at") states. */
static void find_boots(run *r)
{
    free(r->oldl);
    r->oldl = calloc((size_t)r->nlines + 1, 1);
    if (!r->oldl) {
        r->oom = true;
        return;
    }
    int last[DS_N];
    char cur_id[40] = "", last_id[40] = "";
    bool any_id = false, any_up = false;
    double up = -1, booted = NAN;
    for (int s = 0; s < DS_N; s++)
        last[s] = -1;
    unsigned char *kind = calloc((size_t)r->nlines + 1, 1);
    char(*ids)[40] = NULL;
    if (!kind) {
        r->oom = true;
        return;
    }
    int rep[8], nrep = 0; /* raws recording a repair: their stamps, read below */
    int pos[8], npos = 0; /* lines stating a repair without a date: their order */
    int clr[8], nclr = 0; /* raws reading a class's state clean: their order */
    for (int k = 0; k < r->nraws; k++) {
        const rawm *m = &r->raws[k];
        const diag_sig *g = &r->db->sigs[m->sig];
        int b = g->boot;
        if (!b || (g->ctx.code && !context_ok(r, g, m->line))) continue;
        if (b == 7 && cleared_class(r->db, g) >= 0) {
            if (nclr < 8) clr[nclr++] = k;
            continue;
        }
        if (b == 7) {
            if (m->val[0] && nrep < 8) rep[nrep++] = k;
            if (!m->val[0] && npos < 8) pos[npos++] = m->line;
            r->repaired = true;
            continue;
        }
        if (b == 4 && m->val[0]) boot_id_norm(m->val, cur_id, sizeof cur_id);
        if (b == 3 && m->val[0]) {
            if (!ids && !(ids = calloc((size_t)r->nlines + 1, sizeof *ids))) {
                r->oom = true;
                break;
            }
            boot_id_norm(m->val, ids[m->line], sizeof *ids);
            any_id = true;
        }
        if (b == 5) {
            double t = uptime_secs(m->key, m->val);
            if (t >= 0) {
                up = t;
                any_up = true;
            }
        }
        if (b == 6 && !m->val[0]) {
            /* the command's answer on one of the next lines: a bare date and
             * time (uptime -s) or "system boot <date>" (who -b) */
            for (int j = m->line + 1; j <= m->line + 3 && j < r->nlines; j++) {
                const tline *l = &r->lines[j];
                if (l->src != r->lines[m->line].src || l->len > 80) continue;
                const char *sb = memmem(l->s, l->len, "system boot", 11);
                const char *p = sb ? sb + 11 : l->s;
                size_t n = l->len - (size_t)(p - l->s);
                if (strspn(p, " \t") + 25 < n) continue; /* more than a stamp */
                double t = line_stamp(p, n, 1970);
                if (!isnan(t) && (isnan(booted) || t > booted)) booted = t;
                if (!isnan(t)) break;
            }
        } else if (b == 6) {
            double t = line_stamp(m->val, strlen(m->val), 1970);
            if (!isnan(t) && (isnan(booted) || t > booted)) booted = t;
        }
        if (b <= 2 && kind[m->line] != 1) kind[m->line] = (unsigned char)b;
    }
    /* dmesg's clock going back starts a boot */
    double prev[DS_N];
    for (int s = 0; s < DS_N; s++)
        prev[s] = -1;
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        if (l->src != DS_KERNEL || l->len < 4 || l->s[0] != '[') continue;
        char *end;
        double t = strtod(l->s + 1, &end);
        if (end == l->s + 1 || *end != ']') continue;
        if (prev[l->src] > t + 1.0 && !kind[i]) kind[i] = 1;
        prev[l->src] = t;
    }
    for (int i = 0; i < r->nlines; i++)
        if (kind[i] == 1) last[r->lines[i].src] = i;
    bool inprev[DS_N] = {false};
    char sticky[DS_N][40];
    memset(sticky, 0, sizeof sticky);
    for (int i = 0; i < r->nlines && !r->oom; i++) {
        int s = r->lines[i].src;
        if (kind[i] == 1) inprev[s] = false;
        if (kind[i] == 2) inprev[s] = true;
        if (ids && ids[i][0]) {
            memcpy(sticky[s], ids[i], sizeof sticky[s]);
            memcpy(last_id, ids[i], sizeof last_id);
        }
        r->oldl[i] = (unsigned char)(inprev[s] || i < last[s]);
        if (ids) memcpy(ids[i], sticky[s], sizeof *ids);
    }
    if (any_id) {
        const char *cur = cur_id[0] ? cur_id : last_id;
        for (int i = 0; i < r->nlines; i++)
            if (ids[i][0] && strcmp(ids[i], cur) != 0) r->oldl[i] = 1;
    }
    /* a record of another host (a log pasted from an earlier run elsewhere)
     * tells nothing of this node now */
    char host[64], me[64] = "";
    if (r->node && r->node[0]) {
        size_t n = 0;
        for (; r->node[n] && r->node[n] != '.' && n + 1 < sizeof me; n++)
            me[n] = (char)tolower((unsigned char)r->node[n]);
        me[n] = 0;
        for (int i = 0; i < r->nlines; i++) {
            const tline *l = &r->lines[i];
            if (l->src > DS_EVENTS || r->oldl[i]) continue;
            if (syslog_host(l->s, l->len, host, sizeof host) && strcmp(host, me) != 0)
                r->oldl[i] = 2;
        }
    }
    /* a job's attempts: an attempt on another node tells nothing of this
     * one, and the last attempt is the job's failure now (the ones before
     * it are history, as an earlier run in a job log) */
    int last_entry = -1;
    for (int i = 0; i < r->nlines; i++)
        if (r->lines[i].src == DS_HISTORY && r->lines[i].entry > last_entry)
            last_entry = r->lines[i].entry;
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        if (l->src != DS_HISTORY || r->oldl[i]) continue;
        const char *nd = memmem(l->s, l->len, " node=", 6);
        size_t nl = nd ? strcspn(nd + 6, " .") : 0;
        if (me[0] && nl && (nl != strlen(me) || strncasecmp(nd + 6, me, nl) != 0))
            r->oldl[i] = 2;
        else if (l->entry < last_entry)
            r->oldl[i] = 5;
    }
    bool boot_line = false;
    for (int i = 0; i < r->nlines && !boot_line; i++)
        boot_line = kind[i] == 1;
    if (any_up || !isnan(booted) || nrep || npos || nclr || r->nclean || boot_line ||
        r->nsrc[DS_JOB] > 0) {
        int year = 1970 + (int)(time(NULL) / 31556952);
        if (!isnan(booted)) year = 1970 + (int)(booted / 31556952);
        double ref = NAN;
        for (int i = 0; i < r->nlines; i++) {
            const tline *l = &r->lines[i];
            if (l->s[0] >= '1' && l->s[0] <= '2' && l->len > 4 && l->s[4] == '-') {
                double t = line_stamp(l->s, l->len, year);
                if (!isnan(t)) year = 1970 + (int)(t / 31556952);
                break;
            }
        }
        double *st = malloc(((size_t)r->nlines + 1) * sizeof *st);
        if (!st) {
            r->oom = true;
        } else {
            for (int i = 0; i < r->nlines; i++) {
                st[i] = line_stamp(r->lines[i].s, r->lines[i].len, year);
                if (!isnan(st[i]) && (isnan(ref) || st[i] > ref)) ref = st[i];
            }
            /* a minute's margin: uptime and boot times are read to the minute */
            double start = !isnan(booted) ? booted : any_up ? ref - up : NAN;
            if (any_up && !isnan(booted) && !isnan(ref) && ref - up > booted) start = ref - up;
            for (int i = 0; i < r->nlines && !isnan(start); i++)
                if (!isnan(st[i]) && st[i] < start - 60) r->oldl[i] = 1;
            /* a repair (a part swapped, a field replacement, a reboot) on
             * record supersedes what was reported before it: drain reasons,
             * checker output and tickets are dated too */
            double fixed = NAN;
            for (int k = 0; k < nrep; k++) {
                double t = repair_stamp(r->raws[rep[k]].val, year);
                if (!isnan(t) && (isnan(fixed) || t > fixed)) fixed = t;
            }
            for (int k = 0; k < npos; k++)
                fixed = repair_in_order(r, st, year, pos[k], fixed);
            for (int k = 0; k < nclr; k++)
                cleared_since(r, st, year, clr[k]);
            /* a live metric reading the state clean on every GPU is newer
             * than a log line stamped an hour or more before it */
            for (int k = 0; k < r->nclean; k++)
                for (int i = 0; i < r->nlines; i++)
                    if (!r->oldl[i] && !isnan(st[i]) &&
                        st[i] < r->clean_at - (r->clean_fell ? 60 : 3600) &&
                        line_of_class(r, i, r->clean[k]))
                        r->oldl[i] = OLD_CLEARED;
            /* a stamped (re)boot of the node is such a record too */
            for (int i = 0; i < r->nlines; i++)
                if (kind[i] == 1 && !isnan(st[i]) && (isnan(fixed) || st[i] > fixed)) fixed = st[i];
            for (int i = 0; i < r->nlines && !isnan(fixed); i++) {
                if (r->oldl[i]) continue;
                double t = !isnan(st[i]) ? st[i] : any_stamp(r->lines[i].s, r->lines[i].len, year);
                if (!isnan(t) && t < fixed - 60) r->oldl[i] = 3;
            }
            /* a job's log that spans days holds earlier runs: what it
             * recorded a day or more before its latest record is history */
            double jnew = NAN;
            for (int i = 0; i < r->nlines; i++)
                if (r->lines[i].src == DS_JOB && !isnan(st[i]) && (isnan(jnew) || st[i] > jnew))
                    jnew = st[i];
            /* and what the node logged a day or more before the job's
             * failure is no current evidence against the node either */
            for (int i = 0; i < r->nlines && !isnan(jnew); i++)
                if ((r->lines[i].src == DS_JOB || r->lines[i].src == DS_KERNEL ||
                     r->lines[i].src == DS_EVENTS) &&
                    !r->oldl[i] && !isnan(st[i]) && st[i] < jnew - 86400)
                    r->oldl[i] = 4;
            free(st);
        }
    }
    free(ids);
    free(kind);
}

static bool before_boot(const run *r, int li)
{
    return li >= 0 && r->oldl && li < r->nlines && r->oldl[li];
}

/* A line some class signature or a catalogued Xid of a class reads: what
 * it says is explained by that class, not unexplained failure words. */
static bool line_classed(const run *r, int li)
{
    for (int k = 0; k < r->nraws; k++) {
        const rawm *m = &r->raws[k];
        if (m->line != li) continue;
        const diag_sig *g = &r->db->sigs[m->sig];
        if (g->anomaly || g->quote || g->boot || g->marker || g->recovery) continue;
        if (g->xid) {
            const diag_xid *x = diag_xid_find(r->db, m->xid);
            if (x && x->cls >= 0) return true;
        } else if (g->ncls > 0) {
            return true;
        }
    }
    return false;
}

static bool group_marked(const run *r, const char *group)
{
    for (int i = 0; i < r->nmarks; i++)
        if (strcmp(r->marks[i], group) == 0) return true;
    return false;
}

static bool anomaly_seen(const run *r, const char *group)
{
    for (int i = 0; i < r->nanoms; i++)
        if (strcmp(r->anoms[i].group, group) == 0) return true;
    return false;
}

/* Turns raw matches of text signatures into hits.  What a source logged
 * before its last reboot is history: weak at most, never enough to act. */
/* A drain reason outlived by what was collected now: fresher sources
 * (kernel log, events, metrics) were given, and either the node was
 * resumed (no drain, down or fail flag left in its state) or the reason
 * itself records the repair.  Its fault words are then history. */
static bool reason_stale(const run *r)
{
    if (r->nsrc[DS_KERNEL] + r->nsrc[DS_EVENTS] + r->nsrc[DS_METRICS] == 0) return false;
    static const char *const held[] = {"DRAIN",          "DOWN",       "FAIL",
                                       "NOT_RESPONDING", "NO_RESPOND", "INVAL"};
    static const char *const repaired[] = {"rma",     "replac",  "repair", "swap",
                                           "fixed",   "resolv",  "done",   "closed",
                                           "complet", "cleared", "reseat", "new board"};
    bool states = false, resumed = true, fixed = false;
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        if (l->src != DS_STATE && l->src != DS_REASON) continue;
        char buf[1024]; /* the words looked for come early in a reason */
        size_t n = l->len < sizeof buf - 1 ? l->len : sizeof buf - 1;
        memcpy(buf, l->s, n);
        buf[n] = 0;
        if (l->src == DS_STATE) {
            states = true;
            for (size_t k = 0; k < sizeof held / sizeof *held; k++)
                if (strcasestr(buf, held[k])) resumed = false;
        } else if (l->src == DS_REASON) {
            if (r->oldl && r->oldl[i]) fixed = true; /* dated before a repair on record */
            for (size_t k = 0; k < sizeof repaired / sizeof *repaired; k++)
                if (strcasestr(buf, repaired[k])) fixed = true;
        }
    }
    return fixed || (states && resumed);
}

/* A tool's display of Slurm's reason (sinfo -R, scontrol's Reason=) pasted
 * into events or a job log: the operator's words of some time ago, like
 * slurm.reason.  With the kernel log or metrics collected now, those
 * decide a destructive class and the record is history. */
static bool reason_record(const run *r, int li)
{
    const tline *l = &r->lines[li];
    if ((l->src != DS_EVENTS && l->src != DS_JOB) || r->nsrc[DS_KERNEL] + r->nsrc[DS_METRICS] == 0)
        return false;
    size_t n = l->len < 1023 ? l->len : 1023;
    char buf[1024];
    memcpy(buf, l->s, n);
    buf[n] = 0;
    return strstr(buf, "sinfo -R") || strstr(buf, "REASON:") || strstr(buf, "Reason=");
}

/* How many distinct hosts the matches of signature si name (up to the
 * first dot, in any case): one node's ranks are one host. */
static int hosts_named(const run *r, int si)
{
    const char *seen[16];
    int n = 0;
    for (int k = 0; k < r->nraws && n < 16; k++) {
        const char *h = r->raws[k].host;
        if (r->raws[k].sig != si || !h[0]) continue;
        size_t hl = strcspn(h, ".");
        bool dup = false;
        for (int i = 0; i < n && !dup; i++)
            dup = strcspn(seen[i], ".") == hl && strncasecmp(seen[i], h, hl) == 0;
        if (!dup) seen[n++] = h;
    }
    return n;
}

static void text_hits(run *r)
{
    const struct fm_diag_db *db = r->db;
    find_boots(r);
    bool stale_reason = reason_stale(r);
    for (int si = 0; si < db->nsigs; si++) {
        const diag_sig *g = &db->sigs[si];
        if (g->is_metric || (g->ncls == 0 && !g->xid && !g->anomaly && !g->recovery && !g->marker))
            continue;
        int count = 0;
        for (int k = 0; k < r->nraws; k++)
            if (r->raws[k].sig == si && (!g->ctx.code || context_ok(r, g, r->raws[k].line)))
                count++;
        if (count < g->min_count || count == 0) continue;
        if (g->min_hosts > 1 && hosts_named(r, si) < g->min_hosts) continue;
        if (g->also.code && !any_line_matches(r, &g->also, g->srcmask)) continue;
        if (!cross_source_ok(r, g)) continue;
        int emitted = 0;
        for (int k = 0; k < r->nraws && emitted < 50; k++) {
            const rawm *m = &r->raws[k];
            if (m->sig != si || (g->ctx.code && !context_ok(r, g, m->line))) continue;
            int kind = KIND_OF[r->lines[m->line].src];
            bool old = before_boot(r, m->line);
            r->cur_old = old;
            r->cur_reason =
                (r->lines[m->line].src == DS_REASON && stale_reason) || reason_record(r, m->line);
            int str = old ? ST_WEAK : g->strength;
            const char *oldnote = old ? OLD_NOTE[r->oldl[m->line]] : NULL;
            if (g->marker) {
                if (!old && r->nmarks < 32 && !group_marked(r, g->group))
                    r->marks[r->nmarks++] = g->group;
            } else if (g->recovery) {
                if (old) continue;
                const diag_xrec *x = diag_xrec_find(db, m->key, m->val);
                if (x && (!r->rec || action_rank(x->action) > action_rank(r->rec->action))) {
                    r->rec = x;
                    r->rec_line = m->line;
                }
                if (!x)
                    add_anomaly(r, ST_STRONG, 1, g->group,
                                line_evidence(r, m->line,
                                              "[Xid 154 with a recovery action the "
                                              "catalog does not know] "));
            } else if (g->anomaly) {
                /* the fault a stale reason names is history, not unexplained */
                if (r->cur_reason) continue;
                /* history a known class reads is that class's, weak and old */
                if (old && line_classed(r, m->line)) continue;
                add_anomaly(r, str, g->level >= 0 ? g->level : SRC_LEVEL[r->lines[m->line].src],
                            g->group, line_evidence(r, m->line, old ? oldnote : "[unexplained] "));
            } else if (g->xid) {
                xid_seen(r, m->xid, kind, old ? ST_WEAK : g->xid_cap, g->group, m->line,
                         xid_line_ev, NULL);
            } else {
                for (int c = 0; c < g->ncls; c++)
                    add_hit(r, g->cls[c], kind, str, g->group, line_evidence(r, m->line, oldnote));
            }
            emitted++;
        }
    }
    r->cur_old = false;
    r->cur_reason = false;
}

/* Distinct evidence groups of class c among hits that are not history. */
static int fresh_groups(const run *r, int c)
{
    int n = 0;
    for (int i = 0; i < r->nhits; i++) {
        const hit *h = &r->hits[i];
        if (h->cls != c || h->old) continue;
        bool seen = false;
        for (int j = 0; j < i && !seen; j++)
            seen =
                r->hits[j].cls == c && !r->hits[j].old && strcmp(r->hits[j].group, h->group) == 0;
        n += !seen;
    }
    return n;
}

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

static const char *host_of(const json_t *labels, char *buf, size_t n)
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
    return evidence(pre, "", 0);
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
        keys[i] = fmt("%s\x1f%s", json_string_value(json_object_get(s, "name")), lb ? lb : "");
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
static void gpu_key(const json_t *labels, char *out, size_t n)
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
static bool same_host(const char *host, const char *node)
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

/* A text source logged Xid code since its last reboot. */
static bool xid_in_text(run *r, int code)
{
    const diag_xid *x = diag_xid_find(r->db, code);
    for (int k = 0; k < r->nraws; k++)
        if (r->db->sigs[r->raws[k].sig].xid && r->raws[k].xid == code &&
            !before_boot(r, r->raws[k].line) && !app_xid_old(r, r->raws[k].line, x))
            return true;
    return false;
}

static int healthy_idx(run *r)
{
    return diag_class_index(r->db, "healthy");
}

static int cmp_double(const void *a, const void *b);

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
    qsort(means, (size_t)no, sizeof *means, cmp_double);
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
    qsort(sorted, (size_t)ns, sizeof *sorted, cmp_double);
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
    for (size_t j = 0; j < n; j++) {
        const json_t *s = json_array_get(metrics, j);
        const char *nm = json_string_value(json_object_get(s, "name"));
        const char *at = nm ? strstr(nm, name) : NULL;
        if (!at || at == nm || !memchr(nm, '(', (size_t)(at - nm))) continue;
        if (sample_value(r, s) == 0) return true;
    }
    size_t nl = strlen(name);
    for (int k = 0; k < r->nflat; k++)
        if (nl && memmem(r->flat[k].s, r->flat[k].len, name, nl)) return true;
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
            bool alone = !xid_in_text(r, (int)v);
            /* with the Xid record of the window read (a kernel log, even an
             * empty one, or DCGM's health and events: marker group
             * xid-window-read) and no line of that code in it, the gauge
             * holds an old Xid: history, nothing to escalate; so it is
             * after a repair on record (a reset, a part swapped) */
            bool old = alone && (r->nsrc[DS_KERNEL] > 0 || r->kernel_given ||
                                 group_marked(r, "xid-window-read") || r->repaired);
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
static void metrics_absent(run *r, const json_t *metrics, size_t n)
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
static double sample_time(const json_t *o)
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

static void metrics_clean_now(run *r, const json_t *metrics)
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
static void gauge_xids(run *r, const json_t *metrics)
{
    r->gauge_xids[0] = 0;
    if (r->nsrc[DS_KERNEL] > 0 || r->kernel_given) return;
    for (int k = 0; k < r->nraws; k++)
        if (strcmp(r->db->sigs[r->raws[k].sig].group, "xid-window-read") == 0) return;
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

static int metric_hits(run *r, const json_t *metrics, fm_err *err)
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

/* A Prometheus HTTP API answer pasted into events or a job log (curl of
 * /api/v1/query or query_range: {"data":{"resultType":"vector"|"matrix",
 * "result":[{"metric":{...},"value"|"values":...}]}}, or its result list
 * alone) is metrics: each sample becomes {name, labels, value}, appended
 * to signals.metrics in a new array (NULL: none found).  Series without
 * __name__ (an aggregation) keep the query's text out: they are skipped. */
/* The series name of a query's answer that drops __name__: an aggregation
 * over time or over series that keeps the unit (avg/min/max/last/quantile
 * _over_time, avg/min/max [by (...)]) of one plain selector, found in the
 * text before the answer, named as a recording rule would be
 * (metric:function): no instantaneous reading, a summary of several.  ""
 * when there is none (a rate, a sum). */
static void query_name(const char *s, size_t upto, char *out, size_t cap)
{
    static const char *const fns[] = {
        "avg_over_time",      "max_over_time", "min_over_time", "last_over_time",
        "quantile_over_time", "avg",           "max",           "min"};
    out[0] = 0;
    for (size_t f = 0; f < sizeof fns / sizeof *fns && !out[0]; f++) {
        size_t fl = strlen(fns[f]);
        for (const char *p = s; p && p + fl < s + upto; p = strstr(p + 1, fns[f])) {
            p = strstr(p, fns[f]);
            if (!p || p + fl >= s + upto) break;
            if (p > s && (isalnum((unsigned char)p[-1]) || p[-1] == '_')) continue;
            const char *q = p + fl;
            while (*q == ' ')
                q++;
            if (strncmp(q, "by", 2) == 0 || strncmp(q, "without", 7) == 0) {
                q = strchr(q, ')');
                if (!q) break;
                q++;
                while (*q == ' ')
                    q++;
            }
            if (*q != '(') continue;
            q++;
            while (*q == ' ')
                q++;
            if (f == 4) { /* quantile_over_time(0.9, x[1h]) */
                while (*q && *q != ',' && *q != ')')
                    q++;
                if (*q != ',') continue;
                q++;
                while (*q == ' ')
                    q++;
            }
            size_t n = 0;
            while ((isalnum((unsigned char)q[n]) || q[n] == '_' || q[n] == ':') && n + 1 < cap)
                n++;
            if (!n || isdigit((unsigned char)q[0]) || !strchr("{[) ", q[n]) || !q[n]) continue;
            snprintf(out, cap, "%.*s:%s", (int)n, q, fns[f]);
            break;
        }
    }
}

static void prom_series(json_t *out, const json_t *item, const char *qname)
{
    const json_t *metric = json_object_get(item, "metric");
    const char *name = json_string_value(json_object_get(metric, "__name__"));
    if (!name && qname && *qname) name = qname;
    if (!json_is_object(metric) || !name) return;
    json_t *labels = json_deep_copy(metric);
    if (!labels) return;
    json_object_del(labels, "__name__");
    const json_t *one = json_object_get(item, "value");
    const json_t *many = json_object_get(item, "values");
    size_t n = json_is_array(many) ? json_array_size(many) : 1;
    for (size_t i = 0; i < n && json_array_size(out) < MAX_METRICS; i++) {
        const json_t *pt = json_is_array(many) ? json_array_get(many, i) : one;
        const char *v = json_string_value(json_array_get(pt, 1));
        char *end;
        double d = v ? strtod(v, &end) : 0;
        if (!v || end == v || *end || !isfinite(d)) continue;
        json_array_append_new(
            out, json_pack("{s:s, s:O, s:f}", "name", name, "labels", labels, "value", d));
    }
    json_decref(labels);
}

static json_t *prom_metrics(const json_t *signals)
{
    static const char *const srcs[] = {"events", "job_log"};
    json_t *out = NULL;
    for (size_t k = 0; k < 2; k++) {
        const json_t *arr = json_object_get(signals, srcs[k]);
        size_t i;
        const json_t *v;
        json_array_foreach(arr, i, v)
        {
            const char *s = json_string_value(v);
            if (!s || !strstr(s, "\"metric\"")) continue;
            /* the JSON may follow a command line with braces of its own
             * (a PromQL selector): try the first few openings */
            json_t *doc = NULL;
            const json_t *res = NULL;
            const char *b = s;
            for (int tries = 0; tries < 16 && !res && (b = strpbrk(b, "{[")); tries++, b++) {
                json_error_t je;
                json_decref(doc);
                doc = json_loads(b, JSON_DISABLE_EOF_CHECK, &je);
                res = json_object_get(json_object_get(doc, "data"), "result");
                if (!res) res = json_object_get(doc, "result");
                if (!res && json_is_array(doc)) res = doc;
            }
            if (json_is_array(res) && !out) {
                const json_t *mv = json_object_get(signals, "metrics");
                out = json_is_array(mv) ? json_copy((json_t *)mv) : json_array();
            }
            size_t j;
            const json_t *item;
            char qname[128] = "";
            if (out && json_is_array(res) && b) query_name(s, (size_t)(b - s), qname, sizeof qname);
            /* the query on one of the few lines before its answer */
            for (size_t back = 1; back <= 3 && back <= i && out && json_is_array(res) && !qname[0];
                 back++) {
                const char *prev = json_string_value(json_array_get(arr, i - back));
                if (prev) query_name(prev, strlen(prev), qname, sizeof qname);
            }
            if (out && json_is_array(res))
                json_array_foreach(res, j, item) prom_series(out, item, qname);
            json_decref(doc);
        }
    }
    return out;
}

/* Heat no more than warm (a hot reading, the driver's soft thermal
 * slowdown, a climb) is what slows a node, not a thermal fault: the
 * slowdown temperature reached or a hardware thermal slowdown is. */
static bool soft_heat_group(const char *group)
{
    static const char *const soft[] = {"gpu-temp/", "thermal-soft/", "gpu-temp-climbing/"};
    for (size_t i = 0; i < sizeof soft / sizeof *soft; i++)
        if (strncmp(group, soft[i], strlen(soft[i])) == 0) return true;
    return false;
}

/* A job on several nodes: its node list a range or a list. */
static bool multi_node_job(const run *r)
{
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        const char *nd = l->src == DS_JOBS ? memmem(l->s, l->len, " nodes=", 7) : NULL;
        size_t n = nd ? strcspn(nd + 7, " ") : 0;
        if (n && (memchr(nd + 7, '[', n) || memchr(nd + 7, ',', n))) return true;
    }
    return false;
}

/* w as a word of s (no letter or digit on either side), any case */
static bool has_word(const char *s, size_t len, const char *w)
{
    size_t wl = strlen(w);
    for (size_t i = 0; wl && i + wl <= len; i++)
        if (strncasecmp(s + i, w, wl) == 0 && (i == 0 || !isalnum((unsigned char)s[i - 1])) &&
            (i + wl == len || !isalnum((unsigned char)s[i + wl])))
            return true;
    return false;
}

/* A line telling a slowdown against the job's others that names this
 * node (its short name, or "node N" for its number): its index, or -1. */
static int slow_line_names_node(const run *r)
{
    char me[64] = "", nodeword[80] = "";
    size_t n = 0;
    for (; r->node && r->node[n] && r->node[n] != '.' && n + 1 < sizeof me; n++)
        me[n] = r->node[n];
    me[n] = 0;
    if (!n) return -1;
    const char *num = me + n;
    while (num > me && isdigit((unsigned char)num[-1]))
        num--;
    if (*num) snprintf(nodeword, sizeof nodeword, "node %s", num);
    for (int k = 0; k < r->nraws; k++) {
        const rawm *m = &r->raws[k];
        if (strcmp(r->db->sigs[m->sig].group, "slow-against-peers") != 0 || before_boot(r, m->line))
            continue;
        const tline *l = &r->lines[m->line];
        if (has_word(l->s, l->len, me) || (nodeword[0] && has_word(l->s, l->len, nodeword)))
            return m->line;
    }
    return -1;
}

/* Readings of the job's members that cls's outlier rules compare (per-rank
 * or per-host times), fresh, whether or not one stood out by their margin. */
static bool timings_read(const run *r, int cls)
{
    for (int i = 0; i < r->db->nrules; i++) {
        const diag_rule *ru = &r->db->rules[i];
        if (ru->type != RT_OUTLIER || ru->cls != cls || ru->sig < 0) continue;
        for (int k = 0; k < r->nraws; k++)
            if (r->raws[k].sig == ru->sig && !before_boot(r, r->raws[k].line)) return true;
    }
    return false;
}

/* One node slower than the job's others, its GPUs only warm: the job's
 * complaint is the straggler, the heat its cause (the absorb rule takes
 * the thermal evidence in).  A thermal fault of its own stays thermal. */
static void warm_straggler(run *r)
{
    int th = diag_class_index(r->db, "gpu_thermal"), sn = diag_class_index(r->db, "straggler_node");
    if (th < 0 || sn < 0) return;
    int named = slow_line_names_node(r);
    if (named >= 0) {
        add_hit(r, sn, DK_CORR, ST_STRONG, "warm-straggler",
                line_evidence(r, named, "[this node named slower than the job's others] "));
        return;
    }
    if (!group_marked(r, "slow-against-peers") && !group_marked(r, "rank-timing") &&
        !timings_read(r, sn) && !(group_marked(r, "job-slow") && multi_node_job(r)))
        return;
    int warm = -1;
    for (int i = 0; i < r->nhits; i++) {
        const hit *h = &r->hits[i];
        if (h->cls != th || h->old) continue;
        if (!soft_heat_group(h->group)) return;
        warm = i;
    }
    if (warm >= 0)
        add_hit(r, sn, DK_CORR, ST_STRONG, "warm-straggler",
                fmt("this node slower than the job's others, its GPUs warm with no thermal "
                    "fault (heat is the cause): %s",
                    r->hits[warm].text ? r->hits[warm].text : ""));
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

/* ---- correlation rules ------------------------------------------------------ */

static bool state_in(const diag_rule *ru, const char *st)
{
    for (int i = 0; i < ru->nstates; i++)
        if (strncmp(st, ru->states[i], strlen(ru->states[i])) == 0) return true;
    return false;
}

static time_t iso_time(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (!s || !strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)) return (time_t)-1;
    return timegm(&tm);
}

static void boost_scope(run *r, const cstate *cs, const char *scope, const diag_rule *ru,
                        const char *why)
{
    for (int c = 0; c < r->db->nclasses; c++)
        if (cs[c].conf >= HAS_EVIDENCE && strcmp(r->db->classes[c].scope, scope) == 0)
            add_hit(r, c, DK_CORR, ru->strength, ru->id, fmt("correlation: %s", why));
}

static void rule_multi_job(run *r, const cstate *cs, const diag_rule *ru, const json_t *jobs)
{
    if (!r->node || !*r->node) return;
    int count = 0;
    char ids[200] = "";
    time_t tmin = 0, tmax = 0;
    bool times = true;
    size_t i;
    json_t *j;
    json_array_foreach(jobs, i, j)
    {
        const char *st = json_string_value(json_object_get(j, "state"));
        const char *nodes = json_string_value(json_object_get(j, "nodes"));
        if (!st || !nodes || !state_in(ru, st) || !fm_diag_hostlist_has(nodes, r->node)) continue;
        count++;
        char b[32];
        size_t o = strlen(ids);
        if (o < sizeof ids - 24)
            snprintf(ids + o, sizeof ids - o, "%s%s", o ? "," : "", jstr(j, "job_id", b, sizeof b));
        const char *end = json_string_value(json_object_get(j, "end"));
        if (!end) end = json_string_value(json_object_get(j, "end_time"));
        time_t t = iso_time(end);
        if (t == (time_t)-1)
            times = false;
        else {
            if (!tmin || t < tmin) tmin = t;
            if (t > tmax) tmax = t;
        }
    }
    if (count < ru->min_jobs) return;
    if (times && tmax - tmin > (time_t)ru->window_min * 60) return;
    char why[400];
    snprintf(why, sizeof why, "%d distinct jobs failed on %s (%s): the node, not the jobs", count,
             r->node, ids);
    boost_scope(r, cs, "node", ru, why);
}

/* History: per attempt, the set of classes its error matched (or none). */
typedef struct attempt {
    long step;
    char node[128];
    uint64_t cls[2]; /* bitset over up to 128 classes */
    char text[96];   /* normalised error when no class matched */
    int line;
} attempt;

static void norm_text(const char *s, char *out, size_t n)
{
    size_t o = 0;
    for (; *s && o + 1 < n; s++)
        if (!(*s >= '0' && *s <= '9') && *s != ' ') out[o++] = *s;
    out[o] = '\0';
}

static int history_attempts(run *r, attempt *at, int max)
{
    int n = 0;
    for (int i = 0; i < r->nlines && n < max; i++) {
        if (r->lines[i].src != DS_HISTORY) continue;
        attempt *a = &at[n++];
        memset(a, 0, sizeof *a);
        a->line = i;
        const char *s = r->lines[i].s;
        a->step = strncmp(s, "step=", 5) == 0 && s[5] >= '0' && s[5] <= '9'
                      ? strtol(s + 5, NULL, 10)
                      : -1;
        const char *nd = strstr(s, " node=");
        if (nd) {
            nd += 6;
            size_t l = strcspn(nd, " ");
            if (l >= sizeof a->node) l = sizeof a->node - 1;
            memcpy(a->node, nd, l);
            a->node[l] = '\0';
        }
        const char *err = strstr(s, " error=");
        /* no node field: the error text may name the node being diagnosed */
        if (!a->node[0] && r->node && *r->node && err && strstr(err, r->node))
            snprintf(a->node, sizeof a->node, "%s", r->node);
        for (int k = 0; k < r->nraws; k++) {
            const rawm *m = &r->raws[k];
            if (m->line != i) continue;
            const diag_sig *g = &r->db->sigs[m->sig];
            if (g->ctx.code && !context_ok(r, g, i)) continue;
            if (g->xid) {
                const diag_xid *x = diag_xid_find(r->db, m->xid);
                if (x && x->cls >= 0 && x->cls < 128) a->cls[x->cls >> 6] |= 1ull << (x->cls & 63);
            }
            for (int c = 0; c < g->ncls; c++)
                if (g->cls[c] < 128) a->cls[g->cls[c] >> 6] |= 1ull << (g->cls[c] & 63);
        }
        if (!a->cls[0] && !a->cls[1]) norm_text(err ? err + 7 : s, a->text, sizeof a->text);
    }
    return n;
}

static bool same_error(const attempt *a, const attempt *b)
{
    if (a->cls[0] || a->cls[1] || b->cls[0] || b->cls[1])
        return (a->cls[0] & b->cls[0]) || (a->cls[1] & b->cls[1]);
    return a->text[0] && strcmp(a->text, b->text) == 0;
}

static void boost_common(run *r, const cstate *cs, const attempt *a, const attempt *b,
                         const char *scope, const diag_rule *ru, const char *why)
{
    uint64_t common[2] = {a->cls[0] & b->cls[0], a->cls[1] & b->cls[1]};
    if (!common[0] && !common[1]) {
        boost_scope(r, cs, scope, ru, why);
        return;
    }
    for (int c = 0; c < r->db->nclasses && c < 128; c++)
        if ((common[c >> 6] >> (c & 63)) & 1 && strcmp(r->db->classes[c].scope, scope) == 0)
            add_hit(r, c, DK_CORR, ru->strength, ru->id, fmt("correlation: %s", why));
}

static void rule_history(run *r, const cstate *cs, const diag_rule *ru)
{
    attempt at[MAX_HISTORY];
    int n = history_attempts(r, at, MAX_HISTORY);
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            const attempt *a = &at[i], *b = &at[j];
            bool same_step = a->step >= 0 && a->step == b->step;
            bool nodes_known = a->node[0] && b->node[0];
            bool same_node = nodes_known && strcmp(a->node, b->node) == 0;
            char why[300];
            if (ru->type == RT_FOLLOWS_JOB && same_error(a, b) &&
                (same_step || (nodes_known && !same_node))) {
                snprintf(why, sizeof why,
                         "attempts %d and %d failed alike (%s): the fault follows the job", i + 1,
                         j + 1, same_step ? "same step" : "different nodes");
                boost_common(r, cs, a, b, "job", ru, why);
                return;
            }
            if (ru->type == RT_FOLLOWS_NODE && same_error(a, b) && same_node && !same_step) {
                snprintf(why, sizeof why,
                         "attempts %d and %d failed alike on %s at different steps: the fault "
                         "follows the node",
                         i + 1, j + 1, a->node);
                boost_common(r, cs, a, b, "node", ru, why);
                return;
            }
            if (ru->type == RT_SAME_STEP_DIFF && same_step && a->step > 0 && !same_error(a, b)) {
                snprintf(why, sizeof why,
                         "attempts %d and %d died at step %ld with different errors: one root "
                         "cause under the job",
                         i + 1, j + 1, a->step);
                for (int t = 0; t < ru->ntargets; t++)
                    if (cs[ru->targets[t]].any)
                        add_hit(r, ru->targets[t], DK_CORR, ru->strength, ru->id,
                                fmt("correlation: %s", why));
                return;
            }
        }
}

static void rule_captures(run *r, const diag_rule *ru)
{
    int first = -1, second = -1, distinct = 0;
    char vals[16][64];
    /* blocks (one rank's stack dump each): a line matching ru->block opens
     * one (so does another source); only its first value, the innermost
     * frame, counts.  Job logs come a line per entry: entries do not. */
    int last_line = -1;
    for (int k = 0; k < r->nraws; k++) {
        const rawm *m = &r->raws[k];
        if (m->sig != ru->sig) continue;
        if (ru->block.code) {
            bool same = last_line >= 0;
            for (int i = m->line; same && i > last_line; i--) {
                const tline *l = &r->lines[i];
                same = l->src == r->lines[last_line].src &&
                       !diag_re_match(&ru->block, l->s, l->len, r->md);
            }
            if (same) continue;
            last_line = m->line;
        }
        if (ru->type == RT_CAPTURE_DISAGREE) {
            for (int q = 0; q < k && second < 0; q++) {
                const rawm *o = &r->raws[q];
                if (o->sig == ru->sig && strcmp(o->key, m->key) == 0 &&
                    strcmp(o->val, m->val) != 0) {
                    first = q;
                    second = k;
                }
            }
        } else {
            bool seen = false;
            for (int q = 0; q < distinct; q++)
                seen |= strcmp(vals[q], m->val) == 0;
            if (!seen && distinct < 16) {
                snprintf(vals[distinct++], sizeof vals[0], "%s", m->val);
                if (first < 0)
                    first = k;
                else if (second < 0)
                    second = k;
            }
        }
    }
    bool fire =
        ru->type == RT_CAPTURE_DISAGREE ? second >= 0 : distinct >= (int)ru->min && distinct >= 2;
    if (!fire) return;
    char why[400];
    if (ru->type == RT_CAPTURE_DISAGREE)
        snprintf(why, sizeof why, "correlation %s: '%s' vs '%s' at the same %s: ", ru->id,
                 r->raws[first].val, r->raws[second].val, r->raws[first].key);
    else
        snprintf(why, sizeof why, "correlation %s: %d distinct values: ", ru->id, distinct);
    add_hit(r, ru->cls, DK_CORR, ru->strength, ru->id, line_evidence(r, r->raws[first].line, why));
    if (second >= 0)
        add_hit(r, ru->cls, DK_CORR, ru->strength, ru->id,
                line_evidence(r, r->raws[second].line, why));
}

/* Ranks (keys) compared with each other: the slowest against the median.
 * One slow rank among many points at its node (a straggler); all ranks
 * equally slow do not. */
static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Ranks that share a host: every rank of one host slow against the
 * median of the ranks elsewhere is that host, however many ranks it runs
 * (the ranks elsewhere wait for it, so their own step times look even).
 * True when it named a host. */
#define NODE_RATIO 1.3

static bool host_outlier(run *r, const diag_rule *ru, char (*keys)[64], const double *vals,
                         const int *lines, int nk)
{
    enum { MAXK = 256 };
    const char *host[MAXK];
    int nh = 0;
    for (int q = 0; q < nk; q++) {
        host[q] = NULL;
        for (int k = 0; k < r->nraws && !host[q]; k++) {
            const rawm *m = &r->raws[k];
            if (m->sig == ru->sig && m->host[0] && strcmp(m->key, keys[q]) == 0) host[q] = m->host;
        }
        nh += host[q] != NULL;
    }
    if (nh < nk) return false;
    double ratio = ru->min > 1 ? ru->min : 1.5;
    int found = -1, nfound = 0;
    for (int q = 0; q < nk; q++) {
        bool first = true; /* each host once, by its first rank */
        for (int p = 0; p < q && first; p++)
            first = strcmp(host[p], host[q]) != 0;
        if (!first) continue;
        double others[MAXK], lo = -1, hi = -1;
        int no = 0, mine = 0;
        for (int p = 0; p < nk; p++) {
            if (strcmp(host[p], host[q]) != 0) {
                others[no++] = vals[p];
                continue;
            }
            mine++;
            if (lo < 0 || vals[p] < lo) lo = vals[p];
            if (vals[p] > hi) hi = vals[p];
        }
        if (no < 2) continue;
        qsort(others, (size_t)no, sizeof *others, cmp_double);
        double med = others[no / 2];
        /* several ranks of one host all that slow agree with each other:
         * the margin of a per-node summary is enough */
        double rq = !ru->low && mine >= 2 && ratio > NODE_RATIO ? NODE_RATIO : ratio;
        if (med > 0 && (ru->low ? hi * ratio <= med : lo >= rq * med)) {
            found = q;
            nfound++;
        }
    }
    if (nfound != 1) return false;
    char why[300];
    snprintf(why, sizeof why,
             "correlation %s: every rank on host %s at %s %.1fx the median of the ranks on "
             "other hosts: ",
             ru->id, host[found], ru->low ? "most 1/" : "least", ratio);
    add_hit(r, ru->cls, DK_CORR, ru->strength, ru->id, line_evidence(r, lines[found], why));
    return true;
}

#define CONSISTENT_RATIO 1.25

/* The one key whose every sample is far below the median of the others'
 * least samples: one rank's or node's throughput. */
static void rank_low(run *r, const diag_rule *ru, char (*keys)[64], const double *mins,
                     const int *lines, int nk)
{
    enum { MAXK = 256 };
    double sorted[MAXK];
    memcpy(sorted, mins, (size_t)nk * sizeof *mins);
    qsort(sorted, (size_t)nk, sizeof *sorted, cmp_double);
    double med = sorted[nk / 2];
    double ratio = ru->min > 1 ? ru->min : 1.5;
    int worst = 0, slow = 0;
    for (int q = 1; q < nk; q++)
        if (mins[q] < mins[worst]) worst = q;
    for (int q = 0; q < nk; q++)
        slow += mins[q] * ratio <= med;
    if (med <= 0 || mins[worst] * ratio > med || slow != 1) return;
    char why[300];
    snprintf(why, sizeof why,
             "correlation %s: only %s at %g, 1/%.1f of the median %g of %d: ", ru->id, keys[worst],
             mins[worst], med / (mins[worst] > 0 ? mins[worst] : 1), med, nk);
    add_hit(r, ru->cls, DK_CORR, ru->strength, ru->id, line_evidence(r, lines[worst], why));
}

static void rule_outlier(run *r, const diag_rule *ru)
{
    enum { MAXK = 256 };
    char keys[MAXK][64];
    double vals[MAXK], mins[MAXK];
    int lines[MAXK], nsamp[MAXK], nk = 0;
    for (int k = 0; k < r->nraws; k++) {
        const rawm *m = &r->raws[k];
        if (m->sig != ru->sig || !m->key[0] || !m->val[0]) continue;
        double v = strtod(m->val, NULL);
        int q = 0;
        while (q < nk && strcmp(keys[q], m->key) != 0)
            q++;
        if (q == nk) {
            if (nk == MAXK) continue;
            snprintf(keys[nk], sizeof keys[0], "%s", m->key);
            vals[nk] = mins[nk] = v;
            nsamp[nk] = 1;
            lines[nk++] = m->line;
            continue;
        }
        nsamp[q]++;
        if (v < mins[q]) mins[q] = v;
        if (v > vals[q]) {
            vals[q] = v;
            lines[q] = m->line;
        }
    }
    if (nk < ru->min_keys) return;
    /* a wait far above its peers is a rank that waits, not the slow one:
     * a low rule with hosts judges hosts only; without a host capture (a
     * throughput per rank or node) the one far below is the slow one */
    if (host_outlier(r, ru, keys, vals, lines, nk)) return;
    if (ru->low) {
        if (!r->db->sigs[ru->sig].cap_host) rank_low(r, ru, keys, mins, lines, nk);
        return;
    }
    double sorted[MAXK];
    memcpy(sorted, vals, (size_t)nk * sizeof *vals);
    qsort(sorted, (size_t)nk, sizeof *sorted, cmp_double);
    double med = sorted[nk / 2];
    int worst = 0;
    for (int q = 1; q < nk; q++)
        if (vals[q] > vals[worst]) worst = q;
    double ratio = ru->min > 1 ? ru->min : 1.5;
    /* a rank slower in every one of several samples is slow for good, not
     * a burst: a smaller margin is enough (its least sample against the
     * median of every rank's worst) */
    if (nsamp[worst] >= 2 && mins[worst] >= CONSISTENT_RATIO * med && ratio > CONSISTENT_RATIO)
        ratio = CONSISTENT_RATIO;
    if (med <= 0 || vals[worst] < ratio * med) return;
    /* more than one rank that slow is not one node's problem */
    int slow = 0;
    for (int q = 0; q < nk; q++)
        slow += vals[q] >= ratio * med;
    if (slow > 1 && slow * 4 > nk) return;
    char why[300];
    snprintf(why, sizeof why,
             "correlation %s: %s %s at %g, %.1fx the median %g of %d ranks: ", ru->id,
             slow == 1 ? "only" : "few ranks like", keys[worst], vals[worst], vals[worst] / med,
             med, nk);
    add_hit(r, ru->cls, DK_CORR, ru->strength, ru->id, line_evidence(r, lines[worst], why));
}

/* A value below its reference by the same pattern (a power limit read
 * against the default limit of the same nvidia-smi -q section): each value
 * is judged against the nearest reference line of its source. */
/* A reading with its unit, if any: memory sizes compare in one unit
 * ("120.00 MiB" against "39.39 GiB total capacity"); others as written. */
static double unit_value(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    while (*end == ' ')
        end++;
    static const char units[] = "KMGT";
    const char *u = *end ? strchr(units, toupper((unsigned char)*end)) : NULL;
    if (u && (end[1] == 'B' || (end[1] == 'i' && end[2] == 'B')))
        for (const char *p = units; p <= u; p++)
            v *= 1024.0;
    return v;
}

static void rule_below_reference(run *r, const diag_rule *ru)
{
    for (int k = 0; k < r->nraws; k++) {
        const rawm *m = &r->raws[k];
        if (m->sig != ru->sig || !m->key[0] || !m->val[0] ||
            diag_re_match(&ru->reference, m->key, strlen(m->key), r->md))
            continue;
        int best = -1;
        for (int j = 0; j < r->nraws; j++) {
            const rawm *q = &r->raws[j];
            if (q->sig != ru->sig || !q->val[0] || r->lines[q->line].src != r->lines[m->line].src ||
                !diag_re_match(&ru->reference, q->key, strlen(q->key), r->md))
                continue;
            if (best < 0 || abs(q->line - m->line) < abs(r->raws[best].line - m->line)) best = j;
        }
        if (best < 0) continue;
        double v = unit_value(m->val), ref = unit_value(r->raws[best].val);
        if (!(ref > 0) || v >= ru->factor * ref) continue;
        char why[300];
        snprintf(why, sizeof why, "correlation %s: %s %g below %g x %s %g: ", ru->id, m->key, v,
                 ru->factor, r->raws[best].key, ref);
        add_hit(r, ru->cls, DK_CORR, ru->strength, ru->id, line_evidence(r, m->line, why));
        add_hit(r, ru->cls, DK_CORR, ru->strength, ru->id,
                line_evidence(r, r->raws[best].line, why));
        return;
    }
}

/* NCCL-style interface lists: "eth" is a prefix, "=eth0" exact, a leading
 * "^" excludes; comma-separated.  True if chosen is allowed by spec. */
static bool ifname_allowed(const char *spec, const char *chosen)
{
    bool exclude = spec[0] == '^';
    if (exclude) spec++;
    bool exact = spec[0] == '=';
    if (exact) spec++;
    bool match = false;
    char buf[64];
    snprintf(buf, sizeof buf, "%s", spec);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        /* NCCL_IB_HCA entries may name a port ("mlx5_0:1"): the device decides */
        size_t n = strcspn(t, ":");
        match |=
            exact ? strlen(chosen) == n && strncmp(chosen, t, n) == 0 : strncmp(chosen, t, n) == 0;
    }
    return exclude ? !match : match;
}

static void rule_config_chosen(run *r, const diag_rule *ru)
{
    /* the configuration may come from another source than the choice (a
     * node's nccl.conf in the events, NCCL's INFO lines in the job log),
     * and sources are walked in a fixed order: a choice with no setting
     * before it is judged against the first setting anywhere */
    int conf = -1, any = -1;
    for (int k = 0; k < r->nraws && any < 0; k++)
        if (r->raws[k].sig == ru->sig && r->raws[k].key[0]) any = k;
    for (int k = 0; k < r->nraws; k++) {
        const rawm *m = &r->raws[k];
        if (m->sig != ru->sig) continue;
        if (m->key[0]) conf = k;
        int c = conf >= 0 ? conf : any;
        if (!m->val[0] || c < 0 || ifname_allowed(r->raws[c].key, m->val)) continue;
        conf = c;
        char why[300];
        snprintf(why, sizeof why, "correlation %s: configured '%s' but chose '%s': ", ru->id,
                 r->raws[conf].key, m->val);
        add_hit(r, ru->cls, DK_CORR, ru->strength, ru->id, line_evidence(r, m->line, why));
        add_hit(r, ru->cls, DK_CORR, ru->strength, ru->id,
                line_evidence(r, r->raws[conf].line, why));
        return;
    }
}

/* Values no owner lists: the (?<val>) captures (the PIDs nvidia-smi shows
 * on the GPUs) against the (?<key>) captures (the PIDs the running jobs
 * own, as scontrol listpids prints them).  Judged only when an owner list
 * was collected: without one, nothing says who owns what. */
static void rule_unowned(run *r, const diag_rule *ru)
{
    int owner = -1;
    for (int k = 0; k < r->nraws && owner < 0; k++)
        if (r->raws[k].sig == ru->sig && r->raws[k].key[0]) owner = k;
    if (owner < 0) return;
    for (int k = 0; k < r->nraws; k++) {
        const rawm *m = &r->raws[k];
        if (m->sig != ru->sig || !m->val[0]) continue;
        bool owned = false;
        for (int q = 0; q < r->nraws && !owned; q++)
            owned = r->raws[q].sig == ru->sig && strcmp(r->raws[q].key, m->val) == 0;
        if (owned) continue;
        char why[300];
        snprintf(why, sizeof why,
                 "correlation %s: '%s' is on the GPUs but no running job owns it: ", ru->id,
                 m->val);
        add_hit(r, ru->cls, DK_CORR, ru->strength, ru->id, line_evidence(r, m->line, why));
        add_hit(r, ru->cls, DK_CORR, ru->strength, ru->id,
                line_evidence(r, r->raws[owner].line, why));
        return;
    }
}

/* A reading as written: "1,620", "0.82", "412k", "1.2 M". */
static double reading_value(const char *v)
{
    char buf[64];
    size_t n = 0;
    for (const char *p = v; *p && n < sizeof buf - 1; p++)
        if (*p != ',' && *p != ' ') buf[n++] = *p;
    buf[n] = 0;
    char *end;
    double x = strtod(buf, &end);
    switch (*end) {
    case 'k':
    case 'K':
        return x * 1e3;
    case 'M':
        return x * 1e6;
    case 'G':
        return x * 1e9;
    default:
        return x;
    }
}

/* The second value a line gives right after a reading: "9.8M (Dec 04) ->
 * 7.1M", "410 to 820", "30.6k before the upgrade, 22.2k after".  Only
 * parenthesised text (a date) may carry digits before the connector. */
static bool paired_reading(const char *s, size_t len, double *out)
{
    char w[96];
    size_t n = len < sizeof w - 1 ? len : sizeof w - 1;
    memcpy(w, s, n);
    w[n] = 0;
    static const char *const conn[] = {"->",     "=>",    "\xe2\x86\x92", " to ",
                                       " then ", " now ", "before"};
    const char *at = NULL;
    size_t cl = 0;
    for (size_t i = 0; i < sizeof conn / sizeof *conn; i++) {
        const char *p = strstr(w, conn[i]);
        if (p && (!at || p < at)) {
            at = p;
            cl = strlen(conn[i]);
        }
    }
    if (!at) return false;
    int depth = 0;
    for (const char *p = w; p < at; p++) {
        depth += (*p == '(') - (*p == ')');
        if (!depth && isdigit((unsigned char)*p)) return false;
    }
    const char *p = at + cl;
    for (depth = 0; *p && (depth || !isdigit((unsigned char)*p)); p++)
        depth += (*p == '(') - (*p == ')');
    if (!*p) return false;
    *out = reading_value(p);
    return *out > 0;
}

/* One measure's readings in the order they were logged. */
typedef struct reading_run {
    char key[64];
    double first, last;
    int n, first_line, last_line;
} reading_run;

static void reading_add(reading_run *rr, int *nrr, int max, const char *key, double v, int line)
{
    char k[64];
    size_t n = 0;
    for (const char *p = key; *p && n < sizeof k - 1; p++) /* "Step_Time" is "step time" */
        if (isalnum((unsigned char)*p) || *p == '/' || *p == '@' || *p == '#')
            k[n++] = (char)tolower((unsigned char)*p);
    k[n] = 0;
    int q = 0;
    while (q < *nrr && strcmp(rr[q].key, k) != 0)
        q++;
    if (q == *nrr) {
        if (q == max) return;
        memset(&rr[q], 0, sizeof rr[q]);
        snprintf(rr[q].key, sizeof rr[q].key, "%s", k);
        rr[q].first = v;
        rr[q].first_line = line;
        (*nrr)++;
    }
    rr[q].last = v;
    rr[q].last_line = line;
    rr[q].n++;
}

/* A performance measure worse at its last reading than at its first, when
 * a software change (driver, CUDA/NCCL, image, kernel) is on record: no
 * fault class names a regression of software, so it is an anomaly for a
 * human to bisect, never health.  Every reading of a line counts (a line
 * may carry "before" and "after" values). */
static void rule_slowdown_after(run *r, const diag_rule *ru)
{
    if (!group_marked(r, ru->and_seen)) return;
    enum { MAXR = 32 };
    reading_run rr[MAXR];
    int nrr = 0;
    const diag_sig *g = &r->db->sigs[ru->sig];
    for (int li = 0; li < r->nlines; li++) {
        const tline *l = &r->lines[li];
        if (!(g->srcmask & (1u << l->src))) continue;
        PCRE2_SIZE off = 0;
        for (int guard = 0; guard < 8 && off < l->len; guard++) {
            int rc = pcre2_match(g->re.code, (PCRE2_SPTR)l->s, l->len, off, 0, r->md, NULL);
            if (rc < 0) break;
            const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md);
            char key[64], val[64];
            cap_copy(l->s, ov, g->cap_key, key, sizeof key);
            cap_copy(l->s, ov, g->cap_val, val, sizeof val);
            if (key[0] && val[0]) {
                /* a series per measure and source (a job's own readings,
                 * a dashboard's fleet totals); a pair on one line alone */
                char k2[80];
                double v1 = reading_value(val), v2;
                PCRE2_SIZE e = ov[2 * g->cap_val + 1];
                bool pair = paired_reading(l->s + e, l->len - e, &v2);
                if (pair)
                    snprintf(k2, sizeof k2, "%.60s@%d", key, li);
                else
                    snprintf(k2, sizeof k2, "%.60s#%d", key, l->src);
                reading_add(rr, &nrr, MAXR, k2, v1, li);
                if (pair) reading_add(rr, &nrr, MAXR, k2, v2, li);
            }
            off = ov[1] > off ? ov[1] : off + 1;
        }
    }
    double ratio = ru->min > 1 ? ru->min : 1.2;
    for (int q = 0; q < nrr; q++) {
        const reading_run *x = &rr[q];
        if (x->n < 2 || !(x->first > 0) || !(x->last > 0)) continue;
        size_t kl = strcspn(x->key, "@#"); /* the measure, without where it was read */
        bool rate = diag_re_match(&ru->reference, x->key, kl, r->md);
        double worse = rate ? x->first / x->last : x->last / x->first;
        if (worse < ratio) continue;
        char why[300];
        snprintf(why, sizeof why,
                 "[unexplained] correlation %s: %.*s %g then %g (%.2fx worse) after a software "
                 "change (%s), no fault class explains it: ",
                 ru->id, (int)kl, x->key, x->first, x->last, worse, ru->and_seen);
        bool wide = ru->wide_seen[0] && group_marked(r, ru->wide_seen);
        add_anomaly(r, ru->strength, wide ? 2 : 1, ru->id, line_evidence(r, x->last_line, why));
        return;
    }
}

/* ---- output --------------------------------------------------------------- */

static double round2(double v)
{
    return floor(v * 100.0 + 0.5) / 100.0;
}

static const json_t *tax_class(const json_t *taxonomy, const char *id)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(taxonomy, "classes"), i, c)
    {
        const char *cid = json_string_value(json_object_get(c, "id"));
        if (cid && strcmp(cid, id) == 0) return c;
    }
    return NULL;
}

/* True if ev (borrowed) already holds text, or the same line under
 * another "[...]" note. */
static bool evidence_has(const json_t *ev, const char *text)
{
    const char *body = strchr(text, ']'); /* past an "[Xid ...]" note */
    size_t j;
    json_t *e;
    json_array_foreach(ev, j, e)
    {
        const char *t = json_string_value(e);
        if (strcmp(t, text) == 0 || strstr(t, body ? body + 1 : text) != NULL) return true;
    }
    return false;
}

static json_t *entry(run *r, int c, const cstate *s, const json_t *taxonomy, const int *absorbed)
{
    const diag_class *dc = &r->db->classes[c];
    const json_t *tc = taxonomy ? tax_class(taxonomy, dc->id) : NULL;
    const char *scope = tc && json_is_string(json_object_get(tc, "scope"))
                            ? json_string_value(json_object_get(tc, "scope"))
                            : dc->scope;
    bool destructive = tc && json_is_boolean(json_object_get(tc, "destructive"))
                           ? json_is_true(json_object_get(tc, "destructive"))
                           : dc->destructive;
    const json_t *resp = tc && json_is_array(json_object_get(tc, "response"))
                             ? json_object_get(tc, "response")
                             : dc->response;
    json_t *ev = json_array();
    json_t *src = json_array();
    for (int k = 0; k < DK_N; k++)
        if (s->kinds & (1u << k)) json_array_append_new(src, json_string(KIND_NAME[k]));
    /* strongest evidence first, distinct texts only */
    for (int want = ST_DECISIVE; want >= ST_WEAK; want--)
        for (int i = 0; i < r->nhits && json_array_size(ev) < MAX_EVIDENCE; i++) {
            const hit *h = &r->hits[i];
            if ((h->cls != c && !(absorbed && absorbed[h->cls] == c)) || h->strength != want ||
                !h->text)
                continue;
            if (!evidence_has(ev, h->text)) json_array_append_new(ev, json_string(h->text));
        }
    bool act = s->conf >= r->db->act && (!destructive || s->corroborated);
    json_t *o = json_object();
    json_object_set_new(o, "fault_class", json_string(dc->id));
    json_object_set_new(o, "confidence", json_real(round2(s->conf)));
    json_object_set_new(o, "scope", json_string(scope));
    json_object_set_new(o, "evidence", ev);
    json_object_set_new(o, "sources", src);
    json_object_set_new(o, "response", json_deep_copy(resp));
    json_object_set_new(o, "runbook", dc->runbook[0] ? json_string(dc->runbook) : json_null());
    json_object_set_new(o, "destructive", json_boolean(destructive));
    json_object_set_new(o, "corroborated", json_boolean(s->corroborated));
    json_object_set_new(o, "act", json_boolean(act));
    return o;
}

/* Evidence kinds that were collected at all (a non-empty source). */
static int kinds_present(const run *r, char *names, size_t n)
{
    static const int src[] = {DS_KERNEL, DS_JOB, DS_EVENTS, DS_METRICS, DS_HISTORY};
    static const char *const nm[] = {"kernel_log", "job_log", "events", "metrics", "history"};
    int k = 0;
    size_t o = 0;
    names[0] = '\0';
    for (int i = 0; i < 5; i++)
        if (r->nsrc[src[i]] > 0) {
            k++;
            o += (size_t)snprintf(names + o, n > o ? n - o : 0, "%s%s", o ? ", " : "", nm[i]);
        }
    if (r->nsrc[DS_REASON] + r->nsrc[DS_STATE] + r->nsrc[DS_JOBS] > 0) {
        k++;
        snprintf(names + o, n > o ? n - o : 0, "%s%s", o ? ", " : "", "slurm");
    }
    return k;
}

/* healthy needs positive evidence: sources that were collected and are
 * clean.  Its confidence grows with how many kinds were seen (one kind
 * alone is a weak statement, five are a strong one). */
static json_t *healthy_entry(run *r, double best, const json_t *taxonomy)
{
    int h = diag_class_index(r->db, "healthy");
    char names[120];
    int k = kinds_present(r, names, sizeof names);
    double cover = 0.3 + 0.15 * k;
    if (cover > 1.0) cover = 1.0;
    cstate s = {.conf = (1.0 - best) * cover, .corroborated = k >= 2};
    json_t *o = entry(r, h, &s, taxonomy, NULL);
    char why[300];
    snprintf(why, sizeof why,
             "clean: %d evidence kind(s) collected (%s) and no fault class reached %.2f "
             "(strongest %.2f)",
             k, names, r->db->report, best);
    json_array_append_new(json_object_get(o, "evidence"), json_string(why));
    if (json_array_size(r->absent)) {
        char miss[600];
        size_t m = (size_t)snprintf(miss, sizeof miss, "not judged, absent from the metrics:");
        size_t i;
        json_t *a;
        json_array_foreach(r->absent, i, a)
        {
            if (m < sizeof miss)
                m += (size_t)snprintf(miss + m, sizeof miss - m, " %s", json_string_value(a));
        }
        json_array_append_new(json_object_get(o, "evidence"), json_string(miss));
    }
    json_object_set_new(o, "act", json_false());
    return o;
}

/* A line telling of a task killed by signal 9 (SIGKILL, "task 3: Killed",
 * exit 137). */
static bool kill_told(const char *t)
{
    return strstr(t, "SIGKILL") || strstr(t, ": Killed") || strstr(t, "signal 9") ||
           strstr(t, "exit=0:9") || strstr(t, "status 137") || strstr(t, "code 137");
}

/* True when a job-level anomaly names the asked node as a word (the
 * rank's host in a NaN or SIGKILL line, a failed job that ran on it
 * alone): the evidence then points at that node, and its job-level words
 * do not make the question a job's. */
static bool names_node(const run *r)
{
    size_t n = r->node ? strlen(r->node) : 0;
    if (n < 2) return false;
    for (int i = 0; i < r->nanoms; i++) {
        if (r->anoms[i].level != 0) continue;
        /* a kill with nothing to explain it names the host the launcher ran
         * the task on, not a cause there, unless that node's own kernel log
         * was read (its OOM killer ruled out: the node is to look at) */
        if (!r->kernel_given && kill_told(r->anoms[i].text)) continue;
        for (const char *p = strstr(r->anoms[i].text, r->node); p; p = strstr(p + 1, r->node)) {
            bool before = p == r->anoms[i].text || !(isalnum((unsigned char)p[-1]) ||
                                                     p[-1] == '-' || p[-1] == '_' || p[-1] == '.');
            /* "node.cluster.local" is the node fully qualified; "node.5" is not */
            bool after = !(isalnum((unsigned char)p[n]) || p[n] == '-' || p[n] == '_' ||
                           (p[n] == '.' && isdigit((unsigned char)p[n + 1])));
            if (before && after) return true;
        }
    }
    return false;
}

/* inconclusive: anomalies no class explains, or nothing to judge.  The
 * anomalies are the evidence; the answer is a human, never a runbook. */
static json_t *inconclusive_entry(run *r, double best, const json_t *taxonomy, int ic)
{
    cstate s = {.conf = 0, .corroborated = false};
    json_t *o = entry(r, ic, &s, taxonomy, NULL);
    json_t *ev = json_object_get(o, "evidence");
    double strongest = 0;
    for (int want = ST_DECISIVE; want >= ST_WEAK; want--)
        for (int i = 0; i < r->nanoms && json_array_size(ev) < MAX_EVIDENCE; i++)
            if (r->anoms[i].strength == want && !evidence_has(ev, r->anoms[i].text)) {
                json_array_append_new(ev, json_string(r->anoms[i].text));
                if (r->db->pstrength[want] > strongest) strongest = r->db->pstrength[want];
            }
    char names[120], why[300];
    int k = kinds_present(r, names, sizeof names);
    if (r->nanoms)
        snprintf(why, sizeof why,
                 "%d anomal%s that no fault class explains (strongest class %.2f, below %.2f): "
                 "escalate to a human",
                 r->nanoms, r->nanoms == 1 ? "y" : "ies", best, r->db->report);
    else
        snprintf(why, sizeof why,
                 "no evidence to judge (%d kind(s) collected%s%s): collect kernel log, metrics "
                 "and Slurm state, or escalate to a human",
                 k, k ? ": " : "", names);
    json_array_append_new(ev, json_string(why));
    json_object_set_new(o, "confidence", json_real(round2(r->nanoms ? strongest : 0.5)));
    /* the scope is what the anomalies point at: a job's failure alone is
     * not a reason to look at its node */
    int node = 0, job = 0, cluster = 0;
    for (int i = 0; i < r->nanoms; i++) {
        node += r->anoms[i].level == 1;
        job += r->anoms[i].level == 0;
        /* a strong fleet anomaly (the same failure on many hosts) says
         * the node anomalies of its lines are the fleet's too */
        cluster += r->anoms[i].level == 2 ? (r->anoms[i].strength >= ST_STRONG ? 100 : 1) : 0;
    }
    /* the whole fleet alike: no node of it is the cause; a node's own
     * anomaly that the evidence says many nodes share (a filesystem
     * evicting every client) is one of the fleet's */
    if (cluster && cluster >= node) json_object_set_new(o, "scope", json_string("cluster"));
    /* numerics that go wrong on one node's ranks alone are that node's */
    else if (job && !node && !names_node(r) &&
             !(group_marked(r, "numerics-on-one-node") &&
               anomaly_seen(r, "anomaly-loss-nonfinite")))
        json_object_set_new(o, "scope", json_string("job"));
    json_object_set_new(o, "runbook", json_null());
    json_object_set_new(o, "act", json_false());
    return o;
}

/* Xid 154: the driver's recovery action overrides the immediate action of
 * the Xids it accompanies.  A reset or reboot means the error was not one
 * a restarted application survives: job-scope Xid classes are demoted and
 * the request itself stays as an anomaly until a node class explains it. */
static void apply_recovery(run *r, cstate *cs)
{
    if (!r->rec) return;
    const struct fm_diag_db *db = r->db;
    int rank = action_rank(r->rec->action);
    char extra[160];
    snprintf(extra, sizeof extra, "[Xid 154: driver recovery action %s (%s)] ", r->rec->label,
             r->rec->action);
    for (int c = 0; c < db->nclasses; c++) {
        if (!r->xidcls[c] || !cs[c].any) continue;
        add_hit(r, c, KIND_OF[r->lines[r->rec_line].src], ST_WEAK, "xid-line",
                line_evidence(r, r->rec_line, extra));
        if (rank >= 2 && strcmp(db->classes[c].scope, "job") == 0) cs[c].conf *= 0.5;
    }
    if (rank < 2) return;
    for (int c = 0; c < db->nclasses; c++)
        if (cs[c].conf >= db->report && strcmp(db->classes[c].scope, "node") == 0 &&
            db->classes[c].destructive)
            return; /* a node class that resets or reboots explains it */
    add_anomaly(r, ST_STRONG, 1, "xid-recovery", line_evidence(r, r->rec_line, extra));
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
                            fmt("evidence for %s (%.2f) that %s%s%s rules out: escalate to a "
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
                char *t = fmt("weak evidence for %s from %d signatures and %d source kind(s), "
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
        top = entry(&r, order[0], &cs[order[0]], taxonomy, absorbed);
    } else if (ic >= 0 && (unexplained || kinds_present(&r, names, sizeof names) == 0)) {
        top = inconclusive_entry(&r, best, taxonomy, ic);
        json_array_append(classes, top);
    } else {
        top = healthy_entry(&r, best, taxonomy);
        json_array_append(classes, top);
    }
    for (int i = 0; i < n && json_array_size(classes) < 5; i++)
        json_array_append_new(classes, entry(&r, order[i], &cs[order[i]], taxonomy, absorbed));
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
