/* The MCP layer: lifecycle, version negotiation, tools/list paging,
 * tools/call, ping, logging, progress and cancellation over a transport. */
#ifndef FM_MCP_H
#define FM_MCP_H

#include <jansson.h>
#include <stdbool.h>

#include "fleetmcp/fm_error.h"

struct fm_ctx;

#define FM_SERVER_NAME "fleetmcp"
#define FM_SERVER_VERSION "0.2.0"

/* Serves until EOF or SIGTERM (ctx->stop).  Returns the exit status. */
int fm_mcp_serve(struct fm_ctx *ctx);

/* Handles one raw line (the fuzz target and unit tests call this); any
 * replies go to ctx->tx.  Returns 0, or -1 when the peer is gone. */
int fm_mcp_handle_line(struct fm_ctx *ctx, const char *line, size_t len);

/* The same for a message already parsed (borrowed). */
int fm_mcp_handle_json(struct fm_ctx *ctx, const json_t *msg);

/* True for a revision with the initialize handshake (2025-*). */
bool fm_mcp_version_stateful(const char *v);

/* Writes msgs (borrowed array) to the client as SSE events on the
 * response of the POST in flight, opening the stream (headers) at the
 * first call; msgs NULL asks only whether the client is still there.
 * 0, or -1 when the client is gone. */
typedef int (*fm_mcp_stream_fn)(void *cls, const json_t *msgs);

/* One POST to the HTTP endpoint, through the same dispatch as stdio. */
typedef struct fm_mcp_http {
    /* in: the body and the headers that matter (NULL when absent) */
    const char *body;
    size_t len;
    const char *version_hdr; /* MCP-Protocol-Version */
    const char *session_hdr; /* Mcp-Session-Id */
    const char *method_hdr;  /* Mcp-Method */
    const char *name_hdr;    /* Mcp-Name */
    /* A response stream for server-to-client requests (2025 sessions whose
     * client accepts text/event-stream), NULL when the transport cannot
     * open one; stream_waiters is how many calls of this service may wait
     * for a client's answer at once (workers - 1: one stays free to take
     * the answers). */
    fm_mcp_stream_fn stream;
    void *stream_cls;
    /* Called with true before the call naps between polls for its
     * client's answer (its store connection idle) and false after; NULL
     * when the transport does not care (http.c: a serving thread lets
     * go of its turn lock, so a fork from another thread can proceed). */
    void (*stream_idle)(void *cls, bool idle);
    int stream_waiters;
    /* The process whose workers share that budget (0: this one's parent,
     * as for worker processes; serving threads give their own pid). */
    int stream_group;
    /* out */
    bool streamed; /* the stream is open: x->out goes on it, as events */
    int status;    /* HTTP status */
    json_t *out;   /* messages to send, the reply last (new array) */
    /* The reply in out that lacks its structuredContent member, and that
     * member's text (malloc'd): the call dumped it already, so the
     * transport splices it in (fm_json_dumps_spliced) rather than have it
     * parsed back and dumped again.  NULL when none. */
    const json_t *splice_msg;
    const char *splice_key;
    char *splice_raw;
    char *session_id;   /* Mcp-Session-Id for the response (malloc'd) or NULL */
    bool log_level_set; /* logging/setLevel ran (internal) */
    int step_up;        /* a call was refused for a scope the token lacks: its autonomy
                         * level + 1; the transport answers 403 insufficient_scope */
} fm_mcp_http;

/* Handles x->body; fills x->status and x->out (and x->session_id after an
 * initialize, x->splice_* after a tool call).  The caller frees x->out,
 * x->session_id and x->splice_raw. */
void fm_mcp_http_exchange(struct fm_ctx *ctx, fm_mcp_http *x);

/* HTTP DELETE of a stateful session: ends the session its sealed
 * Mcp-Session-Id names, for every replica; later requests with it get 404.
 * Returns the HTTP status (200; 400 without the header; 404 unknown,
 * expired or already ended; 500 with err when the store fails). */
int fm_mcp_http_end_session(struct fm_ctx *ctx, const char *session_hdr, fm_err *err);

/* Seals payload (borrowed) into an opaque, integrity-protected token
 * (malloc'd) that only this service, or a replica sharing its store, can
 * open.  NULL with err on failure. */
char *fm_state_seal(struct fm_ctx *ctx, const json_t *payload, fm_err *err);
/* The payload of a token fm_state_seal made (new), or NULL with err when
 * the token is malformed or was not issued here. */
json_t *fm_state_open(struct fm_ctx *ctx, const char *token, fm_err *err);

/* Approval of plan_id by multi round-trip input (stateless revisions):
 * takes ask (the elicitation/create params, stolen).  Without a
 * requestState in ctx->mrtr it sets ctx->input_required and returns 1; with
 * one it checks the state (sealed, unexpired, this caller, this plan and
 * hash, unused) and the answer, and returns 0 with an approval id in ap_out
 * (FM_APPROVAL_ID_LEN bytes) when a human accepted, else -1. */
int fm_mcp_input_approval(struct fm_ctx *ctx, const char *plan_id, json_t *ask, char *ap_out);

/* Input for handlers (tools, prompts) on stateless requests.  The MCP
 * layer brackets a request with begin/end (params borrowed; target names
 * what the state is bound to) and opens its requestState: 0, or -1 with
 * err when the state is tampered, foreign, expired or for another target
 * (answered as invalid params). */
