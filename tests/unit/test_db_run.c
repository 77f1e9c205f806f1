/* fm_db_run, the statement helper the table modules use: binding by type
 * (NULL text included), rows into a callback, stopping early, a statement
 * kept across runs, a run nested in a row callback (the same statement
 * too), and an error reported, not swallowed.  On SQLite (stage unit) and
 * PostgreSQL (stage store-pg, FM_TEST_PG). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fleetmcp/fm_db.h"
#include "fm_test.h"

static fm_db *open_db(char *path)
{
    fm_test_temp_db(path);
    fm_db *db = NULL;
    ck_assert_int_eq(fm_db_open(fm_test_store(path), &db), FM_DB_OK);
    ck_assert_int_eq(fm_db_exec(db,
                                "CREATE TABLE run_t(k TEXT PRIMARY KEY, n INTEGER NOT NULL,"
                                " r REAL, note TEXT)",
                                NULL, NULL, NULL),
                     FM_DB_OK);
    return db;
}

static const char ins[] = "INSERT INTO run_t(k,n,r,note) VALUES(?,?,?,?)";
static const char by_n[] = "SELECT k, n, r, note FROM run_t WHERE n>=? ORDER BY k";
static const char count_sql[] = "SELECT count(*) FROM run_t WHERE n>=?";

typedef struct {
    char seen[256];
    int rows, stop_after;
    fm_db *db;
} acc;

static int collect(fm_db_stmt *row, void *arg)
{
    acc *a = arg;
    const unsigned char *note = fm_db_column_text(row, 3);
    size_t at = strlen(a->seen);
    snprintf(a->seen + at, sizeof a->seen - at, "%s:%lld:%.1f:%s;",
             (const char *)fm_db_column_text(row, 0), (long long)fm_db_column_int64(row, 1),
             fm_db_column_double(row, 2), note ? (const char *)note : "NULL");
    return ++a->rows == a->stop_after;
}

/* Runs the same statement (and another) from inside its own row callback. */
static int nested(fm_db_stmt *row, void *arg)
{
    acc *a = arg;
    int64_t n = -1;
    ck_assert_int_eq(fm_db_run(a->db, count_sql, fm_db_row_int64, &n, "i", (int64_t)0), FM_DB_ROW);
    ck_assert_int_eq(n, 3);
    acc inner = {.db = a->db};
    ck_assert_int_eq(fm_db_run(a->db, by_n, collect, &inner, "i", (int64_t)2), FM_DB_DONE);
    ck_assert_str_eq(inner.seen, "b:2:2.5:NULL;c:3:0.0:x;");
    a->rows++;
    return 0;
}

/* From a row of by_n's run: by_n is busy, so fm_db_kept refuses it. */
static int kept_while_busy(fm_db_stmt *row, void *arg)
{
    acc *a = arg;
    (void)row;
    ck_assert_ptr_null(fm_db_kept(a->db, by_n));
    return ++a->rows == a->stop_after;
}

START_TEST(run_binds_steps_and_keeps)
{
    char path[] = "/tmp/fm-dbrun-XXXXXX";
    fm_db *db = open_db(path);
    ck_assert_int_eq(fm_db_run(db, ins, NULL, NULL, "tidt", "a", (int64_t)1, 1.5, "first"),
                     FM_DB_DONE);
    ck_assert_int_eq(fm_db_run(db, ins, NULL, NULL, "tidt", "b", (int64_t)2, 2.5, NULL),
                     FM_DB_DONE);
    ck_assert_int_eq(fm_db_run(db, ins, NULL, NULL, "tndt", "c", 3, 0.0, "x"), FM_DB_DONE);
    /* The primary key refuses a second "a": the engine's error comes back. */
    int rc = fm_db_run(db, ins, NULL, NULL, "tidt", "a", (int64_t)9, 0.0, NULL);
    ck_assert_int_ne(rc, FM_DB_DONE);
    ck_assert_int_ne(rc, FM_DB_ROW);
    /* ... and the kept statement still works after it. */
    acc all = {.db = db};
    ck_assert_int_eq(fm_db_run(db, by_n, collect, &all, "i", (int64_t)0), FM_DB_DONE);
    ck_assert_str_eq(all.seen, "a:1:1.5:first;b:2:2.5:NULL;c:3:0.0:x;");
    ck_assert_int_eq(all.rows, 3);
    acc two = {.db = db, .stop_after = 2};
    ck_assert_int_eq(fm_db_run(db, by_n, collect, &two, "i", (int64_t)0), FM_DB_ROW);
    ck_assert_int_eq(two.rows, 2);
    acc outer = {.db = db};
    ck_assert_int_eq(fm_db_run(db, by_n, nested, &outer, "i", (int64_t)0), FM_DB_DONE);
    ck_assert_int_eq(outer.rows, 3);
    char buf[8];
    fm_db_text_buf t = {buf, sizeof buf, 0};
    ck_assert_int_eq(
        fm_db_run(db, "SELECT note FROM run_t WHERE k=?", fm_db_row_text, &t, "t", "a"), FM_DB_ROW);
    ck_assert_int_eq(t.found, 1);
    ck_assert_str_eq(buf, "first");
    t.found = 0;
    ck_assert_int_eq(
        fm_db_run(db, "SELECT note FROM run_t WHERE k=?", fm_db_row_text, &t, "t", "zz"),
        FM_DB_DONE);
    ck_assert_int_eq(t.found, 0);
    /* A statement that cannot be prepared is an error, not an empty read. */
    ck_assert_int_ne(fm_db_run(db, "SELECT nope FROM run_t", NULL, NULL, ""), FM_DB_DONE);
    fm_db_close(db);
    fm_test_unlink_db(path);
}
END_TEST

