/* Workflow engine: plan content and its hash, the planner round trip,
 * crash recovery from a dead owner, the fleet_status summary, and the
 * blast radius and the breaker's capacity share held by two processes
 * racing on one store, and one approval consumed once by two (50 rounds
 * each). */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../src/workflow/wf_int.h"
#include "fleetmcp/fm_alert.h"
#include "fleetmcp/fm_approval.h"
#include "fleetmcp/fm_approval_roles.h"
#include "fleetmcp/fm_audit.h"
#include "fleetmcp/fm_exec.h"
#include "fleetmcp/fm_guardrails.h"
#include "fleetmcp/fm_tickets.h"
#include "fleetmcp/fm_fleet.h"
#include "fleetmcp/fm_plan.h"
#include "fleetmcp/fm_policy.h"
#include "fleetmcp/fm_registry.h"
#include "fleetmcp/fm_runbook.h"
#include "fleetmcp/fm_schema.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_slurm.h"
#include "fleetmcp/fm_util.h"
#include "fleetmcp/fm_workflow.h"
#include "fm_test.h"
#include "fm_tools.gen.h"

/* ---- a fake Slurm: every node in rack r01 unless named gpu-b* ------------ */

/* When set, gpu-a01 is drained (or a01_state) with this reason
 * (ownership tests). */
static const char *a01_reason, *a01_state;

static json_t *fake_node_obj(const char *name)
{
    bool b = !strncmp(name, "gpu-b", 5);
    bool held = a01_reason && !strcmp(name, "gpu-a01");
    bool drained = !strcmp(name, "gpu-a09") || held;
    return json_pack("{s:s, s:[s], s:s, s:[s], s:[s], s:s, s:{s:s, s:s, s:s}, s:b}", "name", name,
                     "state",
                     held && a01_state ? a01_state
                     : drained         ? "DRAIN"
                                       : "IDLE",
                     "reason",
                     held      ? a01_reason
                     : drained ? "fleetmcp:wf-00000000deadbeef: orphan"
                               : "",
                     "partitions", "gpu", "features", b ? "rack=r02" : "rack=r01", "boot_time",
                     "2026-11-23T00:00:00Z", "domains", "rack", b ? "r02" : "r01", "sku", "h100",
                     "partition", "gpu", "fleetmcp_owned", drained);
}

static json_t *fake_nodes(void *st, const fm_slurm_node_filter *f, fm_err *err)
{
    (void)st;
    (void)err;
    json_t *a = json_array();
    static const char *const names[] = {"gpu-a01", "gpu-a02", "gpu-a09", "gpu-b01"};
    for (size_t i = 0; i < 4; i++) {
        if (f && f->reason && strcmp(names[i], "gpu-a09") &&
            !(a01_reason && !strcmp(names[i], "gpu-a01")))
            continue;
        json_array_append_new(a, fake_node_obj(names[i]));
    }
    return a;
}

static json_t *fake_node(void *st, const char *name, fm_err *err)
{
    (void)st;
    (void)err;
    return fake_node_obj(name);
}

/* While set, a job runs on every node (wait steps keep waiting). */
static bool jobs_busy;

static json_t *fake_jobs(void *st, const fm_slurm_job_filter *f, fm_err *err)
{
    (void)st;
    (void)f;
    (void)err;
    return jobs_busy ? json_pack("[{s:i, s:s}]", "job_id", 42, "state", "RUNNING") : json_array();
}

static int slurm_updates;        /* every node change the fake Slurm was asked for */
static char last_reason[256];    /* the reason of the last one */
static fm_slurm_node_op last_op; /* and what it asked for */

static int fake_update(void *st, const char *name, fm_slurm_node_op op, const char *reason,
                       fm_err *err)
{
    slurm_updates++;
    snprintf(last_reason, sizeof last_reason, "%s", reason ? reason : "");
    last_op = op;
    (void)st;
    (void)name;
    (void)op;
    (void)reason;
    (void)err;
    return 0;
}

static int fake_requeue(void *st, uint64_t id, const char *ex, fm_err *err)
{
    (void)st;
    (void)id;
    (void)ex;
    (void)err;
    return 0;
}

static void fake_close(void *st)
{
    (void)st;
}

static int fake_cancel(void *st, uint64_t id, fm_err *err)
{
    (void)st;
    (void)id;
    (void)err;
    return 0;
}

static const struct fm_slurm_ops fake_slurm = {
    .name = "fake",
    .nodes = fake_nodes,
    .node = fake_node,
    .jobs = fake_jobs,
    .update_node = fake_update,
    .requeue_job = fake_requeue,
    .cancel_job = fake_cancel,
    .close = fake_close,
};

static void open_ctx(fm_ctx *ctx, const char *db)
{
    memset(ctx, 0, sizeof *ctx);
    unsetenv("FLEETMCP_CONFIG");
    fm_err err = {0};
    ck_assert_msg(fm_ctx_open(ctx, NULL, db, &err) == 0, "open: %s", err.text);
    if (ctx->be.slurm) ctx->be.slurm->close(ctx->be.slurm_st);
    ctx->be.slurm = &fake_slurm;
    ctx->be.slurm_st = NULL;
}

/* ---- content ------------------------------------------------------------- */

static json_t *runbook_doc(void)
{
    return json_loads(
        "{\"id\":\"rb-test\",\"version\":1,\"fault_classes\":[\"gpu_test\"],\"autonomy\":\"hitl\","
        "\"steps\":[{\"id\":\"drain\",\"action\":\"drain\",\"args\":{\"reason\":\"test\"}},"
        "{\"id\":\"evidence\",\"action\":\"diag_bundle\",\"continue_on_failure\":true}],"
        "\"verification\":[{\"id\":\"v\",\"action\":\"verify_gpu\",\"args\":{\"checks\":[\"xid\"]},"
        "\"timeout_s\":30}],\"on_success\":[{\"id\":\"resume\",\"action\":\"resume\"}],"
        "\"rollback\":[{\"id\":\"keep\",\"action\":\"set_state\",\"args\":{\"state\":"
        "\"quarantined\"}}],"
        "\"on_failure\":{\"escalate\":{\"team\":\"hardware\",\"severity\":\"high\"}}}",
        0, NULL);
}

START_TEST(content_is_stable_and_versioned)
{
    json_t *doc = runbook_doc();
    fm_runbook rb = {.id = "rb-test", .version = 1, .doc = doc};
    json_t *a = fm_workflow_content("gpu-a01", "gpu_test", &rb);
    json_t *b = fm_workflow_content("gpu-a01", "gpu_test", &rb);
    char ha[65], hb[65], hc[65], hd[65];
    fm_plan_hash(a, ha);
    fm_plan_hash(b, hb);
    ck_assert_str_eq(ha, hb);
    json_t *steps = json_object_get(a, "steps");
    ck_assert_int_eq(json_array_size(steps), 6);
    /* default timeouts come from the action catalog */
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(steps, 0), "timeout_s")),
                     fm_action_find("drain")->default_timeout_s);
    ck_assert_str_eq(fm_json_str(json_array_get(steps, 1), "phase", ""), "steps");
    ck_assert(json_is_true(json_object_get(json_array_get(steps, 1), "continue_on_failure")));
    ck_assert_str_eq(fm_json_str(json_array_get(steps, 2), "phase", ""), "verification");
    ck_assert_str_eq(fm_json_str(json_array_get(steps, 4), "phase", ""), "rollback");
    ck_assert_str_eq(fm_json_str(json_array_get(steps, 5), "action", ""), "escalate");
    ck_assert_str_eq(fm_json_str(a, "tool", ""), "repair_execute");
    ck_assert_str_eq(fm_json_str(a, "fault_class", ""), "gpu_test");
    rb.version = 2;
    json_t *c = fm_workflow_content("gpu-a01", "gpu_test", &rb);
    fm_plan_hash(c, hc);
    ck_assert_str_ne(ha, hc);
    rb.version = 1;
    json_t *d = fm_workflow_content("gpu-a02", "gpu_test", &rb);
    fm_plan_hash(d, hd);
    ck_assert_str_ne(ha, hd);
    json_decref(a);
    json_decref(b);
    json_decref(c);
    json_decref(d);
    json_decref(doc);
}
END_TEST

START_TEST(planner_rebuilds_the_same_hash)
{
    const char *dir = getenv("FLEETMCP_RUNBOOKS");
    if (!dir) setenv("FLEETMCP_RUNBOOKS", "runbooks", 1);
    fm_ctx ctx;
    open_ctx(&ctx, fm_test_store(":memory:"));
    fm_err err = {0};
    ck_assert_msg(fm_runbooks_load(&ctx, &err) == 0, "runbooks: %s", err.text);
    const fm_runbook *rb = fm_runbook_for_class(ctx.runbooks, "gpu_fallen_off_bus");
    ck_assert_ptr_nonnull(rb);
    json_t *content = fm_workflow_content("gpu-a01", "gpu_fallen_off_bus", rb);
    json_t *detail = json_pack("{s:s}", "risk", "high");
    char id[FM_PLAN_ID_LEN], h1[65], h2[65];
    ck_assert_int_eq(fm_plan_create(&ctx, content, detail, id, &err), 0);
    json_t *d2 = NULL;
    json_t *again = fm_workflow_plan_content(&ctx, id, &d2, &err);
    ck_assert_msg(again != NULL, "%s", err.text);
    fm_plan_hash(content, h1);
    fm_plan_hash(again, h2);
    ck_assert_str_eq(h1, h2);
    ck_assert(json_is_true(json_object_get(d2, "approval_needed"))); /* hitl runbook */
    ck_assert_str_eq(fm_json_str(d2, "autonomy", ""), "hitl");
    /* a plan that is not a repair plan is refused */
    json_t *other =
        fm_plan_content("node_drain", json_object_get(content, "args"), NULL, NULL, NULL, 0);
    char id2[FM_PLAN_ID_LEN];
    ck_assert_int_eq(fm_plan_create(&ctx, other, detail, id2, &err), 0);
    json_t *d3 = NULL;
    fm_err e2 = {0};
    ck_assert_ptr_null(fm_workflow_plan_content(&ctx, id2, &d3, &e2));
    ck_assert_int_eq(e2.code, FM_ERR_INVALID);
    json_decref(other);
    json_decref(d2);
    json_decref(again);
    json_decref(detail);
    json_decref(content);
    fm_ctx_close(&ctx);
}
END_TEST

/* ---- recovery -------------------------------------------------------------- */

static long long dead_pid(void)
{
    pid_t p = fork();
    if (p == 0) _exit(0);
    waitpid(p, NULL, 0);
    return p;
}

static void insert_wf(fm_ctx *ctx, wf_row *w, const char *steps_json, int at, bool started_row)
{
    memset(w, 0, sizeof *w);
    snprintf(w->node, sizeof w->node, "gpu-a01");
    snprintf(w->fault_class, sizeof w->fault_class, "gpu_test");
    snprintf(w->runbook, sizeof w->runbook, "rb-test");
    w->runbook_version = 1;
    w->content =
        json_pack("{s:s, s:{s:s, s:s}, s:o}", "tool", "repair_execute", "args", "node", "gpu-a01",
                  "fault_class", "gpu_test", "steps", json_loads(steps_json, 0, NULL));
    w->vars = json_object();
    fm_err err = {0};
    ck_assert_int_eq(fm_workflow_init(ctx, &err), 0);
    ck_assert_int_eq(wf_insert(ctx, w, &err), 0);
    w->step_index = at;
    ck_assert_int_eq(wf_save(ctx, w, &err), 0);
    if (started_row) {
        json_t *st = json_array_get(json_object_get(w->content, "steps"), (size_t)at);
        ck_assert_int_ge(wf_step_start(ctx, w, st, "healthy", &err), 0);
    }
    /* The owner dies: another pid, lease gone. */
    char sql[200];
    snprintf(sql, sizeof sql, "UPDATE workflows SET owner_pid=%lld, lease_until_ms=1 WHERE id='%s'",
             dead_pid(), w->id);
    ck_assert_int_eq(fm_db_exec(ctx->store.db, sql, NULL, NULL, NULL), FM_DB_OK);
}

