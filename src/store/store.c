/* The SQLite store.  WAL lets readers run beside one writer; every write
 * transaction is BEGIN IMMEDIATE so concurrent server processes queue on
 * the busy timeout instead of failing with SQLITE_BUSY mid-transaction. */
#include "fleetmcp/fm_store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FM_BUSY_TIMEOUT_MS 10000
/* SQLite's own autocheckpoint threshold, and the bound past which a
 * checkpoint no longer waits for an idle moment. */
#define WAL_IDLE_FRAMES 1000
#define WAL_HARD_FRAMES 8000

int64_t fm_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int fm_store_fail(fm_store *st, fm_err *err, const char *what)
{
    return fm_err_set(err, FM_ERR_IO, "store %s failed: %s (database %s)", what,
                      st->db ? sqlite3_errmsg(st->db) : "not open", st->path);
}

/* mkdir -p for the database's directory, so the XDG default just works. */
static int make_parent_dirs(const char *path, fm_err *err)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) return 0;
    *slash = '\0';
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(dir, 0700) && errno != EEXIST)
            return fm_err_set(err, FM_ERR_IO, "cannot create %s: %s; set --db or FLEETMCP_DB",
                              dir, strerror(errno));
        *p = '/';
    }
    if (mkdir(dir, 0700) && errno != EEXIST)
        return fm_err_set(err, FM_ERR_IO, "cannot create %s: %s; set --db or FLEETMCP_DB", dir,
                          strerror(errno));
    return 0;
}

static int exec_sql(fm_store *st, const char *sql, fm_err *err)
{
    char *msg = NULL;
    if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fm_err_set(err, FM_ERR_IO, "store: %s (database %s)", msg ? msg : "error", st->path);
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

/* Replaces SQLite's autocheckpoint (a wal hook turns it off): counts
 * frames, and checkpoints at once only past the hard bound. */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
    (void)db, (void)name; /* the store's one database */
    fm_store *st = arg;
    st->wal_frames = frames;
    if (frames >= WAL_HARD_FRAMES) fm_store_checkpoint(st);
    return SQLITE_OK;
}

bool fm_store_checkpoint_due(const fm_store *st)
{
    return st->db && st->wal_frames >= WAL_IDLE_FRAMES;
}

void fm_store_checkpoint(fm_store *st)
{
    /* PASSIVE: never waits for readers or writers of other processes. */
    if (st->db) sqlite3_wal_checkpoint_v2(st->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    st->wal_frames = 0;
}

/* Waits for another connection's write lock in short naps (50 us, doubling
 * to 1 ms) for up to FM_BUSY_TIMEOUT_MS.  SQLite's own busy timeout naps
 * 1, 2, 5 ... 100 ms: with several server processes writing an audit row
 * per call, a writer would sleep long after the lock was free, and those
 * naps were the slowest calls. */
static int busy_wait(void *arg, int count)
{
    (void)arg;
    int64_t *waited_us = &((fm_store *)arg)->busy_us;
    if (count == 0) *waited_us = 0;
    if (*waited_us >= (int64_t)FM_BUSY_TIMEOUT_MS * 1000) return 0;
    long us = count < 5 ? 50L << count : 1000;
    struct timespec ts = {0, us * 1000};
    nanosleep(&ts, NULL);
    *waited_us += us;
    return 1;
}

static const char core_ddl[] =
    "CREATE TABLE IF NOT EXISTS settings(key TEXT PRIMARY KEY, value TEXT NOT NULL,"
    " updated_ms INTEGER NOT NULL);";

/* A path that names a URL scheme ("postgresql://...") would otherwise
 * become a directory tree named after it under the working directory. */
static int refuse_url(const char *path, fm_err *err)
{
    size_t n = strspn(path, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-");
    if (n == 0 || strncmp(path + n, "://", 3)) return 0;
    char scheme[32];
    fm_clip(scheme, n + 1 < sizeof scheme ? n + 1 : sizeof scheme, path);
    if (!strcasecmp(scheme, "postgresql") || !strcasecmp(scheme, "postgres"))
        return fm_err_set(err, FM_ERR_NOT_CONFIGURED,
                          "the store %s:// is PostgreSQL, which is not supported yet: use a"
                          " SQLite file path (--db, FLEETMCP_DB or store.path)",
                          scheme);
    return fm_err_set(err, FM_ERR_INVALID,
                      "the store path starts with a URL scheme (%s://), which no store"
                      " supports: give a SQLite file path (--db, FLEETMCP_DB or store.path)",
                      scheme);
}

int fm_store_open(fm_store *st, const char *path, fm_err *err)
{
    memset(st, 0, sizeof *st);
    snprintf(st->path, sizeof st->path, "%s", path);
    if (refuse_url(path, err)) return -1;
    if (strcmp(path, ":memory:") && make_parent_dirs(path, err)) return -1;
    /* The store holds the audit log, approvals and local tickets: private
     * from the start (SQLite gives its -wal and -shm files the same
     * mode). */
    if (strcmp(path, ":memory:")) {
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd >= 0) close(fd);
    }
    if (sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        fm_store_fail(st, err, "open");
        fm_store_close(st);
        return -1;
    }
    sqlite3_busy_handler(st->db, busy_wait, st);
    /* NORMAL is durable across a process crash in WAL mode, which is the
     * failure that matters for kill -9 recovery; FULL would cost an fsync
     * per audited call. */
    /* A small page cache: the working set (recent audit rows, settings)
     * is tiny, and the RSS budget is 8 MB. */
    if (exec_sql(st, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                     " PRAGMA foreign_keys=ON; PRAGMA cache_size=-128;",
                 err) ||
        exec_sql(st,
                 "CREATE TABLE IF NOT EXISTS schema_migrations(subsystem TEXT PRIMARY KEY,"
                 " version INTEGER NOT NULL);",
                 err) ||
        fm_store_migrate(st, "core", 1, core_ddl, err)) {
        fm_store_close(st);
        return -1;
    }
    sqlite3_wal_hook(st->db, wal_hook, st);
    return 0;
}

sqlite3_stmt *fm_store_stmt(fm_store *st, const char *sql, fm_err *err)
{
    int free_slot = -1;
    for (int i = 0; i < FM_STORE_STMT_CACHE; i++) {
        if (st->stmt_sql[i] == sql) {
            sqlite3_reset(st->stmt[i]);
            sqlite3_clear_bindings(st->stmt[i]);
            return st->stmt[i];
        }
        if (!st->stmt_sql[i] && free_slot < 0) free_slot = i;
    }
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK) {
        fm_store_fail(st, err, "prepare");
        return NULL;
    }
    if (free_slot >= 0) {
        st->stmt_sql[free_slot] = sql;
        st->stmt[free_slot] = s;
    } else {
        /* Cache full (a bug: too many hot statements); stay correct by
         * replacing the last slot. */
        sqlite3_finalize(st->stmt[FM_STORE_STMT_CACHE - 1]);
        st->stmt_sql[FM_STORE_STMT_CACHE - 1] = sql;
        st->stmt[FM_STORE_STMT_CACHE - 1] = s;
    }
    return s;
}

