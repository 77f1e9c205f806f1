/* Streamable HTTP transport: `fleetmcp --http HOST:PORT` serves MCP at
 * /mcp with libmicrohttpd (loaded on first use, so stdio starts pay
 * nothing for it).  Each worker process (http.workers) handles its
 * requests one at a time through the same protocol core, gate and audit
 * as stdio. */
#ifndef FM_HTTPD_H
#define FM_HTTPD_H

#include "fleetmcp/fm_error.h"

struct fm_ctx;

/* Serves until ctx->stop (SIGTERM), then stops accepting, lets responses
 * in flight finish (bounded by http.shutdown_grace_s) and returns 0; 1
 * with err when the service cannot start (bad address, non-loopback bind
 * without authentication, port in use, libmicrohttpd missing). */
int fm_httpd_serve(struct fm_ctx *ctx, const char *listen, fm_err *err);

#endif
