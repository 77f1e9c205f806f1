/* The Slurm backend over the CLI: `sinfo --json`, `squeue --json`,
 * `scontrol show node NAME --oneliner` (a plan's node: `sinfo -N -n NAME`,
 * with squeue and the capacity aggregate run beside it, or the aggregate
 * another process shared through the store), and scontrol for mutations.
 * Always fork/execvp with an argv (never a shell); SLURM_CONF from
 * slurm.cli.slurm_conf goes into the child's environment only; stdout is
 * capped, stderr kept (bounded) for the error; a child past the timeout is
 * killed with what it started (each command is its own process group).
 * Answers go to the shared normalizer (slurm_normalize.c), so the CLI and
 * REST backends agree. */
#include "fleetmcp/fm_slurm.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <stdbool.h>
#include <unistd.h>

#include "fleetmcp/fm_store.h"
#include "fleetmcp/fm_util.h"
#include "slurm_impl.h"

#define DEFAULT_MAX_BYTES (64u << 20)
#define STDERR_MAX 2048

/* A command started and not yet read (spawn / collect). */
typedef struct child_run {
    pid_t pid;          /* 0: none */
    int out, err, ex;   /* stdout, stderr and the exec-errno pipe's read ends */
    long long deadline; /* now_ms() by which it is killed */
    double started;     /* CLOCK_MONOTONIC seconds */
    long long wall_ms;  /* fm_now_ms() at the start: a shared aggregate's stamp */
    bool bg;            /* a refresh of the shared aggregate, not this plan's question */
} child_run;

typedef struct cli_st {
    char sinfo[256], squeue[256], scontrol[256], scancel[256];
    char slurm_conf[512]; /* "" = inherit */
    long timeout_ms;
    size_t max_bytes;
    fm_slurm_domains *dom;
    char *counts;             /* the last sinfo aggregate's text (sinfo_counts_text), or NULL */
    double counts_at;         /* CLOCK_MONOTONIC seconds it was started */
    long long counts_wall_ms; /* fm_now_ms() it was started (for a shared one: by its reader) */
    bool counts_shared;       /* counts came from the store: for a plan only */
    child_run counts_run;     /* the aggregate a plan started beside its node read */
    child_run jobs_run;       /* squeue --json a plan started beside its node read */
    /* The aggregate shared through the store (slurm_aggregate.c) */
    struct fm_store *store;   /* borrowed, or NULL */
    char cluster[129];        /* slurm.cluster, else slurm.conf's ClusterName; "" = not shared */
    char source[65];          /* its key: cluster, sinfo, slurm.conf */
    long long agg_max_age_ms; /* slurm.cli.aggregate_max_age_s; 0 = never shared */
    char sec_cluster[129];    /* slurm.cluster as configured, or "" */
    bool planning;            /* between plan_node and plan_end */
    double plan_at;           /* CLOCK_MONOTONIC seconds plan_node started */
} cli_st;

/* An aggregate this recent stands for the next capacity question (as the
 * REST backend's table check does), and for the breaker's fleet count,
 * which a plan asks right after capacity, longer: how many nodes Slurm has
 * changes only when slurm.conf does, and a loaded machine can stretch the
 * gap between the two past 250 ms. */
#define CLI_REUSE_S 0.25
#define CLI_FLEET_REUSE_S 2.0
/* slurm.cli.aggregate_max_age_s's default: how old a plan's capacity
 * answer may be when another process read it.  A plan is a proposal and
 * its execution reads Slurm again before a node is taken, so the answer
 * only has to be as recent as a human reading it would expect; 5 s is
 * under slurmctld's default node ping interval (SlurmdTimeout/3, 100 s)
 * and in the range of a dashboard's refresh. */
#define CLI_AGGREGATE_MAX_AGE_MS 5000
/* How long close waits for a background refresh of that aggregate still
 * running: one that ends within it goes to the store for the next process;
 * past it, it is stopped (the next plan reads sinfo itself), where waiting
 * out slurm.timeout_ms (5-10 s) would hold every stdio session's exit
 * behind a slow slurmctld.  sinfo's aggregate takes 0.3-0.7 s at 16,384
 * nodes on loaded cores (README, bench/fleet.sh). */
#define CLI_CLOSE_GRACE_MS 1000

typedef struct run_out {
    char *out; /* malloc'd, NUL-terminated */
    size_t len;
    char err[STDERR_MAX + 1];
    int status; /* exit status; -1 when killed by a signal */
} run_out;

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The child: fds into place, SLURM_CONF set, exec.  On exec failure its
 * errno goes through the close-on-exec pipe so the parent can name it. */
static void child(cli_st *s, char *const argv[], int outfd, int errfd, int exfd)
{
    /* Its own process group, so stopping it stops what it started too (a
     * site's wrapper script around sinfo, say) instead of leaving that
     * running with nobody to reap it. */
    setpgid(0, 0);
    dup2(outfd, STDOUT_FILENO);
    dup2(errfd, STDERR_FILENO);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, STDIN_FILENO);
    if (*s->slurm_conf) setenv("SLURM_CONF", s->slurm_conf, 1);
    /* Slurm's JSON and dates must not depend on the caller's locale */
    setenv("LC_ALL", "C", 1);
    execvp(argv[0], argv);
    int e = errno;
    if (write(exfd, &e, sizeof e) < 0) _exit(127);
    _exit(127);
}

