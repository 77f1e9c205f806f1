/* A fault read once and a clean reading of the same thing after it: the
 * fault is history.  A filesystem that filled (ENOSPC, a df row at 100%)
 * and reads well below full at a later stamp, or as the last usage told,
 * was cleaned since: nothing to repair now.  A later reading still near
 * full keeps the class. */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "diag_int.h"

#define DISK_CLEAN_PCT 90.0 /* below it a filesystem has room again */

/* The highest "NN%" on a line about a filesystem's usage (df's rows,
 * "usage now 38%", "Use%: 41"); NAN when the line tells none. */
static double usage_pct(const tline *l)
{
    static const char *const disk[] = {"df ",   "/dev/",  "filesystem", "disk",   "usage",
                                       "used",  "use%",   "mounted",    "volume", "scratch",
                                       "space", "rootfs", "journal"};
    static const char *const not_disk[] = {"gpu", "util", "memory", "mem ", "cpu", "inode"};
    if (!facts_any(l, disk, NOF(disk)) || facts_any(l, not_disk, NOF(not_disk))) return NAN;
    double best = NAN;
    for (size_t i = 1; i < l->len; i++) {
        if (l->s[i] != '%' || !isdigit((unsigned char)l->s[i - 1])) continue;
        size_t a = i;
        while (a > 0 && (isdigit((unsigned char)l->s[a - 1]) || l->s[a - 1] == '.'))
            a--;
        double v = strtod(l->s + a, NULL);
        /* a df row's "NN% /mount", "NN% used" or "full", or "usage NN%" */
        size_t e = i + 1;
        while (e < l->len && l->s[e] == ' ')
            e++;
        const char *after = l->s + e;
        size_t rest = l->len - e;
        tline before = {.s = l->s + (a > 24 ? a - 24 : 0), .len = a > 24 ? 24 : a};
        static const char *const lead[] = {"usage", "use%", "used", "full"};
        bool told =
            (rest && *after == '/') ||
            (rest >= 4 && (strncmp(after, "used", 4) == 0 || strncmp(after, "full", 4) == 0)) ||
            facts_any(&before, lead, NOF(lead));
        if (told && v <= 100 && (isnan(best) || v > best)) best = v;
    }
    return best;
}

/* Whether line a was read before line b: by their stamps when both have
 * one, else by their order in one source. */
static bool read_before(const run *r, int a, int b)
{
    int year = 1970 + (int)(time(NULL) / 31556952);
    double ta = line_stamp(r->lines[a].s, r->lines[a].len, year);
    double tb = line_stamp(r->lines[b].s, r->lines[b].len, year);
    if (!isnan(ta) && !isnan(tb)) return ta < tb;
    return r->lines[a].src == r->lines[b].src ? a < b : isnan(ta) || isnan(tb);
}

/* Whether signature sig tells class c. */
static bool sig_tells(const diag_sig *g, int c)
{
    for (int k = 0; k < g->ncls; k++)
        if (g->cls[k] == c) return true;
    return false;
}

/* The i-th path on a line ("/local_scratch/ckpt/x.pt", "/"), /dev's
 * devices left out: its offset at *at and its length, 0 when none is. */
static size_t path_at(const tline *l, int nth, size_t *at)
{
    for (size_t i = 0; i < l->len; i++) {
        if (l->s[i] != '/' || (i && !strchr(" \t'\"(=:", l->s[i - 1]))) continue;
        size_t e = i + 1;
        while (e < l->len && !strchr(" \t'\"),:;", l->s[e]))
            e++;
        bool dev = e - i >= 5 && strncmp(l->s + i, "/dev/", 5) == 0;
        if (!dev && nth-- == 0) {
            *at = i;
            return e - i;
        }
        i = e;
    }
    return 0;
}

/* The mount a usage reading is of: the path after its percentage (df's
 * last column) or else its first path; 0 when it names none. */
static size_t reading_mount(const tline *l, size_t *at)
{
    size_t n = 0, a;
    for (int k = 0; k < 8 && (n = path_at(l, k, &a)) > 0; k++) {
        *at = a;
        if (a > 0 && memchr(l->s, '%', a)) return n;
    }
    return path_at(l, 0, at);
}

/* The reading of the mount that holds path p (the longest mount that is
 * a prefix of it; a line without a path is read against a single mount):
 * the latest such reading's line, -1 when none. */
