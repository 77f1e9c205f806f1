/* diagnose's node mode through a fake Slurm and a fake executor: a job's
 * output path is chosen by the job's owner and read as the ssh user, so
 * it is read only when the node says it is a regular file of the job's
 * own user, and the same file after the read; anything else is said in
 * collected.errors and never read. */
#include <stdlib.h>
#include <string.h>

#include "fleetmcp/fm_exec.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_slurm.h"
#include "fm_test.h"

#include "fm_tools.gen.h"

/* ---- a fake Slurm: gpu-a01 ran alice's job 42, which wrote its output
 * to /scratch/alice/slurm-42.out ---- */

static json_t *fake_node(void *st, const char *name, fm_err *err)
{
    (void)st, (void)err;
    return json_pack("{s:s, s:[s], s:s}", "name", name, "state", "IDLE", "reason", "");
}

static json_t *fake_jobs(void *st, const fm_slurm_job_filter *f, fm_err *err)
{
    (void)st, (void)f, (void)err;
    return json_pack("[{s:i, s:s, s:s, s:s, s:s, s:s, s:s}]", "job_id", 42, "user", "alice",
                     "state", "FAILED", "std_out", "/scratch/alice/slurm-%j.out", "std_err", "",
                     "batch_host", "gpu-a01", "work_dir", "/scratch/alice");
}

static void fake_close(void *st)
{
    (void)st;
}

static const struct fm_slurm_ops fake_slurm = {
    .name = "fake", .node = fake_node, .jobs = fake_jobs, .close = fake_close};

/* ---- a fake node: what stat says, and what the read opens ---- */

static struct {
    const char *stat_line; /* an FM_JOB_LOG_STAT_FORMAT line */
    const char *opened;    /* owner:dev:inode of what the path opens as when read */
    char file[128];        /* what the read was told the file must be */
    int stats, tails;
} N;

static const char OOM[] = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 4.00 GiB."
                          " GPU 0 has a total capacity of 79.10 GiB of which 1.2 GiB is free.\n";

static int fake_run(void *st, const char *node, fm_cmd_id cmd, const fm_cmd_args *a,
                    fm_exec_result *out, fm_err *err)
{
    (void)st, (void)node, (void)a, (void)err;
    memset(out, 0, sizeof *out);
    const char *name = fm_cmd_name(cmd), *o = "";
    if (!strcmp(name, "job_log_stat")) {
        N.stats++;
        o = N.stat_line;
    } else if (!strcmp(name, "job_log_tail")) {
        /* The catalog's script: nothing is read from another file. */
        snprintf(N.file, sizeof N.file, "%s", a->file);
        bool same = !strcmp(a->file, N.opened);
        o = N.tails++ || !same ? "" : OOM;
        out->exit_status = same ? 0 : 68;
    }
    out->out = strdup(o);
    out->out_len = strlen(o);
    out->err_out = strdup("");
    return 0;
}

static const struct fm_exec_ops fake_exec = {.name = "fake", .run = fake_run, .close = fake_close};

/* diagnose {node, job_id: 42} with the node's stat answer and what its
 * path opens as: the tool's answer (new); *read says whether the job's
 * lines reached the engine. */
static json_t *diagnose(const char *stat_line, const char *opened, bool *read)
{
    memset(&N, 0, sizeof N);
    N.stat_line = stat_line;
    N.opened = opened;
    fm_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    unsetenv("FLEETMCP_CONFIG");
    setenv("FLEETMCP_SIGNATURES", "runbooks/signatures.yaml", 1);
    fm_err err = {0};
    ck_assert_msg(fm_ctx_open(&ctx, NULL, fm_test_store(":memory:"), &err) == 0, "%s", err.text);
    if (ctx.be.slurm) ctx.be.slurm->close(ctx.be.slurm_st);
    ctx.be.slurm = &fake_slurm;
    ctx.be.slurm_st = NULL;
    ctx.be.exec = &fake_exec;
    ctx.be.metrics = NULL;
    json_t *args = json_pack("{s:s, s:i}", "node", "gpu-a01", "job_id", 42);
    fm_call c = {.ctx = &ctx, .args = args};
    json_t *res = fm_tool_diagnose(&c, &err);
    ck_assert_msg(res != NULL, "%s", err.text);
    json_decref(args);
    ctx.be.slurm = NULL;
    ctx.be.exec = NULL;
    fm_ctx_close(&ctx);
    json_t *src = json_object_get(json_object_get(res, "collected"), "sources");
    *read = false;
    size_t i;
    json_t *v;
    json_array_foreach(src, i, v) if (!strcmp(json_string_value(v), "job_logs")) *read = true;
    return res;
}

/* The first collected error naming the job's file, or "". */
static const char *job_error(const json_t *res)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(json_object_get(res, "collected"), "errors"), i, v)
    {
        if (strstr(json_string_value(v), "job 42 output")) return json_string_value(v);
    }
    return "";
}

START_TEST(own_regular_file_is_read)
{
    bool read;
    json_t *r = diagnose("alice|regular file|4096|2049:77", "alice:2049:77", &read);
    ck_assert_msg(read, "%s", job_error(r));
    ck_assert_int_eq(N.tails, 1);
    ck_assert_int_eq(N.stats, 1);
    /* The read is told which file the stat showed. */
    ck_assert_str_eq(N.file, "alice:2049:77");
    json_decref(r);
}
END_TEST

/* The job's file as stat describes it: never read, and the answer says
 * why (want in its error). */
static void not_read(const char *stat_line, const char *want)
{
    bool read;
    json_t *r = diagnose(stat_line, "alice:2049:77", &read);
    ck_assert(!read);
    ck_assert_int_eq(N.tails, 0);
    ck_assert_msg(strstr(job_error(r), want), "%s", job_error(r));
    json_decref(r);
}

START_TEST(another_users_file_is_not_read)
{
    not_read("bob|regular file|4096|2049:78", "owned by bob, not by the job's user alice");
}
END_TEST

START_TEST(link_or_device_is_not_read)
{
    not_read("alice|symbolic link|11|2049:79", "a symbolic link, not a regular file");
    not_read("root|character special file|0|5:1", "not a regular file");
}
END_TEST

/* Swapped for another file (here a link to root's) after its stat: the
 * read opens the path once and reads nothing that is not the stat's file
 * (integration:ssh runs the real script, swaps included). */
START_TEST(file_swapped_after_the_stat_is_not_read)
{
    bool read;
    json_t *r = diagnose("alice|regular file|4096|2049:77", "root:2049:80", &read);
    ck_assert(!read);
    ck_assert_int_eq(N.tails, 1);
    ck_assert_msg(strstr(job_error(r), "another file when it was opened"), "%s", job_error(r));
    json_decref(r);
}
END_TEST

static Suite *diagnose_collect_suite(void)
{
    Suite *s = suite_create("diagnose_collect");
    TCase *tc = tcase_create("job_logs");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, own_regular_file_is_read);
    tcase_add_test(tc, another_users_file_is_not_read);
    tcase_add_test(tc, link_or_device_is_not_read);
    tcase_add_test(tc, file_swapped_after_the_stat_is_not_read);
    suite_add_tcase(s, tc);
    return s;
}

FM_TEST_MAIN(diagnose_collect_suite)
