/* Node operations shared by the remediation tools and the workflow
 * engine; a tool is never called directly here (fm_tools_call_internal).  Everything goes through
 * Slurm's own interface (update_node, requeue_job) or the SSH executor's fixed catalog; nothing
 * edits state behind Slurm's back.  All command output is untrusted: parsed with bounds, quoted
 * back clipped. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "fleetmcp/fm_exec.h"
#include "fleetmcp/fm_runbook.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_slurm.h"
#include "fleetmcp/fm_util.h"
#include "fleetmcp/fm_workflow.h"

#define MAX_GPUS 64
#define MAX_TESTS 64

static int need_slurm(fm_ctx *ctx, fm_err *err)
{
    if (ctx->be.slurm) return 0;
    return fm_backend_missing(err, "slurm", "remediation acts through Slurm");
}

static int need_exec(fm_ctx *ctx, fm_err *err)
{
    if (ctx->be.exec) return 0;
    return fm_backend_missing(err, "ssh", "ssh.user, key_file, known_hosts and hosts");
}

static bool has_state(const json_t *node, const char *word)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(node, "state"), i,
                       v) if (json_is_string(v) &&
                              !strcasecmp(json_string_value(v), word)) return true;
    return false;
}

json_t *fm_wf_jobs_on(fm_ctx *ctx, const char *node, fm_err *err)
{
    if (need_slurm(ctx, err)) return NULL;
    fm_slurm_job_filter f = {.node = node};
    json_t *all = ctx->be.slurm->jobs(ctx->be.slurm_st, &f, err);
    if (!all) return NULL;
    static const char *const live[] = {"RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED",
                                       "STOPPED", "SIGNALING",  "RESIZING"};
    json_t *out = json_array();
    size_t i;
    json_t *j;
    json_array_foreach(all, i, j)
    {
        /* Any word of it: Slurm joins flags to the base state, and a
         * COMPLETED+COMPLETING job still holds the node (its epilog). */
        const char *st = fm_json_str(j, "state", "");
        for (size_t k = 0; k < sizeof live / sizeof *live; k++)
            if (fm_slurm_state_has(st, live[k])) {
                json_array_append(out, j);
                break;
            }
    }
    json_decref(all);
    return out;
}

static long long iso_epoch(const char *s)
{
    struct tm tm = {0};
    if (!s || !strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)) return 0;
    return (long long)timegm(&tm);
}

long long fm_wf_node_boot(fm_ctx *ctx, const char *node, char *state, size_t len, char *reason,
                          size_t rlen, fm_err *err)
{
    if (state && len) state[0] = '\0';
    if (reason && rlen) reason[0] = '\0';
    if (need_slurm(ctx, err)) return -1;
    json_t *n = ctx->be.slurm->node(ctx->be.slurm_st, node, err);
    if (!n) return -1;
    if (state) {
        size_t used = 0, i;
        json_t *v;
        json_array_foreach(json_object_get(n, "state"), i, v)
        {
            int w = snprintf(state + used, len - used, "%s%s", i ? "+" : "",
                             json_string_value(v) ? json_string_value(v) : "?");
            if (w < 0 || (size_t)w >= len - used) break;
            used += (size_t)w;
        }
    }
    if (reason) snprintf(reason, rlen, "%s", fm_json_str(n, "reason", ""));
    long long boot = iso_epoch(fm_json_str(n, "boot_time", NULL));
    json_decref(n);
    return boot;
}

