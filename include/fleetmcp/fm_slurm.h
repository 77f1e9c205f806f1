/* The Slurm backend: one interface, two implementations (slurmrestd over
 * libcurl in src/backends/slurm_rest.c, the CLI's JSON in
 * src/backends/slurm_cli.c), chosen by slurm.backend in config.  Both hand
 * the raw answers to the shared normalizer (src/backends/slurm_normalize.c),
 * so tools, the gate and tests see one shape whatever the source.
 *
 * Normalized node (a JSON object):
 *   {name, state:["IDLE","DRAIN"], reason, reason_user, reason_time (ISO
 *    8601 UTC or null), partitions:[...], features:[...], gpus, cpus,
 *    memory_mb, boot_time (ISO or null),
 *    domains:{rack, sku, partition}, fleetmcp_owned}
 * Normalized job:
 *   {job_id, name, user, state, reason, nodes (Slurm hostlist string),
 *    node_list:[...], partition, start_time (ISO or null),
 *    time_limit (minutes, null = unlimited), exit_code, gpus} */
#ifndef FM_SLURM_H
#define FM_SLURM_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fleetmcp/fm_error.h"

/* Drain reasons fleetmcp writes start with this; only such drains are ours. */
#define FM_SLURM_OWNED_PREFIX "fleetmcp:"
/* Partitions one capacity query takes (a node is in a few). */
#define FM_SLURM_MAX_PARTS 16

/* Node filter: NULL/empty fields match everything.  Matching is the
 * normalizer's (fm_slurm_node_match), so both backends agree. */
typedef struct fm_slurm_node_filter {
    const char *state;      /* one state word, case-insensitive, e.g. "drain" */
    const char *partition;  /* exact */
    const char *feature;    /* exact feature string, e.g. "rack=r01" */
    const char *reason;     /* case-insensitive substring of the reason */
    const char *name_glob;  /* fnmatch(3) pattern, e.g. "gpu-a*" */
    const char *name_regex; /* PCRE2 pattern (bounded match), e.g. "^gpu-a0[1-3]$" */
} fm_slurm_node_filter;

/* Called with each normalized node that passes the filter (borrowed).
 * Nonzero stops the listing; set err first. */
typedef int (*fm_slurm_node_cb)(void *ud, const json_t *node, fm_err *err);

typedef struct fm_slurm_job_filter {
    const char *node;      /* jobs whose node_list holds this node */
    const char *user;      /* exact user name */
    const char *state;     /* exact job state, case-insensitive: "RUNNING" */
    const char *partition; /* exact */
} fm_slurm_job_filter;

typedef enum {
    FM_SLURM_DRAIN = 0,
    FM_SLURM_RESUME = 1,
    FM_SLURM_REBOOT = 2,      /* when idle; back in service after (nextstate=RESUME) */
    FM_SLURM_REBOOT_HOLD = 3, /* when idle; DOWN after (nextstate=DOWN) until resumed */
} fm_slurm_node_op;

/* One implementation.  Every slot is required unless its comment says
 * otherwise; st is the implementation's own state from fm_slurm_open. */
struct fm_store;
struct fm_slurm_ops {
    const char *name; /* "rest" or "cli", for messages */

    /* Normalized nodes matching f (f may be NULL): a new array. */
    json_t *(*nodes)(void *st, const fm_slurm_node_filter *f, fm_err *err);

    /* Optional (NULL: use nodes()).  The same nodes, handed to cb one at a
     * time and never held together, for a fleet-wide summary in bounded
     * memory.  On -1, what cb saw must be dropped. */
    int (*nodes_each)(void *st, const fm_slurm_node_filter *f, fm_slurm_node_cb cb, void *ud,
                      fm_err *err);

    /* One normalized node (new object); FM_ERR_NOT_FOUND if unknown. */
    json_t *(*node)(void *st, const char *name, fm_err *err);

    /* Normalized jobs matching f (f may be NULL): a new array. */
    json_t *(*jobs)(void *st, const fm_slurm_job_filter *f, fm_err *err);

    /* Drain (reason required), resume or reboot (ASAP, node drained
     * meanwhile; reason optional) one node.  Returns 0. */
    int (*update_node)(void *st, const char *name, fm_slurm_node_op op, const char *reason,
                       fm_err *err);

    /* Requeues job_id, keeping it off exclude_node (NULL: no exclusion).
     * Returns 0. */
    int (*requeue_job)(void *st, uint64_t job_id, const char *exclude_node, fm_err *err);

