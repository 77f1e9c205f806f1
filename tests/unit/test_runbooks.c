/* Runbooks: the action catalog, every shipped runbook loading clean, one
 * runbook per node-scope fault class, NVIDIA's guidance kept (no reset for
 * Xid 79, no reset loop for a remap failure...), broken runbooks refused
 * with "file:line: pointer: why", and the runbook_list / runbook_get
 * tools.  Runs from the repository root (make unit). */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fleetmcp/fm_runbook.h"
#include "fleetmcp/fm_schema.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_yaml.h"
#include "fm_test.h"
#include "fm_tools.gen.h"

#define DIR_OK "runbooks"
#define DIR_BAD "tests/fixtures/runbooks-bad"

/* --- helpers ----------------------------------------------------------------- */

static bool step_uses(const json_t *rb, const char *list, const char *action)
{
    size_t i;
    const json_t *s;
    json_array_foreach(
        json_object_get(rb, list), i,
        s) if (!strcmp(json_string_value(json_object_get(s, "action")), action)) return true;
    return false;
}

static bool any_step_uses(const json_t *rb, const char *action)
{
    return step_uses(rb, "steps", action) || step_uses(rb, "verification", action) ||
           step_uses(rb, "on_success", action) || step_uses(rb, "rollback", action);
}

/* The verify_gpu checks of a runbook's verification, as one string. */
static void verify_checks(const json_t *rb, char *out, size_t len)
{
    out[0] = '\0';
    size_t i, k;
    const json_t *s, *c;
    json_array_foreach(json_object_get(rb, "verification"), i, s)
    {
        if (strcmp(json_string_value(json_object_get(s, "action")), "verify_gpu")) continue;
        json_array_foreach(json_object_get(json_object_get(s, "args"), "checks"), k, c)
        {
            strncat(out, json_string_value(c), len - strlen(out) - 1);
            strncat(out, " ", len - strlen(out) - 1);
        }
    }
}

static struct fm_runbooks *load_ok(void)
{
    struct fm_runbooks *rbs = NULL;
    fm_err err = {0};
    ck_assert_msg(fm_runbooks_open(DIR_OK, &rbs, &err) == 0, "shipped runbooks: %s", err.text);
    return rbs;
}

static const json_t *rb_doc(const struct fm_runbooks *rbs, const char *id)
{
    const fm_runbook *r = fm_runbook_find(rbs, id);
    ck_assert_msg(r != NULL, "runbook %s missing", id);
    return r->doc;
}

/* --- actions ------------------------------------------------------------------- */

