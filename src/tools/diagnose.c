/* diagnose: signals -> ranked fault classes (src/diagnose does the work).
 *
 * Two modes.  With `signals` the caller hands the evidence as collected.
 * With only `node` (and optionally `job_id`), fleetmcp collects bounded
 * evidence itself through whichever backends are configured: the node and
 * its jobs from Slurm, the node's DCGM and node-exporter series from the
 * metrics backend, and kernel Xid lines, dcgmi health and ibstat over the
 * SSH executor's fixed catalog.  The signature catalog is loaded and
 * compiled once, on the first call, and kept on the server context. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fleetmcp/fm_diagnose.h"
#include "fleetmcp/fm_exec.h"
#include "fleetmcp/fm_guardrails.h"
#include "fleetmcp/fm_metrics.h"
#include "fleetmcp/fm_policy.h"
#include "fleetmcp/fm_runbook.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_slurm.h"
#include "fleetmcp/fm_util.h"
#include "fm_tools.gen.h"
#include "diagnose_cluster.h"
#include "read_common.h"

#ifndef FM_SHARE_DIR
#define FM_SHARE_DIR "/usr/local/share/fleetmcp"
#endif

#define MAX_COLLECT_LINES 5000
#define MAX_COLLECT_SERIES 2000

/* The catalog on the context, loaded at first use. */
static const struct fm_diag_db *catalog(fm_ctx *ctx, fm_err *err)
{
    if (ctx->diag) return ctx->diag;
    const json_t *sec = fm_config_section(&ctx->cfg, "diagnose");
    const char *path = fm_cfg_str(sec, "signatures", NULL);
    if (!path) path = getenv("FLEETMCP_SIGNATURES");
    char dflt[PATH_MAX];
    if (!path) {
        /* Beside the runbooks (FLEETMCP_RUNBOOKS, runbooks.dir, else found
         * from the executable), so an install works from any directory. */
        char dir[PATH_MAX - 32];
        snprintf(dflt, sizeof dflt, "%s/signatures.yaml",
                 fm_runbooks_dir(&ctx->cfg, dir, sizeof dir));
        path = dflt;
    }
    struct fm_diag_db *db = NULL;
    if (fm_diag_load(path, &db, err)) return NULL;
    ctx->diag = db;
    return db;
}

static void note(json_t *arr, const char *fmt, const char *a, const fm_err *e)
{
    if (json_array_size(arr) >= 8) return;
    char buf[600];
    snprintf(buf, sizeof buf, fmt, a, e ? fm_strerror(e->code) : "", e ? e->text : "");
    json_array_append_new(arr, json_string(buf));
}

/* Appends up to max lines of text (len bytes, untrusted) to arr. */
static void add_lines(json_t *arr, const char *text, size_t len, size_t max, const char *prefix)
{
    json_t *s = fm_exec_text(text, len, (size_t)MAX_COLLECT_LINES * 200);
    const char *p = json_string_value(s);
    while (p && *p && json_array_size(arr) < max) {
        size_t l = strcspn(p, "\n");
        if (l) {
            char line[8192];
            snprintf(line, sizeof line, "%s%.*s", prefix, (int)(l > 8000 ? 8000 : l), p);
            json_array_append_new(arr, json_string(line));
        }
        p += l;
        if (*p) p++;
    }
    json_decref(s);
}

/* Slurm's view of a job, keeping only the fields diagnose reads (new). */
static json_t *job_fields(const json_t *j)
{
    json_t *o = json_object();
    static const char *const keys[] = {"job_id", "name",      "user",  "state",
                                       "reason", "exit_code", "nodes", "partition"};
    for (int k = 0; k < 8; k++) {
        json_t *v = json_object_get(j, keys[k]);
        if (json_is_string(v) || json_is_integer(v)) json_object_set(o, keys[k], v);
    }
    return o;
}

/* *jobs_out (may be NULL) receives Slurm's job records on the node (new
 * reference, or NULL), for their output files. */
