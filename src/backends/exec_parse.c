/* Highlights from what the catalog commands print.  The text comes from a
 * node, so it is untrusted: every loop is bounded by the given length,
 * every kept string is clipped and made valid UTF-8, every list capped.
 * Parsers never fail: what they cannot read simply does not appear. */
#include "fleetmcp/fm_exec.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <strings.h>

#define MAX_GPUS 64
#define MAX_LINE 512
#define MAX_XID_KINDS 32
#define MAX_INCIDENTS 32
#define MAX_PORTS 32
#define MAX_KEPT_LINE 300

/* Length of a valid UTF-8 sequence at s (at most n bytes), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t need;
    unsigned lo = 0x80, hi = 0xBF;
    if (s[0] < 0x80) return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF)
        need = 2;
    else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        need = 3;
        if (s[0] == 0xE0) lo = 0xA0;
        if (s[0] == 0xED) hi = 0x9F;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        need = 4;
        if (s[0] == 0xF0) lo = 0x90;
        if (s[0] == 0xF4) hi = 0x8F;
    } else
        return 0;
    if (n < need) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < need; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return need;
}

/* Copies at most max bytes of src into a new JSON string: invalid UTF-8
 * becomes '?', control characters other than newline and tab become ' '
 * (or all of them, when one_line).  Returns a NEW reference. */
static json_t *clean_text(const char *src, size_t len, size_t max, bool one_line)
{
    if (len > max) len = max;
    char *buf = malloc(len + 1);
    if (!buf) return json_string("");
    size_t o = 0;
    const unsigned char *s = (const unsigned char *)src;
    for (size_t i = 0; i < len;) {
        size_t k = utf8_len(s + i, len - i);
        if (k == 0) {
            buf[o++] = '?';
            i++;
        } else if (k == 1) {
            unsigned char c = s[i++];
            bool keep = c >= 0x20 && c != 0x7f;
            if (!one_line && (c == '\n' || c == '\t')) keep = true;
            buf[o++] = keep ? (char)c : ' ';
        } else {
            memcpy(buf + o, s + i, k);
            o += k;
            i += k;
        }
    }
    json_t *j = json_stringn(buf, o);
    free(buf);
    return j ? j : json_string("");
}

json_t *fm_exec_text(const char *s, size_t len, size_t max)
{
    return clean_text(s ? s : "", s ? len : 0, max, false);
}

/* Iterates lines of text[0..len) into line (NUL-terminated, cut at
 * MAX_LINE-1).  Returns false at the end. */
typedef struct line_iter {
    const char *p, *end;
    char line[MAX_LINE];
    size_t n; /* length kept in line */
} line_iter;

static bool next_line(line_iter *it)
{
    if (!it->p || it->p >= it->end) return false;
    const char *nl = memchr(it->p, '\n', (size_t)(it->end - it->p));
    const char *stop = nl ? nl : it->end;
    size_t n = (size_t)(stop - it->p);
    if (n >= MAX_LINE) n = MAX_LINE - 1;
    memcpy(it->line, it->p, n);
    while (n && (it->line[n - 1] == '\r' || it->line[n - 1] == ' '))
        n--;
    it->line[n] = '\0';
    for (size_t i = 0; i < n; i++) /* a NUL inside would cut the line short */
        if (it->line[i] == '\0') it->line[i] = ' ';
    it->n = n;
    it->p = nl ? nl + 1 : it->end;
    return true;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    return s;
}

/* ---- nvidia-smi -q --------------------------------------------------- */

typedef struct gpu_acc {
    char bus[20];
    long temp;
    long dbe_vol, dbe_agg;
    bool have_dbe_vol, have_dbe_agg;
    int remap_pending, remap_failure; /* -1 unknown */
} gpu_acc;

static bool parse_long(const char *s, long *out)
{
    char *e;
    long v = strtol(s, &e, 10);
    if (e == s) return false;
    *out = v;
    return true;
}

static int yes_no(const char *v)
{
    if (!strcasecmp(v, "Yes")) return 1;
    if (!strcasecmp(v, "No")) return 0;
    return -1;
}

static bool valid_busish(const char *s)
{
    if (!*s) return false;
    for (; *s; s++)
        if (!isxdigit((unsigned char)*s) && *s != ':' && *s != '.') return false;
    return true;
}

