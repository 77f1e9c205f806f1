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
 *   a node completing a job whose processes are gone    -> stale_compute_state
 *
 * (utilisation told in words reads the same way).  The node's links, its
 * remap state and its peers are diag_facts_node.c's; what earlier jobs
 * left behind is diag_facts_state.c's; this file runs them all. */
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
    bool untimed;   /* its samples carry no time (one scrape) */
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
    bool zero_now;        /* every GPU's latest sample, even a single scrape, reads ~0 */
    bool counter_stopped; /* a progress counter (steps, samples) flat for half an hour */
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
        if (isnan(pct)) continue;
        if (r->node && *r->node && *host && !same_host(host, r->node)) continue;
        useries *g = series_for(gs, ng, labels, host);
        if (!g || g->n >= MAX_SAMPLES) continue;
        /* one scrape without a time still says what the GPU reads now: kept
         * alone at time 0 (it spans nothing, so no duration rule takes it),
         * dropped once the GPU has timed samples */
        if (isnan(t) && g->n > 0 && !g->untimed) continue;
        if (!isnan(t) && g->untimed) g->n = 0;
        g->untimed = isnan(t);
        if (isnan(t)) t = 0;
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

/* The utilisation facts over the GPUs of one host (every GPU given when
 * host is NULL). */
static void host_util(const useries *gs, int ng, const char *host, job_facts *f)
{
    f->idle_now = false;
    f->idle_for = INFINITY;
    f->ngpus = 0;
    f->busy_before = f->job_label = false;
    int npaused = 0, nzero = 0, nany = 0;
    for (int i = 0; i < ng; i++) {
        if (host && strcmp(gs[i].host, host) != 0) continue;
        nany += gs[i].n > 0;
        nzero += gs[i].n > 0 && gs[i].v[gs[i].n - 1] <= IDLE_PCT;
        if (gs[i].n < 2 || gs[i].untimed) continue; /* spans need times */
        double idle_for;
        bool busy, paused;
        gpu_facts(&gs[i], &idle_for, &busy, &paused);
        f->ngpus++;
        f->idle_for = fmin(f->idle_for, idle_for);
        f->busy_before |= busy;
        npaused += paused;
        f->job_label |= gs[i].job_label;
    }
    f->zero_now = nany > 0 && nzero == nany;
    f->idle_now = f->ngpus > 0 && f->idle_for >= 0;
    if (!f->idle_now) f->idle_for = 0;
    /* every GPU paused together: the job's pause, not one GPU's */
    f->paused = f->ngpus > 0 && npaused == f->ngpus && !f->idle_now;
}

/* With no node named, a fleet's series: each host is judged alone, and
 * the facts are those of the host idle longest (one held by a job first). */
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
    host_util(gs, ng, NULL, f);
    bool one_host = true;
    for (int i = 1; i < ng; i++)
        one_host &= strcmp(gs[i].host, gs[0].host) == 0;
    if (!(r->node && *r->node) && !one_host && !f->idle_now) {
        job_facts best = *f, h;
        for (int i = 0; i < ng; i++) {
            h = *f;
            host_util(gs, ng, gs[i].host, &h);
            bool better =
                h.idle_now && (!best.idle_now || (h.job_label && !best.job_label) ||
                               (h.job_label == best.job_label && h.idle_for > best.idle_for));
            if (better) best = h;
        }
        *f = best;
    }
    free(gs);
}

bool facts_has(const tline *l, const char *w)
{
    return memmem(l->s, l->len, w, strlen(w)) != NULL;
}

/* Case-blind search of a bounded line (lines are not NUL-terminated). */
bool facts_has_ci(const tline *l, const char *w)
{
    size_t n = strlen(w);
    for (size_t i = 0; i + n <= l->len; i++)
        if (strncasecmp(l->s + i, w, n) == 0) return true;
    return false;
}

