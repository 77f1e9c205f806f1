/* Audit rows and their hash chain.  The chain is extended inside one
 * BEGIN IMMEDIATE transaction (read the last hash, insert), so several
 * server processes sharing the database still form one linear chain. */
#include "fleetmcp/fm_audit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_util.h"

#define FOLDED_KEY "audit.hourly_folded_id"
/* Rows between folds: bounds both the backlog a reader folds and how
 * often an append pays for a fold. */
#define FOLD_EVERY 256

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
    /* Partial: most rows (fleet-wide reads) have no node, and an index
     * entry costs a page write per call.  node=? still uses it. */
    "DROP INDEX IF EXISTS audit_node;"
    "CREATE INDEX audit_node ON audit(node, id) WHERE node IS NOT NULL;"
    "CREATE INDEX IF NOT EXISTS audit_tool ON audit(tool, id);"
    "CREATE INDEX IF NOT EXISTS audit_session ON audit(session, id);"
    /* Calls per hour by tool and decision, so fleet_status and the metrics
     * never scan the log.  Folded in batches (fm_audit_fold), not per row:
     * a counter update per call would cost a page write per call.  The
     * watermark starts at the current end, as earlier rows were counted
     * one by one. */
    "CREATE TABLE IF NOT EXISTS audit_hourly(hour INTEGER NOT NULL, tool TEXT NOT NULL,"
    " decision TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY(hour, tool, decision))"
    " WITHOUT ROWID;"
    "INSERT OR REPLACE INTO settings(key,value,updated_ms)"
    " SELECT '" FOLDED_KEY "', coalesce(max(id), 0), 0 FROM audit;";

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
static const char fold_sql[] =
    "INSERT INTO audit_hourly(hour,tool,decision,n)"
    " SELECT ts_ms/3600000, coalesce(tool,''), coalesce(decision,'none'), count(*) FROM audit"
    " WHERE id>?1 AND id<=?2 AND phase IN ('call','intent') GROUP BY 1,2,3"
    " ON CONFLICT(hour,tool,decision) DO UPDATE SET n=n+excluded.n";
static const char max_id_sql[] = "SELECT coalesce(max(id), 0) FROM audit";
static const char allowed_sql[] =
    "SELECT count(*), coalesce(min(ts_ms), 0) FROM audit WHERE tool=? AND decision='allow' AND"
    " phase IN ('call','intent') AND ts_ms>=?";

long long fm_audit_allowed_since(fm_store *st, const char *tool, int64_t since_ms,
                                 int64_t *oldest_ms)
{
    *oldest_ms = 0;
    sqlite3_stmt *s = fm_store_stmt(st, allowed_sql, NULL);
    if (!s) return -1;
    sqlite3_bind_text(s, 1, tool, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, since_ms);
    long long n = -1;
    if (sqlite3_step(s) == SQLITE_ROW) {
        n = sqlite3_column_int64(s, 0);
        *oldest_ms = sqlite3_column_int64(s, 1);
    }
    sqlite3_reset(s);
    return n;
}

int fm_audit_init(fm_ctx *ctx, fm_err *err)
{
    return fm_store_migrate(&ctx->store, "audit", 2, audit_ddl, err);
}

/* One column of a row as hashed and bound: 'n' null, 'i' integer, 's'
 * text (borrowed bytes). */
typedef struct acol {
    char type;
    const char *s;
    size_t n;
    int64_t i;
} acol;

static acol col_null(void)
{
    return (acol){.type = 'n'};
}

static acol col_i(int64_t v)
{
    return (acol){.type = 'i', .i = v};
}

static acol col_s(const char *s)
{
    return s ? (acol){.type = 's', .s = s, .n = strlen(s)} : col_null();
}

/* Long text is cut on a UTF-8 boundary so the column stays valid text. */
static acol col_clip(const char *s, size_t max)
{
    acol c = col_s(s);
    if (c.type != 's' || c.n <= max) return c;
    while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80) max--;
    c.n = max;
    return c;
}

