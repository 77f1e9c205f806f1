/* The store: one fm_db connection (SQLite file or PostgreSQL URL).  Every
 * write transaction is BEGIN IMMEDIATE so concurrent server processes
 * queue on the busy timeout (SQLite) or the write lock (PostgreSQL, see
 * db_pg.c) instead of failing mid-transaction. */
#include "fleetmcp/fm_store.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fleetmcp/fm_util.h"

int64_t fm_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t fm_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t fm_store_now_ms(fm_store *st)
{
    int64_t now = fm_now_ms();
    if (!st || !st->db || strcmp(st->db->ops->name, "postgresql")) return now;
    int64_t mono = fm_mono_us();
    if (st->clock_read_us && mono - st->clock_read_us < 60 * 1000000LL)
        return now + st->clock_offset_ms;
    /* Read once a minute, failed or not: an unreachable server is not
     * asked on every call. The midpoint of the round trip is when the
     * server read its clock. */
    st->clock_read_us = mono;
    int64_t srv = 0;
    if (fm_db_run(st->db, "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
                  fm_db_row_int64, &srv, NULL) == FM_DB_ROW)
        st->clock_offset_ms = srv - (now + fm_now_ms()) / 2;
    return fm_now_ms() + st->clock_offset_ms;
}

void fm_host_id(char *out, size_t len)
{
    const char *id = getenv("FLEETMCP_HOST_ID");
    if (id && *id)
        snprintf(out, len, "%s", id);
    else if (len < 2 || gethostname(out, len - 1))
        snprintf(out, len, "?");
    else
        out[len - 1] = '\0'; /* gethostname need not terminate a cut name */
}

int fm_store_fail(fm_store *st, fm_err *err, const char *what)
{
    return fm_err_set(err, st->db ? fm_db_errcode(st->db) : FM_ERR_IO,
                      "store %s failed: %s (database %s)", what,
                      st->db ? fm_db_errmsg(st->db) : "not open", st->path);
}

int fm_store_row_count_by(fm_db_stmt *row, void *arg)
{
    const unsigned char *key = fm_db_column_text(row, 0);
    if (key) json_object_set_new(arg, (const char *)key, json_integer(fm_db_column_int64(row, 1)));
    return 0;
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
            return fm_err_set(err, FM_ERR_IO, "cannot create %s: %s; set --db or FLEETMCP_DB", dir,
                              strerror(errno));
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
    if (fm_db_exec(st->db, sql, NULL, NULL, &msg) != FM_DB_OK) {
        fm_err_set(err, fm_db_errcode(st->db), "store: %s (database %s)", msg ? msg : "error",
                   st->path);
        fm_db_free(msg);
        return -1;
    }
    return 0;
}

bool fm_store_checkpoint_due(const fm_store *st)
{
    return st->db && st->db->ops->maintenance_due && st->db->ops->maintenance_due(st->db);
}

void fm_store_checkpoint(fm_store *st)
{
    if (st->db && st->db->ops->maintenance) st->db->ops->maintenance(st->db);
}

static const char core_ddl[] =
    "CREATE TABLE IF NOT EXISTS settings(key TEXT PRIMARY KEY, value TEXT NOT NULL,"
    " updated_ms INTEGER NOT NULL);";

/* core v2: one row per PostgreSQL connection, which the commit
 * pipeline's flush updated before it became a logical decoding message
 * (db_pg.c, FLUSH_SQL); kept for the servers of earlier builds that
 * share the store; unused on SQLite. */
static const char core_v2_ddl[] =
    "CREATE TABLE IF NOT EXISTS store_flush(backend INTEGER PRIMARY KEY, n INTEGER NOT NULL);";

/* core v3: named lock rows (fm_store_lock_row), PostgreSQL only in use;
 * one description for both stores. */
static const char core_v3_ddl[] =
    "CREATE TABLE IF NOT EXISTS store_locks(name TEXT PRIMARY KEY, n INTEGER NOT NULL);";

/* A path that names another URL scheme would otherwise become a
 * directory tree named after it under the working directory. */
