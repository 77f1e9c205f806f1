/* Prometheus HTTP API (/api/v1/query, /api/v1/query_range), directly or
 * through Grafana's datasource proxy: only the base path and the bearer
 * token differ.  Queries are POSTed form-encoded (curl_easy_escape), so a
 * long PromQL never hits URL limits.  Series, points and range are
 * bounded by config, and cutting is stated in the answer. */
#include "fleetmcp/fm_config.h"
#include "fleetmcp/fm_metrics.h"

#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fm_http.h"

typedef struct prom_st {
    char base[700];    /* ".../api/v1" */
    json_t *token_ref; /* owned, or NULL */
    long timeout_ms;
    size_t max_series, max_points, max_bytes;
    double max_range_s;
    char what[760];
    char hint[160];
    const char *name;
} prom_st;

static const char *str_or(const json_t *o, const char *k, const char *dflt)
{
    const char *v = json_string_value(json_object_get(o, k));
    return v ? v : dflt;
}

/* "1.5" / "NaN" / "+Inf" to a JSON number, or the string when not finite. */
static json_t *sample_value(const json_t *v)
{
    const char *s = json_string_value(v);
    if (!s) return json_null();
    char *end;
    double d = strtod(s, &end);
    if (*end || !isfinite(d)) return json_string(s);
    if (d == (double)(long long)d && fabs(d) < 9e15) return json_integer((long long)d);
    return json_real(d);
}

static json_t *sample_time(const json_t *t)
{
    double d = json_number_value(t);
    if (d == (double)(long long)d) return json_integer((long long)d);
    return json_real(d);
}

json_t *fm_metrics_normalize(const json_t *answer, size_t max_series, size_t max_points,
                             fm_err *err)
{
    const char *status = json_string_value(json_object_get(answer, "status"));
    if (!status) {
        fm_err_set(err, FM_ERR_PARSE, "metrics answer has no status: not a Prometheus API?");
        return NULL;
    }
    if (strcmp(status, "success") != 0) {
        char et[64], e[200];
        fm_clip(et, sizeof et, str_or(answer, "errorType", "error"));
        fm_clip(e, sizeof e, str_or(answer, "error", "no detail"));
        fm_err_set(err, FM_ERR_BACKEND, "Prometheus refused the query (%s): %s", et, e);
        return NULL;
    }
    const json_t *data = json_object_get(answer, "data");
    const char *rt = json_string_value(json_object_get(data, "resultType"));
    const json_t *res = json_object_get(data, "result");
    if (!rt || !res) {
        fm_err_set(err, FM_ERR_PARSE, "Prometheus answer without data.resultType/result");
        return NULL;
    }
    json_t *out = json_object(), *series = json_array(), *warnings = json_array();
    json_object_set_new(out, "resultType", json_string(rt));
    bool truncated = false;
    size_t total = 0;
    if (strcmp(rt, "scalar") == 0 || strcmp(rt, "string") == 0) {
        json_t *s = json_object();
        json_object_set_new(s, "labels", json_object());
        json_object_set_new(s, "value", sample_value(json_array_get(res, 1)));
        json_object_set_new(s, "time", sample_time(json_array_get(res, 0)));
        json_array_append_new(series, s);
        total = 1;
    } else if (json_is_array(res)) {
        total = json_array_size(res);
        size_t i;
        const json_t *r;
        json_array_foreach(res, i, r)
        {
            if (i >= max_series) {
                truncated = true;
                break;
            }
            json_t *s = json_object();
            const json_t *m = json_object_get(r, "metric");
            json_object_set_new(s, "labels", json_is_object(m) ? json_deep_copy(m) : json_object());
            const json_t *vals = json_object_get(r, "values");
            if (json_is_array(vals)) {
                json_t *vs = json_array();
                size_t k;
                const json_t *p;
                json_array_foreach(vals, k, p)
                {
                    if (k >= max_points) {
                        truncated = true;
                        break;
                    }
                    json_t *pt = json_array();
                    json_array_append_new(pt, sample_time(json_array_get(p, 0)));
                    json_array_append_new(pt, sample_value(json_array_get(p, 1)));
                    json_array_append_new(vs, pt);
                }
                json_object_set_new(s, "values", vs);
            } else {
                const json_t *v = json_object_get(r, "value");
                json_object_set_new(s, "value", sample_value(json_array_get(v, 1)));
                json_object_set_new(s, "time", sample_time(json_array_get(v, 0)));
            }
            json_array_append_new(series, s);
        }
    }
    const json_t *w = json_object_get(answer, "warnings");
    size_t i;
    const json_t *e;
    json_array_foreach(w, i, e)
    {
        if (i >= 8) break;
        char clip[129];
        fm_clip(clip, sizeof clip, json_string_value(e));
        json_array_append_new(warnings, json_string(clip));
    }
    if (truncated) {
        char msg[160];
        snprintf(msg, sizeof msg,
                 "truncated to %zu of %zu series and %zu points per series (metrics.max_series, "
                 "metrics.max_points): narrow the query",
                 json_array_size(series), total, max_points);
        json_array_append_new(warnings, json_string(msg));
    }
    json_object_set_new(out, "series", series);
    json_object_set_new(out, "truncated", json_boolean(truncated));
    json_object_set_new(out, "total_series", json_integer((json_int_t)total));
    json_object_set_new(out, "warnings", warnings);
    return out;
}

