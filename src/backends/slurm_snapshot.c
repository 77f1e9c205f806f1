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
/* Data access: this file owns the tables slurm_node_snapshot_rows, slurm_node_snapshots; every statement on
 * them is here, others call its functions (the data-access stage checks). */
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

static int ready(fm_store *st, fm_err *err)
{
    if (!st || !st->db) return fm_err_set(err, FM_ERR_UNAVAILABLE, "the store is not open"), -1;
    return fm_store_migrate(st, "slurm_snapshot", 1, ddl, err) ||
                   fm_store_migrate(st, "slurm_snapshot", 2, ddl_v2, err)
               ? -1
               : 0;
}

static int corrupt(fm_err *err, const char *what)
{
    fm_err_set(err, FM_ERR_PARSE, "the node table snapshot in the store is damaged (%s)", what);
    return -1;
}

int fm_slurm_snapshot_load(fm_store *st, const char *source, const char *cluster, fm_slurm_table *t,
                           long long after, long long until, size_t max, fm_err *err)
{
    if (!cluster || !*cluster) return 1; /* no name, no snapshot: see the top */
    if (ready(st, err)) return -1;
    fm_db_stmt *q = fm_store_stmt(st, load_sql, err);
    if (!q) return -1;
    fm_db_bind_text(q, 1, source, -1, FM_DB_STATIC);
    fm_db_bind_text(q, 2, cluster, -1, FM_DB_STATIC);
    fm_db_bind_int64(q, 3, after);
    fm_db_bind_int64(q, 4, until);
    fm_db_bind_int64(q, 5, max > INT64_MAX ? INT64_MAX : (fm_db_int64)max);
    long long stamp = 0, bytes = 0;
    char sum[65] = "";
    char *text = NULL;
    size_t len = 0;
    int rc = 0, step = FM_DB_DONE;
    while (!rc && (step = fm_db_step(q)) == FM_DB_ROW) {
        if (!text) {
            stamp = fm_db_column_int64(q, 0);
            bytes = fm_db_column_int64(q, 1);
            snprintf(sum, sizeof sum, "%s", (const char *)fm_db_column_text(q, 2));
            if (bytes <= 0 || (size_t)bytes > max) {
                rc = corrupt(err, "size");
                break;
            }
            if (!(text = malloc((size_t)bytes + 1))) {
                fm_err_set(err, FM_ERR_NOMEM, "node table snapshot");
                rc = -1;
                break;
            }
        }
        const char *b = (const char *)fm_db_column_text(q, 3);
        size_t n = b ? (size_t)fm_db_column_bytes(q, 3) : 0;
        if (n > (size_t)bytes - len) {
            rc = corrupt(err, "longer than its size");
            break;
        }
        memcpy(text + len, b, n);
        len += n;
    }
    if (!rc && step != FM_DB_DONE) {
        fm_store_fail(st, err, "reading the node table snapshot");
        rc = -1;
    }
    fm_db_reset(q);
    if (!rc && !text) return 1; /* none */
    char got[65] = "";
    if (!rc && (size_t)bytes != len) rc = corrupt(err, "rows missing");
    if (!rc) fm_sha256_hex(text, len, got);
    /* Rows that are not what their writer hashed are refused, whatever they parse as. */
    if (!rc && strcmp(sum, got)) rc = corrupt(err, "digest");
    if (rc) {
        free(text);
        return -1;
    }
    return fm_slurm_table_restore_owned(t, text, len, stamp, err) ? -1 : 0;
}

/* One INSERT of up to PER_INSERT rows: "(?, ?, ?)" each. */
static int insert_rows(fm_store *st, const char *source, int seq0, const char *const *row,
                       const int *rlen, int n, fm_err *err)
{
    char sql[128 + PER_INSERT * 12];
    int l =
        snprintf(sql, sizeof sql, "INSERT INTO slurm_node_snapshot_rows(source, seq, body) VALUES");
    for (int i = 0; i < n; i++)
        l += snprintf(sql + l, sizeof sql - (size_t)l, "%s(?, ?, ?)", i ? ", " : " ");
    fm_db_stmt *q = NULL;
    if (fm_db_prepare_v2(st->db, sql, -1, &q, NULL) != FM_DB_OK) {
        fm_store_fail(st, err, "writing the node table snapshot");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        fm_db_bind_text(q, 3 * i + 1, source, -1, FM_DB_STATIC);
        fm_db_bind_int(q, 3 * i + 2, seq0 + i);
        fm_db_bind_text(q, 3 * i + 3, row[i], rlen[i], FM_DB_STATIC);
    }
    int rc = fm_db_step(q) == FM_DB_DONE ? 0 : -1;
    if (rc) fm_store_fail(st, err, "writing the node table snapshot");
    fm_db_finalize(q);
    return rc;
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

/* Runs one cached statement binding source (and nothing else); its step result. */
static int step_source(fm_store *st, const char *sql, const char *source, fm_err *err,
                       long long *val)
{
    fm_db_stmt *q = fm_store_stmt(st, sql, err);
    if (!q) return -1;
    fm_db_bind_text(q, 1, source, -1, FM_DB_STATIC);
    int rc = fm_db_step(q);
    if (rc == FM_DB_ROW && val) *val = fm_db_column_int64(q, 0);
    fm_db_reset(q);
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
    fm_db_stmt *q = rc >= 0 ? fm_store_stmt(st, head_sql, err) : NULL;
    if (q) {
        fm_db_bind_text(q, 1, source, -1, FM_DB_STATIC);
        fm_db_bind_text(q, 2, cluster, -1, FM_DB_STATIC);
        fm_db_bind_int64(q, 3, fm_slurm_table_stamp(t));
        fm_db_bind_int64(q, 4, (fm_db_int64)fm_slurm_table_size(t));
        fm_db_bind_int64(q, 5, (fm_db_int64)len);
        fm_db_bind_text(q, 6, sum, -1, FM_DB_STATIC);
        fm_db_bind_int64(q, 7, fm_now_ms());
        rc = fm_db_step(q) == FM_DB_DONE ? 0 : -1;
        if (rc) fm_store_fail(st, err, "writing the node table snapshot");
        fm_db_reset(q);
        fm_db_clear_bindings(q);
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
