#include "fleetmcp/fm_gate.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_util.h"

#define HOUR_MS 3600000LL
#define DEFAULT_CREATE_PER_HOUR 60
#define DEFAULT_TICKETS_PER_HOUR 20

const char *fm_gate_verdict_name(fm_gate_verdict v)
{
    switch (v) {
    case FM_GATE_ALLOW: return "allow";
    case FM_GATE_DENY: return "deny";
    case FM_GATE_SHADOW: return "shadow";
    }
    return "deny";
}

bool fm_killswitch_engaged(fm_ctx *ctx, char *why, size_t whylen)
{
    char val[256];
    struct stat sb;
    if (ctx->cfg.killswitch_file[0] && stat(ctx->cfg.killswitch_file, &sb) == 0) {
        snprintf(why, whylen, "kill switch file %s exists", ctx->cfg.killswitch_file);
        return true;
    }
    if (fm_store_setting_get(&ctx->store, "killswitch", val, sizeof val) == 0 &&
        !strncmp(val, "engaged", 7)) {
        snprintf(why, whylen, "kill switch engaged in the store (%s)", val);
        return true;
    }
    return false;
}

long long fm_gate_rate_limit(const fm_ctx *ctx, const char *tool)
{
    /* Turning safety on is never rate-limited. */
    if (!strcmp(tool, "killswitch_engage")) return 0;
    const json_t *rl = fm_config_section(&ctx->cfg, "rate_limits");
    json_t *v = json_object_get(rl, tool);
    if (json_is_integer(v)) return json_integer_value(v);
    if (!strcmp(tool, "ticket_create"))
        return fm_cfg_int(fm_config_section(&ctx->cfg, "tickets"), "max_creates_per_hour",
                          DEFAULT_TICKETS_PER_HOUR);
    return DEFAULT_CREATE_PER_HOUR;
}

/* Calls of tool allowed in the last hour, and when the oldest of them
 * leaves the window (the next free slot). */
static long long allowed_last_hour(fm_ctx *ctx, const char *tool, long long *oldest_ms)
{
    sqlite3_stmt *s = NULL;
    long long n = 0;
    *oldest_ms = 0;
    if (sqlite3_prepare_v2(ctx->store.db,
                           "SELECT count(*), min(ts_ms) FROM audit WHERE tool=? AND"
                           " decision='allow' AND phase IN ('call','intent') AND ts_ms>=?",
                           -1, &s, NULL) != SQLITE_OK)
        return 0;
    sqlite3_bind_text(s, 1, tool, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, fm_now_ms() - HOUR_MS);
    if (sqlite3_step(s) == SQLITE_ROW) {
        n = sqlite3_column_int64(s, 0);
        *oldest_ms = sqlite3_column_int64(s, 1);
    }
    sqlite3_finalize(s);
    return n;
}

static void deny(fm_gate_decision *d, fm_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void deny(fm_gate_decision *d, fm_code code, const char *fmt, ...)
{
    d->verdict = FM_GATE_DENY;
    d->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->reason, sizeof d->reason, fmt, ap);
    va_end(ap);
}

void fm_gate_decide(fm_ctx *ctx, int ti, const json_t *args, fm_gate_decision *d)
{
    memset(d, 0, sizeof *d);
    const fm_tool_def *t = &fm_tool_table[ti];
    d->verdict = FM_GATE_ALLOW;

    /* 1. enabled: the registry hides disabled tools, but a caller that
     *    bypasses tools/list (the workflow engine) is held to it too. */
    if (!ctx->tool_enabled[ti]) {
        deny(d, FM_ERR_DENIED, "tool %s is disabled by this server's config", t->name);
        return;
    }
    /* 2. reads always run. */
    if (t->autonomy == FM_AUTONOMY_READ) return;

    /* 3. kill switch.  Its own two tools pass: engaging again is harmless,
     *    and releasing is exactly what a human must be able to do (it
     *    still needs an approval below). */
    char why[600];
    if (strncmp(t->name, "killswitch_", 11) && fm_killswitch_engaged(ctx, why, sizeof why)) {
        deny(d, FM_ERR_DENIED,
             "%s refused: %s; every mutation is stopped. A human releases it with"
             " `mcp-cli call killswitch_release` and an approval, or by removing the file",
             t->name, why);
        return;
    }
    /* 4. rate limit for create tools. */
    if (t->autonomy == FM_AUTONOMY_CREATE) {
        long long limit = fm_gate_rate_limit(ctx, t->name), oldest = 0;
        if (limit > 0) {
            long long used = allowed_last_hour(ctx, t->name, &oldest);
            if (used >= limit) {
                char next[32];
                fm_iso_time(oldest + HOUR_MS, next);
                deny(d, FM_ERR_RATE_LIMITED,
                     "%s refused: %lld of %lld allowed calls in the last hour; the next is"
                     " allowed at %s (raise rate_limits.%s in the config if this is expected)",
                     t->name, used, limit, next, t->name);
                return;
            }
        }
        return;
    }
    /* 5. shadow mode: node actions are recorded, never run. */
    if (ctx->cfg.mode == FM_MODE_SHADOW) {
        d->verdict = FM_GATE_SHADOW;
        d->code = FM_ERR_DENIED;
        snprintf(d->reason, sizeof d->reason,
                 "mode is shadow: %s was recorded as a recommendation and nothing changed;"
                 " set mode: canary or fleet in the config to act",
                 t->name);
        return;
    }
    /* 6. hitl and canary need an approval bound to the exact plan. */
    (void)args;
    deny(d, FM_ERR_APPROVAL,
         "%s needs a human approval (autonomy %s), and this server has no approvers"
         " configured: add approvals.keys to the config, then approve the plan with"
         " `mcp-cli approve PLAN`",
         t->name, fm_autonomy_name(t->autonomy));
}
