/* Opening and closing the one server context. */
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fleetmcp/fm_approval.h"
#include "fleetmcp/fm_audit.h"
#include "fleetmcp/fm_content.h"
#include "fleetmcp/fm_diagnose.h"
#include "fleetmcp/fm_guardrails.h"
#include "fleetmcp/fm_plan.h"
#include "fleetmcp/fm_registry.h"
#include "fleetmcp/fm_runbook.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_util.h"

static void os_user(char *out, size_t len)
{
    struct passwd *pw = getpwuid(geteuid());
    if (pw && pw->pw_name)
        snprintf(out, len, "%s", pw->pw_name);
    else
        snprintf(out, len, "uid:%u", (unsigned)geteuid());
}

int fm_ctx_open(fm_ctx *ctx, const char *config_path, const char *db_path, fm_err *err)
{
    memset(ctx, 0, sizeof *ctx);
    fm_random_hex(ctx->session.id, 16);
    os_user(ctx->session.os_user, sizeof ctx->session.os_user);
    snprintf(ctx->session.protocol, sizeof ctx->session.protocol, "2025-11-25");
    ctx->session.log_level = -1;
    ctx->content = &fm_content_fleet;
    if (fm_config_load(&ctx->cfg, config_path, db_path, err)) return -1;
    if (fm_store_open(&ctx->store, ctx->cfg.db_path, err) || fm_audit_init(ctx, err) ||
        fm_plan_init(ctx, err) || fm_approval_init(ctx, err) || fm_guard_init(ctx, err) || fm_registry_init(ctx, err) ||
        fm_backends_open(ctx, err)) {
        fm_ctx_close(ctx);
        return -1;
    }
    return 0;
}

void fm_ctx_close(fm_ctx *ctx)
{
    json_decref(ctx->emergency);
    ctx->emergency = NULL;
    fm_runbooks_free(ctx->runbooks);
    ctx->runbooks = NULL;
    fm_diag_free(ctx->diag);
    ctx->diag = NULL;
    fm_backends_close(ctx);
    fm_registry_free(ctx);
    fm_store_close(&ctx->store);
    fm_config_free(&ctx->cfg);
}
