/* Job-level facts read across sources, then one rule over the facts.
 *
 * A signature reads one line; what a job did over time needs several: the
 * GPUs' utilisation as a series (metrics, a Prometheus answer pasted as
 * text), whether the node's GPUs are held (a node state, a job list, a
 * reservation, a job label on the series) and whether a step counter still
 * advances.  Each fact is taken from whichever source says it, so a rule
 * over the facts holds for any layout that carries the same meaning:
 *
 *   held, busy before, ~0 since for long, no progress  -> job_hung
 *   held, ~0 all along for hours                        -> idle_allocation
 *   nothing held                                        -> not idle_allocation
 *   ~0 a short while, busy again after                  -> not job_hung
 *   a node completing a job whose processes are gone    -> stale_compute_state */
#include "diag_int.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define IDLE_PCT 2.0      /* a GPU at or below this utilisation does no work */
#define BUSY_PCT 20.0     /* at or above: the job was computing */
#define HUNG_SECS 1800.0  /* a working job ~0 this long with no progress: hung */
#define HELD_SECS 3600.0  /* held and ~0 this long, never busy: an idle allocation */
#define PAUSE_SECS 1800.0 /* ~0 at most this long, busy again after: a pause (a checkpoint) */
#define MAX_GPUS 64
#define MAX_SAMPLES 512

/* One GPU's utilisation samples, in percent, by time. */
typedef struct useries {
    char key[160];
    char host[64];
    double t[MAX_SAMPLES];
    double v[MAX_SAMPLES];
    int n;
    bool job_label; /* a job id label on its samples: the GPU is held */
} useries;

typedef struct job_facts {
    int ngpus;
    bool idle_now;    /* every GPU's latest sample reads ~0 */
    double idle_for;  /* seconds every GPU has read ~0 up to its latest sample */
    bool busy_before; /* a GPU computed before that idle run */
    bool paused;      /* every GPU read ~0 a short while and computed again after */
    bool job_label;
    int held;     /* 1 the node's GPUs are held, -1 nothing is, 0 not told */
    int progress; /* 1 a step counter went on after a quiet moment, 0 not told */
    bool completing, procs_gone;
} job_facts;

/* Utilisation in percent from a series name, NAN for any other field:
 * DCGM's GPU_UTIL is a percentage, the profiling fields and
 * nvidia-smi exporter's *_ratio are fractions. */
static double util_pct(const char *name, double v)
{
    if (!name) return NAN;
    bool ratio = strstr(name, "PROF_GR_ENGINE_ACTIVE") || strstr(name, "PROF_SM_ACTIVE") ||
                 strstr(name, "utilization_gpu_ratio");
    if (ratio) return v * 100.0;
    if (strcasestr(name, "gpu_util") || strstr(name, "utilization_gpu")) return v;
    return NAN;
}

static bool has_job_label(const json_t *labels)
{
    static const char *const keys[] = {"job",     "jobid",        "job_id",
                                       "hpc_job", "slurm_job_id", "SLURM_JOB_ID"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        const char *v = json_string_value(json_object_get(labels, keys[i]));
        if (v && *v && strcmp(v, "0") != 0) return true;
    }
    return false;
}

static useries *series_for(useries *gs, int *ng, const json_t *labels, const char *host)
{
    char k[160];
    gpu_key(labels, k, sizeof k);
    for (int i = 0; i < *ng; i++)
        if (strcmp(gs[i].key, k) == 0) return &gs[i];
    if (*ng >= MAX_GPUS) return NULL;
    useries *g = &gs[(*ng)++];
    memset(g, 0, sizeof *g);
    snprintf(g->key, sizeof g->key, "%s", k);
    snprintf(g->host, sizeof g->host, "%s", host);
    return g;
}

/* Samples of the node diagnosed (all, when none is named), time-stamped. */
static void collect_util(run *r, const json_t *metrics, useries *gs, int *ng)
{
    size_t i;
    const json_t *s;
    json_array_foreach(metrics, i, s)
    {
        const json_t *labels = json_object_get(s, "labels");
        double pct = util_pct(json_string_value(json_object_get(s, "name")),
                              json_number_value(json_object_get(s, "value")));
        double t = sample_time(s);
        char hb[128];
        const char *host = host_of(labels, hb, sizeof hb);
        if (isnan(pct) || isnan(t)) continue;
        if (r->node && *r->node && *host && !same_host(host, r->node)) continue;
        useries *g = series_for(gs, ng, labels, host);
        if (!g || g->n >= MAX_SAMPLES) continue;
        int j = g->n++;
        while (j > 0 && g->t[j - 1] > t) { /* insertion: samples come nearly sorted */
            g->t[j] = g->t[j - 1];
            g->v[j] = g->v[j - 1];
            j--;
        }
        g->t[j] = t;
        g->v[j] = pct;
        g->job_label |= has_job_label(labels);
    }
}

/* One GPU: how long it has read ~0 up to its latest sample, whether it
 * computed before that, and whether a short ~0 run ended in work. */
static void gpu_facts(const useries *g, double *idle_for, bool *busy_before, bool *paused)
{
    int k = g->n;
    while (k > 0 && g->v[k - 1] <= IDLE_PCT)
        k--;
    *idle_for = k < g->n ? g->t[g->n - 1] - g->t[k] : -1;
    *busy_before = false;
    for (int j = 0; j < k; j++)
        *busy_before |= g->v[j] >= BUSY_PCT;
    *paused = false;
    for (int j = 0; j < g->n; j++) {
        if (g->v[j] > IDLE_PCT) continue;
        int e = j;
        while (e + 1 < g->n && g->v[e + 1] <= IDLE_PCT)
            e++;
        bool worked_before = j > 0 && g->v[j - 1] >= BUSY_PCT;
        bool works_after = e + 1 < g->n && g->v[e + 1] >= BUSY_PCT;
        if (worked_before && works_after && g->t[e + 1] - g->t[j - 1] <= PAUSE_SECS + 600)
            *paused = true;
        j = e;
    }
}

static void util_facts(run *r, const json_t *metrics, job_facts *f)
{
    useries *gs = calloc(MAX_GPUS, sizeof *gs);
    if (!gs) {
        r->oom = true;
        return;
    }
    int ng = 0;
    if (json_is_array(metrics)) collect_util(r, metrics, gs, &ng);
    if (json_is_array(r->textm)) collect_util(r, r->textm, gs, &ng);
    f->idle_now = false;
    f->idle_for = INFINITY;
    int npaused = 0;
    for (int i = 0; i < ng; i++) {
        if (gs[i].n < 2) continue;
        double idle_for;
        bool busy, paused;
        gpu_facts(&gs[i], &idle_for, &busy, &paused);
        f->ngpus++;
        f->idle_for = fmin(f->idle_for, idle_for);
        f->busy_before |= busy;
        npaused += paused;
        f->job_label |= gs[i].job_label;
    }
    f->idle_now = f->ngpus > 0 && f->idle_for >= 0;
    if (!f->idle_now) f->idle_for = 0;
    /* every GPU paused together: the job's pause, not one GPU's */
    f->paused = f->ngpus > 0 && npaused == f->ngpus && !f->idle_now;
    free(gs);
}

