/* Node remediation state: the data the gate reads and the workflow engine
 * writes.  This module owns the tables node_states (one row per node
 * fleetmcp has acted on: its state of the seven, the workflow owning it,
 * its rack/sku/partition) and node_attempts (one row per repair started,
 * the retry budget's and the repeat-offender rule's count); every
 * statement on them is in src/nodestate/nodestate.c.  The gate
 * (src/gate/guardrails.c) keeps the decisions made from these numbers:
 * blast radius, retry budget, reservations. */
#ifndef FM_NODESTATE_H
#define FM_NODESTATE_H

#include <jansson.h>
#include <stdint.h>

#include "fleetmcp/fm_error.h"

struct fm_ctx;

/* Creates the tables (store subsystem "fleet"). */
int fm_node_state_init(struct fm_ctx *ctx, fm_err *err);

/* Moves node to state (any of the seven).  returned/healthy take it out
 * of remediation.  Records an attempt when state is "repairing". */
int fm_node_state_set(struct fm_ctx *ctx, const char *node, const char *state,
                      const char *workflow_id, fm_err *err);

/* Records node as state with its fault class, owning workflow and domains
 * ({rack, sku, partition}, any may be missing): inside the caller's
 * transaction when it has one (fm_guard_reserve). */
int fm_node_state_upsert(struct fm_ctx *ctx, const char *node, const char *state,
                         const char *fault_class, const char *workflow_id, const json_t *domains,
                         fm_err *err);

/* The node's remediation state name into buf ("healthy" when the store
 * has no row for it).  -1 when the store cannot be read: buf is then
 * "unknown", never a state a check could pass on. */
int fm_node_state_get(struct fm_ctx *ctx, const char *node, char *buf, size_t len);

/* {state: count} over all nodes known to the store (new object). */
json_t *fm_node_state_counts(struct fm_ctx *ctx);

/* Nodes other than node in remediation (quarantined, repairing,
 * validating) whose column ("rack", "sku" or "partition") is value;
 * 0 for any other column, -1 when the store cannot be read (a guardrail
 * then refuses: an unread count may be over its limit). */
long long fm_node_state_in_domain(struct fm_ctx *ctx, const char *column, const char *value,
                                  const char *node);

/* Nodes in remediation per domain, nodes in except (array of names,
 * borrowed, may be NULL) left out: new {"rack=r01": n, "sku=h100": n,
 * "partition=gpu": n}. */
json_t *fm_node_state_domain_busy(struct fm_ctx *ctx, const json_t *except);

/* Repair attempts recorded since since_ms: of node for fault_class
 * (fault_class NULL: any class); -1 when the store cannot be read. */
long long fm_node_state_attempts(struct fm_ctx *ctx, const char *node, const char *fault_class,
                                 int64_t since_ms);

/* Distinct nodes with a repair attempt since since_ms. */
long long fm_node_state_nodes_repaired(struct fm_ctx *ctx, int64_t since_ms);
/* Calls fn for each node with a remediation attempt since since_ms. */
void fm_node_state_each_attempted(struct fm_ctx *ctx, int64_t since_ms,
                                  void (*fn)(const char *node, void *arg), void *arg);

/* Calls fn for each node with a state whose name starts with prefix, in
 * name order, at most 100. */
void fm_node_state_each_prefixed(struct fm_ctx *ctx, const char *prefix,
                                 void (*fn)(const char *node, void *arg), void *arg);

#endif