static int mount_reading(const run *r, const char *p, size_t pn)
{
    int best = -1;
    size_t bestlen = 0;
    for (int i = 0; i < r->nlines; i++) {
        if (isnan(usage_pct(&r->lines[i]))) continue;
        size_t at, mn = reading_mount(&r->lines[i], &at);
        const char *m = r->lines[i].s + at;
        bool holds = mn && (pn == 0 || (mn <= pn && memcmp(p, m, mn) == 0 &&
                                        (mn == 1 || mn == pn || p[mn] == '/')));
        if (!holds || mn < bestlen) continue;
        if (mn > bestlen || best < 0 || read_before(r, best, i)) best = i;
        bestlen = mn;
    }
    return best;
}

/* The lines telling a filesystem full, when a later usage reading of the
 * same mount tells room again: marked in q as history (read from no
 * source now). */
int disk_cleaned_lines(run *r, unsigned char *q)
{
    int c = diag_class_index(r->db, "node_disk_full");
    if (c < 0) return 0;
    int n = 0;
    for (int k = 0; k < r->nraws; k++) {
        int li = r->raws[k].line;
        if (!sig_tells(&r->db->sigs[r->raws[k].sig], c)) continue;
        const tline *l = &r->lines[li];
        size_t at = 0, pn = isnan(usage_pct(l)) ? path_at(l, 0, &at) : reading_mount(l, &at);
        int now = mount_reading(r, l->s + at, pn);
        if (now < 0 || now == li || !read_before(r, li, now) ||
            usage_pct(&r->lines[now]) >= DISK_CLEAN_PCT)
            return 0; /* one filesystem still full, or no later reading: all stay */
    }
    for (int k = 0; k < r->nraws; k++)
        if (sig_tells(&r->db->sigs[r->raws[k].sig], c) && !q[r->raws[k].line]) {
            q[r->raws[k].line] = 1;
            n++;
        }
    return n;
}

/* ---- an application's Xid at its user's own stop ------------------------- */

#define STOP_WINDOW_S 120.0 /* the driver logs the channel's end within seconds */

/* The user (or the scheduler on the user's behalf) stopping the job: an
 * interrupt, a cancel, a kill it asked for. */
static bool user_stop_line(const tline *l)
{
    static const char *const w[] = {"KeyboardInterrupt",
                                    "^C",
                                    "Ctrl-C",
                                    "Ctrl+C",
                                    "SIGINT",
                                    "scancel",
                                    "CANCELLED AT",
                                    "CANCELLED by",
                                    "cancelled by user",
                                    "killed by user",
                                    "Received Signals.SIGTERM",
                                    "got signal: 2",
                                    "got signal: 15"};
    /* the scheduler's own limits end a job too, but not by its user */
    static const char *const not_user[] = {"TIME LIMIT", "PREEMPT", "NODE FAIL"};
    return l->src != DS_KERNEL && facts_any(l, w, NOF(w)) && !facts_any(l, not_user, NOF(not_user));
}

/* An Xid whose NVIDIA action is the application's (RESTART_APP, IGNORE):
 * what a process's end leaves, never a device's fault. */
static bool app_xid(const run *r, int k)
{
    const diag_xid *x =
        r->db->sigs[r->raws[k].sig].xid ? diag_xid_find(r->db, r->raws[k].xid) : NULL;
    return x && (strcmp(x->action, "RESTART_APP") == 0 || strcmp(x->action, "IGNORE") == 0);
}

/* Whether t is within the window of a stamp on line l: a record of a job
 * carries its start and its end (sacct's Start, End), and the stop is its
 * end, so every stamp the line holds counts, not only its first. */
static bool near_stamp_of(const tline *l, double t, int year)
{
    /* its own stamp first: a journald record's, a leading one */
    double own[2] = {line_stamp(l->s, l->len, year), line_any_stamp(l->s, l->len, year)};
    for (int k = 0; k < 2; k++)
        if (!isnan(own[k]) && fabs(t - own[k]) <= STOP_WINDOW_S) return true;
    for (size_t i = 0; i < l->len; i++) {
        if (!isdigit((unsigned char)l->s[i]) || (i && isalnum((unsigned char)l->s[i - 1])))
            continue;
        double s = line_stamp(l->s + i, l->len - i, year);
        if (!isnan(s) && fabs(t - s) <= STOP_WINDOW_S) return true;
        while (i < l->len && isdigit((unsigned char)l->s[i]))
            i++;
    }
    return false;
}

/* Whether an Xid stamped tx came with some user stop (any stop line). */
static bool near_a_stop(const run *r, double tx, int year)
{
    for (int i = 0; i < r->nlines; i++)
        if (user_stop_line(&r->lines[i]) && near_stamp_of(&r->lines[i], tx, year)) return true;
    return false;
}

