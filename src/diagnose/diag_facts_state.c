/* Facts of what earlier jobs left behind, read across sources: an
 * application's Xid that later runs no longer raise, GPU memory held by a
 * process of a job that has ended. */
#include "diag_int.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

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
        "since the fix",   "after the fix", "runs clean",      "ran clean",  "both runs clean",
        "without any Xid", "no Xid since",  "no further Xid",  "no new Xid", "no Xid after",
        "completed since", "jobs since",    "completed clean", "clean jobs", "jobs clean"};
    static const char *const no[] = {"again", "still", "same Xid", "failed", "not fixed"};
    static const char *const none_failed[] = {"none failed", "0 failed", "no failures",
                                              "none of them failed", "zero failed"};
    /* other users' jobs running clean on the node say the fault follows the
     * failing job, not that its runs since are clean */
    static const char *const others[] = {"other user",  "users' jobs",   "other jobs",
                                         "other teams", "everyone else", "others' jobs"};
    long bad = -1, good = -1;
    /* someone counted the node's Xid lines over a window and found none */
    if (xid_count_zero(r)) return true;
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        if (l->src == DS_JOBS) {
            long id = job_id_of(l);
            if (facts_has(l, "state=FAILED") && id > bad) bad = id;
            if (facts_has(l, "state=COMPLETED") && facts_has(l, "exit=0:0") && id > good) good = id;
            continue;
        }
        /* the failed job submitted again and run to completion */
        bool rerun = facts_has_ci(l, "resubmit") && facts_has_ci(l, "completed");
        if ((rerun || facts_any(l, w, sizeof w / sizeof *w)) &&
            !facts_any(l, others, sizeof others / sizeof *others) &&
            (!facts_any(l, no, sizeof no / sizeof *no) ||
             facts_any(l, none_failed, sizeof none_failed / sizeof *none_failed)))
            return true;
    }
    return bad >= 0 && good > bad;
}

/* The GPUs compute now and nothing failing is on record: a utilisation
 * sample of the node at 50% or more; no job log, no job of the list that
 * failed, no line that tells a failure.  An application's Xid does not
 * outlive its process: with the GPUs busy since and no failure told, what
 * its line and DCGM's last-Xid gauge hold is history. */
static bool busy_since(const run *r, const json_t *metrics)
{
    /* a job ended by a failure, a kill, a cancel or its time limit */
    static const char *const failed[] = {"FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "crash",
                                         "died",   "killed",    "abort",         "error",
                                         "cancel", "timeout",   "exit code"};
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        /* (a DCGM field's name, XID_ERRORS, tells no failure) */
        if (l->src == DS_JOB || (l->src != DS_KERNEL && !facts_has(l, "DCGM_FI_") &&
                                 facts_any(l, failed, sizeof failed / sizeof *failed)))
            return false;
    }
    bool busy = false;
    size_t i;
    const json_t *m;
    json_array_foreach(metrics, i, m)
    {
        const char *nm = json_string_value(json_object_get(m, "name"));
        char hb[64];
        const char *h = host_of(json_object_get(m, "labels"), hb, sizeof hb);
        if (nm && strcmp(nm, "DCGM_FI_DEV_GPU_UTIL") == 0 &&
            (!r->node || !*h || same_host(h, r->node)) &&
            json_number_value(json_object_get(m, "value")) >= 50)
            busy = true;
    }
    return busy;
}

/* An application's fault (its own bug, a contained memory error that
 * killed only the process that touched the page: NVIDIA's action restart
 * the application) that runs since no longer raise is history. */
void app_fault_rule(run *r, const json_t *metrics)
{
    static const char *const app[] = {"gpu_app_fault", "gpu_ecc_contained"};
    bool any = false;
    for (size_t k = 0; k < sizeof app / sizeof *app; k++) {
        int c = diag_class_index(r->db, app[k]);
        any |= c >= 0 && fresh_groups(r, c) > 0;
    }
    if (!any || facts_hardware_hit(r) || !(clean_runs_since(r) || busy_since(r, metrics))) return;
    for (size_t k = 0; k < sizeof app / sizeof *app; k++) {
        int c = diag_class_index(r->db, app[k]);
        if (c >= 0) facts_drop_class(r, c);
    }
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
    return facts_any(l, w, sizeof w / sizeof *w);
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
               (strchr(" =:#_", l->s[j]) || l->s[j] == 'i' || l->s[j] == 'I' || l->s[j] == 'd' ||
                l->s[j] == 'D'))
            j++, k++;
        if (j < l->len && isdigit((unsigned char)l->s[j])) return strtol(l->s + j, NULL, 10);
    }
    return -1;
}

