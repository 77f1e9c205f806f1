/* Job-level and cross-source correlation rules over the hits and lines
 * (jobs across nodes, attempts, per-rank timing, configured vs chosen). */
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
/* A slowness line whose subject is one GPU ("GPU 5 is 14% slower than its
 * peers"): a GPU against the node's others, not the node against the job's. */
static bool gpu_is_subject(const tline *l)
{
    static const char *const w[] = {"slow", "lag", "drag", "behind"};
    for (size_t i = 0; i + 3 <= l->len; i++) {
        bool said = false;
        for (size_t k = 0; k < sizeof w / sizeof *w && !said; k++)
            said = l->len - i >= strlen(w[k]) && strncasecmp(l->s + i, w[k], strlen(w[k])) == 0;
        if (!said) continue;
        size_t from = i > 48 ? i - 48 : 0;
        for (size_t k = from; k + 4 < i; k++) {
            if (strncasecmp(l->s + k, "gpu", 3) != 0 || (k && isalnum((unsigned char)l->s[k - 1])))
                continue;
            size_t d = k + 3;
            while (d < i && (l->s[d] == ' ' || l->s[d] == '#'))
                d++;
            if (d < i && isdigit((unsigned char)l->s[d])) return true;
        }
        return false;
    }
    return false;
}

/* A field that names the slowest member ("slowest_node: gpu-w13", a
 * table's "straggler" column, "slowest host = gpu-w13") with this node as
 * its value, in any row: the node named slower than the job's others. */
static int slowest_field_names(const run *r, const char *me)
{
    static const char *const w[] = {"slowest", "straggler", "laggard"};
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        if (before_boot(r, i) || l->src == DS_KERNEL) continue;
        for (size_t k = 0; k < sizeof w / sizeof *w; k++) {
            size_t wl = strlen(w[k]);
            for (size_t j = 0; j + wl <= l->len; j++) {
                if (strncasecmp(l->s + j, w[k], wl) != 0) continue;
                /* the field's value: after its separator, before the next field */
                size_t sep = j + wl;
                while (sep < l->len && l->s[sep] != ':' && l->s[sep] != '=' && sep - j < 24)
                    sep++;
                if (sep >= l->len || (l->s[sep] != ':' && l->s[sep] != '=')) continue;
                size_t v = sep + 1, e = v;
                while (e < l->len && !strchr(",;|", l->s[e]))
                    e++;
                if (has_word(l->s + v, e - v, me)) return i;
            }
        }
    }
    return -1;
}

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
        if (gpu_is_subject(l)) continue;
        if (has_word(l->s, l->len, me) || (nodeword[0] && has_word(l->s, l->len, nodeword)))
            return m->line;
    }
    return slowest_field_names(r, me);
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
void warm_straggler(run *r)
{
    int th = diag_class_index(r->db, "gpu_thermal"), sn = diag_class_index(r->db, "straggler_node");
    if (th < 0 || sn < 0) return;
    /* one GPU slower than the node's others with nothing to explain it: a
     * human's to look at, never healthy, and no node for a runbook */
    for (int k = 0; k < r->nraws; k++) {
        const rawm *m = &r->raws[k];
        if (strcmp(r->db->sigs[m->sig].group, "slow-against-peers") != 0 ||
            before_boot(r, m->line) || !gpu_is_subject(&r->lines[m->line]))
            continue;
        add_anomaly(r, ST_STRONG, 1, "one-gpu-slower",
                    line_evidence(r, m->line, "[one GPU slower than the node's others] "));
        break;
    }
    /* a thermal fault of its own (HW slowdown, sustained heat) stays thermal */
    bool hard_heat = false;
    for (int i = 0; i < r->nhits; i++)
        hard_heat |= r->hits[i].cls == th && !r->hits[i].old &&
                     !soft_heat_group(r->hits[i].group) && r->hits[i].strength >= ST_STRONG;
    int named = hard_heat ? -1 : slow_line_names_node(r);
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
                diag_fmt("this node slower than the job's others, its GPUs warm with no thermal "
                         "fault (heat is the cause): %s",
                         r->hits[warm].text ? r->hits[warm].text : ""));
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
            add_hit(r, c, DK_CORR, ru->strength, ru->id, diag_fmt("correlation: %s", why));
}

void rule_multi_job(run *r, const cstate *cs, const diag_rule *ru, const json_t *jobs)
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
            snprintf(ids + o, sizeof ids - o, "%s%s", o ? "," : "",
                     diag_jstr(j, "job_id", b, sizeof b));
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
            add_hit(r, c, DK_CORR, ru->strength, ru->id, diag_fmt("correlation: %s", why));
}

