/* Guardrail verdicts on a generated 16,384-node fleet are the same whether
 * every check reads Slurm itself (the node again, each partition counted
 * from the listing) or the call shares its reads (the caller's node
 * snapshot, one aggregate query for all of a node's partitions).  The
 * fleet has drained and down nodes, two partitions and nodes already in
 * remediation, so capacity, blast radius, preconditions and retry budget
 * all have something to say. */
#include <string.h>

#include "fleetmcp/fm_guardrails.h"
#include "fleetmcp/fm_slurm.h"
#include "fleetmcp/fm_util.h"
#include "fm_test.h"
#include "test_core_helpers.h"

#define RACKS 256
#define PER_RACK 64

static int node_reads, listings, aggregates;
static bool squeezed; /* fake_capacity: Slurm has just taken most of gpu out of service */

/* Node i: rack i / 64; every 7th drained, every 13th down and not
 * responding; rack 1 is also in partition debug. */
static json_t *gen_node(int i)
{
    int rack = i / PER_RACK + 1;
    char name[48], rk[16], feat[32];
    snprintf(name, sizeof name, "gpu-r%03d-n%02d", rack, i % PER_RACK + 1);
    snprintf(rk, sizeof rk, "r%03d", rack);
    snprintf(feat, sizeof feat, "rack=%s", rk);
    const char *sku = rack % 4 ? "h100" : "b200";
    json_t *state = json_array();
    json_array_append_new(state, json_string(i % 13 == 0 ? "DOWN" : "IDLE"));
    if (i % 7 == 0) json_array_append_new(state, json_string("DRAIN"));
    if (i % 13 == 0) json_array_append_new(state, json_string("NOT_RESPONDING"));
    json_t *parts = json_pack("[s]", "gpu");
    if (rack == 1) json_array_append_new(parts, json_string("debug"));
    return json_pack("{s:s, s:o, s:s, s:n, s:n, s:o, s:[s, s], s:s, s:i, s:i, s:n,"
                     " s:{s:s, s:s, s:s}, s:b}",
                     "name", name, "state", state, "reason", i % 7 ? "" : "fleetmcp: xid 79",
                     "reason_user", "reason_time", "partitions", parts, "features", feat,
                     "sku=h100", "gres", "gpu:8", "cpus", 64, "memory_mb", 512000, "boot_time",
                     "domains", "rack", rk, "sku", sku, "partition", "gpu", "fleetmcp_owned",
                     i % 7 == 0);
}

static bool in_part(const json_t *n, const char *part)
{
    size_t k;
    json_t *p;
    json_array_foreach(json_object_get(n, "partitions"), k,
                       p) if (!strcmp(json_string_value(p), part)) return true;
    return false;
}

static json_t *fake_nodes(void *st, const fm_slurm_node_filter *f, fm_err *err)
{
    (void)st, (void)err;
    listings++;
    json_t *all = json_array();
    for (int i = 0; i < RACKS * PER_RACK; i++) {
        json_t *n = gen_node(i);
        if (f && f->partition && !in_part(n, f->partition))
            json_decref(n);
        else
            json_array_append_new(all, n);
    }
    return all;
}

static json_t *fake_node(void *st, const char *name, fm_err *err)
{
    (void)st;
    node_reads++;
    int rack = 0, n = 0;
    if (sscanf(name, "gpu-r%3d-n%2d", &rack, &n) == 2 && rack >= 1 && rack <= RACKS && n >= 1 &&
        n <= PER_RACK)
        return gen_node((rack - 1) * PER_RACK + n - 1);
    fm_err_set(err, FM_ERR_NOT_FOUND, "fake slurm: no node %s", name);
    return NULL;
}

static json_t *fake_jobs(void *st, const fm_slurm_job_filter *f, fm_err *err)
{
    (void)st, (void)f, (void)err;
    return json_array();
}

/* What sinfo's aggregate says, counted the way sinfo prints it: a node is
 * in service when idle with no flag (this fleet has no other states). */
static int fake_capacity(void *st, const char *const *parts, size_t n, long *total, long *in_svc,
                         fm_err *err)
{
    (void)st, (void)err;
    aggregates++;
    for (size_t p = 0; p < n; p++) {
        total[p] = in_svc[p] = 0;
        for (int i = 0; i < RACKS * PER_RACK; i++) {
            bool debug = i < PER_RACK;
            if (strcmp(parts[p], "gpu") && !(debug && !strcmp(parts[p], "debug"))) continue;
            total[p]++;
            in_svc[p] += i % 7 != 0 && i % 13 != 0 && !(squeezed && i % 2);
        }
    }
    return 0;
}