static bool line_has(const tline *l, const char *w)
{
    return memmem(l->s, l->len, w, strlen(w)) != NULL;
}

/* Case-blind search of a bounded line (lines are not NUL-terminated). */
static bool line_has_ci(const tline *l, const char *w)
{
    size_t n = strlen(w);
    for (size_t i = 0; i + n <= l->len; i++)
        if (strncasecmp(l->s + i, w, n) == 0) return true;
    return false;
}

static bool any_of(const tline *l, const char *const *w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (line_has_ci(l, w[i])) return true;
    return false;
}

/* Whether the node's GPUs are held, from whichever source says it: the
 * node's state, a job RUNNING in the job list, a reservation, a session
 * granted, requests of GPUs; or that nothing is. */
static void held_facts(const run *r, job_facts *f)
{
    static const char *const none[] = {"unallocated",    "no job",        "nothing allocated",
                                       "not allocated",  "0 allocated",   "no allocation",
                                       "no reservation", "no running job"};
    static const char *const held[] = {
        "ReservationName=", "reservation",    "salloc: Granted", "Granted job allocation",
        "JobState=RUNNING", "nvidia.com/gpu", "AllocTRES",       "allocated",
        "reserved",         "holding",        "holds "};
    int h = 0, free_ = 0;
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        if (l->src == DS_STATE) {
            bool idle = l->len == 4 && memcmp(l->s, "IDLE", 4) == 0;
            bool busy = (l->len >= 5 && memcmp(l->s, "ALLOC", 5) == 0) ||
                        (l->len >= 3 && memcmp(l->s, "MIX", 3) == 0);
            free_ += idle;
            h += busy;
            continue;
        }
        if (l->src == DS_JOBS) {
            h += line_has(l, "state=RUNNING");
            continue;
        }
        if (any_of(l, none, sizeof none / sizeof *none) || line_has(l, "0/8") || line_has(l, "0/4"))
            free_++;
        else if (any_of(l, held, sizeof held / sizeof *held))
            h++;
    }
    h += f->job_label;
    f->held = h && !free_ ? 1 : free_ && !h ? -1 : 0;
}

/* A step counter ("step 1200", "iter=88", "global_step: 5") in a line of
 * the job's log or notes; -1 when the line has none. */
static long step_value(const tline *l)
{
    static const char *const w[] = {"global_step", "iteration", "step", "iter"};
    for (size_t k = 0; k < sizeof w / sizeof *w; k++) {
        size_t n = strlen(w[k]);
        for (size_t i = 0; i + n < l->len; i++) {
            if (strncasecmp(l->s + i, w[k], n) != 0) continue;
            if (i > 0 && (isalnum((unsigned char)l->s[i - 1]) || l->s[i - 1] == '_')) continue;
            size_t j = i + n;
            while (j < l->len && j < i + n + 3 && strchr(" =:#[", l->s[j]))
                j++;
            if (j >= l->len || !isdigit((unsigned char)l->s[j])) continue;
            return strtol(l->s + j, NULL, 10);
        }
    }
    return -1;
}

/* A quiet moment told in a line: utilisation read ~0, GPUs idle, a
 * checkpoint being written. */
static bool quiet_line(const tline *l)
{
    static const char *const w[] = {"checkpoint", "idle", " 0%", " 0 %", "=0%", ":0%", " 0.0%"};
    return any_of(l, w, sizeof w / sizeof *w);
}

/* A quiet moment told before line i (in any source listed before it). */
static bool quiet_before(const run *r, int i)
{
    for (int k = 0; k < i; k++)
        if (quiet_line(&r->lines[k])) return true;
    return quiet_line(&r->lines[i]);
}

/* Progress: 1 when a step counter, within one source, reads higher after
 * a quiet line than anything before it (the job went on after the quiet
 * moment: it paused, it did not hang). */
/* A line saying the work went on after a quiet moment ("training
 * resumed", "steps continue"), not that it failed to. */
static bool resumed_told(const tline *l)
{
    static const char *const w[] = {"resumed",       "resumes",        "training continues",
                                    "continued",     "steps continue", "picked up again",
                                    "back to normal"};
    static const char *const no[] = {"not resumed",     "never resumed",  "hasn't resumed",
                                     "has not resumed", "did not resume", "didn't resume",
                                     "not continued"};
    return any_of(l, w, sizeof w / sizeof *w) && !any_of(l, no, sizeof no / sizeof *no);
}

static void progress_facts(const run *r, job_facts *f)
{
    static const int srcs[] = {DS_JOB, DS_EVENTS};
    for (int i = 0; i < r->nlines && !f->progress; i++)
        f->progress = (r->lines[i].src == DS_JOB || r->lines[i].src == DS_EVENTS) &&
                      resumed_told(&r->lines[i]) && quiet_before(r, i);
    for (size_t k = 0; k < sizeof srcs / sizeof *srcs && !f->progress; k++) {
        long max = -1, at_quiet = -1;
        for (int i = 0; i < r->nlines; i++) {
            const tline *l = &r->lines[i];
            if (l->src != srcs[k]) continue;
            long v = step_value(l);
            if (v >= 0 && at_quiet >= 0 && v > at_quiet) {
                f->progress = 1;
                break;
            }
            if (v > max) max = v;
            if (quiet_line(l) && max >= 0 && at_quiet < 0) at_quiet = max;
        }
    }
}

/* A process table's row ("31877 bob D ll_file_flush python") whose state
 * is D (uninterruptible sleep, any modifiers): a process the kernel holds. */
static bool ps_row_d(const tline *l)
{
    size_t i = 0;
    while (i < l->len && l->s[i] == ' ')
        i++;
    if (i >= l->len || !isdigit((unsigned char)l->s[i])) return false;
    while (i < l->len) {
        while (i < l->len && l->s[i] != ' ' && l->s[i] != '\t')
            i++;
        while (i < l->len && (l->s[i] == ' ' || l->s[i] == '\t'))
            i++;
        size_t b = i;
        while (i < l->len && l->s[i] != ' ' && l->s[i] != '\t')
            i++;
        size_t m = b + 1; /* the state's modifiers, within the token */
        while (m < i && strchr("slNL<+", l->s[m]))
            m++;
        if (i > b && i - b <= 4 && l->s[b] == 'D' && m == i) return true;
    }
    return false;
}

