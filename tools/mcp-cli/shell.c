/* mcp-cli shell: one server for a whole session of commands.  On a
 * terminal, lines are read with libedit (editing, history kept across
 * runs, Ctrl-R search, Tab completion from the server's own tool list);
 * otherwise plain lines, so scripts can pipe commands in. */
#include <editline/readline.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "args.h"
#include "commands.h"
#include "format.h"
#include "fleetmcp/fm_util.h"

#define SHELL_MAX_LINE 65536
#define HISTORY_LINES 1000
#define MAX_CANDIDATES 2000

/* The session the completion callback works on: libedit's callbacks take
 * no user pointer. */
static struct {
    cli_client *c;
    json_t *tools; /* tools/list, fetched once (owned) */
    json_t *nodes; /* node names, fetched on first use (owned) */
    json_t *fault_classes;
    char *cand[MAX_CANDIDATES];
    int ncand, next;
} S;

static const char *const shell_words[] = {"help",     "quit", "exit",    "tools", "list",
                                          "describe", "call", "approve", "audit"};

static const json_t *find_tool(const char *name)
{
    size_t i;
    json_t *t;
    json_array_foreach(S.tools, i, t) if (!strcmp(fm_json_str(t, "name", ""), name)) return t;
    return NULL;
}

/* MCP completion/complete for one argument, when the server offers
 * completions: the values it suggests for what was typed (new array), or
 * NULL.  Asked at every Tab, since the answer depends on the prefix. */
static json_t *server_complete(const char *tool, const char *arg, const char *prefix)
{
    if (!json_object_get(json_object_get(S.c->server_info, "capabilities"), "completions"))
        return NULL;
    json_t *res = NULL, *err = NULL, *out = NULL;
    json_t *p = json_pack("{s:{s:s, s:s}, s:{s:s, s:s}}", "ref", "type", "ref/tool", "name", tool,
                          "argument", "name", arg, "value", prefix);
    if (!cli_request(S.c, "completion/complete", p, &res, &err) && res) {
        const json_t *v = json_object_get(json_object_get(res, "completion"), "values");
        if (json_is_array(v) && json_array_size(v)) out = json_incref((json_t *)v);
    }
    json_decref(res);
    json_decref(err);
    return out;
}

/* Until a server completes tool arguments: node names from slurm_nodes,
 * fault classes from the runbooks' (new array of strings, fetched once per
 * shell and kept by the caller). */
static json_t *tool_values(bool nodes)
{
    json_t *out = json_array(), *res = NULL, *err = NULL;
    json_t *p = nodes
                    ? json_pack("{s:s, s:{s:i}}", "name", "slurm_nodes", "arguments", "limit", 1000)
                    : json_pack("{s:s, s:{}}", "name", "runbook_list", "arguments");
    if (cli_request(S.c, "tools/call", p, &res, &err) || !res) {
        json_decref(err);
        return out;
    }
    const json_t *sc = json_object_get(res, "structuredContent");
    size_t i, j;
    json_t *row, *fc;
    json_array_foreach(json_object_get(sc, nodes ? "nodes" : "runbooks"), i, row)
    {
        if (nodes) {
            json_array_append(out, json_object_get(row, "name"));
            continue;
        }
        json_array_foreach(json_object_get(row, "fault_classes"), j, fc)
        {
            size_t k;
            json_t *have;
            bool dup = false;
            json_array_foreach(out, k, have) if (json_equal(have, fc)) dup = true;
            if (!dup) json_array_append(out, fc);
        }
    }
    json_decref(res);
    return out;
}

static void add_candidate(const char *prefix, const char *text, const char *value_of)
{
    if (S.ncand >= MAX_CANDIDATES || strncmp(text, prefix, strlen(prefix))) return;
    if (value_of) {
        /* key=value: the value keeps its shell quoting so the line parses
         * back to what was offered. */
        char *q = cli_quote_word(text);
        size_t n = strlen(value_of) + strlen(q) + 2;
        char *s = malloc(n);
        if (s) snprintf(s, n, "%s=%s", value_of, q);
        free(q);
        if (s) S.cand[S.ncand++] = s;
    } else if (*text && (S.cand[S.ncand] = strdup(text))) {
        S.ncand++;
    }
}

