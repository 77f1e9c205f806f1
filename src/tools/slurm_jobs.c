/* slurm_jobs: counts by state over all matched jobs, then a compact page. */
#include "fleetmcp/fm_server.h"
#include "fm_tools.gen.h"
#include "fleetmcp/fm_slurm.h"
#include "read_common.h"

static const char *const COMPACT[] = {"job_id", "name",      "user", "state",     "reason",
                                      "nodes",  "partition", "gpus", "start_time"};

/* Compact job (new) from a normalized job (borrowed). */
static json_t *compact_job(const json_t *j)
{
    json_t *c = json_object();
    for (size_t i = 0; i < sizeof COMPACT / sizeof *COMPACT; i++) {
        json_t *v = json_object_get(j, COMPACT[i]);
        if (v && !json_is_null(v)) json_object_set(c, COMPACT[i], v);
    }
    return c;
}

/* Returns a new object (see schemas/tools/slurm_jobs.json). */
json_t *fm_tool_slurm_jobs(fm_call *call, fm_err *err)
{
    fm_ctx *ctx = call->ctx;
    const json_t *a = call->args;
    fm_slurm_job_filter f = {.node = fm_read_arg_str(a, "node"),
                             .user = fm_read_arg_str(a, "user"),
                             .state = fm_read_arg_str(a, "state"),
                             .partition = fm_read_arg_str(a, "partition")};
    json_t *all = ctx->be.slurm->jobs(ctx->be.slurm_st, &f, err);
    if (!all) return NULL;
    long long limit = fm_read_arg_int(a, "limit", 50), offset = fm_read_arg_int(a, "offset", 0);
    bool detail = fm_read_arg_bool(a, "detail", false);
    json_t *counts = json_object(), *page = json_array();
    size_t i, total = json_array_size(all);
    json_t *j;
    json_array_foreach(all, i, j)
    {
        const char *st = json_string_value(json_object_get(j, "state"));
        fm_read_count(counts, st ? st : "UNKNOWN");
        if ((long long)i >= offset && (long long)json_array_size(page) < limit)
            json_array_append_new(page, detail ? json_incref(j) : compact_job(j));
    }
    json_decref(all);
    return fm_read_page(counts, page, total, offset, limit, "jobs", ctx->be.slurm->name);
}