bool facts_any(const tline *l, const char *const *w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (facts_has_ci(l, w[i])) return true;
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
        "reserved",         "holding",        "holds ",          "show res "};
    int h = 0, free_ = 0;
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        if (l->src == DS_STATE) {
            bool idle = l->len == 4 && memcmp(l->s, "IDLE", 4) == 0;
            bool busy = (l->len >= 5 && memcmp(l->s, "ALLOC", 5) == 0) ||
                        (l->len >= 3 && memcmp(l->s, "MIX", 3) == 0) ||
                        (l->len >= 6 && memcmp(l->s, "RESERV", 6) == 0);
            free_ += idle;
            h += busy;
            continue;
        }
        if (l->src == DS_JOBS) {
            h += facts_has(l, "state=RUNNING");
            continue;
        }
        if (facts_any(l, none, sizeof none / sizeof *none) || facts_has(l, "0/8") ||
            facts_has(l, "0/4"))
            free_++;
        else if (facts_any(l, held, sizeof held / sizeof *held))
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
    return facts_any(l, w, sizeof w / sizeof *w);
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
    return facts_any(l, w, sizeof w / sizeof *w) && !facts_any(l, no, sizeof no / sizeof *no);
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

/* A command that lists a job's processes (its cgroup.procs, pgrep, the
 * GPU's compute apps) answered by nothing: the next line of its source is
 * another command, or there is none. */
static bool empty_answer(const run *r, int i)
{
    static const char *const lists[] = {"cgroup.procs", "pgrep", "query-compute-apps", "listpids"};
    const tline *l = &r->lines[i];
    return facts_any(l, lists, sizeof lists / sizeof *lists) && !memchr(l->s, '|', l->len) &&
           facts_no_answer(r, i);
}

/* A command echoed with a "$" prompt that printed nothing: the next line of
 * its source is another command, or there is none. */
bool facts_no_answer(const run *r, int i)
{
    const tline *l = &r->lines[i];
    /* journalctl's own word for an empty answer, on the line or the next */
    if (facts_has(l, "-- No entries --")) return true;
    bool next = i + 1 < r->nlines && r->lines[i + 1].src == l->src;
    if (next && facts_has(&r->lines[i + 1], "-- No entries --")) return true;
    if (!l->len || l->s[0] != '$') return false;
    if (!next) return true;
    const tline *n = &r->lines[i + 1];
    return n->len && n->s[0] == '$';
}

/* A node completing a job (its state, a drain for a kill that failed)
 * whose processes are gone or stuck in the kernel: the job's remains hold
 * the node, whatever words tell either half. */
static void completing_facts(const run *r, job_facts *f)
{
    static const char *const comp[] = {"COMPLETING", "Kill task failed", "stuck in CG",
                                       "state CG",   "State=CG",         " CG "};
    static const char *const gone[] = {
        "No running processes found", "no process", "no user process", "0 processes",
        "no slurmstepd", "no tasks", "nothing running", "returns nothing", "returned nothing",
        "processes are gone", "processes gone", "uninterruptible", "D state", "D-state", "state:D",
        "STAT D", "blocked for more than", "<defunct>", "defunct", "(no output)", "no output",
        "(nothing)", "(empty)", "procs is empty", "procs empty", "empty cgroup", "cgroup is empty",
        "no compute apps", "no compute processes", "apps empty", "-> 0,",
        /* slurmd gave up on the job's remains */
        "Unable to terminate job", "unable to remove cgroup"};
    /* a count of the job's processes that answered 0 */
    static const char *const lists[] = {"pgrep", "compute-apps", "cgroup.procs", "listpids",
                                        "ps -"};
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        f->completing |= facts_any(l, comp, sizeof comp / sizeof *comp);
        f->procs_gone |=
            l->src != DS_STATE &&
            (facts_any(l, gone, sizeof gone / sizeof *gone) || ps_row_d(l) || empty_answer(r, i) ||
             (facts_any(l, lists, sizeof lists / sizeof *lists) && facts_count_answer(r, i) == 0));
    }
}

/* Drop a class's hits: a fact shows what they read is not that class. */
void facts_drop_class(run *r, int c)
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
bool facts_class_hit(const run *r, int c)
{
    for (int i = 0; i < r->nhits; i++)
        if (r->hits[i].cls == c && !r->hits[i].old && r->hits[i].strength >= ST_STRONG) return true;
    return false;
}

/* Evidence for a destructive node class (a GPU that hung, fell off the
 * bus): the hardware's fault, of which a job that cannot end is a symptom. */
bool facts_hardware_hit(const run *r)
{
    for (int i = 0; i < r->nhits; i++) {
        const diag_class *c = &r->db->classes[r->hits[i].cls];
        if (!r->hits[i].old && c->destructive && strcmp(c->scope, "node") == 0 &&
            strcmp(c->id, "stale_compute_state") != 0)
            return true;
    }
    return false;
}