/* A node completing a job (its state, a drain for a kill that failed)
 * whose processes are gone or stuck in the kernel: the job's remains hold
 * the node, whatever words tell either half. */
static void completing_facts(const run *r, job_facts *f)
{
    static const char *const comp[] = {"COMPLETING", "Kill task failed", "stuck in CG", "state CG",
                                       "State=CG"};
    static const char *const gone[] = {"No running processes found",
                                       "no process",
                                       "no user process",
                                       "0 processes",
                                       "no slurmstepd",
                                       "no tasks",
                                       "nothing running",
                                       "returns nothing",
                                       "returned nothing",
                                       "processes are gone",
                                       "processes gone",
                                       "uninterruptible",
                                       "D state",
                                       "D-state",
                                       "state:D",
                                       "STAT D",
                                       "blocked for more than",
                                       "<defunct>",
                                       "defunct"};
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        f->completing |= any_of(l, comp, sizeof comp / sizeof *comp);
        f->procs_gone |=
            l->src != DS_STATE && (any_of(l, gone, sizeof gone / sizeof *gone) || ps_row_d(l));
    }
}

/* Drop a class's hits: a fact shows what they read is not that class. */
static void drop_class(run *r, int c)
{
    int k = 0;
    for (int i = 0; i < r->nhits; i++) {
        if (r->hits[i].cls == c)
            free(r->hits[i].text);
        else
            r->hits[k++] = r->hits[i];
    }
    r->nhits = k;
}

/* A class told by strong evidence that is not history. */
static bool class_hit(const run *r, int c)
{
    for (int i = 0; i < r->nhits; i++)
        if (r->hits[i].cls == c && !r->hits[i].old && r->hits[i].strength >= ST_STRONG) return true;
    return false;
}

/* Evidence for a destructive node class (a GPU that hung, fell off the
 * bus): the hardware's fault, of which a job that cannot end is a symptom. */
static bool hardware_hit(const run *r)
{
    for (int i = 0; i < r->nhits; i++) {
        const diag_class *c = &r->db->classes[r->hits[i].cls];
        if (!r->hits[i].old && c->destructive && strcmp(c->scope, "node") == 0 &&
            strcmp(c->id, "stale_compute_state") != 0)
            return true;
    }
    return false;
}

/* Clock times ("02:10", from "2026-12-06T02:10:05Z" or "02:10-03:00") in
 * a line as seconds of the day; at most max, returns how many. */
static int day_times(const tline *l, double *out, int max)
{
    int n = 0;
    for (size_t i = 0; i + 5 <= l->len && n < max; i++) {
        const char *c = l->s + i;
        if (i > 0 && (isdigit((unsigned char)c[-1]) || c[-1] == ':')) continue;
        size_t d = isdigit((unsigned char)c[1]) ? 2 : 1;
        if (!isdigit((unsigned char)c[0]) || i + d + 3 > l->len || c[d] != ':' ||
            !isdigit((unsigned char)c[d + 1]) || !isdigit((unsigned char)c[d + 2]))
            continue;
        int h = atoi(c), m = atoi(c + d + 1);
        if (h > 23 || m > 59) continue;
        out[n++] = h * 3600.0 + m * 60.0;
        i += d + 2;
        while (i + 1 < l->len && (l->s[i + 1] == ':' || isdigit((unsigned char)l->s[i + 1])))
            i++; /* the seconds */
    }
    return n;
}

/* A port of the node that went down, told by any tool (kernel, UFM,
 * subnet manager, a switch log, a person); and one that came back. */
static bool link_down_line(const tline *l)
{
    static const char *const w[] = {"link down", "port down",    "changed to DOWN", "is down",
                                    "went down", "lost carrier", "Link DOWN",       "State: Down"};
    return (line_has_ci(l, "port") || line_has_ci(l, "link") || line_has_ci(l, "mlx") ||
            line_has_ci(l, "HCA")) &&
           any_of(l, w, sizeof w / sizeof *w);
}

static bool link_up_line(const tline *l)
{
    static const char *const w[] = {"link up",         "port up",      "changed to ACTIVE",
                                    "State: Active",   "carrier on",   "link is back",
                                    "back up",         "LinkUp",       "came back",
                                    "no errors since", "stable since", "clean since"};
    return any_of(l, w, sizeof w / sizeof *w);
}

/* Planned work on the fabric or the node, announced: a maintenance
 * window, a change ticket, a firmware upgrade. */
static bool planned_line(const tline *l)
{
    static const char *const w[] = {"maint",           "change ticket", "change request",
                                    "change window",   "CHG",           "firmware upgrade",
                                    "firmware update", "planned",       "scheduled",
                                    "upgrade window"};
    static const char *const not [] = {"unplanned", "no maintenance", "not planned", "unscheduled",
                                       "no planned"};
    return any_of(l, w, sizeof w / sizeof *w) && !any_of(l, not, sizeof not / sizeof *not );
}

/* The links' story: a bounce (down, then up again), whether every down
 * fell inside an announced window (or no time says otherwise) and whether
 * the port read up after the last down. */
typedef struct link_facts {
    int downs;
    bool up_after;
    bool planned;
    bool covered;
} link_facts;

static void window_of(const run *r, double *lo, double *hi)
{
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int i = 0; i < r->nlines; i++) {
        if (!planned_line(&r->lines[i])) continue;
        double t[8];
        int n = day_times(&r->lines[i], t, 8);
        for (int k = 0; k < n; k++) {
            *lo = fmin(*lo, t[k]);
            *hi = fmax(*hi, t[k]);
        }
    }
    if (isfinite(*lo) && *hi - *lo < 600) *hi = *lo + 2 * 3600.0; /* a start alone */
}

static void link_story(const run *r, link_facts *lf)
{
    memset(lf, 0, sizeof *lf);
    double lo, hi;
    window_of(r, &lo, &hi);
    lf->covered = true;
    int last_down = -1;
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        if (planned_line(l)) {
            lf->planned = true;
            continue;
        }
        if (link_down_line(l)) {
            lf->downs++;
            last_down = i;
            double t[1];
            /* a down outside the window (15 min margin) is not the planned work */
            if (day_times(l, t, 1) == 1 && isfinite(lo) && (t[0] < lo - 900 || t[0] > hi + 900))
                lf->covered = false;
        } else if (link_up_line(l) && last_down >= 0) {
            lf->up_after = true;
        }
    }
    lf->up_after &= last_down >= 0;
}