/* POSTs form (owned by caller) to base/endpoint; new normalized answer. */
static json_t *prom_post(prom_st *s, const char *endpoint, const char *form, fm_err *err)
{
    char url[800];
    snprintf(url, sizeof url, "%s/%s", s->base, endpoint);
    char auth[4200];
    const char *headers[2] = {NULL, NULL};
    if (s->token_ref) {
        char tok[4096];
        if (fm_secret_resolve(s->token_ref, tok, sizeof tok, err)) return NULL;
        size_t tl = strlen(tok);
        while (tl && (tok[tl - 1] == '\n' || tok[tl - 1] == '\r' || tok[tl - 1] == ' '))
            tok[--tl] = '\0';
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", tok);
        memset(tok, 0, sizeof tok);
        headers[0] = auth;
    }
    fm_http_req req = {.url = url,
                       .post_body = form,
                       .headers = headers,
                       .timeout_ms = s->timeout_ms,
                       .max_bytes = s->max_bytes,
                       .what = s->what,
                       .hint = s->hint};
    fm_http_resp resp;
    int rc = fm_http_perform(&req, &resp, err);
    memset(auth, 0, sizeof auth);
    if (rc) return NULL;
    if (resp.status == 401 || resp.status == 403) {
        long st = resp.status;
        fm_http_resp_free(&resp);
        fm_err_set(err, FM_ERR_AUTH, "%s refused the credentials (HTTP %ld): check metrics.token",
                   s->what, st);
        return NULL;
    }
    json_error_t je;
    json_t *ans = json_loadb(resp.body, resp.len, 0, &je);
    long st = resp.status;
    fm_http_resp_free(&resp);
    if (!json_is_object(ans)) {
        json_decref(ans);
        fm_err_set(err, st >= 400 ? FM_ERR_BACKEND : FM_ERR_PARSE,
                   "%s answered HTTP %ld without Prometheus JSON: check metrics.url%s", s->what, st,
                   strcmp(s->name, "grafana") == 0 ? " and metrics.datasource_uid" : "");
        return NULL;
    }
    json_t *out = fm_metrics_normalize(ans, s->max_series, s->max_points, err);
    json_decref(ans);
    return out;
}

/* Appends "&key=escaped(value)" to buf. */
static int form_add(char *buf, size_t len, const char *key, const char *value)
{
    char *esc = curl_easy_escape(NULL, value, 0);
    if (!esc) return -1;
    size_t used = strlen(buf);
    int n = snprintf(buf + used, len - used, "%s%s=%s", used ? "&" : "", key, esc);
    curl_free(esc);
    return (n < 0 || (size_t)n >= len - used) ? -1 : 0;
}

static int form_num(char *buf, size_t len, const char *key, double v)
{
    char num[48];
    snprintf(num, sizeof num, "%.3f", v);
    return form_add(buf, len, key, num);
}

#define FORM_MAX 16384

static json_t *prom_instant(void *st, const char *promql, double t, fm_err *err)
{
    prom_st *s = st;
    char *form = calloc(1, FORM_MAX);
    if (!form) return NULL;
    json_t *out = NULL;
    if (form_add(form, FORM_MAX, "query", promql) || (t > 0 && form_num(form, FORM_MAX, "time", t)))
        fm_err_set(err, FM_ERR_TOO_LARGE, "PromQL too long once encoded");
    else
        out = prom_post(s, "query", form, err);
    free(form);
    return out;
}

