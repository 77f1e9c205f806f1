/* Tickets: choosing the backend, and what both backends share (labels,
 * the rendered description, priority, clipping), so Jira and the local
 * store give the same answers. */
#include "fleetmcp/fm_tickets.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleetmcp/fm_config.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_util.h"

/* Bytes of s to print so that at most max are written and no UTF-8
 * sequence is split (printf's precision counts bytes). */
static int ucut(const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    return (int)n;
}

int fm_tickets_open(struct fm_ctx *ctx, fm_err *err)
{
    const json_t *tk = fm_config_section(&ctx->cfg, "tickets");
    const json_t *jira = fm_config_section(&ctx->cfg, "jira");
    const char *backend = tk ? fm_cfg_str(tk, "backend", NULL) : NULL;
    if (!backend) backend = jira ? "jira" : "local";

    if (!strcmp(backend, "jira")) {
        if (!jira)
            return fm_err_set(err, FM_ERR_NOT_CONFIGURED,
                              "tickets.backend is jira but there is no jira section; add jira "
                              "{url, project, auth} or set tickets.backend: local");
        void *st = fm_tickets_jira_new(jira, err);
        if (!st) return err ? err->code : FM_ERR_INTERNAL;
        ctx->be.tickets = &fm_tickets_jira;
        ctx->be.tickets_st = st;
        return 0;
    }
    if (!strcmp(backend, "local")) {
        /* Local tickets live in the store: opened with it (fm_ctx_store_ready). */
        if (ctx->store_deferred) return 0;
        void *st = fm_tickets_local_new(&ctx->store, tk, err);
        if (!st) return err ? err->code : FM_ERR_INTERNAL;
        ctx->be.tickets = &fm_tickets_local;
        ctx->be.tickets_st = st;
        return 0;
    }
    char b[64];
    fm_clip(b, sizeof b, backend);
    return fm_err_set(err, FM_ERR_NOT_CONFIGURED,
                      "tickets.backend '%s' is unknown; use local or jira", b);
}

void fm_tickets_close(struct fm_ctx *ctx)
{
    if (ctx->be.tickets && ctx->be.tickets->destroy) ctx->be.tickets->destroy(ctx->be.tickets_st);
    ctx->be.tickets = NULL;
    ctx->be.tickets_st = NULL;
}

bool fm_ticket_key_valid(const char *key)
{
    if (!key || !isupper((unsigned char)key[0])) return false;
    size_t i = 1;
    while (isupper((unsigned char)key[i]) || isdigit((unsigned char)key[i]) || key[i] == '_')
        i++;
    if (i > 32 || key[i] != '-') return false;
    size_t d = ++i;
    while (isdigit((unsigned char)key[i]))
        i++;
    return key[i] == '\0' && i > d && i - d <= 12;
}

void fm_ticket_label(char *out, size_t outlen, const char *prefix, const char *value)
{
    /* Jira refuses labels with spaces and caps them at 255 characters. */
    size_t cap = outlen - 1 < 255 ? outlen - 1 : 255;
    snprintf(out, cap + 1, "%s%s", prefix, value);
    for (char *p = out; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f) *p = '_';
}

static void labels_add(json_t *arr, const char *prefix, const char *value)
{
    if (!value || !*value) return;
    char l[256];
    fm_ticket_label(l, sizeof l, prefix, value);
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) if (!strcmp(json_string_value(v), l)) return;
    json_array_append_new(arr, json_string(l));
}

json_t *fm_ticket_labels(const json_t *fields, const json_t *extra)
{
    json_t *out = json_array();
    labels_add(out, "", "fleetmcp");
    labels_add(out, "node-", json_string_value(json_object_get(fields, "node")));
    labels_add(out, "fault-", json_string_value(json_object_get(fields, "fault_class")));
    size_t i;
    json_t *v;
    json_array_foreach(extra, i, v) labels_add(out, "", json_string_value(v));
    json_array_foreach(json_object_get(fields, "labels"), i, v)
        labels_add(out, "", json_string_value(v));
    return out;
}

