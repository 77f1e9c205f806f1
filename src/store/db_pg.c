/* fm_db on PostgreSQL (libpq).  Statements run in libpq pipelines, text
 * results; SQL is rewritten once at prepare (db_sql.c), and a persistent
 * statement (FM_DB_PREPARE_PERSISTENT) is parsed once per connection.  BEGIN IMMEDIATE
 * takes one transaction-scoped advisory lock, so write transactions from
 * every process on every host queue one after another exactly like
 * SQLite's, for the writers that keep SQLite's read-then-write logic.
 * Plain BEGIN (fm_store_begin_rows: approvals, reservations, tickets,
 * spent requestState marks, pending client requests, session ends)
 * takes none: those rely on conditional updates, constraints and named
 * lock rows.  The audit chain takes no lock (fm_audit_append;
 * fm_db_step_commit below).  Inside a transaction
 * each statement runs under a savepoint, so one that fails does not
 * abort the rest (exec_guarded).
 *
 * A connection lost between calls is re-opened at the next call; one lost
 * inside a transaction fails every statement until the caller rolls back,
 * so no half of a transaction is ever replayed outside it. */
#include "fleetmcp/fm_db.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define BYTEA_OID 17
#define INT8_OID 20
#define INT2_OID 21
#define INT4_OID 23
#define BOOL_OID 16
#define FLOAT4_OID 700
#define FLOAT8_OID 701
#define NUMERIC_OID 1700
#define SQL_MAX (64 * 1024)
/* Any constant: the lock every write transaction of the store takes. */
#define WRITE_LOCK_SQL "BEGIN; SELECT pg_advisory_xact_lock(7301517)"

/* A pipeline in flight: each item's statement (NULL: plain SQL), and
 * where each result goes in order: an item's index, or -1 - i for the
 * Parse of item i's statement. */
/* The most a pipeline sends: a commit pipeline of FM_DB_COMMIT_ROWS
 * statements and its three others, with room to spare. */
#define PL_MAX (FM_DB_COMMIT_ROWS + 5)
typedef struct pl_state {
    struct pg_stmt *st[PL_MAX];
    int slot[2 * PL_MAX], nslots, got;
    /* Where each sync falls (the slots before it), and the syncs read. */
    int sync_at[2], nsync, synced;
} pl_state;

typedef struct pg_db {
    fm_db base;
    PGconn *conn;
    char where[160]; /* host:port, for messages */
    char err[1024];
    fm_code code;
    int changes;
    bool in_txn, lost_txn;
    /* Named server-side statements live as long as the connection: gen
     * counts connections (a reset drops them all), names draws fresh
     * names. */
    unsigned gen, names;
    /* The commit pipeline's own statements (p_step_commit_rows), kept
     * prepared like the hot statements: parsed and planned once per
     * connection, not at every append. */
    struct pg_stmt *wrote, *flush, *owed_flush;
    /* FM_DB_COMMIT_OWED commits that wrote and whose flush was not sent
     * yet, and the connection (gen) the first of them was made on: a
     * flush on a later connection proves nothing for them (the server
     * may have restarted and lost them). */
    bool owed, owed_lost; /* owed_lost: their flush could not be sent */
    unsigned owed_gen;
    /* A pipeline sent with a sync inside it whose part after that sync
     * (the flush of p_step_commit_rows) has not been read yet: read
     * before anything else uses the connection (settle): &pend, or NULL.
     * One at a time, as every statement settles first. */
    pl_state *pending, pend;
} pg_db;

typedef struct pg_stmt {
    fm_db_stmt base;
    char *sql;
    bool begin;
    int nparams;
    char names[FM_DB_MAX_PARAMS][32];
    char *vals[FM_DB_MAX_PARAMS];
    int lens[FM_DB_MAX_PARAMS], fmts[FM_DB_MAX_PARAMS];
    Oid types[FM_DB_MAX_PARAMS];
    PGresult *res;
    int row, ncols;
    unsigned char *blob; /* the last column_blob, unescaped */
    int blob_col;
    size_t blob_len;
    /* Persistent (fm_db_prepare_v3 with FM_DB_PREPARE_PERSISTENT: the hot
     * statements): parsed and planned once per connection as pname, for
     * the parameter types ptypes; prep_gen: the connection it lives on. */
    bool keep;
    unsigned prep_gen, preps, preps_gen; /* preps: made on connection preps_gen */
    char pname[24];
    Oid ptypes[FM_DB_MAX_PARAMS];
} pg_stmt;

#define PG(d) ((pg_db *)(d))
#define PS(s) ((pg_stmt *)(s))

static void quiet(void *arg, const char *msg)
{
    (void)arg, (void)msg;
}

static void set_where(pg_db *p)
{
    const char *h = PQhost(p->conn), *port = PQport(p->conn);
    snprintf(p->where, sizeof p->where, "%s:%s", h && *h ? h : "localhost",
             port && *port ? port : "5432");
}

static void strip_nl(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
        s[--n] = '\0';
}

static void fail_conn(pg_db *p)
{
    char m[400];
    snprintf(m, sizeof m, "%s", PQerrorMessage(p->conn));
    strip_nl(m);
    p->code = FM_ERR_UNAVAILABLE;
    snprintf(p->err, sizeof p->err,
             "PostgreSQL at %s unreachable: %s; check store.url (or FLEETMCP_DB) and that the"
             " server runs",
             p->where, m);
}

