/* Alert intake (include/fleetmcp/fm_alert.h): Alertmanager webhook v4
 * payloads to diagnoses, tickets and never-executed plans. */
/* Data access: this file owns the tables alert_intake, alert_seen; every statement on
 * them is here, others call its functions (the data-access stage checks). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleetmcp/fm_alert.h"
#include "fleetmcp/fm_audit.h"
#include "fleetmcp/fm_db.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_slurm.h"
#include "fleetmcp/fm_util.h"

#define MAX_LABELS 64
#define MAX_LABEL_LEN 1024
#define TICKET_LABELS 10 /* ticket_create's labels maxItems */

static const char ddl[] =
    "CREATE TABLE IF NOT EXISTS alert_intake(node TEXT NOT NULL, fault_class TEXT NOT NULL,"
    " first_ms INTEGER NOT NULL, last_ms INTEGER NOT NULL, alerts INTEGER NOT NULL,"
    " ticket TEXT, plan_id TEXT, PRIMARY KEY(node, fault_class));"
    "CREATE TABLE IF NOT EXISTS alert_seen(fingerprint TEXT NOT NULL, status TEXT NOT NULL,"
    " node TEXT, last_ms INTEGER NOT NULL, PRIMARY KEY(fingerprint, status));";

static const json_t *section(fm_ctx *ctx)
{
    return fm_config_section(&ctx->cfg, "alerts");
}

size_t fm_alert_max_bytes(fm_ctx *ctx)
{
    return (size_t)fm_cfg_int(section(ctx), "max_bytes", 1024 * 1024);
}

/* ---- shape ------------------------------------------------------------ */

static bool short_string(const json_t *v, size_t max)
{
    return json_is_string(v) && json_string_length(v) <= max;
}

/* Checks one alert against the v4 shape and the bounds: 0, or -1 with
 * err naming the alert and the field. */
static int check_alert(const json_t *a, size_t i, fm_err *err)
{
    if (!json_is_object(a))
        return fm_err_set(err, FM_ERR_INVALID, "alerts[%zu] is not an object", i), -1;
    const char *st = fm_json_str(a, "status", "");
    if (strcmp(st, "firing") && strcmp(st, "resolved"))
        return fm_err_set(err, FM_ERR_INVALID,
                          "alerts[%zu].status must be \"firing\" or \"resolved\"", i),
               -1;
    const json_t *labels = json_object_get(a, "labels");
    if (!json_is_object(labels) || json_object_size(labels) > MAX_LABELS)
        return fm_err_set(err, FM_ERR_INVALID,
                          "alerts[%zu].labels must be an object of at most %d labels", i,
                          MAX_LABELS),
               -1;
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)labels, k, v)
    {
        if (!short_string(v, MAX_LABEL_LEN) || strlen(k) > 128)
            return fm_err_set(err, FM_ERR_INVALID,
                              "alerts[%zu].labels.%.64s must be a string of at most %d bytes", i, k,
                              MAX_LABEL_LEN),
                   -1;
    }
    const json_t *ann = json_object_get(a, "annotations");
    if (ann && (!json_is_object(ann) || json_object_size(ann) > MAX_LABELS))
        return fm_err_set(err, FM_ERR_INVALID, "alerts[%zu].annotations must be an object", i), -1;
    json_object_foreach((json_t *)ann, k, v)
    {
        if (!short_string(v, 8192))
            return fm_err_set(err, FM_ERR_INVALID,
                              "alerts[%zu].annotations.%.64s must be a string of at most 8192"
                              " bytes",
                              i, k),
                   -1;
    }
    static const char *const strs[] = {"fingerprint", "startsAt", "endsAt", "generatorURL"};
    for (size_t s = 0; s < sizeof strs / sizeof *strs; s++) {
        const json_t *f = json_object_get(a, strs[s]);
        if (f && !short_string(f, s == 3 ? 2048 : 64))
            return fm_err_set(err, FM_ERR_INVALID, "alerts[%zu].%s must be a short string", i,
                              strs[s]),
                   -1;
    }
    return 0;
}

