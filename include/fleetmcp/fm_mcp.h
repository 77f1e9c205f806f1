/* The MCP layer: lifecycle, version negotiation, tools/list paging,
 * tools/call, ping, logging, progress and cancellation over a transport. */
#ifndef FM_MCP_H
#define FM_MCP_H

#include <jansson.h>

#include "fleetmcp/fm_error.h"

struct fm_ctx;

#define FM_SERVER_NAME "fleetmcp"
#define FM_SERVER_VERSION "0.2.0"

/* Serves until EOF or SIGTERM (ctx->stop).  Returns the exit status. */
int fm_mcp_serve(struct fm_ctx *ctx);

/* Handles one raw line (the fuzz target and unit tests call this); any
 * replies go to ctx->tx.  Returns 0, or -1 when the peer is gone. */
int fm_mcp_handle_line(struct fm_ctx *ctx, const char *line, size_t len);

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

/* Syslog-style level index for an MCP level name, or -1. */
int fm_log_level_index(const char *name);

#endif