/* Whether the line holds v as a whole number ("/proc/4242/cgroup"). */
static bool names_number(const tline *l, long v)
{
    for (size_t p = 0; p < l->len; p++) {
        if (!isdigit((unsigned char)l->s[p]) || (p && isalnum((unsigned char)l->s[p - 1])))
            continue;
        size_t q = p;
        long x = 0;
        while (q < l->len && isdigit((unsigned char)l->s[q]) && x < 100000000)
            x = x * 10 + (l->s[q++] - '0');
        if (x == v && (q == l->len || !isalnum((unsigned char)l->s[q]))) return true;
        p = q;
    }
    return false;
}

/* The job a PID belongs to, as a line ties them: a listpids row of
 * numbers alone ("4242 812 0 0 0", the PID first), or "pid 4242 ... job
 * 812" in words; -1 when no line does. */
static long job_of_pid(const run *r, long pid)
{
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        if (l->src == DS_JOBS) continue;
        if (after_word(l, "pid") == pid || names_number(l, pid)) {
            /* "pid=4242 job 812", or the PID's cgroup path ".../job_812/" */
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
            ended |= facts_has(l, key) && ended_word(l);
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

/* The other process a CUDA out-of-memory message names as holding the
 * GPU's memory ("Process 1188201 has 76.40 GiB memory in use"), -1. */
static long oom_other_pid(const run *r)
{
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        const char *p = memmem(l->s, l->len, "Process ", 8);
        if (!p || !facts_has(l, "memory in use")) continue;
        p += 8;
        const char *end = l->s + l->len;
        if (p < end && isdigit((unsigned char)*p)) {
            long v = strtol(p, NULL, 10);
            const char *q = p;
            while (q < end && isdigit((unsigned char)*q))
                q++;
            if (end - q > 5 && strncmp(q, " has ", 5) == 0) return v;
        }
    }
    return -1;
}

/* Whether a line says the pid belongs to no job that runs ("no running
 * job", "orphan", "not in any Slurm job"). */
static bool pid_jobless(const run *r, long pid)
{
    static const char *const w[] = {"no running job", "no running slurm job",
                                    "not in any job", "not part of any job",
                                    "belongs to no",  "orphan",
                                    "no job on",      "not in any slurm job",
                                    "has no job",     "not associated with any",
                                    "leftover",       "left over",
                                    "zombie",         "ghost",
                                    "stale process"};
    /* or a job the scheduler lists as over (cancelled, completed), while
     * no line ties the pid to a job that runs */
    static const char *const over[] = {"CANCELLED", "COMPLETED", "ended", "exited", "finished"};
    bool ended = false;
    for (int i = 0; i < r->nlines; i++) {
        if (facts_any(&r->lines[i], w, sizeof w / sizeof *w)) return true;
        ended |=
            r->lines[i].src != DS_JOB && facts_any(&r->lines[i], over, sizeof over / sizeof *over);
    }
    return ended && job_of_pid(r, pid) < 0;
}

void held_memory_rule(run *r)
{
    int c = diag_class_index(r->db, "stale_compute_state");
    if (c < 0 || facts_class_hit(r, c)) return;
    long pids[MAX_PIDS];
    int n = gpu_pids(r, pids, MAX_PIDS);
    /* the upstream cause behind an out-of-memory: the process it names as
     * holding the memory is on the GPU and is of no job that runs */
    long other = oom_other_pid(r);
    for (int i = 0; i < n && other >= 0; i++)
        if (pids[i] == other && (pid_of_ended_job(r, other) || pid_jobless(r, other))) {
            add_hit(r, c, DK_CORR, ST_STRONG, "facts-memory-of-ended-job",
                    diag_fmt("the out-of-memory names pid %ld as holding the GPU's memory, a "
                             "process of no running job: an orphan holds the GPU",
                             other));
            return;
        }
    for (int i = 0; i < n; i++)
        if (pid_of_ended_job(r, pids[i])) {
            add_hit(r, c, DK_CORR, ST_STRONG, "facts-memory-of-ended-job",
                    diag_fmt("GPU memory held by pid %ld, a process of a job that has ended: "
                             "its remains hold the GPU",
                             pids[i]));
            return;
        }
}

/* ---- reboots nobody asked for --------------------------------------------- */

#define REBOOT_WINDOW_S (7 * 86400.0) /* two boots within a week: not routine */

/* A row of a boot list: last's "system boot <kernel> <start>" or
 * journalctl --list-boots' "-1 <32 hex id> <start> <end>".  The offset of
 * its start time, 0 when the line is no such row. */
static size_t boot_row(const tline *l)
{
    const char *sb = memmem(l->s, l->len, "system boot", 11);
    size_t i;
    if (sb) {
        i = (size_t)(sb - l->s) + 11;
        i += strspn(l->s + i, " \t");
        while (i < l->len && !isspace((unsigned char)l->s[i])) /* the kernel's version */
            i++;
        return i < l->len ? i : 0;
    }
    i = strspn(l->s, " \t");
    if (i < l->len && l->s[i] == '-') i++;
    size_t d = i;
    while (i < l->len && isdigit((unsigned char)l->s[i]))
        i++;
    if (i == d || i >= l->len || l->s[i] != ' ') return 0;
    size_t h = ++i;
    while (i < l->len && isxdigit((unsigned char)l->s[i]))
        i++;
    return i - h == 32 && i < l->len ? i : 0;
}

/* A reboot someone asked for or planned, said anywhere ("scontrol reboot",
 * "reboot requested", a maintenance); "no reboot was requested" is not. */
static bool reboot_asked(const run *r)
{
    static const char *const asked[] = {"scontrol reboot", "reboot requested", "reboot issued",
                                        "shutdown -r",     "planned",          "maintenance",
                                        "reboot asap",     "we rebooted",      "admin rebooted"};
    static const char *const denied[] = {"no reboot",      "nobody", "not requested", "not planned",
                                         "no maintenance", "wasn't", "was not"};
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        if (facts_any(l, asked, sizeof asked / sizeof *asked) &&
            !facts_any(l, denied, sizeof denied / sizeof *denied))
            return true;
    }
    return false;
}

