/* mcp-cli audit export and replay: re-issue a recorded session's tool
 * calls against a server and report every result that drifted.
 *
 * A recorded call is one JSONL line:
 *   {"seq":N, "tool":..., "arguments":{...}, "isError":bool,
 *    "result":{...} | "error":"WORD: text", "mutation":bool}
 * Volatile fields (ids, timestamps, durations) never count as drift: keys
 * named like id/ts/time/created/..., and string values that look like an
 * ISO time or one of fleetmcp's ids, are masked before comparing. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "fleetmcp/fm_util.h"

#define REPLAY_MAX_LINE (1u << 20)

/* ---- export ----------------------------------------------------------- */

static json_t *tool_text_result(const json_t *res)
{
    return json_object_get(json_array_get(json_object_get(res, "content"), 0), "text");
}

/* Every audit row of a session, oldest first (new array), via audit_query
 * pages; NULL with the exit code in *rc. */
static json_t *session_rows(cli_client *c, const char *session, int *rc)
{
    json_t *all = json_array();
    json_int_t before = 0;
    for (int page = 0; page < 1000; page++) {
        json_t *args = json_pack("{s:s, s:b, s:i}", "session", session, "detail", 1, "limit", 500);
        if (before) json_object_set_new(args, "before_id", json_integer(before));
        json_t *res = NULL, *err = NULL;
        *rc = cli_request(c, "tools/call",
                          json_pack("{s:s, s:o}", "name", "audit_query", "arguments", args), &res,
                          &err);
        if (*rc || err || json_is_true(json_object_get(res, "isError"))) {
            fprintf(stderr, "mcp-cli: audit_query: %s\n",
                    err ? json_string_value(json_object_get(err, "message"))
                        : json_string_value(tool_text_result(res)));
            json_decref(err);
            json_decref(res);
            json_decref(all);
            if (!*rc) *rc = CLI_TOOL_ERROR;
            return NULL;
        }
        json_t *sc = json_object_get(res, "structuredContent");
        json_array_extend(all, json_object_get(sc, "rows"));
        json_t *next = json_object_get(sc, "next_before_id");
        before = json_is_integer(next) ? json_integer_value(next) : 0;
        json_decref(res);
        if (!before) break;
    }
    /* audit_query answers newest first. */
    json_t *asc = json_array();
    for (size_t i = json_array_size(all); i-- > 0;)
        json_array_append(asc, json_array_get(all, i));
    json_decref(all);
    return asc;
}

static const json_t *find_result(const json_t *rows, json_int_t intent)
{
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r)
    {
        /* a server's answer: a row without a string phase is not a result */
        if (json_integer_value(json_object_get(r, "call_ref")) == intent &&
            !strcmp(fm_json_str(r, "phase", ""), "result"))
            return r;
    }
    return NULL;
}