/* ---- utilisation told in words ------------------------------------------- */

/* A line saying the GPUs read ~0 ("GPU-Util 0%", "utilization avg 0.3%",
 * "SM active 0.01", "GPUs sitting idle"). */
bool idle_told(const tline *l)
{
    static const char *const util[] = {"util", "sm active", "sm_active", "gr_engine"};
    static const char *const idle[] = {"gpus idle",
                                       "gpus are idle",
                                       "gpus sit idle",
                                       "sitting idle",
                                       "idle gpus",
                                       "gpus have been idle",
                                       "nothing running on the gpus"};
    if (facts_any(l, idle, sizeof idle / sizeof *idle)) return true;
    if (!facts_any(l, util, sizeof util / sizeof *util)) return false;
    for (size_t i = 0; i + 1 < l->len; i++) {
        if (!isdigit((unsigned char)l->s[i]) ||
            (i && (isalnum((unsigned char)l->s[i - 1]) || l->s[i - 1] == '.')))
            continue;
        char *e;
        double v = strtod(l->s + i, &e);
        size_t q = (size_t)(e - l->s);
        while (q < l->len && l->s[q] == ' ')
            q++;
        if (v < 3.0 && q < l->len && l->s[q] == '%') return true;
        i = (size_t)(e - l->s);
    }
    return false;
}

/* A span of hours or days told in words ("for 6 hours", "3 days",
 * "since yesterday", "all week", "overnight"). */