static int refuse_url(const char *path, fm_err *err)
{
    size_t n = strspn(path, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-");
    if (n == 0 || strncmp(path + n, "://", 3) || fm_db_is_pg_url(path)) return 0;
    char scheme[32];
    fm_clip(scheme, n + 1 < sizeof scheme ? n + 1 : sizeof scheme, path);
    return fm_err_set(err, FM_ERR_INVALID,
                      "the store path starts with a URL scheme (%s://), which no store"
                      " supports: give a SQLite file path or a postgresql:// URL (--db,"
                      " FLEETMCP_DB, store.path or store.url)",
                      scheme);
}

/* Where a PostgreSQL store's audit key and anchor live on this host
 * (st->side; the directory is not made here). */
static void side_name(fm_store *st)
{
    char dir[380];
    const char *d = getenv("FLEETMCP_AUDIT_DIR"), *xdg = getenv("XDG_STATE_HOME"),
               *home = getenv("HOME");
    if (d && *d)
        snprintf(dir, sizeof dir, "%s", d);
    else if (xdg && *xdg)
        snprintf(dir, sizeof dir, "%s/fleetmcp", xdg);
    else
        snprintf(dir, sizeof dir, "%s/.local/state/fleetmcp", home && *home ? home : ".");
    char name[128];
    size_t n = 0;
    /* One key per database: the URL's characters, filename-safe. */
    for (const char *p = st->path; *p && n + 1 < sizeof name; p++)
        name[n++] = (isalnum((unsigned char)*p) || *p == '.' || *p == '-') ? *p : '_';
    name[n] = '\0';
    snprintf(st->side, sizeof st->side, "%s/%s", dir, name);
}

static int side_dir(fm_store *st, fm_err *err)
{
    side_name(st);
    return make_parent_dirs(st->side, err);
}

/* The core tables, which every store has before its subsystems' own. */
static int core_migrate(fm_store *st, fm_err *err)
{
    return fm_store_migrate(st, "core", 1, core_ddl, err) ||
                   fm_store_migrate(st, "core", 2, core_v2_ddl, err) ||
                   fm_store_migrate(st, "core", 3, core_v3_ddl, err)
               ? -1
               : 0;
}

/* Creates path private (0600) when it is missing; 0, or -1 with errno
 * when it cannot be created or is not readable and writable.  An existing
 * file is never opened: closing any descriptor of a file drops every
 * POSIX lock this process holds on it, SQLite's included, so a store
 * opened beside another connection of this process (the HTTP service's
 * serving threads and checkpointer) took that connection's lock away, and
 * another process closing its last connection then deleted the WAL and
 * its index under it (writes from then on went to a deleted file). */
static int create_private(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) return close(fd);
    return errno == EEXIST ? access(path, R_OK | W_OK) : -1;
}

int fm_store_open(fm_store *st, const char *path, fm_err *err)
{
    memset(st, 0, sizeof *st);
    st->n_migrated = -1;
    bool pg = fm_db_is_pg_url(path);
    /* A URL may carry a password: only the redacted form is kept (it
     * names the store in messages and logs). */
    fm_db_redact(path, st->path, sizeof st->path);
    if (refuse_url(path, err)) return -1;
    if (!pg && strcmp(path, ":memory:") && make_parent_dirs(path, err)) return -1;
    /* The store holds the audit log, approvals and local tickets: private
     * from the start (SQLite gives its -wal and -shm files the same
     * mode). */
    if (!pg && strcmp(path, ":memory:")) create_private(path);
    snprintf(st->side, sizeof st->side, "%s", path);
    /* The side directory only once the server answered: an unreachable
     * URL leaves nothing behind. */
    if (fm_db_open_target(path, &st->db, err) || (pg && side_dir(st, err))) {
        fm_store_close(st);
        return -1;
    }
    /* On PostgreSQL two processes creating one table at once collide in
     * the catalog: the write lock orders them (SQLite orders DDL itself). */
    if ((pg && fm_store_begin(st, err)) ||
        exec_sql(st,
                 "CREATE TABLE IF NOT EXISTS schema_migrations(subsystem TEXT PRIMARY KEY,"
                 " version INTEGER NOT NULL);",
                 err) ||
        (pg && fm_store_commit(st, err)) || core_migrate(st, err)) {
        fm_store_close(st);
        return -1;
    }
    return 0;
}