int cli_cmd_audit(cli_client *c, const cli_opts *o)
{
    const char *session = NULL, *out = NULL;
    if (o->argc < 1 || strcmp(o->argv[0], "export")) goto usage;
    for (int i = 1; i < o->argc; i++) {
        if (!strcmp(o->argv[i], "--session") && i + 1 < o->argc)
            session = o->argv[++i];
        else if (!strcmp(o->argv[i], "--out") && i + 1 < o->argc)
            out = o->argv[++i];
        else
            goto usage;
    }
    if (!session) goto usage;
    int rc = 0;
    json_t *rows = session_rows(c, session, &rc);
    if (!rows) return rc;
    FILE *f = out ? fopen(out, "w") : stdout;
    if (!f) {
        perror(out);
        json_decref(rows);
        return CLI_USAGE;
    }
    size_t i, n = 0;
    json_t *r;
    json_array_foreach(rows, i, r)
    {
        const char *phase = json_string_value(json_object_get(r, "phase"));
        const char *tool = json_string_value(json_object_get(r, "tool"));
        if (!tool || !phase || (strcmp(phase, "call") && strcmp(phase, "intent"))) continue;
        /* audit tools read the log itself: their answers always drift. */
        if (!strcmp(tool, "audit_query")) continue;
        json_t *line =
            json_pack("{s:I, s:s, s:O, s:b}", "seq", (json_int_t)++n, "tool", tool, "arguments",
                      json_object_get(r, "args") ? json_object_get(r, "args") : json_object(),
                      "mutation", !strcmp(phase, "intent"));
        /* Who released it: shown by replay, never compared (an approval
         * is not replayed). */
        json_t *approvers = json_object_get(r, "approvers");
        if (json_is_string(approvers)) json_object_set(line, "approvers", approvers);
        const json_t *res = !strcmp(phase, "intent")
                                ? find_result(rows, json_integer_value(json_object_get(r, "id")))
                                : r;
        const char *err = res ? json_string_value(json_object_get(res, "error")) : NULL;
        const char *code = res ? json_string_value(json_object_get(res, "error_code")) : NULL;
        const char *text = res ? json_string_value(json_object_get(res, "result")) : NULL;
        if (!res) {
            json_object_set_new(line, "isError", json_true());
            json_object_set_new(line, "error", json_string("INCOMPLETE: no result row (crash?)"));
        } else if (err || code) {
            char buf[1200];
            snprintf(buf, sizeof buf, "%s: %s", code ? code : "ERROR", err ? err : "");
            json_object_set_new(line, "isError", json_true());
            json_object_set_new(line, "error", json_string(buf));
        } else {
            json_object_set_new(line, "isError", json_false());
            json_t *parsed = text ? json_loads(text, 0, NULL) : NULL;
            json_object_set_new(line, "result", parsed ? parsed : json_null());
            if (!parsed) json_object_set_new(line, "clipped", json_true());
        }
        char *s = json_dumps(line, JSON_COMPACT | JSON_SORT_KEYS);
        fprintf(f, "%s\n", s);
        free(s);
        json_decref(line);
    }
    if (out) fclose(f);
    fprintf(stderr, "exported %zu call%s of session %s\n", n, n == 1 ? "" : "s", session);
    json_decref(rows);
    return CLI_OK;
usage:
    fprintf(stderr, "usage: mcp-cli audit export --session ID [--out FILE]\n");
    return CLI_USAGE;
}

/* ---- replay ----------------------------------------------------------- */

/* Keys whose values are volatile by nature: generated ids, timestamps and
 * durations.  Not every key ending in _s or _id: a changed timeout_s or
 * job_id is drift.  The plan, approval, workflow and diagnosis ids fleetmcp
 * generates are masked by value instead (mask_text), wherever they appear. */
static bool volatile_key(const char *k)
{
    static const char *const exact[] = {
        "id",      "ts",       "time",       "created",        "updated",   "since",
        "until",   "expires",  "started",    "ended",          "hash",      "by",
        "session", "duration", "duration_s", "elapsed_s",      "bundle_id", "audit_id",
        "key",     "url",      "self",       "next_before_id", "audit_ids", "call_ref",
        "age_s"};
    for (size_t i = 0; i < sizeof exact / sizeof *exact; i++)
        if (!strcmp(k, exact[i])) return true;
    size_t n = strlen(k);
    static const char *const suffix[] = {"_ms", "_us", "_time", "_at", "_hash"};
    for (size_t i = 0; i < sizeof suffix / sizeof *suffix; i++) {
        size_t m = strlen(suffix[i]);
        if (n > m && !strcmp(k + n - m, suffix[i])) return true;
    }
    return false;
}

/* ISO times and fleetmcp ids are masked inside text, so "plan pl-… made at
 * 2026-…" compares equal across runs. */
static void mask_text(const char *in, char *out, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; in[i] && o + 2 < len;) {
        const char *p = in + i;
        if ((!strncmp(p, "pl-", 3) || !strncmp(p, "ap-", 3) || !strncmp(p, "wf-", 3) ||
             !strncmp(p, "dg-", 3)) &&
            isxdigit((unsigned char)p[3])) {
            size_t k = 3;
            while (isxdigit((unsigned char)p[k]))
                k++;
            out[o++] = '#';
            i += k;
        } else if (isdigit((unsigned char)p[0]) && strlen(p) >= 19 && p[4] == '-' && p[7] == '-' &&
                   p[10] == 'T') {
            size_t k = 19;
            while (p[k] && (isdigit((unsigned char)p[k]) || p[k] == '.' || p[k] == 'Z'))
                k++;
            out[o++] = '@';
            i += k;
        } else if (isdigit((unsigned char)p[0]) && (i == 0 || !isalnum((unsigned char)p[-1]))) {
            /* Bare numbers in prose (row ids, counts of rows) drift too. */
            while (isdigit((unsigned char)in[i]))
                i++;
            out[o++] = 'N';
        } else {
            out[o++] = in[i++];
        }
    }
    out[o] = '\0';
}

