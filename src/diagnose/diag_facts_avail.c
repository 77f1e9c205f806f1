/* Facts of a node's availability read in time order: a down that planned
 * work caused and that ended, and a down that is the scheduler's failure
 * to authenticate a node that answers.  Unreachable is a claim about the
 * node now; neither of these is that. */
#include "diag_int.h"

#include <ctype.h>
#include <math.h>
#include <string.h>
#include <strings.h>

/* The node told not ready or not responding, by any tool. */
static bool down_told(const tline *l)
{
    static const char *const w[] = {"NotReady",       "not ready",
                                    "unready",        "not responding",
                                    "NOT_RESPONDING", "stopped posting node status",
                                    "setting DOWN"};
    return facts_any(l, w, NOF(w));
}

/* The node told ready, responding, schedulable or resumed again. */
static bool back_told(const tline *l)
{
    static const char *const w[] = {"NodeReady",         "is Ready",       "Ready again",
                                    "now responding",    "is responding",  "state=resume",
                                    "resumed",           "uncordon",       "NodeSchedulable",
                                    "schedulable again", "back in service"};
    return facts_any(l, w, NOF(w));
}

/* The node taken out of service on purpose: cordoned, drained. */
static bool takeout_told(const tline *l)
{
    static const char *const w[] = {"cordon", "NotSchedulable", "SchedulingDisabled", "drain"};
    static const char *const undo[] = {"uncordon", "undrain"};
    return facts_any(l, w, NOF(w)) && !facts_any(l, undo, NOF(undo));
}

/* Work announced as planned: an upgrade, a change ticket, a maintenance. */
static bool plan_told(const tline *l)
{
    static const char *const w[] = {
        "maint",           "upgrade",  "CHG",       "change ticket", "change request",
        "change window",   "planned",  "scheduled", "kernel update", "driver update",
        "firmware update", "patching", "rolling"};
    static const char *const not [] = {"unplanned",      "not planned", "unscheduled",
                                       "no maintenance", "no planned",  "paused"};
    return facts_any(l, w, NOF(w)) && !facts_any(l, not, NOF(not ));
}

/* Slurm's state of the node now: 1 responding, -1 down, 0 not told. */
static int state_now(const run *r)
{
    static const char *const up[] = {"IDLE", "MIX", "ALLOC", "COMPLETING"};
    static const char *const down[] = {"DOWN", "NOT_RESPONDING", "NO_RESPOND", "FAIL", "*"};
    int s = 0;
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        if (l->src != DS_STATE) continue;
        if (facts_any(l, down, NOF(down))) return -1;
        if (facts_any(l, up, NOF(up))) s = 1;
    }
    return s;
}

/* A node class other than unreach told now (a GPU lost, hung): the
 * down then has a cause of its own. */
bool facts_other_node_fault(const run *r, int unreach)
{
    for (int i = 0; i < r->nhits; i++) {
        const diag_class *c = &r->db->classes[r->hits[i].cls];
        if (r->hits[i].cls != unreach && !r->hits[i].old && c->destructive &&
            strcmp(c->scope, "node") == 0)
            return true;
    }
    return false;
}

/* The node's own agent (kubelet, slurmd) stopped, started or upgraded:
 * the node reads not ready while it restarts.  A crash is no such
 * restart. */
static bool agent_restart_told(const tline *l)
{
    static const char *const agent[] = {"kubelet", "slurmd"};
    static const char *const act[] = {"Stopping", "Stopped", "Starting",  "Started",
                                      "restart",  "Restart", "Unpacking", "Setting up",
                                      "upgrade",  "Upgrade", "Upgraded"};
    static const char *const crash[] = {"crash",     "core-dump",   "segfault",       "status=1/",
                                        "status=2/", "start-limit", "Failed to start"};
    return facts_any(l, agent, NOF(agent)) && facts_any(l, act, NOF(act)) &&
           !facts_any(l, crash, NOF(crash));
}

/* Planned work, then the take-out, then the down, then back: the
 * cordon or drain (with its plan said on it or before it) precedes the
 * first down, or the node's agent restarted before it came back, and a
 * line telling the node back follows the last down. */
