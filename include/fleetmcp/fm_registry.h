/* The registry at run time: parsed schemas, which tools this config shows,
 * and each tool's tools/list entry. */
#ifndef FM_REGISTRY_H
#define FM_REGISTRY_H

#include <jansson.h>

#include "fleetmcp/fm_error.h"
#include "fleetmcp/fm_tool.h"

struct fm_ctx;

/* Allocates the per-tool schema slots (schemas are parsed on first use).
 * Which tools are visible is the gate's decision (fm_gate_visible). */
int fm_registry_init(struct fm_ctx *ctx, fm_err *err);
void fm_registry_free(struct fm_ctx *ctx);

/* Number of visible tools (fm_gate_visible), and the i-th one's table index. */
size_t fm_registry_visible(const struct fm_ctx *ctx, int *index_out, size_t max);

/* The tools/list entry for table row i (new): name, title, description,
 * inputSchema, outputSchema, annotations, _meta.autonomy. */
json_t *fm_registry_tool_json(struct fm_ctx *ctx, int i);

/* A tool's input or output schema as JSON (borrowed), parsed on first use. */
json_t *fm_registry_schema_json(struct fm_ctx *ctx, int i, int output);

/* A tool's compiled input or output schema (borrowed), compiled on first
 * use so start-up stays fast; NULL with err if it does not compile. */
const struct fm_schema *fm_registry_schema(struct fm_ctx *ctx, int i, int output, fm_err *err);

/* True if the tool changes anything (autonomy above read). */
int fm_tool_mutates(int table_index);

/* The first table row whose flags hold every bit of flag, or NULL: how C
 * names a tool by its role (e.g. the one that runs plans) without its name. */
const fm_tool_def *fm_tool_with_flags(unsigned flag);

#endif
