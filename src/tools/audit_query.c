/* audit_query: who did what, compact by default. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fm_tools.gen.h"
#include "fleetmcp/fm_audit.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_util.h"

/* "30m", "2h", "7d" back from now, or ISO-8601 UTC.  Returns 0 with *ms. */
static int parse_time(const char *s, long long *ms)
{
    char unit = 0, tail = 0;
    long long n = 0;
    if (sscanf(s, "%lld%c%c", &n, &unit, &tail) == 2 && n >= 0) {
        long long mul = unit == 's'   ? 1000LL
                        : unit == 'm' ? 60000LL
                        : unit == 'h' ? 3600000LL
                        : unit == 'd' ? 86400000LL
                                      : 0;
        if (mul && n < 3650LL * 86400000LL / mul) {
            *ms = fm_now_ms() - n * mul;
            return 0;
        }
    }
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end) end = strptime(s, "%Y-%m-%d", &tm);
    if (!end) return -1;
    if (*end == '.')
        while (*++end >= '0' && *end <= '9') {
        }
    if (*end && strcmp(end, "Z") && strcmp(end, "+00:00")) return -1;
    *ms = (long long)timegm(&tm) * 1000;
    return 0;
}

static json_t *compact_row(json_t *r, bool detail)
{
    json_int_t ts = json_integer_value(json_object_get(r, "ts_ms"));
    char iso[32], who[160];
    fm_iso_time(ts, iso);
    /* A label the client gave itself is shown as such: "human:mcp-cli"
     * on stdio proves nothing about a human. */
    bool claimed =
        !strncmp(fm_json_str(r, "os_user", ""), FM_SELF_DECLARED, strlen(FM_SELF_DECLARED));
    snprintf(who, sizeof who, "%s:%s%s", fm_json_str(r, "initiator_kind", "?"),
             fm_json_str(r, "initiator_name", "?"), claimed ? " (self-declared)" : "");
    json_t *o =
        json_pack("{s:O, s:s, s:s, s:O, s:O, s:s}", "id", json_object_get(r, "id"), "ts", iso,
                  "phase", fm_json_str(r, "phase", "call"), "tool",
                  json_object_get(r, "tool") ? json_object_get(r, "tool") : json_null(), "decision",
                  json_object_get(r, "decision") ? json_object_get(r, "decision") : json_null(),
                  "initiator", who);
    static const char *const keep[] = {"node",     "reason",       "error",       "result",
                                       "plan_id",  "approval_id",  "approvers",   "workflow_id",
                                       "call_ref", "state_before", "state_after", "runbook"};
    for (size_t i = 0; i < sizeof keep / sizeof *keep; i++) {
        json_t *v = json_object_get(r, keep[i]);
        if (v) json_object_set(o, keep[i], v);
    }
    /* Results are stored whole for replay; show a glimpse unless asked. */
    const char *res = fm_json_str(o, "result", NULL);
    if (!detail && res && strlen(res) > 300) {
        size_t n = 300;
        while (n > 0 && ((unsigned char)res[n] & 0xC0) == 0x80)
            n--;
        char *cut = strndup(res, n);
        char buf[320];
        snprintf(buf, sizeof buf, "%s...", cut);
        free(cut);
        json_object_set_new(o, "result", json_string(buf));
    }
    /* A refusal's error repeats its reason: keep one (tokens cost). */
    if (json_equal(json_object_get(o, "error"), json_object_get(o, "reason")))
        json_object_del(o, "error");
    if (detail) {
        static const char *const more[] = {"session",        "os_user",     "client_name",
                                           "client_version", "autonomy",    "mode",
                                           "args_hash",      "duration_us", "error_code",
                                           "prev_hash",      "hash",        "runbook_version"};
        for (size_t i = 0; i < sizeof more / sizeof *more; i++) {
            json_t *v = json_object_get(r, more[i]);
            if (v) json_object_set(o, more[i], v);
        }
        const char *args = fm_json_str(r, "args", NULL);
        json_t *a = args ? json_loads(args, 0, NULL) : NULL;
        if (a) json_object_set_new(o, "args", a);
    }
    return o;
}

/* Returns a new object. */
json_t *fm_tool_audit_query(fm_call *call, fm_err *err)
{
    const json_t *a = call->args;
    json_t *f = json_deep_copy(a);
    static const char *const spans[] = {"since", "until"};
    for (int i = 0; i < 2; i++) {
        const char *s = fm_json_str(a, spans[i], NULL);
        long long ms;
        if (!s) continue;
        if (parse_time(s, &ms)) {
            /* The caller's text goes back in the message, clipped
             * (control characters blanked) so it cannot drive a terminal. */
            char shown[41];
            fm_clip(shown, sizeof shown, s);
            json_decref(f);
            fm_err_set(err, FM_ERR_INVALID,
                       "%s: '%s' is not a time: use ISO-8601 (2026-11-23T14:00:00Z) or a"
                       " span such as 30m, 2h, 7d",
                       spans[i], shown);
            return NULL;
        }
        json_object_set_new(f, i ? "until_ms" : "since_ms", json_integer(ms));
    }
    json_int_t limit = json_integer_value(json_object_get(a, "limit"));
    if (!limit) limit = 20;
    json_object_set_new(f, "limit", json_integer(limit));
    json_t *rows = fm_audit_query(&call->ctx->store, f, err);
    json_decref(f);
    if (!rows) return NULL;
    bool detail = json_is_true(json_object_get(a, "detail"));
    json_t *out = json_array();
    size_t i;
    json_t *r;
    json_int_t last = 0;
    json_array_foreach(rows, i, r)
    {
        json_array_append_new(out, compact_row(r, detail));
        last = json_integer_value(json_object_get(r, "id"));
    }
    json_t *res = json_pack("{s:I, s:o}", "count", (json_int_t)json_array_size(out), "rows", out);
    if ((json_int_t)json_array_size(rows) == limit && last > 1)
        json_object_set_new(res, "next_before_id", json_integer(last));
    json_decref(rows);
    return res;
}