static void collect_slurm(fm_ctx *ctx, const char *node, json_int_t job_id, json_t *sig,
                          json_t *info, size_t max_jobs, json_t **jobs_out)
{
    fm_err e = {0};
    json_t *n = ctx->be.slurm->node(ctx->be.slurm_st, node, &e);
    json_t *slurm = json_object();
    if (n) {
        json_t *st = json_object_get(n, "state");
        if (json_is_array(st) && json_array_size(st) <= 32)
            json_object_set(slurm, "node_state", st);
        if (json_is_string(json_object_get(n, "reason")))
            json_object_set(slurm, "reason", json_object_get(n, "reason"));
        json_decref(n);
    } else {
        note(json_object_get(info, "errors"), "slurm node %s: %s: %s", node, &e);
    }
    fm_err_clear(&e);
    fm_slurm_job_filter f = {.node = node};
    json_t *jobs = ctx->be.slurm->jobs(ctx->be.slurm_st, &f, &e);
    if (jobs) {
        json_t *out = json_array();
        size_t i;
        json_t *j;
        /* the job the caller asked about first, so max_jobs never drops it */
        json_array_foreach(jobs, i, j)
        {
            if (job_id && json_integer_value(json_object_get(j, "job_id")) == job_id)
                json_array_append_new(out, job_fields(j));
        }
        json_array_foreach(jobs, i, j)
        {
            if (json_array_size(out) >= max_jobs) break;
            if (job_id && json_integer_value(json_object_get(j, "job_id")) == job_id) continue;
            json_array_append_new(out, job_fields(j));
        }
        json_object_set_new(slurm, "jobs", out);
        if (jobs_out)
            *jobs_out = jobs;
        else
            json_decref(jobs);
    } else {
        note(json_object_get(info, "errors"), "slurm jobs on %s: %s: %s", node, &e);
    }
    json_object_set_new(sig, "slurm", slurm);
    json_array_append_new(json_object_get(info, "sources"), json_string("slurm"));
}

static char *fmt_key(const char *name, const char *labels)
{
    size_t n = strlen(name) + strlen(labels) + 2;
    char *k = malloc(n);
    if (k) snprintf(k, n, "%s\x1f%s", name, labels);
    return k;
}

/* A metrics answer's numeric samples (borrowed answer, may be NULL) as
 * diagnose signals appended to out, up to max in all.  With only (an
 * object, may be NULL), a sample is kept only if its series is a key
 * there; with keys (may be NULL), each kept series' key is added. */
static void add_samples(json_t *out, const json_t *ans, size_t max, const json_t *only,
                        json_t *keys)
{
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(ans, "series"), i, s)
    {
        if (json_array_size(out) >= max) break;
        json_t *labels = json_object_get(s, "labels");
        const char *name = json_string_value(json_object_get(labels, "__name__"));
        json_t *v = json_object_get(s, "value");
        if (!name || !json_is_number(v)) continue; /* NaN/Inf come as strings */
        json_t *lb = json_object();
        const char *k;
        json_t *lv;
        json_object_foreach(labels, k, lv)
        {
            if (strcmp(k, "__name__") != 0 && json_is_string(lv) && json_object_size(lb) < 32)
                json_object_set(lb, k, lv);
        }
        char *lt = json_dumps(lb, JSON_COMPACT | JSON_SORT_KEYS);
        char *key = lt ? fmt_key(name, lt) : NULL;
        free(lt);
        if (!key || (only && !json_object_get(only, key))) {
            free(key);
            json_decref(lb);
            continue;
        }
        if (keys) json_object_set_new(keys, key, json_true());
        free(key);
        json_array_append_new(out,
                              json_pack("{s:s, s:o, s:O}", "name", name, "labels", lb, "value", v));
    }
}

