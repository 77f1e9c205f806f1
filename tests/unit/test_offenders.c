/* The repeat-offender escalation the gate files itself goes through the
 * whole call pipeline (fm_tools_call_audited): the ticket it files has
 * its audit rows under ticket_create with the session's identity, and a
 * refused one (ticket_create's hourly limit) is an audited refusal, not
 * a silent drop; the node is blocked either way.  No stack: the local
 * tickets backend on the in-memory store. */
#include "fleetmcp/fm_db.h"
#include "fleetmcp/fm_guardrails.h"
#include "fleetmcp/fm_policy.h"
#include "fleetmcp/fm_util.h"
#include "fm_test.h"
#include "test_core_helpers.h"

/* Column col of the newest audit row of ticket_create for node in phase,
 * or "" (static buffer). */
static const char *audit_col(fm_ctx *ctx, const char *node, const char *phase, const char *col)
{
    static char buf[1024];
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT coalesce(%s,'') FROM audit WHERE tool='ticket_create' AND node=? AND phase=?"
             " ORDER BY id DESC LIMIT 1",
             col);
    fm_db_stmt *s = NULL;
    buf[0] = '\0';
    ck_assert_int_eq(fm_db_prepare_v2(ctx->store.db, sql, -1, &s, NULL), FM_DB_OK);
    fm_db_bind_text(s, 1, node, -1, FM_DB_STATIC);
    fm_db_bind_text(s, 2, phase, -1, FM_DB_STATIC);
    if (fm_db_step(s) == FM_DB_ROW)
        snprintf(buf, sizeof buf, "%s", (const char *)fm_db_column_text(s, 0));
    fm_db_finalize(s);
    return buf;
}

static const char *offender_ticket(fm_ctx *ctx, const char *node, bool *listed)
{
    static char key[64];
    key[0] = '\0';
    *listed = false;
    json_t *l = fm_offender_list(ctx);
    size_t i;
    json_t *o;
    json_array_foreach(l, i, o) if (!strcmp(fm_json_str(o, "node", ""), node))
    {
        *listed = true;
        snprintf(key, sizeof key, "%s", fm_json_str(o, "ticket", ""));
    }
    json_decref(l);
    return key;
}

START_TEST(escalation_is_an_audited_call)
{
    test_server t;
    /* One repair makes an offender; one ticket an hour. */
    ts_open(&t, "guardrails:\n  repeat_offenders:\n    max_repairs: 1\n    window_s: 3600\n"
                "rate_limits:\n  ticket_create: 1\n");
    fm_ctx *ctx = &t.ctx;
    ck_assert_ptr_nonnull(ctx->be.tickets);
    fm_err err = {0};
    ck_assert_msg(fm_node_state_set(ctx, "n1", "repairing", NULL, &err) == 0, "%s", err.text);
    bool listed;
    char key[64];
    snprintf(key, sizeof key, "%s", offender_ticket(ctx, "n1", &listed));
    ck_assert(listed);
    ck_assert_msg(key[0], "n1 is escalated with a ticket");
    /* The ticket's intent (allowed, counted against the hour) and result
     * rows, under ticket_create, saying why the gate filed it. */
    ck_assert_str_eq(audit_col(ctx, "n1", "intent", "decision"), "allow");
    ck_assert_ptr_nonnull(
        strstr(audit_col(ctx, "n1", "intent", "reason"), "repeat offender escalation"));
    ck_assert_str_eq(audit_col(ctx, "n1", "intent", "autonomy"), "create");
    ck_assert_ptr_nonnull(strstr(audit_col(ctx, "n1", "intent", "args"), "repeat_offender"));
    ck_assert_ptr_nonnull(strstr(audit_col(ctx, "n1", "result", "result"), key));
    ck_assert_str_eq(audit_col(ctx, "n1", "result", "error_code"), "");
    /* The session's identity, as on any call it makes. */
    ck_assert_str_ne(audit_col(ctx, "n1", "intent", "initiator_kind"), "");
    ck_assert_int_eq(ts_scalar(ctx->store.db, "SELECT count(*) FROM tickets WHERE node='n1' AND"
                                              " fault_class='repeat_offender'"),
                     1);

    /* The hour's one ticket is used: n2's escalation is refused by the
     * gate, and the refusal is audited; no ticket, yet n2 is blocked. */
    ck_assert_msg(fm_node_state_set(ctx, "n2", "repairing", NULL, &err) == 0, "%s", err.text);
    ck_assert_str_eq(offender_ticket(ctx, "n2", &listed), "");
    ck_assert(listed);
    ck_assert_str_eq(audit_col(ctx, "n2", "call", "decision"), "deny");
    ck_assert_str_eq(audit_col(ctx, "n2", "call", "error_code"), "RATELIMITED");
    ck_assert_ptr_nonnull(
        strstr(audit_col(ctx, "n2", "call", "reason"), "repeat offender escalation"));
    ck_assert_str_eq(audit_col(ctx, "n2", "intent", "decision"), "");
    ck_assert_int_eq(ts_scalar(ctx->store.db, "SELECT count(*) FROM tickets WHERE node='n2'"), 0);
    json_t *v = json_array();
    fm_offender_check(ctx, "n2", v);
    ck_assert(!json_is_true(json_object_get(json_array_get(v, 0), "ok")));
    json_decref(v);

    /* Held to every gate step: with ticket_create disabled the refusal
     * is DENIED, audited the same way. */
    ts_close(&t);
    ts_open(&t, "guardrails:\n  repeat_offenders:\n    max_repairs: 1\n"
                "disabled_tools: [ticket_create]\n");
    ctx = &t.ctx;
    ck_assert_msg(fm_node_state_set(ctx, "n3", "repairing", NULL, &err) == 0, "%s", err.text);
    ck_assert_str_eq(audit_col(ctx, "n3", "call", "error_code"), "DENIED");
    ck_assert_int_eq(ts_scalar(ctx->store.db, "SELECT count(*) FROM tickets"), 0);
    ck_assert_str_eq(offender_ticket(ctx, "n3", &listed), "");
    ck_assert(listed);
    ts_close(&t);
}
END_TEST

