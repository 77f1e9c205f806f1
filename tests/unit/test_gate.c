/* Gate decisions in their fixed order. */
#include "fleetmcp/fm_audit.h"
#include "fleetmcp/fm_gate.h"
#include "fleetmcp/fm_runbook.h"
#include "fleetmcp/fm_slurm.h"
#include "fm_test.h"
#include "test_core_helpers.h"

static int idx(test_server *t, const char *name)
{
    int i = fm_registry_find(&t->ctx, name);
    ck_assert_int_ge(i, 0);
    return i;
}

START_TEST(reads_always_allowed)
{
    test_server t;
    ts_open(&t, NULL);
    fm_store_setting_set(&t.ctx.store, "killswitch", "engaged: test", NULL);
    fm_gate_decision d;
    fm_gate_decide(&t.ctx, idx(&t, "fleet_status"), NULL, &d);
    ck_assert_int_eq(d.verdict, FM_GATE_ALLOW);
    ts_close(&t);
}
END_TEST

START_TEST(killswitch_blocks_mutations_but_not_itself)
{
    test_server t;
    ts_open(&t, "mode: fleet\n");
    fm_store_setting_set(&t.ctx.store, "killswitch", "engaged: test", NULL);
    fm_gate_decision d;
    fm_gate_decide(&t.ctx, idx(&t, "killswitch_engage"), NULL, &d);
    ck_assert_int_eq(d.verdict, FM_GATE_ALLOW);
    /* Releasing is not blocked by the switch, only by the approval rule. */
    fm_gate_decide(&t.ctx, idx(&t, "killswitch_release"), NULL, &d);
    ck_assert_int_eq(d.verdict, FM_GATE_DENY);
    ck_assert_int_eq(d.code, FM_ERR_APPROVAL);
    ts_close(&t);
}
END_TEST

START_TEST(killswitch_file)
{
    test_server t;
    char path[] = "/tmp/fm-ks-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    char yaml[128];
    snprintf(yaml, sizeof yaml, "killswitch:\n  file: %s\n", path);
    ts_open(&t, yaml);
    char why[256];
    ck_assert(fm_killswitch_engaged(&t.ctx, why, sizeof why));
    ck_assert_ptr_nonnull(strstr(why, path));
    unlink(path);
    ck_assert(!fm_killswitch_engaged(&t.ctx, why, sizeof why));
    /* A path that cannot be checked (here a symlink loop; an NFS mount
     * that does not answer alike) may hide the file: engaged. */
    ck_assert_int_eq(symlink(path, path), 0);
    ck_assert(fm_killswitch_engaged(&t.ctx, why, sizeof why));
    ck_assert_msg(strstr(why, "cannot be checked"), "%s", why);
    unlink(path);
    ck_assert(!fm_killswitch_engaged(&t.ctx, why, sizeof why));
    ts_close(&t);
}
END_TEST

START_TEST(shadow_records_hitl)
{
    test_server t;
    ts_open(&t, NULL); /* default mode: shadow */
    fm_gate_decision d;
    /* Without an approval: recorded, and it says it would need one. */
    json_t *args = json_pack("{s:s}", "reason", "unit test");
    fm_gate_decide(&t.ctx, idx(&t, "killswitch_release"), args, &d);
    ck_assert_int_eq(d.verdict, FM_GATE_SHADOW);
    ck_assert_int_eq(d.code, FM_ERR_APPROVAL);
    ck_assert_ptr_nonnull(strstr(d.reason, "shadow"));
    /* With one: it would run; the approval is not used up (none exists). */
    json_object_set_new(args, "approval_id", json_string("ap-0123456789abcdef"));
    fm_gate_decide(&t.ctx, idx(&t, "killswitch_release"), args, &d);
    ck_assert_int_eq(d.verdict, FM_GATE_SHADOW);
    ck_assert_int_eq(d.code, FM_ERR_DENIED);
    ck_assert_ptr_nonnull(strstr(d.reason, "would run"));
    json_decref(args);
    ts_close(&t);
}
END_TEST

START_TEST(rate_limit_from_config)
{
    test_server t;
    ts_open(&t, "rate_limits:\n  killswitch_engage: 1\n  ticket_create: 3\n");
    /* killswitch_engage is never limited, whatever the config says. */
    ck_assert_int_eq(fm_gate_rate_limit(&t.ctx, idx(&t, "killswitch_engage")), 0);
    ck_assert_int_eq(fm_gate_rate_limit(&t.ctx, idx(&t, "ticket_create")), 3);
    ts_close(&t);
    ts_open(&t, NULL);
    ck_assert_int_eq(fm_gate_rate_limit(&t.ctx, idx(&t, "ticket_create")), 20);
    ts_close(&t);
    /* The tool's own config key (its schema file's rate_limit.config). */
    ts_open(&t, "tickets:\n  max_creates_per_hour: 7\n");
    ck_assert_int_eq(fm_gate_rate_limit(&t.ctx, idx(&t, "ticket_create")), 7);
    ck_assert_int_eq(fm_gate_rate_limit(&t.ctx, idx(&t, "ticket_update")), 60);
    ck_assert_int_eq(fm_gate_rate_limit(&t.ctx, idx(&t, "fleet_status")), 0);
    ts_close(&t);
}
END_TEST