int fm_wf_drain(fm_ctx *ctx, const char *node, const char *owner, const char *text, bool *noop,
                fm_err *err)
{
    *noop = false;
    if (need_slurm(ctx, err)) return -1;
    json_t *n = ctx->be.slurm->node(ctx->be.slurm_st, node, err);
    if (!n) return -1;
    char mine[128];
    snprintf(mine, sizeof mine, "%s%s:", FM_SLURM_OWNED_PREFIX, owner);
    const char *reason = fm_json_str(n, "reason", "");
    bool drained = has_state(n, "DRAIN") || has_state(n, "DRAINED") || has_state(n, "DRAINING");
    int rc = 0;
    if (drained && !strncmp(reason, mine, strlen(mine))) {
        *noop = true; /* ours already: re-running the step changes nothing */
    } else if (drained && fm_workflow_owns_drain(ctx, node, reason) != 1) {
        /* Someone else's drain (the prefix alone is not ours: a human may
         * write "fleetmcp: hold"): taking its reason over would make
         * their node ours to resume.  Leave it to them. */
        char c[160];
        fm_clip(c, sizeof c, reason);
        fm_err_set(err, FM_ERR_CONFLICT,
                   "%s is already drained by someone else (reason: %s); ask its owner or"
                   " resume it first",
                   node, c);
        rc = -1;
    } else {
        char full[256];
        snprintf(full, sizeof full, "%s%s: %s", FM_SLURM_OWNED_PREFIX, owner, text);
        rc = ctx->be.slurm->update_node(ctx->be.slurm_st, node, FM_SLURM_DRAIN, full, err);
    }
    json_decref(n);
    return rc;
}

int fm_wf_resume(fm_ctx *ctx, const char *node, bool *noop, fm_err *err)
{
    *noop = false;
    if (need_slurm(ctx, err)) return -1;
    json_t *n = ctx->be.slurm->node(ctx->be.slurm_st, node, err);
    if (!n) return -1;
    bool out = has_state(n, "DRAIN") || has_state(n, "DRAINED") || has_state(n, "DRAINING") ||
               has_state(n, "DOWN") || has_state(n, "FAIL");
    json_decref(n);
    if (!out) {
        *noop = true;
        return 0;
    }
    return ctx->be.slurm->update_node(ctx->be.slurm_st, node, FM_SLURM_RESUME, NULL, err);
}

/* Runs one catalog command; a failure to run at all is an error. */
static int run(fm_ctx *ctx, const char *node, fm_cmd_id cmd, const fm_cmd_args *a,
               fm_exec_result *r, fm_err *err)
{
    memset(r, 0, sizeof *r);
    if (need_exec(ctx, err)) return -1;
    return ctx->be.exec->run(ctx->be.exec_st, node, cmd, a, r, err);
}

/* Next line of text into a bounded buffer; false at the end. */
static bool next_line(const char **p, const char *end, char *buf, size_t len)
{
    if (*p >= end) return false;
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    size_t n = (size_t)((nl ? nl : end) - *p);
    snprintf(buf, len, "%.*s", (int)(n < len ? n : len - 1), *p);
    *p = nl ? nl + 1 : end;
    return true;
}

static void trim(char *s)
{
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    char *b = s;
    while (isspace((unsigned char)*b))
        b++;
    if (b != s) memmove(s, b, strlen(b) + 1);
}

static json_t *num_or_null(const char *s)
{
    char *end;
    double d = strtod(s, &end);
    if (end == s || *end) return json_null();
    if (d == (double)(long long)d) return json_integer((json_int_t)d);
    return json_real(d);
}

