/* The store's database connection, one API over two engines: SQLite (the
 * default, a file path) and PostgreSQL (a postgresql:// URL, through
 * libpq).  The API mirrors the sqlite3 calls fleetmcp used before, so
 * code written against sqlite3 converts mechanically:
 *
 *   MAPPING (apply in this order, nothing else changes):
 *     #include <sqlite3.h>   ->  #include "fleetmcp/fm_db.h"
 *     sqlite3_X             ->  fm_db_X      (every function and sqlite3_stmt,
 *                                             sqlite3_int64)
 *     SQLITE_X              ->  FM_DB_X      (OK, ROW, DONE, STATIC,
 *                                             TRANSIENT, NULL, INTEGER, ...)
 *     sqlite3 (the type)    ->  fm_db
 *   As sed: tools/sqlite-to-fm-db.sed
 *
 * SQL is written once, in SQLite's dialect kept to its portable subset;
 * src/store/db_sql.c rewrites it for PostgreSQL in one place: ?, ?N and
 * :name placeholders become $n; INSERT OR IGNORE becomes ON CONFLICT DO
 * NOTHING; INTEGER becomes BIGINT, INTEGER PRIMARY KEY [AUTOINCREMENT] an
 * identity column, BLOB bytea; WITHOUT ROWID is dropped; BEGIN IMMEDIATE
 * becomes BEGIN plus a transaction-scoped advisory lock, so writers on
 * every host queue exactly as SQLite's writers queue on one host; inside
 * a transaction a statement that fails fails alone on both (PostgreSQL:
 * under a savepoint).  Not translatable (do not use in new SQL): INSERT
 * OR REPLACE (write ON CONFLICT(key) DO UPDATE), rowid,
 * strftime('%s','now') (bind fm_now_ms()), subqueries in FROM without an
 * alias, PRAGMA outside src/store. */
#ifndef FM_DB_H
#define FM_DB_H

#include <stdbool.h>
#include <stdarg.h>
#include <stdint.h>

#include "fleetmcp/fm_error.h"

typedef struct fm_db fm_db;
typedef struct fm_db_stmt fm_db_stmt;
typedef int64_t fm_db_int64;
typedef void (*fm_db_destructor_type)(void *);

/* Result codes: the same numbers as SQLite's. */
enum { FM_DB_OK = 0, FM_DB_ERROR = 1, FM_DB_BUSY = 5, FM_DB_ROW = 100, FM_DB_DONE = 101 };
/* Column types (fm_db_column_type): SQLite's numbers. */
enum { FM_DB_INTEGER = 1, FM_DB_FLOAT = 2, FM_DB_TEXT = 3, FM_DB_BLOB = 4, FM_DB_NULL = 5 };
/* fm_db_ops.bind's type for text the engine may keep a pointer to instead
 * of a copy (fm_db_bind_text_borrowed); not a column type. */
enum { FM_DB_TEXT_BORROWED = 6 };
#define FM_DB_STATIC ((fm_db_destructor_type)0)
#define FM_DB_TRANSIENT ((fm_db_destructor_type)-1)
#define FM_DB_PREPARE_PERSISTENT 0x01

/* The engine behind a connection: one const instance per engine. */
typedef struct fm_db_ops {
    const char *name; /* "sqlite", "postgresql" */
    int (*open)(const char *target, fm_db **out, fm_err *err);
    /* Opens an existing store so that no statement can change it (check-
     * config); NULL: open, then a read-only session (PostgreSQL). */
    int (*open_readonly)(const char *target, fm_db **out, fm_err *err);
    void (*close)(fm_db *db);
    int (*prepare)(fm_db *db, const char *sql, fm_db_stmt **out);
    int (*step)(fm_db_stmt *s);
    int (*reset)(fm_db_stmt *s);
    int (*clear_bindings)(fm_db_stmt *s);
    int (*finalize)(fm_db_stmt *s);
    int (*bind)(fm_db_stmt *s, int i, int type, const void *v, int n, fm_db_int64 iv, double dv);
    int (*bind_parameter_count)(fm_db_stmt *s);
    int (*bind_parameter_index)(fm_db_stmt *s, const char *name);
    int (*column_count)(fm_db_stmt *s);
    int (*column_type)(fm_db_stmt *s, int i);
    const char *(*column_name)(fm_db_stmt *s, int i);
    const unsigned char *(*column_text)(fm_db_stmt *s, int i);
    const void *(*column_blob)(fm_db_stmt *s, int i);
    int (*column_bytes)(fm_db_stmt *s, int i);
    fm_db_int64 (*column_int64)(fm_db_stmt *s, int i);
    double (*column_double)(fm_db_stmt *s, int i);
    int (*exec)(fm_db *db, const char *sql, char **errmsg);
    int (*changes)(fm_db *db);
    fm_db_int64 (*last_insert_rowid)(fm_db *db);
    int (*get_autocommit)(fm_db *db);
    const char *(*errmsg)(fm_db *db);
    fm_code (*errcode)(fm_db *db);
    /* fm_db_step_commit_rows (fm_db_step_commit_then: one statement;
     * fm_db_step_commit_visible: early); NULL: step each. */
    int (*step_commit_rows)(fm_db_stmt **s, int n, fm_db_stmt *then, int early, int *changes);
    /* fm_db_durable; NULL: every commit is durable when it returns. */
    int (*durable)(fm_db *db);
    /* fm_db_flush_start; NULL: nothing is ever owed a flush. */
    int (*flush_start)(fm_db *db);
    /* FM_DB_PREPARE_PERSISTENT on an engine that prepares on the server
     * (PostgreSQL: once per connection); NULL: nothing to do. */
    void (*persist)(fm_db_stmt *s);
    /* Idle maintenance (SQLite: a passive WAL checkpoint); NULL: none. */
    int (*maintenance_due)(fm_db *db);
    void (*maintenance)(fm_db *db);
} fm_db_ops;