START_TEST(test_actions)
{
    ck_assert_uint_ge(fm_action_count, 14);
    for (size_t i = 0; i < fm_action_count; i++) {
        const fm_action_def *a = &fm_action_table[i];
        json_error_t je;
        json_t *s = json_loads(a->args_schema, 0, &je);
        ck_assert_msg(s != NULL, "%s: args schema: %s", a->name, je.text);
        fm_err err = {0};
        fm_schema *c = fm_schema_compile(s, &err);
        ck_assert_msg(c != NULL, "%s: %s", a->name, err.text);
        /* Strict: an unknown argument is refused by every action. */
        json_t *extra = json_pack("{s:s}", "command", "reboot");
        ck_assert_msg(fm_schema_check(c, extra, NULL) != 0, "%s takes any argument", a->name);
        json_decref(extra);
        fm_schema_free(c);
        json_decref(s);
        ck_assert_int_gt(a->default_timeout_s, 0);
        ck_assert_int_le(a->default_timeout_s, a->max_timeout_s);
        ck_assert_ptr_eq(fm_action_find(a->name), a);
        if (a->needs_approval_always) ck_assert(a->destructive);
    }
    ck_assert_ptr_null(fm_action_find("shell"));
    ck_assert_ptr_null(fm_action_find(NULL));
    ck_assert(fm_action_find("cancel_jobs")->needs_approval_always);
    ck_assert(!fm_action_find("drain")->destructive); /* drain waits for jobs */
    ck_assert_int_eq(fm_action_find("drain")->state_after, FM_NODE_QUARANTINED);
    ck_assert_int_eq(fm_action_find("reboot")->state_after, FM_NODE_REPAIRING);
    ck_assert_int_eq(fm_action_find("gpu_reset")->state_after, FM_NODE_REPAIRING);
    ck_assert_int_eq(fm_action_find("verify_gpu")->state_after, FM_NODE_VALIDATING);
    ck_assert_int_eq(fm_action_find("resume")->state_after, FM_NODE_RETURNED);
    ck_assert_int_eq(fm_action_find("escalate")->state_after, FM_NODE_ESCALATED);
    ck_assert_int_eq(fm_action_find("set_state")->state_after, FM_ACTION_STATE_FROM_ARGS);
    ck_assert_int_eq(fm_action_find("wait_idle")->state_after, FM_ACTION_STATE_KEEP);

    for (int s = 0; s < FM_NODE_STATE_COUNT; s++)
        ck_assert_int_eq(fm_node_state_parse(fm_node_state_name((fm_node_state)s)), s);
    ck_assert_str_eq(fm_node_state_name(FM_NODE_ESCALATED), "escalated");
    ck_assert_ptr_null(fm_node_state_name((fm_node_state)FM_NODE_STATE_COUNT));
    ck_assert_int_eq(fm_node_state_parse("Healthy"), -1);
    ck_assert_int_eq(fm_node_state_parse(NULL), -1);

    /* Bookkeeping can never put a node back in service. */
    json_t *s = json_loads(fm_action_find("set_state")->args_schema, 0, NULL);
    json_t *ret = json_pack("{s:s}", "state", "returned");
    json_t *q = json_pack("{s:s}", "state", "quarantined");
    ck_assert_int_ne(fm_schema_validate(s, ret, NULL), 0);
    ck_assert_int_eq(fm_schema_validate(s, q, NULL), 0);
    json_decref(ret);
    json_decref(q);
    json_decref(s);

    /* gpu_reset: "all" or an index, nothing else. */
    s = json_loads(fm_action_find("gpu_reset")->args_schema, 0, NULL);
    const char *good[] = {"{\"gpu\":\"all\"}", "{\"gpu\":0}", "{\"gpu\":7}"};
    const char *bad[] = {"{}", "{\"gpu\":16}", "{\"gpu\":\"0000:3b:00.0\"}", "{\"gpu\":-1}",
                         "{\"gpu\":\"all; reboot\"}"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        json_t *a = json_loads(good[i], 0, NULL);
        ck_assert_msg(fm_schema_validate(s, a, NULL) == 0, "refused %s", good[i]);
        json_decref(a);
    }
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_t *a = json_loads(bad[i], 0, NULL);
        ck_assert_msg(fm_schema_validate(s, a, NULL) != 0, "accepted %s", bad[i]);
        json_decref(a);
    }
    json_decref(s);

    /* Free text refuses shell metacharacters. */
    s = json_loads(fm_action_find("drain")->args_schema, 0, NULL);
    const char *reasons[] = {"x; rm -rf /", "$(reboot)", "`id`",       "a | b",
                             "a && b",      "a\nb",      "a > /etc/x", "it's"};
    for (size_t i = 0; i < sizeof reasons / sizeof *reasons; i++) {
        json_t *a = json_pack("{s:s}", "reason", reasons[i]);
        ck_assert_msg(fm_schema_validate(s, a, NULL) != 0, "accepted reason %s", reasons[i]);
        json_decref(a);
    }
    json_t *a = json_pack("{s:s}", "reason", "Xid 79 GPU fell off the bus, reboot pending");
    ck_assert_int_eq(fm_schema_validate(s, a, NULL), 0);
    json_decref(a);
    json_decref(s);
}
END_TEST