/* The engine's own words for a statement that cannot be prepared: on
 * SQLite at prepare, on PostgreSQL from the server's Parse, which for a
 * kept statement goes in the same pipeline as its run (the run then comes
 * back aborted, without text).  Names the missing column either way. */
static void says_nope(fm_db *db)
{
    const char *m = fm_db_errmsg(db);
    ck_assert_msg(strstr(m, "nope"), "error text without the server's message: \"%s\"", m);
}

/* fm_db_kept of sql that cannot be prepared, stepped by step: NULL on
 * SQLite (prepared at once); PostgreSQL prepares on the server at the first
 * step, which fails.  Either way the error names the missing column. */
static void kept_fails(fm_db *db, const char *sql, int (*step)(fm_db_stmt *))
{
    fm_db_stmt *s = fm_db_kept(db, sql);
    if (s) {
        int rc = step(s);
        ck_assert_int_ne(rc, FM_DB_ROW);
        ck_assert_int_ne(rc, FM_DB_DONE);
        fm_db_reset(s);
    }
    says_nope(db);
}

/* fm_db_kept shares fm_db_run's cache: the same statement each time,
 * handed out reset and unbound, and a run of the same SQL after a caller
 * left it mid-rows and bound starts from the first row. */
START_TEST(kept_shares_the_run_cache)
{
    char path[] = "/tmp/fm-dbrun-XXXXXX";
    fm_db *db = open_db(path);
    for (int i = 1; i <= 3; i++) {
        char k[2] = {(char)('a' + i - 1), 0};
        ck_assert_int_eq(fm_db_run(db, ins, NULL, NULL, "tidt", k, (int64_t)i, 0.0, NULL),
                         FM_DB_DONE);
    }
    fm_db_stmt *s = fm_db_kept(db, by_n);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(fm_db_bind_int64(s, 1, 2), FM_DB_OK);
    ck_assert_int_eq(fm_db_step(s), FM_DB_ROW);
    ck_assert_str_eq((const char *)fm_db_column_text(s, 0), "b");
    /* Left on row b: a run of the same SQL sees every row from a. */
    acc all = {.db = db};
    ck_assert_int_eq(fm_db_run(db, by_n, collect, &all, "i", (int64_t)0), FM_DB_DONE);
    ck_assert_str_eq(all.seen, "a:1:0.0:NULL;b:2:0.0:NULL;c:3:0.0:NULL;");
    /* The run's statement is the kept one; handed out again, it is reset
     * and unbound (a NULL parameter: no row is >= NULL). */
    ck_assert_ptr_eq(fm_db_kept(db, by_n), s);
    ck_assert_int_eq(fm_db_step(s), FM_DB_DONE);
    fm_db_reset(s);
    /* Not while a run of the same SQL steps it. */
    acc inner = {.db = db, .stop_after = 1};
    ck_assert_int_eq(fm_db_run(db, by_n, kept_while_busy, &inner, "i", (int64_t)0), FM_DB_ROW);
    ck_assert_int_eq(inner.rows, 1);
    /* A statement that cannot be prepared. */
    kept_fails(db, "SELECT nope FROM run_t", fm_db_step);
    fm_db_close(db);
    fm_test_unlink_db(path);
}
END_TEST

