/* The Prometheus answer normalizer on answers captured from the test
 * stack's Prometheus 2.42, the backend's failure messages, and gpu_health
 * judged from a captured DCGM answer through a fake metrics backend (one
 * more instance of struct fm_metrics_ops). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleetmcp/fm_metrics.h"
#include "fleetmcp/fm_server.h"
#include "fm_test.h"
#include "fm_tools.gen.h"

#include "../../src/tools/read_common.h"

static json_t *load_fix(const char *name)
{
    const char *d = getenv("FM_FIXTURES");
    char p[512];
    snprintf(p, sizeof p, "%s/prom/%s", d ? d : "tests/fixtures", name);
    json_error_t je;
    json_t *j = json_load_file(p, 0, &je);
    ck_assert_msg(j != NULL, "fixture %s: %s", p, je.text);
    return j;
}

START_TEST(vector_and_truncation)
{
    json_t *ans = load_fix("instant_vector.json");
    fm_err err = {0};
    json_t *out = fm_metrics_normalize(ans, 1000, 1000, &err);
    ck_assert_msg(out != NULL, "%s", err.text);
    ck_assert_str_eq(json_string_value(json_object_get(out, "resultType")), "vector");
    json_t *series = json_object_get(out, "series");
    ck_assert_int_eq(json_array_size(series), 24);
    ck_assert(json_is_false(json_object_get(out, "truncated")));
    json_t *s0 = json_array_get(series, 0);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(s0, "labels"), "Hostname")),
                     "gpu-a01");
    ck_assert(json_is_number(json_object_get(s0, "value")));
    json_decref(out);
    out = fm_metrics_normalize(ans, 5, 1000, &err);
    ck_assert_int_eq(json_array_size(json_object_get(out, "series")), 5);
    ck_assert(json_is_true(json_object_get(out, "truncated")));
    ck_assert_int_eq(json_integer_value(json_object_get(out, "total_series")), 24);
    const char *w = json_string_value(json_array_get(json_object_get(out, "warnings"), 0));
    ck_assert_ptr_nonnull(strstr(w, "metrics.max_series"));
    json_decref(out);
    json_decref(ans);
}
END_TEST

START_TEST(matrix_points_scalar_inf)
{
    json_t *ans = load_fix("range_matrix.json");
    fm_err err = {0};
    json_t *out = fm_metrics_normalize(ans, 100, 2, &err);
    ck_assert_str_eq(json_string_value(json_object_get(out, "resultType")), "matrix");
    json_t *vals = json_object_get(json_array_get(json_object_get(out, "series"), 0), "values");
    ck_assert_int_eq(json_array_size(vals), 2);
    ck_assert(json_is_true(json_object_get(out, "truncated")));
    json_decref(out);
    json_decref(ans);
    ans = load_fix("instant_scalar.json");
    out = fm_metrics_normalize(ans, 100, 100, &err);
    ck_assert_int_eq(json_integer_value(json_object_get(
                         json_array_get(json_object_get(out, "series"), 0), "value")),
                     42);
    json_decref(out);
    json_decref(ans);
    ans = load_fix("instant_inf.json");
    out = fm_metrics_normalize(ans, 100, 100, &err);
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_array_get(json_object_get(out, "series"), 0), "value")),
                     "+Inf");
    json_decref(out);
    json_decref(ans);
}
END_TEST

START_TEST(prometheus_error_readable)
{
    json_t *ans = load_fix("error_bad_data.json");
    fm_err err = {0};
    ck_assert_ptr_null(fm_metrics_normalize(ans, 100, 100, &err));
    ck_assert_int_eq(err.code, FM_ERR_BACKEND);
    ck_assert_ptr_nonnull(strstr(err.text, "bad_data"));
    ck_assert_ptr_nonnull(strstr(err.text, "unclosed left parenthesis"));
    json_decref(ans);
    json_t *junk = json_pack("{s:i}", "x", 1);
    fm_err_clear(&err);
    ck_assert_ptr_null(fm_metrics_normalize(junk, 1, 1, &err));
    ck_assert_int_eq(err.code, FM_ERR_PARSE);
    json_decref(junk);
}
END_TEST

START_TEST(open_and_unreachable)
{
    const struct fm_metrics_ops *ops;
    void *st;
    fm_err err = {0};
    json_t *sec = json_pack("{s:s, s:s}", "backend", "grafana", "url", "http://127.0.0.1:1");
    ck_assert_int_eq(fm_metrics_open(sec, &ops, &st, &err), -1);
    ck_assert_int_eq(err.code, FM_ERR_NOT_CONFIGURED);
    ck_assert_ptr_nonnull(strstr(err.text, "datasource_uid"));
    json_decref(sec);
    /* port 1 on loopback: nothing listens */
    sec = json_pack("{s:s, s:I, s:I}", "url", "http://127.0.0.1:1/", "timeout_ms", (json_int_t)1000,
                    "max_range_s", (json_int_t)3600);
    fm_err_clear(&err);
    ck_assert_int_eq(fm_metrics_open(sec, &ops, &st, &err), 0);
    json_decref(sec);
    ck_assert_ptr_null(ops->query_instant(st, "up", 0, &err));
    ck_assert_int_eq(err.code, FM_ERR_UNAVAILABLE);
    ck_assert_ptr_nonnull(strstr(err.text, "Prometheus at http://127.0.0.1:1"));
    ck_assert_ptr_nonnull(strstr(err.text, "metrics.url"));
    fm_err_clear(&err);
    ck_assert_ptr_null(ops->query_range(st, "up", 0, 7200, 60, &err));
    ck_assert_int_eq(err.code, FM_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err.text, "max_range_s"));
    ops->close(st);
}
END_TEST