/* A call recovery may act in: a mutating tool the gate let run, in
 * fleet mode. */
static fm_call acting_call(fm_ctx *ctx, int64_t audit_id)
{
    ctx->cfg.mode = FM_MODE_FLEET;
    int ti = fm_registry_find(ctx, "repair_execute");
    ck_assert_int_ge(ti, 0);
    return (fm_call){.ctx = ctx, .tool = &fm_tool_table[ti], .audit_id = audit_id};
}

/* Recovers w (the only dead workflow) in an acting call recorded as
 * audit_id, and returns workflow_get's answer for it (new). */
static json_t *recover_one(fm_ctx *ctx, const wf_row *w, int64_t audit_id)
{
    fm_call call = acting_call(ctx, audit_id);
    ck_assert_int_eq(fm_workflow_recover(ctx, &call), 1);
    fm_err err = {0};
    json_t *got = fm_workflow_get(ctx, w->id, &err);
    ck_assert_msg(got != NULL, "%s", err.text);
    return got;
}

START_TEST(recovery_never_acts_in_reads_or_shadow)
{
    fm_ctx ctx;
    open_ctx(&ctx, fm_test_store(":memory:"));
    wf_row w;
    insert_wf(&ctx, &w,
              "[{\"phase\":\"steps\",\"id\":\"s\",\"action\":\"set_state\",\"args\":"
              "{\"state\":\"suspect\"}}]",
              0, true);
    /* A read tool in fleet mode, and repair_execute itself in shadow mode:
     * neither resumes the orphan or touches its node. */
    fm_call call = acting_call(&ctx, 3);
    int ti = fm_registry_find(&ctx, "workflow_get");
    ck_assert_int_ge(ti, 0);
    fm_call read = {.ctx = &ctx, .tool = &fm_tool_table[ti]};
    ck_assert_int_eq(fm_workflow_recover(&ctx, &read), 0);
    ctx.cfg.mode = FM_MODE_SHADOW;
    ck_assert_int_eq(fm_workflow_recover(&ctx, &call), 0);
    fm_call none = {.ctx = &ctx};
    ctx.cfg.mode = FM_MODE_FLEET;
    ck_assert_int_eq(fm_workflow_recover(&ctx, &none), 0);
    char st[32];
    fm_node_state_get(&ctx, "gpu-a01", st, sizeof st);
    ck_assert_str_ne(st, "suspect");
    fm_err err = {0};
    json_t *got = fm_workflow_get(&ctx, w.id, &err);
    ck_assert_ptr_nonnull(got);
    ck_assert_str_eq(fm_json_str(got, "status", ""), "running");
    json_decref(got);
    /* The acting call does. */
    ck_assert_int_eq(fm_workflow_recover(&ctx, &call), 1);
    fm_node_state_get(&ctx, "gpu-a01", st, sizeof st);
    ck_assert_str_eq(st, "suspect");
    wf_row_free(&w);
    fm_ctx_close(&ctx);
}
END_TEST

START_TEST(recovery_resumes_idempotent_steps)
{
    fm_ctx ctx;
    open_ctx(&ctx, fm_test_store(":memory:"));
    wf_row w;
    insert_wf(&ctx, &w,
              "[{\"phase\":\"steps\",\"id\":\"s1\",\"action\":\"set_state\",\"args\":{\"state\":"
              "\"quarantined\"}},{\"phase\":\"steps\",\"id\":\"s2\",\"action\":\"set_state\","
              "\"args\":{\"state\":\"suspect\"}}]",
              1, true);
    json_t *got = recover_one(&ctx, &w, 7);
    ck_assert_str_eq(fm_json_str(got, "status", ""), "done");
    json_t *steps = json_object_get(got, "steps");
    ck_assert_int_eq(json_array_size(steps), 2); /* the interrupted row, then the re-run */
    ck_assert_str_eq(fm_json_str(json_array_get(steps, 0), "status", ""), "interrupted");
    ck_assert_str_eq(fm_json_str(json_array_get(steps, 1), "status", ""), "done");
    char st[32];
    fm_node_state_get(&ctx, "gpu-a01", st, sizeof st);
    ck_assert_str_eq(st, "suspect");
    /* Nothing left to recover: a second call is a no-op. */
    fm_call again = acting_call(&ctx, 8);
    ck_assert_int_eq(fm_workflow_recover(&ctx, &again), 0);
    json_decref(got);
    wf_row_free(&w);
    fm_ctx_close(&ctx);
}
END_TEST

START_TEST(recovery_escalates_unsafe_steps)
{
    fm_ctx ctx;
    open_ctx(&ctx, fm_test_store(":memory:"));
    wf_row w;
    insert_wf(&ctx, &w,
              "[{\"phase\":\"steps\",\"id\":\"cancel\",\"action\":\"cancel_jobs\",\"args\":{}},"
              "{\"phase\":\"steps\",\"id\":\"later\",\"action\":\"set_state\",\"args\":{\"state\":"
              "\"suspect\"}},{\"phase\":\"rollback\",\"id\":\"keep\",\"action\":\"set_state\","
              "\"args\":{\"state\":\"quarantined\"}}]",
              0, true);
    json_t *got = recover_one(&ctx, &w, 9);
    /* no escalate step in this plan: failed, with the rollback run and
     * the step after the unsafe one skipped */
    ck_assert_str_eq(fm_json_str(got, "status", ""), "failed");
    json_t *steps = json_object_get(got, "steps");
    ck_assert_int_eq(json_array_size(steps), 2);
    ck_assert_str_eq(fm_json_str(json_array_get(steps, 1), "step", ""), "keep");
    ck_assert_int_ge(json_array_size(json_object_get(got, "errors")), 1);
    char st[32];
    fm_node_state_get(&ctx, "gpu-a01", st, sizeof st);
    ck_assert_str_eq(st, "quarantined");
    json_decref(got);
    wf_row_free(&w);
    fm_ctx_close(&ctx);
}
END_TEST

/* A wait step's timeout counts from its first start, stored with its
 * rows: a resume after a crash waits only for what is left (a 4 h
 * wait_idle started over after each crash), and a resume past the
 * deadline fails the step as timed out at once, rollback run. */
static const char wait_steps[] =
    "[{\"phase\":\"steps\",\"id\":\"idle\",\"action\":\"wait_idle\",\"args\":{},"
    "\"timeout_s\":60},{\"phase\":\"rollback\",\"id\":\"keep\",\"action\":\"set_state\","
    "\"args\":{\"state\":\"quarantined\"}}]";

static long long count_where(fm_ctx *ctx, const char *sql, const char *a);

/* Sets what the crashed run stored on the step's first row; deadline 0
 * stores none (a row written before the deadline was stored). */
static void first_row(fm_ctx *ctx, const wf_row *w, long long started, long long deadline)
{
    char sql[300];
    snprintf(sql, sizeof sql,
             "UPDATE workflow_steps SET started_ms=%lld, deadline_ms=%s WHERE workflow_id='%s'",
             started, deadline ? "?" : "NULL", w->id);
    fm_db_stmt *s = NULL;
    ck_assert_int_eq(fm_db_prepare_v2(ctx->store.db, sql, -1, &s, NULL), FM_DB_OK);
    if (deadline) fm_db_bind_int64(s, 1, deadline);
    ck_assert_int_eq(fm_db_step(s), FM_DB_DONE);
    fm_db_finalize(s);
}

/* Resumes w on a busy node; returns how long recovery took (ms) and
 * checks the wait step timed out and the rollback ran. */
static long long resume_busy_wait(fm_ctx *ctx, const wf_row *w, int64_t audit_id)
{
    jobs_busy = true;
    int64_t t0 = fm_mono_us();
    json_t *got = recover_one(ctx, w, audit_id);
    long long took = (fm_mono_us() - t0) / 1000;
    jobs_busy = false;
    ck_assert_str_eq(fm_json_str(got, "status", ""), "failed");
    json_t *steps = json_object_get(got, "steps");
    ck_assert_int_eq(json_array_size(steps), 3); /* interrupted, timed out, rollback */
    ck_assert_str_eq(fm_json_str(json_array_get(steps, 1), "status", ""), "failed");
    ck_assert_str_eq(fm_json_str(json_array_get(steps, 2), "step", ""), "keep");
    json_decref(got);
    return took;
}

START_TEST(wait_deadline_survives_resume)
{
    fm_ctx ctx;
    open_ctx(&ctx, fm_test_store(":memory:"));
    wf_row w;
    /* Past its deadline: timed out at once, without one poll (1 s). */
    insert_wf(&ctx, &w, wait_steps, 0, true);
    first_row(&ctx, &w, fm_now_ms() - 3600000, fm_now_ms() - 1000);
    long long took = resume_busy_wait(&ctx, &w, 21);
    ck_assert_int_lt(took, 900);
    ck_assert_int_eq(count_where(&ctx,
                                 "SELECT count(*) FROM workflow_steps WHERE error LIKE"
                                 " '%counted from the step''s first start%' AND workflow_id=?",
                                 w.id),
                     1);
    wf_row_free(&w);
    /* 1.5 s left of its 60: the resume waits that, not 60 s. */
    insert_wf(&ctx, &w, wait_steps, 0, true);
    first_row(&ctx, &w, fm_now_ms() - 58500, fm_now_ms() + 1500);
    took = resume_busy_wait(&ctx, &w, 22);
    ck_assert_int_ge(took, 1000);
    ck_assert_int_lt(took, 10000);
    wf_row_free(&w);
    /* A first row with no deadline stored (an older build): its start
     * plus the timeout. */
    insert_wf(&ctx, &w, wait_steps, 0, true);
    first_row(&ctx, &w, fm_now_ms() - 61000, 0);
    ck_assert_int_lt(resume_busy_wait(&ctx, &w, 23), 900);
    wf_row_free(&w);
    /* A first start stores now + timeout_s on its row. */
    insert_wf(&ctx, &w, wait_steps, 0, false);
    int64_t t0 = fm_now_ms();
    json_t *got = recover_one(&ctx, &w, 24);
    ck_assert_str_eq(fm_json_str(got, "status", ""), "done");
    long long dl =
        count_where(&ctx, "SELECT deadline_ms FROM workflow_steps WHERE workflow_id=?", w.id);
    ck_assert_int_ge(dl, t0 + 60000);
    ck_assert_int_le(dl, fm_now_ms() + 60000);
    json_decref(got);
    wf_row_free(&w);
    fm_ctx_close(&ctx);
}
END_TEST

/* The engine runs only what the action table holds (test_actions: the
 * loader agrees): a step naming anything else fails as INVALID before it
 * acts, the steps after it are skipped and the rollback runs. */
