/* Approver roles and the two-person rule over a config's approvals section. */
#include <string.h>

#include "fleetmcp/fm_approval_roles.h"
#include "fm_test.h"

/* alice holds two keys (laptop and yubikey); bob is on call; carol is an
 * admin but not on call. */
static json_t *approvals(void)
{
    json_t *a = json_loads(
        "{\"keys\": ["
        " {\"id\": \"alice-laptop\", \"public_key\": \"x\", \"person\": \"alice@example.com\","
        "  \"roles\": [\"oncall\", \"fleet-admin\"]},"
        " {\"id\": \"alice-yubikey\", \"public_key\": \"x\", \"person\": \"alice@example.com\","
        "  \"roles\": [\"oncall\"]},"
        " {\"id\": \"bob@example.com\", \"public_key\": \"x\", \"roles\": [\"oncall\"]},"
        " {\"id\": \"carol@example.com\", \"public_key\": \"x\", \"roles\": [\"fleet-admin\"]}],"
        " \"two_person\": {\"above_nodes\": 1, \"actions\": [\"killswitch_release\"]},"
        " \"require_role\": {\"node_drain\": \"oncall\"}}",
        0, NULL);
    ck_assert_ptr_nonnull(a);
    return a;
}

static int quorum(const json_t *cfg, const fm_approval_need *need, const char *const *ids, size_t n,
                  fm_err *err)
{
    fm_err_clear(err);
    return fm_approval_quorum(cfg, need, ids, n, NULL, 0, err);
}

START_TEST(one_node_one_person)
{
    json_t *cfg = approvals();
    fm_approval_need need;
    fm_approval_need_for(cfg, 1, false, NULL, NULL, &need);
    ck_assert_int_eq(need.people, 1);
    fm_err err;
    const char *none[] = {NULL};
    ck_assert_int_eq(quorum(cfg, &need, none, 0, &err), FM_ERR_APPROVAL);
    ck_assert_ptr_nonnull(strstr(err.text, "1 distinct person"));
    const char *bob[] = {"bob@example.com"};
    ck_assert_int_eq(quorum(cfg, &need, bob, 1, &err), 0);
    /* An elicited approval is enough where one person and no role are asked. */
    const char *el[] = {"elicitation:mcp-cli"};
    ck_assert_int_eq(quorum(cfg, &need, el, 1, &err), 0);
    json_decref(cfg);
}
END_TEST

START_TEST(two_person_rule)
{
    json_t *cfg = approvals();
    fm_approval_need need;
    fm_approval_need_for(cfg, 3, false, NULL, NULL, &need);
    ck_assert_int_eq(need.people, 2);
    ck_assert_ptr_nonnull(strstr(need.why, "3 nodes"));
    fm_err err;
    /* One approval is not enough where two are needed. */
    const char *one[] = {"bob@example.com"};
    ck_assert_int_eq(quorum(cfg, &need, one, 1, &err), FM_ERR_APPROVAL);
    ck_assert_ptr_nonnull(strstr(err.text, "2 distinct people"));
    ck_assert_ptr_nonnull(strstr(err.text, "1 counted"));
    ck_assert_ptr_nonnull(strstr(err.text, "another approver"));
    /* The same key twice, and the same person with two keys, count once. */
    const char *same[] = {"bob@example.com", "bob@example.com"};
    ck_assert_int_eq(quorum(cfg, &need, same, 2, &err), FM_ERR_APPROVAL);
    ck_assert_ptr_nonnull(strstr(err.text, "approved twice"));
    const char *alice2[] = {"alice-laptop", "alice-yubikey"};
    ck_assert_int_eq(quorum(cfg, &need, alice2, 2, &err), FM_ERR_APPROVAL);
    ck_assert_ptr_nonnull(strstr(err.text, "alice@example.com approved twice"));
    /* An elicited approval is no second person. */
    const char *el[] = {"bob@example.com", "elicitation:mcp-cli"};
    ck_assert_int_eq(quorum(cfg, &need, el, 2, &err), FM_ERR_APPROVAL);
    ck_assert_ptr_nonnull(strstr(err.text, "no key"));
    /* Two distinct approvers release it. */
    const char *two[] = {"alice-yubikey", "bob@example.com"};
    ck_assert_int_eq(quorum(cfg, &need, two, 2, &err), 0);
    const char *three[] = {"alice-laptop", "alice-yubikey", "carol@example.com"};
    ck_assert_int_eq(quorum(cfg, &need, three, 3, &err), 0);
    json_decref(cfg);
}
END_TEST

START_TEST(emergency_needs_two)
{
    json_t *cfg = approvals();
    fm_approval_need need;
    fm_approval_need_for(cfg, 1, true, NULL, NULL, &need);
    ck_assert_int_eq(need.people, 2);
    ck_assert_str_eq(need.why, "emergency mode");
    json_object_set_new(json_object_get(cfg, "two_person"), "emergency", json_false());
    fm_approval_need_for(cfg, 1, true, NULL, NULL, &need);
    ck_assert_int_eq(need.people, 1);
    /* Without a two_person section only emergencies need two. */
    fm_approval_need_for(NULL, 500, false, NULL, NULL, &need);
    ck_assert_int_eq(need.people, 1);
    fm_approval_need_for(NULL, 1, true, NULL, NULL, &need);
    ck_assert_int_eq(need.people, 2);
    json_decref(cfg);
}
END_TEST

