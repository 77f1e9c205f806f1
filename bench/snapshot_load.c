/* The node table's snapshot at fleet scale (bench/snapshot.sh): writing
 * and restoring 16,384 nodes in rows of whole lines under 1.9 kB (what
 * slurm_snapshot.c does) against reading the same text as one value, on
 * the store given (a SQLite path or a postgresql:// URL).  The one-value
 * form is timed up to its SELECT and copy only: if that alone costs more
 * than the whole restore from rows, rows are the pick.
 *
 *   snapshot_load STORE FIXTURE [RUNS]   prints medians in milliseconds */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "fleet_listing.h"
#include "fleetmcp/fm_slurm.h"
#include "fleetmcp/fm_slurm_table.h"
#include "fleetmcp/fm_store.h"
#include "fleetmcp/fm_util.h"

static fm_slurm_table *fleet(const char *fixture, fm_slurm_domains *dom)
{
    json_t *ans = json_load_file(fixture, 0, NULL);
    if (!ans) return NULL;
    json_t *big = fleet_listing(json_array_get(json_object_get(ans, "nodes"), 0), false);
    char *text = json_dumps(big, JSON_COMPACT);
    fm_slurm_table *t = fm_slurm_table_new();
    json_t *errors = NULL;
    fm_err err = {0};
    fm_slurm_table_apply(t, dom, 200, text, strlen(text), 42, &errors, &err);
    json_decref(errors);
    free(text);
    json_decref(big);
    json_decref(ans);
    return t;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: snapshot_load STORE FIXTURE [RUNS]\n");
        return 2;
    }
    int runs = argc > 3 ? atoi(argv[3]) : 9;
    if (runs < 1 || runs > 100) runs = 9;
    fm_err err = {0};
    fm_slurm_domains *dom = fm_slurm_domains_new(NULL, NULL, &err);
    fm_slurm_table *t = dom ? fleet(argv[2], dom) : NULL;
    fm_store st = {0};
    if (!t || !fm_slurm_table_loaded(t) || fm_store_open(&st, argv[1], &err)) {
        fprintf(stderr, "snapshot_load: %s\n", err.text[0] ? err.text : "no fixture");
        return 1;
    }
    size_t len = 0;
    char *text = fm_slurm_table_snapshot(t, 64u << 20, &len, &err);
    double save[100], load[100], rows[100], mem[100], sum[100];
    for (int i = 0; i < runs; i++) {
        fm_slurm_table *r = fm_slurm_table_new();
        double t0 = now_us();
        fm_slurm_table_restore(r, text, len, 42, &err);
        mem[i] = (now_us() - t0) / 1000;
        fm_slurm_table_free(r);
        char hex[65];
        t0 = now_us();
        fm_sha256_hex(text, len, hex);
        sum[i] = (now_us() - t0) / 1000;
    }
    for (int i = 0; i < runs; i++) {
        double t0 = now_us();
        if (fm_slurm_snapshot_save(&st, "bench", "bench", t, 64u << 20, &err)) break;
        save[i] = (now_us() - t0) / 1000;
        fm_slurm_table *r = fm_slurm_table_new();
        t0 = now_us();
        if (fm_slurm_snapshot_load(&st, "bench", "bench", r, 0, 42, 64u << 20, &err)) break;
        load[i] = (now_us() - t0) / 1000;
        fm_slurm_table_free(r);
    }
    /* The other form: the whole text as one value (timed to its SELECT
     * and copy only; the digest and parse above come on top). */
    fm_db_exec(st.db,
               "CREATE TABLE IF NOT EXISTS bench_one_value(source TEXT PRIMARY KEY,"
               " body TEXT)",
               NULL, NULL, NULL);
    fm_db_stmt *ins = NULL;
    fm_db_prepare_v2(st.db,
                     "INSERT INTO bench_one_value(source, body) VALUES('bench', ?)"
                     " ON CONFLICT(source) DO UPDATE SET body = excluded.body",
                     -1, &ins, NULL);
    fm_db_bind_text(ins, 1, text, (int)len, FM_DB_STATIC);
    fm_db_step(ins);
    fm_db_finalize(ins);
    for (int i = 0; i < runs; i++) {
        fm_db_stmt *q = NULL;
        double t0 = now_us();
        fm_db_prepare_v2(st.db, "SELECT body FROM bench_one_value WHERE source='bench'", -1, &q,
                         NULL);
        char *buf = malloc(len + 1);
        if (fm_db_step(q) == FM_DB_ROW && (size_t)fm_db_column_bytes(q, 0) <= len)
            memcpy(buf, fm_db_column_text(q, 0), (size_t)fm_db_column_bytes(q, 0));
        fm_db_finalize(q);
        rows[i] = (now_us() - t0) / 1000;
        free(buf);
    }
    printf("%s: %zu nodes, snapshot %zu bytes; rows of <= 1.9 kB: write %.1f ms, restore %.1f "
           "ms (of which parsing the text %.1f ms, its digest %.1f ms); as one value: its SELECT"
           " alone %.1f ms (medians of %d)\n",
           strncmp(argv[1], "postgres", 8) ? "sqlite" : "postgresql", fm_slurm_table_size(t), len,
           median(save, runs), median(load, runs), median(mem, runs), median(sum, runs),
           median(rows, runs), runs);
    fm_db_exec(st.db, "DROP TABLE bench_one_value", NULL, NULL, NULL);
    free(text);
    fm_store_close(&st);
    fm_slurm_table_free(t);
    fm_slurm_domains_free(dom);
    return 0;
}