/* More statements than the cache holds (128 in db_run.c): a run past it
 * prepares its own copy, fm_db_kept replaces an idle entry, and each still
 * answers right, whichever of the two met the statement first. */
#define MANY 200
START_TEST(past_a_full_cache)
{
    char path[] = "/tmp/fm-dbrun-XXXXXX";
    fm_db *db = open_db(path);
    static char sql[MANY][32]; /* the cache's key is the address: fixed */
    for (int i = 0; i < MANY; i++) {
        snprintf(sql[i], sizeof sql[i], "SELECT %d + ?", i);
        int64_t v = -1;
        ck_assert_int_eq(fm_db_run(db, sql[i], fm_db_row_int64, &v, "i", (int64_t)1), FM_DB_ROW);
        ck_assert_int_eq(v, i + 1);
    }
    for (int i = MANY - 1; i >= 0; i--) {
        fm_db_stmt *s = fm_db_kept(db, sql[i]);
        ck_assert_ptr_nonnull(s);
        ck_assert_ptr_eq(fm_db_kept(db, sql[i]), s);
        ck_assert_int_eq(fm_db_bind_int64(s, 1, 2), FM_DB_OK);
        ck_assert_int_eq(fm_db_step(s), FM_DB_ROW);
        ck_assert_int_eq(fm_db_column_int64(s, 0), i + 2);
        /* Left bound and mid-rows: a run resets it, or uses its own. */
        int64_t v = -1;
        ck_assert_int_eq(fm_db_run(db, sql[i], fm_db_row_int64, &v, "i", (int64_t)3), FM_DB_ROW);
        ck_assert_int_eq(v, i + 3);
        int64_t w = -1;
        ck_assert_int_eq(fm_db_run(db, sql[MANY - 1 - i], fm_db_row_int64, &w, "i", (int64_t)4),
                         FM_DB_ROW);
        ck_assert_int_eq(w, MANY - 1 - i + 4);
    }
    fm_db_close(db);
    fm_test_unlink_db(path);
}
END_TEST

/* A statement held from fm_db_kept (bound, mid-rows) is never replaced
 * by later fm_db_kept calls past a full cache (the entries idle then are
 * all held): it goes on with its rows, and each later one stays the
 * statement its caller got. */
START_TEST(held_kept_survives_a_full_cache)
{
    char path[] = "/tmp/fm-dbrun-XXXXXX";
    fm_db *db = open_db(path);
    for (int i = 1; i <= 3; i++)
        ck_assert_int_eq(fm_db_run(db, ins, NULL, NULL, "tidt", (char[]){(char)('a' + i - 1), 0},
                                   (int64_t)i, 0.0, NULL),
                         FM_DB_DONE);
    fm_db_stmt *held = fm_db_kept(db, by_n);
    ck_assert_ptr_nonnull(held);
    ck_assert_int_eq(fm_db_bind_int64(held, 1, 1), FM_DB_OK);
    ck_assert_int_eq(fm_db_step(held), FM_DB_ROW);
    ck_assert_str_eq((const char *)fm_db_column_text(held, 0), "a");
    static char sql[MANY][32];
    static fm_db_stmt *got[MANY];
    for (int i = 0; i < MANY; i++) {
        snprintf(sql[i], sizeof sql[i], "SELECT %d + ?", i);
        got[i] = fm_db_kept(db, sql[i]);
        ck_assert_ptr_nonnull(got[i]);
        ck_assert_ptr_ne(got[i], held);
        ck_assert_int_eq(fm_db_bind_int64(got[i], 1, 1), FM_DB_OK);
        ck_assert_int_eq(fm_db_step(got[i]), FM_DB_ROW);
        ck_assert_int_eq(fm_db_column_int64(got[i], 0), i + 1);
    }
    ck_assert_int_eq(fm_db_step(held), FM_DB_ROW);
    ck_assert_str_eq((const char *)fm_db_column_text(held, 0), "b");
    ck_assert_int_eq(fm_db_step(held), FM_DB_ROW);
    ck_assert_str_eq((const char *)fm_db_column_text(held, 0), "c");
    ck_assert_int_eq(fm_db_step(held), FM_DB_DONE);
    for (int i = 0; i < MANY; i++)
        ck_assert_ptr_eq(fm_db_kept(db, sql[i]), got[i]);
    fm_db_close(db);
    fm_test_unlink_db(path);
}
END_TEST