/* --- shipped runbooks ------------------------------------------------------------ */

START_TEST(test_shipped_clean)
{
    json_t *problems = fm_runbooks_check(DIR_OK);
    size_t i;
    json_t *p;
    json_array_foreach(problems, i, p) fprintf(stderr, "%s\n", json_string_value(p));
    ck_assert_uint_eq(json_array_size(problems), 0);
    json_decref(problems);

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct fm_runbooks *rbs = load_ok();
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    fprintf(stderr, "loaded %zu runbooks in %.2f ms\n", rbs->count, ms);
    ck_assert_uint_ge(rbs->count, 17);
    for (size_t k = 0; k < rbs->count; k++) {
        const fm_runbook *r = &rbs->items[k];
        ck_assert_int_ge(r->version, 1);
        if (k) ck_assert_int_lt(strcmp(rbs->items[k - 1].id, r->id), 0); /* sorted */
        char want[128];
        snprintf(want, sizeof want, "/%s.yaml", r->id);
        ck_assert_msg(strstr(r->path, want) != NULL, "%s from %s", r->id, r->path);
        /* Every runbook fails into an escalation to a named team. */
        ck_assert_ptr_nonnull(json_object_get(json_object_get(r->doc, "on_failure"), "escalate"));
        /* Returning a node is always preceded by verification. */
        if (step_uses(r->doc, "on_success", "resume"))
            ck_assert_msg(json_array_size(json_object_get(r->doc, "verification")) > 0, "%s",
                          r->id);
    }
    ck_assert_ptr_null(fm_runbook_find(rbs, "rb-nope"));
    fm_runbooks_free(rbs);
}
END_TEST

START_TEST(test_every_node_class)
{
    struct fm_runbooks *rbs = load_ok();
    fm_yaml_doc tax;
    fm_err err = {0};
    ck_assert_msg(fm_yaml_load_file(DIR_OK "/fault-classes.yaml", &tax, &err) == 0, "%s", err.text);
    size_t i, covered = 0;
    const json_t *c;
    json_array_foreach(json_object_get(tax.root, "classes"), i, c)
    {
        const char *id = json_string_value(json_object_get(c, "id"));
        if (strcmp(json_string_value(json_object_get(c, "scope")), "node")) continue;
        /* "healthy" is node scope with nothing to do. */
        if (!json_array_size(json_object_get(c, "response"))) continue;
        /* "inconclusive" goes to a human: no runbook may claim it. */
        if (json_is_true(json_object_get(c, "no_runbook"))) {
            ck_assert_msg(fm_runbook_for_class(rbs, id) == NULL, "a runbook claims %s", id);
            continue;
        }
        const fm_runbook *r = fm_runbook_for_class(rbs, id);
        ck_assert_msg(r != NULL, "no runbook for node-scope class %s", id);
        covered++;
        /* What the taxonomy calls destructive never runs autonomously. */
        if (json_is_true(json_object_get(c, "destructive")))
            ck_assert_msg(r->autonomy == FM_AUTONOMY_HITL || r->autonomy == FM_AUTONOMY_CANARY,
                          "%s: destructive class, autonomy %s", id, fm_autonomy_name(r->autonomy));
    }
    ck_assert_uint_ge(covered, 17);
    fm_yaml_doc_free(&tax);

    /* diagnose names these runbooks (runbooks/signatures.yaml): all exist. */
    fm_yaml_doc sigs;
    ck_assert_msg(fm_yaml_load_file(DIR_OK "/signatures.yaml", &sigs, &err) == 0, "%s", err.text);
    const char *cls;
    json_t *v;
    json_object_foreach(json_object_get(sigs.root, "runbooks"), cls, v)
    {
        const fm_runbook *r = fm_runbook_find(rbs, json_string_value(v));
        ck_assert_msg(r != NULL, "signatures.yaml names missing runbook %s", json_string_value(v));
        ck_assert_ptr_eq(fm_runbook_for_class(rbs, cls), r);
    }
    fm_yaml_doc_free(&sigs);
    ck_assert_ptr_null(fm_runbook_for_class(rbs, "oom_batch_size"));
    fm_runbooks_free(rbs);
}
END_TEST

