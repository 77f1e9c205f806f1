/* mcp-cli keygen and approve: the human side of approvals.  The private
 * key never leaves this process; the server sees only the signature. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "format.h"
#include "fleetmcp/fm_approval.h"

int cli_cmd_keygen(cli_client *c, const cli_opts *o)
{
    (void)c;
    const char *out = NULL, *who = "approver";
    for (int i = 0; i < o->argc; i++) {
        if (!strcmp(o->argv[i], "--out") && i + 1 < o->argc)
            out = o->argv[++i];
        else if (!strcmp(o->argv[i], "--approver") && i + 1 < o->argc)
            who = o->argv[++i];
        else {
            fprintf(stderr, "usage: mcp-cli keygen --out FILE [--approver NAME]\n");
            return CLI_USAGE;
        }
    }
    if (!out) {
        fprintf(stderr, "usage: mcp-cli keygen --out FILE [--approver NAME]\n");
        return CLI_USAGE;
    }
    char pub[64];
    fm_err err = {0};
    if (fm_approval_keygen(out, pub, sizeof pub, &err)) {
        fprintf(stderr, "mcp-cli: %s\n", err.text);
        return CLI_USAGE;
    }
    printf("private key: %s (keep it; mode 0600)\n"
           "add to the server's config:\n"
           "approvals:\n"
           "  keys:\n"
           "    - id: %s\n"
           "      public_key: %s\n",
           out, who, pub);
    return CLI_OK;
}

/* "30m", "2h", "900s" or plain seconds. */
/* Seconds from "90", "90s", "15m" or "2h"; -1 for anything else. A count
 * past 1e7 (116 days, far past any server's approvals.max_ttl_s) is
 * refused here, before n * 3600 could overflow. */
static long long parse_ttl(const char *s)
{
    char *end;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (end == s || errno || n <= 0 || n > 10000000) return -1;
    if (!*end || !strcmp(end, "s")) return n;
    if (!strcmp(end, "m")) return n * 60;
    if (!strcmp(end, "h")) return n * 3600;
    return -1;
}

static void show_plan(FILE *out, const json_t *p)
{
    char *args = json_dumps(json_object_get(p, "args"), JSON_COMPACT);
    char *nodes = json_dumps(json_object_get(p, "nodes"), JSON_COMPACT);
    fprintf(out,
            "plan %s (%s)\n  tool:   %s\n  args:   %s\n  nodes:  %s\n  risk:   %s\n  by:     %s"
            " at %s\n  steps:\n",
            json_string_value(json_object_get(p, "plan_id")),
            json_string_value(json_object_get(p, "status")),
            json_string_value(json_object_get(p, "tool")), args ? args : "{}", nodes ? nodes : "[]",
            json_string_value(json_object_get(p, "risk")),
            json_string_value(json_object_get(p, "created_by")),
            json_string_value(json_object_get(p, "created")));
    size_t i;
    json_t *st;
    json_array_foreach(json_object_get(p, "steps"), i, st)
    {
        char *sa = json_dumps(json_object_get(st, "args"), JSON_COMPACT);
        fprintf(out, "    %zu. %s %s\n", i + 1, json_string_value(json_object_get(st, "action")),
                sa ? sa : "");
        free(sa);
    }
    free(args);
    free(nodes);
}

int cli_cmd_approve(cli_client *c, const cli_opts *o)
{
    const char *plan = NULL, *key = getenv("FLEETMCP_APPROVER_KEY"),
               *who = getenv("FLEETMCP_APPROVER");
    long long ttl = 900;
    bool yes = false;
    for (int i = 0; i < o->argc; i++) {
        const char *a = o->argv[i];
        if (!strcmp(a, "--key") && i + 1 < o->argc)
            key = o->argv[++i];
        else if (!strcmp(a, "--approver") && i + 1 < o->argc)
            who = o->argv[++i];
        else if (!strcmp(a, "--ttl") && i + 1 < o->argc)
            ttl = parse_ttl(o->argv[++i]);
        else if (!strcmp(a, "--yes"))
            yes = true;
        else if (a[0] != '-' && !plan)
            plan = a;
        else
            plan = NULL, i = o->argc;
    }
    if (!plan || !key || !who || ttl <= 0) {
        fprintf(stderr, "usage: mcp-cli approve PLAN --key FILE --approver NAME [--ttl 15m]"
                        " [--yes]\n(FLEETMCP_APPROVER_KEY and FLEETMCP_APPROVER may stand in"
                        " for --key and --approver)\n");
        return CLI_USAGE;
    }
    json_t *res = NULL, *err = NULL;
    int rc = cli_request(
        c, "tools/call",
        json_pack("{s:s, s:{s:s}}", "name", "plan_get", "arguments", "plan_id", plan), &res, &err);
    if (rc) return rc;
    if (err || json_is_true(json_object_get(res, "isError"))) {
        const json_t *t =
            json_object_get(json_array_get(json_object_get(res, "content"), 0), "text");
        cli_print_text(stderr, "mcp-cli: ",
                       err ? json_string_value(json_object_get(err, "message"))
                           : json_string_value(t));
        json_decref(err);
        json_decref(res);
        return CLI_TOOL_ERROR;
    }
    json_t *p = json_object_get(res, "structuredContent");
    /* In json format stdout carries only the result. */
    show_plan(strcmp(o->format, "json") ? stdout : stderr, p);
    if (!yes) {
        if (!isatty(STDIN_FILENO)) {
            fprintf(stderr, "mcp-cli: approve asks for confirmation on a terminal; pass --yes"
                            " when a script approves\n");
            json_decref(res);
            return CLI_USAGE;
        }
        printf("approve this plan as %s for %lld s? type 'yes': ", who, ttl);
        fflush(stdout);
        char line[16] = "";
        if (!fgets(line, sizeof line, stdin) || strcmp(line, "yes\n")) {
            printf("not approved\n");
            json_decref(res);
            return CLI_USAGE;
        }
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long expires = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + ttl * 1000;
    char msg[512], sig[128];
    size_t n = fm_approval_message(msg, sizeof msg, plan,
                                   json_string_value(json_object_get(p, "hash")), who, expires);
    fm_err ferr = {0};
    json_decref(res);
    if (fm_approval_sign(key, msg, n, sig, sizeof sig, &ferr)) {
        fprintf(stderr, "mcp-cli: %s\n", ferr.text);
        return CLI_USAGE;
    }
    json_t *args = json_pack("{s:s, s:s, s:I, s:s}", "plan_id", plan, "approver", who, "expires_ms",
                             (json_int_t)expires, "signature", sig);
    return cli_call_and_print(c, o, "plan_approve", args);
}
