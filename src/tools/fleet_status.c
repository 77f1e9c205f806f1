/* fleet_status: the first call an operator or agent makes. */
#include <stdio.h>
#include <string.h>

#include "fm_tools.gen.h"
#include "fleetmcp/fm_audit.h"
#include "fleetmcp/fm_fleet.h"
#include "fleetmcp/fm_gate.h"
#include "fleetmcp/fm_guardrails.h"
#include "fleetmcp/fm_policy.h"
#include "fleetmcp/fm_tickets.h"
#include "fleetmcp/fm_workflow.h"
#include "fleetmcp/fm_registry.h"
#include "fleetmcp/fm_server.h"

/* Open tickets (up to 50, newest first) as {key: node} (new). */
static json_t *open_tickets(fm_ctx *ctx)
{
    json_t *out = json_object();
    if (!ctx->be.tickets) return out;
    fm_ticket_query q = {.state = FM_TICKET_STATE_OPEN, .limit = 50};
    fm_err err = {0};
    json_t *found = ctx->be.tickets->search(ctx->be.tickets_st, &q, &err);
    size_t i;
    json_t *t;
    json_array_foreach(found, i, t)
    {
        json_t *key = json_object_get(t, "key"), *node = json_object_get(t, "node");
        if (json_is_string(key))
            json_object_set(out, json_string_value(key), node ? node : json_null());
    }
    json_decref(found);
    return out;
}

/* Returns a new object (see schemas/tools/fleet_status.json). */
json_t *fm_tool_fleet_status(fm_call *call, fm_err *err)
{
    (void)err;
    fm_ctx *ctx = call->ctx;
    char why[600] = "";
    bool ks = fm_killswitch_engaged(ctx, why, sizeof why);
    json_t *kill = json_pack("{s:b}", "engaged", ks);
    if (ks) json_object_set_new(kill, "reason", json_string(why));
    json_t *be =
        json_pack("{s:s, s:s, s:s, s:s}", "slurm", ctx->be.slurm ? "configured" : "not configured",
                  "metrics", ctx->be.metrics ? "configured" : "not configured", "tickets",
                  ctx->be.tickets ? "configured" : "not configured", "ssh",
                  ctx->be.exec ? "configured" : "not configured");
    /* Calls by decision over the last 24 hours, from the hourly counters
     * the audit keeps (never a scan of the log itself). */
    json_t *audit = json_pack(
        "{s:I, s:o}", "rows", (json_int_t)fm_audit_rows(&ctx->store), "last_24h",
        fm_audit_decisions_since(&ctx->store, fm_store_now_ms(&ctx->store) / 3600000 - 23));
    json_t *out =
        json_pack("{s:s, s:b, s:o, s:o, s:{s:I, s:I}, s:o}", "mode", fm_mode_name(ctx->cfg.mode),
                  "read_only", ctx->cfg.read_only, "kill_switch", kill, "backends", be, "tools",
                  "visible", (json_int_t)fm_registry_visible(ctx, NULL, 0), "total",
                  (json_int_t)fm_tool_count, "audit", audit);
    /* Remediation: what the store knows without asking any backend, so
     * fleet_status answers even when Slurm is down. */
    json_t *m = fm_fleet_metrics(ctx, FM_FLEET_WINDOW_MS);
    json_object_set(out, "nodes_by_state", json_object_get(m, "nodes"));
    json_object_set(out, "capacity_removed_nodes", json_object_get(m, "capacity_removed_nodes"));
    json_object_set_new(out, "open_tickets", open_tickets(ctx));
    json_object_set_new(out, "workflows", fm_workflow_status_summary(ctx));
    json_object_set_new(out, "metrics", m);
    json_t *emergency = fm_emergency_active(ctx);
    if (emergency) {
        json_object_del(emergency, "until_ms");
        json_object_del(emergency, "approval_id");
        json_object_set_new(emergency, "active", json_true());
    }
    json_t *windows = json_object_get(fm_config_section(&ctx->cfg, "change_windows"), "partitions");
    windows = windows ? json_incref(windows) : json_object();
    json_object_set_new(out, "guardrails",
                        json_pack("{s:o, s:o, s:o, s:o}", "circuit_breaker", fm_breaker_status(ctx),
                                  "repeat_offenders", fm_offender_list(ctx), "emergency",
                                  emergency ? emergency : json_pack("{s:b}", "active", false),
                                  "change_windows", windows));
    return out;
}