START_TEST(read_only_hides_mutations)
{
    test_server t;
    ts_open(&t, "read_only: true\n");
    ck_assert_int_lt(fm_registry_find(&t.ctx, "killswitch_release"), 0);
    ck_assert_int_ge(fm_registry_find(&t.ctx, "killswitch_engage"), 0);
    ck_assert_int_ge(fm_registry_find(&t.ctx, "fleet_status"), 0);
    ts_close(&t);
}
END_TEST

START_TEST(enabled_tools_whitelist)
{
    test_server t;
    ts_open(&t, "enabled_tools: [fleet_status]\n");
    ck_assert_int_ge(fm_registry_find(&t.ctx, "fleet_status"), 0);
    ck_assert_int_lt(fm_registry_find(&t.ctx, "audit_query"), 0);
    ts_close(&t);
}
END_TEST

/* A workflow's escalation ticket is an internal call of the tool its
 * action's data names, decided by the gate: past the kill switch and the
 * hourly limit only with the exemptions that data grants, and never past
 * any other step. */
START_TEST(internal_calls_pass_only_their_data_exemptions)
{
    test_server t;
    ts_open(&t, "mode: fleet\ntickets:\n  max_creates_per_hour: 1\n");
    const fm_action_def *esc = NULL;
    for (size_t i = 0; i < fm_action_count && !esc; i++)
        if (fm_action_table[i].ticket.tool) esc = &fm_action_table[i];
    ck_assert_ptr_nonnull(esc);
    ck_assert_uint_eq(esc->ticket.exempt, FM_GATE_EXEMPT_KILLSWITCH | FM_GATE_EXEMPT_RATE_LIMIT);
    int ti = idx(&t, esc->ticket.tool);
    json_t *args =
        json_pack("{s:s, s:s, s:s}", "summary", "s", "node", "gpu-a01", "fault_class", "gpu_hang");
    fm_gate_decision d;
    fm_store_setting_set(&t.ctx.store, "killswitch", "engaged: test", NULL);
    fm_gate_decide(&t.ctx, ti, args, &d);
    ck_assert_int_eq(d.code, FM_ERR_DENIED);
    fm_gate_decide_internal(&t.ctx, ti, args, 0, &d);
    ck_assert_int_eq(d.code, FM_ERR_DENIED);
    fm_gate_decide_internal(&t.ctx, ti, args, esc->ticket.exempt, &d);
    ck_assert_int_eq(d.verdict, FM_GATE_ALLOW);
    fm_store_setting_set(&t.ctx.store, "killswitch", "released: test", NULL);
    /* One allowed ticket_create this hour uses the limit of 1 up. */
    fm_audit_rec rec = {.phase = "call", .tool = esc->ticket.tool, .decision = "allow"};
    ck_assert_int_gt(fm_audit_append(&t.ctx, &rec, NULL), 0);
    fm_gate_decide(&t.ctx, ti, args, &d);
    ck_assert_int_eq(d.code, FM_ERR_RATE_LIMITED);
    fm_gate_decide_internal(&t.ctx, ti, args, esc->ticket.exempt, &d);
    ck_assert_int_eq(d.verdict, FM_GATE_ALLOW);
    /* No exemption reaches past steps 4 and 5 or beyond create tools: a
     * node action stops at the kill switch, a hidden tool stays hidden. */
    fm_store_setting_set(&t.ctx.store, "killswitch", "engaged: test", NULL);
    json_t *drain = json_pack("{s:s, s:s}", "node", "gpu-a01", "reason", "unit test");
    /* Slurm only needs to be there for step 2: the kill switch refuses
     * before anything asks it. */
    static const struct fm_slurm_ops none = {.name = "unused"};
    const struct fm_slurm_ops *was = t.ctx.be.slurm;
    t.ctx.be.slurm = &none;
    fm_gate_decide_internal(&t.ctx, idx(&t, "node_drain"), drain, ~0u, &d);
    t.ctx.be.slurm = was;
    ck_assert_int_eq(d.code, FM_ERR_DENIED);
    ck_assert_ptr_nonnull(strstr(d.reason, "kill switch"));
    json_decref(drain);
    t.ctx.cfg.read_only = true;
    fm_gate_decide_internal(&t.ctx, ti, args, ~0u, &d);
    ck_assert_int_eq(d.code, FM_ERR_DENIED);
    ck_assert_ptr_nonnull(strstr(d.reason, "read_only"));
    json_decref(args);
    ts_close(&t);
}
END_TEST

static Suite *gate_suite(void)
{
    Suite *s = suite_create("gate");
    TCase *tc = tcase_create("decisions");
    tcase_add_test(tc, reads_always_allowed);
    tcase_add_test(tc, killswitch_blocks_mutations_but_not_itself);
    tcase_add_test(tc, killswitch_file);
    tcase_add_test(tc, shadow_records_hitl);
    tcase_add_test(tc, rate_limit_from_config);
    tcase_add_test(tc, read_only_hides_mutations);
    tcase_add_test(tc, enabled_tools_whitelist);
    tcase_add_test(tc, internal_calls_pass_only_their_data_exemptions);
    suite_add_tcase(s, tc);
    return s;
}

FM_TEST_MAIN(gate_suite)
