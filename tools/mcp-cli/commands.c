#include "commands.h"

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

/* Fetches every page of tools/list into one array (new), or NULL. */
static json_t *all_tools(cli_client *c, int *rc)
{
    json_t *tools = json_array();
    char cursor[128] = "";
    for (int page = 0; page < 100; page++) {
        json_t *params = cursor[0] ? json_pack("{s:s}", "cursor", cursor) : NULL;
        json_t *res = NULL, *err = NULL;
        *rc = cli_request(c, "tools/list", params, &res, &err);
        if (*rc || err) {
            if (err) fprintf(stderr, "mcp-cli: tools/list: %s\n",
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

static int cmd_list(cli_client *c, const cli_opts *o)
{
    int rc = 0;
    json_t *tools = all_tools(c, &rc);
    if (!tools) return rc;
    if (is_json(o)) {
        print_json(tools);
    } else {
        size_t i;
        json_t *t;
        json_array_foreach(tools, i, t)
        {
            printf("%-20s %-7s %s\n", json_string_value(json_object_get(t, "name")),
                   json_string_value(json_object_get(json_object_get(t, "_meta"), "autonomy")),
                   json_string_value(json_object_get(t, "title")));
        }
        printf("%zu tools\n", json_array_size(tools));
    }
    json_decref(tools);
    return CLI_OK;
}

static int cmd_describe(cli_client *c, const cli_opts *o)
{
    if (o->argc != 1) {
        fprintf(stderr, "usage: mcp-cli describe TOOL\n");
        return CLI_USAGE;
    }
    int rc = 0;
    json_t *tools = all_tools(c, &rc);
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
        printf("%s: %s\n  %s\n  autonomy: %s\n  annotations: ",
               json_string_value(json_object_get(found, "name")),
               json_string_value(json_object_get(found, "title")),
               json_string_value(json_object_get(found, "description")),
               json_string_value(json_object_get(json_object_get(found, "_meta"), "autonomy")));
        char *a = json_dumps(json_object_get(found, "annotations"), JSON_COMPACT);
        printf("%s\n  input schema:\n", a ? a : "{}");
        free(a);
        print_json(json_object_get(found, "inputSchema"));
    }
    json_decref(tools);
    return CLI_OK;
}

json_t *cli_parse_args(int argc, char **argv)
{
    json_t *args = json_object();
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--args")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "mcp-cli: --args needs a JSON object\n");
                goto fail;
            }
            json_error_t je;
            json_t *obj = json_loads(argv[++i], 0, &je);
            if (!json_is_object(obj)) {
                fprintf(stderr, "mcp-cli: --args is not a JSON object: %s\n",
                        obj ? "wrong type" : je.text);
                json_decref(obj);
                goto fail;
            }
            json_object_update(args, obj);
            json_decref(obj);
            continue;
        }
        char *eq = strchr(argv[i], '=');
        if (!eq || eq == argv[i]) {
            fprintf(stderr, "mcp-cli: '%s' is not key=value (or use --args JSON)\n", argv[i]);
            goto fail;
        }
        char *key = strndup(argv[i], (size_t)(eq - argv[i]));
        json_t *v = json_loads(eq + 1, JSON_DECODE_ANY, NULL);
        json_object_set_new(args, key, v ? v : json_string(eq + 1));
        free(key);
    }
    return args;
fail:
    json_decref(args);
    return NULL;
}

int cli_call_and_print(cli_client *c, const cli_opts *o, const char *tool, json_t *args)
{
    json_t *res = NULL, *err = NULL;
    c->show_progress = true;
    json_t *params = json_pack("{s:s, s:o, s:{s:s}}", "name", tool, "arguments", args, "_meta",
                               "progressToken", "mcp-cli");
    int rc = cli_request(c, "tools/call", params, &res, &err);
    if (rc) return rc;
    if (err) {
        fprintf(stderr, "mcp-cli: %s\n", json_string_value(json_object_get(err, "message")));
        json_decref(err);
        return CLI_USAGE;
    }
    bool is_error = json_is_true(json_object_get(res, "isError"));
    if (is_json(o)) {
        print_json(res);
    } else if (is_error) {
        size_t i;
        json_t *part;
        json_array_foreach(json_object_get(res, "content"), i, part)
            fprintf(stderr, "%s\n", json_string_value(json_object_get(part, "text")));
    } else {
        print_json(json_object_get(res, "structuredContent"));
    }
    json_decref(res);
    return is_error ? CLI_TOOL_ERROR : CLI_OK;
}

static int cmd_call(cli_client *c, const cli_opts *o)
{
    if (o->argc < 1) {
        fprintf(stderr, "usage: mcp-cli call TOOL [--args JSON | key=value ...]\n");
        return CLI_USAGE;
    }
    json_t *args = cli_parse_args(o->argc - 1, o->argv + 1);
    if (!args) return CLI_USAGE;
    return cli_call_and_print(c, o, o->argv[0], args);
}

static int cmd_shell(cli_client *c, const cli_opts *o)
{
    char line[65536];
    bool tty = isatty(0);
    for (int n = 0; n < 1000000; n++) {
        if (tty) fputs("fleetmcp> ", stdout), fflush(stdout);
        if (!fgets(line, sizeof line, stdin)) break;
        line[strcspn(line, "\n")] = '\0';
        char *argv[64];
        int argc = 0;
        for (char *tok = strtok(line, " \t"); tok && argc < 63; tok = strtok(NULL, " \t"))
            argv[argc++] = tok;
        if (!argc) continue;
        if (!strcmp(argv[0], "quit") || !strcmp(argv[0], "exit")) break;
        cli_opts sub = *o;
        sub.argc = argc - 1;
        sub.argv = argv + 1;
        if (!strcmp(argv[0], "help")) {
            puts("tools | describe TOOL | call TOOL key=value... | TOOL key=value... | quit");
        } else if (!strcmp(argv[0], "tools") || !strcmp(argv[0], "list")) {
            if (cmd_list(c, &sub) == CLI_UNREACHABLE) return CLI_UNREACHABLE;
        } else if (!strcmp(argv[0], "describe")) {
            if (cmd_describe(c, &sub) == CLI_UNREACHABLE) return CLI_UNREACHABLE;
        } else {
            /* "call TOOL args" or just "TOOL args" */
            int skip = !strcmp(argv[0], "call") ? 1 : 0;
            if (argc <= skip) {
                puts("call needs a tool name");
                continue;
            }
            json_t *args = cli_parse_args(argc - skip - 1, argv + skip + 1);
            if (args && cli_call_and_print(c, &sub, argv[skip], args) == CLI_UNREACHABLE)
                return CLI_UNREACHABLE;
        }
    }
    return CLI_OK;
}

static const cli_command commands[] = {
    {"keygen", false, cli_cmd_keygen, "--out FILE [--approver NAME]"},
    {"approve", true, cli_cmd_approve, "PLAN --key FILE --approver NAME [--ttl 15m] [--yes]"},
    {"audit", true, cli_cmd_audit, "export --session ID [--out FILE]"},
    {"replay", true, cli_cmd_replay, "FILE [--server CMD]"},
    {"list", true, cmd_list, ""},
    {"describe", true, cmd_describe, "TOOL"},
    {"call", true, cmd_call, "TOOL [--args JSON | key=value ...]"},
    {"shell", true, cmd_shell, ""},
};

const cli_command *cli_find_command(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(commands[i].name, name)) return &commands[i];
    return NULL;
}