static void fail_res(pg_db *p, const PGresult *r)
{
    if (PQstatus(p->conn) == CONNECTION_BAD) {
        fail_conn(p);
        return;
    }
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    char m[400];
    snprintf(m, sizeof m, "%s", r ? PQresultErrorMessage(r) : PQerrorMessage(p->conn));
    strip_nl(m);
    bool busy = state && (!strcmp(state, "55P03") || !strcmp(state, "57014") ||
                          !strcmp(state, "40001") || !strcmp(state, "40P01"));
    p->code = busy ? FM_ERR_TIMEOUT : FM_ERR_IO;
    snprintf(p->err, sizeof p->err, "PostgreSQL at %s: %s%s", p->where, m,
             busy ? " (another writer held the store too long: retry)" : "");
}

/* Password: libpq's own PGPASSWORD / PGPASSFILE / service file, or the
 * file named by FLEETMCP_DB_PASSWORD_FILE (first line).  Never logged. */
static int read_password(char *pw, size_t len, fm_err *err)
{
    pw[0] = '\0';
    const char *f = getenv("FLEETMCP_DB_PASSWORD_FILE");
    if (!f || !*f) return 0;
    FILE *fp = fopen(f, "re");
    if (!fp)
        return fm_err_set(err, FM_ERR_NOT_CONFIGURED,
                          "FLEETMCP_DB_PASSWORD_FILE %s cannot be read: fix the path or unset it",
                          f),
               -1;
    if (!fgets(pw, (int)len, fp)) pw[0] = '\0';
    fclose(fp);
    pw[strcspn(pw, "\r\n")] = '\0';
    return 0;
}

static int p_open(const char *url, fm_db **out, fm_err *err)
{
    char pw[256];
    if (read_password(pw, sizeof pw, err)) return -1;
    pg_db *p = calloc(1, sizeof *p);
    if (!p) return fm_err_set(err, FM_ERR_NOMEM, "store: out of memory"), -1;
    p->base.ops = &fm_db_pg_ops;
    /* connect_timeout first: the URL may override it. */
    const char *keys[] = {"connect_timeout", "application_name", "dbname",
                          pw[0] ? "password" : NULL, NULL};
    const char *vals[] = {"5", "fleetmcp", url, pw[0] ? pw : NULL, NULL};
    p->conn = PQconnectdbParams(keys, vals, 1);
    explicit_bzero(pw, sizeof pw);
    if (!p->conn) {
        free(p);
        /* libpq is loaded on first use (src/util/pq_lazy.c). */
        return fm_err_set(err, FM_ERR_UNAVAILABLE,
                          "store: libpq.so.5 could not be loaded (or memory ran out): install"
                          " libpq5 to use a postgresql:// store"),
               -1;
    }
    set_where(p);
    if (PQstatus(p->conn) != CONNECTION_OK) {
        fail_conn(p);
        fm_err_set(err, FM_ERR_UNAVAILABLE, "%s", p->err);
        PQfinish(p->conn);
        free(p);
        return -1;
    }
    PQsetNoticeProcessor(p->conn, quiet, NULL);
    p->gen = 1;
    /* Writers wait for the write lock like SQLite's busy timeout. */
    PGresult *r = PQexec(p->conn, "SET lock_timeout = '10s'; SET client_min_messages = warning");
    PQclear(r);
    *out = &p->base;
    return 0;
}

static int p_finalize(fm_db_stmt *st);
static bool settle(pg_db *p);

static void p_close(fm_db *d)
{
    (void)settle(PG(d));
    if (PG(d)->wrote) p_finalize(&PG(d)->wrote->base);
    if (PG(d)->flush) p_finalize(&PG(d)->flush->base);
    if (PG(d)->owed_flush) p_finalize(&PG(d)->owed_flush->base);
    PQfinish(PG(d)->conn);
    free(d);
}

/* Before a statement: re-open a connection that broke between calls. */
static bool ready(pg_db *p, bool is_rollback)
{
    (void)settle(p); /* a flush nobody waited for (a lost insert's) */
    if (PQstatus(p->conn) == CONNECTION_OK) return true;
    if (p->in_txn) {
        p->lost_txn = true;
        if (!is_rollback) {
            p->code = FM_ERR_UNAVAILABLE;
            snprintf(p->err, sizeof p->err,
                     "PostgreSQL at %s: the connection was lost inside a transaction, which"
                     " the server rolled back; retry the call",
                     p->where);
        }
        return false;
    }
    PQreset(p->conn);
    if (PQstatus(p->conn) != CONNECTION_OK) {
        fail_conn(p);
        return false;
    }
    PQsetNoticeProcessor(p->conn, quiet, NULL);
    p->gen++; /* a new session: no named statements */
    PQclear(PQexec(p->conn, "SET lock_timeout = '10s'; SET client_min_messages = warning"));
    return true;
}

static bool word_is(const char *sql, const char *w)
{
    while (*sql == ' ')
        sql++;
    size_t n = strlen(w);
    return !strncasecmp(sql, w, n) && (sql[n] == '\0' || sql[n] == ';' || sql[n] == ' ');
}

/* Tracks the transaction around a statement that succeeded. */
static void track(pg_db *p, const char *sql, bool begin)
{
    if (begin || word_is(sql, "BEGIN"))
        p->in_txn = true;
    else if (word_is(sql, "COMMIT") || word_is(sql, "ROLLBACK") || word_is(sql, "END"))
        p->in_txn = false;
}

/* ROLLBACK after a lost connection: the server already rolled back. */
static int rollback_lost(pg_db *p)
{
    p->in_txn = false;
    p->lost_txn = false;
    return FM_DB_OK;
}

/* Statements that end, open or mark a transaction: never guarded. */
static bool is_control(const char *sql)
{
    return word_is(sql, "BEGIN") || word_is(sql, "COMMIT") || word_is(sql, "END") ||
           word_is(sql, "ROLLBACK") || word_is(sql, "SAVEPOINT") || word_is(sql, "RELEASE");
}

