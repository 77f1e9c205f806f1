/* Facts of a node against its fabric and its peers, read across sources:
 * a port's story (down, up again, inside an announced window), the row
 * remap state a line tells last, one node slower than the others. */
#include "diag_int.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

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

/* A line's clock time (seconds of the day): a written "HH:MM", else its
 * leading stamp in any form the engine reads (epoch seconds too). */
static bool clock_of(const tline *l, double *t)
{
    if (day_times(l, t, 1) == 1) return true;
    int year = 1970 + (int)(time(NULL) / 31556952); /* syslog stamps carry no year */
    double e = line_stamp(l->s, l->len, year);
    if (isnan(e)) return false;
    *t = fmod(e, 86400.0);
    return true;
}

/* A port of the node that went down, told by any tool (kernel, UFM,
 * subnet manager, a switch log, a person); and one that came back. */
bool facts_link_down(const tline *l)
{
    static const char *const w[] = {"link down", "port down",    "changed to DOWN", "is down",
                                    "went down", "lost carrier", "Link DOWN",       "State: Down"};
    return (facts_has_ci(l, "port") || facts_has_ci(l, "link") || facts_has_ci(l, "mlx") ||
            facts_has_ci(l, "HCA")) &&
           facts_any(l, w, sizeof w / sizeof *w);
}

bool facts_link_up(const tline *l)
{
    static const char *const w[] = {"link up",         "port up",      "changed to ACTIVE",
                                    "State: Active",   "carrier on",   "link is back",
                                    "back up",         "LinkUp",       "came back",
                                    "no errors since", "stable since", "clean since"};
    return facts_any(l, w, sizeof w / sizeof *w);
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
    return facts_any(l, w, sizeof w / sizeof *w) && !facts_any(l, not, sizeof not / sizeof *not );
}

/* dmesg's stamp of seconds since boot ("[ 7201.044120]"). */
static bool since_boot_stamp(const tline *l)
{
    size_t i = l->len && l->s[0] == '[' ? 1 : 0;
    if (!i) return false;
    i += strspn(l->s + i, " ");
    size_t d = strspn(l->s + i, "0123456789");
    return d && i + d < l->len && l->s[i + d] == '.';
}

/* A Slurm host list range in a line ("h200-p1-[017-032]"): 1 when one
 * names the node, -1 when they name only others, 0 when there is none. */
static int range_names(const tline *l, const char *node)
{
    int seen = 0;
    size_t nl = strcspn(node, ".");
    for (size_t i = 1; i + 4 < l->len; i++) {
        if (l->s[i] != '[' || !isdigit((unsigned char)l->s[i + 1])) continue;
        size_t b = i; /* the prefix: the host name's letters before '[' */
        while (b > 0 && (isalnum((unsigned char)l->s[b - 1]) || l->s[b - 1] == '-'))
            b--;
        char *end;
        long lo = strtol(l->s + i + 1, &end, 10);
        if (*end != '-' || !isdigit((unsigned char)end[1])) continue;
        long hi = strtol(end + 1, &end, 10);
        if (*end != ']' && *end != ',') continue;
        seen = -1;
        size_t pl = i - b;
        if (pl > nl || strncasecmp(node, l->s + b, pl) != 0) continue;
        const char *d = node + pl;
        if (!isdigit((unsigned char)*d) || strspn(d, "0123456789") != nl - pl) continue;
        long v = strtol(d, NULL, 10);
        if (v >= lo && v <= hi) return 1;
    }
    return seen;
}

/* The links' story: a bounce (down, then up again), whether every down
 * fell inside an announced window (or no time says otherwise) and whether
 * the port read up after the last down. */
typedef struct link_facts {
    int downs;
    bool up_after;
    bool planned;
    bool covered;
    bool named;       /* the announcement's host list names this node */
    bool stable;      /* the port read stable, its counters unchanged, since */
    bool uptime_only; /* a down stamped only in seconds since boot */
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

static const char *const calm[] = {"stable since", "unchanged since", "clean since",
                                   "no errors since"};

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
            /* a window announced for other hosts is not this node's */
            int who = r->node ? range_names(l, r->node) : 0;
            lf->planned |= who >= 0;
            lf->named |= who > 0;
            continue;
        }
        lf->stable |= facts_any(l, calm, sizeof calm / sizeof *calm);
        if (facts_link_down(l)) {
            lf->downs++;
            last_down = i;
            double t[1];
            /* a down outside the window (15 min margin) is not the planned
             * work; nor is one whose time cannot be read against a window
             * that has times */
            /* dmesg's seconds since boot cannot be put on the wall clock */
            bool rel = since_boot_stamp(l);
            bool timed = !rel && clock_of(l, t);
            if (isfinite(lo) && (!timed || t[0] < lo - 900 || t[0] > hi + 900)) {
                lf->covered = false;
                lf->uptime_only = rel && (lf->uptime_only || lf->downs == 1);
            }
        } else if (facts_link_up(l) && last_down >= 0) {
            lf->up_after = true;
        }
    }
    lf->up_after &= last_down >= 0;
    /* counters read flat were taken out of the lines as no evidence: they
     * still tell the port calm since */
    for (int k = 0; k < r->nflat; k++)
        lf->stable |= facts_any(&r->flat[k], calm, sizeof calm / sizeof *calm);
    /* downs stamped in seconds since boot: the announcement naming this
     * node and the port stable since decide, not their times */
    if (!lf->covered && lf->uptime_only && lf->named && lf->stable) lf->covered = true;
}

/* Slowness told at all: a class for it, or a person or tool saying so. */
static bool slowness_told(const run *r, int straggler)
{
    static const char *const w[] = {"slower", "slowed", "slowdown", "crawl"};
    for (int i = 0; straggler >= 0 && i < r->nhits; i++)
        if (r->hits[i].cls == straggler && !r->hits[i].old) return true;
    for (int i = 0; i < r->nlines; i++)
        if (r->lines[i].src != DS_KERNEL && facts_any(&r->lines[i], w, sizeof w / sizeof *w))
            return true;
    return false;
}

/* iblinkinfo's row of a port that is down ("==( Down/ Polling)==> ...
 * \"gpu-q57 mlx5_1\""): this node's port only when the row names it, as
 * a fabric-wide listing names every host. */