static void values_for(const json_t *tool, const char *key, const char *prefix)
{
    const json_t *p =
        json_object_get(json_object_get(json_object_get(tool, "inputSchema"), "properties"), key);
    const json_t *e = json_object_get(p, "enum");
    const char *type = json_string_value(json_object_get(p, "type"));
    size_t i;
    json_t *v;
    if (!e) e = json_object_get(json_object_get(p, "items"), "enum");
    if (e) {
        json_array_foreach(e, i, v) if (json_is_string(v))
            add_candidate(prefix, json_string_value(v), key);
        return;
    }
    if (type && !strcmp(type, "boolean")) {
        add_candidate(prefix, "true", key);
        add_candidate(prefix, "false", key);
        return;
    }
    json_t *asked = server_complete(fm_json_str(tool, "name", ""), key, prefix);
    json_t **cache = !strcmp(key, "node")          ? &S.nodes
                     : !strcmp(key, "fault_class") ? &S.fault_classes
                                                   : NULL;
    if (!asked && cache && !*cache) *cache = tool_values(cache == &S.nodes);
    json_array_foreach(asked   ? asked
                       : cache ? *cache
                               : NULL,
                       i, v) if (json_is_string(v))
        add_candidate(prefix, json_string_value(v), key);
    json_decref(asked);
}

static void candidates(const char *line)
{
    cli_words w;
    S.ncand = S.next = 0;
    if (cli_words_split(line, true, &w, NULL, 0)) return;
    int idx = w.at_blank ? w.argc : w.argc - 1;
    const char *prefix = w.at_blank || !w.argc ? "" : w.argv[w.argc - 1];
    size_t i;
    json_t *t;
    if (idx == 0 || (idx == 1 && (!strcmp(w.argv[0], "call") || !strcmp(w.argv[0], "describe")))) {
        if (idx == 0)
            for (size_t k = 0; k < sizeof shell_words / sizeof *shell_words; k++)
                add_candidate(prefix, shell_words[k], NULL);
        json_array_foreach(S.tools, i, t) add_candidate(prefix, fm_json_str(t, "name", ""), NULL);
    } else {
        int ti = !strcmp(w.argv[0], "call") ? 1 : 0;
        const json_t *tool = ti < w.argc ? find_tool(w.argv[ti]) : NULL;
        const char *eq = strchr(prefix, '=');
        if (tool && eq) {
            char key[128];
            snprintf(key, sizeof key, "%.*s", (int)(eq - prefix), prefix);
            values_for(tool, key, eq + 1);
        } else if (tool) {
            const char *k;
            json_t *p;
            json_object_foreach(json_object_get(json_object_get(tool, "inputSchema"), "properties"),
                                k, p)
            {
                char kv[160];
                bool given = false;
                for (int a = ti + 1; a < idx; a++)
                    if (!strncmp(w.argv[a], k, strlen(k)) && w.argv[a][strlen(k)] == '=')
                        given = true;
                snprintf(kv, sizeof kv, "%s=", k);
                if (!given) add_candidate(prefix, kv, NULL);
            }
        }
    }
    cli_words_free(&w);
}

static char *generator(const char *text, int state)
{
    (void)text;
    (void)state;
    return S.next < S.ncand ? strdup(S.cand[S.next++]) : NULL;
}

static void clear_candidates(void)
{
    for (int i = 0; i < S.ncand; i++)
        free(S.cand[i]);
    S.ncand = S.next = 0;
}

