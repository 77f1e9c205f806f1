/* fm_db: the sqlite3-shaped calls, dispatched to the connection's engine
 * (db_sqlite.c or db_pg.c).  Which engine: the target's form, a
 * postgresql:// URL or a file path. */
#include "fleetmcp/fm_db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int fm_db_is_pg_url(const char *t)
{
    return t && (!strncasecmp(t, "postgresql://", 13) || !strncasecmp(t, "postgres://", 11));
}

void fm_db_redact(const char *t, char *out, size_t len)
{
    const char *scheme = strstr(t, "://");
    const char *at = scheme ? strchr(scheme + 3, '@') : NULL;
    const char *colon = at ? memchr(scheme + 3, ':', (size_t)(at - scheme - 3)) : NULL;
    if (!colon) {
        snprintf(out, len, "%s", t);
        return;
    }
    snprintf(out, len, "%.*s:***%s", (int)(colon - t), t, at);
}

int fm_db_open_target(const char *target, fm_db **out, fm_err *err)
{
    *out = NULL;
    const fm_db_ops *ops = fm_db_is_pg_url(target) ? &fm_db_pg_ops : &fm_db_sqlite_ops;
    return ops->open(target, out, err);
}

int fm_db_open_readonly(const char *target, fm_db **out, fm_err *err)
{
    *out = NULL;
    const fm_db_ops *ops = fm_db_is_pg_url(target) ? &fm_db_pg_ops : &fm_db_sqlite_ops;
    if (ops->open_readonly) return ops->open_readonly(target, out, err);
    if (ops->open(target, out, err)) return -1;
    char *msg = NULL;
    if (ops->exec(*out, "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", &msg) != FM_DB_OK) {
        fm_err_set(err, FM_ERR_IO, "store: cannot make the session read-only: %s",
                   msg ? msg : "error");
        fm_db_free(msg);
        ops->close(*out);
        *out = NULL;
        return -1;
    }
    return 0;
}

int fm_db_open(const char *target, fm_db **out)
{
    return fm_db_open_target(target, out, NULL) ? FM_DB_ERROR : FM_DB_OK;
}

int fm_db_close(fm_db *db)
{
    /* Kept statements first: the engine frees what they point into. */
    fm_db_run_forget(db);
    if (db) db->ops->close(db);
    return FM_DB_OK;
}

int fm_db_close_v2(fm_db *db)
{
    return fm_db_close(db);
}

int fm_db_prepare_v2(fm_db *db, const char *sql, int nbyte, fm_db_stmt **out, const char **tail)
{
    (void)nbyte; /* always NUL-terminated here */
    if (tail) *tail = NULL;
    *out = NULL;
    return db->ops->prepare(db, sql, out);
}

int fm_db_prepare_v3(fm_db *db, const char *sql, int nbyte, unsigned flags, fm_db_stmt **out,
                     const char **tail)
{
    int rc = fm_db_prepare_v2(db, sql, nbyte, out, tail);
    if (rc == FM_DB_OK && (flags & FM_DB_PREPARE_PERSISTENT) && db->ops->persist)
        db->ops->persist(*out);
    return rc;
}

int fm_db_step(fm_db_stmt *s)
{
    return s->ops->step(s);
}
int fm_db_step_commit(fm_db_stmt *s)
{
    return fm_db_step_commit_then(s, NULL);
}
int fm_db_step_commit_then(fm_db_stmt *s, fm_db_stmt *then)
{
    return fm_db_step_commit_rows(&s, 1, then, 0, NULL);
}
int fm_db_step_commit_visible(fm_db_stmt *s, fm_db_stmt *then)
{
    return fm_db_step_commit_rows(&s, 1, then, 1, NULL);
}
int fm_db_step_commit_rows(fm_db_stmt **s, int n, fm_db_stmt *then, int early, int *changes)
{
    if (n < 1 || n > FM_DB_COMMIT_ROWS) return FM_DB_ERROR;
    if (s[0]->ops->step_commit_rows) return s[0]->ops->step_commit_rows(s, n, then, early, changes);
    /* Every commit is durable and the caller's transaction holds them. */
    for (int i = 0; i < n; i++) {
        int rc = s[i]->ops->step(s[i]);
        if (rc != FM_DB_DONE && rc != FM_DB_ROW) return rc;
        if (changes) changes[i] = fm_db_changes(s[i]->db);
    }
    return FM_DB_DONE;
}
int fm_db_durable(fm_db *db)
{
    return db->ops->durable ? db->ops->durable(db) : FM_DB_OK;
}
int fm_db_flush_start(fm_db *db)
{
    return db->ops->flush_start ? db->ops->flush_start(db) : FM_DB_OK;
}
int fm_db_reset(fm_db_stmt *s)
{
    return s ? s->ops->reset(s) : FM_DB_OK;
}
int fm_db_clear_bindings(fm_db_stmt *s)
{
    return s->ops->clear_bindings(s);
}
int fm_db_finalize(fm_db_stmt *s)
{
    return s ? s->ops->finalize(s) : FM_DB_OK;
}

