/* Alert intake without the stack: the payload's shape and bounds (refused
 * whole, nothing recorded), and what happens to firing, resolved,
 * unmapped and repeated alerts when no backend is configured (the
 * diagnosis fails and says why; nothing is made).  The real loop (Slurm,
 * SSH, tickets, plans) is stage integration:alerts. */
#include "fleetmcp/fm_alert.h"
#include "fleetmcp/fm_db.h"
#include "fleetmcp/fm_util.h"
#include "fm_test.h"
#include "test_core_helpers.h"

static long long audit_rows(fm_ctx *ctx, const char *tool)
{
    fm_db_stmt *s = NULL;
    long long n = -1;
    if (fm_db_prepare_v2(ctx->store.db, "SELECT count(*) FROM audit WHERE tool=?", -1, &s, NULL) ==
        FM_DB_OK) {
        fm_db_bind_text(s, 1, tool, -1, FM_DB_STATIC);
        if (fm_db_step(s) == FM_DB_ROW) n = fm_db_column_int64(s, 0);
    }
    fm_db_finalize(s);
    return n;
}

static void refused(fm_ctx *ctx, const char *body, fm_code code, const char *words)
{
    fm_err err = {0};
    json_t *r = fm_alert_intake(ctx, body, strlen(body), &err);
    ck_assert_msg(r == NULL, "accepted: %s", body);
    ck_assert_int_eq(err.code, code);
    ck_assert_msg(strstr(err.text, words) && strstr(err.text, "nothing was done"), "%s", err.text);
}

#define ALERT(status, labels, fp)                                                                  \
    "{\"status\":\"" status "\",\"labels\":" labels ",\"annotations\":{\"summary\":\"s\"},"        \
    "\"startsAt\":\"2026-12-06T06:00:00Z\",\"fingerprint\":\"" fp "\"}"

START_TEST(malformed_payloads_are_refused_whole)
{
    test_server t;
    ts_open(&t, NULL);
    refused(&t.ctx, "{\"version\":\"4\",\"alerts\":[", FM_ERR_INVALID, "not JSON");
    refused(&t.ctx, "[]", FM_ERR_INVALID, "JSON object");
    refused(&t.ctx, "{\"version\":\"3\",\"alerts\":[]}", FM_ERR_INVALID, "version must be");
    refused(&t.ctx, "{\"version\":\"4\",\"alerts\":{}}", FM_ERR_INVALID, "must be an array");
    refused(&t.ctx, "{\"version\":\"4\",\"alerts\":[" ALERT("firing", "[]", "a") "]}",
            FM_ERR_INVALID, "alerts[0].labels");
    refused(&t.ctx,
            "{\"version\":\"4\",\"alerts\":[" ALERT("firing", "{\"node\":\"n1\"}", "a") "," ALERT(
                "pending", "{\"node\":\"n1\"}", "b") "]}",
            FM_ERR_INVALID, "alerts[1].status");
    refused(&t.ctx, "{\"version\":\"4\",\"alerts\":[" ALERT("firing", "{\"node\":7}", "a") "]}",
            FM_ERR_INVALID, "alerts[0].labels.node");
    /* 101 alerts: over the default max_alerts (100). */
    size_t one = strlen(ALERT("firing", "{\"node\":\"n1\"}", "a")) + 1;
    char *many = malloc(64 + 101 * one);
    ck_assert_ptr_nonnull(many);
    size_t at = (size_t)sprintf(many, "{\"version\":\"4\",\"alerts\":[");
    for (int i = 0; i < 101; i++)
        at += (size_t)sprintf(many + at, "%s" ALERT("firing", "{\"node\":\"n1\"}", "a"),
                              i ? "," : "");
    sprintf(many + at, "]}");
    refused(&t.ctx, many, FM_ERR_TOO_LARGE, "alerts.max_alerts");
    free(many);
    /* Over max_bytes (1 MiB by default): refused before it is parsed. */
    size_t big = 1024 * 1024 + 16;
    char *huge = malloc(big + 1);
    ck_assert_ptr_nonnull(huge);
    memset(huge, ' ', big);
    huge[big] = '\0';
    refused(&t.ctx, huge, FM_ERR_TOO_LARGE, "alerts.max_bytes");
    free(huge);
    ck_assert_int_eq(audit_rows(&t.ctx, "alert_intake"), 0);
    ts_close(&t);
}
END_TEST