/* ---- gpu_health through a fake metrics backend ----------------------- */

static json_t *fake_answer;
/* The counters one window ago (the "offset" query): NULL means no
 * samples that far back; fake_past_fails makes that query fail. */
static json_t *fake_past;
static bool fake_past_fails;

static json_t *fake_instant(void *st, const char *promql, double t, fm_err *err)
{
    ck_assert_ptr_nonnull(strstr(promql, "Hostname=\"gpu-b01\""));
    if (strstr(promql, "} offset ")) {
        if (fake_past_fails) {
            fm_err_set(err, FM_ERR_TIMEOUT, "prometheus did not answer in 5000 ms");
            return NULL;
        }
        if (!fake_past) {
            json_t *empty = json_pack("{s:s, s:{s:s, s:[]}}", "status", "success", "data",
                                      "resultType", "vector", "result");
            json_t *r = fm_metrics_normalize(empty, 1000, 1000, err);
            json_decref(empty);
            return r;
        }
        return fm_metrics_normalize(fake_past, 1000, 1000, err);
    }
    return fm_metrics_normalize(fake_answer, 1000, 1000, err);
}

static json_t *fake_range(void *st, const char *q, double a, double b, double c, fm_err *err)
{
    fm_err_set(err, FM_ERR_INTERNAL, "not used");
    return NULL;
}

static void fake_close(void *st) {}

static const struct fm_metrics_ops fake_ops = {
    .name = "fake", .query_instant = fake_instant, .query_range = fake_range, .close = fake_close};

static json_t *call_gpu_health(const char *cfg_json, bool detail)
{
    static fm_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.cfg.root = json_loads(cfg_json, 0, NULL);
    ctx.be.metrics = &fake_ops;
    json_t *args = json_pack("{s:s, s:b}", "node", "gpu-b01", "detail", detail);
    fm_call call = {.ctx = &ctx, .args = args};
    fm_err err = {0};
    json_t *out = fm_tool_gpu_health(&call, &err);
    ck_assert_msg(out != NULL, "%s", err.text);
    json_decref(args);
    json_decref(ctx.cfg.root);
    return out;
}