/* PostgreSQL: transaction ids drawn so far (this read draws one). */
static int64_t xids(fm_db *db)
{
    int64_t x = -1;
    ck_assert_int_eq(
        fm_db_run(db, "SELECT pg_current_xact_id()::text::bigint", fm_db_row_int64, &x, ""),
        FM_DB_ROW);
    return x;
}

/* fm_db_step_commit_rows: three inserts commit together and say what
 * each changed; a batch where one fails commits none of them, both when
 * it returns at the commit's flush (early 0) and when it returns once
 * the commit is visible (early 1; fm_db_durable reads the flush).  On
 * PostgreSQL a transaction of its own: one transaction id for early 0
 * (its commit waits for the disk itself: no BEGIN, COMMIT or flush write
 * of its own), two for early 1 (the flush's write commits after it, a
 * WAL message: no table, so none is made here); on SQLite in the
 * caller's. */
START_TEST(commit_rows_all_or_none)
{
    char path[] = "/tmp/fm-dbrun-XXXXXX";
    fm_db *db = open_db(path);
    const bool lite = !getenv("FM_TEST_PG");
    /* No store_flush table: the flush writes a WAL message, no row. */
    static char sql[3][80]; /* one statement each: the cache keys by address */
    fm_db_stmt *s[3];
    int64_t rows = 0;
    for (int round = 0; round < 4; round++) {
        const int early = round / 2, bad = round % 2;
        for (int i = 0; i < 3; i++) {
            snprintf(sql[i], sizeof sql[i], "%s", ins);
            s[i] = fm_db_kept(db, sql[i]);
            ck_assert_ptr_nonnull(s[i]);
            char k[8];
            /* bad: the third row takes the first's key, refused. */
            snprintf(k, sizeof k, "%c", 'd' + 3 * round + (bad && i == 2 ? 0 : i));
            ck_assert_int_eq(fm_db_bind_text(s[i], 1, k, -1, FM_DB_TRANSIENT), FM_DB_OK);
            ck_assert_int_eq(fm_db_bind_int64(s[i], 2, i), FM_DB_OK);
        }
        if (lite) ck_assert_int_eq(fm_db_exec(db, "BEGIN", NULL, NULL, NULL), FM_DB_OK);
        const int64_t x0 = lite ? 0 : xids(db);
        int changes[3] = {-1, -1, -1};
        int rc = fm_db_step_commit_rows(s, 3, NULL, early, changes);
        const int durable = fm_db_durable(db);
        if (lite)
            ck_assert_int_eq(
                fm_db_exec(db, rc == FM_DB_DONE ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL),
                FM_DB_OK);
        for (int i = 0; i < 3; i++)
            fm_db_reset(s[i]);
        if (!bad) {
            ck_assert_msg(rc == FM_DB_DONE, "%s", fm_db_errmsg(db));
            ck_assert_int_eq(durable, FM_DB_OK);
            ck_assert(changes[0] == 1 && changes[1] == 1 && changes[2] == 1);
            rows += 3;
            if (!lite) ck_assert_int_eq(xids(db) - x0 - 1, early ? 2 : 1);
        } else {
            ck_assert_int_ne(rc, FM_DB_DONE);
        }
        int64_t n = -1;
        ck_assert_int_eq(fm_db_run(db, count_sql, fm_db_row_int64, &n, "i", (int64_t)0), FM_DB_ROW);
        ck_assert_int_eq(n, rows);
    }
    fm_db_close(db);
    fm_test_unlink_db(path);
}
END_TEST

/* PostgreSQL: a commit pipeline whose statements all succeed but whose
 * commit fails (a deferred foreign key, checked at the commit the sync
 * makes) fails, early or not, and commits nothing, as does such a
 * statement alone; the connection serves the next statement.  (SQLite:
 * each statement runs in the caller's transaction, whose COMMIT the
 * caller reads.) */
