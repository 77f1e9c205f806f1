/* The gate's decision table without the stack: a fake Slurm backend and a
 * fake SSH executor (const ops structs like the real ones) count every
 * side effect, so each refusal proves that nothing ran: no Slurm update,
 * no SSH command, no ticket.  One positive control per counter shows the
 * counters do see a call that is allowed. */
#include <signal.h>
#include <sys/wait.h>

#include "fleetmcp/fm_db.h"

#include "fleetmcp/fm_approval.h"
#include "fleetmcp/fm_exec.h"
#include "fleetmcp/fm_gate.h"
#include "fleetmcp/fm_guardrails.h"
#include "fleetmcp/fm_plan.h"
#include "fleetmcp/fm_policy.h"
#include "fleetmcp/fm_registry.h"
#include "fleetmcp/fm_slurm.h"
#include "fleetmcp/fm_util.h"
#include "fleetmcp/fm_workflow.h"
#include "fm_test.h"
#include "test_core_helpers.h"

/* ---- fakes ----------------------------------------------------------- */

typedef struct fake {
    int updates, requeues, cancels; /* Slurm mutations */
    int commands;                   /* SSH commands of any kind */
    char drained[64];               /* the node update_node drained */
    bool die_on_update;             /* kill -9 this process in update_node */
    bool die_on_requeue;            /* kill -9 this process in requeue_job */
    const char *peek;               /* store update_node reads the node's state from */
    char state_mid[32];             /* that state, read on a second connection mid-step */
} fake;

static fake F;

static json_t *fake_node_json(const char *name)
{
    /* Four idle nodes of one partition, each in its own rack: a drain of
     * one passes blast radius and capacity. */
    static const char *const names[] = {"gpu-a01", "gpu-a02", "gpu-a03", "gpu-a04"};
    for (size_t i = 0; i < 4; i++) {
        if (strcmp(names[i], name)) continue;
        char rack[16];
        snprintf(rack, sizeof rack, "r%zu", i + 1);
        bool drained = !strcmp(F.drained, name);
        return json_pack("{s:s, s:[s], s:s, s:n, s:n, s:[s], s:[s, s], s:i, s:i, s:i, s:n,"
                         " s:{s:s, s:s, s:s}, s:b}",
                         "name", name, "state", drained ? "DRAIN" : "IDLE", "reason", "",
                         "reason_user", "reason_time", "partitions", "gpu", "features", rack,
                         "sku=h100", "gpus", 8, "cpus", 64, "memory_mb", 512000, "boot_time",
                         "domains", "rack", rack, "sku", "h100", "partition", "gpu",
                         "fleetmcp_owned", drained);
    }
    return NULL;
}

static json_t *fake_nodes(void *st, const fm_slurm_node_filter *f, fm_err *err)
{
    (void)st, (void)f, (void)err;
    json_t *all = json_array();
    static const char *const names[] = {"gpu-a01", "gpu-a02", "gpu-a03", "gpu-a04"};
    for (size_t i = 0; i < 4; i++)
        json_array_append_new(all, fake_node_json(names[i]));
    return all;
}

static json_t *fake_node(void *st, const char *name, fm_err *err)
{
    (void)st;
    json_t *n = fake_node_json(name);
    if (!n) fm_err_set(err, FM_ERR_NOT_FOUND, "fake slurm: no node %s", name);
    return n;
}

static json_t *fake_jobs(void *st, const fm_slurm_job_filter *f, fm_err *err)
{
    (void)st, (void)err;
    /* gpu-a03 runs one job; the others are idle. */
    if (f && f->node && !strcmp(f->node, "gpu-a03"))
        return json_pack("[{s:i, s:s, s:s}]", "job_id", 7, "state", "RUNNING", "nodes", "gpu-a03");
    return json_array();
}

static int fake_update(void *st, const char *name, fm_slurm_node_op op, const char *reason,
                       fm_err *err)
{
    (void)st, (void)reason, (void)err;
    if (F.die_on_update) raise(SIGKILL); /* mid-step, before Slurm heard of it */
    if (F.peek) {
        /* What another server (or fleet_status) sees while the step runs:
         * its own connection to the store, not this call's. */
        fm_db *db = NULL;
        fm_err e = {0};
        ck_assert_msg(fm_db_open_readonly(F.peek, &db, &e) == 0, "%s", e.text);
        fm_db_stmt *s = NULL;
        ck_assert_int_eq(
            fm_db_prepare_v2(db, "SELECT state FROM node_states WHERE node=?", -1, &s, NULL),
            FM_DB_OK);
        fm_db_bind_text(s, 1, name, -1, FM_DB_STATIC);
        if (fm_db_step(s) == FM_DB_ROW)
            snprintf(F.state_mid, sizeof F.state_mid, "%s", (const char *)fm_db_column_text(s, 0));
        fm_db_finalize(s);
        fm_db_close(db);
    }
    F.updates++;
    if (op == FM_SLURM_DRAIN) snprintf(F.drained, sizeof F.drained, "%s", name);
    return 0;
}

static int fake_requeue(void *st, uint64_t id, const char *exclude, fm_err *err)
{
    (void)st, (void)id, (void)exclude, (void)err;
    if (F.die_on_requeue) raise(SIGKILL); /* mid-step: did Slurm requeue it?  Nobody knows */
    F.requeues++;
    return 0;
}

static int fake_cancel(void *st, uint64_t id, fm_err *err)
{
    (void)st, (void)id, (void)err;
    F.cancels++;
    return 0;
}

static void fake_close(void *st)
{
    (void)st;
}

static const struct fm_slurm_ops fake_slurm = {
    .name = "fake",
    .nodes = fake_nodes,
    .node = fake_node,
    .jobs = fake_jobs,
    .update_node = fake_update,
    .requeue_job = fake_requeue,
    .cancel_job = fake_cancel,
    .partition_capacity = NULL, /* on purpose: capacity counts nodes() */
    .close = fake_close,
};

static int fake_run(void *st, const char *node, fm_cmd_id cmd, const fm_cmd_args *a,
                    fm_exec_result *out, fm_err *err)
{
    (void)st, (void)node, (void)cmd, (void)a, (void)out;
    F.commands++;
    return fm_err_set(err, FM_ERR_UNAVAILABLE, "fake ssh: no node answers"), -1;
}

static const struct fm_exec_ops fake_exec = {.name = "fake", .run = fake_run, .close = fake_close};