static void collect_metrics(fm_ctx *ctx, const char *node, json_t *sig, json_t *info)
{
    const json_t *gh = json_object_get(fm_config_section(&ctx->cfg, "metrics"), "gpu_health");
    const char *hl = json_string_value(json_object_get(gh, "host_label"));
    /* node names are validated by the input schema: safe in a matcher.
     * Unless configured, both spellings of dcgm-exporter's host label
     * (Hostname, renamed hostname in May 2026) select the node. */
    char dcgm[300], q[1400], re[256];
    fm_read_dcgm_selector(dcgm, sizeof dcgm, "DCGM_FI_.*", hl, node, "");
    /* The instance matcher is a regex: a '.' of the name is escaped, or
     * "gpu.a01" would also select gpu-a01 and gpuxa01. */
    fm_read_regex_literal(re, sizeof re, node);
    snprintf(q, sizeof q,
             "%s or "
             "{__name__=~\"up|node_infiniband_(physical_)?state_id|"
             "node_network_carrier_changes_total|node_filesystem_avail_bytes\",instance=~\"%s(:[0-"
             "9]+)?\"}",
             dcgm, re);
    fm_err e = {0};
    json_t *ans = ctx->be.metrics->query_instant(ctx->be.metrics_st, q, 0, &e);
    if (!ans) {
        note(json_object_get(info, "errors"), "metrics for %s: %s: %s", node, &e);
        return;
    }
    /* The DCGM counters one window ago too, as earlier samples of the
     * same series: the "rising" signatures judge growth, and one sample
     * gives none.  Without that history they simply do not fire. */
    char window[16];
    fm_read_counter_window(&ctx->cfg, window);
    char off[32];
    snprintf(off, sizeof off, " offset %s", window);
    fm_read_dcgm_selector(q, sizeof q, "DCGM_FI_DEV_.*(_TOTAL|_COUNTER)", hl, node, off);
    fm_err pe = {0};
    json_t *past = ctx->be.metrics->query_instant(ctx->be.metrics_st, q, 0, &pe);
    if (!past) note(json_object_get(info, "errors"), "metrics history for %s: %s: %s", node, &pe);
    /* Older samples first (the engine compares a series' first and last),
     * and only of series still there: a GPU gone from the answer must not
     * be judged by what it said an hour ago. */
    json_t *now = json_array(), *keys = json_object(), *out = json_array();
    add_samples(now, ans, MAX_COLLECT_SERIES, NULL, keys);
    add_samples(out, past, MAX_COLLECT_SERIES / 4, keys, NULL);
    json_array_extend(out, now);
    json_decref(now);
    json_decref(keys);
    json_decref(past);
    json_decref(ans);
    json_object_set_new(sig, "metrics", out);
    json_array_append_new(json_object_get(info, "sources"), json_string("metrics"));
}

/* The lines of `nvidia-smi -q` the signatures read (row remapping,
 * clock-event reasons, retired pages, ECC totals, PCIe link), each with
 * its GPU and section so a bare "Pending : Yes" keeps its meaning. */
static void nvsmi_sections(json_t *events, const char *out, size_t len)
{
    static const char *const keep[] = {
        "Pending",    "Remapping Failure", "Slowdown", "Power Brake",  "Thermal",
        "Double Bit", "Uncorrectable",     "Retired",  "Link Width",   "Current",
        "Single Bit", "Replays",           "Fallen",   "Unknown Error"};
    static const char *const sections[] = {
        "Remapped Rows", "Clocks Event Reasons", "Clocks Throttle Reasons",
        "ECC Errors",    "Retired Pages",        "PCI",
        "Link Width"};
    json_t *s = fm_exec_text(out, len, (size_t)MAX_COLLECT_LINES * 200);
    const char *p = json_string_value(s);
    char gpu[64] = "", sect[64] = "";
    while (p && *p && json_array_size(events) < 600) {
        size_t l = strcspn(p, "\n");
        const char *t = p;
        while (t < p + l && *t == ' ')
            t++;
        size_t tl = (size_t)(p + l - t);
        if (strncmp(p, "GPU ", 4) == 0 && l < sizeof gpu)
            snprintf(gpu, sizeof gpu, "%.*s", (int)l, p);
        for (size_t i = 0; i < sizeof sections / sizeof *sections; i++)
            if (tl == strlen(sections[i]) && strncmp(t, sections[i], tl) == 0)
                snprintf(sect, sizeof sect, "%s", sections[i]);
        bool want = false;
        for (size_t i = 0; i < sizeof keep / sizeof *keep && !want; i++)
            want = memmem(t, tl, keep[i], strlen(keep[i])) != NULL && memchr(t, ':', tl);
        if (want) {
            char line[400];
            snprintf(line, sizeof line, "nvidia-smi -q: %s: %s: %.*s", gpu, sect,
                     (int)(tl > 300 ? 300 : tl), t);
            json_array_append_new(events, json_string(line));
        }
        p += l;
        if (*p) p++;
    }
    json_decref(s);
}