START_TEST(commit_rows_failed_commit_fails)
{
    char path[] = "/tmp/fm-dbrun-XXXXXX";
    fm_db *db = open_db(path);
    ck_assert_int_eq(fm_db_exec(db,
                                "CREATE UNIQUE INDEX run_n ON run_t(n);"
                                "CREATE TABLE def_c(k INTEGER REFERENCES run_t(n)"
                                " DEFERRABLE INITIALLY DEFERRED)",
                                NULL, NULL, NULL),
                     FM_DB_OK);
    static const char orphan[] = "INSERT INTO def_c(k) VALUES(?)";
    for (int early = 0; early < 2; early++) {
        fm_db_stmt *s = fm_db_kept(db, orphan);
        ck_assert_ptr_nonnull(s);
        ck_assert_int_eq(fm_db_bind_int64(s, 1, 7), FM_DB_OK);
        int changes = -1;
        int rc = fm_db_step_commit_rows(&s, 1, NULL, early, &changes);
        fm_db_reset(s);
        ck_assert_msg(rc != FM_DB_DONE, "a failed commit read as committed (early %d)", early);
        ck_assert_msg(strstr(fm_db_errmsg(db), "def_c"), "%s", fm_db_errmsg(db));
        int64_t n = -1;
        ck_assert_int_eq(fm_db_run(db, "SELECT count(*) FROM def_c", fm_db_row_int64, &n, ""),
                         FM_DB_ROW);
        ck_assert_int_eq(n, 0);
    }
    /* So does a statement alone (its own implicit transaction). */
    ck_assert_int_ne(fm_db_run(db, orphan, NULL, NULL, "i", (int64_t)7), FM_DB_DONE);
    ck_assert_msg(strstr(fm_db_errmsg(db), "def_c"), "%s", fm_db_errmsg(db));
    fm_db_close(db);
    fm_test_unlink_db(path);
}
END_TEST

/* One OWED commit of row k (the statement copy sql: the cache keys by
 * address): the rows it changed, or -1 when it failed. */
static int owed_insert(fm_db *db, char *sql, const char *k)
{
    snprintf(sql, 80, "%s", ins);
    fm_db_stmt *s = fm_db_kept(db, sql);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(fm_db_bind_text(s, 1, k, -1, FM_DB_TRANSIENT), FM_DB_OK);
    ck_assert_int_eq(fm_db_bind_int64(s, 2, 1), FM_DB_OK);
    int changes = -1;
    int rc = fm_db_step_commit_rows(&s, 1, NULL, FM_DB_COMMIT_OWED, &changes);
    fm_db_reset(s);
    return rc == FM_DB_DONE ? changes : -1;
}

/* PostgreSQL: commits whose flush is owed (FM_DB_COMMIT_OWED) draw one
 * transaction id each and no flush of their own; one flush, sent by
 * fm_db_flush_start and read by fm_db_durable, serves them all (one id
 * more), nothing owed draws none, and a commit that wrote nothing
 * (synchronous, or with its flush in its pipeline: it flushes nothing)
 * leaves the flush owed.  A connection lost and made again
 * between an owed commit and its flush fails the flush: the server may
 * have lost the commit, and a flush on the new connection proves
 * nothing for it. */