/* ---- helpers --------------------------------------------------------- */

static void open_with(test_server *t, const char *yaml, bool backends)
{
    memset(&F, 0, sizeof F);
    ts_open(t, yaml);
    if (backends) {
        t->ctx.be.slurm = &fake_slurm;
        t->ctx.be.exec = &fake_exec;
    }
}

static int idx(const char *name)
{
    for (size_t i = 0; i < fm_tool_count; i++)
        if (!strcmp(fm_tool_table[i].name, name)) return (int)i;
    ck_abort_msg("no tool %s", name);
    return -1;
}

static long long tickets(test_server *t)
{
    fm_db_stmt *s = NULL;
    long long n = -1;
    ck_assert_int_eq(
        fm_db_prepare_v2(t->ctx.store.db, "SELECT count(*) FROM tickets", -1, &s, NULL), FM_DB_OK);
    if (fm_db_step(s) == FM_DB_ROW) n = fm_db_column_int64(s, 0);
    fm_db_finalize(s);
    return n;
}

static void assert_nothing_ran(test_server *t, long long tickets_before)
{
    ck_assert_int_eq(F.updates, 0);
    ck_assert_int_eq(F.requeues, 0);
    ck_assert_int_eq(F.cancels, 0);
    ck_assert_int_eq(F.commands, 0);
    ck_assert_int_eq(tickets(t), tickets_before);
}

/* The whole pipeline (schema, gate, audit, handler) for one call; returns
 * the result's text (a static copy) and whether it is an error. */
static const char *call(test_server *t, const char *tool, const char *args_json, bool *is_error)
{
    static char text[1024];
    json_t *args = json_loads(args_json, 0, NULL);
    ck_assert_ptr_nonnull(args);
    json_t *r = fm_tools_call(&t->ctx, idx(tool), args, NULL, NULL);
    json_decref(args);
    ck_assert_ptr_nonnull(r);
    *is_error = json_is_true(json_object_get(r, "isError"));
    const char *s = ts_text(r);
    snprintf(text, sizeof text, "%s", s ? s : "");
    json_decref(r);
    return text;
}

static void expect_refused(test_server *t, const char *tool, const char *args, const char *word)
{
    long long before = tickets(t);
    bool is_error = false;
    const char *text = call(t, tool, args, &is_error);
    ck_assert_msg(is_error, "%s was not refused: %s", tool, text);
    size_t n = strlen(word);
    ck_assert_msg(!strncmp(text, word, n) && text[n] == ':', "%s: wanted %s, got %s", tool, word,
                  text);
    assert_nothing_ran(t, before);
}

static const char DRAIN[] = "{\"node\":\"gpu-a01\",\"reason\":\"xid 79\"}";
static const char TICKET[] =
    "{\"summary\":\"xid\",\"node\":\"gpu-a01\",\"fault_class\":\"gpu_fallen_off_bus\"}";

/* ---- the order, walked --------------------------------------------- */

/* One node_drain with every refusal true at once; each step lifts the
 * refusal that fired and sees the next one in fm_gate.h's order. */
START_TEST(order_walk_node_action)
{
    static const struct {
        const char *yaml;
        bool backends, killswitch;
        fm_gate_verdict verdict;
        fm_code code;
        const char *says;
    } steps[] = {
        /* 1. visible */
        {"mode: fleet\ndisabled_tools: [node_drain]\nexclusions:\n  nodes: [gpu-a01]\n", false,
         true, FM_GATE_DENY, FM_ERR_DENIED, "disabled_tools"},
        {"mode: fleet\nread_only: true\nexclusions:\n  nodes: [gpu-a01]\n", false, true,
         FM_GATE_DENY, FM_ERR_DENIED, "read_only"},
        /* 2. backends */
        {"mode: fleet\nexclusions:\n  nodes: [gpu-a01]\n", false, true, FM_GATE_DENY,
         FM_ERR_NOT_CONFIGURED, "slurm"},
        /* 4. kill switch (3, reads, does not apply) */
        {"mode: fleet\nexclusions:\n  nodes: [gpu-a01]\n", true, true, FM_GATE_DENY, FM_ERR_DENIED,
         "kill switch"},
        /* 6. guardrails, then approval */
        {"mode: fleet\nexclusions:\n  nodes: [gpu-a01]\n", true, false, FM_GATE_DENY,
         FM_ERR_GUARDRAIL, "exclusions"},
        {"mode: fleet\n", true, false, FM_GATE_DENY, FM_ERR_APPROVAL, "needs a human approval"},
        /* 7. shadow: the same decision, recorded, nothing runs */
        {"mode: shadow\n", true, false, FM_GATE_SHADOW, FM_ERR_APPROVAL, "mode is shadow"},
    };
    for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
        test_server t;
        open_with(&t, steps[i].yaml, steps[i].backends);
        if (steps[i].killswitch)
            fm_store_setting_set(&t.ctx.store, "killswitch", "engaged: unit", NULL);
        json_t *args = json_loads(DRAIN, 0, NULL);
        fm_gate_decision d;
        fm_gate_decide(&t.ctx, idx("node_drain"), args, &d);
        ck_assert_msg(d.verdict == steps[i].verdict && d.code == steps[i].code &&
                          strstr(d.reason, steps[i].says),
                      "step %zu: verdict %d code %s: %s", i, d.verdict, fm_strerror(d.code),
                      d.reason);
        /* The whole pipeline agrees and runs nothing. */
        bool is_error = false;
        const char *text = call(&t, "node_drain", DRAIN, &is_error);
        ck_assert_msg(is_error, "step %zu ran: %s", i, text);
        assert_nothing_ran(&t, 0);
        json_decref(args);
        ts_close(&t);
    }
}
END_TEST

