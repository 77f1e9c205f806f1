/* fleetmcp store migrate: copies a SQLite store into an empty PostgreSQL
 * one, table by table, with the audit chain's key, so the copy verifies
 * under the same key.  Both stores are opened by this build first, so
 * both carry its schema; the copy then moves rows, nothing else. */
#include "fleetmcp/fm_store_migrate.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fleetmcp/fm_audit.h"
#include "fleetmcp/fm_server.h"

/* Table names come from the source's catalog: only plain identifiers are
 * pasted into SQL. */
static bool plain_name(const char *s)
{
    if (!s || !*s || strlen(s) > 60) return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_')) return false;
    return true;
}

/* The source's audit key becomes the destination's (copied before the
 * destination's audit opens, which would otherwise make a new one). */
static int copy_key(const char *from_side, const char *to_side, fm_err *err)
{
    char src[600], dst[600], buf[80];
    snprintf(src, sizeof src, "%s.audit-key", from_side);
    snprintf(dst, sizeof dst, "%s.audit-key", to_side);
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return errno == ENOENT
                   ? 0
                   : fm_err_set(err, FM_ERR_IO, "cannot read %s: %s", src, strerror(errno));
    ssize_t n = read(in, buf, sizeof buf);
    close(in);
    int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0)
        return fm_err_set(err, FM_ERR_CONFLICT,
                          "%s exists: the destination has an audit key already; migrate into"
                          " an empty store (remove the file if its database is empty)",
                          dst);
    bool ok = n > 0 && write(out, buf, (size_t)n) == n;
    close(out);
    if (!ok) unlink(dst);
    return ok ? 0 : fm_err_set(err, FM_ERR_IO, "cannot write %s", dst);
}

/* A table the destination has not made yet (subsystems that create
 * theirs on first use): made from the source's own DDL and indexes,
 * rewritten for PostgreSQL like every statement. */
/* Row callback: *(bool *)arg when column 0 is not NULL. */
static int not_null_row(fm_db_stmt *row, void *arg)
{
    *(bool *)arg = fm_db_column_type(row, 0) != FM_DB_NULL;
    return 1;
}

typedef struct {
    fm_store *to;
    const char *table;
    fm_err *err;
} ddl_acc;

/* One DDL statement of the source's, run on the destination; stops at
 * the first that fails. */
static int ddl_row(fm_db_stmt *row, void *arg)
{
    ddl_acc *a = arg;
    char *msg = NULL;
    int bad = fm_db_exec(a->to->db, (const char *)fm_db_column_text(row, 0), NULL, NULL, &msg) !=
              FM_DB_OK;
    if (bad)
        fm_err_set(a->err, FM_ERR_IO, "creating %s on PostgreSQL: %s", a->table,
                   msg ? msg : "error");
    fm_db_free(msg);
    return bad;
}

static int ensure_table(fm_store *from, fm_store *to, const char *table, fm_err *err)
{
    bool have = false;
    fm_db_run(to->db, "SELECT to_regclass(?)", not_null_row, &have, "t", table);
    if (have) return 0;
    ddl_acc a = {to, table, err};
    int rc = fm_db_run(from->db,
                       "SELECT sql FROM sqlite_master WHERE tbl_name=? AND sql IS NOT NULL"
                       " ORDER BY type DESC",
                       ddl_row, &a, "t", table);
    if (rc == FM_DB_ROW) return -1; /* a DDL failed: err says which */
    return rc == FM_DB_DONE ? 0 : fm_store_fail(from, err, "migrate catalog");
}