static json_t *prom_range(void *st, const char *promql, double start, double end, double step,
                          fm_err *err)
{
    prom_st *s = st;
    if (!(end > start) || !(step > 0)) {
        fm_err_set(err, FM_ERR_INVALID, "range needs start < end and step > 0");
        return NULL;
    }
    if (end - start > s->max_range_s) {
        fm_err_set(err, FM_ERR_INVALID,
                   "range of %.0f s is over metrics.max_range_s (%.0f s): query a shorter window",
                   end - start, s->max_range_s);
        return NULL;
    }
    double raised = 0;
    if ((end - start) / step + 1 > (double)s->max_points) {
        raised = ceil((end - start) / (double)(s->max_points - 1));
        step = raised;
    }
    char *form = calloc(1, FORM_MAX);
    if (!form) return NULL;
    json_t *out = NULL;
    if (form_add(form, FORM_MAX, "query", promql) || form_num(form, FORM_MAX, "start", start) ||
        form_num(form, FORM_MAX, "end", end) || form_num(form, FORM_MAX, "step", step))
        fm_err_set(err, FM_ERR_TOO_LARGE, "PromQL too long once encoded");
    else
        out = prom_post(s, "query_range", form, err);
    free(form);
    if (out) {
        json_object_set_new(out, "step", json_real(step));
        if (raised > 0) {
            char msg[160];
            snprintf(msg, sizeof msg,
                     "step raised to %.0f s to stay within metrics.max_points "
                     "(%zu) per series",
                     raised, s->max_points);
            json_array_append_new(json_object_get(out, "warnings"), json_string(msg));
        }
    }
    return out;
}

static void prom_close(void *st)
{
    prom_st *s = st;
    if (!s) return;
    json_decref(s->token_ref);
    free(s);
}

const struct fm_metrics_ops fm_metrics_prom_ops = {
    .name = "prometheus",
    .query_instant = prom_instant,
    .query_range = prom_range,
    .close = prom_close,
};

static long long sec_int(const json_t *sec, const char *key, long long dflt)
{
    const json_t *v = json_object_get(sec, key);
    return json_is_integer(v) && json_integer_value(v) > 0 ? json_integer_value(v) : dflt;
}

int fm_metrics_open(const json_t *sec, const struct fm_metrics_ops **ops, void **st, fm_err *err)
{
    *ops = NULL;
    *st = NULL;
    if (!json_is_object(sec))
        return fm_err_set(err, FM_ERR_NOT_CONFIGURED,
                          "no metrics section in the config: add metrics.url"),
               -1;
    const char *backend = json_string_value(json_object_get(sec, "backend"));
    if (!backend) backend = "prometheus";
    bool grafana = strcmp(backend, "grafana") == 0;
    if (!grafana && strcmp(backend, "prometheus") != 0)
        return fm_err_set(err, FM_ERR_INVALID, "metrics.backend must be prometheus or grafana"), -1;
    const char *url = json_string_value(json_object_get(sec, "url"));
    if (!url || !*url) return fm_err_set(err, FM_ERR_NOT_CONFIGURED, "metrics.url is not set"), -1;
    const char *uid = json_string_value(json_object_get(sec, "datasource_uid"));
    if (grafana && (!uid || !*uid))
        return fm_err_set(err, FM_ERR_NOT_CONFIGURED,
                          "metrics.backend grafana needs metrics.datasource_uid (the Prometheus "
                          "datasource's uid)"),
               -1;
    prom_st *s = calloc(1, sizeof *s);
    if (!s) return fm_err_set(err, FM_ERR_NOMEM, "metrics"), -1;
    size_t n = strlen(url);
    while (n && url[n - 1] == '/')
        n--;
    if (grafana) {
        char *esc = curl_easy_escape(NULL, uid, 0);
        snprintf(s->base, sizeof s->base, "%.*s/api/datasources/proxy/uid/%s/api/v1", (int)n, url,
                 esc ? esc : "");
        curl_free(esc);
        snprintf(s->what, sizeof s->what, "Grafana datasource %.64s at %.*s", uid, (int)n, url);
        snprintf(s->hint, sizeof s->hint,
                 "is Grafana running? check metrics.url and metrics.datasource_uid");
    } else {
        snprintf(s->base, sizeof s->base, "%.*s/api/v1", (int)n, url);
        snprintf(s->what, sizeof s->what, "Prometheus at %.*s", (int)n, url);
        snprintf(s->hint, sizeof s->hint, "is Prometheus running? check metrics.url");
    }
    s->name = grafana ? "grafana" : "prometheus";
    const json_t *tok = json_object_get(sec, "token");
    if (tok && !json_is_null(tok)) s->token_ref = json_deep_copy(tok);
    s->timeout_ms = (long)sec_int(sec, "timeout_ms", 5000);
    s->max_series = (size_t)sec_int(sec, "max_series", 1000);
    s->max_points = (size_t)sec_int(sec, "max_points", 1000);
    if (s->max_points < 2) s->max_points = 2;
    s->max_range_s = (double)sec_int(sec, "max_range_s", 7 * 86400);
    s->max_bytes = (size_t)sec_int(sec, "max_response_bytes", 32 << 20);
    *ops = &fm_metrics_prom_ops;
    *st = s;
    return 0;
}
