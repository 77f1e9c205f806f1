/* Ranked output entries: a class, healthy only with positive evidence,
 * inconclusive when anomalies no class explains remain. */
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

json_t *class_entry(run *r, int c, const cstate *s, const json_t *taxonomy, const int *absorbed)
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
int kinds_present(const run *r, char *names, size_t n)
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
json_t *healthy_entry(run *r, double best, const json_t *taxonomy)
{
    int h = diag_class_index(r->db, "healthy");
    char names[120];
    int k = kinds_present(r, names, sizeof names);
    double cover = 0.3 + 0.15 * k;
    if (cover > 1.0) cover = 1.0;
    cstate s = {.conf = (1.0 - best) * cover, .corroborated = k >= 2};
    json_t *o = class_entry(r, h, &s, taxonomy, NULL);
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
    /* a CUDA error that names no device fault, with nothing node-level
     * beside it, is the job's whichever host its record or launcher names */
    if (anomaly_seen(r, "anomaly-cuda-error-job")) return false;
    for (int i = 0; i < r->nanoms; i++) {
        if (r->anoms[i].level != 0) continue;
        /* a kill with nothing to explain it names the host the launcher ran
         * the task on, not a cause there; a kernel log read clean (no OOM
         * killer, no Xid) takes the node further out, not in: the job's */
        if (kill_told(r->anoms[i].text)) continue;
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

/* Whether the job's failure lines (attempts, restarts) name two or more
 * hosts of the node's kind ("h100-g7-05", "h100-g7-09": the same first
 * part): the failure moved with the job, no node's. */
static bool failure_moved(const run *r)
{
    static const char *const fail[] = {"nan", "non-finite", "error", "abort", "fail"};
    size_t pre = r->node ? strcspn(r->node, "-") : 0;
    if (!pre || !r->node[pre]) return false;
    char seen[4][64];
    int n = 0;
    for (int i = 0; i < r->nlines && n < 2; i++) {
        const tline *l = &r->lines[i];
        if ((l->src != DS_JOB && l->src != DS_HISTORY) || !facts_any(l, fail, 5)) continue;
        for (const char *p = memmem(l->s, l->len, r->node, pre); p && n < 4;
             p = memmem(p + 1, l->len - (size_t)(p + 1 - l->s), r->node, pre)) {
            size_t k = 0, left = l->len - (size_t)(p - l->s);
            while (k < left && k < 63 && (isalnum((unsigned char)p[k]) || p[k] == '-'))
                k++;
            if ((p > l->s && isalnum((unsigned char)p[-1])) || k <= pre) continue;
            bool dup = false;
            for (int j = 0; j < n && !dup; j++)
                dup = strlen(seen[j]) == k && strncmp(seen[j], p, k) == 0;
            if (!dup) {
                memcpy(seen[n], p, k);
                seen[n++][k] = 0;
            }
            if (p + 1 >= l->s + l->len) break;
        }
    }
    return n >= 2;
}

/* inconclusive: anomalies no class explains, or nothing to judge.  The
 * anomalies are the evidence; the answer is a human, never a runbook. */
json_t *inconclusive_entry(run *r, double best, const json_t *taxonomy, int ic)
{
    cstate s = {.conf = 0, .corroborated = false};
    json_t *o = class_entry(r, ic, &s, taxonomy, NULL);
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
    /* a failure that follows one node across restarts and is gone where
     * the node was excluded is the node's */
    else if (group_marked(r, "failure-follows-node"))
        ;
    /* numerics that go wrong on one node's ranks alone are that node's; a
     * failure that moved from host to host across attempts is the job's */
    else if (job && !node && (!names_node(r) || failure_moved(r)) &&
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
/* Whether class c has a hit that is not history. */
static bool class_current(const run *r, int c)
{
    for (int i = 0; i < r->nhits; i++)
        if (r->hits[i].cls == c && !r->hits[i].old) return true;
    return false;
}

/* Whether the Xids Xid 154's action answers are all history (cleared by a
 * later reading, before a reset or a reboot): the reset or reboot it asked
 * for came since, so the action is history too.  False when no Xid class
 * is told: a 154 alone still asks for its action. */
static bool recovery_done(const run *r, const cstate *cs)
{
    bool seen = false;
    for (int c = 0; c < r->db->nclasses; c++) {
        if (!r->xidcls[c] || !cs[c].any) continue;
        if (class_current(r, c)) return false;
        seen = true;
    }
    return seen;
}

void apply_recovery(run *r, cstate *cs)
{
    if (!r->rec || recovery_done(r, cs)) return;
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
