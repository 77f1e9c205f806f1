/* The Slurm backends' mutation slots against the real test stack (no tool
 * uses them yet: the remediation tools will).  CLI: drain with a fleetmcp
 * reason, resume, requeue with an excluded node, through scontrol argv.
 * REST on v0.0.38: node updates and requeue refuse with NOTCONFIGURED
 * naming slurm.backend: cli.  Run by tests/integration/slurm_metrics.sh with
 * SLURM_CONF, FM_SLURM_SOCKET and FM_IT_JOB (a running job on gpu-a03). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fleetmcp/fm_slurm.h"
#include "../unit/fm_test.h"

static const struct fm_slurm_ops *open_backend_opt(const char *backend, bool with_cli, void **st)
{
    json_t *sec = json_pack("{s:s, s:I, s:{s:s}, s:{s:s}}", "backend", backend, "timeout_ms",
                            (json_int_t)10000, "cli", "slurm_conf", getenv("SLURM_CONF"), "rest",
                            "socket", getenv("FM_SLURM_SOCKET"));
    if (!with_cli) json_object_del(sec, "cli");
    const struct fm_slurm_ops *ops;
    fm_err err = {0};
    ck_assert_msg(fm_slurm_open(sec, &ops, st, &err) == 0, "%s", err.text);
    json_decref(sec);
    return ops;
}

static const struct fm_slurm_ops *open_backend(const char *backend, void **st)
{
    return open_backend_opt(backend, true, st);
}

static json_t *node(const struct fm_slurm_ops *ops, void *st, const char *name)
{
    fm_err err = {0};
    json_t *n = ops->node(st, name, &err);
    ck_assert_msg(n != NULL, "%s", err.text);
    return n;
}

static bool has_state(const json_t *n, const char *s)
{
    size_t i;
    const json_t *e;
    json_array_foreach(json_object_get(n, "state"), i, e)
    {
        if (strcmp(json_string_value(e), s) == 0) return true;
    }
    return false;
}

START_TEST(cli_drain_resume)
{
    void *st;
    const struct fm_slurm_ops *ops = open_backend("cli", &st);
    fm_err err = {0};
    ck_assert_int_eq(ops->update_node(st, "gpu-a04", FM_SLURM_DRAIN, "fleetmcp:wf-it9 probe", &err),
                     0);
    json_t *n = node(ops, st, "gpu-a04");
    ck_assert(has_state(n, "DRAIN"));
    ck_assert(json_is_true(json_object_get(n, "fleetmcp_owned")));
    ck_assert_str_eq(json_string_value(json_object_get(n, "reason")), "fleetmcp:wf-it9 probe");
    json_decref(n);
    ck_assert_int_eq(ops->update_node(st, "gpu-a04", FM_SLURM_RESUME, NULL, &err), 0);
    n = node(ops, st, "gpu-a04");
    ck_assert(!has_state(n, "DRAIN"));
    json_decref(n);
    ck_assert_int_eq(ops->update_node(st, "gpu-a04", FM_SLURM_DRAIN, NULL, &err), -1);
    ck_assert_int_eq(err.code, FM_ERR_INVALID);
    fm_err_clear(&err);
    ck_assert_int_eq(ops->update_node(st, "gpu-a04;id", FM_SLURM_DRAIN, "x", &err), -1);
    ck_assert_int_eq(err.code, FM_ERR_INVALID);
    fm_err_clear(&err);
    ck_assert_int_eq(ops->update_node(st, "gpu-zz99", FM_SLURM_RESUME, NULL, &err), -1);
    ck_assert_msg(err.code == FM_ERR_NOT_FOUND || err.code == FM_ERR_BACKEND, "%s", err.text);
    ops->close(st);
}
END_TEST

START_TEST(cli_requeue_excluding_node)
{
    const char *id = getenv("FM_IT_JOB");
    ck_assert_ptr_nonnull(id);
    void *st;
    const struct fm_slurm_ops *ops = open_backend("cli", &st);
    fm_err err = {0};
    ck_assert_msg(ops->requeue_job(st, strtoull(id, NULL, 10), "gpu-a03", &err) == 0, "%s",
                  err.text);
    /* Slurm now holds the job back (pending, begin time moved) and keeps it
     * off gpu-a03: squeue --json shows excluded_nodes */
    char cmd[128];
    snprintf(cmd, sizeof cmd, "squeue --json -j %s", id);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    json_error_t je;
    json_t *ans = json_loadf(p, 0, &je);
    pclose(p);
    ck_assert_msg(ans != NULL, "%s", je.text);
    json_t *job = NULL;
    size_t i;
    json_t *j;
    json_array_foreach(json_object_get(ans, "jobs"), i, j)
    {
        if (json_integer_value(json_object_get(j, "job_id")) == atoll(id)) job = j;
    }
    ck_assert_ptr_nonnull(job);
    ck_assert_str_eq(json_string_value(json_object_get(job, "excluded_nodes")), "gpu-a03");
    ck_assert_str_ne(json_string_value(json_object_get(job, "job_state")), "RUNNING");
    json_decref(ans);
    fm_err_clear(&err);
    ck_assert_int_eq(ops->requeue_job(st, 999999, NULL, &err), -1);
    ck_assert_msg(err.code == FM_ERR_NOT_FOUND || err.code == FM_ERR_BACKEND, "%s", err.text);
    ops->close(st);
}
END_TEST