/* A create tool: visible, kill switch, rate limit, allow. */
START_TEST(order_walk_create_tool)
{
    test_server t;
    open_with(&t, "mode: fleet\ndisabled_tools: [ticket_create]\n", true);
    ck_assert_int_lt(fm_registry_find(&t.ctx, "ticket_create"), 0);
    expect_refused(&t, "ticket_create", TICKET, "DENIED");
    ts_close(&t);

    open_with(&t, "mode: fleet\nrate_limits:\n  ticket_create: 1\n", true);
    fm_store_setting_set(&t.ctx.store, "killswitch", "engaged: unit", NULL);
    expect_refused(&t, "ticket_create", TICKET, "DENIED");
    fm_store_setting_set(&t.ctx.store, "killswitch", "released", NULL);
    /* Positive control: the first call runs and opens a ticket. */
    bool is_error = true;
    const char *text = call(&t, "ticket_create", TICKET, &is_error);
    ck_assert_msg(!is_error, "%s", text);
    ck_assert_int_eq(tickets(&t), 1);
    /* The second is over the limit and opens none. */
    expect_refused(
        &t, "ticket_create",
        "{\"summary\":\"x\",\"node\":\"gpu-a02\",\"fault_class\":\"gpu_fallen_off_bus\"}",
        "RATELIMITED");
    ts_close(&t);
}
END_TEST

/* ---- every refusal path, through the whole pipeline ------------------ */

START_TEST(refusals_run_nothing)
{
    test_server t;
    /* Backend missing: reads and node actions alike, before anything. */
    open_with(&t, "mode: fleet\n", false);
    expect_refused(&t, "slurm_nodes", "{}", "NOTCONFIGURED");
    expect_refused(&t, "node_diag_bundle", "{\"node\":\"gpu-a01\"}", "NOTCONFIGURED");
    expect_refused(&t, "node_drain", DRAIN, "NOTCONFIGURED");
    expect_refused(&t, "health_probe", "{\"node\":\"gpu-a01\"}", "NOTCONFIGURED");
    ts_close(&t);

    /* Kill switch: every mutation but the exempt ones. */
    open_with(&t, "mode: fleet\n", true);
    fm_store_setting_set(&t.ctx.store, "killswitch", "engaged: unit", NULL);
    expect_refused(&t, "node_drain", DRAIN, "DENIED");
    expect_refused(&t, "node_resume", "{\"node\":\"gpu-a01\"}", "DENIED");
    expect_refused(&t, "job_requeue", "{\"node\":\"gpu-a01\",\"job_id\":7}", "DENIED");
    expect_refused(&t, "gpu_reset", "{\"node\":\"gpu-a01\",\"gpu\":0}", "DENIED");
    expect_refused(&t, "ticket_create", TICKET, "DENIED");
    for (size_t i = 0; i < fm_tool_count; i++) {
        fm_gate_decision d;
        fm_gate_decide(&t.ctx, (int)i, NULL, &d);
        bool exempt = fm_tool_table[i].flags & FM_TOOL_KILLSWITCH_EXEMPT;
        if (fm_tool_table[i].autonomy == FM_AUTONOMY_READ || exempt)
            ck_assert_msg(!strstr(d.reason, "every mutation is stopped"), "%s: %s",
                          fm_tool_table[i].name, d.reason);
        else
            ck_assert_msg(d.verdict == FM_GATE_DENY && strstr(d.reason, "kill switch"),
                          "%s passed the kill switch", fm_tool_table[i].name);
    }
    ts_close(&t);

    /* No approval: a plan is recorded, nothing runs. */
    open_with(&t, "mode: fleet\n", true);
    /* Arguments that fail the input schema never reach the gate. */
    expect_refused(&t, "node_drain", "{\"node\":\"a;b\",\"reason\":\"xid 79\"}", "INVALID");
    expect_refused(&t, "ticket_create", "{\"summary\":\"x\"}", "INVALID");
    expect_refused(&t, "node_drain", DRAIN, "APPROVAL");
    expect_refused(&t, "node_reboot", DRAIN, "APPROVAL");
    expect_refused(&t, "job_requeue", "{\"node\":\"gpu-a01\",\"job_id\":7}", "APPROVAL");
    expect_refused(&t, "health_probe", "{\"node\":\"gpu-a01\"}", "APPROVAL"); /* not a canary */
    expect_refused(&t, "ticket_close", "{\"key\":\"FM-1\"}", "APPROVAL");
    /* A forged approval id is refused the same way. */
    expect_refused(
        &t, "node_drain",
        "{\"node\":\"gpu-a01\",\"reason\":\"xid 79\",\"approval_id\":\"ap-0123456789abcdef\"}",
        "APPROVAL");
    ts_close(&t);

    /* Guardrails: an excluded node. */
    open_with(&t, "mode: fleet\nexclusions:\n  nodes: [gpu-a01]\n", true);
    expect_refused(&t, "node_drain", DRAIN, "GUARDRAIL");
    expect_refused(&t, "health_probe", "{\"node\":\"gpu-a01\"}", "GUARDRAIL");
    ts_close(&t);

    /* Shadow: recorded, nothing runs, even a canary on a canary node. */
    open_with(&t, "mode: shadow\ncanary:\n  nodes: [gpu-a01]\n", true);
    expect_refused(&t, "node_drain", DRAIN, "SHADOW");
    expect_refused(&t, "health_probe", "{\"node\":\"gpu-a01\"}", "SHADOW");
    bool is_error = false;
    const char *text = call(&t, "node_drain", DRAIN, &is_error);
    ck_assert_msg(strstr(text, "refused with APPROVAL: "), "%s", text);
    text = call(&t, "health_probe", "{\"node\":\"gpu-a01\"}", &is_error);
    ck_assert_msg(strstr(text, "would run"), "%s", text);
    assert_nothing_ran(&t, 0);
    ts_close(&t);
}
END_TEST

/* ---- positive controls: an allowed call does reach the fakes --------- */

/* A fresh Ed25519 key pair: the private key in path (a mkstemp
 * template), the public key into pub. */
static void make_key(char *path, char *pub, size_t len)
{
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    unlink(path); /* keygen creates it with mode 0600 */
    fm_err err = {0};
    ck_assert_msg(fm_approval_keygen(path, pub, len, &err) == 0, "%s", err.text);
}

/* who signs plan_id with key, as `mcp-cli approve` does; the approval id
 * into ap. */
static void approve_plan(test_server *t, const char *key, const char *who, const char *plan_id,
                         char ap[FM_APPROVAL_ID_LEN])
{
    fm_err err = {0};
    json_t *plan = fm_plan_get(&t->ctx, plan_id, &err);
    ck_assert_msg(plan != NULL, "%s", err.text);
    const char *hash = fm_json_str(plan, "hash", NULL);
    ck_assert_ptr_nonnull(hash);
    int64_t expires = fm_now_ms() + 600000;
    char msg[512], sig[256];
    size_t n = fm_approval_message(msg, sizeof msg, plan_id, hash, who, expires);
    ck_assert_msg(fm_approval_sign(key, msg, n, sig, sizeof sig, &err) == 0, "%s", err.text);
    ck_assert_msg(fm_approval_record(&t->ctx, plan_id, who, expires, sig, ap, &err) == 0, "%s",
                  err.text);
    json_decref(plan);
}