static unsigned char *put_part(unsigned char *w, char type, const char *p, size_t n)
{
    *w++ = (unsigned char)type;
    for (int i = 0; i < 8; i++) *w++ = (unsigned char)((uint64_t)n >> (56 - 8 * i));
    if (n) memcpy(w, p, n);
    return w + n;
}

/* The hashed form of a row: each column in AUDIT_COLS order as a type
 * byte ('n' null, 'i' integer as decimal, 's' text), an 8-byte big-endian
 * length and the bytes, then prev_hash.  Length-prefixed so no two rows
 * can hash the same; laid out in one buffer so it is one digest call.
 * Returns -1 only when out of memory. */
static int row_hash(const acol *c, const char *prev, char out[65])
{
    size_t need = 9 + strlen(prev);
    for (int k = 0; k < AUDIT_NCOLS; k++) need += 9 + (c[k].type == 'i' ? 24 : c[k].n);
    unsigned char local[4096];
    unsigned char *buf = need <= sizeof local ? local : malloc(need);
    if (!buf) return -1;
    unsigned char *w = buf;
    for (int k = 0; k < AUDIT_NCOLS; k++) {
        if (c[k].type == 'i') {
            char num[24];
            int n = snprintf(num, sizeof num, "%lld", (long long)c[k].i);
            w = put_part(w, 'i', num, (size_t)n);
        } else {
            w = put_part(w, c[k].type, c[k].s, c[k].type == 's' ? c[k].n : 0);
        }
    }
    w = put_part(w, 's', prev, strlen(prev));
    fm_sha256_hex(buf, (size_t)(w - buf), out);
    if (buf != local) free(buf);
    return 0;
}

