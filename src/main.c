/* fleetmcp: the MCP server (stdio) and its operator subcommands. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fleetmcp/fm_alert.h"
#include "fleetmcp/fm_auth.h"
#include "fleetmcp/fm_audit.h"
#include "fleetmcp/fm_db.h"
#include "fleetmcp/fm_store_migrate.h"
#include "fleetmcp/fm_fleet.h"
#include "fleetmcp/fm_httpd.h"
#include "fleetmcp/fm_mcp.h"
#include "fleetmcp/fm_registry.h"
#include "fleetmcp/fm_runbook.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_transport.h"
#include "fleetmcp/fm_util.h"
#include "fleetmcp/fm_workflow.h"

/* The signal handler's only way into the context: a pointer to its stop
 * flag, set once before serving. */
static volatile atomic_int *stop_flag;

static void on_term(int sig)
{
    (void)sig;
    if (stop_flag) *stop_flag = 1;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: fleetmcp [serve] [--config FILE] [--db FILE] [--http HOST:PORT]\n"
               "       fleetmcp check-config [--schema-only] [--config FILE] [--db PATH|URL]\n"
               "       fleetmcp audit verify [--db FILE] [--config FILE]\n"
               "       fleetmcp store migrate --from sqlite:PATH --to postgresql://URL\n"
               "       fleetmcp metrics [--textfile PATH] [--db FILE] [--config FILE]\n"
               "       fleetmcp workflows run-due [--db FILE] [--config FILE]\n"
               "       fleetmcp alert --stdin [--db FILE] [--config FILE]\n"
               "       fleetmcp --version | --help\n"
               "\n"
               "Serves MCP (JSON-RPC 2.0, one message per line) on stdin/stdout, or with\n"
               "--http as Streamable HTTP at http://HOST:PORT/mcp (loopback only unless the\n"
               "config has an auth section); logs go to stderr. Config: --config or\n"
               "FLEETMCP_CONFIG (YAML). Store: --db, FLEETMCP_DB,\n"
               "store.path, or $XDG_STATE_HOME/fleetmcp/fleetmcp.db. Without a config the\n"
               "server runs in shadow mode with no backends.\n");
}

static int cmd_check_config(const char *path, const char *db, int schema_only)
{
    if (!path) path = getenv("FLEETMCP_CONFIG");
    if (!path) {
        fprintf(stderr, "check-config: name a file with --config FILE or FLEETMCP_CONFIG\n");
        return 1;
    }
    json_t *problems = fm_config_check(path);
    size_t i, n = json_array_size(problems);
    json_t *p;
    json_array_foreach(problems, i, p) printf("%s\n", json_string_value(p));
    json_decref(problems);
    if (n) {
        printf("%zu problem%s in %s\n", n, n == 1 ? "" : "s", path);
        return 1;
    }
    /* --schema-only: structure only, for CI and hosts without the key files
     * and secrets the config names. */
    if (schema_only) {
        printf("%s: ok (schema only)\n", path);
        return 0;
    }
    /* The file is well-formed; now open it for real (backends, secrets). */
    fm_ctx ctx;
    fm_err err = {0};
    if (fm_ctx_open_unstored(&ctx, path, db, &err)) {
        printf("%s: %s: %s\n", path, fm_strerror(err.code), err.text);
        return 1;
    }
    size_t rb_problems = fm_runbooks_report(&ctx.cfg, stdout);
    /* The configured store, as the first message after initialize opens
     * it on stdio, looked at without changing it. */
    json_t *notes = json_array();
    json_t *store_problems = fm_ctx_store_probe(&ctx, notes);
    json_array_foreach(notes, i, p) printf("%s\n", json_string_value(p));
    json_array_foreach(store_problems, i, p) printf("%s\n", json_string_value(p));
    rb_problems += json_array_size(store_problems);
    json_decref(notes);
    json_decref(store_problems);
    /* auth is opened only by the HTTP transport; open it here too so a bad
     * JWKS file or a token scope no level grants shows before deployment. */
    const json_t *auth_sec = fm_config_section(&ctx.cfg, "auth");
    fm_auth *auth = NULL;
    if (auth_sec && fm_auth_open(&auth, auth_sec, &err)) {
        printf("%s: %s: %s\n", path, fm_strerror(err.code), err.text);
        rb_problems++;
    }
    fm_auth_close(auth);
    fm_ctx_close(&ctx);
    if (rb_problems) {
        printf("%zu problem%s in %s\n", rb_problems, rb_problems == 1 ? "" : "s", path);
        return 1;
    }
    printf("%s: ok\n", path);
    return 0;
}