START_TEST(allowed_calls_reach_the_fakes)
{
    char key[] = "/tmp/fm-gate-key-XXXXXX";
    char pub[128];
    make_key(key, pub, sizeof pub);
    char yaml[512];
    snprintf(yaml, sizeof yaml,
             "mode: fleet\ncanary:\n  nodes: [gpu-a02]\napprovals:\n  keys:\n    - id: alice\n"
             "      public_key: %s\n",
             pub);
    test_server t;
    open_with(&t, yaml, true);

    /* A canary tool on a canary node needs no approval: it reaches SSH. */
    bool is_error = false;
    call(&t, "health_probe", "{\"node\":\"gpu-a02\"}", &is_error);
    ck_assert_int_gt(F.commands, 0);

    /* node_drain with a signed approval reaches Slurm once. */
    fm_gate_decision d;
    json_t *args = json_loads(DRAIN, 0, NULL);
    fm_gate_decide(&t.ctx, idx("node_drain"), args, &d);
    ck_assert_int_eq(d.code, FM_ERR_APPROVAL);
    char ap[FM_APPROVAL_ID_LEN];
    approve_plan(&t, key, "alice", d.plan_id, ap);
    json_object_set_new(args, "approval_id", json_string(ap));
    char *approved = json_dumps(args, JSON_COMPACT);
    const char *text = call(&t, "node_drain", approved, &is_error);
    ck_assert_msg(!is_error, "%s", text);
    ck_assert_int_eq(F.updates, 1);
    ck_assert_str_eq(F.drained, "gpu-a01");
    /* Single use: the same approval again runs nothing more. */
    text = call(&t, "node_drain", approved, &is_error);
    ck_assert_msg(is_error && !strncmp(text, "APPROVAL:", 9), "%s", text);
    ck_assert_int_eq(F.updates, 1);
    free(approved);
    json_decref(args);
    ts_close(&t);
    unlink(key);
}
END_TEST

/* A fresh key for alice (path: a mkstemp template) and a fleet-mode
 * config in yaml that trusts it for approvals. */
static void alice_config(char *key, char *yaml, size_t len)
{
    char pub[128];
    make_key(key, pub, sizeof pub);
    snprintf(yaml, len, "mode: fleet\napprovals:\n  keys:\n    - id: alice\n      public_key: %s\n",
             pub);
}

/* Workflow wf ended with status, and no workflow holds node. */
static void assert_ended(test_server *t, const char *wf, const char *node, const char *status)
{
    fm_err err = {0};
    json_t *got = fm_workflow_get(&t->ctx, wf, &err);
    ck_assert_msg(got != NULL, "%s", err.text);
    ck_assert_str_eq(fm_json_str(got, "status", ""), status);
    json_decref(got);
    char other[FM_WORKFLOW_ID_LEN];
    fm_workflow_live_on_node(&t->ctx, node, NULL, other, sizeof other);
    ck_assert_str_eq(other, "");
}

/* t on store with the fakes as its backends, their counters zeroed. */
static void open_store_fakes(test_server *t, const char *yaml, const char *store)
{
    memset(&F, 0, sizeof F);
    ts_open_store(t, yaml, store);
    t->ctx.be.slurm = &fake_slurm;
    t->ctx.be.exec = &fake_exec;
}

/* A first server on store calls tool with args_json and dies (SIGKILL)
 * inside its step: in the fake Slurm's requeue_job when on_requeue, else
 * in its update_node. */
static void die_mid_call(const char *yaml, const char *store, const char *tool,
                         const char *args_json, bool on_requeue)
{
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        test_server c;
        open_store_fakes(&c, yaml, store);
        F.die_on_update = !on_requeue;
        F.die_on_requeue = on_requeue;
        bool e = false;
        call(&c, tool, args_json, &e);
        _exit(3); /* not reached: killed in the fake */
    }
    int status = 0;
    ck_assert_int_eq(waitpid(child, &status, 0), child);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child status %d", status);
}

/* Recovery through the same tool: node_drain's server is killed (-9)
 * mid-step, after the reservation and before Slurm heard of the drain.
 * Its one-step workflow then holds the node: another tool is refused by
 * running_workflow and nothing runs, but node_drain called again (the
 * gate asks for an approval again, as for any hitl call) is let through
 * by the gate for that very workflow, and the handler resumes it: the
 * node is drained once, under the first call's owner, and the workflow
 * ends done, so no node is left drained by nobody. */
