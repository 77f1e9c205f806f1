/* mcp-cli's MCP client: spawns the server with pipes (argv, never a
 * shell) and speaks newline-delimited JSON-RPC to it. */
#ifndef MCP_CLI_CLIENT_H
#define MCP_CLI_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

#include "fleetmcp/fm_transport.h"

enum {
    CLI_OK = 0,
    CLI_USAGE = 1,
    CLI_UNREACHABLE = 4,
    CLI_TOOL_ERROR = 5,
    CLI_DRIFT = 6,
    CLI_CANCELLED = 130 /* Ctrl-C, as a shell reports SIGINT */
};

typedef struct cli_client {
    pid_t pid;
    fm_transport tx; /* reads the server's stdout, writes its stdin */
    long long next_id;
    int timeout_ms;
    bool show_progress;
    bool progress_shown; /* a progress line is on the terminal */
    bool cancellable;    /* Ctrl-C cancels the request in flight */
    json_t *server_info; /* initialize result (owned) */
    /* --url: Streamable HTTP instead of a child process. */
    const char *url;
    char *token;       /* bearer token from --token-file (owned), at most CLI_MAX_TOKEN bytes */
    char session[256]; /* Mcp-Session-Id, when the server gives one */
    char protocol[40]; /* the negotiated protocol version */
} cli_client;

/* The longest bearer token --token-file takes: the server's own bound
 * (IdP JWTs are 1-2 KiB), and what the Authorization header is sized for. */
#define CLI_MAX_TOKEN 8190

/* Starts argv[0..] and runs initialize as client_name (NULL: "mcp-cli",
 * which the server attributes to a human).  Returns 0 or CLI_UNREACHABLE
 * with a message on stderr. */
int cli_connect(cli_client *c, char *const argv[], int timeout_ms, const char *client_name);
/* The same over Streamable HTTP: url is http:// or https://, token_file
 * (NULL: none) holds a bearer token.  Returns 0, CLI_USAGE (bad url or
 * token file) or CLI_UNREACHABLE, with a message on stderr. */
int cli_connect_url(cli_client *c, const char *url, const char *token_file, int timeout_ms,
                    const char *client_name);
void cli_close(cli_client *c);

/* Sends a request and waits for its response; progress and log
 * notifications are printed to stderr meanwhile (one line rewritten in
 * place on a terminal).  On success *result is the result (new).  On a
 * JSON-RPC error *error is the error (new) and 0 is returned.  Returns
 * CLI_UNREACHABLE if the server died or timed out, and, when c->cancellable,
 * CLI_CANCELLED after Ctrl-C sent notifications/cancelled and the server
 * confirmed it is done with the call. */
int cli_request(cli_client *c, const char *method, json_t *params, json_t **result, json_t **error);

/* Shows a progress or log notification from the server (stderr). */
void cli_show_notification(cli_client *c, const json_t *msg);
/* True once Ctrl-C was pressed during a cancellable request. */
bool cli_interrupt_pending(void);

/* http.c: sends msg (borrowed; NULL for a bodiless verb such as DELETE)
 * with verb and waits for the response to want_id (0: none expected),
 * showing notifications that stream in meanwhile.  Returns 0 with *reply
 * the response message (new, NULL when want_id is 0), CLI_CANCELLED when
 * Ctrl-C ended the wait, or CLI_UNREACHABLE with a message on stderr. */
int cli_http_exchange(cli_client *c, const char *verb, const json_t *msg, long long want_id,
                      json_t **reply);

/* Frees a NULL-terminated malloc'd argv (a cli_words' argv). */
void cli_argv_free(char **argv);

#endif
