/* mcp-cli's command table: each command is one function. */
#ifndef MCP_CLI_COMMANDS_H
#define MCP_CLI_COMMANDS_H

#include <stdbool.h>

#include "client.h"

typedef struct cli_opts {
    const char *config, *db, *format;
    const char *client; /* clientInfo.name; NULL = mcp-cli (a human) */
    int timeout_ms;
    bool in_shell; /* standard input is the operator's typing */
    int argc;      /* arguments after the command name */
    char **argv;
    char **server_argv;
} cli_opts;

typedef struct cli_command {
    const char *name;
    bool needs_server;
    int (*run)(cli_client *c, const cli_opts *o); /* returns an exit code */
    const char *usage;                            /* arguments after the command name, for --help */
} cli_command;

const cli_command *cli_find_command(const char *name);

/* Every page of tools/list in one array (new), or NULL with *rc set and
 * a message on stderr. */
json_t *cli_all_tools(cli_client *c, int *rc);

/* Calls a tool (args stolen) and prints the result; returns CLI_OK,
 * CLI_TOOL_ERROR, CLI_CANCELLED (Ctrl-C) or CLI_UNREACHABLE. */
int cli_call_and_print(cli_client *c, const cli_opts *o, const char *tool, json_t *args);

int cli_cmd_list(cli_client *c, const cli_opts *o);
int cli_cmd_describe(cli_client *c, const cli_opts *o);
int cli_cmd_call(cli_client *c, const cli_opts *o);
int cli_cmd_shell(cli_client *c, const cli_opts *o); /* shell.c */
int cli_cmd_keygen(cli_client *c, const cli_opts *o);
int cli_cmd_approve(cli_client *c, const cli_opts *o);
int cli_cmd_audit(cli_client *c, const cli_opts *o);
int cli_cmd_replay(cli_client *c, const cli_opts *o);

#endif
