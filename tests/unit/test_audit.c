/* The audit chain: rows per call, redaction, tamper detection. */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sqlite3.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fleetmcp/fm_audit.h"
#include "fleetmcp/fm_crypto.h"
#include "fleetmcp/fm_fleet.h"
#include "fleetmcp/fm_gate.h"
#include "fleetmcp/fm_httpd_workers.h"
#include "fleetmcp/fm_policy.h"
#include "fleetmcp/fm_util.h"
#include "fm_test.h"
#include "test_core_helpers.h"

#include "fm_tools.gen.h"

static long long count(test_server *t, const char *where)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM audit WHERE %s", where);
    fm_db_stmt *s;
    ck_assert_int_eq(fm_db_prepare_v2(t->ctx.store.db, sql, -1, &s, NULL), FM_DB_OK);
    ck_assert_int_eq(fm_db_step(s), FM_DB_ROW);
    long long n = fm_db_column_int64(s, 0);
    fm_db_finalize(s);
    return n;
}

static void exec(test_server *t, const char *sql)
{
    ck_assert_int_eq(fm_db_exec(t->ctx.store.db, sql, NULL, NULL, NULL), FM_DB_OK);
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
    ck_assert_int_eq(count(&t, "initiator_kind='agent' AND client_name='unit'"), count(&t, "1=1"));
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
    json_t *args =
        json_pack("{s:s, s:{s:s, s:s}, s:[{s:s}]}", "node", "gpu-a01", "auth", "api_token",
                  "s3cr3t-value", "user", "ops", "list", "password", "hunter2");
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

/* The redaction's key test as it was (a lowercased copy of the first 63
 * bytes, a strstr for each word), the reference for the one-pass one. */
static bool key_secret_ref(const char *key)
{
    static const char *const words[] = {"password",   "passwd", "secret",        "token",
                                        "api_key",    "apikey", "authorization", "private_key",
                                        "credential", "cookie", "signature"};
    char low[64];
    size_t n = 0;
    for (; key[n] && n < sizeof low - 1; n++)
        low[n] = (char)tolower((unsigned char)key[n]);
    low[n] = '\0';
    if (!strcmp(low, "pat")) return true;
    for (size_t i = 0; i < sizeof words / sizeof *words; i++)
        if (strstr(low, words[i])) return true;
    return false;
}

START_TEST(secret_keys_match_reference)
{
    const char *keys[] = {"",
                          "p",
                          "pa",
                          "pat",
                          "PAT",
                          "Pat",
                          "pats",
                          "path",
                          "jira_pat",
                          "pattern",
                          "password",
                          "PassWord",
                          "db_password",
                          "passwd",
                          "pass",
                          "secret",
                          "SECRET_ID",
                          "clientSecret",
                          "token",
                          "tok",
                          "x-Token-y",
                          "api_key",
                          "API_KEY",
                          "apikey",
                          "api-key",
                          "authorization",
                          "Authorization",
                          "authoriz",
                          "private_key",
                          "PRIVATE",
                          "credential",
                          "credentials",
                          "cookie",
                          "Cookie2",
                          "signature",
                          "sig",
                          "node",
                          "fault_class",
                          "\xc3\xa9token",
                          "t\x80ken",
                          "ssecret",
                          "ppassword",
                          "[",
                          "@TOKEN",
                          "z_signaturE"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        ck_assert_msg(fm_key_is_secret(keys[i]) == key_secret_ref(keys[i]), "key %s", keys[i]);
    /* Past 63 bytes the whole key counts now (the copy cut it there). */
    char long_key[128];
    memset(long_key, 'x', sizeof long_key);
    strcpy(long_key + 90, "_token");
    ck_assert(!key_secret_ref(long_key) && fm_key_is_secret(long_key));
    memcpy(long_key + 60, "Secret", 6); /* across the old cut */
    ck_assert(fm_key_is_secret(long_key));
    long_key[90] = '\0';
    ck_assert(fm_key_is_secret(long_key));
    memset(long_key, 'x', 90);
    ck_assert(!fm_key_is_secret(long_key));
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

/* Found in a review: audit_query's error for a time it cannot read
 * echoed the caller's text as it came, escape sequences and all (shown by
 * mcp-cli on an operator's terminal). */
START_TEST(query_time_error_shows_no_control_characters)
{
    fm_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    json_t *args = json_pack("{s:s}", "since", "\x1b[2J\x07yesterday");
    fm_call call = {.ctx = &ctx, .args = args};
    fm_err err = {0};
    ck_assert_ptr_null(fm_tool_audit_query(&call, &err));
    ck_assert_int_eq(err.code, FM_ERR_INVALID);
    for (const char *c = err.text; *c; c++)
        ck_assert_msg((unsigned char)*c >= 0x20, "control character in: %s", err.text);
    ck_assert_ptr_nonnull(strstr(err.text, "' [2J yesterday'"));
    json_decref(args);
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
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(intent, "args"), "reason")),
                     "q test");
    json_decref(res);
    res = ts_call(&t, "audit_query", "{\"since\":\"yesterday\"}");
    ck_assert(json_is_true(json_object_get(res, "isError")));
    json_decref(res);
    res = ts_call(&t, "audit_query", "{\"since\":\"1h\",\"initiator\":\"agent\"}");
    ck_assert_int_ge(
        json_integer_value(json_object_get(json_object_get(res, "structuredContent"), "count")), 3);
    json_decref(res);
    ts_close(&t);
}
END_TEST

/* Counters are folded in batches: whatever the batch edges, every call
 * and intent is counted exactly once, results and steps never. */
START_TEST(hourly_counters_fold_once)
{
    test_server t;
    ts_open(&t, NULL);
    for (int i = 0; i < 700; i++) {
        fm_audit_rec r = {.phase = i % 7 == 6   ? "result"
                                   : i % 7 == 5 ? "intent"
                                                : "call",
                          .tool = i % 7 >= 5 ? "drain_node" : "slurm_nodes",
                          .decision = "allow"};
        ck_assert_int_gt(fm_audit_append(&t.ctx, &r, NULL), 0);
    }
    fm_db *db = t.ctx.store.db;
    /* Appends folded on the way (at rows 256 and 512), not per row. */
    ck_assert_int_eq(ts_scalar(db, "SELECT sum(n) FROM audit_hourly"), 512 - 512 / 7);
    fm_err err = {0};
    ck_assert_int_eq(fm_audit_fold(&t.ctx.store, &err), 0);
    ck_assert_int_eq(fm_audit_fold(&t.ctx.store, &err), 0); /* idempotent */
    ck_assert_int_eq(ts_scalar(db, "SELECT sum(n) FROM audit_hourly WHERE tool='slurm_nodes'"),
                     500);
    ck_assert_int_eq(ts_scalar(db, "SELECT sum(n) FROM audit_hourly WHERE tool='drain_node'"), 100);
    /* fleet_status folds before it reads: its own call is the 701st row. */
    ts_init(&t);
    json_t *res = ts_call(&t, "fleet_status", "{}");
    fm_audit_rec r = {.phase = "call", .tool = "slurm_nodes", .decision = "deny"};
    fm_audit_append(&t.ctx, &r, NULL);
    json_decref(res);
    res = ts_call(&t, "fleet_status", "{}");
    json_t *dec = json_object_get(
        json_object_get(json_object_get(res, "structuredContent"), "audit"), "last_24h");
    ck_assert_ptr_nonnull(dec);
    ck_assert_int_eq(json_integer_value(json_object_get(dec, "allow")), 601);
    ck_assert_int_eq(json_integer_value(json_object_get(dec, "deny")), 1);
    json_decref(res);
    ts_close(&t);
}
END_TEST

/* A kill switch whose setting cannot be read counts as engaged: the
 * store that cannot answer may well say "engaged". */
START_TEST(killswitch_fails_closed)
{
    test_server t;
    ts_open(&t, "mode: fleet\n");
    char why[600];
    ck_assert(!fm_killswitch_engaged(&t.ctx, why, sizeof why));
    exec(&t, "DROP TABLE settings");
    ck_assert(fm_killswitch_engaged(&t.ctx, why, sizeof why));
    ck_assert_msg(strstr(why, "cannot be read") != NULL, "%s", why);
    ts_close(&t);
}
END_TEST

/* HMAC-SHA256 against RFC 4231 test case 2 (a key shorter than a block
 * is zero-padded, so "Jefe" and "Jefe" plus 28 zero bytes agree). */
START_TEST(hmac_rfc4231)
{
    unsigned char key[32] = {'J', 'e', 'f', 'e'};
    char out[65];
    const char *msg = "what do ya want for nothing?";
    fm_hmac_sha256_hex(key, msg, strlen(msg), out);
    ck_assert_str_eq(out, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}
END_TEST

/* The HMAC is built on the low-level SHA-256 (sha256.c): it must agree
 * with OpenSSL's own HMAC byte for byte, one-shot and kept, for messages
 * shorter than, equal to and longer than a block, and after the kept
 * key changes. */
START_TEST(hmac_matches_openssl)
{
    unsigned char key[32], msg[300];
    for (int i = 0; i < 32; i++)
        key[i] = (unsigned char)(i * 7 + 1);
    for (int i = 0; i < 300; i++)
        msg[i] = (unsigned char)(i * 31 + 5);
    fm_hmac_key *kept = NULL;
    for (int round = 0; round < 2; round++) {
        if (round) key[0] ^= 0xff; /* the kept pads are remade */
        for (size_t n = 0; n <= sizeof msg; n += n < 130 ? 1 : 17) {
            unsigned char ref[EVP_MAX_MD_SIZE];
            unsigned int rn = 0;
            ck_assert_ptr_nonnull(
                FM_CRYPTO(HMAC)(FM_CRYPTO(EVP_sha256)(), key, 32, msg, n, ref, &rn));
            char want[65], one[65], kp[65];
            fm_hex(ref, 32, want);
            fm_hmac_sha256_hex(key, msg, n, one);
            fm_hmac_sha256_hex_kept(&kept, key, msg, n, kp);
            ck_assert_str_eq(one, want);
            ck_assert_str_eq(kp, want);
        }
    }
    fm_hmac_key_free(kept);
}
END_TEST

static void open_file_store(fm_ctx *ctx, const char *path)
{
    memset(ctx, 0, sizeof *ctx);
    fm_err err = {0};
    unsetenv("FLEETMCP_CONFIG");
    ck_assert_msg(fm_ctx_open(ctx, NULL, fm_test_target(path), &err) == 0, "%s", err.text);
}

/* A new file-backed store (path: a "/tmp/...-XXXXXX" buffer) holding n
 * fleet_status rows. */
static void filled_store(fm_ctx *ctx, char *path, int n)
{
    fm_test_temp_db(path);
    fm_test_store(path);
    open_file_store(ctx, path);
    fm_audit_rec r = {.phase = "call", .tool = "fleet_status", .decision = "allow"};
    for (int i = 0; i < n; i++)
        ck_assert_int_gt(fm_audit_append(ctx, &r, NULL), 0);
}

static int verify_says(fm_ctx *ctx, const char *needle);

/* Closes ctx, checks what a freshly opened server's verify says, and
 * removes the store. */
static void reopened_says(fm_ctx *ctx, const char *path, const char *needle)
{
    fm_ctx_close(ctx);
    open_file_store(ctx, path);
    ck_assert(verify_says(ctx, needle));
    fm_ctx_close(ctx);
    fm_test_unlink_db(path);
}

static int verify_says(fm_ctx *ctx, const char *needle)
{
    int64_t rows = 0, bad = 0;
    fm_err err = {0};
    int rc = fm_audit_verify(&ctx->store, &rows, &bad, &err);
    if (rc == 0) return needle ? 0 : 1;
    ck_assert_msg(needle && strstr(err.text, needle), "verify said: %s", err.text);
    return 1;
}

/* Rows in the audit table as another connection sees them: committed. */
static long long committed_rows(const char *path)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    long long n = -1;
    ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM audit", -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
        n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return n;
}

static void row_mode(fm_ctx *ctx, int64_t id, char *out, size_t len);

