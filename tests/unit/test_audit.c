/* The audit chain: rows per call, redaction, tamper detection. */
#include "fleetmcp/fm_audit.h"
#include "fleetmcp/fm_util.h"
#include "fm_test.h"
#include "test_core_helpers.h"

static long long count(test_server *t, const char *where)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM audit WHERE %s", where);
    sqlite3_stmt *s;
    ck_assert_int_eq(sqlite3_prepare_v2(t->ctx.store.db, sql, -1, &s, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
    long long n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return n;
}

static void exec(test_server *t, const char *sql)
{
    ck_assert_int_eq(sqlite3_exec(t->ctx.store.db, sql, NULL, NULL, NULL), SQLITE_OK);
}

START_TEST(rows_per_call)
{
    test_server t;
    ts_open(&t, "mode: fleet\n");
    ts_init(&t);
    json_decref(ts_call(&t, "fleet_status", "{}"));
    ck_assert_int_eq(count(&t, "tool='fleet_status' AND phase='call' AND decision='allow'"), 1);
    json_decref(ts_call(&t, "killswitch_engage", "{\"reason\":\"unit test\"}"));
    ck_assert_int_eq(count(&t, "tool='killswitch_engage' AND phase='intent'"), 1);
    ck_assert_int_eq(count(&t, "tool='killswitch_engage' AND phase='result' AND call_ref>0"), 1);
    json_decref(ts_call(&t, "killswitch_release", "{\"reason\":\"unit test\"}"));
    ck_assert_int_eq(count(&t, "tool='killswitch_release' AND decision='deny'"), 1);
    json_decref(ts_call(&t, "audit_query", "{\"limit\":0}"));
    ck_assert_int_eq(count(&t, "tool='audit_query' AND decision='invalid'"), 1);
    /* Every row names its initiator and client. */
    ck_assert_int_eq(count(&t, "initiator_kind='agent' AND client_name='unit'"),
                     count(&t, "1=1"));
    int64_t rows, bad;
    fm_err err = {0};
    ck_assert_int_eq(fm_audit_verify(&t.ctx.store, &rows, &bad, &err), 0);
    ck_assert_int_eq(rows, 5);
    ts_close(&t);
}
END_TEST

START_TEST(secrets_redacted)
{
    test_server t;
    ts_open(&t, NULL);
    json_t *args = json_pack("{s:s, s:{s:s, s:s}, s:[{s:s}]}", "node", "gpu-a01", "auth",
                             "api_token", "s3cr3t-value", "user", "ops", "list", "password",
                             "hunter2");
    fm_audit_rec r = {.phase = "call", .tool = "x", .args = args, .decision = "allow"};
    ck_assert_int_gt(fm_audit_append(&t.ctx, &r, NULL), 0);
    ck_assert_int_eq(count(&t, "args LIKE '%s3cr3t%' OR args LIKE '%hunter2%'"), 0);
    ck_assert_int_eq(count(&t, "args LIKE '%[REDACTED]%' AND args LIKE '%ops%'"), 1);
    json_decref(args);
    ck_assert(fm_key_is_secret("Authorization"));
    ck_assert(fm_key_is_secret("jira_pat") == false);
    ck_assert(fm_key_is_secret("pat"));
    ck_assert(!fm_key_is_secret("node"));
    ts_close(&t);
}
END_TEST

START_TEST(tampering_detected)
{
    test_server t;
    ts_open(&t, NULL);
    for (int i = 0; i < 5; i++) {
        fm_audit_rec r = {.phase = "call", .tool = "fleet_status", .decision = "allow"};
        ck_assert_int_gt(fm_audit_append(&t.ctx, &r, NULL), 0);
    }
    int64_t rows, bad;
    fm_err err = {0};
    ck_assert_int_eq(fm_audit_verify(&t.ctx.store, &rows, &bad, &err), 0);
    exec(&t, "UPDATE audit SET decision='deny' WHERE id=3");
    ck_assert_int_eq(fm_audit_verify(&t.ctx.store, &rows, &bad, &err), -1);
    ck_assert_int_eq(bad, 3);
    exec(&t, "UPDATE audit SET decision='allow' WHERE id=3");
    fm_err_clear(&err);
    ck_assert_int_eq(fm_audit_verify(&t.ctx.store, &rows, &bad, &err), 0);
    exec(&t, "DELETE FROM audit WHERE id=2");
    ck_assert_int_eq(fm_audit_verify(&t.ctx.store, &rows, &bad, &err), -1);
    ck_assert_int_eq(bad, 3);
    ts_close(&t);
}
END_TEST

START_TEST(query_filters)
{
    test_server t;
    ts_open(&t, NULL);
    ts_init(&t);
    json_decref(ts_call(&t, "fleet_status", "{}"));
    json_decref(ts_call(&t, "killswitch_engage", "{\"reason\":\"q test\"}"));
    json_t *res = ts_call(&t, "audit_query", "{\"tool\":\"killswitch_engage\",\"detail\":true}");
    json_t *sc = json_object_get(res, "structuredContent");
    ck_assert_int_eq(json_integer_value(json_object_get(sc, "count")), 2);
    json_t *intent = json_array_get(json_object_get(sc, "rows"), 1);
    ck_assert_str_eq(json_string_value(json_object_get(intent, "phase")), "intent");
    ck_assert_str_eq(
        json_string_value(json_object_get(json_object_get(intent, "args"), "reason")), "q test");
    json_decref(res);
    res = ts_call(&t, "audit_query", "{\"since\":\"yesterday\"}");
    ck_assert(json_is_true(json_object_get(res, "isError")));
    json_decref(res);
    res = ts_call(&t, "audit_query", "{\"since\":\"1h\",\"initiator\":\"agent\"}");
    ck_assert_int_ge(json_integer_value(json_object_get(
                         json_object_get(res, "structuredContent"), "count")), 3);
    json_decref(res);
    ts_close(&t);
}
END_TEST

static Suite *audit_suite(void)
{
    Suite *s = suite_create("audit");
    TCase *tc = tcase_create("chain");
    tcase_add_test(tc, rows_per_call);
    tcase_add_test(tc, secrets_redacted);
    tcase_add_test(tc, tampering_detected);
    tcase_add_test(tc, query_filters);
    suite_add_tcase(s, tc);
    return s;
}

FM_TEST_MAIN(audit_suite)
