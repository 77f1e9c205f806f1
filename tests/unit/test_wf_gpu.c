/* The workflow's GPU reads through a fake executor: what nvidia-smi did
 * not show (output cut at ssh.max_output_bytes) never counts as an idle
 * GPU, since an idle answer lets a reset or a diag run on the node; and a
 * dcgmi diag that ran no test never counts as passed, since a pass
 * returns the node to service. */
#include <string.h>

#include "fleetmcp/fm_exec.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_slurm.h"
#include "fleetmcp/fm_workflow.h"
#include "fm_test.h"

typedef struct fake {
    fm_cmd_id cmd; /* the one command the test expects */
    const char *out;
    bool truncated;
} fake;

static int fake_run(void *st, const char *node, fm_cmd_id cmd, const fm_cmd_args *a,
                    fm_exec_result *out, fm_err *err)
{
    (void)node, (void)a, (void)err;
    fake *f = st;
    memset(out, 0, sizeof *out);
    ck_assert_int_eq(cmd, f->cmd);
    out->out = strdup(f->out);
    out->out_len = strlen(f->out);
    out->truncated = f->truncated;
    out->err_out = strdup("");
    return 0;
}

static void fake_close(void *st)
{
    (void)st;
}

static const struct fm_exec_ops fake_ops = {.name = "fake", .run = fake_run, .close = fake_close};

/* GPU 0 idle, then the cut: GPU 1 (running a job) was never sent. */
static const char FIRST_GPU[] = "Attached GPUs                             : 2\n"
                                "GPU 00000000:18:00.0\n"
                                "    Processes                             : None\n"
                                "GPU 00000000:2A:00.0\n"
                                "    Temperature\n";

static int processes(const char *text, bool truncated, fm_err *err)
{
    fm_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    fake f = {FM_CMD_NVSMI_QUERY, text, truncated};
    ctx.be.exec = &fake_ops;
    ctx.be.exec_st = &f;
    return fm_wf_gpu_processes(&ctx, "gpu-a01", -1, err);
}

/* fm_wf_diag's "passed" for dcgmi's JSON results (one test, these). */
static bool diag_passed(const char *results)
{
    char out[600];
    snprintf(out, sizeof out,
             "{\"DCGM GPU Diagnostic\":{\"test_categories\":[{\"category\":\"Deployment\","
             "\"tests\":[{\"name\":\"Denylist\",\"results\":%s}]}]}}",
             results);
    fm_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    fake f = {FM_CMD_DCGMI_DIAG, out, false};
    ctx.be.exec = &fake_ops;
    ctx.be.exec_st = &f;
    fm_err err = {0};
    json_t *d = fm_wf_diag(&ctx, "gpu-a01", 1, &err);
    ck_assert_msg(d != NULL, "%s", err.text);
    bool passed = json_is_true(json_object_get(d, "passed"));
    json_decref(d);
    return passed;
}

START_TEST(diag_that_ran_nothing_did_not_pass)
{
    ck_assert(diag_passed("[{\"gpu_id\":\"0\",\"status\":\"Pass\"}]"));
    ck_assert(diag_passed("[{\"gpu_id\":\"0\",\"status\":\"Skip\"},"
                          "{\"gpu_id\":\"1\",\"status\":\"Warn\"}]"));
    ck_assert(!diag_passed("[{\"gpu_id\":\"0\",\"status\":\"Pass\"},"
                           "{\"gpu_id\":\"1\",\"status\":\"Fail\"}]"));
    ck_assert(!diag_passed("[{\"gpu_id\":\"0\",\"status\":\"Skip\"},"
                           "{\"gpu_id\":\"1\",\"status\":\"Skip\"}]"));
    ck_assert(!diag_passed("[]"));
}
END_TEST

START_TEST(cut_output_is_not_idle)
{
    fm_err err = {0};
    ck_assert_int_eq(processes(FIRST_GPU, true, &err), -1);
    ck_assert_int_eq(err.code, FM_ERR_TOO_LARGE);
    ck_assert_ptr_nonnull(strstr(err.text, "ssh.max_output_bytes"));
}
END_TEST

START_TEST(whole_output_counts)
{
    fm_err err = {0};
    ck_assert_int_eq(processes(FIRST_GPU, false, &err), 0);
    static const char busy[] = "GPU 00000000:18:00.0\n"
                               "    Processes\n"
                               "        Process ID                        : 4242\n";
    ck_assert_int_eq(processes(busy, false, &err), 1);
    /* A process seen before the cut is busy whatever followed. */
    ck_assert_int_eq(processes(busy, true, &err), 1);
}
END_TEST

/* One verification check (name, run through cmd) on the node's output. */
static bool check_ok(const char *name, fm_cmd_id cmd, const char *out, bool truncated,
                     long long repair_s)
{
    fm_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    fake f = {cmd, out, truncated};
    ctx.be.exec = &fake_ops;
    ctx.be.exec_st = &f;
    json_t *checks = json_pack("[s]", name);
    json_t *v = fm_wf_verify(&ctx, "gpu-a01", checks, repair_s, NULL);
    bool ok = json_is_true(json_object_get(v, "ok"));
    json_decref(checks);
    json_decref(v);
    return ok;
}

/* Output cut at the cap never verifies: the GPU with the fault may be
 * past the cut. */
START_TEST(cut_output_does_not_verify)
{
    ck_assert(check_ok("ecc_dbe", FM_CMD_NVSMI_QUERY, FIRST_GPU, false, 0));
    ck_assert(!check_ok("ecc_dbe", FM_CMD_NVSMI_QUERY, FIRST_GPU, true, 0));
    ck_assert(!check_ok("xid", FM_CMD_KERNEL_XID, "", true, 0));
}
END_TEST

/* A fake Slurm whose only job on the node has this (joined) state. */
static const char *job_state;

static json_t *one_job(void *st, const fm_slurm_job_filter *f, fm_err *err)
{
    (void)st, (void)f, (void)err;
    return json_pack("[{s:i, s:s}]", "job_id", 7, "state", job_state);
}

static const struct fm_slurm_ops job_slurm = {.name = "fake", .jobs = one_job};

static size_t live_jobs(const char *state)
{
    fm_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.be.slurm = &job_slurm;
    job_state = state;
    fm_err err = {0};
    json_t *j = fm_wf_jobs_on(&ctx, "gpu-a01", &err);
    ck_assert_msg(j != NULL, "%s", err.text);
    size_t n = json_array_size(j);
    json_decref(j);
    return n;
}

/* A job whose state carries flags still holds the node: a reset or a
 * diag must wait for it. */
START_TEST(job_with_state_flags_holds_the_node)
{
    ck_assert_uint_eq(live_jobs("RUNNING"), 1);
    ck_assert_uint_eq(live_jobs("RUNNING+CONFIGURING"), 1);
    ck_assert_uint_eq(live_jobs("COMPLETED+COMPLETING"), 1);
    ck_assert_uint_eq(live_jobs("COMPLETED"), 0);
    ck_assert_uint_eq(live_jobs("PENDING"), 0);
}
END_TEST

static Suite *wf_gpu_suite(void)
{
    Suite *s = suite_create("wf_gpu");
    TCase *tc = tcase_create("processes");
    tcase_add_test(tc, cut_output_is_not_idle);
    tcase_add_test(tc, whole_output_counts);
    tcase_add_test(tc, diag_that_ran_nothing_did_not_pass);
    tcase_add_test(tc, cut_output_does_not_verify);
    tcase_add_test(tc, job_with_state_flags_holds_the_node);
    suite_add_tcase(s, tc);
    return s;
}

FM_TEST_MAIN(wf_gpu_suite)
