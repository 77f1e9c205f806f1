/* Pool plan batching (fm_pool_batches) on a generated fleet: every node
 * lands in exactly one batch, no batch passes while breaking the blast
 * radius of a rack or SKU or a partition's capacity headroom (counted
 * here independently of the code under test), nodes already in
 * remediation count against their domain, a node that cannot go even
 * alone is its own failing batch, and drained nodes take no capacity. */
#include <string.h>

#include "fleetmcp/fm_pool.h"
#include "fleetmcp/fm_util.h"
#include "fm_test.h"

#define RACKS 8
#define PER_RACK 8
#define NODES (RACKS * PER_RACK)

/* Node i: rack i / 8 + 1, SKU h100 on even racks and a100 on odd ones,
 * partition gpu; drained when (i % drained_every == 0) and drained_every. */
static json_t *fleet(int drained_every, bool with_partition_domain)
{
    json_t *nodes = json_array();
    for (int i = 0; i < NODES; i++) {
        char name[32], rack[16];
        snprintf(name, sizeof name, "gpu-r%02d-n%02d", i / PER_RACK + 1, i % PER_RACK + 1);
        snprintf(rack, sizeof rack, "r%02d", i / PER_RACK + 1);
        bool drained = drained_every && i % drained_every == 0;
        json_t *domains =
            json_pack("{s:s, s:s}", "rack", rack, "sku", (i / PER_RACK) % 2 ? "a100" : "h100");
        if (with_partition_domain) json_object_set_new(domains, "partition", json_string("gpu"));
        json_array_append_new(nodes, json_pack("{s:s, s:o, s:[s], s:o}", "name", name, "domains",
                                               domains, "partitions", "gpu", "state",
                                               drained ? json_pack("[s, s]", "IDLE", "DRAIN")
                                                       : json_pack("[s]", "IDLE")));
    }
    return nodes;
}

static const json_t *by_name(const json_t *nodes, const char *name)
{
    size_t i;
    json_t *n;
    json_array_foreach(nodes, i, n) if (!strcmp(fm_json_str(n, "name", ""), name)) return n;
    return NULL;
}

static bool has_failing(const json_t *batch, const char *guardrail)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(batch, "verdicts"), i,
                       v) if (!strcmp(fm_json_str(v, "guardrail", ""), guardrail) &&
                              !json_is_true(json_object_get(v, "ok"))) return true;
    return false;
}

/* Checks the invariants of batches over nodes; returns how many batches
 * failed. */
static int check_batches(const json_t *nodes, const json_t *batches, const json_t *busy,
                         long long cap_total, long long cap_now, const fm_pool_limits *lim)
{
    json_t *seen = json_object();
    int failing = 0;
    size_t i, k;
    json_t *b, *n;
    json_array_foreach(batches, i, b)
    {
        ck_assert_int_eq(json_integer_value(json_object_get(b, "batch")), (json_int_t)i + 1);
        json_t *count = json_object();
        long long taken = 0;
        json_array_foreach(json_object_get(b, "nodes"), k, n)
        {
            const char *name = json_string_value(n);
            ck_assert_msg(!json_object_get(seen, name), "%s in two batches", name);
            json_object_set_new(seen, name, json_true());
            const json_t *node = by_name(nodes, name);
            ck_assert_ptr_nonnull(node);
            const char *key;
            json_t *val;
            json_object_foreach(json_object_get(node, "domains"), key, val)
            {
                char dk[96];
                snprintf(dk, sizeof dk, "%s=%s", key, json_string_value(val));
                json_object_set_new(
                    count, dk, json_integer(json_integer_value(json_object_get(count, dk)) + 1));
            }
            bool drained = json_array_size(json_object_get(node, "state")) > 1;
            taken += !drained;
        }
        bool within = true;
        const char *key;
        json_t *c;
        json_object_foreach(count, key, c) if (json_integer_value(c) +
                                                   json_integer_value(json_object_get(busy, key)) >
                                               lim->per_domain) within = false;
        if (cap_total)
            within &= (double)(cap_now - taken) / (double)cap_total + 1e-9 >= lim->min_share;
        bool pass = json_is_true(json_object_get(b, "pass"));
        /* Passing means within every limit, counted here. */
        ck_assert_int_eq(pass, within);
        if (!pass) {
            failing++;
            /* Only a node that fails alone makes a failing batch. */
            ck_assert_int_eq(json_array_size(json_object_get(b, "nodes")), 1);
        }
        json_decref(count);
    }
    ck_assert_int_eq(json_object_size(seen), json_array_size(nodes));
    json_decref(seen);
    return failing;
}

