/* mcp-cli's command table: each command is one function. */
#ifndef MCP_CLI_COMMANDS_H
#define MCP_CLI_COMMANDS_H

#include <stdbool.h>

#include "client.h"

typedef struct cli_opts {
    const char *config, *db, *format;
    const char *client; /* clientInfo.name; NULL = mcp-cli (a human) */
    int timeout_ms;
    int argc;          /* arguments after the command name */
    char **argv;
    char **server_argv;
} cli_opts;

typedef struct cli_command {
    const char *name;
    bool needs_server;
    int (*run)(cli_client *c, const cli_opts *o); /* returns an exit code */
    const char *usage; /* arguments after the command name, for --help */
} cli_command;

const cli_command *cli_find_command(const char *name);

/* Parses "key=value" pairs (values as JSON when they parse, else strings)
 * or --args JSON into a new object; NULL with a message on error. */
json_t *cli_parse_args(int argc, char **argv);

/* Calls a tool and prints the result; returns CLI_OK or CLI_TOOL_ERROR. */
int cli_call_and_print(cli_client *c, const cli_opts *o, const char *tool, json_t *args);

int cli_cmd_keygen(cli_client *c, const cli_opts *o);
int cli_cmd_approve(cli_client *c, const cli_opts *o);
int cli_cmd_audit(cli_client *c, const cli_opts *o);
int cli_cmd_replay(cli_client *c, const cli_opts *o);

#endif
