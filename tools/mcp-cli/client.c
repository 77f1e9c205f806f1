#include "client.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fleetmcp/fm_jsonrpc.h"
#include "fleetmcp/fm_mcp.h"
#include "fleetmcp/fm_util.h"
#include "format.h"

#define CLI_MAX_MESSAGE (64u << 20)
#define CLI_PROTOCOL "2025-11-25"

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void cli_argv_free(char **argv)
{
    for (size_t i = 0; argv && argv[i]; i++)
        free(argv[i]);
    free(argv);
}

/* Ctrl-C during a request: the first one asks the server to cancel, the
 * second stops waiting. */
static volatile sig_atomic_t interrupts;

static void on_sigint(int sig)
{
    (void)sig;
    interrupts++;
}

static void progress_clear(cli_client *c)
{
    if (c->progress_shown) fputs("\r\033[K", stderr);
    c->progress_shown = false;
}

void cli_show_notification(cli_client *c, const json_t *msg)
{
    const char *m = json_string_value(json_object_get(msg, "method"));
    const json_t *p = json_object_get(msg, "params");
    if (!m || !c->show_progress) return;
    bool tty = isatty(STDERR_FILENO);
    if (!strcmp(m, "notifications/progress")) {
        double prog = json_number_value(json_object_get(p, "progress"));
        double total = json_number_value(json_object_get(p, "total"));
        char text[160], line[200];
        /* The message is the server's text: clip it and blank control
         * bytes so it cannot move the cursor. */
        const json_t *mt = json_object_get(p, "message");
        text[0] = '\0';
        if (mt) cli_cell(mt, text, tty ? 100 : sizeof text - 1);
        if (total > 0)
            snprintf(line, sizeof line, "[%3.0f%%] %s", 100.0 * prog / total, text);
        else
            snprintf(line, sizeof line, "[%g] %s", prog, text);
        if (tty) {
            /* One line, rewritten in place. */
            fprintf(stderr, "\r\033[K  %s", line);
            c->progress_shown = true;
        } else {
            fprintf(stderr, "  %s\n", line);
        }
    } else if (!strcmp(m, "notifications/message")) {
        char text[400], level[16] = "log";
        cli_cell(json_object_get(p, "data"), text, sizeof text - 1);
        if (json_is_string(json_object_get(p, "level")))
            cli_cell(json_object_get(p, "level"), level, sizeof level - 1);
        progress_clear(c);
        fprintf(stderr, "  %s: %s\n", level, text);
    }
    fflush(stderr);
}

bool cli_interrupt_pending(void)
{
    return interrupts > 0;
}

/* Sends a notification or response (msg taken); 0 or -1. */
static int send_msg(cli_client *c, json_t *msg)
{
    int rc;
    if (c->url) {
        json_t *none = NULL;
        rc = cli_http_exchange(c, "POST", msg, 0, &none) ? -1 : 0;
    } else {
        rc = fm_tx_send(&c->tx, msg);
    }
    json_decref(msg);
    return rc;
}

static json_t *cancel_msg(long long id)
{
    return json_pack("{s:s, s:s, s:{s:I, s:s}}", "jsonrpc", "2.0", "method",
                     "notifications/cancelled", "params", "requestId", (json_int_t)id, "reason",
                     "the operator pressed Ctrl-C");
}

/* The response's result or error, each new. */
static void take_reply(const json_t *msg, json_t **result, json_t **error)
{
    json_t *e = json_object_get(msg, "error");
    if (e) {
        if (error) *error = json_incref(e);
    } else {
        *result = json_incref(json_object_get(msg, "result"));
    }
}

/* initialize, then notifications/initialized, on either transport. */
static int handshake(cli_client *c, const char *client_name)
{
    json_t *res = NULL, *err = NULL;
    json_t *params = json_pack("{s:s, s:{}, s:{s:s, s:s}}", "protocolVersion", CLI_PROTOCOL,
                               "capabilities", "clientInfo", "name",
                               client_name ? client_name : "mcp-cli", "version", FM_SERVER_VERSION);
    int rc = cli_request(c, "initialize", params, &res, &err);
    if (rc || err) {
        if (err) {
            cli_print_text(stderr, "mcp-cli: initialize refused: ",
                           json_string_value(json_object_get(err, "message")));
            json_decref(err);
        }
        return CLI_UNREACHABLE;
    }
    c->server_info = res;
    /* Sent back in an HTTP header: visible ASCII only. */
    const char *pv = fm_json_str(res, "protocolVersion", CLI_PROTOCOL);
    bool plain = strlen(pv) < sizeof c->protocol;
    for (const char *q = pv; plain && *q; q++)
        plain = *q > 0x20 && *q < 0x7f;
    snprintf(c->protocol, sizeof c->protocol, "%s", plain ? pv : CLI_PROTOCOL);
    json_t *n = fm_rpc_notification("notifications/initialized", NULL);
    rc = send_msg(c, n);
    return rc ? CLI_UNREACHABLE : 0;
}

