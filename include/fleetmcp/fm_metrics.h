/* The metrics backend: PromQL against a Prometheus-compatible HTTP API,
 * directly or through Grafana's datasource proxy
 * (/api/datasources/proxy/uid/UID/api/v1/...) with a service-account
 * token: the same code with a different base path
 * (src/backends/metrics_prom.c).
 *
 * Normalized answer (a JSON object):
 *   {resultType: "vector"|"matrix"|"scalar"|"string",
 *    series: [{labels:{...}, value: v, time: t}            (instant)
 *             {labels:{...}, values: [[t, v], ...]}],       (range)
 *    truncated: bool, total_series, step (range only), warnings: [...]}
 * v is a number, or a string for NaN/+Inf/-Inf (JSON has no such numbers). */
#ifndef FM_METRICS_H
#define FM_METRICS_H

#include <jansson.h>
#include <stddef.h>

#include "fleetmcp/fm_error.h"

struct fm_metrics_ops {
    const char *name; /* "prometheus" or "grafana" */

    /* Instant query at time (unix seconds; 0 = now).  New object. */
    json_t *(*query_instant)(void *st, const char *promql, double time, fm_err *err);

    /* Range query.  A step that would give more than metrics.max_points
     * points per series is raised (the answer's step and warnings say so);
     * a range over metrics.max_range_s is refused.  New object. */
    json_t *(*query_range)(void *st, const char *promql, double start, double end, double step,
                           fm_err *err);

    /* Frees st.  st may be NULL. */
    void (*close)(void *st);
};

extern const struct fm_metrics_ops fm_metrics_prom_ops;

/* Opens from the metrics config section (borrowed). */
int fm_metrics_open(const json_t *metrics_section, const struct fm_metrics_ops **ops, void **st,
                    fm_err *err);

/* A Prometheus API answer (borrowed) to the normalized form (new), keeping
 * at most max_series series and max_points points per series.  A
 * {status:"error"} answer becomes FM_ERR_BACKEND with its errorType and
 * error text. */
json_t *fm_metrics_normalize(const json_t *answer, size_t max_series, size_t max_points,
                             fm_err *err);

#endif