/* Slowness told at all: a class for it, or a person or tool saying so. */
static bool slowness_told(const run *r, int straggler)
{
    static const char *const w[] = {"slower", "slowed", "slowdown", "crawl"};
    for (int i = 0; straggler >= 0 && i < r->nhits; i++)
        if (r->hits[i].cls == straggler && !r->hits[i].old) return true;
    for (int i = 0; i < r->nlines; i++)
        if (r->lines[i].src != DS_KERNEL && any_of(&r->lines[i], w, sizeof w / sizeof *w))
            return true;
    return false;
}

static void link_rule(run *r)
{
    link_facts lf;
    link_story(r, &lf);
    int ib = diag_class_index(r->db, "ib_link_down");
    int flap = diag_class_index(r->db, "nic_flapping");
    int slow = diag_class_index(r->db, "straggler_node");
    bool told = lf.downs || (ib >= 0 && class_hit(r, ib)) || (flap >= 0 && class_hit(r, flap));
    if (!told) return;
    if (lf.planned && lf.covered && (lf.up_after || !lf.downs)) {
        /* the planned work bounced the links and they read up after it */
        if (ib >= 0) drop_class(r, ib);
        if (flap >= 0) drop_class(r, flap);
        return;
    }
    if (lf.up_after && ib >= 0 && !class_hit(r, ib) && slowness_told(r, slow))
        add_hit(r, ib, DK_CORR, ST_STRONG, "facts-bounce-slow",
                diag_fmt("%s", "a port of the node went down and came back while its job ran "
                               "slow: the link, not the GPU, held the job back"));
}

/* One line telling a remap's state more than once (a JSON document with
 * its before and after a reset, GPU by GPU): true when every GPU it told
 * pending reads clean at its last mention in the line, the newest state. */
static bool line_remap_cleared(const tline *l)
{
    int last[16], gpu = 0, told = 0;
    bool was[16];
    memset(last, -1, sizeof last);
    memset(was, 0, sizeof was);
    for (size_t i = 0; i + 7 <= l->len; i++) {
        if (strncasecmp(l->s + i, "index", 5) == 0 || strncasecmp(l->s + i, "gpu", 3) == 0) {
            size_t j = i + 3;
            while (j < l->len && !isdigit((unsigned char)l->s[j]) && j < i + 10)
                j++;
            if (j < l->len && isdigit((unsigned char)l->s[j])) gpu = atoi(l->s + j) & 15;
            continue;
        }
        if (strncasecmp(l->s + i, "pending", 7) != 0) continue;
        size_t j = i + 7;
        while (j < l->len && j < i + 14 && strchr("\"' :=_", l->s[j]))
            j++;
        int v = -1;
        if (j < l->len && (strncasecmp(l->s + j, "true", 4) == 0 || l->s[j] == '1' ||
                           strncasecmp(l->s + j, "yes", 3) == 0))
            v = 1;
        else if (j < l->len && (strncasecmp(l->s + j, "false", 5) == 0 || l->s[j] == '0' ||
                                strncasecmp(l->s + j, "no", 2) == 0))
            v = 0;
        if (v < 0) continue;
        last[gpu] = v;
        was[gpu] |= v == 1;
        told++;
        /* "Yes -> No", "1 => 0", "true to false": the state it went to is newer */
        size_t k = j;
        while (k < l->len && isalnum((unsigned char)l->s[k]))
            k++;
        while (k < l->len && l->s[k] == ' ')
            k++;
        bool arrow = k + 2 <= l->len &&
                     (strncmp(l->s + k, "->", 2) == 0 || strncmp(l->s + k, "=>", 2) == 0 ||
                      strncasecmp(l->s + k, "to", 2) == 0);
        if (!arrow) continue;
        for (k += 2; k < l->len && l->s[k] == ' '; k++) {
        }
        told++;
        if (k < l->len && (strncasecmp(l->s + k, "no", 2) == 0 || l->s[k] == '0' ||
                           strncasecmp(l->s + k, "false", 5) == 0))
            last[gpu] = 0;
        else if (k < l->len && (strncasecmp(l->s + k, "yes", 3) == 0 || l->s[k] == '1' ||
                                strncasecmp(l->s + k, "true", 4) == 0))
            last[gpu] = 1;
    }
    bool any = false;
    for (int g = 0; g < 16; g++) {
        if (was[g] && last[g] != 0) return false;
        any |= was[g];
    }
    return any && told >= 2;
}

/* Row-remap evidence told only by lines that themselves read clean at
 * their end (and by no metric): the state cleared, nothing pends now. */
static void remap_rule(run *r)
{
    int c = diag_class_index(r->db, "gpu_row_remap_pending");
    if (c < 0) return;
    int lines = 0;
    for (int k = 0; k < r->nraws; k++) {
        const diag_sig *g = &r->db->sigs[r->raws[k].sig];
        bool of = false;
        for (int d = 0; d < g->ncls; d++)
            of |= g->cls[d] == c;
        if (!of) continue;
        if (!line_remap_cleared(&r->lines[r->raws[k].line])) return;
        lines++;
    }
    for (int i = 0; i < r->nhits; i++)
        if (r->hits[i].cls == c && r->hits[i].kind == DK_METRICS) return;
    if (lines) drop_class(r, c);
}

/* The latest time of a clean reading of class c (a signature of group
 * "clears-<class>"), NAN when none is stamped. */
static double clean_read_at(const run *r, const char *group)
{
    double at = NAN;
    int year = 1970 + (int)(time(NULL) / 31556952); /* syslog stamps carry no year */
    for (int k = 0; k < r->nraws; k++) {
        if (strcmp(r->db->sigs[r->raws[k].sig].group, group) != 0) continue;
        const tline *l = &r->lines[r->raws[k].line];
        double t = line_stamp(l->s, l->len, year);
        if (!isnan(t) && (isnan(at) || t > at)) at = t;
    }
    return at;
}

/* A pending remap told only by samples older than a stamped clean reading
 * (and text that is history already): the reset applied it since. */
static void remap_metric_rule(run *r, const json_t *metrics)
{
    int c = diag_class_index(r->db, "gpu_row_remap_pending");
    double clean = clean_read_at(r, "clears-gpu-row-remap-pending");
    if (c < 0 || isnan(clean) || !json_is_array(metrics)) return;
    size_t i;
    const json_t *o;
    json_array_foreach(metrics, i, o)
    {
        const char *nm = json_string_value(json_object_get(o, "name"));
        if (!nm || !strstr(nm, "ROW_REMAP_PENDING")) continue;
        double t = sample_time(o);
        if (json_number_value(json_object_get(o, "value")) > 0 && (isnan(t) || t >= clean - 60))
            return;
    }
    for (int k = 0; k < r->nhits; k++)
        if (r->hits[k].cls == c && r->hits[k].kind != DK_METRICS && !r->hits[k].old) return;
    drop_class(r, c);
}