static char **complete(const char *text, int start, int end)
{
    (void)start;
    rl_attempted_completion_over = 1; /* never fall back to file names */
    char *upto = strndup(rl_line_buffer, (size_t)end);
    if (!upto) return NULL;
    clear_candidates();
    candidates(upto);
    free(upto);
    if (!S.ncand) return NULL;
    /* "key=" waits for its value: no blank after it. */
    bool keys = true;
    for (int i = 0; i < S.ncand; i++)
        keys = keys && S.cand[i][strlen(S.cand[i]) - 1] == '=';
    rl_completion_append_character = keys ? '\0' : ' ';
    char **m = rl_completion_matches(text, generator);
    clear_candidates();
    return m;
}

/* Ctrl-C at the prompt drops the line being typed, like a shell.  The
 * key raises SIGINT; the handler only notes it, the read it interrupted
 * hands libedit a Ctrl-C byte instead, and that byte is bound to
 * drop_line.  (libedit's own signal handling would re-raise SIGINT and
 * end mcp-cli.) */
static volatile sig_atomic_t sigint_seen;
static bool dropped_line;

static void on_sigint(int sig)
{
    (void)sig;
    sigint_seen = 1;
}

static int read_key(FILE *f)
{
    for (;;) {
        unsigned char ch;
        ssize_t n = read(fileno(f), &ch, 1);
        if (n == 1) return ch;
        if (n < 0 && errno == EINTR) {
            if (!sigint_seen) continue;
            sigint_seen = 0;
            return 3;
        }
        return EOF;
    }
}

static int drop_line(int count, int key)
{
    (void)count;
    (void)key;
    dropped_line = true;
    rl_done = 1;
    return 0;
}

/* $XDG_STATE_HOME/fleetmcp/mcp-cli.history (or ~/.local/state/...), with
 * its directory made 0700.  Empty when there is nowhere to keep it. */
static void history_path(char *out, size_t len)
{
    const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    char dir[PATH_MAX - 32];
    out[0] = '\0';
    if (xdg && *xdg)
        snprintf(dir, sizeof dir, "%s/fleetmcp", xdg);
    else if (home && *home)
        snprintf(dir, sizeof dir, "%s/.local/state/fleetmcp", home);
    else
        return;
    /* mkdir -p, each level 0700 when made here. */
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        mkdir(dir, 0700);
        *p = '/';
    }
    if (mkdir(dir, 0700) && errno != EEXIST) return;
    if ((size_t)snprintf(out, len, "%s/mcp-cli.history", dir) >= len) out[0] = '\0';
}

static void history_save(const char *path)
{
    if (!*path) return;
    /* Made 0600 before libedit writes it (its fopen would honour the
     * umask), and kept 0600 if it already existed with other modes. */
    int fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return;
    fchmod(fd, 0600);
    close(fd);
    write_history(path);
}

static void shell_help(void)
{
    puts("commands:\n"
         "  tools | list                  the tools, with autonomy and title\n"
         "  describe TOOL                 arguments, autonomy, what the gate asks for\n"
         "  call TOOL key=value ...       or just: TOOL key=value ...\n"
         "  approve PLAN --key FILE --approver NAME\n"
         "  audit export --session ID\n"
         "  help | quit\n"
         "values: key=\"a b\" or key='a b' (quotes and \\ as in a shell), key=@FILE reads a\n"
         "file, --args '{...}' or --args @FILE gives JSON.  Tab completes; Up and Ctrl-R\n"
         "search the history; Ctrl-C cancels a running call.");
}

/* Runs one line; returns CLI_UNREACHABLE when the server is gone (the
 * shell ends), -1 for quit, else 0. */