static void append(char **buf, size_t *len, size_t *cap, const char *p, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 65536;
        while (c < *len + n + 1)
            c *= 2;
        char *nb = realloc(*buf, c);
        if (!nb) return;
        *buf = nb;
        *cap = c;
    }
    memcpy(*buf + *len, p, n);
    *len += n;
    (*buf)[*len] = '\0';
}

/* Starts argv with its pipes (the deadline counts from now); 0 or -1 with
 * err set. */
static int spawn(cli_st *s, char *const argv[], child_run *c, fm_err *err)
{
    memset(c, 0, sizeof *c);
    int op[2], ep[2], xp[2];
    if (pipe2(op, O_CLOEXEC)) return fm_err_set(err, FM_ERR_IO, "pipe: %s", strerror(errno)), -1;
    if (pipe2(ep, O_CLOEXEC)) {
        close(op[0]), close(op[1]);
        return fm_err_set(err, FM_ERR_IO, "pipe: %s", strerror(errno)), -1;
    }
    if (pipe2(xp, O_CLOEXEC)) {
        close(op[0]), close(op[1]), close(ep[0]), close(ep[1]);
        return fm_err_set(err, FM_ERR_IO, "pipe: %s", strerror(errno)), -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(op[0]), close(op[1]), close(ep[0]), close(ep[1]), close(xp[0]), close(xp[1]);
        return fm_err_set(err, FM_ERR_IO, "fork: %s", strerror(errno)), -1;
    }
    if (pid == 0) child(s, argv, op[1], ep[1], xp[1]);
    /* Here too: whichever of the two runs first, the group exists before
     * anything signals it (EACCES once the child has exec'd: already set). */
    setpgid(pid, 0);
    close(op[1]);
    close(ep[1]);
    close(xp[1]);
    *c = (child_run){.pid = pid,
                     .out = op[0],
                     .err = ep[0],
                     .ex = xp[0],
                     .deadline = now_ms() + s->timeout_ms,
                     .started = mono_s(),
                     .wall_ms = fm_now_ms()};
    return 0;
}

/* Stops a started command and what it started (its process group); the
 * caller reaps it.  SIGKILL: nothing it would still print is wanted, and a
 * shell running a child defers SIGTERM until that child ends. */
static void stop_child(pid_t pid)
{
    /* No such group: neither setpgid took (the child alone, then) */
    if (kill(-pid, SIGKILL) && errno == ESRCH) kill(pid, SIGKILL);
}

/* Reads a started command to its end (or its deadline) and reaps it;
 * returns 0 when it ran to an exit status (any), else -1 with err set (not
 * found, timeout, output too large).  With stream, stdout goes there as it
 * arrives instead of into ro->out (nonzero stops the command: -1, keeping
 * the error stream set).  argv0 names it in errors. */
static int collect(cli_st *s, const char *argv0, child_run *c, run_out *ro,
                   int (*stream)(void *, const char *, size_t), void *stream_ud, fm_err *err)
{
    memset(ro, 0, sizeof *ro);
    pid_t pid = c->pid;
    int xp0 = c->ex;
    long long deadline = c->deadline;
    size_t cap = 0, elen = 0;
    bool over = false, timed_out = false, stopped = false;
    size_t total = 0;
    struct pollfd pf[2] = {{.fd = c->out, .events = POLLIN}, {.fd = c->err, .events = POLLIN}};
    c->pid = 0;
    int open_fds = 2;
    char buf[65536];
    while (open_fds > 0) {
        long long left = deadline - now_ms();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        int pr = poll(pf, 2, (int)left);
        if (pr < 0 && errno == EINTR) continue;
        if (pr <= 0) continue;
        for (int i = 0; i < 2; i++) {
            if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t n = read(pf[i].fd, buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                close(pf[i].fd);
                pf[i].fd = -1;
                open_fds--;
                continue;
            }
            if (i == 0) {
                total += (size_t)n;
                if (total > s->max_bytes) {
                    over = true;
                    open_fds = 0;
                    break;
                }
                if (!stream) {
                    append(&ro->out, &ro->len, &cap, buf, (size_t)n);
                } else if (stream(stream_ud, buf, (size_t)n)) {
                    stopped = true;
                    open_fds = 0;
                    break;
                }
            } else if (elen < STDERR_MAX) {
                size_t take = (size_t)n < STDERR_MAX - elen ? (size_t)n : STDERR_MAX - elen;
                memcpy(ro->err + elen, buf, take);
                elen += take;
            }
        }
    }
    for (int i = 0; i < 2; i++)
        if (pf[i].fd >= 0) close(pf[i].fd);
    if (timed_out || over || stopped) stop_child(pid);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    int exec_errno = 0;
    ssize_t xn = read(xp0, &exec_errno, sizeof exec_errno);
    close(xp0);
    ro->err[elen] = '\0';
    ro->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    if (!ro->out) ro->out = strdup("");
    if (xn == (ssize_t)sizeof exec_errno) {
        free(ro->out);
        ro->out = NULL;
        return fm_err_set(err, FM_ERR_UNAVAILABLE, "cannot run %s (%s): check slurm.cli and PATH",
                          argv0, strerror(exec_errno)),
               -1;
    }
    if (timed_out || over || stopped) {
        free(ro->out);
        ro->out = NULL;
        if (stopped) {
            if (err && !err->code)
                fm_err_set(err, FM_ERR_PARSE, "%s's output could not be read", argv0);
            return -1;
        }
        if (over)
            return fm_err_set(err, FM_ERR_TOO_LARGE,
                              "%s printed more than %zu bytes: raise "
                              "slurm.max_response_bytes",
                              argv0, s->max_bytes),
                   -1;
        return fm_err_set(err, FM_ERR_TIMEOUT,
                          "%s did not finish within %ld ms (killed): is slurmctld "
                          "responding? check slurm.timeout_ms",
                          argv0, s->timeout_ms),
               -1;
    }
    return 0;
}