START_TEST(rest_v38_mutations_refused)
{
    void *st;
    const struct fm_slurm_ops *ops = open_backend_opt("rest", false, &st);
    fm_err err = {0};
    json_t *all = ops->nodes(st, NULL, &err);
    ck_assert_msg(all != NULL, "%s", err.text);
    json_decref(all);
    ck_assert_int_eq(ops->update_node(st, "gpu-a04", FM_SLURM_DRAIN, "fleetmcp:x", &err), -1);
    ck_assert_int_eq(err.code, FM_ERR_NOT_CONFIGURED);
    ck_assert_ptr_nonnull(strstr(err.text, "slurm.cli"));
    ck_assert_ptr_nonnull(strstr(err.text, "v0.0.38"));
    fm_err_clear(&err);
    ck_assert_int_eq(ops->requeue_job(st, 1, NULL, &err), -1);
    ck_assert_int_eq(err.code, FM_ERR_NOT_CONFIGURED);
    ops->close(st);
}
END_TEST

/* With a slurm.cli section, what slurmrestd 22.05 cannot change goes
 * through scontrol argv: drain and resume work over the REST backend. */
START_TEST(rest_v38_mutations_via_scontrol)
{
    void *st;
    const struct fm_slurm_ops *ops = open_backend("rest", &st);
    fm_err err = {0};
    ck_assert_msg(ops->update_node(st, "gpu-a04", FM_SLURM_DRAIN, "fleetmcp:wf-it8 rest", &err) ==
                      0,
                  "%s", err.text);
    json_t *n = node(ops, st, "gpu-a04");
    ck_assert(has_state(n, "DRAIN"));
    ck_assert(json_is_true(json_object_get(n, "fleetmcp_owned")));
    json_decref(n);
    ck_assert_msg(ops->update_node(st, "gpu-a04", FM_SLURM_RESUME, NULL, &err) == 0, "%s",
                  err.text);
    n = node(ops, st, "gpu-a04");
    ck_assert(!has_state(n, "DRAIN"));
    json_decref(n);
    ops->close(st);
}
END_TEST

static Suite *backends_suite(void)
{
    Suite *s = suite_create("slurm_backends_stack");
    TCase *tc = tcase_create("stack");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, cli_drain_resume);
    tcase_add_test(tc, cli_requeue_excluding_node);
    tcase_add_test(tc, rest_v38_mutations_refused);
    tcase_add_test(tc, rest_v38_mutations_via_scontrol);
    suite_add_tcase(s, tc);
    return s;
}

FM_TEST_MAIN(backends_suite)