START_TEST(roles)
{
    json_t *cfg = approvals();
    fm_approval_need need;
    fm_approval_need_for(cfg, 1, false, "oncall", NULL, &need);
    fm_err err;
    const char *carol[] = {"carol@example.com"};
    ck_assert_int_eq(quorum(cfg, &need, carol, 1, &err), FM_ERR_APPROVAL);
    ck_assert_ptr_nonnull(strstr(err.text, "carol@example.com lacks role oncall"));
    ck_assert_ptr_nonnull(strstr(err.text, "with role oncall"));
    const char *bob[] = {"bob@example.com"};
    ck_assert_int_eq(quorum(cfg, &need, bob, 1, &err), 0);
    /* Role and two people together: each of the two must hold it. */
    fm_approval_need_for(cfg, 2, false, "fleet-admin", NULL, &need);
    const char *ab[] = {"alice-laptop", "bob@example.com"};
    ck_assert_int_eq(quorum(cfg, &need, ab, 2, &err), FM_ERR_APPROVAL);
    const char *ac[] = {"alice-laptop", "carol@example.com"};
    ck_assert_int_eq(quorum(cfg, &need, ac, 2, &err), 0);
    /* alice's yubikey lacks fleet-admin even though her laptop key has it. */
    const char *ayc[] = {"alice-yubikey", "carol@example.com"};
    ck_assert_int_eq(quorum(cfg, &need, ayc, 2, &err), FM_ERR_APPROVAL);
    json_decref(cfg);
}
END_TEST

START_TEST(creator_cannot_approve)
{
    json_t *cfg = approvals();
    fm_approval_need need;
    fm_approval_need_for(cfg, 1, false, NULL, "alice@example.com", &need);
    ck_assert(need.separate);
    fm_err err;
    const char *alice[] = {"alice-laptop"};
    ck_assert_int_eq(quorum(cfg, &need, alice, 1, &err), FM_ERR_APPROVAL);
    ck_assert_ptr_nonnull(strstr(err.text, "created the plan"));
    const char *bob[] = {"bob@example.com"};
    ck_assert_int_eq(quorum(cfg, &need, bob, 1, &err), 0);
    /* The key id itself may be the creator's subject. */
    fm_approval_need_for(cfg, 1, false, NULL, "bob@example.com", &need);
    ck_assert_int_eq(quorum(cfg, &need, bob, 1, &err), FM_ERR_APPROVAL);
    json_object_set_new(cfg, "separate_creator", json_false());
    fm_approval_need_for(cfg, 1, false, NULL, "alice@example.com", &need);
    ck_assert_int_eq(quorum(cfg, &need, alice, 1, &err), 0);
    json_decref(cfg);
}
END_TEST

/* two_person.actions and require_role name actions; a runbook's own role
 * wins over require_role; the people counted are reported. */
START_TEST(per_action_rules)
{
    json_t *cfg = approvals();
    fm_approval_need need;
    fm_approval_need_for(cfg, 0, false, NULL, NULL, &need);
    fm_approval_need_action(cfg, "killswitch_release", &need);
    ck_assert_int_eq(need.people, 2);
    ck_assert_ptr_nonnull(strstr(need.why, "two_person.actions"));
    ck_assert_str_eq(need.role, "");
    fm_approval_need_for(cfg, 1, false, NULL, NULL, &need);
    fm_approval_need_action(cfg, "node_drain", &need);
    ck_assert_int_eq(need.people, 1);
    ck_assert_str_eq(need.role, "oncall");
    fm_approval_need_for(cfg, 1, false, "fleet-admin", NULL, &need);
    fm_approval_need_action(cfg, "node_drain", &need);
    ck_assert_str_eq(need.role, "fleet-admin");
    fm_approval_need_for(cfg, 0, false, NULL, NULL, &need);
    fm_approval_need_action(cfg, "killswitch_release", &need);
    const char *two[] = {"bob@example.com", "alice-laptop"};
    char counted[128];
    fm_err err;
    fm_err_clear(&err);
    ck_assert_int_eq(fm_approval_quorum(cfg, &need, two, 2, counted, sizeof counted, &err), 0);
    ck_assert_str_eq(counted, "bob@example.com, alice@example.com");
    json_decref(cfg);
}
END_TEST

/* An elicited approval is the person its verified subject names: the
 * creator of a plan cannot approve it that way either. */
START_TEST(elicited_is_its_subject)
{
    json_t *cfg = approvals();
    fm_approval_need need;
    fm_approval_need_for(cfg, 1, false, NULL, "alice@example.com", &need);
    const char *el[] = {"elicitation:alice@example.com"};
    fm_err err;
    ck_assert_int_eq(quorum(cfg, &need, el, 1, &err), FM_ERR_APPROVAL);
    ck_assert_ptr_nonnull(strstr(err.text, "created the plan"));
    const char *other[] = {"elicitation:bob@example.com"};
    ck_assert_int_eq(quorum(cfg, &need, other, 1, &err), 0);
    json_decref(cfg);
}
END_TEST
static Suite *approval_roles_suite(void)
{
    Suite *s = suite_create("approval_roles");
    TCase *tc = tcase_create("approval_roles");
    tcase_add_test(tc, one_node_one_person);
    tcase_add_test(tc, two_person_rule);
    tcase_add_test(tc, emergency_needs_two);
    tcase_add_test(tc, roles);
    tcase_add_test(tc, creator_cannot_approve);
    tcase_add_test(tc, per_action_rules);
    tcase_add_test(tc, elicited_is_its_subject);
    suite_add_tcase(s, tc);
    return s;
}

FM_TEST_MAIN(approval_roles_suite)