/* Inside a transaction one failed statement aborts all of it on
 * PostgreSQL ("current transaction is aborted"), where SQLite fails that
 * statement alone and the transaction goes on: callers may treat a unique
 * violation as an answer, or retry a statement, and then commit.  So a
 * statement inside a transaction runs between a SAVEPOINT and its
 * RELEASE, sent with them in one pipeline (one round trip); when it
 * fails, rolling back to the savepoint leaves the transaction as it was
 * before the statement, as on SQLite. */
#define SP_SET "SAVEPOINT fm_stmt"
#define SP_RELEASE "RELEASE SAVEPOINT fm_stmt"
#define SP_UNDO "ROLLBACK TO SAVEPOINT fm_stmt; RELEASE SAVEPOINT fm_stmt"

static bool guarded(const pg_db *p, const char *sql)
{
    return p->in_txn && !p->lost_txn && !is_control(sql);
}

/* After a guarded statement failed: back to before it (the connection
 * may be gone, then the transaction is lost anyway). */
static void undo_statement(pg_db *p)
{
    if (PQstatus(p->conn) == CONNECTION_OK) PQclear(PQexec(p->conn, SP_UNDO));
}

static bool result_ok(const PGresult *r)
{
    ExecStatusType es = PQresultStatus(r);
    return es == PGRES_COMMAND_OK || es == PGRES_TUPLES_OK || es == PGRES_EMPTY_QUERY;
}

/* One entry of a pipeline: SQL text without parameters, or a statement
 * with its bound parameters. */
typedef struct pl_item {
    const char *sql;
    pg_stmt *st;
} pl_item;

/* Whether the bound values fit the types s was prepared for: a NULL fits
 * any type. */
static bool same_types(const pg_stmt *s)
{
    for (int i = 0; i < s->nparams; i++)
        if (s->vals[i] && s->types[i] != s->ptypes[i]) return false;
    return true;
}

/* Re-preparations a statement may make for new parameter types (an
 * integer where the first run had a NULL); each leaves the older one on
 * the server until the connection ends, so they are bounded. */
#define MAX_PREPS 4

/* Queues s: by name when it is prepared on this connection for types its
 * values fit; otherwise a persistent statement is prepared (again, with
 * the types it now has; a NULL keeps the type it had) first, in the same
 * pipeline (*prep: its Parse has a result of its own), and past
 * MAX_PREPS it is sent unnamed, parsed at every run. */
static bool send_stmt(pg_db *p, pg_stmt *s, bool *prep)
{
    PGconn *c = p->conn;
    const char *const *vals = (const char *const *)s->vals;
    *prep = false;
    bool fits = s->prep_gen == p->gen && same_types(s);
    if (s->preps_gen != p->gen) s->preps = 0, s->preps_gen = p->gen;
    if (s->keep && !fits && s->preps < MAX_PREPS) {
        if (s->prep_gen != p->gen) memset(s->ptypes, 0, sizeof s->ptypes);
        for (int i = 0; i < s->nparams; i++)
            if (s->vals[i] || !s->ptypes[i]) s->ptypes[i] = s->types[i];
        /* A fresh name each time: one whose Parse failed was never made. */
        snprintf(s->pname, sizeof s->pname, "fm%u", ++p->names);
        if (!PQsendPrepare(c, s->pname, s->sql, s->nparams, s->ptypes)) return false;
        s->prep_gen = 0; /* until its Parse is seen to succeed */
        s->preps++;
        *prep = fits = true;
    }
    if (s->keep && fits)
        return PQsendQueryPrepared(c, s->pname, s->nparams, vals, s->lens, s->fmts, 0);
    return PQsendQueryParams(c, s->sql, s->nparams, s->types, vals, s->lens, s->fmts, 0);
}

/* Sends n statements in one pipeline (one round trip), with a sync after
 * the first `split` of them (0: none) and one at the end.  false: not
 * sent (the connection is lost, or n is too large). */
static bool pl_send(pg_db *p, pl_state *ps, const pl_item *items, int n, int split)
{
    PGconn *c = p->conn;
    ps->nslots = ps->got = ps->nsync = ps->synced = 0;
    if (n > PL_MAX || !PQenterPipelineMode(c)) return false;
    bool sent = true;
    for (int i = 0; sent && i < n; i++) {
        bool prep = false;
        ps->st[i] = items[i].st;
        sent = items[i].st ? send_stmt(p, items[i].st, &prep)
                           : PQsendQueryParams(c, items[i].sql, 0, NULL, NULL, NULL, NULL, 0);
        if (prep) ps->slot[ps->nslots++] = -1 - i;
        if (sent) ps->slot[ps->nslots++] = i;
        if (sent && i + 1 == split) {
            ps->sync_at[ps->nsync++] = ps->nslots;
            sent = PQpipelineSync(c);
        }
    }
    ps->sync_at[ps->nsync++] = ps->nslots;
    sent = sent && PQpipelineSync(c);
    if (!sent) PQexitPipelineMode(c);
    return sent;
}

/* Collects the results up to the next sync: one per item into res (NULL:
 * none came, the connection was lost).  After a failed statement the
 * server skips the rest up to the sync: their results say
 * PGRES_PIPELINE_ABORTED.  A failure after the last statement before the
 * sync is the commit of the implicit transaction the sync ends (or the
 * connection ending in it): it becomes the result of that statement, so
 * a commit that failed never reads as one that succeeded.  true: the
 * sync came. */