START_TEST(rack_and_sku_radius)
{
    json_t *nodes = fleet(0, false), *busy = json_object(), *cap = json_object();
    fm_pool_limits lim = {.per_domain = 2, .min_share = 0};
    json_t *b = fm_pool_batches(nodes, busy, cap, &lim);
    ck_assert_int_eq(check_batches(nodes, b, busy, 0, 0, &lim), 0);
    /* Two per rack and per SKU, two SKUs: batches of 4, the fewest there
     * can be. */
    ck_assert_int_eq(json_array_size(b), NODES / 4);
    /* The same input gives the same batches (the plan hash covers them). */
    json_t *again = fm_pool_batches(nodes, busy, cap, &lim);
    ck_assert(json_equal(b, again));
    json_decref(again);
    json_decref(b);
    /* The partition as a domain (as Slurm nodes have it) bounds the batch
     * to per_domain for the whole pool. */
    json_t *nodes2 = fleet(0, true);
    b = fm_pool_batches(nodes2, busy, cap, &lim);
    ck_assert_int_eq(check_batches(nodes2, b, busy, 0, 0, &lim), 0);
    ck_assert_int_eq(json_array_size(b), NODES / 2);
    json_decref(b);
    json_decref(nodes2);
    json_decref(nodes);
    json_decref(busy);
    json_decref(cap);
}
END_TEST

START_TEST(busy_domain_fails_alone)
{
    json_t *nodes = fleet(0, false), *cap = json_object();
    /* Rack r01 already has 2 nodes in remediation: its nodes cannot go at
     * all, each is its own failing batch; the rest still batch. */
    json_t *busy = json_pack("{s:i, s:i}", "rack=r01", 2, "sku=h100", 1);
    fm_pool_limits lim = {.per_domain = 2, .min_share = 0};
    json_t *b = fm_pool_batches(nodes, busy, cap, &lim);
    ck_assert_int_eq(check_batches(nodes, b, busy, 0, 0, &lim), PER_RACK);
    size_t i;
    json_t *x;
    int failing_r01 = 0;
    json_array_foreach(b, i, x) if (!json_is_true(json_object_get(x, "pass")))
    {
        ck_assert(has_failing(x, "blast_radius"));
        ck_assert(strstr(json_string_value(json_array_get(json_object_get(x, "nodes"), 0)),
                         "gpu-r01-") != NULL);
        failing_r01++;
    }
    ck_assert_int_eq(failing_r01, PER_RACK);
    json_decref(b);
    json_decref(nodes);
    json_decref(busy);
    json_decref(cap);
}
END_TEST

START_TEST(capacity_headroom)
{
    json_t *nodes = fleet(0, false), *busy = json_object();
    fm_pool_limits lim = {.per_domain = 1000, .min_share = 0.95};
    /* 64 of 64 schedulable, 95% must stay: 3 at a time. */
    json_t *cap = json_pack("{s:{s:i, s:i}}", "gpu", "total", NODES, "schedulable_now", NODES);
    json_t *b = fm_pool_batches(nodes, busy, cap, &lim);
    ck_assert_int_eq(check_batches(nodes, b, busy, NODES, NODES, &lim), 0);
    ck_assert_int_eq(json_array_size(b), (NODES + 2) / 3);
    json_decref(b);
    json_decref(cap);
    /* 60 of 64 schedulable: not one node may go; every batch fails on
     * capacity and names the partition. */
    cap = json_pack("{s:{s:i, s:i}}", "gpu", "total", NODES, "schedulable_now", 60);
    b = fm_pool_batches(nodes, busy, cap, &lim);
    ck_assert_int_eq(check_batches(nodes, b, busy, NODES, 60, &lim), NODES);
    ck_assert(has_failing(json_array_get(b, 0), "capacity"));
    json_decref(b);
    json_decref(cap);
    /* Drained nodes take no capacity: at 61 of 64 (95.3%) with every 4th
     * node drained those batch (in one batch, the radius being loose),
     * the others fail. */
    cap = json_pack("{s:{s:i, s:i}}", "gpu", "total", NODES, "schedulable_now", 61);
    json_t *nodes2 = fleet(4, false);
    b = fm_pool_batches(nodes2, busy, cap, &lim);
    ck_assert_int_eq(check_batches(nodes2, b, busy, NODES, 61, &lim), NODES - NODES / 4);
    ck_assert_int_eq(json_array_size(json_object_get(json_array_get(b, 0), "nodes")), NODES / 4);
    ck_assert(json_is_true(json_object_get(json_array_get(b, 0), "pass")));
    json_decref(b);
    json_decref(nodes2);
    json_decref(cap);
    json_decref(nodes);
    json_decref(busy);
}
END_TEST

START_TEST(empty_pool)
{
    json_t *nodes = json_array(), *busy = json_object(), *cap = json_object();
    fm_pool_limits lim = {.per_domain = 1, .min_share = 0.5};
    json_t *b = fm_pool_batches(nodes, busy, cap, &lim);
    ck_assert_int_eq(json_array_size(b), 0);
    json_decref(b);
    json_decref(nodes);
    json_decref(busy);
    json_decref(cap);
}
END_TEST

static Suite *pool_suite(void)
{
    Suite *s = suite_create("pool");
    TCase *tc = tcase_create("batches");
    tcase_add_test(tc, rack_and_sku_radius);
    tcase_add_test(tc, busy_domain_fails_alone);
    tcase_add_test(tc, capacity_headroom);
    tcase_add_test(tc, empty_pool);
    suite_add_tcase(s, tc);
    return s;
}

FM_TEST_MAIN(pool_suite)
