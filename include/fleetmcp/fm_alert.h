/* Alert intake: an Alertmanager webhook payload (version 4) starts the
 * design's loop (alert, correlate, diagnose, act within guardrails).
 *
 * For each firing alert about a node (label hostname, Hostname, node or
 * instance, port and domain stripped, checked against Slurm): a node-mode
 * diagnosis, then for the class it finds a ticket (ticket_create) and a
 * plan (repair_plan) that the intake never executes: a human or agent
 * approves and runs it, or not.  Tickets and plans are deduplicated per
 * node and fault class within alerts.dedup_window_s; a repeat of an alert
 * (same fingerprint and status) within it is recorded and skipped.
 * Resolved alerts are recorded, not acted on.  Every internal call is a
 * tools/call through the gate and both schemas, with the caller
 * "alert-intake"; every alert leaves one audit row (tool alert_intake)
 * with its labels and what was done.
 *
 * Bounds: alerts.max_bytes of JSON (default 1 MiB), alerts.max_alerts per
 * payload (default 100), 64 labels of 1 KiB each.  A payload that breaks
 * any bound or the v4 shape is refused whole, before anything is done. */
#ifndef FM_ALERT_H
#define FM_ALERT_H

#include <jansson.h>
#include <stddef.h>

#include "fleetmcp/fm_error.h"

struct fm_ctx;

/* The largest payload read (bytes), from the config. */
size_t fm_alert_max_bytes(struct fm_ctx *ctx);

/* Processes one payload (body, len bytes).  Returns the report (new):
 * {received, firing, resolved, repeats, unmapped, tickets, plans,
 * alerts: [{fingerprint, alertname, status, node, outcome, fault_class,
 * ticket, plan_id, error}]}, or NULL with err (FM_ERR_INVALID,
 * FM_ERR_TOO_LARGE) when the payload is refused and nothing was done. */
json_t *fm_alert_intake(struct fm_ctx *ctx, const char *body, size_t len, fm_err *err);

#endif