    /* Cancels job_id (scancel argv, or DELETE over REST).  Returns 0; FM_ERR_NOT_FOUND if Slurm
     * does not know the job. */
    int (*cancel_job)(void *st, uint64_t job_id, fm_err *err);
    /* Optional (NULL: callers count nodes() themselves).  For each of the
     * n (<= FM_SLURM_MAX_PARTS) partitions, in one query: nodes in the
     * partition (total[i]) and how many are in service (in_service[i]: not
     * drained, down, failed, in maintenance, rebooting, not responding or unknown), from Slurm's
     * own aggregate, which costs a fraction of a full node listing on a
     * large fleet.  Returns 0. */
    int (*partition_capacity)(void *st, const char *const *partitions, size_t n, long *total,
                              long *in_service, fm_err *err);
    /* Optional (NULL: callers count nodes_each).  How many nodes Slurm has,
     * for less than a listing: the REST backend's kept node table
     * (src/backends/slurm_table.c), the CLI's sinfo aggregate (nodes in some
     * partition; the capacity question's run when under 2 s old).
     * Returns 0. */
    int (*node_count)(void *st, long long *count, fm_err *err);
    /* Optional (NULL: callers use node).  A plan's node, as node gives it
     * but for boot_time, which may be null: read the cheapest way, with
     * the reads a plan asks next (partition_capacity, node_count, jobs) started
     * beside it.  The CLI's (slurm_cli.c); a new object or NULL. */
    json_t *(*plan_node)(void *st, const char *name, fm_err *err);
    /* Optional.  The plan plan_node began is over: from here on capacity
     * and the fleet count read Slurm (the CLI's: plan_node may have loaded
     * an aggregate another process shared through the store, younger than
     * slurm.cli.aggregate_max_age_s, for this plan's answers only). */
    void (*plan_end)(void *st);
    /* Optional.  When the last capacity answer was read (fm_now_ms() at
     * the read's start) into *read_ms: 1 from the shared aggregate, 0 by
     * this process for this question; -1 none. */
    int (*counts_as_of)(void *st, long long *read_ms);
    /* Optional (NULL: none kept).  The store the backend may share its
     * node table through (src/backends/slurm_snapshot.c), borrowed for
     * the backend's life and used only while open (st->db set). */
    void (*attach_store)(void *st, struct fm_store *store);
    /* Frees st.  st may be NULL. */
    void (*close)(void *st);
};

extern const struct fm_slurm_ops fm_slurm_rest_ops;
extern const struct fm_slurm_ops fm_slurm_cli_ops;

/* Opens the implementation slurm.backend names, configured from the
 * (borrowed) slurm config section.  On success *ops and *st are set;
 * close with (*ops)->close(*st). */
int fm_slurm_open(const json_t *slurm_section, const struct fm_slurm_ops **ops, void **st,
                  fm_err *err);

/* ---- shared normalizer (src/backends/slurm_normalize.c) -------------- */

/* Compiled failure-domain patterns (slurm.domains.rack / .sku): the first
 * capture group of the first feature that matches is the domain value. */
typedef struct fm_slurm_domains fm_slurm_domains;

/* rack/sku: PCRE2 patterns or NULL for the defaults "^rack=(.+)$" and
 * "^sku=(.+)$".  Returns NULL with err set on a bad pattern. */
fm_slurm_domains *fm_slurm_domains_new(const char *rack, const char *sku, fm_err *err);
void fm_slurm_domains_free(fm_slurm_domains *d);

/* One node of a v0.0.38..v0.0.41 nodes answer (sinfo --json is v0.0.38)
 * (borrowed) to a normalized node (new), or NULL with err. */
json_t *fm_slurm_norm_node(const json_t *raw, const fm_slurm_domains *dom, fm_err *err);

/* A whole nodes/jobs answer (borrowed: {"nodes":[...]} / {"jobs":[...]})
 * to a new array of normalized entries that match f.  Slurm's "errors"
 * array, if not empty, becomes FM_ERR_BACKEND. */
json_t *fm_slurm_norm_nodes(const json_t *answer, const fm_slurm_domains *dom,
                            const fm_slurm_node_filter *f, fm_err *err);
json_t *fm_slurm_norm_job(const json_t *raw, fm_err *err);
json_t *fm_slurm_norm_jobs(const json_t *answer, const fm_slurm_job_filter *f, fm_err *err);