static void linkinfo_down(run *r, int ib)
{
    char me[64] = "";
    size_t n = 0;
    for (; r->node && r->node[n] && r->node[n] != '.' && n + 1 < sizeof me; n++)
        me[n] = r->node[n];
    me[n] = 0;
    static const char *const state[] = {"Down/ Polling", "Down/Polling", "Down/ Disabled",
                                        "Down/Disabled"};
    for (int i = 0; i < r->nlines && ib >= 0 && n; i++) {
        const tline *l = &r->lines[i];
        if ((l->src != DS_EVENTS && l->src != DS_JOB) || before_boot(r, i) ||
            !facts_any(l, state, sizeof state / sizeof *state) || !facts_has(l, "==") ||
            !facts_has(l, me))
            continue;
        add_hit(r, ib, KIND_OF[l->src], ST_STRONG, "ib-linkinfo-down",
                line_evidence(r, i, "[iblinkinfo: this node's port Down/Polling] "));
        return;
    }
}

/* ---- a PCIe link trained narrow, read from a query CSV ------------------ */

/* The number after "key: " in a line ("pcie.link.width.current: 4", a CSV
 * row named by its header), NAN. */
static double named_num(const tline *l, const char *key)
{
    size_t n = strlen(key);
    const char *p = memmem(l->s, l->len, key, n);
    if (!p) return NAN;
    size_t i = (size_t)(p - l->s) + n;
    while (i < l->len && strchr(" :=x", l->s[i]))
        i++;
    return i < l->len && isdigit((unsigned char)l->s[i]) ? strtod(l->s + i, NULL) : NAN;
}

/* nvidia-smi --query-gpu with pcie.link.width.current in any column (its
 * rows named by the header): a GPU whose link runs at half its maximum
 * (the width.max column, or the widest of its peers' links in the same
 * table) or less trained down; an idle GPU lowers its link's speed on
 * purpose, never its width. */
static void csv_link_width(run *r)
{
    int c = diag_class_index(r->db, "gpu_pcie_error");
    if (c < 0) return;
    for (int i = 0; i < r->nlines; i++) {
        double widest = 0, narrow = NAN;
        int row = -1, j = i;
        for (; j < r->nlines && r->lines[j].src == r->lines[i].src &&
               r->lines[j].entry == r->lines[i].entry;
             j++) {
            double w = named_num(&r->lines[j], "pcie.link.width.current");
            double m = named_num(&r->lines[j], "pcie.link.width.max");
            if (isnan(w)) continue;
            if (w > widest) widest = w;
            if (m > widest) widest = m;
            if (isnan(narrow) || w < narrow) narrow = w, row = j;
        }
        if (row >= 0 && widest >= 8 && narrow <= widest / 2) {
            add_hit(r, c, KIND_OF[r->lines[row].src], ST_STRONG, "pcie-link-width-below-max",
                    line_evidence(r, row,
                                  "[this GPU's PCIe link at half its maximum or its peers' "
                                  "width or less: trained down] "));
            return;
        }
        i = j - 1; /* the next entry */
    }
}

/* An attempt to bring a port back: a retrain, a toggle, a reset of it. */
static bool retry_told(const run *r)
{
    static const char *const w[] = {"retrain",        "toggle",           "ibportstate",
                                    "re-enable",      "bounced the port", "link training",
                                    "reset the port", "port reset"};
    for (int i = 0; i < r->nlines; i++)
        if (facts_any(&r->lines[i], w, sizeof w / sizeof *w)) return true;
    return false;
}

/* The port's last told state: the last line telling it down (-1) or up
 * (1); 0 when none does.  A bounce before it does not matter. */
int facts_port_last(const run *r)
{
    for (int i = r->nlines - 1; i >= 0; i--) {
        if (facts_link_down(&r->lines[i])) return -1;
        if (facts_link_up(&r->lines[i])) return 1;
    }
    return 0;
}