static bool pl_collect(pg_db *p, pl_state *ps, PGresult **res)
{
    PGconn *c = p->conn;
    const int end = ps->sync_at[ps->synced < ps->nsync ? ps->synced : ps->nsync - 1];
    /* Each result is followed by NULL, the sync by nothing; bounded,
     * and two NULLs in a row mean nothing more is coming. */
    int nulls = 0;
    for (int i = 0; i < 4 * ps->nslots + 4 && nulls < 2; i++) {
        PGresult *r = PQgetResult(c);
        if (!r) {
            nulls++;
            continue;
        }
        nulls = 0;
        if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            ps->got = end;
            ps->synced++;
            return true;
        }
        if (ps->got >= end && end > 0 && !result_ok(r)) {
            const int last = ps->slot[end - 1]; /* an item: its Parse comes before it */
            PQclear(res[last]);
            res[last] = r;
            continue;
        }
        int at = ps->got < end ? ps->slot[ps->got++] : PL_MAX;
        if (at < 0 && PQresultStatus(r) == PGRES_COMMAND_OK) {
            ps->st[-1 - at]->prep_gen = p->gen; /* made: later runs skip parse and plan */
            PQclear(r);
        } else if (at < 0) {
            /* The Parse failed, so the server skips the run (PIPELINE_ABORTED,
             * no text): the Parse's failure, with the server's message, is
             * the statement's result. */
            res[-1 - at] = r;
        } else if (at < PL_MAX && !res[at]) {
            res[at] = r;
        } else {
            PQclear(r);
        }
    }
    return false;
}

/* Sends n statements in one pipeline (one round trip) and collects one
 * result each into res (as pl_collect). */
static void pipeline(pg_db *p, const pl_item *items, int n, PGresult **res)
{
    pl_state ps;
    for (int i = 0; i < n; i++)
        res[i] = NULL;
    if (!pl_send(p, &ps, items, n, 0)) return;
    pl_collect(p, &ps, res);
    PQexitPipelineMode(p->conn);
}

/* Reads what is left of a split pipeline (the flush): true when it
 * succeeded. */
static bool settle(pg_db *p)
{
    pl_state *ps = p->pending;
    if (!ps) return true;
    p->pending = NULL;
    PGresult *res[PL_MAX] = {0};
    bool synced = pl_collect(p, ps, res);
    PQexitPipelineMode(p->conn);
    bool ok = synced;
    for (int i = 0; i < PL_MAX; i++) {
        if (res[i] && !result_ok(res[i])) {
            if (ok) fail_res(p, res[i]);
            ok = false;
        }
        PQclear(res[i]);
    }
    if (!synced) fail_conn(p);
    return ok;
}

/* The first result of n that is not a success (-1: all are). */
static int first_failed(PGresult *const *res, int n)
{
    for (int i = 0; i < n; i++)
        if (!res[i] || !result_ok(res[i])) return i;
    return -1;
}

/* Keeps res[keep] (NULL when keep < 0), clears the others. */
static PGresult *keep_one(PGresult **res, int n, int keep)
{
    for (int i = 0; i < n; i++)
        if (i != keep) PQclear(res[i]);
    return keep >= 0 ? res[keep] : NULL;
}

/* The statement of s between SAVEPOINT and RELEASE: its result, or the
 * failure (NULL when nothing came back; PQerrorMessage says why). */
static PGresult *exec_guarded(pg_db *p, pg_stmt *s)
{
    const pl_item seq[] = {{SP_SET, NULL}, {NULL, s}, {SP_RELEASE, NULL}};
    PGresult *res[3];
    pipeline(p, seq, 3, res);
    int bad = first_failed(res, 3);
    if (bad < 0) return keep_one(res, 3, 1);
    undo_statement(p);
    /* A failed RELEASE after a statement that ran fails it all. */
    return keep_one(res, 3, res[bad] ? bad : -1);
}

/* The statement of s alone (a pipeline of one: a persistent statement's
 * Parse goes in the same round trip). */
static PGresult *exec_one(pg_db *p, pg_stmt *s)
{
    const pl_item one[] = {{NULL, s}};
    PGresult *r;
    pipeline(p, one, 1, &r);
    return r;
}

static int p_prepare(fm_db *d, const char *sql, fm_db_stmt **out)
{
    pg_stmt *s = calloc(1, sizeof *s);
    char *buf = malloc(SQL_MAX);
    if (!s || !buf) {
        free(s), free(buf);
        snprintf(PG(d)->err, sizeof PG(d)->err, "out of memory");
        return FM_DB_ERROR;
    }
    s->base.ops = &fm_db_pg_ops;
    s->base.db = d;
    s->row = -1;
    s->ncols = -1;
    s->blob_col = -1;
    s->begin = word_is(sql, "BEGIN IMMEDIATE");
    if (fm_db_sql_to_pg(sql, buf, SQL_MAX, s->names, &s->nparams)) {
        free(s), free(buf);
        PG(d)->code = FM_ERR_INTERNAL;
        snprintf(PG(d)->err, sizeof PG(d)->err, "SQL too long or too many parameters: %.80s", sql);
        return FM_DB_ERROR;
    }
    s->sql = buf;
    for (int i = 0; i < s->nparams; i++)
        s->lens[i] = 0;
    *out = &s->base;
    return FM_DB_OK;
}

static void drop_result(pg_stmt *s)
{
    PQclear(s->res);
    s->res = NULL;
    s->row = -1;
    free(s->blob);
    s->blob = NULL;
    s->blob_col = -1;
}