json_t *fm_wf_gpus(fm_ctx *ctx, const char *node, json_t **lost, fm_err *err)
{
    if (lost) *lost = json_array();
    fm_cmd_args a;
    fm_cmd_args_init(&a);
    fm_exec_result r;
    if (run(ctx, node, FM_CMD_NVSMI_QUERY_GPU, &a, &r, err)) {
        fm_exec_result_free(&r);
        return NULL;
    }
    json_t *gpus = json_array();
    const char *p = r.out, *end = r.out + r.out_len;
    char line[1024];
    while (next_line(&p, end, line, sizeof line) && json_array_size(gpus) < MAX_GPUS) {
        const char *u = strstr(line, "Unable to determine the device handle for GPU ");
        if (u) {
            char bus[32] = "";
            sscanf(u + 46, "%20[0-9A-Fa-f:.]", bus);
            if (lost && bus[0]) json_array_append_new(*lost, json_string(bus));
            continue;
        }
        char *fields[12];
        int nf = 0;
        char *save = NULL;
        for (char *t = strtok_r(line, ",", &save); t && nf < 12; t = strtok_r(NULL, ",", &save)) {
            trim(t);
            fields[nf++] = t;
        }
        if (nf != 12) continue;
        char *end_idx;
        long idx = strtol(fields[0], &end_idx, 10);
        if (*end_idx || idx < 0 || idx > 63 || !fm_exec_valid_pci_bus(fields[1])) continue;
        json_t *g = json_pack(
            "{s:I, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "index", (json_int_t)idx, "bus",
            fields[1], "uuid", fm_exec_text(fields[2], strlen(fields[2]), 64), "name",
            fm_exec_text(fields[3], strlen(fields[3]), 64), "temp_c", num_or_null(fields[4]),
            "mem_used_mib", num_or_null(fields[7]), "util", num_or_null(fields[9]), "ecc_dbe_vol",
            num_or_null(fields[10]), "ecc_dbe_agg", num_or_null(fields[11]));
        if (g) json_array_append_new(gpus, g);
    }
    if (!json_array_size(gpus) && r.exit_status != 0 && (!lost || !json_array_size(*lost))) {
        json_t *t =
            fm_exec_text(r.out_len ? r.out : r.err_out, r.out_len ? r.out_len : r.err_len, 160);
        fm_err_set(err, FM_ERR_BACKEND, "nvidia-smi --query-gpu on %s exited %d: %s", node,
                   r.exit_status, json_string_value(t) ? json_string_value(t) : "");
        json_decref(t);
        json_decref(gpus);
        gpus = NULL;
    }
    fm_exec_result_free(&r);
    return gpus;
}

int fm_wf_gpu_processes(fm_ctx *ctx, const char *node, int index, fm_err *err)
{
    fm_cmd_args a;
    fm_cmd_args_init(&a);
    a.gpu_index = index;
    fm_exec_result r;
    if (run(ctx, node, FM_CMD_NVSMI_QUERY, &a, &r, err)) {
        fm_exec_result_free(&r);
        return -1;
    }
    int n = 0;
    const char *p = r.out, *end = r.out + r.out_len;
    char line[512];
    bool seen_block = false;
    while (next_line(&p, end, line, sizeof line)) {
        if (strstr(line, "Process ID")) n++;
        if (strstr(line, "Processes")) seen_block = true;
    }
    if (!seen_block) {
        /* No Processes section: we cannot tell, so we must not assume idle. */
        fm_err_set(err, FM_ERR_BACKEND,
                   "nvidia-smi -q -i %d on %s (exit %d) shows no Processes section: cannot tell"
                   " whether the GPU is in use",
                   index, node, r.exit_status);
        n = -1;
    } else if (r.truncated && n == 0) {
        /* Output cut at the executor's cap: the GPUs (or processes) past
         * the cut were never read, and unread must not count as idle. */
        fm_err_set(err, FM_ERR_TOO_LARGE,
                   "nvidia-smi -q -i %d on %s was cut after %zu bytes (ssh.max_output_bytes):"
                   " the GPUs past the cut cannot be read, so they count as busy; raise"
                   " ssh.max_output_bytes",
                   index, node, r.out_len);
        n = -1;
    }
    fm_exec_result_free(&r);
    return n;
}

int fm_wf_gpu_reset(fm_ctx *ctx, const char *node, const char *bus, json_t *out, fm_err *err)
{
    fm_cmd_args a;
    fm_cmd_args_init(&a);
    snprintf(a.pci_bus, sizeof a.pci_bus, "%s", bus);
    fm_exec_result r;
    if (run(ctx, node, FM_CMD_NVSMI_RESET, &a, &r, err)) {
        fm_exec_result_free(&r);
        return -1;
    }
    json_t *text = fm_exec_text(r.out, r.out_len, 400);
    if (out) {
        json_object_set_new(out, "bus", json_string(bus));
        json_object_set_new(out, "exit_status", json_integer(r.exit_status));
        json_object_set(out, "output", text);
    }
    int rc = 0;
    if (r.exit_status != 0) {
        fm_err_set(err, FM_ERR_BACKEND, "nvidia-smi --gpu-reset -i %s on %s exited %d: %.200s", bus,
                   node, r.exit_status, json_string_value(text) ? json_string_value(text) : "");
        rc = -1;
    }
    json_decref(text);
    fm_exec_result_free(&r);
    return rc;
}