/* Counters from a node's output are untrusted: summing them saturates
 * instead of overflowing (found by fuzz_exec_parse). */
static void sat_add(long *acc, long v)
{
    if (__builtin_add_overflow(*acc, v, acc)) *acc = v < 0 ? LONG_MIN : LONG_MAX;
}

static void nvsmi_leaf(gpu_acc *g, const char *path, const char *val)
{
    long v;
    if (!strcmp(path, "Temperature/GPU Current Temp")) {
        if (parse_long(val, &v)) g->temp = v;
    } else if (!strncmp(path, "ECC Errors/Volatile/", 20) ||
               !strncmp(path, "ECC Errors/Aggregate/", 21)) {
        bool vol = path[11] == 'V';
        const char *leaf = strrchr(path, '/') + 1;
        /* 535+ drivers: SRAM/DRAM Uncorrectable; older: Double Bit/Total. */
        bool dbe =
            strstr(leaf, "Uncorrectable") || !strcmp(path + (vol ? 20 : 21), "Double Bit/Total");
        if (dbe && parse_long(val, &v)) {
            if (vol) {
                sat_add(&g->dbe_vol, v);
                g->have_dbe_vol = true;
            } else {
                sat_add(&g->dbe_agg, v);
                g->have_dbe_agg = true;
            }
        }
    } else if (!strcmp(path, "Remapped Rows/Pending")) {
        g->remap_pending = yes_no(val);
    } else if (!strcmp(path, "Remapped Rows/Remapping Failure Occurred")) {
        g->remap_failure = yes_no(val);
    }
}

static void add_unreachable(json_t *arr, const char *text, size_t len)
{
    static const char needle[] = "Unable to determine the device handle for GPU";
    line_iter it = {.p = text, .end = text ? text + len : NULL};
    while (next_line(&it) && json_array_size(arr) < MAX_GPUS) {
        char *at = strstr(it.line, needle);
        if (!at) continue;
        char *b = at + sizeof needle - 1;
        while (*b == ' ')
            b++;
        char bus[24];
        size_t n = 0;
        /* the bus id runs up to ": " (the id itself contains ':') */
        while (b[n] && !(b[n] == ':' && (b[n + 1] == ' ' || b[n + 1] == '\0')) &&
               n < sizeof bus - 1) {
            bus[n] = b[n];
            n++;
        }
        bus[n] = '\0';
        if (valid_busish(bus)) json_array_append_new(arr, json_string(bus));
    }
}

json_t *fm_parse_nvsmi_q(const char *text, size_t len, const char *err_text, size_t err_len)
{
    json_t *res = json_object(), *gpus = json_array(), *unreach = json_array();
    gpu_acc *acc = calloc(MAX_GPUS, sizeof *acc);
    long attached = -1;
    int ngpu = 0;
    struct {
        int indent;
        char name[64];
    } stack[8];
    int depth = 0;
    line_iter it = {.p = text, .end = text ? text + len : NULL};
    while (acc && next_line(&it)) {
        if (!it.n) continue;
        int indent = 0;
        while (it.line[indent] == ' ')
            indent++;
        char *body = it.line + indent;
        if (indent == 0 && !strncmp(body, "GPU ", 4) && !strchr(body + 4, ' ')) {
            depth = 0;
            if (ngpu < MAX_GPUS) {
                gpu_acc *g = &acc[ngpu++];
                snprintf(g->bus, sizeof g->bus, "%.19s", body + 4);
                g->temp = -1;
                g->remap_pending = g->remap_failure = -1;
            }
            continue;
        }
        while (depth && stack[depth - 1].indent >= indent)
            depth--;
        char *colon = strstr(body, " : ");
        if (!colon) { /* a heading */
            if (depth < 8) {
                stack[depth].indent = indent;
                snprintf(stack[depth].name, sizeof stack[depth].name, "%.63s", trim(body));
                depth++;
            }
            continue;
        }
        *colon = '\0';
        char *key = trim(body), *val = trim(colon + 3);
        if (indent == 0 && !strcmp(key, "Attached GPUs")) {
            parse_long(val, &attached);
            continue;
        }
        if (!ngpu || indent == 0) continue;
        char path[256] = "";
        size_t pl = 0;
        for (int i = 0; i < depth && pl < sizeof path; i++)
            pl += (size_t)snprintf(path + pl, sizeof path - pl, "%s/", stack[i].name);
        if (pl < sizeof path) snprintf(path + pl, sizeof path - pl, "%s", key);
        nvsmi_leaf(&acc[ngpu - 1], path, val);
    }
    for (int i = 0; acc && i < ngpu; i++) {
        gpu_acc *g = &acc[i];
        json_t *o = json_object();
        json_object_set_new(o, "bus", clean_text(g->bus, strlen(g->bus), 20, true));
        if (g->temp >= 0) json_object_set_new(o, "temp_c", json_integer(g->temp));
        if (g->have_dbe_vol) json_object_set_new(o, "ecc_dbe_vol", json_integer(g->dbe_vol));
        if (g->have_dbe_agg) json_object_set_new(o, "ecc_dbe_agg", json_integer(g->dbe_agg));
        if (g->remap_pending >= 0)
            json_object_set_new(o, "remap_pending", json_boolean(g->remap_pending));
        if (g->remap_failure >= 0)
            json_object_set_new(o, "remap_failure", json_boolean(g->remap_failure));
        json_array_append_new(gpus, o);
    }
    free(acc);
    add_unreachable(unreach, text, len);
    add_unreachable(unreach, err_text, err_len);
    if (attached >= 0) json_object_set_new(res, "attached", json_integer(attached));
    json_object_set_new(res, "gpus_seen", json_integer(ngpu));
    json_object_set_new(res, "gpus", gpus);
    json_object_set_new(res, "unreachable", unreach);
    return res;
}

