/* The planner: turns a mutating call into plan content (what would be
 * done) and detail (risk, nodes, capacity impact, guardrail verdicts).
 * The gate uses it to bind approvals to exactly what runs. */
#ifndef FM_PLANNER_H
#define FM_PLANNER_H

#include <jansson.h>

#include "fleetmcp/fm_error.h"
#include "fleetmcp/fm_tool.h"

struct fm_ctx;

/* Content (new) for tool t called with args; *detail (new) gets risk and
 * the affected nodes.  NULL with err if the call cannot be planned. */
json_t *fm_planner_content(struct fm_ctx *ctx, const fm_tool_def *t, const json_t *args,
                           json_t **detail, fm_err *err);

#endif
