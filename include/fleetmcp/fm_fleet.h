/* Fleet metrics: what a break-fix team watches, computed from the store
 * (workflows, node states, audit), for fleet_status and for
 * `fleetmcp metrics --textfile` (node_exporter's textfile collector). */
#ifndef FM_FLEET_H
#define FM_FLEET_H

#include <jansson.h>
#include <stdint.h>

#include "fleetmcp/fm_error.h"

struct fm_ctx;

#define FM_FLEET_WINDOW_MS (30LL * 86400 * 1000)

/* Over the last window_ms (new object):
 *   automation_success_ratio   workflows done / (done + failed + escalated)
 *   manual_override_ratio      human node actions on nodes fleetmcp had in
 *                              remediation / fleetmcp remediations
 *   false_positive_quarantines workflows that returned a node without any
 *                              repair step (drain, verify, resume: nothing wrong)
 *   mean_repair_seconds        mean start-to-end of completed workflows
 *   nodes {state: n}, capacity_removed_nodes
 *   repeat_offenders [{node, workflows}] (2+ workflows)
 *   shadow_agreement_ratio     shadow recommendations a human then carried
 *                              out (same tool, same node, within 24 h)
 * Ratios are null when there is nothing to divide. */
json_t *fm_fleet_metrics(struct fm_ctx *ctx, int64_t window_ms);

/* Writes the metrics in Prometheus text format to path (atomically:
 * a temporary file, then rename). */
int fm_fleet_metrics_textfile(struct fm_ctx *ctx, const char *path, fm_err *err);

#endif