static int check_payload(fm_ctx *ctx, const json_t *doc, fm_err *err)
{
    if (!json_is_object(doc))
        return fm_err_set(err, FM_ERR_INVALID,
                          "the payload must be a JSON object (Alertmanager webhook, version 4)"),
               -1;
    const json_t *ver = json_object_get(doc, "version");
    if (!json_is_string(ver) || strcmp(json_string_value(ver), "4"))
        return fm_err_set(err, FM_ERR_INVALID,
                          "version must be \"4\" (Alertmanager's webhook payload); other"
                          " senders: wrap alerts in {\"version\":\"4\",\"alerts\":[...]}"),
               -1;
    const json_t *alerts = json_object_get(doc, "alerts");
    long long max = fm_cfg_int(section(ctx), "max_alerts", 100);
    if (!json_is_array(alerts))
        return fm_err_set(err, FM_ERR_INVALID, "alerts must be an array"), -1;
    if ((long long)json_array_size(alerts) > max)
        return fm_err_set(err, FM_ERR_TOO_LARGE,
                          "%zu alerts in one payload, at most %lld are taken (alerts.max_alerts;"
                          " lower Alertmanager's max_alerts for this receiver)",
                          json_array_size(alerts), max),
               -1;
    size_t i;
    const json_t *a;
    json_array_foreach(alerts, i, a) if (check_alert(a, i, err)) return -1;
    return 0;
}

/* ---- the node an alert is about ------------------------------------------ */

static bool node_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (!n || n > 63 || !isalnum((unsigned char)s[0])) return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i])) return false;
    return true;
}

static bool slurm_knows(fm_ctx *ctx, const char *node)
{
    if (!ctx->be.slurm) return true; /* nothing to check against */
    fm_err e = {0};
    json_t *n = ctx->be.slurm->node(ctx->be.slurm_st, node, &e);
    bool ok = n != NULL;
    json_decref(n);
    return ok;
}

/* The Slurm node named by the alert's labels, into out ("" if none):
 * hostname, Hostname (dcgm-exporter), node, then instance ("host:9400");
 * a port is dropped, and a domain when Slurm knows only the short name. */
static void alert_node(fm_ctx *ctx, const json_t *labels, char *out, size_t len)
{
    static const char *const keys[] = {"hostname", "Hostname", "node", "instance"};
    out[0] = '\0';
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
        const char *v = fm_json_str(labels, keys[k], NULL);
        if (!v || !*v) continue;
        char name[128];
        snprintf(name, sizeof name, "%s", v);
        char *colon = strrchr(name, ':');
        if (colon && !strchr(name, ']')) *colon = '\0';
        if (node_name_ok(name) && slurm_knows(ctx, name)) {
            snprintf(out, len, "%.63s", name);
            return;
        }
        char *dot = strchr(name, '.');
        if (dot) {
            *dot = '\0';
            if (node_name_ok(name) && slurm_knows(ctx, name)) {
                snprintf(out, len, "%.63s", name);
                return;
            }
        }
    }
}

/* ---- internal tool calls ------------------------------------------------ */

/* tools/call of name through the gate and both schemas.  Returns the
 * structuredContent (new), or NULL with the error text in why. */
static json_t *call(fm_ctx *ctx, const char *name, const json_t *args, char *why, size_t len)
{
    int ti = fm_tool_index(name);
    if (ti < 0) {
        snprintf(why, len, "no tool %s in this build", name);
        return NULL;
    }
    json_t *r = fm_tools_call(ctx, ti, args, NULL, NULL);
    json_t *sc = json_object_get(r, "structuredContent");
    if (!json_is_true(json_object_get(r, "isError")) && json_is_object(sc)) {
        json_incref(sc);
        json_decref(r);
        return sc;
    }
    const char *t = fm_json_str(json_array_get(json_object_get(r, "content"), 0), "text", "");
    snprintf(why, len, "%s: %.400s", name, *t ? t : "no result");
    json_decref(r);
    return NULL;
}