int cli_connect(cli_client *c, char *const argv[], int timeout_ms, const char *client_name)
{
    memset(c, 0, sizeof *c);
    c->timeout_ms = timeout_ms;
    c->next_id = 1;
    int to_srv[2], from_srv[2];
    if (pipe(to_srv) || pipe(from_srv)) {
        fprintf(stderr, "mcp-cli: pipe: %s\n", strerror(errno));
        return CLI_UNREACHABLE;
    }
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "mcp-cli: fork: %s\n", strerror(errno));
        return CLI_UNREACHABLE;
    }
    if (pid == 0) {
        /* Its own process group: Ctrl-C at the terminal goes to mcp-cli,
         * which turns it into notifications/cancelled, not to the server. */
        setpgid(0, 0);
        dup2(to_srv[0], STDIN_FILENO);
        dup2(from_srv[1], STDOUT_FILENO);
        close(to_srv[0]);
        close(to_srv[1]);
        close(from_srv[0]);
        close(from_srv[1]);
        execvp(argv[0], argv);
        fprintf(stderr, "mcp-cli: cannot start server '%s': %s (use --server CMD)\n", argv[0],
                strerror(errno));
        _exit(127);
    }
    close(to_srv[0]);
    close(from_srv[1]);
    c->pid = pid;
    signal(SIGPIPE, SIG_IGN);
    if (fm_tx_init(&c->tx, from_srv[0], to_srv[1], CLI_MAX_MESSAGE)) return CLI_UNREACHABLE;
    return handshake(c, client_name);
}

/* A token file's one line: visible ASCII only, since it goes into an
 * Authorization header (no CR/LF injection). */
static char *read_token(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "mcp-cli: --token-file %s: %s\n", path, strerror(errno));
        return NULL;
    }
    char buf[CLI_MAX_TOKEN + 2]; /* the token, a line end, NUL */
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    bool more = fgetc(f) != EOF;
    fclose(f);
    buf[n] = '\0';
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    bool ok = n > 0 && n <= CLI_MAX_TOKEN && !more;
    for (size_t i = 0; ok && i < n; i++)
        ok = buf[i] > 0x20 && buf[i] < 0x7f;
    if (!ok) {
        fprintf(stderr,
                "mcp-cli: --token-file %s must hold one token of visible ASCII, at most"
                " %zu bytes\n",
                path, (size_t)CLI_MAX_TOKEN);
        return NULL;
    }
    return strdup(buf);
}

int cli_connect_url(cli_client *c, const char *url, const char *token_file, int timeout_ms,
                    const char *client_name)
{
    memset(c, 0, sizeof *c);
    c->timeout_ms = timeout_ms;
    c->next_id = 1;
    c->tx.in_fd = c->tx.out_fd = -1;
    if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8)) {
        fprintf(stderr, "mcp-cli: --url must start with http:// or https://\n");
        return CLI_USAGE;
    }
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
            fprintf(stderr, "mcp-cli: --url has a blank or control character\n");
            return CLI_USAGE;
        }
    c->url = url;
    if (token_file && !(c->token = read_token(token_file))) return CLI_USAGE;
    return handshake(c, client_name);
}

void cli_close(cli_client *c)
{
    if (c->url && c->session[0]) {
        /* Ends the session on the server; a server may refuse (405). */
        json_t *none = NULL;
        fflush(stderr);
        cli_http_exchange(c, "DELETE", NULL, 0, &none);
    }
    free(c->token);
    c->token = NULL;
    if (c->tx.out_fd > 0) close(c->tx.out_fd); /* EOF: the server exits 0 */
    if (c->tx.in_fd > 0) close(c->tx.in_fd);
    c->tx.in_fd = c->tx.out_fd = -1;
    if (c->pid > 0) {
        int status;
        /* Bounded wait, then SIGTERM, then SIGKILL. */
        for (int i = 0; i < 200 && waitpid(c->pid, &status, WNOHANG) == 0; i++)
            usleep(10000);
        if (waitpid(c->pid, &status, WNOHANG) == 0) {
            kill(c->pid, SIGTERM);
            usleep(100000);
            if (waitpid(c->pid, &status, WNOHANG) == 0) {
                kill(c->pid, SIGKILL);
                waitpid(c->pid, &status, 0);
            }
        }
    }
    c->pid = 0;
    json_decref(c->server_info);
    c->server_info = NULL;
    fm_tx_free(&c->tx);
}

/* Over HTTP the request and its answer are one POST; Ctrl-C ends it and
 * the cancel is a second POST, which the server acknowledges. */