/* Whether s starts with a weekday's short name. */
static bool weekday_at(const char *s)
{
    static const char *const day[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
    for (size_t k = 0; k < sizeof day / sizeof *day; k++)
        if (strncasecmp(s, day[k], 3) == 0) return true;
    return false;
}

/* Two or more boots within a week in a boot list (last, journalctl
 * --list-boots), none asked for: the node restarted on its own, the cause
 * unknown (power, BMC, watchdog).  A human's to find, never health; a
 * panic, a machine check or an Xid would be a class's evidence instead. */
void reboot_rule(run *r)
{
    int year = 1970 + (int)(time(NULL) / 31556952);
    double t[16], newest = NAN;
    int n = 0, last = -1;
    for (int i = 0; i < r->nlines && n < 16; i++) {
        const tline *l = &r->lines[i];
        size_t at = l->src == DS_EVENTS || l->src == DS_KERNEL ? boot_row(l) : 0;
        if (!at) continue;
        /* the start time, its weekday skipped ("Fri 2026-12-05 01:16:02") */
        at += strspn(l->s + at, " \t");
        if (at + 4 < l->len && l->s[at + 3] == ' ' && weekday_at(l->s + at)) at += 4;
        double s = line_stamp(l->s + at, l->len - at, year);
        if (isnan(s)) continue;
        if (!n || s > newest) {
            newest = s;
            last = i; /* the newest boot's row, cited */
        }
        t[n++] = s;
    }
    if (n < 2) return;
    int recent = 0;
    for (int k = 0; k < n; k++)
        recent += t[k] >= newest - REBOOT_WINDOW_S;
    if (recent < 2 || reboot_asked(r)) return;
    char why[96];
    snprintf(why, sizeof why, "[%d boots within a week, none asked for: the cause unknown] ",
             recent);
    add_anomaly(r, ST_STRONG, 1, "anomaly-unexpected-reboot", line_evidence(r, last, why));
}

/* ---- sources that disagree ------------------------------------------------- */

/* The exporter or DCGM's host engine restarted, told by any log. */
static bool collector_restarted(const run *r)
{
    static const char *const who[] = {"exporter", "hostengine", "nv-hostengine", "dcgm.service"};
    static const char *const what[] = {"restart", "Started", "started", "exited"};
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        if (facts_any(l, who, sizeof who / sizeof *who) &&
            facts_any(l, what, sizeof what / sizeof *what))
            return true;
    }
    return false;
}

/* A GPU's metric series gone (absent from a query, "no data") while the
 * collector restarted at that time: the series stopped with the collector,
 * not with the GPU.  Which source is right is a human's to check:
 * inconclusive, never health and never a GPU off the bus on this alone. */
