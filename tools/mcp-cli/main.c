/* mcp-cli: the operators' MCP client.  It speaks MCP to the same server
 * agents use, so a human's calls go through the same gate and audit. */
#include <getopt.h>
#include <stdbool.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "client.h"
#include "commands.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mcp-cli [options] COMMAND [ARGS]\n"
            "\n"
            "commands:\n"
            "  list                       tools with autonomy and title\n"
            "  describe TOOL              a tool's description, schemas and annotations\n"
            "  call TOOL [key=value | key=@FILE | --args JSON|@FILE|- ...]\n"
            "                             call a tool (values parse as JSON, else strings;\n"
            "                             quote values with blanks: key=\"a b\")\n"
            "  shell                      interactive, with line editing, history and Tab\n"
            "                             completion: tools, call, describe, approve, help, quit\n"
            "  keygen --out FILE [--approver NAME]\n"
            "                             make an Ed25519 approver key; prints the config line\n"
            "  approve PLAN --key FILE --approver NAME [--ttl 15m] [--yes]\n"
            "                             show a plan, confirm, sign it, record the approval\n"
            "  audit export --session ID [--out FILE]\n"
            "                             a session's tool calls as JSONL, for replay\n"
            "  replay FILE                re-issue recorded calls (shadow mode unless\n"
            "                             FLEETMCP_MODE says otherwise) and report drift\n"
            "\n"
            "options:\n"
            "  --server CMD     server command line (default: fleetmcp next to mcp-cli)\n"
            "  --config FILE    passed to the default server\n"
            "  --db FILE        passed to the default server\n"
            "  --format F       text (default) or json\n"
            "  --timeout SEC    per request (default 120)\n"
            "  --url URL        a remote server over Streamable HTTP (http://HOST:PORT/mcp)\n"
            "                   instead of starting one\n"
            "  --token-file F   with --url: a file holding the bearer token\n"
            "  --client NAME    clientInfo name to send (default mcp-cli, audited as a human;\n"
            "                   any other name is audited as an agent)\n"
            "\n"
            "exit codes: 0 ok, 1 usage, 4 server unreachable or died, 5 tool returned"
            " isError, 6 replay drifted,\n"
            "            130 a call cancelled with Ctrl-C\n");
}

/* The default server: build/fleetmcp beside build/mcp-cli, else PATH. */
static char **default_server(const char *argv0, const char *config, const char *db)
{
    char self[PATH_MAX], path[PATH_MAX + 16];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash) *slash = '\0';
        snprintf(path, sizeof path, "%s/fleetmcp", self);
    }
    if (n <= 0 || access(path, X_OK)) snprintf(path, sizeof path, "fleetmcp");
    (void)argv0;
    char **argv = calloc(6, sizeof *argv);
    int k = 0;
    argv[k++] = strdup(path);
    if (config) {
        argv[k++] = strdup("--config");
        argv[k++] = strdup(config);
    }
    if (db) {
        argv[k++] = strdup("--db");
        argv[k++] = strdup(db);
    }
    return argv;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"server", required_argument, 0, 's'},  {"config", required_argument, 0, 'c'},
        {"db", required_argument, 0, 'd'},      {"format", required_argument, 0, 'f'},
        {"timeout", required_argument, 0, 't'}, {"client", required_argument, 0, 'C'},
        {"url", required_argument, 0, 'u'},     {"token-file", required_argument, 0, 'T'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    cli_opts o = {.format = "text", .timeout_ms = 120000};
    const char *server = getenv("MCP_CLI_SERVER");
    const char *url = NULL, *token_file = NULL;
    bool server_opt = false;
    int c;
    while ((c = getopt_long(argc, argv, "+s:c:d:f:t:C:u:T:h", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            server = optarg, server_opt = true;
            break;
        case 'u':
            url = optarg;
            break;
        case 'T':
            token_file = optarg;
            break;
        case 'c':
            o.config = optarg;
            break;
        case 'd':
            o.db = optarg;
            break;
        case 'f':
            if (strcmp(optarg, "text") && strcmp(optarg, "json")) {
                fprintf(stderr, "mcp-cli: --format is text or json\n");
                return CLI_USAGE;
            }
            o.format = optarg;
            break;
        case 't':
            o.timeout_ms = atoi(optarg) * 1000;
            break;
        case 'C':
            o.client = optarg;
            break;
        case 'h':
            usage(stdout);
            return CLI_OK;
        default:
            usage(stderr);
            return CLI_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return CLI_USAGE;
    }
    if (o.timeout_ms <= 0) o.timeout_ms = 120000;
    const cli_command *cmd = cli_find_command(argv[optind]);
    if (!cmd) {
        fprintf(stderr, "mcp-cli: unknown command '%s'\n", argv[optind]);
        usage(stderr);
        return CLI_USAGE;
    }
    /* Replay re-issues recorded calls: never let it mutate the fleet unless
     * the operator says so explicitly. */
    if (!strcmp(cmd->name, "replay") && !getenv("FLEETMCP_MODE"))
        setenv("FLEETMCP_MODE", "shadow", 1);
    o.argc = argc - optind - 1;
    o.argv = argv + optind + 1;
    /* `mcp-cli COMMAND --help` answers without starting a server (and
     * `call --help` must not call a tool named --help). */
    for (int i = 0; i < o.argc; i++) {
        if (!strcmp(o.argv[i], "--help") || !strcmp(o.argv[i], "-h")) {
            printf("usage: mcp-cli [options] %s%s%s\n", cmd->name, *cmd->usage ? " " : "",
                   cmd->usage);
            return CLI_OK;
        }
    }
    if (!cmd->needs_server) return cmd->run(NULL, &o);
    if (url && server_opt) {
        fprintf(stderr, "mcp-cli: --url and --server name two different servers: give one\n");
        return CLI_USAGE;
    }
    if (token_file && !url) {
        fprintf(stderr, "mcp-cli: --token-file goes with --url (a local server needs no token)\n");
        return CLI_USAGE;
    }
    if (url) {
        cli_client cl;
        int rc = cli_connect_url(&cl, url, token_file, o.timeout_ms, o.client);
        if (rc == 0) rc = cmd->run(&cl, &o);
        cli_close(&cl);
        return rc;
    }
    /* The documented form `replay FILE --server CMD`: --server may follow FILE. */
    if (!strcmp(cmd->name, "replay") && o.argc == 3 && !strcmp(o.argv[1], "--server")) {
        server = o.argv[2];
        o.argc = 1;
    }
    if (server) {
        /* The same quoting rules as the shell's lines and call's words. */
        cli_words w;
        char err[160];
        if (cli_words_split(server, false, &w, err, sizeof err)) {
            fprintf(stderr, "mcp-cli: --server: %s\n", err);
            return CLI_USAGE;
        }
        o.server_argv = w.argv; /* NULL-terminated; cli_argv_free frees it */
    } else {
        o.server_argv = default_server(argv[0], o.config, o.db);
    }
    if (!o.server_argv || !o.server_argv[0]) {
        fprintf(stderr, "mcp-cli: --server is empty\n");
        cli_argv_free(o.server_argv);
        return CLI_USAGE;
    }
    cli_client cl;
    int rc = cli_connect(&cl, o.server_argv, o.timeout_ms, o.client);
    if (rc == 0) rc = cmd->run(&cl, &o);
    cli_close(&cl);
    cli_argv_free(o.server_argv);
    return rc;
}