void fm_mcp_input_begin(struct fm_ctx *ctx, const json_t *params, const char *target);
int fm_mcp_input_open(struct fm_ctx *ctx, fm_err *err);
void fm_mcp_input_end(struct fm_ctx *ctx);
/* The client's answer to the input request named key (borrowed), or NULL. */
const json_t *fm_mcp_input(const struct fm_ctx *ctx, const char *key);
/* The state the handler passed to fm_mcp_input_required last round
 * (borrowed, verified), or NULL on a first round. */
const json_t *fm_mcp_input_state(const struct fm_ctx *ctx);
/* Whether the client declared capability ("sampling", "elicitation", "roots"). */
bool fm_mcp_client_can(const struct fm_ctx *ctx, const char *capability);
/* An InputRequiredResult (new) asking requests ({key: {method, params}},
 * stolen) and carrying state (stolen, may be NULL) sealed in requestState;
 * the handler returns it as its result.  NULL with err outside a stateless
 * request. */
json_t *fm_mcp_input_required(struct fm_ctx *ctx, json_t *requests, json_t *state, fm_err *err);
/* Marks the request as needing capability the client did not declare: it
 * is answered with MissingRequiredClientCapabilityError (-32021). */
void fm_mcp_require_client(struct fm_ctx *ctx, const char *capability);

/* Who is calling, as sealed states and tasks are bound to it: a verified
 * principal's source, subject and client, else the OS user and client. */
void fm_mcp_caller_id(const struct fm_ctx *ctx, char *out, size_t len);

/* ---- tasks (io.modelcontextprotocol/tasks, src/mcp/tasks.c) ---- */
#define FM_TASKS_EXT "io.modelcontextprotocol/tasks"
/* Whether tasks can be offered: the runner shares the store, so an
 * in-memory database cannot. */
bool fm_tasks_available(const struct fm_ctx *ctx);
/* tasks/get, tasks/update, tasks/cancel for the caller: the result (new),
 * or NULL with *code and why (256 bytes) set. */
json_t *fm_tasks_request(struct fm_ctx *ctx, const char *method, const json_t *params, int *code,
                         char *why);
/* tasks/list (2025-11-25) for the caller: {tasks: [...], nextCursor?},
 * newest first, only the caller's unexpired tasks, a page at a time
 * (params.cursor from the previous page), each task as tasks/get has it
 * without its result (new); NULL with *code and why set. */
json_t *fm_tasks_list(struct fm_ctx *ctx, const json_t *params, int *code, char *why);
/* A task's ttl: kept this long after it is created, then tasks/get,
 * tasks/result and tasks/list no longer show it (its work is not
 * stopped: a repair's workflow runs on, readable with workflow_get).  A
 * 2025-11-25 tools/call may ask for less (params.task.ttl), bounded. */
#define FM_TASK_TTL_MAX_MS (24LL * 3600 * 1000)
#define FM_TASK_TTL_MIN_MS 1000LL
/* In a runner: whether tasks/cancel was called (reads the store at most
 * every 100 ms; false outside a runner). */
bool fm_task_cancel_requested(struct fm_ctx *ctx);
/* In a runner: what it is doing now (message, clipped) for tasks/get's
 * statusMessage, and the workflow it runs (workflow_id, or NULL).  At most
 * one write per half second unless a workflow id is given. */
void fm_task_note(struct fm_ctx *ctx, const char *workflow_id, const char *message);
/* In a runner, when the call it continues returns: records result
 * (borrowed; sc_text, if set, is its structuredContent as text) and ends
 * the process. */
void fm_task_finish(struct fm_ctx *ctx, const json_t *result, const char *sc_text)
    __attribute__((noreturn));

/* Reads whatever input is already waiting without blocking: answers pings,
 * applies notifications/cancelled to the call in flight, queues the rest. */
void fm_mcp_pump(struct fm_ctx *ctx);

/* notifications/message at level from logger, if the client asked for
 * that level with logging/setLevel (the gate and call path use it). */
void fm_mcp_log(struct fm_ctx *ctx, const char *level, const char *logger, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Sends a request to the client (steals params) and waits up to
 * timeout_ms for its result (new), handling other traffic meanwhile.
 * NULL with err on an error answer, a timeout or a lost client. */
json_t *fm_mcp_request(struct fm_ctx *ctx, const char *method, json_t *params, int timeout_ms,
                       fm_err *err);

/* The client's answer (msg borrowed) to our request `method`: its result
 * (new), or NULL with err naming what the client refused. */
json_t *fm_mcp_answer_result(const json_t *msg, const char *method, fm_err *err);

/* fm_mcp_request on an HTTP exchange (src/mcp/backchannel.c): the
 * request goes out on the POST's response stream and the answer, POSTed by
 * the client on any connection to any worker or replica, comes back
 * through the store. */
json_t *fm_mcp_http_request(struct fm_ctx *ctx, const char *method, json_t *params, int timeout_ms,
                            fm_err *err);
/* A JSON-RPC response the client POSTed (msg borrowed) for the 2025
 * session loaded in ctx: handed to the call waiting for it.  Returns the
 * HTTP status: 202 delivered; 404 no such request pending in this session
 * (unknown, answered, expired, or another session's); 413 too large; 500
 * with err when the store fails. */
int fm_mcp_http_reply(struct fm_ctx *ctx, const json_t *msg, size_t len, fm_err *err);

/* Syslog-style level index for an MCP level name, or -1. */
int fm_log_level_index(const char *name);
/* The name for an index, or "off" for -1. */
const char *fm_log_level_name(int index);

#endif
