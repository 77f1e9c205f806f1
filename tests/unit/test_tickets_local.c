/* Local tickets: the store backend, deduplication, diag bundle attachments,
 * the five handlers and escalation, through a hand-built fm_ctx (no
 * server, no gate: handlers trust both). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_tickets.h"
#include "fleetmcp/fm_util.h"
#include "fm_test.h"

static char tmpdir[128];
static char dbpath[256];
static fm_ctx ctx;

static void open_ctx(fm_ctx *c, const char *config_json)
{
    fm_err err = {0};
    memset(c, 0, sizeof *c);
    c->cfg.root = json_loads(config_json, 0, NULL);
    ck_assert_ptr_nonnull(c->cfg.root);
    ck_assert_int_eq(fm_store_open(&c->store, dbpath, &err), 0);
    ck_assert_msg(fm_tickets_open(c, &err) == 0, "open: %s", err.text);
}

static void close_ctx(fm_ctx *c)
{
    fm_tickets_close(c);
    fm_store_close(&c->store);
    json_decref(c->cfg.root);
    c->cfg.root = NULL;
}

static void setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/fm-tickets-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    snprintf(dbpath, sizeof dbpath, "%s/t.db", tmpdir);
    open_ctx(&ctx, "{\"tickets\": {\"url_base\": \"https://ops.example/t/\"}}");
}

static void teardown(void)
{
    close_ctx(&ctx);
    fm_test_unlink_db(dbpath);
    ck_assert_int_eq(rmdir(tmpdir), 0);
}

/* Runs handler with args (JSON text); returns its result (new) or NULL
 * with err filled. */
static json_t *call(fm_tool_fn fn, const char *args_json, fm_err *err)
{
    json_t *args = json_loads(args_json, 0, NULL);
    ck_assert_msg(args != NULL, "bad test JSON: %s", args_json);
    fm_call c = {.ctx = &ctx, .args = args, .audit_id = 42};
    fm_err_clear(err);
    json_t *out = fn(&c, err);
    json_decref(args);
    return out;
}

static json_t *call_ok(fm_tool_fn fn, const char *args_json)
{
    fm_err err = {0};
    json_t *out = call(fn, args_json, &err);
    ck_assert_msg(out != NULL, "%s failed: %s: %s", args_json, fm_strerror(err.code), err.text);
    return out;
}

static bool has_label(const json_t *t, const char *l)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(t, "labels"), i,
                       v) if (!strcmp(json_string_value(v), l)) return true;
    return false;
}

static void add_bundle(const char *id, const char *node, const char *body, bool good_hash)
{
    char sha[65];
    fm_sha256_hex(body, strlen(body), sha);
    if (!good_hash) sha[0] = sha[0] == 'a' ? 'b' : 'a';
    fm_db *db = ctx.store.db;
    ck_assert_int_eq(fm_db_exec(db,
                                "CREATE TABLE IF NOT EXISTS diag_bundles(id TEXT PRIMARY KEY,"
                                " node TEXT, created_ms INTEGER, sha256 TEXT, body BLOB)",
                                NULL, NULL, NULL),
                     FM_DB_OK);
    fm_db_stmt *s;
    ck_assert_int_eq(
        fm_db_prepare_v2(db, "INSERT INTO diag_bundles VALUES(?,?,?,?,?)", -1, &s, NULL), FM_DB_OK);
    fm_db_bind_text(s, 1, id, -1, FM_DB_STATIC);
    fm_db_bind_text(s, 2, node, -1, FM_DB_STATIC);
    fm_db_bind_int64(s, 3, fm_now_ms());
    fm_db_bind_text(s, 4, sha, -1, FM_DB_STATIC);
    fm_db_bind_blob(s, 5, body, (int)strlen(body), FM_DB_STATIC);
    ck_assert_int_eq(fm_db_step(s), FM_DB_DONE);
    fm_db_finalize(s);
}

START_TEST(test_key_valid)
{
    ck_assert(fm_ticket_key_valid("FM-1"));
    ck_assert(fm_ticket_key_valid("OPS_2-123456"));
    ck_assert(!fm_ticket_key_valid("fm-1"));
    ck_assert(!fm_ticket_key_valid("FM-"));
    ck_assert(!fm_ticket_key_valid("FM-1/../x"));
    ck_assert(!fm_ticket_key_valid("FM1"));
    ck_assert(!fm_ticket_key_valid(NULL));
    char l[64];
    fm_ticket_label(l, sizeof l, "node-", "gpu 01\tx");
    ck_assert_str_eq(l, "node-gpu_01_x");
}
END_TEST