/* The GPU SRE rules each class's runbook must keep. */
START_TEST(test_guidance)
{
    struct fm_runbooks *rbs = load_ok();
    char checks[256];
    const json_t *rb;

    /* Xid 79: a reset cannot reach a GPU the host lost: reboot, never reset. */
    rb = rb_doc(rbs, "rb-gpu-fallen-off-bus");
    ck_assert(!any_step_uses(rb, "gpu_reset"));
    ck_assert(step_uses(rb, "steps", "reboot") && step_uses(rb, "steps", "wait_node_up"));
    verify_checks(rb, checks, sizeof checks);
    ck_assert(strstr(checks, "gpus_present") && strstr(checks, "xid"));

    /* DBE: cancel (approved), reset, verify the memory, escalate on recurrence. */
    rb = rb_doc(rbs, "rb-gpu-ecc-uncorrectable");
    ck_assert(step_uses(rb, "steps", "cancel_jobs") && step_uses(rb, "steps", "gpu_reset"));
    ck_assert_str_eq(json_string_value(json_object_get(rb, "autonomy")), "hitl");
    verify_checks(rb, checks, sizeof checks);
    ck_assert(strstr(checks, "ecc_dbe") && strstr(checks, "row_remap_pending"));
    ck_assert_int_eq(
        json_integer_value(json_object_get(json_object_get(rb, "retry_budget"), "max_attempts")),
        1);

    /* Row remap pending: wait for idle (never cancel), reset, verify. */
    rb = rb_doc(rbs, "rb-gpu-row-remap-pending");
    ck_assert(!any_step_uses(rb, "cancel_jobs") && step_uses(rb, "steps", "wait_idle"));
    ck_assert(step_uses(rb, "steps", "gpu_reset"));
    verify_checks(rb, checks, sizeof checks);
    ck_assert(strstr(checks, "row_remap_pending") != NULL);

    /* Row remap failure: RMA, no reset loop, never returned automatically. */
    rb = rb_doc(rbs, "rb-gpu-row-remap-failure");
    ck_assert(!any_step_uses(rb, "gpu_reset") && !any_step_uses(rb, "reboot"));
    ck_assert(!any_step_uses(rb, "resume") && step_uses(rb, "steps", "escalate"));

    /* NVLink: reset then verify the links. */
    rb = rb_doc(rbs, "rb-gpu-nvlink-error");
    verify_checks(rb, checks, sizeof checks);
    ck_assert(strstr(checks, "nvlink") != NULL);

    /* Thermal and power: nothing destructive, facilities ticket. */
    const char *soft[] = {"rb-gpu-thermal", "rb-gpu-power", "rb-nic-flapping",
                          "rb-gpu-sram-ecc-rate", "rb-node-disk-full"};
    for (size_t i = 0; i < sizeof soft / sizeof *soft; i++) {
        const fm_runbook *r = fm_runbook_find(rbs, soft[i]);
        ck_assert_msg(r && !r->destructive, "%s", soft[i]);
        ck_assert(!any_step_uses(r->doc, "gpu_reset") && !any_step_uses(r->doc, "reboot") &&
                  !any_step_uses(r->doc, "cancel_jobs") && !any_step_uses(r->doc, "requeue_jobs"));
    }
    ck_assert(step_uses(rb_doc(rbs, "rb-gpu-thermal"), "steps", "ticket"));
    verify_checks(rb_doc(rbs, "rb-gpu-thermal"), checks, sizeof checks);
    ck_assert(strstr(checks, "temp") != NULL);
    ck_assert(!any_step_uses(rb_doc(rbs, "rb-gpu-power"), "drain"));

    /* NIC flapping: evidence and a network ticket, node stays in. */
    rb = rb_doc(rbs, "rb-nic-flapping");
    ck_assert(step_uses(rb, "steps", "diag_bundle") && step_uses(rb, "steps", "ticket"));
    ck_assert(!any_step_uses(rb, "drain"));

    /* Stale state: always a human. */
    ck_assert_int_eq(fm_runbook_find(rbs, "rb-stale-compute-state")->autonomy, FM_AUTONOMY_HITL);

    /* IB down: jobs moved off with the node excluded, network owns the fix. */
    rb = rb_doc(rbs, "rb-ib-link-down");
    ck_assert(step_uses(rb, "steps", "requeue_jobs"));
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(json_object_get(rb, "on_failure"), "escalate"), "team")),
                     "network");
    fm_runbooks_free(rbs);
}
END_TEST

