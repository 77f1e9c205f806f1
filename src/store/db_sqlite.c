/* fm_db on SQLite: each call forwards to the sqlite3 call of the same
 * name.  WAL, a busy timeout and a wal hook that defers checkpoints to
 * idle time (fm_store_checkpoint) are set here, at open. */
#include "fleetmcp/fm_db.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BUSY_TIMEOUT_MS 10000
/* SQLite's own autocheckpoint threshold, and the bound past which a
 * checkpoint no longer waits for an idle moment. */
#define WAL_IDLE_FRAMES 1000
#define WAL_HARD_FRAMES 8000

typedef struct lite_db {
    fm_db base;
    sqlite3 *db;
    int wal_frames; /* frames in the WAL after the last commit */
    long waited_us; /* for the write lock, in this wait (busy_wait) */
} lite_db;

typedef struct lite_stmt {
    fm_db_stmt base;
    sqlite3_stmt *s;
} lite_stmt;

#define DB(d) (((lite_db *)(d))->db)
#define ST(x) (((lite_stmt *)(x))->s)

static void checkpoint(fm_db *d)
{
    lite_db *l = (lite_db *)d;
    /* PASSIVE: never waits for readers or writers of other processes. */
    sqlite3_wal_checkpoint_v2(l->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    l->wal_frames = 0;
}

static int checkpoint_due(fm_db *d)
{
    return ((lite_db *)d)->wal_frames >= WAL_IDLE_FRAMES;
}

/* Replaces SQLite's autocheckpoint (a wal hook turns it off): counts
 * frames, and checkpoints at once only past the hard bound. */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
    (void)db, (void)name;
    lite_db *l = arg;
    l->wal_frames = frames;
    if (frames >= WAL_HARD_FRAMES) checkpoint(&l->base);
    return SQLITE_OK;
}

/* Waits for another connection's write lock in short naps (50 us, doubling
 * to 1 ms) for up to BUSY_TIMEOUT_MS.  SQLite's own busy timeout naps
 * 1, 2, 5 ... 100 ms: with several server processes writing an audit row
 * per call, a writer would sleep long after the lock was free, and those
 * naps were the slowest calls. */
static int busy_wait(void *arg, int count)
{
    lite_db *l = arg;
    if (count == 0) l->waited_us = 0;
    if (l->waited_us >= (long)BUSY_TIMEOUT_MS * 1000) return 0;
    long us = count < 5 ? 50L << count : 1000;
    struct timespec ts = {0, us * 1000};
    nanosleep(&ts, NULL);
    l->waited_us += us;
    return 1;
}

/* Before SQLite initialises: no bulk page-cache allocation per
 * connection.  By default every connection mallocs room for 20 pages at
 * once and writes a header into each, touching ~88 KB (21 page faults)
 * at every start, while a start reads a handful of pages; pages now come
 * one malloc each as they are read.  If something initialised SQLite
 * first, sqlite3_config refuses (SQLITE_MISUSE) and the default stays:
 * slower to start, not wrong. */
static void configure_once(void)
{
    (void)sqlite3_config(SQLITE_CONFIG_PAGECACHE, NULL, 0, 0);
}

/* file:PATH?immutable=1 with PATH percent-encoded where a URI needs it;
 * false when it does not fit. */
static bool uri_of(const char *path, char *out, size_t len)
{
    size_t n = (size_t)snprintf(out, len, "file:");
    for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
        if (n + 4 >= len) return false;
        if (*p == '%' || *p == '?' || *p == '#' || *p < 0x21 || *p > 0x7e)
            n += (size_t)snprintf(out + n, len - n, "%%%02X", *p);
        else
            out[n++] = (char)*p;
    }
    return (size_t)snprintf(out + n, len - n, "?immutable=1") < len - n;
}

static int open_flags(const char *path, bool readonly, fm_db **out, fm_err *err)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, configure_once);
    lite_db *l = calloc(1, sizeof *l);
    if (!l) return fm_err_set(err, FM_ERR_NOMEM, "store: out of memory"), -1;
    l->base.ops = &fm_db_sqlite_ops;
    int flags = readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    /* Read-only without a -wal file beside it: every commit is in the file
     * itself, and opening it as immutable reads it without creating the
     * -wal and -shm files a WAL-mode reader would otherwise leave. */
    char uri[1200], wal[600];
    snprintf(wal, sizeof wal, "%s-wal", path);
    const char *target = path;
    if (readonly && access(wal, F_OK) && uri_of(path, uri, sizeof uri)) {
        target = uri;
        flags |= SQLITE_OPEN_URI;
    }
    if (sqlite3_open_v2(target, &l->db, flags, NULL) != SQLITE_OK) {
        fm_err_set(err, FM_ERR_IO, "store open failed: %s (database %s)",
                   l->db ? sqlite3_errmsg(l->db) : "out of memory", path);
        sqlite3_close_v2(l->db);
        free(l);
        return -1;
    }
    sqlite3_busy_handler(l->db, busy_wait, l);
    /* NORMAL is durable across a process crash in WAL mode, which is the
     * failure that matters for kill -9 recovery; FULL would cost an fsync
     * per audited call.  A small page cache: the working set (recent
     * audit rows, settings) is tiny, and the RSS budget is 8 MB. */
    char *msg = NULL;
    /* Read-only: journal_mode=WAL would write the header of a file that
     * is not in WAL mode yet; query_only refuses any write besides. */
    if (sqlite3_exec(l->db,
                     readonly ? "PRAGMA query_only=ON;"
                              : "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                                " PRAGMA foreign_keys=ON; PRAGMA cache_size=-128;",
                     NULL, NULL, &msg) != SQLITE_OK) {
        fm_err_set(err, FM_ERR_IO, "store: %s (database %s)", msg ? msg : "error", path);
        sqlite3_free(msg);
        sqlite3_close_v2(l->db);
        free(l);
        return -1;
    }
    sqlite3_wal_hook(l->db, wal_hook, l);
    *out = &l->base;
    return 0;
}