/* ---- one node slower than its peers ------------------------------------- */

#define MAX_PEERS 64
#define PEER_RATIO 1.3 /* the slow one at least this far from the others' median */

/* Readings of one measure, one per host, from one line, one table or one
 * metric: time-like (higher is slower) or rate-like (lower is slower). */
typedef struct peers {
    char host[MAX_PEERS][48];
    double v[MAX_PEERS];
    int n;
    bool rate;
} peers;

static const char *const RATE_W[] = {"GB/s",  "busbw",   "algbw",      "bandwidth", "tokens",
                                     "tok/s", "samples", "throughput", "tflops",    "it/s",
                                     "img/s", "MB/s",    "Gbps",       "mfu"};
static const char *const TIME_W[] = {"time", "step", "latency", "duration", "s/it", "ms", "sec"};

/* A host's name as tables and notes write it: a letter first, a digit in
 * it, letters, digits and - _ . ("gpu-a03", "a03", "dgx-h31"). */
static size_t host_token(const char *s, size_t n)
{
    if (!n || !isalpha((unsigned char)s[0])) return 0;
    size_t i = 0;
    bool digit = false;
    while (i < n && i < 47 && (isalnum((unsigned char)s[i]) || strchr("-_.", s[i]))) {
        digit |= isdigit((unsigned char)s[i]) != 0;
        i++;
    }
    while (i > 0 && strchr("-_.", s[i - 1]))
        i--;
    return digit && i >= 2 ? i : 0;
}

static void peers_add(peers *p, const char *h, size_t hl, double v)
{
    for (int i = 0; i < p->n; i++)
        if (strlen(p->host[i]) == hl && strncmp(p->host[i], h, hl) == 0) return;
    if (p->n >= MAX_PEERS || !isfinite(v) || v <= 0) return;
    snprintf(p->host[p->n], sizeof p->host[p->n], "%.*s", (int)hl, h);
    p->v[p->n++] = v;
}

/* "gpu-a01 182.1, gpu-a02 181.7", "a01=0.9s a02=0.9s": host then number. */
static void line_pairs(const tline *l, peers *p)
{
    for (size_t i = 0; i < l->len; i++) {
        if (i > 0 && (isalnum((unsigned char)l->s[i - 1]) || strchr("-_./", l->s[i - 1]))) continue;
        size_t hl = host_token(l->s + i, l->len - i);
        if (!hl) continue;
        size_t j = i + hl, k = 0;
        while (j < l->len && k < 3 && strchr(" :=|", l->s[j]))
            j++, k++;
        if (!k || j >= l->len || !isdigit((unsigned char)l->s[j])) continue;
        peers_add(p, l->s + i, hl, strtod(l->s + j, NULL));
        i = j;
    }
}

/* Fields of a table row: split on '|' when it has one, else on blanks. */
static int fields(const tline *l, const char **f, size_t *fl, int max)
{
    bool bars = memchr(l->s, '|', l->len) != NULL;
    int n = 0;
    size_t i = 0;
    while (i < l->len && n < max) {
        while (i < l->len && (l->s[i] == ' ' || l->s[i] == '\t' || (bars && l->s[i] == '|')))
            i++;
        size_t b = i;
        while (i < l->len && (bars ? l->s[i] != '|' : (l->s[i] != ' ' && l->s[i] != '\t')))
            i++;
        size_t e = i;
        while (e > b && l->s[e - 1] == ' ')
            e--;
        if (e > b) {
            f[n] = l->s + b;
            fl[n++] = e - b;
        }
    }
    return n;
}

static bool field_has(const char *f, size_t n, const char *const *w, size_t nw)
{
    tline t = {.s = f, .len = n};
    return any_of(&t, w, nw);
}

/* A table: a header naming a time or rate column, rows keyed by host. */
static void table_peers(const run *r, int hi, peers *p)
{
    const char *h[16], *f[16];
    size_t hl[16], fl[16];
    int nh = fields(&r->lines[hi], h, hl, 16), col = -1;
    for (int c = 0; c < nh && col < 0; c++) {
        if (field_has(h[c], hl[c], RATE_W, sizeof RATE_W / sizeof *RATE_W)) {
            col = c;
            p->rate = true;
        } else if (field_has(h[c], hl[c], TIME_W, sizeof TIME_W / sizeof *TIME_W)) {
            col = c;
        }
    }
    /* the engine adds each row again with its columns named: lines of
     * another shape between rows are skipped, not the table's end */
    for (int i = hi + 1; col >= 0 && i < r->nlines && i <= hi + 2 * MAX_PEERS &&
                         r->lines[i].src == r->lines[hi].src;
         i++) {
        int nf = fields(&r->lines[i], f, fl, 16);
        if (nf != nh) continue;
        int hc = -1;
        for (int c = 0; c < nf && hc < 0; c++)
            if (host_token(f[c], fl[c]) == fl[c]) hc = c;
        if (hc < 0 || hc == col || !isdigit((unsigned char)f[col][0])) break;
        peers_add(p, f[hc], fl[hc], strtod(f[col], NULL));
    }
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The one host far slower than the median of the rest, -1 when none is. */
static int slow_one(const peers *p)
{
    if (p->n < 3) return -1;
    int worst = 0;
    for (int i = 1; i < p->n; i++)
        if (p->rate ? p->v[i] < p->v[worst] : p->v[i] > p->v[worst]) worst = i;
    double rest[MAX_PEERS];
    int k = 0;
    for (int i = 0; i < p->n; i++)
        if (i != worst) rest[k++] = p->v[i];
    qsort(rest, (size_t)k, sizeof *rest, cmp_d);
    double med = k % 2 ? rest[k / 2] : (rest[k / 2 - 1] + rest[k / 2]) / 2;
    double ratio = p->rate ? med / p->v[worst] : p->v[worst] / med;
    /* the others alike: the slow one stands out, not a spread */
    double second = p->rate ? med / rest[0] : rest[k - 1] / med;
    return ratio >= PEER_RATIO && second < 1.15 ? worst : -1;
}

/* Whether a host named in a table is the node diagnosed ("a03" for
 * "gpu-a03" too: tables shorten names). */
static bool is_node(const run *r, const char *h)
{
    if (!r->node || !*r->node) return true;
    if (same_host(h, r->node)) return true;
    size_t hl = strlen(h), nl = strlen(r->node);
    return hl >= 2 && hl < nl && strcmp(r->node + nl - hl, h) == 0 &&
           strchr("-_.", r->node[nl - hl - 1]);
}

/* Per-host readings of a throughput or step time in metrics (a training
 * exporter, a benchmark's gauge): their latest value per host. */
static void metric_peers(const json_t *metrics, const char *want, peers *p)
{
    size_t i;
    const json_t *o;
    json_array_foreach(metrics, i, o)
    {
        const char *nm = json_string_value(json_object_get(o, "name"));
        if (!nm || strncmp(nm, "DCGM_", 5) == 0 || strcmp(nm, want) != 0) continue;
        char hb[128];
        const json_t *labels = json_object_get(o, "labels");
        const char *h = host_of(labels, hb, sizeof hb);
        if (!*h && json_is_string(json_object_get(labels, "host")))
            h = json_string_value(json_object_get(labels, "host"));
        size_t hl = strlen(h);
        double v = json_number_value(json_object_get(o, "value"));
        int k = 0;
        while (k < p->n && !(strlen(p->host[k]) == hl && strcmp(p->host[k], h) == 0))
            k++;
        if (k < p->n)
            p->v[k] = v; /* the latest sample */
        else if (hl)
            peers_add(p, h, hl, v);
    }
}

static bool straggler_seen(run *r, peers *p, const char *from)
{
    int w = slow_one(p);
    if (w < 0 || !is_node(r, p->host[w])) return false;
    int c = diag_class_index(r->db, "straggler_node");
    if (c < 0) return false;
    add_hit(r, c, DK_CORR, ST_STRONG, "facts-slow-peer",
            diag_fmt("%s: %s reads %g against its peers' %s (%d hosts): one node slower than "
                     "the rest",
                     from, p->host[w], p->v[w], p->rate ? "rates" : "times", p->n));
    return true;
}

static bool metric_peer_rule(run *r, const json_t *metrics);

static void peer_rule(run *r, const json_t *metrics)
{
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        if (l->src != DS_EVENTS && l->src != DS_JOB) continue;
        peers p = {.n = 0};
        p.rate = any_of(l, RATE_W, sizeof RATE_W / sizeof *RATE_W);
        bool timed = any_of(l, TIME_W, sizeof TIME_W / sizeof *TIME_W);
        if (p.rate || timed) line_pairs(l, &p);
        if (p.n < 3) {
            memset(&p, 0, sizeof p);
            table_peers(r, i, &p);
        }
        if (straggler_seen(r, &p, "a table or note of per-host readings")) return;
    }
    if (!metric_peer_rule(r, metrics)) metric_peer_rule(r, r->textm);
}