/* ---- kernel Xid lines ------------------------------------------------- */

json_t *fm_parse_kernel_xid(const char *text, size_t len, size_t last_n)
{
    json_t *res = json_object(), *kinds = json_array(), *last = json_array();
    size_t lines = 0;
    if (last_n > 200) last_n = 200;
    line_iter it = {.p = text, .end = text ? text + len : NULL};
    while (next_line(&it)) {
        const char *x = strstr(it.line, "NVRM: Xid (PCI:");
        if (!x) continue;
        lines++;
        const char *pci = x + 15;
        const char *close = strchr(pci, ')');
        long code = -1;
        if (close && close[1] == ':') parse_long(close + 2, &code);
        if (close && code >= 0 && close - pci < 20) {
            char bus[20];
            snprintf(bus, sizeof bus, "%.*s", (int)(close - pci), pci);
            if (valid_busish(bus)) {
                size_t i;
                json_t *k = NULL;
                json_array_foreach(kinds, i, k)
                {
                    if (!strcmp(json_string_value(json_object_get(k, "pci")), bus) &&
                        json_integer_value(json_object_get(k, "xid")) == code)
                        break;
                    k = NULL;
                }
                if (k)
                    json_object_set_new(
                        k, "count",
                        json_integer(json_integer_value(json_object_get(k, "count")) + 1));
                else if (json_array_size(kinds) < MAX_XID_KINDS)
                    json_array_append_new(kinds, json_pack("{s:s, s:I, s:i}", "pci", bus, "xid",
                                                           (json_int_t)code, "count", 1));
            }
        }
        if (last_n) {
            if (json_array_size(last) == last_n) json_array_remove(last, 0);
            json_array_append_new(last, clean_text(it.line, it.n, MAX_KEPT_LINE, true));
        }
    }
    json_object_set_new(res, "lines", json_integer((json_int_t)lines));
    json_object_set_new(res, "xids", kinds);
    json_object_set_new(res, "last", last);
    return res;
}

/* ---- dcgmi health -c -j ---------------------------------------------- */

/* DCGM's JSON output nests every box as {"value": ..., "children": {...},
 * "overflow": [...]}; accept the key directly too. */
static json_t *box_child(json_t *box, const char *key)
{
    json_t *c = json_object_get(json_object_get(box, "children"), key);
    return c ? c : json_object_get(box, key);
}

static json_t *box_children(json_t *box)
{
    json_t *c = json_object_get(box, "children");
    return json_is_object(c) ? c : box;
}

