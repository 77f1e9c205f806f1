/* The CLI's sinfo aggregate shared through the store (fm_slurm.h).
 *
 * Why: at 16,384 nodes `sinfo -h -a -o "%R|%T|%D|%N"` costs ~220 ms
 * (slurmctld packs, sinfo unpacks the whole node table) and no cheaper form
 * gives per-state counts, so a plan that reads it every call cannot answer
 * in 100 ms.  A plan is a proposal: the capacity answer it shows may be a
 * few seconds old provided the mutation re-decides with a fresh read
 * (fm_guard_reserve, the engine's guard), which slurm_cli.c guarantees by
 * serving this row only between plan_node and plan_end.
 *
 * The row is a cache of what Slurm said, never a source of truth: it is
 * keyed by source (cluster, sinfo and slurm.conf) with the cluster's name
 * checked again, aged by the wall clock when sinfo was started, and its
 * digest and lines are checked before it is used.  One small value (the
 * hostlists keep it a few kB even at 16,384 nodes; capped at 256 KiB). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleetmcp/fm_slurm.h"
#include "fleetmcp/fm_store.h"
#include "fleetmcp/fm_util.h"

static const char ddl[] = "CREATE TABLE slurm_cli_aggregates("
                          " source TEXT PRIMARY KEY," /* sha256 of cluster, sinfo, slurm.conf */
                          " cluster TEXT NOT NULL,"
                          " read_ms INTEGER NOT NULL," /* wall clock when sinfo was started */
                          " bytes INTEGER NOT NULL, sha256 TEXT NOT NULL, body TEXT NOT NULL,"
                          " written_ms INTEGER NOT NULL);";

static const char load_sql[] =
    "SELECT read_ms, bytes, sha256, body FROM slurm_cli_aggregates"
    " WHERE source = ? AND cluster = ? AND read_ms >= ? AND read_ms <= ?";
static const char save_sql[] =
    "INSERT INTO slurm_cli_aggregates(source, cluster, read_ms, bytes, sha256, body, written_ms)"
    " VALUES(?, ?, ?, ?, ?, ?, ?) ON CONFLICT(source) DO UPDATE SET"
    " cluster = excluded.cluster, read_ms = excluded.read_ms, bytes = excluded.bytes,"
    " sha256 = excluded.sha256, body = excluded.body, written_ms = excluded.written_ms"
    " WHERE slurm_cli_aggregates.read_ms < excluded.read_ms";

#define SKEW_MS 1000 /* hosts sharing a store: their clocks may differ this much */

/* Checked once per connection, as slurm_snapshot.c's ready (see there). */
static int ready(fm_store *st, fm_err *err)
{
    if (!st || !st->db) return fm_err_set(err, FM_ERR_UNAVAILABLE, "the store is not open"), -1;
    if (fm_db_marked(st->db, ddl)) return 0;
    if (fm_store_migrate(st, "slurm_cli_aggregate", 1, ddl, err)) return -1;
    if (!st->probe && fm_db_get_autocommit(st->db)) fm_db_mark(st->db, ddl);
    return 0;
}

/* Lines as sinfo prints them with FM_SLURM_SINFO_COUNTS_FORMAT: four
 * '|'-separated fields, the third a count, printable ASCII only. */
static bool sinfo_lines(const char *t, size_t len)
{
    if (!len || t[len - 1] != '\n') return false;
    for (const char *p = t, *end = t + len; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        int bars = 0;
        const char *count = NULL;
        for (const char *c = p; c < nl; c++) {
            if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e) return false;
            if (*c == '|' && ++bars == 2) count = c + 1;
        }
        if (bars != 3 || !count || *count < '0' || *count > '9') return false;
        p = nl + 1;
    }
    return true;
}

static int damaged(fm_err *err, const char *what)
{
    return fm_err_set(err, FM_ERR_PARSE, "the sinfo aggregate in the store is damaged (%s)", what),
           -1;
}

/* load_sql's one row, checked and copied out (rc as the load returns). */
typedef struct {
    char **text;
    long long *read_ms;
    int rc;
    fm_err *err;
} load_out;

static int load_row(fm_db_stmt *q, void *arg)
{
    load_out *o = arg;
    long long bytes = fm_db_column_int64(q, 1);
    const char *sum = (const char *)fm_db_column_text(q, 2);
    const char *body = (const char *)fm_db_column_text(q, 3);
    size_t n = body ? (size_t)fm_db_column_bytes(q, 3) : 0;
    char got[65] = "";
    if (bytes <= 0 || bytes > (long long)FM_SLURM_AGGREGATE_MAX_BYTES || (size_t)bytes != n) {
        o->rc = damaged(o->err, "size");
    } else {
        fm_sha256_hex(body, n, got);
        if (!sum || strcmp(sum, got))
            o->rc = damaged(o->err, "digest");
        else if (!sinfo_lines(body, n))
            o->rc = damaged(o->err, "not sinfo's lines");
        else if (!(*o->text = strndup(body, n))) {
            fm_err_set(o->err, FM_ERR_NOMEM, "sinfo aggregate");
            o->rc = -1;
        } else {
            *o->read_ms = fm_db_column_int64(q, 0);
            o->rc = 0;
        }
    }
    return 1;
}

int fm_slurm_aggregate_load(fm_store *st, const char *source, const char *cluster, long long now_ms,
                            long long max_age_ms, char **text, long long *read_ms, fm_err *err)
{
    *text = NULL;
    if (!cluster || !*cluster || max_age_ms <= 0) return 1;
    if (ready(st, err)) return -1;
    load_out o = {.text = text, .read_ms = read_ms, .rc = 1, .err = err};
    int step = fm_db_run(st->db, load_sql, load_row, &o, "ttii", source, cluster,
                         (int64_t)(now_ms - max_age_ms), (int64_t)(now_ms + SKEW_MS));
    if (step != FM_DB_ROW && step != FM_DB_DONE) {
        fm_store_fail(st, err, "reading the sinfo aggregate");
        return -1;
    }
    return o.rc;
}

int fm_slurm_aggregate_save(fm_store *st, const char *source, const char *cluster, const char *text,
                            long long read_ms, fm_err *err)
{
    if (!cluster || !*cluster)
        return fm_err_set(err, FM_ERR_INVALID, "a shared aggregate needs the cluster's name"), -1;
    size_t n = strlen(text);
    if (n > FM_SLURM_AGGREGATE_MAX_BYTES)
        return fm_err_set(err, FM_ERR_TOO_LARGE,
                          "sinfo's aggregate is %zu bytes, over %u: not"
                          " shared (each plan reads its own)",
                          n, FM_SLURM_AGGREGATE_MAX_BYTES),
               -1;
    if (!sinfo_lines(text, n))
        return fm_err_set(err, FM_ERR_PARSE, "not sinfo's aggregate lines: not shared"), -1;
    if (ready(st, err)) return -1;
    char sum[65];
    fm_sha256_hex(text, n, sum);
    int rc = fm_db_run(st->db, save_sql, NULL, NULL, "ttiitTi", source, cluster, (int64_t)read_ms,
                       (int64_t)n, sum, text, (int)n, (int64_t)fm_now_ms()) == FM_DB_DONE
                 ? 0
                 : fm_store_fail(st, err, "writing the sinfo aggregate");
    return rc ? -1 : 0;
}