START_TEST(test_default_backend_is_local)
{
    ck_assert_ptr_eq(ctx.be.tickets, &fm_tickets_local);
    fm_ctx c2;
    fm_err err = {0};
    memset(&c2, 0, sizeof c2);
    c2.cfg.root = json_loads("{\"tickets\": {\"backend\": \"jira\"}}", 0, NULL);
    ck_assert_int_eq(fm_store_open(&c2.store, dbpath, &err), 0);
    ck_assert_int_eq(fm_tickets_open(&c2, &err), FM_ERR_NOT_CONFIGURED);
    ck_assert_ptr_nonnull(strstr(err.text, "jira"));
    ck_assert_ptr_null(c2.be.tickets);
    fm_store_close(&c2.store);
    json_decref(c2.cfg.root);
}
END_TEST

START_TEST(test_create_get)
{
    json_t *r = call_ok(fm_tool_ticket_create,
                        "{\"summary\": \"Xid 79 on gpu-a01\", \"node\": \"gpu-a01\","
                        " \"fault_class\": \"xid_79\", \"severity\": \"high\","
                        " \"evidence\": [\"Xid 79 at 12:00\", \"GPU fell off the bus\"],"
                        " \"active_jobs\": 3, \"workflow_id\": \"wf-7\", \"audit_ids\": [5],"
                        " \"incident_key\": \"OPS-12\", \"labels\": [\"h100\"],"
                        " \"last_runbook_run\": {\"runbook\": \"gpu-reset\", \"version\": \"2\"}}");
    ck_assert_str_eq(fm_json_str(r, "key", ""), "FM-1");
    ck_assert(json_is_false(json_object_get(r, "deduplicated")));
    ck_assert_str_eq(fm_json_str(r, "url", ""), "https://ops.example/t/FM-1");
    ck_assert_str_eq(fm_json_str(r, "backend", ""), "local");
    ck_assert_int_eq(json_array_size(json_object_get(r, "attached")), 0);
    json_decref(r);

    json_t *t = call_ok(fm_tool_ticket_get, "{\"key\": \"FM-1\"}");
    ck_assert_str_eq(fm_json_str(t, "summary", ""), "Xid 79 on gpu-a01");
    ck_assert_str_eq(fm_json_str(t, "node", ""), "gpu-a01");
    ck_assert_str_eq(fm_json_str(t, "fault_class", ""), "xid_79");
    ck_assert_str_eq(fm_json_str(t, "priority", ""), "High");
    ck_assert_str_eq(fm_json_str(t, "status", ""), "Open");
    ck_assert(json_is_true(json_object_get(t, "open")));
    ck_assert(has_label(t, "fleetmcp") && has_label(t, "node-gpu-a01") &&
              has_label(t, "fault-xid_79") && has_label(t, "h100"));
    const char *d = fm_json_str(t, "description", "");
    ck_assert_ptr_nonnull(strstr(d, "Node: gpu-a01"));
    ck_assert_ptr_nonnull(strstr(d, "- GPU fell off the bus"));
    ck_assert_ptr_nonnull(strstr(d, "Active jobs: 3"));
    ck_assert_ptr_nonnull(strstr(d, "Related incident: OPS-12"));
    ck_assert_ptr_nonnull(strstr(d, "gpu-reset"));
    json_t *cx = json_object_get(t, "context");
    ck_assert_int_eq(json_integer_value(json_object_get(cx, "active_jobs")), 3);
    /* the audit row of the creating call is linked */
    ck_assert_int_eq(json_array_size(json_object_get(cx, "audit_ids")), 2);
    ck_assert_int_eq(json_integer_value(json_array_get(json_object_get(cx, "audit_ids"), 1)), 42);
    ck_assert_int_eq(json_integer_value(json_object_get(t, "comments_count")), 0);
    ck_assert_int_eq(json_array_size(json_object_get(t, "comments")), 0);
    json_decref(t);

    fm_err err;
    ck_assert_ptr_null(call(fm_tool_ticket_get, "{\"key\": \"FM-99\"}", &err));
    ck_assert_int_eq(err.code, FM_ERR_NOT_FOUND);
}
END_TEST

