#include "fleetmcp/fm_registry.h"

#include <stdlib.h>
#include <string.h>

#include "fleetmcp/fm_gate.h"
#include "fleetmcp/fm_schema.h"
#include "fleetmcp/fm_server.h"

const char *fm_autonomy_name(fm_autonomy a)
{
    switch (a) {
    case FM_AUTONOMY_READ:
        return "read";
    case FM_AUTONOMY_CREATE:
        return "create";
    case FM_AUTONOMY_HITL:
        return "hitl";
    case FM_AUTONOMY_CANARY:
        return "canary";
    }
    return "hitl";
}

int fm_tool_mutates(int i)
{
    return fm_tool_table[i].autonomy != FM_AUTONOMY_READ;
}

const fm_tool_def *fm_tool_with_flags(unsigned flag)
{
    for (size_t i = 0; i < fm_tool_count; i++)
        if ((fm_tool_table[i].flags & flag) == flag) return &fm_tool_table[i];
    return NULL;
}

int fm_registry_init(fm_ctx *ctx, fm_err *err)
{
    size_t n = fm_tool_count;
    ctx->input_schemas = calloc(n ? n : 1, sizeof *ctx->input_schemas);
    ctx->output_schemas = calloc(n ? n : 1, sizeof *ctx->output_schemas);
    ctx->listed_input_schemas = calloc(n ? n : 1, sizeof *ctx->listed_input_schemas);
    ctx->listed_output_schemas = calloc(n ? n : 1, sizeof *ctx->listed_output_schemas);
    ctx->input_compiled = calloc(n ? n : 1, sizeof *ctx->input_compiled);
    ctx->output_compiled = calloc(n ? n : 1, sizeof *ctx->output_compiled);
    if (!ctx->input_schemas || !ctx->output_schemas || !ctx->listed_input_schemas ||
        !ctx->listed_output_schemas || !ctx->input_compiled || !ctx->output_compiled)
        return fm_err_set(err, FM_ERR_NOMEM, "registry: out of memory");
    /* Schemas are parsed on first use (tools/list, a call): the
     * generator already refused any that is not valid JSON, and parsing
     * them all would be a third of start-up.  Which tools are visible is
     * the gate's question (fm_gate_visible), asked at each use. */
    return 0;
}

void fm_registry_free(fm_ctx *ctx)
{
    for (size_t i = 0; i < fm_tool_count; i++) {
        if (ctx->input_compiled && ctx->input_compiled[i]) fm_schema_free(ctx->input_compiled[i]);
        if (ctx->output_compiled && ctx->output_compiled[i])
            fm_schema_free(ctx->output_compiled[i]);
        if (ctx->input_schemas) json_decref(ctx->input_schemas[i]);
        if (ctx->output_schemas) json_decref(ctx->output_schemas[i]);
        if (ctx->listed_input_schemas) json_decref(ctx->listed_input_schemas[i]);
        if (ctx->listed_output_schemas) json_decref(ctx->listed_output_schemas[i]);
    }
    free(ctx->input_compiled);
    free(ctx->output_compiled);
    ctx->input_compiled = ctx->output_compiled = NULL;
    free(ctx->input_schemas);
    free(ctx->output_schemas);
    ctx->input_schemas = ctx->output_schemas = NULL;
    free(ctx->listed_input_schemas);
    ctx->listed_input_schemas = NULL;
    free(ctx->listed_output_schemas);
    ctx->listed_output_schemas = NULL;
}

/* Parsed once from the generated text; {"type":"object"} if it cannot be
 * (never for a generated table). */
static json_t *schema_slot(json_t **slot, const char *text)
{
    if (!*slot) {
        *slot = json_loads(text, 0, NULL);
        if (!*slot) *slot = json_pack("{s:s}", "type", "object");
    }
    return *slot;
}

json_t *fm_registry_schema_json(fm_ctx *ctx, int i, int output)
{
    const fm_tool_def *t = &fm_tool_table[i];
    return output ? schema_slot(&ctx->output_schemas[i], t->output_schema)
                  : schema_slot(&ctx->input_schemas[i], t->input_schema);
}

const fm_schema *fm_registry_schema(fm_ctx *ctx, int i, int output, fm_err *err)
{
    fm_schema **slot = output ? &ctx->output_compiled[i] : &ctx->input_compiled[i];
    if (!*slot) {
        *slot = fm_schema_compile(fm_registry_schema_json(ctx, i, output), err);
        if (!*slot)
            fm_err_set(err, FM_ERR_INTERNAL, "%s's %s schema does not compile; please report",
                       fm_tool_table[i].name, output ? "output" : "input");
    }
    return *slot;
}

