/* Create-or-comment with deduplication, and diag bundle attachments: the
 * part of ticketing that ticket_create, ticket_update and workflow
 * escalation share.  One open ticket per (node, fault class): a repeat
 * becomes a comment on the open one, never a second ticket. */
#include "fm_tools.gen.h"
#include "fleetmcp/fm_tickets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_store.h"
#include "fleetmcp/fm_util.h"

static void bundle_name(char *out, size_t len, const char *id, const unsigned char *body,
                        size_t blen)
{
    char safe[80];
    size_t i = 0;
    for (; id[i] && i < sizeof safe - 1; i++) {
        char c = id[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '.';
        safe[i] = ok ? c : '_';
    }
    safe[i] = '\0';
    bool json = blen && (body[0] == '{' || body[0] == '[');
    snprintf(out, len, "diag-bundle-%s.%s", safe, json ? "json" : "txt");
}

static void note(json_t *notes, const char *fmt, const char *a, const char *b)
{
    char buf[600];
    snprintf(buf, sizeof buf, fmt, a, b);
    json_array_append_new(notes, json_string(buf));
}

/* Text of the comment a repeat leaves on the open ticket. */
static char *repeat_text(const json_t *fields)
{
    char head[512];
    snprintf(head, sizeof head, "fleetmcp: repeated %s on %s: %.300s",
             fm_json_str(fields, "fault_class", "?"), fm_json_str(fields, "node", "?"),
             fm_json_str(fields, "summary", ""));
    json_t *f = json_deep_copy(fields);
    json_object_del(f, "description");
    char *t = fm_ticket_render(f, head);
    json_decref(f);
    return t;
}

json_t *fm_ticket_submit(struct fm_ctx *ctx, const json_t *fields, const char *bundle_id,
                         bool strict_bundle, fm_err *err)
{
    const struct fm_ticket_ops *ops = ctx->be.tickets;
    void *st = ctx->be.tickets_st;
    if (!ops)
        return fm_err_set(err, FM_ERR_NOT_CONFIGURED,
                          "no ticket backend is open; set tickets.backend or a jira section"),
               NULL;
    const char *node = fm_json_str(fields, "node", NULL);
    const char *fc = fm_json_str(fields, "fault_class", NULL);
    json_t *notes = json_array();
    unsigned char *bundle = NULL;
    size_t blen = 0;
    char bnode[128] = "";
    if (bundle_id) {
        fm_err be = {0};
        int rc =
            fm_ticket_bundle_load(&ctx->store, bundle_id, bnode, sizeof bnode, &bundle, &blen, &be);
        if (!rc && node && bnode[0] && strcmp(bnode, node) != 0) {
            free(bundle);
            bundle = NULL;
            rc = fm_err_set(&be, FM_ERR_INVALID, "diag bundle %.64s is for node %.64s, not %.64s",
                            bundle_id, bnode, node);
        }
        if (rc) {
            if (strict_bundle) {
                fm_err_set(err, be.code, "%s", be.text);
                json_decref(notes);
                return NULL;
            }
            note(notes, "bundle not attached: %s%s", be.text, "");
        }
    }

    json_t *out = NULL;
    char key[64] = "";
    json_t *url = NULL;
    bool dedup = false;
    if (node && fc) {
        fm_ticket_query q = {
            .node = node, .fault_class = fc, .state = FM_TICKET_STATE_OPEN, .limit = 1};
        json_t *found = ops->search(st, &q, err);
        if (!found) goto fail;
        json_t *t = json_array_get(found, 0);
        if (t) {
            snprintf(key, sizeof key, "%s", fm_json_str(t, "key", ""));
            url = json_incref(json_object_get(t, "url"));
            dedup = true;
        }
        json_decref(found);
    }
    if (!dedup) {
        json_t *c = ops->create(st, fields, err);
        if (!c) goto fail;
        snprintf(key, sizeof key, "%s", fm_json_str(c, "key", ""));
        url = json_incref(json_object_get(c, "url"));
        /* another process created it between our search and create */
        dedup = json_is_true(json_object_get(c, "deduplicated"));
        json_decref(c);
    }
    if (dedup) {
        char *text = repeat_text(fields);
        int rc = text ? ops->comment(st, key, text, err)
                      : (int)fm_err_set(err, FM_ERR_NOMEM, "out of memory writing a comment");
        free(text);
        if (rc) goto fail;
    }
    json_t *attached = json_array();
    if (bundle) {
        char name[128];
        bundle_name(name, sizeof name, bundle_id, bundle, blen);
        fm_err ae = {0};
        /* The ticket exists by now: a failed attach is reported, not fatal,
         * so the caller still learns the key. */
        if (ops->attach(st, key, name, bundle, blen, &ae) == 0)
            json_array_append_new(attached, json_string(name));
        else
            note(notes, "bundle not attached: %s%s", ae.text, "");
    }
    out = json_object();
    json_object_set_new(out, "key", json_string(key));
    json_object_set_new(out, "deduplicated", json_boolean(dedup));
    json_object_set_new(out, "url", url ? url : json_null());
    url = NULL;
    json_object_set_new(out, "backend", json_string(ops->name));
    json_object_set_new(out, "attached", attached);
    json_object_set_new(out, "notes", notes);
    notes = NULL;
fail:
    json_decref(url);
    json_decref(notes);
    free(bundle);
    return out;
}

json_t *fm_ticket_escalate(struct fm_ctx *ctx, const char *node, const char *fault_class,
                           const char *summary, const json_t *evidence, const char *bundle_id,
                           fm_err *err)
{
    if (!node || !fault_class || !summary || !*summary)
        return fm_err_set(err, FM_ERR_INVALID, "escalation needs node, fault class and summary"),
               NULL;
    json_t *fields = json_object();
    json_object_set_new(fields, "summary", fm_ticket_str_clip(summary, FM_TICKET_MAX_SUMMARY));
    json_object_set_new(fields, "node", json_string(node));
    json_object_set_new(fields, "fault_class", json_string(fault_class));
    json_object_set_new(fields, "severity", json_string("high"));
    if (evidence && !json_is_null(evidence))
        json_object_set(fields, "evidence", (json_t *)evidence);
    json_t *out = fm_ticket_submit(ctx, fields, bundle_id, false, err);
    json_decref(fields);
    return out;
}