static void box_message(json_t *box, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    json_t *ov = json_object_get(box, "overflow"), *v;
    size_t i;
    if (json_is_array(ov)) {
        json_array_foreach(ov, i, v)
        {
            if (!json_is_string(v) || n + 2 >= cap) continue;
            n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? " " : "", json_string_value(v));
        }
    } else if (json_is_string(ov)) {
        snprintf(out, cap, "%s", json_string_value(ov));
    }
}

json_t *fm_parse_dcgmi_health(const char *text, size_t len)
{
    json_t *res = json_object(), *inc = json_array();
    json_error_t je;
    json_t *doc = text && len ? json_loadb(text, len, JSON_REJECT_DUPLICATES, &je) : NULL;
    json_t *body = json_object_get(doc, "body");
    json_t *overall = json_object_get(box_child(body, "Overall Health"), "value");
    if (json_is_string(overall))
        json_object_set_new(
            res, "overall",
            clean_text(json_string_value(overall), json_string_length(overall), 32, true));
    json_t *gpus = box_children(box_child(body, "GPU"));
    const char *gid;
    json_t *g;
    json_object_foreach(gpus, gid, g)
    {
        if (!json_is_object(g) || !strcmp(gid, "value") || !strcmp(gid, "overflow")) continue;
        json_t *systems = box_children(box_child(g, "Errors"));
        const char *sys;
        json_t *s;
        json_object_foreach(systems, sys, s)
        {
            if (!json_is_object(s) || json_array_size(inc) >= MAX_INCIDENTS) continue;
            if (!strcmp(sys, "value") || !strcmp(sys, "overflow")) continue;
            const char *health = json_string_value(json_object_get(s, "value"));
            char msg[400];
            box_message(s, msg, sizeof msg);
            json_t *o = json_object();
            long idx;
            char *e;
            idx = strtol(gid, &e, 10);
            if (*gid && !*e && idx >= 0 && idx < 1024)
                json_object_set_new(o, "gpu", json_integer(idx));
            else
                json_object_set_new(o, "gpu", clean_text(gid, strlen(gid), 32, true));
            json_object_set_new(o, "system", clean_text(sys, strlen(sys), 32, true));
            json_object_set_new(
                o, "health",
                clean_text(health ? health : "", health ? strlen(health) : 0, 32, true));
            json_object_set_new(o, "message", clean_text(msg, strlen(msg), 200, true));
            json_array_append_new(inc, o);
        }
    }
    json_object_set_new(res, "parsed", json_boolean(doc != NULL));
    json_object_set_new(res, "incidents", inc);
    json_decref(doc);
    return res;
}

/* ---- ibstat ----------------------------------------------------------- */

json_t *fm_parse_ibstat(const char *text, size_t len)
{
    json_t *res = json_object(), *ports = json_array();
    char ca[64] = "";
    json_t *port = NULL; /* borrowed: the last port appended */
    line_iter it = {.p = text, .end = text ? text + len : NULL};
    while (next_line(&it)) {
        char *l = trim(it.line);
        if (!strncmp(l, "CA '", 4)) {
            char *q = strchr(l + 4, '\'');
            if (q)
                snprintf(ca, sizeof ca, "%.*s", (int)(q - (l + 4)) < 63 ? (int)(q - (l + 4)) : 63,
                         l + 4);
            port = NULL;
            continue;
        }
        long num;
        if (!strncmp(l, "Port ", 5) && l[strlen(l) - 1] == ':' && parse_long(l + 5, &num)) {
            if (json_array_size(ports) >= MAX_PORTS) {
                port = NULL;
                continue;
            }
            port = json_object();
            json_object_set_new(port, "ca", clean_text(ca, strlen(ca), 63, true));
            json_object_set_new(port, "port", json_integer(num));
            json_array_append_new(ports, port);
            continue;
        }
        if (!port) continue;
        char *colon = strchr(l, ':');
        if (!colon) continue;
        *colon = '\0';
        char *key = trim(l), *val = trim(colon + 1);
        if (!strcmp(key, "State"))
            json_object_set_new(port, "state", clean_text(val, strlen(val), 32, true));
        else if (!strcmp(key, "Physical state"))
            json_object_set_new(port, "phys_state", clean_text(val, strlen(val), 32, true));
        else if (!strcmp(key, "Rate") && parse_long(val, &num))
            json_object_set_new(port, "rate", json_integer(num));
    }
    json_object_set_new(res, "ports", ports);
    return res;
}