void fm_store_close(fm_store *st)
{
    for (int i = 0; i < FM_STORE_STMT_CACHE; i++) {
        if (st->stmt[i]) sqlite3_finalize(st->stmt[i]);
        st->stmt[i] = NULL;
        st->stmt_sql[i] = NULL;
    }
    if (st->db) sqlite3_close_v2(st->db);
    st->db = NULL;
    if (st->anchor_map) munmap(st->anchor_map, st->anchor_len);
    st->anchor_map = NULL;
}

/* Prepared once: every audited call runs both. */
static const char begin_sql[] = "BEGIN IMMEDIATE";
static const char commit_sql[] = "COMMIT";

static int step_cached(fm_store *st, const char *sql, const char *what, fm_err *err)
{
    sqlite3_stmt *s = fm_store_stmt(st, sql, err);
    if (!s) return -1;
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc == SQLITE_DONE) return 0;
    fm_store_fail(st, err, what);
    return -1;
}

int fm_store_begin(fm_store *st, fm_err *err)
{
    return step_cached(st, begin_sql, "begin", err);
}

int fm_store_commit(fm_store *st, fm_err *err)
{
    if (step_cached(st, commit_sql, "commit", err)) {
        fm_store_rollback(st);
        return -1;
    }
    return 0;
}

void fm_store_rollback(fm_store *st)
{
    if (st->db && !sqlite3_get_autocommit(st->db)) sqlite3_exec(st->db, "ROLLBACK", 0, 0, 0);
}

static int migration_version(fm_store *st, const char *subsystem)
{
    sqlite3_stmt *s = NULL;
    int v = 0;
    if (sqlite3_prepare_v2(st->db, "SELECT version FROM schema_migrations WHERE subsystem=?", -1,
                           &s, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(s, 1, subsystem, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW) v = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    return v;
}

int fm_store_migrate(fm_store *st, const char *subsystem, int version, const char *ddl,
                     fm_err *err)
{
    /* Cheap read first: the common case at start-up is "already done". */
    int have = migration_version(st, subsystem);
    if (have >= version) return 0;
    if (fm_store_begin(st, err)) return -1;
    have = migration_version(st, subsystem);
    if (have < version) {
        if (exec_sql(st, ddl, err)) goto fail;
        sqlite3_stmt *s = NULL;
        if (sqlite3_prepare_v2(st->db,
                               "INSERT INTO schema_migrations(subsystem,version) VALUES(?,?)"
                               " ON CONFLICT(subsystem) DO UPDATE SET version=excluded.version",
                               -1, &s, NULL) != SQLITE_OK) {
            fm_store_fail(st, err, "migrate");
            goto fail;
        }
        sqlite3_bind_text(s, 1, subsystem, -1, SQLITE_STATIC);
        sqlite3_bind_int(s, 2, version);
        int rc = sqlite3_step(s);
        sqlite3_finalize(s);
        if (rc != SQLITE_DONE) {
            fm_store_fail(st, err, "migrate");
            goto fail;
        }
    }
    return fm_store_commit(st, err);
fail:
    fm_store_rollback(st);
    return -1;
}

static const char setting_get_sql[] = "SELECT value FROM settings WHERE key=?";

int fm_store_setting_get(fm_store *st, const char *key, char *buf, size_t len)
{
    int found = -1;
    if (len) buf[0] = '\0';
    sqlite3_stmt *s = fm_store_stmt(st, setting_get_sql, NULL);
    if (!s) return -2;
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        const unsigned char *v = sqlite3_column_text(s, 0);
        snprintf(buf, len, "%s", v ? (const char *)v : "");
        found = 0;
    } else if (rc != SQLITE_DONE) {
        found = -2;
    }
    sqlite3_reset(s);
    return found;
}

int fm_store_setting_set(fm_store *st, const char *key, const char *value, fm_err *err)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(st->db,
                           "INSERT INTO settings(key,value,updated_ms) VALUES(?,?,?)"
                           " ON CONFLICT(key) DO UPDATE SET value=excluded.value,"
                           " updated_ms=excluded.updated_ms",
                           -1, &s, NULL) != SQLITE_OK)
        return fm_store_fail(st, err, "setting");
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, value, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, fm_now_ms());
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? 0 : fm_store_fail(st, err, "setting");
}
