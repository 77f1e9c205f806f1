/* libFuzzer target: the whole message path.  Input bytes go through the
 * bounded line reader (via a pipe) and each line through JSON-RPC and MCP
 * dispatch, tool schema validation, the gate and the audit store. */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fleetmcp/fm_mcp.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_transport.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static fm_ctx ctx;
static int sink = -1;
static long long inputs;

static void setup(void)
{
    fm_err err = {0};
    unsetenv("FLEETMCP_CONFIG");
    if (fm_ctx_open(&ctx, NULL, ":memory:", &err)) abort();
    sink = open("/dev/null", O_WRONLY);
    static const char init[] =
        "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{\"protocolVersion\":"
        "\"2025-11-25\",\"clientInfo\":{\"name\":\"fuzz\",\"version\":\"1\"}}}";
    fm_transport *tx = calloc(1, sizeof *tx);
    fm_tx_init(tx, -1, sink, 4096);
    ctx.tx = tx;
    fm_mcp_handle_line(&ctx, init, sizeof init - 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (sink < 0) setup();
    if (size > 60000) return 0; /* stays under the pipe's capacity */
    /* A fresh audit table now and then keeps memory flat over long runs. */
    if (++inputs % 20000 == 0) fm_db_exec(ctx.store.db, "DELETE FROM audit", 0, 0, 0);
    int p[2];
    if (pipe(p)) return 0;
    fcntl(p[1], F_SETPIPE_SZ, 65536);
    if (write(p[1], data, size) != (ssize_t)size) {
        close(p[0]);
        close(p[1]);
        return 0;
    }
    close(p[1]);
    fm_transport rx;
    fm_tx_init(&rx, p[0], sink, 4096);
    fm_transport *out = ctx.tx;
    const char *line;
    size_t len;
    for (int n = 0; n < 1000; n++) {
        fm_rx_status st = fm_tx_next(&rx, true, &line, &len);
        if (st == FM_RX_LINE)
            fm_mcp_handle_line(&ctx, line, len);
        else if (st != FM_RX_TOO_LARGE)
            break;
    }
    ctx.tx = out;
    fm_tx_free(&rx);
    close(p[0]);
    return 0;
}