/* Labels for ticket_create: "name:value" where both fit its pattern. */
static json_t *ticket_labels(const json_t *labels)
{
    json_t *out = json_array();
    json_array_append_new(out, json_string("alertmanager"));
    static const char *const keys[] = {"alertname", "severity", "job", "cluster", "gpu"};
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
        const char *v = fm_json_str(labels, keys[k], NULL);
        if (!v) continue;
        char l[80];
        int n = snprintf(l, sizeof l, "%s:%s", keys[k], v);
        bool ok = n > 0 && n <= 64;
        for (int i = 0; ok && i < n; i++)
            ok = isalnum((unsigned char)l[i]) || strchr("._:-", l[i]);
        if (ok && json_array_size(out) < TICKET_LABELS) json_array_append_new(out, json_string(l));
    }
    return out;
}

static const char *severity_of(const json_t *labels)
{
    const char *s = fm_json_str(labels, "severity", "");
    if (!strcmp(s, "critical") || !strcmp(s, "page")) return "high";
    if (!strcmp(s, "high") || !strcmp(s, "medium") || !strcmp(s, "low")) return s;
    if (!strcmp(s, "warning")) return "medium";
    return "medium";
}

/* ---- dedup state ------------------------------------------------------- */

/* True if (fingerprint, status) was handled within the window. */
static bool seen_recently(fm_ctx *ctx, const char *fp, const char *status, int64_t since_ms)
{
    if (!*fp) return false; /* nothing to recognise a repeat by */
    int64_t last = 0;
    return fm_db_run(ctx->store.db,
                     "SELECT last_ms FROM alert_seen WHERE fingerprint=? AND status=?",
                     fm_db_row_int64, &last, "tt", fp, status) == FM_DB_ROW &&
           last >= since_ms;
}

/* Records (fingerprint, status) as handled now.  Only once it was: an
 * alert whose diagnosis failed is taken again when Alertmanager resends
 * it. */
static void mark_seen(fm_ctx *ctx, const char *fp, const char *status, const char *node)
{
    if (!*fp) return;
    fm_db_run(ctx->store.db,
              "INSERT INTO alert_seen(fingerprint,status,node,last_ms) VALUES(?,?,?,?)"
              " ON CONFLICT(fingerprint,status) DO UPDATE SET"
              " last_ms=excluded.last_ms, node=excluded.node",
              NULL, NULL, "ttti", fp, status, node, fm_store_now_ms(&ctx->store));
}

/* made_recently's row: the window's start and what was made. */
typedef struct {
    int64_t since_ms;
    char *ticket, *plan;
    size_t len;
    bool made;
} made_acc;

static int made_row(fm_db_stmt *s, void *arg)
{
    made_acc *m = arg;
    if (fm_db_column_int64(s, 0) >= m->since_ms) {
        m->made = true;
        const unsigned char *t = fm_db_column_text(s, 1), *p = fm_db_column_text(s, 2);
        snprintf(m->ticket, m->len, "%s", t ? (const char *)t : "");
        snprintf(m->plan, m->len, "%s", p ? (const char *)p : "");
    }
    return 1;
}

/* The ticket and plan already made for (node, class) within the window,
 * into ticket and plan; true if there are. */
static bool made_recently(fm_ctx *ctx, const char *node, const char *fc, int64_t since_ms,
                          char *ticket, char *plan, size_t len)
{
    made_acc m = {since_ms, ticket, plan, len, false};
    fm_db_run(ctx->store.db,
              "SELECT last_ms, ticket, plan_id FROM alert_intake WHERE node=? AND fault_class=?",
              made_row, &m, "tt", node, fc);
    return m.made;
}

