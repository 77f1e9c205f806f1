/* Audit rows and their hash chain.  The chain is extended inside one
 * BEGIN IMMEDIATE transaction (read the last hash, insert), so several
 * server processes sharing the database still form one linear chain. */
#include "fleetmcp/fm_audit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_util.h"

static const char audit_ddl[] =
    "CREATE TABLE IF NOT EXISTS audit("
    " id INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL, session TEXT NOT NULL,"
    " phase TEXT NOT NULL, call_ref INTEGER, initiator_kind TEXT NOT NULL,"
    " initiator_name TEXT, os_user TEXT, client_name TEXT, client_version TEXT,"
    " tool TEXT, args TEXT, args_hash TEXT, autonomy TEXT, mode TEXT, decision TEXT,"
    " reason TEXT, plan_id TEXT, approval_id TEXT, workflow_id TEXT, node TEXT,"
    " result TEXT, error_code TEXT, error TEXT, duration_us INTEGER,"
    " state_before TEXT, state_after TEXT, runbook TEXT, runbook_version TEXT,"
    " prev_hash TEXT NOT NULL, hash TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS audit_node ON audit(node, id);"
    "CREATE INDEX IF NOT EXISTS audit_tool ON audit(tool, id);"
    "CREATE INDEX IF NOT EXISTS audit_session ON audit(session, id);"
    /* Decisions per hour, kept with each row so fleet_status and the rate
     * limiter never scan the audit log. */
    "CREATE TABLE IF NOT EXISTS audit_hourly(hour INTEGER NOT NULL, tool TEXT NOT NULL,"
    " decision TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY(hour, tool, decision))"
    " WITHOUT ROWID;";



/* Column order is part of the hash: never reorder, only append. */
#define AUDIT_COLS                                                                                 \
    "ts_ms,session,phase,call_ref,initiator_kind,initiator_name,os_user,client_name,"              \
    "client_version,tool,args,args_hash,autonomy,mode,decision,reason,plan_id,approval_id,"        \
    "workflow_id,node,result,error_code,error,duration_us,state_before,state_after,runbook,"       \
    "runbook_version"
#define AUDIT_NCOLS 28
#define GENESIS_HASH "0000000000000000000000000000000000000000000000000000000000000000"

static const char last_hash_sql[] = "SELECT hash FROM audit ORDER BY id DESC LIMIT 1";
static const char insert_sql[] =
    "INSERT INTO audit(" AUDIT_COLS ",prev_hash,hash) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,"
    "?,?,?,?,?,?,?,?,?,?,?,?)";
static const char hourly_sql[] =
    "INSERT INTO audit_hourly(hour,tool,decision,n) VALUES(?,?,?,1)"
    " ON CONFLICT(hour,tool,decision) DO UPDATE SET n=n+1";

int fm_audit_init(fm_ctx *ctx, fm_err *err)
{
    return fm_store_migrate(&ctx->store, "audit", 1, audit_ddl, err);
}

/* The hashed form of a row: each column in AUDIT_COLS order as a type
 * byte ('n' null, 'i' integer as decimal, 's' text), an 8-byte length and
 * the bytes, then prev_hash.  Length-prefixed so no two rows can hash the
 * same, and no escaping so it costs one pass over the bytes. */
static void hash_part(EVP_MD_CTX *md, char type, const char *p, size_t n)
{
    unsigned char hdr[9] = {(unsigned char)type};
    for (int i = 0; i < 8; i++) hdr[1 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
    EVP_DigestUpdate(md, hdr, sizeof hdr);
    if (n) EVP_DigestUpdate(md, p, n);
}

static void row_hash(const json_t *cols, const char *prev, char out[65])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    size_t i;
    json_t *v;
    json_array_foreach(cols, i, v)
    {
        char num[24];
        if (json_is_integer(v)) {
            int n = snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
            hash_part(md, 'i', num, (size_t)n);
        } else if (json_is_string(v)) {
            hash_part(md, 's', json_string_value(v), json_string_length(v));
        } else {
            hash_part(md, 'n', NULL, 0);
        }
    }
    hash_part(md, 's', prev, strlen(prev));
    unsigned char digest[32];
    unsigned int dlen = 0;
    EVP_DigestFinal_ex(md, digest, &dlen);
    EVP_MD_CTX_free(md);
    fm_hex(digest, 32, out);
}