/* --- broken runbooks ------------------------------------------------------------- */

typedef struct bad_case {
    const char *file;
    int line;
    const char *pointer;
    const char *why; /* substring of the message */
} bad_case;

static const bad_case bad_cases[] = {
    {"rb-bad-unknown-action.yaml", 13, "/steps/1/action", "unknown action 'run_script'"},
    {"rb-bad-args.yaml", 16, "/steps/1/args/gpu", "gpu_reset: must match exactly one oneOf"},
    {"rb-bad-shell-field.yaml", 16, "/steps/1/command", "unknown property 'command'"},
    {"rb-bad-shell-arg.yaml", 15, "/steps/0/args/reason", "must match pattern"},
    {"rb-bad-duplicate-step.yaml", 14, "/steps/2/id",
     "duplicate step id 'drain' (first at line 12)"},
    {"rb-bad-version-type.yaml", 3, "/version", "must be integer, got string"},
    {"rb-bad-destructive-read.yaml", 7, "/autonomy", "destructive runbook needs autonomy hitl"},
    {"rb-bad-cancel-canary.yaml", 7, "/autonomy", "always needs a human approval"},
    {"rb-bad-undeclared-destructive.yaml", 8, "/destructive", "step 'reset' is destructive"},
    {"rb-bad-unverified-resume.yaml", 14, "/verification", "verification must check"},
    {"rb-bad-timeout.yaml", 12, "/steps/0/timeout_s", "over the drain action's maximum"},
    {"rb-bad-unknown-class.yaml", 4, "/fault_classes/0", "unknown fault class 'gpu_haunted'"},
    {"rb-bad-unknown-class.yaml", 4, "/fault_classes/1", "has scope job"},
    {"rb-bad-name-mismatch.yaml", 2, "/id", "does not match the file name"},
    {"rb-bad-no-on-failure.yaml", 2, "/on_failure", "required property missing"},
    {"rb-bad-resume-in-steps.yaml", 13, "/steps/1/action", "resume belongs in on_success"},
};

/* A scratch runbook directory holding the taxonomy and the named files. */
static void scratch_dir(char *dir, size_t len, const char *const *files, size_t n)
{
    snprintf(dir, len, "/tmp/fm-rb-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char real[PATH_MAX], link[PATH_MAX + 64];
    ck_assert_ptr_nonnull(realpath(DIR_OK "/fault-classes.yaml", real));
    snprintf(link, sizeof link, "%s/fault-classes.yaml", dir);
    ck_assert_int_eq(symlink(real, link), 0);
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(realpath(files[i], real) != NULL, "missing %s", files[i]);
        snprintf(link, sizeof link, "%s/%s", dir, strrchr(files[i], '/') + 1);
        ck_assert_int_eq(symlink(real, link), 0);
    }
}

static void scratch_rm(const char *dir, const char *const *files, size_t n)
{
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/fault-classes.yaml", dir);
    unlink(p);
    for (size_t i = 0; i < n; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, strrchr(files[i], '/') + 1);
        unlink(p);
    }
    rmdir(dir);
}