void disagree_rule(run *r)
{
    int c = diag_class_index(r->db, "gpu_fallen_off_bus");
    if (c < 0 || !facts_class_hit(r, c) || !collector_restarted(r)) return;
    for (int i = 0; i < r->nhits; i++)
        if (r->hits[i].cls == c && !r->hits[i].old &&
            strncmp(r->hits[i].group, "gpu-count-short", 15) != 0) /* "group/GPU" */
            return; /* the GPU lost by another source too (an Xid, the driver) */
    facts_drop_class(r, c);
    add_anomaly(r, ST_STRONG, 1, "sources-disagree",
                diag_fmt("%s", "a GPU's metric series stopped while the exporter or host "
                               "engine restarted: the collector, or the GPU? Sources disagree, "
                               "check the GPU on the node"));
}

/* lspci asked about a device and it answered nothing: an echoed command
 * that printed nothing, or words saying lspci shows none at the address. */
static bool lspci_empty(const run *r)
{
    static const char *const none[] = {"nothing",     "no device", "no output", "not listed",
                                       "not present", "not found", "missing",   "empty",
                                       "absent",      "no entry",  "gone"};
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        if (l->src == DS_KERNEL || !facts_has(l, "lspci")) continue;
        if (facts_no_answer(r, i) || facts_any(l, none, sizeof none / sizeof *none)) return true;
    }
    return false;
}

/* A GPU that does not answer (no handle for it, no Xid saying it hung)
 * while the PCI bus no longer lists it at its address: it is not hung,
 * it is gone from the bus. */
void gone_from_bus_rule(run *r)
{
    int hang = diag_class_index(r->db, "gpu_hang");
    int bus = diag_class_index(r->db, "gpu_fallen_off_bus");
    if (hang < 0 || bus < 0 || !facts_class_hit(r, hang) || facts_class_hit(r, bus)) return;
    for (int i = 0; i < r->nhits; i++)
        if (r->hits[i].cls == hang && strncmp(r->hits[i].group, "gpu-not-answering", 17) != 0)
            return; /* the hang told by more than a missing handle (an Xid) */
    if (!lspci_empty(r)) return;
    facts_drop_class(r, hang);
    add_hit(r, bus, DK_CORR, ST_STRONG, "facts-gone-from-lspci",
            diag_fmt("%s", "a GPU that answers no query and that lspci no longer lists at its "
                           "address: gone from the bus, not hung"));
}

/* ---- a running job whose log stopped, timed by the input ----------------- */

#define SILENT_S 3600.0 /* an hour without a write: no training loop logs that rarely */

/* The line right after i in the same entry of the same source: a command's
 * answer in one block.  -1 when there is none. */
static int answer_of(const run *r, int i)
{
    int j = i + 1;
    if (j >= r->nlines || r->lines[j].src != r->lines[i].src ||
        r->lines[j].entry != r->lines[i].entry)
        return -1;
    return j;
}

/* The time a line tells after offset at: ISO 8601 (stat's %y, its
 * "Modify:" field) or date's "Mon Dec  7 09:40:02 UTC 2026"; NAN. */
static double told_time(const tline *l, size_t at)
{
    char buf[48];
    while (at < l->len && l->s[at] == ' ')
        at++;
    size_t n = l->len - at < sizeof buf - 1 ? l->len - at : sizeof buf - 1;
    memcpy(buf, l->s + at, n);
    buf[n] = 0;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (strptime(buf, "%a %b %d %H:%M:%S UTC %Y", &tm)) return (double)timegm(&tm);
    return line_stamp(buf, n, 1970 + (int)(time(NULL) / 31556952));
}

/* The file's last write and the current time, both as the input tells
 * them (a stat and a date answer), never the wall clock. */
static bool told_times(const run *r, double *mtime, double *now)
{
    *mtime = *now = NAN;
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        const char *m = memmem(l->s, l->len, "Modify:", 7);
        if (m) *mtime = told_time(l, (size_t)(m - l->s) + 7);
        int j = answer_of(r, i);
        if (j < 0) continue;
        if (facts_has(l, "stat ") && isnan(*mtime)) *mtime = told_time(&r->lines[j], 0);
        if (facts_has(l, "date") && !facts_has(l, "update") && isnan(*now))
            *now = told_time(&r->lines[j], 0);
    }
    return !isnan(*mtime) && !isnan(*now);
}

/* A GPU reading 0% busy: nvidia-smi's "0 %", a table's " 0%". */
static bool gpu_zero_told(const run *r)
{
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        for (size_t k = 1; k + 1 < l->len; k++)
            if (l->s[k] == '0' && strchr(" ,|", l->s[k - 1]) &&
                (l->s[k + 1] == '%' ||
                 (l->s[k + 1] == ' ' && k + 2 < l->len && l->s[k + 2] == '%')))
                return true;
    }
    return false;
}

