/* The tool registry's row type and the handler contract.
 *
 * The table itself (fm_tool_table) is generated from schemas/tools/NAME.json
 * by tools/gen-registry.py: one JSON file names a tool once, with its
 * title, description, autonomy, handler and both schemas.  Handlers are
 * thin: they trust the gate (never re-check policy) and the input schema
 * (arguments are already validated), call backends through their ops
 * structs and shape a compact result. */
#ifndef FM_TOOL_H
#define FM_TOOL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fleetmcp/fm_error.h"

typedef enum {
    FM_AUTONOMY_READ = 0,   /* always runs */
    FM_AUTONOMY_CREATE = 1, /* runs autonomously, rate-limited and deduplicated */
    FM_AUTONOMY_HITL = 2,   /* needs an approval bound to the exact plan */
    FM_AUTONOMY_CANARY = 3, /* no approval on canary nodes outside shadow mode */
} fm_autonomy;

/* Bits in fm_tool_def.flags, mapped to MCP annotations. */
#define FM_TOOL_IDEMPOTENT 0x1u  /* idempotentHint */
#define FM_TOOL_OPEN_WORLD 0x2u  /* openWorldHint: talks to a backend */
#define FM_TOOL_DESTRUCTIVE 0x4u /* destructiveHint */
#define FM_TOOL_NODE_ACTION 0x8u /* mutates a node: subject to mode/guardrails */
/* The handler shapes MCP content itself (images, audio, embedded
 * resources): it returns {content: [...], isError?} and that is the
 * result, with no structuredContent and no outputSchema listed. */
#define FM_TOOL_CONTENT_RESULT 0x10u

typedef struct fm_call fm_call;

/* Returns a new structuredContent object, or NULL with err set (the call
 * then returns isError: true with "<WORD>: <text>"). */
typedef json_t *(*fm_tool_fn)(fm_call *call, fm_err *err);

typedef struct fm_tool_def {
    const char *name;
    const char *title;
    const char *description;
    fm_autonomy autonomy;
    unsigned flags;
    const char *input_schema;  /* JSON text, checked by the generator */
    const char *output_schema; /* JSON text, checked by the generator */
    fm_tool_fn handler;
    const char *backend; /* config key the tool needs ("slurm"...), or NULL */
} fm_tool_def;

extern const fm_tool_def fm_tool_table[];
extern const size_t fm_tool_count;

const char *fm_autonomy_name(fm_autonomy a);

/* A call in flight, handed to the handler.  All pointers are borrowed. */
struct fm_call {
    struct fm_ctx *ctx;
    const fm_tool_def *tool;
    const json_t *args;           /* validated against the input schema */
    const json_t *progress_token; /* NULL if the client sent none */
    int64_t audit_id;             /* the audit row of this call */
    const char *approval_id;      /* set by the gate when an approval was consumed */
    const char *plan_id;          /* the plan this call executes, if any */
    bool cancelled;
};

/* Sends notifications/progress if the client asked for it, and reads any
 * pending input first so a notifications/cancelled is seen.  Returns
 * false when the call was cancelled: the handler should stop and return
 * FM_ERR_CANCELLED. */
bool fm_call_progress(fm_call *call, double progress, double total, const char *message);
bool fm_call_cancelled(fm_call *call);

/* notifications/message at level ("debug".."emergency"), if enabled. */
void fm_call_log(fm_call *call, const char *level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
