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

/* Counts and the page, built as the nodes go by. */
typedef struct summary {
    json_t *counts, *page;
    size_t total;
    long long offset, limit;
    bool detail;
} summary;

static int add_node(void *ud, const json_t *n, fm_err *err)
{
    (void)err;
    summary *sm = ud;
    char state[128];
    fm_read_state_join(json_object_get(n, "state"), state, sizeof state);
    fm_read_count(sm->counts, state);
    if ((long long)sm->total >= sm->offset && (long long)json_array_size(sm->page) < sm->limit)
        json_array_append_new(sm->page, sm->detail ? json_incref((json_t *)n) : compact_node(n));
    sm->total++;
    return 0;
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
    summary sm = {.counts = json_object(),
                  .page = json_array(),
                  .limit = fm_read_arg_int(a, "limit", 50),
                  .offset = fm_read_arg_int(a, "offset", 0),
                  .detail = fm_read_arg_bool(a, "detail", false)};
    const struct fm_slurm_ops *ops = ctx->be.slurm;
    int rc = 0;
    if (ops->nodes_each) {
        /* a fleet of any size in the memory of one node and the page */
        rc = ops->nodes_each(ctx->be.slurm_st, &f, add_node, &sm, err);
    } else {
        json_t *all = ops->nodes(ctx->be.slurm_st, &f, err);
        size_t i;
        json_t *n;
        json_array_foreach(all, i, n) add_node(&sm, n, err);
        rc = all ? 0 : -1;
        json_decref(all);
    }
    if (rc) {
        json_decref(sm.counts);
        json_decref(sm.page);
        return NULL;
    }
    /* A detailed page says whose drain it is as slurm_node does; the
     * node may be the backend's (a snapshot's): changed on a copy. */
    size_t i;
    json_t *n;
    json_array_foreach(sm.page, i, n)
    {
        if (!json_is_true(json_object_get(n, "fleetmcp_owned")) || fm_read_drain_owned(ctx, n))
            continue;
        json_t *c = json_copy(n);
        json_object_set_new(c, "fleetmcp_owned", json_false());
        json_array_set_new(sm.page, i, c);
    }
    return fm_read_page(sm.counts, sm.page, sm.total, sm.offset, sm.limit, "nodes", ops->name);
}