START_TEST(tool_resumes_its_own_dead_workflow)
{
    char key[] = "/tmp/fm-gate-key-XXXXXX", db[] = "/tmp/fm-gate-dead-XXXXXX", yaml[512];
    alice_config(key, yaml, sizeof yaml);
    fm_test_temp_db(db);
    const char *store = fm_test_store(db);
    test_server t;
    open_store_fakes(&t, yaml, store);
    fm_gate_decision d;
    json_t *args = json_loads(DRAIN, 0, NULL);
    fm_gate_decide(&t.ctx, idx("node_drain"), args, &d);
    ck_assert_int_eq(d.code, FM_ERR_APPROVAL);
    char plan1[sizeof d.plan_id], ap[FM_APPROVAL_ID_LEN];
    snprintf(plan1, sizeof plan1, "%s", d.plan_id);
    approve_plan(&t, key, "alice", plan1, ap);
    json_object_set_new(args, "approval_id", json_string(ap));
    char *approved = json_dumps(args, JSON_COMPACT);
    json_decref(args);
    ts_close(&t);

    /* The first server: dies inside the drain step. */
    die_mid_call(yaml, store, "node_drain", approved, false);
    free(approved);

    open_store_fakes(&t, yaml, store);
    char wf[FM_WORKFLOW_ID_LEN], st[32];
    fm_workflow_live_on_node(&t.ctx, "gpu-a01", NULL, wf, sizeof wf);
    ck_assert_msg(wf[0], "the dead call's workflow still holds gpu-a01");
    fm_node_state_get(&t.ctx, "gpu-a01", st, sizeof st);
    ck_assert_str_eq(st, "quarantined");

    /* Another tool on that node: refused, nothing runs. */
    expect_refused(&t, "node_reboot", "{\"node\":\"gpu-a01\",\"reason\":\"xid 79\"}", "GUARDRAIL");
    /* The same tool with other arguments: its approval would name what
     * the dead workflow does not, so refused too, nothing runs. */
    expect_refused(&t, "node_drain", "{\"node\":\"gpu-a01\",\"reason\":\"ecc\"}", "GUARDRAIL");
    /* The same tool again: past running_workflow, to the approval. */
    args = json_loads(DRAIN, 0, NULL);
    fm_gate_decide(&t.ctx, idx("node_drain"), args, &d);
    ck_assert_msg(d.code == FM_ERR_APPROVAL, "%s", d.reason);
    ck_assert_str_eq(d.resume_workflow, wf);
    ck_assert_int_eq(F.updates, 0);
    approve_plan(&t, key, "alice", d.plan_id, ap);
    json_object_set_new(args, "approval_id", json_string(ap));
    approved = json_dumps(args, JSON_COMPACT);
    bool is_error = true;
    const char *text = call(&t, "node_drain", approved, &is_error);
    ck_assert_msg(!is_error, "%s", text);
    char want[128];
    snprintf(want, sizeof want, "fleetmcp:%s: xid 79", plan1);
    ck_assert_msg(strstr(text, want), "the drain is the first call's: %s", text);
    ck_assert_int_eq(F.updates, 1);
    ck_assert_str_eq(F.drained, "gpu-a01");
    assert_ended(&t, wf, "gpu-a01", "done");
    fm_node_state_get(&t.ctx, "gpu-a01", st, sizeof st);
    ck_assert_str_eq(st, "quarantined");
    free(approved);
    json_decref(args);
    ts_close(&t);
    unlink(key);
    fm_test_unlink_db(db);
}
END_TEST

/* args_json approved by alice for tool: the gate's plan signed, the
 * approval id added.  Returns the arguments' text (free it). */
static char *approved_call_args(test_server *t, const char *key, const char *tool,
                                const char *args_json)
{
    fm_gate_decision d;
    json_t *args = json_loads(args_json, 0, NULL);
    ck_assert_ptr_nonnull(args);
    fm_gate_decide(&t->ctx, idx(tool), args, &d);
    ck_assert_msg(d.code == FM_ERR_APPROVAL, "%s: %s", tool, d.reason);
    char ap[FM_APPROVAL_ID_LEN];
    approve_plan(t, key, "alice", d.plan_id, ap);
    json_object_set_new(args, "approval_id", json_string(ap));
    char *text = json_dumps(args, JSON_COMPACT);
    json_decref(args);
    return text;
}

/* While a single-node tool's step runs, the node's reservation says what
 * is happening to it, as the action's data declares (state_during): a
 * reboot (or GPU reset) is repairing it, a drain quarantines it.  Read on
 * a second connection while the fake Slurm holds the step, as another
 * server's fleet_status would. */
START_TEST(reservation_state_during_the_step)
{
    char key[] = "/tmp/fm-gate-key-XXXXXX", yaml[512];
    alice_config(key, yaml, sizeof yaml);
    static const struct {
        const char *tool, *args, *during;
    } cases[] = {
        {"node_reboot", "{\"node\":\"gpu-a01\",\"reason\":\"bad psu\"}", "repairing"},
        {"node_drain", "{\"node\":\"gpu-a01\",\"reason\":\"xid 79\"}", "quarantined"},
    };
    /* One store each: the first's node stays in remediation. */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char db[] = "/tmp/fm-gate-mid-XXXXXX";
        fm_test_temp_db(db);
        const char *store = fm_test_store(db);
        test_server t;
        open_store_fakes(&t, yaml, store);
        char *approved = approved_call_args(&t, key, cases[i].tool, cases[i].args);
        F.peek = store;
        bool is_error = true;
        const char *text = call(&t, cases[i].tool, approved, &is_error);
        F.peek = NULL;
        ck_assert_msg(!is_error, "%s: %s", cases[i].tool, text);
        ck_assert_int_eq(F.updates, 1);
        ck_assert_msg(!strcmp(F.state_mid, cases[i].during), "%s mid-step: '%s', wanted %s",
                      cases[i].tool, F.state_mid, cases[i].during);
        free(approved);
        ts_close(&t);
        fm_test_unlink_db(db);
    }
    unlink(key);
}
END_TEST

/* An interrupted step that is not safe to repeat is not repeated: the
 * server dies (-9) inside job_requeue's requeue, so nobody knows whether
 * Slurm requeued the job.  job_requeue called again with the same
 * arguments (approved again) runs nothing, fails CONFLICT with what to do
 * next (check the job in Slurm, call again if it did not take effect),
 * and ends the dead workflow, so the node is not held by it: the next
 * call is decided like any other (an approval, not running_workflow). */
START_TEST(interrupted_requeue_is_not_repeated)
{
    char key[] = "/tmp/fm-gate-key-XXXXXX", db[] = "/tmp/fm-gate-rq-XXXXXX", yaml[512];
    alice_config(key, yaml, sizeof yaml);
    fm_test_temp_db(db);
    const char *store = fm_test_store(db);
    static const char REQUEUE[] = "{\"node\":\"gpu-a03\",\"job_id\":7}";
    test_server t;
    open_store_fakes(&t, yaml, store);
    char *approved = approved_call_args(&t, key, "job_requeue", REQUEUE);
    ts_close(&t);

    die_mid_call(yaml, store, "job_requeue", approved, true);
    free(approved);

    open_store_fakes(&t, yaml, store);
    char wf[FM_WORKFLOW_ID_LEN];
    fm_workflow_live_on_node(&t.ctx, "gpu-a03", NULL, wf, sizeof wf);
    ck_assert_msg(wf[0], "the dead call's workflow still holds gpu-a03");
    approved = approved_call_args(&t, key, "job_requeue", REQUEUE);
    bool is_error = false;
    const char *text = call(&t, "job_requeue", approved, &is_error);
    free(approved);
    ck_assert_msg(is_error && !strncmp(text, "CONFLICT: ", 10), "%s", text);
    /* What to do next, in the message: the step, where to look, what to
     * call, and that the workflow no longer holds the node. */
    static const char *const says[] = {
        "job_requeue on gpu-a03 not resumed", "requeue_jobs step", "not safe to repeat",
        "slurm_jobs {\"node\":\"gpu-a03\"}",  "scontrol show job", "call job_requeue again",
        "is ended (failed) and holds nothing"};
    for (size_t i = 0; i < sizeof says / sizeof says[0]; i++)
        ck_assert_msg(strstr(text, says[i]), "no '%s' in: %s", says[i], text);
    ck_assert_msg(strstr(text, wf), "the workflow is named: %s", text);
    assert_nothing_ran(&t, tickets(&t));
    assert_ended(&t, wf, "gpu-a03", "failed");
    /* The operator's next call is decided afresh: an approval to ask
     * for, nothing refused by the dead workflow. */
    fm_gate_decision d;
    json_t *args = json_loads(REQUEUE, 0, NULL);
    fm_gate_decide(&t.ctx, idx("job_requeue"), args, &d);
    ck_assert_msg(d.code == FM_ERR_APPROVAL, "%s", d.reason);
    ck_assert_str_eq(d.resume_workflow, "");
    json_decref(args);
    ts_close(&t);
    unlink(key);
    fm_test_unlink_db(db);
}
END_TEST

