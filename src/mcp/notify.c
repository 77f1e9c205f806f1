/* Server-to-client notifications during a call: progress, log messages,
 * and noticing cancellation without threads (the handler polls). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "fleetmcp/fm_jsonrpc.h"
#include "fleetmcp/fm_mcp.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_transport.h"

static const char *const levels[] = {"debug", "info",     "notice", "warning",
                                     "error", "critical", "alert",  "emergency"};

int fm_log_level_index(const char *name)
{
    for (int i = 0; name && i < 8; i++)
        if (!strcmp(levels[i], name)) return i;
    return -1;
}

const char *fm_log_level_name(int index)
{
    return index >= 0 && index < 8 ? levels[index] : "off";
}

bool fm_call_cancelled(fm_call *call)
{
    if (call->ctx->tx) fm_mcp_pump(call->ctx);
    /* A task's runner has no client connection: tasks/cancel reaches it
     * through the store. */
    if (!call->cancelled && fm_task_cancel_requested(call->ctx)) call->cancelled = true;
    return call->cancelled;
}

const char *fm_call_stopping(fm_call *call)
{
    fm_ctx *ctx = call->ctx;
    if (ctx->tx && !ctx->stop) fm_mcp_pump(ctx);
    if (ctx->stop) return "SIGTERM";
    /* Only a transport that reads a stream can see its input end: an HTTP
     * request's collecting transport has no stdin (its eof is set from
     * the start), and its client going away is a cancel, not a stop. */
    if (ctx->tx && ctx->tx->eof && !ctx->tx->collect) return "stdin closed";
    return NULL;
}

bool fm_call_progress(fm_call *call, double progress, double total, const char *message)
{
    fm_ctx *ctx = call->ctx;
    /* A task's runner has no client to notify: its progress is the
     * task's statusMessage. */
    if (ctx->task_id[0] && message) {
        char m[200];
        snprintf(m, sizeof m, "%.120s (%.1f of %.0f)", message, progress, total);
        fm_task_note(ctx, NULL, m);
    }
    if (ctx->tx && call->progress_token) {
        json_t *p =
            json_pack("{s:O, s:f}", "progressToken", call->progress_token, "progress", progress);
        if (total > 0) json_object_set_new(p, "total", json_real(total));
        if (message) json_object_set_new(p, "message", json_string(message));
        json_t *n = fm_rpc_notification("notifications/progress", p);
        fm_tx_send(ctx->tx, n);
        json_decref(n);
    }
    return !fm_call_cancelled(call);
}

static void vlog(fm_ctx *ctx, const char *level, const char *logger, const char *fmt, va_list ap)
{
    int li = fm_log_level_index(level);
    if (!ctx->tx || ctx->session.log_level < 0 || li < ctx->session.log_level) return;
    char text[1024];
    vsnprintf(text, sizeof text, fmt, ap);
    json_t *n =
        fm_rpc_notification("notifications/message", json_pack("{s:s, s:s, s:s}", "level", level,
                                                               "logger", logger, "data", text));
    if (n) fm_tx_send(ctx->tx, n);
    json_decref(n);
}

void fm_call_log(fm_call *call, const char *level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    /* A workflow resumed by recovery runs without a tool of its own. */
    vlog(call->ctx, level, call->tool ? call->tool->name : "workflow", fmt, ap);
    va_end(ap);
}

void fm_mcp_log(fm_ctx *ctx, const char *level, const char *logger, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(ctx, level, logger, fmt, ap);
    va_end(ap);
}