void link_rule(run *r)
{
    csv_link_width(r);
    link_facts lf;
    linkinfo_down(r, diag_class_index(r->db, "ib_link_down"));
    link_story(r, &lf);
    int ib = diag_class_index(r->db, "ib_link_down");
    int flap = diag_class_index(r->db, "nic_flapping");
    int slow = diag_class_index(r->db, "straggler_node");
    bool told =
        lf.downs || (ib >= 0 && facts_class_hit(r, ib)) || (flap >= 0 && facts_class_hit(r, flap));
    if (!told) return;
    if (lf.planned && lf.covered && (lf.up_after || !lf.downs)) {
        /* the planned work bounced the links and they read up after it */
        if (ib >= 0) facts_drop_class(r, ib);
        if (flap >= 0) facts_drop_class(r, flap);
        return;
    }
    if (lf.downs && ib >= 0 && facts_port_last(r) < 0 && retry_told(r)) {
        /* someone retrained or toggled it and it still reads down: the
         * link did not come back, so it is down, not flapping */
        if (flap >= 0) facts_drop_class(r, flap);
        if (!facts_class_hit(r, ib))
            add_hit(r, ib, DK_CORR, ST_STRONG, "facts-down-after-retry",
                    diag_fmt("%s", "a port of the node went down, a retrain or toggle was "
                                   "tried, and its last state is still down: the link is down"));
        return;
    }
    if (lf.up_after && ib >= 0 && !facts_class_hit(r, ib) && slowness_told(r, slow))
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
void remap_rule(run *r)
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
    if (lines) facts_drop_class(r, c);
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
/* Any pending-remap sample above 0 in the metrics given. */
static bool metric_pending(const json_t *metrics)
{
    size_t i;
    const json_t *o;
    json_array_foreach(metrics, i, o)
    {
        const char *nm = json_string_value(json_object_get(o, "name"));
        if (nm && strstr(nm, "ROW_REMAP_PENDING") &&
            json_number_value(json_object_get(o, "value")) > 0)
            return true;
    }
    return false;
}

/* A clean reading that itself says a reset or repair came before it
 * ("after the reset ... Pending: No", "reset GPU 0; no longer pending"):
 * the remap evidence of other sources, or listed before it, is what that
 * reset applied, even with no stamp to order them. */
static const char *const RESET_W[] = {"reset", "reboot", "re-seat", "reseat", "replaced"};

/* Whether class c's evidence all comes before a clean reading on line at:
 * in other sources (the reset the reading follows applied it), or listed
 * before it in its own; on its own line only if that line reads clean at
 * its end. */
static bool evidence_before(const run *r, int at, int c)
{
    for (int k = 0; k < r->nraws; k++) {
        const diag_sig *g = &r->db->sigs[r->raws[k].sig];
        int li = r->raws[k].line;
        bool of = false;
        for (int d = 0; d < g->ncls; d++)
            of |= g->cls[d] == c;
        const diag_xid *x = g->xid ? diag_xid_find(r->db, r->raws[k].xid) : NULL;
        of |= x && x->cls == c;
        if (of && r->lines[li].src == r->lines[at].src &&
            (li > at || (li == at && !line_remap_cleared(&r->lines[li]))))
            return false;
    }
    return true;
}

/* A clean reading that itself says a reset or repair came before it
 * ("after the reset ... Pending: No", "reset GPU 0; no longer pending"):
 * its line, -1 when none does. */
static int clean_after_own_reset(const run *r, const char *group)
{
    int at = -1;
    for (int k = 0; k < r->nraws; k++) {
        const tline *l = &r->lines[r->raws[k].line];
        if (strcmp(r->db->sigs[r->raws[k].sig].group, group) == 0 &&
            facts_any(l, RESET_W, sizeof RESET_W / sizeof *RESET_W))
            at = r->raws[k].line;
    }
    return at;
}

/* nvidia-smi --query-remapped-rows=...,remapped_rows.pending,... printed
 * without a header: the rows under the command, read by the field list the
 * command names.  The last row line when every row reads 0 (nothing
 * pending) after a reset told before it in the same source; -1 else. */
static int clean_query_rows(const run *r)
{
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        const char *q = memmem(l->s, l->len, "--query-remapped-rows=", 22);
        if (!q) continue;
        const char *f = q + 22, *e = l->s + l->len;
        int col = -1, nf = 1;
        for (const char *p = f; p < e && *p != ' '; p++) {
            if (*p == ',') nf++;
            if (col < 0 && e - p >= 7 && strncmp(p, "pending", 7) == 0) col = nf - 1;
        }
        bool reset = false;
        for (int k = 0; k < i && !reset; k++)
            reset = r->lines[k].src == l->src &&
                    facts_any(&r->lines[k], RESET_W, sizeof RESET_W / sizeof *RESET_W);
        if (col < 0 || !reset) continue;
        int last = -1;
        for (int k = i + 1; k < r->nlines && k <= i + 64 && r->lines[k].src == l->src; k++) {
            const tline *row = &r->lines[k];
            int n = 0;
            size_t at = 0;
            for (size_t p = 0; p < row->len; p++)
                if (row->s[p] == ',' && ++n == col) at = p + 1;
            if (n + 1 != nf) break;
            while (at < row->len && row->s[at] == ' ')
                at++;
            if (at >= row->len || (row->s[at] != '0' && strncasecmp(row->s + at, "no", 2) != 0))
                return -1; /* a row still pending */
            last = k;
        }
        if (last >= 0) return last;
    }
    return -1;
}

void remap_metric_rule(run *r, const json_t *metrics)
{
    int c = diag_class_index(r->db, "gpu_row_remap_pending");
    double clean = clean_read_at(r, "clears-gpu-row-remap-pending");
    int at = clean_after_own_reset(r, "clears-gpu-row-remap-pending");
    if (at < 0) at = clean_query_rows(r);
    if (c >= 0 && at >= 0 && facts_class_hit(r, c) && !metric_pending(metrics) &&
        evidence_before(r, at, c)) {
        facts_drop_class(r, c);
        return;
    }
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
    facts_drop_class(r, c);
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
    return facts_any(&t, w, nw);
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

void peer_rule(run *r, const json_t *metrics)
{
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        if (l->src != DS_EVENTS && l->src != DS_JOB) continue;
        peers p = {.n = 0};
        p.rate = facts_any(l, RATE_W, sizeof RATE_W / sizeof *RATE_W);
        bool timed = facts_any(l, TIME_W, sizeof TIME_W / sizeof *TIME_W);
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
        p.rate = facts_any(&t, RATE_W, sizeof RATE_W / sizeof *RATE_W) ||
                 strstr(nm, "per_second") || strstr(nm, "_bytes");
        if (!p.rate && !facts_any(&t, TIME_W, sizeof TIME_W / sizeof *TIME_W)) continue;
        metric_peers(metrics, nm, &p);
        if (straggler_seen(r, &p, nm)) return true;
    }
    return false;
}

/* ---- the fleet's trouble -------------------------------------------------- */

/* The control plane slow or backed up (slurmctld's RPC queue, sdiag's
 * counters, the scheduler answering late): every job and user sees it, no
 * node is its cause.  Kubernetes' control plane (etcd, the apiserver) is
 * the same: every node's kubelet and every pod depend on it. */
static bool control_plane_line(const tline *l)
{
    static const char *const who[] = {"slurmctld",
                                      "sdiag",
                                      "slurmdbd",
                                      "RPC queue",
                                      "RPC backlog",
                                      "REQUEST_",
                                      "scheduler",
                                      "backfill",
                                      "agent queue",
                                      "server thread",
                                      "Socket timed out on send/recv",
                                      "etcd",
                                      "apiserver"};
    static const char *const what[] = {"backlog", "queue", "timed out", "timeout",       "slow",
                                       "latency", "stuck", "overload",  "saturat",       "pending",
                                       "high",    "max",   "too long",  "leader change", "p99"};
    static const char *const fine[] = {"recovered",      "resolved", "restored",
                                       "back to normal", "back up",  "healthy"};
    /* the node's own kernel naming an RPC or a scheduler is its client side */
    return l->src != DS_KERNEL && !facts_has(l, " kernel: ") &&
           facts_any(l, who, sizeof who / sizeof *who) &&
           facts_any(l, what, sizeof what / sizeof *what) &&
           !facts_any(l, fine, sizeof fine / sizeof *fine);
}

/* Storage that stalls or evicts, as each host's line tells it. */
static bool storage_line(const tline *l)
{
    static const char *const fs[] = {"lustre", "nfs",  "gpfs", "mmfs", "weka",
                                     "beegfs", " OST", "MDT",  "MDS",  "ldlm"};
    static const char *const bad[] = {"stall",           "evict",  "timed out", "timeout",
                                      "not responding",  "hung",   "slow",      "reconnect",
                                      "lost connection", "blocked"};
    return facts_any(l, fs, sizeof fs / sizeof *fs) && facts_any(l, bad, sizeof bad / sizeof *bad);
}

/* A collective that timed out or failed on the wire, whatever the
 * transport its line names (NET/IB, ibv, a socket): the symptom, not a
 * port's state. */