static bool planned_bounce(const run *r)
{
    int plan = -1, takeout = -1, first_down = -1, last_down = -1, back = -1, agent = -1;
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        if (l->src == DS_STATE || l->src == DS_METRICS) continue;
        if (plan < 0 && plan_told(l)) plan = i;
        if (agent < 0 && agent_restart_told(l)) agent = i;
        bool down = down_told(l);
        if (down) {
            if (first_down < 0) first_down = i;
            last_down = i;
        } else if (back_told(l) && last_down >= 0) {
            back = i;
        } else if (takeout < 0 && first_down < 0 && plan >= 0 && takeout_told(l)) {
            takeout = i;
        }
    }
    int now = state_now(r);
    bool came_back = now >= 0 && (back > last_down || now > 0);
    /* or the node's agent restarted (an upgrade, a restart) before it
     * read ready again: the not-ready was the restart, no cordon needed */
    bool restarted = agent >= 0 && first_down >= 0 && (back < 0 || agent < back);
    return came_back && ((takeout >= 0 && first_down > takeout) || restarted);
}

/* ---- the scheduler cannot authenticate a node that answers ------------- */

/* Authentication refused (munge's credential errors, Slurm's protocol
 * authentication error) or the node's clock off its time source, which
 * is the usual reason munge refuses a credential. */
static bool auth_told(const tline *l)
{
    static const char *const w[] = {
        "Expired credential",  "Rewound credential",   "Replayed credential",
        "Invalid credential",  "Munge decode failed",  "Unable to verify credential",
        "credential expired",  "authentication error", "clock skew",
        "time skew",           "seconds slow",         "seconds fast",
        "Not synchronised",    "not synchronized",     "synchronized: no",
        "no selectable source"};
    return facts_any(l, w, NOF(w));
}

static int auth_line(const run *r)
{
    for (int i = 0; i < r->nlines; i++)
        if (auth_told(&r->lines[i])) return i;
    return -1;
}

/* A line of the same story: the credential refused, the node marked down
 * for it, the scheduler's authentication errors around them. */
static bool auth_story_line(const tline *l)
{
    static const char *const w[] = {"munge",  "credential", "authentication", "auth/",
                                    "chrony", "ntp",        "clock"};
    return auth_told(l) || down_told(l) || facts_any(l, w, NOF(w));
}

/* A line telling the node answered: a shell on it that worked (ssh and a
 * success word, no failure word), a ping answered, uptime's load, or its
 * GPUs listed by a tool run on it (a model name, nvidia-smi counting),
 * its clock read, its slurmd writing. */
static bool answer_told(const tline *l)
{
    static const char *const good[] = {"ok",      "works",    "worked",    "fine",     "succe",
                                       "answers", "responds", "reachable", "logged in"};
    static const char *const bad[] = {"fail", "refused", "timed out", "denied",
                                      "not ", "cannot",  "can't",     "unable"};
    static const char *const gpu[] = {"GPU 0:",    "NVIDIA H1", "NVIDIA A1",       "NVIDIA H2",
                                      "NVIDIA B2", "NVIDIA GB", "NVIDIA L4",       "GPUs listed",
                                      "lists all", "shows all", "all GPUs visible"};
    /* a clock read on the node (chrony, timedatectl) or its own slurmd
     * logging the refusal is a command or a daemon that ran there */
    static const char *const alive[] = {"load average", " 0% packet loss", "responds to ping",
                                        "chronyc",      "timedatectl",     "System time",
                                        "Reference ID", "NTP service",     "slurmd[",
                                        "slurmd.log",   "slurmd:"};
    if (l->src == DS_METRICS || facts_any(l, bad, NOF(bad))) return false;
    return (facts_has_ci(l, "ssh") && facts_any(l, good, NOF(good))) ||
           facts_any(l, gpu, NOF(gpu)) || facts_any(l, alive, NOF(alive));
}

/* Whether the node answered (the answers-now marker or a line telling
 * so), and nothing says ssh or ping could not reach it: a Slurm RPC that
 * timed out is the authentication failing, not the network. */
