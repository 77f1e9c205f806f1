/* Pool plans (issue 18): one repair plan for many nodes, picked by a
 * selector (nodes, a partition, a rack, or every node whose latest
 * diagnosis is a fault class), split into batches that each respect the
 * blast radius per failure domain and the capacity headroom per
 * partition, and run batch by batch with a concurrency and a rollback
 * policy.  Every node still runs as its own workflow through the same
 * engine, reservations and gate as a one-node plan. */
#ifndef FM_POOL_H
#define FM_POOL_H

#include <jansson.h>
#include <stdbool.h>

#include "fleetmcp/fm_error.h"
#include "fleetmcp/fm_tool.h"

struct fm_ctx;
struct fm_runbook;

#define FM_POOL_MAX_NODES 64 /* a selector matching more is refused */
#define FM_POOL_MAX_CONCURRENCY 16

typedef struct fm_pool_limits {
    long long per_domain; /* guardrails.max_per_domain */
    double min_share;     /* guardrails.min_schedulable_share */
} fm_pool_limits;

/* The batching, on data only (unit-tested on a generated fleet).  nodes:
 * normalized Slurm nodes (name, domains{rack, sku, partition}, partitions,
 * state); busy: nodes already in remediation per domain key ("rack=r01",
 * from fm_guard_domain_busy); capacity: {partition: {total,
 * schedulable_now}}.  Greedy, in the order given: a node joins the first
 * batch it fits (every domain's count stays within per_domain, every
 * partition keeps min_share schedulable), else opens a new one.  A node
 * that does not fit even alone gets a batch of its own that fails.
 * Returns new [{batch, nodes[], pass, verdicts[{guardrail, ok, detail}]}]. */
json_t *fm_pool_batches(const json_t *nodes, const json_t *busy, const json_t *capacity,
                        const fm_pool_limits *lim);

/* The hashed content of a pool plan (new): the one-node content of the
 * runbook with args {selector..., fault_class, runbook} (no "node"),
 * nodes = every node of batches, and batches (array of arrays of names,
 * borrowed). */
json_t *fm_pool_content(const json_t *selector, const json_t *batches, const char *fault_class,
                        const struct fm_runbook *rb);

/* True if content is a pool plan's. */
bool fm_pool_is(const json_t *content);

/* repair_plan with a selector: new result object, or NULL with err. */
json_t *fm_pool_plan(fm_call *call, const struct fm_runbook *rb, const char *fault_class,
                     fm_err *err);

/* repair_execute of a pool plan: runs content's batches in order, at most
 * concurrency nodes at a time, each node its own workflow; policy "stop"
 * (default), "continue" or "rollback".  New summary, or NULL with err when
 * nothing could start. */
json_t *fm_pool_run(fm_call *call, const char *plan_id, const json_t *content, int concurrency,
                    const char *policy, fm_err *err);

#endif