json_t *fm_wf_gpu_snapshot(fm_ctx *ctx, const char *node, json_int_t index, char *bus,
                           size_t buslen, fm_err *err)
{
    json_t *lost = NULL;
    json_t *gpus = fm_wf_gpus(ctx, node, &lost, err);
    json_decref(lost);
    if (!gpus) return NULL;
    json_t *snap = NULL;
    size_t i;
    json_t *g;
    json_array_foreach(gpus, i, g)
    {
        if (json_integer_value(json_object_get(g, "index")) != index) continue;
        if (bus) snprintf(bus, buslen, "%s", fm_json_str(g, "bus", ""));
        snap = json_pack("{s:O, s:O, s:O, s:O}", "ecc_dbe_vol", json_object_get(g, "ecc_dbe_vol"),
                         "mem_used_mib", json_object_get(g, "mem_used_mib"), "util",
                         json_object_get(g, "util"), "temp_c", json_object_get(g, "temp_c"));
        break;
    }
    json_decref(gpus);
    if (!snap) {
        fm_err_set(err, FM_ERR_NOT_FOUND,
                   "GPU %lld of %s does not answer nvidia-smi (fallen off the bus or absent): a"
                   " reset cannot reach it; reboot the node instead",
                   (long long)index, node);
        return NULL;
    }
    /* Pending row remaps only show in nvidia-smi -q. */
    json_t *checks = json_pack("[s,s]", "row_remap_pending", "ecc_dbe");
    json_t *v = fm_wf_verify(ctx, node, checks, 0, NULL);
    json_decref(checks);
    json_t *rp =
        json_object_get(json_object_get(json_object_get(v, "checks"), "row_remap_pending"), "ok");
    if (rp) json_object_set_new(snap, "row_remap_pending_on_node", json_boolean(!json_is_true(rp)));
    json_decref(v);
    return snap;
}

static int status_rank(const char *s)
{
    if (!strcasecmp(s, "Fail")) return 3;
    if (!strcasecmp(s, "Warn")) return 2;
    if (!strcasecmp(s, "Pass")) return 1;
    return 0; /* Skip and anything unknown */
}