/* Appends "path: expected X, got Y" for every difference (bounded). */
static void diff(const json_t *a, const json_t *b, char *path, size_t plen, json_t *out)
{
    if (json_array_size(out) >= 50) return;
    size_t base = strlen(path);
    if (json_is_object(a) && json_is_object(b)) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)a, k, v)
        {
            if (volatile_key(k)) continue;
            snprintf(path + base, plen - base, "/%s", k);
            json_t *w = json_object_get(b, k);
            if (!w) {
                char msg[600];
                snprintf(msg, sizeof msg, "%s: missing in replay", path);
                json_array_append_new(out, json_string(msg));
            } else {
                diff(v, w, path, plen, out);
            }
            path[base] = '\0';
        }
        json_object_foreach((json_t *)b, k, v)
        {
            if (volatile_key(k) || json_object_get(a, k)) continue;
            char msg[600];
            snprintf(msg, sizeof msg, "%s/%s: new in replay", path, k);
            json_array_append_new(out, json_string(msg));
        }
        return;
    }
    if (json_is_array(a) && json_is_array(b)) {
        size_t na = json_array_size(a), nb = json_array_size(b);
        if (na != nb) {
            char msg[600];
            snprintf(msg, sizeof msg, "%s: %zu items expected, %zu in replay", path, na, nb);
            json_array_append_new(out, json_string(msg));
        }
        for (size_t i = 0; i < na && i < nb; i++) {
            snprintf(path + base, plen - base, "/%zu", i);
            diff(json_array_get(a, i), json_array_get(b, i), path, plen, out);
            path[base] = '\0';
        }
        return;
    }
    if (json_is_string(a) && json_is_string(b)) {
        char ma[2048], mb[2048];
        mask_text(json_string_value(a), ma, sizeof ma);
        mask_text(json_string_value(b), mb, sizeof mb);
        if (!strcmp(ma, mb)) return;
    } else if (json_equal(a, b)) {
        return;
    }
    char *sa = json_dumps(a, JSON_COMPACT | JSON_ENCODE_ANY),
         *sb = json_dumps(b, JSON_COMPACT | JSON_ENCODE_ANY);
    char msg[900];
    snprintf(msg, sizeof msg, "%s: expected %.200s, got %.200s", path[0] ? path : "(result)",
             sa ? sa : "?", sb ? sb : "?");
    free(sa);
    free(sb);
    json_array_append_new(out, json_string(msg));
}

/* fleetmcp's generated ids: plans, approvals, workflows, local tickets. */
static bool is_id(const char *s)
{
    if (!strncmp(s, "pl-", 3) || !strncmp(s, "ap-", 3) || !strncmp(s, "wf-", 3)) {
        size_t n = 3;
        while (isxdigit((unsigned char)s[n]))
            n++;
        return n >= 11;
    }
    if (!strncmp(s, "FM-", 3) && isdigit((unsigned char)s[3])) return true;
    return false;
}

/* Learns recorded id -> replayed id from two results at the same paths,
 * and from the ids in two error texts, in order. */
static void learn_ids(const json_t *want, const json_t *got, json_t *map)
{
    if (json_is_object(want) && json_is_object(got)) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)want, k, v) learn_ids(v, json_object_get(got, k), map);
    } else if (json_is_array(want) && json_is_array(got)) {
        for (size_t i = 0; i < json_array_size(want); i++)
            learn_ids(json_array_get(want, i), json_array_get(got, i), map);
    } else if (json_is_string(want) && json_is_string(got) && is_id(json_string_value(want)) &&
               is_id(json_string_value(got))) {
        json_object_set(map, json_string_value(want), (json_t *)got);
    }
}

