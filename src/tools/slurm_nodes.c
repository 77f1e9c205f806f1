/* slurm_nodes: counts by state over every matched node first, then one
 * compact page; an agent asks for details only when it needs them. */
#include <stdio.h>
#include <string.h>

#include "fleetmcp/fm_server.h"
#include "fm_tools.gen.h"
#include "fleetmcp/fm_slurm.h"
#include "read_common.h"

#define REASON_SHORT 80

/* Compact node (new) from a normalized node (borrowed). */
static json_t *compact_node(const json_t *n)
{
    char state[128];
    fm_read_state_join(json_object_get(n, "state"), state, sizeof state);
    json_t *c = json_object();
    json_object_set(c, "name", json_object_get(n, "name"));
    json_object_set_new(c, "state", json_string(state));
    const char *reason = json_string_value(json_object_get(n, "reason"));
    if (reason) {
        size_t l = strlen(reason);
        json_object_set_new(c, "reason",
                            l > REASON_SHORT ? json_sprintf("%.*s...", REASON_SHORT - 3, reason)
                                             : json_string(reason));
    }
    json_object_set(c, "gpus", json_object_get(n, "gpus"));
    json_object_set(c, "domains", json_object_get(n, "domains"));
    return c;
}

/* Returns a new object (see schemas/tools/slurm_nodes.json). */
json_t *fm_tool_slurm_nodes(fm_call *call, fm_err *err)
{
    fm_ctx *ctx = call->ctx;
    const json_t *a = call->args;
    fm_slurm_node_filter f = {
        .state = fm_read_arg_str(a, "state"),
        .partition = fm_read_arg_str(a, "partition"),
        .feature = fm_read_arg_str(a, "feature"),
        .reason = fm_read_arg_str(a, "reason"),
        .name_glob = fm_read_arg_str(a, "name"),
        .name_regex = fm_read_arg_str(a, "name_regex"),
    };
    json_t *all = ctx->be.slurm->nodes(ctx->be.slurm_st, &f, err);
    if (!all) return NULL;
    long long limit = fm_read_arg_int(a, "limit", 50), offset = fm_read_arg_int(a, "offset", 0);
    bool detail = fm_read_arg_bool(a, "detail", false);
    json_t *counts = json_object(), *page = json_array();
    size_t i, total = json_array_size(all);
    json_t *n;
    json_array_foreach(all, i, n)
    {
        char state[128];
        fm_read_state_join(json_object_get(n, "state"), state, sizeof state);
        fm_read_count(counts, state);
        if ((long long)i >= offset && (long long)json_array_size(page) < limit)
            json_array_append_new(page, detail ? json_incref(n) : compact_node(n));
    }
    json_decref(all);
    return fm_read_page(counts, page, total, offset, limit, "nodes", ctx->be.slurm->name);
}
