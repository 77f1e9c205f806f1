/* fleetmcp's own resources, prompts and completions (fm_content_fleet):
 * runbooks as runbook://ID (their YAML, as operators wrote it), recorded
 * audit sessions as audit://session/ID (JSON lines, the form replay
 * reads), each tool's whole output schema as
 * fleetmcp://schemas/tools/NAME/output (tools/list lists only its top
 * level, issue 14), prompts for the common operator flows, and completions for node
 * names, fault classes and runbook ids.  Read-only: nothing here passes
 * the gate because nothing here acts. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleetmcp/fm_audit.h"
#include "fleetmcp/fm_content.h"
#include "fleetmcp/fm_nodestate.h"
#include "fleetmcp/fm_registry.h"
#include "fleetmcp/fm_runbook.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_util.h"
#include "fleetmcp/fm_yaml.h"

#define RUNBOOK_SCHEME "runbook://"
#define SESSION_SCHEME "audit://session/"
#define TOOL_SCHEMA_SCHEME "fleetmcp://schemas/tools/"
#define TOOL_SCHEMA_TAIL "/output"
#define TOOL_SCHEMA_TTL_MS 3600000 /* fixed for the life of the process */
#define MAX_TOOLS 512              /* as many as tools/list shows */
#define RUNBOOK_TTL_MS 60000
#define MAX_RUNBOOK_BYTES (1u << 20)
#define MAX_SESSION_ROWS 1000
#define MAX_COMPLETIONS 100 /* also the LIMIT in the node queries */

/* Names from outside are checked before they reach a query or a text. */
static bool name_ok(const char *s, size_t max, const char *extra)
{
    size_t n = s ? strlen(s) : 0;
    if (!n || n > max || !isalnum((unsigned char)s[0])) return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr(extra, s[i])) return false;
    return true;
}

/* ---- resources ------------------------------------------------------------ */

/* One recent session as a resource (fm_audit_recent_sessions). */
static void session_resource(const char *sid, int64_t rows, int64_t first_ms, int64_t last_ms,
                             const char *client, void *arg)
{
    char uri[128], first[32], last[32], desc[256];
    snprintf(uri, sizeof uri, SESSION_SCHEME "%s", sid ? sid : "");
    fm_iso_time(first_ms, first);
    fm_iso_time(last_ms, last);
    snprintf(desc, sizeof desc, "%lld audited calls by %.64s, %s to %s", (long long)rows,
             client ? client : "unknown", first, last);
    json_array_append_new(arg, json_pack("{s:s, s:s, s:s, s:s}", "uri", uri, "name", uri + 8,
                                         "description", desc, "mimeType", "application/x-ndjson"));
}

static json_t *fleet_resources(fm_ctx *ctx, fm_err *err)
{
    if (fm_runbooks_load(ctx, err)) return NULL;
    json_t *out = json_array();
    for (size_t i = 0; i < ctx->runbooks->count; i++) {
        const fm_runbook *r = &ctx->runbooks->items[i];
        char uri[160];
        snprintf(uri, sizeof uri, RUNBOOK_SCHEME "%s", r->id);
        json_array_append_new(out,
                              json_pack("{s:s, s:s, s:s?, s:s, s:s}", "uri", uri, "name", r->id,
                                        "title", fm_json_str(r->doc, "title", NULL), "description",
                                        fm_json_str(r->doc, "description", "runbook"), "mimeType",
                                        "application/yaml"));
    }
    fm_audit_recent_sessions(&ctx->store, session_resource, out, err);
    return out;
}

static json_t *fleet_templates(fm_ctx *ctx)
{
    (void)ctx;
    return json_pack(
        "[{s:s, s:s, s:s, s:s}, {s:s, s:s, s:s, s:s}, {s:s, s:s, s:s, s:s}]", "uriTemplate",
        RUNBOOK_SCHEME "{id}", "name", "runbook", "description",
        "a runbook by id, as YAML (runbook_list names them)", "mimeType", "application/yaml",
        "uriTemplate", SESSION_SCHEME "{session}", "name", "audit-session", "description",
        "the audited calls of one session, oldest first, one JSON row per line", "mimeType",
        "application/x-ndjson", "uriTemplate", TOOL_SCHEMA_SCHEME "{name}" TOOL_SCHEMA_TAIL, "name",
        "tool-output-schema", "description",
        "a tool's whole output schema, which every result is checked against"
        " (tools/list lists its top level only)",
        "mimeType", "application/schema+json");
}