static int run_to(cli_st *s, char *const argv[], run_out *ro,
                  int (*stream)(void *, const char *, size_t), void *stream_ud, fm_err *err)
{
    child_run c;
    if (spawn(s, argv, &c, err)) {
        memset(ro, 0, sizeof *ro);
        return -1;
    }
    return collect(s, argv[0], &c, ro, stream, stream_ud, err);
}

static int run(cli_st *s, char *const argv[], run_out *ro, fm_err *err)
{
    return run_to(s, argv, ro, NULL, NULL, err);
}

/* Maps a failed command's stderr to an error naming what to check. */
static int cmd_failed(const char *cmd, const run_out *ro, fm_err *err)
{
    char clip[129];
    fm_clip(clip, sizeof clip, ro->err);
    if (strstr(ro->err, "Unable to contact slurm controller") ||
        strstr(ro->err, "Connection refused") || strstr(ro->err, "connect failure"))
        return fm_err_set(err, FM_ERR_UNAVAILABLE,
                          "%s could not reach slurmctld (%s): is slurmctld running? "
                          "check slurm.cli.slurm_conf",
                          cmd, clip),
               -1;
    if (strstr(ro->err, "not found") || strstr(ro->err, "Invalid job id") ||
        strstr(ro->err, "Invalid node name"))
        return fm_err_set(err, FM_ERR_NOT_FOUND, "%s: %s", cmd, clip), -1;
    if (strstr(ro->err, "Access/permission denied") || strstr(ro->err, "Invalid user"))
        return fm_err_set(err, FM_ERR_AUTH, "%s: %s", cmd, clip), -1;
    return fm_err_set(err, FM_ERR_BACKEND, "%s exited %d: %s", cmd, ro->status, clip), -1;
}

/* Runs a `--json` command and reads the nodes or jobs answer from stdout
 * (new object, only the keys the normalizer needs). */
static json_t *run_json(cli_st *s, char *const argv[], bool jobs, child_run *started, fm_err *err)
{
    run_out ro;
    if (started ? collect(s, argv[0], started, &ro, NULL, NULL, err) : run(s, argv, &ro, err))
        return NULL;
    if (ro.status != 0) {
        cmd_failed(argv[0], &ro, err);
        free(ro.out);
        return NULL;
    }
    json_t *j = fm_slurm_parse_answer(ro.out, ro.len, jobs, err);
    free(ro.out);
    return j;
}

static int push_nodes(void *ud, const char *p, size_t n)
{
    return fm_slurm_nodes_feed_push(ud, p, n);
}

/* sinfo --json node by node as it prints: on 16,384 nodes the text is
 * ~21 MB, and held whole it would be most of the server's memory. */
static int cli_nodes_each(void *st, const fm_slurm_node_filter *f, fm_slurm_node_cb cb, void *ud,
                          fm_err *err)
{
    cli_st *s = st;
    char *argv[] = {s->sinfo, "--json", NULL};
    fm_slurm_nodes_feed *fd = fm_slurm_nodes_feed_open(s->dom, f, cb, ud, err);
    if (!fd) return -1;
    run_out ro;
    json_t *errors = NULL;
    if (run_to(s, argv, &ro, push_nodes, fd, err)) {
        fm_slurm_nodes_feed_close(fd, &errors);
        json_decref(errors);
        return -1;
    }
    free(ro.out);
    if (ro.status != 0) {
        fm_slurm_nodes_feed_close(fd, &errors);
        json_decref(errors);
        fm_err_clear(err); /* the command's own words say more than a half answer */
        return cmd_failed(argv[0], &ro, err);
    }
    int rc = fm_slurm_nodes_feed_close(fd, &errors);
    if (rc == 0 && errors) {
        json_t *ans = json_pack("{s:o}", "errors", errors);
        rc = fm_slurm_answer_errors(ans, "listing nodes", err) ? -1 : 0;
        json_decref(ans);
    }
    return rc;
}