/* Reads a nodes (jobs false) or jobs answer's text into {"nodes"|"jobs":
 * [...], "errors": [...]} keeping only the keys the normalizer reads: the
 * full tree of a 2,000-node answer costs more than sinfo itself
 * (src/backends/slurm_slim.c).  New object, or NULL with FM_ERR_PARSE. */
json_t *fm_slurm_parse_answer(const char *buf, size_t len, bool jobs, fm_err *err);

/* Called with each entry of an answer, reduced to the keys the normalizer
 * reads (borrowed: incref to keep it).  Nonzero stops the walk. */
typedef int (*fm_slurm_entry_cb)(void *ud, json_t *entry);

/* The same reader, one entry at a time, so a large answer never becomes a
 * tree: cb sees each entry of the "nodes" (jobs false) or "jobs" array.
 * *errors gets the answer's "errors" value (new) or NULL when it has none;
 * it may come after the entries, so a caller judges the entries only once
 * this returns.  Returns 1 (the array was there), 0 (it was not), or -1 with
 * FM_ERR_PARSE or when cb stopped the walk (cb sets err). */
int fm_slurm_scan_answer(const char *buf, size_t len, bool jobs, fm_slurm_entry_cb cb, void *ud,
                         json_t **errors, fm_err *err);

/* One entry's text ("{...}") reduced as fm_slurm_scan_answer reduces the
 * entries it hands on (new), or NULL if it is not one valid object. */
json_t *fm_slurm_take_entry(const char *buf, size_t len, bool jobs);

/* fm_slurm_scan_answer on text that arrives in pieces (slurm_stream.c):
 * memory is one entry and the document around the array, never the whole
 * text.  feed returns -1 (err set, or cb stopped) and then keeps failing;
 * end returns as fm_slurm_scan_answer does. */
typedef struct fm_slurm_stream fm_slurm_stream;
fm_slurm_stream *fm_slurm_stream_new(bool jobs, fm_slurm_entry_cb cb, void *ud);
int fm_slurm_stream_feed(fm_slurm_stream *st, const char *p, size_t n, fm_err *err);
int fm_slurm_stream_end(fm_slurm_stream *st, json_t **errors, fm_err *err);
void fm_slurm_stream_free(fm_slurm_stream *st);

/* fm_slurm_norm_nodes_each for text that arrives in pieces: open, push
 * each piece, close (which frees and returns what norm_nodes_each does). */
typedef struct fm_slurm_nodes_feed fm_slurm_nodes_feed;
fm_slurm_nodes_feed *fm_slurm_nodes_feed_open(const fm_slurm_domains *dom,
                                              const fm_slurm_node_filter *f, fm_slurm_node_cb cb,
                                              void *ud, fm_err *err);
int fm_slurm_nodes_feed_push(fm_slurm_nodes_feed *fd, const char *p, size_t n);
int fm_slurm_nodes_feed_close(fm_slurm_nodes_feed *fd, json_t **errors);

/* A node filter compiled once (its regex), for walking normalized nodes
 * held elsewhere (the REST backend's node table) with the listing's rule. */
typedef struct fm_slurm_node_matcher fm_slurm_node_matcher;
fm_slurm_node_matcher *fm_slurm_node_matcher_new(const fm_slurm_node_filter *f, fm_err *err);
bool fm_slurm_node_matches(fm_slurm_node_matcher *m, const json_t *node);
void fm_slurm_node_matcher_free(fm_slurm_node_matcher *m);

/* Normalizes a nodes answer's text node by node: the streaming form of
 * fm_slurm_parse_answer + fm_slurm_norm_nodes, whose peak memory is the
 * text and one node.  *errors as for fm_slurm_scan_answer; the caller
 * judges them (cb has already seen the nodes).  Returns 0 or -1. */
int fm_slurm_norm_nodes_each(const char *buf, size_t len, const fm_slurm_domains *dom,
                             const fm_slurm_node_filter *f, fm_slurm_node_cb cb, void *ud,
                             json_t **errors, fm_err *err);

/* `scontrol show node NAME --oneliner` text to a normalized node (new). */
json_t *fm_slurm_norm_scontrol_node(const char *text, const fm_slurm_domains *dom, fm_err *err);

/* `sinfo -h -N -n NAME -O` with this format: slurmctld packs that node
 * alone (scontrol show node packs all of them, ~0.3 s at 16,384 nodes);
 * one line per partition of the node. */