static int l_open(const char *path, fm_db **out, fm_err *err)
{
    return open_flags(path, false, out, err);
}

static int l_open_readonly(const char *path, fm_db **out, fm_err *err)
{
    return open_flags(path, true, out, err);
}

static void l_close(fm_db *d)
{
    sqlite3_close_v2(DB(d));
    free(d);
}

static int l_prepare(fm_db *d, const char *sql, fm_db_stmt **out)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v3(DB(d), sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL);
    if (rc != SQLITE_OK) return rc;
    lite_stmt *w = malloc(sizeof *w);
    if (!w) {
        sqlite3_finalize(s);
        return SQLITE_NOMEM;
    }
    w->base.ops = &fm_db_sqlite_ops;
    w->base.db = d;
    w->s = s;
    *out = &w->base;
    return SQLITE_OK;
}

static int l_step(fm_db_stmt *s) { return sqlite3_step(ST(s)); }
static int l_reset(fm_db_stmt *s) { return sqlite3_reset(ST(s)); }
static int l_clear(fm_db_stmt *s) { return sqlite3_clear_bindings(ST(s)); }

static int l_finalize(fm_db_stmt *s)
{
    int rc = sqlite3_finalize(ST(s));
    free(s);
    return rc;
}

static int l_bind(fm_db_stmt *s, int i, int type, const void *v, int n, fm_db_int64 iv, double dv)
{
    switch (type) {
    case FM_DB_TEXT: return sqlite3_bind_text(ST(s), i, v, n, SQLITE_TRANSIENT);
    case FM_DB_BLOB: return sqlite3_bind_blob(ST(s), i, v, n, SQLITE_TRANSIENT);
    case FM_DB_INTEGER: return sqlite3_bind_int64(ST(s), i, iv);
    case FM_DB_FLOAT: return sqlite3_bind_double(ST(s), i, dv);
    default: return sqlite3_bind_null(ST(s), i);
    }
}

static int l_nparams(fm_db_stmt *s) { return sqlite3_bind_parameter_count(ST(s)); }
static int l_pindex(fm_db_stmt *s, const char *n) { return sqlite3_bind_parameter_index(ST(s), n); }
static int l_ncols(fm_db_stmt *s) { return sqlite3_column_count(ST(s)); }
static int l_ctype(fm_db_stmt *s, int i) { return sqlite3_column_type(ST(s), i); }
static const char *l_cname(fm_db_stmt *s, int i) { return sqlite3_column_name(ST(s), i); }
static const unsigned char *l_ctext(fm_db_stmt *s, int i) { return sqlite3_column_text(ST(s), i); }
static const void *l_cblob(fm_db_stmt *s, int i) { return sqlite3_column_blob(ST(s), i); }
static int l_cbytes(fm_db_stmt *s, int i) { return sqlite3_column_bytes(ST(s), i); }
static fm_db_int64 l_cint64(fm_db_stmt *s, int i) { return sqlite3_column_int64(ST(s), i); }
static double l_cdouble(fm_db_stmt *s, int i) { return sqlite3_column_double(ST(s), i); }

static int l_exec(fm_db *d, const char *sql, char **errmsg)
{
    char *m = NULL;
    int rc = sqlite3_exec(DB(d), sql, NULL, NULL, errmsg ? &m : NULL);
    if (errmsg && m) *errmsg = strdup(m); /* freed with fm_db_free (free) */
    sqlite3_free(m);
    return rc;
}

static int l_changes(fm_db *d) { return sqlite3_changes(DB(d)); }
static fm_db_int64 l_lastid(fm_db *d) { return sqlite3_last_insert_rowid(DB(d)); }
static int l_autocommit(fm_db *d) { return sqlite3_get_autocommit(DB(d)); }
static const char *l_errmsg(fm_db *d) { return sqlite3_errmsg(DB(d)); }
static fm_code l_errcode(fm_db *d) { return FM_ERR_IO; }

const fm_db_ops fm_db_sqlite_ops = {
    .name = "sqlite",
    .open = l_open,
    .open_readonly = l_open_readonly,
    .close = l_close,
    .prepare = l_prepare,
    .step = l_step,
    .reset = l_reset,
    .clear_bindings = l_clear,
    .finalize = l_finalize,
    .bind = l_bind,
    .bind_parameter_count = l_nparams,
    .bind_parameter_index = l_pindex,
    .column_count = l_ncols,
    .column_type = l_ctype,
    .column_name = l_cname,
    .column_text = l_ctext,
    .column_blob = l_cblob,
    .column_bytes = l_cbytes,
    .column_int64 = l_cint64,
    .column_double = l_cdouble,
    .exec = l_exec,
    .changes = l_changes,
    .last_insert_rowid = l_lastid,
    .get_autocommit = l_autocommit,
    .errmsg = l_errmsg,
    .errcode = l_errcode,
    .maintenance_due = checkpoint_due,
    .maintenance = checkpoint,
};

int fm_db_sqlite_wal_frames(const fm_db *d)
{
    return d && d->ops == &fm_db_sqlite_ops ? ((const lite_db *)d)->wal_frames : 0;
}