static json_t *cli_nodes(void *st, const fm_slurm_node_filter *f, fm_err *err)
{
    return fm_slurm_nodes_collect(cli_nodes_each, st, f, err);
}

static json_t *cli_node(void *st, const char *name, fm_err *err)
{
    cli_st *s = st;
    if (!fm_slurm_valid_node_name(name)) {
        fm_err_set(err, FM_ERR_INVALID, "not a node name");
        return NULL;
    }
    char nm[64];
    snprintf(nm, sizeof nm, "%s", name);
    char *argv[] = {s->scontrol, "show", "node", nm, "--oneliner", NULL};
    run_out ro;
    if (run(s, argv, &ro, err)) return NULL;
    json_t *n = NULL;
    if (ro.status != 0) {
        if (strstr(ro.err, "not found"))
            fm_err_set(err, FM_ERR_NOT_FOUND, "Slurm has no node %s", name);
        else
            cmd_failed(s->scontrol, &ro, err);
    } else {
        n = fm_slurm_norm_scontrol_node(ro.out, s->dom, err);
        if (n && strcmp(json_string_value(json_object_get(n, "name")), name) != 0) {
            json_decref(n);
            n = NULL;
            fm_err_set(err, FM_ERR_PARSE, "scontrol answered for another node than %s", name);
        }
    }
    free(ro.out);
    return n;
}

static bool planning(const cli_st *s, double now);

static json_t *cli_jobs(void *st, const fm_slurm_job_filter *f, fm_err *err)
{
    cli_st *s = st;
    char *argv[] = {s->squeue, "--json", NULL};
    /* A plan's jobs question: the squeue plan_node started beside its
     * node read (the whole queue, filtered below as always). */
    child_run *started = s->jobs_run.pid && planning(s, mono_s()) ? &s->jobs_run : NULL;
    json_t *ans = run_json(s, argv, true, started, err);
    if (!ans) return NULL;
    json_t *out = fm_slurm_norm_jobs(ans, f, err);
    json_decref(ans);
    return out;
}

/* A started command no one will ask for: stopped and reaped. */
static void drop_run(cli_st *s, child_run *c)
{
    if (!c->pid) return;
    stop_child(c->pid);
    run_out ro;
    if (collect(s, s->squeue, c, &ro, NULL, NULL, NULL) == 0) free(ro.out);
}

static int run_scontrol(cli_st *s, char *const argv[], fm_err *err)
{
    s->planning = false; /* a mutation is never a plan's: its checks read Slurm */
    run_out ro;
    if (run(s, argv, &ro, err)) return -1;
    int rc = ro.status == 0 ? 0 : cmd_failed("scontrol", &ro, err);
    free(ro.out);
    return rc;
}

static bool valid_reason(const char *r)
{
    if (!r) return true;
    size_t n = strlen(r);
    if (n > 256) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)r[i] < 0x20 || r[i] == 0x7f) return false;
    return true;
}

static int cli_update_node(void *st, const char *name, fm_slurm_node_op op, const char *reason,
                           fm_err *err)
{
    cli_st *s = st;
    if (!fm_slurm_valid_node_name(name))
        return fm_err_set(err, FM_ERR_INVALID, "not a node name"), -1;
    if (!valid_reason(reason))
        return fm_err_set(err, FM_ERR_INVALID,
                          "reason over 256 bytes or with control "
                          "characters"),
               -1;
    if (op == FM_SLURM_DRAIN && (!reason || !*reason))
        return fm_err_set(err, FM_ERR_INVALID, "a drain needs a reason"), -1;
    char nodearg[80], reasonarg[300];
    snprintf(nodearg, sizeof nodearg, "nodename=%s", name);
    snprintf(reasonarg, sizeof reasonarg, "reason=%s", reason ? reason : "");
    char nm[64];
    snprintf(nm, sizeof nm, "%s", name);
    if (op == FM_SLURM_DRAIN) {
        char *argv[] = {s->scontrol, "update", nodearg, "state=drain", reasonarg, NULL};
        return run_scontrol(s, argv, err);
    }
    if (op == FM_SLURM_RESUME) {
        char *argv[] = {s->scontrol, "update", nodearg, "state=resume", NULL};
        return run_scontrol(s, argv, err);
    }
    /* Reboot when idle, drained meanwhile; after it, back in service or
     * held DOWN for whoever verifies the node and resumes it. */
    char *next = op == FM_SLURM_REBOOT_HOLD ? "nextstate=DOWN" : "nextstate=RESUME";
    if (reason && *reason) {
        char *argv[] = {s->scontrol, "reboot", "ASAP", next, reasonarg, nm, NULL};
        return run_scontrol(s, argv, err);
    }
    char *argv[] = {s->scontrol, "reboot", "ASAP", next, nm, NULL};
    return run_scontrol(s, argv, err);
}

/* Requeue first (a running job cannot take a new ExcNodeList), then keep
 * the pending job off the node; Slurm holds requeued jobs back briefly
 * (their begin time moves), which leaves room for the update. */
static int cli_cancel_job(void *st, uint64_t job_id, fm_err *err)
{
    cli_st *s = st;
    char id[32];
    snprintf(id, sizeof id, "%" PRIu64, job_id);
    char *argv[] = {s->scancel, id, NULL};
    return run_scontrol(s, argv, err);
}