static bool collective_line(const tline *l)
{
    static const char *const who[] = {"nccl",      "rccl",       "collective", "watchdog",
                                      "allreduce", "all_reduce", "ibv_"};
    static const char *const bad[] = {"timeout",      "timed out",       "timing out",
                                      "remote error", "ncclremoteerror", "retry counter exceeded"};
    return facts_any(l, who, NOF(who)) && facts_any(l, bad, NOF(bad));
}

/* Distinct hosts named by the lines of one symptom (storage stalls,
 * collectives timing out): several is the fleet's, not one node's. */
static int symptom_hosts(const run *r, bool (*symptom)(const tline *), int *first)
{
    char seen[8][48];
    int n = 0;
    *first = -1;
    for (int i = 0; i < r->nlines && n < 8; i++) {
        const tline *l = &r->lines[i];
        if (l->src == DS_STATE || l->src == DS_JOBS || !symptom(l)) continue;
        for (size_t p = 0; p < l->len && n < 8; p++) {
            if (p && (isalnum((unsigned char)l->s[p - 1]) || strchr("-_./@", l->s[p - 1])))
                continue;
            size_t hl = host_token(l->s + p, l->len - p);
            /* a host name: lower case ("gpu-a044", "gpu07"), not a target
             * ("scratch-OST0004-osc-ffff9a") nor an address ("ffff9a1c") */
            bool upper = false, hex = true;
            for (size_t k = 0; k < hl; k++) {
                upper |= isupper((unsigned char)l->s[p + k]) != 0;
                hex &= isxdigit((unsigned char)l->s[p + k]) != 0;
            }
            if (hl < 4 || upper || hex) continue;
            bool dup = false;
            for (int k = 0; k < n && !dup; k++)
                dup = strlen(seen[k]) == hl && strncmp(seen[k], l->s + p, hl) == 0;
            if (!dup) {
                snprintf(seen[n++], sizeof seen[0], "%.*s", (int)hl, l->s + p);
                if (*first < 0) *first = i;
            }
            p += hl;
        }
    }
    return n;
}

/* A storage line that names many hosts at once: a host list with a range
 * ("gpu-[01-14]", "a100-c[3,5-9]") or a count ("on 23 nodes", "14 clients"). */
static bool many_hosts_told(const tline *l)
{
    static const char *const who[] = {" nodes",    " clients", " hosts",      " servers",
                                      " machines", " jobs",    " other nodes"};
    for (size_t i = 0; i + 4 < l->len; i++) {
        if (l->s[i] == '[' && isdigit((unsigned char)l->s[i + 1])) {
            long a = strtol(l->s + i + 1, NULL, 10);
            const char *dash = memchr(l->s + i, '-', l->len - i > 12 ? 12 : l->len - i);
            if (dash && isdigit((unsigned char)dash[1]) && strtol(dash + 1, NULL, 10) - a >= 2)
                return true;
        }
        if (!isdigit((unsigned char)l->s[i]) || (i && isalnum((unsigned char)l->s[i - 1])))
            continue;
        char *e;
        long n = strtol(l->s + i, &e, 10);
        size_t q = (size_t)(e - l->s);
        for (size_t k = 0; n >= 3 && k < sizeof who / sizeof *who; k++)
            if (l->len - q >= strlen(who[k]) && strncmp(l->s + q, who[k], strlen(who[k])) == 0)
                return true;
        i = q;
    }
    return false;
}

/* A performance measure's key: a rate (higher is better) 1, a time
 * (lower is better) 2, neither 0. */
static int perf_key(const char *k)
{
    static const char *const rate[] = {"token",  "throughput", "sample", "mfu",
                                       "tflops", "img",        "tok"};
    static const char *const time[] = {"step", "iter", "latency", "epoch"};
    for (size_t i = 0; i < sizeof rate / sizeof *rate; i++)
        if (strstr(k, rate[i])) return 1;
    for (size_t i = 0; i < sizeof time / sizeof *time; i++)
        if (strstr(k, time[i])) return 2;
    return 0;
}

static bool before_key(const char *k)
{
    static const char *const w[] = {"last", "before",    "baseline", "prev",
                                    "week", "yesterday", "old",      "base"};
    for (size_t i = 0; i < sizeof w / sizeof *w; i++)
        if (strstr(k, w[i])) return true;
    return false;
}

/* A row (a table row named by its header, or a line of pairs) telling
 * one member's performance worse by 10% or more than its own baseline:
 * a change column ("change: -20%") beside a measure, or the measure's
 * baseline and current values side by side. */
static bool row_slower(const tline *l)
{
    facts_pair p[24];
    int np = facts_pairs(l, p, 24), kind = 0;
    double base = NAN, now = NAN, pct = NAN;
    for (int i = 0; i < np; i++) {
        const char *v = l->s + p[i].val;
        char *end;
        double x = strtod(v, &end);
        if (end == v) continue;
        int k = perf_key(p[i].key);
        if ((strstr(p[i].key, "change") || strstr(p[i].key, "delta") || strstr(p[i].key, "diff")) &&
            end < l->s + p[i].val + p[i].vlen && *end == '%')
            pct = x;
        else if (k && before_key(p[i].key))
            base = x, kind = k;
        else if (k)
            now = x, kind = kind ? kind : k;
    }
    if (!kind) return false;
    if (!isnan(pct)) return kind == 1 ? pct <= -10 : pct >= 10;
    if (isnan(base) || isnan(now) || base <= 0) return false;
    return kind == 1 ? now <= 0.9 * base : now >= 1.1 * base;
}

/* Three or more members (partitions, nodes, jobs) each slower than their
 * own baseline: the fleet's slowdown, no node's. */
static void fleet_slower_rows(run *r)
{
    int n = 0, first = -1;
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        if ((l->src != DS_EVENTS && l->src != DS_JOB) || !row_slower(l)) continue;
        if (first < 0) first = i;
        n++;
    }
    if (n >= 3)
        add_anomaly(r, ST_STRONG, 2, "anomaly-fleet-wide-slowdown",
                    line_evidence(r, first,
                                  "[three or more members each slower than their own baseline: "
                                  "the fleet's slowdown, no node's] "));
}

/* One series of a performance measure that names no host (an aggregate
 * over the fleet: median MFU of all jobs, tokens/s of every rack) sampled
 * over a day or more, whose last two samples are 10% or more worse than
 * its first: the fleet's slowdown, no node's. */