static void remember(fm_ctx *ctx, const char *node, const char *fc, const char *ticket,
                     const char *plan, bool fresh)
{
    /* A fresh ticket/plan restarts the window; a deduplicated alert only
     * counts (the window runs from what was made, not from the last
     * repeat, so a flapping alert cannot hold it open forever). */
    if (fresh) {
        int64_t now = fm_store_now_ms(&ctx->store);
        fm_db_run(ctx->store.db,
                  "INSERT INTO alert_intake(node,fault_class,first_ms,last_ms,alerts,"
                  "ticket,plan_id) VALUES(?,?,?,?,1,?,?) ON CONFLICT(node,fault_class)"
                  " DO UPDATE SET first_ms=excluded.first_ms,"
                  " last_ms=excluded.last_ms, alerts=alert_intake.alerts+1,"
                  " ticket=excluded.ticket, plan_id=excluded.plan_id",
                  NULL, NULL, "ttiitt", node, fc, now, now, ticket, plan);
    } else {
        fm_db_run(ctx->store.db,
                  "UPDATE alert_intake SET alerts=alerts+1 WHERE node=? AND fault_class=?", NULL,
                  NULL, "tt", node, fc);
    }
}

/* ---- one alert ------------------------------------------------------- */

static void audit_alert(fm_ctx *ctx, const json_t *a, const json_t *outcome, const char *node)
{
    json_t *args =
        json_pack("{s:s, s:O, s:s, s:s}", "status", fm_json_str(a, "status", ""), "labels",
                  json_object_get(a, "labels"), "fingerprint", fm_json_str(a, "fingerprint", ""),
                  "startsAt", fm_json_str(a, "startsAt", ""));
    char *res = json_dumps(outcome, JSON_COMPACT);
    fm_audit_rec rec = {.phase = "call",
                        .tool = "alert_intake",
                        .args = args,
                        .autonomy = "create",
                        .decision = "allow",
                        .reason = "Alertmanager webhook (alert intake)",
                        .node = node && *node ? node : NULL,
                        .result = res,
                        .plan_id = fm_json_str(outcome, "plan_id", NULL),
                        .error_code = json_object_get(outcome, "error") ? "BACKEND" : NULL,
                        .error = fm_json_str(outcome, "error", NULL)};
    fm_audit_append(ctx, &rec, NULL);
    free(res);
    json_decref(args);
}

/* The alert as diagnose signals (new): an event line, and the alert as
 * Prometheus itself shows it (ALERTS{alertname, alertstate, ...} 1), its
 * labels cut to what the diagnose input schema takes. */
static json_t *alert_signals(const json_t *a, const char *node)
{
    const json_t *labels = json_object_get(a, "labels");
    const json_t *ann = json_object_get(a, "annotations");
    char line[1200];
    snprintf(line, sizeof line, "alertmanager: %.200s firing on %s since %.40s: %.400s %.400s",
             fm_json_str(labels, "alertname", "alert"), node, fm_json_str(a, "startsAt", "?"),
             fm_json_str(ann, "summary", ""), fm_json_str(ann, "description", ""));
    json_t *ml = json_pack("{s:s}", "alertstate", "firing");
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)labels, k, v)
    {
        if (json_object_size(ml) >= 32) break;
        if (json_string_length(v) <= 512 && strcmp(k, "alertstate"))
            json_object_set(ml, k, (json_t *)v);
    }
    return json_pack("{s:[s], s:[{s:s, s:o, s:i}]}", "events", line, "metrics", "name", "ALERTS",
                     "labels", ml, "value", 1);
}

/* Diagnoses node, then tickets and plans its class unless that was done
 * within the window.  Fills out. */