/* The tool named name (NUL-terminated at len) if the caller may see it:
 * a tool tools/list leaves out has no schema to read either. */
static int visible_tool(fm_ctx *ctx, const char *name)
{
    int ti = fm_tool_index(name);
    if (ti < 0) return -1;
    int idx[MAX_TOOLS];
    size_t n = fm_registry_visible(ctx, idx, MAX_TOOLS);
    for (size_t i = 0; i < n && i < MAX_TOOLS; i++)
        if (idx[i] == ti) return ti;
    return -1;
}

/* The schema the server checks every structuredContent against (words
 * that never decide validity are left out of the binary; the file in
 * schemas/tools/NAME.json has them). */
static json_t *read_tool_schema(fm_ctx *ctx, const char *rest, const char *uri, fm_err *err)
{
    char name[64];
    const char *slash = strchr(rest, '/');
    size_t len = slash ? (size_t)(slash - rest) : 0;
    int ti = -1;
    if (len && len < sizeof name && !strcmp(slash, TOOL_SCHEMA_TAIL)) {
        memcpy(name, rest, len);
        name[len] = 0;
        if (name_ok(name, sizeof name - 1, "_")) ti = visible_tool(ctx, name);
    }
    if (ti < 0)
        return fm_err_set(err, FM_ERR_NOT_FOUND,
                          "no such tool: use " TOOL_SCHEMA_SCHEME "NAME" TOOL_SCHEMA_TAIL
                          " with a name tools/list gives"),
               NULL;
    if (fm_tool_table[ti].flags & FM_TOOL_CONTENT_RESULT)
        return fm_err_set(err, FM_ERR_NOT_FOUND, "%s returns content only: it has no output schema",
                          name),
               NULL;
    return json_pack("[{s:s, s:s, s:s}]", "uri", uri, "mimeType", "application/schema+json", "text",
                     fm_tool_table[ti].output_schema);
}

static json_t *read_runbook(fm_ctx *ctx, const char *id, const char *uri, fm_err *err)
{
    if (fm_runbooks_load(ctx, err)) return NULL;
    const fm_runbook *r = name_ok(id, 120, "-_.") ? fm_runbook_find(ctx->runbooks, id) : NULL;
    if (!r) return fm_err_set(err, FM_ERR_NOT_FOUND, "no runbook with that id"), NULL;
    FILE *f = fopen(r->path, "rb");
    char *buf = f ? malloc(MAX_RUNBOOK_BYTES + 1) : NULL;
    size_t n = buf ? fread(buf, 1, MAX_RUNBOOK_BYTES + 1, f) : 0;
    if (f) fclose(f);
    json_t *text = buf && n <= MAX_RUNBOOK_BYTES ? json_stringn(buf, n) : NULL;
    free(buf);
    if (!text)
        return fm_err_set(err, FM_ERR_IO, "cannot read %s (missing, over 1 MiB, or not UTF-8)",
                          r->path),
               NULL;
    return json_pack("[{s:s, s:s, s:o}]", "uri", uri, "mimeType", "application/yaml", "text", text);
}

static json_t *read_session(fm_ctx *ctx, const char *sid, const char *uri, fm_err *err)
{
    if (!name_ok(sid, 64, "-_:."))
        return fm_err_set(err, FM_ERR_NOT_FOUND, "no audit session with that id"), NULL;
    json_t *filter = json_pack("{s:s, s:i}", "session", sid, "limit", MAX_SESSION_ROWS);
    json_t *rows = fm_audit_query(&ctx->store, filter, err);
    json_decref(filter);
    if (!rows) return NULL;
    size_t n = json_array_size(rows);
    if (!n) {
        json_decref(rows);
        return fm_err_set(err, FM_ERR_NOT_FOUND, "no audit session with that id"), NULL;
    }
    /* Rows come newest first; a session reads oldest first. */
    size_t len = 0;
    char *text = fm_json_join(rows, JSON_COMPACT | JSON_SORT_KEYS, true, "", "\n", &len);
    json_decref(rows);
    if (!text) return fm_err_set(err, FM_ERR_NOMEM, "session too large to render"), NULL;
    json_t *out = json_pack("[{s:s, s:s, s:s%}]", "uri", uri, "mimeType", "application/x-ndjson",
                            "text", text, len);
    free(text);
    return out;
}