START_TEST(owed_commits_share_one_flush)
{
    char path[] = "/tmp/fm-dbrun-XXXXXX";
    fm_db *db = open_db(path);
    static char sql[3][80];
    int64_t x0 = xids(db);
    ck_assert_int_eq(owed_insert(db, sql[0], "o1"), 1);
    ck_assert_int_eq(owed_insert(db, sql[1], "o2"), 1);
    ck_assert_int_eq(xids(db) - x0 - 1, 2); /* the two commits, no flush */
    x0 = xids(db);
    ck_assert_int_eq(fm_db_flush_start(db), FM_DB_OK);
    ck_assert_int_eq(fm_db_durable(db), FM_DB_OK);
    ck_assert_int_eq(xids(db) - x0 - 1, 1); /* one flush for both */
    x0 = xids(db);
    ck_assert_int_eq(fm_db_durable(db), FM_DB_OK); /* nothing owed: nothing sent */
    ck_assert_int_eq(xids(db) - x0 - 1, 0);
    /* A synchronous commit that wrote nothing flushes nothing: the flush
     * is still owed. */
    ck_assert_int_eq(owed_insert(db, sql[1], "o4"), 1);
    static const char none[] = "INSERT INTO run_t(k,n) SELECT ?, 1 WHERE false";
    fm_db_stmt *s = fm_db_kept(db, none);
    ck_assert_ptr_nonnull(s);
    for (int how = FM_DB_COMMIT_SYNC; how <= FM_DB_COMMIT_EARLY; how++) {
        /* EARLY: its empty flush is in flight when the owed one is sent. */
        if (how == FM_DB_COMMIT_EARLY) ck_assert_int_eq(owed_insert(db, sql[1], "o6"), 1);
        ck_assert_int_eq(fm_db_bind_text(s, 1, "o5", -1, FM_DB_TRANSIENT), FM_DB_OK);
        int changes = -1;
        ck_assert_int_eq(fm_db_step_commit_rows(&s, 1, NULL, how, &changes), FM_DB_DONE);
        fm_db_reset(s);
        ck_assert_int_eq(changes, 0);
        x0 = xids(db);
        ck_assert_msg(fm_db_durable(db) == FM_DB_OK, "%s", fm_db_errmsg(db));
        ck_assert_int_eq(xids(db) - x0 - 1, 1);
    }
    /* Owed, then the connection ends (its backend terminated) and is made
     * again by the next statement: the flush fails. */
    ck_assert_int_eq(owed_insert(db, sql[2], "o3"), 1);
    ck_assert_int_ne(fm_db_run(db, "SELECT pg_terminate_backend(pg_backend_pid())", NULL, NULL, ""),
                     FM_DB_ROW);
    int64_t n = -1;
    ck_assert_int_eq(fm_db_run(db, count_sql, fm_db_row_int64, &n, "i", (int64_t)0), FM_DB_ROW);
    ck_assert_int_eq(n, 5);
    ck_assert_int_ne(fm_db_durable(db), FM_DB_OK);
    ck_assert_msg(strstr(fm_db_errmsg(db), "lost before"), "%s", fm_db_errmsg(db));
    ck_assert_int_eq(fm_db_durable(db), FM_DB_OK); /* said once; nothing owed since */
    fm_db_close(db);
    fm_test_unlink_db(path);
}
END_TEST

/* A kept statement whose Parse fails reports why: alone, under fm_db_run,
 * inside a transaction (between a savepoint and its release), and as the
 * statement of a commit pipeline; and it does so again on a second try. */
START_TEST(kept_parse_failure_says_why)
{
    char path[] = "/tmp/fm-dbrun-XXXXXX";
    fm_db *db = open_db(path);
    static const char bad_sql[] = "SELECT nope FROM run_t";
    static const char bad_ins[] = "INSERT INTO run_t(k,n,nope) VALUES('z',1,2)";
    for (int round = 0; round < 2; round++) {
        ck_assert_int_ne(fm_db_run(db, bad_sql, NULL, NULL, ""), FM_DB_DONE);
        says_nope(db);
        kept_fails(db, bad_sql, fm_db_step);
    }
    ck_assert_int_eq(fm_db_exec(db, "BEGIN", NULL, NULL, NULL), FM_DB_OK);
    ck_assert_int_ne(fm_db_run(db, bad_sql, NULL, NULL, ""), FM_DB_DONE);
    says_nope(db);
    /* The failure left the transaction usable, as on SQLite. */
    ck_assert_int_eq(fm_db_run(db, ins, NULL, NULL, "tidt", "t", (int64_t)1, 0.0, NULL),
                     FM_DB_DONE);
    ck_assert_int_eq(fm_db_exec(db, "COMMIT", NULL, NULL, NULL), FM_DB_OK);
    kept_fails(db, bad_ins, fm_db_step_commit);
    int64_t n = -1;
    ck_assert_int_eq(fm_db_run(db, count_sql, fm_db_row_int64, &n, "i", (int64_t)0), FM_DB_ROW);
    ck_assert_int_eq(n, 1);
    fm_db_close(db);
    fm_test_unlink_db(path);
}
END_TEST

static int row_bytes(fm_db_stmt *row, void *arg)
{
    char *out = arg;
    const void *b = fm_db_column_blob(row, 1);
    int n = fm_db_column_bytes(row, 1);
    int at = snprintf(out, 32, "%s|%d|", (const char *)fm_db_column_text(row, 0), n);
    if (b && n > 0 && n < 32) memcpy(out + at, b, (size_t)n); /* bytes, NUL included */
    return 1;
}

