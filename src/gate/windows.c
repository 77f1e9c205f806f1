/* Change windows (the design: actions aligned to customer SLAs): per
 * partition, the times (UTC) when fleetmcp may take a node out of
 * service.  A node must be inside a window of every partition of it that
 * has windows; partitions without windows are not restricted.  Emergency
 * mode with limits.change_windows "suspended" lifts them, loudly. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fleetmcp/fm_guardrails.h"
#include "fleetmcp/fm_policy.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_util.h"

static const char *const DAYS[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

static int minutes(const char *hhmm)
{
    int h = 0, m = 0;
    if (sscanf(hhmm, "%d:%d", &h, &m) != 2) return -1;
    return h * 60 + m;
}

/* days absent means every day. */
static bool day_in(const json_t *days, int wday)
{
    if (!json_is_array(days)) return true;
    size_t i;
    json_t *d;
    json_array_foreach(days, i, d) if (json_is_string(d) &&
                                       !strcmp(json_string_value(d), DAYS[wday])) return true;
    return false;
}

/* Now (weekday, minute of day) inside window w; a window whose end is at
 * or before its start runs past midnight into the next day. */
static bool inside(const json_t *w, int wday, int now)
{
    int s = minutes(fm_json_str(w, "start", "")), e = minutes(fm_json_str(w, "end", ""));
    if (s < 0 || e < 0) return false;
    const json_t *days = json_object_get(w, "days");
    if (s < e) return day_in(days, wday) && now >= s && now < e;
    return (day_in(days, wday) && now >= s) || (day_in(days, (wday + 6) % 7) && now < e);
}

static void describe(const json_t *windows, char *buf, size_t len)
{
    size_t i, off = 0;
    json_t *w;
    buf[0] = '\0';
    json_array_foreach(windows, i, w)
    {
        char *days = json_dumps(json_object_get(w, "days"), JSON_COMPACT);
        int n = snprintf(buf + off, len - off, "%s%s-%s %s", i ? ", " : "",
                         fm_json_str(w, "start", "?"), fm_json_str(w, "end", "?"),
                         days ? days : "every day");
        free(days);
        if (n < 0 || (size_t)n >= len - off) return;
        off += (size_t)n;
    }
}

void fm_window_check(fm_ctx *ctx, const json_t *node, const char *name, json_t *verdicts)
{
    const json_t *parts =
        json_object_get(fm_config_section(&ctx->cfg, "change_windows"), "partitions");
    if (!json_object_size(parts)) return;
    time_t t = (time_t)(fm_now_ms() / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    int now = tm.tm_hour * 60 + tm.tm_min;
    char at[32];
    fm_iso_time(fm_now_ms(), at);
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(node, "partitions"), i, p)
    {
        const json_t *windows = json_object_get(parts, json_string_value(p));
        if (!json_is_array(windows)) continue;
        bool open = false;
        size_t k;
        json_t *w;
        json_array_foreach(windows, k, w) if (inside(w, tm.tm_wday, now)) open = true;
        char list[400];
        describe(windows, list, sizeof list);
        if (open) {
            fm_guard_add(verdicts, "change_window", true, NULL,
                         "partition %s: %s (%s) is inside its change window (%s UTC)",
                         json_string_value(p), at, DAYS[tm.tm_wday], list);
            continue;
        }
        bool suspended = false;
        json_t *e = fm_emergency_active(ctx);
        suspended =
            !strcmp(fm_json_str(json_object_get(e, "limits"), "change_windows", ""), "suspended");
        fm_guard_add(verdicts, "change_window", suspended,
                     "wait for the partition's next change window, or a human starts"
                     " emergency mode (emergency_start with limits.change_windows suspended)",
                     "partition %s: %s (%s) is outside its change windows (%s UTC)%s%s%s",
                     json_string_value(p), at, DAYS[tm.tm_wday], list,
                     suspended ? "; suspended by EMERGENCY MODE until " : "",
                     suspended ? fm_json_str(e, "until", "?") : "", suspended ? "" : "");
        json_decref(e);
        if (!suspended) return; /* the first refusal is enough */
    }
}