static json_t *fleet_read(fm_ctx *ctx, const char *uri, long long *ttl_ms, fm_err *err)
{
    if (!strncmp(uri, RUNBOOK_SCHEME, strlen(RUNBOOK_SCHEME))) {
        *ttl_ms = RUNBOOK_TTL_MS;
        return read_runbook(ctx, uri + strlen(RUNBOOK_SCHEME), uri, err);
    }
    if (!strncmp(uri, SESSION_SCHEME, strlen(SESSION_SCHEME))) {
        *ttl_ms = 0; /* a session may still be growing */
        return read_session(ctx, uri + strlen(SESSION_SCHEME), uri, err);
    }
    if (!strncmp(uri, TOOL_SCHEMA_SCHEME, strlen(TOOL_SCHEMA_SCHEME))) {
        *ttl_ms = TOOL_SCHEMA_TTL_MS;
        return read_tool_schema(ctx, uri + strlen(TOOL_SCHEMA_SCHEME), uri, err);
    }
    return fm_err_set(err, FM_ERR_NOT_FOUND,
                      "this server has runbook://, audit://session/ and " TOOL_SCHEMA_SCHEME
                      " resources only"),
           NULL;
}

/* ---- prompts -------------------------------------------------------------- */

static json_t *arg(const char *name, const char *desc, bool required)
{
    return json_pack("{s:s, s:s, s:b}", "name", name, "description", desc, "required", required);
}

static json_t *fleet_prompts(fm_ctx *ctx)
{
    (void)ctx;
    return json_pack(
        "[{s:s, s:s, s:s, s:[o]}, {s:s, s:s, s:s, s:[o, o]}, {s:s, s:s, s:s, s:[o, o]}]", "name",
        "triage_node", "title", "Triage a node", "description",
        "Collect a node's state and signals, diagnose, and say what should happen next",
        "arguments", arg("node", "the Slurm node name", true), "name", "repair_node", "title",
        "Repair a node", "description",
        "Plan the runbook repair of a diagnosed node and get it approved; nothing runs unapproved",
        "arguments", arg("node", "the Slurm node name", true),
        arg("fault_class",
            "the diagnosed fault class,"
            " if known",
            false),
        "name", "incident_summary", "title", "Write an incident summary", "description",
        "Summarise what happened to a node from the audit trail, tickets and workflows",
        "arguments", arg("node", "the Slurm node name", true),
        arg("ticket", "the incident ticket key, if there is one", false));
}

static json_t *user_text(const char *text)
{
    return json_pack("{s:[{s:s, s:{s:s, s:s}}]}", "messages", "role", "user", "content", "type",
                     "text", "text", text);
}

static json_t *fleet_prompt(fm_ctx *ctx, const char *name, const json_t *args, fm_err *err)
{
    (void)ctx;
    const char *node = fm_json_str(args, "node", NULL);
    const char *fc = fm_json_str(args, "fault_class", NULL);
    const char *ticket = fm_json_str(args, "ticket", NULL);
    if (strcmp(name, "triage_node") && strcmp(name, "repair_node") &&
        strcmp(name, "incident_summary"))
        return fm_err_set(err, FM_ERR_NOT_FOUND,
                          "no prompt with that name (prompts/list names"
                          " them)"),
               NULL;
    if (!name_ok(node, 63, "._-"))
        return fm_err_set(err, FM_ERR_INVALID, "argument node is required: a Slurm node name"),
               NULL;
    if (fc && !name_ok(fc, 63, "_"))
        return fm_err_set(err, FM_ERR_INVALID, "argument fault_class must be a fault class id"),
               NULL;
    if (ticket && !name_ok(ticket, 32, "-"))
        return fm_err_set(err, FM_ERR_INVALID, "argument ticket must be a ticket key"), NULL;
    char text[1200];
    if (!strcmp(name, "triage_node"))
        snprintf(text, sizeof text,
                 "Triage GPU node %s. Read its Slurm state and jobs (slurm_node), its GPU health"
                 " (gpu_health) and, if needed, a read-only diagnostic bundle (node_diag_bundle)."
                 " Then run diagnose with the node name. Report the top fault class with its"
                 " confidence and evidence, the runbook it maps to, and whether the evidence is"
                 " strong enough to act on. Change nothing.",
                 node);
    else if (!strcmp(name, "repair_node"))
        snprintf(text, sizeof text,
                 "Repair GPU node %s%s%s. Confirm a fresh diagnosis first (diagnose), then make a"
                 " dry-run plan with repair_plan and show its steps, risk and capacity impact."
                 " If the plan needs approval, give the human the plan id and the approval"
                 " command; do not retry around a refusal. Once approved, run it with"
                 " repair_execute and follow the workflow with workflow_get.",
                 node, fc ? " for fault class " : "", fc ? fc : "");
    else
        snprintf(text, sizeof text,
                 "Write an incident summary for GPU node %s%s%s: a timeline from the audit trail"
                 " (audit_query with node %s), the diagnosis and its evidence, what was done and"
                 " by whom (agent or human, with approvals), the workflow outcome (workflow_get)"
                 " and the current node state. Link the ticket (ticket_get or ticket_search)."
                 " Keep it factual and short.",
                 node, ticket ? ", ticket " : "", ticket ? ticket : "", node);
    json_t *r = user_text(text);
    json_object_set_new(r, "description", json_string(name));
    return r;
}