/* Xids of the application that came with its user's stop (by stamp within
 * two minutes of one the stop's line holds, or neither stamped), and no
 * other Xid at all: the process the user ended left them; history, and so
 * is the stop. */
int user_stop_lines(run *r, unsigned char *q)
{
    int year = 1970 + (int)(time(NULL) / 31556952);
    int stop = -1;
    for (int i = 0; i < r->nlines && stop < 0; i++)
        if (user_stop_line(&r->lines[i])) stop = i;
    if (stop < 0) return 0;
    /* signs of a process left holding the GPU: the stop did not end it,
     * and the Xid is part of what is told */
    int stale = diag_class_index(r->db, "stale_compute_state");
    for (int k = 0; k < r->nraws; k++)
        if (sig_tells(&r->db->sigs[r->raws[k].sig], stale)) return 0;
    /* a stamp anywhere on the stop's line (a record's Start and End) */
    double ts = line_stamp(r->lines[stop].s, r->lines[stop].len, year);
    int n = 0;
    for (int k = 0; k < r->nraws; k++) {
        if (!r->db->sigs[r->raws[k].sig].xid) continue;
        if (!app_xid(r, k)) return 0; /* a device's Xid: nothing here is history */
        const tline *l = &r->lines[r->raws[k].line];
        double tx = line_stamp(l->s, l->len, year);
        /* unstamped both (a journal's messages), or a stamp of a stop near it */
        if (isnan(tx) ? !isnan(ts) : !near_a_stop(r, tx, year)) return 0;
    }
    for (int k = 0; k < r->nraws; k++)
        if (r->db->sigs[r->raws[k].sig].xid && !q[r->raws[k].line]) {
            q[r->raws[k].line] = 1;
            n++;
        }
    return n;
}

/* ---- a BMC sensor that went past a threshold and came back --------------- */

/* A line of the BMC's (a SEL entry, ipmitool, a BMC alert) about a sensor. */
static bool sensor_line(const tline *l)
{
    static const char *const w[] = {"fan",  "sensor", "voltage", "volt", "psu",
                                    "ipmi", "sel",    "bmc",     "temp", "rpm"};
    return l->src != DS_KERNEL && facts_any(l, w, NOF(w));
}

static bool recovered_line(const tline *l)
{
    static const char *const w[] = {"deasserted",         "recovered",     "back to normal",
                                    "returned to normal", "normal again",  "cleared",
                                    "back within",        "back in range", "no longer"};
    return facts_any(l, w, NOF(w));
}

/* The sensor a line names: its first token with letters and digits
 * ("FAN3", "P12V", "CPU1_Temp", "PSU2"), not a time or a record id; its
 * length, 0 when none. */
static size_t sensor_id(const tline *l, const char **at)
{
    for (size_t i = 0; i < l->len; i++) {
        if (!isalpha((unsigned char)l->s[i]) ||
            (i && (isalnum((unsigned char)l->s[i - 1]) || l->s[i - 1] == '_')))
            continue;
        size_t e = i;
        bool digit = false, hex = true;
        while (e < l->len && (isalnum((unsigned char)l->s[e]) || l->s[e] == '_')) {
            digit |= isdigit((unsigned char)l->s[e]) != 0;
            hex &= isxdigit((unsigned char)l->s[e]) != 0;
            e++;
        }
        if (digit && !hex && e - i >= 3 && e - i <= 24) {
            *at = l->s + i;
            return e - i;
        }
        i = e;
    }
    return 0;
}

/* A sensor's warning followed by its recovery (a SEL entry deasserted, a
 * BMC's "recovered", "back to normal") of the same sensor: both lines are
 * history; a warning with no later recovery stays. */
int sensor_recovered_lines(run *r, unsigned char *q)
{
    int n = 0;
    for (int d = 0; d < r->nlines; d++) {
        const tline *dl = &r->lines[d];
        const char *ds;
        size_t dn;
        if (!sensor_line(dl) || !recovered_line(dl) || !(dn = sensor_id(dl, &ds))) continue;
        int paired = 0;
        for (int a = 0; a < r->nlines; a++) {
            const tline *al = &r->lines[a];
            const char *as;
            size_t an;
            if (a == d || q[a] || !sensor_line(al) || recovered_line(al) ||
                !(an = sensor_id(al, &as)) || an != dn || strncmp(as, ds, an) != 0 ||
                !read_before(r, a, d))
                continue;
            q[a] = 1;
            paired++;
        }
        n += paired;
        if (paired && !q[d]) {
            q[d] = 1;
            n++;
        }
    }
    return n;
}
