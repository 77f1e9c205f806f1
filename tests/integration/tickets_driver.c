/* Test driver for tests/integration/jira.py: runs one ticket tool the way
 * tools/call does below the gate (config loaded and validated, store and
 * ticket backend opened, arguments checked against the tool's
 * inputSchema, the result against its outputSchema), and prints
 *   {"ok": true, "result": {...}}  or  {"ok": false, "error": "WORD: text"}
 * on stdout.  "escalate" runs fm_ticket_escalate with {node, fault_class,
 * summary, evidence, bundle_id}.
 *
 * usage: tickets_driver CONFIG DB TOOL ARGS_JSON */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleetmcp/fm_schema.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_tickets.h"
#include "fleetmcp/fm_util.h"

static const fm_tool_def *find_tool(const char *name)
{
    for (size_t i = 0; i < fm_tool_count; i++)
        if (!strcmp(fm_tool_table[i].name, name)) return &fm_tool_table[i];
    return NULL;
}

static int print_result(json_t *result, const fm_err *err)
{
    json_t *o = json_object();
    if (result) {
        json_object_set_new(o, "ok", json_true());
        json_object_set_new(o, "result", result);
    } else {
        char t[600];
        snprintf(t, sizeof t, "%s: %s", fm_strerror(err->code), err->text);
        json_object_set_new(o, "ok", json_false());
        json_object_set_new(o, "error", json_string(t));
    }
    char *s = json_dumps(o, JSON_COMPACT);
    puts(s ? s : "{}");
    free(s);
    json_decref(o);
    return 0;
}

static int check_schema(const char *text, const json_t *v, const char *what, fm_err *err)
{
    json_t *schema = json_loads(text, 0, NULL);
    fm_err e = {0};
    int rc = fm_schema_validate(schema, v, &e);
    json_decref(schema);
    if (rc) fm_err_set(err, FM_ERR_INVALID, "%s fails its schema: %s", what, e.text);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s CONFIG DB TOOL ARGS_JSON\n", argv[0]);
        return 2;
    }
    fm_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    fm_err err = {0};
    json_t *args = json_loads(argv[4], 0, NULL);
    if (!args) {
        fprintf(stderr, "ARGS_JSON is not JSON\n");
        return 2;
    }
    if (fm_config_load(&ctx.cfg, argv[1], argv[2], &err) ||
        fm_store_open(&ctx.store, ctx.cfg.db_path, &err) || fm_tickets_open(&ctx, &err)) {
        fprintf(stderr, "setup: %s: %s\n", fm_strerror(err.code), err.text);
        json_decref(args);
        fm_store_close(&ctx.store);
        fm_config_free(&ctx.cfg);
        return 2;
    }
    json_t *out = NULL;
    if (!strcmp(argv[3], "escalate")) {
        out = fm_ticket_escalate(
            &ctx, fm_json_str(args, "node", NULL), fm_json_str(args, "fault_class", NULL),
            fm_json_str(args, "summary", NULL), json_object_get(args, "evidence"),
            fm_json_str(args, "bundle_id", NULL), &err);
    } else {
        const fm_tool_def *t = find_tool(argv[3]);
        if (!t || strncmp(t->name, "ticket_", 7)) {
            fprintf(stderr, "unknown ticket tool %s\n", argv[3]);
            json_decref(args);
            fm_tickets_close(&ctx);
            fm_store_close(&ctx.store);
            fm_config_free(&ctx.cfg);
            return 2;
        }
        if (!check_schema(t->input_schema, args, "arguments", &err)) {
            fm_call call = {.ctx = &ctx, .tool = t, .args = args};
            out = t->handler(&call, &err);
            if (out && check_schema(t->output_schema, out, "result", &err)) {
                json_decref(out);
                out = NULL;
            }
        }
    }
    print_result(out, &err);
    json_decref(args);
    fm_tickets_close(&ctx);
    fm_store_close(&ctx.store);
    fm_config_free(&ctx.cfg);
    return 0;
}