/* ---- completions ------------------------------------------------------------ */

static void add_if_prefix(json_t *out, const char *v, const char *prefix)
{
    if (v && !strncmp(v, prefix, strlen(prefix)) && json_array_size(out) < MAX_COMPLETIONS)
        json_array_append_new(out, json_string(v));
}

typedef struct {
    json_t *out;
    const char *prefix;
} node_acc;

static void add_node(const char *v, void *arg)
{
    node_acc *a = arg;
    bool dup = false;
    size_t i;
    json_t *e;
    json_array_foreach(a->out, i, e) if (v && !strcmp(json_string_value(e), v)) dup = true;
    if (!dup) add_if_prefix(a->out, v, a->prefix);
}

static json_t *complete_nodes(fm_ctx *ctx, const char *prefix)
{
    node_acc a = {json_array(), prefix};
    /* Nodes fleetmcp has seen: its node states (src/nodestate) and its
     * audit trail (src/audit). */
    fm_node_state_each_prefixed(ctx, prefix, add_node, &a);
    fm_audit_nodes_prefixed(&ctx->store, prefix, add_node, &a);
    return a.out;
}

static json_t *complete_fault_classes(fm_ctx *ctx, const char *prefix)
{
    json_t *out = json_array();
    char dir[512], path[600];
    snprintf(path, sizeof path, "%s/fault-classes.yaml",
             fm_runbooks_dir(&ctx->cfg, dir, sizeof dir));
    fm_yaml_doc doc = {0};
    fm_err err = {0};
    if (fm_yaml_load_file(path, &doc, &err)) return out;
    size_t i;
    const json_t *c;
    json_array_foreach(json_object_get(doc.root, "classes"), i, c)
        add_if_prefix(out, fm_json_str(c, "id", NULL), prefix);
    fm_yaml_doc_free(&doc);
    return out;
}

static json_t *complete_runbooks(fm_ctx *ctx, const char *prefix)
{
    json_t *out = json_array();
    if (fm_runbooks_load(ctx, NULL)) return out;
    for (size_t i = 0; i < ctx->runbooks->count; i++)
        add_if_prefix(out, ctx->runbooks->items[i].id, prefix);
    return out;
}

static json_t *fleet_complete(fm_ctx *ctx, const json_t *ref, const char *name, const char *prefix)
{
    const char *type = fm_json_str(ref, "type", "");
    bool runbook_ref = !strcmp(type, "ref/resource") &&
                       !strcmp(fm_json_str(ref, "uri", ""), RUNBOOK_SCHEME "{id}");
    if (!strcmp(name, "node")) return complete_nodes(ctx, prefix);
    if (!strcmp(name, "fault_class")) return complete_fault_classes(ctx, prefix);
    if (runbook_ref && !strcmp(name, "id")) return complete_runbooks(ctx, prefix);
    if (!strcmp(type, "ref/resource") && !strcmp(name, "name") &&
        !strcmp(fm_json_str(ref, "uri", ""), TOOL_SCHEMA_SCHEME "{name}" TOOL_SCHEMA_TAIL)) {
        json_t *out = json_array();
        int idx[MAX_TOOLS];
        size_t n = fm_registry_visible(ctx, idx, MAX_TOOLS);
        for (size_t i = 0; i < n && i < MAX_TOOLS; i++)
            if (!(fm_tool_table[idx[i]].flags & FM_TOOL_CONTENT_RESULT))
                add_if_prefix(out, fm_tool_table[idx[i]].name, prefix);
        return out;
    }
    return json_array();
}

const fm_content_ops fm_content_fleet = {
    .resources = fleet_resources,
    .templates = fleet_templates,
    .read = fleet_read,
    .prompts = fleet_prompts,
    .prompt = fleet_prompt,
    .complete = fleet_complete,
    .subscribe = NULL, /* runbooks change with a deploy, sessions only grow */
};