static void fake_close(void *st)
{
    (void)st;
}

static const struct fm_slurm_ops listing_only = {.name = "fake-listing",
                                                 .nodes = fake_nodes,
                                                 .node = fake_node,
                                                 .jobs = fake_jobs,
                                                 .partition_capacity = NULL,
                                                 .close = fake_close};
static const struct fm_slurm_ops with_aggregate = {.name = "fake-aggregate",
                                                   .nodes = fake_nodes,
                                                   .node = fake_node,
                                                   .jobs = fake_jobs,
                                                   .partition_capacity = fake_capacity,
                                                   .close = fake_close};

static const char CFG[] = "mode: fleet\n"
                          "guardrails:\n"
                          "  max_per_domain: 3\n"
                          "  min_schedulable_share: 0.5\n";

START_TEST(shared_reads_same_verdicts)
{
    test_server t;
    ts_open(&t, CFG);
    fm_err err = {0};
    ck_assert_int_eq(fm_guard_init(&t.ctx, &err), 0);
    /* The reservations decide capacity too: from the aggregate, since
     * counting 16,384 generated nodes per reservation is slow under ASan
     * and is not what this test compares. */
    t.ctx.be.slurm = &with_aggregate;
    /* Racks r002 and r003 already have nodes in remediation (partition gpu
     * at the limit), and those have used a retry. */
    static const char *const busy[] = {"gpu-r002-n02", "gpu-r002-n03", "gpu-r003-n02"};
    for (size_t i = 0; i < 3; i++) {
        ck_assert_int_eq(fm_guard_reserve(&t.ctx, busy[i], "repairing", "xid", "wf", &err), 0);
        ck_assert_int_eq(fm_node_state_set(&t.ctx, busy[i], "repairing", "wf", &err), 0);
    }
    json_t *rb = json_pack("{s:{s:[s, s], s:[s], s:i}}", "preconditions", "node_states", "healthy",
                           "suspect", "slurm_states_forbidden", "DOWN", "max_running_jobs", 0);
    /* Both partitions, drained, down, a busy rack, a full rack, a b200. */
    static const char *const probe[] = {"gpu-r001-n01", "gpu-r001-n02", "gpu-r001-n14",
                                        "gpu-r002-n01", "gpu-r002-n03", "gpu-r003-n05",
                                        "gpu-r004-n64", "gpu-r256-n64"};
    int checked = 0, failed = 0;
    for (size_t i = 0; i < sizeof probe / sizeof *probe; i++) {
        for (int resume = 0; resume < 2; resume++) {
            json_t *nodes = json_pack("[s]", probe[i]);
            fm_guard_req req = {.action = "test",
                                .nodes = nodes,
                                .fault_class = "xid",
                                .runbook = rb,
                                .takes_capacity = !resume,
                                .resume = resume,
                                .approved = resume};
            bool ok_a = false, ok_b = false;
            t.ctx.be.slurm = &listing_only;
            node_reads = listings = aggregates = 0;
            json_t *a = fm_guard_check(&t.ctx, &req, &ok_a, &err);
            ck_assert_msg(a, "%s", err.text);
            int reads_a = node_reads;
            t.ctx.be.slurm = &with_aggregate;
            json_t *snap = fake_node(NULL, probe[i], &err);
            req.node = snap;
            node_reads = listings = aggregates = 0;
            json_t *b = fm_guard_check(&t.ctx, &req, &ok_b, &err);
            ck_assert_msg(b, "%s", err.text);
            char *sa = json_dumps(a, JSON_SORT_KEYS), *sb = json_dumps(b, JSON_SORT_KEYS);
            ck_assert_msg(json_equal(a, b), "%s: verdicts differ\n%s\n%s", probe[i], sa, sb);
            ck_assert_int_eq(ok_a, ok_b);
            /* The shared path read Slurm once for capacity and never
             * re-read the node; the one listing a drain makes is the
             * circuit breaker counting the fleet (streamed, not held). */
            ck_assert_int_eq(reads_a, 1);
            ck_assert_int_eq(node_reads, 0);
            ck_assert_int_eq(listings, resume ? 0 : 1);
            ck_assert_int_eq(aggregates, resume ? 0 : 1);
            failed += !ok_a;
            checked++;
            free(sa);
            free(sb);
            json_decref(a);
            json_decref(b);
            json_decref(snap);
            json_decref(nodes);
        }
    }
    /* The probes reach both outcomes, so equality is not two empty passes. */
    ck_assert_int_eq(checked, 16);
    ck_assert_int_gt(failed, 0);
    ck_assert_int_lt(failed, checked);
    json_decref(rb);
    ts_close(&t);
}
END_TEST

