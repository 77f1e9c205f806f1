/* MCP over JSON-RPC: lifecycle and method dispatch. */
#include "fleetmcp/fm_mcp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <poll.h>

#include "fleetmcp/fm_audit.h"
#include "fleetmcp/fm_content.h"
#include "fleetmcp/fm_jsonrpc.h"
#include "fleetmcp/fm_registry.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_transport.h"
#include "fleetmcp/fm_util.h"

/* Newest first: an unsupported request is answered with the first.
 * These are the stateful revisions (initialize handshake). */
static const char *const versions[] = {"2025-11-25", "2025-06-18", "2025-03-26"};
/* Stateless revisions: no initialize, every request carries _meta. */
static const char *const stateless_versions[] = {"2026-07-28"};
/* Every version this server speaks, newest first (server/discover). */
static const char *const all_versions[] = {"2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26"};

/* tools/list is deterministic for a process; a client may keep it this long.
 * Private: once tokens arrive, what a caller sees depends on its scopes. */
#define TOOLS_TTL_MS 60000
/* The one stateful revision with tasks in its core. */
#define TASKS_2025 "2025-11-25"
/* How long tasks/result (2025-11-25) waits for a task to end. */
#define TASK_RESULT_WAIT_MS 60000

#define INSTRUCTIONS                                                                               \
    "fleetmcp looks after a Slurm GPU fleet. Start with fleet_status, then read tools"             \
    " (slurm_nodes, gpu_health, diagnose). Mutations are gated: a call without approval"           \
    " returns a plan id and the command a human runs to approve it; in shadow mode"                \
    " actions are only recorded. Every call is audited."

static int send(fm_ctx *ctx, json_t *msg)
{
    int rc = msg && ctx->tx ? fm_tx_send(ctx->tx, msg) : 0;
    json_decref(msg);
    return rc;
}