/* A guardrail names the role an approval needs (guardrails.approval_roles),
 * decided by the gate beside the runbook's: blast_radius judges every
 * drain, so a drain's approver must hold fleet-admin.  An approver
 * without it is refused and nothing runs; one with it releases the drain,
 * and the audit row names them in its approvers column. */
START_TEST(guardrail_names_the_approval_role)
{
    char kalice[] = "/tmp/fm-gate-key-XXXXXX", kbob[] = "/tmp/fm-gate-key-XXXXXX";
    char palice[128], pbob[128];
    make_key(kalice, palice, sizeof palice);
    make_key(kbob, pbob, sizeof pbob);
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "mode: fleet\nguardrails:\n  approval_roles:\n    blast_radius: fleet-admin\n"
             "approvals:\n  keys:\n    - id: alice\n      public_key: %s\n      roles: [oncall]\n"
             "    - id: bob\n      public_key: %s\n      roles: [oncall, fleet-admin]\n",
             palice, pbob);
    test_server t;
    open_with(&t, yaml, true);
    fm_gate_decision d;
    json_t *args = json_loads(DRAIN, 0, NULL);
    fm_gate_decide(&t.ctx, idx("node_drain"), args, &d);
    ck_assert_int_eq(d.code, FM_ERR_APPROVAL);
    ck_assert_msg(strstr(d.reason, "with role fleet-admin (guardrail blast_radius)"),
                  "the refusal says whose approval it takes: %s", d.reason);
    char plan[sizeof d.plan_id], ap[FM_APPROVAL_ID_LEN];
    snprintf(plan, sizeof plan, "%s", d.plan_id);

    approve_plan(&t, kalice, "alice", plan, ap);
    json_object_set_new(args, "approval_id", json_string(ap));
    char *approved = json_dumps(args, JSON_COMPACT);
    long long before = tickets(&t);
    bool is_error = false;
    const char *text = call(&t, "node_drain", approved, &is_error);
    ck_assert_msg(is_error && !strncmp(text, "APPROVAL:", 9) &&
                      strstr(text, "alice lacks role fleet-admin (guardrails.approval_roles."
                                   "blast_radius)"),
                  "an approver without the guardrail's role is refused: %s", text);
    assert_nothing_ran(&t, before);
    free(approved);

    approve_plan(&t, kbob, "bob", plan, ap);
    json_object_set_new(args, "approval_id", json_string(ap));
    approved = json_dumps(args, JSON_COMPACT);
    text = call(&t, "node_drain", approved, &is_error);
    ck_assert_msg(!is_error, "an approver with the role releases the drain: %s", text);
    ck_assert_int_eq(F.updates, 1);
    ck_assert_str_eq(F.drained, "gpu-a01");
    free(approved);
    /* Only the one who counted is on the action's rows. */
    fm_db_stmt *s = NULL;
    ck_assert_int_eq(fm_db_prepare_v2(t.ctx.store.db,
                                      "SELECT count(*) FROM audit WHERE tool='node_drain' AND"
                                      " phase IN ('intent','result') AND approvers='bob'",
                                      -1, &s, NULL),
                     FM_DB_OK);
    ck_assert_int_eq(fm_db_step(s), FM_DB_ROW);
    ck_assert_int_eq(fm_db_column_int64(s, 0), 2);
    fm_db_finalize(s);
    json_decref(args);
    ts_close(&t);
    unlink(kalice);
    unlink(kbob);
}
END_TEST

/* Visibility is the gate's: tools/list and name lookup agree with it. */
START_TEST(visibility_is_the_gates)
{
    test_server t;
    open_with(&t, "read_only: true\ndisabled_tools: [audit_query]\n", true);
    for (size_t i = 0; i < fm_tool_count; i++) {
        bool vis = fm_gate_visible(&t.ctx, (int)i, NULL, 0);
        ck_assert_int_eq(fm_registry_find(&t.ctx, fm_tool_table[i].name) >= 0, vis);
        bool want = strcmp(fm_tool_table[i].name, "audit_query") &&
                    (fm_tool_table[i].autonomy == FM_AUTONOMY_READ ||
                     (fm_tool_table[i].flags & FM_TOOL_READ_ONLY_EXEMPT));
        ck_assert_msg(vis == want, "%s", fm_tool_table[i].name);
    }
    ts_close(&t);
}
END_TEST

/* ---- diagnosis confidence and idle GPUs ------------------------------ */

/* The output's "diagnosis" of a repair_plan call and its plan id. */
static json_t *plan_repair(test_server *t, const char *node, const char *fc, char *plan_id)
{
    char args[200];
    snprintf(args, sizeof args, "{\"node\":\"%s\",\"fault_class\":\"%s\"}", node, fc);
    json_t *a = json_loads(args, 0, NULL);
    json_t *r = fm_tools_call(&t->ctx, idx("repair_plan"), a, NULL, NULL);
    json_decref(a);
    ck_assert_ptr_nonnull(r);
    const json_t *sc = json_object_get(r, "structuredContent");
    ck_assert_msg(!json_is_true(json_object_get(r, "isError")) && sc, "repair_plan: %s",
                  ts_text(r));
    snprintf(plan_id, FM_PLAN_ID_LEN, "%s", fm_json_str(sc, "plan_id", ""));
    json_t *diag = json_deep_copy(json_object_get(sc, "diagnosis"));
    json_object_set_new(diag, "approval_needed",
                        json_boolean(json_is_true(json_object_get(sc, "approval_needed"))));
    json_decref(r);
    return diag;
}