static bool node_answers(const run *r)
{
    static const char *const dead[] = {"100% packet loss", "No route to host", "Host Unreachable",
                                       "Host is down", "connect to host"};
    bool yes = group_marked(r, "node-answers-now");
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        if (facts_any(l, dead, NOF(dead))) return false;
        yes |= answer_told(l);
    }
    /* a line telling no errors was set aside as a flat reading: it still
     * tells the node answered ("nvidia-smi lists all 8, no errors") */
    for (int k = 0; k < r->nflat; k++)
        yes |= answer_told(&r->flat[k]);
    return yes;
}

/* Drop each anomaly every one of whose matched lines the story explains
 * (the down, the cordon, the credential errors); an anomaly added by a
 * fact (no matched line) or with one line outside the story stays. */
/* A window of time [t0, t1] a story spans; NAN bounds: none. */
typedef struct span {
    double t0, t1;
    int i0, i1; /* or the lines listed between (indices; -1: none) */
} span;

static void drop_explained_in(run *r, bool (*explained)(const tline *), const span *w);

static void drop_explained(run *r, bool (*explained)(const tline *))
{
    span none = {NAN, NAN, -1, -1};
    drop_explained_in(r, explained, &none);
}

/* Anomalies every line of which the story explains: its own lines, or a
 * line stamped within the window it spans (what failed while it ran). */
static void drop_explained_in(run *r, bool (*explained)(const tline *), const span *w)
{
    int k = 0;
    for (int i = 0; i < r->nanoms; i++) {
        int seen = 0, told = 0;
        for (int m = 0; m < r->nraws; m++) {
            const diag_sig *g = &r->db->sigs[r->raws[m].sig];
            if (!g->anomaly || strcmp(g->group, r->anoms[i].group) != 0) continue;
            const tline *l = &r->lines[r->raws[m].line];
            double t = isnan(w->t0) ? NAN : line_any_stamp(l->s, l->len, 1970);
            seen++;
            int li = r->raws[m].line;
            told += explained(l) || (!isnan(t) && t >= w->t0 && t <= w->t1) ||
                    (w->i0 >= 0 && li >= w->i0 && li <= w->i1);
        }
        if (seen && told == seen)
            free(r->anoms[i].text);
        else
            r->anoms[k++] = r->anoms[i];
    }
    r->nanoms = k;
}

static bool bounce_line(const tline *l)
{
    return down_told(l) || back_told(l) || takeout_told(l) || plan_told(l) || agent_restart_told(l);
}

/* Unreachable told now, at any strength (a bare NOT_RESPONDING state is
 * weak without other sources, and still names the class). */
static bool unreach_told(const run *r, int c)
{
    for (int i = 0; i < r->nhits; i++)
        if (r->hits[i].cls == c && !r->hits[i].old) return true;
    return false;
}

/* ---- storage that failed over as planned and came back ----------------- */

static bool storage_told(const tline *l)
{
    static const char *const w[] = {"failover", "fail over", "fail-over", "lustre", "OSS", "MDS",
                                    "MDT",      "OST",       "storage",   "GPFS",   "NFS", "filer"};
    return facts_any(l, w, NOF(w));
}

static bool lost_told(const tline *l)
{
    static const char *const w[] = {"was lost", "connection lost", "lost connection"};
    return facts_any(l, w, NOF(w));
}

static bool restored_told(const tline *l)
{
    static const char *const w[] = {"Connection restored", "reconnected", "Recovery over",
                                    "recovery complete", "0 were evicted"};
    return facts_any(l, w, NOF(w));
}

/* An eviction of clients: "0 were evicted" is the absence of one. */
static bool evicted_told(const tline *l)
{
    return facts_has_ci(l, "evict") && !facts_has(l, " 0 were evicted") &&
           !facts_has_ci(l, "0 evicted") && !facts_has_ci(l, "no client");
}

/* A line of the failover: its announcement, the storage's own lines
 * (a timeout or a refused connect while the target moves), the loss and
 * the recovery. */
static bool failover_line(const tline *l)
{
    static const char *const w[] = {"ptlrpc", "@o2ib", "@tcp", "LNet",
                                    "-osc",   "-mdc",  "ldlm", "obd_"};
    return storage_told(l) || facts_any(l, w, NOF(w)) || lost_told(l) || restored_told(l);
}

