/* The one server context.  No other mutable global state exists: every
 * subsystem hangs off fm_ctx and is reached through it. */
#ifndef FM_SERVER_H
#define FM_SERVER_H

#include <stdatomic.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fleetmcp/fm_auth.h"
#include "fleetmcp/fm_backends.h"
#include "fleetmcp/fm_config.h"
#include "fleetmcp/fm_store.h"
#include "fleetmcp/fm_tool.h"

struct fm_transport;
struct fm_mcp_http;
struct fm_content_ops;
struct fm_diag_db;
struct fm_runbooks;

typedef enum { FM_INITIATOR_AGENT = 0, FM_INITIATOR_HUMAN = 1 } fm_initiator;

/* What initialize told us; recorded on every audit row. */
typedef struct fm_session {
    char id[40];       /* random per process: groups a session's rows */
    char protocol[16]; /* negotiated version */
    char client_name[64];
    char client_version[32];
    char os_user[64]; /* empty: the process's OS user (fm_session_os_user) */
    fm_initiator initiator;
    bool initialized; /* initialize answered */
    bool elicitation; /* the client declared capabilities.elicitation */
    bool sampling;    /* the client declared capabilities.sampling */
    bool tasks;       /* this request declared io.modelcontextprotocol/tasks */
    int log_level;    /* index into syslog-style levels; -1 = off */
    /* Over HTTP with an `auth` section: the verified caller of the request
     * in flight.  When set, it (not clientInfo.name) is the initiator the
     * audit records and the scopes the gate checks. */
    bool verified;
    fm_principal principal;
} fm_session;

/* Who the initiator is.  On stdio (and HTTP without `auth`) mcp-cli's
 * self-declared name makes it "human": a label for the audit trail, not
 * an authority.  A verified principal is an agent whatever its client
 * calls itself, and is named by its token's subject. */
static inline fm_initiator fm_session_initiator(const fm_session *s)
{
    return !s->verified && !strcmp(s->client_name, "mcp-cli") ? FM_INITIATOR_HUMAN
                                                              : FM_INITIATOR_AGENT;
}
static inline const char *fm_session_who(const fm_session *s)
{
    if (s->verified) return s->principal.subject;
    return s->client_name[0] ? s->client_name : "unknown";
}

/* The OS user recorded for s: its own os_user when set (HTTP sets one),
 * else the user running the process, looked up on first use. */
const char *fm_session_os_user(const fm_session *s);

typedef struct fm_ctx {
    fm_config cfg;
    fm_store store;
    fm_backends be;
    fm_session session;
    struct fm_transport *tx;     /* stdio or one HTTP exchange, NULL in unit tests */
    struct fm_mcp_http *xc;      /* the HTTP exchange in flight, NULL on stdio */
    struct fm_auth *auth;        /* HTTP identity layer (borrowed), NULL without `auth` */
    unsigned char state_key[32]; /* sealed-state HMAC key (fm_state_*), from the store */
    bool state_key_ready;
    const struct fm_content_ops *content; /* resources, prompts, completions */
    const json_t *mrtr;     /* a stateless tools/call's params (inputResponses, requestState) */
    json_t *input_required; /* an InputRequiredResult for the call in flight (owned) */
    json_t *mrtr_state;     /* the verified requestState payload for it (owned) */
    char mrtr_target[96];   /* "tools/call:NAME" or "prompts/get:NAME" */
    json_t *rpc_error_data; /* MissingRequiredClientCapability data (owned) */
    json_t **input_schemas; /* parsed once at start, per row */
    json_t **output_schemas;
    json_t **listed_input_schemas;     /* tools/list's inputSchema, parsed on first list */
    json_t **listed_output_schemas;    /* tools/list's outputSchema (the contract of shape) */
    struct fm_schema **input_compiled; /* compiled on a tool's first call */
    struct fm_schema **output_compiled;
    struct fm_diag_db *diag; /* signature catalog, lazily compiled */
    struct fm_runbooks *runbooks;
    fm_call *current;          /* the call in flight (cancellation) */
    json_t *emergency;         /* the emergency setting read once for the call in flight */
    int emergency_depth;       /* calls in flight sharing it (workflows nest calls); 0: none */
    char *emergency_text;      /* the stored text behind it ("": no setting) */
    bool emergency_assumed;    /* emergency_text is a guess the audit insert checks */
    json_t *inflight_id;       /* its JSON-RPC id (borrowed from request) */
    bool last_cancelled;       /* the last call was cancelled: send no reply */
    long long next_request_id; /* our own requests to the client (elicitation) */
    /* Set by SIGTERM; atomic, since serving threads read it while the
     * handler or the thread supervising them sets it. */
    volatile atomic_int stop;
    /* Tasks (src/mcp/tasks.c) */
    char task_id[48];       /* in a task's runner: the task it runs, else "" */
    int call_depth;         /* tools/call nesting (the workflow engine calls tools) */
    int task_depth;         /* the depth of the call the runner finishes */
    bool task_created;      /* the handler just answered with a CreateTaskResult */
    int64_t task_ttl_ms;    /* the ttl this call's task gets (0: FM_TASK_TTL_MAX_MS) */
    int last_err_code;      /* the last call's error (FM_ERR_*: refused or failed), 0 if none */
    int64_t task_polled_ms; /* the runner last read its cancel flag */
    int64_t task_noted_ms;  /* the runner last wrote its status message */
    bool store_deferred;    /* fm_ctx_open_deferred: the store opens at first use */
} fm_ctx;