static int cmd_audit_verify(const char *config, const char *db)
{
    fm_ctx ctx;
    fm_err err = {0};
    if (fm_ctx_open(&ctx, config, db, &err)) {
        fprintf(stderr, "fleetmcp: %s: %s\n", fm_strerror(err.code), err.text);
        return 1;
    }
    int64_t rows = 0, bad = 0;
    int rc = fm_audit_verify(&ctx.store, &rows, &bad, &err);
    if (rc)
        printf("audit chain BROKEN at row %lld (%lld rows checked): %s\n", (long long)bad,
               (long long)rows, err.text);
    else
        printf("audit chain ok: %lld rows verified in %s\n", (long long)rows, ctx.store.path);
    fm_ctx_close(&ctx);
    return rc ? 2 : 0;
}

static int cmd_store_migrate(const char *from, const char *to)
{
    if (!from || !to || strncmp(from, "sqlite:", 7)) {
        fprintf(stderr, "fleetmcp: store migrate needs --from sqlite:PATH --to postgresql://...\n");
        return 1;
    }
    int64_t rows = 0, verified = 0;
    fm_err err = {0};
    char shown[512];
    fm_db_redact(to, shown, sizeof shown);
    if (fm_store_migrate_copy(from + 7, to, &rows, &verified, &err)) {
        fprintf(stderr, "fleetmcp: store migrate: %s: %s\n", fm_strerror(err.code), err.text);
        return 2;
    }
    printf("store copied: %lld rows from %s to %s; audit chain ok: %lld rows verified on the"
           " copy\n",
           (long long)rows, from + 7, shown, (long long)verified);
    return 0;
}