typedef struct tv {
    double t, v;
} tv;

static int cmp_tv(const void *a, const void *b)
{
    const tv *x = a, *y = b;
    return (x->t > y->t) - (x->t < y->t);
}

#define SERIES_MAX 64

/* The samples (at most SERIES_MAX) of the series of metric m (its name
 * and labels), by time; *first: m is its first sample in the array. */
static int series_of(const json_t *metrics, const json_t *m, tv *out, bool *first)
{
    const char *nm = json_string_value(json_object_get(m, "name"));
    int n = 0;
    size_t j;
    const json_t *q;
    *first = true;
    json_array_foreach(metrics, j, q)
    {
        const char *qn = json_string_value(json_object_get(q, "name"));
        if (n >= SERIES_MAX || !qn || strcmp(qn, nm) != 0 ||
            !json_equal(json_object_get(q, "labels"), json_object_get(m, "labels")))
            continue;
        *first &= n > 0 || q == m;
        out[n++] = (tv){sample_time(q), json_number_value(json_object_get(q, "value"))};
    }
    qsort(out, (size_t)n, sizeof *out, cmp_tv);
    return n;
}

static void fleet_series_drop(run *r, const json_t *metrics)
{
    const json_t *m;
    size_t i;
    json_array_foreach(metrics, i, m)
    {
        const char *nm = json_string_value(json_object_get(m, "name"));
        const json_t *lab = json_object_get(m, "labels");
        char hb[64], low[96];
        if (!nm || strncmp(nm, "DCGM_", 5) == 0 || *host_of(lab, hb, sizeof hb)) continue;
        size_t k = 0;
        for (; nm[k] && k + 1 < sizeof low; k++)
            low[k] = (char)tolower((unsigned char)nm[k]);
        low[k] = 0;
        int kind = perf_key(low);
        if (!kind) continue;
        tv s[SERIES_MAX];
        bool first;
        int n = series_of(metrics, m, s, &first);
        if (n < 3 || isnan(s[0].t)) continue;
        if (s[n - 1].t - s[0].t < 86400 || s[0].v <= 0) continue;
        double a = s[0].v, b = s[n - 2].v, c = s[n - 1].v;
        if (kind == 1 ? b <= 0.9 * a && c <= 0.9 * a : b >= 1.1 * a && c >= 1.1 * a) {
            add_anomaly(r, ST_STRONG, 2, "anomaly-fleet-wide-slowdown",
                        diag_fmt("metrics: [%s, a series over the fleet (no host), from %g to %g "
                                 "and staying: the fleet's slowdown, no node's]",
                                 nm, a, c));
            return;
        }
    }
}

/* The same over metrics: three or more series of a performance measure
 * (a job's or a host's tokens per second, step time), each with its first
 * sample and its latest, every one 10% or more worse. */
void fleet_metric_rule(run *r, const json_t *metrics)
{
    if (anomaly_seen(r, "anomaly-fleet-wide-slowdown") || !json_is_array(metrics)) return;
    json_t *first = json_object(), *last = json_object();
    if (!first || !last) {
        json_decref(first);
        json_decref(last);
        r->oom = true;
        return;
    }
    size_t i;
    const json_t *m;
    int kind = 0;
    json_array_foreach(metrics, i, m)
    {
        const char *nm = json_string_value(json_object_get(m, "name"));
        if (!nm || strncmp(nm, "DCGM_", 5) == 0) continue;
        char low[96];
        size_t k = 0;
        for (; nm[k] && k + 1 < sizeof low; k++)
            low[k] = (char)tolower((unsigned char)nm[k]);
        low[k] = 0;
        int pk = perf_key(low);
        if (!pk || (kind && pk != kind)) continue;
        kind = pk;
        char *key = json_dumps(json_object_get(m, "labels"), JSON_SORT_KEYS | JSON_COMPACT);
        if (!key) continue;
        double t = sample_time(m);
        json_t *v = json_pack("[f,f]", isnan(t) ? (double)i : t,
                              json_number_value(json_object_get(m, "value")));
        const json_t *f = json_object_get(first, key), *l = json_object_get(last, key);
        if (v &&
            (!f || json_real_value(json_array_get(v, 0)) < json_real_value(json_array_get(f, 0))))
            json_object_set(first, key, v);
        if (v &&
            (!l || json_real_value(json_array_get(v, 0)) > json_real_value(json_array_get(l, 0))))
            json_object_set(last, key, v);
        json_decref(v);
        free(key);
    }
    int worse = 0, series = 0;
    const char *key;
    json_t *f;
    json_object_foreach(first, key, f)
    {
        const json_t *l = json_object_get(last, key);
        double a = json_real_value(json_array_get(f, 1)), b = json_real_value(json_array_get(l, 1));
        if (l == f ||
            json_real_value(json_array_get(l, 0)) <= json_real_value(json_array_get(f, 0)))
            continue;
        series++;
        worse += a > 0 && (kind == 1 ? b <= 0.9 * a : b >= 1.1 * a);
    }
    json_decref(first);
    json_decref(last);
    /* every series worse, three or more of them: no one member's */
    if (worse >= 3 && worse == series)
        add_anomaly(r, ST_STRONG, 2, "anomaly-fleet-wide-slowdown",
                    diag_fmt("metrics: [%d series of a performance measure each 10%% or more worse "
                             "than their first sample: the fleet's slowdown, no node's]",
                             worse));
    else
        fleet_series_drop(r, metrics);
}

/* The value after a day's label at p ("2026-12-03 | 35.1%", "Tue 2650"):
 * the label's length is skipped, then a few separators; NAN when p holds
 * no day label or no number follows it. */