static void collect_exec(fm_ctx *ctx, const char *node, json_t *sig, json_t *info, size_t kmax)
{
    fm_cmd_args a;
    fm_cmd_args_init(&a);
    json_t *klog = json_array(), *events = json_array();
    static const struct {
        fm_cmd_id cmd;
        const char *label;
    } cmds[] = {{FM_CMD_KERNEL_LOG, NULL},
                {FM_CMD_DCGMI_HEALTH, "dcgmi health: "},
                {FM_CMD_IBSTAT, ""},
                {FM_CMD_NVSMI_QUERY, "nvidia-smi -q: "}};
    bool any = false;
    for (size_t c = 0; c < sizeof cmds / sizeof cmds[0]; c++) {
        fm_exec_result r;
        memset(&r, 0, sizeof r);
        fm_err e = {0};
        if (ctx->be.exec->run(ctx->be.exec_st, node, cmds[c].cmd, &a, &r, &e)) {
            note(json_object_get(info, "errors"), "ssh %s: %s: %s", fm_cmd_name((int)cmds[c].cmd),
                 &e);
            continue;
        }
        any = true;
        if (cmds[c].cmd == FM_CMD_KERNEL_LOG) {
            /* keep the most recent lines: skip the head of a long answer */
            json_t *all = json_array();
            add_lines(all, r.out, r.out_len, MAX_COLLECT_LINES, "");
            size_t n = json_array_size(all);
            for (size_t i = n > kmax ? n - kmax : 0; i < n; i++)
                json_array_append(klog, json_array_get(all, i));
            json_decref(all);
        } else if (cmds[c].cmd == FM_CMD_DCGMI_HEALTH) {
            json_t *h = fm_parse_dcgmi_health(r.out, r.out_len);
            size_t i;
            json_t *inc;
            /* the overall verdict too: "Healthy" is positive evidence, and
             * an empty incident list alone says nothing */
            const char *overall = json_string_value(json_object_get(h, "overall"));
            if (overall) {
                char line[120];
                snprintf(line, sizeof line, "dcgmi health -c -g 0: Overall Health: %s", overall);
                json_array_append_new(events, json_string(line));
            }
            json_array_foreach(json_object_get(h, "incidents"), i, inc)
            {
                char line[1200];
                snprintf(line, sizeof line, "dcgmi health -c -g 0: GPU %s: %s: %s: %s",
                         json_string_value(json_object_get(inc, "gpu"))
                             ? json_string_value(json_object_get(inc, "gpu"))
                             : "?",
                         json_string_value(json_object_get(inc, "system"))
                             ? json_string_value(json_object_get(inc, "system"))
                             : "",
                         json_string_value(json_object_get(inc, "health"))
                             ? json_string_value(json_object_get(inc, "health"))
                             : "",
                         json_string_value(json_object_get(inc, "message"))
                             ? json_string_value(json_object_get(inc, "message"))
                             : "");
                if (json_array_size(events) < 200) json_array_append_new(events, json_string(line));
            }
            json_decref(h);
        } else if (cmds[c].cmd == FM_CMD_NVSMI_QUERY) {
            nvsmi_sections(events, r.out, r.out_len);
        } else {
            add_lines(events, r.out, r.out_len, 400, cmds[c].label);
        }
        fm_exec_result_free(&r);
    }
    json_object_set_new(sig, "kernel_log", klog);
    json_object_set_new(sig, "events", events);
    if (any) json_array_append_new(json_object_get(info, "sources"), json_string("ssh"));
}

/* ---- the output logs of the last jobs on the node ------------------------ */

#define MAX_JOB_LOGS 3        /* newest jobs whose output files are read */
#define MAX_JOB_LOG_LINES 400 /* per file, the newest */

/* Expands Slurm's filename pattern (sbatch -o) for job j into out: %j %J
 * %A %a %u %x %N %n %t %s %%, each with an optional zero-pad width.
 * False for anything else (a pattern it cannot know, or too long). */
static bool expand_out_path(const json_t *j, const char *pat, char *out, size_t n)
{
    char b[64];
    size_t o = 0;
    for (const char *p = pat; *p; p++) {
        const char *rep = b;
        if (*p != '%') {
            if (o + 1 >= n) return false;
            out[o++] = *p;
            continue;
        }
        p++;
        int width = 0;
        while (*p >= '0' && *p <= '9' && width < 10)
            width = width * 10 + (*p++ - '0');
        if (width > 10) return false;
        long long num = -1;
        switch (*p) {
        case '%':
            rep = "%";
            break;
        case 'j':
        case 'J':
            num = json_integer_value(json_object_get(j, "job_id"));
            break;
        case 'A':
            num = json_object_get(j, "array_job_id")
                      ? json_integer_value(json_object_get(j, "array_job_id"))
                      : json_integer_value(json_object_get(j, "job_id"));
            break;
        case 'a':
            num = json_object_get(j, "array_task_id")
                      ? json_integer_value(json_object_get(j, "array_task_id"))
                      : 4294967294LL; /* what Slurm writes for a non-array job */
            break;
        case 'n':
        case 't':
            num = 0;
            break;
        case 's':
            rep = "batch";
            break;
        case 'u':
        case 'x':
        case 'N': {
            const char *k = *p == 'u' ? "user" : *p == 'x' ? "name" : "batch_host";
            rep = json_string_value(json_object_get(j, k));
            if (!rep) return false;
            break;
        }
        default:
            return false;
        }
        if (num >= 0) snprintf(b, sizeof b, "%0*lld", width, num);
        size_t l = strlen(rep);
        if (o + l >= n) return false;
        memcpy(out + o, rep, l);
        o += l;
    }
    out[o] = '\0';
    return true;
}