START_TEST(test_dedup)
{
    const char *a = "{\"summary\": \"ECC storm\", \"node\": \"n1\", \"fault_class\": \"ecc_dbe\"}";
    json_t *r1 = call_ok(fm_tool_ticket_create, a);
    json_t *r2 =
        call_ok(fm_tool_ticket_create, "{\"summary\": \"ECC storm again\", \"node\": \"n1\","
                                       " \"fault_class\": \"ecc_dbe\", \"active_jobs\": 0}");
    ck_assert_str_eq(fm_json_str(r1, "key", "a"), fm_json_str(r2, "key", "b"));
    ck_assert(json_is_true(json_object_get(r2, "deduplicated")));
    json_t *t = call_ok(fm_tool_ticket_get, "{\"key\": \"FM-1\"}");
    ck_assert_int_eq(json_integer_value(json_object_get(t, "comments_count")), 1);
    const char *body = fm_json_str(json_array_get(json_object_get(t, "comments"), 0), "body", "");
    ck_assert_ptr_nonnull(strstr(body, "repeated ecc_dbe on n1: ECC storm again"));
    ck_assert_ptr_nonnull(strstr(body, "Active jobs: 0"));
    json_decref(t);
    /* another class or another node is another ticket */
    json_t *r3 = call_ok(fm_tool_ticket_create,
                         "{\"summary\": \"s\", \"node\": \"n1\", \"fault_class\": \"xid_48\"}");
    json_t *r4 = call_ok(fm_tool_ticket_create,
                         "{\"summary\": \"s\", \"node\": \"n2\", \"fault_class\": \"ecc_dbe\"}");
    ck_assert_str_eq(fm_json_str(r3, "key", ""), "FM-2");
    ck_assert_str_eq(fm_json_str(r4, "key", ""), "FM-3");
    ck_assert(json_is_false(json_object_get(r4, "deduplicated")));
    json_decref(r1);
    json_decref(r2);
    json_decref(r3);
    json_decref(r4);
}
END_TEST

START_TEST(test_backend_create_is_atomic_dedup)
{
    /* The backend itself refuses a second open ticket for the pair even
     * when a caller skips the search (two processes racing). */
    json_t *f = json_pack("{s:s, s:s, s:s}", "summary", "s", "node", "n9", "fault_class", "hw");
    fm_err err = {0};
    json_t *a = fm_tickets_local.create(ctx.be.tickets_st, f, &err);
    json_t *b = fm_tickets_local.create(ctx.be.tickets_st, f, &err);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_str_eq(fm_json_str(a, "key", "a"), fm_json_str(b, "key", "b"));
    ck_assert(json_is_true(json_object_get(b, "deduplicated")));
    json_decref(a);
    json_decref(b);
    json_decref(f);
}
END_TEST

START_TEST(test_update)
{
    json_decref(call_ok(fm_tool_ticket_create,
                        "{\"summary\": \"s\", \"node\": \"n1\", \"fault_class\": \"xid_79\"}"));
    json_t *u = call_ok(fm_tool_ticket_update,
                        "{\"key\": \"FM-1\", \"summary\": \"Xid 79, reset failed\","
                        " \"severity\": \"critical\", \"labels\": [\"needs rma\", \"h100\"],"
                        " \"comment\": \"reset did not help\", \"active_jobs\": 2,"
                        " \"incident_key\": \"OPS-9\"}");
    ck_assert(json_is_true(json_object_get(u, "commented")));
    ck_assert_int_eq(json_array_size(json_object_get(u, "updated")), 5);
    json_decref(u);
    json_t *t = call_ok(fm_tool_ticket_get, "{\"key\": \"FM-1\"}");
    ck_assert_str_eq(fm_json_str(t, "summary", ""), "Xid 79, reset failed");
    ck_assert_str_eq(fm_json_str(t, "priority", ""), "Highest");
    ck_assert(has_label(t, "needs_rma") && has_label(t, "h100") && has_label(t, "node-n1"));
    json_t *cx = json_object_get(t, "context");
    ck_assert_int_eq(json_integer_value(json_object_get(cx, "active_jobs")), 2);
    ck_assert_str_eq(fm_json_str(cx, "incident_key", ""), "OPS-9");
    const char *body = fm_json_str(json_array_get(json_object_get(t, "comments"), 0), "body", "");
    ck_assert_ptr_nonnull(strstr(body, "reset did not help"));
    ck_assert_ptr_nonnull(strstr(body, "Related incident: OPS-9"));
    json_decref(t);

    fm_err err;
    ck_assert_ptr_null(
        call(fm_tool_ticket_update, "{\"key\": \"FM-7\", \"comment\": \"x\"}", &err));
    ck_assert_int_eq(err.code, FM_ERR_NOT_FOUND);
}
END_TEST