/* The reservation a drain or reboot step makes decides capacity again
 * from Slurm read then, whatever a plan showed earlier: with Slurm's
 * counts under the share it refuses and records nothing; with them back,
 * it reserves. */
START_TEST(reserve_decides_capacity_now)
{
    test_server t;
    ts_open(&t, CFG);
    fm_err err = {0};
    ck_assert_int_eq(fm_guard_init(&t.ctx, &err), 0);
    t.ctx.be.slurm = &with_aggregate;
    const char *node = "gpu-r010-n01"; /* idle: taking it lowers capacity */
    char st[32];
    squeezed = true;
    aggregates = 0;
    ck_assert_int_eq(fm_guard_reserve(&t.ctx, node, "quarantined", "xid", "wf", &err), -1);
    ck_assert_int_eq(err.code, FM_ERR_GUARDRAIL);
    ck_assert_msg(strstr(err.text, "capacity") && strstr(err.text, "read now"), "%s", err.text);
    ck_assert_int_eq(aggregates, 1);
    fm_node_state_get(&t.ctx, node, st, sizeof st);
    ck_assert_str_ne(st, "quarantined");
    squeezed = false;
    memset(&err, 0, sizeof err);
    ck_assert_msg(fm_guard_reserve(&t.ctx, node, "quarantined", "xid", "wf", &err) == 0, "%s",
                  err.text);
    fm_node_state_get(&t.ctx, node, st, sizeof st);
    ck_assert_str_eq(st, "quarantined");
    ts_close(&t);
}
END_TEST

/* A refusal names every guardrail that refused, the first in full, so the
 * operator meets no hidden second obstacle; a short buffer stays a string. */
START_TEST(explain_names_every_refusal)
{
    json_t *v = json_pack(
        "[{s:s,s:b,s:s},{s:s,s:b,s:s,s:s},{s:s,s:b,s:s},{s:s,s:b,s:s}]", "guardrail", "exclusions",
        "ok", 1, "detail", "n1 is not excluded", "guardrail", "equivalence", "ok", 0, "detail",
        "a reboot is pending", "fix", "wait for the reboot", "guardrail", "repeat_offender", "ok",
        0, "detail", "escalated", "guardrail", "retry_budget", "ok", 0, "detail", "3 of 2");
    char buf[256];
    fm_guard_explain(v, buf, sizeof buf);
    ck_assert_str_eq(buf, "guardrail equivalence: a reboot is pending; to pass: wait for the "
                          "reboot (also refused by repeat_offender, retry_budget)");
    char small[40];
    fm_guard_explain(v, small, sizeof small);
    ck_assert_uint_eq(strlen(small), sizeof small - 1);
    ck_assert(!strncmp(small, "guardrail equivalence: a reboot", 31));
    json_t *one = json_pack("[{s:s,s:b,s:s}]", "guardrail", "mode", "ok", 0, "detail", "canary");
    fm_guard_explain(one, buf, sizeof buf);
    ck_assert_str_eq(buf, "guardrail mode: canary");
    json_object_set_new(json_array_get(one, 0), "ok", json_true());
    fm_guard_explain(one, buf, sizeof buf);
    ck_assert_str_eq(buf, "all guardrails pass");
    json_decref(one);
    json_decref(v);
}
END_TEST

static Suite *guard_fleet_suite(void)
{
    Suite *s = suite_create("guard_fleet");
    TCase *tc = tcase_create("verdicts");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, shared_reads_same_verdicts);
    tcase_add_test(tc, explain_names_every_refusal);
    tcase_add_test(tc, reserve_decides_capacity_now);
    suite_add_tcase(s, tc);
    return s;
}

FM_TEST_MAIN(guard_fleet_suite)