static int p_step(fm_db_stmt *st)
{
    pg_stmt *s = PS(st);
    pg_db *p = PG(st->db);
    if (s->res) {
        if (s->row < PQntuples(s->res)) s->row++;
        free(s->blob);
        s->blob = NULL;
        s->blob_col = -1;
        return s->row < PQntuples(s->res) ? FM_DB_ROW : FM_DB_DONE;
    }
    bool rb = word_is(s->sql, "ROLLBACK");
    if (p->lost_txn && (rb || s->begin || word_is(s->sql, "BEGIN"))) {
        /* A new BEGIN: the caller has left the lost transaction behind. */
        rollback_lost(p);
        if (rb) return FM_DB_OK;
    }
    if (p->lost_txn || !ready(p, rb)) {
        if (rb) return rollback_lost(p);
        return FM_DB_ERROR;
    }
    PGresult *r = s->begin             ? PQexec(p->conn, WRITE_LOCK_SQL)
                  : guarded(p, s->sql) ? exec_guarded(p, s)
                                       : exec_one(p, s);
    ExecStatusType es = PQresultStatus(r);
    if (es == PGRES_COMMAND_OK || es == PGRES_TUPLES_OK) {
        track(p, s->sql, s->begin);
        const char *ct = PQcmdTuples(r);
        if (es == PGRES_COMMAND_OK && ct && *ct) p->changes = atoi(ct);
        if (s->begin) {
            PQclear(r);
            s->res = PQmakeEmptyPGresult(p->conn, PGRES_COMMAND_OK);
            s->row = 0;
            return FM_DB_DONE;
        }
        s->res = r;
        s->row = 0;
        return PQntuples(r) > 0 ? FM_DB_ROW : FM_DB_DONE;
    }
    fail_res(p, r);
    PQclear(r);
    if (PQstatus(p->conn) == CONNECTION_BAD && p->in_txn && !s->begin) {
        p->lost_txn = true;
    } else if (s->begin && PQstatus(p->conn) == CONNECTION_OK) {
        /* BEGIN went through, the lock wait did not: leave no transaction. */
        PQclear(PQexec(p->conn, "ROLLBACK"));
    }
    return p->code == FM_ERR_TIMEOUT ? FM_DB_BUSY : FM_DB_ERROR;
}

/* The flush: a transaction that writes WAL and commits synchronously
 * (one that writes none commits without waiting for a flush: `SELECT
 * pg_current_xact_id()` alone assigns an xid and writes a commit
 * record, but 300 such commits made 1 WAL sync).  The write is a
 * transactional logical decoding message (PostgreSQL 9.6 and later,
 * any wal_level, EXECUTE granted to PUBLIC): it assigns the xid and
 * writes one WAL record of 60-odd bytes, and touches no table, index or
 * row lock, where the upsert of this connection's store_flush row that
 * it replaces looked up the key, locked and updated the row and wrote
 * about twice the WAL (bench/store-stmts.sh, 4 writers: its execution
 * 8-11 us per append against the upsert's 20-27, WAL 59 bytes against
 * 127).  A logical decoding consumer that
 * asks for messages sees empty ones with the prefix "fleetmcp".  Only
 * after a transaction that wrote (WROTE_SQL, just before its sync): a
 * statement that changed nothing (the audit insert that lost the race
 * for its id) has nothing to wait for. */
#define WROTE_SQL                                                                                  \
    "SELECT set_config('fm.wrote', (pg_current_xact_id_if_assigned() IS NOT NULL)::text, false),"  \
    " set_config('synchronous_commit', 'off', true)"
#define OWED_FLUSH_SQL "SELECT pg_logical_emit_message(true, 'fleetmcp', '')"
#define FLUSH_SQL OWED_FLUSH_SQL " WHERE current_setting('fm.wrote')='true'"

/* A parameterless statement of the commit pipeline, made once per
 * connection and then sent by name (NULL: out of memory; the caller
 * fails the append). */
static pg_stmt *kept(pg_db *p, pg_stmt **slot, const char *sql)
{
    if (*slot) return *slot;
    pg_stmt *s = calloc(1, sizeof *s);
    if (!s || !(s->sql = strdup(sql))) {
        free(s);
        return NULL;
    }
    s->base.ops = &fm_db_pg_ops;
    s->base.db = &p->base;
    s->row = s->ncols = s->blob_col = -1;
    s->keep = true;
    return *slot = s;
}

/* After a commit that succeeded and changed rows (wrote): an owed one
 * owes a flush; a synchronous one, or one whose flush rides in its
 * pipeline, also flushes what the owed commits before it on this
 * connection wrote (WAL is flushed in order).  One that wrote nothing
 * waits for no flush (it has no transaction id) and settles nothing. */
static void owed_after(pg_db *p, bool owes, bool wrote)
{
    if (!wrote) return;
    if (owes && !p->owed) p->owed_gen = p->gen;
    if (owes)
        p->owed = true;
    else if (p->owed_gen == p->gen)
        p->owed = false;
}