static double day_value(const tline *l, size_t p)
{
    static const char *const day[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
    size_t n = 0;
    if (p + 10 <= l->len && isdigit((unsigned char)l->s[p]) && l->s[p + 4] == '-' &&
        l->s[p + 7] == '-')
        n = 10;
    for (size_t k = 0; !n && k < 7; k++)
        if (p + 4 <= l->len && strncasecmp(l->s + p, day[k], 3) == 0 &&
            !isalpha((unsigned char)l->s[p + 3]) &&
            (p == 0 || !isalpha((unsigned char)l->s[p - 1])))
            n = 3;
    if (!n) return NAN;
    /* the first number after it, words between ("2026-12-03 median MFU
     * (all jobs): 35.1%"), not another day's label */
    size_t j = p + n, e = j + 48 < l->len ? j + 48 : l->len;
    while (j < e && !isdigit((unsigned char)l->s[j]))
        j++;
    if (j >= e || (j + 4 < l->len && l->s[j + 4] == '-')) return NAN;
    return strtod(l->s + j, NULL);
}

/* A fleet-wide measure of throughput or efficiency told per day (median
 * MFU of all jobs, tokens/s across every rack), as a table under its
 * header or day by day on one line, that fell 10% or more below its first
 * day and stayed there for the last two: the fleet's, no node's. */
static void fleet_daily_drop(run *r)
{
    static const char *const fleet[] = {"all jobs", "all racks",    "every rack", "across all",
                                        "fleet",    "cluster-wide", "all nodes",  "every node"};
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        if (l->src == DS_KERNEL || l->src == DS_STATE || l->src == DS_JOBS ||
            !facts_any(l, fleet, sizeof fleet / sizeof *fleet))
            continue;
        char low[256];
        size_t k = 0;
        for (; k < l->len && k + 1 < sizeof low; k++)
            low[k] = (char)tolower((unsigned char)l->s[k]);
        low[k] = 0;
        int kind = perf_key(low);
        if (!kind) continue;
        double v[32];
        int n = 0;
        for (int j = i; j < r->nlines && j <= i + 40 && n < 32; j++) {
            const tline *row = &r->lines[j];
            /* its table's rows, or the lines after it that tell the same
             * fleet-wide measure day by day */
            if (row->src != l->src) break;
            if (row->entry != l->entry && !facts_any(row, fleet, sizeof fleet / sizeof *fleet))
                continue;
            /* the header's line: its day-labelled values; a row: its first */
            for (size_t p = 0; p < row->len && n < 32; p++) {
                double x = day_value(row, p);
                if (isnan(x)) continue;
                v[n++] = x;
                if (j != i) break;
            }
        }
        if (n < 3 || v[0] <= 0) continue;
        bool drop = kind == 1 ? v[n - 1] <= 0.9 * v[0] && v[n - 2] <= 0.9 * v[0]
                              : v[n - 1] >= 1.1 * v[0] && v[n - 2] >= 1.1 * v[0];
        if (!drop) continue;
        add_anomaly(r, ST_STRONG, 2, "anomaly-fleet-wide-slowdown",
                    line_evidence(r, i,
                                  "[a fleet-wide measure per day 10% or more worse than its "
                                  "first day and staying so: the fleet's, no node's] "));
        return;
    }
}

/* The same symptom told on three or more hosts (by name or by a count or
 * range of them): first is its first such line. */
static bool spread(const run *r, bool (*symptom)(const tline *), int *first)
{
    /* a note beside the symptom that many hosts or jobs share it */
    static const char *const shared[] = {"same",   "also",    "too",    "all ",    "every",
                                         "across", "at once", "simult", "several", "many"};
    if (symptom_hosts(r, symptom, first) >= 3) return true;
    int note = -1;
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        if (l->src == DS_STATE || l->src == DS_JOBS || !many_hosts_told(l)) continue;
        if (symptom(l)) {
            *first = i;
            return true;
        }
        if (note < 0 && l->src != DS_KERNEL && facts_any(l, shared, NOF(shared))) note = i;
    }
    return note >= 0 && *first >= 0;
}

/* Whether a denial ("no", "not", "never", "zero", "without", "n't") comes
 * in the same clause before s[at] (up to 48 bytes back, a comma, a
 * semicolon, a bar or a sentence's end closing the clause): "no 'mlx5_core
 * ...: Link down' on any node". */
static bool denied_before(const char *s, size_t at)
{
    static const char *const neg[] = {"no ", "not ", "never ", "zero ", "without ", "n't "};
    size_t lo = at > 48 ? at - 48 : 0;
    for (size_t i = at; i > lo; i--) {
        char ch = s[i - 1];
        if (ch == ',' || ch == ';' || ch == '|' || (ch == '.' && s[i] == ' ')) return false;
        for (size_t k = 0; k < NOF(neg); k++) {
            size_t n = strlen(neg[k]);
            if (i - 1 + n <= at && strncasecmp(s + i - 1, neg[k], n) == 0 &&
                (k == NOF(neg) - 1 || i == 1 || !isalpha((unsigned char)s[i - 2])))
                return true;
        }
    }
    return false;
}

/* Whether every "down" of the line is denied in its clause. */
static bool downs_denied(const tline *l)
{
    bool any = false;
    for (size_t i = 0; i + 4 <= l->len; i++) {
        if (strncasecmp(l->s + i, "down", 4) != 0) continue;
        any = true;
        if (!denied_before(l->s, i)) return false;
    }
    return any;
}

/* A port told down, not denied ("no port down", "nothing went down",
 * "no 'Link down' on any node", "LinkDownedCounter 0"). */
static bool port_down_told(const run *r)
{
    static const char *const no[] = {"no port",   "no link",  "nothing went", "never went",
                                     "none down", "not down", "no ports"};
    for (int i = 0; i < r->nlines; i++)
        if (facts_link_down(&r->lines[i]) && !facts_any(&r->lines[i], no, NOF(no)) &&
            !downs_denied(&r->lines[i]))
            return true;
    return false;
}

/* An InfiniBand transport error of a queue pair (the retry counter
 * exceeded, a local ACK timeout, a work completion's error status): the
 * fabric failing to deliver, told from a host, not a port's state. */
static bool fabric_error_line(const tline *l)
{
    static const char *const w[] = {"RETRY_EXC",         "retry counter exceeded",
                                    "retry exceeded",    "transport retry",
                                    "local ack timeout", "status=12",
                                    "RNR_RETRY",         "IBV_WC_REM_",
                                    "IBV_WC_LOC_"};
    return facts_any(l, w, NOF(w));
}

/* A collective timing out or a fabric error: hosts telling either share
 * the network, so the spread of both counts the same. */
static bool wire_line(const tline *l)
{
    return collective_line(l) || fabric_error_line(l);
}

/* Collectives timing out (or fabric transport errors) on many hosts at
 * once with no port told down:
 * the transport a timeout line names (NET/IB, ibv) is no link down, and
 * no one node explains a failure every host shares.  The link classes
 * those lines raised are dropped; what is left is the fleet's anomaly. */