static int cmd_metrics(const char *config, const char *db, const char *textfile)
{
    fm_ctx ctx;
    fm_err err = {0};
    if (fm_ctx_open(&ctx, config, db, &err)) {
        fprintf(stderr, "fleetmcp: %s: %s\n", fm_strerror(err.code), err.text);
        return 1;
    }
    int rc = 0;
    if (textfile) {
        rc = fm_fleet_metrics_textfile(&ctx, textfile, &err);
        if (rc) fprintf(stderr, "fleetmcp: %s: %s\n", fm_strerror(err.code), err.text);
    } else {
        json_t *m = fm_fleet_metrics(&ctx, FM_FLEET_WINDOW_MS);
        json_dumpf(m, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
        putchar('\n');
        json_decref(m);
    }
    fm_ctx_close(&ctx);
    return rc ? 1 : 0;
}

/* Opens the context for a command that acts (run-due, alert) under the
 * client name who, with SIGTERM and SIGINT setting its stop flag so the
 * work in flight ends cleanly.  -1 (said on stderr) if it cannot open. */
static int open_acting(fm_ctx *ctx, const char *config, const char *db, const char *who)
{
    fm_err err = {0};
    if (fm_ctx_open(ctx, config, db, &err)) {
        fprintf(stderr, "fleetmcp: %s: %s\n", fm_strerror(err.code), err.text);
        return -1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigemptyset(&sa.sa_mask);
    stop_flag = &ctx->stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    snprintf(ctx->session.client_name, sizeof ctx->session.client_name, "%s", who);
    return 0;
}

/* One tick of the workflow driver, for a timer (systemd, cron): runs
 * every parked monitor step whose next sample is due, then exits.  It
 * continues workflows a gated, approved repair_execute started; it starts
 * none and resumes no dead one (that stays repair_execute's, approved
 * again). */
static int cmd_workflows_run_due(const char *config, const char *db)
{
    fm_ctx ctx;
    fm_err err = {0};
    if (open_acting(&ctx, config, db, "fleetmcp-workflows")) return 1;
    int rc = 0;
    if (ctx.cfg.mode == FM_MODE_SHADOW) {
        fprintf(stderr, "fleetmcp: shadow mode: workflows never run; nothing to do\n");
    } else if (fm_workflow_init(&ctx, &err)) {
        fprintf(stderr, "fleetmcp: %s: %s\n", fm_strerror(err.code), err.text);
        rc = 1;
    } else {
        fm_call call = {.ctx = &ctx, .tool = fm_tool_with_flags(FM_TOOL_RUNS_PLAN)};
        int n = fm_workflow_run_due(&ctx, &call, 100);
        printf("workflows run-due: %d parked monitor step(s) sampled\n", n);
    }
    stop_flag = NULL;
    fm_ctx_close(&ctx);
    return rc;
}

/* Reads one Alertmanager webhook payload from stdin (bounded) and runs
 * the alert intake on it; the report goes to stdout as JSON. */
static int cmd_alert(const char *config, const char *db)
{
    fm_ctx ctx;
    fm_err err = {0};
    /* The caller every internal tools/call is recorded under. */
    if (open_acting(&ctx, config, db, "alert-intake")) return 1;
    size_t max = fm_alert_max_bytes(&ctx), len = 0;
    char *buf = malloc(max + 1);
    int rc = 0;
    if (!buf) {
        fprintf(stderr, "fleetmcp: alert: out of memory\n");
        rc = 1;
        goto out;
    }
    /* One byte over the bound is enough to refuse it. */
    while (len <= max) {
        size_t n = fread(buf + len, 1, max + 1 - len, stdin);
        if (!n) break;
        len += n;
    }
    if (ferror(stdin)) {
        fprintf(stderr, "fleetmcp: alert: reading stdin: %s\n", strerror(errno));
        rc = 1;
        goto out;
    }
    json_t *report = fm_alert_intake(&ctx, buf, len, &err);
    if (!report) {
        fprintf(stderr, "fleetmcp: alert: %s: %s\n", fm_strerror(err.code), err.text);
        rc = 2;
        goto out;
    }
    json_dumpf(report, stdout, JSON_INDENT(2));
    putchar('\n');
    json_decref(report);
out:
    free(buf);
    stop_flag = NULL;
    fm_ctx_close(&ctx);
    return rc;
}

static int cmd_serve(const char *config, const char *db, const char *http)
{
    fm_ctx ctx;
    fm_err err = {0};
    /* On stdio the store opens at the first message that may use it (see
     * fm_mcp_handle_json); HTTP workers share it from the start. */
    if ((http ? fm_ctx_open : fm_ctx_open_deferred)(&ctx, config, db, &err)) {
        fm_log("error", "%s: %s", fm_strerror(err.code), err.text);
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigemptyset(&sa.sa_mask);
    stop_flag = &ctx.stop;
    /* No SA_RESTART: a blocked read or poll returns EINTR so the loop sees stop. */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (http) {
        int rc = fm_httpd_serve(&ctx, http, &err);
        if (rc) fm_log("error", "%s: %s", fm_strerror(err.code), err.text);
        stop_flag = NULL;
        fm_ctx_close(&ctx);
        return rc;
    }
    fm_transport tx;
    if (fm_tx_init(&tx, STDIN_FILENO, STDOUT_FILENO, ctx.cfg.max_message)) {
        fm_log("error", "out of memory");
        fm_ctx_close(&ctx);
        return 1;
    }
    ctx.tx = &tx;
    int rc = fm_mcp_serve(&ctx);
    stop_flag = NULL;
    fm_tx_free(&tx);
    ctx.tx = NULL;
    fm_ctx_close(&ctx);
    return rc;
}

/* The command line's options, before the command or after it. */
typedef struct {
    const char *config, *db, *textfile, *http, *from, *to;
    int schema_only, from_stdin;
} cli_opts;

/* One option from getopt into o. Returns -1 to go on, else the exit code
 * (help, version, or a usage error). --version is taken only before the
 * command; the command's own options only after it. */
static int take_opt(int c, bool after_cmd, cli_opts *o)
{
    switch (c) {
    case 'c':
        o->config = optarg;
        return -1;
    case 'd':
        o->db = optarg;
        return -1;
    case 'H':
        o->http = optarg;
        return -1;
    case 'h':
        usage(stdout);
        return 0;
    case 'V':
        if (after_cmd) break;
        printf("fleetmcp %s\n", FM_SERVER_VERSION);
        return 0;
    case 't':
    case 'F':
    case 'T':
    case 'S':
    case 'I':
        if (!after_cmd) break;
        if (c == 't')
            o->textfile = optarg;
        else if (c == 'F')
            o->from = optarg;
        else if (c == 'T')
            o->to = optarg;
        else if (c == 'S')
            o->schema_only = 1;
        else
            o->from_stdin = 1;
        return -1;
    default:
        break;
    }
    usage(stderr);
    return 1;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, 0, 'c'},
                                         {"textfile", required_argument, 0, 't'},
                                         {"db", required_argument, 0, 'd'},
                                         {"help", no_argument, 0, 'h'},
                                         {"version", no_argument, 0, 'V'},
                                         {"schema-only", no_argument, 0, 'S'},
                                         {"http", required_argument, 0, 'H'},
                                         {"from", required_argument, 0, 'F'},
                                         {"to", required_argument, 0, 'T'},
                                         {"stdin", no_argument, 0, 'I'},
                                         {0, 0, 0, 0}};
    cli_opts o = {0};
    int c, rc;
    while ((c = getopt_long(argc, argv, "+c:d:hV", opts, NULL)) != -1)
        if ((rc = take_opt(c, false, &o)) >= 0) return rc;
    /* Options may also follow the subcommand. */
    const char *cmd = optind < argc ? argv[optind++] : "serve";
    const char *sub = NULL;
    /* An unknown command fails before its options, so `fleetmcp bogus --help`
     * does not answer 0. */
    if (strcmp(cmd, "serve") && strcmp(cmd, "check-config") && strcmp(cmd, "audit") &&
        strcmp(cmd, "metrics") && strcmp(cmd, "store") && strcmp(cmd, "workflows") &&
        strcmp(cmd, "alert")) {
        fprintf(stderr, "fleetmcp: unknown command '%s'\n", cmd);
        usage(stderr);
        return 1;
    }
    /* "audit --help" must reach getopt, not be taken for the subcommand. */
    if (!strcmp(cmd, "audit") || !strcmp(cmd, "store") || !strcmp(cmd, "workflows"))
        sub = optind < argc && argv[optind][0] != '-' ? argv[optind++] : "";
    while ((c = getopt_long(argc, argv, "c:d:t:h", opts, NULL)) != -1)
        if ((rc = take_opt(c, true, &o)) >= 0) return rc;
    if (optind < argc) {
        fprintf(stderr, "fleetmcp: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 1;
    }
    if (o.schema_only && strcmp(cmd, "check-config")) {
        fprintf(stderr, "fleetmcp: --schema-only is an option of check-config\n");
        return 1;
    }
    if (o.http && strcmp(cmd, "serve")) {
        fprintf(stderr, "fleetmcp: --http is an option of serve\n");
        return 1;
    }
    if (o.textfile && strcmp(cmd, "metrics")) {
        fprintf(stderr, "fleetmcp: --textfile is an option of metrics\n");
        return 1;
    }
    if ((o.from || o.to) && strcmp(cmd, "store")) {
        fprintf(stderr, "fleetmcp: --from and --to are options of store migrate\n");
        return 1;
    }
    if (!strcmp(cmd, "store") && !*sub) {
        fprintf(stderr, "fleetmcp: store needs a subcommand: migrate\n");
        usage(stderr);
        return 1;
    }
    if (!strcmp(cmd, "audit") && !*sub) {
        fprintf(stderr, "fleetmcp: audit needs a subcommand: verify\n");
        usage(stderr);
        return 1;
    }
    if (!strcmp(cmd, "workflows") && !*sub) {
        fprintf(stderr, "fleetmcp: workflows needs a subcommand: run-due\n");
        usage(stderr);
        return 1;
    }
    if (o.from_stdin && strcmp(cmd, "alert")) {
        fprintf(stderr, "fleetmcp: --stdin is an option of alert\n");
        return 1;
    }
    if (!strcmp(cmd, "alert") && !o.from_stdin) {
        fprintf(stderr, "fleetmcp: alert reads its payload with --stdin (an Alertmanager webhook"
                        " body); over HTTP it is not served yet\n");
        return 1;
    }
    if (!strcmp(cmd, "alert")) return cmd_alert(o.config, o.db);
    if (!strcmp(cmd, "serve")) return cmd_serve(o.config, o.db, o.http);
    if (!strcmp(cmd, "workflows") && !strcmp(sub, "run-due"))
        return cmd_workflows_run_due(o.config, o.db);
    if (!strcmp(cmd, "check-config")) return cmd_check_config(o.config, o.db, o.schema_only);
    if (!strcmp(cmd, "metrics")) return cmd_metrics(o.config, o.db, o.textfile);
    if (!strcmp(cmd, "audit") && !strcmp(sub, "verify")) return cmd_audit_verify(o.config, o.db);
    if (!strcmp(cmd, "store") && !strcmp(sub, "migrate")) return cmd_store_migrate(o.from, o.to);
    fprintf(stderr, "fleetmcp: unknown command '%s%s%s'\n", cmd, sub ? " " : "", sub ? sub : "");
    usage(stderr);
    return 1;
}