bool long_told(const tline *l)
{
    static const char *const w[] = {"since yesterday", "all week",          "overnight",
                                    "all day",         "for days",          "for hours",
                                    "since monday",    "since tuesday",     "since wednesday",
                                    "since thursday",  "since friday",      "since the weekend",
                                    "since last week", "since this morning"};
    if (facts_any(l, w, sizeof w / sizeof *w)) return true;
    for (size_t i = 0; i < l->len; i++) {
        /* a range of days ("2026-12-01..06", "2026-12-01..2026-12-06") */
        if (i + 12 <= l->len && l->s[i + 4] == '-' && l->s[i + 7] == '-' &&
            isdigit((unsigned char)l->s[i]) && isdigit((unsigned char)l->s[i + 9]) &&
            l->s[i + 10] == '.' && l->s[i + 11] == '.')
            return true;
        if (!isdigit((unsigned char)l->s[i]) || (i && isalnum((unsigned char)l->s[i - 1])))
            continue;
        size_t j = i;
        while (j < l->len && (isdigit((unsigned char)l->s[j]) || l->s[j] == '.'))
            j++;
        if (j < l->len && l->s[j] == '+') j++; /* "7+ hours" */
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
    static const char *const w[] = {"ReservationName=", "reservation", "salloc",
                                    "reserved",         "allocated",   "interactive",
                                    "holding",          "holds ",      "show res "};
    static const char *const none[] = {"unallocated", "not allocated", "no reservation",
                                       "0 allocated", "nothing allocated"};
    for (int i = 0; i < r->nlines; i++)
        if (r->lines[i].src != DS_KERNEL && facts_any(&r->lines[i], w, sizeof w / sizeof *w) &&
            !facts_any(&r->lines[i], none, sizeof none / sizeof *none))
            return true;
    return false;
}

static bool job_running(const run *r)
{
    for (int i = 0; i < r->nlines; i++)
        if (facts_has(&r->lines[i], "state=RUNNING") ||
            facts_has(&r->lines[i], "JobState=RUNNING") || facts_has(&r->lines[i], " RUNNING"))
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
    if (hung < 0 || held < 0 || facts_class_hit(r, hung)) return;
    /* a run that logged steps: its idle GPUs are its hang (which explains
     * the idle allocation words read of the same GPUs) */
    if (steps_logged(r) && job_running(r))
        add_hit(r, hung, DK_CORR, ST_STRONG, "facts-idle-words-steps-stopped",
                diag_fmt("%s", "a job that logged steps still runs while its GPUs are told "
                               "~0% for hours: no progress, hung"));
    else if (!steps_logged(r) && held_explicit(r) && !facts_class_hit(r, held))
        add_hit(r, held, DK_CORR, ST_STRONG, "facts-idle-words-held",
                diag_fmt("%s", "GPUs held by an allocation and told ~0% for hours, no run's "
                               "steps logged: held, not used"));
}

/* A job's progress counter as a metric (a training exporter's step,
 * iteration, samples or tokens total) that held one value for half an
 * hour or more: the job stopped advancing. */
static bool counter_stopped(const json_t *metrics)
{
    static const char *const w[] = {"step",          "iteration",    "iter_",
                                    "samples_total", "tokens_total", "batches_total"};
    size_t i;
    const json_t *o;
    json_array_foreach(metrics, i, o)
    {
        const char *nm = json_string_value(json_object_get(o, "name"));
        tline t = {.s = nm, .len = nm ? strlen(nm) : 0};
        if (!nm || strncmp(nm, "DCGM_", 5) == 0 || !facts_any(&t, w, sizeof w / sizeof *w) ||
            strstr(nm, "seconds") || strstr(nm, "time") || strstr(nm, "duration"))
            continue;
        double v = json_number_value(json_object_get(o, "value")), t0 = sample_time(o);
        double lo = t0, hi = t0;
        bool same = true;
        size_t j;
        const json_t *q;
        json_array_foreach(metrics, j, q)
        {
            const char *qn = json_string_value(json_object_get(q, "name"));
            if (j == i || !qn || strcmp(qn, nm) != 0 ||
                !json_equal(json_object_get(q, "labels"), json_object_get(o, "labels")))
                continue;
            double tq = sample_time(q);
            same &= json_number_value(json_object_get(q, "value")) == v;
            lo = fmin(lo, tq);
            hi = fmax(hi, tq);
        }
        if (same && isfinite(lo) && isfinite(hi) && hi - lo >= HUNG_SECS) return true;
    }
    return false;
}

void job_facts_rule(run *r, const json_t *metrics)
{
    job_facts f;
    memset(&f, 0, sizeof f);
    util_facts(r, metrics, &f);
    if (r->oom) return;
    link_rule(r);
    unused_port_rule(r, metrics);
    fleet_rule(r);
    remap_rule(r);
    contained_count_rule(r, metrics);
    fabric_down_rule(r);
    ray_spec_rule(r);
    remap_metric_rule(r, metrics);
    app_fault_rule(r, metrics);
    reboot_rule(r);
    disagree_rule(r);
    avail_rule(r);
    gone_from_bus_rule(r);
    held_memory_rule(r);
    own_oom_rule(r);
    follows_node_rule(r);
    wide_straggler_rule(r);
    silent_log_rule(r, f.zero_now);
    if (json_is_array(metrics) || r->nlines) peer_rule(r, json_is_array(metrics) ? metrics : NULL);
    reservation_rule(r, metrics, f.zero_now);
    directory_rule(r);
    size_divergence_rule(r);
    straggler_heat_rule(r);
    sm_port_rule(r);
    held_facts(r, &f);
    progress_facts(r, &f);
    completing_facts(r, &f);
    f.counter_stopped = (json_is_array(metrics) && counter_stopped(metrics)) ||
                        (json_is_array(r->textm) && counter_stopped(r->textm));
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
             !f.progress && idle >= 0 && !facts_class_hit(r, hung))
        add_hit(r, idle, DK_CORR, ST_STRONG, "facts-held-idle",
                diag_fmt("GPUs held (allocated or reserved) and ~0%% for %.1f h, never busy in "
                         "the window: held, not used",
                         f.idle_for / 3600));
    if (f.zero_now && f.held > 0 && f.counter_stopped && !f.progress && hung >= 0 &&
        !facts_class_hit(r, hung))
        add_hit(r, hung, DK_CORR, ST_STRONG, "facts-counter-stopped",
                diag_fmt("%s", "the job's progress counter held one value for half an hour or "
                               "more while its GPUs read ~0 and it still holds them: hung"));
    if (!f.ngpus) idle_words_rule(r, &f);
    if (f.held < 0 && idle >= 0) facts_drop_class(r, idle);
    if ((f.paused || f.progress) && hung >= 0) facts_drop_class(r, hung);
    if (f.completing && f.procs_gone && stale >= 0 && !facts_hardware_hit(r))
        add_hit(r, stale, DK_CORR, ST_STRONG, "facts-completing-gone",
                diag_fmt("%s", "the node is completing a job whose processes are gone or stuck "
                               "in the kernel: its remains hold the node"));
}
