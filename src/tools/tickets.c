/* Ticket tools: ticket_create, ticket_update, ticket_get, ticket_search,
 * ticket_close.  Thin: arguments are already validated against
 * schemas/tools/ticket_*.json and the gate has already decided (the
 * hourly create limit and the human needed for ticket_close live there). */
#include "fm_tools.gen.h"
#include "fleetmcp/fm_tickets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_util.h"

/* The gate checked the tickets backend is open (schema "backends"). */
static const struct fm_ticket_ops *backend(fm_call *call, void **st)
{
    *st = call->ctx->be.tickets_st;
    return call->ctx->be.tickets;
}

static const char *arg_key(fm_call *call, fm_err *err)
{
    const char *key = fm_json_str(call->args, "key", NULL);
    if (!fm_ticket_key_valid(key)) {
        fm_err_set(err, FM_ERR_INVALID, "key must look like PROJ-123");
        return NULL;
    }
    return key;
}

json_t *fm_tool_ticket_create(fm_call *call, fm_err *err)
{
    json_t *fields = json_deep_copy(call->args);
    json_object_del(fields, "bundle_id");
    /* Link the ticket to the audit row of the call that opened it. */
    if (call->audit_id > 0) {
        json_t *ids = json_object_get(fields, "audit_ids");
        if (!json_is_array(ids)) {
            ids = json_array();
            json_object_set_new(fields, "audit_ids", ids);
        }
        json_array_append_new(ids, json_integer(call->audit_id));
    }
    json_t *out =
        fm_ticket_submit(call->ctx, fields, fm_json_str(call->args, "bundle_id", NULL), true, err);
    json_decref(fields);
    return out;
}

static const char *const update_fields[] = {
    "summary",      "description", "severity",         "labels",    "active_jobs",
    "incident_key", "workflow_id", "last_runbook_run", "audit_ids", "evidence"};
static const char *const context_fields[] = {"active_jobs",      "incident_key", "workflow_id",
                                             "last_runbook_run", "audit_ids",    "evidence"};

json_t *fm_tool_ticket_update(fm_call *call, fm_err *err)
{
    void *st;
    const struct fm_ticket_ops *ops = backend(call, &st);
    const char *key = arg_key(call, err);
    if (!key) return NULL;
    const char *bundle_id = fm_json_str(call->args, "bundle_id", NULL);
    unsigned char *bundle = NULL;
    size_t blen = 0;
    char bnode[128];
    /* Check everything that can fail before the first write. */
    if (bundle_id && fm_ticket_bundle_load(&call->ctx->store, bundle_id, bnode, sizeof bnode,
                                           &bundle, &blen, err))
        return NULL;
    json_t *cur = ops->get(st, key, err);
    if (!cur) {
        free(bundle);
        return NULL;
    }
    const char *tnode = fm_json_str(cur, "node", NULL);
    if (bundle && tnode && bnode[0] && strcmp(tnode, bnode) != 0) {
        fm_err_set(err, FM_ERR_INVALID, "diag bundle %.64s is for node %.64s, not %.64s", bundle_id,
                   bnode, tnode);
        json_decref(cur);
        free(bundle);
        return NULL;
    }
    json_decref(cur);

    json_t *fields = json_object(), *updated = json_array(), *ctxf = json_object();
    for (size_t i = 0; i < sizeof update_fields / sizeof *update_fields; i++) {
        json_t *v = json_object_get(call->args, update_fields[i]);
        if (!v) continue;
        json_object_set(fields, update_fields[i], v);
        json_array_append_new(updated, json_string(update_fields[i]));
    }
    for (size_t i = 0; i < sizeof context_fields / sizeof *context_fields; i++) {
        json_t *v = json_object_get(call->args, context_fields[i]);
        if (v) json_object_set(ctxf, context_fields[i], v);
    }
    json_t *out = NULL;
    char *text = NULL;
    if (json_object_size(fields) && ops->update(st, key, fields, err)) goto done;

    /* Context travels as a comment too: Jira keeps it nowhere else unless
     * custom fields are mapped, and on-call reads the comment stream. */
    const char *comment = fm_json_str(call->args, "comment", NULL);
    if (json_object_size(ctxf)) {
        text = fm_ticket_render(ctxf, comment ? comment : "Context update:");
    } else if (comment) {
        text = strdup(comment);
    }
    if ((comment || json_object_size(ctxf)) && !text) {
        fm_err_set(err, FM_ERR_NOMEM, "out of memory writing a comment");
        goto done;
    }
    if (text && ops->comment(st, key, text, err)) goto done;

    json_t *attached = json_array();
    if (bundle) {
        char name[160];
        snprintf(name, sizeof name, "diag-bundle-%.64s.%s", bundle_id,
                 blen && (bundle[0] == '{' || bundle[0] == '[') ? "json" : "txt");
        for (char *p = name; *p; p++)
            if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.'))
                *p = '_';
        if (ops->attach(st, key, name, bundle, blen, err)) {
            json_decref(attached);
            goto done;
        }
        json_array_append_new(attached, json_string(name));
    }
    out = json_object();
    json_object_set_new(out, "key", json_string(key));
    json_object_set_new(out, "updated", updated);
    updated = NULL;
    json_object_set_new(out, "commented", json_boolean(text != NULL));
    json_object_set_new(out, "attached", attached);
done:
    free(text);
    free(bundle);
    json_decref(fields);
    json_decref(updated);
    json_decref(ctxf);
    return out;
}