static void drop_anomaly_group(run *r, const char *group)
{
    int k = 0;
    for (int i = 0; i < r->nanoms; i++) {
        if (strcmp(r->anoms[i].group, group) == 0)
            free(r->anoms[i].text);
        else
            r->anoms[k++] = r->anoms[i];
    }
    r->nanoms = k;
}

/* A storage failover a change announced: the connection lost, then
 * restored (or recovery over), no client evicted.  The planned work and
 * its end are history, not the fleet's storage failing. */
static void failover_story(run *r)
{
    bool plan = false, lost = false, back = false;
    span w = {NAN, NAN, -1, -1};
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        if (evicted_told(l)) return;
        plan |= plan_told(l) && storage_told(l);
        double t = line_any_stamp(l->s, l->len, 1970);
        if (lost_told(l)) {
            lost = true;
            back = false; /* restored must come after the last loss */
            if (isnan(w.t0) || t < w.t0) w.t0 = t;
        } else if (restored_told(l) && lost) {
            back = true;
            w.t1 = t;
        }
    }
    if (!plan || !lost || !back) return;
    /* what the clients logged between the loss and the restore (a write
     * timing out, a task waiting on the target) is the failover's too */
    if (isnan(w.t1) || w.t1 < w.t0) w.t0 = w.t1 = NAN;
    drop_explained_in(r, failover_line, &w);
    /* the hosts counted were the clients recovering, not hosts failing */
    drop_anomaly_group(r, "facts-storage-many-hosts");
}

/* ---- a planned rollout that ended done --------------------------------- */

/* Its positive end, in the tools' words or people's. */
static bool done_told(const tline *l)
{
    static const char *const w[] = {"all validations are successful",
                                    "validations successful",
                                    "upgrade-done",
                                    "upgrade done",
                                    "upgrade complete",
                                    "rollout complete",
                                    "successfully rolled out",
                                    "upgrade finished"};
    return facts_any(l, w, NOF(w));
}

/* Its end failed, or something still fails after it. */
static bool undone_told(const tline *l)
{
    static const char *const w[] = {"upgrade-failed",   "upgrade failed", "rollout failed",
                                    "CrashLoopBackOff", "rolled back",    "rollback"};
    return facts_any(l, w, NOF(w));
}

/* A line of the rollout: the plan, the workloads moved off, the driver and
 * validator pods restarted while it ran, the node out then back. */
static bool rollout_line(const tline *l)
{
    static const char *const w[] = {
        "evict",   "drain",   "cordon",      "validator", "validation", "driver",     "BackOff",
        "restart", "Killing", "Schedulable", "not ready", "NotReady",   "allocatable"};
    return plan_told(l) || done_told(l) || facts_any(l, w, NOF(w));
}

/* A planned upgrade or rollout (a driver container, an operator) whose
 * disruptions (evictions, pods restarted, the node cordoned) ended in its
 * own positive end, nothing failing after: history, not unexplained. */
static void rollout_story(run *r)
{
    bool plan = false, done = false;
    for (int i = 0; i < r->nlines; i++) {
        const tline *l = &r->lines[i];
        plan |= plan_told(l);
        if (undone_told(l))
            done = false;
        else if (done_told(l))
            done = true;
    }
    if (plan && done) drop_explained(r, rollout_line);
}

/* ---- the NVLink fabric starting up ----------------------------------- */

/* A line of the fabric's services: the fabric manager, IMEX, NVSwitches,
 * the NVLink fabric and its state. */
static bool fabric_told(const tline *l)
{
    static const char *const w[] = {"fabric", "Fabric",   "FABRIC",   "imex",   "IMEX",
                                    "Imex",   "NVSwitch", "nvswitch", "NVLink", "nvlink"};
    return facts_any(l, w, NOF(w));
}

/* The fabric told down or failing after all: failed, an error, a
 * version mismatch, not started, inactive. */
