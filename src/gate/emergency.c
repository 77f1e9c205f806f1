/* Emergency mode: the design's "at most one node per rack, pool or SKU,
 * unless emergency mode".  A human starts it with emergency_start (hitl:
 * an approval), naming the limits it raises and for how long (at most
 * emergency.max_duration_s); it ends by itself at its deadline, or sooner
 * with emergency_end.  While it lasts it is loud: every tools/call result
 * carries a marker, every audit row's mode says "+emergency", and the
 * guardrail verdicts name it.  State: one store setting, so every server
 * sharing the store sees it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fm_tools.gen.h"
#include "fleetmcp/fm_policy.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_util.h"

#define KEY FM_EMERGENCY_SETTING

/* The stored setting as an object; an empty object when there is none
 * (or it is not an object), so "none" is a value the call can keep. */
static json_t *parse(const char *v)
{
    json_t *e = v && *v ? json_loads(v, 0, NULL) : NULL;
    if (json_is_object(e)) return e;
    json_decref(e);
    return json_object();
}

/* The setting's text and deadline as last parsed through st: every call
 * reads the setting (a remembered string under load, store.c's memo), and
 * a store that ever had an emergency keeps its ended record, which was
 * parsed again for every call.  The same text whose deadline has passed
 * needs no parse: none is active.  An active one is parsed each time (a
 * new object per use, as callers may change theirs). */
static void remember(fm_store *st, const char *text, int64_t until_ms)
{
    char *copy = strdup(text);
    free(st->emergency_seen_text);
    st->emergency_seen_text = copy; /* NULL (out of memory): parsed next time */
    st->emergency_seen_until = until_ms;
}

json_t *fm_emergency_active_in(fm_store *st)
{
    char v[2048];
    const char *text = fm_store_setting_get(st, KEY, v, sizeof v) ? "" : v;
    int64_t now = fm_store_now_ms(st);
    if (st->emergency_seen_text && st->emergency_seen_until <= now &&
        !strcmp(text, st->emergency_seen_text))
        return NULL;
    json_t *e = parse(text);
    int64_t until = json_integer_value(json_object_get(e, "until_ms"));
    remember(st, text, until);
    if (until > now) return e;
    json_decref(e);
    return NULL;
}

/* Drops the call's state: the next use reads the store. */
static void forget(fm_ctx *ctx)
{
    json_decref(ctx->emergency);
    ctx->emergency = NULL;
    free(ctx->emergency_text);
    ctx->emergency_text = NULL;
    ctx->emergency_assumed = false;
}

void fm_emergency_assume(fm_ctx *ctx, const char *text)
{
    if (ctx->emergency_depth <= 0) return; /* no call to hold it */
    forget(ctx);
    ctx->emergency_text = strdup(text);
    if (!ctx->emergency_text) return; /* out of memory: the call reads instead */
    ctx->emergency = parse(text);
    ctx->emergency_assumed = true;
}

const char *fm_emergency_checked(const fm_ctx *ctx)
{
    return ctx->emergency_assumed && ctx->emergency ? ctx->emergency_text : NULL;
}

json_t *fm_emergency_active(fm_ctx *ctx)
{
    if (ctx->emergency_depth <= 0) return fm_emergency_active_in(&ctx->store);
    if (!ctx->emergency) {
        /* json_null() (a singleton): read, and none was active. */
        json_t *e = fm_emergency_active_in(&ctx->store);
        ctx->emergency = e ? e : json_null();
    }
    /* The deadline is checked at every use: it may pass mid-call. */
    if (json_integer_value(json_object_get(ctx->emergency, "until_ms")) <=
        fm_store_now_ms(&ctx->store))
        return NULL;
    return json_incref(ctx->emergency);
}

void fm_emergency_call_begin(fm_ctx *ctx)
{
    ctx->emergency_depth++;
}

void fm_emergency_call_end(fm_ctx *ctx)
{
    if (ctx->emergency_depth > 0 && --ctx->emergency_depth == 0) forget(ctx);
}

bool fm_emergency_describe(fm_ctx *ctx, char *buf, size_t len)
{
    json_t *e = fm_emergency_active(ctx);
    if (!e) return false;
    char *limits = json_dumps(json_object_get(e, "limits"), JSON_COMPACT | JSON_SORT_KEYS);
    snprintf(buf, len, "EMERGENCY MODE until %s (started by %s: %s); raised limits: %s",
             fm_json_str(e, "until", "?"), fm_json_str(e, "by", "?"), fm_json_str(e, "reason", ""),
             limits ? limits : "{}");
    free(limits);
    json_decref(e);
    return true;
}