/* Opens config, store and backends; err says what to fix. */
int fm_ctx_open(fm_ctx *ctx, const char *config_path, const char *db_path, fm_err *err);
/* As fm_ctx_open, but a SQLite file store is only checked (fm_store_check)
 * and opened by fm_ctx_store_ready, at the first message that may need
 * it: initialize and ping never do.  Other stores open at once. */
int fm_ctx_open_deferred(fm_ctx *ctx, const char *config_path, const char *db_path, fm_err *err);
/* Opens a deferred store (and its subsystems' tables); 0 when open.  A
 * failure leaves it closed, so the next message tries again. */
int fm_ctx_store_ready(fm_ctx *ctx, fm_err *err);
/* For check-config: config, tools and backends as the server opens them;
 * the store stays closed (fm_ctx_store_probe looks at it). */
int fm_ctx_open_unstored(fm_ctx *ctx, const char *config_path, const char *db_path, fm_err *err);
/* For check-config: what would make the first message that needs the
 * configured store fail (not a database, a newer schema, unwritable, a
 * missing audit key...), as a new array of strings each saying what to
 * do; what that message will do (create, migrate) is appended to notes
 * (borrowed).  Changes nothing in the store. */
json_t *fm_ctx_store_probe(fm_ctx *ctx, json_t *notes);
void fm_ctx_close(fm_ctx *ctx);

/* Index of a visible (enabled) tool, or -1 (unknown or hidden). */
int fm_registry_find(const fm_ctx *ctx, const char *name);
/* Index of the tool named name in fm_tool_table, visible or not; -1. */
int fm_tool_index(const char *name);

/* Runs one tools/call through schema validation, the gate, audit and the
 * handler.  Returns a new CallToolResult object.  Used by the MCP layer
 * and by the workflow engine. */
json_t *fm_tools_call(fm_ctx *ctx, int tool_index, const json_t *args, const json_t *progress_token,
                      const json_t *meta);
/* The same, but a successful result comes without structuredContent and
 * *structured_text gets it as JSON text (new; the caller frees it). */
json_t *fm_tools_call_text(fm_ctx *ctx, int tool_index, const json_t *args,
                           const json_t *progress_token, const json_t *meta,
                           char **structured_text);

/* The one way fleetmcp calls a tool on its own behalf (a workflow step:
 * the action table's `calls`): args are checked against the tool's input
 * schema, the gate decides as for the session driving parent
 * (fm_gate_decide_internal with exempt, FM_GATE_EXEMPT_*), the handler
 * runs and its result is checked against the output schema.  No audit
 * row of its own: the step's row records the call.  Returns the
 * structured result (new), or NULL with err set (a refusal keeps the
 * gate's code word). */
json_t *fm_tools_call_internal(fm_call *parent, const char *tool, unsigned exempt,
                               const json_t *args, fm_err *err);

/* A call fleetmcp makes on its own behalf outside a workflow step (the
 * repeat-offender escalation the gate files): the whole tools/call
 * pipeline -- input schema, every gate step as for the session driving
 * it (no exemption), audit rows under the tool's name with why in their
 * reason, the handler, the output schema -- but no elicitation.  A
 * refusal is audited like a client's.  Returns the structured result
 * (new), or NULL with err set to the refusal's or failure's code word. */
json_t *fm_tools_call_audited(struct fm_ctx *ctx, const char *tool, const json_t *args,
                              const char *why, fm_err *err);

/* Builds an isError result whose text is "<WORD>: <text>" (new). */
json_t *fm_result_error(const fm_err *err);
/* Wraps structured (stolen) into {structuredContent, content:[text]} (new). */
json_t *fm_result_ok(json_t *structured);

#endif