static bool fabric_fail_told(const tline *l)
{
    static const char *const w[] = {"Not Started", "not started", "failed", "Failed",   "FAILED",
                                    "mismatch",    "error",       "Error",  "inactive", "down"};
    for (size_t k = 0; k < NOF(w); k++) {
        size_t n = strlen(w[k]);
        for (const char *p = memmem(l->s, l->len, w[k], n); p;
             p = memmem(p + 1, l->len - (size_t)(p + 1 - l->s), w[k], n)) {
            size_t at = (size_t)(p - l->s);
            /* a zero count ("0 inactive", "no errors", "inactive: 0")
             * tells none */
            size_t e = at + n;
            while (e < l->len && (l->s[e] == ':' || l->s[e] == '=' || l->s[e] == ' '))
                e++;
            bool none = (at >= 2 && memcmp(p - 2, "0 ", 2) == 0) ||
                        (at >= 3 && strncasecmp(p - 3, "no ", 3) == 0) ||
                        (e > at + n && e < l->len && l->s[e] == '0' &&
                         (e + 1 == l->len || !isdigit((unsigned char)l->s[e + 1])));
            if (!none) return true;
        }
    }
    return false;
}

/* The fabric told up: its service started, registered or ready, or
 * nvidia-smi's Fabric section reading State Completed / Status Success. */
static bool fabric_up_at(const run *r, int i)
{
    static const char *const up[] = {
        "Started",     "started",     "Completed",        "completed",
        "COMPLETED",   "registered",  "Registered",       "successfully",
        "Success",     "SUCCESS",     "is ready",         "READY",
        "initialized", "Initialized", "active (running)", "up and running"};
    const tline *l = &r->lines[i];
    if (!facts_any(l, up, NOF(up)) || fabric_fail_told(l)) return false;
    for (int k = i; k >= 0 && k >= i - 3; k--)
        if (r->lines[k].src == l->src && fabric_told(&r->lines[k])) return true;
    return false;
}

/* The fabric (re)starting at boot or after maintenance: retries and
 * "waiting for" lines, then the fabric told up with no failure of it told
 * after, nothing read degraded, and no NVLink class told: its lines are
 * start-up, not anomalies. */
static void fabric_startup_story(run *r)
{
    int c = diag_class_index(r->db, "gpu_nvlink_error");
    if (c >= 0 && unreach_told(r, c)) return;
    /* a domain read degraded, a peer not connected: a state, not a step */
    static const char *const degraded[] = {"DEGRADED", "degraded", "Degraded", "not connected"};
    int first = -1, up = -1, fail = -1, up_there = -1;
    for (int i = 0; i < r->nlines; i++) {
        if (fabric_told(&r->lines[i]) && facts_any(&r->lines[i], degraded, NOF(degraded))) return;
        if (fabric_told(&r->lines[i]) && first < 0) first = i;
        if (fabric_up_at(r, i)) {
            up = i;
            if (r->lines[i].src == r->lines[first].src) up_there = i;
        } else if (fabric_told(&r->lines[i]) && fabric_fail_told(&r->lines[i]))
            fail = i;
    }
    if (up < 0 || fail > up) return;
    /* what else was logged while it started (a service waiting for the
     * fabric, a retry) is the start-up's too */
    const tline *a = &r->lines[first], *b = &r->lines[up];
    span w = {line_any_stamp(a->s, a->len, 1970), line_any_stamp(b->s, b->len, 1970), -1, -1};
    /* unstamped: the lines its first source lists up to the fabric up */
    if ((isnan(w.t0) || isnan(w.t1)) && up_there >= 0) w.i0 = first, w.i1 = up_there;
    drop_explained_in(r, fabric_told, &w);
}

void avail_rule(run *r)
{
    failover_story(r);
    rollout_story(r);
    fabric_startup_story(r);
    int c = diag_class_index(r->db, "node_unreachable");
    if (c < 0 || !unreach_told(r, c) || facts_other_node_fault(r, c)) return;
    if (planned_bounce(r)) {
        /* the planned work took the node down and it came back: history */
        facts_drop_class(r, c);
        drop_explained(r, bounce_line);
        return;
    }
    int a = auth_line(r);
    if (a < 0 || !node_answers(r)) return;
    facts_drop_class(r, c);
    drop_explained(r, auth_story_line);
    add_anomaly(r, ST_STRONG, 1, "node-auth-clock",
                line_evidence(r, a,
                              "[the scheduler cannot authenticate the node (credential or "
                              "clock) while it answers: not unreachable, check its clock and "
                              "munge] "));
}