extern const fm_db_ops fm_db_sqlite_ops;
extern const fm_db_ops fm_db_pg_ops;

/* Every connection and statement starts with its engine's ops.  cache:
 * fm_db_run's statements, prepared once per connection (NULL until the
 * first run; the engines calloc the connection, so it starts NULL). */
struct fm_db_run_cache;
struct fm_db {
    const fm_db_ops *ops;
    struct fm_db_run_cache *cache;
};
struct fm_db_stmt {
    const fm_db_ops *ops;
    fm_db *db;
};

/* True when target names a PostgreSQL store (postgresql:// or postgres://). */
int fm_db_is_pg_url(const char *target);
/* Opens a SQLite path or a PostgreSQL URL; err says what to fix. */
int fm_db_open_target(const char *target, fm_db **out, fm_err *err);
/* As fm_db_open_target, for a store that must not change: SQLite opens
 * an existing file read-only (nothing is created), PostgreSQL's session
 * refuses writes. */
int fm_db_open_readonly(const char *target, fm_db **out, fm_err *err);
/* target with any password in it replaced by "***": safe to print. */
void fm_db_redact(const char *target, char *out, size_t len);

/* sqlite3_open / sqlite3_close */
int fm_db_open(const char *target, fm_db **out);
int fm_db_close(fm_db *db);
int fm_db_close_v2(fm_db *db);

int fm_db_prepare_v2(fm_db *db, const char *sql, int nbyte, fm_db_stmt **out, const char **tail);
int fm_db_prepare_v3(fm_db *db, const char *sql, int nbyte, unsigned flags, fm_db_stmt **out,
                     const char **tail);
int fm_db_step(fm_db_stmt *s);
/* One write outside any transaction, committed on its own, durable when
 * this returns, like fm_db_step in autocommit (on PostgreSQL in one
 * round trip, the commit's flush shared with other writers' by
 * PostgreSQL's group commit).  Writers that each wait for the one before
 * them (the audit chain) use fm_db_step_commit_visible, so they wait for
 * its commit, not for its disk. */
int fm_db_step_commit(fm_db_stmt *s);
/* fm_db_step_commit, and after it the read `then` (its parameters
 * bound), whose rows fm_db_step returns as usual: on PostgreSQL both in
 * the same round trip, the read seeing the commit; elsewhere the read
 * runs at its first fm_db_step.  then may be NULL. */
int fm_db_step_commit_then(fm_db_stmt *s, fm_db_stmt *then);
/* As fm_db_step_commit_then, but on PostgreSQL it returns as soon as the
 * commit is visible to other writers, before it is durable (the flush
 * rides in the same round trip, after a sync).  Nothing may act on the
 * row (answer a call, run a mutation, anchor it) before fm_db_durable
 * returns FM_DB_OK; a writer that only passes on the chain's next
 * position need not wait for it. */
int fm_db_step_commit_visible(fm_db_stmt *s, fm_db_stmt *then);
/* n statements (1..FM_DB_COMMIT_ROWS, each bound, on one connection) as
 * fm_db_step_commit_then (early FM_DB_COMMIT_SYNC) or
 * fm_db_step_commit_visible (FM_DB_COMMIT_EARLY), or visible with the
 * flush owed (FM_DB_COMMIT_OWED: not sent; fm_db_flush_start or
 * fm_db_durable sends one flush for every such commit since the last),
 * in one transaction and one round trip on PostgreSQL: every one of
 * them commits or none does.  changes[i] (changes may be NULL): the rows
 * statement i changed.  Elsewhere each is stepped in the caller's
 * transaction.  Returns as fm_db_step of the first. */