START_TEST(test_bad_refused)
{
    const bad_case *c = &bad_cases[_i];
    char path[256], dir[64];
    snprintf(path, sizeof path, DIR_BAD "/%s", c->file);
    const char *files[] = {path};
    scratch_dir(dir, sizeof dir, files, 1);

    json_t *problems = fm_runbooks_check(dir);
    char want[512];
    snprintf(want, sizeof want, "%s/%s:%d: %s: ", dir, c->file, c->line, c->pointer);
    bool found = false;
    size_t i;
    json_t *p;
    json_array_foreach(problems, i, p)
    {
        const char *s = json_string_value(p);
        if (!strncmp(s, want, strlen(want)) && strstr(s, c->why)) found = true;
    }
    if (!found)
        json_array_foreach(problems, i, p) fprintf(stderr, "  got: %s\n", json_string_value(p));
    ck_assert_msg(found, "no problem '%s...%s'", want, c->why);
    json_decref(problems);

    struct fm_runbooks *rbs = (struct fm_runbooks *)1;
    fm_err err = {0};
    ck_assert_int_ne(fm_runbooks_open(dir, &rbs, &err), 0);
    ck_assert_ptr_null(rbs);
    ck_assert_int_eq(err.code, FM_ERR_INVALID);
    ck_assert_msg(strstr(err.text, c->file) != NULL, "%s", err.text);
    scratch_rm(dir, files, 1);
}
END_TEST

/* Every fixture is refused, and one bad file refuses the whole catalog. */
START_TEST(test_all_or_nothing)
{
    const char *files[] = {DIR_OK "/rb-gpu-hang.yaml", DIR_BAD "/rb-bad-args.yaml",
                           DIR_BAD "/rb-bad-version-type.yaml"};
    char dir[64];
    scratch_dir(dir, sizeof dir, files, 3);
    json_t *problems = fm_runbooks_check(dir);
    /* Both broken files named; the good one only for sharing gpu_hang. */
    bool args_seen = false, version_seen = false;
    size_t k;
    json_t *q;
    json_array_foreach(problems, k, q)
    {
        const char *s = json_string_value(q);
        if (strstr(s, "rb-bad-args.yaml:16:")) args_seen = true;
        if (strstr(s, "rb-bad-version-type.yaml:3:")) version_seen = true;
        if (strstr(s, "rb-gpu-hang.yaml"))
            ck_assert_ptr_nonnull(strstr(s, "already has a runbook"));
    }
    ck_assert(args_seen && version_seen);
    json_decref(problems);
    struct fm_runbooks *rbs = NULL;
    fm_err err = {0};
    ck_assert_int_ne(fm_runbooks_open(dir, &rbs, &err), 0);
    ck_assert_ptr_null(rbs);
    scratch_rm(dir, files, 3);

    /* Two runbooks claiming one class would make diagnose ambiguous. */
    const char *dup[] = {DIR_OK "/rb-gpu-hang.yaml", DIR_BAD "/rb-bad-timeout.yaml"};
    scratch_dir(dir, sizeof dir, dup, 2);
    problems = fm_runbooks_check(dir);
    bool found = false;
    size_t i;
    json_t *p;
    json_array_foreach(problems, i, p) if (strstr(json_string_value(p), "already has a runbook"))
        found = true;
    ck_assert(found);
    json_decref(problems);
    scratch_rm(dir, dup, 2);

    /* No taxonomy, no catalog; a missing directory says where to set it. */
    problems = fm_runbooks_check("/nonexistent/fm-runbooks");
    ck_assert_uint_ge(json_array_size(problems), 1);
    ck_assert_ptr_nonnull(strstr(json_string_value(json_array_get(problems, 0)), "fault-classes"));
    json_decref(problems);
}
END_TEST

/* --- directory resolution and the tools ------------------------------------------- */

