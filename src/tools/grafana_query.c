/* grafana_query: PromQL through the metrics backend; the backend bounds
 * series, points and range and says when it cut. */
#include <string.h>

#include "fleetmcp/fm_metrics.h"
#include "fleetmcp/fm_server.h"
#include "fm_tools.gen.h"
#include "read_common.h"

/* Returns a new object (see schemas/tools/grafana_query.json). */
json_t *fm_tool_grafana_query(fm_call *call, fm_err *err)
{
    fm_ctx *ctx = call->ctx;
    const json_t *a = call->args;
    const char *promql = fm_read_arg_str(a, "promql");
    const char *mode = fm_read_arg_str(a, "mode");
    double now = fm_read_now();
    json_t *out;
    if (mode && strcmp(mode, "range") == 0) {
        double start = now - 3600, end = now, step = 0;
        const json_t *v;
        if ((v = json_object_get(a, "start")) && fm_read_parse_time(v, now, &start, err))
            return NULL;
        if ((v = json_object_get(a, "end")) && fm_read_parse_time(v, now, &end, err)) return NULL;
        if ((v = json_object_get(a, "step")) && fm_read_parse_duration(v, &step, err)) return NULL;
        if (step <= 0) step = (end - start) / 60 > 1 ? (end - start) / 60 : 1;
        out = ctx->be.metrics->query_range(ctx->be.metrics_st, promql, start, end, step, err);
    } else {
        double t = 0;
        const json_t *v = json_object_get(a, "time");
        if (v && fm_read_parse_time(v, now, &t, err)) return NULL;
        out = ctx->be.metrics->query_instant(ctx->be.metrics_st, promql, t, err);
    }
    if (!out) return NULL;
    /* a caller's own limit only lowers the configured bound */
    long long limit = fm_read_arg_int(a, "limit", 0);
    json_t *series = json_object_get(out, "series");
    if (limit > 0 && json_array_size(series) > (size_t)limit) {
        while (json_array_size(series) > (size_t)limit)
            json_array_remove(series, json_array_size(series) - 1);
        json_object_set_new(out, "truncated", json_true());
        json_array_append_new(json_object_get(out, "warnings"),
                              json_sprintf("truncated to limit %lld series", limit));
    }
    json_object_set_new(out, "mode", json_string(mode ? mode : "instant"));
    return out;
}
