/* The node table's snapshot in the store (fm_slurm_table.h): one row per
 * slurmrestd source, the table's text as one value.
 *
 * One value, not a row per node: at 16,384 nodes a restore from one value
 * took a fraction of reading 16,384 rows (bench/snapshot-load.sh: see the
 * README's Benchmark section), and the table is only ever replaced whole
 * (Slurm's update_time is table-wide), so rows would buy no smaller write.
 * TEXT, not BLOB: the text is UTF-8 without NUL, and PostgreSQL then sends
 * it as it is instead of bytea's hex, twice the size.
 *
 * The snapshot is a cache of what Slurm said, never a source of truth: a
 * process restores it only when its stamp is not newer than slurmctld's
 * clock now, and then asks Slurm the same conditional reads it asks of its
 * own table, so a change made since is seen as it would have been. */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fleetmcp/fm_slurm_table.h"
#include "fleetmcp/fm_store.h"
#include "fleetmcp/fm_util.h"

static const char ddl[] =
    "CREATE TABLE slurm_node_snapshots("
    " source TEXT PRIMARY KEY," /* sha256 of endpoint, API version, domain patterns */
    " stamp INTEGER NOT NULL,"  /* slurmctld's clock before the listing was packed */
    " nodes INTEGER NOT NULL, bytes INTEGER NOT NULL, sha256 TEXT NOT NULL,"
    " body TEXT NOT NULL, written_ms INTEGER NOT NULL);";

/* Size is checked before the body is read, so an oversized row costs nothing. */
static const char load_sql[] =
    "SELECT stamp, bytes, sha256, body FROM slurm_node_snapshots"
    " WHERE source = ? AND stamp > ? AND stamp <= ? AND bytes <= ?";

/* A snapshot never replaces a newer one (two writers racing after a change). */
static const char save_sql[] =
    "INSERT INTO slurm_node_snapshots(source, stamp, nodes, bytes, sha256, body, written_ms)"
    " VALUES(?, ?, ?, ?, ?, ?, ?) ON CONFLICT(source) DO UPDATE SET"
    " stamp = excluded.stamp, nodes = excluded.nodes, bytes = excluded.bytes,"
    " sha256 = excluded.sha256, body = excluded.body, written_ms = excluded.written_ms"
    " WHERE excluded.stamp >= slurm_node_snapshots.stamp";

static int ready(fm_store *st, fm_err *err)
{
    if (!st || !st->db) return fm_err_set(err, FM_ERR_UNAVAILABLE, "the store is not open"), -1;
    return fm_store_migrate(st, "slurm_snapshot", 1, ddl, err);
}

int fm_slurm_snapshot_load(fm_store *st, const char *source, fm_slurm_table *t, long long after,
                           long long until, size_t max, fm_err *err)
{
    if (ready(st, err)) return -1;
    fm_db_stmt *q = fm_store_stmt(st, load_sql, err);
    if (!q) return -1;
    fm_db_bind_text(q, 1, source, -1, FM_DB_STATIC);
    fm_db_bind_int64(q, 2, after);
    fm_db_bind_int64(q, 3, until);
    fm_db_bind_int64(q, 4, max > INT64_MAX ? INT64_MAX : (fm_db_int64)max);
    int rc = fm_db_step(q);
    if (rc == FM_DB_DONE) {
        fm_db_reset(q);
        return 1;
    }
    if (rc != FM_DB_ROW) {
        fm_store_fail(st, err, "reading the node table snapshot");
        fm_db_reset(q);
        return -1;
    }
    long long stamp = fm_db_column_int64(q, 0);
    long long bytes = fm_db_column_int64(q, 1);
    const char *sum = (const char *)fm_db_column_text(q, 2);
    const char *body = (const char *)fm_db_column_text(q, 3);
    size_t len = body ? (size_t)fm_db_column_bytes(q, 3) : 0;
    char got[65] = "";
    if (body) fm_sha256_hex(body, len, got);
    /* A row that is not what its writer hashed is refused, whatever it
     * parses as (its text also carries its own node count, checked). */
    if (body && bytes >= 0 && (size_t)bytes == len && len <= max && sum && !strcmp(sum, got))
        rc = fm_slurm_table_restore(t, body, len, stamp, err);
    else {
        fm_err_set(err, FM_ERR_PARSE, "the node table snapshot does not match its digest");
        rc = -1;
    }
    fm_db_reset(q); /* its 7 MB at 16,384 nodes go now, not at the next use */
    return rc ? -1 : 0;
}

int fm_slurm_snapshot_save(fm_store *st, const char *source, const fm_slurm_table *t, size_t max,
                           fm_err *err)
{
    if (ready(st, err)) return -1;
    size_t len = 0;
    /* A bound text's length is an int. */
    char *text = fm_slurm_table_snapshot(t, max < INT_MAX ? max : INT_MAX, &len, err);
    if (!text) return -1;
    char sum[65];
    fm_sha256_hex(text, len, sum);
    fm_db_stmt *q = fm_store_stmt(st, save_sql, err);
    int rc = -1;
    if (q) {
        fm_db_bind_text(q, 1, source, -1, FM_DB_STATIC);
        fm_db_bind_int64(q, 2, fm_slurm_table_stamp(t));
        fm_db_bind_int64(q, 3, (fm_db_int64)fm_slurm_table_size(t));
        fm_db_bind_int64(q, 4, (fm_db_int64)len);
        fm_db_bind_text(q, 5, sum, -1, FM_DB_STATIC);
        fm_db_bind_text(q, 6, text, (int)len, FM_DB_STATIC);
        fm_db_bind_int64(q, 7, fm_now_ms());
        rc = 0;
        if (fm_db_step(q) != FM_DB_DONE) {
            fm_store_fail(st, err, "writing the node table snapshot");
            rc = -1;
        }
        /* The text is freed below: no binding may point at it after. */
        fm_db_reset(q);
        fm_db_clear_bindings(q);
    }
    free(text);
    return rc;
}