START_TEST(unknown_action_runs_nothing)
{
    fm_ctx ctx;
    open_ctx(&ctx, fm_test_store(":memory:"));
    wf_row w;
    insert_wf(&ctx, &w,
              "[{\"phase\":\"steps\",\"id\":\"x\",\"action\":\"shell_exec\",\"args\":{}},"
              "{\"phase\":\"steps\",\"id\":\"d\",\"action\":\"drain\",\"args\":{\"reason\":"
              "\"test\"}},{\"phase\":\"rollback\",\"id\":\"keep\",\"action\":\"set_state\","
              "\"args\":{\"state\":\"suspect\"}}]",
              0, false);
    slurm_updates = 0;
    json_t *got = recover_one(&ctx, &w, 11);
    ck_assert_str_eq(fm_json_str(got, "status", ""), "failed");
    json_t *steps = json_object_get(got, "steps");
    ck_assert_int_eq(json_array_size(steps), 2); /* x failed, d skipped, keep ran */
    ck_assert_str_eq(fm_json_str(json_array_get(steps, 0), "status", ""), "failed");
    ck_assert_ptr_nonnull(
        strstr(fm_json_str(json_array_get(steps, 0), "error", ""), "unknown action shell_exec"));
    ck_assert_str_eq(fm_json_str(json_array_get(steps, 1), "step", ""), "keep");
    ck_assert_int_eq(slurm_updates, 0);
    json_decref(got);
    wf_row_free(&w);
    fm_ctx_close(&ctx);
}
END_TEST

/* The kill switch stops every step that acts on a node, in rollback as
 * in the steps: a runbook's rollback may drain, resume or reboot, and
 * recovery under an engaged kill switch (guardrails fail, so it rolls
 * back) reached Slurm through it. */
START_TEST(kill_switch_stops_rollback_that_acts)
{
    fm_ctx ctx;
    open_ctx(&ctx, fm_test_store(":memory:"));
    wf_row w;
    insert_wf(&ctx, &w,
              "[{\"phase\":\"steps\",\"id\":\"d\",\"action\":\"drain\",\"args\":{\"reason\":"
              "\"test\"}},{\"phase\":\"rollback\",\"id\":\"back\",\"action\":\"drain\","
              "\"args\":{\"reason\":\"rollback\"}}]",
              0, false);
    fm_err err = {0};
    ck_assert_int_eq(fm_store_setting_set(&ctx.store, "killswitch", "engaged by test", &err), 0);
    slurm_updates = 0;
    json_t *got = recover_one(&ctx, &w, 12);
    ck_assert_int_eq(slurm_updates, 0);
    const json_t *back = json_array_get(json_object_get(got, "steps"), 0);
    ck_assert_str_eq(fm_json_str(back, "step", ""), "back");
    ck_assert_str_eq(fm_json_str(back, "status", ""), "failed");
    ck_assert_ptr_nonnull(strstr(fm_json_str(back, "error", ""), "kill switch"));
    json_decref(got);
    wf_row_free(&w);
    fm_ctx_close(&ctx);
}
END_TEST

/* A step's tool call is an internal call: the tool's input schema and the
 * gate hold as for a client, and a refusal fails the step with nothing
 * run (no Slurm change; the handler never ran, so no bundle, no ticket). */
START_TEST(internal_calls_are_checked_and_gated)
{
    fm_ctx ctx;
    open_ctx(&ctx, fm_test_store(":memory:"));
    json_object_set_new(ctx.cfg.root, "disabled_tools", json_pack("[s]", "node_diag_bundle"));
    wf_row w;
    insert_wf(&ctx, &w,
              "[{\"phase\":\"steps\",\"id\":\"b\",\"action\":\"diag_bundle\",\"args\":{},"
              "\"continue_on_failure\":true},{\"phase\":\"steps\",\"id\":\"t\",\"action\":"
              "\"ticket\",\"args\":{\"team\":\"hardware\",\"severity\":\"high\"}}]",
              0, false);
    /* A fault class ticket_create's schema refuses reaches no handler. */
    char sql[200];
    snprintf(sql, sizeof sql, "UPDATE workflows SET fault_class='Not A Class' WHERE id='%s'", w.id);
    ck_assert_int_eq(fm_db_exec(ctx.store.db, sql, NULL, NULL, NULL), FM_DB_OK);
    slurm_updates = 0;
    json_t *got = recover_one(&ctx, &w, 13);
    json_t *steps = json_object_get(got, "steps");
    ck_assert_int_eq(json_array_size(steps), 2);
    const char *e0 = fm_json_str(json_array_get(steps, 0), "error", "");
    ck_assert_msg(strstr(e0, "node_diag_bundle (called by the workflow)") &&
                      strstr(e0, "disabled_tools"),
                  "%s", e0);
    const char *e1 = fm_json_str(json_array_get(steps, 1), "error", "");
    ck_assert_msg(strstr(e1, "arguments for ticket_create (called by the workflow)"), "%s", e1);
    ck_assert_str_eq(fm_json_str(json_array_get(steps, 1), "status", ""), "failed");
    ck_assert_int_eq(slurm_updates, 0);
    json_decref(got);
    wf_row_free(&w);
    fm_ctx_close(&ctx);
}
END_TEST

static long long count_where(fm_ctx *ctx, const char *sql, const char *a)
{
    fm_db_stmt *s = NULL;
    ck_assert_int_eq(fm_db_prepare_v2(ctx->store.db, sql, -1, &s, NULL), FM_DB_OK);
    if (a) fm_db_bind_text(s, 1, a, -1, FM_DB_STATIC);
    ck_assert_int_eq(fm_db_step(s), FM_DB_ROW);
    long long n = fm_db_column_int64(s, 0);
    fm_db_finalize(s);
    return n;
}

/* Calls tool's handler as the call pipeline would after the gate allowed
 * it with plan pl-0123 and an approval.  Returns its result (new) or NULL
 * with err. */
static json_t *gated_call(fm_ctx *ctx, const char *tool, json_t *args, fm_err *err)
{
    int ti = fm_registry_find(ctx, tool);
    ck_assert_int_ge(ti, 0);
    fm_call call = {.ctx = ctx,
                    .tool = &fm_tool_table[ti],
                    .args = args,
                    .audit_id = 5,
                    .plan_id = "pl-0123",
                    .approval_id = "ap-0123456789abcdef"};
    json_t *r = fm_tool_table[ti].handler(&call, err);
    fm_err e = {0};
    const fm_schema *out = fm_registry_schema(ctx, ti, 1, &e);
    ck_assert_ptr_nonnull(out);
    ck_assert_msg(!r || fm_schema_check(out, r, &e) == 0, "%s: %s", tool, e.text);
    json_decref(args);
    return r;
}

/* A single-node tool runs as a one-step workflow of its action: a
 * workflow row (the call's plan, the tool's content), one step row and
 * its audit row under the tool, the call's intent as call_ref; the drain
 * is owned by the plan as before, and the result keeps its shape. */
START_TEST(single_node_tools_run_as_one_step_workflows)
{
    fm_ctx ctx;
    open_ctx(&ctx, fm_test_store(":memory:"));
    ctx.cfg.mode = FM_MODE_FLEET;
    slurm_updates = 0;
    fm_err err = {0};
    json_t *r = gated_call(&ctx, "node_drain",
                           json_pack("{s:s, s:s}", "node", "gpu-a01", "reason", "bad dimm"), &err);
    ck_assert_msg(r != NULL, "%s", err.text);
    ck_assert_str_eq(fm_json_str(r, "reason", ""), "fleetmcp:pl-0123: bad dimm");
    ck_assert_str_eq(fm_json_str(r, "remediation_state", ""), "quarantined");
    ck_assert(json_is_true(json_object_get(r, "drained")));
    json_decref(r);
    ck_assert_int_eq(slurm_updates, 1);
    ck_assert_str_eq(last_reason, "fleetmcp:pl-0123: bad dimm");
    char st[32];
    fm_node_state_get(&ctx, "gpu-a01", st, sizeof st);
    ck_assert_str_eq(st, "quarantined");
    ck_assert_int_eq(count_where(&ctx,
                                 "SELECT count(*) FROM workflows WHERE plan_id='pl-0123'"
                                 " AND status='done' AND node=?",
                                 "gpu-a01"),
                     1);
    ck_assert_int_eq(
        count_where(&ctx, "SELECT count(*) FROM workflow_steps WHERE action=?", "drain"), 1);
    ck_assert_int_eq(count_where(&ctx,
                                 "SELECT count(*) FROM audit WHERE phase='step' AND"
                                 " call_ref=5 AND tool=? AND node='gpu-a01'",
                                 "node_drain"),
                     1);
    /* The drain is the plan's, so node_states names the plan too. */
    ck_assert_int_eq(count_where(&ctx,
                                 "SELECT count(*) FROM node_states WHERE node='gpu-a01'"
                                 " AND workflow_id=?",
                                 "pl-0123"),
                     1);

    /* node_resume: the resume step returns the node to service. */
    r = gated_call(&ctx, "node_resume", json_pack("{s:s}", "node", "gpu-a01"), &err);
    ck_assert_msg(r != NULL, "%s", err.text);
    ck_assert(json_is_true(json_object_get(r, "resumed")));
    ck_assert_str_eq(fm_json_str(r, "remediation_state", ""), "returned");
    json_decref(r);
    fm_node_state_get(&ctx, "gpu-a01", st, sizeof st);
    ck_assert_str_eq(st, "returned");
    ck_assert_int_eq(
        count_where(&ctx, "SELECT count(*) FROM workflow_steps WHERE action=?", "resume"), 1);

    /* node_reboot: the reboot action in its nextstate RESUME form (the
     * tool's action_args), so Slurm returns the node itself; owned by the
     * call's plan, the node repairing, the result in the tool's shape. */
    slurm_updates = 0;
    r = gated_call(&ctx, "node_reboot",
                   json_pack("{s:s, s:s}", "node", "gpu-b01", "reason", "bad psu"), &err);
    ck_assert_msg(r != NULL, "%s", err.text);
    ck_assert(json_is_true(json_object_get(r, "reboot_requested")));
    ck_assert_str_eq(fm_json_str(r, "reason", ""), "fleetmcp:pl-0123: bad psu");
    ck_assert_str_eq(fm_json_str(r, "boot_time_before", ""), "2026-11-23T00:00:00Z");
    json_decref(r);
    ck_assert_int_eq(slurm_updates, 1);
    ck_assert_int_eq(last_op, FM_SLURM_REBOOT);
    ck_assert_str_eq(last_reason, "fleetmcp:pl-0123: bad psu");
    fm_node_state_get(&ctx, "gpu-b01", st, sizeof st);
    ck_assert_str_eq(st, "repairing");
    ck_assert_int_eq(count_where(&ctx,
                                 "SELECT count(*) FROM audit WHERE phase='step' AND"
                                 " tool=? AND node='gpu-b01'",
                                 "node_reboot"),
                     1);
    ck_assert_int_eq(count_where(&ctx,
                                 "SELECT count(*) FROM workflows WHERE status='done' AND"
                                 " node=?",
                                 "gpu-b01"),
                     1);

    /* job_requeue of a job not on the node: refused before any workflow. */
    long long before = count_where(&ctx, "SELECT count(*) FROM workflows WHERE node<>?", "");
    r = gated_call(&ctx, "job_requeue", json_pack("{s:s, s:i}", "node", "gpu-a01", "job_id", 42),
                   &err);
    ck_assert_ptr_null(r);
    ck_assert_int_eq(err.code, FM_ERR_NOT_FOUND);
    ck_assert_int_eq(count_where(&ctx, "SELECT count(*) FROM workflows WHERE node<>?", ""), before);
    fm_ctx_close(&ctx);
}
END_TEST