static int last_hash(fm_store *st, char out[65])
{
    snprintf(out, 65, "%s", GENESIS_HASH);
    sqlite3_stmt *s = fm_store_stmt(st, last_hash_sql, NULL);
    if (!s) return -1;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        const unsigned char *h = sqlite3_column_text(s, 0);
        if (h) snprintf(out, 65, "%s", (const char *)h);
    }
    sqlite3_reset(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

static void bind_col(sqlite3_stmt *s, int i, const acol *c)
{
    if (c->type == 'i')
        sqlite3_bind_int64(s, i, c->i);
    else if (c->type == 's')
        sqlite3_bind_text(s, i, c->s, (int)c->n, SQLITE_STATIC);
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
    const int64_t ts = fm_now_ms();
    /* Every string here outlives the insert: bound without copies. */
    const acol cols[AUDIT_NCOLS] = {
        col_i(ts),
        col_s(ses->id),
        col_s(r->phase ? r->phase : "call"),
        r->call_ref ? col_i(r->call_ref) : col_null(),
        col_s(ses->initiator == FM_INITIATOR_HUMAN ? "human" : "agent"),
        col_s(ses->client_name[0] ? ses->client_name : "unknown"),
        col_s(ses->os_user),
        col_s(ses->client_name),
        col_s(ses->client_version),
        col_s(r->tool),
        col_s(args_text),
        args_text ? col_s(args_hash) : col_null(),
        col_s(r->autonomy),
        col_s(fm_mode_name(ctx->cfg.mode)),
        col_s(r->decision),
        col_clip(r->reason, 1024),
        col_s(r->plan_id),
        col_s(r->approval_id),
        col_s(r->workflow_id),
        col_s(r->node),
        col_clip(r->result, FM_AUDIT_MAX_RESULT),
        col_s(r->error_code),
        col_clip(r->error, 1024),
        col_i(r->duration_us),
        col_s(r->state_before),
        col_s(r->state_after),
        col_s(r->runbook),
        col_s(r->runbook_version),
    };

    int64_t id = -1;
    sqlite3_stmt *s = NULL;
    char prev[65], hash[65];
    if (fm_store_begin(st, err)) goto out;
    if (r->rate_limit > 0 && r->tool) {
        int64_t oldest = 0;
        long long used = fm_audit_allowed_since(st, r->tool, ts - 3600000, &oldest);
        if (used < 0) {
            fm_store_fail(st, err, "audit rate count");
            goto fail;
        }
        if (used >= r->rate_limit) {
            char next[32];
            fm_iso_time(oldest + 3600000, next);
            fm_err_set(err, FM_ERR_RATE_LIMITED,
                       "%s refused: %lld of %lld allowed calls in the last hour; the next is"
                       " allowed at %s (raise rate_limits.%s in the config if this is expected)",
                       r->tool, used, r->rate_limit, next, r->tool);
            goto fail;
        }
    }
    if (last_hash(st, prev)) {
        fm_store_fail(st, err, "audit read");
        goto fail;
    }
    if (row_hash(cols, prev, hash)) {
        fm_err_set(err, FM_ERR_NOMEM, "audit: out of memory hashing a row");
        goto fail;
    }
    if (!(s = fm_store_stmt(st, insert_sql, err))) goto fail;
    for (int i = 0; i < AUDIT_NCOLS; i++) bind_col(s, i + 1, &cols[i]);
    sqlite3_bind_text(s, AUDIT_NCOLS + 1, prev, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, AUDIT_NCOLS + 2, hash, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s); /* drop the borrowed pointers */
    if (rc != SQLITE_DONE) {
        fm_store_fail(st, err, "audit insert");
        goto fail;
    }
    id = sqlite3_last_insert_rowid(st->db);
    if (fm_store_commit(st, err)) id = -1;
    /* Whoever appends every FOLD_EVERY-th row folds, in its own
     * transaction: the row is already safe if this fails. */
    if (id > 0 && id % FOLD_EVERY == 0) fm_audit_fold(st, NULL);
    goto out;
fail:
    id = -1;
    fm_store_rollback(st);
out:
    free(args_text);
    return id;
}

int fm_audit_fold(fm_store *st, fm_err *err)
{
    if (fm_store_begin(st, err)) return -1;
    char buf[32];
    long long from = fm_store_setting_get(st, FOLDED_KEY, buf, sizeof buf) ? 0 : atoll(buf);
    long long to = 0;
    sqlite3_stmt *s = fm_store_stmt(st, max_id_sql, err);
    if (!s) goto fail;
    if (sqlite3_step(s) == SQLITE_ROW) to = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    if (to > from) {
        if (!(s = fm_store_stmt(st, fold_sql, err))) goto fail;
        sqlite3_bind_int64(s, 1, from);
        sqlite3_bind_int64(s, 2, to);
        int rc = sqlite3_step(s);
        sqlite3_reset(s);
        if (rc != SQLITE_DONE) {
            fm_store_fail(st, err, "audit counters");
            goto fail;
        }
        snprintf(buf, sizeof buf, "%lld", to);
        if (fm_store_setting_set(st, FOLDED_KEY, buf, err)) goto fail;
    }
    return fm_store_commit(st, err);
fail:
    fm_store_rollback(st);
    return -1;
}

/* A stored column as hashed: text by its bytes, so the check sees what
 * the append hashed.  The pointer lives until the next step. */
static acol stored_col(sqlite3_stmt *s, int i)
{
    switch (sqlite3_column_type(s, i)) {
    case SQLITE_INTEGER: return col_i(sqlite3_column_int64(s, i));
    case SQLITE_NULL: return col_null();
    default: {
        const char *t = (const char *)sqlite3_column_text(s, i);
        return (acol){.type = 's', .s = t ? t : "", .n = (size_t)sqlite3_column_bytes(s, i)};
    }
    }
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
    int rc = 0, step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        acol cols[AUDIT_NCOLS];
        for (int i = 0; i < AUDIT_NCOLS; i++) cols[i] = stored_col(s, i);
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
        if (row_hash(cols, prev, calc)) {
            fm_err_set(err, FM_ERR_NOMEM, "audit verify: out of memory at row %lld", (long long)id);
            rc = -1;
            break;
        }
        if (!hash || strcmp(hash, calc)) {
            *bad_id = id;
            fm_err_set(err, FM_ERR_CONFLICT, "audit row %lld: content does not match its hash"
                       " (the row was edited)", (long long)id);
            rc = -1;
            break;
        }
        snprintf(expect_prev, sizeof expect_prev, "%s", hash);
    }
    if (rc == 0 && step != SQLITE_DONE) {
        fm_store_fail(st, err, "audit verify");
        rc = -1;
    }
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