#define FM_DB_COMMIT_ROWS 16
enum { FM_DB_COMMIT_SYNC, FM_DB_COMMIT_EARLY, FM_DB_COMMIT_OWED };
int fm_db_step_commit_rows(fm_db_stmt **s, int n, fm_db_stmt *then, int early, int *changes);
/* Waits until the last fm_db_step_commit_visible on db is durable:
 * FM_DB_OK, or FM_DB_ERROR (fm_db_errmsg says why; the row may or may
 * not survive a crash).  Without a pending commit: FM_DB_OK. */
int fm_db_durable(fm_db *db);
/* Sends the flush the FM_DB_COMMIT_OWED commits on db are owed without
 * waiting for it (fm_db_durable reads it): FM_DB_OK, or FM_DB_ERROR
 * when it cannot be sent (fm_db_durable then fails too).  Nothing owed:
 * FM_DB_OK. */
int fm_db_flush_start(fm_db *db);
int fm_db_reset(fm_db_stmt *s);
int fm_db_clear_bindings(fm_db_stmt *s);
int fm_db_finalize(fm_db_stmt *s);

int fm_db_bind_text(fm_db_stmt *s, int i, const char *v, int n, fm_db_destructor_type d);
/* As fm_db_bind_text, without the copy where the engine can (SQLite): v
 * must stay unchanged until the statement is reset and its bindings
 * cleared (fm_db_clear_bindings). */
int fm_db_bind_text_borrowed(fm_db_stmt *s, int i, const char *v, int n);
int fm_db_bind_blob(fm_db_stmt *s, int i, const void *v, int n, fm_db_destructor_type d);
int fm_db_bind_int64(fm_db_stmt *s, int i, fm_db_int64 v);
int fm_db_bind_int(fm_db_stmt *s, int i, int v);
int fm_db_bind_double(fm_db_stmt *s, int i, double v);
int fm_db_bind_null(fm_db_stmt *s, int i);
int fm_db_bind_parameter_count(fm_db_stmt *s);
int fm_db_bind_parameter_index(fm_db_stmt *s, const char *name);

int fm_db_column_count(fm_db_stmt *s);
int fm_db_column_type(fm_db_stmt *s, int i);
const char *fm_db_column_name(fm_db_stmt *s, int i);
const unsigned char *fm_db_column_text(fm_db_stmt *s, int i);
const void *fm_db_column_blob(fm_db_stmt *s, int i);
int fm_db_column_bytes(fm_db_stmt *s, int i);
fm_db_int64 fm_db_column_int64(fm_db_stmt *s, int i);
int fm_db_column_int(fm_db_stmt *s, int i);
double fm_db_column_double(fm_db_stmt *s, int i);

/* sqlite3_exec without row callbacks: cb must be NULL. */
typedef int (*fm_db_callback)(void *, int, char **, char **);
int fm_db_exec(fm_db *db, const char *sql, fm_db_callback cb, void *arg, char **errmsg);
void fm_db_free(void *p);
int fm_db_changes(fm_db *db);
fm_db_int64 fm_db_last_insert_rowid(fm_db *db);
int fm_db_get_autocommit(fm_db *db);
const char *fm_db_errmsg(fm_db *db);
/* The fm error code that fits the last failure (UNAVAILABLE: server down). */
fm_code fm_db_errcode(fm_db *db);

/* ---- the statement helper (src/store/db_run.c) ----
 * What every table module used to repeat around one statement: prepare it
 * once per connection and keep it (keyed by the address of sql: pass a
 * string literal, never a buffer), bind its parameters by type, step its
 * rows into a callback, reset it.  On PostgreSQL a kept statement is
 * prepared on the server once (FM_DB_PREPARE_PERSISTENT).
 *
 * types: one letter per parameter ?1, ?2, ... taken from the arguments
 * after arg, in order:
 *   't'  const char *   text (NULL binds NULL); bound for this run only
 *   'i'  int64_t        integer
 *   'n'  int            integer
 *   'd'  double         real
 *   'T'  const char *, int   text of that many bytes (no NUL needed)
 *   'b'  const void *, int   a blob of that many bytes (NULL: empty)
 * row is called with the statement positioned on each row (read it with
 * fm_db_column_*; pointers stay valid until row returns); nonzero from row
 * stops the run.  row may be NULL (a write, or a read whose rows do not
 * matter).
 *
 * Returns FM_DB_DONE when every row was handed over, FM_DB_ROW when row
 * stopped it, or the engine's error code (fm_db_errmsg says why).  A run
 * from inside row (another statement, or the same one again) is safe: a
 * statement in use is never reset under its caller; a second use of it
 * prepares a copy for that run only. */
