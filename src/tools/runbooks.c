/* runbook_list and runbook_get: the runbook catalog, read only.  The
 * catalog is loaded on the first call (never at server start) and kept on
 * the server context. */
#include <string.h>

#include "fleetmcp/fm_runbook.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_util.h"
#include "fm_tools.gen.h"

static bool has_class(const json_t *doc, const char *cls)
{
    /* Looked up once: json_array_foreach evaluates its array argument at
     * every step, and each lookup hashes the key (two per class, for each
     * runbook on every call). */
    const json_t *classes = json_object_get(doc, "fault_classes");
    size_t i;
    const json_t *c;
    json_array_foreach(classes, i, c) if (!strcmp(json_string_value(c), cls)) return true;
    return false;
}

/* One runbook as runbook_list shows it, or NULL (out of memory; a title
 * or fault_classes missing, which the catalog's schema check rules out).
 * Built directly: json_pack parses its format for every runbook on every
 * call. */
static json_t *list_item(const fm_runbook *r)
{
    json_t *o = json_object();
    if (!o || json_object_set_new_nocheck(o, "id", json_string(r->id)) ||
        json_object_set_new_nocheck(o, "version", json_integer(r->version)) ||
        json_object_set_nocheck(o, "title", json_object_get(r->doc, "title")) ||
        json_object_set_nocheck(o, "fault_classes", json_object_get(r->doc, "fault_classes")) ||
        json_object_set_new_nocheck(o, "autonomy",
                                    json_string_nocheck(fm_autonomy_name(r->autonomy))) ||
        json_object_set_new_nocheck(o, "destructive", json_boolean(r->destructive)) ||
        json_object_set_new_nocheck(
            o, "steps",
            json_integer((json_int_t)json_array_size(json_object_get(r->doc, "steps"))))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *fm_tool_runbook_list(fm_call *call, fm_err *err)
{
    fm_ctx *ctx = call->ctx;
    if (fm_runbooks_load(ctx, err)) return NULL;
    const char *cls = fm_json_str(call->args, "fault_class", NULL);
    const char *autonomy = fm_json_str(call->args, "autonomy", NULL);
    json_t *list = json_array();
    for (size_t i = 0; i < ctx->runbooks->count; i++) {
        const fm_runbook *r = &ctx->runbooks->items[i];
        if (cls && !has_class(r->doc, cls)) continue;
        if (autonomy && strcmp(autonomy, fm_autonomy_name(r->autonomy))) continue;
        json_array_append_new(list, list_item(r));
    }
    return json_pack("{s:I, s:o}", "count", (json_int_t)json_array_size(list), "runbooks", list);
}

/* A step as stored, plus what the action catalog says about it, so an
 * agent reading the runbook sees timeouts and risk without a second call.
 * Returns a new object. */
static json_t *step_view(const json_t *step)
{
    json_t *s = json_deep_copy(step);
    const fm_action_def *a = fm_action_find(fm_json_str(step, "action", ""));
    if (!s || !a) return s;
    if (!json_object_get(s, "args")) json_object_set_new(s, "args", json_object());
    if (!json_object_get(s, "timeout_s"))
        json_object_set_new(s, "timeout_s", json_integer(a->default_timeout_s));
    json_object_set_new(s, "destructive", json_boolean(a->destructive));
    json_object_set_new(s, "needs_approval", json_boolean(a->needs_approval_always));
    const char *state = a->state_after >= 0 ? fm_node_state_name((fm_node_state)a->state_after)
                        : a->state_after == FM_ACTION_STATE_FROM_ARGS
                            ? fm_json_str(json_object_get(step, "args"), "state", NULL)
                            : NULL;
    json_object_set_new(s, "state_after", state ? json_string(state) : json_null());
    return s;
}

json_t *fm_tool_runbook_get(fm_call *call, fm_err *err)
{
    fm_ctx *ctx = call->ctx;
    if (fm_runbooks_load(ctx, err)) return NULL;
    const char *id = fm_json_str(call->args, "id", "");
    const fm_runbook *r = fm_runbook_find(ctx->runbooks, id);
    if (!r) {
        fm_err_set(err, FM_ERR_NOT_FOUND, "no runbook '%s'; runbook_list shows the catalog", id);
        return NULL;
    }
    json_t *out = json_deep_copy(r->doc);
    static const char *const lists[] = {"steps", "verification", "on_success", "rollback"};
    for (size_t l = 0; out && l < sizeof lists / sizeof lists[0]; l++) {
        const json_t *src = json_object_get(r->doc, lists[l]);
        if (!src) continue;
        json_t *arr = json_array();
        size_t i;
        const json_t *step;
        json_array_foreach(src, i, step) json_array_append_new(arr, step_view(step));
        json_object_set_new(out, lists[l], arr);
    }
    if (out) json_object_set_new(out, "source", json_string(r->path));
    if (!out) fm_err_set(err, FM_ERR_NOMEM, "runbook_get: out of memory");
    return out;
}