/* The file behind one of a job's output patterns: "" is Slurm's default
 * (slurm-%j.out, slurm-%A_%a.out for an array task) and a relative pattern
 * is under the job's working directory. */
static bool job_out_file(const json_t *j, const char *pat, char *out, size_t n)
{
    const char *wd = json_string_value(json_object_get(j, "work_dir"));
    char full[512];
    if (!*pat) pat = json_object_get(j, "array_task_id") ? "slurm-%A_%a.out" : "slurm-%j.out";
    if (pat[0] == '/')
        snprintf(full, sizeof full, "%s", pat);
    else if (wd && wd[0] == '/')
        snprintf(full, sizeof full, "%s/%s", wd, pat);
    else
        return false;
    return strlen(full) < sizeof full - 1 && expand_out_path(j, full, out, n) &&
           fm_exec_valid_log_path(out);
}

static int cmp_job_desc(const void *a, const void *b)
{
    json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "job_id"));
    json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "job_id"));
    return x < y ? 1 : x > y ? -1 : 0;
}

/* What the node says a job's output path is (stat without following a
 * symbolic link). */
typedef struct job_file {
    char owner[64], type[32], ident[48];
} job_file;

static int stat_job_file(fm_ctx *ctx, const char *host, const char *path, job_file *f, fm_err *e)
{
    fm_cmd_args a;
    fm_cmd_args_init(&a);
    snprintf(a.path, sizeof a.path, "%s", path);
    fm_exec_result r;
    memset(&r, 0, sizeof r);
    if (ctx->be.exec->run(ctx->be.exec_st, host, FM_CMD_JOB_LOG_STAT, &a, &r, e)) {
        fm_exec_result_free(&r);
        return -1;
    }
    char line[200] = "";
    snprintf(line, sizeof line, "%.*s", (int)(r.out_len < 199 ? r.out_len : 199),
             r.out ? r.out : "");
    line[strcspn(line, "\n")] = '\0';
    long long size = -1;
    int n = sscanf(line, "%63[^|]|%31[^|]|%lld|%47s", f->owner, f->type, &size, f->ident);
    int rc = 0;
    if (r.exit_status != 0)
        rc = fm_err_set(e, FM_ERR_NOT_FOUND, "not on %s (stat exit %d)", host, r.exit_status);
    else if (n != 4 || size < 0)
        rc = fm_err_set(e, FM_ERR_PARSE, "stat on %s answered '%.60s', not owner|type|size|id",
                        host, line);
    fm_exec_result_free(&r);
    return rc ? -1 : 0;
}

/* Reads the tail of a job's output file into *r, over ssh as the ssh
 * user, only if it is a regular file (not a symbolic link) of the job's
 * own user: the job's owner chose the path, and must not get another
 * user's file (or the node's) read for them.  The read is one command that
 * opens the path once and reads only if that descriptor is the very file
 * the stat showed (owner, device, inode), so a path swapped after the
 * stat is not read.  Bounded by the catalog's tail -c.  -1 with e saying
 * why not (then nothing is in r). */
