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

/* Bits in fm_tool_def.flags, named in each schema file's "flags" (like
 * redis' CMD_READONLY): the first three map to MCP annotations, the rest
 * are the gate's policy, so a rule reads a flag, never a tool's name.
 *
 * FM_TOOL_NODE_ACTION: mutates nodes: mode, guardrails and approval apply.
 * FM_TOOL_TAKES_CAPACITY: takes nodes out of service (drain, reboot, reset,
 *   repair): capacity headroom, blast radius and retry budget apply.
 * FM_TOOL_RETURNS_CAPACITY: puts a node back (resume): drain ownership
 *   applies instead of headroom.
 * FM_TOOL_RUNS_PLAN: executes a plan recorded earlier (plan_id argument):
 *   its plan is rebuilt from the store, not from the arguments.
 * FM_TOOL_KILLSWITCH_EXEMPT: runs while the kill switch is engaged (the
 *   switch's own tools, and recording an approval, which changes nothing
 *   in the fleet).
 * FM_TOOL_READ_ONLY_EXEMPT: stays visible in read_only mode (turning
 *   safety on is not a mutation of the fleet).
 * FM_TOOL_NEVER_RATE_LIMITED: a create tool the rate limit never counts,
 *   whatever the config says. */
#define FM_TOOL_IDEMPOTENT 0x1u  /* idempotentHint */
#define FM_TOOL_OPEN_WORLD 0x2u  /* openWorldHint: talks to a backend */
#define FM_TOOL_DESTRUCTIVE 0x4u /* destructiveHint */
#define FM_TOOL_NODE_ACTION 0x8u
#define FM_TOOL_TAKES_CAPACITY 0x10u
#define FM_TOOL_RETURNS_CAPACITY 0x20u
#define FM_TOOL_RUNS_PLAN 0x40u
#define FM_TOOL_KILLSWITCH_EXEMPT 0x80u
#define FM_TOOL_READ_ONLY_EXEMPT 0x100u
#define FM_TOOL_NEVER_RATE_LIMITED 0x200u

/* Bits in fm_tool_def.backends: what must be configured before the gate
 * lets the tool run (schema file "backends"). */
#define FM_BACKEND_SLURM 0x1u
#define FM_BACKEND_METRICS 0x2u
#define FM_BACKEND_SSH 0x4u
#define FM_BACKEND_TICKETS 0x8u
/* The handler shapes MCP content itself (images, audio, embedded
 * resources): it returns {content: [...], isError?} and that is the
 * result, with no structuredContent and no outputSchema listed. */
#define FM_TOOL_CONTENT_RESULT 0x400u
/* A pending reboot does what this tool does (a GPU reset): equivalent
 * actions are refused while the reboot is pending. */
#define FM_TOOL_SUPERSEDED_BY_REBOOT 0x800u
/* Starting emergency mode: releasing it takes emergency.approvals_required
 * distinct people (default two). */
#define FM_TOOL_STARTS_EMERGENCY 0x1000u
/* A long call that may run as a task (io.modelcontextprotocol/tasks): when
 * the client declared the extension, the handler's fm_call_background()
 * answers at once with the task and the work goes on in a runner process. */
#define FM_TOOL_TASK 0x2000u
/* Only as a task: a client without the extension is refused (-32021). */
#define FM_TOOL_TASK_REQUIRED 0x4000u

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
    const char *input_schema; /* JSON text, checked by the generator */
    /* What tools/list shows: input_schema without the size caps,
     * patterns, numeric bounds and additionalProperties: false the server
     * enforces on every call (gen-registry.py). */
    const char *listed_input_schema;
    /* The whole output schema: every structuredContent is checked against
     * it.  JSON text, checked by the generator. */
    const char *output_schema;
    /* What tools/list shows: the output contract of shape (top-level
     * names and types), a relaxation of output_schema (gen-registry.py). */
    const char *listed_output_schema;
    fm_tool_fn handler;
    /* A single-node tool: the action (schemas/actions) its one-step
     * workflow runs, or NULL. */
    const char *action;
    /* JSON text or NULL: the tool's form of that action, arguments its
     * step takes besides the call's (schemas/tools/NAME.json
     * "action_args"; e.g. node_reboot's nextstate RESUME). */
    const char *action_args;
    unsigned backends;       /* FM_BACKEND_* bits */
    int rate_per_hour;       /* create tools: default calls per hour (0 = never limited) */
    const char *rate_config; /* "section.key" overriding rate_per_hour, or NULL */
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
    /* Set by the gate: the dead one-step workflow of this tool on its
     * node that this call resumes (fm_gate_decision.resume_workflow). */
    const char *resume_workflow;
    bool cancelled;
};

/* Sends notifications/progress if the client asked for it, and reads any
 * pending input first so a notifications/cancelled is seen.  Returns
 * false when the call was cancelled: the handler should stop and return
 * FM_ERR_CANCELLED. */
bool fm_call_progress(fm_call *call, double progress, double total, const char *message);
bool fm_call_cancelled(fm_call *call);
/* Why the server is going away (SIGTERM, stdin closed), or NULL: a long
 * handler stops starting new work and leaves it recoverable. */
const char *fm_call_stopping(fm_call *call);

/* notifications/message at level ("debug".."emergency"), if enabled. */
void fm_call_log(fm_call *call, const char *level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Tasks (src/mcp/tasks.c).  For a FM_TOOL_TASK tool whose caller declared
 * io.modelcontextprotocol/tasks: records the task in the store (durably,
 * before answering), starts a detached runner process that continues this
 * very handler with its own store connection, and returns the
 * CreateTaskResult (new) for the handler to return as is.  NULL when the
 * handler should just go on: in the runner, or when no task can be made
 * (no extension, an in-memory store, a nested call). */
json_t *fm_call_background(fm_call *call, fm_err *err);
/* True inside a task's runner. */
bool fm_call_in_task(const fm_call *call);
/* Inside a runner: parks the task in input_required with requests
 * ({key: {method, params}}, stolen) and waits (bounded) until tasks/update
 * has answered every key; returns {key: response} (new), or NULL with err
 * on cancellation, timeout or outside a runner. */
json_t *fm_call_ask(fm_call *call, json_t *requests, fm_err *err);

#endif