json_t *fm_wf_diag(fm_ctx *ctx, const char *node, int level, fm_err *err)
{
    fm_cmd_args a;
    fm_cmd_args_init(&a);
    a.diag_level = level;
    fm_exec_result r;
    if (run(ctx, node, FM_CMD_DCGMI_DIAG, &a, &r, err)) {
        fm_exec_result_free(&r);
        return NULL;
    }
    json_error_t je;
    json_t *doc = r.truncated ? NULL : json_loadb(r.out, r.out_len, 0, &je);
    json_t *root = json_object_get(doc, "DCGM GPU Diagnostic");
    json_t *cats = json_object_get(root, "test_categories");
    if (!json_is_array(cats)) {
        json_t *t =
            fm_exec_text(r.out_len ? r.out : r.err_out, r.out_len ? r.out_len : r.err_len, 160);
        fm_err_set(err, FM_ERR_PARSE, "dcgmi diag -r %d on %s (exit %d) gave no test results: %s",
                   level, node, r.exit_status, json_string_value(t) ? json_string_value(t) : "");
        json_decref(t);
        json_decref(doc);
        fm_exec_result_free(&r);
        return NULL;
    }
    json_t *tests = json_array();
    /* Passed: no test failed and at least one ran (Pass or Warn).  A
     * diagnostic whose every result is Skip, or that returned no test,
     * checked nothing: read as passed it would return the node. */
    bool passed = true, ran = false;
    size_t i, k, m;
    json_t *c, *t, *res;
    json_array_foreach(cats, i, c)
    {
        json_array_foreach(json_object_get(c, "tests"), k, t)
        {
            if (json_array_size(tests) >= MAX_TESTS) break;
            int worst = 0;
            json_t *failed = json_array();
            const char *warning = NULL;
            json_array_foreach(json_object_get(t, "results"), m, res)
            {
                const char *st = fm_json_str(res, "status", "");
                int rk = status_rank(st);
                if (rk > worst) worst = rk;
                if (rk == 3 && json_array_size(failed) < MAX_GPUS)
                    json_array_append_new(failed,
                                          fm_exec_text(fm_json_str(res, "gpu_id", "?"),
                                                       strlen(fm_json_str(res, "gpu_id", "?")), 8));
                json_t *w = json_array_get(json_object_get(res, "warnings"), 0);
                if (!warning && rk >= 2) warning = fm_json_str(w, "warning", NULL);
            }
            static const char *const names[] = {"Skip", "Pass", "Warn", "Fail"};
            const char *nm = fm_json_str(t, "name", "?"), *cat = fm_json_str(c, "category", "?");
            json_t *row = json_pack(
                "{s:o, s:o, s:s, s:o}", "category", fm_exec_text(cat, strlen(cat), 64), "name",
                fm_exec_text(nm, strlen(nm), 64), "status", names[worst], "failed_gpus", failed);
            if (warning)
                json_object_set_new(row, "warning", fm_exec_text(warning, strlen(warning), 200));
            json_array_append_new(tests, row);
            if (worst == 3) passed = false;
            if (worst == 1 || worst == 2) ran = true;
        }
    }
    passed = passed && ran;
    json_decref(doc);
    fm_exec_result_free(&r);
    return json_pack("{s:i, s:b, s:o}", "level", level, "passed", passed, "tests", tests);
}

/* ---- verification ----------------------------------------------------- */

typedef struct probe {
    bool done;
    int rc; /* 0: ran */
    char err[512];
    json_t *parsed; /* owned */
    fm_exec_result r;
} probe;

static probe *get_probe(fm_ctx *ctx, const char *node, probe *p, fm_cmd_id cmd)
{
    if (p->done) return p;
    p->done = true;
    fm_cmd_args a;
    fm_cmd_args_init(&a);
    fm_err e = {0};
    p->rc = run(ctx, node, cmd, &a, &p->r, &e);
    if (p->rc) {
        snprintf(p->err, sizeof p->err, "%s: %s", fm_strerror(e.code), e.text);
        return p;
    }
    switch (cmd) {
    case FM_CMD_NVSMI_QUERY:
        p->parsed = fm_parse_nvsmi_q(p->r.out, p->r.out_len, p->r.err_out, p->r.err_len);
        break;
    case FM_CMD_DCGMI_HEALTH:
        p->parsed = fm_parse_dcgmi_health(p->r.out, p->r.out_len);
        break;
    case FM_CMD_IBSTAT:
        p->parsed = fm_parse_ibstat(p->r.out, p->r.out_len);
        break;
    default:
        p->parsed = json_object();
    }
    return p;
}