static json_t *opt_str(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *clip_str(const char *s, size_t max)
{
    if (!s) return json_null();
    size_t n = strlen(s);
    if (n <= max) return json_string(s);
    /* Cut on a UTF-8 boundary so the column stays valid text. */
    while (n > 0 && max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80) max--;
    return json_stringn(s, max);
}

static int last_hash(fm_store *st, char out[65])
{
    snprintf(out, 65, "%s", GENESIS_HASH);
    sqlite3_stmt *s = fm_store_stmt(st, last_hash_sql, NULL);
    if (!s) return -1;
    if (sqlite3_step(s) == SQLITE_ROW) {
        const unsigned char *h = sqlite3_column_text(s, 0);
        if (h) snprintf(out, 65, "%s", (const char *)h);
    }
    sqlite3_reset(s);
    return 0;
}

static void bind_json(sqlite3_stmt *s, int i, const json_t *v)
{
    if (json_is_integer(v))
        sqlite3_bind_int64(s, i, json_integer_value(v));
    else if (json_is_string(v))
        sqlite3_bind_text(s, i, json_string_value(v), -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(s, i);
}

int64_t fm_audit_append(fm_ctx *ctx, const fm_audit_rec *r, fm_err *err)
{
    fm_store *st = &ctx->store;
    const fm_session *ses = &ctx->session;
    char *args_text = NULL, args_hash[65] = "";
    if (r->args) {
        json_t *red = fm_json_redact(r->args);
        args_text = fm_json_canonical(red);
        json_decref(red);
        if (args_text) fm_sha256_hex(args_text, strlen(args_text), args_hash);
    }
    json_t *cols = json_array();
    json_array_append_new(cols, json_integer(fm_now_ms()));
    json_array_append_new(cols, json_string(ses->id));
    json_array_append_new(cols, json_string(r->phase ? r->phase : "call"));
    json_array_append_new(cols, r->call_ref ? json_integer(r->call_ref) : json_null());
    json_array_append_new(cols,
                          json_string(ses->initiator == FM_INITIATOR_HUMAN ? "human" : "agent"));
    json_array_append_new(cols, json_string(ses->client_name[0] ? ses->client_name : "unknown"));
    json_array_append_new(cols, json_string(ses->os_user));
    json_array_append_new(cols, json_string(ses->client_name));
    json_array_append_new(cols, json_string(ses->client_version));
    json_array_append_new(cols, opt_str(r->tool));
    json_array_append_new(cols, args_text ? json_string(args_text) : json_null());
    json_array_append_new(cols, args_text ? json_string(args_hash) : json_null());
    json_array_append_new(cols, opt_str(r->autonomy));
    json_array_append_new(cols, json_string(fm_mode_name(ctx->cfg.mode)));
    json_array_append_new(cols, opt_str(r->decision));
    json_array_append_new(cols, clip_str(r->reason, 1024));
    json_array_append_new(cols, opt_str(r->plan_id));
    json_array_append_new(cols, opt_str(r->approval_id));
    json_array_append_new(cols, opt_str(r->workflow_id));
    json_array_append_new(cols, opt_str(r->node));
    json_array_append_new(cols, clip_str(r->result, FM_AUDIT_MAX_RESULT));
    json_array_append_new(cols, opt_str(r->error_code));
    json_array_append_new(cols, clip_str(r->error, 1024));
    json_array_append_new(cols, json_integer(r->duration_us));
    json_array_append_new(cols, opt_str(r->state_before));
    json_array_append_new(cols, opt_str(r->state_after));
    json_array_append_new(cols, opt_str(r->runbook));
    json_array_append_new(cols, opt_str(r->runbook_version));
    free(args_text);

    int64_t id = -1;
    sqlite3_stmt *s = NULL, *h = NULL;
    char prev[65], hash[65];
    if (fm_store_begin(st, err)) goto out;
    if (last_hash(st, prev)) {
        fm_store_fail(st, err, "audit read");
        goto fail;
    }
    row_hash(cols, prev, hash);
    if (!(s = fm_store_stmt(st, insert_sql, err))) goto fail;
    for (int i = 0; i < AUDIT_NCOLS; i++) bind_json(s, i + 1, json_array_get(cols, (size_t)i));
    sqlite3_bind_text(s, AUDIT_NCOLS + 1, prev, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, AUDIT_NCOLS + 2, hash, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        fm_store_fail(st, err, "audit insert");
        goto fail;
    }
    id = sqlite3_last_insert_rowid(st->db);
    /* Results and steps repeat their intent's decision: count calls once. */
    if (!r->phase || !strcmp(r->phase, "call") || !strcmp(r->phase, "intent")) {
        if (!(h = fm_store_stmt(st, hourly_sql, err))) goto fail;
        sqlite3_bind_int64(h, 1, json_integer_value(json_array_get(cols, 0)) / 3600000);
        sqlite3_bind_text(h, 2, r->tool ? r->tool : "", -1, SQLITE_STATIC);
        sqlite3_bind_text(h, 3, r->decision ? r->decision : "none", -1, SQLITE_STATIC);
        rc = sqlite3_step(h);
        sqlite3_reset(h);
        if (rc != SQLITE_DONE) {
            fm_store_fail(st, err, "audit counters");
            goto fail;
        }
    }
    if (fm_store_commit(st, err)) id = -1;
    goto out;
fail:
    id = -1;
    fm_store_rollback(st);
out:
    json_decref(cols);
    return id;
}

static json_t *column_json(sqlite3_stmt *s, int i)
{
    switch (sqlite3_column_type(s, i)) {
    case SQLITE_INTEGER: return json_integer(sqlite3_column_int64(s, i));
    case SQLITE_NULL: return json_null();
    default: return json_string((const char *)sqlite3_column_text(s, i));
    }
}

int fm_audit_verify(fm_store *st, int64_t *rows, int64_t *bad_id, fm_err *err)
{
    sqlite3_stmt *s = NULL;
    *rows = 0;
    *bad_id = 0;
    if (sqlite3_prepare_v2(st->db, "SELECT " AUDIT_COLS ",prev_hash,hash,id FROM audit ORDER BY id",
                           -1, &s, NULL) != SQLITE_OK)
        return fm_store_fail(st, err, "audit verify"), -1;
    char expect_prev[65] = GENESIS_HASH;
    int rc = 0;
    json_t *cols = json_array();
    while (sqlite3_step(s) == SQLITE_ROW) {
        json_array_clear(cols);
        for (int i = 0; i < AUDIT_NCOLS; i++) json_array_append_new(cols, column_json(s, i));
        const char *prev = (const char *)sqlite3_column_text(s, AUDIT_NCOLS);
        const char *hash = (const char *)sqlite3_column_text(s, AUDIT_NCOLS + 1);
        int64_t id = sqlite3_column_int64(s, AUDIT_NCOLS + 2);
        char calc[65];
        (*rows)++;
        if (!prev || strcmp(prev, expect_prev)) {
            *bad_id = id;
            fm_err_set(err, FM_ERR_CONFLICT,
                       "audit row %lld: previous-hash link broken (a row before it was deleted,"
                       " inserted or edited)",
                       (long long)id);
            rc = -1;
            break;
        }
        row_hash(cols, prev, calc);
        if (!hash || strcmp(hash, calc)) {
            *bad_id = id;
            fm_err_set(err, FM_ERR_CONFLICT, "audit row %lld: content does not match its hash"
                       " (the row was edited)", (long long)id);
            rc = -1;
            break;
        }
        snprintf(expect_prev, sizeof expect_prev, "%s", hash);
    }
    json_decref(cols);
    sqlite3_finalize(s);
    return rc;
}

json_t *fm_audit_query(fm_store *st, const json_t *f, fm_err *err)
{
    char sql[1024] = "SELECT id," AUDIT_COLS " FROM audit WHERE 1=1";
    const char *node = fm_json_str(f, "node", NULL), *tool = fm_json_str(f, "tool", NULL),
               *ini = fm_json_str(f, "initiator", NULL), *ses = fm_json_str(f, "session", NULL),
               *dec = fm_json_str(f, "decision", NULL);
    json_int_t since = json_integer_value(json_object_get(f, "since_ms"));
    json_int_t until = json_integer_value(json_object_get(f, "until_ms"));
    json_int_t before = json_integer_value(json_object_get(f, "before_id"));
    json_int_t limit = json_integer_value(json_object_get(f, "limit"));
    if (limit <= 0 || limit > 1000) limit = limit <= 0 ? 50 : 1000;
    if (node) strcat(sql, " AND node=:node");
    if (tool) strcat(sql, " AND tool=:tool");
    if (ini) strcat(sql, " AND (initiator_kind=:ini OR initiator_name=:ini)");
    if (ses) strcat(sql, " AND session=:ses");
    if (dec) strcat(sql, " AND decision=:dec");
    if (since) strcat(sql, " AND ts_ms>=:since");
    if (until) strcat(sql, " AND ts_ms<=:until");
    if (before) strcat(sql, " AND id<:before");
    strcat(sql, " ORDER BY id DESC LIMIT :limit");
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
        fm_store_fail(st, err, "audit query");
        return NULL;
    }
#define BIND_T(name, v)                                                                            \
    if (v) sqlite3_bind_text(s, sqlite3_bind_parameter_index(s, name), v, -1, SQLITE_STATIC)
#define BIND_I(name, v)                                                                            \
    if (v) sqlite3_bind_int64(s, sqlite3_bind_parameter_index(s, name), v)
    BIND_T(":node", node);
    BIND_T(":tool", tool);
    BIND_T(":ini", ini);
    BIND_T(":ses", ses);
    BIND_T(":dec", dec);
    BIND_I(":since", since);
    BIND_I(":until", until);
    BIND_I(":before", before);
    BIND_I(":limit", limit);
#undef BIND_T
#undef BIND_I
    json_t *rows = json_array();
    int n = sqlite3_column_count(s);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        json_t *row = json_object();
        for (int i = 0; i < n; i++) {
            if (sqlite3_column_type(s, i) == SQLITE_NULL) continue;
            json_object_set_new(row, sqlite3_column_name(s, i), column_json(s, i));
        }
        json_array_append_new(rows, row);
    }
    if (rc != SQLITE_DONE) {
        fm_store_fail(st, err, "audit query");
        json_decref(rows);
        rows = NULL;
    }
    sqlite3_finalize(s);
    return rows;
}
