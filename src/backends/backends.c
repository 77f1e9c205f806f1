/* Opens the backends the config names.  Each family's opener fills its
 * slot in ctx->be or leaves it NULL when its section is absent. */
#include "fleetmcp/fm_backends.h"

#include "fleetmcp/fm_exec.h"
#include "fleetmcp/fm_metrics.h"
#include "fleetmcp/fm_slurm.h"
#include "fleetmcp/fm_tickets.h"
#include "fleetmcp/fm_server.h"

int fm_backends_open(fm_ctx *ctx, fm_err *err)
{
    const json_t *ssh = fm_config_section(&ctx->cfg, "ssh");
    if (ssh && fm_exec_ssh_open(ssh, &ctx->be.exec, &ctx->be.exec_st, err)) return -1;
    const json_t *slurm = fm_config_section(&ctx->cfg, "slurm");
    if (slurm && fm_slurm_open(slurm, &ctx->be.slurm, &ctx->be.slurm_st, err)) return -1;
    /* The store may open later (deferred): the backend checks it per use. */
    if (ctx->be.slurm && ctx->be.slurm->attach_store)
        ctx->be.slurm->attach_store(ctx->be.slurm_st, &ctx->store);
    const json_t *metrics = fm_config_section(&ctx->cfg, "metrics");
    if (metrics && fm_metrics_open(metrics, &ctx->be.metrics, &ctx->be.metrics_st, err)) return -1;
    /* Tickets always open: the local store is the default backend. */
    if (fm_tickets_open(ctx, err)) return -1;
    return 0;
}

void fm_backends_close(fm_ctx *ctx)
{
    fm_tickets_close(ctx);
    if (ctx->be.exec) ctx->be.exec->close(ctx->be.exec_st);
    ctx->be.exec = NULL;
    ctx->be.exec_st = NULL;
    if (ctx->be.slurm) ctx->be.slurm->close(ctx->be.slurm_st);
    ctx->be.slurm = NULL;
    ctx->be.slurm_st = NULL;
    if (ctx->be.metrics) ctx->be.metrics->close(ctx->be.metrics_st);
    ctx->be.metrics = NULL;
    ctx->be.metrics_st = NULL;
}

int fm_backend_missing(fm_err *err, const char *key, const char *hint)
{
    return fm_err_set(err, FM_ERR_NOT_CONFIGURED,
                      "the %s backend is not configured: add a '%s:' section to the config"
                      " (%s); see examples/fleetmcp.yaml",
                      key, key, hint ? hint : "check-config shows the keys");
}
