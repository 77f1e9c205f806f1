/* The node table's snapshot in the store (fm_slurm_table.h): per slurmrestd
 * source, one header row (slurmctld's stamp, size, digest) and the table's
 * text in rows of whole lines of at most CHUNK bytes.
 *
 * Why chunks of ~1.9 kB (measured, bench/snapshot.sh, 16,384 nodes, 5.4 MB
 * of text, a loaded VM): as one value, PostgreSQL compresses and TOASTs
 * it, and its SELECT alone took 203-206 ms, over the whole first call's
 * budget; from rows under the 2 kB TOAST threshold (stored inline) the
 * whole restore took 109-150 ms there, and on SQLite both forms cost about
 * the same (~40 ms).  Lines are never cut, so every row is valid UTF-8
 * text; inserts go 21 rows per statement.
 *
 * The snapshot is a cache of what Slurm said, never a source of truth: a
 * process restores it only when its stamp is not newer than slurmctld's
 * clock now, then asks Slurm the same conditional reads it asks of its own
 * table, so a change made since is seen as it would have been.  Header and
 * rows are read in one statement (one consistent view on both engines) and
 * the digest over the whole text is checked before anything is restored.
 *
 * A snapshot belongs to one cluster: slurmctld's ClusterName is in its key
 * (slurm_rest.c) and in its header, and a restore asks for both, since two
 * clusters can sit behind one endpoint string (one socket path, or
 * localhost:6820, on two hosts sharing a PostgreSQL store) with clocks
 * close enough that the stamp window alone would pass the other's table. */
/* Data access: this file owns the tables slurm_node_snapshot_rows, slurm_node_snapshots; every
 * statement on them is here, others call its functions (the data-access stage checks). */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleetmcp/fm_slurm_table.h"
#include "fleetmcp/fm_store.h"
#include "fleetmcp/fm_util.h"

#define CHUNK 1900    /* under PostgreSQL's TOAST threshold (2032 bytes) with the row's header */
#define PER_INSERT 21 /* rows per INSERT: 63 of FM_DB_MAX_PARAMS' 64 placeholders */

static const char ddl[] =
    "CREATE TABLE slurm_node_snapshots("
    " source TEXT PRIMARY KEY," /* sha256 of cluster, endpoint, API version, domain patterns */
    " stamp INTEGER NOT NULL,"  /* slurmctld's clock before the listing was packed */
    " nodes INTEGER NOT NULL, bytes INTEGER NOT NULL, sha256 TEXT NOT NULL,"
    " written_ms INTEGER NOT NULL);"
    "CREATE TABLE slurm_node_snapshot_rows("
    " source TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL,"
    " PRIMARY KEY(source, seq));";
/* v2: the cluster's name in the header, checked on restore.  Snapshots
 * are a cache, so v1's (keyed without the cluster) are dropped rather than
 * guessed at. */
static const char ddl_v2[] =
    "DELETE FROM slurm_node_snapshot_rows; DELETE FROM slurm_node_snapshots;"
    "ALTER TABLE slurm_node_snapshots ADD COLUMN cluster TEXT NOT NULL DEFAULT '';";

/* The size is checked before any row is read: an oversized snapshot costs nothing. */
static const char load_sql[] =
    "SELECT s.stamp, s.bytes, s.sha256, r.body FROM slurm_node_snapshots s"
    " JOIN slurm_node_snapshot_rows r ON r.source = s.source"
    " WHERE s.source = ? AND s.cluster = ? AND s.stamp > ? AND s.stamp <= ? AND s.bytes <= ?"
    " ORDER BY r.seq";
static const char stamp_sql[] = "SELECT stamp FROM slurm_node_snapshots WHERE source = ?";
static const char clear_sql[] = "DELETE FROM slurm_node_snapshot_rows WHERE source = ?";
static const char head_sql[] =
    "INSERT INTO slurm_node_snapshots(source, cluster, stamp, nodes, bytes, sha256, written_ms)"
    " VALUES(?, ?, ?, ?, ?, ?, ?) ON CONFLICT(source) DO UPDATE SET"
    " cluster = excluded.cluster, stamp = excluded.stamp, nodes = excluded.nodes,"
    " bytes = excluded.bytes,"
    " sha256 = excluded.sha256, written_ms = excluded.written_ms";

/* The schema is checked once per connection, not at every load and save
 * (fm_store_migrate takes the write lock when it has something to check):
 * the mark is kept only once the check is committed, so a check inside a
 * transaction that may still roll back (a group-commit batch) runs again. */
