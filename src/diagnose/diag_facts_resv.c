/* A reservation that holds nodes with no job in it while other jobs wait
 * for capacity: the capacity is set aside and unused, which is what the
 * waiting jobs are short of (idle_allocation, the cluster's).  Read from
 * what each part means, whatever the layout: a reservation named (Slurm's
 * fields, sinfo -T's header, the word), nothing in it (squeue for the
 * reservation answering its header alone or a count of 0, or said so), a
 * span of hours, and jobs pending on Resources or Priority. */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "diag_int.h"

static bool resv_named(const tline *l)
{
    static const char *const w[] = {"ReservationName=", "RESV_NAME", "reservation", "resv ",
                                    "reserved",         "set aside", "earmarked",   "blocked off",
                                    "carved out",       "held for",  "dedicated to"};
    /* PyTorch's "reserved in total" is memory, not nodes */
    return facts_any(l, w, sizeof w / sizeof *w) && !facts_has(l, "PyTorch");
}

/* A count of 0 told of running jobs or allocated nodes ("RUNNING: 0",
 * "jobs 0", "0 running", "alloc 0/16", "0 allocated"). */
static bool zero_count(const tline *l)
{
    static const char *const w[] = {"running", "jobs", "alloc", "in use", "used"};
    for (size_t k = 0; k < sizeof w / sizeof *w; k++) {
        size_t n = strlen(w[k]);
        for (size_t i = 0; i + n <= l->len; i++) {
            if (strncasecmp(l->s + i, w[k], n) != 0) continue;
            size_t a = i + n;
            while (a < l->len && a < i + n + 12 && !isdigit((unsigned char)l->s[a]) &&
                   (isalpha((unsigned char)l->s[a]) || strchr(" :=\t", l->s[a])))
                a++;
            if (a < l->len && l->s[a] == '0' &&
                (a + 1 == l->len || !(isdigit((unsigned char)l->s[a + 1]) || l->s[a + 1] == '.')))
                return true;
            size_t b = i;
            while (b && l->s[b - 1] == ' ')
                b--;
            if (b < i && b && l->s[b - 1] == '0' &&
                (b < 2 || !(isdigit((unsigned char)l->s[b - 2]) || l->s[b - 2] == '.')))
                return true;
        }
    }
    return false;
}

/* The line's first non-blank byte. */
static const char *lead(const tline *l, size_t *rest)
{
    size_t a = 0;
    while (a < l->len && isspace((unsigned char)l->s[a]))
        a++;
    *rest = l->len - a;
    return l->s + a;
}

/* A row of squeue's answer: a job id first. */
static bool job_row(const tline *l)
{
    size_t n;
    const char *s = lead(l, &n);
    return n && isdigit((unsigned char)*s);
}

/* squeue asked for the reservation's jobs: the answer after it is its
 * header alone (or nothing) before the next command or the entry's end,
 * or a count of 0. */
static bool squeue_empty(const run *r, int i)
{
    const tline *l = &r->lines[i];
    if (!facts_has(l, "squeue") || !(facts_has(l, "-R") || facts_has_ci(l, "reserv"))) return false;
    if (facts_count_answer(r, i) == 0) return true;
    for (int j = i + 1; j < r->nlines && j <= i + 3; j++) {
        const tline *n = &r->lines[j];
        if (n->src != l->src || n->entry != l->entry) return true;
        size_t k;
        const char *s = lead(n, &k);
        if (facts_has(n, "JOBID")) continue;
        return !job_row(n) && (k == 0 || *s == '$' || *s == '#' || facts_has(n, "squeue") ||
                               facts_has_ci(n, "no jobs"));
    }
    return true;
}

/* Said in words: nothing ran in it, it sits empty, zero jobs in it. */
static bool none_told(const tline *l)
{
    static const char *const w[] = {"no jobs",
                                    "0 jobs",
                                    "zero jobs",
                                    "not one job",
                                    "not a single job",
                                    "no job has",
                                    "no job ran",
                                    "no job running",
                                    "no running job",
                                    "nothing has run",
                                    "nothing ran",
                                    "nothing running",
                                    "nothing is running",
                                    "never used",
                                    "unused",
                                    "sits empty",
                                    "sat empty",
                                    "still empty",
                                    "is empty",
                                    "been empty",
                                    "jobs in reservation: 0",
                                    "running jobs: 0",
                                    "no one has used",
                                    "nobody has used"};
    return facts_any(l, w, sizeof w / sizeof *w);
}

