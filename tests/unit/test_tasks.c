/* Tasks (src/mcp/tasks.c) without a runner: tasks/get, tasks/update and
 * tasks/cancel on rows written here, as a runner would leave them.  The
 * runner itself (fork, restart, cancellation) is tests/http/tasks.py. */
#include "fleetmcp/fm_jsonrpc.h"
#include "fleetmcp/fm_mcp.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_util.h"
#include "fm_test.h"

#include <sys/wait.h>

typedef struct {
    fm_ctx ctx;
    char path[64];
} env;

static void env_open(env *e)
{
    memset(e, 0, sizeof *e);
    snprintf(e->path, sizeof e->path, "/tmp/fm-tasks-XXXXXX");
    fm_test_temp_db(e->path);
    unsetenv("FLEETMCP_CONFIG");
    fm_err err = {0};
    ck_assert_msg(fm_ctx_open(&e->ctx, NULL, fm_test_store(e->path), &err) == 0, "%s", err.text);
    snprintf(e->ctx.session.client_name, sizeof e->ctx.session.client_name, "owner");
    e->ctx.session.tasks = true;
}

static void env_close(env *e)
{
    fm_ctx_close(&e->ctx);
    fm_test_unlink_db(e->path);
}

/* A row as fm_call_background and a runner leave it. */
static void put(env *e, const char *id, const char *owner, const char *status, const char *requests,
                long long pid, long long age_ms)
{
    fm_err err = {0};
    fm_db_stmt *s = fm_store_stmt(
        &e->ctx.store,
        "INSERT INTO mcp_tasks(id, owner, tool, status, input_requests, input_responses,"
        " runner_pid, runner_host, created_ms, updated_ms, ttl_ms) VALUES(?, ?, 'slow_compute',"
        " ?, ?, '{}', ?, ?, ?, ?, 86400000)",
        &err);
    ck_assert_ptr_nonnull(s);
    char host[64];
    if (gethostname(host, sizeof host - 1)) snprintf(host, sizeof host, "?");
    const char *h = getenv("FLEETMCP_HOST_ID");
    fm_db_bind_text(s, 1, id, -1, FM_DB_TRANSIENT);
    fm_db_bind_text(s, 2, owner, -1, FM_DB_TRANSIENT);
    fm_db_bind_text(s, 3, status, -1, FM_DB_TRANSIENT);
    if (requests)
        fm_db_bind_text(s, 4, requests, -1, FM_DB_TRANSIENT);
    else
        fm_db_bind_null(s, 4);
    fm_db_bind_int64(s, 5, pid);
    fm_db_bind_text(s, 6, h && *h ? h : host, -1, FM_DB_TRANSIENT);
    fm_db_bind_int64(s, 7, fm_now_ms() - age_ms);
    fm_db_bind_int64(s, 8, fm_now_ms() - age_ms);
    ck_assert_int_eq(fm_db_step(s), FM_DB_DONE);
    fm_db_reset(s);
}

static json_t *req(env *e, const char *method, const char *id, const char *responses, int *code)
{
    json_t *p = json_pack("{s:s}", "taskId", id);
    if (responses) json_object_set_new(p, "inputResponses", json_loads(responses, 0, NULL));
    char why[256] = "";
    *code = 0;
    json_t *r = fm_tasks_request(&e->ctx, method, p, code, why);
    ck_assert_msg(r || *code, "%s: no result and no error", method);
    json_decref(p);
    return r;
}

static char owner_id[300];

static const char *owner(env *e)
{
    fm_mcp_caller_id(&e->ctx, owner_id, sizeof owner_id);
    return owner_id;
}