START_TEST(test_bundles)
{
    const char *body = "{\"nvidia_smi\": \"...\", \"xid\": [79]}";
    add_bundle("41", "n1", body, true);
    add_bundle("42", "n1", body, false);
    add_bundle("43", "n2", body, true);
    json_t *r = call_ok(fm_tool_ticket_create,
                        "{\"summary\": \"s\", \"node\": \"n1\", \"fault_class\": \"xid_79\","
                        " \"bundle_id\": \"41\"}");
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(r, "attached"), 0)),
                     "diag-bundle-41.json");
    json_decref(r);
    fm_err err;
    ck_assert_ptr_null(
        call(fm_tool_ticket_update, "{\"key\": \"FM-1\", \"bundle_id\": \"42\"}", &err));
    ck_assert_int_eq(err.code, FM_ERR_IO);
    ck_assert_ptr_null(
        call(fm_tool_ticket_update, "{\"key\": \"FM-1\", \"bundle_id\": \"nope\"}", &err));
    ck_assert_int_eq(err.code, FM_ERR_NOT_FOUND);
    ck_assert_ptr_null(
        call(fm_tool_ticket_update, "{\"key\": \"FM-1\", \"bundle_id\": \"43\"}", &err));
    ck_assert_int_eq(err.code, FM_ERR_INVALID);
    /* a create naming a missing bundle writes nothing */
    ck_assert_ptr_null(call(fm_tool_ticket_create,
                            "{\"summary\": \"s\", \"node\": \"n5\", \"fault_class\": \"x\","
                            " \"bundle_id\": \"nope\"}",
                            &err));
    ck_assert_int_eq(err.code, FM_ERR_NOT_FOUND);
    json_t *u = call_ok(fm_tool_ticket_update, "{\"key\": \"FM-1\", \"bundle_id\": \"41\"}");
    ck_assert_int_eq(json_array_size(json_object_get(u, "attached")), 1);
    ck_assert(json_is_false(json_object_get(u, "commented")));
    json_decref(u);
    json_t *t = call_ok(fm_tool_ticket_get, "{\"key\": \"FM-1\"}");
    ck_assert_int_eq(json_integer_value(json_object_get(t, "attachments_count")), 2);
    json_decref(t);
    json_t *s = call_ok(fm_tool_ticket_search, "{\"node\": \"n5\", \"state\": \"any\"}");
    ck_assert_int_eq(json_integer_value(json_object_get(s, "count")), 0);
    json_decref(s);
    /* stored bytes are the bundle's bytes */
    fm_db_stmt *st;
    ck_assert_int_eq(fm_db_prepare_v2(ctx.store.db,
                                      "SELECT body, size FROM ticket_attachments WHERE id = 1", -1,
                                      &st, NULL),
                     FM_DB_OK);
    ck_assert_int_eq(fm_db_step(st), FM_DB_ROW);
    ck_assert_int_eq(fm_db_column_int(st, 1), (int)strlen(body));
    ck_assert_int_eq(memcmp(fm_db_column_blob(st, 0), body, strlen(body)), 0);
    fm_db_finalize(st);
}
END_TEST

/* node_diag_bundle's own table: integer ids, handed out as strings. */
START_TEST(test_bundle_integer_ids)
{
    const char *body = "{\"sections\": {}}";
    char sha[65], sql[512];
    fm_sha256_hex(body, strlen(body), sha);
    snprintf(
        sql, sizeof sql,
        "CREATE TABLE diag_bundles(id INTEGER PRIMARY KEY AUTOINCREMENT, node TEXT NOT NULL,"
        " created_ms INTEGER NOT NULL, sha256 TEXT NOT NULL, body TEXT NOT NULL);"
        "INSERT INTO diag_bundles(node, created_ms, sha256, body) VALUES('n1', 1, '%s', '%s');",
        sha, body);
    ck_assert_int_eq(fm_db_exec(ctx.store.db, sql, NULL, NULL, NULL), FM_DB_OK);
    json_t *r = call_ok(fm_tool_ticket_create, "{\"summary\": \"s\", \"node\": \"n1\","
                                               " \"fault_class\": \"c\", \"bundle_id\": \"1\"}");
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(r, "attached"), 0)),
                     "diag-bundle-1.json");
    json_decref(r);
}
END_TEST