static void collective_spread(run *r)
{
    int first;
    if (!spread(r, wire_line, &first) || port_down_told(r)) return;
    static const char *const link[] = {"ib_link_down", "nic_flapping"};
    for (size_t k = 0; k < NOF(link); k++) {
        int c = diag_class_index(r->db, link[k]);
        if (c >= 0) facts_drop_class(r, c);
    }
    add_anomaly(r, ST_STRONG, 2, "facts-collective-many-hosts",
                line_evidence(r, first,
                              "[collectives timing out on three or more hosts, no port told "
                              "down: the fleet's, no node's] "));
}

void fleet_rule(run *r)
{
    if (!anomaly_seen(r, "anomaly-fleet-wide-slowdown")) fleet_slower_rows(r);
    if (!anomaly_seen(r, "anomaly-fleet-wide-slowdown")) fleet_daily_drop(r);
    for (int i = 0; i < r->nlines; i++)
        if (r->lines[i].src != DS_STATE && r->lines[i].src != DS_JOBS &&
            control_plane_line(&r->lines[i])) {
            add_anomaly(r, ST_STRONG, 2, "facts-control-plane",
                        line_evidence(r, i,
                                      "[the control plane slow or backed up: the "
                                      "fleet's, no node's] "));
            break;
        }
    int first;
    if (spread(r, storage_line, &first))
        add_anomaly(r, ST_STRONG, 2, "facts-storage-many-hosts",
                    line_evidence(r, first,
                                  "[storage stalls told on three or more hosts: the "
                                  "fleet's storage, no node's] "));
    collective_spread(r);
}

/* ---- a node slower than its peers in a table of hosts -------------------- */

#define WIDE_MAX 32

/* One row of a table whose columns are hosts (its cells named by the
 * header: "hour: 06:00, h100-s4-05: 813, h100-s4-06: 1297, ..."): the
 * index among p of this node's cell and the median of the others' values;
 * -1 when the row names fewer than three hosts or not this node. */
static int wide_row(const run *r, const tline *l, double *mine, double *med)
{
    facts_pair p[WIDE_MAX];
    int np = facts_pairs(l, p, WIDE_MAX), n = 0, me = -1;
    double v[WIDE_MAX];
    /* the node's name as facts_pairs writes a key: lower case, words
     * apart ("h100 s4 06") */
    char node[96];
    size_t o = 0;
    for (const char *q = r->node; *q && *q != '.' && o + 1 < sizeof node; q++)
        node[o++] = isalnum((unsigned char)*q) ? (char)tolower((unsigned char)*q) : ' ';
    node[o] = 0;
    size_t pre = strcspn(node, " ");
    for (int i = 0; i < np; i++) {
        const char *k = p[i].key;
        char *end;
        double x = strtod(l->s + p[i].val, &end);
        /* a host of the node's kind: its first part, then more with a digit */
        if (end == l->s + p[i].val || strncmp(k, node, pre) != 0 || k[pre] != ' ' ||
            !strpbrk(k + pre, "0123456789"))
            continue;
        if (strcmp(k, node) == 0)
            *mine = x, me = i;
        else
            v[n++] = x;
    }
    if (me < 0 || n < 2) return -1;
    qsort(v, (size_t)n, sizeof *v, diag_cmp_double);
    *med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    return me;
}

/* A line naming one host of the node's kind with a series of times after
 * it ("h100-s4-06 ranks 48-55: 818 -> 1104 -> 1297 ms"): the host into
 * host, the series' first and last values; false otherwise. */
static bool host_series(const run *r, const tline *l, char *host, size_t hn, double *first,
                        double *last)
{
    size_t pre = strcspn(r->node, "-");
    const char *arrow = memmem(l->s, l->len, "->", 2);
    if (!arrow) arrow = memmem(l->s, l->len, "\xe2\x86\x92", 3);
    if (!arrow || !r->node[pre]) return false;
    const char *h = NULL;
    for (const char *p = l->s; p + pre < arrow; p++)
        if (strncasecmp(p, r->node, pre + 1) == 0 &&
            (p == l->s || !isalnum((unsigned char)p[-1]))) {
            if (h) return false; /* two hosts: a comparison, not one host's series */
            h = p;
        }
    if (!h) return false;
    size_t k = 0;
    while (h + k < arrow && k + 1 < hn && (isalnum((unsigned char)h[k]) || h[k] == '-'))
        k++;
    memcpy(host, h, k);
    host[k] = 0;
    /* the number before the first arrow, and the last number of the line */
    const char *b = arrow;
    while (b > h + k && (isspace((unsigned char)b[-1]) || b[-1] == ','))
        b--;
    while (b > h + k && (isdigit((unsigned char)b[-1]) || b[-1] == '.'))
        b--;
    *first = strtod(b, NULL);
    *last = NAN;
    for (const char *p = arrow; p < l->s + l->len; p++)
        if (isdigit((unsigned char)*p) && !isalnum((unsigned char)p[-1]) && p[-1] != '.') {
            char *e;
            *last = strtod(p, &e);
            p = e - 1;
        }
    return *first > 0 && !isnan(*last);
}

/* Per-host series of step times over hours, one line a host: this node's
 * latest 30% or more above the median of its peers' latest, and 20% above
 * its own first: the straggler is this node. */
static bool series_straggler(run *r, int c)
{
    double v[WIDE_MAX], mine = NAN, mfirst = NAN;
    int n = 0, at = -1;
    for (int i = 0; i < r->nlines && n < WIDE_MAX; i++) {
        const tline *l = &r->lines[i];
        char host[64];
        double a, b;
        if (l->src == DS_KERNEL || l->src == DS_STATE || l->src == DS_JOBS ||
            !host_series(r, l, host, sizeof host, &a, &b))
            continue;
        if (same_host(host, r->node))
            mine = b, mfirst = a, at = i;
        else
            v[n++] = b;
    }
    if (at < 0 || n < 2) return false;
    qsort(v, (size_t)n, sizeof *v, diag_cmp_double);
    double med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    if (med <= 0 || mine < 1.3 * med || mine < 1.2 * mfirst) return false;
    add_hit(r, c, KIND_OF[r->lines[at].src], ST_STRONG, "facts-wide-step-table",
            line_evidence(r, at,
                          "[this node's step time 30% or more above its peers' and rising "
                          "while theirs held: the straggler] "));
    return true;
}

/* A table of step or iteration times with the job's hosts as columns,
 * rows over time: this node's latest time 30% or more above the median of
 * its peers, and above its own first row (it slowed while they did not):
 * the straggler is this node. */