int fm_store_creatable(const char *path, char *dir, size_t len)
{
    snprintf(dir, len, "%s", path);
    for (;;) {
        char *slash = strrchr(dir, '/');
        if (!slash)
            snprintf(dir, len, ".");
        else if (slash == dir)
            dir[1] = '\0'; /* "/" */
        else
            *slash = '\0';
        struct stat sb;
        if (!stat(dir, &sb)) {
            if (!S_ISDIR(sb.st_mode)) return ENOTDIR;
            return access(dir, W_OK | X_OK) ? errno : 0;
        }
        if (errno != ENOENT) return errno;
        if (!strcmp(dir, ".") || !strcmp(dir, "/")) return ENOENT;
    }
}

static void say(json_t *list, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(json_t *list, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    /* One line each (libpq's messages span lines). */
    for (char *p = buf; *p; p++)
        if (*p == '\n' || *p == '\t' || *p == '\r') *p = ' ';
    json_array_append_new(list, json_string(buf));
}

/* SQLite's half of fm_store_open_probe: what fm_store_check and the open
 * would trip over, found without creating anything. */
static int probe_sqlite_file(const char *path, json_t *problems, json_t *notes)
{
    char dir[512];
    struct stat sb;
    if (stat(path, &sb)) {
        bool absent = errno == ENOENT;
        int e = absent ? fm_store_creatable(path, dir, sizeof dir) : errno;
        if (e) {
            say(problems,
                "store %s: does not exist and cannot be created (%s: %s): create that"
                " directory for the server's user or set store.path (or --db, FLEETMCP_DB)"
                " elsewhere",
                path, absent ? dir : path, strerror(e));
            return -1;
        }
        say(notes, "store %s: does not exist yet; the first message creates it", path);
        return 1;
    }
    if (S_ISDIR(sb.st_mode)) {
        say(problems, "store %s: is a directory: name a file in it (store.path, --db)", path);
        return -1;
    }
    if (access(path, R_OK | W_OK)) {
        say(problems,
            "store %s: cannot be read and written by this user (%s): the server opens it"
            " read-write; fix its owner or mode",
            path, strerror(errno));
        return -1;
    }
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    if (access(dir, W_OK | X_OK)) {
        say(problems,
            "store %s: its directory %s is not writable (%s): SQLite keeps its -wal and -shm"
            " files there; fix its permissions or set --db or FLEETMCP_DB",
            path, dir, strerror(errno));
        return -1;
    }
    return 0;
}

/* A statement's first column as an integer; -1 when it fails. */
static long long probe_int(fm_store *st, const char *sql)
{
    int64_t v = -1;
    return fm_db_run(st->db, sql, fm_db_row_int64, &v, NULL) == FM_DB_ROW ? v : -1;
}

int fm_store_open_probe(fm_store *st, const char *path, json_t *problems, json_t *notes)
{
    memset(st, 0, sizeof *st);
    st->n_migrated = -1;
    st->probe = true;
    bool pg = fm_db_is_pg_url(path);
    fm_db_redact(path, st->path, sizeof st->path);
    fm_err err = {0};
    if (refuse_url(path, &err)) {
        say(problems, "store: %s", err.text);
        return -1;
    }
    if (!strcmp(path, ":memory:")) {
        say(notes, "store :memory:: in memory, nothing is kept across restarts");
        return 1;
    }
    if (!pg) {
        int rc = probe_sqlite_file(path, problems, notes);
        if (rc) return rc;
        snprintf(st->side, sizeof st->side, "%s", path);
    }
    if (fm_db_open_readonly(path, &st->db, &err)) {
        say(problems, "store %s: %s", st->path, err.text);
        return -1;
    }
    if (pg) {
        side_name(st);
        if (probe_int(st, "SELECT CASE WHEN pg_is_in_recovery() THEN 1 ELSE 0 END") == 1) {
            say(problems, "store %s: is a standby (read-only): point store.url at the primary",
                st->path);
            fm_store_close(st);
            return -1;
        }
    }
    /* The first read shows a file that is not a database, and a store
     * that has no tables yet: the engine's message decides (on PostgreSQL
     * the failed Parse's own, db_pg.c's pipeline). */
    if (probe_int(st, "SELECT count(*) FROM schema_migrations") < 0) {
        const char *m = fm_db_errmsg(st->db);
        if (strstr(m, "no such table") || strstr(m, "does not exist")) {
            say(notes, "store %s: has no fleetmcp tables yet; the first message creates them",
                st->path);
        } else {
            say(problems,
                "store %s: cannot be read as a fleetmcp store: %s; point store.path or"
                " store.url (or --db, FLEETMCP_DB) at the store, or move this file away",
                st->path, m);
            fm_store_close(st);
            return -1;
        }
    }
    fm_err cerr = {0};
    core_migrate(st, &cerr); /* in probe mode: notes the versions */
    return 0;
}

/* PostgreSQL: every call writes (the audit row at least): a table the
 * role may only read fails the first call, not the start. */
static void probe_pg_grants(fm_store *st, json_t *problems)
{
    if (!st->db || st->db->ops != &fm_db_pg_ops) return;
    /* has_table_privilege with a list is true when any one is held. */
    long long n = probe_int(st, "SELECT count(*) FROM (SELECT format('%I.%I', table_schema,"
                                " table_name) AS t FROM information_schema.tables WHERE"
                                " table_schema = current_schema()) x WHERE NOT"
                                " (has_table_privilege(x.t, 'SELECT') AND"
                                " has_table_privilege(x.t, 'INSERT') AND"
                                " has_table_privilege(x.t, 'UPDATE') AND"
                                " has_table_privilege(x.t, 'DELETE'))");
    if (n > 0)
        say(problems,
            "store %s: this role may not read and write %lld of the store's tables: GRANT"
            " SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA to it",
            st->path, n);
}

void fm_store_probe_versions(fm_store *st, json_t *problems, json_t *notes)
{
    probe_pg_grants(st, problems);
    char due[512] = "";
    size_t used = 0;
    bool fresh = true, any_due = false;
    for (int i = 0; i < st->n_wanted; i++)
        fresh = fresh && !st->wanted[i].have;
    for (int i = 0; i < st->n_wanted; i++) {
        int have = st->wanted[i].have, want = st->wanted[i].want;
        const char *sub = st->wanted[i].subsystem;
        any_due = any_due || have < want;
        if (have > want)
            say(problems,
                "store %s: %s is at schema version %d, newer than this fleetmcp knows (%d): a"
                " newer fleetmcp migrated it; run that version (or restore a backup made"
                " before the upgrade)",
                st->path, sub, have, want);
        else if (have < want && used < sizeof due)
            used += (size_t)snprintf(due + used, sizeof due - used, "%s%s v%d->v%d",
                                     used ? ", " : "", sub, have, want);
    }
    /* A store without tables: "creates them" said it all. */
    if (used && !fresh) say(notes, "store %s: the first message migrates %s", st->path, due);
    /* PostgreSQL: migrating creates tables, which the role may not do. */
    if (any_due && st->db && st->db->ops == &fm_db_pg_ops &&
        probe_int(st, "SELECT CASE WHEN has_schema_privilege(current_schema(), 'CREATE')"
                      " THEN 1 ELSE 0 END") == 0)
        say(problems,
            "store %s: migrations are due but this role may not create tables in its schema:"
            " GRANT CREATE ON SCHEMA to it, or run this fleetmcp once as the owner",
            st->path);
}

int fm_store_check(const char *path, fm_err *err)
{
    if (fm_db_is_pg_url(path) || !strcmp(path, ":memory:")) return 0;
    if (refuse_url(path, err) || make_parent_dirs(path, err)) return -1;
    /* As fm_store_open: created private, and proven writable now rather
     * than at the first call. */
    if (create_private(path))
        return fm_err_set(err, FM_ERR_IO,
                          "cannot open the store %s for writing: %s; fix its permissions or"
                          " set --db or FLEETMCP_DB",
                          path, strerror(errno));
    /* SQLite creates DB-wal and DB-shm beside it. */
    char dir[512];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0'; /* "/" */
    else
        *slash = '\0';
    if (access(dir, W_OK | X_OK))
        return fm_err_set(err, FM_ERR_IO,
                          "the store's directory %s is not writable (%s): SQLite keeps its"
                          " -wal and -shm files there; fix its permissions or set --db or"
                          " FLEETMCP_DB",
                          dir, strerror(errno));
    return 1;
}

/* fm_db_run's cache, one per connection: a statement is prepared once
 * whichever of the two a module calls. */
fm_db_stmt *fm_store_stmt(fm_store *st, const char *sql, fm_err *err)
{
    fm_db_stmt *s = fm_db_kept(st->db, sql);
    if (!s) fm_store_fail(st, err, "prepare");
    return s;
}

static void memo_clear(fm_store *st);

void fm_store_close(fm_store *st)
{
    const char *stats = getenv("FLEETMCP_AUDIT_STATS");
    if (stats && *stats && st->audit_appends > 0)
        fm_log("debug",
               "audit: %lld appends, %lld inserts lost to another writer's row"
               " (%.3f extra round trips per append; %lld appends lost their first guess);"
               " %lld rows linked for other appenders in %lld batches;"
               " us per append waiting for the turn or a queued row %.1f;"
               " %lld commits of %.1f us, %lld flushes of %.1f us",
               st->audit_appends, st->audit_lost,
               (double)st->audit_lost / (double)st->audit_appends, st->audit_first_lost,
               st->audit_linked_others, st->audit_batches,
               (double)st->audit_take_us / (double)st->audit_appends, st->audit_commits,
               (double)st->audit_commit_us / (double)(st->audit_commits ? st->audit_commits : 1),
               st->audit_flushes,
               (double)st->audit_flush_us / (double)(st->audit_flushes ? st->audit_flushes : 1));
    memo_clear(st);
    free(st->batch.memo);
    st->batch.memo = NULL;
    if (st->batch.open) st->batch.ended(st, false); /* rows nobody committed: dropped */
    st->batch.open = false;
    if (st->db) fm_db_close_v2(st->db);
    st->db = NULL;
    if (st->anchor_map) munmap(st->anchor_map, st->anchor_len);
    st->anchor_map = NULL;
    if (st->audit_turn) munmap(st->audit_turn, st->audit_turn_len);
    st->audit_turn = NULL;
    fm_hmac_key_free(st->audit_mac);
    st->audit_mac = NULL;
    free(st->audit_emergency_seen);
    st->audit_emergency_seen = NULL;
    free(st->emergency_seen_text);
    st->emergency_seen_text = NULL;
}

/* Prepared once: every audited call runs both. */
static const char begin_sql[] = "BEGIN IMMEDIATE";
static const char commit_sql[] = "COMMIT";

static int step_cached(fm_store *st, const char *sql, const char *what, fm_err *err)
{
    fm_db_stmt *s = fm_store_stmt(st, sql, err);
    if (!s) return -1;
    int rc = fm_db_step(s);
    fm_db_reset(s);
    if (rc == FM_DB_DONE) return 0;
    fm_store_fail(st, err, what);
    return -1;
}

int fm_store_begin(fm_store *st, fm_err *err)
{
    memo_clear(st); /* a writer may change settings */
    if (st->batch.open && !st->batch.armed) {
        /* A writer outside the batch: the batch goes first, whole. */
        fm_err e = {0};
        fm_store_batch_commit(st, &e);
    }
    return step_cached(st, begin_sql, "begin", err);
}

int fm_store_begin_rows(fm_store *st, fm_err *err)
{
    if (st->db->ops != &fm_db_pg_ops) return fm_store_begin(st, err);
    /* Not cached: these are the rare mutation paths, and a statement
     * costs nothing to prepare on PostgreSQL (the rewrite is local). */
    return exec_sql(st, "BEGIN", err);
}

/* An upsert locks the row whether it inserts or updates it; two first
 * takers of a new name queue on the primary key the same way. */
static const char lock_row_sql[] = "INSERT INTO store_locks(name,n) VALUES(?,1)"
                                   " ON CONFLICT(name) DO UPDATE SET n=store_locks.n+1";

int fm_store_lock_row(fm_store *st, const char *name, fm_err *err)
{
    if (st->db->ops != &fm_db_pg_ops) return 0;
    if (fm_db_run(st->db, lock_row_sql, NULL, NULL, "t", name) == FM_DB_DONE) return 0;
    char what[160];
    snprintf(what, sizeof what, "lock %.100s (another server holds it; retry the call)", name);
    return fm_store_fail(st, err, what);
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
    if (st->db && !fm_db_get_autocommit(st->db)) fm_db_exec(st->db, "ROLLBACK", 0, 0, 0);
}

int fm_store_batch_arm(fm_store *st)
{
    if (!st->db || st->db->ops == &fm_db_pg_ops) return -1;
    st->batch.armed = true;
    return 0;
}

int64_t fm_store_batch_age_us(const fm_store *st)
{
    return st->batch.open ? fm_mono_us() - st->batch.opened_us : 0;
}

void fm_store_batch_disarm(fm_store *st)
{
    st->batch.armed = false;
}

/* The batch's connection's PRAGMA data_version inside its transaction:
 * it moves when another connection (another process, or another serving
 * thread) committed since this one's last transaction, not for this
 * connection's own commits.  -1 when it cannot be read. */
static int64_t data_version(fm_store *st)
{
    static const char data_version_sql[] = "PRAGMA data_version";
    fm_db_stmt *s = fm_store_stmt(st, data_version_sql, NULL);
    if (!s) return -1;
    int64_t v = fm_db_step(s) == FM_DB_ROW ? fm_db_column_int64(s, 0) : -1;
    fm_db_reset(s);
    return v;
}

/* The remembered settings outlive a batch's commit only while no other
 * connection committed since the last batch's transaction: read at the
 * begin, which holds the write lock, so nothing commits between the
 * check and the commit, and a write that lands after it is caught by the
 * next batch, as a write after a read was before (the memo's bound stays
 * one batch).  Clearing it at every commit cost two or three read
 * transactions a batch (perf: 2.4% of a loaded HTTP server's CPU). */
static void memo_keep_if_unchanged(fm_store *st)
{
    int64_t v = data_version(st);
    if (v < 0 || v != st->batch.data_version) memo_clear(st);
    st->batch.data_version = v;
}

int fm_store_batch_commit(fm_store *st, fm_err *err)
{
    if (!st->batch.open) {
        memo_clear(st);
        return 0;
    }
    bool was_armed = st->batch.armed;
    /* Closed first: the begin below, and the audit's own writes after the
     * commit (head, fold), are writers of their own, not of the batch. */
    st->batch.armed = st->batch.open = false;
    int rc = step_cached(st, begin_sql, "begin", err);
    if (rc)
        memo_clear(st);
    else
        memo_keep_if_unchanged(st);
    if (!rc && st->batch.write(st, err)) rc = -1;
    if (!rc) rc = step_cached(st, commit_sql, "commit", err);
    if (rc) {
        memo_clear(st);
        if (!fm_db_get_autocommit(st->db)) fm_db_exec(st->db, "ROLLBACK", 0, 0, 0);
        fm_err e2 = {0};
        fm_err_set(&e2, FM_ERR_IO,
                   "store: the batch of audit rows could not be committed (database %s: %s);"
                   " nothing in it was recorded, retry the calls",
                   st->path, err && err->text[0] ? err->text : "unknown error");
        if (err) *err = e2;
    } else {
        st->batch.commits++;
        st->batch.batched_rows += (unsigned long long)st->batch.rows;
    }
    st->batch.ended(st, rc == 0);
    st->batch.armed = was_armed;
    st->batch.rows = 0;
    st->batch.bytes = 0;
    if (st->batch.done) st->batch.done(st->batch.done_cls, st, rc == 0);
    return rc;
}

static int migration_version(fm_store *st, const char *subsystem)
{
    int64_t v = 0;
    int rc = fm_db_run(st->db, "SELECT version FROM schema_migrations WHERE subsystem=?",
                       fm_db_row_int64, &v, "t", subsystem);
    return rc == FM_DB_ROW || rc == FM_DB_DONE ? (int)v : -1;
}

/* One schema_migrations row into st->migrated; stops when it is full. */
static int migrated_row(fm_db_stmt *row, void *arg)
{
    fm_store *st = arg;
    int n = st->n_migrated;
    if (n >= (int)(sizeof st->migrated / sizeof st->migrated[0])) return 1;
    const unsigned char *name = fm_db_column_text(row, 0);
    if (!name || strlen((const char *)name) >= sizeof st->migrated[n].subsystem) return 0;
    snprintf(st->migrated[n].subsystem, sizeof st->migrated[n].subsystem, "%s", (const char *)name);
    st->migrated[n].version = fm_db_column_int(row, 1);
    st->n_migrated = n + 1;
    return 0;
}

/* Every subsystem's version, in one query: a start checks a dozen
 * subsystems, and a query each was a statement prepared and a read
 * transaction taken (lock and unlock calls on SQLite) per subsystem.
 * Versions only grow, so an older snapshot can only send a subsystem to
 * the locked path below, which reads again. */
static int migrated_version(fm_store *st, const char *subsystem)
{
    if (st->n_migrated < 0) {
        st->n_migrated = 0;
        fm_db_run(st->db, "SELECT subsystem, version FROM schema_migrations", migrated_row, st,
                  NULL);
    }
    for (int i = 0; i < st->n_migrated; i++)
        if (!strcmp(st->migrated[i].subsystem, subsystem)) return st->migrated[i].version;
    return 0;
}

int fm_store_migrate(fm_store *st, const char *subsystem, int version, const char *ddl, fm_err *err)
{
    /* Cheap read first: the common case at start-up is "already done". */
    int have = migrated_version(st, subsystem);
    if (st->probe) {
        int i = 0;
        while (i < st->n_wanted && strcmp(st->wanted[i].subsystem, subsystem))
            i++;
        if (i == (int)(sizeof st->wanted / sizeof st->wanted[0])) return 0;
        if (i == st->n_wanted) {
            st->n_wanted++;
            snprintf(st->wanted[i].subsystem, sizeof st->wanted[i].subsystem, "%s", subsystem);
        }
        st->wanted[i].have = have;
        if (version > st->wanted[i].want) st->wanted[i].want = version;
        return 0;
    }
    if (have >= version) return 0;
    if (fm_store_begin(st, err)) return -1;
    have = migration_version(st, subsystem);
    if (have < version) {
        if (exec_sql(st, ddl, err)) goto fail;
        if (fm_db_run(st->db,
                      "INSERT INTO schema_migrations(subsystem,version) VALUES(?,?)"
                      " ON CONFLICT(subsystem) DO UPDATE SET version=excluded.version",
                      NULL, NULL, "tn", subsystem, version) != FM_DB_DONE) {
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

/* Group commit: every call of a turn reads the emergency setting (and a
 * 2025-era call its session), each read a read transaction of its own,
 * four fcntl calls on the WAL index (perf: 10% of a loaded server's CPU
 * once the batch no longer holds a transaction they could ride in).  So
 * while the batch is armed a setting read outside a transaction is
 * remembered until a batch commits after another connection wrote (the
 * transport commits at least every millisecond and every turn;
 * memo_keep_if_unchanged), this process writes anything, or the batch is
 * flushed: a call that acts (a mutation, a kill switch or rate limit
 * check) flushes first and reads the store itself. */
#define MEMO_KEYS 8
#define MEMO_VALUE_MAX 4096
typedef struct fm_setting_memo {
    int n;
    struct {
        char key[128];
        int rc;      /* 0 found, -1 not set */
        char *value; /* found: a copy */
    } e[MEMO_KEYS];
} fm_setting_memo;

static void memo_clear(fm_store *st)
{
    fm_setting_memo *m = st->batch.memo;
    if (!m) return;
    for (int i = 0; i < m->n; i++)
        free(m->e[i].value);
    m->n = 0;
}

static bool memo_usable(fm_store *st, const char *key)
{
    return st->batch.armed && strlen(key) < sizeof st->batch.memo->e[0].key &&
           fm_db_get_autocommit(st->db);
}

/* -2: not remembered. */
static int memo_get(fm_store *st, const char *key, char *buf, size_t len)
{
    fm_setting_memo *m = st->batch.memo;
    for (int i = 0; m && i < m->n; i++) {
        if (strcmp(m->e[i].key, key)) continue;
        if (m->e[i].rc == 0) {
            if (strlen(m->e[i].value) >= len) return -2; /* as the read would clip it */
            strcpy(buf, m->e[i].value);
        }
        return m->e[i].rc;
    }
    return -2;
}

static void memo_put(fm_store *st, const char *key, int rc, const char *value)
{
    if (!st->batch.memo && !(st->batch.memo = calloc(1, sizeof *st->batch.memo))) return;
    fm_setting_memo *m = st->batch.memo;
    if (m->n >= MEMO_KEYS || (rc == 0 && strlen(value) >= MEMO_VALUE_MAX)) return;
    char *copy = rc == 0 ? strdup(value) : NULL;
    if (rc == 0 && !copy) return;
    snprintf(m->e[m->n].key, sizeof m->e[m->n].key, "%s", key);
    m->e[m->n].rc = rc;
    m->e[m->n].value = copy;
    m->n++;
}

int fm_store_setting_get(fm_store *st, const char *key, char *buf, size_t len)
{
    if (len) buf[0] = '\0';
    bool memo = memo_usable(st, key);
    int rc = memo && len ? memo_get(st, key, buf, len) : -2;
    if (rc != -2) return rc;
    fm_db_text_buf t = {buf, len, 0};
    rc = fm_db_run(st->db, setting_get_sql, fm_db_row_text, &t, "t", key);
    rc = rc == FM_DB_ROW ? 0 : rc == FM_DB_DONE ? -1 : -2;
    if (memo && rc != -2 && (rc == -1 || strlen(buf) + 1 < len)) memo_put(st, key, rc, buf);
    return rc;
}

int fm_store_setting_set(fm_store *st, const char *key, const char *value, fm_err *err)
{
    memo_clear(st);
    int rc = fm_db_run(st->db,
                       "INSERT INTO settings(key,value,updated_ms) VALUES(?,?,?)"
                       " ON CONFLICT(key) DO UPDATE SET value=excluded.value,"
                       " updated_ms=excluded.updated_ms",
                       NULL, NULL, "tti", key, value, fm_now_ms());
    return rc == FM_DB_DONE ? 0 : fm_store_fail(st, err, "setting");
}

void fm_store_setting_prune(fm_store *st, const char *prefix, int64_t before_ms)
{
    memo_clear(st);
    char like[128];
    snprintf(like, sizeof like, "%s%%", prefix);
    /* Best effort: a mark left behind is pruned by the next call. */
    fm_db_run(st->db, "DELETE FROM settings WHERE key LIKE ? AND updated_ms < ?", NULL, NULL, "ti",
              like, before_ms);
}

int fm_store_setting_add(fm_store *st, const char *key, const char *value, fm_err *err)
{
    memo_clear(st); /* as every write: a remembered absence would outlive it */
    int rc = fm_db_run(st->db,
                       "INSERT INTO settings(key,value,updated_ms) VALUES(?,?,?)"
                       " ON CONFLICT(key) DO NOTHING",
                       NULL, NULL, "tti", key, value, fm_now_ms());
    if (rc != FM_DB_DONE) return fm_store_fail(st, err, "setting");
    return fm_db_changes(st->db) == 1 ? 1 : 0;
}