static void verdict(json_t *checks, const char *name, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void verdict(json_t *checks, const char *name, bool ok, const char *fmt, ...)
{
    char d[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d, sizeof d, fmt, ap);
    va_end(ap);
    json_object_set_new(checks, name, json_pack("{s:b, s:s}", "ok", ok, "detail", d));
}

/* Kernel Xid lines of the current boot stamped at or after since_s (the
 * node's clock; 0: every line of the boot). */
static int xid_lines_since(const fm_exec_result *r, long long since_s, char *last, size_t len)
{
    int n = 0;
    const char *p = r->out, *end = r->out + r->out_len;
    char line[512];
    while (next_line(&p, end, line, sizeof line)) {
        if (!strstr(line, "NVRM: Xid")) continue;
        struct tm tm = {0};
        const char *rest = strptime(line, "%Y-%m-%dT%H:%M:%S%z", &tm);
        long long t = rest ? (long long)timegm(&tm) - tm.tm_gmtoff : 0;
        if (since_s && t && t < since_s) continue;
        n++;
        const char *x = strstr(line, "NVRM: Xid");
        fm_clip(last, len, x);
    }
    return n;
}

long long fm_wf_node_clock(fm_ctx *ctx, const char *node, fm_err *err)
{
    fm_cmd_args a;
    fm_cmd_args_init(&a);
    fm_exec_result r;
    if (run(ctx, node, FM_CMD_NODE_CLOCK, &a, &r, err)) {
        fm_exec_result_free(&r);
        return -1;
    }
    char line[32] = "";
    const char *p = r.out, *end = r.out + r.out_len;
    next_line(&p, end, line, sizeof line);
    char *tail = NULL;
    long long t = strtoll(line, &tail, 10);
    /* digits only, after 2001 and before 5138: anything else is not a clock */
    bool ok =
        r.exit_status == 0 && tail != line && !*tail && t >= 1000000000LL && t < 100000000000LL;
    if (!ok)
        fm_err_set(err, FM_ERR_BACKEND,
                   "date +%%s on %s (exit %d) gave no clock reading ('%.20s'): the Xid check"
                   " after a repair compares the node's kernel stamps with its own clock; check"
                   " date on the node",
                   node, r.exit_status, line);
    fm_exec_result_free(&r);
    return ok ? t : -1;
}

/* dcgmi health incidents whose system contains word. */
static int incidents_of(const json_t *health, const char *word, char *msg, size_t len)
{
    int n = 0;
    size_t i;
    json_t *inc;
    json_array_foreach(json_object_get(health, "incidents"), i, inc)
    {
        if (!strcasestr(fm_json_str(inc, "system", ""), word)) continue;
        if (!n) fm_clip(msg, len, fm_json_str(inc, "message", ""));
        n++;
    }
    return n;
}

json_t *fm_wf_verify(fm_ctx *ctx, const char *node, const json_t *names, long long since_s,
                     fm_err *err)
{
    (void)err;
    probe q = {0}, x = {0}, h = {0}, ib = {0};
    json_t *checks = json_object();
    bool all = true;
    size_t i;
    json_t *v;
    json_array_foreach(names, i, v)
    {
        const char *c = json_string_value(v);
        if (!c) continue;
        probe *p = NULL;
        if (!strcmp(c, "gpus_present") || !strcmp(c, "ecc_dbe") ||
            !strcmp(c, "row_remap_pending") || !strcmp(c, "row_remap_failure"))
            p = get_probe(ctx, node, &q, FM_CMD_NVSMI_QUERY);
        else if (!strcmp(c, "xid"))
            p = get_probe(ctx, node, &x, FM_CMD_KERNEL_XID);
        else if (!strcmp(c, "nvlink") || !strcmp(c, "pcie") || !strcmp(c, "temp"))
            p = get_probe(ctx, node, &h, FM_CMD_DCGMI_HEALTH);
        else if (!strcmp(c, "ib"))
            p = get_probe(ctx, node, &ib, FM_CMD_IBSTAT);
        if (!p) {
            verdict(checks, c, false, "unknown check");
            all = false;
            continue;
        }
        if (p->rc) {
            verdict(checks, c, false, "could not read the node: %s", p->err);
            all = false;
            continue;
        }
        /* What was cut was not checked: the GPUs past the cut, or the
         * newest kernel lines (journalctl prints oldest first). */
        if (p->r.truncated) {
            verdict(checks, c, false,
                    "the node's output was cut at %zu bytes (ssh.max_output_bytes), so what"
                    " follows the cut is unchecked: raise ssh.max_output_bytes",
                    p->r.out_len);
            all = false;
            continue;
        }
        bool ok = true;
        char last[160] = "";
        if (!strcmp(c, "gpus_present")) {
            json_int_t att = json_integer_value(json_object_get(p->parsed, "attached"));
            json_int_t seen = json_integer_value(json_object_get(p->parsed, "gpus_seen"));
            size_t lost = json_array_size(json_object_get(p->parsed, "unreachable"));
            ok = p->r.exit_status == 0 && att > 0 && seen == att && lost == 0;
            verdict(checks, c, ok, "%lld of %lld GPUs answer, %zu unreachable (exit %d)",
                    (long long)seen, (long long)att, lost, p->r.exit_status);
        } else if (!strcmp(c, "xid")) {
            int n = xid_lines_since(&p->r, since_s, last, sizeof last);
            ok = p->r.exit_status == 0 || p->r.exit_status == 1; /* 1: grep found nothing */
            ok = ok && n == 0;
            verdict(checks, c, ok, "%d Xid line(s) since the repair%s%s", n, n ? "; last: " : "",
                    last);
        } else if (!strcmp(c, "nvlink") || !strcmp(c, "pcie") || !strcmp(c, "temp")) {
            const char *word = !strcmp(c, "nvlink") ? "NVLINK"
                               : !strcmp(c, "pcie") ? "PCIe"
                                                    : "Thermal";
            bool parsed = json_is_true(json_object_get(p->parsed, "parsed"));
            int n = incidents_of(p->parsed, word, last, sizeof last);
            ok = parsed && n == 0;
            if (parsed)
                verdict(checks, c, ok, "%d %s incident(s)%s%s", n, word, n ? ": " : "", last);
            else
                verdict(checks, c, false, "dcgmi health output unreadable (exit %d)",
                        p->r.exit_status);
        } else if (!strcmp(c, "ib")) {
            json_t *ports = json_object_get(p->parsed, "ports"), *pt;
            size_t k, down = 0;
            json_array_foreach(ports, k, pt) if (strcasecmp(fm_json_str(pt, "state", ""), "Active"))
                down++;
            ok = json_array_size(ports) > 0 && down == 0;
            verdict(checks, c, ok, "%zu of %zu IB ports not Active", down, json_array_size(ports));
        } else {
            const char *field = !strcmp(c, "ecc_dbe")             ? "ecc_dbe_vol"
                                : !strcmp(c, "row_remap_pending") ? "remap_pending"
                                                                  : "remap_failure";
            json_t *g;
            size_t k, bad = 0;
            json_array_foreach(json_object_get(p->parsed, "gpus"), k, g)
            {
                json_t *f = json_object_get(g, field);
                if (json_is_true(f) || json_integer_value(f) > 0) bad++;
            }
            ok = bad == 0 && p->r.exit_status == 0;
            verdict(checks, c, ok, "%zu GPU(s) with %s (exit %d)", bad, field, p->r.exit_status);
        }
        if (!ok) all = false;
    }
    probe *ps[] = {&q, &x, &h, &ib};
    for (size_t k = 0; k < 4; k++) {
        json_decref(ps[k]->parsed);
        if (ps[k]->done) fm_exec_result_free(&ps[k]->r);
    }
    return json_pack("{s:b, s:o}", "ok", all, "checks", checks);
}

int fm_wf_diag_bundle(fm_call *call, const fm_action_call *via, const char *node, char *id_out,
                      size_t len, fm_err *err)
{
    id_out[0] = '\0';
    if (!via->tool)
        return fm_err_set(err, FM_ERR_INTERNAL,
                          "this action's data names no bundle tool (calls.bundle in"
                          " schemas/actions); please report"),
               -1;
    json_t *args = json_pack("{s:s}", "node", node);
    json_t *r = fm_tools_call_internal(call, via->tool, via->exempt, args, err);
    json_decref(args);
    if (!r) return -1;
    snprintf(id_out, len, "%s", fm_json_str(r, "bundle_id", ""));
    json_decref(r);
    return 0;
}