static int ready(fm_store *st, fm_err *err)
{
    if (!st || !st->db) return fm_err_set(err, FM_ERR_UNAVAILABLE, "the store is not open"), -1;
    if (fm_db_marked(st->db, ddl_v2)) return 0;
    if (fm_store_migrate(st, "slurm_snapshot", 1, ddl, err) ||
        fm_store_migrate(st, "slurm_snapshot", 2, ddl_v2, err))
        return -1;
    if (!st->probe && fm_db_get_autocommit(st->db)) fm_db_mark(st->db, ddl_v2);
    return 0;
}

static int corrupt(fm_err *err, const char *what)
{
    fm_err_set(err, FM_ERR_PARSE, "the node table snapshot in the store is damaged (%s)", what);
    return -1;
}

/* load_sql's rows gathered: the header from the first, each row's body
 * appended (rc -1 with err: stop, damaged or out of memory). */
typedef struct {
    size_t max;
    long long stamp, bytes;
    char sum[65];
    char *text;
    size_t len;
    int rc;
    fm_err *err;
} load_acc;

static int load_row(fm_db_stmt *q, void *arg)
{
    load_acc *a = arg;
    if (!a->text) {
        a->stamp = fm_db_column_int64(q, 0);
        a->bytes = fm_db_column_int64(q, 1);
        snprintf(a->sum, sizeof a->sum, "%s", (const char *)fm_db_column_text(q, 2));
        if (a->bytes <= 0 || (size_t)a->bytes > a->max) return a->rc = corrupt(a->err, "size"), 1;
        if (!(a->text = malloc((size_t)a->bytes + 1))) {
            fm_err_set(a->err, FM_ERR_NOMEM, "node table snapshot");
            return a->rc = -1, 1;
        }
    }
    const char *b = (const char *)fm_db_column_text(q, 3);
    size_t n = b ? (size_t)fm_db_column_bytes(q, 3) : 0;
    if (n > (size_t)a->bytes - a->len) return a->rc = corrupt(a->err, "longer than its size"), 1;
    memcpy(a->text + a->len, b, n);
    a->len += n;
    return 0;
}

int fm_slurm_snapshot_load(fm_store *st, const char *source, const char *cluster, fm_slurm_table *t,
                           long long after, long long until, size_t max, fm_err *err)
{
    if (!cluster || !*cluster) return 1; /* no name, no snapshot: see the top */
    if (ready(st, err)) return -1;
    load_acc a = {.max = max, .err = err};
    int step = fm_db_run(st->db, load_sql, load_row, &a, "ttiii", source, cluster, (int64_t)after,
                         (int64_t)until, (int64_t)(max > INT64_MAX ? INT64_MAX : (fm_db_int64)max));
    int rc = a.rc;
    char *text = a.text;
    size_t len = a.len;
    if (!rc && step != FM_DB_DONE) {
        fm_store_fail(st, err, "reading the node table snapshot");
        rc = -1;
    }
    if (!rc && !text) return 1; /* none */
    char got[65] = "";
    if (!rc && (size_t)a.bytes != len) rc = corrupt(err, "rows missing");
    if (!rc) fm_sha256_hex(text, len, got);
    /* Rows that are not what their writer hashed are refused, whatever they parse as. */
    if (!rc && strcmp(a.sum, got)) rc = corrupt(err, "digest");
    if (rc) {
        free(text);
        return -1;
    }
    return fm_slurm_table_restore_owned(t, text, len, a.stamp, err) ? -1 : 0;
}

/* The multi-row INSERTs, literals so that each is one kept statement
 * (fm_db_run keys statements by address): PER_INSERT rows, and the sizes a
 * shorter last batch is made of (at most four statements for it). */
#define INS_HEAD "INSERT INTO slurm_node_snapshot_rows(source, seq, body) VALUES "
#define ROWS1 "(?, ?, ?)"
#define ROWS2 ROWS1 ", " ROWS1
#define ROWS4 ROWS2 ", " ROWS2
#define ROWS8 ROWS4 ", " ROWS4
#define ROWS16 ROWS8 ", " ROWS8
static const struct {
    int n;
    const char *sql;
} inserts[] = {
    {PER_INSERT, INS_HEAD ROWS16 ", " ROWS4 ", " ROWS1},
    {16, INS_HEAD ROWS16},
    {8, INS_HEAD ROWS8},
    {4, INS_HEAD ROWS4},
    {2, INS_HEAD ROWS2},
    {1, INS_HEAD ROWS1},
};