/* A new store of n rows (as filled_store) open in two servers. */
static void two_servers(fm_ctx *ctx, fm_ctx *other, char *path, int n)
{
    filled_store(ctx, path, n);
    open_file_store(other, path);
}

static int batch_ends[2]; /* [0] rolled back, [1] committed */
static void on_batch_end(void *cls, fm_store *st, bool ok)
{
    (void)cls, (void)st;
    batch_ends[ok]++;
}

/* Group commit (fm_store_batch_*, the HTTP transport's): armed, appends
 * wait in memory and take no lock, so another server writes meanwhile;
 * the batch's commit inserts them after that writer's row, in one
 * transaction, under the mode of that moment; a write of the caller's
 * own inside the batch is its own transaction; a commit that fails keeps
 * none of the rows and leaves the anchor where the committed rows end
 * (verify passes); a writer outside the batch commits it first. */
START_TEST(group_commit_batches)
{
    char path[] = "/tmp/fm-audit-batch-XXXXXX";
    fm_ctx ctx, other;
    two_servers(&ctx, &other, path, 2);
    fm_store *st = &ctx.store;
    st->batch.done = on_batch_end;
    memset(batch_ends, 0, sizeof batch_ends);
    fm_audit_rec r = {.phase = "call", .tool = "fleet_status", .decision = "allow"};
    ck_assert_int_eq(fm_store_batch_arm(st), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(fm_audit_append(&ctx, &r, NULL), i + 1);
    fm_err err = {0};
    ck_assert_int_eq(fm_store_begin(st, &err), 0);
    ck_assert_int_eq(fm_db_exec(st->db,
                                "INSERT INTO settings(key,value,updated_ms)"
                                " VALUES('batch-test','x',0)",
                                0, 0, 0),
                     FM_DB_OK);
    fm_store_rollback(st);
    /* The other server is not blocked: no lock is held for the batch. */
    ck_assert_int_eq(fm_audit_append(&other, &r, NULL), 3);
    char v[128], mode[32];
    snprintf(v, sizeof v, "{\"until_ms\":%lld,\"by\":\"unit\"}", (long long)(fm_now_ms() + 600000));
    ck_assert_int_eq(fm_store_setting_set(&other.store, FM_EMERGENCY_SETTING, v, &err), 0);
    fm_store_batch_disarm(st);
    ck_assert(st->batch.open);
    ck_assert_int_eq(st->batch.rows, 3);
    ck_assert_int_eq(committed_rows(path), 3);
    ck_assert_int_eq(fm_store_batch_commit(st, &err), 0);
    ck_assert_int_eq(batch_ends[1], 1);
    ck_assert_int_eq(committed_rows(path), 6);
    row_mode(&ctx, 6, mode, sizeof mode);
    ck_assert_str_eq(mode, "shadow+emergency");
    ck_assert_int_eq(
        fm_store_setting_set(&other.store, FM_EMERGENCY_SETTING, "{\"until_ms\":0}", &err), 0);
    char val[8];
    ck_assert_int_ne(fm_store_setting_get(st, "batch-test", val, sizeof val), 0); /* undone */
    ck_assert(verify_says(&ctx, NULL));

    /* The batch's insert fails (a trigger refuses it): nothing of it is
     * kept, and done hears of it. */
    ck_assert_int_eq(fm_store_batch_arm(st), 0);
    for (int i = 0; i < 2; i++)
        ck_assert_int_gt(fm_audit_append(&ctx, &r, NULL), 0);
    fm_store_batch_disarm(st);
    ck_assert_int_eq(fm_db_exec(st->db,
                                "CREATE TEMP TRIGGER refuse BEFORE INSERT ON main.audit"
                                " BEGIN SELECT RAISE(ABORT, 'refused'); END",
                                0, 0, 0),
                     FM_DB_OK);
    ck_assert_int_eq(fm_store_batch_commit(st, &err), -1);
    ck_assert_msg(strstr(err.text, "retry"), "%s", err.text);
    ck_assert_int_eq(batch_ends[0], 1);
    ck_assert(!st->batch.open);
    ck_assert_int_eq(fm_db_exec(st->db, "DROP TRIGGER temp.refuse", 0, 0, 0), FM_DB_OK);
    ck_assert_int_eq(committed_rows(path), 6);
    ck_assert(verify_says(&ctx, NULL));

    /* A writer outside the batch commits it first. */
    ck_assert_int_eq(fm_store_batch_arm(st), 0);
    ck_assert_int_gt(fm_audit_append(&ctx, &r, NULL), 0);
    fm_store_batch_disarm(st);
    ck_assert_int_gt(fm_audit_append(&ctx, &r, NULL), 0);
    ck_assert(!st->batch.open);
    ck_assert_int_eq(batch_ends[1], 2);
    ck_assert_int_eq(committed_rows(path), 8);
    ck_assert_int_eq(st->batch.commits, 2);
    ck_assert_int_eq(st->batch.batched_rows, 4);
    fm_ctx_close(&other);
    reopened_says(&ctx, path, NULL);
}
END_TEST

/* Armed, a setting read outside a transaction is remembered until a
 * batch commits after another server wrote, or this process writes;
 * another server's write is seen after the next commit, with or without
 * rows in the batch; with no other writer the memo outlives a commit
 * with rows (a change on the connection itself, behind the memo's back,
 * stays unseen: nothing was read again). */
START_TEST(group_commit_remembers_settings)
{
    char path[] = "/tmp/fm-audit-memo-XXXXXX";
    fm_ctx ctx, other;
    two_servers(&ctx, &other, path, 1);
    fm_store *st = &ctx.store;
    fm_err err = {0};
    char v[16];
    ck_assert_int_eq(fm_store_setting_set(st, "memo-test", "a", &err), 0);
    ck_assert_int_eq(fm_store_batch_arm(st), 0);
    ck_assert_int_eq(fm_store_setting_get(st, "memo-test", v, sizeof v), 0);
    ck_assert_str_eq(v, "a");
    ck_assert_int_eq(fm_store_setting_get(st, "memo-unset", v, sizeof v), -1);
    ck_assert_int_eq(fm_store_setting_set(&other.store, "memo-test", "b", &err), 0);
    ck_assert_int_eq(fm_store_setting_set(&other.store, "memo-unset", "x", &err), 0);
    ck_assert_int_eq(fm_store_setting_get(st, "memo-test", v, sizeof v), 0);
    ck_assert_str_eq(v, "a"); /* remembered within the turn */
    ck_assert_int_eq(fm_store_setting_get(st, "memo-unset", v, sizeof v), -1);
    ck_assert_int_eq(fm_store_batch_commit(st, &err), 0);
    ck_assert_int_eq(fm_store_setting_get(st, "memo-test", v, sizeof v), 0);
    ck_assert_str_eq(v, "b");
    ck_assert_int_eq(fm_store_setting_get(st, "memo-unset", v, sizeof v), 0);
    ck_assert_str_eq(v, "x");
    ck_assert_int_eq(fm_store_setting_set(st, "memo-test", "c", &err), 0);
    ck_assert_int_eq(fm_store_setting_get(st, "memo-test", v, sizeof v), 0);
    ck_assert_str_eq(v, "c"); /* this process's own write: at once */
    fm_audit_rec r = {.phase = "call", .tool = "fleet_status", .decision = "allow"};
    ck_assert_int_gt(fm_audit_append(&ctx, &r, &err), 0);
    ck_assert_int_eq(fm_store_batch_commit(st, &err), 0); /* learns the data version */
    ck_assert_int_eq(fm_store_setting_get(st, "memo-test", v, sizeof v), 0);
    ck_assert_int_eq(
        fm_db_exec(st->db, "UPDATE settings SET value='hidden' WHERE key='memo-test'", 0, 0, 0),
        FM_DB_OK);
    ck_assert_int_gt(fm_audit_append(&ctx, &r, &err), 0);
    ck_assert_int_eq(fm_store_batch_commit(st, &err), 0);
    ck_assert_int_eq(fm_store_setting_get(st, "memo-test", v, sizeof v), 0);
    ck_assert_str_eq(v, "c"); /* remembered across the commit */
    ck_assert_int_eq(fm_store_setting_set(&other.store, "memo-unset", "y", &err), 0);
    ck_assert_int_gt(fm_audit_append(&ctx, &r, &err), 0);
    ck_assert_int_eq(fm_store_batch_commit(st, &err), 0);
    ck_assert_int_eq(fm_store_setting_get(st, "memo-test", v, sizeof v), 0);
    ck_assert_str_eq(v, "hidden"); /* another server wrote: read again */
    ck_assert_int_eq(fm_store_setting_get(st, "memo-unset", v, sizeof v), 0);
    ck_assert_str_eq(v, "y");
    /* A value the caller's buffer would clip is read, not remembered. */
    ck_assert_int_eq(fm_store_setting_get(st, "memo-test", v, 1), 0);
    ck_assert_str_eq(v, "");
    fm_store_batch_disarm(st);
    fm_ctx_close(&other);
    reopened_says(&ctx, path, NULL);
}
END_TEST

/* Rows cut from the end, all rows deleted, or a row renumbered: the
 * anchor beside the store and the id in each keyed hash show it. */
START_TEST(truncation_detected)
{
    char path[] = "/tmp/fm-audit-cut-XXXXXX";
    fm_ctx ctx;
    filled_store(&ctx, path, 12);
    ck_assert(verify_says(&ctx, NULL));
    /* The key file is private and outside the database. */
    char kp[600];
    snprintf(kp, sizeof kp, "%s.audit-key", ctx.store.side);
    struct stat sb;
    ck_assert_int_eq(stat(kp, &sb), 0);
    ck_assert_int_eq(sb.st_mode & 0777, 0600);
    fm_db *db = ctx.store.db;
    ck_assert_int_eq(fm_db_exec(db, "DELETE FROM audit WHERE id=12", 0, 0, 0), FM_DB_OK);
    ck_assert(verify_says(&ctx, "1 row(s) missing from the end"));
    ck_assert_int_eq(fm_db_exec(db, "DELETE FROM audit WHERE id>=8", 0, 0, 0), FM_DB_OK);
    ck_assert(verify_says(&ctx, "5 row(s) missing from the end"));
    /* Cut back, then other rows written: the anchor's row differs.
     * (Other rows: the same rows within the same millisecond would hash
     * the same, and then nothing is missing.) */
    fm_audit_rec other = {.phase = "call", .tool = "slurm_nodes", .decision = "allow"};
    for (int i = 0; i < 6; i++)
        ck_assert_int_gt(fm_audit_append(&ctx, &other, NULL), 0);
    ck_assert(verify_says(&ctx, "not the row the anchor recorded"));
    ck_assert_int_eq(fm_db_exec(db, "DELETE FROM audit", 0, 0, 0), FM_DB_OK);
    ck_assert(verify_says(&ctx, "missing from the end"));
    /* A reopened server does not paper over it with a new anchor. */
    reopened_says(&ctx, path, "missing from the end");
}
END_TEST

/* A batch moves the anchor to its last row with one MAC and still
 * catches a cut: rows written again below the anchor (the anchor at the
 * batch's last row's predecessor), and a row replaced just before the
 * batch (the anchor at its first row's predecessor: the anchor stays,
 * where it used to move on to the batch's last row). */
static void batched_rows(fm_ctx *ctx, int n, const char *tool)
{
    fm_audit_rec r = {.phase = "call", .tool = tool, .decision = "allow"};
    fm_err err = {0};
    ck_assert_int_eq(fm_store_batch_arm(&ctx->store), 0);
    for (int i = 0; i < n; i++)
        ck_assert_int_gt(fm_audit_append(ctx, &r, NULL), 0);
    fm_store_batch_disarm(&ctx->store);
    ck_assert_int_eq(fm_store_batch_commit(&ctx->store, &err), 0);
}

START_TEST(group_commit_anchor)
{
    char path[] = "/tmp/fm-audit-batch-cut-XXXXXX";
    fm_ctx ctx;
    filled_store(&ctx, path, 4);
    batched_rows(&ctx, 5, "fleet_status");
    ck_assert_int_eq(fm_audit_anchored(&ctx.store), 9);
    ck_assert(verify_says(&ctx, NULL));
    fm_db *db = ctx.store.db;
    ck_assert_int_eq(fm_db_exec(db, "DELETE FROM audit WHERE id>=6", 0, 0, 0), FM_DB_OK);
    batched_rows(&ctx, 5, "slurm_nodes"); /* 6..10: the anchor (9) is 10's predecessor */
    ck_assert_int_eq(fm_audit_anchored(&ctx.store), 9);
    reopened_says(&ctx, path, "not the row the anchor recorded");

    char path2[] = "/tmp/fm-audit-batch-cut2-XXXXXX";
    filled_store(&ctx, path2, 10);
    db = ctx.store.db;
    ck_assert_int_eq(fm_db_exec(db, "DELETE FROM audit WHERE id=10", 0, 0, 0), FM_DB_OK);
    fm_audit_rec other = {.phase = "call", .tool = "slurm_nodes", .decision = "allow"};
    ck_assert_int_eq(fm_audit_append(&ctx, &other, NULL), 10); /* a new row 10 */
    batched_rows(&ctx, 3, "slurm_nodes"); /* 11..13: the anchor (old 10) is 11's predecessor */
    ck_assert_int_eq(fm_audit_anchored(&ctx.store), 10);
    reopened_says(&ctx, path2, "not the row the anchor recorded");
}
END_TEST

/* The shared anchor (audit_heads): host B, which wrote rows 1-3 and
 * never saw host A's 70 rows, still catches a cut past A's head; a head
 * forged without the key is refused; B's anchor moves forward on a
 * verify that passes and never back. */
static void anchor_bytes(const fm_ctx *ctx, char *buf, size_t len, bool save)
{
    char ap[600];
    snprintf(ap, sizeof ap, "%s.audit-anchor", ctx->store.side);
    FILE *f = fopen(ap, save ? "rb" : "r+b");
    ck_assert_msg(f != NULL, "%s", ap);
    size_t n = save ? fread(buf, 1, len, f) : fwrite(buf, 1, len, f);
    ck_assert_uint_eq(n, len);
    fclose(f);
}

static void db_exec(fm_ctx *ctx, const char *sql)
{
    ck_assert_msg(fm_db_exec(ctx->store.db, sql, NULL, NULL, NULL) == FM_DB_OK, "%s: %s", sql,
                  fm_db_errmsg(ctx->store.db));
}

START_TEST(shared_heads_catch_cuts)
{
    char path[] = "/tmp/fm-audit-heads-XXXXXX";
    fm_ctx b, a;
    setenv("FLEETMCP_HOST_ID", "host-b", 1);
    filled_store(&b, path, 3);
    ck_assert_int_eq(fm_audit_anchored(&b.store), 3);
    /* B's anchor file as B's own host would keep it: A's appends below
     * share it here (one machine), so it is put back after them. */
    static char b_anchor[4096];
    struct stat sb;
    char ap[600];
    snprintf(ap, sizeof ap, "%s.audit-anchor", b.store.side);
    ck_assert_int_eq(stat(ap, &sb), 0);
    ck_assert_uint_le((size_t)sb.st_size, sizeof b_anchor);
    anchor_bytes(&b, b_anchor, (size_t)sb.st_size, true);
    fm_ctx_close(&b);

    setenv("FLEETMCP_HOST_ID", "host-a", 1);
    open_file_store(&a, path);
    fm_audit_rec r = {.phase = "call", .tool = "slurm_nodes", .decision = "allow"};
    for (int i = 0; i < 70; i++)
        ck_assert_int_gt(fm_audit_append(&a, &r, NULL), 0);
    /* A recorded its head after its 64th append (row 67), not since. */
    ck_assert_int_eq(ts_scalar(a.store.db, "SELECT id FROM audit_heads WHERE host='host-a'"), 67);
    fm_ctx_close(&a);

    setenv("FLEETMCP_HOST_ID", "host-b", 1);
    open_file_store(&b, path);
    anchor_bytes(&b, b_anchor, (size_t)sb.st_size, false);
    ck_assert_int_eq(fm_audit_anchored(&b.store), 3);
    db_exec(&b, "CREATE TABLE audit_saved AS SELECT * FROM audit WHERE id>=50");
    /* Cut past A's head: B's own anchor (row 3) would not see it. */
    db_exec(&b, "DELETE FROM audit WHERE id>=50");
    ck_assert(verify_says(&b, "host 'host-a' recorded row 67 in audit_heads: 18 row(s) missing"));
    ck_assert_int_eq(fm_audit_anchored(&b.store), 3); /* a failed verify moves nothing */
    /* Cut back and written again up to A's head: the row differs. */
    fm_audit_rec other = {.phase = "call", .tool = "fleet_status", .decision = "deny"};
    for (int i = 0; i < 18; i++)
        ck_assert_int_gt(fm_audit_append(&b, &other, NULL), 0);
    ck_assert(verify_says(&b, "row 67 is not the row host 'host-a' recorded"));
    db_exec(&b, "DELETE FROM audit WHERE id>=50");
    db_exec(&b, "INSERT INTO audit SELECT * FROM audit_saved");
    /* Those appends moved B's anchor onto the rewritten rows: back to
     * what B's host held before them. */
    anchor_bytes(&b, b_anchor, (size_t)sb.st_size, false);

    /* Intact again: B's anchor and head move to the end. */
    ck_assert(verify_says(&b, NULL));
    ck_assert_int_eq(fm_audit_anchored(&b.store), 73);
    ck_assert_int_eq(ts_scalar(b.store.db, "SELECT id FROM audit_heads WHERE host='host-b'"), 73);

    /* Heads cannot be forged without the key: a new one, or B's under
     * another name. */
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO audit_heads(host,id,hash,keyed_from,mac,updated_ms) VALUES('forger',"
             " 1000, '%064d', %lld, '%064d', 0)",
             7, (long long)b.store.audit_keyed_from, 0);
    db_exec(&b, sql);
    ck_assert(verify_says(&b, "host 'forger' (row 1000) does not match its MAC"));
    db_exec(&b, "DELETE FROM audit_heads WHERE host='forger'");
    db_exec(&b, "INSERT INTO audit_heads(host,id,hash,keyed_from,mac,updated_ms) SELECT"
                " 'host-z', id, hash, keyed_from, mac, updated_ms FROM audit_heads WHERE"
                " host='host-b'");
    ck_assert(verify_says(&b, "host 'host-z' (row 73) does not match its MAC"));
    db_exec(&b, "DELETE FROM audit_heads WHERE host='host-z'");
    ck_assert(verify_says(&b, NULL));

    /* Every head row deleted with the tail: B's anchor, pulled forward,
     * still shows it, and stays where it was. */
    db_exec(&b, "DELETE FROM audit WHERE id>=60");
    db_exec(&b, "DELETE FROM audit_heads");
    ck_assert(verify_says(&b, "the anchor recorded row 73: 14 row(s) missing"));
    ck_assert_int_eq(fm_audit_anchored(&b.store), 73);
    fm_ctx_close(&b);
    /* A fresh process on B reads the same file. */
    open_file_store(&b, path);
    ck_assert_int_eq(fm_audit_anchored(&b.store), 73);
    ck_assert(verify_says(&b, "missing from the end"));
    fm_ctx_close(&b);
    unsetenv("FLEETMCP_HOST_ID");
    fm_test_unlink_db(path);
}
END_TEST

/* A new host (no anchor file, no head row of its own) joins a store that
 * other hosts vouched for: on PostgreSQL its first verify starts its
 * anchor at the chain's end; a host that had a head row, or SQLite,
 * still reports the missing anchor. */
START_TEST(joining_host_starts_its_anchor)
{
    char path[] = "/tmp/fm-audit-join-XXXXXX";
    fm_ctx a, c;
    setenv("FLEETMCP_HOST_ID", "host-a", 1);
    filled_store(&a, path, 70); /* A's head row: row 64 */
    char ap[600];
    snprintf(ap, sizeof ap, "%s.audit-anchor", a.store.side);
    fm_ctx_close(&a);
    bool pg = getenv("FM_TEST_PG") != NULL;
    /* Host C shares the key (copied) but never had an anchor. */
    ck_assert_int_eq(unlink(ap), 0);
    setenv("FLEETMCP_HOST_ID", "host-c", 1);
    open_file_store(&c, path);
    ck_assert_int_eq(fm_audit_anchored(&c.store), -1);
    ck_assert(verify_says(&c, pg ? NULL : "is missing or empty"));
    ck_assert_int_eq(fm_audit_anchored(&c.store), pg ? 70 : -1);
    /* Host A had a head row: its lost anchor is not replaced. */
    char cp[620];
    snprintf(cp, sizeof cp, "%s.saved", ap);
    if (pg) ck_assert_int_eq(rename(ap, cp), 0); /* C's, set aside */
    setenv("FLEETMCP_HOST_ID", "host-a", 1);
    open_file_store(&a, path);
    ck_assert(verify_says(&a, "is missing or empty"));
    fm_ctx_close(&a);
    if (pg) {
        ck_assert_int_eq(rename(cp, ap), 0);
        /* C's anchor from now on shows a cut below it. */
        db_exec(&c, "DELETE FROM audit WHERE id>=66");
        db_exec(&c, "DELETE FROM audit_heads");
        ck_assert(verify_says(&c, "the anchor recorded row 70: 5 row(s) missing"));
    }
    fm_ctx_close(&c);
    unsetenv("FLEETMCP_HOST_ID");
    fm_test_unlink_db(path);
}
END_TEST

/* Two appenders of one host: on PostgreSQL each takes its turn from the
 * head the other left (the turn file), so no first guess is stale and no
 * insert is lost; after rows are deleted from the end, the turn's head is
 * ahead of the table, which costs each appender one lost insert (its
 * guess), not one per call.  On SQLite (one writer at a time, no guess)
 * the same calls give the same rows and lose nothing. */
START_TEST(local_appenders_take_turns)
{
    char path[] = "/tmp/fm-audit-turns-XXXXXX";
    bool pg = getenv("FM_TEST_PG") != NULL;
    fm_ctx a, b;
    filled_store(&a, path, 1);
    open_file_store(&b, path);
    fm_audit_rec r = {.phase = "call", .tool = "fleet_status", .decision = "allow"};
    ck_assert_int_eq(fm_audit_append(&b, &r, NULL), 2);
    for (int i = 3; i <= 7; i++)
        ck_assert_int_eq(fm_audit_append(&a, &r, NULL), i);
    ck_assert_int_eq(fm_audit_append(&b, &r, NULL), 8); /* B last saw row 2 */
    ck_assert_int_eq(fm_audit_append(&a, &r, NULL), 9);
    ck_assert_int_eq(a.store.audit_lost + b.store.audit_lost, 0);
    /* As while another appender waits for the turn: the commit returns
     * once visible and the flush is read after the turn is handed on. */
    b.store.audit_turn_busy = 3;
    ck_assert_int_eq(fm_audit_append(&b, &r, NULL), 10);
    ck_assert_int_eq(fm_audit_append(&a, &r, NULL), 11);
    ck_assert_int_eq(fm_audit_append(&b, &r, NULL), 12);
    ck_assert_int_eq(b.store.audit_turn_busy, pg ? 1 : 3);
    ck_assert_int_eq(fm_audit_anchored(&b.store), 12); /* anchored once durable */
    ck_assert(verify_says(&a, NULL));
    db_exec(&a, "DELETE FROM audit WHERE id>=5");
    ck_assert_int_eq(fm_audit_append(&b, &r, NULL), 5);
    ck_assert_int_eq(fm_audit_append(&a, &r, NULL), 6);
    ck_assert_int_eq(fm_audit_append(&b, &r, NULL), 7);
    ck_assert_int_eq(fm_audit_append(&a, &r, NULL), 8);
    ck_assert_int_eq(b.store.audit_lost, pg ? 1 : 0);
    ck_assert_int_eq(a.store.audit_lost, pg ? 1 : 0);
    fm_ctx_close(&b);
    fm_ctx_close(&a);
    fm_test_unlink_db(path);
}
END_TEST

/* PostgreSQL: the transaction ids one append of r drew (a read of
 * pg_current_xact_id before and after it, each drawing one). */
static int64_t xids_drawn(fm_ctx *c, const fm_audit_rec *r)
{
    static const char sql[] = "SELECT pg_current_xact_id()::text::bigint";
    int64_t x0 = -1, x1 = -1;
    ck_assert_int_eq(fm_db_run(c->store.db, sql, fm_db_row_int64, &x0, ""), FM_DB_ROW);
    ck_assert_int_gt(fm_audit_append(c, r, NULL), 0);
    ck_assert_int_eq(fm_db_run(c->store.db, sql, fm_db_row_int64, &x1, ""), FM_DB_ROW);
    return x1 - x0 - 1;
}

/* PostgreSQL: an append alone in its turn commits synchronously, one
 * transaction; one without the turn (skipped after a stuck holder, or
 * none: writers race for ids) and those after a lost insert commit
 * visibly first and flush after, two transactions (the row's and the
 * flush's), so a racer never waits out another writer's flush on an id
 * it then loses.  The chain verifies after the first three (the rows cut
 * from its end later are what verify reports). */
START_TEST(racing_appends_visible_before_flush)
{
    char path[] = "/tmp/fm-audit-race-XXXXXX";
    fm_ctx a;
    filled_store(&a, path, 3);
    fm_audit_rec r = {.phase = "call", .tool = "fleet_status", .decision = "allow"};
    ck_assert_int_eq(xids_drawn(&a, &r), 1);
    a.store.audit_turn_skip_until = fm_now_ms() + 60000;
    ck_assert_int_eq(xids_drawn(&a, &r), 2);
    a.store.audit_turn_skip_until = 0;
    ck_assert_int_eq(xids_drawn(&a, &r), 1);
    ck_assert(verify_says(&a, NULL));
    /* The head this host knows is ahead of the table: the first guess is
     * lost (it inserts nothing, so draws no id), the retry goes early. */
    db_exec(&a, "DELETE FROM audit WHERE id>=5");
    const long long lost = a.store.audit_lost;
    ck_assert_int_eq(xids_drawn(&a, &r), 2);
    ck_assert_int_eq(a.store.audit_lost, lost + 1);
    ck_assert_int_eq(xids_drawn(&a, &r), 2); /* and the appends after it */
    fm_ctx_close(&a);
    fm_test_unlink_db(path);
}
END_TEST

/* The turn file's layout (src/audit/audit.c's anchor_file): an on-disk
 * format shared by every process of the host, so a test holder can lock
 * it exactly as turn_take does; the file's size is checked against it. */
typedef struct turn_file {
    char magic[32];
    int64_t id, keyed_from;
    char head[65], mac[65];
    pthread_mutex_t mu;
} turn_file;

/* A forked holder of the turn: it locks the mutex as turn_take does,
 * leaves head (when set) as the head of its turn, says so on the pipe and
 * then waits for a byte (or its end) before it gives the turn back. */
static pid_t turn_holder(fm_ctx *ctx, int64_t id, const char *head, int *go)
{
    char tp[600];
    snprintf(tp, sizeof tp, "%s.audit-turns", ctx->store.side);
    struct stat sb;
    ck_assert_int_eq(stat(tp, &sb), 0);
    ck_assert_int_ge(sb.st_size, sizeof(turn_file)); /* the rest: turns_file */
    turn_file *f = ctx->store.audit_turn;            /* MAP_SHARED: the child's too */
    ck_assert_ptr_nonnull(f);
    int up[2], down[2];
    ck_assert_int_eq(pipe(up), 0);
    ck_assert_int_eq(pipe(down), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(up[0]);
        close(down[1]); /* the parent's close is the holder's cue */
        /* Not left behind (stopped) if the test fails before its end. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int rc = pthread_mutex_trylock(&f->mu);
        if (rc == EOWNERDEAD) rc = pthread_mutex_consistent(&f->mu);
        if (rc) _exit(1);
        if (head) {
            f->id = id;
            memcpy(f->head, head, sizeof f->head);
        }
        char c = 1;
        if (write(up[1], &c, 1) != 1) _exit(1);
        if (read(down[0], &c, 1) < 0) _exit(1);
        pthread_mutex_unlock(&f->mu);
        _exit(0);
    }
    close(up[1]);
    close(down[0]);
    char c;
    ck_assert_int_eq(read(up[0], &c, 1), 1); /* the child holds the turn */
    close(up[0]);
    *go = down[1];
    return pid;
}

/* Kills the holder in its turn (it never gives it back) and reaps it. */
static void turn_holder_kill(pid_t pid, int go)
{
    ck_assert_int_eq(kill(pid, SIGKILL), 0);
    int ws;
    ck_assert_int_eq(waitpid(pid, &ws, 0), pid);
    ck_assert(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL);
    close(go);
}

/* A holder killed (SIGKILL) in its turn: the next appender recovers the
 * mutex (EOWNERDEAD, made consistent) and appends, and each of the two
 * holders' heads, one stale (rows deleted after it) and one torn (a new
 * id, the hash half written), costs at most one lost insert: the rows
 * stay one chain. */
START_TEST(turn_holder_killed)
{
    char path[] = "/tmp/fm-audit-turnkill-XXXXXX";
    fm_ctx a, b;
    filled_store(&a, path, 4); /* makes and maps the turn file */
    open_file_store(&b, path);
    fm_audit_rec r = {.phase = "call", .tool = "fleet_status", .decision = "allow"};
    /* Stale: the head of row 4, then rows from 3 on deleted. */
    char head[65];
    memcpy(head, ((turn_file *)a.store.audit_turn)->head, sizeof head);
    int go;
    pid_t pid = turn_holder(&a, 4, head, &go);
    db_exec(&a, "DELETE FROM audit WHERE id>=3");
    turn_holder_kill(pid, go);
    ck_assert_int_eq(fm_audit_append(&b, &r, NULL), 3);
    ck_assert_int_eq(fm_audit_append(&a, &r, NULL), 4);
    ck_assert_int_le(a.store.audit_lost + b.store.audit_lost, 2);
    /* Torn: row 5's id with the first half of row 4's hash. */
    memcpy(head, ((turn_file *)a.store.audit_turn)->head, sizeof head);
    for (int i = 32; i < 64; i++)
        head[i] = head[i] == '0' ? '1' : '0';
    int64_t lost = a.store.audit_lost + b.store.audit_lost;
    pid = turn_holder(&a, 5, head, &go);
    turn_holder_kill(pid, go);
    ck_assert_int_eq(fm_audit_append(&b, &r, NULL), 5);
    ck_assert_int_eq(fm_audit_append(&a, &r, NULL), 6);
    ck_assert_int_eq(fm_audit_append(&b, &r, NULL), 7);
    ck_assert_int_le(a.store.audit_lost + b.store.audit_lost - lost, 1);
    ck_assert_int_eq(((turn_file *)a.store.audit_turn)->id, 7); /* taken again */
    ck_assert(verify_says(&a, NULL));
    fm_ctx_close(&b);
    fm_ctx_close(&a);
    fm_test_unlink_db(path);
}
END_TEST

/* A holder stopped (SIGSTOP) in its turn: an appender waits for it about
 * TURN_WAIT_MS once, appends without the turn (and without waiting) for
 * TURN_SKIP_MS, and takes turns again once the holder, continued, gives
 * it back.  Bounds are generous: the VM is shared. */
START_TEST(turn_holder_stopped)
{
    char path[] = "/tmp/fm-audit-turnstop-XXXXXX";
    fm_ctx a;
    filled_store(&a, path, 2);
    fm_audit_rec r = {.phase = "call", .tool = "fleet_status", .decision = "allow"};
    const turn_file *f = a.store.audit_turn;
    ck_assert_int_eq(f->id, 2); /* the turn was taken and given */
    int go;
    pid_t pid = turn_holder(&a, 0, NULL, &go);
    ck_assert_int_eq(kill(pid, SIGSTOP), 0);
    int64_t t0 = fm_now_ms();
    ck_assert_int_eq(fm_audit_append(&a, &r, NULL), 3);
    int64_t skip = a.store.audit_turn_skip_until;
    ck_assert_int_ge(skip - t0, 1000); /* it gave up on the turn for 1 s */
    ck_assert_int_lt(fm_now_ms() - t0, 5000);
    /* Skipping: no append waits again, so the skip is not renewed, unless
     * it had run out (a slow VM) by the time the append ended. */
    int64_t id = 4;
    for (; id <= 20 && fm_now_ms() < skip; id++) {
        ck_assert_int_eq(fm_audit_append(&a, &r, NULL), id);
        if (a.store.audit_turn_skip_until == skip) continue;
        ck_assert_int_ge(fm_now_ms(), skip);
        skip = a.store.audit_turn_skip_until; /* waited again: still held */
    }
    ck_assert_int_eq(f->id, 2); /* not taken since */
    ck_assert_int_eq(kill(pid, SIGCONT), 0);
    close(go); /* the holder gives the turn back and ends */
    int ws;
    ck_assert_int_eq(waitpid(pid, &ws, 0), pid);
    ck_assert(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    /* Past the skip (bounded by time, polled), the turn is taken again. */
    for (int i = 0; i < 500 && fm_now_ms() <= skip; i++)
        usleep(10000);
    ck_assert_int_gt(fm_now_ms(), skip);
    ck_assert_int_eq(fm_audit_append(&a, &r, NULL), id);
    ck_assert_int_eq(f->id, id);
    ck_assert_int_eq(a.store.audit_turn_skip_until, skip);
    ck_assert_int_eq(a.store.audit_lost, 0);
    ck_assert(verify_says(&a, NULL));
    fm_ctx_close(&a);
    fm_test_unlink_db(path);
}
END_TEST

/* The turn file whole (audit.c's turn_file: the turn, the queue's mutex
 * and 15 slots of queued rows), mirrored as above; turn_holder checks
 * the file's size against it. */
typedef struct turn_slot {
    uint32_t state; /* 1 queued, 2 taken by a holder */
    int32_t owner, holder;
    uint32_t len;
    int64_t id;
    char prev[65], hash[65], err[256];
    unsigned char data[16384];
} turn_slot;
typedef struct turns_file {
    turn_file t;
    pthread_mutex_t qmu;
    turn_slot slot[15];
} turns_file;
enum { SLOT_QUEUED = 1, SLOT_TAKEN = 2, SLOT_RETRY = 6 };

/* A forked appender with a store of its own on path (another server
 * process of this host): once it reads a byte from *go it appends one
 * row of tool, writes the id it got (-1: an error), the rows it linked
 * for other appenders and whether it went off turns (a turn it waited
 * for too long: TURN_SKIP_MS) to *out, and ends. */
static pid_t child_appender(const char *path, const char *tool, int *go, int *out)
{
    int up[2], down[2];
    ck_assert_int_eq(pipe(up), 0);
    ck_assert_int_eq(pipe(down), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(up[0]);
        close(down[1]);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        fm_ctx c;
        memset(&c, 0, sizeof c);
        fm_err err = {0};
        if (fm_ctx_open(&c, NULL, fm_test_target(path), &err)) _exit(9);
        char ready = 1, cue;
        if (write(up[1], &ready, 1) != 1 || read(down[0], &cue, 1) != 1) _exit(9);
        fm_audit_rec r = {.phase = "call", .tool = tool, .decision = "allow"};
        int64_t got[3] = {fm_audit_append(&c, &r, &err), c.store.audit_linked_others, 0};
        got[2] = c.store.audit_turn_skip_until != 0;
        if (write(up[1], got, sizeof got) != (ssize_t)sizeof got) _exit(9);
        fm_ctx_close(&c);
        _exit(0);
    }
    close(up[1]);
    close(down[0]);
    char c;
    ck_assert_int_eq(read(up[0], &c, 1), 1); /* its store is open */
    *go = down[1];
    *out = up[0];
    return pid;
}

/* What a child_appender got: its row's id, the rows it linked for
 * others (added to *linked) and whether it went off turns (*skipped;
 * NULL: not wanted); it ended well. */
static int64_t child_result(pid_t pid, int out, int64_t *linked, int64_t *skipped)
{
    int64_t got[3] = {0, 0, 0};
    ck_assert_int_eq(read(out, got, sizeof got), (ssize_t)sizeof got);
    close(out);
    int ws;
    ck_assert_int_eq(waitpid(pid, &ws, 0), pid);
    ck_assert(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    *linked += got[1];
    if (skipped) *skipped = got[2];
    return got[0];
}

/* The chain goes on after what a test did to it: the next append gets
 * id and the chain verifies; then ctx is closed and the store removed. */
static void goes_on_and_ends(fm_ctx *ctx, const char *path, int64_t id)
{
    fm_audit_rec r = {.phase = "call", .tool = "fleet_status", .decision = "allow"};
    ck_assert_int_eq(fm_audit_append(ctx, &r, NULL), id);
    ck_assert(verify_says(ctx, NULL));
    fm_ctx_close(ctx);
    fm_test_unlink_db(path);
}

/* Three child_appenders of fleet_status rows (the second's of
 * refused_here when refuse, a tool a test's trigger refuses). */
static void three_appenders(const char *path, bool refuse, pid_t pid[3], int go[3], int out[3])
{
    const char *tools[3] = {"fleet_status", refuse ? "refused_here" : "fleet_status",
                            "fleet_status"};
    for (int i = 0; i < 3; i++)
        pid[i] = child_appender(path, tools[i], &go[i], &out[i]);
}

/* Cues each of three child_appenders to append its row. */
static void cue_all(int go[3])
{
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(write(go[i], "g", 1), 1);
        close(go[i]);
    }
}

/* Waits (2 s at most) until n slots of the turn file are in state. */
static void slots_reach(const turns_file *f, uint32_t state, int n)
{
    int have = 0;
    for (int i = 0; i < 2000 && have < n; i++) {
        have = 0;
        for (int k = 0; k < 15; k++)
            have += __atomic_load_n(&f->slot[k].state, __ATOMIC_ACQUIRE) == state;
        if (have < n) usleep(1000);
    }
    ck_assert_int_eq(have, n);
}

/* Three appenders find the turn taken and queue their rows: the one that
 * gets the turn next links all three in one transaction (the other two
 * linked for them), each gets its own row, and the chain verifies.  A
 * batch whose commit fails (a trigger refuses one of its rows) fails
 * every row in it: no appender is answered as logged, none of them is
 * in, and the next append continues the chain. */
START_TEST(queued_rows_go_in_together)
{
    char path[] = "/tmp/fm-audit-batch-XXXXXX";
    fm_ctx a;
    filled_store(&a, path, 2);
    turns_file *f = a.store.audit_turn;
    ck_assert_ptr_nonnull(f);
    struct stat sb;
    char tp[600];
    snprintf(tp, sizeof tp, "%s.audit-turns", a.store.side);
    ck_assert_int_eq(stat(tp, &sb), 0);
    ck_assert_int_eq(sb.st_size, sizeof(turns_file));
    for (int round = 0; round < 2; round++) {
        int go[3], out[3];
        pid_t pid[3];
        three_appenders(path, round == 1, pid, go, out);
        ck_assert_int_eq(pthread_mutex_lock(&f->t.mu), 0); /* this test holds the turn */
        cue_all(go);
        slots_reach(f, SLOT_QUEUED, 3);
        ck_assert_int_eq(pthread_mutex_unlock(&f->t.mu), 0);
        int64_t linked = 0, ids[3];
        for (int i = 0; i < 3; i++)
            ids[i] = child_result(pid[i], out[i], &linked, NULL);
        if (round == 0) {
            ck_assert_int_eq(linked, 2);
            ck_assert_int_eq(ids[0] + ids[1] + ids[2], 3 + 4 + 5);
            ck_assert(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
            ck_assert(verify_says(&a, NULL));
            db_exec(&a, "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS"
                        " $$BEGIN IF NEW.tool='refused_here' THEN RAISE 'refused'; END IF;"
                        " RETURN NEW; END$$");
            db_exec(&a, "CREATE TRIGGER refuse BEFORE INSERT ON audit FOR EACH ROW"
                        " EXECUTE FUNCTION refuse()");
        } else {
            ck_assert_int_eq(linked, 0);
            for (int i = 0; i < 3; i++)
                ck_assert_int_eq(ids[i], -1);
        }
    }
    goes_on_and_ends(&a, path, 6);
}
END_TEST

/* A batch holder killed (SIGKILL) with a row taken: the row's appender
 * does not hang; it gets the turn (EOWNERDEAD), is told its row's fate
 * is unknown (an error, not an id), and the chain goes on and verifies.
 * A row still queued when the holder dies is linked by its own appender
 * once the turn is recovered. */
START_TEST(batch_holder_killed)
{
    char path[] = "/tmp/fm-audit-batchkill-XXXXXX";
    fm_ctx a;
    filled_store(&a, path, 2);
    turns_file *f = a.store.audit_turn;
    for (int round = 0; round < 2; round++) {
        int go, out, hold;
        pid_t w = child_appender(path, "fleet_status", &go, &out);
        pid_t k = turn_holder(&a, 0, NULL, &hold);
        int64_t t0 = fm_now_ms();
        ck_assert_int_eq(write(go, "g", 1), 1);
        close(go);
        slots_reach(f, SLOT_QUEUED, 1);
        for (int i = 0; round == 0 && i < 15; i++) {
            if (f->slot[i].state != SLOT_QUEUED) continue;
            f->slot[i].holder = k; /* as if the holder had taken it */
            __atomic_store_n(&f->slot[i].state, SLOT_TAKEN, __ATOMIC_RELEASE);
        }
        turn_holder_kill(k, hold);
        int64_t linked = 0;
        int64_t id = child_result(w, out, &linked, NULL);
        ck_assert_int_lt(fm_now_ms() - t0, 5000);
        ck_assert_int_eq(id, round == 0 ? -1 : 3);
    }
    for (int i = 0; i < 15; i++)
        ck_assert_int_eq(f->slot[i].state, 0); /* none left behind */
    goes_on_and_ends(&a, path, 4);
}
END_TEST

/* A holder that keeps the turn past TURN_WAIT_MS while it links a
 * queued row (this test, holding the mutex, takes the row and after
 * 300 ms hands it back not linked): the row's appender waits on its
 * slot, not on the turn's mutex, so it does not give up on the turn
 * and go off turns for TURN_SKIP_MS (it did while it waited on the
 * mutex); it links its row itself in the turn it then gets, and the
 * chain verifies. */
START_TEST(taken_row_waits_on_its_slot)
{
    char path[] = "/tmp/fm-audit-slotwait-XXXXXX";
    fm_ctx a;
    filled_store(&a, path, 2);
    turns_file *f = a.store.audit_turn;
    int go, out;
    pid_t w = child_appender(path, "fleet_status", &go, &out);
    ck_assert_int_eq(pthread_mutex_lock(&f->t.mu), 0); /* this test holds the turn */
    ck_assert_int_eq(write(go, "g", 1), 1);
    close(go);
    slots_reach(f, SLOT_QUEUED, 1);
    turn_slot *q = NULL;
    for (int i = 0; i < 15 && !q; i++)
        if (f->slot[i].state == SLOT_QUEUED) q = &f->slot[i];
    q->holder = getpid(); /* as a holder that took it */
    __atomic_store_n(&q->state, SLOT_TAKEN, __ATOMIC_RELEASE);
    usleep(300 * 1000);                                        /* three times TURN_WAIT_MS */
    __atomic_store_n(&q->state, SLOT_RETRY, __ATOMIC_RELEASE); /* it polls: no wake needed */
    ck_assert_int_eq(pthread_mutex_unlock(&f->t.mu), 0);
    int64_t linked = 0, skipped = -1;
    ck_assert_int_eq(child_result(w, out, &linked, &skipped), 3);
    ck_assert_int_eq(skipped, 0);
    goes_on_and_ends(&a, path, 4);
}
END_TEST

/* The holder's append, in a thread of this process, while the children
 * queue their rows behind it. */
typedef struct slow_append {
    fm_ctx *ctx;
    int64_t id;
} slow_append;

static void *append_slow(void *arg)
{
    slow_append *w = arg;
    fm_audit_rec r = {.phase = "call", .tool = "slow_here", .decision = "allow"};
    w->id = fm_audit_append(w->ctx, &r, NULL);
    return NULL;
}

/* A holder whose insert is in flight (a trigger waits for a lock another
 * connection holds until the three rows are queued, then no longer:
 * a queued appender waits TURN_WAIT_MS for the turn before it appends
 * alone) while three appenders queue their rows: once its commit is
 * visible it links the three itself, as one more transaction on its
 * connection (no appender takes the turn for them), with one flush for
 * both, and every row is answered with its own id.  A segment whose commit fails (a
 * trigger refuses one of its rows) fails every row in it, and none of
 * them is in the log; the holder's row, committed before, is logged;
 * the chain verifies and goes on. */
START_TEST(holder_links_rows_queued_meanwhile)
{
    char path[] = "/tmp/fm-audit-segs-XXXXXX";
    fm_ctx a, b; /* b: the lock the holder's insert waits for */
    filled_store(&a, path, 2);
    open_file_store(&b, path);
    turns_file *f = a.store.audit_turn;
    db_exec(&a, "CREATE FUNCTION slow_or_refuse() RETURNS trigger LANGUAGE plpgsql AS"
                " $$BEGIN IF NEW.tool='slow_here' THEN"
                " PERFORM pg_advisory_xact_lock_shared(4242); END IF;"
                " IF NEW.tool='refused_here' THEN RAISE 'refused'; END IF;"
                " RETURN NEW; END$$");
    db_exec(&a, "CREATE TRIGGER slow_or_refuse BEFORE INSERT ON audit FOR EACH ROW"
                " EXECUTE FUNCTION slow_or_refuse()");
    for (int round = 0; round < 2; round++) {
        int go[3], out[3];
        pid_t pid[3];
        three_appenders(path, round == 1, pid, go, out);
        /* Others waited for the turn lately: the holder's commit is
         * visible first and its flush owed. */
        a.store.audit_turn_busy = 16;
        db_exec(&b, "SELECT pg_advisory_lock(4242)");
        const long long linked0 = a.store.audit_linked_others, commits0 = a.store.audit_commits;
        slow_append w = {&a, 0};
        pthread_t th;
        ck_assert_int_eq(pthread_create(&th, NULL, append_slow, &w), 0);
        /* Until the holder has the turn (glibc's owner field, read only:
         * a trylock here could take the turn from under the holder). */
        for (int i = 0; i < 2000 && !__atomic_load_n(&f->t.mu.__data.__owner, __ATOMIC_ACQUIRE);
             i++)
            usleep(1000);
        ck_assert_int_ne(__atomic_load_n(&f->t.mu.__data.__owner, __ATOMIC_ACQUIRE), 0);
        cue_all(go);
        slots_reach(f, SLOT_QUEUED, 3);
        db_exec(&b, "SELECT pg_advisory_unlock(4242)");
        pthread_join(th, NULL);
        int64_t linked = 0, ids[3], skipped = 0, logged = 0;
        for (int i = 0; i < 3; i++) {
            int64_t sk = 0;
            ids[i] = child_result(pid[i], out[i], &linked, &sk);
            skipped += sk;
            logged += ids[i] > 0;
        }
        ck_assert_int_eq(skipped, 0); /* none gave up on the turn */
        ck_assert_int_eq(linked, 0);  /* no appender linked for the others */
        ck_assert_int_eq(a.store.audit_commits - commits0, 2);
        ck_assert_int_eq(w.id, round ? 7 : 3);
        ck_assert_int_eq(a.store.audit_linked_others - linked0, logged);
        if (round == 0) {
            ck_assert_int_eq(ids[0] + ids[1] + ids[2], 4 + 5 + 6);
            ck_assert(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
            ck_assert(verify_says(&a, NULL));
        } else {
            for (int i = 0; i < 3; i++)
                ck_assert_int_eq(ids[i], -1); /* one transaction: all failed */
            ck_assert_int_eq(ts_scalar(a.store.db, "SELECT count(*) FROM audit WHERE id>7"),
                             logged);
        }
        ck_assert_int_eq(
            ts_scalar(a.store.db, "SELECT count(*) FROM audit WHERE tool='refused_here'"), 0);
    }
    fm_ctx_close(&b);
    goes_on_and_ends(&a, path, 8);
}
END_TEST

/* The mode column of row id. */
static void row_mode(fm_ctx *ctx, int64_t id, char *out, size_t len)
{
    fm_db_stmt *s;
    ck_assert_int_eq(
        fm_db_prepare_v2(ctx->store.db, "SELECT mode FROM audit WHERE id=?", -1, &s, NULL),
        FM_DB_OK);
    fm_db_bind_int64(s, 1, id);
    ck_assert_int_eq(fm_db_step(s), FM_DB_ROW);
    snprintf(out, len, "%s", (const char *)fm_db_column_text(s, 0));
    fm_db_finalize(s);
}

/* One call of ctx's: an audit row, and whether the call saw emergency
 * mode afterwards (its result marker's view). */
static int64_t call_row(fm_ctx *ctx, bool *emergency)
{
    fm_audit_rec r = {.phase = "call", .tool = "fleet_status", .decision = "allow"};
    fm_emergency_call_begin(ctx);
    int64_t id = fm_audit_append(ctx, &r, NULL);
    json_t *e = fm_emergency_active(ctx);
    *emergency = e != NULL;
    json_decref(e);
    fm_emergency_call_end(ctx);
    ck_assert_int_gt(id, 0);
    return id;
}

/* Another server starts and ends emergency mode between two of A's
 * calls: A's rows and A's calls follow.  (PostgreSQL: A's append takes
 * the setting as its last append saw it, the insert refuses the stale
 * guess, and the same round trip brings the new one.) */
START_TEST(emergency_from_another_writer)
{
    char path[] = "/tmp/fm-audit-emerg-XXXXXX";
    fm_ctx a, b;
    filled_store(&a, path, 2);
    open_file_store(&b, path);
    char v[128], mode[32];
    bool on;
    snprintf(v, sizeof v, "{\"until_ms\":%lld,\"by\":\"unit\"}", (long long)(fm_now_ms() + 600000));
    fm_err err = {0};
    ck_assert_int_eq(fm_store_setting_set(&b.store, FM_EMERGENCY_SETTING, v, &err), 0);
    row_mode(&a, call_row(&a, &on), mode, sizeof mode);
    ck_assert_str_eq(mode, "shadow+emergency");
    ck_assert(on);
    /* B's row moves the head A last saw, too. */
    ck_assert_int_gt(call_row(&b, &on), 0);
    ck_assert(on);
    ck_assert_int_eq(fm_store_setting_set(&b.store, FM_EMERGENCY_SETTING, "{\"until_ms\":0}", &err),
                     0);
    row_mode(&a, call_row(&a, &on), mode, sizeof mode);
    ck_assert_str_eq(mode, "shadow");
    ck_assert(!on);
    row_mode(&a, call_row(&a, &on), mode, sizeof mode);
    ck_assert_str_eq(mode, "shadow");
    ck_assert(verify_says(&a, NULL));
    ck_assert_int_eq(ts_scalar(a.store.db, "SELECT count(*) FROM audit"), 6);
    fm_ctx_close(&b);
    fm_ctx_close(&a);
    fm_test_unlink_db(path);
}
END_TEST

/* jansson allocations made, while counting (emergency_read_once). */
static long json_allocs;
static void *counting_malloc(size_t n)
{
    json_allocs++;
    return malloc(n);
}

/* The emergency setting is parsed when its text changes, not at every
 * read: an ended record (kept forever once emergency mode was used) is
 * read again with no jansson allocation; an active one is a new object
 * each time (fleet_status changes its copy); its deadline still ends it,
 * and another server's new text is seen at the next read. */
START_TEST(emergency_read_once)
{
    char path[] = "/tmp/fm-audit-emerg1-XXXXXX";
    fm_ctx a, b;
    filled_store(&a, path, 1);
    open_file_store(&b, path);
    fm_err err = {0};
    ck_assert_int_eq(fm_store_setting_set(&b.store, FM_EMERGENCY_SETTING,
                                          "{\"until_ms\":0,\"ended_by\":\"unit\"}", &err),
                     0);
    ck_assert_ptr_null(fm_emergency_active_in(&a.store));
    json_allocs = 0;
    json_set_alloc_funcs(counting_malloc, free);
    json_t *again = fm_emergency_active_in(&a.store);
    json_set_alloc_funcs(malloc, free);
    ck_assert_ptr_null(again);
    ck_assert_int_eq(json_allocs, 0);
    char v[128];
    snprintf(v, sizeof v, "{\"until_ms\":%lld,\"by\":\"unit\"}", (long long)(fm_now_ms() + 300));
    ck_assert_int_eq(fm_store_setting_set(&b.store, FM_EMERGENCY_SETTING, v, &err), 0);
    json_t *e1 = fm_emergency_active_in(&a.store), *e2 = fm_emergency_active_in(&a.store);
    ck_assert_ptr_nonnull(e1);
    ck_assert_ptr_nonnull(e2);
    ck_assert_ptr_ne(e1, e2);
    json_object_del(e1, "until_ms");
    ck_assert_ptr_nonnull(json_object_get(e2, "until_ms"));
    json_decref(e1);
    json_decref(e2);
    usleep(400 * 1000);
    ck_assert_ptr_null(fm_emergency_active_in(&a.store));
    ck_assert_ptr_null(fm_emergency_active_in(&a.store));
    fm_ctx_close(&b);
    fm_ctx_close(&a);
    fm_test_unlink_db(path);
}
END_TEST

/* Two servers (own connections) appending and folding at once: every
 * call counted once (PostgreSQL: folds queue on their lock row, not the
 * store-wide lock), one chain. */
typedef struct {
    fm_ctx ctx;
    int failures;
} fold_writer;

static void *append_and_fold(void *arg)
{
    fold_writer *w = arg;
    fm_audit_rec r = {.phase = "call", .tool = "slurm_nodes", .decision = "allow"};
    for (int i = 0; i < 120; i++) {
        if (fm_audit_append(&w->ctx, &r, NULL) <= 0) w->failures++;
        if (i % 8 == 7 && fm_audit_fold(&w->ctx.store, NULL)) w->failures++;
    }
    return NULL;
}

START_TEST(folds_from_two_writers)
{
    char path[] = "/tmp/fm-audit-fold2-XXXXXX";
    static fold_writer w[2];
    filled_store(&w[0].ctx, path, 1);
    open_file_store(&w[1].ctx, path);
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        w[i].failures = 0;
        ck_assert_int_eq(pthread_create(&th[i], NULL, append_and_fold, &w[i]), 0);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    ck_assert_int_eq(w[0].failures + w[1].failures, 0);
    fm_err err = {0};
    ck_assert_int_eq(fm_audit_fold(&w[1].ctx.store, &err), 0);
    fm_db *db = w[0].ctx.store.db;
    ck_assert_int_eq(ts_scalar(db, "SELECT count(*) FROM audit"), 241);
    ck_assert_int_eq(ts_scalar(db, "SELECT sum(n) FROM audit_hourly"), 241);
    ck_assert(verify_says(&w[0].ctx, NULL));
    fm_ctx_close(&w[1].ctx);
    fm_ctx_close(&w[0].ctx);
    fm_test_unlink_db(path);
}
END_TEST

START_TEST(renumbered_and_anchor_edits_detected)
{
    char path[] = "/tmp/fm-audit-ren-XXXXXX";
    fm_ctx ctx;
    filled_store(&ctx, path, 4);
    fm_db *db = ctx.store.db;
    /* The same rows under other ids: the link holds, the keyed hash not. */
    ck_assert_int_eq(fm_db_exec(db, "UPDATE audit SET id=id+100", 0, 0, 0), FM_DB_OK);
    ck_assert(verify_says(&ctx, "renumbered"));
    ck_assert_int_eq(fm_db_exec(db, "UPDATE audit SET id=id-100", 0, 0, 0), FM_DB_OK);
    ck_assert(verify_says(&ctx, NULL));
    /* The keyed range moved by editing the store's setting. */
    ck_assert_int_eq(fm_db_exec(db,
                                "UPDATE settings SET value='99' WHERE"
                                " key='audit.keyed_from'",
                                0, 0, 0),
                     FM_DB_OK);
    reopened_says(&ctx, path, "was edited");
}
END_TEST

/* A store written by 0.1 (counters per row, full node index) opens,
 * migrates without counting its rows twice, and its chain still verifies
 * under the current hashing code. */
START_TEST(v1_store_migrates)
{
    char path[] = "/tmp/fm-audit-v1-XXXXXX";
    fm_test_temp_db(path);
    const char *dir = getenv("FM_FIXTURES");
    char fixture[512];
    snprintf(fixture, sizeof fixture, "%s/store/audit-v1.sql", dir ? dir : "tests/fixtures");
    FILE *f = fopen(fixture, "r");
    ck_assert_ptr_nonnull(f);
    static char sql[64 * 1024];
    size_t n = fread(sql, 1, sizeof sql - 1, f);
    fclose(f);
    sql[n] = '\0';
    fm_db *db;
    ck_assert_int_eq(fm_db_open(path, &db), FM_DB_OK);
    ck_assert_int_eq(fm_db_exec(db, sql, NULL, NULL, NULL), FM_DB_OK);
    long long before = ts_scalar(db, "SELECT sum(n) FROM audit_hourly");
    fm_db_close(db);

    fm_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    fm_err err = {0};
    unsetenv("FLEETMCP_CONFIG");
    ck_assert_msg(fm_ctx_open(&ctx, NULL, path, &err) == 0, "%s", err.text);
    int64_t rows = 0, bad = 0;
    ck_assert_msg(fm_audit_verify(&ctx.store, &rows, &bad, &err) == 0, "%s", err.text);
    ck_assert_int_eq(rows, 6);
    ck_assert_int_eq(fm_audit_fold(&ctx.store, &err), 0);
    db = ctx.store.db;
    ck_assert_int_eq(ts_scalar(db, "SELECT sum(n) FROM audit_hourly"), before);
    ck_assert_int_eq(ts_scalar(db, "SELECT count(*) FROM sqlite_master WHERE name='audit_node'"
                                   " AND sql LIKE '%WHERE node IS NOT NULL%'"),
                     1);
    /* The partial index still serves node queries. */
    fm_db_stmt *s;
    ck_assert_int_eq(fm_db_prepare_v2(db,
                                      "EXPLAIN QUERY PLAN SELECT id FROM audit WHERE"
                                      " node=? ORDER BY id DESC LIMIT 50",
                                      -1, &s, NULL),
                     FM_DB_OK);
    bool uses = false;
    while (fm_db_step(s) == FM_DB_ROW)
        if (strstr((const char *)fm_db_column_text(s, 3), "audit_node")) uses = true;
    fm_db_finalize(s);
    ck_assert(uses);
    /* New rows chain on to the old ones. */
    fm_audit_rec r = {.phase = "call", .tool = "fleet_status", .decision = "allow"};
    ck_assert_int_eq(fm_audit_append(&ctx, &r, NULL), 7);
    ck_assert_int_eq(fm_audit_verify(&ctx.store, &rows, &bad, &err), 0);
    /* The anchor made at migration covers the old rows too: cutting the
     * tail back into them shows. */
    ck_assert_int_eq(fm_db_exec(ctx.store.db, "DELETE FROM audit WHERE id>=6", 0, 0, 0), FM_DB_OK);
    int vrc = fm_audit_verify(&ctx.store, &rows, &bad, &err);
    ck_assert_msg(vrc == -1, "verify: %d rows %lld", vrc, (long long)rows);
    ck_assert_msg(strstr(err.text, "missing from the end") != NULL, "%s", err.text);
    fm_ctx_close(&ctx);
    fm_test_unlink_db(path);
}
END_TEST

/* A fresh temporary store, for the WAL checks below. */
static void wal_ctx_open(fm_ctx *ctx, char *path)
{
    fm_test_temp_db(path);
    memset(ctx, 0, sizeof *ctx);
    fm_err err = {0};
    unsetenv("FLEETMCP_CONFIG");
    ck_assert_msg(fm_ctx_open(ctx, NULL, path, &err) == 0, "%s", err.text);
}

/* The chain verifies; the store is closed and removed. */
static void wal_ctx_done(fm_ctx *ctx, const char *path)
{
    int64_t rows = 0, bad = 0;
    fm_err err = {0};
    ck_assert_int_eq(fm_audit_verify(&ctx->store, &rows, &bad, &err), 0);
    ck_assert_int_eq(bad, 0);
    fm_ctx_close(ctx);
    fm_test_unlink_db(path);
}

/* Checkpoints wait for the server's idle moments, but the WAL stays
 * bounded even when there are none. */
START_TEST(wal_checkpoint_idle_and_bounded)
{
    char path[] = "/tmp/fm-audit-wal-XXXXXX";
    fm_ctx ctx;
    wal_ctx_open(&ctx, path);
    fm_audit_rec r = {.phase = "call", .tool = "slurm_nodes", .decision = "allow"};
    int i = 0;
    for (; i < 5000 && !fm_store_checkpoint_due(&ctx.store); i++)
        ck_assert_int_gt(fm_audit_append(&ctx, &r, NULL), 0);
    ck_assert(fm_store_checkpoint_due(&ctx.store)); /* a few hundred rows in */
    ck_assert_int_lt(i, 1000);
    fm_store_checkpoint(&ctx.store);
    ck_assert(!fm_store_checkpoint_due(&ctx.store));
    ck_assert_int_gt(fm_audit_append(&ctx, &r, NULL), 0);
    ck_assert_int_lt(fm_db_sqlite_wal_frames(ctx.store.db), 20); /* the WAL started over */
    /* No idle moment at all: the hard bound checkpoints at commit time. */
    int most = 0;
    for (int k = 0; k < 4000; k++) {
        ck_assert_int_gt(fm_audit_append(&ctx, &r, NULL), 0);
        if (fm_db_sqlite_wal_frames(ctx.store.db) > most)
            most = fm_db_sqlite_wal_frames(ctx.store.db);
    }
    ck_assert_int_lt(most, 8000);
    wal_ctx_done(&ctx, path);
}
END_TEST

static long long lite_count(sqlite3 *b, const char *sql)
{
    sqlite3_stmt *q = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(b, sql, -1, &q, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
    long long n = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return n;
}

/* While the HTTP service's checkpointer owns checkpoints, a burst past
 * the WAL's normal bound (8,000 frames) makes no commit checkpoint on the
 * request path, and once the writes stop the checkpointer brings the WAL
 * file back to 0 bytes.  A reader pinned at an old snapshot keeps the WAL
 * from starting over meanwhile, so the burst does pass the bound. */
START_TEST(wal_checkpointer_owns_the_burst)
{
    char path[] = "/tmp/fm-audit-walck-XXXXXX";
    fm_ctx ctx;
    wal_ctx_open(&ctx, path);
    fm_http_checkpointer *ck = fm_http_checkpointer_start(path);
    ck_assert_ptr_nonnull(ck);
    sqlite3 *rd = NULL;
    ck_assert_int_eq(sqlite3_open(path, &rd), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(rd, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    ck_assert_int_ge(lite_count(rd, "SELECT count(*) FROM audit"), 0);
    fm_audit_rec r = {.phase = "call", .tool = "slurm_nodes", .decision = "allow"};
    for (int i = 0; i < 20000 && fm_db_sqlite_wal_frames(ctx.store.db) < 9000; i++)
        ck_assert_int_gt(fm_audit_append(&ctx, &r, NULL), 0);
    ck_assert_int_ge(fm_db_sqlite_wal_frames(ctx.store.db), 9000);
    ck_assert_int_eq(fm_db_sqlite_inline_checkpoints(ctx.store.db), 0);
    ck_assert_int_eq(sqlite3_exec(rd, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(rd);
    char wal[sizeof path + 8];
    snprintf(wal, sizeof wal, "%s-wal", path);
    struct stat sb = {.st_size = 1};
    /* Idle: two 1 s ticks (copy, then truncate); 10 s at most. */
    for (int i = 0; i < 500 && (stat(wal, &sb) || sb.st_size); i++)
        usleep(20 * 1000);
    ck_assert_int_eq(stat(wal, &sb), 0);
    ck_assert_int_eq(sb.st_size, 0);
    ck_assert_int_eq(fm_db_sqlite_inline_checkpoints(ctx.store.db), 0);
    fm_http_checkpointer_stop(ck);
    wal_ctx_done(&ctx, path);
}
END_TEST

/* The store's WAL writes are gathered into one write per commit
 * (db_sqlite.c, fleetmcp-walbatch).  What it must keep: a commit is in
 * the file when fm_audit_append returns (a process that exits at once
 * loses nothing, and another connection, here one on SQLite's own VFS,
 * sees it), transactions bigger than the buffer and ones that spill pages
 * before COMMIT come out whole, a rollback leaves nothing, and the file
 * passes SQLite's integrity check. */
START_TEST(wal_batched_writes_whole)
{
    char path[] = "/tmp/fm-audit-walb-XXXXXX";
    fm_test_temp_db(path);
    unsetenv("FLEETMCP_CONFIG");
    /* A process that exits right after its appends, closing nothing
     * (forked before this one opens SQLite: no connection crosses the
     * fork). */
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        fm_ctx c;
        memset(&c, 0, sizeof c);
        fm_err e = {0};
        if (fm_ctx_open(&c, NULL, path, &e)) _exit(2);
        fm_audit_rec r = {.phase = "call", .tool = "slurm_nodes", .decision = "allow"};
        for (int i = 0; i < 5; i++)
            if (fm_audit_append(&c, &r, NULL) <= 0) _exit(3);
        _exit(0);
    }
    int wst = 0;
    ck_assert_int_eq(waitpid(pid, &wst, 0), pid);
    ck_assert(WIFEXITED(wst) && WEXITSTATUS(wst) == 0);
    fm_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    fm_err err = {0};
    ck_assert_msg(fm_ctx_open(&ctx, NULL, path, &err) == 0, "%s", err.text);
    sqlite3 *b = NULL;
    ck_assert_int_eq(sqlite3_open_v2(path, &b, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(b, 5000);
    ck_assert_int_eq(lite_count(b, "SELECT count(*) FROM audit"), 5);
    /* Each append is visible to the other connection at once, and the
     * other connection's writes to this one. */
    ck_assert_int_eq(sqlite3_exec(b, "CREATE TABLE scratch(x BLOB)", 0, 0, 0), SQLITE_OK);
    fm_audit_rec r = {.phase = "call", .tool = "fleet_status", .decision = "allow"};
    for (int i = 1; i <= 40; i++) {
        ck_assert_int_gt(fm_audit_append(&ctx, &r, NULL), 0);
        ck_assert_int_eq(lite_count(b, "SELECT count(*) FROM audit"), 5 + i);
        if (i % 10 == 0)
            ck_assert_int_eq(sqlite3_exec(b, "INSERT INTO scratch VALUES(zeroblob(100))", 0, 0, 0),
                             SQLITE_OK);
    }
    fm_db *db = ctx.store.db;
    /* 800 KB in one transaction: past the 64 KB buffer and the 128 KB
     * page cache (pages spill into the WAL before COMMIT). */
    const char *big = "BEGIN IMMEDIATE;"
                      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<400)"
                      " INSERT INTO scratch SELECT randomblob(2000) FROM n;";
    ck_assert_int_eq(fm_db_exec(db, big, 0, 0, 0), FM_DB_OK);
    ck_assert_int_eq(fm_db_exec(db, "UPDATE scratch SET x=zeroblob(1500) WHERE rowid%3=0", 0, 0, 0),
                     FM_DB_OK); /* pages written twice in one transaction */
    ck_assert_int_eq(fm_db_exec(db, "ROLLBACK", 0, 0, 0), FM_DB_OK);
    ck_assert_int_eq(lite_count(b, "SELECT count(*) FROM scratch"), 4);
    ck_assert_int_eq(fm_db_exec(db, big, 0, 0, 0), FM_DB_OK);
    ck_assert_int_eq(fm_db_exec(db, "UPDATE scratch SET x=zeroblob(1500) WHERE rowid%3=0", 0, 0, 0),
                     FM_DB_OK);
    ck_assert_int_eq(fm_db_exec(db, "COMMIT", 0, 0, 0), FM_DB_OK);
    ck_assert_int_eq(lite_count(b, "SELECT count(*) FROM scratch"), 404);
    ck_assert_int_eq(lite_count(b, "SELECT sum(length(x)=1500) FROM scratch"), 134);
    ck_assert_int_gt(fm_audit_append(&ctx, &r, NULL), 0);
    sqlite3_stmt *q = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(b, "PRAGMA integrity_check", -1, &q, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
    ck_assert_str_eq((const char *)sqlite3_column_text(q, 0), "ok");
    sqlite3_finalize(q);
    sqlite3_close(b);
    int64_t rows = 0, bad = 0;
    ck_assert_msg(fm_audit_verify(&ctx.store, &rows, &bad, &err) == 0, "%s", err.text);
    ck_assert_int_eq(rows, 46);
    fm_ctx_close(&ctx);
    fm_test_unlink_db(path);
}
END_TEST

/* The chain's digest is libcrypto's SHA-256, loaded on first use: FIPS
 * 180-2 known answers, across the one- and two-block padding cases and
 * many blocks. */
START_TEST(sha256_known_answers)
{
    static const struct {
        const char *in;
        const char *hex;
    } v[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    };
    char out[65];
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        fm_sha256_hex(v[i].in, strlen(v[i].in), out);
        ck_assert_str_eq(out, v[i].hex);
    }
    size_t n = 1000000;
    char *a = malloc(n);
    ck_assert_ptr_nonnull(a);
    memset(a, 'a', n);
    fm_sha256_hex(a, n, out);
    free(a);
    ck_assert_str_eq(out, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}
END_TEST

/* RFC 4648 section 10 vectors both ways; the decoder is strict because
 * it reads client cursors and approval signatures. */
START_TEST(base64_rfc4648)
{
    static const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *coded[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    char enc[16];
    unsigned char dec[16];
    for (size_t i = 0; i < 7; i++) {
        ck_assert_uint_eq(fm_base64_encode((const unsigned char *)plain[i], strlen(plain[i]), enc),
                          strlen(coded[i]));
        ck_assert_str_eq(enc, coded[i]);
        long m = fm_base64_decode(coded[i], strlen(coded[i]), dec, sizeof dec);
        ck_assert_int_eq(m, (long)strlen(plain[i]));
        ck_assert(memcmp(dec, plain[i], (size_t)m) == 0);
    }
    static const char *bad[] = {"Zg=", "Z===", "Zg==Zg==", "Zm9v!A==", "=m9v", "Zm 9"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_int_eq(fm_base64_decode(bad[i], strlen(bad[i]), dec, sizeof dec), -1);
    ck_assert_int_eq(fm_base64_decode("Zm9vYmFy", 8, dec, 5), -1); /* too long for out */
}
END_TEST

static int insert_kv(fm_db_stmt *s, const char *k, int v)
{
    fm_db_reset(s);
    fm_db_bind_text(s, 1, k, -1, FM_DB_STATIC);
    fm_db_bind_int(s, 2, v);
    return fm_db_step(s);
}

/* A statement that fails inside a transaction fails alone, on both
 * stores: the transaction goes on and commits the rest (PostgreSQL would
 * abort all of it; fm_db runs each statement there under a savepoint). */
START_TEST(failed_statement_keeps_transaction)
{
    test_server t;
    ts_open(&t, "mode: fleet\n");
    ts_init(&t);
    fm_store *st = &t.ctx.store;
    exec(&t, "CREATE TABLE uniq_kv(k TEXT PRIMARY KEY, v INTEGER NOT NULL)");
    fm_err err = {0};
    ck_assert_int_eq(fm_store_begin(st, &err), 0);
    fm_db_stmt *s = NULL;
    ck_assert_int_eq(fm_db_prepare_v2(st->db, "INSERT INTO uniq_kv(k,v) VALUES(?,?)", -1, &s, NULL),
                     FM_DB_OK);
    ck_assert_int_eq(insert_kv(s, "a", 1), FM_DB_DONE);
    ck_assert_int_ne(insert_kv(s, "a", 2), FM_DB_DONE); /* unique violation */
    ck_assert_int_eq(insert_kv(s, "b", 3), FM_DB_DONE);
    fm_db_finalize(s);
    /* The same through fm_db_exec (several statements, as DDL comes). */
    ck_assert_int_ne(fm_db_exec(st->db, "INSERT INTO uniq_kv(k,v) VALUES('a',4)", NULL, NULL, NULL),
                     FM_DB_OK);
    exec(&t, "INSERT INTO uniq_kv(k,v) VALUES('c',5); INSERT INTO uniq_kv(k,v) VALUES('d',7)");
    /* A failed read, too. */
    ck_assert_int_ne(fm_db_exec(st->db, "SELECT no_such_column FROM uniq_kv", NULL, NULL, NULL),
                     FM_DB_OK);
    ck_assert_int_eq(fm_store_commit(st, &err), 0);
    ck_assert_int_eq(fm_db_prepare_v2(st->db, "SELECT count(*), sum(v) FROM uniq_kv", -1, &s, NULL),
                     FM_DB_OK);
    ck_assert_int_eq(fm_db_step(s), FM_DB_ROW);
    ck_assert_int_eq(fm_db_column_int64(s, 0), 4);
    ck_assert_int_eq(fm_db_column_int64(s, 1), 1 + 3 + 5 + 7);
    fm_db_finalize(s);
    /* Outside a transaction nothing is wrapped: a failure is just that. */
    ck_assert_int_eq(fm_db_prepare_v2(st->db, "INSERT INTO uniq_kv(k,v) VALUES(?,?)", -1, &s, NULL),
                     FM_DB_OK);
    ck_assert_int_ne(insert_kv(s, "b", 9), FM_DB_DONE);
    ck_assert_int_eq(insert_kv(s, "e", 9), FM_DB_DONE);
    fm_db_finalize(s);
    ts_close(&t);
}
END_TEST

/* Store paths at the length limit.  One just under SQLite's 512 bytes:
 * a read-only probe (check-config) finds the -wal file beside it and
 * reads the commits there (a -wal name cut short would not exist, and the
 * store would be read as immutable without them).  One longer: both opens
 * refuse it, saying what to do, and make no file. */
START_TEST(store_path_length)
{
    char dir[] = "/tmp/fm-audit-long-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    /* Two directories: a name has 255 bytes at most.  Buffers sized so
     * that no snprintf can cut (the compiler checks it at every level). */
    char path[512], longp[1100], sub0[232], sub1[440];
    snprintf(sub0, sizeof sub0, "%s/%0200d", dir, 0);
    snprintf(sub1, sizeof sub1, "%s/%0200d", sub0, 1);
    const char *sub[2] = {sub0, sub1};
    ck_assert_int_eq(mkdir(sub[0], 0700), 0);
    ck_assert_int_eq(mkdir(sub[1], 0700), 0);
    int n = snprintf(path, sizeof path, "%s/", sub[1]);
    memset(path + n, 's', 500 - (size_t)n - 3);
    snprintf(path + 497, sizeof path - 497, ".db");
    ck_assert_uint_eq(strlen(path), 500);
    fm_db *w = NULL, *r = NULL;
    fm_err err = {0};
    ck_assert_msg(fm_db_open_target(path, &w, &err) == 0, "%s", err.text);
    /* Kept open: the commits stay in the -wal file, not yet checkpointed. */
    ck_assert_int_eq(
        fm_db_exec(w, "CREATE TABLE t(v INTEGER); INSERT INTO t VALUES(7)", NULL, NULL, NULL),
        FM_DB_OK);
    char wal[520];
    snprintf(wal, sizeof wal, "%s-wal", path);
    ck_assert_int_eq(access(wal, F_OK), 0);
    ck_assert_msg(fm_db_open_readonly(path, &r, &err) == 0, "%s", err.text);
    fm_db_stmt *s = NULL;
    ck_assert_int_eq(fm_db_prepare_v2(r, "SELECT sum(v) FROM t", -1, &s, NULL), FM_DB_OK);
    ck_assert_int_eq(fm_db_step(s), FM_DB_ROW);
    ck_assert_int_eq(fm_db_column_int64(s, 0), 7);
    fm_db_finalize(s);
    ck_assert_int_ne(fm_db_exec(r, "INSERT INTO t VALUES(8)", NULL, NULL, NULL), FM_DB_OK);
    fm_db_close(r);
    fm_db_close(w);
    fm_test_unlink_db(path);

    /* 900 bytes: refused by name, nothing made. */
    n = snprintf(longp, sizeof longp, "%s/%0200d/%0200d", sub[1], 2, 3);
    ck_assert(n > 900 - 200 && n < 900);
    memset(longp + n, 'l', 900 - (size_t)n);
    longp[900] = 0;
    for (int ro = 0; ro < 2; ro++) {
        memset(&err, 0, sizeof err);
        fm_db *d = NULL;
        ck_assert_int_eq(
            ro ? fm_db_open_readonly(longp, &d, &err) : fm_db_open_target(longp, &d, &err), -1);
        ck_assert_ptr_null(d);
        ck_assert_msg(strstr(err.text, "store path is 900 bytes") &&
                          strstr(err.text, "shorter store.path"),
                      "%s", err.text);
    }
    ck_assert_int_ne(access(longp, F_OK), 0);
    ck_assert_int_eq(rmdir(sub[1]), 0); /* empty: fails if anything was made */
    ck_assert_int_eq(rmdir(sub[0]), 0);
    ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

/* The reports over the trail (audit.c) as fleet metrics and completion
 * use them: overrides count human node actions on nodes fleetmcp
 * attempted to repair (node state's set, the audit's counts), shadow
 * agreement a human doing what a shadow call recommended. */
static void add_row(test_server *t, int64_t ts, const char *kind, const char *tool,
                    const char *decision, const char *error_code, const char *node,
                    const char *phase)
{
    char sql[600];
    snprintf(sql, sizeof sql,
             "INSERT INTO audit(id,ts_ms,session,phase,initiator_kind,tool,decision,error_code,"
             "node,prev_hash,hash) SELECT coalesce(max(id),0)+1, %lld, 's', '%s', '%s', '%s',"
             " '%s', %s%s%s, '%s', 'x', 'x' FROM audit",
             (long long)ts, phase, kind, tool, decision, error_code ? "'" : "",
             error_code ? error_code : "NULL", error_code ? "'" : "", node);
    exec(t, sql);
}

static void collect_node(const char *node, void *arg)
{
    size_t at = strlen(arg);
    snprintf((char *)arg + at, 128 - at, "%s;", node);
}

START_TEST(trail_reports)
{
    test_server t;
    ts_open(&t, "mode: fleet\n");
    ts_init(&t);
    int64_t now = fm_now_ms();
    char sql[300];
    /* gpu-a and gpu-c were attempted; gpu-b was not. */
    snprintf(sql, sizeof sql,
             "INSERT INTO node_attempts(node,fault_class,ts_ms) VALUES('gpu-a','xid',%lld),"
             "('gpu-c','xid',%lld)",
             (long long)now, (long long)now);
    exec(&t, sql);
    /* Overrides: only the human allowed intent on an attempted node. */
    add_row(&t, now, "human", "node_drain", "allow", NULL, "gpu-a", "intent");
    add_row(&t, now, "human", "node_drain", "allow", NULL, "gpu-b", "call");
    add_row(&t, now, "agent", "node_drain", "allow", NULL, "gpu-a", "intent");
    add_row(&t, now, "human", "node_drain", "deny", NULL, "gpu-a", "intent");
    add_row(&t, now, "human", "fleet_status", "allow", NULL, "gpu-a", "call");
    /* Shadow: two recommendations (one carried out by the human above),
     * and a refusal that is none. */
    add_row(&t, now - 5000, "agent", "node_drain", "shadow", "APPROVAL", "gpu-a", "call");
    add_row(&t, now - 5000, "agent", "node_drain", "shadow", "DENIED", "gpu-d", "call");
    add_row(&t, now - 5000, "agent", "node_drain", "shadow", "GUARDRAIL", "gpu-a", "call");
    json_t *m = fm_fleet_metrics(&t.ctx, 86400000LL);
    ck_assert_double_eq_tol(json_real_value(json_object_get(m, "manual_override_ratio")), 0.5,
                            1e-9);
    ck_assert_int_eq(json_integer_value(json_object_get(m, "shadow_recommendations")), 2);
    ck_assert_double_eq_tol(json_real_value(json_object_get(m, "shadow_agreement_ratio")), 0.5,
                            1e-9);
    json_decref(m);
    char seen[128] = "";
    fm_audit_nodes_prefixed(&t.ctx.store, "gpu-", collect_node, seen);
    ck_assert_str_eq(seen, "gpu-a;gpu-b;gpu-d;");
    seen[0] = '\0';
    fm_audit_nodes_prefixed(&t.ctx.store, "gpu-b", collect_node, seen);
    ck_assert_str_eq(seen, "gpu-b;");
    int64_t rows = fm_audit_rows(&t.ctx.store);
    ck_assert_int_eq(rows, count(&t, "1=1"));
    ts_close(&t);
}
END_TEST

static Suite *audit_suite(void)
{
    Suite *s = suite_create("audit");
    TCase *tc = tcase_create("chain");
    tcase_add_test(tc, rows_per_call);
    tcase_add_test(tc, secrets_redacted);
    tcase_add_test(tc, secret_keys_match_reference);
    tcase_add_test(tc, tampering_detected);
    tcase_add_test(tc, hmac_rfc4231);
    tcase_add_test(tc, hmac_matches_openssl);
    tcase_add_test(tc, killswitch_fails_closed);
    tcase_add_test(tc, truncation_detected);
    tcase_add_test(tc, renumbered_and_anchor_edits_detected);
    tcase_add_test(tc, shared_heads_catch_cuts);
    tcase_add_test(tc, emergency_from_another_writer);
    tcase_add_test(tc, emergency_read_once);
    tcase_add_test(tc, local_appenders_take_turns);
    /* The turn file is PostgreSQL's (SQLite has one writer at a time). */
    if (getenv("FM_TEST_PG")) {
        tcase_add_test(tc, turn_holder_killed);
        tcase_add_test(tc, turn_holder_stopped);
        tcase_add_test(tc, queued_rows_go_in_together);
        tcase_add_test(tc, batch_holder_killed);
        tcase_add_test(tc, taken_row_waits_on_its_slot);
        tcase_add_test(tc, holder_links_rows_queued_meanwhile);
        tcase_add_test(tc, racing_appends_visible_before_flush);
    }
    tcase_add_test(tc, folds_from_two_writers);
    tcase_add_test(tc, joining_host_starts_its_anchor);
    tcase_add_test(tc, query_filters);
    tcase_add_test(tc, query_time_error_shows_no_control_characters);
    tcase_add_test(tc, hourly_counters_fold_once);
    tcase_add_test(tc, trail_reports);
    tcase_add_test(tc, failed_statement_keeps_transaction);
    /* SQLite only (a v1 SQLite file, SQLite's WAL): stage store-pg runs
     * the "chain" case on PostgreSQL, stage unit runs both. */
    TCase *lite = tcase_create("sqlite");
    tcase_add_test(lite, v1_store_migrates);
    tcase_add_test(lite, wal_checkpoint_idle_and_bounded);
    tcase_add_test(lite, wal_checkpointer_owns_the_burst);
    tcase_add_test(lite, wal_batched_writes_whole);
    tcase_add_test(lite, group_commit_batches);
    tcase_add_test(lite, group_commit_remembers_settings);
    tcase_add_test(lite, group_commit_anchor);
    tcase_add_test(lite, store_path_length);
    tcase_add_test(tc, sha256_known_answers);
    tcase_add_test(tc, base64_rfc4648);
    tcase_set_timeout(tc, 60); /* thousands of real commits under ASan */
    tcase_set_timeout(lite, 60);
    suite_add_tcase(s, tc);
    suite_add_tcase(s, lite);
    return s;
}

FM_TEST_MAIN(audit_suite)
