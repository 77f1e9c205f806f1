/* The Jira ticket backend without Jira: config checks, backend choice,
 * secrets, and transport failures (a closed local port).  The REST
 * conversation itself is tested against tests/jira/contract_server.py by
 * tests/integration/jira.py. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_tickets.h"
#include "fm_test.h"

#define SECRET "fmUNIT-5ecr3t-value-never-echoed"

static json_t *section(const char *url, const char *auth_json)
{
    char buf[1024];
    snprintf(buf, sizeof buf,
             "{\"url\": \"%s\", \"project\": \"OPS\", \"auth\": %s, \"retries\": 2,"
             " \"retry_budget_ms\": 3000, \"timeout_ms\": 2000, \"connect_timeout_ms\": 500}",
             url, auth_json);
    json_t *s = json_loads(buf, 0, NULL);
    ck_assert_ptr_nonnull(s);
    return s;
}

/* A local port nothing listens on. */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

START_TEST(test_config_refused)
{
    static const char *const bad_urls[] = {"ftp://jira.example", "https://user:pw@jira.example",
                                           "jira.example", "https://jira.example/a b"};
    for (size_t i = 0; i < sizeof bad_urls / sizeof *bad_urls; i++) {
        json_t *s = section(bad_urls[i], "{\"pat\": {\"env\": \"FM_UNIT_PAT\"}}");
        fm_err err = {0};
        ck_assert_ptr_null(fm_tickets_jira_new(s, &err));
        ck_assert_int_eq(err.code, FM_ERR_NOT_CONFIGURED);
        ck_assert_ptr_nonnull(strstr(err.text, "jira.url"));
        json_decref(s);
    }
    json_t *s = section("https://jira.example", "{\"email\": \"a@b.c\"}");
    fm_err err = {0};
    ck_assert_ptr_null(fm_tickets_jira_new(s, &err));
    ck_assert_ptr_nonnull(strstr(err.text, "jira.auth"));
    json_decref(s);
    s = section("https://jira.example", "{\"pat\": {\"env\": \"FM_UNIT_PAT\"}}");
    json_object_set_new(s, "deployment", json_string("server"));
    setenv("FM_UNIT_PAT", SECRET, 1);
    fm_err_clear(&err);
    ck_assert_ptr_null(fm_tickets_jira_new(s, &err));
    ck_assert_int_eq(err.code, FM_ERR_NOT_CONFIGURED);
    ck_assert_ptr_nonnull(strstr(err.text, "jira.deployment"));
    json_decref(s);
}
END_TEST

START_TEST(test_secret_from_env_and_file)
{
    unsetenv("FM_UNIT_PAT");
    json_t *s = section("https://jira.example", "{\"pat\": {\"env\": \"FM_UNIT_PAT\"}}");
    fm_err err = {0};
    ck_assert_ptr_null(fm_tickets_jira_new(s, &err));
    ck_assert_int_eq(err.code, FM_ERR_NOT_CONFIGURED);
    ck_assert_ptr_nonnull(strstr(err.text, "FM_UNIT_PAT"));
    setenv("FM_UNIT_PAT", SECRET, 1);
    fm_err_clear(&err);
    void *st = fm_tickets_jira_new(s, &err);
    ck_assert_msg(st != NULL, "%s", err.text);
    fm_tickets_jira.destroy(st);
    json_decref(s);

    char path[] = "/tmp/fm-unit-token-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "\n", 1), 1); /* only a newline: empty after trimming */
    close(fd);
    char auth[256];
    snprintf(auth, sizeof auth, "{\"email\": \"a@b.c\", \"token\": {\"file\": \"%s\"}}", path);
    s = section("https://jira.example", auth);
    fm_err_clear(&err);
    ck_assert_ptr_null(fm_tickets_jira_new(s, &err));
    ck_assert_int_eq(err.code, FM_ERR_NOT_CONFIGURED);
    json_decref(s);
    unlink(path);
}
END_TEST

START_TEST(test_backend_choice)
{
    setenv("FM_UNIT_PAT", SECRET, 1);
    static const struct {
        const char *cfg;
        const struct fm_ticket_ops *want;
    } cases[] = {
        {"{}", &fm_tickets_local},
        {"{\"jira\": {\"url\": \"https://j.example\", \"project\": \"OPS\","
         " \"auth\": {\"pat\": \"env:FM_UNIT_PAT\"}}}",
         &fm_tickets_jira},
        {"{\"tickets\": {\"backend\": \"local\"}, \"jira\": {\"url\": \"https://j.example\","
         " \"project\": \"OPS\", \"auth\": {\"pat\": \"env:FM_UNIT_PAT\"}}}",
         &fm_tickets_local},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        fm_ctx ctx;
        memset(&ctx, 0, sizeof ctx);
        fm_err err = {0};
        ctx.cfg.root = json_loads(cases[i].cfg, 0, NULL);
        ck_assert_int_eq(fm_store_open(&ctx.store, ":memory:", &err), 0);
        ck_assert_msg(fm_tickets_open(&ctx, &err) == 0, "%s", err.text);
        ck_assert_ptr_eq(ctx.be.tickets, cases[i].want);
        fm_tickets_close(&ctx);
        ck_assert_ptr_null(ctx.be.tickets);
        fm_store_close(&ctx.store);
        json_decref(ctx.cfg.root);
    }
}
END_TEST

