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
#include "fleetmcp/fm_tickets.h"
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

/* The tables of the subsystems that keep state in the store (in probe
 * mode: the versions they want). */
static int store_init(fm_ctx *ctx, fm_err *err)
{
    bool deferred = ctx->store_deferred;
    ctx->store_deferred = false; /* fm_tickets_open: open local tickets now */
    if (fm_audit_init(ctx, err) || fm_plan_init(ctx, err) || fm_approval_init(ctx, err) ||
        fm_guard_init(ctx, err) || (deferred && !ctx->be.tickets && fm_tickets_open(ctx, err))) {
        ctx->store_deferred = deferred;
        return -1;
    }
    return 0;
}

static int store_open(fm_ctx *ctx, fm_err *err)
{
    if (fm_store_open(&ctx->store, ctx->cfg.db_path, err)) return -1;
    if (store_init(ctx, err)) {
        fm_store_close(&ctx->store);
        return -1;
    }
    return 0;
}

/* When ctx_open opens the store: now, at the first message that needs it
 * (after fm_store_check), or never (check-config probes it). */
enum store_when { STORE_NOW, STORE_DEFERRED, STORE_NEVER };

static int ctx_open(fm_ctx *ctx, const char *config_path, const char *db_path, enum store_when when,
                    fm_err *err)
{
    memset(ctx, 0, sizeof *ctx);
    fm_random_hex(ctx->session.id, 16);
    snprintf(ctx->session.protocol, sizeof ctx->session.protocol, "2025-11-25");
    ctx->session.log_level = -1;
    ctx->content = &fm_content_fleet;
    if (fm_config_load(&ctx->cfg, config_path, db_path, err)) return -1;
    int later = when == STORE_DEFERRED ? fm_store_check(ctx->cfg.db_path, err)
                : when == STORE_NEVER  ? 1
                                       : 0;
    if (later < 0) {
        fm_config_free(&ctx->cfg);
        return -1;
    }
    ctx->store_deferred = later == 1;
    /* Backends keep a pointer to ctx->store and use it only per call. */
    if ((!ctx->store_deferred && store_open(ctx, err)) || fm_registry_init(ctx, err) ||
        fm_backends_open(ctx, err)) {
        fm_ctx_close(ctx);
        return -1;
    }
    return 0;
}

int fm_ctx_open(fm_ctx *ctx, const char *config_path, const char *db_path, fm_err *err)
{
    return ctx_open(ctx, config_path, db_path, STORE_NOW, err);
}

/* Opening the store is most of a start's work (parsing its schema, the
 * migrations, the audit key and anchor: 2/3 of the instructions and ~40
 * page faults of answering initialize), and a client's first message
 * never needs it. */
int fm_ctx_open_deferred(fm_ctx *ctx, const char *config_path, const char *db_path, fm_err *err)
{
    return ctx_open(ctx, config_path, db_path, STORE_DEFERRED, err);
}

int fm_ctx_open_unstored(fm_ctx *ctx, const char *config_path, const char *db_path, fm_err *err)
{
    return ctx_open(ctx, config_path, db_path, STORE_NEVER, err);
}

json_t *fm_ctx_store_probe(fm_ctx *ctx, json_t *notes)
{
    json_t *problems = json_array();
    if (fm_store_open_probe(&ctx->store, ctx->cfg.db_path, problems, notes)) return problems;
    fm_err err = {0};
    if (store_init(ctx, &err)) {
        json_array_append_new(problems, json_sprintf("store %s: %s", ctx->store.path, err.text));
        return problems;
    }
    fm_store_probe_versions(&ctx->store, problems, notes);
    if (fm_audit_probe_key(&ctx->store, &err))
        json_array_append_new(problems, json_sprintf("store %s: %s", ctx->store.path, err.text));
    return problems;
}

int fm_ctx_store_ready(fm_ctx *ctx, fm_err *err)
{
    return ctx->store_deferred ? store_open(ctx, err) : 0;
}

void fm_ctx_close(fm_ctx *ctx)
{
    json_decref(ctx->emergency);
    ctx->emergency = NULL;
    free(ctx->emergency_text);
    ctx->emergency_text = NULL;
    fm_runbooks_free(ctx->runbooks);
    ctx->runbooks = NULL;
    fm_diag_free(ctx->diag);
    ctx->diag = NULL;
    fm_backends_close(ctx);
    fm_registry_free(ctx);
    fm_store_close(&ctx->store);
    fm_config_free(&ctx->cfg);
}
