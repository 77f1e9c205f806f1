/* Time and history: line stamps, boots, repairs on record and readings
 * that show a state cleared since, which make earlier lines history. */
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

/* A line's own time: ISO 8601 or syslog's "Mon DD HH:MM:SS" (in year) at
 * its start; NAN without one. */
double line_stamp(const char *s, size_t len, int year)
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
double line_any_stamp(const char *s, size_t len, int year)
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
bool syslog_host(const char *s, size_t len, char *out, size_t cap)
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
/* The first "Mon D" / "Mon DD" of a line (a capitalised month's short
 * name, a blank, a day of one or two digits): the start of that day in
 * year; NAN when none. */
static double month_day(const tline *l, int year)
{
    static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    for (size_t i = 0; i + 5 <= l->len; i++) {
        if (i && isalpha((unsigned char)l->s[i - 1])) continue;
        for (int m = 0; m < 12; m++) {
            if (strncmp(l->s + i, mon[m], 3) != 0) continue;
            size_t j = i + 3;
            while (j < l->len && isalpha((unsigned char)l->s[j])) /* "December" */
                j++;
            if (j >= l->len || l->s[j] != ' ' || j + 1 >= l->len ||
                !isdigit((unsigned char)l->s[j + 1]))
                continue;
            int day = atoi(l->s + j + 1);
            size_t e = j + 1;
            while (e < l->len && isdigit((unsigned char)l->s[e]))
                e++;
            if (day < 1 || day > 31 || e - j - 1 > 2) continue;
            char d[24];
            snprintf(d, sizeof d, "%s %02d 00:00", mon[m], day);
            return line_stamp(d, strlen(d), year);
        }
    }
    return NAN;
}

static double repair_in_order(run *r, const double *st, int year, int li, double fixed)
{
    const tline *rl = &r->lines[li];
    double t = !isnan(st[li]) ? st[li] : line_any_stamp(rl->s, rl->len, year);
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
    /* or a month's day anywhere in it without a time ("Dec 02 after the
     * RMA", "closed Dec 3"): the start of that day too */
    if (isnan(t)) t = month_day(rl, year);
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
    double t = !isnan(st[m->line]) ? st[m->line] : line_any_stamp(cl->s, cl->len, year);
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
/* A line that says a fault came back after its repair. */
static bool recurs(const tline *l)
{
    static const char *const w[] = {"again",
                                    "still",
                                    "recur",
                                    "returned",
                                    "came back",
                                    "reappear",
                                    "persist",
                                    "since the",
                                    "after the swap",
                                    "after the replacement",
                                    "after the repair",
                                    "new xid",
                                    "new error",
                                    "re-occur",
                                    "reoccur"};
    return facts_any(l, w, sizeof w / sizeof *w);
}

/* A part replaced (a GPU swapped, an RMA, a new serial) on a record of no
 * date of its own: the fault that made someone replace it came before it.
 * Lines of other sources stamped a day or more before the newest time the
 * input tells (never the wall clock) are history, unless a
 * line of a fault says it came back. */
static void replaced_undated(run *r, const double *st, int li)
{
    static const char *const part[] = {"replac", "swap", "rma", "serial", "s/n", "new board"};
    static const char *const fault[] = {"xid", "error", "ecc", "dbe", "fault", "fail"};
    const tline *rl = &r->lines[li];
    if (!isnan(st[li]) || !isnan(line_any_stamp(rl->s, rl->len, 1970)) ||
        !isnan(month_day(rl, 1970)) || !facts_any(rl, part, sizeof part / sizeof *part) ||
        recurs(rl))
        return;
    double now = NAN;
    for (int i = 0; i < r->nlines; i++) {
        if (facts_any(&r->lines[i], fault, sizeof fault / sizeof *fault) && recurs(&r->lines[i]))
            return;
        if (!isnan(st[i]) && (isnan(now) || st[i] > now)) now = st[i];
    }
    for (int i = 0; i < r->nlines && !isnan(now); i++)
        if (r->lines[i].src != rl->src && !r->oldl[i] && !isnan(st[i]) && st[i] < now - 86400)
            r->oldl[i] = 3;
}

/* An unstamped line printed by a stamped command a few lines above it in
 * the same source ("Dec 06 21:05 $ nvidia-smi", then its output): the
 * command's stamp, else NAN. */
static double command_stamp(const run *r, const double *st, int li)
{
    const tline *l = &r->lines[li];
    for (int i = li - 1; i >= 0 && i >= li - 8; i--) {
        const tline *c = &r->lines[i];
        if (c->src != l->src) break;
        if (isnan(st[i])) continue;
        return memmem(c->s, c->len, "$ ", 2) ? st[i] : NAN;
    }
    return NAN;
}

void find_boots(run *r)
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
    /* dmesg's clock going back starts a boot, when it goes back to a new
     * boot's early seconds or below half what it read: a few minutes back
     * at the same hours of uptime is an excerpt pasted out of order */
    double prev[DS_N];
    for (int s = 0; s < DS_N; s++)
        prev[s] = -1;
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        if (l->src != DS_KERNEL || l->len < 4 || l->s[0] != '[') continue;
        char *end;
        double t = strtod(l->s + 1, &end);
        if (end == l->s + 1 || *end != ']') continue;
        if (prev[l->src] > t + 1.0 && (t < 300 || t < prev[l->src] / 2) && !kind[i]) kind[i] = 1;
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
    /* a job of the node's list that failed (FAILED, NODE_FAIL, BOOT_FAIL)
     * before a later one (a larger id) completed clean there: the node ran
     * jobs since, that failure is history (an OOM or a timeout, the job's
     * own limits, stays the job's) */
    long clean = -1;
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        const char *j = l->src == DS_JOBS ? memmem(l->s, l->len, " job=", 5) : NULL;
        if (j && memmem(l->s, l->len, "state=COMPLETED", 15) &&
            memmem(l->s, l->len, "exit=0:0", 8)) {
            long id = strtol(j + 5, NULL, 10);
            if (id > clean) clean = id;
        }
    }
    for (int i = 0; i < r->nlines && clean > 0; i++) {
        const tline *l = &r->lines[i];
        const char *j = l->src == DS_JOBS ? memmem(l->s, l->len, " job=", 5) : NULL;
        if (j && !r->oldl[i] && strtol(j + 5, NULL, 10) < clean &&
            (memmem(l->s, l->len, "state=NODE_FAIL", 15) ||
             memmem(l->s, l->len, "state=BOOT_FAIL", 15) ||
             memmem(l->s, l->len, "state=FAILED", 12)))
            r->oldl[i] = OLD_JOB_BEFORE_CLEAN;
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
            for (int k = 0; k < npos; k++)
                replaced_undated(r, st, pos[k]);
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
                double t =
                    !isnan(st[i]) ? st[i] : line_any_stamp(r->lines[i].s, r->lines[i].len, year);
                if (isnan(t)) t = command_stamp(r, st, i);
                if (!isnan(t) && t < fixed - 60) r->oldl[i] = 3;
            }
            /* a dated repair's own record names the fault it repaired
             * ("baseboard replaced after Xid 79"): that fault is history
             * too, unless the line says it came back (a reset told beside
             * the state read after it is not such a record) */
            for (int k = 0; k < nrep; k++) {
                int li = r->raws[rep[k]].line;
                if (li >= 0 && li < r->nlines && !r->oldl[li] && !recurs(&r->lines[li]))
                    r->oldl[li] = 3;
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

bool before_boot(const run *r, int li)
{
    return li >= 0 && r->oldl && li < r->nlines && r->oldl[li];
}