/* A RUNNING job whose log's last write (stat) is an hour or more before
 * the time the input tells (date), its GPUs at 0% (metrics or text). */
void silent_log_rule(run *r, bool gpus_zero)
{
    int c = diag_class_index(r->db, "job_hung");
    if (c < 0 || facts_class_hit(r, c)) return;
    double mtime, now;
    if (!told_times(r, &mtime, &now) || now - mtime < SILENT_S) return;
    if (!gpus_zero && !gpu_zero_told(r)) return;
    bool running = false;
    for (int i = 0; i < r->nlines && !running; i++)
        running = facts_has(&r->lines[i], "RUNNING");
    if (!running) return;
    add_hit(r, c, DK_CORR, ST_STRONG, "facts-log-silent-running",
            diag_fmt("the job RUNNING, its log last written %.1f h before the time the input "
                     "tells, GPUs at 0%%: the job stopped moving",
                     (now - mtime) / 3600.0));
}

/* ---- a failure that follows one node across attempts --------------------- */

/* The node list of a history line ("node=h100-g7-02", "nodes=h100-g7-[01-04]",
 * "host=...") into out; false without one. */
static bool history_nodes(const tline *l, char *out, size_t n)
{
    static const char *const key[] = {
        " node=", " nodes=", " host=", " hosts=", " nodelist=", "node="};
    const char *p = NULL;
    for (size_t k = 0; !p && k < sizeof key / sizeof *key; k++)
        p = memmem(l->s, l->len, key[k], strlen(key[k]));
    if (!p) return false;
    p = memchr(p, '=', (size_t)(l->s + l->len - p)) + 1;
    size_t k = 0;
    while (p + k < l->s + l->len && p[k] != ' ' && k + 1 < n)
        k++;
    memcpy(out, p, k);
    out[k] = 0;
    return k > 0;
}

/* Attempts on record that failed, two or more, every one on this node,
 * and a later one without an error that ran without it: the failure
 * follows the node (marker failure-follows-node, read for the scope). */
void follows_node_rule(run *r)
{
    if (!r->node || !r->node[0] || group_marked(r, "failure-follows-node") || r->nmarks >= 32)
        return;
    int failed = 0;
    bool clean_without = false;
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        char nodes[256];
        if (l->src != DS_HISTORY || !history_nodes(l, nodes, sizeof nodes)) continue;
        bool on = fm_diag_hostlist_has(nodes, r->node) == 1;
        if (facts_has(l, " error=")) {
            if (!on) return; /* it failed elsewhere too: the job's */
            failed++;
        } else if (!on && failed >= 2) {
            clean_without = true;
        }
    }
    if (failed >= 2 && clean_without) r->marks[r->nmarks++] = "failure-follows-node";
}

/* Whether pid is named on a line of the job's own log (its rank's
 * "pid 4242", a traceback's process): the process is the job's. */
static bool pid_in_job_log(const run *r, long pid)
{
    for (int i = 0; i < r->nlines; i++)
        if (r->lines[i].src == DS_JOB && names_number(&r->lines[i], pid)) return true;
    return false;
}

/* A CUDA out-of-memory in the job's own forward pass, where the only sign
 * of stale state is a process row listed while no job runs: when every
 * listed process is the job's own (named in its log) or the job is the
 * only one on record, and nothing says a process is left over, the rows
 * are the job's at its failure, not memory another job left. */
void own_oom_rule(run *r)
{
    static const char *const rows_only[] = {"gpu-process-without-job"};
    static const char *const failed[] = {"FAILED", "OUT_OF_MEMORY", "OOM"};
    int stale = diag_class_index(r->db, "stale_compute_state");
    int oom = diag_class_index(r->db, "oom_batch_size");
    if (stale < 0 || oom < 0 || !facts_class_hit(r, oom) || !facts_class_hit(r, stale) ||
        !facts_hits_only_from(r, stale, rows_only, NOF(rows_only)) || oom_other_pid(r) >= 0)
        return;
    long pids[MAX_PIDS];
    int n = gpu_pids(r, pids, MAX_PIDS);
    for (int i = 0; i < n; i++)
        if (!pid_in_job_log(r, pids[i]) || pid_jobless(r, pids[i])) return;
    /* the job on record is the one that failed, no other ended before it */
    int jobs = 0, failed_jobs = 0;
    for (int i = 0; i < r->nlines; i++) {
        jobs += r->lines[i].src == DS_JOBS;
        failed_jobs += r->lines[i].src == DS_JOBS && facts_any(&r->lines[i], failed, NOF(failed));
    }
    if (jobs <= 1 && failed_jobs == jobs) facts_drop_class(r, stale);
}