START_TEST(live_owner_is_left_alone)
{
    fm_ctx ctx;
    open_ctx(&ctx, fm_test_store(":memory:"));
    wf_row w;
    insert_wf(&ctx, &w,
              "[{\"phase\":\"steps\",\"id\":\"s\",\"action\":\"set_state\",\"args\":"
              "{\"state\":\"suspect\"}}]",
              0, false);
    /* Back to a live owner (this process) with a fresh lease. */
    char sql[200];
    snprintf(sql, sizeof sql,
             "UPDATE workflows SET owner_pid=%d, lease_until_ms=%lld WHERE id='%s'", (int)getpid(),
             (long long)(fm_now_ms() + 60000), w.id);
    ck_assert_int_eq(fm_db_exec(ctx.store.db, sql, NULL, NULL, NULL), FM_DB_OK);
    fm_call call = acting_call(&ctx, 0);
    ck_assert_int_eq(fm_workflow_recover(&ctx, &call), 0);
    json_t *sum = fm_workflow_status_summary(&ctx);
    ck_assert_int_eq(json_integer_value(json_object_get(sum, "active_workflows")), 1);
    ck_assert_int_eq(json_array_size(json_object_get(sum, "orphaned_workflows")), 0);
    json_decref(sum);
    wf_row_free(&w);
    fm_ctx_close(&ctx);
}
END_TEST

/* Runs sql with one integer parameter (a stamp on the store's clock). */
static void exec_at(fm_ctx *ctx, const char *sql, int64_t at)
{
    ck_assert_int_eq(fm_db_run(ctx->store.db, sql, NULL, NULL, "i", at), FM_DB_DONE);
}

START_TEST(summary_reports_orphaned_drains)
{
    fm_ctx ctx;
    open_ctx(&ctx, fm_test_store(":memory:"));
    json_t *sum = fm_workflow_status_summary(&ctx);
    json_t *drains = json_object_get(sum, "orphaned_drains");
    ck_assert_int_eq(json_array_size(drains), 1);
    ck_assert_str_eq(fm_json_str(json_array_get(drains, 0), "node", ""), "gpu-a09");
    ck_assert_str_eq(fm_json_str(json_array_get(drains, 0), "owner", ""), "wf-00000000deadbeef");
    ck_assert_int_eq(json_integer_value(json_object_get(sum, "active_workflows")), 0);
    ck_assert_ptr_nonnull(json_object_get(sum, "by_state"));
    ck_assert_ptr_nonnull(json_object_get(sum, "recent_failures"));
    /* The "fleetmcp:" prefix alone is not ownership (slurm_node's check):
     * no workflow of this store owns it, and a human is told so. */
    ck_assert(json_is_false(json_object_get(json_array_get(drains, 0), "fleetmcp_owned")));
    ck_assert_ptr_nonnull(
        strstr(fm_json_str(json_array_get(drains, 0), "next", ""), "not fleetmcp's"));
    json_decref(sum);
    /* Once that workflow is this store's, on that node (ended, its drain
     * left): ours. */
    wf_row w;
    insert_wf(&ctx, &w, "[]", 0, false);
    char sql[200];
    snprintf(sql, sizeof sql,
             "UPDATE workflows SET id='wf-00000000deadbeef', node='gpu-a09', status='failed'"
             " WHERE id='%s'",
             w.id);
    ck_assert_int_eq(fm_db_exec(ctx.store.db, sql, NULL, NULL, NULL), FM_DB_OK);
    sum = fm_workflow_status_summary(&ctx);
    drains = json_object_get(sum, "orphaned_drains");
    ck_assert_int_eq(json_array_size(drains), 1);
    ck_assert(json_is_true(json_object_get(json_array_get(drains, 0), "fleetmcp_owned")));
    json_decref(sum);
    wf_row_free(&w);
    /* A single-node tool's drain (owner call-9) while its workflow runs
     * is not orphaned; once its owner is dead, it is, and ours. */
    insert_wf(&ctx, &w, "[]", 0, false);
    json_object_set_new(w.content, "call_owner", json_string("call-9"));
    char *c = json_dumps(w.content, JSON_COMPACT);
    ck_assert_int_eq(fm_db_run(ctx.store.db,
                               "UPDATE workflows SET content=?, call_ref=9, owner_pid=?,"
                               " owner_host=?, lease_until_ms=? WHERE id=?",
                               NULL, NULL, "titit", c, (int64_t)getpid(), wf_host(),
                               fm_store_now_ms(&ctx.store) + 60000, w.id),
                     FM_DB_DONE);
    free(c);
    a01_reason = "fleetmcp:call-9: drained by node_drain";
    sum = fm_workflow_status_summary(&ctx);
    drains = json_object_get(sum, "orphaned_drains");
    ck_assert_int_eq(json_array_size(drains), 1); /* gpu-a09's only */
    ck_assert_str_eq(fm_json_str(json_array_get(drains, 0), "node", ""), "gpu-a09");
    json_decref(sum);
    exec_at(&ctx, "UPDATE workflows SET lease_until_ms=1, owner_pid=1 WHERE call_ref=?", 9);
    sum = fm_workflow_status_summary(&ctx);
    drains = json_object_get(sum, "orphaned_drains");
    ck_assert_int_eq(json_array_size(drains), 2);
    ck_assert_str_eq(fm_json_str(json_array_get(drains, 0), "node", ""), "gpu-a01");
    ck_assert(json_is_true(json_object_get(json_array_get(drains, 0), "fleetmcp_owned")));
    json_decref(sum);
    a01_reason = NULL;
    wf_row_free(&w);
    fm_ctx_close(&ctx);
}
END_TEST

/* kill -9 of the process that owns a running workflow, on another host:
 * this one cannot see that host's processes, so it leaves the workflow
 * while the lease runs, then takes it over and finishes it. */
START_TEST(kill9_owner_on_other_host_taken_over_after_lease)
{
    char db[] = "/tmp/fm-wf-kill9-XXXXXX";
    fm_test_temp_db(db);
    const char *store = fm_test_store(db);
    static const char steps[] =
        "[{\"phase\":\"steps\",\"id\":\"s1\",\"action\":\"set_state\",\"args\":{\"state\":"
        "\"quarantined\"}},{\"phase\":\"steps\",\"id\":\"s2\",\"action\":\"set_state\","
        "\"args\":{\"state\":\"suspect\"}}]";
    int ready[2];
    ck_assert_int_eq(pipe(ready), 0);
    pid_t owner = fork();
    if (owner == 0) {
        /* The owner: another host, mid-way through step s2, then killed. */
        close(ready[0]);
        setenv("FLEETMCP_HOST_ID", "host-gone", 1);
        fm_ctx c;
        memset(&c, 0, sizeof c);
        fm_err e = {0};
        if (fm_ctx_open(&c, NULL, store, &e) || fm_workflow_init(&c, &e)) _exit(2);
        wf_row w;
        memset(&w, 0, sizeof w);
        snprintf(w.node, sizeof w.node, "gpu-a01");
        snprintf(w.fault_class, sizeof w.fault_class, "gpu_test");
        snprintf(w.runbook, sizeof w.runbook, "rb-test");
        w.runbook_version = 1;
        w.content =
            json_pack("{s:s, s:{s:s, s:s}, s:o}", "tool", "repair_execute", "args", "node",
                      "gpu-a01", "fault_class", "gpu_test", "steps", json_loads(steps, 0, NULL));
        w.vars = json_object();
        if (wf_insert(&c, &w, &e)) _exit(2);
        w.step_index = 1;
        json_t *st = json_array_get(json_object_get(w.content, "steps"), 1);
        if (wf_save(&c, &w, &e) || wf_step_start(&c, &w, st, "healthy", &e) < 0) _exit(2);
        if (write(ready[1], w.id, sizeof w.id) != (ssize_t)sizeof w.id) _exit(2);
        for (int i = 0; i < 600; i++)
            sleep(1); /* bounded: killed long before */
        _exit(3);
    }
    close(ready[1]);
    char id[sizeof((wf_row *)0)->id] = "";
    ck_assert_int_eq(read(ready[0], id, sizeof id), (ssize_t)sizeof id);
    close(ready[0]);
    kill(owner, SIGKILL);
    waitpid(owner, NULL, 0);

    fm_ctx ctx;
    open_ctx(&ctx, store);
    fm_call call = acting_call(&ctx, 9);
    /* The lease still runs: the owner may be alive over there. */
    ck_assert_int_eq(fm_workflow_recover(&ctx, &call), 0);
    fm_err err = {0};
    json_t *got = fm_workflow_get(&ctx, id, &err);
    ck_assert_ptr_nonnull(got);
    ck_assert_str_eq(fm_json_str(got, "status", ""), "running");
    json_decref(got);
    /* Past the lease (bounded: WF_LEASE_MS plus a margin, by count too). */
    int64_t until = fm_now_ms() + WF_LEASE_MS + 1000;
    for (int i = 0; i < 200 && fm_now_ms() < until; i++)
        usleep(100000);
    ck_assert_int_eq(fm_workflow_recover(&ctx, &call), 1);
    got = fm_workflow_get(&ctx, id, &err);
    ck_assert_ptr_nonnull(got);
    ck_assert_str_eq(fm_json_str(got, "status", ""), "done");
    json_decref(got);
    char st[32];
    fm_node_state_get(&ctx, "gpu-a01", st, sizeof st);
    ck_assert_str_eq(st, "suspect");
    int64_t rows = 0, bad = 0;
    ck_assert_msg(fm_audit_verify(&ctx.store, &rows, &bad, &err) == 0, "%s", err.text);
    fm_ctx_close(&ctx);
    fm_test_unlink_db(db);
}
END_TEST

/* ---- two processes, one rack --------------------------------------------- */

/* One race on a shared store: two children, two hosts as far as the store
 * can tell (FLEETMCP_HOST_ID), each opens its own server context with
 * config, waits for the start signal and calls try_once(ctx, i, arg, err):
 * 0 won, 1 refused as it should be, 2 anything else.  True when exactly
 * one won and the other was refused. */
typedef int (*race_fn)(fm_ctx *ctx, int i, void *arg, fm_err *err);

static bool race_round(const char *config, const char *store, race_fn try_once, void *arg)
{
    int go[2];
    ck_assert_int_eq(pipe(go), 0);
    pid_t p[2];
    for (int i = 0; i < 2; i++) {
        p[i] = fork();
        if (p[i] == 0) {
            close(go[1]);
            setenv("FLEETMCP_HOST_ID", i ? "host-b" : "host-a", 1);
            fm_ctx ctx;
            memset(&ctx, 0, sizeof ctx);
            fm_err err = {0};
            if (fm_ctx_open(&ctx, config, store, &err)) _exit(2);
            char c;
            if (read(go[0], &c, 1) < 0) _exit(2);
            int code = try_once(&ctx, i, arg, &err);
            fm_ctx_close(&ctx);
            _exit(code);
        }
    }
    close(go[0]);
    usleep(20000); /* both are open and blocked on the pipe */
    close(go[1]);  /* go */
    int won = 0, refused = 0;
    for (int i = 0; i < 2; i++) {
        int status = 0;
        waitpid(p[i], &status, 0);
        int code = WIFEXITED(status) ? WEXITSTATUS(status) : 3;
        won += code == 0;
        refused += code == 1;
    }
    return won == 1 && refused == 1;
}

/* Racer i enters ((const char **)nodes)[i] into remediation. */
static int reserve_node(fm_ctx *ctx, int i, void *nodes, fm_err *err)
{
    const char *node = ((const char **)nodes)[i];
    ctx->be.slurm = &fake_slurm;
    int rc = fm_guard_reserve(ctx, node, "quarantined", "gpu_test", node, err);
    return rc == 0 ? 0 : err->code == FM_ERR_GUARDRAIL ? 1 : 2;
}