static json_t *gpu_entry(json_t *out, int idx)
{
    size_t i;
    json_t *g;
    json_array_foreach(json_object_get(out, "gpus"), i, g)
    {
        if (json_integer_value(json_object_get(g, "gpu")) == idx) return g;
    }
    return NULL;
}

/* Found in a review: a series whose gpu label is empty was filed under
 * GPU 0 (strtol reads "" as 0), so a series after GPU 0's could turn a
 * healthy GPU 0 critical. */
START_TEST(empty_gpu_label_is_no_gpu)
{
    fake_past = NULL;
    fake_past_fails = false;
    fake_answer =
        json_loads("{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":["
                   "{\"metric\":{\"__name__\":\"DCGM_FI_DEV_GPU_TEMP\",\"gpu\":\"0\",\"Hostname\":"
                   "\"gpu-b01\"},\"value\":[1000,\"50\"]},"
                   "{\"metric\":{\"__name__\":\"DCGM_FI_DEV_GPU_TEMP\",\"gpu\":\"\",\"Hostname\":"
                   "\"gpu-b01\"},\"value\":[1000,\"99\"]}]}}",
                   0, NULL);
    ck_assert_ptr_nonnull(fake_answer);
    json_t *out = call_gpu_health("{}", true);
    ck_assert_int_eq(json_integer_value(json_object_get(out, "seen_gpus")), 1);
    json_t *g0 = gpu_entry(out, 0);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(g0, "temp_c"), "value")),
                     50);
    ck_assert_str_eq(json_string_value(json_object_get(g0, "status")), "ok");
    json_decref(out);
    json_decref(fake_answer);
    fake_answer = NULL;
}
END_TEST

/* A node name goes into PromQL regex matchers (instance=~"NAME(:port)?"):
 * its '.' must match a dot alone, and a backend's node state that is not
 * a string is skipped, not printed from NULL. */
START_TEST(read_helpers_take_names_literally)
{
    char re[64];
    fm_read_regex_literal(re, sizeof re, "gpu.a01");
    ck_assert_str_eq(re, "gpu\\\\.a01");
    fm_read_regex_literal(re, sizeof re, "gpu-a01_x");
    ck_assert_str_eq(re, "gpu-a01_x");
    char tiny[6];
    fm_read_regex_literal(tiny, sizeof tiny, "a.b.c");
    ck_assert_str_eq(tiny, "a\\\\.");
    char st[64];
    json_t *state = json_pack("[s, i, n, s]", "IDLE", 5, "DRAIN");
    fm_read_state_join(state, st, sizeof st);
    ck_assert_str_eq(st, "IDLE+DRAIN");
    json_decref(state);
    state = json_pack("[i]", 5);
    fm_read_state_join(state, st, sizeof st);
    ck_assert_str_eq(st, "UNKNOWN");
    json_decref(state);
}
END_TEST