typedef int (*fm_db_row_fn)(fm_db_stmt *row, void *arg);
int fm_db_run(fm_db *db, const char *sql, fm_db_row_fn row, void *arg, const char *types, ...);
/* fm_db_run for a module's own varargs wrapper (its parameters in ap). */
int fm_db_runv(fm_db *db, const char *sql, fm_db_row_fn row, void *arg, const char *types,
               va_list ap);
/* fm_db_run with the parameters in an array, for a statement whose
 * parameter count is not known when the code is written (a multi-row
 * INSERT).  type is one of fm_db_run's letters; p and len carry 't', 'T'
 * and 'b', i carries 'i' and 'n', d carries 'd'. */
typedef struct fm_db_param {
    char type;
    const void *p;
    int len;
    int64_t i;
    double d;
} fm_db_param;
int fm_db_run_params(fm_db *db, const char *sql, fm_db_row_fn row, void *arg,
                     const fm_db_param *params, int n);
/* Work done once per connection (a table module's schema check): marked
 * reports whether key (an address in the caller, e.g. its DDL string) was
 * marked on this connection; mark records it.  A connection (re)opened
 * starts unmarked; a mark that cannot be kept is dropped, so the caller
 * does its work again. */
int fm_db_marked(fm_db *db, const void *key);
void fm_db_mark(fm_db *db, const void *key);
/* Row callbacks for the common shapes: column 0 into *(int64_t *)arg,
 * and column 0 as text into the fm_db_text_buf arg (truncated to fit;
 * found set), each stopping after the first row. */
int fm_db_row_int64(fm_db_stmt *row, void *arg);
/* A counting statement's first column (0 when it gives no row), or -1
 * when it fails: a caller that must fail closed tells the two apart. */
long long fm_db_count(fm_db *db, const char *sql, const char *types, ...);
typedef struct fm_db_text_buf {
    char *buf;
    size_t len;
    int found;
} fm_db_text_buf;
int fm_db_row_text(fm_db_stmt *row, void *arg);
/* The kept statement for sql from the same cache (the same key: the
 * address of a literal), reset and unbound, for a caller that binds and
 * steps it itself (fm_store_stmt; the audit append's statements).
 * Borrowed: do not finalize; the next fm_db_kept or fm_db_run of the same
 * sql resets it.  NULL when it cannot be prepared (fm_db_errmsg says why;
 * PostgreSQL may say so at the first step instead) or while a run of the
 * same sql is stepping it. */
fm_db_stmt *fm_db_kept(fm_db *db, const char *sql);
/* Finalizes the kept statements (fm_db_close does it). */
void fm_db_run_forget(fm_db *db);

/* SQLite only: the connection behind db (NULL for others), for the HTTP
 * service's fork guard (src/transport/http_workers.c). */
struct sqlite3 *fm_db_sqlite_handle(fm_db *db);
/* SQLite only: frames in the WAL after the last commit (0 for others). */
int fm_db_sqlite_wal_frames(const fm_db *db);
/* SQLite only: checkpoints the wal hook ran at commit time (past the
 * WAL's bound), on this connection. */
long fm_db_sqlite_inline_checkpoints(const fm_db *db);
/* While set, a checkpointer owns the WAL checkpoints of this process's
 * connections (the HTTP service): their commits checkpoint inline only
 * past a far higher bound (db_sqlite.c WAL_HELP_FRAMES), not at
 * WAL_HARD_FRAMES.  Process-wide: stdio and the CLI never set it. */
void fm_db_sqlite_checkpointer_owns(bool owns);
/* SQLite only: a PASSIVE checkpoint, or with truncate a TRUNCATE one that
 * gives up at once if a writer or an older reader is in the way.  Sets
 * the WAL's frames and those checkpointed (-1 both: not in WAL mode).
 * 0 done, 1 busy (the passive part done), -1 error or not SQLite. */
int fm_db_sqlite_checkpoint(fm_db *db, bool truncate, int *log_frames, int *done_frames);

/* For PostgreSQL: the statement rewritten (db_sql.c); out NUL-terminated.
 * names: the :name of each $n (NULL for ?), nparams: how many.  -1 when it
 * does not fit. */
#define FM_DB_MAX_PARAMS 64
int fm_db_sql_to_pg(const char *sql, char *out, size_t len, char names[][32], int *nparams);

#endif