START_TEST(race_two_processes_fifty_rounds)
{
    char db[] = "/tmp/fm-wf-race-XXXXXX";
    fm_test_temp_db(db);
    const char *store = fm_test_store(db);
    fm_ctx ctx;
    open_ctx(&ctx, store);
    int exactly_one = 0;
    for (int round = 0; round < 50; round++) {
        ck_assert_int_eq(fm_db_exec(ctx.store.db, "DELETE FROM node_states", NULL, NULL, NULL),
                         FM_DB_OK);
        const char *nodes[2] = {"gpu-a01", "gpu-a02"};
        exactly_one += race_round(NULL, store, reserve_node, nodes);
        /* the store agrees: one node of the rack in remediation */
        fm_db_stmt *s = NULL;
        fm_db_prepare_v2(ctx.store.db, "SELECT count(*) FROM node_states WHERE rack='r01'", -1, &s,
                         NULL);
        ck_assert_int_eq(fm_db_step(s), FM_DB_ROW);
        ck_assert_int_eq(fm_db_column_int(s, 0), 1);
        fm_db_finalize(s);
    }
    ck_assert_int_eq(exactly_one, 50);
    /* Other domains hold too: gpu-b01 (rack r02) shares the sku and the
     * partition with the winner. */
    fm_err err = {0};
    ck_assert_int_eq(fm_guard_reserve(&ctx, "gpu-b01", "quarantined", "gpu_test", "x", &err), -1);
    ck_assert_int_eq(err.code, FM_ERR_GUARDRAIL);
    fm_ctx_close(&ctx);
    fm_test_unlink_db(db);
}
END_TEST

/* The capacity side of a reservation: the circuit breaker's share of a
 * partition (4 nodes, at most 25% drained by fleetmcp), raced by two
 * hosts draining nodes of different racks, which the blast radius
 * (raised to 10 per domain here) lets through: exactly one drains. */
START_TEST(capacity_race_two_hosts_fifty_rounds)
{
    char db[] = "/tmp/fm-wf-cap-XXXXXX";
    fm_test_temp_db(db);
    const char *store = fm_test_store(db);
    char cfg[] = "/tmp/fm-wf-cap-cfg-XXXXXX";
    int fd = mkstemp(cfg);
    ck_assert_int_ge(fd, 0);
    static const char yaml[] = "guardrails:\n  max_per_domain: 10\n  circuit_breaker:\n"
                               "    max_share: 0.25\n";
    ck_assert_int_eq(write(fd, yaml, sizeof yaml - 1), (ssize_t)(sizeof yaml - 1));
    close(fd);
    fm_ctx ctx;
    open_ctx(&ctx, store);
    int exactly_one = 0;
    for (int round = 0; round < 50; round++) {
        ck_assert_int_eq(fm_db_exec(ctx.store.db,
                                    "DELETE FROM node_states; DELETE FROM auto_drains;"
                                    " DELETE FROM settings WHERE key='circuit_breaker'",
                                    NULL, NULL, NULL),
                         FM_DB_OK);
        const char *nodes[2] = {"gpu-a01", "gpu-b01"}; /* racks r01 and r02 */
        exactly_one += race_round(cfg, store, reserve_node, nodes);
        fm_db_stmt *s = NULL;
        fm_db_prepare_v2(ctx.store.db, "SELECT count(DISTINCT node) FROM auto_drains", -1, &s,
                         NULL);
        ck_assert_int_eq(fm_db_step(s), FM_DB_ROW);
        ck_assert_int_eq(fm_db_column_int(s, 0), 1);
        fm_db_finalize(s);
    }
    ck_assert_int_eq(exactly_one, 50);
    fm_ctx_close(&ctx);
    unlink(cfg);
    fm_test_unlink_db(db);
}
END_TEST

/* The breaker's count of fleetmcp's drains that cannot be read refuses
 * the drain (fail closed, like the trip state), and trips nothing: a
 * store error read as "no drains yet" let every drain past the breaker. */
/* A verdict list's first verdict: for guardrail, ok or not, and (when
 * not) saying text.  Takes v. */
static void first_verdict(json_t *v, const char *guardrail, bool ok, const char *text)
{
    const json_t *b = json_array_get(v, 0);
    ck_assert_str_eq(fm_json_str(b, "guardrail", ""), guardrail);
    ck_assert_msg(json_is_true(json_object_get(b, "ok")) == ok, "%s", fm_json_str(b, "detail", ""));
    if (!ok) ck_assert_ptr_nonnull(strstr(fm_json_str(b, "detail", ""), text));
    json_decref(v);
}

/* A context whose guardrail tables exist, for breaking one of them. */
static void open_guarded(fm_ctx *ctx)
{
    open_ctx(ctx, fm_test_store(":memory:"));
    fm_err err = {0};
    ck_assert_msg(fm_guard_init(ctx, &err) == 0, "%s", err.text);
}

START_TEST(breaker_unreadable_count_refuses)
{
    fm_ctx ctx;
    open_guarded(&ctx);
    fm_err err = {0};
    json_t *totals = json_pack("{s:i, s:{s:i}}", "fleet", 100, "partitions", "gpu", 100);
    json_t *v = json_array();
    fm_breaker_check(&ctx, "gpu-a01", totals, true, v);
    first_verdict(v, "circuit_breaker", true, NULL);
    ck_assert_int_eq(fm_db_exec(ctx.store.db, "DROP TABLE auto_drains", NULL, NULL, NULL),
                     FM_DB_OK);
    v = json_array();
    fm_breaker_check(&ctx, "gpu-a01", totals, true, v);
    first_verdict(v, "circuit_breaker", false, "cannot be read");
    char why[700];
    ck_assert_msg(!fm_breaker_tripped(&ctx, why, sizeof why), "tripped: %s", why);
    ck_assert_int_ne(fm_breaker_reserve(&ctx, "gpu-a01", totals, &err), 0);
    ck_assert_int_eq(err.code, FM_ERR_GUARDRAIL);
    ck_assert_ptr_nonnull(strstr(err.text, "cannot be read"));
    json_decref(totals);
    fm_ctx_close(&ctx);
}
END_TEST

/* The counts behind the blast radius and the repeat-offender limit that
 * cannot be read refuse, as the breaker's do: read as 0, a store error
 * let a node into remediation past both. */
START_TEST(unreadable_domain_and_repair_counts_refuse)
{
    fm_ctx ctx;
    open_guarded(&ctx);
    fm_err err = {0};
    json_t *v = json_array();
    fm_offender_check(&ctx, "gpu-a01", v);
    first_verdict(v, "repeat_offender", true, NULL);
    ck_assert_int_eq(fm_db_exec(ctx.store.db, "DROP TABLE node_attempts", NULL, NULL, NULL),
                     FM_DB_OK);
    v = json_array();
    fm_offender_check(&ctx, "gpu-a01", v);
    first_verdict(v, "repeat_offender", false, "cannot be counted");
    ck_assert_int_eq(
        fm_db_exec(ctx.store.db, "ALTER TABLE node_states RENAME TO gone", NULL, NULL, NULL),
        FM_DB_OK);
    ck_assert_int_ne(fm_guard_reserve(&ctx, "gpu-a01", "quarantined", "gpu_test", "x", &err), 0);
    ck_assert_int_eq(err.code, FM_ERR_GUARDRAIL);
    ck_assert_msg(strstr(err.text, "cannot be counted"), "%s", err.text);
    fm_ctx_close(&ctx);
}
END_TEST

/* A runbook's node_states precondition on a node whose state cannot be
 * read is not met: the read used to fall back to "healthy", and a runbook
 * for healthy nodes passed on an escalated one. */
START_TEST(unreadable_node_state_fails_the_precondition)
{
    fm_ctx ctx;
    open_guarded(&ctx);
    fm_err err = {0};
    ck_assert_int_eq(fm_node_state_set(&ctx, "gpu-a01", "escalated", NULL, &err), 0);
    char st[32];
    ck_assert_int_eq(fm_node_state_get(&ctx, "gpu-a01", st, sizeof st), 0);
    ck_assert_str_eq(st, "escalated");
    ck_assert_int_eq(
        fm_db_exec(ctx.store.db, "ALTER TABLE node_states RENAME TO gone", NULL, NULL, NULL),
        FM_DB_OK);
    ck_assert_int_eq(fm_node_state_get(&ctx, "gpu-a01", st, sizeof st), -1);
    ck_assert_str_eq(st, "unknown");
    json_t *rb = json_pack("{s:{s:[s]}}", "preconditions", "node_states", "healthy");
    json_t *nodes = json_pack("[s]", "gpu-a01");
    fm_guard_req req = {.action = "rb-test", .nodes = nodes, .runbook = rb};
    bool ok = true;
    json_t *v = fm_guard_check(&ctx, &req, &ok, &err);
    ck_assert(!ok);
    size_t i;
    json_t *e;
    bool seen = false;
    json_array_foreach(v, i, e) if (!strcmp(fm_json_str(e, "guardrail", ""), "precondition_state"))
    {
        seen = true;
        ck_assert(!json_is_true(json_object_get(e, "ok")));
        ck_assert_msg(strstr(fm_json_str(e, "detail", ""), "cannot be read"), "%s",
                      fm_json_str(e, "detail", ""));
    }
    ck_assert(seen);
    json_decref(v);
    json_decref(nodes);
    json_decref(rb);
    fm_ctx_close(&ctx);
}
END_TEST

/* ---- two hosts, one approval --------------------------------------------- */

/* Both racers consume one approval of a plan with this hash. */
typedef struct {
    const char *ap, *hash;
} approval_arg;

static int consume_approval(fm_ctx *ctx, int i, void *arg, fm_err *err)
{
    const approval_arg *a = arg;
    fm_approval_need need = {.people = 1};
    char plan[FM_APPROVAL_ID_LEN], who[256];
    int rc = fm_approval_consume(ctx, a->ap, a->hash, &need, plan, who, sizeof who, err);
    return rc == 0 ? 0 : err->code == FM_ERR_APPROVAL ? 1 : 2;
}

/* One signed approval, two hosts consuming it at once: exactly one gets
 * it, 50 rounds (on PostgreSQL without the store-wide lock: the
 * conditional UPDATEs decide). */
/* Opens ctx on store with a config (written to cfg) that trusts alice's
 * new key (written to key). */
static void open_with_approver(fm_ctx *ctx, const char *store, char *key, char *cfg)
{
    int fd = mkstemp(key);
    ck_assert_int_ge(fd, 0);
    close(fd);
    unlink(key); /* keygen makes it, mode 0600 */
    char pub[128], yaml[512];
    fm_err err = {0};
    ck_assert_msg(fm_approval_keygen(key, pub, sizeof pub, &err) == 0, "%s", err.text);
    int n = snprintf(yaml, sizeof yaml,
                     "approvals:\n  keys:\n    - id: alice\n      public_key: %s\n", pub);
    fd = mkstemp(cfg);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, yaml, (size_t)n), n);
    close(fd);
    memset(ctx, 0, sizeof *ctx);
    unsetenv("FLEETMCP_CONFIG");
    ck_assert_msg(fm_ctx_open(ctx, cfg, store, &err) == 0, "%s", err.text);
}

/* A signature is recorded once, whatever its spelling: base64 leaves
 * four unused bits in the last character of a 64-byte signature, and
 * each of the 16 spellings decodes to the same bytes. */