/* fm_db_step_commit_rows: the n statements and the read `then` (its
 * rows are what its fm_db_step returns) up to one sync, in one round
 * trip and one transaction: the implicit one of the extended protocol,
 * which the sync commits, or rolls back when any statement failed (the
 * server skips the rest up to the sync), so no BEGIN and no COMMIT
 * (two statements more, each parsed at every append, about a sixth of
 * the server's work per append).  THEN rides inside the transaction,
 * not after it: it sees the rows and every commit before them.
 *
 * early (fm_db_step_commit_visible: another writer waits for this
 * commit): the transaction commits with synchronous_commit off (WROTE,
 * set after the statements, read at the commit), so it is visible to
 * every writer at once, and after the sync a small write that commits
 * synchronously: its flush covers the rows (WAL is flushed in order),
 * and concurrent writers' flushes are shared by PostgreSQL's group
 * commit.  This returns at the sync; the flush's result is read by
 * fm_db_durable (p_durable), or before the next statement on this
 * connection.  A crash before the flush loses the rows and every row
 * after them (they come later in the WAL), never one alone, and the
 * caller acts on the rows only once they are durable.  Not early
 * (nobody waits): the transaction commits synchronously itself, and the
 * return says it is durable: no second transaction and no write of its
 * own (the flush statements cost the server as much as the insert).
 * FM_DB_COMMIT_OWED: visible as early, with no flush in the pipeline:
 * it is owed (p->owed, when a statement changed a row) and sent once,
 * for every such commit since, by fm_db_flush_start or fm_db_durable,
 * so a writer may commit more transactions on the connection first
 * without any of them waiting behind a flush.
 * changes (NULL: not wanted): the rows each statement changed. */
static int p_step_commit_rows(fm_db_stmt **ss, int n, fm_db_stmt *then, int early, int *changes)
{
    pg_stmt *s = PS(ss[0]);
    pg_db *p = PG(ss[0]->db);
    if (n == 1 && (s->res || p->in_txn || p->lost_txn)) { /* the caller commits */
        int rc = p_step(ss[0]);
        if (changes) changes[0] = rc == FM_DB_DONE || rc == FM_DB_ROW ? p->changes : 0;
        return rc;
    }
    if (n < 1 || n > FM_DB_COMMIT_ROWS || p->in_txn || p->lost_txn || !ready(p, false))
        return FM_DB_ERROR;
    if (then) drop_result(PS(then));
    const bool piped = early == FM_DB_COMMIT_EARLY, owes = early == FM_DB_COMMIT_OWED;
    pg_stmt *wrote = early ? kept(p, &p->wrote, WROTE_SQL) : NULL;
    pg_stmt *flush = piped ? kept(p, &p->flush, FLUSH_SQL) : NULL;
    pl_state *ps = &p->pend; /* free: ready() settled any pending flush */
    if ((early && !wrote) || (piped && !flush)) {
        p->code = FM_ERR_NOMEM;
        snprintf(p->err, sizeof p->err, "out of memory");
        return FM_DB_ERROR;
    }
    pl_item items[PL_MAX];
    int k = 0;
    for (int i = 0; i < n; i++)
        items[k++] = (pl_item){NULL, PS(ss[i])};
    if (early) items[k++] = (pl_item){NULL, wrote};
    const int at_then = then ? k : -1;
    if (then) items[k++] = (pl_item){NULL, PS(then)};
    const int n1 = k; /* up to the sync that commits */
    if (piped) items[k++] = (pl_item){NULL, flush};
    PGresult *res[PL_MAX] = {0};
    bool sent = pl_send(p, ps, items, k, piped ? n1 : 0);
    const bool synced = sent && pl_collect(p, ps, res);
    if (sent && piped)
        p->pending = ps; /* the flush, after the sync */
    else if (sent)
        PQexitPipelineMode(p->conn);
    /* Without the sync nobody knows whether the commit happened. */
    int bad = synced ? first_failed(res, n1) : n1 - 1;
    if (bad < 0) {
        bool changed = false;
        for (int i = 0; i < n; i++) {
            const char *ct = PQcmdTuples(res[i]);
            int c = ct && *ct ? atoi(ct) : 0;
            changed = changed || c > 0;
            if (i == 0) p->changes = c;
            if (changes) changes[i] = c;
            PS(ss[i])->res = res[i];
            PS(ss[i])->row = 0;
            res[i] = NULL;
        }
        if (then) {
            PS(then)->res = res[at_then];
            PS(then)->row = -1; /* its first fm_db_step returns the first row */
            res[at_then] = NULL;
        }
        owed_after(p, owes, changed);
        keep_one(res, k, -1);
        return PQntuples(s->res) > 0 ? FM_DB_ROW : FM_DB_DONE;
    }
    /* The flush after the sync fails too when the transaction failed:
     * read it first, so the error said is the statement's. */
    (void)settle(p);
    fail_res(p, synced ? res[bad] : NULL);
    keep_one(res, k, -1);
    /* Only a pipeline that never reached its sync can leave one open. */
    if (PQstatus(p->conn) == CONNECTION_OK && PQtransactionStatus(p->conn) != PQTRANS_IDLE)
        PQclear(PQexec(p->conn, "ROLLBACK"));
    return p->code == FM_ERR_TIMEOUT ? FM_DB_BUSY : FM_DB_ERROR;
}

/* fm_db_flush_start: the owed flush sent, its result left pending (a
 * pipeline of its own, read by settle).  It proves nothing on another
 * connection than the commits': the server may have restarted between. */
static int p_flush_start(fm_db *d)
{
    pg_db *p = PG(d);
    if (!p->owed) return FM_DB_OK;
    p->owed = false;
    pg_stmt *f = kept(p, &p->owed_flush, OWED_FLUSH_SQL);
    const pl_item it = {NULL, f};
    /* A flush already in flight (after a later commit that wrote nothing:
     * an empty one) is read first, its pipeline is the one this uses; it
     * fails only with the connection, which settle then says. */
    if (settle(p)) {
        if (p->owed_gen != p->gen) {
            p->code = FM_ERR_UNAVAILABLE;
            snprintf(p->err, sizeof p->err,
                     "PostgreSQL at %s: the connection was lost before the commit's flush; the"
                     " rows may not be durable",
                     p->where);
        } else if (!f) {
            p->code = FM_ERR_NOMEM;
            snprintf(p->err, sizeof p->err, "out of memory");
        } else if (!pl_send(p, &p->pend, &it, 1, 0)) {
            fail_conn(p);
        } else {
            p->pending = &p->pend;
            return FM_DB_OK;
        }
    }
    p->owed_lost = true;
    return FM_DB_ERROR;
}