static int reply_error(fm_ctx *ctx, const json_t *id, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A tools/call reply whose structuredContent is the text the call already
 * dumped (for content[0] and the audit row): spliced in, not re-dumped.
 * Takes reply and sc_text. */
static int send_with_structured(fm_ctx *ctx, json_t *reply, char *sc_text)
{
    int rc = ctx->tx ? fm_tx_send_spliced(ctx->tx, reply, "structuredContent", sc_text) : 0;
    if (rc == 1) {
        /* Cannot happen for fm_rpc_result's shape; stay correct if it does. */
        json_object_set_new(json_object_get(reply, "result"), "structuredContent",
                            json_loads(sc_text, 0, NULL));
        rc = send(ctx, json_incref(reply));
    }
    json_decref(reply);
    free(sc_text);
    return rc;
}

static int reply_error(fm_ctx *ctx, const json_t *id, int code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return send(ctx, fm_rpc_error(id, code, msg));
}

static bool batches_allowed(const fm_ctx *ctx)
{
    /* JSON-RPC batching was removed from MCP in 2025-06-18. */
    return ctx->session.initialized && !strcmp(ctx->session.protocol, "2025-03-26");
}

/* ---- initialize ------------------------------------------------------ */

/* What this server offers (new).  Resource subscriptions exist only in
 * the stateful revisions: 2026-07-28 replaced resources/subscribe with
 * subscriptions/listen, which fleetmcp does not serve. */
static json_t *capabilities(const fm_ctx *ctx, bool stateless)
{
    json_t *c = json_pack("{s:{s:b}, s:{}, s:{s:b, s:b}, s:{s:b}, s:{}}", "tools", "listChanged", 0,
                          "logging", "resources", "subscribe",
                          !stateless && ctx->content->subscribe != NULL, "listChanged", 0,
                          "prompts", "listChanged", 0, "completions");
    /* Tasks are an extension of the stateless revision (SEP-2663); the
     * runner shares the store, so an in-memory one offers none. */
    if (stateless && fm_tasks_available(ctx))
        json_object_set_new(c, "extensions", json_pack("{s:{}}", FM_TASKS_EXT));
    /* 2025-11-25 has tasks in the core protocol, for tools/call. */
    else if (!stateless && !strcmp(ctx->session.protocol, TASKS_2025) && fm_tasks_available(ctx))
        json_object_set_new(
            c, "tasks",
            json_pack("{s:{}, s:{}, s:{s:{s:{}}}}", "list", "cancel", "requests", "tools", "call"));
    return c;
}

/* ---- tasks on 2025-11-25 sessions ---------------------------------------
 *
 * The same tasks (a store row, a detached runner, src/mcp/tasks.c) in that
 * revision's shapes: tools declare execution.taskSupport, a tools/call
 * with params.task answers CreateTaskResult ({task}), tasks/get and
 * tasks/cancel answer the Task, tasks/result waits for the end and
 * answers the tool's result. */

static bool tasks_2025(const fm_ctx *ctx)
{
    return !strcmp(ctx->session.protocol, TASKS_2025) && fm_tasks_available(ctx);
}

/* The 2025-11-25 Task for the extension's task object (borrowed). */
static json_t *task_2025(const json_t *t)
{
    json_t *o = json_pack("{s:O, s:O, s:O, s:O, s:O, s:O}", "taskId", json_object_get(t, "taskId"),
                          "status", json_object_get(t, "status"), "createdAt",
                          json_object_get(t, "createdAt"), "lastUpdatedAt",
                          json_object_get(t, "lastUpdatedAt"), "ttl", json_object_get(t, "ttlMs"),
                          "pollInterval", json_object_get(t, "pollIntervalMs"));
    const json_t *m = json_object_get(t, "statusMessage");
    if (o && m) json_object_set(o, "statusMessage", (json_t *)m);
    return o;
}

static json_t *do_tasks_2025(fm_ctx *ctx, const char *method, const json_t *params, int *code,
                             char *why)
{
    if (!strcmp(method, "tasks/cancel")) {
        json_t *ack = fm_tasks_request(ctx, method, params, code, why);
        if (!ack) return NULL;
        json_decref(ack);
    }
    /* tasks/result waits for the end, polling the row as a client would;
     * bounded, since it holds this worker (or the stdio loop). */
    int64_t deadline = fm_now_ms() + TASK_RESULT_WAIT_MS;
    for (;;) {
        json_t *t = fm_tasks_request(ctx, "tasks/get", params, code, why);
        if (!t) return NULL;
        const char *st = fm_json_str(t, "status", "");
        json_t *out = NULL;
        if (strcmp(method, "tasks/result")) {
            out = task_2025(t);
        } else if (!strcmp(st, "completed")) {
            out = json_incref(json_object_get(t, "result"));
            if (out && json_is_object(out)) {
                json_t *meta = json_object_get(out, "_meta");
                if (!json_is_object(meta)) json_object_set_new(out, "_meta", meta = json_object());
                json_object_set_new(meta, "io.modelcontextprotocol/related-task",
                                    json_pack("{s:O}", "taskId", json_object_get(t, "taskId")));
            }
        } else if (!strcmp(st, "failed")) {
            const json_t *e = json_object_get(t, "error");
            *code = json_integer_value(json_object_get(e, "code"))
                        ? (int)json_integer_value(json_object_get(e, "code"))
                        : FM_RPC_INTERNAL_ERROR;
            snprintf(why, 256, "%.250s", fm_json_str(e, "message", "the task failed"));
        } else if (!strcmp(st, "cancelled")) {
            *code = FM_RPC_INVALID_PARAMS;
            snprintf(why, 256, "Invalid params: the task was cancelled and has no result");
        } else if (!strcmp(st, "input_required")) {
            *code = FM_RPC_INVALID_REQUEST;
            snprintf(why, 256,
                     "Invalid request: the task asks for input, which a 2025-11-25"
                     " session cannot answer; cancel it and call the tool on a"
                     " 2026-07-28 request (tasks/update)");
        } else if (fm_now_ms() >= deadline || ctx->stop) {
            *code = FM_RPC_INTERNAL_ERROR;
            snprintf(why, 256,
                     "Internal error: the task is still %s after %d s; poll tasks/get"
                     " and ask tasks/result once it is completed",
                     st, TASK_RESULT_WAIT_MS / 1000);
        } else {
            json_decref(t);
            struct timespec ts = {0, 100 * 1000000L};
            nanosleep(&ts, NULL);
            continue;
        }
        json_decref(t);
        return out;
    }
}

/* tasks/list: the caller's tasks, each as the 2025-11-25 Task. */
static json_t *do_tasks_list_2025(fm_ctx *ctx, const json_t *params, int *code, char *why)
{
    json_t *page = fm_tasks_list(ctx, params, code, why);
    if (!page) return NULL;
    json_t *tasks = json_object_get(page, "tasks"), *t;
    size_t i;
    json_array_foreach(tasks, i, t) json_array_set_new(tasks, i, task_2025(t));
    return page;
}

/* params.task.ttl of a 2025-11-25 tools/call: a number of ms (bounded to
 * the server's range) or null (the maximum: tasks here are never kept
 * without end); -1 when it is neither. */
static int64_t task_ttl_2025(const json_t *task)
{
    const json_t *ttl = json_object_get(task, "ttl");
    if (!ttl || json_is_null(ttl)) return FM_TASK_TTL_MAX_MS;
    if (!json_is_number(ttl) || json_number_value(ttl) < 0) return -1;
    double v = json_number_value(ttl);
    return v < (double)FM_TASK_TTL_MIN_MS   ? FM_TASK_TTL_MIN_MS
           : v > (double)FM_TASK_TTL_MAX_MS ? FM_TASK_TTL_MAX_MS
                                            : (int64_t)v;
}

/* MissingRequiredClientCapability for the tasks extension. */
static void tasks_required(fm_ctx *ctx, const char *what, int *code, char *why)
{
    json_decref(ctx->rpc_error_data);
    ctx->rpc_error_data =
        json_pack("{s:{s:{s:{}}}}", "requiredCapabilities", "extensions", FM_TASKS_EXT);
    *code = FM_RPC_MISSING_CAPABILITY;
    snprintf(why, 256,
             "Missing required client capability: %.80s needs the " FM_TASKS_EXT
             " extension; declare it in _meta io.modelcontextprotocol/clientCapabilities"
             ".extensions",
             what);
}

/* Implementation info (new). */
static json_t *server_info(void)
{
    return json_pack("{s:s, s:s, s:s}", "name", FM_SERVER_NAME, "title",
                     "fleetmcp: GPU fleet operations", "version", FM_SERVER_VERSION);
}

static json_t *do_initialize(fm_ctx *ctx, const json_t *params, int *code, char *why)
{
    const char *want = fm_json_str(params, "protocolVersion", NULL);
    if (!want) {
        *code = FM_RPC_INVALID_PARAMS;
        snprintf(why, 256, "Invalid params: initialize needs protocolVersion (a string)");
        return NULL;
    }
    if (ctx->session.initialized) {
        *code = FM_RPC_INVALID_REQUEST;
        snprintf(why, 256, "Invalid Request: already initialized");
        return NULL;
    }
    const char *use = versions[0];
    for (size_t i = 0; i < sizeof versions / sizeof *versions; i++)
        if (!strcmp(want, versions[i])) use = versions[i];
    fm_session *s = &ctx->session;
    snprintf(s->protocol, sizeof s->protocol, "%s", use);
    const json_t *ci = json_object_get(params, "clientInfo");
    fm_clip(s->client_name, sizeof s->client_name, fm_json_str(ci, "name", "unknown"));
    fm_clip(s->client_version, sizeof s->client_version, fm_json_str(ci, "version", ""));
    /* mcp-cli is the operators' client; its calls are attributed to a
     * human.  This is a label for the audit trail, not an authority:
     * only signed approvals authorise mutations. */
    s->initiator = fm_session_initiator(s);
    s->elicitation =
        json_is_object(json_object_get(json_object_get(params, "capabilities"), "elicitation"));
    s->sampling =
        json_is_object(json_object_get(json_object_get(params, "capabilities"), "sampling"));
    s->initialized = true;
    return json_pack("{s:s, s:o, s:o, s:s}", "protocolVersion", use, "capabilities",
                     capabilities(ctx, false), "serverInfo", server_info(), "instructions",
                     INSTRUCTIONS);
}

/* ---- server/discover (stateless revisions) ---------------------------- */

static json_t *do_discover(const fm_ctx *ctx)
{
    json_t *sv = json_array();
    for (size_t i = 0; i < sizeof all_versions / sizeof *all_versions; i++)
        json_array_append_new(sv, json_string(all_versions[i]));
    return json_pack("{s:o, s:o, s:o, s:s, s:{s:o}}", "supportedVersions", sv, "capabilities",
                     capabilities(ctx, true), "serverInfo", server_info(), "instructions",
                     INSTRUCTIONS, "_meta", "io.modelcontextprotocol/serverInfo", server_info());
}

/* ---- tools/list ------------------------------------------------------ */

static void cursor_encode(size_t offset, size_t total, char out[64])
{
    char raw[40];
    int n = snprintf(raw, sizeof raw, "fm1:%zu:%zu", offset, total);
    fm_base64_encode((const unsigned char *)raw, (size_t)n, out);
}

static int cursor_decode(const char *c, size_t total, size_t *offset)
{
    size_t n = strlen(c);
    if (n == 0 || n > 60 || n % 4) return -1;
    unsigned char raw[64];
    long m = fm_base64_decode(c, n, raw, sizeof raw - 1);
    if (m <= 0) return -1;
    raw[m] = '\0';
    size_t off = 0, tot = 0;
    char tail;
    if (sscanf((char *)raw, "fm1:%zu:%zu%c", &off, &tot, &tail) != 2) return -1;
    /* The tool set is fixed for a process; a cursor from another config
     * (different total) is stale. */
    if (tot != total || off == 0 || off >= total) return -1;
    *offset = off;
    return 0;
}

static json_t *do_tools_list(fm_ctx *ctx, const json_t *params, int *code, char *why)
{
    int idx[512];
    size_t total = fm_registry_visible(ctx, idx, 512);
    if (total > 512) total = 512;
    size_t page =
        (size_t)fm_cfg_int(fm_config_section(&ctx->cfg, "limits"), "tools_page_size", 100);
    size_t off = 0;
    const json_t *cur = json_object_get(params, "cursor");
    if (cur && !json_is_null(cur)) {
        if (!json_is_string(cur) || cursor_decode(json_string_value(cur), total, &off)) {
            *code = FM_RPC_INVALID_PARAMS;
            snprintf(why, 256, "Invalid params: unknown or stale cursor; list again without one");
            return NULL;
        }
    }
    json_t *tools = json_array();
    bool tasks = tasks_2025(ctx);
    for (size_t i = off; i < total && i < off + page; i++) {
        json_t *tool = fm_registry_tool_json(ctx, idx[i]);
        unsigned flags = fm_tool_table[idx[i]].flags;
        if (tasks && (flags & (FM_TOOL_TASK | FM_TOOL_TASK_REQUIRED))) {
            json_t *copy = json_copy(tool);
            json_decref(tool);
            tool = copy;
            json_object_set_new(tool, "execution",
                                json_pack("{s:s}", "taskSupport",
                                          flags & FM_TOOL_TASK_REQUIRED ? "required" : "optional"));
        }
        json_array_append_new(tools, tool);
    }
    json_t *res = json_pack("{s:o}", "tools", tools);
    if (off + page < total) {
        char next[64];
        cursor_encode(off + page, total, next);
        json_object_set_new(res, "nextCursor", json_string(next));
    }
    return res;
}

/* ---- multi round-trip input ------------------------------------------ */

/* Opens a stateless request's requestState for the handler; false (with
 * an invalid-params error) when the state does not hold. */
static bool input_enter(fm_ctx *ctx, const json_t *params, const char *target, int *code, char *why)
{
    if (fm_mcp_version_stateful(ctx->session.protocol)) return true;
    fm_mcp_input_begin(ctx, params, target);
    fm_err err = {0};
    if (fm_mcp_input_open(ctx, &err)) {
        fm_mcp_input_end(ctx);
        *code = FM_RPC_INVALID_PARAMS;
        snprintf(why, 256,
                 "Invalid params: %.120s; call again without requestState and"
                 " inputResponses to be asked anew",
                 err.text);
        return false;
    }
    return true;
}

/* Ends it; a handler that found a client capability missing turns the
 * result into MissingRequiredClientCapabilityError (its data stays in
 * ctx->rpc_error_data for the reply). */
static json_t *input_leave(fm_ctx *ctx, json_t *res, int *code, char *why, char **sc_text)
{
    fm_mcp_input_end(ctx);
    if (ctx->rpc_error_data) {
        json_decref(res);
        if (sc_text) {
            free(*sc_text);
            *sc_text = NULL;
        }
        *code = FM_RPC_MISSING_CAPABILITY;
        snprintf(why, 256,
                 "Missing required client capability: declare it in _meta"
                 " io.modelcontextprotocol/clientCapabilities (see error.data)");
        return NULL;
    }
    return res;
}

/* ---- tools/call ------------------------------------------------------ */

static json_t *do_tools_call(fm_ctx *ctx, const json_t *id, const json_t *params, int *code,
                             char *why, char **sc_text)
{
    const json_t *name = json_object_get(params, "name");
    if (!json_is_string(name)) {
        *code = FM_RPC_INVALID_PARAMS;
        snprintf(why, 256, "Invalid params: tools/call needs name (a string)");
        return NULL;
    }
    int ti = fm_registry_find(ctx, json_string_value(name));
    if (ti < 0) {
        char c[128];
        fm_clip(c, sizeof c, json_string_value(name));
        *code = FM_RPC_INVALID_PARAMS;
        snprintf(why, 256, "Unknown tool: %s (tools/list shows the tools this server offers)", c);
        return NULL;
    }
    const json_t *args = json_object_get(params, "arguments");
    if (args && !json_is_object(args) && !json_is_null(args)) {
        *code = FM_RPC_INVALID_PARAMS;
        snprintf(why, 256, "Invalid params: arguments must be an object");
        return NULL;
    }
    if (json_is_null(args)) args = NULL;
    const json_t *task = tasks_2025(ctx) ? json_object_get(params, "task") : NULL;
    ctx->task_ttl_ms = 0; /* the default, unless this call asks */
    if (tasks_2025(ctx)) {
        unsigned flags = fm_tool_table[ti].flags;
        const char *n = json_string_value(name);
        if (task && (!json_is_object(task) || task_ttl_2025(task) < 0)) {
            *code = FM_RPC_INVALID_PARAMS;
            snprintf(why, 256,
                     "Invalid params: task must be an object ({} or {\"ttl\": ms},"
                     " ms a number >= 0 or null)");
            return NULL;
        }
        if (task && !(flags & (FM_TOOL_TASK | FM_TOOL_TASK_REQUIRED))) {
            *code = FM_RPC_METHOD_NOT_FOUND;
            snprintf(why, 256,
                     "%.64s does not run as a task (execution.taskSupport: forbidden);"
                     " call it without task",
                     n);
            return NULL;
        }
        if (!task && (flags & FM_TOOL_TASK_REQUIRED)) {
            *code = FM_RPC_METHOD_NOT_FOUND;
            snprintf(why, 256,
                     "%.64s runs only as a task (execution.taskSupport: required);"
                     " call it with params.task",
                     n);
            return NULL;
        }
        /* For this call only: stdio keeps its session between calls. */
        ctx->session.tasks = task != NULL;
        ctx->task_ttl_ms = task ? task_ttl_2025(task) : 0;
    }
    if ((fm_tool_table[ti].flags & FM_TOOL_TASK_REQUIRED) &&
        (!ctx->session.tasks || !fm_tasks_available(ctx))) {
        if (ctx->session.tasks) {
            *code = FM_RPC_INTERNAL_ERROR;
            snprintf(why, 256,
                     "Internal error: %.64s runs only as a task, and tasks need a"
                     " database file or PostgreSQL (start with --db)",
                     json_string_value(name));
        } else {
            tasks_required(ctx, json_string_value(name), code, why);
        }
        return NULL;
    }
    const json_t *meta = json_object_get(params, "_meta");
    const json_t *token = json_object_get(meta, "progressToken");
    if (token && !json_is_string(token) && !json_is_integer(token)) token = NULL;
    /* Stateless calls carry the answers to earlier questions (approval,
     * a handler's input) in their own params. */
    char target[96];
    fm_cat3(target, sizeof target, "tools/call:", json_string_value(name), NULL);
    if (!input_enter(ctx, params, target, code, why)) return NULL;
    ctx->inflight_id = (json_t *)id;
    json_t *res = fm_tools_call_text(ctx, ti, args, token, meta, sc_text);
    ctx->inflight_id = NULL;
    if (task) {
        ctx->session.tasks = false;
        ctx->task_ttl_ms = 0;
        if (res && !strcmp(fm_json_str(res, "resultType", ""), "task")) {
            json_t *created = json_pack("{s:o}", "task", task_2025(res));
            json_decref(res);
            res = created;
        }
    }
    return input_leave(ctx, res, code, why, sc_text);
}

/* ---- resources, prompts, completions ----------------------------------- */

static bool in_list(const char *v, const char *const *list, size_t n);

/* A provider's error as a JSON-RPC error: unknown names and bad
 * arguments are the client's to fix (invalid params), the rest ours. */
static void content_error(const fm_err *err, int *code, char *why)
{
    *code = err->code == FM_ERR_NOT_FOUND || err->code == FM_ERR_INVALID ? FM_RPC_INVALID_PARAMS
                                                                         : FM_RPC_INTERNAL_ERROR;
    snprintf(why, 256, "%s: %.200s", fm_strerror(err->code), err->text);
}

static json_t *do_content(fm_ctx *ctx, const char *method, const json_t *params, int *code,
                          char *why, json_t **edata, long long *ttl_ms)
{
    const fm_content_ops *c = ctx->content;
    fm_err err = {0};
    json_t *v = NULL;
    *ttl_ms = TOOLS_TTL_MS;
    if (!strcmp(method, "resources/list")) {
        if ((v = c->resources(ctx, &err))) return json_pack("{s:o}", "resources", v);
    } else if (!strcmp(method, "resources/templates/list")) {
        return json_pack("{s:o}", "resourceTemplates", c->templates(ctx));
    } else if (!strcmp(method, "resources/read")) {
        const char *uri = fm_json_str(params, "uri", NULL);
        if (!uri) {
            *code = FM_RPC_INVALID_PARAMS;
            snprintf(why, 256, "Invalid params: resources/read needs uri (a string)");
            return NULL;
        }
        if ((v = c->read(ctx, uri, ttl_ms, &err))) return json_pack("{s:o}", "contents", v);
        if (err.code == FM_ERR_NOT_FOUND) {
            char u[160];
            fm_clip(u, sizeof u, uri);
            *edata = json_pack("{s:s}", "uri", u);
            *code = FM_RPC_INVALID_PARAMS;
            snprintf(why, 256,
                     "Resource not found: %s (resources/list and"
                     " resources/templates/list say what exists)",
                     u);
            return NULL;
        }
    } else if (!strcmp(method, "prompts/list")) {
        return json_pack("{s:o}", "prompts", c->prompts(ctx));
    } else if (!strcmp(method, "prompts/get")) {
        const char *name = fm_json_str(params, "name", NULL);
        const json_t *args = json_object_get(params, "arguments");
        if (!name || (args && !json_is_object(args))) {
            *code = FM_RPC_INVALID_PARAMS;
            snprintf(why, 256,
                     "Invalid params: prompts/get needs name (a string) and optional"
                     " arguments (an object of strings)");
            return NULL;
        }
        char target[96];
        snprintf(target, sizeof target, "prompts/get:%s", name);
        if (!input_enter(ctx, params, target, code, why)) return NULL;
        v = c->prompt(ctx, name, args, &err);
        if ((v = input_leave(ctx, v, code, why, NULL)) || *code) return v;
    } else { /* completion/complete */
        const json_t *ref = json_object_get(params, "ref");
        const json_t *a = json_object_get(params, "argument");
        const char *an = fm_json_str(a, "name", NULL), *av = fm_json_str(a, "value", NULL);
        if (!json_is_object(ref) || !an || !av) {
            *code = FM_RPC_INVALID_PARAMS;
            snprintf(why, 256,
                     "Invalid params: completion/complete needs ref (an object) and"
                     " argument {name, value}");
            return NULL;
        }
        v = c->complete(ctx, ref, an, av);
        return json_pack("{s:{s:o, s:I, s:b}}", "completion", "values", v, "total",
                         (json_int_t)json_array_size(v), "hasMore", 0);
    }
    content_error(&err, code, why);
    return NULL;
}

static bool is_content_method(const char *m)
{
    static const char *const names[] = {"resources/list", "resources/templates/list",
                                        "resources/read", "prompts/list",
                                        "prompts/get",    "completion/complete"};
    return in_list(m, names, sizeof names / sizeof *names);
}

/* ---- stateless requests (2026-07-28) ---------------------------------- */

#define META_VERSION "io.modelcontextprotocol/protocolVersion"
#define META_CAPS "io.modelcontextprotocol/clientCapabilities"
#define META_INFO "io.modelcontextprotocol/clientInfo"
#define META_LOG "io.modelcontextprotocol/logLevel"

static bool in_list(const char *v, const char *const *list, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        if (!strcmp(v, list[i])) return true;
    return false;
}

bool fm_mcp_version_stateful(const char *v)
{
    return in_list(v, versions, sizeof versions / sizeof *versions);
}

/* A request is stateless when it says so: over HTTP by a protocol header
 * that names no stateful revision, anywhere by a protocol version in its
 * _meta.  Everything else takes the initialize path. */
static bool is_stateless(const fm_ctx *ctx, const json_t *params)
{
    const char *hv = ctx->xc ? ctx->xc->version_hdr : NULL;
    if (hv) return !fm_mcp_version_stateful(hv);
    return json_object_get(json_object_get(params, "_meta"), META_VERSION) != NULL;
}

/* Checks a stateless request's _meta (and, over HTTP, its protocol header)
 * and makes ctx->session describe this one request.  Returns 0, or the
 * JSON-RPC code with why (and *data, new) filled. */
static int stateless_enter(fm_ctx *ctx, const json_t *params, char *why, json_t **data)
{
    const json_t *meta = json_object_get(params, "_meta");
    const char *hv = ctx->xc ? ctx->xc->version_hdr : NULL;
    if (ctx->xc && !hv) {
        snprintf(why, 256, "Header mismatch: MCP-Protocol-Version header is missing");
        return FM_RPC_HEADER_MISMATCH;
    }
    const json_t *ver = json_object_get(meta, META_VERSION);
    const json_t *caps = json_object_get(meta, META_CAPS);
    if (!json_is_object(meta) || !json_is_string(ver) || !json_is_object(caps)) {
        snprintf(why, 256,
                 "Invalid params: _meta needs " META_VERSION " (a string) and " META_CAPS
                 " (an object)");
        return FM_RPC_INVALID_PARAMS;
    }
    const char *v = json_string_value(ver);
    if (hv && strcmp(hv, v)) {
        snprintf(why, 256,
                 "Header mismatch: MCP-Protocol-Version header and _meta " META_VERSION " differ");
        return FM_RPC_HEADER_MISMATCH;
    }
    if (!in_list(v, stateless_versions, sizeof stateless_versions / sizeof *stateless_versions)) {
        char c[64];
        fm_clip(c, sizeof c, v);
        json_t *sv = json_array();
        for (size_t i = 0; i < sizeof all_versions / sizeof *all_versions; i++)
            json_array_append_new(sv, json_string(all_versions[i]));
        *data = json_pack("{s:o, s:s}", "supported", sv, "requested", c);
        snprintf(why, 256, "Unsupported protocol version: %s (see error.data.supported)", c);
        return FM_RPC_UNSUPPORTED_VERSION;
    }
    const json_t *log = json_object_get(meta, META_LOG);
    int li = -1;
    if (log && (li = fm_log_level_index(json_string_value(log))) < 0) {
        snprintf(why, 256,
                 "Invalid params: _meta " META_LOG " must be one of debug, info, notice,"
                 " warning, error, critical, alert, emergency");
        return FM_RPC_INVALID_PARAMS;
    }
    fm_session *s = &ctx->session;
    snprintf(s->protocol, sizeof s->protocol, "%s", v);
    const json_t *ci = json_object_get(meta, META_INFO);
    fm_clip(s->client_name, sizeof s->client_name, fm_json_str(ci, "name", "unknown"));
    fm_clip(s->client_version, sizeof s->client_version, fm_json_str(ci, "version", ""));
    s->initiator = fm_session_initiator(s);
    s->elicitation = json_is_object(json_object_get(caps, "elicitation"));
    s->sampling = json_is_object(json_object_get(caps, "sampling"));
    s->tasks = json_is_object(json_object_get(json_object_get(caps, "extensions"), FM_TASKS_EXT));
    /* No notifications/message unless this request asked for them. */
    s->log_level = li;
    s->initialized = true;
    return 0;
}

/* HTTP status for a stateless request's JSON-RPC error. */
static int error_status(int code)
{
    switch (code) {
    case FM_RPC_METHOD_NOT_FOUND:
        return 404;
    case FM_RPC_INTERNAL_ERROR:
        return 500;
    case FM_RPC_PARSE_ERROR:
    case FM_RPC_INVALID_REQUEST:
    case FM_RPC_INVALID_PARAMS:
    case FM_RPC_HEADER_MISMATCH:
    case FM_RPC_MISSING_CAPABILITY:
    case FM_RPC_UNSUPPORTED_VERSION:
        return 400;
    }
    return 200;
}

/* Results of the stateless revisions say what they are; lists say how
 * long they keep. */
static void stateless_result(const char *method, json_t *result, long long ttl_ms)
{
    static const char *const cacheable[] = {
        "server/discover",          "tools/list",    "prompts/list", "resources/list",
        "resources/templates/list", "resources/read"};
    if (!json_object_get(result, "resultType"))
        json_object_set_new(result, "resultType", json_string("complete"));
    if (in_list(method, cacheable, sizeof cacheable / sizeof *cacheable)) {
        json_object_set_new(result, "ttlMs", json_integer(ttl_ms));
        json_object_set_new(result, "cacheScope", json_string("private"));
    }
}

/* ---- dispatch -------------------------------------------------------- */

static void method_not_found(const char *method, int *code, char *why)
{
    char c[80];
    fm_clip(c, sizeof c, method);
    *code = FM_RPC_METHOD_NOT_FOUND;
    snprintf(why, 256, "Method not found: %s", c);
}

/* Methods only the stateful revisions have. */
static json_t *dispatch_stateful(fm_ctx *ctx, const fm_rpc_msg *m, int *code, char *why)
{
    const json_t *params = m->params;
    if (!strcmp(m->method, "initialize")) return do_initialize(ctx, params, code, why);
    if (!strcmp(m->method, "ping")) return json_object();
    if (!ctx->session.initialized) {
        *code = FM_RPC_INVALID_REQUEST;
        snprintf(why, 256, "Invalid Request: send initialize before %.64s", m->method);
        return NULL;
    }
    if (!strcmp(m->method, "logging/setLevel")) {
        int li = fm_log_level_index(fm_json_str(params, "level", NULL));
        if (li < 0) {
            *code = FM_RPC_INVALID_PARAMS;
            snprintf(why, 256,
                     "Invalid params: level must be one of debug, info, notice,"
                     " warning, error, critical, alert, emergency");
            return NULL;
        }
        ctx->session.log_level = li;
        if (ctx->xc) ctx->xc->log_level_set = true;
        return json_object();
    }
    bool sub = !strcmp(m->method, "resources/subscribe");
    if ((sub || !strcmp(m->method, "resources/unsubscribe")) && ctx->content->subscribe) {
        const char *uri = fm_json_str(params, "uri", NULL);
        fm_err err = {0};
        if (!uri) {
            *code = FM_RPC_INVALID_PARAMS;
            snprintf(why, 256, "Invalid params: %s needs uri (a string)", m->method);
            return NULL;
        }
        if (ctx->content->subscribe(ctx, uri, sub, &err)) {
            content_error(&err, code, why);
            return NULL;
        }
        return json_object();
    }
    if (tasks_2025(ctx) && (!strcmp(m->method, "tasks/get") || !strcmp(m->method, "tasks/result") ||
                            !strcmp(m->method, "tasks/cancel")))
        return do_tasks_2025(ctx, m->method, params, code, why);
    if (tasks_2025(ctx) && !strcmp(m->method, "tasks/list"))
        return do_tasks_list_2025(ctx, params, code, why);
    method_not_found(m->method, code, why);
    return NULL;
}

static int handle_request(fm_ctx *ctx, const fm_rpc_msg *m, json_t *replies)
{
    int code = 0;
    char why[256] = "";
    json_t *result = NULL, *edata = NULL;
    char *sc_text = NULL; /* a tools/call's structuredContent, as text */
    const json_t *params = m->params;
    if (params && !json_is_object(params))
        return reply_error(ctx, m->id, FM_RPC_INVALID_PARAMS,
                           "Invalid params: params must be an object");
    /* Group commit (HTTP): a read tools/call rides in the open batch;
     * anything else (sessions, tasks, subscriptions, an answer to an
     * earlier question, whose state is single-use) commits it first and
     * runs alone. */
    if (ctx->store.batch.armed &&
        (strcmp(m->method, "tools/call") || json_object_get(params, "requestState") ||
         json_object_get(params, "inputResponses")))
        fm_audit_batch_flush(ctx);
    bool stateless = is_stateless(ctx, params);
    fm_session saved = ctx->session;
    long long ttl_ms = TOOLS_TTL_MS;
    if (stateless && (code = stateless_enter(ctx, params, why, &edata))) {
        /* refused before dispatch */
    } else if (is_content_method(m->method) && (stateless || ctx->session.initialized)) {
        result = do_content(ctx, m->method, params, &code, why, &edata, &ttl_ms);
    } else if (!strcmp(m->method, "tools/list") && (stateless || ctx->session.initialized)) {
        result = do_tools_list(ctx, params, &code, why);
    } else if (!strcmp(m->method, "tools/call") && (stateless || ctx->session.initialized)) {
        result = do_tools_call(ctx, m->id, params, &code, why, replies ? NULL : &sc_text);
        /* MCP: a cancelled request gets no response. */
        if (result && ctx->last_cancelled) {
            json_decref(result);
            free(sc_text);
            ctx->session = saved;
            return 0;
        }
    } else if (stateless) {
        if (!strcmp(m->method, "server/discover"))
            result = do_discover(ctx);
        else if (!strcmp(m->method, "tasks/get") || !strcmp(m->method, "tasks/update") ||
                 !strcmp(m->method, "tasks/cancel")) {
            if (ctx->session.tasks)
                result = fm_tasks_request(ctx, m->method, params, &code, why);
            else
                tasks_required(ctx, m->method, &code, why);
        } else
            method_not_found(m->method, &code, why);
    } else {
        result = dispatch_stateful(ctx, m, &code, why);
    }
    if (stateless) {
        if (result) stateless_result(m->method, result, ttl_ms);
        ctx->session = saved;
        if (ctx->xc) ctx->xc->status = result ? 200 : error_status(code);
    }
    if (ctx->rpc_error_data) {
        json_decref(edata);
        edata = ctx->rpc_error_data;
        ctx->rpc_error_data = NULL;
    }
    json_t *reply = result ? fm_rpc_result(m->id, result) : fm_rpc_error(m->id, code, why);
    if (edata) json_object_set_new(json_object_get(reply, "error"), "data", edata);
    if (replies) {
        json_array_append_new(replies, reply);
        return 0;
    }
    if (sc_text) return send_with_structured(ctx, reply, sc_text);
    return send(ctx, reply);
}

static void handle_notification(fm_ctx *ctx, const fm_rpc_msg *m)
{
    if (!strcmp(m->method, "notifications/cancelled")) {
        const json_t *rid = json_object_get(m->params, "requestId");
        if (ctx->current && ctx->inflight_id && rid && json_equal(rid, ctx->inflight_id))
            ctx->current->cancelled = true;
    }
    /* notifications/initialized and unknown notifications need nothing. */
}

/* Opens a deferred store before a message that may use it: anything but
 * initialize and ping (a client's first two), so that a start answers
 * initialize without SQLite.  A store that fails to open answers the
 * request with why and stays closed: the next message tries again. */
static bool store_ready(fm_ctx *ctx, const fm_rpc_msg *m, json_t *replies, int *rc)
{
    if (!ctx->store_deferred || !strcmp(m->method, "initialize") || !strcmp(m->method, "ping"))
        return true;
    fm_err err = {0};
    if (fm_ctx_store_ready(ctx, &err) == 0) return true;
    fm_log("error", "%s: %s", fm_strerror(err.code), err.text);
    *rc = 0;
    if (m->kind != FM_MSG_REQUEST) return false;
    char why[800];
    snprintf(why, sizeof why,
             "the store could not be opened, so nothing was done: %s: %.500s; repair it or point"
             " --db / FLEETMCP_DB at another, then retry (the server keeps serving)",
             fm_strerror(err.code), err.text);
    json_t *e = fm_rpc_error(m->id, FM_RPC_INTERNAL_ERROR, why);
    if (replies) {
        json_array_append_new(replies, e);
        return false;
    }
    *rc = send(ctx, e);
    return false;
}

static int handle_value(fm_ctx *ctx, const json_t *msg, json_t *replies)
{
    fm_rpc_msg m;
    fm_rpc_classify(msg, &m);
    int rc;
    if ((m.kind == FM_MSG_REQUEST || m.kind == FM_MSG_NOTIFICATION) &&
        !store_ready(ctx, &m, replies, &rc))
        return rc;
    switch (m.kind) {
    case FM_MSG_REQUEST:
        return handle_request(ctx, &m, replies);
    case FM_MSG_NOTIFICATION:
        handle_notification(ctx, &m);
        return 0;
    case FM_MSG_RESPONSE:
        return 0; /* no server-to-client requests pending */
    case FM_MSG_INVALID:
        if (replies) {
            json_array_append_new(replies, fm_rpc_error(m.id, m.error_code, m.error));
            return 0;
        }
        return send(ctx, fm_rpc_error(m.id, m.error_code, m.error));
    }
    return 0;
}

/* Valid JSON whose strings hold U+0000, which no tool accepts: the
 * request is refused, but answered with its own id when that id is
 * readable, so the client can match the error to its request. */
static int nul_in_string(fm_ctx *ctx, const char *line, size_t len)
{
    json_t *msg = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
    const json_t *id = json_object_get(msg, "id");
    bool usable = json_is_integer(id) ||
                  (json_is_string(id) && strlen(json_string_value(id)) == json_string_length(id));
    int rc = usable
                 ? reply_error(ctx, id, FM_RPC_INVALID_PARAMS,
                               "Invalid params: a string holds U+0000 (\\u0000), which no"
                               " field accepts; remove it")
                 : reply_error(ctx, NULL, msg ? FM_RPC_INVALID_REQUEST : FM_RPC_PARSE_ERROR,
                               "Invalid Request: U+0000 (\\u0000) in a string, and the request's id"
                               " is not readable; remove it");
    json_decref(msg);
    return rc;
}

int fm_mcp_handle_line(fm_ctx *ctx, const char *line, size_t len)
{
    json_error_t je;
    /* Blank lines between messages are tolerated, not answered. */
    size_t k = 0;
    while (k < len && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r'))
        k++;
    if (k == len) return 0;
    json_t *msg = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
    if (!msg && json_error_code(&je) == json_error_null_character)
        return nul_in_string(ctx, line, len);
    if (!msg)
        return reply_error(ctx, NULL, FM_RPC_PARSE_ERROR, "Parse error: %s at byte %d", je.text,
                           je.position);
    int rc = fm_mcp_handle_json(ctx, msg);
    json_decref(msg);
    return rc;
}

int fm_mcp_handle_json(fm_ctx *ctx, const json_t *msg)
{
    int rc;
    if (json_is_array(msg)) {
        if (!batches_allowed(ctx) || json_array_size(msg) == 0) {
            rc = reply_error(ctx, NULL, FM_RPC_INVALID_REQUEST,
                             json_array_size(msg)
                                 ? "Invalid Request: JSON-RPC batches are not supported in"
                                   " protocol %s; send one message per line"
                                 : "Invalid Request: empty batch%s",
                             json_array_size(msg) ? ctx->session.protocol : "");
        } else {
            json_t *replies = json_array();
            size_t i;
            json_t *v;
            json_array_foreach(msg, i, v) handle_value(ctx, v, replies);
            rc = json_array_size(replies) ? send(ctx, json_incref(replies)) : 0;
            json_decref(replies);
        }
    } else {
        rc = handle_value(ctx, msg, NULL);
    }
    return rc;
}

/* A message that arrives while a call is in flight (msg is its parse,
 * taken; NULL if it did not parse): pings are answered and a cancel
 * applies at once, garbage is answered as the main loop would, and the
 * rest waits in the queue for the main loop. */
static void while_busy(fm_ctx *ctx, const char *line, size_t len, json_t *msg)
{
    if (!msg) {
        fm_mcp_handle_line(ctx, line, len);
        return;
    }
    fm_rpc_msg m;
    fm_rpc_classify(msg, &m);
    if (m.kind == FM_MSG_NOTIFICATION && !strcmp(m.method, "notifications/cancelled"))
        handle_notification(ctx, &m);
    else if (m.kind == FM_MSG_REQUEST && !strcmp(m.method, "ping"))
        send(ctx, fm_rpc_result(m.id, json_object()));
    else
        json_array_append_new(ctx->tx->queued, json_stringn(line, len));
    json_decref(msg);
}

static int too_large(fm_ctx *ctx)
{
    return reply_error(ctx, NULL, FM_RPC_INVALID_REQUEST,
                       "Invalid Request: message exceeds %zu bytes and was skipped;"
                       " raise limits.max_message_bytes if this is expected",
                       ctx->tx->max_message);
}

void fm_mcp_pump(fm_ctx *ctx)
{
    fm_transport *tx = ctx->tx;
    const char *line;
    size_t len;
    /* Bounded: at most 256 messages per pump, so a flood cannot starve
     * the call in flight. */
    for (int n = 0; n < 256; n++) {
        fm_rx_status st = fm_tx_next(tx, false, &line, &len);
        if (st == FM_RX_TOO_LARGE) {
            too_large(ctx);
            continue;
        }
        if (st != FM_RX_LINE) return;
        while_busy(ctx, line, len, json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL));
    }
}

json_t *fm_mcp_answer_result(const json_t *msg, const char *method, fm_err *err)
{
    json_t *res = json_incref(json_object_get(msg, "result"));
    if (!res) {
        const char *m =
            json_string_value(json_object_get(json_object_get(msg, "error"), "message"));
        char c[128];
        fm_clip(c, sizeof c, m ? m : "no result");
        fm_err_set(err, FM_ERR_BACKEND, "the client refused %s: %s", method, c);
    }
    return res;
}

json_t *fm_mcp_request(fm_ctx *ctx, const char *method, json_t *params, int timeout_ms, fm_err *err)
{
    fm_transport *tx = ctx->tx;
    /* Over HTTP the answer comes on another POST (src/mcp/backchannel.c). */
    if (tx && tx->collect) return fm_mcp_http_request(ctx, method, params, timeout_ms, err);
    if (!tx) {
        json_decref(params);
        fm_err_set(err, FM_ERR_UNAVAILABLE, "no client connection for %s", method);
        return NULL;
    }
    char id[32];
    snprintf(id, sizeof id, "fm-%lld", ++ctx->next_request_id);
    json_t *req = json_pack("{s:s, s:s, s:s, s:o}", "jsonrpc", "2.0", "id", id, "method", method,
                            "params", params);
    int rc = fm_tx_send(tx, req);
    json_decref(req);
    if (rc) {
        fm_err_set(err, FM_ERR_UNAVAILABLE, "the client is gone");
        return NULL;
    }
    int64_t deadline = fm_now_ms() + timeout_ms;
    /* Bounded by time; every other message meanwhile is handled as the
     * pump does (pings answered, cancellation applied, the rest queued). */
    while (fm_now_ms() < deadline && !ctx->stop) {
        const char *line;
        size_t len;
        fm_rx_status st = fm_tx_next(tx, false, &line, &len);
        if (st == FM_RX_EOF || st == FM_RX_ERROR) break;
        if (st == FM_RX_TOO_LARGE) {
            too_large(ctx);
            continue;
        }
        if (st != FM_RX_LINE) {
            struct pollfd p = {.fd = tx->in_fd, .events = POLLIN};
            int64_t left = deadline - fm_now_ms();
            poll(&p, 1, (int)(left > 200 ? 200 : left > 0 ? left : 0));
            continue;
        }
        json_t *msg = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
        json_t *mid = json_object_get(msg, "id");
        if (msg && !json_object_get(msg, "method") && json_is_string(mid) &&
            !strcmp(json_string_value(mid), id)) {
            json_t *res = fm_mcp_answer_result(msg, method, err);
            json_decref(msg);
            return res;
        }
        while_busy(ctx, line, len, msg);
        if (ctx->current && ctx->current->cancelled) break;
    }
    fm_err_set(err, FM_ERR_TIMEOUT, "no answer to %s within %d s", method, timeout_ms / 1000);
    return NULL;
}

int fm_mcp_serve(fm_ctx *ctx)
{
    fm_transport *tx = ctx->tx;
    const char *line;
    size_t len;
    while (!ctx->stop) {
        if (json_array_size(tx->queued)) {
            json_t *q = json_incref(json_array_get(tx->queued, 0));
            json_array_remove(tx->queued, 0);
            int rc = fm_mcp_handle_line(ctx, json_string_value(q), json_string_length(q));
            json_decref(q);
            if (rc) return 0;
            continue;
        }
        fm_rx_status st = FM_RX_AGAIN;
        /* Idle work (a WAL checkpoint) only when no message is waiting. */
        if (fm_store_checkpoint_due(&ctx->store)) {
            st = fm_tx_next(tx, false, &line, &len);
            if (st == FM_RX_AGAIN) fm_store_checkpoint(&ctx->store);
        }
        if (st == FM_RX_AGAIN) st = fm_tx_next(tx, true, &line, &len);
        switch (st) {
        case FM_RX_LINE:
            if (fm_mcp_handle_line(ctx, line, len)) return 0;
            break;
        case FM_RX_TOO_LARGE:
            if (too_large(ctx)) return 0;
            break;
        case FM_RX_AGAIN:
            break;
        case FM_RX_EOF:
            return 0;
        case FM_RX_ERROR:
            return 1;
        }
    }
    return 0;
}