static int copy_table(fm_store *from, fm_store *to, const char *table, int64_t *copied, fm_err *err)
{
    char sql[4096];
    snprintf(sql, sizeof sql, "SELECT * FROM %s", table);
    fm_db_stmt *s = NULL, *ins = NULL;
    if (fm_db_prepare_v2(from->db, sql, -1, &s, NULL) != FM_DB_OK)
        return fm_store_fail(from, err, "migrate read");
    int n = fm_db_column_count(s);
    size_t off = (size_t)snprintf(sql, sizeof sql, "INSERT INTO %s(", table);
    for (int i = 0; i < n && off < sizeof sql; i++)
        off += (size_t)snprintf(sql + off, sizeof sql - off, "%s%s", i ? "," : "",
                                fm_db_column_name(s, i));
    off += (size_t)snprintf(sql + off, sizeof sql - off, ") VALUES(");
    for (int i = 0; i < n && off < sizeof sql; i++)
        off += (size_t)snprintf(sql + off, sizeof sql - off, "%s?", i ? "," : "");
    off += (size_t)snprintf(sql + off, sizeof sql - off, ")");
    int rc = -1;
    char del[128];
    snprintf(del, sizeof del, "DELETE FROM %s", table);
    if (off >= sizeof sql) {
        fm_err_set(err, FM_ERR_TOO_LARGE, "table %s has too many columns to copy", table);
        goto out;
    }
    /* The destination's own start-up rows (settings) give way to the
     * source's. */
    if (fm_db_exec(to->db, del, NULL, NULL, NULL) != FM_DB_OK ||
        fm_db_prepare_v2(to->db, sql, -1, &ins, NULL) != FM_DB_OK) {
        fm_store_fail(to, err, "migrate write");
        goto out;
    }
    int step;
    while ((step = fm_db_step(s)) == FM_DB_ROW) {
        fm_db_reset(ins);
        for (int i = 0; i < n; i++) {
            switch (fm_db_column_type(s, i)) {
            case FM_DB_INTEGER:
                fm_db_bind_int64(ins, i + 1, fm_db_column_int64(s, i));
                break;
            case FM_DB_FLOAT:
                fm_db_bind_double(ins, i + 1, fm_db_column_double(s, i));
                break;
            case FM_DB_BLOB:
                fm_db_bind_blob(ins, i + 1, fm_db_column_blob(s, i), fm_db_column_bytes(s, i),
                                FM_DB_TRANSIENT);
                break;
            case FM_DB_NULL:
                fm_db_bind_null(ins, i + 1);
                break;
            default:
                fm_db_bind_text(ins, i + 1, (const char *)fm_db_column_text(s, i),
                                fm_db_column_bytes(s, i), FM_DB_TRANSIENT);
            }
        }
        if (fm_db_step(ins) != FM_DB_DONE) {
            fm_store_fail(to, err, table);
            goto out;
        }
        ++*copied;
    }
    if (step != FM_DB_DONE) {
        fm_store_fail(from, err, table);
        goto out;
    }
    /* Identity columns continue after the copied ids (PostgreSQL's own
     * catalog call: this file only ever writes to PostgreSQL). */
    bool has_id = false;
    for (int i = 0; i < n; i++)
        has_id |= !strcmp(fm_db_column_name(s, i), "id");
    bool serial = false;
    if (has_id)
        fm_db_run(to->db, "SELECT pg_get_serial_sequence(?, 'id')", not_null_row, &serial, "t",
                  table);
    snprintf(sql, sizeof sql,
             "SELECT setval(pg_get_serial_sequence('%s', 'id'), (SELECT coalesce(max(id), 0) + 1"
             " FROM %s), false)",
             table, table);
    if (serial && fm_db_exec(to->db, sql, NULL, NULL, NULL) != FM_DB_OK) {
        fm_store_fail(to, err, "migrate sequence");
        goto out;
    }
    rc = 0;
out:
    fm_db_finalize(ins);
    fm_db_finalize(s);
    return rc;
}

typedef struct {
    fm_store *from, *to;
    int64_t *rows;
    fm_err *err;
} copy_acc;

/* One source table: made on the destination if missing, then copied.
 * Stops the walk at the first that fails. */
static int copy_row(fm_db_stmt *row, void *arg)
{
    copy_acc *c = arg;
    const char *name = (const char *)fm_db_column_text(row, 0);
    if (!plain_name(name)) {
        fm_err_set(c->err, FM_ERR_INVALID, "table name '%s' is not plain: not copied", name);
        return 1;
    }
    return ensure_table(c->from, c->to, name, c->err) ||
           copy_table(c->from, c->to, name, c->rows, c->err);
}

int fm_store_migrate_copy(const char *from, const char *to, int64_t *rows, int64_t *verified,
                          fm_err *err)
{
    *rows = *verified = 0;
    if (fm_db_is_pg_url(from) || !fm_db_is_pg_url(to))
        return fm_err_set(err, FM_ERR_INVALID,
                          "store migrate copies a SQLite store into PostgreSQL: --from"
                          " sqlite:PATH --to postgresql://..."),
               -1;
    fm_ctx src, dst;
    if (fm_ctx_open(&src, NULL, from, err)) return -1;
    int rc = -1;
    fm_store probe;
    if (fm_store_open(&probe, to, err)) goto close_src;
    char side[sizeof probe.side];
    snprintf(side, sizeof side, "%s", probe.side);
    int64_t audit_rows = -1;
    fm_db_run(probe.db, "SELECT count(*) FROM schema_migrations WHERE subsystem='audit'",
              fm_db_row_int64, &audit_rows, NULL);
    bool empty = audit_rows == 0;
    fm_store_close(&probe);
    if (!empty) {
        fm_err_set(err, FM_ERR_CONFLICT,
                   "%s already holds a fleetmcp store: migrate into an empty database", to);
        goto close_src;
    }
    if (copy_key(src.store.side, side, err)) goto close_src;
    if (fm_ctx_open(&dst, NULL, to, err)) goto close_src;
    if (fm_store_begin(&dst.store, err)) goto close_dst;
    copy_acc c = {&src.store, &dst.store, rows, err};
    int step = fm_db_run(src.store.db,
                         "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE"
                         " 'sqlite_%' ORDER BY name",
                         copy_row, &c, NULL);
    if (step != FM_DB_DONE) {
        /* FM_DB_ROW: a table failed and err says why; else the catalog. */
        if (step != FM_DB_ROW) fm_store_fail(&src.store, err, "migrate catalog");
        fm_store_rollback(&dst.store);
        goto close_dst;
    }
    if (fm_store_commit(&dst.store, err)) {
        fm_store_rollback(&dst.store);
        goto close_dst;
    }
    fm_ctx_close(&dst);
    /* Reopened: the anchor moves to the copied head, then the chain is
     * checked end to end under the copied key. */
    if (fm_ctx_open(&dst, NULL, to, err)) goto close_src;
    rc = fm_audit_verify(&dst.store, verified, &(int64_t){0}, err);
close_dst:
    fm_ctx_close(&dst);
close_src:
    fm_ctx_close(&src);
    return rc;
}
