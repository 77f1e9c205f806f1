/* Argument and time helpers for the read tools. */
#include "read_common.h"

#include "fleetmcp/fm_config.h"
#include "fleetmcp/fm_util.h"
#include "fleetmcp/fm_workflow.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *fm_read_arg_str(const json_t *args, const char *key)
{
    const char *s = json_string_value(json_object_get(args, key));
    return (s && *s) ? s : NULL;
}

long long fm_read_arg_int(const json_t *args, const char *key, long long dflt)
{
    const json_t *v = json_object_get(args, key);
    return json_is_integer(v) ? json_integer_value(v) : dflt;
}

bool fm_read_arg_bool(const json_t *args, const char *key, bool dflt)
{
    const json_t *v = json_object_get(args, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

void fm_read_state_join(const json_t *state, char *buf, size_t len)
{
    buf[0] = '\0';
    size_t i;
    const json_t *e;
    json_array_foreach(state, i, e)
    {
        /* A backend's answer: a state that is not a string is skipped. */
        const char *v = json_string_value(e);
        size_t l = strlen(buf);
        if (!v) continue;
        if (l + 2 >= len) break;
        snprintf(buf + l, len - l, "%s%s", l ? "+" : "", v);
    }
    if (!buf[0]) snprintf(buf, len, "UNKNOWN");
}

void fm_read_count(json_t *counts, const char *key)
{
    json_t *v = json_object_get(counts, key);
    json_object_set_new(counts, key, json_integer(v ? json_integer_value(v) + 1 : 1));
}

double fm_read_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int unit_seconds(const char *s, double *out)
{
    char *end;
    double n = strtod(s, &end);
    if (end == s || n < 0) return -1;
    double mul = 1;
    if (*end) {
        if (end[1]) return -1;
        switch (*end) {
        case 's':
            mul = 1;
            break;
        case 'm':
            mul = 60;
            break;
        case 'h':
            mul = 3600;
            break;
        case 'd':
            mul = 86400;
            break;
        case 'w':
            mul = 7 * 86400;
            break;
        default:
            return -1;
        }
    }
    *out = n * mul;
    return 0;
}

int fm_read_parse_duration(const json_t *v, double *out, fm_err *err)
{
    if (json_is_number(v) && json_number_value(v) > 0) {
        *out = json_number_value(v);
        return 0;
    }
    const char *s = json_string_value(v);
    if (s && strlen(s) < 32 && unit_seconds(s, out) == 0 && *out > 0) return 0;
    char clip[40];
    fm_clip(clip, sizeof clip, s ? s : "(not a string)");
    return fm_err_set(err, FM_ERR_INVALID, "step '%s' is not a duration such as 30, 15s, 5m, 1h",
                      clip),
           -1;
}

int fm_read_parse_time(const json_t *v, double now, double *out, fm_err *err)
{
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return 0;
    }
    const char *s = json_string_value(v);
    char clip[48];
    fm_clip(clip, sizeof clip, s ? s : "(not a string)");
    if (s && strlen(s) < 40) {
        if (strcmp(s, "now") == 0) {
            *out = now;
            return 0;
        }
        double d;
        if (strncmp(s, "now-", 4) == 0 && unit_seconds(s + 4, &d) == 0) {
            *out = now - d;
            return 0;
        }
        if (strncmp(s, "now+", 4) == 0 && unit_seconds(s + 4, &d) == 0) {
            *out = now + d;
            return 0;
        }
        char *end;
        d = strtod(s, &end);
        if (end != s && *end == '\0') {
            *out = d;
            return 0;
        }
        struct tm tm = {0};
        const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
        if (p) {
            double frac = 0;
            if (*p == '.') {
                frac = strtod(p, &end);
                p = end;
            }
            long off = 0;
            if ((*p == '+' || *p == '-') && isdigit((unsigned char)p[1])) {
                int hh = 0, mm = 0;
                if (sscanf(p + 1, "%2d:%2d", &hh, &mm) == 2) {
                    off = (hh * 3600L + mm * 60L) * (*p == '-' ? -1 : 1);
                    p += 6;
                }
            } else if (*p == 'Z') {
                p++;
            }
            if (*p == '\0') {
                *out = (double)timegm(&tm) - (double)off + frac;
                return 0;
            }
        }
    }
    return fm_err_set(err, FM_ERR_INVALID,
                      "time '%s' is not unix seconds, RFC 3339, now or now-15m", clip),
           -1;
}

json_t *fm_read_page(json_t *counts, json_t *page, size_t total, long long offset, long long limit,
                     const char *items_key, const char *backend)
{
    long long next = offset + (long long)json_array_size(page);
    json_t *out = json_object();
    json_object_set_new(out, "total", json_integer((json_int_t)total));
    json_object_set_new(out, "counts", counts);
    json_object_set_new(out, "returned", json_integer((json_int_t)json_array_size(page)));
    json_object_set_new(out, "offset", json_integer(offset));
    json_object_set_new(out, "next_offset",
                        next < (long long)total && limit > 0 ? json_integer(next) : json_null());
    json_object_set_new(out, items_key, page);
    json_object_set_new(out, "backend", json_string(backend));
    return out;
}

const char *fm_read_counter_window(const fm_config *cfg, char buf[16])
{
    const json_t *g = json_object_get(fm_config_section(cfg, "metrics"), "gpu_health");
    const char *w = json_string_value(json_object_get(g, "counter_window"));
    size_t n = w ? strspn(w, "0123456789") : 0;
    bool ok = n >= 1 && n <= 6 && w[0] != '0' && w[n] && strchr("smhd", w[n]) && !w[n + 1];
    snprintf(buf, 16, "%s", ok ? w : "1h");
    return buf;
}

bool fm_read_drain_owned(struct fm_ctx *ctx, const json_t *n)
{
    return json_is_true(json_object_get(n, "fleetmcp_owned")) &&
           fm_workflow_owns_drain(ctx, fm_json_str(n, "name", ""), fm_json_str(n, "reason", "")) ==
               1;
}

void fm_read_regex_literal(char *out, size_t n, const char *s)
{
    size_t o = 0;
    for (; *s && o + 3 < n; s++) {
        /* A PromQL string holds the regex: its backslash is doubled. */
        if (strchr(".+*?()[]{}|^$\\", *s)) out[o++] = '\\', out[o++] = '\\';
        out[o++] = *s;
    }
    out[o] = '\0';
}

void fm_read_dcgm_selector(char *q, size_t n, const char *names, const char *hl, const char *node,
                           const char *suffix)
{
    if (hl && *hl)
        snprintf(q, n, "{__name__=~\"%s\",%s=\"%s\"}%s", names, hl, node, suffix);
    else
        snprintf(q, n,
                 "({__name__=~\"%s\",Hostname=\"%s\"}%s or "
                 "{__name__=~\"%s\",hostname=\"%s\"}%s)",
                 names, node, suffix, names, node, suffix);
}