static void learn_text_ids(const char *want, const char *got, json_t *map)
{
    for (int n = 0; want && got && n < 16; n++) {
        while (*want && !is_id(want))
            want++;
        while (*got && !is_id(got))
            got++;
        if (!*want || !*got) return;
        size_t a = strcspn(want, " ,;:)'\""), b = strcspn(got, " ,;:)'\"");
        char ka[64], kb[64];
        snprintf(ka, sizeof ka, "%.*s", (int)(a < 63 ? a : 63), want);
        snprintf(kb, sizeof kb, "%.*s", (int)(b < 63 ? b : 63), got);
        json_object_set_new(map, ka, json_string(kb));
        want += a;
        got += b;
    }
}

/* A copy of args (new) with recorded ids replaced by the replay's. */
static json_t *map_ids(const json_t *v, const json_t *map)
{
    if (json_is_string(v)) {
        json_t *m = json_object_get(map, json_string_value(v));
        return m ? json_incref(m) : json_incref((json_t *)v);
    }
    if (json_is_object(v)) {
        json_t *o = json_object();
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x) json_object_set_new(o, k, map_ids(x, map));
        return o;
    }
    if (json_is_array(v)) {
        json_t *a = json_array();
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) json_array_append_new(a, map_ids(x, map));
        return a;
    }
    return json_incref((json_t *)v);
}

/* The stable code word of an error text ("APPROVAL" of "APPROVAL: ..."). */
static void code_word(const char *text, char out[32])
{
    size_t n = strcspn(text ? text : "", ":");
    snprintf(out, 32, "%.*s", (int)(n < 31 ? n : 31), text ? text : "");
}

/* "phase/action" of each step (new array of strings); only the phases a
 * workflow that ends done runs, when done_only. */
static json_t *step_names(const json_t *steps, bool done_only)
{
    static const char *const ran[] = {"steps", "verification", "on_success"};
    json_t *out = json_array();
    size_t i;
    json_t *s;
    json_array_foreach(steps, i, s)
    {
        const char *phase = fm_json_str(s, "phase", "steps");
        bool keep = !done_only;
        for (size_t k = 0; k < sizeof ran / sizeof *ran && !keep; k++)
            keep = !strcmp(phase, ran[k]);
        if (!keep) continue;
        char name[160];
        snprintf(name, sizeof name, "%s/%s", phase, fm_json_str(s, "action", "?"));
        json_array_append_new(out, json_string(name));
    }
    return out;
}

/* In shadow mode a recorded workflow run becomes "would run": compare the
 * steps it ran with the steps the plan would run now (plan_get), so a
 * changed runbook step is drift, not "the same decision". */
static void compare_steps(cli_client *c, const char *plan_id, const json_t *recorded,
                          json_t *problems)
{
    json_t *res = NULL, *err = NULL;
    if (!plan_id ||
        cli_request(
            c, "tools/call",
            json_pack("{s:s, s:{s:s}}", "name", "plan_get", "arguments", "plan_id", plan_id), &res,
            &err) ||
        err || json_is_true(json_object_get(res, "isError"))) {
        json_array_append_new(problems,
                              json_string("workflow steps: the plan could not be read back"
                                          " with plan_get to compare its steps"));
        json_decref(res);
        json_decref(err);
        return;
    }
    bool done = !strcmp(fm_json_str(recorded, "status", ""), "done");
    json_t *want = step_names(json_object_get(recorded, "steps"), false);
    json_t *got =
        step_names(json_object_get(json_object_get(res, "structuredContent"), "steps"), done);
    bool same;
    if (done) {
        same = json_equal(want, got);
    } else {
        /* A run that stopped early ran a prefix-ordered subset. */
        size_t j = 0, i;
        json_t *w;
        json_array_foreach(want, i, w)
        {
            while (j < json_array_size(got) && !json_equal(json_array_get(got, j), w))
                j++;
            if (j++ >= json_array_size(got)) break;
        }
        same = j <= json_array_size(got);
    }
    if (!same) {
        char *sw = json_dumps(want, JSON_COMPACT), *sg = json_dumps(got, JSON_COMPACT);
        char msg[900];
        snprintf(msg, sizeof msg, "workflow steps: recorded %.380s, the plan now runs %.380s",
                 sw ? sw : "?", sg ? sg : "?");
        json_array_append_new(problems, json_string(msg));
        free(sw);
        free(sg);
    }
    json_decref(want);
    json_decref(got);
    json_decref(res);
}