/* fm_db_durable: the flush of the last fm_db_step_commit_visible, or the
 * one owed (sent first when it was not). */
static int p_durable(fm_db *d)
{
    pg_db *p = PG(d);
    (void)p_flush_start(d);
    const bool lost = p->owed_lost;
    p->owed_lost = false;
    if (lost) return FM_DB_ERROR;
    return settle(p) ? FM_DB_OK : FM_DB_ERROR;
}

static void p_persist(fm_db_stmt *st)
{
    PS(st)->keep = true;
}

static int p_reset(fm_db_stmt *st)
{
    drop_result(PS(st));
    return FM_DB_OK;
}

static int p_clear(fm_db_stmt *st)
{
    pg_stmt *s = PS(st);
    for (int i = 0; i < s->nparams; i++) {
        free(s->vals[i]);
        s->vals[i] = NULL;
        s->lens[i] = s->fmts[i] = 0;
        s->types[i] = 0;
    }
    return FM_DB_OK;
}

static int p_finalize(fm_db_stmt *st)
{
    p_clear(st);
    drop_result(PS(st));
    free(PS(st)->sql);
    free(st);
    return FM_DB_OK;
}

static int p_bind(fm_db_stmt *st, int i, int type, const void *v, int n, fm_db_int64 iv, double dv)
{
    pg_stmt *s = PS(st);
    if (i < 1 || i > s->nparams) return 25; /* SQLITE_RANGE */
    i--;
    free(s->vals[i]);
    s->vals[i] = NULL;
    s->lens[i] = s->fmts[i] = 0;
    s->types[i] = 0; /* unknown: the server takes the column's type */
    char num[40];
    switch (type) {
    case FM_DB_TEXT:
    case FM_DB_TEXT_BORROWED: /* copied all the same: the values outlive the bind here */
        s->vals[i] = strndup(v, (size_t)n);
        break;
    case FM_DB_BLOB:
        s->vals[i] = malloc(n ? (size_t)n : 1);
        if (s->vals[i]) memcpy(s->vals[i], v, (size_t)n);
        s->lens[i] = n;
        s->fmts[i] = 1;
        s->types[i] = BYTEA_OID;
        break;
    case FM_DB_INTEGER:
        snprintf(num, sizeof num, "%lld", (long long)iv);
        s->vals[i] = strdup(num);
        s->types[i] = INT8_OID;
        break;
    case FM_DB_FLOAT:
        snprintf(num, sizeof num, "%.17g", dv);
        s->vals[i] = strdup(num);
        s->types[i] = FLOAT8_OID;
        break;
    default:
        return FM_DB_OK;
    }
    return s->vals[i] ? FM_DB_OK : 7; /* SQLITE_NOMEM */
}

static int p_nparams(fm_db_stmt *st)
{
    return PS(st)->nparams;
}

static int p_pindex(fm_db_stmt *st, const char *name)
{
    pg_stmt *s = PS(st);
    for (int i = 0; i < s->nparams; i++)
        if (!strcmp(s->names[i], name)) return i + 1;
    return 0;
}

static int p_ncols(fm_db_stmt *st)
{
    pg_stmt *s = PS(st);
    if (s->res) return PQnfields(s->res);
    if (s->ncols >= 0) return s->ncols;
    pg_db *p = PG(st->db);
    if (!ready(p, false)) return 0;
    /* Not run yet: ask the server for the shape. */
    PGresult *r = PQprepare(p->conn, "", s->sql, s->nparams, s->types);
    PQclear(r);
    r = PQdescribePrepared(p->conn, "");
    s->ncols = PQresultStatus(r) == PGRES_COMMAND_OK ? PQnfields(r) : 0;
    PQclear(r);
    return s->ncols;
}

static bool has_cell(pg_stmt *s, int i)
{
    return s->res && s->row >= 0 && s->row < PQntuples(s->res) && i >= 0 && i < PQnfields(s->res);
}

static int p_ctype(fm_db_stmt *st, int i)
{
    pg_stmt *s = PS(st);
    if (!has_cell(s, i) || PQgetisnull(s->res, s->row, i)) return FM_DB_NULL;
    switch (PQftype(s->res, i)) {
    case INT8_OID:
    case INT4_OID:
    case INT2_OID:
    case BOOL_OID:
        return FM_DB_INTEGER;
    case FLOAT4_OID:
    case FLOAT8_OID:
        return FM_DB_FLOAT;
    case NUMERIC_OID:
        return strchr(PQgetvalue(s->res, s->row, i), '.') ? FM_DB_FLOAT : FM_DB_INTEGER;
    case BYTEA_OID:
        return FM_DB_BLOB;
    default:
        return FM_DB_TEXT;
    }
}

static const char *p_cname(fm_db_stmt *st, int i)
{
    return PS(st)->res ? PQfname(PS(st)->res, i) : NULL;
}

static const unsigned char *p_ctext(fm_db_stmt *st, int i)
{
    pg_stmt *s = PS(st);
    if (!has_cell(s, i) || PQgetisnull(s->res, s->row, i)) return NULL;
    return (const unsigned char *)PQgetvalue(s->res, s->row, i);
}