/* The same over metrics given, or samples pasted as Prometheus text. */
static bool metric_peer_rule(run *r, const json_t *metrics)
{
    size_t i;
    const json_t *o;
    json_array_foreach(metrics, i, o)
    {
        const char *nm = json_string_value(json_object_get(o, "name"));
        tline t = {.s = nm, .len = nm ? strlen(nm) : 0};
        if (!nm || strncmp(nm, "DCGM_", 5) == 0) continue;
        peers p = {.n = 0};
        p.rate = any_of(&t, RATE_W, sizeof RATE_W / sizeof *RATE_W) || strstr(nm, "per_second") ||
                 strstr(nm, "_bytes");
        if (!p.rate && !any_of(&t, TIME_W, sizeof TIME_W / sizeof *TIME_W)) continue;
        metric_peers(metrics, nm, &p);
        if (straggler_seen(r, &p, nm)) return true;
    }
    return false;
}

/* ---- an application's Xid that later runs no longer raise ---------------- */

/* A job line's id ("job=9107"), -1 without one. */
static long job_id_of(const tline *l)
{
    const char *p = memmem(l->s, l->len, "job=", 4);
    return p && isdigit((unsigned char)p[4]) ? strtol(p + 4, NULL, 10) : -1;
}

/* Runs after the failure finished clean: in the job list a job COMPLETED
 * with exit 0:0 after (a larger id than) the last FAILED one, or a line
 * saying the code was fixed and runs since are clean. */
static bool clean_runs_since(const run *r)
{
    static const char *const w[] = {
        "since the fix",   "after the fix", "runs clean",     "ran clean",  "both runs clean",
        "without any Xid", "no Xid since",  "no further Xid", "no new Xid", "no Xid after"};
    static const char *const no[] = {"again", "still", "same Xid", "failed", "not fixed"};
    long bad = -1, good = -1;
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        if (l->src == DS_JOBS) {
            long id = job_id_of(l);
            if (line_has(l, "state=FAILED") && id > bad) bad = id;
            if (line_has(l, "state=COMPLETED") && line_has(l, "exit=0:0") && id > good) good = id;
            continue;
        }
        if (any_of(l, w, sizeof w / sizeof *w) && !any_of(l, no, sizeof no / sizeof *no))
            return true;
    }
    return bad >= 0 && good > bad;
}

static void app_fault_rule(run *r)
{
    int c = diag_class_index(r->db, "gpu_app_fault");
    if (c < 0 || !class_hit(r, c) || hardware_hit(r)) return;
    if (!clean_runs_since(r)) return;
    drop_class(r, c);
    /* the failed runs were that application's fault, fixed since: no
     * longer unexplained */
    int k = 0;
    for (int i = 0; i < r->nanoms; i++) {
        const char *t = r->anoms[i].text;
        if (t && strncmp(t, "slurm.jobs:", 11) == 0 && strstr(t, "state=FAILED"))
            free(r->anoms[i].text);
        else
            r->anoms[k++] = r->anoms[i];
    }
    r->nanoms = k;
}

/* ---- GPU memory held by processes of jobs that have ended ---------------- */

#define MAX_PIDS 32

/* Digit runs of a line that are not part of a word ("pid=4242" yes,
 * "gpu3" no), with whether a memory unit follows them ("38000MiB"). */
static int numbers(const tline *l, long *v, bool *mem, int max)
{
    int n = 0;
    for (size_t i = 0; i < l->len && n < max; i++) {
        if (!isdigit((unsigned char)l->s[i]) ||
            (i > 0 && (isalnum((unsigned char)l->s[i - 1]) || l->s[i - 1] == '.')))
            continue;
        size_t j = i;
        while (j < l->len && isdigit((unsigned char)l->s[j]))
            j++;
        if (j < l->len && (isalpha((unsigned char)l->s[j]) || l->s[j] == '.') &&
            !(l->s[j] == 'M' || l->s[j] == 'G')) {
            i = j;
            continue;
        }
        size_t k = j;
        while (k < l->len && l->s[k] == ' ')
            k++;
        v[n] = strtol(l->s + i, NULL, 10);
        mem[n++] = k + 1 < l->len && (l->s[k] == 'M' || l->s[k] == 'G') &&
                   (l->s[k + 1] == 'i' || l->s[k + 1] == 'B');
        i = j;
    }
    return n;
}