START_TEST(test_search)
{
    json_decref(call_ok(fm_tool_ticket_create,
                        "{\"summary\": \"a\", \"node\": \"n1\", \"fault_class\": \"c1\"}"));
    json_decref(call_ok(fm_tool_ticket_create,
                        "{\"summary\": \"b\", \"node\": \"n1\", \"fault_class\": \"c2\"}"));
    json_decref(call_ok(fm_tool_ticket_create,
                        "{\"summary\": \"c\", \"node\": \"n2\", \"fault_class\": \"c1\"}"));
    json_t *s = call_ok(fm_tool_ticket_search, "{\"node\": \"n1\"}");
    ck_assert_int_eq(json_integer_value(json_object_get(s, "count")), 2);
    /* newest first, compact: no description, no comments */
    json_t *first = json_array_get(json_object_get(s, "tickets"), 0);
    ck_assert_str_eq(fm_json_str(first, "key", ""), "FM-2");
    ck_assert_ptr_null(json_object_get(first, "description"));
    ck_assert_ptr_null(json_object_get(first, "comments"));
    json_decref(s);
    s = call_ok(fm_tool_ticket_search, "{\"fault_class\": \"c1\", \"limit\": 1}");
    ck_assert_int_eq(json_integer_value(json_object_get(s, "count")), 1);
    json_decref(s);
    s = call_ok(fm_tool_ticket_search, "{\"node\": \"n2\", \"fault_class\": \"c1\"}");
    ck_assert_str_eq(fm_json_str(json_array_get(json_object_get(s, "tickets"), 0), "key", ""),
                     "FM-3");
    json_decref(s);
    s = call_ok(fm_tool_ticket_search, "{\"state\": \"closed\"}");
    ck_assert_int_eq(json_integer_value(json_object_get(s, "count")), 0);
    json_decref(s);
}
END_TEST

START_TEST(test_close)
{
    json_decref(call_ok(fm_tool_ticket_create,
                        "{\"summary\": \"a\", \"node\": \"n1\", \"fault_class\": \"c1\"}"));
    json_t *c = call_ok(fm_tool_ticket_close, "{\"key\": \"FM-1\", \"comment\": \"RMA done\"}");
    ck_assert(json_is_false(json_object_get(c, "open")));
    ck_assert(json_is_false(json_object_get(c, "already_closed")));
    ck_assert_str_eq(fm_json_str(c, "status", ""), "Closed");
    ck_assert_str_eq(fm_json_str(c, "transition", ""), "Close");
    json_decref(c);
    c = call_ok(fm_tool_ticket_close, "{\"key\": \"FM-1\"}");
    ck_assert(json_is_true(json_object_get(c, "already_closed")));
    ck_assert(json_is_null(json_object_get(c, "transition")));
    json_decref(c);
    json_t *s = call_ok(fm_tool_ticket_search, "{\"state\": \"closed\"}");
    ck_assert_int_eq(json_integer_value(json_object_get(s, "count")), 1);
    json_decref(s);
    /* a closed ticket does not absorb a new occurrence */
    json_t *r = call_ok(fm_tool_ticket_create,
                        "{\"summary\": \"a\", \"node\": \"n1\", \"fault_class\": \"c1\"}");
    ck_assert_str_eq(fm_json_str(r, "key", ""), "FM-2");
    ck_assert(json_is_false(json_object_get(r, "deduplicated")));
    json_decref(r);
    fm_err err = {0};
    json_t *tr = fm_tickets_local.transitions(ctx.be.tickets_st, "FM-1", &err);
    ck_assert_str_eq(fm_json_str(json_array_get(tr, 0), "name", ""), "Reopen");
    json_decref(tr);
}
END_TEST