START_TEST(approval_signature_respelled_is_refused)
{
    char key[] = "/tmp/fm-wf-sp-key-XXXXXX", cfg[] = "/tmp/fm-wf-sp-cfg-XXXXXX";
    fm_ctx ctx;
    open_with_approver(&ctx, fm_test_store(":memory:"), key, cfg);
    fm_err err = {0};
    json_t *args = json_pack("{s:s, s:s}", "node", "gpu-a01", "reason", "respelled");
    json_t *nodes = json_pack("[s]", "gpu-a01");
    json_t *content = fm_plan_content("node_drain", args, nodes, NULL, NULL, 0);
    json_t *detail = json_object();
    char plan[FM_PLAN_ID_LEN], hash[65], ap[FM_APPROVAL_ID_LEN], msg[512], sig[256];
    ck_assert_msg(fm_plan_create(&ctx, content, detail, plan, &err) == 0, "%s", err.text);
    fm_plan_hash(content, hash);
    int64_t expires = fm_now_ms() + 600000;
    size_t mlen = fm_approval_message(msg, sizeof msg, plan, hash, "alice", expires);
    ck_assert_msg(fm_approval_sign(key, msg, mlen, sig, sizeof sig, &err) == 0, "%s", err.text);
    ck_assert_msg(fm_approval_record(&ctx, plan, "alice", expires, sig, ap, &err) == 0, "%s",
                  err.text);
    size_t n = strlen(sig);
    ck_assert(n == 88 && sig[86] == '=' && sig[87] == '=');
    /* The last data character's low four bits are unused: flip one. */
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    sig[85] = b64[(strchr(b64, sig[85]) - b64) ^ 1];
    err = (fm_err){0};
    ck_assert_int_ne(fm_approval_record(&ctx, plan, "alice", expires, sig, ap, &err), 0);
    ck_assert_msg(strstr(err.text, "recorded before"), "%s", err.text);
    json_decref(args);
    json_decref(nodes);
    json_decref(content);
    json_decref(detail);
    fm_ctx_close(&ctx);
    unlink(cfg);
    unlink(key);
}
END_TEST

START_TEST(approval_consumed_once_two_hosts_fifty_rounds)
{
    char db[] = "/tmp/fm-wf-ap-XXXXXX";
    fm_test_temp_db(db);
    const char *store = fm_test_store(db);
    char key[] = "/tmp/fm-wf-ap-key-XXXXXX", cfg[] = "/tmp/fm-wf-ap-cfg-XXXXXX";
    fm_err err = {0};
    fm_ctx ctx;
    open_with_approver(&ctx, store, key, cfg);
    int exactly_one = 0;
    for (int round = 0; round < 50; round++) {
        char reason[32];
        snprintf(reason, sizeof reason, "round %d", round);
        json_t *args = json_pack("{s:s, s:s}", "node", "gpu-a01", "reason", reason);
        json_t *nodes = json_pack("[s]", "gpu-a01");
        json_t *content = fm_plan_content("node_drain", args, nodes, NULL, NULL, 0);
        json_t *detail = json_object();
        char plan[FM_PLAN_ID_LEN], hash[65], ap[FM_APPROVAL_ID_LEN], msg[512], sig[256];
        ck_assert_msg(fm_plan_create(&ctx, content, detail, plan, &err) == 0, "%s", err.text);
        fm_plan_hash(content, hash);
        json_decref(args);
        json_decref(nodes);
        json_decref(content);
        json_decref(detail);
        int64_t expires = fm_now_ms() + 600000;
        size_t mlen = fm_approval_message(msg, sizeof msg, plan, hash, "alice", expires);
        ck_assert_msg(fm_approval_sign(key, msg, mlen, sig, sizeof sig, &err) == 0, "%s", err.text);
        ck_assert_msg(fm_approval_record(&ctx, plan, "alice", expires, sig, ap, &err) == 0, "%s",
                      err.text);
        approval_arg a = {ap, hash};
        exactly_one += race_round(cfg, store, consume_approval, &a);
        json_t *got = fm_plan_get(&ctx, plan, &err);
        ck_assert_ptr_nonnull(got);
        ck_assert_str_eq(fm_json_str(got, "status", ""), "executed");
        json_decref(got);
    }
    ck_assert_int_eq(exactly_one, 50);
    fm_ctx_close(&ctx);
    unlink(cfg);
    unlink(key);
    fm_test_unlink_db(db);
}
END_TEST

/* slurm_node's fleetmcp_owned for gpu-a01 (the fake Slurm flags every
 * drained node by its prefix alone). */
static bool slurm_node_says_owned(fm_ctx *ctx)
{
    json_t *args = json_pack("{s:s}", "node", "gpu-a01");
    fm_call c = {.ctx = ctx, .args = args};
    fm_err err = {0};
    json_t *n = fm_tool_slurm_node(&c, &err);
    ck_assert_msg(n != NULL, "%s", err.text);
    bool owned = json_is_true(json_object_get(n, "fleetmcp_owned"));
    json_decref(n);
    json_decref(args);
    return owned;
}

/* Runs a one-step workflow (steps, recorded as audit row id) on gpu-a01
 * and checks it failed as someone else's node, with nothing sent to
 * Slurm. */
static void refused_as_not_ours(fm_ctx *ctx, const char *steps, int64_t id)
{
    wf_row w;
    insert_wf(ctx, &w, steps, 0, false);
    slurm_updates = 0;
    json_t *got = recover_one(ctx, &w, id);
    ck_assert_str_eq(fm_json_str(got, "status", ""), "failed");
    const char *e = fm_json_str(json_array_get(json_object_get(got, "steps"), 0), "error", "");
    ck_assert_msg(strstr(e, "someone else"), "%s", e);
    ck_assert_int_eq(slurm_updates, 0);
    json_decref(got);
    wf_row_free(&w);
}

/* Runs the inserted one-step resume workflow w (recorded as audit row id)
 * on gpu-a01 and checks it lifted the node in Slurm as fleetmcp's own;
 * frees w. */
static void resumed_as_ours(fm_ctx *ctx, wf_row *w, int64_t id)
{
    slurm_updates = 0;
    json_t *got = recover_one(ctx, w, id);
    ck_assert_str_eq(fm_json_str(got, "status", ""), "done");
    ck_assert_int_eq(slurm_updates, 1);
    ck_assert_int_eq(last_op, FM_SLURM_RESUME);
    json_decref(got);
    wf_row_free(w);
}

/* An ended workflow on gpu-a01 of tool, recorded as audit row call_ref;
 * call_owner set: a single-node tool's one-step workflow. */
static void ended_wf(fm_ctx *ctx, const char *tool, const char *call_owner, int64_t call_ref)
{
    wf_row w;
    insert_wf(ctx, &w, "[]", 0, false);
    json_object_set_new(w.content, "tool", json_string(tool));
    if (call_owner) json_object_set_new(w.content, "call_owner", json_string(call_owner));
    char *c = json_dumps(w.content, JSON_COMPACT);
    ck_assert_int_eq(fm_db_run(ctx->store.db,
                               "UPDATE workflows SET content=?, call_ref=?, status='done'"
                               " WHERE id=?",
                               NULL, NULL, "tit", c, call_ref, w.id),
                     FM_DB_DONE);
    free(c);
    wf_row_free(&w);
}

/* A drain reason's "fleetmcp:" prefix is a claim anyone can write: a
 * human's "fleetmcp: hold" (or an owner no workflow of this store has on
 * the node) is not fleetmcp's to resume or to take over; a reason naming
 * this store's workflow on the node is. */
START_TEST(drain_prefix_alone_is_not_ownership)
{
    fm_ctx ctx;
    open_ctx(&ctx, fm_test_store(":memory:"));
    ck_assert_int_eq(fm_workflow_owns_drain(&ctx, "gpu-a01", "fleetmcp: hold"), 0);
    ck_assert_int_eq(fm_workflow_owns_drain(&ctx, "gpu-a01", "fleetmcp:call-7: by hand"), 0);
    ck_assert_int_eq(fm_workflow_owns_drain(&ctx, "gpu-a09", "fleetmcp:wf-00000000deadbeef: x"), 0);
    static const char resume[] =
        "[{\"phase\":\"steps\",\"id\":\"r\",\"action\":\"resume\",\"args\":{}}]";
    static const char drain[] = "[{\"phase\":\"steps\",\"id\":\"d\",\"action\":\"drain\","
                                "\"args\":{\"reason\":\"test\"}}]";
    /* A human's hold: resuming is refused by ownership, draining over it
     * too (taking its reason would make the node ours), nothing reaches
     * Slurm. */
    a01_reason = "fleetmcp: hold for the vendor";
    refused_as_not_ours(&ctx, resume, 40);
    refused_as_not_ours(&ctx, drain, 41);
    ck_assert(!slurm_node_says_owned(&ctx));
    /* Set DOWN by a human mid-workflow: not resumed either. */
    a01_reason = "PSU replaced, burn-in pending";
    a01_state = "DOWN";
    refused_as_not_ours(&ctx, resume, 45);
    a01_state = NULL;
    /* A drain this store's workflow on the node made: resumed. */
    wf_row w;
    insert_wf(&ctx, &w, resume, 0, false);
    char reason[128];
    snprintf(reason, sizeof reason, "fleetmcp:%s: reset pending", w.id);
    a01_reason = reason;
    ck_assert_int_eq(fm_workflow_owns_drain(&ctx, "gpu-a01", reason), 1);
    ck_assert_int_eq(fm_workflow_owns_drain(&ctx, "gpu-a02", reason), 0); /* not that node's */
    ck_assert(slurm_node_says_owned(&ctx));
    resumed_as_ours(&ctx, &w, 50);
    a01_reason = NULL;
    /* call-N is the one-step tool workflow of call N on the node only: a
     * runbook workflow recorded as call 7 does not own "call-7", the
     * node_drain of call 8 owns "call-8". */
    ended_wf(&ctx, "repair_execute", NULL, 7);
    ck_assert_int_eq(fm_workflow_owns_drain(&ctx, "gpu-a01", "fleetmcp:call-7: by hand"), 0);
    ended_wf(&ctx, "node_drain", "call-8", 8);
    ck_assert_int_eq(fm_workflow_owns_drain(&ctx, "gpu-a01", "fleetmcp:call-8: drained"), 1);
    ck_assert_int_eq(fm_workflow_owns_drain(&ctx, "gpu-a02", "fleetmcp:call-8: drained"), 0);
    fm_ctx_close(&ctx);
}
END_TEST

/* An older build's single-node tool call as its intent row: returns N. */
static int64_t old_intent(fm_ctx *ctx, const char *tool, const char *node, const char *decision)
{
    json_t *args = json_pack("{s:s, s:s}", "node", node, "reason", "old build");
    fm_audit_rec rec = {.phase = "intent",
                        .tool = tool,
                        .args = args,
                        .autonomy = "hitl",
                        .decision = decision,
                        .node = node};
    fm_err err = {0};
    int64_t id = fm_audit_append(ctx, &rec, &err);
    ck_assert_msg(id > 0, "%s", err.text);
    json_decref(args);
    return id;
}

static int owns_call(fm_ctx *ctx, const char *node, int64_t call)
{
    char reason[96];
    snprintf(reason, sizeof reason, "fleetmcp:call-%lld: drained by an older build",
             (long long)call);
    return fm_workflow_owns_drain(ctx, node, reason);
}