static int request_http(cli_client *c, const char *method, const json_t *req, long long id,
                        json_t **result, json_t **error)
{
    json_t *reply = NULL;
    int rc = cli_http_exchange(c, "POST", req, id, &reply);
    if (rc == CLI_CANCELLED) {
        progress_clear(c);
        fprintf(stderr, "mcp-cli: cancelling %s\n", method);
        if (send_msg(c, cancel_msg(id))) return CLI_UNREACHABLE;
        fprintf(stderr, "mcp-cli: %s cancelled\n", method);
        return CLI_CANCELLED;
    }
    if (!rc) take_reply(reply, result, error);
    json_decref(reply);
    return rc;
}

static int request_stdio(cli_client *c, const char *method, long long id, json_t **result,
                         json_t **error)
{
    long long probe_id = 0;
    long long deadline = now_ms() + c->timeout_ms;
    int rc = -1;
    while (rc < 0) {
        if (interrupts && !probe_id) {
            /* MCP: the server answers nothing for a cancelled request.  A
             * stdio server serves one call at a time (fleetmcp answers only
             * pings while busy), so a tools/list sent after the cancel is
             * answered once the server is done with the call. */
            progress_clear(c);
            fprintf(stderr,
                    "mcp-cli: cancelling %s; waiting for the server to stop it"
                    " (Ctrl-C again to stop waiting)\n",
                    method);
            probe_id = c->next_id++;
            if (send_msg(c, cancel_msg(id)) ||
                send_msg(c, json_pack("{s:s, s:I, s:s}", "jsonrpc", "2.0", "id",
                                      (json_int_t)probe_id, "method", "tools/list"))) {
                fprintf(stderr, "mcp-cli: the server is gone (write failed)\n");
                rc = CLI_UNREACHABLE;
                break;
            }
            deadline = now_ms() + c->timeout_ms;
        }
        if (interrupts > 1) {
            fprintf(stderr, "mcp-cli: stopped waiting; the server may still be stopping %s\n",
                    method);
            rc = CLI_UNREACHABLE;
            break;
        }
        const char *line;
        size_t len;
        fm_rx_status st = fm_tx_next(&c->tx, false, &line, &len);
        if (st == FM_RX_AGAIN) {
            long long left = deadline - now_ms();
            if (left <= 0) {
                progress_clear(c);
                fprintf(stderr, "mcp-cli: no answer to %s within %d ms (--timeout)\n", method,
                        c->timeout_ms);
                rc = CLI_UNREACHABLE;
                break;
            }
            struct pollfd p = {.fd = c->tx.in_fd, .events = POLLIN};
            poll(&p, 1, (int)(left > 1000 ? 1000 : left));
            continue;
        }
        if (st == FM_RX_EOF || st == FM_RX_ERROR) {
            progress_clear(c);
            fprintf(stderr, "mcp-cli: the server exited before answering %s\n", method);
            rc = CLI_UNREACHABLE;
            break;
        }
        if (st != FM_RX_LINE) continue;
        json_t *msg = json_loadb(line, len, 0, NULL);
        if (!msg) continue;
        const json_t *mid = json_object_get(msg, "id");
        if (json_object_get(msg, "method")) {
            cli_show_notification(c, msg);
        } else if (json_is_integer(mid) && json_integer_value(mid) == id) {
            /* Answered before the cancel arrived: the call is done. */
            take_reply(msg, result, error);
            rc = 0;
        } else if (probe_id && json_is_integer(mid) && json_integer_value(mid) == probe_id) {
            fprintf(stderr, "mcp-cli: %s cancelled\n", method);
            rc = CLI_CANCELLED;
        }
        json_decref(msg);
    }
    return rc;
}

int cli_request(cli_client *c, const char *method, json_t *params, json_t **result, json_t **error)
{
    *result = NULL;
    if (error) *error = NULL;
    long long id = c->next_id++;
    json_t *req = json_pack("{s:s, s:I, s:s, s:o}", "jsonrpc", "2.0", "id", (json_int_t)id,
                            "method", method, "params", params ? params : json_object());
    struct sigaction sa = {.sa_handler = on_sigint}, old;
    if (c->cancellable) {
        /* No SA_RESTART: a blocked poll() must return to see the key. */
        interrupts = 0;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, &old);
    }
    int rc;
    if (c->url) {
        rc = request_http(c, method, req, id, result, error);
    } else if (fm_tx_send(&c->tx, req)) {
        fprintf(stderr, "mcp-cli: the server is gone (write failed)\n");
        rc = CLI_UNREACHABLE;
    } else {
        rc = request_stdio(c, method, id, result, error);
    }
    json_decref(req);
    if (c->cancellable) sigaction(SIGINT, &old, NULL);
    progress_clear(c);
    return rc;
}
