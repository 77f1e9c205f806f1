#include "commands.h"

#include "args.h"
#include "format.h"
#include "fleetmcp/fm_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool is_json(const cli_opts *o)
{
    return !strcmp(o->format, "json");
}

static void print_json(const json_t *v)
{
    char *s = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY);
    if (s) puts(s);
    free(s);
}

json_t *cli_all_tools(cli_client *c, int *rc)
{
    json_t *tools = json_array();
    char cursor[128] = "";
    for (int page = 0; page < 100; page++) {
        json_t *params = cursor[0] ? json_pack("{s:s}", "cursor", cursor) : NULL;
        json_t *res = NULL, *err = NULL;
        *rc = cli_request(c, "tools/list", params, &res, &err);
        if (*rc || err) {
            if (err)
                cli_print_text(stderr, "mcp-cli: tools/list: ",
                               json_string_value(json_object_get(err, "message")));
            json_decref(err);
            json_decref(tools);
            if (!*rc) *rc = CLI_UNREACHABLE;
            return NULL;
        }
        json_array_extend(tools, json_object_get(res, "tools"));
        const char *next = json_string_value(json_object_get(res, "nextCursor"));
        snprintf(cursor, sizeof cursor, "%s", next ? next : "");
        json_decref(res);
        if (!cursor[0]) break;
    }
    return tools;
}

int cli_cmd_list(cli_client *c, const cli_opts *o)
{
    int rc = 0;
    json_t *tools = cli_all_tools(c, &rc);
    if (!tools) return rc;
    if (is_json(o)) {
        print_json(tools);
    } else {
        size_t i;
        json_t *t;
        json_array_foreach(tools, i, t)
        {
            /* Another server's tools may lack our _meta; ours carry a
             * title only where it says more than the name, so the
             * description (when to use the tool) stands in for it. */
            printf("%-20s %-7s %s\n", fm_json_str(t, "name", "?"),
                   fm_json_str(json_object_get(t, "_meta"), "autonomy", "-"),
                   fm_json_str(t, "title", fm_json_str(t, "description", "")));
        }
        printf("%zu tools\n", json_array_size(tools));
    }
    json_decref(tools);
    return CLI_OK;
}

int cli_cmd_describe(cli_client *c, const cli_opts *o)
{
    if (o->argc != 1) {
        fprintf(stderr, "usage: mcp-cli describe TOOL\n");
        return CLI_USAGE;
    }
    int rc = 0;
    json_t *tools = cli_all_tools(c, &rc);
    if (!tools) return rc;
    size_t i;
    json_t *t, *found = NULL;
    json_array_foreach(tools, i, t) if (!strcmp(json_string_value(json_object_get(t, "name")),
                                                o->argv[0])) found = t;
    if (!found) {
        fprintf(stderr, "mcp-cli: no tool '%s' on this server (mcp-cli list shows them)\n",
                o->argv[0]);
        json_decref(tools);
        return CLI_USAGE;
    }
    if (is_json(o)) {
        print_json(found);
    } else {
        cli_print_tool(stdout, found);
    }
    json_decref(tools);
    return CLI_OK;
}

int cli_call_and_print(cli_client *c, const cli_opts *o, const char *tool, json_t *args)
{
    json_t *res = NULL, *err = NULL;
    c->show_progress = true;
    c->cancellable = true;
    json_t *params = json_pack("{s:s, s:o, s:{s:s}}", "name", tool, "arguments", args, "_meta",
                               "progressToken", "mcp-cli");
    int rc = cli_request(c, "tools/call", params, &res, &err);
    c->cancellable = false;
    if (rc) return rc;
    if (err) {
        cli_print_text(stderr, "mcp-cli: ", json_string_value(json_object_get(err, "message")));
        json_decref(err);
        return CLI_USAGE;
    }
    bool is_error = json_is_true(json_object_get(res, "isError"));
    if (is_json(o)) {
        print_json(res);
    } else if (is_error || !json_object_get(res, "structuredContent")) {
        size_t i;
        json_t *part;
        json_array_foreach(json_object_get(res, "content"), i, part)
        {
            const char *text = json_string_value(json_object_get(part, "text"));
            if (is_error)
                cli_print_error_text(stderr, text);
            else if (text)
                cli_print_text(stdout, "", text);
        }
    } else {
        cli_print_structured(stdout, json_object_get(res, "structuredContent"));
    }
    json_decref(res);
    return is_error ? CLI_TOOL_ERROR : CLI_OK;
}

int cli_cmd_call(cli_client *c, const cli_opts *o)
{
    if (o->argc < 1) {
        fprintf(stderr, "usage: mcp-cli call TOOL [--args JSON | key=value ...]\n");
        return CLI_USAGE;
    }
    cli_args_src src = {.in = stdin, .stdin_ok = !o->in_shell};
    char err[256];
    json_t *args = cli_args_parse(o->argc - 1, o->argv + 1, &src, err, sizeof err);
    if (!args) {
        fprintf(stderr, "mcp-cli: %s\n", err);
        return CLI_USAGE;
    }
    return cli_call_and_print(c, o, o->argv[0], args);
}

static const cli_command commands[] = {
    {"keygen", false, cli_cmd_keygen, "--out FILE [--approver NAME]"},
    {"approve", true, cli_cmd_approve, "PLAN --key FILE --approver NAME [--ttl 15m] [--yes]"},
    {"audit", true, cli_cmd_audit, "export --session ID [--out FILE]"},
    {"replay", true, cli_cmd_replay, "FILE [--server CMD]"},
    {"list", true, cli_cmd_list, ""},
    {"describe", true, cli_cmd_describe, "TOOL"},
    {"call", true, cli_cmd_call, "TOOL [key=value | key=@FILE | --args JSON|@FILE|- ...]"},
    {"shell", true, cli_cmd_shell, ""},
};

const cli_command *cli_find_command(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(commands[i].name, name)) return &commands[i];
    return NULL;
}