static const void *p_cblob(fm_db_stmt *st, int i)
{
    pg_stmt *s = PS(st);
    if (!has_cell(s, i) || PQgetisnull(s->res, s->row, i)) return NULL;
    if (PQftype(s->res, i) != BYTEA_OID) return PQgetvalue(s->res, s->row, i);
    if (s->blob_col != i) {
        free(s->blob);
        s->blob =
            PQunescapeBytea((const unsigned char *)PQgetvalue(s->res, s->row, i), &s->blob_len);
        s->blob_col = s->blob ? i : -1;
    }
    return s->blob;
}

static int p_cbytes(fm_db_stmt *st, int i)
{
    pg_stmt *s = PS(st);
    if (!has_cell(s, i) || PQgetisnull(s->res, s->row, i)) return 0;
    if (PQftype(s->res, i) != BYTEA_OID) return PQgetlength(s->res, s->row, i);
    return p_cblob(st, i) ? (int)s->blob_len : 0;
}

static fm_db_int64 p_cint64(fm_db_stmt *st, int i)
{
    const char *v = (const char *)p_ctext(st, i);
    if (!v) return 0;
    if (!strcmp(v, "t")) return 1;
    return strtoll(v, NULL, 10);
}

static double p_cdouble(fm_db_stmt *st, int i)
{
    const char *v = (const char *)p_ctext(st, i);
    return v ? strtod(v, NULL) : 0;
}

static int p_exec(fm_db *d, const char *sql, char **errmsg)
{
    pg_db *p = PG(d);
    bool rb = word_is(sql, "ROLLBACK");
    int rc = FM_DB_OK;
    char *buf = NULL;
    if (p->lost_txn && word_is(sql, "BEGIN")) rollback_lost(p);
    if (p->lost_txn || !ready(p, rb)) {
        if (rb) return rollback_lost(p);
        rc = FM_DB_ERROR;
        goto out;
    }
    bool begin = word_is(sql, "BEGIN IMMEDIATE");
    char names[FM_DB_MAX_PARAMS][32];
    int np;
    buf = malloc(SQL_MAX);
    if (!buf || fm_db_sql_to_pg(sql, buf, SQL_MAX, names, &np)) {
        snprintf(p->err, sizeof p->err, "SQL too long to rewrite for PostgreSQL");
        rc = FM_DB_ERROR;
        goto out;
    }
    /* Several statements in one string (DDL): guarded as one, in the
     * same round trip; PQexec stops at the first that fails. */
    bool guard = !begin && guarded(p, buf);
    if (guard) {
        size_t n = strlen(buf);
        if (n + sizeof SP_SET + sizeof SP_RELEASE + 4 > SQL_MAX) {
            snprintf(p->err, sizeof p->err, "SQL too long to rewrite for PostgreSQL");
            rc = FM_DB_ERROR;
            goto out;
        }
        memmove(buf + sizeof SP_SET + 1, buf, n + 1);
        memcpy(buf, SP_SET "; ", sizeof SP_SET + 1);
        strcat(buf, "; " SP_RELEASE);
    }
    PGresult *r = PQexec(p->conn, begin ? WRITE_LOCK_SQL : buf);
    if (result_ok(r)) {
        track(p, buf, begin);
    } else {
        fail_res(p, r);
        if (guard) undo_statement(p);
        if (PQstatus(p->conn) == CONNECTION_BAD && p->in_txn) p->lost_txn = true;
        rc = FM_DB_ERROR;
    }
    PQclear(r);
out:
    free(buf);
    if (rc != FM_DB_OK && errmsg) *errmsg = strdup(p->err);
    return rc;
}

static int p_changes(fm_db *d)
{
    return PG(d)->changes;
}

/* Right after an INSERT into a table with an identity column (the only
 * use): the value that INSERT drew. */
static fm_db_int64 p_lastid(fm_db *d)
{
    pg_db *p = PG(d);
    (void)settle(p);
    PGresult *r = PQexec(p->conn, "SELECT lastval()");
    fm_db_int64 id = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1
                         ? strtoll(PQgetvalue(r, 0, 0), NULL, 10)
                         : 0;
    PQclear(r);
    return id;
}

static int p_autocommit(fm_db *d)
{
    pg_db *p = PG(d);
    if (p->lost_txn) return 0;
    (void)settle(p);
    return PQtransactionStatus(p->conn) == PQTRANS_IDLE;
}

static const char *p_errmsg(fm_db *d)
{
    return PG(d)->err[0] ? PG(d)->err : "no error";
}
static fm_code p_errcode(fm_db *d)
{
    return PG(d)->code ? PG(d)->code : FM_ERR_IO;
}

const fm_db_ops fm_db_pg_ops = {
    .name = "postgresql",
    .open = p_open,
    .open_readonly = NULL, /* fm_db_open_readonly: a read-only session */
    .close = p_close,
    .prepare = p_prepare,
    .step = p_step,
    .step_commit_rows = p_step_commit_rows,
    .durable = p_durable,
    .flush_start = p_flush_start,
    .persist = p_persist,
    .reset = p_reset,
    .clear_bindings = p_clear,
    .finalize = p_finalize,
    .bind = p_bind,
    .bind_parameter_count = p_nparams,
    .bind_parameter_index = p_pindex,
    .column_count = p_ncols,
    .column_type = p_ctype,
    .column_name = p_cname,
    .column_text = p_ctext,
    .column_blob = p_cblob,
    .column_bytes = p_cbytes,
    .column_int64 = p_cint64,
    .column_double = p_cdouble,
    .exec = p_exec,
    .changes = p_changes,
    .last_insert_rowid = p_lastid,
    .get_autocommit = p_autocommit,
    .errmsg = p_errmsg,
    .errcode = p_errcode,
    .maintenance_due = NULL,
    .maintenance = NULL,
};