static int run_line(cli_client *c, const cli_opts *o, const char *line)
{
    cli_words w;
    char err[256];
    if (cli_words_split(line, false, &w, err, sizeof err)) {
        fprintf(stderr, "mcp-cli: %s\n", err);
        return 0;
    }
    int rc = 0;
    cli_opts sub = *o;
    sub.in_shell = true;
    if (!w.argc) {
        /* blank line */
    } else if (!strcmp(w.argv[0], "quit") || !strcmp(w.argv[0], "exit")) {
        rc = -1;
    } else if (!strcmp(w.argv[0], "help")) {
        shell_help();
    } else {
        const cli_command *cmd = cli_find_command(!strcmp(w.argv[0], "tools") ? "list" : w.argv[0]);
        int skip = 1;
        if (!cmd || !strcmp(cmd->name, "shell") || !strcmp(cmd->name, "replay")) {
            /* "TOOL key=value ..." is "call TOOL key=value ...". */
            cmd = cli_find_command("call");
            skip = 0;
        }
        sub.argc = w.argc - skip;
        sub.argv = w.argv + skip;
        rc = cmd->run(cmd->needs_server ? c : NULL, &sub);
        rc = rc == CLI_UNREACHABLE ? CLI_UNREACHABLE : 0;
    }
    cli_words_free(&w);
    return rc;
}

static int shell_plain(cli_client *c, const cli_opts *o)
{
    char *line = malloc(SHELL_MAX_LINE);
    int rc = CLI_OK;
    if (!line) return CLI_UNREACHABLE;
    for (int n = 0; n < 1000000 && fgets(line, SHELL_MAX_LINE, stdin); n++) {
        line[strcspn(line, "\n")] = '\0';
        int r = run_line(c, o, line);
        if (r == -1) break;
        if (r) {
            rc = r;
            break;
        }
        fflush(stdout);
    }
    free(line);
    return rc;
}

int cli_cmd_shell(cli_client *c, const cli_opts *o)
{
    if (!isatty(STDIN_FILENO)) return shell_plain(c, o);
    int rc = 0;
    S.c = c;
    S.tools = cli_all_tools(c, &rc);
    if (!S.tools) return rc;
    char hist[PATH_MAX];
    history_path(hist, sizeof hist);
    rl_readline_name = "mcp-cli";
    struct sigaction sa = {.sa_handler = on_sigint}, old_sa;
    sigemptyset(&sa.sa_mask); /* no SA_RESTART: the read must return */
    sigaction(SIGINT, &sa, &old_sa);
    rl_catch_signals = 0;
    rl_getc_function = read_key;
    rl_attempted_completion_function = complete;
    rl_initialize();
    /* Words end at blanks only: "key=value" is one word to complete. */
    rl_basic_word_break_characters = " \t";
    rl_completer_word_break_characters = " \t";
    rl_add_defun("mcp-cli-drop-line", drop_line, 3 /* Ctrl-C */);
    stifle_history(HISTORY_LINES);
    if (*hist) read_history(hist);
    const char *prompt =
        cli_color(stdout) ? "\001\033[1m\002fleetmcp>\001\033[0m\002 " : "fleetmcp> ";
    printf("mcp-cli shell: %zu tools; help for commands, Tab to complete, quit to leave\n",
           json_array_size(S.tools));
    rc = CLI_OK;
    for (int n = 0; n < 1000000; n++) {
        dropped_line = false;
        char *line = readline(prompt);
        if (dropped_line) {
            free(line);
            puts("^C");
            continue;
        }
        if (!line) {
            putchar('\n');
            break;
        }
        cli_words w;
        if (*line && !cli_words_split(line, false, &w, NULL, 0)) {
            /* A line that carried a key or a token stays out of the
             * history, in memory and on disk. */
            if (w.argc && !cli_words_secret(w.argc, w.argv)) {
                add_history(line);
                history_save(hist);
            }
            cli_words_free(&w);
        }
        int r = run_line(c, o, line);
        free(line);
        fflush(stdout);
        if (r == -1) break;
        if (r) {
            rc = r;
            break;
        }
    }
    sigaction(SIGINT, &old_sa, NULL);
    clear_candidates();
    json_decref(S.tools);
    json_decref(S.nodes);
    json_decref(S.fault_classes);
    memset(&S, 0, sizeof S);
    return rc;
}
