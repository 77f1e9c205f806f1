/* Opening and closing the one server context. */
#include <pthread.h>
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

/* Looked up once per process, when a call first records who ran it, not
 * at start: getpwuid reads nsswitch.conf and the passwd database (14 of a
 * start's page faults, 9 system calls), and initialize never needs it. */
static char proc_user[64];
static pthread_once_t proc_user_once = PTHREAD_ONCE_INIT;

static void proc_user_lookup(void)
{
    struct passwd *pw = getpwuid(geteuid());
    if (pw && pw->pw_name)
        snprintf(proc_user, sizeof proc_user, "%s", pw->pw_name);
    else
        snprintf(proc_user, sizeof proc_user, "uid:%u", (unsigned)geteuid());
}

const char *fm_session_os_user(const fm_session *s)
{
    if (s->os_user[0]) return s->os_user;
    pthread_once(&proc_user_once, proc_user_lookup);
    return proc_user;
}

int fm_ctx_open(fm_ctx *ctx, const char *config_path, const char *db_path, fm_err *err)
{
    memset(ctx, 0, sizeof *ctx);
    fm_random_hex(ctx->session.id, 16);
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