static int cli_requeue_job(void *st, uint64_t job_id, const char *exclude_node, fm_err *err)
{
    cli_st *s = st;
    if (exclude_node && !fm_slurm_valid_node_name(exclude_node))
        return fm_err_set(err, FM_ERR_INVALID, "exclude_node is not a node name"), -1;
    char id[32];
    snprintf(id, sizeof id, "%" PRIu64, job_id);
    char *argv[] = {s->scontrol, "requeue", id, NULL};
    if (run_scontrol(s, argv, err)) return -1;
    if (!exclude_node) return 0;
    char jobarg[48], exc[96];
    snprintf(jobarg, sizeof jobarg, "jobid=%s", id);
    snprintf(exc, sizeof exc, "excnodelist=%s", exclude_node);
    char *argv2[] = {s->scontrol, "update", jobarg, exc, NULL};
    return run_scontrol(s, argv2, err);
}

static int by_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Distinct names over every line's hostlist (a node in two partitions is
 * on two lines). */
static int count_distinct(json_t *lists, long long *fleet, fm_err *err)
{
    size_t n = 0, i, k;
    json_t *l, *v;
    json_array_foreach(lists, i, l) n += json_array_size(l);
    const char **names = malloc((n ? n : 1) * sizeof *names);
    if (!names) return fm_err_set(err, FM_ERR_NOMEM, "sinfo counts"), -1;
    n = 0;
    json_array_foreach(lists, i, l) json_array_foreach(l, k, v) names[n++] = json_string_value(v);
    qsort(names, n, sizeof *names, by_str);
    *fleet = 0;
    for (i = 0; i < n; i++)
        *fleet += !i || strcmp(names[i], names[i - 1]) != 0;
    free(names);
    return 0;
}

int fm_slurm_sinfo_counts(const char *text, const char *const *parts, size_t n, long *total,
                          long *in_svc, long long *fleet, fm_err *err)
{
    for (size_t i = 0; i < n; i++)
        total[i] = in_svc[i] = 0;
    json_t *lists = fleet ? json_array() : NULL;
    size_t budget = FM_SLURM_SINFO_MAX_NODES;
    int rc = 0;
    for (const char *p = text; p && *p && !rc;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        char *line = strndup(p, len);
        p = nl ? nl + 1 : NULL;
        if (!line) {
            rc = fm_err_set(err, FM_ERR_NOMEM, "sinfo counts");
            break;
        }
        /* partition|state|count|hostlist: none of the first three holds '|' */
        char *f[4] = {line, NULL, NULL, NULL};
        for (int k = 1; k < 4 && f[k - 1]; k++) {
            char *bar = strchr(f[k - 1], '|');
            if (bar) *bar = '\0', f[k] = bar + 1;
        }
        long c = f[2] ? strtol(f[2], NULL, 10) : 0;
        if (f[3] && c > 0 && c <= FM_SLURM_SINFO_MAX_NODES) {
            for (size_t i = 0; i < n; i++) {
                if (!parts[i] || strcmp(f[0], parts[i])) continue;
                total[i] += c;
                if (fm_slurm_sinfo_in_service(f[1])) in_svc[i] += c;
            }
            json_t *names = fleet ? fm_slurm_hostlist_expand(f[3], budget, err) : NULL;
            if (fleet && !names) {
                rc = -1;
            } else if (fleet) {
                /* sinfo's %D counts the names it lists: a difference means
                 * the hostlist was not read as sinfo wrote it */
                if ((long)json_array_size(names) != c)
                    rc = fm_err_set(err, FM_ERR_PARSE,
                                    "sinfo listed %zu nodes for a count of %ld in partition %s",
                                    json_array_size(names), c, f[0]);
                budget -= json_array_size(names) < budget ? json_array_size(names) : budget;
                json_array_append_new(lists, names);
            }
        }
        free(line);
    }
    if (!rc && fleet) rc = count_distinct(lists, fleet, err);
    json_decref(lists);
    return rc ? -1 : 0;
}