START_TEST(test_unreachable_is_bounded)
{
    setenv("FM_UNIT_PAT", SECRET, 1);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", closed_port());
    json_t *s = section(url, "{\"pat\": {\"env\": \"FM_UNIT_PAT\"}}");
    fm_err err = {0};
    void *st = fm_tickets_jira_new(s, &err);
    ck_assert_ptr_nonnull(st);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    json_t *f = json_pack("{s:s, s:s, s:s}", "summary", "s", "node", "n1", "fault_class", "c");
    ck_assert_ptr_null(fm_tickets_jira.create(st, f, &err));
    clock_gettime(CLOCK_MONOTONIC, &b);
    double took = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    ck_assert_int_eq(err.code, FM_ERR_UNAVAILABLE);
    ck_assert_ptr_nonnull(strstr(err.text, "3 attempt(s)")); /* 1 + retries */
    ck_assert_ptr_null(strstr(err.text, SECRET));
    ck_assert_msg(took < 5.0, "took %.1f s", took);
    fm_err_clear(&err);
    ck_assert_ptr_null(fm_tickets_jira.get(st, "OPS-1", &err));
    ck_assert_ptr_null(strstr(err.text, SECRET));
    json_decref(f);
    fm_tickets_jira.destroy(st);
    json_decref(s);
}
END_TEST

START_TEST(test_summary_and_render)
{
    /* 130 two-byte characters: 260 bytes, clipped to whole characters */
    char in[400] = "line one\nline two ";
    size_t n = strlen(in);
    for (int i = 0; i < 130; i++, n += 2)
        memcpy(in + n, "\xc3\xa9", 2);
    in[n] = '\0';
    json_t *s = fm_ticket_summary(in);
    const char *v = json_string_value(s);
    ck_assert_ptr_nonnull(v);
    ck_assert_uint_le(strlen(v), FM_TICKET_MAX_SUMMARY);
    ck_assert_ptr_null(strchr(v, '\n'));
    ck_assert_int_eq(strncmp(v, "line one line two ", 18), 0);
    ck_assert_int_eq((strlen(v) - 18) % 2, 0);
    json_decref(s);

    /* a description of multi-byte text longer than the cut stays valid */
    size_t big = FM_TICKET_MAX_DESCRIPTION + 11;
    char *text = malloc(big + 1);
    for (size_t i = 0; i + 3 <= big; i += 3)
        memcpy(text + i, "\xe2\x82\xac", 3);
    text[big - big % 3] = '\0';
    json_t *fields = json_pack("{s:s, s:[s]}", "node", "n1", "evidence", text);
    char *d = fm_ticket_render(fields, text);
    ck_assert_ptr_nonnull(d);
    json_t *j = json_string(d); /* NULL if invalid UTF-8 */
    ck_assert_ptr_nonnull(j);
    ck_assert_uint_le(strlen(d), FM_TICKET_MAX_DESCRIPTION);
    json_decref(j);
    free(d);
    free(text);
    json_decref(fields);

    json_t *pm = json_pack("{s:s}", "xid_79", "Blocker");
    json_t *f1 = json_pack("{s:s, s:s}", "fault_class", "xid_79", "severity", "low");
    json_t *f2 = json_pack("{s:s, s:s}", "fault_class", "ecc", "severity", "low");
    json_t *f3 = json_pack("{s:s}", "fault_class", "ecc");
    ck_assert_str_eq(fm_ticket_priority(pm, f1), "Blocker");
    ck_assert_str_eq(fm_ticket_priority(pm, f2), "Low");
    ck_assert_ptr_null(fm_ticket_priority(pm, f3));
    json_decref(pm);
    json_decref(f1);
    json_decref(f2);
    json_decref(f3);
}
END_TEST

static Suite *tickets_jira_suite(void)
{
    Suite *s = suite_create("tickets_jira");
    TCase *tc = tcase_create("jira");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_config_refused);
    tcase_add_test(tc, test_secret_from_env_and_file);
    tcase_add_test(tc, test_backend_choice);
    tcase_add_test(tc, test_unreachable_is_bounded);
    tcase_add_test(tc, test_summary_and_render);
    suite_add_tcase(s, tc);
    return s;
}

FM_TEST_MAIN(tickets_jira_suite)