/* Drains made before single-node tools ran as workflows left no
 * workflow: "call-N" names the audit row of the call, "<plan id>" its
 * plan.  Such a drain is fleetmcp's when the audit (or the executed plan)
 * shows an allowed call on that node of a tool that takes a node out of
 * service, so the resume step lifts it with no approval; a reason naming
 * a refused call, a call on another node, a read, the plan runner's call,
 * or a plan never executed is still someone else's. */
START_TEST(older_builds_tool_drains_are_owned)
{
    fm_ctx ctx;
    open_ctx(&ctx, fm_test_store(":memory:"));
    int64_t drain = old_intent(&ctx, "node_drain", "gpu-a01", "allow");
    int64_t reset = old_intent(&ctx, "gpu_reset", "gpu-a01", "allow");
    int64_t denied = old_intent(&ctx, "node_drain", "gpu-a01", "deny");
    int64_t shadow = old_intent(&ctx, "node_drain", "gpu-a01", "shadow");
    int64_t runner = old_intent(&ctx, "repair_execute", "gpu-a01", "allow");
    int64_t resume = old_intent(&ctx, "node_resume", "gpu-a01", "allow");
    ck_assert_int_eq(owns_call(&ctx, "gpu-a01", drain), 1);
    ck_assert_int_eq(owns_call(&ctx, "gpu-a01", reset), 1);
    ck_assert_int_eq(owns_call(&ctx, "gpu-a02", drain), 0); /* another node's call */
    ck_assert_int_eq(owns_call(&ctx, "gpu-a01", denied), 0);
    ck_assert_int_eq(owns_call(&ctx, "gpu-a01", shadow), 0);
    ck_assert_int_eq(owns_call(&ctx, "gpu-a01", runner), 0);
    ck_assert_int_eq(owns_call(&ctx, "gpu-a01", resume), 0);
    ck_assert_int_eq(owns_call(&ctx, "gpu-a01", resume + 100), 0); /* no such row */
    /* The plan form: the plan of a node_drain on gpu-a01, once executed. */
    json_t *args = json_pack("{s:s, s:s}", "node", "gpu-a01", "reason", "old build");
    json_t *content = fm_plan_content("node_drain", args, NULL, NULL, NULL, 0);
    char plan[FM_PLAN_ID_LEN], reason[96];
    fm_err err = {0};
    ck_assert_msg(fm_plan_create(&ctx, content, NULL, plan, &err) == 0, "%s", err.text);
    snprintf(reason, sizeof reason, "fleetmcp:%s: drained by an older build", plan);
    ck_assert_int_eq(fm_workflow_owns_drain(&ctx, "gpu-a01", reason), 0); /* proposed only */
    ck_assert_int_eq(fm_plan_transition(&ctx, plan, "proposed", "approved", &err), 0);
    ck_assert_int_eq(fm_plan_transition(&ctx, plan, "approved", "executed", &err), 0);
    ck_assert_int_eq(fm_workflow_owns_drain(&ctx, "gpu-a01", reason), 1);
    ck_assert_int_eq(fm_workflow_owns_drain(&ctx, "gpu-a02", reason), 0);
    json_decref(content);
    json_decref(args);
    /* The resume step lifts the older build's drain with no approval. */
    static const char steps[] =
        "[{\"phase\":\"steps\",\"id\":\"r\",\"action\":\"resume\",\"args\":{}}]";
    char call_reason[96];
    snprintf(call_reason, sizeof call_reason, "fleetmcp:call-%lld: drained by an older build",
             (long long)drain);
    a01_reason = call_reason;
    ck_assert(slurm_node_says_owned(&ctx));
    wf_row w;
    insert_wf(&ctx, &w, steps, 0, false);
    resumed_as_ours(&ctx, &w, 60);
    /* A refused call's number in a human's reason: still refused. */
    snprintf(call_reason, sizeof call_reason, "fleetmcp:call-%lld: hold", (long long)denied);
    refused_as_not_ours(&ctx, steps, 61);
    a01_reason = NULL;
    fm_ctx_close(&ctx);
}
END_TEST

/* ---- a fake node for a GPU reset and its Xid check ------------------------ */

/* The node's clock runs node_skew_s off this host's; its one Xid line is
 * stamped xid_after_s after the node's reading of its clock (negative:
 * before). */
static long long node_skew_s, xid_after_s;
static long long node_read_at; /* the node's clock when it was read */

static int node_run(void *st, const char *node, fm_cmd_id cmd, const fm_cmd_args *a,
                    fm_exec_result *out, fm_err *err)
{
    (void)st, (void)node, (void)a, (void)err;
    memset(out, 0, sizeof *out);
    char buf[400] = "";
    long long now = (long long)time(NULL) + node_skew_s;
    const char *name = fm_cmd_name(cmd);
    if (!strcmp(name, "node_clock")) {
        node_read_at = now;
        snprintf(buf, sizeof buf, "%lld\n", now);
    } else if (!strcmp(name, "nvsmi_query_gpu")) {
        snprintf(buf, sizeof buf, "0, 00000000:18:00.0, GPU-1, H100, 40, 0, 0, 0, 0, 0, 0, 0\n");
    } else if (!strcmp(name, "nvsmi_query")) {
        snprintf(buf, sizeof buf, "GPU 00000000:18:00.0\n    Processes : None\n");
    } else if (!strcmp(name, "kernel_xid")) {
        /* before the fix the repair was stamped with this host's clock */
        time_t at = (time_t)((node_read_at ? node_read_at : now) + xid_after_s);
        struct tm tm;
        gmtime_r(&at, &tm);
        strftime(buf, sizeof buf,
                 "%Y-%m-%dT%H:%M:%S+0000 gpu-a01 kernel: NVRM: Xid (PCI:0000:18:00): 79, GPU has"
                 " fallen off the bus.\n",
                 &tm);
    }
    out->out = strdup(buf);
    out->out_len = strlen(buf);
    out->err_out = strdup("");
    return 0;
}

static const struct fm_exec_ops node_exec = {.name = "fake", .run = node_run, .close = fake_close};

/* A reset then the Xid check, on a node whose clock is skew_s off ours,
 * with one Xid stamped xid_after_s after the reset began (node time):
 * the workflow's status. */
static const char *reset_then_verify(long long skew_s, long long after_s, char *st, size_t len)
{
    fm_ctx ctx;
    open_ctx(&ctx, fm_test_store(":memory:"));
    ctx.be.exec = &node_exec;
    node_skew_s = skew_s;
    xid_after_s = after_s;
    node_read_at = 0;
    wf_row w;
    insert_wf(&ctx, &w,
              "[{\"phase\":\"steps\",\"id\":\"reset\",\"action\":\"gpu_reset\",\"args\":"
              "{\"gpu\":\"all\"}},{\"phase\":\"steps\",\"id\":\"verify\",\"action\":"
              "\"verify_gpu\",\"args\":{\"checks\":[\"xid\"]}}]",
              0, false);
    json_t *got = recover_one(&ctx, &w, 60);
    snprintf(st, len, "%s", fm_json_str(got, "status", ""));
    json_decref(got);
    wf_row_free(&w);
    ctx.be.exec = NULL;
    fm_ctx_close(&ctx);
    return st;
}

/* verify_gpu's Xid check alone on a node an hour behind, its one Xid 200 s
 * old, after a monitor window that began 100 s ago on the node's clock
 * (window) or with none: the workflow's status. */
static const char *verify_after_window(bool window, char *st, size_t len)
{
    fm_ctx ctx;
    open_ctx(&ctx, fm_test_store(":memory:"));
    ctx.be.exec = &node_exec;
    node_skew_s = -3600;
    xid_after_s = -200;
    node_read_at = 0;
    wf_row w;
    insert_wf(&ctx, &w,
              "[{\"phase\":\"steps\",\"id\":\"verify\",\"action\":\"verify_gpu\",\"args\":"
              "{\"checks\":[\"xid\"]}}]",
              0, false);
    if (window) {
        char sql[300];
        snprintf(sql, sizeof sql,
                 "UPDATE workflows SET vars='{\"monitor\":{\"started_node_s\":%lld}}' WHERE"
                 " id='%s'",
                 (long long)time(NULL) + node_skew_s - 100, w.id);
        ck_assert_int_eq(fm_db_exec(ctx.store.db, sql, NULL, NULL, NULL), FM_DB_OK);
    }
    json_t *got = recover_one(&ctx, &w, 61);
    snprintf(st, len, "%s", fm_json_str(got, "status", ""));
    json_decref(got);
    wf_row_free(&w);
    ctx.be.exec = NULL;
    fm_ctx_close(&ctx);
    return st;
}

/* The Xid check after a repair compares the node's kernel stamps with the
 * repair's time on the node's own clock: an Xid that came straight back
 * on a node an hour behind is still there (this server's clock missed
 * it), and one from before the reset on a node an hour ahead is not (this
 * server's clock counted it). */
START_TEST(xid_recheck_on_the_nodes_clock)
{
    char st[32];
    ck_assert_str_eq(reset_then_verify(0, 5, st, sizeof st), "failed");
    ck_assert_str_eq(reset_then_verify(-3600, 5, st, sizeof st), "failed");
    ck_assert_str_eq(reset_then_verify(3600, -60, st, sizeof st), "done");
    ck_assert_str_eq(reset_then_verify(0, -60, st, sizeof st), "done");
    /* No repair (a cool-down, then the check): Xids since the monitor's
     * window began on the node's clock count, older ones of the boot do
     * not; with no window at all, every one of the boot does. */
    ck_assert_str_eq(verify_after_window(true, st, sizeof st), "done");
    ck_assert_str_eq(verify_after_window(false, st, sizeof st), "failed");
}
END_TEST

/* Reports that looked for their tables in sqlite_master, which only
 * SQLite has: on PostgreSQL fleet metrics counted no workflow at all, and
 * no stored diag bundle could be attached to a ticket.  Runs on both
 * engines (stage store-pg). */
START_TEST(table_probes_work_on_both_engines)
{
    fm_ctx ctx;
    open_ctx(&ctx, fm_test_store(":memory:"));
    wf_row w;
    insert_wf(&ctx, &w,
              "[{\"phase\":\"steps\",\"id\":\"s\",\"action\":\"set_state\",\"args\":"
              "{\"state\":\"suspect\"}}]",
              0, false);
    json_t *got = recover_one(&ctx, &w, 70);
    ck_assert_str_eq(fm_json_str(got, "status", ""), "done");
    json_decref(got);
    wf_row_free(&w);
    json_t *m = fm_fleet_metrics(&ctx, 86400000);
    ck_assert_msg(json_real_value(json_object_get(m, "automation_success_ratio")) == 1.0, "%s",
                  json_dumps(m, JSON_COMPACT));
    json_decref(m);
    /* A bundle node_diag_bundle stored, loaded back for a ticket. */
    ctx.be.exec = &node_exec;
    node_read_at = 0;
    json_t *args = json_pack("{s:s}", "node", "gpu-a01");
    fm_call c = {.ctx = &ctx, .args = args};
    fm_err err = {0};
    json_t *b = fm_tool_node_diag_bundle(&c, &err);
    ck_assert_msg(b != NULL, "%s", err.text);
    char node[64];
    unsigned char *body = NULL;
    size_t blen = 0;
    ck_assert_msg(fm_ticket_bundle_load(&ctx.store, fm_json_str(b, "bundle_id", ""), node,
                                        sizeof node, &body, &blen, &err) == 0,
                  "%s", err.text);
    ck_assert_str_eq(node, "gpu-a01");
    ck_assert_uint_gt(blen, 0);
    free(body);
    ck_assert_int_ne(
        fm_ticket_bundle_load(&ctx.store, "db-0000", node, sizeof node, &body, &blen, &err), 0);
    ck_assert_msg(err.code == FM_ERR_NOT_FOUND, "%s", err.text);
    json_decref(b);
    json_decref(args);
    ctx.be.exec = NULL;
    fm_ctx_close(&ctx);
}
END_TEST