void wide_straggler_rule(run *r)
{
    static const char *const timed[] = {"step time", "step_time", "iter time",    "iteration time",
                                        "ms/step",   "s/step",    "time per step"};
    int c = diag_class_index(r->db, "straggler_node");
    if (c < 0 || !r->node || !strchr(r->node, '-') || facts_class_hit(r, c) ||
        series_straggler(r, c))
        return;
    for (int i = 0; i < r->nlines; i++) {
        const tline *h = &r->lines[i];
        if ((h->src != DS_JOB && h->src != DS_EVENTS && h->src != DS_HISTORY) ||
            !facts_any(h, timed, sizeof timed / sizeof *timed))
            continue;
        double first = NAN, mine = NAN, med = NAN;
        int last = -1;
        for (int j = i + 1;
             j < r->nlines && r->lines[j].entry == h->entry && r->lines[j].src == h->src; j++) {
            double m, d;
            if (wide_row(r, &r->lines[j], &m, &d) < 0) continue;
            if (isnan(first)) first = m;
            mine = m, med = d, last = j;
        }
        if (last >= 0 && med > 0 && mine >= 1.3 * med && mine >= 1.2 * first) {
            add_hit(r, c, KIND_OF[h->src], ST_STRONG, "facts-wide-step-table",
                    line_evidence(r, last,
                                  "[this node's step time 30% or more above its peers' median "
                                  "and rising while theirs held: the straggler] "));
            return;
        }
    }
}

/* ---- a port's link-downed counter rising in metrics ---------------------- */

/* The class of a port's downed counter that rose: the port up again at
 * the end (st, else its last told state) bounced, flapping; otherwise
 * the link is down. */
int facts_downed_class(const run *r, int st)
{
    if (!st) st = facts_port_last(r);
    return diag_class_index(r->db, st > 0 ? "nic_flapping" : "ib_link_down");
}

/* A counter of a port going down (node_exporter's link_downed, a link
 * error recovery count, perfquery's LinkDownedCounter as a series). */
static bool downed_name(const char *nm)
{
    static const char *const w[] = {"link_downed", "linkdowned", "link_error_recovery",
                                    "linkerrorrecovery"};
    tline t = {.s = nm, .len = strlen(nm)};
    return facts_any(&t, w, sizeof w / sizeof *w);
}

/* Rising: never falling, up at least twice, by 3 or more in all. */
static bool series_rising(const tv *s, int n)
{
    int ups = 0;
    for (int k = 1; k < n; k++) {
        if (s[k].v < s[k - 1].v) return false;
        ups += s[k].v > s[k - 1].v;
    }
    return n >= 3 && ups >= 2 && s[n - 1].v - s[0].v >= 3;
}

/* The port's state in metrics at its newest sample (node_exporter's
 * infiniband state_id: 4 ACTIVE, 1 DOWN): 1 up, -1 down, 0 not told. */
static int port_state_metric(const json_t *metrics)
{
    size_t i;
    const json_t *o;
    double newest = -INFINITY;
    int st = 0;
    json_array_foreach(metrics, i, o)
    {
        const char *nm = json_string_value(json_object_get(o, "name"));
        if (!nm || !strstr(nm, "infiniband") || !strstr(nm, "state")) continue;
        double t = sample_time(o), v = json_number_value(json_object_get(o, "value"));
        if (!(t >= newest)) continue;
        newest = t;
        st = v == 4 ? 1 : v == 1 || v == 2 ? -1 : 0;
    }
    return st;
}

static void downed_series_in(run *r, const json_t *metrics)
{
    tv *s = malloc(SERIES_MAX * sizeof *s);
    if (!s) {
        r->oom = true;
        return;
    }
    size_t i;
    const json_t *o;
    json_array_foreach(metrics, i, o)
    {
        const char *nm = json_string_value(json_object_get(o, "name"));
        if (!nm || !downed_name(nm)) continue;
        bool first;
        int n = series_of(metrics, o, s, &first);
        if (!first || !series_rising(s, n)) continue;
        int st = port_state_metric(metrics);
        int c = facts_downed_class(r, st);
        if (c >= 0)
            add_hit(r, c, DK_METRICS, ST_STRONG, "fact-downed-series",
                    diag_fmt("%s rose from %g to %g over %d samples, the port %s at the end", nm,
                             s[0].v, s[n - 1].v, n, st > 0 ? "up again" : "not told up"));
        break;
    }
    free(s);
}

/* The numbers listed right after position at in a line ("0 -> 3 -> 7 ->
 * 12", "0, 3, 7, 12"): a series told in one line; stops at a word. */
static int listed_values(const tline *l, size_t at, tv *out, int max)
{
    int n = 0;
    size_t i = at;
    while (i < l->len && !isdigit((unsigned char)l->s[i]) && strchr(" \t:.=", l->s[i]))
        i++;
    while (i < l->len && isdigit((unsigned char)l->s[i]) && n < max) {
        char *end;
        out[n] = (tv){n, strtod(l->s + i, &end)};
        n++;
        i = (size_t)(end - l->s);
        /* separators: spaces, commas, arrows ("->", "=>", the UTF-8 one) */
        while (i < l->len && (strchr(" \t,;->=|", l->s[i]) || (unsigned char)l->s[i] >= 0x80))
            i++;
    }
    return n;
}

/* A port's downed counter told as a rising list in one line of text. */
static void downed_list_in_text(run *r)
{
    static const char *const w[] = {"LinkDownedCounter",   "link_downed",
                                    "LinkDowned",          "link downed",
                                    "link_error_recovery", "LinkErrorRecovery"};
    tv s[16];
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        for (size_t k = 0; k < sizeof w / sizeof *w; k++) {
            const char *p = memmem(l->s, l->len, w[k], strlen(w[k]));
            if (!p) continue;
            int n = listed_values(l, (size_t)(p - l->s) + strlen(w[k]), s, 16);
            if (!series_rising(s, n)) continue;
            int c = facts_downed_class(r, 0);
            if (c >= 0)
                add_hit(r, c, KIND_OF[l->src], ST_STRONG, "fact-downed-series",
                        line_evidence(r, i, "[a port's downed counter rising as a series] "));
            return;
        }
    }
}

void downed_series_rule(run *r, const json_t *metrics)
{
    if (json_is_array(metrics)) downed_series_in(r, metrics);
    if (json_is_array(r->textm)) downed_series_in(r, r->textm);
    downed_list_in_text(r);
}
