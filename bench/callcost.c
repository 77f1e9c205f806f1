/* callcost: the server's own cost of one message, in process, with no
 * pipe or scheduler in the way.  Feeds lines to fm_mcp_handle_line with
 * replies written to /dev/null, and prints per-message medians.  Where
 * mcpbench gives the round trip a client sees, this shows how much of it
 * is the server's work.
 *
 *   callcost DB TOOL ARGS_JSON N
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "fleetmcp/fm_mcp.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_transport.h"

static double median_of(fm_ctx *ctx, const char *line, int n, double *v)
{
    for (int k = 0; k < n; k++) {
        double t0 = now_us();
        fm_mcp_handle_line(ctx, line, strlen(line));
        v[k] = now_us() - t0;
    }
    return median(v, n);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: callcost DB TOOL ARGS_JSON N\n");
        return 1;
    }
    int n = atoi(argv[4]);
    if (n <= 0 || n > 1000000) return 1;
    fm_ctx ctx;
    fm_transport tx;
    fm_err err = {0};
    memset(&ctx, 0, sizeof ctx);
    if (fm_ctx_open(&ctx, NULL, argv[1], &err)) {
        fprintf(stderr, "callcost: %s\n", err.text);
        return 1;
    }
    int out = open("/dev/null", O_WRONLY);
    fm_tx_init(&tx, -1, out, 1u << 20);
    ctx.tx = &tx;
    const char *init = "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{"
                       "\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},"
                       "\"clientInfo\":{\"name\":\"callcost\",\"version\":\"1\"}}}";
    fm_mcp_handle_line(&ctx, init, strlen(init));
    char call[4096];
    snprintf(call, sizeof call,
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"%s\","
             "\"arguments\":%s}}",
             argv[2], argv[3]);
    double *v = calloc((size_t)n, sizeof *v);
    const char *ping = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}";
    median_of(&ctx, call, n / 10 + 1, v); /* warm up */
    double p = median_of(&ctx, ping, n, v);
    double c = median_of(&ctx, call, n, v);
    printf("{\"ping_us\":%.2f,\"call_us\":%.2f}\n", p, c);
    free(v);
    ctx.tx = NULL;
    fm_tx_free(&tx);
    close(out);
    fm_ctx_close(&ctx);
    return 0;
}