START_TEST(gpu_health_verdict)
{
    fake_answer = load_fix("gpu_health_gpu-b01.json");
    json_t *out = call_gpu_health("{\"metrics\":{\"gpu_health\":{\"expected_gpus\":8}}}", false);
    ck_assert_str_eq(json_string_value(json_object_get(out, "verdict")), "faulty");
    ck_assert_int_eq(json_integer_value(json_object_get(out, "seen_gpus")), 7);
    ck_assert_str_eq(json_string_value(json_object_get(out, "expected_from")), "config");
    /* compact: only the three GPUs that are not ok */
    ck_assert_int_eq(json_array_size(json_object_get(out, "gpus")), 3);
    json_t *g3 = gpu_entry(out, 3), *g1 = gpu_entry(out, 1), *g6 = gpu_entry(out, 6);
    ck_assert_str_eq(json_string_value(json_object_get(g3, "status")), "crit");
    ck_assert_ptr_nonnull(
        strstr(json_string_value(json_array_get(json_object_get(g3, "issues"), 0)), "GPU missing"));
    ck_assert_str_eq(json_string_value(json_object_get(g1, "status")), "crit"); /* 92 C >= 90 */
    ck_assert_str_eq(json_string_value(json_object_get(g6, "status")), "warn"); /* 500 replays */
    json_t *c = json_object_get(out, "counts");
    ck_assert_int_eq(json_integer_value(json_object_get(c, "ok")), 5);
    ck_assert_int_eq(json_integer_value(json_object_get(c, "warn")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(c, "crit")), 2);
    json_decref(out);

    /* thresholds come from config; detail lists every GPU with values */
    out = call_gpu_health("{\"metrics\":{\"gpu_health\":{\"temp_warn\":95,\"temp_crit\":99,"
                          "\"pcie_replay_warn\":1000}}}",
                          true);
    ck_assert_str_eq(json_string_value(json_object_get(out, "expected_from")), "metrics");
    g1 = gpu_entry(out, 1);
    ck_assert_str_eq(json_string_value(json_object_get(g1, "status")), "warn"); /* clocks only */
    json_t *ce = json_object_get(g1, "clock_events");
    ck_assert_int_eq(json_integer_value(json_object_get(ce, "value")), 0x60);
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(ce, "reasons"), 0)),
                     "sw_thermal");
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(ce, "reasons"), 1)),
                     "hw_thermal");
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(g1, "temp_c"), "value")),
                     92);
    ck_assert_str_eq(json_string_value(json_object_get(gpu_entry(out, 6), "status")), "ok");
    ck_assert_int_eq(json_array_size(json_object_get(out, "gpus")), 8);
    json_decref(out);

    /* Counters judged by growth: the same 500 replays an hour ago means
     * none since, so GPU 6 is ok; the issue text says which it was. */
    fake_past = fake_answer;
    out = call_gpu_health("{\"metrics\":{\"gpu_health\":{\"expected_gpus\":8}}}", true);
    json_t *pr = json_object_get(gpu_entry(out, 6), "pcie_replay");
    ck_assert_str_eq(json_string_value(json_object_get(pr, "status")), "ok");
    ck_assert(json_number_value(json_object_get(pr, "increase")) == 0);
    ck_assert_str_eq(json_string_value(json_object_get(pr, "window")), "1h");
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(out, "counts"), "warn")),
                     0);
    json_decref(out);
    fake_past = NULL;
    out = call_gpu_health("{\"metrics\":{\"gpu_health\":{\"counter_window\":\"15m\"}}}", false);
    const char *issue =
        json_string_value(json_array_get(json_object_get(gpu_entry(out, 6), "issues"), 0));
    ck_assert_ptr_nonnull(strstr(issue, "no sample from 15m ago"));
    json_decref(out);
    /* The history query failing costs the growth, not the answer. */
    fake_past_fails = true;
    out = call_gpu_health("{}", false);
    ck_assert_str_eq(json_string_value(json_object_get(out, "verdict")), "faulty");
    ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(out, "note")), "totals"));
    json_decref(out);
    fake_past_fails = false;
    json_decref(fake_answer);

    /* no series at all: unknown, with what to check */
    fake_answer = json_pack("{s:s, s:{s:s, s:[]}}", "status", "success", "data", "resultType",
                            "vector", "result");
    out = call_gpu_health("{}", false);
    ck_assert_str_eq(json_string_value(json_object_get(out, "verdict")), "unknown");
    ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(out, "note")), "dcgm-exporter"));
    json_decref(out);
    json_decref(fake_answer);
}
END_TEST

static Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics_prom");
    TCase *tc = tcase_create("prom");
    tcase_add_test(tc, vector_and_truncation);
    tcase_add_test(tc, matrix_points_scalar_inf);
    tcase_add_test(tc, prometheus_error_readable);
    tcase_add_test(tc, open_and_unreachable);
    tcase_add_test(tc, gpu_health_verdict);
    tcase_add_test(tc, empty_gpu_label_is_no_gpu);
    tcase_add_test(tc, read_helpers_take_names_literally);
    suite_add_tcase(s, tc);
    return s;
}

FM_TEST_MAIN(metrics_suite)