void rule_history(run *r, const cstate *cs, const diag_rule *ru)
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
                                diag_fmt("correlation: %s", why));
                return;
            }
        }
}

/* The process group a line's record belongs to (a pg_name / pg_id /
 * process_group field, NCCL's "[PG 0 Rank 3]"): sequence numbers count
 * per group, so only records of one group compare.  "" when none. */
static void pg_tag(const tline *l, char *out, size_t cap)
{
    out[0] = 0;
    const char *p = memmem(l->s, l->len, "[PG ", 4);
    if (p) {
        size_t n = strcspn(p + 4, " ]");
        if (p + 4 + n <= l->s + l->len) snprintf(out, cap, "%.*s", (int)(n < 40 ? n : 40), p + 4);
        return;
    }
    facts_pair f[24];
    int np = facts_pairs(l, f, 24);
    for (int i = 0; i < np; i++) {
        const char *k = f[i].key;
        if (strncmp(k, "pg", 2) == 0 || strstr(k, "process_group") || strstr(k, "process group") ||
            strstr(k, "group_name") || strstr(k, "group_id")) {
            snprintf(out, cap, "%.*s", (int)(f[i].vlen < 40 ? f[i].vlen : 40), l->s + f[i].val);
            return;
        }
    }
}

static bool same_group(const run *r, int a, int b)
{
    char ta[48], tb[48];
    pg_tag(&r->lines[a], ta, sizeof ta);
    pg_tag(&r->lines[b], tb, sizeof tb);
    return strcmp(ta, tb) == 0;
}

void rule_captures(run *r, const diag_rule *ru)
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
                    strcmp(o->val, m->val) != 0 && same_group(r, o->line, m->line)) {
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
int diag_cmp_double(const void *a, const void *b)
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
        qsort(others, (size_t)no, sizeof *others, diag_cmp_double);
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
    /* another host slow is that host's straggler, not this node's */
    if (r->node && *r->node && host[found][0] && !same_host(host[found], r->node)) return true;
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
    qsort(sorted, (size_t)nk, sizeof *sorted, diag_cmp_double);
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

void rule_outlier(run *r, const diag_rule *ru)
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
    qsort(sorted, (size_t)nk, sizeof *sorted, diag_cmp_double);
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
    /* the slow rank's row names another host: not this node's straggler */
    char host[64];
    if (r->node && *r->node && facts_line_host(&r->lines[lines[worst]], host, sizeof host) &&
        !same_host(host, r->node))
        return;
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

void rule_below_reference(run *r, const diag_rule *ru)
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

void rule_config_chosen(run *r, const diag_rule *ru)
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
void rule_unowned(run *r, const diag_rule *ru)
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
 * 7.1M", "410 to 820", "3950 vs 2960", "30.6k before the upgrade, 22.2k after", "before:
 * 3.10 s, after: 3.88 s".  Only
 * parenthesised text (a date) may carry digits before the connector. */
static bool paired_reading(const char *s, size_t len, double *out)
{
    char w[96];
    size_t n = len < sizeof w - 1 ? len : sizeof w - 1;
    memcpy(w, s, n);
    w[n] = 0;
    static const char *const conn[] = {"->",    "=>",     "\xe2\x86\x92", " to ", " then ",
                                       " now ", "before", "vs ",          "vs. "};
    const char *at = NULL;
    size_t cl = 0;
    for (size_t i = 0; i < sizeof conn / sizeof *conn; i++) {
        const char *p = strstr(w, conn[i]);
        if (p && (!at || p < at)) {
            at = p;
            cl = strlen(conn[i]);
        }
    }
    /* "before: 3.10 s, after: 3.88 s": "after" right before its value */
    for (const char *p = strstr(w, "after"); p && (!at || p < at); p = strstr(p + 5, "after"))
        if (isdigit((unsigned char)p[5 + strspn(p + 5, " :=\t")])) {
            at = p;
            cl = 5;
            break;
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
void rule_slowdown_after(run *r, const diag_rule *ru)
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
        /* one job slower on all its ranks alike: that job's software, not
         * a node of it (the whole fleet alike is the cluster's) */
        bool job = !wide && group_marked(r, "slowdown-every-rank");
        int level = wide ? 2 : (job ? 0 : 1);
        add_anomaly(r, ru->strength, level, ru->id, line_evidence(r, x->last_line, why));
        return;
    }
}