START_TEST(get_update_cancel)
{
    env e;
    env_open(&e);
    int code;
    /* Unknown ids (the first call also creates the table). */
    ck_assert_ptr_null(req(&e, "tasks/get", "task-none", NULL, &code));
    ck_assert_int_eq(code, FM_RPC_INVALID_PARAMS);
    ck_assert_ptr_null(req(&e, "tasks/update", "task-none", NULL, &code));
    ck_assert_int_eq(code, FM_RPC_INVALID_PARAMS); /* inputResponses missing */

    put(&e, "task-a", owner(&e), "input_required",
        "{\"first\":{\"method\":\"elicitation/create\"},\"second\":{\"method\":"
        "\"elicitation/create\"}}",
        (long long)getpid(), 0);
    json_t *r = req(&e, "tasks/get", "task-a", NULL, &code);
    ck_assert_str_eq(fm_json_str(r, "status", ""), "input_required");
    ck_assert_uint_eq(json_object_size(json_object_get(r, "inputRequests")), 2);
    ck_assert_ptr_null(json_object_get(r, "result"));
    ck_assert_ptr_nonnull(json_object_get(r, "pollIntervalMs"));
    json_decref(r);

    /* Partial answer: one key left; unknown keys are ignored. */
    r = req(&e, "tasks/update", "task-a", "{\"first\":{\"action\":\"accept\"},\"nope\":{}}", &code);
    ck_assert_uint_eq(json_object_size(r), 0);
    json_decref(r);
    r = req(&e, "tasks/get", "task-a", NULL, &code);
    ck_assert_str_eq(fm_json_str(r, "status", ""), "input_required");
    ck_assert_ptr_null(json_object_get(json_object_get(r, "inputRequests"), "first"));
    ck_assert_ptr_nonnull(json_object_get(json_object_get(r, "inputRequests"), "second"));
    json_decref(r);
    /* The last answer sets the task working again. */
    json_decref(req(&e, "tasks/update", "task-a", "{\"second\":{\"action\":\"decline\"}}", &code));
    r = req(&e, "tasks/get", "task-a", NULL, &code);
    ck_assert_str_eq(fm_json_str(r, "status", ""), "working");
    ck_assert_ptr_null(json_object_get(r, "inputRequests"));
    json_decref(r);

    /* Cancel: an empty ack, cancelled, and the same ack again. */
    r = req(&e, "tasks/cancel", "task-a", NULL, &code);
    ck_assert_uint_eq(json_object_size(r), 0);
    json_decref(r);
    r = req(&e, "tasks/get", "task-a", NULL, &code);
    ck_assert_str_eq(fm_json_str(r, "status", ""), "cancelled");
    json_decref(r);
    r = req(&e, "tasks/cancel", "task-a", NULL, &code);
    ck_assert_ptr_nonnull(r);
    json_decref(r);
    env_close(&e);
}
END_TEST

START_TEST(bound_to_caller_and_ttl)
{
    env e;
    env_open(&e);
    int code;
    json_decref(req(&e, "tasks/get", "task-none", NULL, &code));
    put(&e, "task-other", "someone|else", "working", NULL, (long long)getpid(), 0);
    put(&e, "task-old", owner(&e), "working", NULL, (long long)getpid(), 90000000LL);
    const char *methods[] = {"tasks/get", "tasks/cancel"};
    for (int i = 0; i < 2; i++) {
        ck_assert_ptr_null(req(&e, methods[i], "task-other", NULL, &code));
        ck_assert_int_eq(code, FM_RPC_INVALID_PARAMS);
        ck_assert_ptr_null(req(&e, methods[i], "task-old", NULL, &code)); /* past its ttl */
        ck_assert_int_eq(code, FM_RPC_INVALID_PARAMS);
    }
    ck_assert_ptr_null(req(&e, "tasks/update", "task-other", "{}", &code));
    ck_assert_int_eq(code, FM_RPC_INVALID_PARAMS);
    env_close(&e);
}
END_TEST

START_TEST(dead_runner_fails)
{
    env e;
    env_open(&e);
    int code;
    json_decref(req(&e, "tasks/get", "task-none", NULL, &code));
    /* A child that has exited and been reaped: its pid names no process. */
    pid_t p = fork();
    if (p == 0) _exit(0);
    waitpid(p, NULL, 0);
    put(&e, "task-dead", owner(&e), "working", NULL, (long long)p, 0);
    json_t *r = req(&e, "tasks/get", "task-dead", NULL, &code);
    ck_assert_str_eq(fm_json_str(r, "status", ""), "failed");
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(r, "error"), "code")),
                     FM_RPC_INTERNAL_ERROR);
    ck_assert_ptr_null(json_object_get(r, "result"));
    json_decref(r);
    /* A zombie (its parent has not reaped it) is gone too. */
    pid_t z = fork();
    if (z == 0) _exit(0);
    for (int i = 0; i < 200; i++) { /* bounded: until the child has exited */
        char path[64], st[128] = "";
        snprintf(path, sizeof path, "/proc/%d/stat", (int)z);
        FILE *f = fopen(path, "r");
        if (f) {
            if (!fgets(st, sizeof st, f)) st[0] = '\0';
            fclose(f);
        }
        if (strstr(st, ") Z")) break;
        usleep(10000);
    }
    put(&e, "task-zombie", owner(&e), "working", NULL, (long long)z, 0);
    r = req(&e, "tasks/get", "task-zombie", NULL, &code);
    ck_assert_str_eq(fm_json_str(r, "status", ""), "failed");
    json_decref(r);
    waitpid(z, NULL, 0);
    env_close(&e);
}
END_TEST

static Suite *tasks_suite(void)
{
    Suite *s = suite_create("tasks");
    TCase *tc = tcase_create("requests");
    tcase_add_test(tc, get_update_cancel);
    tcase_add_test(tc, bound_to_caller_and_ttl);
    tcase_add_test(tc, dead_runner_fails);
    suite_add_tcase(s, tc);
    return s;
}

FM_TEST_MAIN(tasks_suite)