/* How far a mode lets a call change the fleet: shadow 0, canary 1, fleet 2
 * (anything else counts as fleet). */
static int mode_rank(const char *m)
{
    return !strcmp(m, "shadow") ? 0 : !strcmp(m, "canary") ? 1 : 2;
}

/* The server's mode (fleet_status), into out; 0, or the exit code. */
static int server_mode(cli_client *c, char *out, size_t len)
{
    json_t *res = NULL, *err = NULL;
    int rc = cli_request(c, "tools/call",
                         json_pack("{s:s, s:{}}", "name", "fleet_status", "arguments"), &res, &err);
    const char *m =
        json_string_value(json_object_get(json_object_get(res, "structuredContent"), "mode"));
    if (!rc && !m) {
        fprintf(stderr,
                "mcp-cli: replay: the server's mode cannot be read (fleet_status: %s);"
                " replay only against a server that says it runs in shadow mode\n",
                err ? json_string_value(json_object_get(err, "message"))
                    : json_string_value(tool_text_result(res)));
        rc = CLI_TOOL_ERROR;
    }
    if (!rc) snprintf(out, len, "%s", m);
    json_decref(res);
    json_decref(err);
    return rc;
}

int cli_cmd_replay(cli_client *c, const cli_opts *o)
{
    if (o->argc != 1) {
        fprintf(stderr, "usage: mcp-cli replay FILE [--server CMD]\n");
        return CLI_USAGE;
    }
    FILE *f = fopen(o->argv[0], "r");
    if (!f) {
        perror(o->argv[0]);
        return CLI_USAGE;
    }
    /* FLEETMCP_MODE (shadow unless the operator set another) reaches only
     * a server mcp-cli starts; one at --url (or started by --server with
     * its own environment) runs in its own mode.  Recorded mutations are
     * re-issued, so they run only on a server no bolder than that mode
     * says: a replay never changes the fleet unless asked to. */
    const char *mode = getenv("FLEETMCP_MODE");
    char srv[32];
    int mrc = server_mode(c, srv, sizeof srv);
    if (mrc) {
        fclose(f);
        return mrc;
    }
    if (mode_rank(srv) > mode_rank(mode ? mode : "shadow")) {
        fprintf(stderr,
                "mcp-cli: replay: the server runs in %.20s mode, and replay re-issues the"
                " session's mutations: nothing was called; replay against a server in shadow"
                " mode (FLEETMCP_MODE=shadow, or mode: shadow in its config), or set"
                " FLEETMCP_MODE=%.20s to replay for real\n",
                srv, srv);
        fclose(f);
        return CLI_USAGE;
    }
    char *line = malloc(REPLAY_MAX_LINE);
    int calls = 0, drifted = 0, skipped = 0, rc = CLI_OK;
    json_t *ids = json_object();
    bool shadow = !strcmp(srv, "shadow");
    for (int lineno = 1; line && fgets(line, REPLAY_MAX_LINE, f) && lineno < 100000; lineno++) {
        json_error_t je;
        json_t *rec = json_loads(line, 0, &je);
        if (!json_is_object(rec)) {
            fprintf(stderr, "%s:%d: not a recorded call: %s\n", o->argv[0], lineno, je.text);
            json_decref(rec);
            rc = CLI_USAGE;
            break;
        }
        const char *tool = json_string_value(json_object_get(rec, "tool"));
        /* An approval is a human's signature over one plan at one time:
         * by design it can be neither forged nor replayed. */
        if (tool && !strcmp(tool, "plan_approve")) {
            skipped++;
            printf("skip  call %lld plan_approve (approvals are not replayable)\n",
                   (long long)json_integer_value(json_object_get(rec, "seq")));
            json_decref(rec);
            continue;
        }
        json_t *args = map_ids(json_object_get(rec, "arguments"), ids);
        if (!json_is_object(args)) {
            json_decref(args);
            args = json_object();
        }
        char plan_id[64];
        snprintf(plan_id, sizeof plan_id, "%s", fm_json_str(args, "plan_id", ""));
        json_t *res = NULL, *err = NULL;
        calls++;
        int r = cli_request(c, "tools/call",
                            json_pack("{s:s, s:o}", "name", tool ? tool : "", "arguments", args),
                            &res, &err);
        if (r) {
            json_decref(rec);
            rc = r;
            break;
        }
        json_t *problems = json_array();
        bool want_err = json_is_true(json_object_get(rec, "isError"));
        bool got_err = err || json_is_true(json_object_get(res, "isError"));
        const char *got_text = err ? json_string_value(json_object_get(err, "message"))
                                   : json_string_value(tool_text_result(res));
        char wc[32], gc[32];
        code_word(json_string_value(json_object_get(rec, "error")), wc);
        code_word(got_text, gc);
        learn_ids(json_object_get(rec, "result"), json_object_get(res, "structuredContent"), ids);
        if (want_err && got_err)
            learn_text_ids(json_string_value(json_object_get(rec, "error")), got_text, ids);
        bool would_run = false;
        if (!strcmp(gc, "SHADOW") && got_text) {
            /* A shadow answer names the code word the call would have had
             * ("refused with APPROVAL: ..."), or says it would run. */
            const char *w = strstr(got_text, "refused with ");
            if (w)
                code_word(w + strlen("refused with "), gc);
            else
                would_run = strstr(got_text, "would run") != NULL;
        }
        if (!want_err && got_err && shadow && json_is_true(json_object_get(rec, "mutation")) &&
            would_run) {
            /* In shadow mode a mutation that ran is "would run": the same
             * decision, with nothing changed; a workflow's steps are
             * compared with what its plan would run now. */
            const json_t *recorded = json_object_get(rec, "result");
            if (json_is_array(json_object_get(recorded, "steps")))
                compare_steps(c, plan_id[0] ? plan_id : NULL, recorded, problems);
        } else if (want_err != got_err) {
            char msg[700];
            snprintf(msg, sizeof msg, "expected %s, got %s: %.400s",
                     want_err ? "an error" : "a result", got_err ? "an error" : "a result",
                     got_err ? (got_text ? got_text : "") : "(result)");
            json_array_append_new(problems, json_string(msg));
        } else if (want_err) {
            if (strcmp(wc, gc)) {
                char msg[700];
                snprintf(msg, sizeof msg, "error code %s expected, got %.400s", wc,
                         got_text ? got_text : "");
                json_array_append_new(problems, json_string(msg));
            }
        } else if (json_is_true(json_object_get(rec, "clipped"))) {
            /* Recorded result was too large to keep whole: only the
             * success itself can be compared. */
        } else {
            char path[512] = "";
            diff(json_object_get(rec, "result"), json_object_get(res, "structuredContent"), path,
                 sizeof path, problems);
        }
        if (json_array_size(problems)) {
            drifted++;
            printf("DRIFT call %lld %s:\n",
                   (long long)json_integer_value(json_object_get(rec, "seq")), tool);
            size_t i;
            json_t *p;
            json_array_foreach(problems, i, p) printf("  %s\n", json_string_value(p));
        } else if (strcmp(o->format, "json")) {
            printf("same  call %lld %s\n",
                   (long long)json_integer_value(json_object_get(rec, "seq")), tool);
        }
        /* The people who approved it when it was recorded: this run used
         * no approval of theirs (approvals are not replayable). */
        const char *approvers = fm_json_str(rec, "approvers", NULL);
        if (approvers && strcmp(o->format, "json"))
            printf("      recorded as approved by %s\n", approvers);
        json_decref(problems);
        json_decref(res);
        json_decref(err);
        json_decref(rec);
    }
    free(line);
    fclose(f);
    json_decref(ids);
    printf("replay: %d call%s, %d drifted, %d skipped\n", calls, calls == 1 ? "" : "s", drifted,
           skipped);
    if (rc) return rc;
    return drifted ? CLI_DRIFT : CLI_OK;
}