static int read_job_file(fm_ctx *ctx, const char *host, const char *user, const char *path,
                         fm_exec_result *r, fm_err *e)
{
    memset(r, 0, sizeof *r);
    if (!user || !*user)
        return fm_err_set(e, FM_ERR_INVALID,
                          "not read: the job record names no user, so the file's owner cannot be"
                          " checked"),
               -1;
    job_file before;
    if (stat_job_file(ctx, host, path, &before, e)) return -1;
    if (strcmp(before.type, "regular file") && strcmp(before.type, "regular empty file"))
        return fm_err_set(e, FM_ERR_DENIED,
                          "not read: a %s, not a regular file (links are not followed)",
                          before.type),
               -1;
    if (strcmp(before.owner, user))
        return fm_err_set(e, FM_ERR_DENIED,
                          "not read: owned by %s, not by the job's user %s (a job names its own"
                          " output path, so only its user's own files are read)",
                          before.owner, user),
               -1;
    /* nothing to read, and the read refuses a file it finds empty (66) */
    if (!strcmp(before.type, "regular empty file")) return 0;
    fm_cmd_args a;
    fm_cmd_args_init(&a);
    snprintf(a.path, sizeof a.path, "%s", path);
    snprintf(a.file, sizeof a.file, "%s:%s", user, before.ident);
    if (ctx->be.exec->run(ctx->be.exec_st, host, FM_CMD_JOB_LOG_TAIL, &a, r, e)) {
        fm_exec_result_free(r);
        return -1;
    }
    int rc = 0;
    if (r->exit_status == 67 || r->exit_status == 68)
        rc = fm_err_set(e, FM_ERR_CONFLICT,
                        "not read: the path named another file when it was opened than its stat"
                        " (%s %s %s) showed",
                        before.owner, before.type, before.ident);
    else if (r->exit_status == 66)
        rc = fm_err_set(e, FM_ERR_CONFLICT,
                        "not read: the path did not open as a file with something in it (gone,"
                        " a link, a FIFO, or emptied since its stat)");
    else if (r->exit_status != 0)
        rc = fm_err_set(e, FM_ERR_NOT_FOUND, "not readable on %s (exit %d)", host, r->exit_status);
    if (rc) fm_exec_result_free(r);
    return rc ? -1 : 0;
}

/* Reads the tail of the output (and error, when separate) file of the
 * newest MAX_JOB_LOGS jobs on the node, the asked job first, over the
 * executor's catalog entry (validated path, argv, never a shell string),
 * on the job's batch host where its file is.  Their lines go to job_log. */
static void collect_job_logs(fm_ctx *ctx, const char *node, json_int_t job_id, const json_t *jobs,
                             json_t *sig, json_t *info)
{
    size_t nj = json_array_size(jobs);
    if (!nj) return;
    json_t **order = calloc(nj, sizeof *order);
    if (!order) return;
    size_t k = 0, i;
    json_t *j;
    json_array_foreach(jobs, i, j)
    {
        /* a pending job has written nothing yet */
        const char *st = json_string_value(json_object_get(j, "state"));
        bool pending = st && strncmp(st, "PENDING", 7) == 0;
        if (json_is_string(json_object_get(j, "std_out")) && !pending) order[k++] = j;
    }
    qsort(order, k, sizeof *order, cmp_job_desc);
    for (i = 0; job_id && i < k; i++)
        if (json_integer_value(json_object_get(order[i], "job_id")) == job_id) {
            json_t *t = order[i];
            memmove(order + 1, order, i * sizeof *order);
            order[0] = t;
            break;
        }
    if (k == 0 && json_array_size(json_object_get(info, "errors")) < 8)
        note(json_object_get(info, "errors"),
             "job logs on %s: the Slurm answer names no output files (slurmrestd before "
             "v0.0.39 omits them; the cli backend has them)%s%s",
             node, NULL);
    json_t *jlog = json_object_get(sig, "job_log");
    if (!jlog) {
        jlog = json_array();
        json_object_set_new(sig, "job_log", jlog);
    }
    int read = 0;
    for (i = 0; i < k && i < MAX_JOB_LOGS; i++) {
        const json_t *jb = order[i];
        const char *host = json_string_value(json_object_get(jb, "batch_host"));
        if (!host || !fm_exec_valid_node(host)) host = node;
        char paths[2][256];
        int np = 0;
        if (job_out_file(jb, json_string_value(json_object_get(jb, "std_out")), paths[0],
                         sizeof paths[0]))
            np++;
        const char *se = json_string_value(json_object_get(jb, "std_err"));
        if (se && *se && job_out_file(jb, se, paths[np], sizeof paths[np]) &&
            (np == 0 || strcmp(paths[0], paths[np]) != 0))
            np++;
        for (int p = 0; p < np; p++) {
            fm_exec_result r;
            fm_err e = {0};
            char what[320];
            snprintf(what, sizeof what, "job %lld output %s",
                     (long long)json_integer_value(json_object_get(jb, "job_id")), paths[p]);
            if (read_job_file(ctx, host, json_string_value(json_object_get(jb, "user")), paths[p],
                              &r, &e)) {
                note(json_object_get(info, "errors"), "%.300s: %s: %.200s", what, &e);
                continue;
            }
            /* a cut first line is a fragment: start at the next one */
            const char *t = r.out;
            size_t tl = r.out_len;
            if (tl >= 65536) {
                const char *nl = memchr(t, '\n', tl);
                tl = nl ? tl - (size_t)(nl + 1 - t) : 0;
                t = nl ? nl + 1 : t;
            }
            json_t *all = json_array();
            add_lines(all, t, tl, MAX_COLLECT_LINES, "");
            size_t n = json_array_size(all);
            for (size_t q = n > MAX_JOB_LOG_LINES ? n - MAX_JOB_LOG_LINES : 0;
                 q < n && json_array_size(jlog) < MAX_COLLECT_LINES; q++)
                json_array_append(jlog, json_array_get(all, q));
            json_decref(all);
            fm_exec_result_free(&r);
            read++;
        }
    }
    free(order);
    if (read) json_array_append_new(json_object_get(info, "sources"), json_string("job_logs"));
}