START_TEST(test_dir_rules)
{
    char buf[512];
    setenv("FLEETMCP_RUNBOOKS", "/env/rb", 1);
    ck_assert_str_eq(fm_runbooks_dir(NULL, buf, sizeof buf), "/env/rb");
    unsetenv("FLEETMCP_RUNBOOKS");
    fm_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.root = json_pack("{s:{s:s}}", "runbooks", "dir", "rb");
    snprintf(cfg.path, sizeof cfg.path, "/etc/fleetmcp/fleetmcp.yaml");
    ck_assert_str_eq(fm_runbooks_dir(&cfg, buf, sizeof buf), "/etc/fleetmcp/rb");
    json_object_set_new(json_object_get(cfg.root, "runbooks"), "dir", json_string("/abs/rb"));
    ck_assert_str_eq(fm_runbooks_dir(&cfg, buf, sizeof buf), "/abs/rb");
    json_decref(cfg.root);
    /* Default: beside the executable (build/tests/..: none), else the share dir. */
    fm_runbooks_dir(NULL, buf, sizeof buf);
    ck_assert_msg(strstr(buf, "runbooks") != NULL, "%s", buf);
}
END_TEST

static const fm_tool_def *tool(const char *name)
{
    for (size_t i = 0; i < fm_tool_count; i++)
        if (!strcmp(fm_tool_table[i].name, name)) return &fm_tool_table[i];
    ck_abort_msg("tool %s not registered", name);
    return NULL;
}

/* Runs a handler with args (JSON text); checks a success against the
 * tool's outputSchema.  Returns the new result or NULL with *err. */
static json_t *run_tool(fm_ctx *ctx, const char *name, const char *args, fm_err *err)
{
    const fm_tool_def *t = tool(name);
    json_t *a = json_loads(args, 0, NULL);
    json_t *in = json_loads(t->input_schema, 0, NULL);
    ck_assert_msg(fm_schema_validate(in, a, NULL) == 0, "%s: bad test args %s", name, args);
    fm_call call = {.ctx = ctx, .tool = t, .args = a};
    json_t *r = t->handler(&call, err);
    if (r) {
        json_t *out = json_loads(t->output_schema, 0, NULL);
        fm_err e = {0};
        ck_assert_msg(fm_schema_validate(out, r, &e) == 0, "%s output: %s", name, e.text);
        json_decref(out);
    }
    json_decref(in);
    json_decref(a);
    return r;
}