int fm_tool_index(const char *name)
{
    for (size_t i = 0; name && i < fm_tool_count; i++)
        if (!strcmp(fm_tool_table[i].name, name)) return (int)i;
    return -1;
}

int fm_registry_find(const fm_ctx *ctx, const char *name)
{
    int ti = fm_tool_index(name);
    return ti >= 0 && fm_gate_visible(ctx, ti, NULL, 0) ? ti : -1;
}

size_t fm_registry_visible(const fm_ctx *ctx, int *index_out, size_t max)
{
    size_t k = 0;
    for (size_t i = 0; i < fm_tool_count; i++) {
        /* tools/list also leaves out what the caller's token cannot call;
         * a call by name still reaches the gate, which names the scope. */
        if (!fm_gate_visible(ctx, (int)i, NULL, 0) || !fm_gate_scope_ok(ctx, (int)i, NULL, 0))
            continue;
        if (index_out && k < max) index_out[k] = (int)i;
        k++;
    }
    return k;
}

json_t *fm_registry_tool_json(fm_ctx *ctx, int i)
{
    const fm_tool_def *t = &fm_tool_table[i];
    bool read = t->autonomy == FM_AUTONOMY_READ;
    /* A mutation is destructive unless its file says otherwise only by
     * being create-level: the safe guess for unknown cases is destructive. */
    bool destructive = (t->flags & FM_TOOL_DESTRUCTIVE) || t->autonomy == FM_AUTONOMY_HITL ||
                       t->autonomy == FM_AUTONOMY_CANARY;
    /* No annotations.title: the tool's own title says it, and every byte
     * of tools/list is paid for in an agent's context. */
    /* Only hints that differ from the spec's defaults (readOnly false,
     * destructive true, idempotent false, openWorld true); destructive and
     * idempotent mean nothing on a read-only tool, so a read tool says
     * readOnlyHint alone. */
    json_t *ann = json_object();
    if (read) json_object_set_new(ann, "readOnlyHint", json_true());
    if (!read && !destructive) json_object_set_new(ann, "destructiveHint", json_false());
    if (!read && (t->flags & FM_TOOL_IDEMPOTENT))
        json_object_set_new(ann, "idempotentHint", json_true());
    if (!(t->flags & FM_TOOL_OPEN_WORLD)) json_object_set_new(ann, "openWorldHint", json_false());
    /* What tools/list says of a tool is paid for in every agent's context
     * (issue 14, the lead's decisions; README "How a call is decided"):
     * 1. outputSchema is the TOP-LEVEL contract of shape: property names
     *    and their JSON types, without `required`; a property holding an
     *    object or array is listed as {"type":"object"} / {"type":"array"}
     *    (tools/gen-registry.py, output_contract).  It is a relaxation of
     *    the whole schema, and every result is still checked against the
     *    whole one before it leaves (fm_registry_schema), so a client
     *    validating against the listed one never refuses a good result.
     *    The whole output schema is the resource
     *    fleetmcp://schemas/tools/NAME/output (src/mcp/content.c).
     * 2. The description says when to use the tool, in a sentence or two.
     * 3. inputSchema keeps types, enums, defaults, required and the
     *    structure a valid call needs; words only where the name and type
     *    do not say it; size caps, patterns, numeric bounds and
     *    additionalProperties: false are enforced, not listed (a refusal
     *    names the bound, or the unknown argument and those the tool takes).
     * 4. title only where it says more than the name (NULL otherwise). */
    json_t *tool = json_pack(
        "{s:s, s:s*, s:s, s:O, s:O, s:o, s:{s:s}}", "name", t->name, "title", t->title,
        "description", t->description, "inputSchema",
        schema_slot(&ctx->listed_input_schemas[i], t->listed_input_schema), "outputSchema",
        schema_slot(&ctx->listed_output_schemas[i], t->listed_output_schema), "annotations", ann,
        "_meta", "autonomy", fm_autonomy_name(t->autonomy));
    /* Its result has no structuredContent for a schema to describe. */
    if (t->flags & FM_TOOL_CONTENT_RESULT) json_object_del(tool, "outputSchema");
    return tool;
}