/* Counted text ('T') and blobs ('b'), the array form, and the marks. */
START_TEST(run_counted_array_and_marks)
{
    char path[] = "/tmp/fm-dbrun-XXXXXX";
    fm_db *db = open_db(path);
    ck_assert_int_eq(
        fm_db_exec(db, "CREATE TABLE run_b(k TEXT PRIMARY KEY, v BLOB)", NULL, NULL, NULL),
        FM_DB_OK);
    static const char bins[] = "INSERT INTO run_b(k,v) VALUES(?,?)";
    static const char bget[] = "SELECT k, v FROM run_b WHERE k=?";
    /* Only the first three bytes of "keyXX" are the key. */
    ck_assert_int_eq(fm_db_run(db, bins, NULL, NULL, "Tb", "keyXX", 3, "a\0b", 3), FM_DB_DONE);
    char out[64] = "";
    ck_assert_int_eq(fm_db_run(db, bget, row_bytes, out, "t", "key"), FM_DB_ROW);
    ck_assert_int_eq(memcmp(out, "key|3|a\0b", 10), 0);
    /* A NULL blob pointer is an empty blob, not a NULL. */
    ck_assert_int_eq(fm_db_run(db, bins, NULL, NULL, "tb", "e", NULL, 0), FM_DB_DONE);
    int64_t n = -1;
    ck_assert_int_eq(
        fm_db_run(db, "SELECT count(*) FROM run_b WHERE v IS NOT NULL", fm_db_row_int64, &n, ""),
        FM_DB_ROW);
    ck_assert_int_eq(n, 2);
    /* The array form: one statement, parameters counted at run time. */
    static const char two_rows[] = "INSERT INTO run_t(k,n,r,note) VALUES(?,?,?,?), (?,?,?,?)";
    fm_db_param p[8] = {{.type = 't', .p = "p"}, {.type = 'i', .i = 7},
                        {.type = 'd', .d = 0.5}, {.type = 'T', .p = "onetwo", .len = 3},
                        {.type = 't', .p = "q"}, {.type = 'n', .i = 8},
                        {.type = 'd', .d = 1.5}, {.type = 't', .p = NULL}};
    ck_assert_int_eq(fm_db_run_params(db, two_rows, NULL, NULL, p, 8), FM_DB_DONE);
    acc all = {.db = db};
    ck_assert_int_eq(fm_db_run(db, by_n, collect, &all, "i", (int64_t)7), FM_DB_DONE);
    ck_assert_str_eq(all.seen, "p:7:0.5:one;q:8:1.5:NULL;");
    /* A type the helper does not know fails the run. */
    fm_db_param bad = {.type = '?'};
    ck_assert_int_ne(fm_db_run_params(db, count_sql, NULL, NULL, &bad, 1), FM_DB_DONE);
    /* Marks: per connection, by address. */
    static const char key1[] = "k1", key2[] = "k2";
    ck_assert_int_eq(fm_db_marked(db, key1), 0);
    fm_db_mark(db, key1);
    fm_db_mark(db, key1);
    ck_assert_int_eq(fm_db_marked(db, key1), 1);
    ck_assert_int_eq(fm_db_marked(db, key2), 0);
    fm_db_close(db);
    fm_db *again = NULL;
    ck_assert_int_eq(fm_db_open(fm_test_store(path), &again), FM_DB_OK);
    ck_assert_int_eq(fm_db_marked(again, key1), 0);
    fm_db_close(again);
    fm_test_unlink_db(path);
}
END_TEST

static Suite *db_run_suite(void)
{
    Suite *s = suite_create("db_run");
    TCase *tc = tcase_create("run");
    tcase_add_test(tc, run_binds_steps_and_keeps);
    tcase_add_test(tc, kept_shares_the_run_cache);
    tcase_add_test(tc, kept_parse_failure_says_why);
    tcase_add_test(tc, past_a_full_cache);
    tcase_add_test(tc, held_kept_survives_a_full_cache);
    tcase_add_test(tc, commit_rows_all_or_none);
    /* A commit that fails after its statements: PostgreSQL's deferred check. */
    if (getenv("FM_TEST_PG")) {
        tcase_add_test(tc, commit_rows_failed_commit_fails);
        /* Commits whose flush is owed, and that flush: PostgreSQL's. */
        tcase_add_test(tc, owed_commits_share_one_flush);
    }
    tcase_add_test(tc, run_counted_array_and_marks);
    suite_add_tcase(s, tc);
    return s;
}

FM_TEST_MAIN(db_run_suite)