START_TEST(test_tools)
{
    fm_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    setenv("FLEETMCP_RUNBOOKS", DIR_OK, 1);
    fm_err err = {0};
    ck_assert_ptr_null(ctx.runbooks); /* nothing loaded until first use */

    json_t *r = run_tool(&ctx, "runbook_list", "{}", &err);
    ck_assert_msg(r != NULL, "%s", err.text);
    struct fm_runbooks *first = ctx.runbooks;
    ck_assert_ptr_nonnull(first);
    ck_assert_int_eq(json_integer_value(json_object_get(r, "count")), (json_int_t)first->count);
    json_t *one = json_array_get(json_object_get(r, "runbooks"), 0);
    ck_assert_ptr_nonnull(json_object_get(one, "steps"));
    ck_assert_ptr_null(json_object_get(one, "description")); /* compact */
    json_decref(r);

    r = run_tool(&ctx, "runbook_list", "{\"fault_class\":\"gpu_fallen_off_bus\"}", &err);
    ck_assert_int_eq(json_integer_value(json_object_get(r, "count")), 1);
    ck_assert_str_eq(
        json_string_value(json_object_get(json_array_get(json_object_get(r, "runbooks"), 0), "id")),
        "rb-gpu-fallen-off-bus");
    json_decref(r);
    ck_assert_ptr_eq(ctx.runbooks, first); /* loaded once */

    r = run_tool(&ctx, "runbook_list", "{\"autonomy\":\"create\"}", &err);
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(r, "runbooks"), i, v)
    {
        ck_assert_str_eq(json_string_value(json_object_get(v, "autonomy")), "create");
        ck_assert(json_is_false(json_object_get(v, "destructive")));
    }
    ck_assert_int_ge(json_integer_value(json_object_get(r, "count")), 3);
    json_decref(r);

    r = run_tool(&ctx, "runbook_list", "{\"fault_class\":\"oom_batch_size\"}", &err);
    ck_assert_int_eq(json_integer_value(json_object_get(r, "count")), 0);
    json_decref(r);

    r = run_tool(&ctx, "runbook_get", "{\"id\":\"rb-gpu-ecc-uncorrectable\"}", &err);
    ck_assert_msg(r != NULL, "%s", err.text);
    ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(r, "source")),
                                 "runbooks/rb-gpu-ecc-uncorrectable.yaml"));
    ck_assert_int_ge(json_integer_value(json_object_get(r, "version")), 1);
    json_t *steps = json_object_get(r, "steps");
    bool saw_cancel = false;
    json_array_foreach(steps, i, v)
    {
        ck_assert(json_is_integer(json_object_get(v, "timeout_s")));
        if (!strcmp(json_string_value(json_object_get(v, "action")), "cancel_jobs")) {
            saw_cancel = true;
            ck_assert(json_is_true(json_object_get(v, "needs_approval")));
            ck_assert(json_is_true(json_object_get(v, "destructive")));
        }
        if (!strcmp(json_string_value(json_object_get(v, "action")), "drain"))
            ck_assert_str_eq(json_string_value(json_object_get(v, "state_after")), "quarantined");
    }
    ck_assert(saw_cancel);
    json_t *rb0 = json_array_get(json_object_get(r, "rollback"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(rb0, "state_after")), "quarantined");
    /* The catalog itself is untouched by the view. */
    ck_assert_ptr_null(json_object_get(
        json_array_get(json_object_get(
                           fm_runbook_find(ctx.runbooks, "rb-gpu-ecc-uncorrectable")->doc, "steps"),
                       0),
        "state_after"));
    json_decref(r);

    fm_err nf = {0};
    ck_assert_ptr_null(run_tool(&ctx, "runbook_get", "{\"id\":\"rb-no-such\"}", &nf));
    ck_assert_int_eq(nf.code, FM_ERR_NOT_FOUND);

    fm_runbooks_free(ctx.runbooks);
    ctx.runbooks = NULL;

    /* A broken catalog: the tool says what and where, nothing half-loaded. */
    char dir[64];
    const char *files[] = {DIR_BAD "/rb-bad-args.yaml"};
    scratch_dir(dir, sizeof dir, files, 1);
    setenv("FLEETMCP_RUNBOOKS", dir, 1);
    fm_err bad = {0};
    ck_assert_ptr_null(run_tool(&ctx, "runbook_list", "{}", &bad));
    ck_assert_int_eq(bad.code, FM_ERR_INVALID);
    ck_assert_msg(strstr(bad.text, "rb-bad-args.yaml:16: /steps/1/args/gpu") != NULL, "%s",
                  bad.text);
    ck_assert_ptr_null(ctx.runbooks);
    scratch_rm(dir, files, 1);
    unsetenv("FLEETMCP_RUNBOOKS");
}
END_TEST

static Suite *runbooks_suite(void)
{
    Suite *s = suite_create("runbooks");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_actions);
    tcase_add_test(tc, test_shipped_clean);
    tcase_add_test(tc, test_every_node_class);
    tcase_add_test(tc, test_guidance);
    tcase_add_loop_test(tc, test_bad_refused, 0, (int)(sizeof bad_cases / sizeof bad_cases[0]));
    tcase_add_test(tc, test_all_or_nothing);
    tcase_add_test(tc, test_dir_rules);
    tcase_add_test(tc, test_tools);
    suite_add_tcase(s, tc);
    return s;
}

FM_TEST_MAIN(runbooks_suite)