/* PIDs of processes holding GPU memory: a process row of nvidia-smi, a
 * compute-apps CSV row, "pid=4242 ... 38000MiB". */
static int gpu_pids(const run *r, long *pids, int max)
{
    int n = 0;
    for (int i = 0; i < r->nlines && n < max; i++) {
        const tline *l = &r->lines[i];
        if (l->src != DS_EVENTS && l->src != DS_JOB) continue;
        long v[12];
        bool mem[12];
        int k = numbers(l, v, mem, 12), m = 0;
        for (int j = 0; j < k; j++)
            m += mem[j];
        if (m != 1) continue; /* one process, its memory */
        for (int j = 0; j < k && n < max; j++)
            if (!mem[j] && v[j] >= 100) {
                pids[n++] = v[j];
                break;
            }
    }
    return n;
}

static bool ended_word(const tline *l)
{
    static const char *const w[] = {"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT",
                                    "ended",     "finished",  "exited", "OUT_OF_MEMORY"};
    return any_of(l, w, sizeof w / sizeof *w);
}

/* The number after a word ("job 812", "JobId=812", "pid=4242"), -1. */
static long after_word(const tline *l, const char *w)
{
    size_t n = strlen(w);
    for (size_t i = 0; i + n < l->len; i++) {
        if (strncasecmp(l->s + i, w, n) != 0) continue;
        if (i > 0 && isalnum((unsigned char)l->s[i - 1])) continue;
        size_t j = i + n, k = 0;
        while (j < l->len && k < 4 &&
               (strchr(" =:#", l->s[j]) || l->s[j] == 'i' || l->s[j] == 'I' || l->s[j] == 'd' ||
                l->s[j] == 'D'))
            j++, k++;
        if (j < l->len && isdigit((unsigned char)l->s[j])) return strtol(l->s + j, NULL, 10);
    }
    return -1;
}

/* The job a PID belongs to, as a line ties them: a listpids row of
 * numbers alone ("4242 812 0 0 0", the PID first), or "pid 4242 ... job
 * 812" in words; -1 when no line does. */
static long job_of_pid(const run *r, long pid)
{
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        if (l->src == DS_JOBS) continue;
        if (after_word(l, "pid") == pid) {
            long j = after_word(l, "job");
            if (j >= 0) return j;
        }
        size_t d = 0; /* lines are not NUL-terminated: count within the line */
        while (d < l->len && (isdigit((unsigned char)l->s[d]) || l->s[d] == ' ' || l->s[d] == '\t'))
            d++;
        if (d < l->len) continue;
        long v[8];
        bool mem[8];
        if (numbers(l, v, mem, 8) >= 3 && v[0] == pid) return v[1];
    }
    return -1;
}

/* The first job state within three fields after a job's id ("812
 * COMPLETED", "812  train  CANCELLED", "812|FAILED"): 1 over, 2 running,
 * 0 none. */
static int state_after(const tline *l, size_t at)
{
    static const char *const w[] = {"RUNNING", "running",       "COMPLETED", "CANCELLED", "FAILED",
                                    "TIMEOUT", "OUT_OF_MEMORY", "ended",     "finished",  "exited"};
    size_t i = at;
    for (int field = 0; field < 3 && i < l->len; field++) {
        while (i < l->len && strchr(" \t|,:=", l->s[i]))
            i++;
        for (size_t k = 0; k < sizeof w / sizeof *w; k++)
            if (l->len - i >= strlen(w[k]) && strncmp(l->s + i, w[k], strlen(w[k])) == 0)
                return k < 2 ? 2 : 1;
        while (i < l->len && !strchr(" \t|,:=", l->s[i]))
            i++;
    }
    return 0;
}

/* Whether the job list or a line about the job says it ended; never the
 * node's newest job (the one failing now) nor one a line says runs. */
static bool job_ended(const run *r, long job)
{
    char key[32];
    snprintf(key, sizeof key, "job=%ld ", job);
    long newest = -1;
    bool ended = false;
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        if (l->src == DS_JOBS) {
            long id = job_id_of(l);
            if (id > newest) newest = id;
            ended |= line_has(l, key) && ended_word(l);
            continue;
        }
        for (size_t p = 0; p < l->len; p++) {
            if (!isdigit((unsigned char)l->s[p]) || (p && isalnum((unsigned char)l->s[p - 1])))
                continue;
            char *e;
            long v = strtol(l->s + p, &e, 10);
            size_t q = (size_t)(e - l->s);
            if (v == job && (q == l->len || !isalnum((unsigned char)l->s[q]))) {
                int st = state_after(l, q);
                if (st == 2) return false;
                ended |= st == 1;
            }
            while (p + 1 < l->len && isdigit((unsigned char)l->s[p + 1]))
                p++;
        }
    }
    return ended && job != newest;
}

static bool pid_of_ended_job(const run *r, long pid)
{
    long job = job_of_pid(r, pid);
    return job >= 0 && job_ended(r, job);
}

static void held_memory_rule(run *r)
{
    int c = diag_class_index(r->db, "stale_compute_state");
    if (c < 0 || class_hit(r, c)) return;
    long pids[MAX_PIDS];
    int n = gpu_pids(r, pids, MAX_PIDS);
    for (int i = 0; i < n; i++)
        if (pid_of_ended_job(r, pids[i])) {
            add_hit(r, c, DK_CORR, ST_STRONG, "facts-memory-of-ended-job",
                    diag_fmt("GPU memory held by pid %ld, a process of a job that has ended: "
                             "its remains hold the GPU",
                             pids[i]));
            return;
        }
}

/* ---- utilisation told in words ------------------------------------------- */

/* A line saying the GPUs read ~0 ("GPU-Util 0%", "utilization avg 0.3%",
 * "SM active 0.01", "GPUs sitting idle"). */
static bool idle_told(const tline *l)
{
    static const char *const util[] = {"util", "sm active", "sm_active", "gr_engine"};
    static const char *const idle[] = {"gpus idle",
                                       "gpus are idle",
                                       "gpus sit idle",
                                       "sitting idle",
                                       "idle gpus",
                                       "gpus have been idle",
                                       "nothing running on the gpus"};
    if (any_of(l, idle, sizeof idle / sizeof *idle)) return true;
    if (!any_of(l, util, sizeof util / sizeof *util)) return false;
    for (size_t i = 0; i + 1 < l->len; i++) {
        if (!isdigit((unsigned char)l->s[i]) ||
            (i && (isalnum((unsigned char)l->s[i - 1]) || l->s[i - 1] == '.')))
            continue;
        char *e;
        double v = strtod(l->s + i, &e);
        size_t q = (size_t)(e - l->s);
        while (q < l->len && l->s[q] == ' ')
            q++;
        if (v <= 2.0 && q < l->len && l->s[q] == '%') return true;
        i = (size_t)(e - l->s);
    }
    return false;
}

