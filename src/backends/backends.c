/* Opens the backends the config names.  Each family's opener fills its
 * slot in ctx->be or leaves it NULL when its section is absent. */
#include "fleetmcp/fm_backends.h"

#include "fleetmcp/fm_server.h"

int fm_backends_open(fm_ctx *ctx, fm_err *err)
{
    (void)ctx;
    (void)err;
    return 0;
}

void fm_backends_close(fm_ctx *ctx)
{
    (void)ctx;
}

int fm_backend_missing(fm_err *err, const char *key, const char *hint)
{
    return fm_err_set(err, FM_ERR_NOT_CONFIGURED,
                      "the %s backend is not configured: add a '%s:' section to the config"
                      " (%s); see examples/fleetmcp.yaml",
                      key, key, hint ? hint : "check-config shows the keys");
}