double fm_policy_limit(fm_ctx *ctx, const char *name, double configured, bool *raised)
{
    if (raised) *raised = false;
    json_t *e = fm_emergency_active(ctx);
    json_t *v = json_object_get(json_object_get(e, "limits"), name);
    double out = json_is_number(v) ? json_number_value(v) : configured;
    if (raised && json_is_number(v)) *raised = true;
    json_decref(e);
    return out;
}

int fm_emergency_approvals_required(fm_ctx *ctx)
{
    return (int)fm_cfg_int(fm_config_section(&ctx->cfg, "emergency"), "approvals_required", 2);
}

void fm_emergency_mark(fm_ctx *ctx, json_t *result)
{
    char line[1024];
    if (!json_is_object(result) || !fm_emergency_describe(ctx, line, sizeof line)) return;
    json_t *content = json_object_get(result, "content");
    if (json_is_array(content))
        json_array_append_new(content, json_pack("{s:s, s:s}", "type", "text", "text", line));
    json_t *meta = json_object_get(result, "_meta");
    if (!json_is_object(meta)) {
        meta = json_object();
        json_object_set_new(result, "_meta", meta);
    }
    json_object_set_new(meta, "io.fleetmcp/emergency", json_string(line));
}

static void who(fm_ctx *ctx, char *by, size_t len)
{
    snprintf(by, len, "%s:%s (%s)",
             ctx->session.initiator == FM_INITIATOR_HUMAN ? "human" : "agent",
             fm_session_who(&ctx->session), fm_session_os_user(&ctx->session));
}

/* Returns a new object (schemas/tools/emergency_start.json). */
json_t *fm_tool_emergency_start(fm_call *call, fm_err *err)
{
    fm_ctx *ctx = call->ctx;
    long long max = fm_cfg_int(fm_config_section(&ctx->cfg, "emergency"), "max_duration_s", 14400);
    long long dur = json_integer_value(json_object_get(call->args, "duration_s"));
    if (dur > max) {
        fm_err_set(err, FM_ERR_INVALID,
                   "duration_s %lld is over emergency.max_duration_s (%lld); ask for less, and"
                   " start it again if the emergency lasts",
                   dur, max);
        return NULL;
    }
    char by[208], until[32];
    who(ctx, by, sizeof by);
    /* The store's clock: every host compares the deadline with it. */
    int64_t until_ms = fm_store_now_ms(&ctx->store) + dur * 1000;
    fm_iso_time(until_ms, until);
    json_t *e = json_pack("{s:O, s:I, s:s, s:s, s:s, s:s}", "limits",
                          json_object_get(call->args, "limits"), "until_ms", (json_int_t)until_ms,
                          "until", until, "by", by, "reason", fm_json_str(call->args, "reason", ""),
                          "approval_id", call->approval_id ? call->approval_id : "");
    char *text = json_dumps(e, JSON_COMPACT | JSON_SORT_KEYS);
    int rc = text ? fm_store_setting_set(&ctx->store, KEY, text, err) : -1;
    free(text);
    if (rc) {
        if (!err->code) fm_err_set(err, FM_ERR_INTERNAL, "emergency state cannot be encoded");
        json_decref(e);
        return NULL;
    }
    forget(ctx);
    fm_log("warning", "EMERGENCY MODE started by %s until %s", by, until);
    json_object_set_new(e, "active", json_true());
    json_object_del(e, "until_ms");
    json_object_del(e, "approval_id");
    return e;
}

/* Returns a new object (schemas/tools/emergency_end.json). */
json_t *fm_tool_emergency_end(fm_call *call, fm_err *err)
{
    fm_ctx *ctx = call->ctx;
    char by[208], v[320], at[32];
    who(ctx, by, sizeof by);
    json_t *e = fm_emergency_active(ctx);
    bool was = e != NULL;
    json_decref(e);
    fm_iso_time(fm_now_ms(), at);
    /* A record that has already ended (until_ms 0), not a deletion: the
     * audit row says who ended it. */
    json_t *ended =
        json_pack("{s:I, s:s, s:s}", "until_ms", (json_int_t)0, "ended_by", by, "ended", at);
    char *text = json_dumps(ended, JSON_COMPACT);
    json_decref(ended);
    snprintf(v, sizeof v, "%s", text ? text : "{\"until_ms\":0}");
    free(text);
    if (fm_store_setting_set(&ctx->store, KEY, v, err)) return NULL;
    forget(ctx);
    return json_pack("{s:b, s:b, s:s}", "active", false, "was_active", was, "by", by);
}