static void record_from(test_server *t, const char *node, const char *fc, double conf, bool act,
                        const char *source, bool collected_act)
{
    fm_diagnosis d = {
        .confidence = conf, .act_threshold = 0.7, .act = act, .collected_act = collected_act};
    snprintf(d.fault_class, sizeof d.fault_class, "%s", fc);
    snprintf(d.source, sizeof d.source, "%s", source);
    fm_err err = {0};
    ck_assert_msg(fm_diagnosis_record(&t->ctx, node, &d, NULL, &err) == 0, "%s", err.text);
}

/* A diagnosis as node mode records it from fleetmcp's own evidence. */
static void record(test_server *t, const char *node, const char *fc, double conf, bool act)
{
    record_from(t, node, fc, conf, act, "collected", act);
}

/* A confident diagnosis as node mode records it, dated shift_ms from now. */
static void record_dated(test_server *t, const char *node, const char *fc, long long shift_ms)
{
    record(t, node, fc, 0.84, true);
    ck_assert_int_eq(fm_db_run(t->ctx.store.db, "UPDATE diagnoses SET at_ms=at_ms+?", NULL, NULL,
                               "i", (int64_t)shift_ms),
                     FM_DB_DONE);
}

/* repair_execute of plan_id without an approval: refused with APPROVAL
 * whose reason says want, and nothing ran. */
static void execute_refused(test_server *t, const char *plan_id, const char *want)
{
    char args[120];
    snprintf(args, sizeof args, "{\"plan_id\":\"%s\"}", plan_id);
    fm_gate_decision d;
    json_t *a = json_loads(args, 0, NULL);
    fm_gate_decide(&t->ctx, idx("repair_execute"), a, &d);
    json_decref(a);
    ck_assert_msg(d.verdict == FM_GATE_DENY && d.code == FM_ERR_APPROVAL && strstr(d.reason, want),
                  "wanted APPROVAL with '%s', got %s: %s", want, fm_strerror(d.code), d.reason);
    expect_refused(t, "repair_execute", args, "APPROVAL");
}

/* A canary runbook on a canary node runs without a human only on a fresh
 * recorded diagnosis of its class at or above act; otherwise the gate asks
 * for an approval and says why, and nothing is drained. */
START_TEST(diagnosis_gates_canary_repair)
{
    setenv("FLEETMCP_RUNBOOKS", "runbooks", 0);
    test_server t;
    open_with(&t, "mode: fleet\ncanary:\n  nodes: [gpu-a02]\ndiagnose:\n  max_age_s: 600\n", true);
    char plan[FM_PLAN_ID_LEN];

    /* No diagnosis recorded. */
    json_t *dg = plan_repair(&t, "gpu-a02", "node_disk_full", plan);
    ck_assert(json_is_true(json_object_get(dg, "approval_needed")));
    ck_assert_msg(strstr(fm_json_str(dg, "summary", ""), "no diagnosis"), "%s",
                  fm_json_str(dg, "summary", ""));
    json_decref(dg);
    execute_refused(&t, plan, "run diagnose");

    /* Another class: the plan says it disagrees. */
    record(&t, "gpu-a02", "gpu_thermal", 0.9, true);
    dg = plan_repair(&t, "gpu-a02", "node_disk_full", plan);
    ck_assert(json_is_false(json_object_get(dg, "agrees")));
    ck_assert_str_eq(fm_json_str(dg, "fault_class", ""), "gpu_thermal");
    ck_assert_ptr_nonnull(strstr(fm_json_str(dg, "summary", ""), "disagrees"));
    json_decref(dg);
    execute_refused(&t, plan, "disagrees");

    /* The class, below act; then at act but not corroborated. */
    record(&t, "gpu-a02", "node_disk_full", 0.6, false);
    execute_refused(&t, plan, "below the act threshold");
    record(&t, "gpu-a02", "node_disk_full", 0.8, false);
    execute_refused(&t, plan, "not corroborated");

    /* The class, confident, but older than diagnose.max_age_s. */
    record_dated(&t, "gpu-a02", "node_disk_full", -601000);
    execute_refused(&t, plan, "max_age_s");

    /* Confident, but dated an hour ahead (recorded by a host whose clock
     * runs ahead): its age is unknown, so it is not fresh. */
    record_dated(&t, "gpu-a02", "node_disk_full", 3600000);
    execute_refused(&t, plan, "ahead of this server's clock");

    /* Fresh, confident, the plan's class, but resting on the caller's
     * evidence: the caller's signals alone, or collected evidence that
     * alone did not reach act.  Made-up evidence never runs unapproved. */
    record_from(&t, "gpu-a02", "node_disk_full", 0.95, true, "signals", false);
    dg = plan_repair(&t, "gpu-a02", "node_disk_full", plan);
    ck_assert(json_is_true(json_object_get(dg, "approval_needed")));
    ck_assert(json_is_false(json_object_get(dg, "collected_act")));
    ck_assert_msg(strstr(fm_json_str(dg, "summary", ""), "evidence the caller passed"), "%s",
                  fm_json_str(dg, "summary", ""));
    json_decref(dg);
    execute_refused(&t, plan, "evidence the caller passed (source signals)");
    record_from(&t, "gpu-a02", "node_disk_full", 0.95, true, "collected+caller", false);
    execute_refused(&t, plan, "evidence the caller passed (source collected+caller)");

    /* A canary runbook on a node that is not a canary needs an approval
     * whatever its diagnosis. */
    record(&t, "gpu-a01", "node_disk_full", 0.84, true);
    dg = plan_repair(&t, "gpu-a01", "node_disk_full", plan);
    ck_assert(json_is_true(json_object_get(dg, "approval_needed")));
    json_decref(dg);
    execute_refused(&t, plan, "not every node is a canary");

    /* Positive control: fresh, confident, same class, and fleetmcp's
     * collected evidence alone reached act (the caller's lines only added
     * to it).  The plan records the diagnosis and the repair reaches Slurm
     * without an approval. */
    record_from(&t, "gpu-a02", "node_disk_full", 0.84, true, "collected+caller", true);
    dg = plan_repair(&t, "gpu-a02", "node_disk_full", plan);
    ck_assert(json_is_false(json_object_get(dg, "approval_needed")));
    ck_assert(json_is_true(json_object_get(dg, "enough")));
    ck_assert_str_eq(fm_json_str(dg, "fault_class", ""), "node_disk_full");
    ck_assert_ptr_nonnull(json_object_get(dg, "id"));
    json_decref(dg);
    json_t *stored = fm_plan_get(&t.ctx, plan, NULL);
    ck_assert_msg(strstr(fm_json_str(json_object_get(stored, "diagnosis"), "id", ""), "dg-"),
                  "the plan records the diagnosis it acts on");
    json_decref(stored);
    char args[120];
    snprintf(args, sizeof args, "{\"plan_id\":\"%s\"}", plan);
    bool is_error = false;
    call(&t, "repair_execute", args, &is_error);
    ck_assert_int_ge(F.updates, 1);
    ck_assert_str_eq(F.drained, "gpu-a02");
    ts_close(&t);
}
END_TEST