/* Node mode: builds signals (new) from the configured backends. */
static json_t *collect(fm_ctx *ctx, const char *node, json_int_t job_id, json_t *info, fm_err *err)
{
    if (!ctx->be.slurm && !ctx->be.metrics && !ctx->be.exec) {
        fm_err_set(err, FM_ERR_NOT_CONFIGURED,
                   "node mode collects through the slurm, metrics and ssh backends and none is "
                   "configured: add those config sections, or pass signals instead");
        return NULL;
    }
    const json_t *sec = fm_config_section(&ctx->cfg, "diagnose");
    size_t kmax = (size_t)fm_cfg_int(sec, "kernel_lines", 400);
    size_t max_jobs = (size_t)fm_cfg_int(sec, "max_jobs", 200);
    json_t *sig = json_pack("{s:s}", "node", node);
    json_t *missing = json_object_get(info, "missing");
    json_t *jobs = NULL;
    if (ctx->be.slurm)
        collect_slurm(ctx, node, job_id, sig, info, max_jobs, &jobs);
    else
        json_array_append_new(missing, json_string("slurm"));
    if (ctx->be.metrics)
        collect_metrics(ctx, node, sig, info);
    else
        json_array_append_new(missing, json_string("metrics"));
    if (ctx->be.exec) {
        collect_exec(ctx, node, sig, info, kmax);
        collect_job_logs(ctx, node, job_id, jobs, sig, info);
    } else {
        json_array_append_new(missing, json_string("ssh"));
    }
    json_decref(jobs);
    if (json_array_size(json_object_get(info, "sources")) == 0) {
        json_t *e0 = json_array_get(json_object_get(info, "errors"), 0);
        fm_err_set(err, FM_ERR_UNAVAILABLE, "no evidence collected for %s: %s", node,
                   e0 ? json_string_value(e0) : "every backend failed");
        json_decref(sig);
        return NULL;
    }
    return sig;
}

/* Records res's top answer as node's latest diagnosis (the gate's basis for
 * a canary repair without a human), and moves a healthy node to suspect
 * when the top class is named (report) but not acted on (act), or a
 * suspect one back to healthy when it reads healthy.  A failure is logged,
 * not returned: the answer stands, and without a record the gate asks a
 * human. */
static void remember(fm_ctx *ctx, const struct fm_diag_db *db, const char *node, const json_t *res,
                     const char *source, bool collected_act)
{
    const json_t *top = json_object_get(res, "top");
    double report = 0, act = 0;
    fm_diag_thresholds(db, &report, &act);
    fm_diagnosis d = {.confidence = json_number_value(json_object_get(top, "confidence")),
                      .act_threshold = act,
                      .act = json_is_true(json_object_get(top, "act")),
                      .collected_act = collected_act};
    snprintf(d.fault_class, sizeof d.fault_class, "%s", fm_json_str(top, "fault_class", "?"));
    snprintf(d.source, sizeof d.source, "%s", source);
    fm_err err = {0};
    if (fm_diagnosis_record(ctx, node, &d, NULL, &err)) {
        fm_log("error", "diagnose %s: %s", node, err.text);
        return;
    }
    char st[32];
    fm_node_state_get(ctx, node, st, sizeof st);
    bool healthy = !strcmp(d.fault_class, "healthy");
    bool named = !healthy && strcmp(d.fault_class, "inconclusive") && d.confidence >= report &&
                 d.confidence < act;
    const char *to = NULL;
    if (named && (!strcmp(st, "healthy") || !strcmp(st, "returned")))
        to = "suspect";
    else if (healthy && !strcmp(st, "suspect"))
        to = "healthy";
    if (to && fm_node_state_set(ctx, node, to, NULL, &err))
        fm_log("error", "diagnose %s: moving it to %s: %s", node, to, err.text);
}