json_t *fm_ticket_str_clip(const char *s, size_t max)
{
    if (!s) return json_null();
    size_t n = strlen(s);
    if (n > max) {
        n = max;
        /* back off to the start of a UTF-8 sequence */
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    json_t *j = json_stringn(s, n);
    return j ? j : json_string("");
}

static const char *const context_keys[] = {"active_jobs", "last_runbook_run", "workflow_id",
                                           "audit_ids",   "incident_key",     "evidence"};

json_t *fm_ticket_summary(const char *s)
{
    /* Jira refuses line breaks in a summary; a workflow may pass any text. */
    char buf[FM_TICKET_MAX_SUMMARY + 1];
    int n = ucut(s ? s : "", FM_TICKET_MAX_SUMMARY);
    memcpy(buf, s ? s : "", (size_t)n);
    buf[n] = '\0';
    for (char *p = buf; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = ' ';
    json_t *j = json_string(buf);
    return j ? j : json_string("");
}

json_t *fm_ticket_context(const json_t *fields)
{
    json_t *ctx = json_object();
    for (size_t i = 0; i < sizeof context_keys / sizeof *context_keys; i++) {
        json_t *v = json_object_get(fields, context_keys[i]);
        if (v && !json_is_null(v)) json_object_set(ctx, context_keys[i], v);
    }
    return ctx;
}

static void put_json(FILE *f, const char *label, const json_t *v)
{
    char *t = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    if (t) fprintf(f, "%s: %.*s\n", label, ucut(t, 2000), t);
    free(t);
}

char *fm_ticket_render(const json_t *fields, const char *text)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    if (text && *text) fprintf(f, "%.*s\n\n", ucut(text, FM_TICKET_MAX_DESCRIPTION / 2), text);
    const char *node = fm_json_str(fields, "node", NULL);
    const char *fc = fm_json_str(fields, "fault_class", NULL);
    if (node) fprintf(f, "Node: %s\n", node);
    if (fc) fprintf(f, "Fault class: %s\n", fc);
    const json_t *ev = json_object_get(fields, "evidence");
    if (json_is_array(ev) && json_array_size(ev)) {
        fputs("Evidence:\n", f);
        size_t i;
        json_t *v;
        json_array_foreach(ev, i, v)
        {
            if (json_is_string(v))
                fprintf(f, "- %.*s\n", ucut(json_string_value(v), 2000), json_string_value(v));
            else
                put_json(f, "-", v);
        }
    } else if (ev && !json_is_null(ev) && !json_is_array(ev)) {
        put_json(f, "Evidence", ev);
    }
    const json_t *aj = json_object_get(fields, "active_jobs");
    if (json_is_integer(aj)) fprintf(f, "Active jobs: %lld\n", (long long)json_integer_value(aj));
    const json_t *rr = json_object_get(fields, "last_runbook_run");
    if (rr && !json_is_null(rr)) put_json(f, "Last successful runbook run", rr);
    const char *wf = fm_json_str(fields, "workflow_id", NULL);
    if (wf) fprintf(f, "Workflow: %s\n", wf);
    const json_t *au = json_object_get(fields, "audit_ids");
    if (json_is_array(au) && json_array_size(au)) put_json(f, "Audit rows", au);
    const char *inc = fm_json_str(fields, "incident_key", NULL);
    if (inc) fprintf(f, "Related incident: %s\n", inc);
    fputs("Reported by fleetmcp.", f);
    fclose(f);
    if (len > FM_TICKET_MAX_DESCRIPTION) {
        size_t n = FM_TICKET_MAX_DESCRIPTION;
        while (n > 0 && ((unsigned char)buf[n] & 0xC0) == 0x80)
            n--;
        buf[n] = '\0';
    }
    return buf;
}

const char *fm_ticket_priority(const json_t *map, const json_t *fields)
{
    const char *fc = fm_json_str(fields, "fault_class", NULL);
    const char *sev = fm_json_str(fields, "severity", NULL);
    const char *p = NULL;
    if (fc) p = json_string_value(json_object_get(map, fc));
    if (!p && sev) p = json_string_value(json_object_get(map, sev));
    if (p || !sev) return p;
    static const char *const dflt[][2] = {
        {"critical", "Highest"}, {"high", "High"}, {"medium", "Medium"}, {"low", "Low"}};
    for (size_t i = 0; i < sizeof dflt / sizeof *dflt; i++)
        if (!strcmp(sev, dflt[i][0])) return dflt[i][1];
    return NULL;
}

json_t *fm_ticket_open_key(struct fm_ctx *ctx, const char *node)
{
    if (!ctx->be.tickets) return json_null();
    fm_ticket_query q = {.node = node, .state = FM_TICKET_STATE_OPEN, .limit = 1};
    fm_err err = {0};
    json_t *found = ctx->be.tickets->search(ctx->be.tickets_st, &q, &err);
    json_t *key = json_incref(json_object_get(json_array_get(found, 0), "key"));
    json_decref(found);
    return key ? key : json_null();
}