int fm_db_bind_text(fm_db_stmt *s, int i, const char *v, int n, fm_db_destructor_type d)
{
    (void)d; /* both engines copy: the caller's buffer may go away */
    if (!v) return s->ops->bind(s, i, FM_DB_NULL, NULL, 0, 0, 0);
    return s->ops->bind(s, i, FM_DB_TEXT, v, n < 0 ? (int)strlen(v) : n, 0, 0);
}

int fm_db_bind_text_borrowed(fm_db_stmt *s, int i, const char *v, int n)
{
    if (!v) return s->ops->bind(s, i, FM_DB_NULL, NULL, 0, 0, 0);
    return s->ops->bind(s, i, FM_DB_TEXT_BORROWED, v, n < 0 ? (int)strlen(v) : n, 0, 0);
}

int fm_db_bind_blob(fm_db_stmt *s, int i, const void *v, int n, fm_db_destructor_type d)
{
    (void)d;
    if (!v) return s->ops->bind(s, i, FM_DB_NULL, NULL, 0, 0, 0);
    return s->ops->bind(s, i, FM_DB_BLOB, v, n, 0, 0);
}

int fm_db_bind_int64(fm_db_stmt *s, int i, fm_db_int64 v)
{
    return s->ops->bind(s, i, FM_DB_INTEGER, NULL, 0, v, 0);
}

int fm_db_bind_int(fm_db_stmt *s, int i, int v)
{
    return fm_db_bind_int64(s, i, v);
}

int fm_db_bind_double(fm_db_stmt *s, int i, double v)
{
    return s->ops->bind(s, i, FM_DB_FLOAT, NULL, 0, 0, v);
}

int fm_db_bind_null(fm_db_stmt *s, int i)
{
    return s->ops->bind(s, i, FM_DB_NULL, NULL, 0, 0, 0);
}
int fm_db_bind_parameter_count(fm_db_stmt *s)
{
    return s->ops->bind_parameter_count(s);
}
int fm_db_bind_parameter_index(fm_db_stmt *s, const char *name)
{
    return s->ops->bind_parameter_index(s, name);
}

int fm_db_column_count(fm_db_stmt *s)
{
    return s->ops->column_count(s);
}
int fm_db_column_type(fm_db_stmt *s, int i)
{
    return s->ops->column_type(s, i);
}
const char *fm_db_column_name(fm_db_stmt *s, int i)
{
    return s->ops->column_name(s, i);
}
const unsigned char *fm_db_column_text(fm_db_stmt *s, int i)
{
    return s->ops->column_text(s, i);
}
const void *fm_db_column_blob(fm_db_stmt *s, int i)
{
    return s->ops->column_blob(s, i);
}
int fm_db_column_bytes(fm_db_stmt *s, int i)
{
    return s->ops->column_bytes(s, i);
}
fm_db_int64 fm_db_column_int64(fm_db_stmt *s, int i)
{
    return s->ops->column_int64(s, i);
}
int fm_db_column_int(fm_db_stmt *s, int i)
{
    return (int)s->ops->column_int64(s, i);
}
double fm_db_column_double(fm_db_stmt *s, int i)
{
    return s->ops->column_double(s, i);
}

int fm_db_exec(fm_db *db, const char *sql, fm_db_callback cb, void *arg, char **errmsg)
{
    (void)arg;
    if (errmsg) *errmsg = NULL;
    if (cb) {
        /* Rows through a callback are not part of the portable API. */
        if (errmsg) *errmsg = strdup("fm_db_exec: row callbacks are not supported");
        return FM_DB_ERROR;
    }
    return db->ops->exec(db, sql, errmsg);
}

void fm_db_free(void *p)
{
    free(p);
}
int fm_db_changes(fm_db *db)
{
    return db->ops->changes(db);
}
fm_db_int64 fm_db_last_insert_rowid(fm_db *db)
{
    return db->ops->last_insert_rowid(db);
}
int fm_db_get_autocommit(fm_db *db)
{
    return db->ops->get_autocommit(db);
}
const char *fm_db_errmsg(fm_db *db)
{
    return db ? db->ops->errmsg(db) : "not open";
}
fm_code fm_db_errcode(fm_db *db)
{
    return db ? db->ops->errcode(db) : FM_ERR_IO;
}