START_TEST(firing_resolved_unmapped_and_repeats)
{
    test_server t;
    ts_open(&t, "alerts:\n  max_alerts: 5\n  dedup_window_s: 600\n");
    const char *body = "{\"version\":\"4\",\"alerts\":[" ALERT(
        "firing", "{\"alertname\":\"GpuXid\",\"instance\":\"gpu-x01:9400\"}",
        "f1") "," ALERT("resolved", "{\"alertname\":\"GpuHot\",\"Hostname\":\"gpu-x02\"}",
                        "f2") "," ALERT("firing", "{\"alertname\":\"Other\",\"job\":\"x\"}",
                                        "f3") "]}";
    fm_err err = {0};
    json_t *r = fm_alert_intake(&t.ctx, body, strlen(body), &err);
    ck_assert_msg(r != NULL, "%s", err.text);
    ck_assert_int_eq(json_integer_value(json_object_get(r, "received")), 3);
    ck_assert_int_eq(json_integer_value(json_object_get(r, "firing")), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(r, "resolved")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(r, "unmapped")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(r, "tickets")), 0);
    json_t *a = json_object_get(r, "alerts");
    /* No Slurm to check against: the instance's host is taken, port
     * dropped; with no backend the diagnosis fails and says why. */
    ck_assert_str_eq(fm_json_str(json_array_get(a, 0), "node", ""), "gpu-x01");
    ck_assert_str_eq(fm_json_str(json_array_get(a, 0), "outcome", ""), "diagnosis failed");
    ck_assert_ptr_nonnull(strstr(fm_json_str(json_array_get(a, 0), "error", ""), "diagnose"));
    ck_assert_ptr_nonnull(strstr(fm_json_str(json_array_get(a, 1), "outcome", ""), "resolved"));
    ck_assert_ptr_null(json_object_get(json_array_get(a, 2), "node"));
    json_decref(r);
    /* Every alert has its audit row; the failed diagnosis went through the
     * gate as a tools/call. */
    ck_assert_int_eq(audit_rows(&t.ctx, "alert_intake"), 3);
    ck_assert_int_eq(audit_rows(&t.ctx, "diagnose"), 1);
    /* Both again: the resolved one is a repeat (recorded only); the firing
     * one whose diagnosis failed is taken again, not lost as a repeat. */
    const char *again = "{\"version\":\"4\",\"alerts\":[" ALERT(
        "firing", "{\"alertname\":\"GpuXid\",\"instance\":\"gpu-x01:9400\"}",
        "f1") "," ALERT("resolved", "{\"alertname\":\"GpuHot\",\"Hostname\":\"gpu-x02\"}",
                        "f2") "]}";
    r = fm_alert_intake(&t.ctx, again, strlen(again), &err);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(json_integer_value(json_object_get(r, "repeats")), 1);
    ck_assert_ptr_nonnull(strstr(
        fm_json_str(json_array_get(json_object_get(r, "alerts"), 1), "outcome", ""), "repeat"));
    json_decref(r);
    ck_assert_int_eq(audit_rows(&t.ctx, "alert_intake"), 5);
    ck_assert_int_eq(audit_rows(&t.ctx, "diagnose"), 2);
    /* alerts.max_alerts from the config. */
    refused(
        &t.ctx,
        "{\"version\":\"4\",\"alerts\":[" ALERT("firing", "{}", "1") "," ALERT(
            "firing", "{}",
            "2") "," ALERT("firing", "{}",
                           "3") "," ALERT("firing", "{}",
                                          "4") "," ALERT("firing", "{}",
                                                         "5") "," ALERT("firing", "{}", "6") "]}",
        FM_ERR_TOO_LARGE, "at most 5");
    ts_close(&t);
}
END_TEST

static Suite *alert_suite(void)
{
    Suite *s = suite_create("alert");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, malformed_payloads_are_refused_whole);
    tcase_add_test(tc, firing_resolved_unmapped_and_repeats);
    suite_add_tcase(s, tc);
    return s;
}

FM_TEST_MAIN(alert_suite)