#define FM_SLURM_SINFO_NODE_FORMAT                                                                 \
    "NodeList:|,StateComplete:|,User:|,Timestamp:|,Features:|,Gres:|,CPUs:|,Memory:|,"             \
    "PartitionName:|,Reason:"
/* That text to node name's normalized node (new) as the scontrol form
 * gives it, but boot_time null (sinfo has none); FM_ERR_NOT_FOUND when it
 * lists no line (an unknown node, or one in no partition). */
json_t *fm_slurm_norm_sinfo_node(const char *text, const char *name, const fm_slurm_domains *dom,
                                 fm_err *err);

/* Slurm's "errors":[{error, errno}] of an answer (borrowed): 0 if none,
 * else FM_ERR_BACKEND (or FM_ERR_NOT_FOUND for errno 2018/2017, invalid
 * node/job) with what prefixed. */
int fm_slurm_answer_errors(const json_t *answer, const char *what, fm_err *err);

/* Expands a Slurm hostlist ("gpu-a[01-03],gpu-b1") into a new array of
 * names, at most max entries (FM_ERR_TOO_LARGE beyond). */
json_t *fm_slurm_hostlist_expand(const char *list, size_t max, fm_err *err);

/* Epoch seconds to "YYYY-MM-DDTHH:MM:SSZ" (new string) or JSON null for 0. */
json_t *fm_slurm_iso_time(long long epoch);

/* Slurm would start a job on this normalized node now: none of its state
 * words is a drain, down, failure, maintenance, reboot, power or unknown
 * state.  The capacity guardrail's rule and the node table's. */
bool fm_slurm_node_schedulable(const json_t *node);

/* The CLI backend's aggregate (src/backends/slurm_cli.c): `sinfo -h -a -o`
 * with this format prints one line per partition and node state with the
 * count and the hostlist of those nodes. */
#define FM_SLURM_SINFO_COUNTS_FORMAT "%R|%T|%D|%N"
#define FM_SLURM_SINFO_MAX_NODES 1000000
/* That text: for each of the n partitions asked, its nodes (total[i]) and
 * those in service (in_svc[i], fm_slurm_sinfo_in_service); with fleet, the
 * distinct nodes over every partition.  Returns 0, or -1 with err. */
int fm_slurm_sinfo_counts(const char *text, const char *const *parts, size_t n, long *total,
                          long *in_svc, long long *fleet, fm_err *err);
/* The aggregate shared through the store (src/backends/slurm_aggregate.c),
 * so that a plan in a fresh process may answer capacity from another's
 * recent read: one row per source (an opaque key naming the cluster and
 * how sinfo reaches it), stamped read_ms (the wall clock when sinfo was
 * started).  Never used for a mutation's own checks: slurm_cli.c. */
#define FM_SLURM_AGGREGATE_MAX_BYTES (256u << 10)
/* Loads source's aggregate of cluster (required) read at most max_age_ms
 * before now_ms and not after it (beyond 1 s of clock skew between hosts).
 * 0 with *text (malloc'd) and *read_ms set; 1 none usable (none, too old,
 * another cluster's); -1 with err when the row is damaged (size, digest,
 * lines sinfo would not print): the caller reads Slurm instead. */
int fm_slurm_aggregate_load(struct fm_store *st, const char *source, const char *cluster,
                            long long now_ms, long long max_age_ms, char **text, long long *read_ms,
                            fm_err *err);
/* Saves text as source's aggregate of cluster read at read_ms, unless a
 * newer one is there; text over FM_SLURM_AGGREGATE_MAX_BYTES or not
 * sinfo's lines is refused.  0 or -1 with err. */
int fm_slurm_aggregate_save(struct fm_store *st, const char *source, const char *cluster,
                            const char *text, long long read_ms, fm_err *err);
/* A state sinfo prints (%T) that is in service: idle, mixed, allocated or
 * completing with no flag suffix ('*' not responding, '~' powered down,
 * '#' powering up, '!' powering down, '%' rebooting soon, '$' maintenance,
 * '@' pending reboot, '^' rebooting, '-' planned). */
bool fm_slurm_sinfo_in_service(const char *state);

/* Validates a node name (letters, digits, '.', '_', '-'; 1..63 chars):
 * names reach argv, URLs and PromQL label matchers. */
bool fm_slurm_valid_node_name(const char *name);

/* Whether a joined state ("RUNNING+CONFIGURING", as jobs and nodes carry
 * Slurm's base state and its flags) holds word, case-insensitively. */
bool fm_slurm_state_has(const char *joined, const char *word);

#endif
