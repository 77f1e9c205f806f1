#include "fleetmcp/fm_jsonrpc.h"

#include <stdio.h>
#include <string.h>

/* MCP ids are strings or integers; null ids are refused (MCP forbids
 * them) and so are fractions, objects and arrays. */
static bool id_valid(const json_t *id)
{
    return json_is_string(id) || json_is_integer(id);
}

static void invalid(fm_rpc_msg *m, const json_t *id, int code, const char *why)
{
    m->kind = FM_MSG_INVALID;
    m->id = id && id_valid(id) ? id : NULL;
    m->error_code = code;
    snprintf(m->error, sizeof m->error, "%s", why);
}

void fm_rpc_classify(const json_t *msg, fm_rpc_msg *m)
{
    memset(m, 0, sizeof *m);
    if (!json_is_object(msg)) {
        invalid(m, NULL, FM_RPC_INVALID_REQUEST, "Invalid Request: a message must be an object");
        return;
    }
    const json_t *id = json_object_get(msg, "id");
    const json_t *ver = json_object_get(msg, "jsonrpc");
    if (!json_is_string(ver) || strcmp(json_string_value(ver), "2.0")) {
        invalid(m, id, FM_RPC_INVALID_REQUEST, "Invalid Request: jsonrpc must be \"2.0\"");
        return;
    }
    const json_t *method = json_object_get(msg, "method");
    if (!method) {
        if (id && id_valid(id) &&
            (json_object_get(msg, "result") || json_object_get(msg, "error"))) {
            m->kind = FM_MSG_RESPONSE;
            m->id = id;
            return;
        }
        invalid(m, id, FM_RPC_INVALID_REQUEST, "Invalid Request: method is missing");
        return;
    }
    if (!json_is_string(method) || !json_string_length(method)) {
        invalid(m, id, FM_RPC_INVALID_REQUEST, "Invalid Request: method must be a string");
        return;
    }
    if (id && !id_valid(id)) {
        invalid(m, NULL, FM_RPC_INVALID_REQUEST,
                "Invalid Request: id must be a string or an integer (not null, a fraction,"
                " an object or an array)");
        return;
    }
    const json_t *params = json_object_get(msg, "params");
    if (params && !json_is_object(params) && !json_is_array(params)) {
        invalid(m, id, FM_RPC_INVALID_REQUEST, "Invalid Request: params must be an object");
        return;
    }
    m->kind = id ? FM_MSG_REQUEST : FM_MSG_NOTIFICATION;
    m->id = id;
    m->method = json_string_value(method);
    m->params = params;
}

/* Built directly: json_pack would parse its format for every reply.  The
 * keys go in this order, which the dump keeps ("result" last: the stdio
 * transport splices structuredContent into its end). */
json_t *fm_rpc_result(const json_t *id, json_t *result)
{
    json_t *r = json_object();
    if (!result) result = json_object();
    if (!r || !id || !result ||
        json_object_set_new_nocheck(r, "jsonrpc", json_string_nocheck("2.0")) ||
        json_object_set_nocheck(r, "id", (json_t *)id) ||
        json_object_set_nocheck(r, "result", result)) {
        json_decref(r);
        json_decref(result);
        return NULL;
    }
    json_decref(result);
    return r;
}

json_t *fm_rpc_error(const json_t *id, int code, const char *message)
{
    return json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id", id ? id : json_null(),
                     "error", "code", code, "message", message);
}

json_t *fm_rpc_notification(const char *method, json_t *params)
{
    return json_pack("{s:s, s:s, s:o}", "jsonrpc", "2.0", "method", method, "params",
                     params ? params : json_object());
}