json_t *fm_tool_ticket_get(fm_call *call, fm_err *err)
{
    void *st;
    const struct fm_ticket_ops *ops = backend(call, &st);
    const char *key = arg_key(call, err);
    if (!key) return NULL;
    return ops->get(st, key, err);
}

json_t *fm_tool_ticket_search(fm_call *call, fm_err *err)
{
    void *st;
    const struct fm_ticket_ops *ops = backend(call, &st);
    const char *state = fm_json_str(call->args, "state", "open");
    json_t *lim = json_object_get(call->args, "limit");
    fm_ticket_query q = {
        .node = fm_json_str(call->args, "node", NULL),
        .fault_class = fm_json_str(call->args, "fault_class", NULL),
        .state = !strcmp(state, "closed") ? FM_TICKET_STATE_CLOSED
                 : !strcmp(state, "any")  ? FM_TICKET_STATE_ANY
                                          : FM_TICKET_STATE_OPEN,
        .limit = json_is_integer(lim) ? (int)json_integer_value(lim) : 20,
    };
    json_t *found = ops->search(st, &q, err);
    if (!found) return NULL;
    json_t *out = json_object();
    json_object_set_new(out, "count", json_integer((json_int_t)json_array_size(found)));
    json_object_set_new(out, "tickets", found);
    return out;
}

json_t *fm_tool_ticket_close(fm_call *call, fm_err *err)
{
    void *st;
    const struct fm_ticket_ops *ops = backend(call, &st);
    const char *key = arg_key(call, err);
    if (!key) return NULL;
    json_t *cur = ops->get(st, key, err);
    if (!cur) return NULL;
    bool was_open = json_is_true(json_object_get(cur, "open"));
    json_decref(cur);
    char tname[128] = "";
    if (was_open) {
        const char *comment = fm_json_str(call->args, "comment", NULL);
        if (comment && ops->comment(st, key, comment, err)) return NULL;
        if (ops->close(st, key, tname, sizeof tname, err)) return NULL;
    }
    json_t *now = ops->get(st, key, err);
    if (!now) return NULL;
    json_t *out = json_object();
    json_object_set_new(out, "key", json_string(key));
    json_object_set(out, "status", json_object_get(now, "status"));
    json_object_set(out, "open", json_object_get(now, "open"));
    json_object_set_new(out, "already_closed", json_boolean(!was_open));
    json_object_set_new(out, "transition", tname[0] ? json_string(tname) : json_null());
    json_decref(now);
    return out;
}