static void act_on(fm_ctx *ctx, const json_t *a, const char *node, int64_t since_ms, json_t *out,
                   json_t *report)
{
    char why[600];
    json_t *dargs = json_pack("{s:s, s:o}", "node", node, "signals", alert_signals(a, node));
    json_t *d = call(ctx, "diagnose", dargs, why, sizeof why);
    json_decref(dargs);
    if (!d) {
        json_object_set_new(out, "outcome", json_string("diagnosis failed"));
        json_object_set_new(out, "error", json_string(why));
        return;
    }
    const json_t *top = json_object_get(d, "top");
    const char *fc = fm_json_str(top, "fault_class", NULL);
    if (!fc || !strcmp(fc, "healthy")) {
        /* Nothing on the node backs the alert up: a human reads it. */
        json_object_set_new(out, "outcome", json_string("no fault found: nothing made"));
        json_decref(d);
        return;
    }
    json_object_set_new(out, "fault_class", json_string(fc));
    json_object_set_new(out, "confidence", json_deep_copy(json_object_get(top, "confidence")));
    char ticket[64] = "", plan[64] = "";
    if (made_recently(ctx, node, fc, since_ms, ticket, plan, sizeof ticket)) {
        json_object_set_new(out, "outcome", json_string("deduplicated"));
        if (*ticket) json_object_set_new(out, "ticket", json_string(ticket));
        if (*plan) json_object_set_new(out, "plan_id", json_string(plan));
        remember(ctx, node, fc, NULL, NULL, false);
        json_decref(d);
        return;
    }
    const json_t *labels = json_object_get(a, "labels");
    const json_t *ann = json_object_get(a, "annotations");
    char summary[256];
    snprintf(summary, sizeof summary, "%s on %s: %s (Alertmanager %s)", fc, node,
             fm_json_str(ann, "summary", fm_json_str(labels, "alertname", "alert")),
             fm_json_str(labels, "alertname", "alert"));
    json_t *ev = json_array();
    char line[500];
    snprintf(line, sizeof line, "alert %s firing since %s (fingerprint %s)",
             fm_json_str(labels, "alertname", "?"), fm_json_str(a, "startsAt", "?"),
             fm_json_str(a, "fingerprint", "-"));
    json_array_append_new(ev, json_string(line));
    const char *desc = fm_json_str(ann, "description", NULL);
    if (desc) {
        snprintf(line, sizeof line, "%.480s", desc);
        json_array_append_new(ev, json_string(line));
    }
    size_t i;
    const json_t *e;
    json_array_foreach(json_object_get(top, "evidence"), i, e)
    {
        if (json_array_size(ev) >= 8) break;
        snprintf(line, sizeof line, "diagnosis: %.480s",
                 json_string_value(e) ? json_string_value(e) : "");
        json_array_append_new(ev, json_string(line));
    }
    json_t *targs = json_pack("{s:s, s:s, s:s, s:s, s:o, s:o}", "summary", summary, "node", node,
                              "fault_class", fc, "severity", severity_of(labels), "labels",
                              ticket_labels(labels), "evidence", ev);
    json_t *t = call(ctx, "ticket_create", targs, why, sizeof why);
    json_decref(targs);
    if (t) {
        snprintf(ticket, sizeof ticket, "%s", fm_json_str(t, "key", ""));
        json_object_set_new(out, "ticket", json_string(ticket));
        json_object_set_new(
            report, "tickets",
            json_integer(json_integer_value(json_object_get(report, "tickets")) + 1));
    } else {
        json_object_set_new(out, "error", json_string(why));
    }
    json_decref(t);
    /* The plan is made, never run: approving and executing it is a
     * human's (or an agent's) call through repair_execute. */
    json_t *pargs = json_pack("{s:s, s:s}", "node", node, "fault_class", fc);
    json_t *p = call(ctx, "repair_plan", pargs, why, sizeof why);
    json_decref(pargs);
    if (p) {
        snprintf(plan, sizeof plan, "%s", fm_json_str(p, "plan_id", ""));
        json_object_set_new(out, "plan_id", json_string(plan));
        json_object_set_new(report, "plans",
                            json_integer(json_integer_value(json_object_get(report, "plans")) + 1));
    } else if (!json_object_get(out, "error")) {
        json_object_set_new(out, "error", json_string(why));
    } else {
        json_object_set_new(out, "plan_error", json_string(why));
    }
    json_decref(p);
    json_object_set_new(out, "outcome", json_string(t || p ? "ticket and plan" : "failed"));
    if (*ticket || *plan) remember(ctx, node, fc, ticket, plan, true);
    json_decref(d);
}