static bool pending_told(const tline *l)
{
    static const char *const w[] = {"(Resources)",     "(Priority)",       "Reason=Resources",
                                    "Reason=Priority", "reason Resources", "reason Priority",
                                    "\"Resources\"",   "\"Priority\""};
    static const char *const ci[] = {"pending", "queued", "waiting", "in the queue", " wait "};
    return facts_any(l, w, sizeof w / sizeof *w) || facts_any(l, ci, sizeof ci / sizeof *ci);
}

/* A node state that is a reserved node with no job: sinfo's "resv" (an
 * allocated node of a reservation reads "alloc"), RESERVED beside IDLE
 * in any order or layout ("IDLE+RESERVED", ["IDLE","RESERVED"]). */
static bool reserved_idle_state(const tline *l)
{
    for (size_t i = 0; i + 4 <= l->len; i++)
        if (strncmp(l->s + i, "resv", 4) == 0 && (i == 0 || l->s[i - 1] == ' ') &&
            (i + 4 == l->len || l->s[i + 4] == ' ' || l->s[i + 4] == '*'))
            return true;
    return facts_has(l, "RESERVED") && facts_has(l, "IDLE") && !facts_has(l, "ALLOC") &&
           !facts_has(l, "MIXED");
}

/* The node's own state list saying the same (node_state [IDLE, RESERVED]). */
static bool state_reserved_idle(const run *r)
{
    bool res = false, idle = false, busy = false;
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        if (l->src != DS_STATE) continue;
        res |= facts_has(l, "RESERV") || facts_has(l, "RESV");
        idle |= facts_has(l, "IDLE");
        busy |= facts_has(l, "ALLOC") || facts_has(l, "MIXED");
    }
    return res && idle && !busy;
}

/* The reservation started an hour or more before the input's newest stamp
 * (of any line, the reservation's own notes too: its start is the earliest
 * stamp of a line that names it). */
static bool started_long_ago(run *r)
{
    double start = NAN, newest = NAN;
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        double t = line_any_stamp(l->s, l->len, 2026);
        if (isnan(t)) continue;
        if (resv_named(l) || facts_has(l, "ACTIVE") || facts_has(l, "StartTime="))
            start = isnan(start) ? t : fmin(start, t);
        newest = isnan(newest) ? t : fmax(newest, t);
    }
    return !isnan(start) && !isnan(newest) && newest - start >= 3600;
}

/* A metric labelled by a reservation (a label named so, or its value). */
static bool resv_label(const json_t *metrics)
{
    size_t i;
    const json_t *o;
    json_array_foreach(metrics, i, o)
    {
        const char *k;
        const json_t *v;
        json_object_foreach((json_t *)json_object_get(o, "labels"), k, v)
        {
            const char *s = json_string_value(v);
            tline t = {.s = k, .len = strlen(k)}, u = {.s = s, .len = s ? strlen(s) : 0};
            if (facts_has_ci(&t, "reserv") || facts_has_ci(&u, "reserv")) return true;
        }
    }
    return false;
}

void reservation_rule(run *r, const json_t *metrics, bool gpus_idle)
{
    int idle = diag_class_index(r->db, "idle_allocation");
    int pend = diag_class_index(r->db, "pending_no_capacity");
    bool named = json_is_array(metrics) && resv_label(metrics), none = gpus_idle, pending = false,
         hours = false;
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        if (l->src == DS_KERNEL) continue;
        named |= resv_named(l) || (l->src == DS_STATE && facts_has(l, "RESERV"));
        bool idle_state = l->src != DS_STATE && reserved_idle_state(l);
        /* said in words beside the reservation: its nodes idle, empty */
        none |= resv_named(l) &&
                (facts_has_ci(l, " idle") || facts_has_ci(l, "empty") ||
                 facts_has_ci(l, "nothing scheduled")) &&
                !facts_has_ci(l, "not idle") && !facts_has_ci(l, "no longer idle");
        none |= squeue_empty(r, i) || none_told(l) || zero_count(l) || idle_told(l) || idle_state;
        /* the state is read now: how long it has held matters less than that
         * jobs wait for what it holds */
        hours |= idle_state;
        pending |= pending_told(l);
        hours |= long_told(l);
        /* a maintenance window, or one not yet started, is planned */
        if (facts_has(l, "MAINT") || facts_has(l, "State=INACTIVE")) return;
    }
    if (state_reserved_idle(r)) none = named = true;
    if (idle < 0 || !named || !none || !pending || facts_class_hit(r, idle)) return;
    if (!hours && !started_long_ago(r)) return;
    add_hit(r, idle, DK_CORR, ST_STRONG, "facts-reservation-empty-queue",
            diag_fmt("%s", "a reservation holds nodes with no job in it for hours while other "
                           "jobs pend for capacity: set aside, not used"));
    /* the waiting jobs are short of what the reservation holds idle */
    if (pend >= 0) facts_drop_class(r, pend);
}