/* A span of hours or days told in words ("for 6 hours", "3 days",
 * "since yesterday", "all week", "overnight"). */
static bool long_told(const tline *l)
{
    static const char *const w[] = {"since yesterday", "all week",      "overnight",
                                    "all day",         "for days",      "for hours",
                                    "since monday",    "since tuesday", "since wednesday",
                                    "since thursday",  "since friday",  "since the weekend",
                                    "since last week"};
    if (any_of(l, w, sizeof w / sizeof *w)) return true;
    for (size_t i = 0; i < l->len; i++) {
        if (!isdigit((unsigned char)l->s[i]) || (i && isalnum((unsigned char)l->s[i - 1])))
            continue;
        size_t j = i;
        while (j < l->len && (isdigit((unsigned char)l->s[j]) || l->s[j] == '.'))
            j++;
        while (j < l->len && l->s[j] == ' ')
            j++;
        double v = atof(l->s + i);
        bool hours = j < l->len && (l->s[j] == 'h' || strncasecmp(l->s + j, "hour", 4) == 0);
        bool days = j < l->len &&
                    (strncasecmp(l->s + j, "day", 3) == 0 ||
                     (l->s[j] == 'd' && (j + 1 == l->len || !isalpha((unsigned char)l->s[j + 1]))));
        if ((hours && v >= 1 &&
             (j + 1 == l->len || !isalpha((unsigned char)l->s[j + 1]) || l->s[j + 1] == 'o' ||
              l->s[j + 1] == 'r')) ||
            (days && v >= 1))
            return true;
        i = j;
    }
    return false;
}

/* GPUs held by someone's allocation rather than a batch job's run: a
 * reservation, an salloc session, "allocated"/"reserved" said of them. */
static bool held_explicit(const run *r)
{
    static const char *const w[] = {"ReservationName=", "reservation", "salloc",  "reserved",
                                    "allocated",        "interactive", "holding", "holds "};
    static const char *const none[] = {"unallocated", "not allocated", "no reservation",
                                       "0 allocated", "nothing allocated"};
    for (int i = 0; i < r->nlines; i++)
        if (r->lines[i].src != DS_KERNEL && any_of(&r->lines[i], w, sizeof w / sizeof *w) &&
            !any_of(&r->lines[i], none, sizeof none / sizeof *none))
            return true;
    return false;
}

static bool job_running(const run *r)
{
    for (int i = 0; i < r->nlines; i++)
        if (line_has(&r->lines[i], "state=RUNNING") || line_has(&r->lines[i], "JobState=RUNNING") ||
            line_has(&r->lines[i], " RUNNING"))
            return true;
    return false;
}

static bool steps_logged(const run *r)
{
    for (int i = 0; i < r->nlines; i++)
        if (r->lines[i].src == DS_JOB && step_value(&r->lines[i]) >= 0) return true;
    return false;
}

/* Idle for long, told in words: held by an allocation with no run's steps
 * logged is an idle allocation; a job that logged steps and still runs,
 * now idle for long, is hung. */
static void idle_words_rule(run *r, const job_facts *f)
{
    bool idle = false, lng = false;
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        if (l->src == DS_KERNEL || l->src == DS_STATE) continue;
        idle |= idle_told(l);
        lng |= idle_told(l) && long_told(l);
    }
    if (!idle || !lng || f->held < 0 || f->progress) return;
    int hung = diag_class_index(r->db, "job_hung");
    int held = diag_class_index(r->db, "idle_allocation");
    if (hung < 0 || held < 0 || class_hit(r, hung)) return;
    /* a run that logged steps: its idle GPUs are its hang (which explains
     * the idle allocation words read of the same GPUs) */
    if (steps_logged(r) && job_running(r))
        add_hit(r, hung, DK_CORR, ST_STRONG, "facts-idle-words-steps-stopped",
                diag_fmt("%s", "a job that logged steps still runs while its GPUs are told "
                               "~0% for hours: no progress, hung"));
    else if (!steps_logged(r) && held_explicit(r) && !class_hit(r, held))
        add_hit(r, held, DK_CORR, ST_STRONG, "facts-idle-words-held",
                diag_fmt("%s", "GPUs held by an allocation and told ~0% for hours, no run's "
                               "steps logged: held, not used"));
}

void job_facts_rule(run *r, const json_t *metrics)
{
    job_facts f;
    memset(&f, 0, sizeof f);
    util_facts(r, metrics, &f);
    if (r->oom) return;
    link_rule(r);
    remap_rule(r);
    remap_metric_rule(r, metrics);
    app_fault_rule(r);
    held_memory_rule(r);
    if (json_is_array(metrics) || r->nlines) peer_rule(r, json_is_array(metrics) ? metrics : NULL);
    held_facts(r, &f);
    progress_facts(r, &f);
    completing_facts(r, &f);
    int hung = diag_class_index(r->db, "job_hung");
    int idle = diag_class_index(r->db, "idle_allocation");
    int stale = diag_class_index(r->db, "stale_compute_state");
    if (f.ngpus && f.idle_now && f.held > 0 && f.busy_before && f.idle_for >= HUNG_SECS &&
        !f.progress && hung >= 0)
        add_hit(r, hung, DK_CORR, ST_STRONG, "facts-busy-then-idle",
                diag_fmt("every GPU computed, then read ~0%% for %.0f min while the job holds "
                         "them, no step counter advancing: hung",
                         f.idle_for / 60));
    else if (f.ngpus && f.idle_now && f.held > 0 && !f.busy_before && f.idle_for >= HELD_SECS &&
             !f.progress && idle >= 0 && !class_hit(r, hung))
        add_hit(r, idle, DK_CORR, ST_STRONG, "facts-held-idle",
                diag_fmt("GPUs held (allocated or reserved) and ~0%% for %.1f h, never busy in "
                         "the window: held, not used",
                         f.idle_for / 3600));
    if (!f.ngpus) idle_words_rule(r, &f);
    if (f.held < 0 && idle >= 0) drop_class(r, idle);
    if ((f.paused || f.progress) && hung >= 0) drop_class(r, hung);
    if (f.completing && f.procs_gone && stale >= 0 && !hardware_hit(r))
        add_hit(r, stale, DK_CORR, ST_STRONG, "facts-completing-gone",
                diag_fmt("%s", "the node is completing a job whose processes are gone or stuck "
                               "in the kernel: its remains hold the node"));
}