static void count(json_t *report, const char *k)
{
    json_object_set_new(report, k,
                        json_integer(json_integer_value(json_object_get(report, k)) + 1));
}

json_t *fm_alert_intake(fm_ctx *ctx, const char *body, size_t len, fm_err *err)
{
    size_t max = fm_alert_max_bytes(ctx);
    if (len > max) {
        /* The reader stops one byte over the bound: len is not the size. */
        fm_err_set(err, FM_ERR_TOO_LARGE,
                   "the payload is over alerts.max_bytes (%zu bytes): nothing was done; split it"
                   " (Alertmanager's max_alerts for this receiver) or raise the bound",
                   max);
        return NULL;
    }
    json_error_t je;
    json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!doc) {
        fm_err_set(err, FM_ERR_INVALID,
                   "the payload is not JSON (line %d: %.200s): nothing was done", je.line, je.text);
        return NULL;
    }
    fm_err bad = {0};
    if (check_payload(ctx, doc, &bad)) {
        fm_err_set(err, bad.code, "%.380s: nothing was done", bad.text);
        json_decref(doc);
        return NULL;
    }
    if (fm_store_migrate(&ctx->store, "alerts", 1, ddl, err)) {
        json_decref(doc);
        return NULL;
    }
    /* The window on the store's clock, as its rows are stamped: servers
     * sharing a PostgreSQL store whose clocks differ still see one window
     * (a host ahead would take a repeat for new and open a second ticket). */
    int64_t since =
        fm_store_now_ms(&ctx->store) - fm_cfg_int(section(ctx), "dedup_window_s", 21600) * 1000;
    json_t *report =
        json_pack("{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:[]}", "received", 0, "firing", 0,
                  "resolved", 0, "repeats", 0, "unmapped", 0, "tickets", 0, "plans", 0, "alerts");
    json_t *list = json_object_get(report, "alerts");
    size_t i;
    const json_t *a;
    json_array_foreach(json_object_get(doc, "alerts"), i, a)
    {
        if (ctx->stop) break; /* SIGTERM: the rest are left for Alertmanager's retry */
        count(report, "received");
        const json_t *labels = json_object_get(a, "labels");
        const char *status = fm_json_str(a, "status", "");
        count(report, status);
        char node[64];
        alert_node(ctx, labels, node, sizeof node);
        json_t *out =
            json_pack("{s:s, s:s, s:s}", "alertname", fm_json_str(labels, "alertname", ""),
                      "status", status, "fingerprint", fm_json_str(a, "fingerprint", ""));
        if (*node) json_object_set_new(out, "node", json_string(node));
        if (!*node) {
            count(report, "unmapped");
            json_object_set_new(out, "outcome",
                                json_string("no Slurm node in labels hostname, Hostname, node or"
                                            " instance: recorded only"));
        } else if (seen_recently(ctx, fm_json_str(a, "fingerprint", ""), status, since)) {
            count(report, "repeats");
            json_object_set_new(out, "outcome", json_string("repeat within the window: recorded"));
        } else if (!strcmp(status, "resolved")) {
            json_object_set_new(out, "outcome", json_string("resolved: recorded, not acted on"));
            mark_seen(ctx, fm_json_str(a, "fingerprint", ""), status, node);
        } else {
            act_on(ctx, a, node, since, out, report);
            if (!json_object_get(out, "error"))
                mark_seen(ctx, fm_json_str(a, "fingerprint", ""), status, node);
        }
        audit_alert(ctx, a, out, node);
        json_array_append_new(list, out);
    }
    json_decref(doc);
    return report;
}