/* diagnose records its answer per node and moves a healthy node to
 * suspect when the top class is between report and act, and back when it
 * reads healthy. */
START_TEST(diagnose_records_and_suspects)
{
    setenv("FLEETMCP_RUNBOOKS", "runbooks", 0);
    test_server t;
    open_with(&t, "mode: fleet\n", true);
    bool is_error = true;
    const char *text = call(&t, "diagnose",
                            "{\"node\":\"gpu-a01\",\"signals\":{\"kernel_log\":"
                            "[\"EXT4-fs warning: No space left on device\"]}}",
                            &is_error);
    ck_assert_msg(!is_error, "%s", text);
    fm_diagnosis d;
    ck_assert_int_eq(fm_diagnosis_latest(&t.ctx, "gpu-a01", &d), 1);
    ck_assert_str_eq(d.fault_class, "node_disk_full");
    ck_assert(d.confidence >= 0.5 && d.confidence < d.act_threshold && !d.act);
    /* node and signals: collected, plus what the caller passed; the
     * class came from the caller's line, not from what was collected */
    ck_assert_str_eq(d.source, "collected+caller");
    ck_assert(!d.collected_act);
    char st[32];
    fm_node_state_get(&t.ctx, "gpu-a01", st, sizeof st);
    ck_assert_str_eq(st, "suspect");
    text = call(&t, "diagnose",
                "{\"node\":\"gpu-a01\",\"signals\":{\"metrics\":[{\"name\":"
                "\"DCGM_FI_DEV_GPU_TEMP\",\"value\":40,\"labels\":{\"gpu\":\"0\"}}]}}",
                &is_error);
    ck_assert_msg(!is_error, "%s", text);
    ck_assert_int_eq(fm_diagnosis_latest(&t.ctx, "gpu-a01", &d), 1);
    ck_assert_str_eq(d.fault_class, "healthy");
    fm_node_state_get(&t.ctx, "gpu-a01", st, sizeof st);
    ck_assert_str_eq(st, "healthy");
    /* Nothing of the fleet was changed by diagnosing: node mode runs its
     * read-only collection commands, and nothing else. */
    ck_assert_int_eq(F.updates, 0);
    ck_assert_int_eq(F.requeues, 0);
    ck_assert_int_eq(F.cancels, 0);
    ck_assert_int_eq(tickets(&t), 0);
    ts_close(&t);
}
END_TEST

/* requires_idle_gpu: running jobs refuse before any command; with no job
 * the GPUs' processes are read, and GPUs that cannot be read count as
 * busy. */
START_TEST(requires_idle_gpu_is_honoured)
{
    test_server t;
    open_with(&t, "mode: fleet\n", true);
    json_t *rb =
        json_pack("{s:s, s:{s:b}}", "id", "rb-idle", "preconditions", "requires_idle_gpu", 1);
    json_t *nodes = json_pack("[s]", "gpu-a03");
    fm_guard_req req = {.action = "rb-idle", .nodes = nodes, .runbook = rb};
    bool ok = true;
    fm_err err = {0};
    json_t *v = fm_guard_check(&t.ctx, &req, &ok, &err);
    ck_assert_msg(v != NULL, "%s", err.text);
    char why[600];
    fm_guard_explain(v, why, sizeof why);
    ck_assert_msg(!ok && strstr(why, "idle_gpu") && strstr(why, "1 job"), "%s", why);
    ck_assert_int_eq(F.commands, 0);
    json_decref(v);

    /* No job on gpu-a04: the GPUs are asked, and unreadable is busy. */
    json_array_set_new(nodes, 0, json_string("gpu-a04"));
    v = fm_guard_check(&t.ctx, &req, &ok, &err);
    ck_assert_ptr_nonnull(v);
    fm_guard_explain(v, why, sizeof why);
    ck_assert_msg(!ok && strstr(why, "cannot be read"), "%s", why);
    ck_assert_int_eq(F.commands, 1);
    json_decref(v);

    /* Without the flag the same node passes the preconditions. */
    json_object_set_new(json_object_get(rb, "preconditions"), "requires_idle_gpu", json_false());
    v = fm_guard_check(&t.ctx, &req, &ok, &err);
    ck_assert_ptr_nonnull(v);
    fm_guard_explain(v, why, sizeof why);
    ck_assert_msg(ok, "%s", why);
    json_decref(v);
    json_decref(nodes);
    json_decref(rb);
    ts_close(&t);
}
END_TEST

static Suite *gate_table_suite(void)
{
    Suite *s = suite_create("gate_table");
    TCase *tc = tcase_create("decisions");
    tcase_add_test(tc, order_walk_node_action);
    tcase_add_test(tc, order_walk_create_tool);
    tcase_add_test(tc, refusals_run_nothing);
    tcase_add_test(tc, allowed_calls_reach_the_fakes);
    tcase_add_test(tc, guardrail_names_the_approval_role);
    tcase_add_test(tc, visibility_is_the_gates);
    tcase_add_test(tc, diagnosis_gates_canary_repair);
    tcase_add_test(tc, diagnose_records_and_suspects);
    tcase_add_test(tc, requires_idle_gpu_is_honoured);
    tcase_add_test(tc, tool_resumes_its_own_dead_workflow);
    tcase_add_test(tc, reservation_state_during_the_step);
    tcase_add_test(tc, interrupted_requeue_is_not_repeated);
    suite_add_tcase(s, tc);
    return s;
}

FM_TEST_MAIN(gate_table_suite)