START_TEST(test_escalate)
{
    add_bundle("49", "n3", "plain text bundle", true);
    json_t *ev = json_pack("[s]", "verification failed after gpu_reset");
    fm_err err = {0};
    json_t *r = fm_ticket_escalate(&ctx, "n3", "xid_79", "repair failed on n3", ev, "49", &err);
    ck_assert_msg(r != NULL, "%s", err.text);
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(r, "attached"), 0)),
                     "diag-bundle-49.txt");
    json_decref(r);
    r = fm_ticket_escalate(&ctx, "n3", "xid_79", "repair failed on n3 again", ev, "missing", &err);
    ck_assert_ptr_nonnull(r);
    ck_assert(json_is_true(json_object_get(r, "deduplicated")));
    ck_assert_int_eq(json_array_size(json_object_get(r, "attached")), 0);
    ck_assert_ptr_nonnull(strstr(json_string_value(json_array_get(json_object_get(r, "notes"), 0)),
                                 "bundle not attached"));
    json_decref(r);
    json_t *t = call_ok(fm_tool_ticket_get, "{\"key\": \"FM-1\"}");
    ck_assert_str_eq(fm_json_str(t, "priority", ""), "High");
    ck_assert_int_eq(json_integer_value(json_object_get(t, "comments_count")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(t, "attachments_count")), 1);
    ck_assert_ptr_nonnull(strstr(fm_json_str(t, "description", ""), "verification failed"));
    json_decref(t);
    json_decref(ev);
}
END_TEST

/* Several server processes on one database: keys stay unique, and one
 * (node, class) gets one ticket however the creates interleave. */
START_TEST(test_processes_share_store)
{
    enum { PROCS = 4, EACH = 8 };
    pid_t pids[PROCS];
    for (int p = 0; p < PROCS; p++) {
        pids[p] = fork();
        ck_assert_int_ge(pids[p], 0);
        if (pids[p] == 0) {
            fm_ctx c;
            open_ctx(&c, "{}");
            int bad = 0;
            for (int i = 0; i < EACH; i++) {
                char node[32];
                snprintf(node, sizeof node, "p%d-n%d", p, i);
                json_t *f =
                    json_pack("{s:s, s:s, s:s}", "summary", "s", "node", node, "fault_class", "c");
                json_t *g = json_pack("{s:s, s:s, s:s}", "summary", "shared", "node", "same",
                                      "fault_class", "c");
                fm_err e = {0};
                json_t *a = fm_ticket_submit(&c, f, NULL, true, &e);
                json_t *b = fm_ticket_submit(&c, g, NULL, true, &e);
                bad += !a || !b;
                json_decref(a);
                json_decref(b);
                json_decref(f);
                json_decref(g);
            }
            close_ctx(&c);
            _exit(bad ? 1 : 0);
        }
    }
    for (int p = 0; p < PROCS; p++) {
        int status = 0;
        ck_assert_int_eq(waitpid(pids[p], &status, 0), pids[p]);
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    fm_db_stmt *s;
    ck_assert_int_eq(fm_db_prepare_v2(ctx.store.db,
                                      "SELECT count(*), count(DISTINCT key),"
                                      " sum(node = 'same'), (SELECT count(*) FROM"
                                      " ticket_comments) FROM tickets",
                                      -1, &s, NULL),
                     FM_DB_OK);
    ck_assert_int_eq(fm_db_step(s), FM_DB_ROW);
    ck_assert_int_eq(fm_db_column_int(s, 0), PROCS * EACH + 1);
    ck_assert_int_eq(fm_db_column_int(s, 1), PROCS * EACH + 1);
    ck_assert_int_eq(fm_db_column_int(s, 2), 1);
    ck_assert_int_eq(fm_db_column_int(s, 3), PROCS * EACH - 1);
    fm_db_finalize(s);
}
END_TEST

static Suite *tickets_local_suite(void)
{
    Suite *s = suite_create("tickets_local");
    TCase *tc = tcase_create("local");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_key_valid);
    tcase_add_test(tc, test_default_backend_is_local);
    tcase_add_test(tc, test_create_get);
    tcase_add_test(tc, test_dedup);
    tcase_add_test(tc, test_backend_create_is_atomic_dedup);
    tcase_add_test(tc, test_update);
    tcase_add_test(tc, test_bundles);
    tcase_add_test(tc, test_bundle_integer_ids);
    tcase_add_test(tc, test_search);
    tcase_add_test(tc, test_close);
    tcase_add_test(tc, test_escalate);
    tcase_add_test(tc, test_processes_share_store);
    suite_add_tcase(s, tc);
    return s;
}

FM_TEST_MAIN(tickets_local_suite)
