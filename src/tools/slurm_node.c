/* slurm_node: one node with who drained it and why, whether the drain is
 * fleetmcp's, and the jobs on it (compact). */
#include <string.h>

#include "fleetmcp/fm_server.h"
#include "fm_tools.gen.h"
#include "fleetmcp/fm_tickets.h"
#include "fleetmcp/fm_slurm.h"
#include "read_common.h"

static const char *const DETAIL_ONLY[] = {"features", "cpus", "memory_mb", "boot_time"};

/* Returns a new object (see schemas/tools/slurm_node.json). */
json_t *fm_tool_slurm_node(fm_call *call, fm_err *err)
{
    fm_ctx *ctx = call->ctx;
    const char *name = fm_read_arg_str(call->args, "node");
    json_t *n = ctx->be.slurm->node(ctx->be.slurm_st, name, err);
    if (!n) return NULL;
    if (!fm_read_arg_bool(call->args, "detail", false))
        for (size_t i = 0; i < sizeof DETAIL_ONLY / sizeof *DETAIL_ONLY; i++)
            json_object_del(n, DETAIL_ONLY[i]);
    long long limit = fm_read_arg_int(call->args, "jobs_limit", 20);
    fm_slurm_job_filter jf = {.node = name};
    fm_err jerr = {0};
    json_t *jobs = ctx->be.slurm->jobs(ctx->be.slurm_st, &jf, &jerr);
    json_t *jo = json_object();
    if (jobs) {
        json_t *items = json_array();
        size_t i;
        json_t *j;
        json_array_foreach(jobs, i, j)
        {
            if ((long long)i >= limit) break;
            json_array_append_new(
                items,
                json_pack("{s:O, s:O, s:O, s:O, s:O, s:O}", "job_id", json_object_get(j, "job_id"),
                          "name", json_object_get(j, "name"), "user", json_object_get(j, "user"),
                          "state", json_object_get(j, "state"), "gpus", json_object_get(j, "gpus"),
                          "start_time", json_object_get(j, "start_time")));
        }
        json_object_set_new(jo, "count", json_integer((json_int_t)json_array_size(jobs)));
        json_object_set_new(jo, "items", items);
        json_decref(jobs);
    } else {
        /* the node is still worth returning when only the job list failed */
        json_object_set_new(jo, "count", json_integer(0));
        json_object_set_new(jo, "error", json_sprintf("%s: %s", fm_strerror(jerr.code), jerr.text));
    }
    if (json_is_true(json_object_get(n, "fleetmcp_owned")))
        json_object_set_new(n, "fleetmcp_owned", json_boolean(fm_read_drain_owned(ctx, n)));
    json_object_set_new(n, "jobs", jo);
    json_object_set_new(n, "open_ticket", fm_ticket_open_key(ctx, name));
    json_object_set_new(n, "backend", json_string(ctx->be.slurm->name));
    return n;
}