/* fm_tools_call_audited hands out the code call_tool refused with, on
 * every refusal path (the gate's steps included), not a word read back
 * from the result's text. */
START_TEST(audited_call_hands_out_the_refusal_code)
{
    test_server t;
    ts_open(&t, "rate_limits:\n  ticket_create: 1\ndisabled_tools: [ticket_update]\n");
    fm_ctx *ctx = &t.ctx;
    json_t *args = json_pack("{s:s, s:s, s:s}", "summary", "unit: refusal codes", "node", "n9",
                             "fault_class", "repeat_offender");
    fm_err err = {0};
    json_t *r = fm_tools_call_audited(ctx, "ticket_create", args, "unit", &err);
    ck_assert_msg(r != NULL, "%s", err.text);
    json_decref(r);
    /* The gate: the hour's one ticket is used. */
    memset(&err, 0, sizeof err);
    ck_assert_ptr_null(fm_tools_call_audited(ctx, "ticket_create", args, "unit", &err));
    ck_assert_int_eq(err.code, FM_ERR_RATE_LIMITED);
    ck_assert_ptr_null(strstr(err.text, "RATELIMITED:")); /* the word is the code's */
    /* The gate: a disabled tool. */
    memset(&err, 0, sizeof err);
    json_t *upd = json_pack("{s:s, s:s}", "key", "FM-1", "comment", "x");
    ck_assert_ptr_null(fm_tools_call_audited(ctx, "ticket_update", upd, "unit", &err));
    ck_assert_int_eq(err.code, FM_ERR_DENIED);
    json_decref(upd);
    /* The input schema, before the gate decides. */
    memset(&err, 0, sizeof err);
    json_t *bad = json_pack("{s:i}", "summary", 7);
    ck_assert_ptr_null(fm_tools_call_audited(ctx, "ticket_create", bad, "unit", &err));
    ck_assert_int_eq(err.code, FM_ERR_INVALID);
    json_decref(bad);
    /* The gate: a hitl tool with no approval is never run for nothing. */
    memset(&err, 0, sizeof err);
    json_t *ks = json_pack("{s:s}", "reason", "unit");
    ck_assert_ptr_null(fm_tools_call_audited(ctx, "killswitch_release", ks, "unit", &err));
    ck_assert_msg(err.code == FM_ERR_APPROVAL || err.code == FM_ERR_SHADOW, "%s: %s",
                  fm_strerror(err.code), err.text);
    ck_assert_int_eq(ctx->last_err_code, err.code);
    json_decref(ks);
    json_decref(args);
    ts_close(&t);
}
END_TEST

static Suite *offenders_suite(void)
{
    Suite *s = suite_create("offenders");
    TCase *tc = tcase_create("escalation");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, escalation_is_an_audited_call);
    tcase_add_test(tc, audited_call_hands_out_the_refusal_code);
    suite_add_tcase(s, tc);
    return s;
}

FM_TEST_MAIN(offenders_suite)