bool fm_slurm_sinfo_in_service(const char *state)
{
    static const char *const ok[] = {"idle", "mixed", "allocated", "completing"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        if (!strcmp(state, ok[i])) return true;
    return false;
}

/* A plan may answer capacity from a shared aggregate only between its
 * plan_node and plan_end (and within CLI_FLEET_REUSE_S of plan_node, should
 * plan_end be missed): every other question, the engine's guard and
 * fm_guard_reserve before a node is drained included, reads Slurm. */
static bool planning(const cli_st *s, double now)
{
    return s->planning && now - s->plan_at < CLI_FLEET_REUSE_S;
}

static bool shares(const cli_st *s)
{
    return s->agg_max_age_ms > 0 && s->cluster[0] && s->store && s->store->db;
}

static void drop_counts(cli_st *s)
{
    free(s->counts);
    s->counts = NULL;
    s->counts_shared = false;
}

/* A fresh aggregate read by this process goes to the store for the next
 * plans (a failure is logged: the answer stands without it). */
static void share_counts(cli_st *s)
{
    if (!shares(s) || !s->counts || s->counts_shared || !fm_db_get_autocommit(s->store->db)) return;
    fm_err e = {0};
    if (fm_slurm_aggregate_save(s->store, s->source, s->cluster, s->counts, s->counts_wall_ms, &e))
        fm_log("warning", "sinfo aggregate not shared through the store: %s", e.text);
}

/* Reads the started aggregate into counts (and the store).  Without wait
 * a command still running is left to run (a background refresh), unless
 * past its deadline.  0 when counts hold its answer. */
static int harvest(cli_st *s, bool wait, fm_err *err)
{
    child_run *c = &s->counts_run;
    if (!c->pid) return -1;
    siginfo_t si = {0};
    /* WNOWAIT: collect reaps it and reads its exit status itself */
    if (!wait && now_ms() < c->deadline &&
        (waitid(P_PID, (id_t)c->pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0 || si.si_pid == 0))
        return -1;
    double started = c->started;
    long long wall = c->wall_ms;
    run_out ro;
    if (collect(s, s->sinfo, c, &ro, NULL, NULL, err)) return -1;
    if (ro.status != 0) {
        cmd_failed("sinfo", &ro, err);
        free(ro.out);
        return -1;
    }
    drop_counts(s);
    s->counts = ro.out;
    s->counts_at = started;
    s->counts_wall_ms = wall;
    share_counts(s);
    return 0;
}

/* One `sinfo -h -a -o %R|%T|%D|%N` per plan: nodes per partition and
 * state, with their names.  Each sinfo run makes slurmctld pack and sinfo
 * unpack the whole node table (~0.15 s of CPU at 16,384 nodes), so the
 * capacity guardrail's counts and the circuit breaker's fleet count, asked
 * one after the other, share one run when it is younger than reuse_s.  A
 * plan's questions may also be answered by the shared aggregate plan_node
 * loaded (planning() only).  Returns the text (borrowed, in s) or NULL. */
static const char *sinfo_counts_text(cli_st *s, double reuse_s, fm_err *err)
{
    double t0 = mono_s();
    child_run *c = &s->counts_run;
    if (s->counts_shared) {
        if (planning(s, t0)) return s->counts;
        drop_counts(s);
    }
    /* A background refresh is a read like any other, aged from its start. */
    if (c->pid && c->bg) harvest(s, true, NULL);
    /* The run a plan started beside its node read (cli_plan_node) is this
     * plan's capacity question: it answers within the fleet count's window
     * of its start, however long the guardrails before took. */
    if (c->pid && planning(s, t0) && t0 - c->started < CLI_FLEET_REUSE_S) {
        if (reuse_s < CLI_FLEET_REUSE_S) reuse_s = CLI_FLEET_REUSE_S;
    } else if (s->counts && t0 - s->counts_at < reuse_s) {
        return s->counts;
    }
    drop_counts(s);
    char *argv[] = {s->sinfo, "-h", "-a", "-o", FM_SLURM_SINFO_COUNTS_FORMAT, NULL};
    if (!c->pid && spawn(s, argv, c, err)) return NULL;
    if (harvest(s, true, err)) return NULL;
    if (t0 - s->counts_at >= reuse_s)
        return sinfo_counts_text(s, reuse_s, err); /* too old: again */
    return s->counts;
}

static int cli_partition_capacity(void *st, const char *const *parts, size_t n, long *total,
                                  long *in_svc, fm_err *err)
{
    cli_st *s = st;
    if (!n || n > FM_SLURM_MAX_PARTS)
        return fm_err_set(err, FM_ERR_INVALID, "1 to %d partitions", FM_SLURM_MAX_PARTS), -1;
    for (size_t i = 0; i < n; i++)
        if (!parts[i] || !*parts[i] || strlen(parts[i]) > 64 || strpbrk(parts[i], ",|\n"))
            return fm_err_set(err, FM_ERR_INVALID, "not a partition name"), -1;
    const char *text = sinfo_counts_text(s, CLI_REUSE_S, err);
    if (!text) return -1;
    return fm_slurm_sinfo_counts(text, parts, n, total, in_svc, NULL, err);
}

/* The breaker's fleet: the distinct nodes of sinfo's aggregate (the run
 * the capacity guardrail has just made), not a whole `sinfo --json`.  sinfo
 * shows only nodes in some partition, so a node in none is not counted
 * (README, "What does not work yet"); lists that cannot be read (over
 * 64 KiB, say) are counted from the listing as before. */
static int cli_node_count(void *st, long long *count, fm_err *err)
{
    cli_st *s = st;
    const char *text = sinfo_counts_text(s, CLI_FLEET_REUSE_S, err);
    if (!text) return -1;
    fm_err ce = {0};
    if (fm_slurm_sinfo_counts(text, NULL, 0, NULL, NULL, count, &ce) == 0) return 0;
    *count = 0;
    return cli_nodes_each(s, NULL, fm_slurm_count_node, count, err);
}

/* A plan's node (boot_time null): sinfo -n NAME makes slurmctld pack
 * that node alone, where scontrol show node packs all of them (~0.5 s of
 * the plan at 16,384 nodes, measured in bench/fleet.py); the same fields
 * otherwise.  Beside it the sinfo aggregate the plan's capacity guardrail
 * and breaker ask next is started, so both Slurm reads overlap; a node
 * sinfo does not list (in no partition, unknown) is asked of scontrol. */
static json_t *cli_plan_node(void *st, const char *name, fm_err *err)
{
    cli_st *s = st;
    if (!fm_slurm_valid_node_name(name) || strpbrk(name, ",[]")) {
        fm_err_set(err, FM_ERR_INVALID, "not a node name");
        return NULL;
    }
    /* An earlier plan's run never asked for, or a refresh: read into
     * the store when it has ended (a refresh still running is left). */
    if (s->counts_run.pid) harvest(s, !s->counts_run.bg, NULL);
    drop_run(s, &s->jobs_run); /* an earlier plan's, never asked */
    s->planning = true;
    s->plan_at = mono_s();
    if (s->counts_shared) drop_counts(s);
    char *agg[] = {s->sinfo, "-h", "-a", "-o", FM_SLURM_SINFO_COUNTS_FORMAT, NULL};
    fm_err ignore = {0}; /* not started: the capacity question runs it itself */
    char *text = NULL;
    long long read_ms = 0, now = fm_now_ms();
    int got = 1;
    if (shares(s)) {
        fm_err le = {0};
        got = fm_slurm_aggregate_load(s->store, s->source, s->cluster, now, s->agg_max_age_ms,
                                      &text, &read_ms, &le);
        if (got < 0) fm_log("warning", "%s: sinfo is read instead", le.text);
    }
    if (got == 0) {
        /* A recent read shared by another plan answers this plan's
         * capacity; past half its allowed age, a refresh starts beside
         * (read at the next plan or at close) so the next plan finds a
         * younger one without waiting for it. */
        drop_counts(s);
        s->counts = text;
        s->counts_shared = true;
        s->counts_wall_ms = read_ms;
        if (!s->counts_run.pid && now - read_ms >= s->agg_max_age_ms / 2 &&
            spawn(s, agg, &s->counts_run, &ignore) == 0)
            s->counts_run.bg = true;
    } else if (!s->counts_run.pid) {
        /* Always: an earlier plan's counts under 250 ms old now would be
         * older by the time capacity asks, and run again one after the other. */
        spawn(s, agg, &s->counts_run, &ignore);
    } else {
        s->counts_run.bg = false; /* a refresh in flight: this plan's read now */
    }
    /* The plan asks the node's jobs next (preconditions, running_jobs):
     * squeue runs beside the node read too. */
    char *jq[] = {s->squeue, "--json", NULL};
    spawn(s, jq, &s->jobs_run, &ignore);
    char nm[256];
    snprintf(nm, sizeof nm, "%s", name);
    char *argv[] = {s->sinfo, "-h", "-N", "-n", nm, "-O", FM_SLURM_SINFO_NODE_FORMAT, NULL};
    run_out ro;
    if (run(s, argv, &ro, err)) return NULL;
    json_t *n = NULL;
    fm_err perr = {0};
    if (ro.status != 0)
        cmd_failed(s->sinfo, &ro, err);
    else if (!(n = fm_slurm_norm_sinfo_node(ro.out, name, s->dom, &perr)) &&
             perr.code == FM_ERR_NOT_FOUND)
        n = cli_node(s, name, err);
    else if (!n && err)
        *err = perr;
    free(ro.out);
    return n;
}

/* The plan's reads are over: nothing after this answers from a shared
 * aggregate. */
static void cli_plan_end(void *st)
{
    cli_st *s = st;
    s->planning = false;
    drop_run(s, &s->jobs_run);
    if (s->counts_shared) drop_counts(s);
    if (s->counts_run.pid && s->counts_run.bg) harvest(s, false, NULL);
}

/* When the plan's capacity answer was read: 1 from the shared aggregate
 * (another process's read, or this one's earlier), 0 by this plan; -1 none. */
static int cli_counts_as_of(void *st, long long *read_ms)
{
    cli_st *s = st;
    if (!s->counts) return -1;
    *read_ms = s->counts_wall_ms;
    return s->counts_shared ? 1 : 0;
}

static void cluster_of(cli_st *s, const char *c);

/* Only the CLI backend's own state is attached (the REST backend's
 * fallback to sinfo is not), so only it looks for its cluster's name. */
static void cli_attach_store(void *st, struct fm_store *store)
{
    cli_st *s = st;
    s->store = store;
    if (s->agg_max_age_ms > 0 && store && !s->cluster[0]) cluster_of(s, s->sec_cluster);
}

static void cli_close(void *st)
{
    cli_st *s = st;
    if (!s) return;
    drop_run(s, &s->jobs_run);
    child_run *c = &s->counts_run;
    if (c->pid) {
        /* A plan's run never asked for is stopped (read if it had ended).
         * A refresh is for the next process: read and shared if it ends
         * within the grace, else stopped and reaped at the grace's end. */
        long long by = now_ms() + CLI_CLOSE_GRACE_MS;
        if (!c->bg)
            stop_child(c->pid);
        else if (c->deadline > by)
            c->deadline = by;
        harvest(s, true, NULL);
    }
    fm_slurm_domains_free(s->dom);
    free(s->counts);
    free(s);
}

/* The cluster the shared aggregate belongs to: slurm.cluster, else the
 * ClusterName line of the slurm.conf sinfo reads (slurm.cli.slurm_conf,
 * $SLURM_CONF, /etc/slurm/slurm.conf; its first 1 MiB).  Unknown: not
 * shared, since only the name tells two clusters apart. */
static void cluster_of(cli_st *s, const char *c)
{
    char name[129] = "";
    if (c && strlen(c) < sizeof name) snprintf(name, sizeof name, "%s", c);
    const char *conf = *s->slurm_conf ? s->slurm_conf : getenv("SLURM_CONF");
    if (!conf || !*conf) conf = "/etc/slurm/slurm.conf";
    FILE *f = !name[0] ? fopen(conf, "re") : NULL;
    char line[512];
    size_t seen = 0;
    while (f && seen < (1u << 20) && fgets(line, sizeof line, f)) {
        seen += strlen(line);
        char *v = line + strspn(line, " \t");
        if (strncasecmp(v, "ClusterName=", 12)) continue;
        v += 12;
        v[strcspn(v, " \t\r\n#")] = '\0';
        if (*v && strlen(v) < sizeof name) snprintf(name, sizeof name, "%s", v);
        break;
    }
    if (f) fclose(f);
    if (!name[0]) {
        fm_log("warning",
               "no slurm.cluster and no ClusterName in %s: the sinfo aggregate is not"
               " shared through the store (every plan reads it); set slurm.cluster",
               conf);
        return;
    }
    snprintf(s->cluster, sizeof s->cluster, "%s", name);
    char key[1200];
    int n = snprintf(key, sizeof key, "cli\n%s\n%s\n%s", name, s->sinfo, conf);
    fm_sha256_hex(key, n > 0 && (size_t)n < sizeof key ? (size_t)n : 0, s->source);
}

static int set_prog(char *dst, size_t len, const json_t *cli, const char *key, fm_err *err)
{
    const char *v = json_string_value(json_object_get(cli, key));
    if (!v) v = key;
    if (!*v || strlen(v) >= len)
        return fm_err_set(err, FM_ERR_INVALID,
                          "slurm.cli.%s must be a program name "
                          "or path",
                          key),
               -1;
    snprintf(dst, len, "%s", v);
    return 0;
}

int fm_slurm_cli_open_state(const json_t *sec, fm_slurm_domains *dom, void **out, fm_err *err)
{
    const json_t *cli = json_object_get(sec, "cli");
    cli_st *s = calloc(1, sizeof *s);
    if (!s) return fm_err_set(err, FM_ERR_NOMEM, "slurm cli"), -1;
    if (set_prog(s->sinfo, sizeof s->sinfo, cli, "sinfo", err) ||
        set_prog(s->squeue, sizeof s->squeue, cli, "squeue", err) ||
        set_prog(s->scontrol, sizeof s->scontrol, cli, "scontrol", err) ||
        set_prog(s->scancel, sizeof s->scancel, cli, "scancel", err)) {
        free(s);
        return -1;
    }
    const char *conf = json_string_value(json_object_get(cli, "slurm_conf"));
    if (conf) snprintf(s->slurm_conf, sizeof s->slurm_conf, "%s", conf);
    json_int_t to = json_integer_value(json_object_get(sec, "timeout_ms"));
    s->timeout_ms = to > 0 ? (long)to : 5000;
    json_int_t mb = json_integer_value(json_object_get(sec, "max_response_bytes"));
    s->max_bytes = mb > 0 ? (size_t)mb : DEFAULT_MAX_BYTES;
    json_int_t age = json_integer_value(json_object_get(cli, "aggregate_max_age_s"));
    s->agg_max_age_ms = json_object_get(cli, "aggregate_max_age_s") ? (long long)age * 1000
                                                                    : CLI_AGGREGATE_MAX_AGE_MS;
    const char *cl = json_string_value(json_object_get(sec, "cluster"));
    if (cl && strlen(cl) < sizeof s->sec_cluster)
        snprintf(s->sec_cluster, sizeof s->sec_cluster, "%s", cl);
    s->dom = dom;
    *out = s;
    return 0;
}

const struct fm_slurm_ops fm_slurm_cli_ops = {
    .name = "cli",
    .nodes = cli_nodes,
    .nodes_each = cli_nodes_each,
    .node = cli_node,
    .plan_node = cli_plan_node,
    .jobs = cli_jobs,
    .update_node = cli_update_node,
    .requeue_job = cli_requeue_job,
    .cancel_job = cli_cancel_job,
    .partition_capacity = cli_partition_capacity,
    .node_count = cli_node_count,
    .plan_end = cli_plan_end,
    .counts_as_of = cli_counts_as_of,
    .attach_store = cli_attach_store,
    .close = cli_close,
};
