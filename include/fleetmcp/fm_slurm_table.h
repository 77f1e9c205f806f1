/* The node table a long-lived server keeps between calls (slurmrestd
 * backend, src/backends/slurm_table.c), so that a plan's capacity and fleet
 * counts cost a conditional read instead of a whole-table listing.
 *
 * Slurm's update_time is table-wide: slurmctld answers "no change" (HTTP
 * 304) only when no node changed since the time given, and otherwise packs
 * every node.  So a refresh either keeps the table (304) or replaces it
 * whole, and a node that left Slurm leaves the table with that answer.  The
 * table is as fresh as a full read at the moment of the conditional one.
 *
 * Each node is kept as its normalized JSON text (a few hundred bytes) with
 * its in-service bit and partitions, not as a tree: 16,384 trees would be
 * most of the 32 MB the server may use. */
#ifndef FM_SLURM_TABLE_H
#define FM_SLURM_TABLE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "fleetmcp/fm_error.h"
#include "fleetmcp/fm_slurm.h"

typedef struct fm_slurm_table fm_slurm_table;

/* What an answer did to the table. */
typedef enum {
    FM_TABLE_UNCHANGED = 0, /* 304: nothing changed since the stamp */
    FM_TABLE_REPLACED = 1,  /* a whole, valid listing: the table is now it */
    FM_TABLE_REREAD = 2,    /* anything else (Slurm 22.05 answers a conditional read whose
                             * nodes changed but partitions did not with HTTP 500
                             * "Unspecified error"): table kept, read unconditionally */
} fm_slurm_table_result;

fm_slurm_table *fm_slurm_table_new(void);
void fm_slurm_table_free(fm_slurm_table *t);
/* Drops every node (the table is then not loaded). */
void fm_slurm_table_clear(fm_slurm_table *t);
bool fm_slurm_table_loaded(const fm_slurm_table *t);
size_t fm_slurm_table_size(const fm_slurm_table *t);
/* slurmctld's clock (epoch seconds) at or before the listing was packed:
 * the update_time of the next conditional read. */
long long fm_slurm_table_stamp(const fm_slurm_table *t);

/* Reads a nodes answer into t: open, push each piece (an fm_http stream
 * callback), close with the answer's HTTP status and the same err as open.
 * close returns what happened to t (fm_slurm_table_result); an answer
 * that is not a whole listing is no failure here, it is FM_TABLE_REREAD
 * with err left clear and *errors set to Slurm's non-empty "errors" array
 * (new) when it had one.  The table is never half-replaced. */
typedef struct fm_slurm_table_load fm_slurm_table_load;
fm_slurm_table_load *fm_slurm_table_load_open(fm_slurm_table *t, const fm_slurm_domains *dom,
                                              fm_err *err);
int fm_slurm_table_load_push(void *load, const char *p, size_t n);
int fm_slurm_table_load_close(fm_slurm_table_load *l, long status, long long stamp, json_t **errors,
                              fm_err *err);
/* open + push + close on a whole answer (tests, buffered error answers). */
int fm_slurm_table_apply(fm_slurm_table *t, const fm_slurm_domains *dom, long status,
                         const char *body, size_t len, long long stamp, json_t **errors,
                         fm_err *err);

/* One node as normalized (new object), or NULL if the table has no such node. */
json_t *fm_slurm_table_node(const fm_slurm_table *t, const char *name);
/* fm_slurm_ops.partition_capacity's answer from the table (in service =
 * fm_slurm_node_schedulable).  -1 if the table is not loaded. */
int fm_slurm_table_capacity(const fm_slurm_table *t, const char *const *parts, size_t n,
                            long *total, long *in_service, fm_err *err);

/* nodes_each over the table: each node matching f (the listing's rule,
 * fm_slurm_node_matches), in Slurm's listing order, parsed for cb
 * (borrowed).  Nonzero from cb stops the walk: -1.  -1 if not loaded. */
int fm_slurm_table_each(const fm_slurm_table *t, const fm_slurm_node_filter *f, fm_slurm_node_cb cb,
                        void *ud, fm_err *err);

/* The table as text another process can restore (a new string, *len its
 * length): partitions, then each node's in-service bit, partition mask,
 * name and normalized JSON, one line each in Slurm's listing order, so
 * restoring parses no JSON.  NULL with err when there is no table, it
 * has over 64 partitions, or the text would pass max bytes. */
char *fm_slurm_table_snapshot(const fm_slurm_table *t, size_t max, size_t *len, fm_err *err);
/* Makes t the snapshot text (borrowed) stamped stamp: slurmctld's clock
 * before the listing it came from was packed, the next conditional read's
 * update_time.  The text is checked line by line (names, masks, counts,
 * each node a JSON object); anything else is refused (-1, FM_ERR_PARSE)
 * and t is left as it was. */
int fm_slurm_table_restore(fm_slurm_table *t, const char *text, size_t len, long long stamp,
                           fm_err *err);
/* The same on text malloc'd with len + 1 bytes, which t then owns (or
 * which is freed on failure): no second copy of a 5 MB text. */
int fm_slurm_table_restore_owned(fm_slurm_table *t, char *text, size_t len, long long stamp,
                                 fm_err *err);

/* ---- the snapshot in the store (src/backends/slurm_snapshot.c) ------- */
struct fm_store;
/* Restores into t the snapshot of source (an opaque key: the cluster's
 * name, the slurmrestd endpoint, API version and domain patterns hashed)
 * written for cluster (slurmctld's ClusterName; NULL or "": none, 1) whose
 * stamp is after
 * `after` and at most `until` (slurmctld's clock now: a snapshot stamped
 * later is from another clock and is never trusted) and whose text is at
 * most max bytes.  0: restored; 1: no such snapshot (t unchanged); -1 with
 * err: the store failed, or the row is corrupt (digest, node count or
 * text), t unchanged. */
int fm_slurm_snapshot_load(struct fm_store *st, const char *source, const char *cluster,
                           fm_slurm_table *t, long long after, long long until, size_t max,
                           fm_err *err);
/* Writes t as source's snapshot of cluster (required) unless the store
 * holds a newer one. */
int fm_slurm_snapshot_save(struct fm_store *st, const char *source, const char *cluster,
                           const fm_slurm_table *t, size_t max, fm_err *err);

#endif