/* Up to PER_INSERT rows, in as few INSERTs as the sizes above allow. */
static int insert_rows(fm_store *st, const char *source, int seq0, const char *const *row,
                       const int *rlen, int n, fm_err *err)
{
    fm_db_param p[3 * PER_INSERT];
    for (size_t k = 0; n > 0 && k < sizeof inserts / sizeof inserts[0]; k++) {
        while (n >= inserts[k].n) {
            int m = inserts[k].n;
            for (int i = 0; i < m; i++) {
                p[3 * i] = (fm_db_param){.type = 't', .p = source};
                p[3 * i + 1] = (fm_db_param){.type = 'i', .i = seq0 + i};
                p[3 * i + 2] = (fm_db_param){.type = 'T', .p = row[i], .len = rlen[i]};
            }
            if (fm_db_run_params(st->db, inserts[k].sql, NULL, NULL, p, 3 * m) != FM_DB_DONE) {
                fm_store_fail(st, err, "writing the node table snapshot");
                return -1;
            }
            seq0 += m;
            row += m;
            rlen += m;
            n -= m;
        }
    }
    return 0;
}

/* The text's rows, each whole lines of at most CHUNK bytes (a longer line alone). */
static int write_rows(fm_store *st, const char *source, const char *text, size_t len, fm_err *err)
{
    const char *row[PER_INSERT];
    int rlen[PER_INSERT], n = 0, seq = 0;
    for (const char *p = text, *end = text + len; p < end;) {
        const char *cut = p, *nl;
        while (cut < end && (nl = memchr(cut, '\n', (size_t)(end - cut))) &&
               (nl + 1 - p <= CHUNK || cut == p))
            cut = nl + 1;
        if (cut == p) cut = end; /* no newline left (the writer always ends with one) */
        row[n] = p;
        rlen[n++] = (int)(cut - p);
        p = cut;
        if (n == PER_INSERT || p == end) {
            if (insert_rows(st, source, seq, row, rlen, n, err)) return -1;
            seq += n;
            n = 0;
        }
    }
    return 0;
}

/* Runs sql binding source (and nothing else), its first column into
 * *val when there is a row; FM_DB_ROW, FM_DB_DONE, or -1 with err. */
static int step_source(fm_store *st, const char *sql, const char *source, fm_err *err,
                       long long *val)
{
    int64_t v = 0;
    int rc = fm_db_run(st->db, sql, val ? fm_db_row_int64 : NULL, &v, "t", source);
    if (rc == FM_DB_ROW && val) *val = v;
    if (rc == FM_DB_ROW || rc == FM_DB_DONE) return rc;
    fm_store_fail(st, err, "writing the node table snapshot");
    return -1;
}

int fm_slurm_snapshot_save(fm_store *st, const char *source, const char *cluster,
                           const fm_slurm_table *t, size_t max, fm_err *err)
{
    if (!cluster || !*cluster)
        return fm_err_set(err, FM_ERR_INVALID, "a node table snapshot needs the cluster's name"),
               -1;
    if (ready(st, err)) return -1;
    size_t len = 0;
    /* Row lengths are ints. */
    char *text = fm_slurm_table_snapshot(t, max < INT_MAX ? max : INT_MAX, &len, err);
    if (!text) return -1;
    char sum[65];
    fm_sha256_hex(text, len, sum);
    long long have = 0;
    int rc = fm_store_begin(st, err);
    if (!rc) rc = step_source(st, stamp_sql, source, err, &have);
    /* A snapshot never replaces a newer one (two writers racing after a change). */
    if (rc == FM_DB_ROW && have > fm_slurm_table_stamp(t)) {
        fm_store_rollback(st);
        free(text);
        return 0;
    }
    if (rc >= 0) rc = step_source(st, clear_sql, source, err, NULL);
    if (rc >= 0) rc = write_rows(st, source, text, len, err);
    if (rc >= 0) {
        rc = fm_db_run(st->db, head_sql, NULL, NULL, "ttiiiti", source, cluster,
                       (int64_t)fm_slurm_table_stamp(t), (int64_t)fm_slurm_table_size(t),
                       (int64_t)len, sum, (int64_t)fm_now_ms()) == FM_DB_DONE
                 ? 0
                 : -1;
        if (rc) fm_store_fail(st, err, "writing the node table snapshot");
    } else {
        rc = -1;
    }
    if (!rc)
        rc = fm_store_commit(st, err) ? -1 : 0;
    else if (!fm_db_get_autocommit(st->db))
        fm_store_rollback(st);
    free(text);
    return rc;
}