/* ctx on a new store file made from the template db (or PostgreSQL). */
static void open_temp_ctx(fm_ctx *ctx, char *db)
{
    fm_test_temp_db(db);
    open_ctx(ctx, fm_test_store(db));
}

/* Two hosts whose clocks differ agree on a lease: it is on the store's
 * clock (the PostgreSQL server's). stage store-pg runs this case again
 * with this process's clock 60 s ahead (tests/store/skew_clock.c,
 * FM_TEST_SKEW_MS): by its own clock the live owner's lease has run out,
 * and it must still not take the workflow over. */
START_TEST(lease_on_the_store_clock)
{
    char db[] = "/tmp/fm-wf-clock-XXXXXX";
    fm_ctx ctx;
    open_temp_ctx(&ctx, db);
    const char *sk = getenv("FM_TEST_SKEW_MS");
    long long skew = sk ? atoll(sk) : 0;
    int64_t store_now = fm_store_now_ms(&ctx.store);
    /* The shim works (the process's clock is skew ahead) and the store's
     * clock is not moved by it. */
    ck_assert_msg(llabs((long long)(fm_now_ms() - store_now) - skew) < 2000,
                  "local %lld, store %lld, skew %lld", (long long)fm_now_ms(), (long long)store_now,
                  skew);
    wf_row w;
    insert_wf(&ctx, &w,
              "[{\"phase\":\"steps\",\"id\":\"s\",\"action\":\"set_state\",\"args\":"
              "{\"state\":\"suspect\"}}]",
              0, false);
    /* A live owner on another host, its lease 20 s on the store's clock. */
    char sql[300];
    snprintf(sql, sizeof sql,
             "UPDATE workflows SET owner_pid=4242, owner_host='host-far', lease_until_ms=%lld"
             " WHERE id='%s'",
             (long long)(store_now + 20000), w.id);
    ck_assert_int_eq(fm_db_exec(ctx.store.db, sql, NULL, NULL, NULL), FM_DB_OK);
    wf_row got;
    ck_assert_int_eq(wf_load(&ctx, w.id, &got, NULL), 0);
    ck_assert_msg(!wf_claim(&ctx, &got), "a live lease on another host was taken over");
    wf_row_free(&got);
    /* Its lease run out on the store's clock: taken over. */
    snprintf(sql, sizeof sql, "UPDATE workflows SET lease_until_ms=%lld WHERE id='%s'",
             (long long)(store_now - 1000), w.id);
    ck_assert_int_eq(fm_db_exec(ctx.store.db, sql, NULL, NULL, NULL), FM_DB_OK);
    ck_assert_int_eq(wf_load(&ctx, w.id, &got, NULL), 0);
    ck_assert(wf_claim(&ctx, &got));
    /* The new lease is on the store's clock too, not 60 s ahead of it. */
    ck_assert_int_lt(got.lease_until_ms, fm_store_now_ms(&ctx.store) + 16000);
    wf_row_free(&got);
    wf_row_free(&w);
    fm_ctx_close(&ctx);
    fm_test_unlink_db(db);
}
END_TEST

/* The gate's windows over rows other hosts stamped are on the store's
 * clock too.  Rows are written here as a host on the store's clock wrote
 * them; stage store-pg runs this with this process's clock 60 s ahead,
 * where the host's clock counted a drain 250 s old out of the breaker's
 * 300 s window and a diagnosis 30 s short of max_age as stale (and one
 * behind took stale ones for fresh). */
START_TEST(gate_windows_on_the_store_clock)
{
    char db[] = "/tmp/fm-wf-gclock-XXXXXX";
    fm_ctx ctx;
    open_temp_ctx(&ctx, db);
    fm_err err = {0};
    ck_assert_msg(fm_guard_init(&ctx, &err) == 0, "%s", err.text);
    int64_t store_now = fm_store_now_ms(&ctx.store);
    char sql[300];
    snprintf(sql, sizeof sql,
             "INSERT INTO auto_drains(node,partition,ts_ms) VALUES('gpu-a02','gpu',%lld)",
             (long long)(store_now - 250000));
    ck_assert_int_eq(fm_db_exec(ctx.store.db, sql, NULL, NULL, NULL), FM_DB_OK);
    /* gpu-a02 drained 250 s ago, so draining gpu-a01 makes 2 of 2 */
    json_t *totals = json_pack("{s:i, s:{s:i}}", "fleet", 2, "partitions", "gpu", 2);
    json_t *v = json_array();
    fm_breaker_check(&ctx, "gpu-a01", totals, false, v);
    first_verdict(v, "circuit_breaker", false, "");
    json_decref(totals);
    /* A diagnosis recorded max_age - 30 s ago counts as fresh. */
    fm_diagnosis d = {.confidence = 0.95, .act_threshold = 0.8, .act = true, .collected_act = true};
    snprintf(d.fault_class, sizeof d.fault_class, "gpu_test");
    snprintf(d.source, sizeof d.source, "collected");
    ck_assert_msg(fm_diagnosis_record(&ctx, "gpu-a01", &d, NULL, &err) == 0, "%s", err.text);
    snprintf(sql, sizeof sql, "UPDATE diagnoses SET at_ms=%lld WHERE node='gpu-a01'",
             (long long)(store_now - (fm_diagnosis_max_age_s(&ctx) - 30) * 1000));
    ck_assert_int_eq(fm_db_exec(ctx.store.db, sql, NULL, NULL, NULL), FM_DB_OK);
    bool enough = false;
    char why[600] = "";
    json_t *basis = fm_diagnosis_basis(&ctx, "gpu-a01", "gpu_test", &enough, why, sizeof why);
    ck_assert_msg(enough, "%s", why);
    json_decref(basis);
    fm_ctx_close(&ctx);
    fm_test_unlink_db(db);
}
END_TEST

/* Alert dedup windows and fleet metrics are on the store's clock, as
 * their rows are stamped: stage store-pg runs this with this process's
 * clock 60 s ahead, where the host's clock took a resolved alert handled
 * 30 s inside the 6 h window for new (the same with a ticket made: a
 * second ticket) and counted a workflow 30 s inside the metrics window
 * out of it. */
START_TEST(alert_and_metrics_windows_on_the_store_clock)
{
    char db[] = "/tmp/fm-wf-aclock-XXXXXX";
    fm_ctx ctx;
    open_temp_ctx(&ctx, db);
    fm_err err = {0};
    static const char none[] = "{\"version\":\"4\",\"alerts\":[]}";
    json_t *r = fm_alert_intake(&ctx, none, strlen(none), &err); /* makes its tables */
    ck_assert_msg(r != NULL, "%s", err.text);
    json_decref(r);
    int64_t store_now = fm_store_now_ms(&ctx.store);
    exec_at(&ctx,
            "INSERT INTO alert_seen(fingerprint,status,node,last_ms)"
            " VALUES('fp-skew','resolved','gpu-a01',?)",
            store_now - 21600000 + 30000);
    static const char again[] =
        "{\"version\":\"4\",\"alerts\":[{\"status\":\"resolved\",\"labels\":{\"node\":"
        "\"gpu-a01\"},\"startsAt\":\"2026-12-06T06:00:00Z\",\"fingerprint\":\"fp-skew\"},"
        "{\"status\":\"resolved\",\"labels\":{\"node\":\"gpu-a02\"},\"startsAt\":"
        "\"2026-12-06T06:00:00Z\",\"fingerprint\":\"fp-new\"}]}";
    r = fm_alert_intake(&ctx, again, strlen(again), &err);
    ck_assert_msg(r != NULL, "%s", err.text);
    ck_assert_int_eq(json_integer_value(json_object_get(r, "repeats")), 1);
    json_decref(r);
    /* What it records is stamped on the store's clock too. */
    long long seen =
        count_where(&ctx, "SELECT last_ms FROM alert_seen WHERE fingerprint=?", "fp-new");
    ck_assert_msg(llabs(seen - (long long)fm_store_now_ms(&ctx.store)) < 5000,
                  "stamped %lld, store clock %lld", seen, (long long)fm_store_now_ms(&ctx.store));
    /* A workflow that ended well, begun 30 s inside a 10 min window. */
    wf_row w;
    insert_wf(&ctx, &w, "[]", 0, false);
    char sql[200];
    snprintf(sql, sizeof sql,
             "UPDATE workflows SET status='done', started_ms=?1, updated_ms=?1 WHERE id='%s'",
             w.id);
    exec_at(&ctx, sql, store_now - 600000 + 30000);
    json_t *m = fm_fleet_metrics(&ctx, 600000);
    ck_assert_msg(json_real_value(json_object_get(m, "automation_success_ratio")) == 1.0,
                  "the workflow was not counted: %s",
                  json_dumps(json_object_get(m, "automation_success_ratio"), JSON_ENCODE_ANY));
    json_decref(m);
    wf_row_free(&w);
    fm_ctx_close(&ctx);
    fm_test_unlink_db(db);
}
END_TEST

static Suite *workflow_suite(void)
{
    Suite *s = suite_create("workflow");
    TCase *tc = tcase_create("workflow");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, content_is_stable_and_versioned);
    tcase_add_test(tc, planner_rebuilds_the_same_hash);
    tcase_add_test(tc, recovery_never_acts_in_reads_or_shadow);
    tcase_add_test(tc, recovery_resumes_idempotent_steps);
    tcase_add_test(tc, wait_deadline_survives_resume);
    tcase_add_test(tc, recovery_escalates_unsafe_steps);
    tcase_add_test(tc, unknown_action_runs_nothing);
    tcase_add_test(tc, kill_switch_stops_rollback_that_acts);
    tcase_add_test(tc, internal_calls_are_checked_and_gated);
    tcase_add_test(tc, live_owner_is_left_alone);
    tcase_add_test(tc, single_node_tools_run_as_one_step_workflows);
    tcase_add_test(tc, summary_reports_orphaned_drains);
    tcase_add_test(tc, race_two_processes_fifty_rounds);
    tcase_add_test(tc, capacity_race_two_hosts_fifty_rounds);
    tcase_add_test(tc, breaker_unreadable_count_refuses);
    tcase_add_test(tc, unreadable_domain_and_repair_counts_refuse);
    tcase_add_test(tc, unreadable_node_state_fails_the_precondition);
    tcase_add_test(tc, approval_consumed_once_two_hosts_fifty_rounds);
    tcase_add_test(tc, approval_signature_respelled_is_refused);
    tcase_add_test(tc, kill9_owner_on_other_host_taken_over_after_lease);
    tcase_add_test(tc, drain_prefix_alone_is_not_ownership);
    tcase_add_test(tc, older_builds_tool_drains_are_owned);
    tcase_add_test(tc, xid_recheck_on_the_nodes_clock);
    tcase_add_test(tc, table_probes_work_on_both_engines);
    suite_add_tcase(s, tc);
    /* A case of its own: stage store-pg runs it alone with a skewed clock. */
    TCase *clock = tcase_create("clock");
    tcase_add_test(clock, lease_on_the_store_clock);
    tcase_add_test(clock, gate_windows_on_the_store_clock);
    tcase_add_test(clock, alert_and_metrics_windows_on_the_store_clock);
    suite_add_tcase(s, clock);
    return s;
}

FM_TEST_MAIN(workflow_suite)