/* Returns a new object (see schemas/tools/diagnose.json). */
json_t *fm_tool_diagnose(fm_call *call, fm_err *err)
{
    fm_ctx *ctx = call->ctx;
    const struct fm_diag_db *db = catalog(ctx, err);
    if (!db) return NULL;
    const json_t *signals = json_object_get(call->args, "signals");
    const char *node = json_string_value(json_object_get(call->args, "node"));
    const json_t *cluster = json_object_get(call->args, "cluster");
    if (cluster && (signals || node)) {
        fm_err_set(err, FM_ERR_INVALID, "cluster mode takes no node or signals: pass one mode");
        return NULL;
    }
    if (cluster) return fm_diagnose_cluster(call, db, cluster, err);
    if (signals && !node) {
        json_t *res = fm_diag_run(db, signals, NULL, err);
        if (res && node && !json_object_get(res, "node"))
            json_object_set_new(res, "node", json_string(node));
        const char *about = fm_json_str(res, "node", NULL);
        /* The caller's evidence alone: recorded, never acted on unapproved. */
        if (res && about) remember(ctx, db, about, res, "signals", false);
        return res;
    }
    if (!node) {
        fm_err_set(err, FM_ERR_INVALID, "pass signals, or node to collect them");
        return NULL;
    }
    json_t *info = json_pack("{s:[], s:[], s:[]}", "sources", "missing", "errors");
    json_t *sig =
        collect(ctx, node, json_integer_value(json_object_get(call->args, "job_id")), info, err);
    if (!sig) {
        json_decref(info);
        return NULL;
    }
    /* With the caller's signals, the collected evidence is judged alone
     * first: the gate acts unapproved only on a class fleetmcp's own
     * evidence reached act for (fm_diagnosis_basis), whatever was added. */
    json_t *own = NULL;
    if (signals) {
        fm_err oerr = {0};
        own = fm_diag_run(db, sig, NULL, &oerr);
    }
    /* node and signals: what was collected plus what the caller saw that
     * no backend shows (an alert's events and labels, from the alert
     * intake).  Each list stays within the input schema's bound. */
    static const char *const lists[] = {"kernel_log", "job_log", "events", "metrics"};
    for (size_t l = 0; signals && l < sizeof lists / sizeof *lists; l++) {
        const json_t *add = json_object_get(signals, lists[l]);
        if (!json_array_size(add)) continue;
        json_t *have = json_object_get(sig, lists[l]);
        if (!json_is_array(have)) {
            have = json_array();
            json_object_set_new(sig, lists[l], have);
        }
        size_t i;
        const json_t *v;
        json_array_foreach(add, i, v) if (json_array_size(have) < 5000)
            json_array_append(have, (json_t *)v);
    }
    if (signals) json_array_append_new(json_object_get(info, "sources"), json_string("caller"));
    fm_call_progress(call, 1, 2, "evidence collected");
    json_t *res = fm_diag_run(db, sig, NULL, err);
    json_decref(sig);
    if (res) {
        json_object_set_new(res, "collected", info);
        /* Evidence the caller added is said so: the gate shows the source
         * with the plan that leans on it. */
        const json_t *top = json_object_get(res, "top");
        bool collected_act = json_is_true(json_object_get(top, "act"));
        if (signals) {
            const json_t *otop = json_object_get(own, "top");
            collected_act =
                json_is_true(json_object_get(otop, "act")) &&
                !strcmp(fm_json_str(otop, "fault_class", ""), fm_json_str(top, "fault_class", "?"));
        }
        remember(ctx, db, node, res, signals ? "collected+caller" : "collected", collected_act);
    } else {
        json_decref(info);
    }
    json_decref(own);
    return res;
}
