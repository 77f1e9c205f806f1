/* The node table kept between calls (src/backends/slurm_table.c): what a
 * conditional nodes answer does to it.  Answers are the v0.0.38 listing
 * captured from the test stack (tests/fixtures/slurm/rest_v0.0.38_nodes.json),
 * that listing with one node drained and one removed (the whole table
 * Slurm sends when something changed), a 304 with no body, and the HTTP 500
 * Slurm 22.05's slurmrestd answers to a conditional read whose nodes
 * changed but partitions did not (rest_v0.0.38_nodes_changed_500.json,
 * captured from the bench controller). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleetmcp/fm_slurm.h"
#include "fleetmcp/fm_slurm_table.h"
#include "fleetmcp/fm_util.h"
#include "fleetmcp/fm_store.h"
#include "fleet_listing.h"
#include "fm_test.h"

static fm_slurm_domains *dom;

static json_t *load_fix(const char *name)
{
    const char *d = getenv("FM_FIXTURES");
    char p[512];
    snprintf(p, sizeof p, "%s/slurm/%s", d ? d : "tests/fixtures", name);
    json_error_t je;
    json_t *j = json_load_file(p, 0, &je);
    ck_assert_msg(j != NULL, "fixture %s: %s", p, je.text);
    return j;
}

static void setup(void)
{
    fm_err err = {0};
    dom = fm_slurm_domains_new(NULL, NULL, &err);
    ck_assert_ptr_nonnull(dom);
}

static void teardown(void)
{
    fm_slurm_domains_free(dom);
}

/* Applies an answer (a JSON document, or NULL for no body). */
static int apply(fm_slurm_table *t, long status, const json_t *doc, long long stamp,
                 json_t **errors)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    fm_err err = {0};
    int r = fm_slurm_table_apply(t, dom, status, text ? text : "", text ? strlen(text) : 0, stamp,
                                 errors, &err);
    free(text);
    ck_assert_msg(r >= 0, "%s", err.text);
    ck_assert_int_eq(err.code, 0);
    return r;
}

/* A table loaded from the captured listing (*ans, new), stamped 1000. */
static fm_slurm_table *loaded(json_t **ans)
{
    fm_slurm_table *t = fm_slurm_table_new();
    *ans = load_fix("rest_v0.0.38_nodes.json");
    json_t *errors = NULL;
    ck_assert_int_eq(apply(t, 200, *ans, 1000, &errors), FM_TABLE_REPLACED);
    ck_assert_ptr_null(errors);
    return t;
}

static void capacity(const fm_slurm_table *t, const char *part, long *total, long *in)
{
    const char *parts[] = {part};
    fm_err err = {0};
    ck_assert_int_eq(fm_slurm_table_capacity(t, parts, 1, total, in, &err), 0);
}

/* The raw node named name in a listing (borrowed). */
static json_t *raw_node(json_t *ans, const char *name, size_t *idx)
{
    size_t i;
    json_t *n;
    json_array_foreach(json_object_get(ans, "nodes"), i, n)
    {
        if (!strcmp(json_string_value(json_object_get(n, "name")), name)) {
            if (idx) *idx = i;
            return n;
        }
    }
    ck_abort_msg("fixture has no node %s", name);
    return NULL;
}

START_TEST(full_answer_loads)
{
    fm_slurm_table *t = fm_slurm_table_new();
    ck_assert(!fm_slurm_table_loaded(t));
    json_t *ans = load_fix("rest_v0.0.38_nodes.json");
    json_t *errors = NULL;
    ck_assert_int_eq(apply(t, 200, ans, 1000, &errors), FM_TABLE_REPLACED);
    ck_assert_ptr_null(errors);
    ck_assert(fm_slurm_table_loaded(t));
    ck_assert_uint_eq(fm_slurm_table_size(t), json_array_size(json_object_get(ans, "nodes")));
    ck_assert_int_eq(fm_slurm_table_stamp(t), 1000);

    /* The node a lookup gives is the one the normalizer gives. */
    fm_err err = {0};
    json_t *all = fm_slurm_norm_nodes(ans, dom, NULL, &err);
    ck_assert_ptr_nonnull(all);
    size_t i;
    json_t *want;
    json_array_foreach(all, i, want)
    {
        json_t *got = fm_slurm_table_node(t, json_string_value(json_object_get(want, "name")));
        ck_assert_ptr_nonnull(got);
        ck_assert(json_equal(got, want));
        json_decref(got);
    }
    ck_assert_ptr_null(fm_slurm_table_node(t, "gpu-zz99"));
    ck_assert_ptr_null(fm_slurm_table_node(t, NULL));

    /* Capacity counts as the guardrail counts the listing. */
    long total, in;
    const char *parts[] = {"gpu", "debug", "nosuch"};
    long tt[3], ii[3];
    ck_assert_int_eq(fm_slurm_table_capacity(t, parts, 3, tt, ii, &err), 0);
    for (size_t p = 0; p < 3; p++) {
        long wt = 0, wi = 0;
        json_array_foreach(all, i, want)
        {
            size_t k;
            json_t *pp;
            json_array_foreach(json_object_get(want, "partitions"), k, pp)
            {
                if (strcmp(json_string_value(pp), parts[p])) continue;
                wt++;
                wi += fm_slurm_node_schedulable(want);
            }
        }
        ck_assert_int_eq(tt[p], wt);
        ck_assert_int_eq(ii[p], wi);
    }
    capacity(t, "gpu", &total, &in);
    ck_assert_int_eq(total, 7);
    ck_assert_int_eq(in, 5); /* gpu-a02 and gpu-b02 are drained */
    json_decref(all);
    json_decref(ans);
    fm_slurm_table_free(t);
}
END_TEST

START_TEST(unchanged_answer_keeps_table)
{
    json_t *ans, *errors = NULL;
    fm_slurm_table *t = loaded(&ans);
    /* 304 Not Modified: no body; the table and its stamp stay. */
    ck_assert_int_eq(apply(t, 304, NULL, 2000, &errors), FM_TABLE_UNCHANGED);
    ck_assert_ptr_null(errors);
    ck_assert(fm_slurm_table_loaded(t));
    ck_assert_uint_eq(fm_slurm_table_size(t), 7);
    ck_assert_int_eq(fm_slurm_table_stamp(t), 1000);
    json_t *n = fm_slurm_table_node(t, "gpu-a01");
    ck_assert_ptr_nonnull(n);
    json_decref(n);
    json_decref(ans);
    fm_slurm_table_free(t);
}
END_TEST

START_TEST(changed_and_removed_nodes)
{
    json_t *ans, *errors = NULL;
    fm_slurm_table *t = loaded(&ans);
    long total, in;
    capacity(t, "debug", &total, &in);
    ck_assert_int_eq(total, 2);
    ck_assert_int_eq(in, 2);

    /* Slurm's next listing: gpu-a03 drained, gpu-b03 gone (scontrol
     * delete node), gpu-a02 resumed. */
    json_t *next = json_deep_copy(ans);
    json_t *a03 = raw_node(next, "gpu-a03", NULL);
    json_object_set_new(a03, "state_flags", json_pack("[s]", "DRAIN"));
    json_object_set_new(a03, "reason", json_string("fleetmcp: xid 79"));
    json_object_set_new(raw_node(next, "gpu-a02", NULL), "state_flags", json_array());
    size_t idx;
    raw_node(next, "gpu-b03", &idx);
    json_array_remove(json_object_get(next, "nodes"), idx);

    ck_assert_int_eq(apply(t, 200, next, 1500, &errors), FM_TABLE_REPLACED);
    ck_assert_int_eq(fm_slurm_table_stamp(t), 1500);
    ck_assert_uint_eq(fm_slurm_table_size(t), 6);
    ck_assert_ptr_null(fm_slurm_table_node(t, "gpu-b03"));
    json_t *n = fm_slurm_table_node(t, "gpu-a03");
    ck_assert_ptr_nonnull(n);
    ck_assert(!fm_slurm_node_schedulable(n));
    ck_assert_str_eq(json_string_value(json_object_get(n, "reason")), "fleetmcp: xid 79");
    json_decref(n);
    n = fm_slurm_table_node(t, "gpu-a02");
    ck_assert(fm_slurm_node_schedulable(n));
    json_decref(n);
    capacity(t, "debug", &total, &in); /* a03 drained, b03 gone */
    ck_assert_int_eq(total, 1);
    ck_assert_int_eq(in, 0);
    capacity(t, "gpu", &total, &in); /* a02 back, a03 out, b03 gone */
    ck_assert_int_eq(total, 6);
    ck_assert_int_eq(in, 4);
    json_decref(next);
    json_decref(ans);
    fm_slurm_table_free(t);
}
END_TEST

START_TEST(error_answers_force_a_full_read)
{
    json_t *ans, *errors = NULL;
    fm_slurm_table *t = loaded(&ans);

    /* 22.05: nodes changed, partitions did not -> HTTP 500, errno -1. */
    json_t *e500 = load_fix("rest_v0.0.38_nodes_changed_500.json");
    ck_assert_int_eq(apply(t, 500, e500, 2000, &errors), FM_TABLE_REREAD);
    ck_assert_ptr_nonnull(errors);
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(errors, 0), "errno")), -1);
    json_decref(errors);
    errors = NULL;
    /* The table is kept as it was (the caller reads it again). */
    ck_assert_uint_eq(fm_slurm_table_size(t), 7);
    ck_assert_int_eq(fm_slurm_table_stamp(t), 1000);

    /* A 200 with no nodes (newer slurmrestd's "no change" before 304) and
     * a page that is not JSON: read again, never an empty table. */
    json_t *empty = json_pack("{s:[], s:[]}", "nodes", "errors");
    ck_assert_int_eq(apply(t, 200, empty, 2000, &errors), FM_TABLE_REREAD);
    ck_assert_ptr_null(errors);
    fm_err err = {0};
    const char *page = "<html>bad gateway</html>";
    ck_assert_int_eq(fm_slurm_table_apply(t, dom, 502, page, strlen(page), 2000, &errors, &err),
                     FM_TABLE_REREAD);
    ck_assert_int_eq(err.code, 0);
    ck_assert_uint_eq(fm_slurm_table_size(t), 7);
    /* Cut off mid-listing: not a table. */
    char *text = json_dumps(ans, JSON_COMPACT);
    ck_assert_int_eq(fm_slurm_table_apply(t, dom, 200, text, strlen(text) / 2, 2000, &errors, &err),
                     FM_TABLE_REREAD);
    ck_assert_int_eq(fm_slurm_table_stamp(t), 1000);
    free(text);

    fm_slurm_table_clear(t);
    ck_assert(!fm_slurm_table_loaded(t));
    long tot, in;
    const char *parts[] = {"gpu"};
    ck_assert_int_eq(fm_slurm_table_capacity(t, parts, 1, &tot, &in, &err), -1);
    ck_assert_int_eq(err.code, FM_ERR_UNAVAILABLE);
    json_decref(empty);
    json_decref(e500);
    json_decref(ans);
    fm_slurm_table_free(t);
}
END_TEST

/* 16,384 nodes of the fixture's shape (gpu-r001-n01..gpu-r256-n64), every
 * 100th drained, loaded stamped 42; with debug, the first two racks are
 * also in partition debug, and each node's state word is "idle". */
static fm_slurm_table *fleet_table(bool debug)
{
    json_t *ans = load_fix("rest_v0.0.38_nodes.json");
    json_t *big = fleet_listing(json_array_get(json_object_get(ans, "nodes"), 0), debug);
    fm_slurm_table *t = fm_slurm_table_new();
    json_t *errors = NULL;
    ck_assert_int_eq(apply(t, 200, big, 42, &errors), FM_TABLE_REPLACED);
    ck_assert_uint_eq(fm_slurm_table_size(t), 16384);
    json_decref(big);
    json_decref(ans);
    return t;
}

/* Memory at fleet scale: 16,384 nodes of the fixture's shape. */
START_TEST(large_table)
{
    fm_slurm_table *t = fleet_table(false);
    long total, in;
    capacity(t, "gpu", &total, &in);
    ck_assert_int_eq(total, 16384);
    ck_assert_int_eq(in, 16384 - 164);
    json_t *n = fm_slurm_table_node(t, "gpu-r256-n64");
    ck_assert_ptr_nonnull(n);
    json_decref(n);
    fm_slurm_table_free(t);
}
END_TEST

static int collect_names(void *ud, const json_t *node, fm_err *err)
{
    (void)err;
    return json_array_append(ud, (json_t *)node);
}

/* A walk of the table is the listing: the same nodes, normalized alike, in
 * Slurm's order, under every filter (slurm_nodes and diagnose's cluster mode
 * read it instead of a listing). */
START_TEST(table_walk_is_the_listing)
{
    json_t *ans;
    fm_slurm_table *t = loaded(&ans);
    const fm_slurm_node_filter filters[] = {
        {0},
        {.partition = "debug"},
        {.state = "drain"},
        {.name_glob = "gpu-b*"},
        {.name_regex = "^gpu-a0[2-3]$"},
        {.partition = "gpu", .state = "mixed"},
        {.partition = "nosuch"},
    };
    for (size_t i = 0; i < sizeof filters / sizeof *filters; i++) {
        fm_err err = {0};
        json_t *want = fm_slurm_norm_nodes(ans, dom, &filters[i], &err);
        ck_assert_ptr_nonnull(want);
        json_t *got = json_array();
        ck_assert_int_eq(fm_slurm_table_each(t, &filters[i], collect_names, got, &err), 0);
        ck_assert_msg(json_equal(got, want), "filter %zu: the walk differs from the listing", i);
        json_decref(got);
        json_decref(want);
    }
    /* A bad regex is the listing's error. */
    fm_err err = {0};
    fm_slurm_node_filter bad = {.name_regex = "("};
    ck_assert_int_eq(fm_slurm_table_each(t, &bad, collect_names, NULL, &err), -1);
    ck_assert_int_eq(err.code, FM_ERR_INVALID);

    json_decref(ans);
    fm_slurm_table_free(t);
}
END_TEST

/* The CLI backend's aggregate (sinfo -h -a -o "%R|%T|%D|%N") and the REST
 * backend's table give the capacity guardrail and the circuit breaker the
 * same numbers.  sinfo_counts_22.05.txt is the aggregate of the fleet in
 * rest_v0.0.38_nodes.json (see tests/fixtures/slurm/README.md). */
START_TEST(sinfo_counts_match_the_table)
{
    json_t *ans;
    fm_slurm_table *t = loaded(&ans);
    const char *d = getenv("FM_FIXTURES");
    char p[512];
    snprintf(p, sizeof p, "%s/slurm/sinfo_counts_22.05.txt", d ? d : "tests/fixtures");
    FILE *f = fopen(p, "r");
    ck_assert_msg(f != NULL, "fixture %s", p);
    char text[4096];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    const char *parts[] = {"gpu", "debug", "nosuch"};
    long tt[3], ti[3], st[3], si[3];
    long long fleet = 0;
    fm_err err = {0};
    ck_assert_int_eq(fm_slurm_table_capacity(t, parts, 3, tt, ti, &err), 0);
    ck_assert_int_eq(fm_slurm_sinfo_counts(text, parts, 3, st, si, &fleet, &err), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(st[i], tt[i]);
        ck_assert_int_eq(si[i], ti[i]);
    }
    ck_assert_int_eq(fleet, (long long)fm_slurm_table_size(t)); /* a03, b03 in both: once */
    /* A count that is not its hostlist's is not trusted. */
    ck_assert_int_eq(
        fm_slurm_sinfo_counts("gpu|idle|3|gpu-a[01-02]\n", NULL, 0, NULL, NULL, &fleet, &err), -1);
    ck_assert_int_eq(err.code, FM_ERR_PARSE);
    json_decref(ans);
    fm_slurm_table_free(t);
}
END_TEST

/* Appends rack r's nodes n01..n64 whose state is (drained) as a ranged
 * hostlist, the way sinfo prints it. */
static void rack_ranges(char *out, size_t cap, int r, bool drained)
{
    int lo = -1;
    for (int k = 1; k <= 65; k++) {
        int i = (r - 1) * 64 + (k - 1);
        bool in = k <= 64 && (i % 100 == 0) == drained;
        if (in && lo < 0) lo = k;
        if (!in && lo >= 0) {
            size_t l = strlen(out);
            snprintf(out + l, cap - l, "%sgpu-r%03d-n[%02d-%02d]", l ? "," : "", r, lo, k - 1);
            lo = -1;
        }
    }
}

/* 16,384 nodes both ways: the fleet of large_table, with the first two
 * racks also in debug. */
START_TEST(sinfo_counts_at_fleet_scale)
{
    fm_slurm_table *t = fleet_table(true);

    size_t cap = 1 << 20;
    char *text = calloc(1, cap), *list = malloc(65536);
    const char *part[] = {"gpu", "debug"};
    for (int p = 0; p < 2; p++)
        for (int drained = 0; drained < 2; drained++) {
            list[0] = '\0';
            int count = 0;
            for (int r = 1; r <= (p ? 2 : 256); r++) {
                rack_ranges(list, 65536, r, drained);
                for (int k = 0; k < 64; k++)
                    count += (((r - 1) * 64 + k) % 100 == 0) == drained;
            }
            size_t l = strlen(text);
            snprintf(text + l, cap - l, "%s|%s|%d|%s\n", part[p], drained ? "drained" : "idle",
                     count, list);
        }
    const char *parts[] = {"gpu", "debug"};
    long tt[2], ti[2], st[2], si[2];
    long long fleet = 0;
    fm_err err = {0};
    ck_assert_int_eq(fm_slurm_table_capacity(t, parts, 2, tt, ti, &err), 0);
    ck_assert_int_eq(fm_slurm_sinfo_counts(text, parts, 2, st, si, &fleet, &err), 0);
    ck_assert_int_eq(fleet, 16384);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(st[i], tt[i]);
        ck_assert_int_eq(si[i], ti[i]);
    }
    ck_assert_int_eq(tt[1], 128);
    free(list);
    free(text);
    fm_slurm_table_free(t);
}
END_TEST

/* ---- snapshots --------------------------------------------------------- */

/* Two tables say the same: stamp, every node in listing order, capacity. */
static void same_table(const fm_slurm_table *a, const fm_slurm_table *b)
{
    fm_err err = {0};
    ck_assert_int_eq(fm_slurm_table_stamp(a), fm_slurm_table_stamp(b));
    ck_assert_uint_eq(fm_slurm_table_size(a), fm_slurm_table_size(b));
    json_t *wa = json_array(), *wb = json_array();
    ck_assert_int_eq(fm_slurm_table_each(a, NULL, collect_names, wa, &err), 0);
    ck_assert_int_eq(fm_slurm_table_each(b, NULL, collect_names, wb, &err), 0);
    ck_assert_uint_eq(json_array_size(wa), fm_slurm_table_size(a));
    ck_assert(json_equal(wa, wb));
    const char *parts[] = {"gpu", "debug", "nosuch"};
    long ta[3], ia[3], tb[3], ib[3];
    ck_assert_int_eq(fm_slurm_table_capacity(a, parts, 3, ta, ia, &err), 0);
    ck_assert_int_eq(fm_slurm_table_capacity(b, parts, 3, tb, ib, &err), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(ta[i], tb[i]);
        ck_assert_int_eq(ia[i], ib[i]);
    }
    json_t *n =
        fm_slurm_table_node(b, json_string_value(json_object_get(json_array_get(wa, 0), "name")));
    ck_assert(json_equal(n, json_array_get(wa, 0)));
    json_decref(n);
    json_decref(wa);
    json_decref(wb);
}

/* A snapshot restores the table it was written from: the captured listing
 * (partitions gpu and debug, drained and down nodes) and 16,384 nodes. */
START_TEST(snapshot_round_trip)
{
    json_t *ans;
    fm_slurm_table *tables[2] = {loaded(&ans), fleet_table(true)};
    json_decref(ans);
    for (int k = 0; k < 2; k++) {
        fm_err err = {0};
        size_t len = 0;
        char *text = fm_slurm_table_snapshot(tables[k], 64u << 20, &len, &err);
        ck_assert_msg(text != NULL, "%s", err.text);
        ck_assert_uint_eq(strlen(text), len);
        fm_slurm_table *r = fm_slurm_table_new();
        ck_assert_int_eq(
            fm_slurm_table_restore(r, text, len, fm_slurm_table_stamp(tables[k]), &err), 0);
        same_table(tables[k], r);
        /* What a restored table writes is what it was restored from. */
        size_t len2 = 0;
        char *again = fm_slurm_table_snapshot(r, 64u << 20, &len2, &err);
        ck_assert_uint_eq(len2, len);
        ck_assert_int_eq(memcmp(again, text, len), 0);
        free(again);
        free(text);
        fm_slurm_table_free(r);
        fm_slurm_table_free(tables[k]);
    }
}
END_TEST

/* Restores text (a copy of len bytes) into a loaded table: it must be
 * refused and leave the table as it was. */
static void refused(const char *text, size_t len, const char *what)
{
    json_t *ans;
    fm_slurm_table *t = loaded(&ans);
    json_decref(ans);
    fm_err err = {0};
    char *copy = malloc(len + 1);
    memcpy(copy, text, len);
    copy[len] = '\0';
    ck_assert_msg(fm_slurm_table_restore(t, copy, len, 2000, &err) == -1, "accepted: %s", what);
    ck_assert_int_eq(err.code, FM_ERR_PARSE);
    ck_assert_int_eq(fm_slurm_table_stamp(t), 1000);
    ck_assert_uint_eq(fm_slurm_table_size(t), 7);
    free(copy);
    fm_slurm_table_free(t);
}

/* Replaces the first occurrence of from in text by to (a new string). */
static char *edit(const char *text, const char *from, const char *to)
{
    const char *at = strstr(text, from);
    ck_assert_msg(at != NULL, "no %s in the snapshot", from);
    size_t pre = (size_t)(at - text), fl = strlen(from), tl = strlen(to);
    char *out = malloc(strlen(text) - fl + tl + 1);
    memcpy(out, text, pre);
    memcpy(out + pre, to, tl);
    strcpy(out + pre + tl, at + fl);
    return out;
}

START_TEST(snapshot_corrupt_or_oversized_refused)
{
    json_t *ans;
    fm_slurm_table *t = loaded(&ans);
    json_decref(ans);
    fm_err err = {0};
    size_t len = 0;
    char *text = fm_slurm_table_snapshot(t, 1 << 20, &len, &err);
    ck_assert_ptr_nonnull(text);
    refused(text, len / 2, "cut off mid-node");
    refused(text, len - 1, "last line without its newline");
    refused(text, 0, "empty");
    const char *edits[][2] = {
        {"fleetmcp-node-table 1", "fleetmcp-node-table 2"}, /* another format */
        {" 7 2\n", " 8 2\n"},                               /* a node missing */
        {" 7 2\n", " 6 2\n"},                               /* a node too many */
        {" 7 2\n", " 7 1\n"},                               /* masks name a lost partition */
        {"\tgpu-a02\t", "\tgpu a02\t"},                     /* not a node name */
        {"\tgpu-a02\t", "\tgpu-a01\t"},                     /* a node twice */
        {"\tgpu-a02\t{", "\tgpu-a02\t["},                   /* not an object */
        {"\n1\t", "\n2\t"},                                 /* in service is 0 or 1 */
        {"\n1\t", "\n1\tz"},                                /* the mask is hex */
        {"\n1\t1\t", "\n1\t4\t"},                           /* a third partition of two */
    };
    for (size_t i = 0; i < sizeof edits / sizeof *edits; i++) {
        char *bad = edit(text, edits[i][0], edits[i][1]);
        refused(bad, strlen(bad), edits[i][1]);
        free(bad);
    }
    char *longer = malloc(len + 2);
    memcpy(longer, text, len);
    memcpy(longer + len, "x\n", 2);
    refused(longer, len + 2, "trailing line");
    free(longer);
    /* Written only within its bound: an oversized table is not shared. */
    char *none = fm_slurm_table_snapshot(t, len - 1, &len, &err);
    ck_assert_ptr_null(none);
    ck_assert_int_eq(err.code, FM_ERR_TOO_LARGE);
    fm_slurm_table *empty = fm_slurm_table_new();
    ck_assert_ptr_null(fm_slurm_table_snapshot(empty, 1 << 20, &len, &err));
    fm_slurm_table_free(empty);
    free(text);
    fm_slurm_table_free(t);
}
END_TEST

/* A fresh store in a new directory: path is a "/tmp/fm-...-XXXXXX"
 * buffer, db (128 bytes) receives the store file's name. */
static void temp_store_open(char *path, char *db, fm_store *st)
{
    ck_assert_ptr_nonnull(mkdtemp(path));
    snprintf(db, 128, "%s/store.db", path);
    fm_err err = {0};
    ck_assert_msg(fm_store_open(st, fm_test_store(db), &err) == 0, "%s", err.text);
}

static void temp_store_close(const char *path, const char *db, fm_store *st)
{
    fm_store_close(st);
    fm_test_unlink_db(db);
    rmdir(path);
}

/* The store's copy: restored only within (after, until] of stamps, never
 * over a newer one, and refused when its row does not match its digest. */
START_TEST(snapshot_in_the_store)
{
    char path[] = "/tmp/fm-snapshot-XXXXXX", db[128];
    fm_store st = {0};
    fm_err err = {0};
    temp_store_open(path, db, &st);
    json_t *ans;
    fm_slurm_table *t = loaded(&ans); /* stamped 1000 */
    json_decref(ans);
    fm_slurm_table *r = fm_slurm_table_new();
    ck_assert_int_eq(fm_slurm_snapshot_load(&st, "src", "c1", r, 0, 5000, 1 << 20, &err), 1);
    ck_assert_int_eq(fm_slurm_snapshot_save(&st, "src", "c1", t, 1 << 20, &err), 0);
    /* Stamped after slurmctld's clock now: another clock, not trusted. */
    ck_assert_int_eq(fm_slurm_snapshot_load(&st, "src", "c1", r, 0, 999, 1 << 20, &err), 1);
    /* Not newer than the table the caller has. */
    ck_assert_int_eq(fm_slurm_snapshot_load(&st, "src", "c1", r, 1000, 5000, 1 << 20, &err), 1);
    /* Another source's is not ours; an oversized one is not read. */
    ck_assert_int_eq(fm_slurm_snapshot_load(&st, "other", "c1", r, 0, 5000, 1 << 20, &err), 1);
    ck_assert_int_eq(fm_slurm_snapshot_load(&st, "src", "c1", r, 0, 5000, 100, &err), 1);
    /* Another cluster under the same key (one endpoint string, two hosts'
     * clusters), or no cluster name at all: never restored, and nothing is
     * written without a name. */
    ck_assert_int_eq(fm_slurm_snapshot_load(&st, "src", "c2", r, 0, 1000, 1 << 20, &err), 1);
    ck_assert_int_eq(fm_slurm_snapshot_load(&st, "src", "", r, 0, 1000, 1 << 20, &err), 1);
    ck_assert_int_eq(fm_slurm_snapshot_load(&st, "src", NULL, r, 0, 1000, 1 << 20, &err), 1);
    ck_assert_int_eq(fm_slurm_snapshot_save(&st, "src", NULL, t, 1 << 20, &err), -1);
    ck_assert_int_eq(err.code, FM_ERR_INVALID);
    memset(&err, 0, sizeof err);
    ck_assert(!fm_slurm_table_loaded(r));
    ck_assert_int_eq(fm_slurm_snapshot_load(&st, "src", "c1", r, 0, 1000, 1 << 20, &err), 0);
    same_table(t, r);
    /* An older table does not replace the newer snapshot. */
    fm_slurm_table *old = fm_slurm_table_new();
    json_t *errors = NULL;
    ans = load_fix("rest_v0.0.38_nodes.json");
    json_array_remove(json_object_get(ans, "nodes"), 0);
    ck_assert_int_eq(apply(old, 200, ans, 900, &errors), FM_TABLE_REPLACED);
    json_decref(ans);
    ck_assert_int_eq(fm_slurm_snapshot_save(&st, "src", "c1", old, 1 << 20, &err), 0);
    fm_slurm_table_clear(r);
    ck_assert_int_eq(fm_slurm_snapshot_load(&st, "src", "c1", r, 0, 5000, 1 << 20, &err), 0);
    same_table(t, r);
    /* Rows changed or lost behind the writer's back: refused, the table kept. */
    const char *damage[] = {
        "UPDATE slurm_node_snapshot_rows SET body = replace(body, 'gpu-a02', 'gpu-a09')",
        "DELETE FROM slurm_node_snapshot_rows WHERE seq = 1",
        "UPDATE slurm_node_snapshot_rows SET body = body || 'x' WHERE seq = 0",
    };
    for (size_t i = 0; i < sizeof damage / sizeof *damage; i++) {
        ck_assert_int_eq(fm_slurm_snapshot_save(&st, "src", "c1", t, 1 << 20, &err), 0);
        ck_assert_int_eq(fm_db_exec(st.db, damage[i], NULL, NULL, NULL), FM_DB_OK);
        memset(&err, 0, sizeof err);
        ck_assert_msg(fm_slurm_snapshot_load(&st, "src", "c1", r, 0, 5000, 1 << 20, &err) == -1,
                      "accepted after %s", damage[i]);
        ck_assert_int_eq(err.code, FM_ERR_PARSE);
        same_table(t, r);
    }
    /* The captured listing takes more than one row, or the damage above tests little. */
    fm_db_stmt *q = NULL;
    ck_assert_int_eq(
        fm_db_prepare_v2(st.db, "SELECT count(*) FROM slurm_node_snapshot_rows", -1, &q, NULL),
        FM_DB_OK);
    ck_assert_int_eq(fm_db_step(q), FM_DB_ROW);
    ck_assert_int_gt(fm_db_column_int64(q, 0), 1);
    fm_db_finalize(q);
    fm_slurm_table_free(old);
    fm_slurm_table_free(r);
    fm_slurm_table_free(t);
    temp_store_close(path, db, &st);
}
END_TEST

/* The CLI's sinfo aggregate shared through the store: used only when
 * younger than the bound, never another cluster's or another source's,
 * never a newer one replaced by an older, and a row that is damaged,
 * oversized or not sinfo's lines is refused (the caller reads sinfo). */
START_TEST(aggregate_in_the_store)
{
    char path[] = "/tmp/fm-aggregate-XXXXXX", db[128];
    fm_store st = {0};
    fm_err err = {0};
    temp_store_open(path, db, &st);
    const char *agg = "gpu|idle|62|gpu-a[01-62]\ngpu|drained|2|gpu-a[63-64]\n";
    char *text = NULL;
    long long at = 0, t0 = 1700000000000LL;
    ck_assert_int_eq(fm_slurm_aggregate_load(&st, "src", "c1", t0, 5000, &text, &at, &err), 1);
    ck_assert_int_eq(fm_slurm_aggregate_save(&st, "src", "c1", agg, t0, &err), 0);
    ck_assert_int_eq(fm_slurm_aggregate_load(&st, "src", "c1", t0 + 4000, 5000, &text, &at, &err),
                     0);
    ck_assert_str_eq(text, agg);
    ck_assert_int_eq(at, t0);
    free(text);
    /* Past the bound, or 0 (sharing off): none; read by a clock far ahead
     * of ours: none. */
    ck_assert_int_eq(fm_slurm_aggregate_load(&st, "src", "c1", t0 + 5001, 5000, &text, &at, &err),
                     1);
    ck_assert_int_eq(fm_slurm_aggregate_load(&st, "src", "c1", t0, 0, &text, &at, &err), 1);
    ck_assert_int_eq(fm_slurm_aggregate_load(&st, "src", "c1", t0 - 2000, 5000, &text, &at, &err),
                     1);
    /* Another cluster under the same key, another key, no name: never. */
    ck_assert_int_eq(fm_slurm_aggregate_load(&st, "src", "c2", t0, 5000, &text, &at, &err), 1);
    ck_assert_int_eq(fm_slurm_aggregate_load(&st, "other", "c1", t0, 5000, &text, &at, &err), 1);
    ck_assert_int_eq(fm_slurm_aggregate_load(&st, "src", "", t0, 5000, &text, &at, &err), 1);
    ck_assert_int_eq(fm_slurm_aggregate_save(&st, "src", NULL, agg, t0, &err), -1);
    ck_assert_int_eq(err.code, FM_ERR_INVALID);
    memset(&err, 0, sizeof err);
    /* Two clusters' keys side by side keep their own counts. */
    const char *agg2 = "gpu|idle|3|gpu-b[1-3]\n";
    ck_assert_int_eq(fm_slurm_aggregate_save(&st, "src2", "c2", agg2, t0, &err), 0);
    ck_assert_int_eq(fm_slurm_aggregate_load(&st, "src2", "c2", t0, 5000, &text, &at, &err), 0);
    ck_assert_str_eq(text, agg2);
    free(text);
    ck_assert_int_eq(fm_slurm_aggregate_load(&st, "src2", "c1", t0, 5000, &text, &at, &err), 1);
    /* An older read does not replace a newer one. */
    ck_assert_int_eq(fm_slurm_aggregate_save(&st, "src", "c1", agg2, t0 - 100, &err), 0);
    ck_assert_int_eq(fm_slurm_aggregate_load(&st, "src", "c1", t0, 5000, &text, &at, &err), 0);
    ck_assert_str_eq(text, agg);
    free(text);
    /* Not sinfo's lines, or over the cap: not written. */
    ck_assert_int_eq(fm_slurm_aggregate_save(&st, "src", "c1", "gpu idle 3\n", t0 + 1, &err), -1);
    memset(&err, 0, sizeof err);
    size_t big = FM_SLURM_AGGREGATE_MAX_BYTES + 1;
    char *huge = malloc(big + 1);
    ck_assert_ptr_nonnull(huge);
    memset(huge, 'a', big);
    memcpy(huge, "p|idle|1|", 9);
    huge[big - 1] = '\n';
    huge[big] = '\0';
    ck_assert_int_eq(fm_slurm_aggregate_save(&st, "src", "c1", huge, t0 + 1, &err), -1);
    ck_assert_int_eq(err.code, FM_ERR_TOO_LARGE);
    memset(&err, 0, sizeof err);
    /* Rows changed behind the writer's back: refused.  The last one has a
     * matching digest and size but is not sinfo's; the one before claims
     * more than the cap. */
    char bad[65], sql[3][400];
    fm_sha256_hex("gpu|idle\n", 9, bad);
    snprintf(sql[0], sizeof sql[0],
             "UPDATE slurm_cli_aggregates SET body = replace(body, '62', '63') WHERE source='src'");
    snprintf(sql[1], sizeof sql[1], "UPDATE slurm_cli_aggregates SET bytes = %u WHERE source='src'",
             FM_SLURM_AGGREGATE_MAX_BYTES + 1);
    snprintf(sql[2], sizeof sql[2],
             "UPDATE slurm_cli_aggregates SET body = 'gpu|idle\n', bytes = 9,"
             " sha256 = '%s' WHERE source='src'",
             bad);
    for (size_t i = 0; i < 3; i++) {
        ck_assert_int_eq(
            fm_slurm_aggregate_save(&st, "src", "c1", agg, t0 + 10 + (long long)i, &err), 0);
        ck_assert_int_eq(fm_db_exec(st.db, sql[i], NULL, NULL, NULL), FM_DB_OK);
        memset(&err, 0, sizeof err);
        text = NULL;
        ck_assert_msg(fm_slurm_aggregate_load(&st, "src", "c1", t0 + 20, 5000, &text, &at, &err) ==
                          -1,
                      "accepted after %s", sql[i]);
        ck_assert_ptr_null(text);
        ck_assert_int_eq(err.code, FM_ERR_PARSE);
    }
    free(huge);
    temp_store_close(path, db, &st);
}
END_TEST

/* The node table's snapshot and the sinfo aggregate check their schema
 * once per connection, not at every load and save: after the first call,
 * with schema_migrations gone, a second check would fail (it reads that
 * table and would create the tables again), so the calls that still
 * succeed ran none. */
START_TEST(schema_checked_once_per_connection)
{
    char path[] = "/tmp/fm-schema-once-XXXXXX", db[128];
    fm_store st = {0};
    fm_err err = {0};
    temp_store_open(path, db, &st);
    json_t *ans;
    fm_slurm_table *t = loaded(&ans);
    json_decref(ans);
    fm_slurm_table *r = fm_slurm_table_new();
    char *text = NULL;
    long long at = 0, t0 = 1700000000000LL;
    const char *agg = "gpu|idle|62|gpu-a[01-62]\n";
    ck_assert_int_eq(fm_slurm_snapshot_load(&st, "src", "c1", r, 0, 5000, 1 << 20, &err), 1);
    ck_assert_int_eq(fm_slurm_aggregate_load(&st, "src", "c1", t0, 5000, &text, &at, &err), 1);
    /* The first calls did check (and migrate). */
    int64_t n = 0;
    ck_assert_int_eq(fm_db_run(st.db,
                               "SELECT count(*) FROM schema_migrations WHERE subsystem IN"
                               " ('slurm_snapshot', 'slurm_cli_aggregate')",
                               fm_db_row_int64, &n, ""),
                     FM_DB_ROW);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(fm_db_exec(st.db, "DROP TABLE schema_migrations", NULL, NULL, NULL), FM_DB_OK);
    for (int i = 0; i < 3; i++) {
        ck_assert_msg(fm_slurm_snapshot_save(&st, "src", "c1", t, 1 << 20, &err) == 0, "%s",
                      err.text);
        fm_slurm_table_clear(r);
        ck_assert_msg(fm_slurm_snapshot_load(&st, "src", "c1", r, 0, 5000, 1 << 20, &err) == 0,
                      "%s", err.text);
        same_table(t, r);
        ck_assert_msg(fm_slurm_aggregate_save(&st, "src", "c1", agg, t0 + i, &err) == 0, "%s",
                      err.text);
        ck_assert_msg(fm_slurm_aggregate_load(&st, "src", "c1", t0 + i, 5000, &text, &at, &err) ==
                          0,
                      "%s", err.text);
        ck_assert_str_eq(text, agg);
        free(text);
    }
    fm_slurm_table_free(r);
    fm_slurm_table_free(t);
    temp_store_close(path, db, &st);
}
END_TEST

static Suite *table_suite(void)
{
    Suite *s = suite_create("slurm_table");
    TCase *tc = tcase_create("table");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, full_answer_loads);
    tcase_add_test(tc, unchanged_answer_keeps_table);
    tcase_add_test(tc, changed_and_removed_nodes);
    tcase_add_test(tc, error_answers_force_a_full_read);
    tcase_add_test(tc, large_table);
    tcase_add_test(tc, table_walk_is_the_listing);
    tcase_add_test(tc, sinfo_counts_match_the_table);
    tcase_add_test(tc, sinfo_counts_at_fleet_scale);
    tcase_add_test(tc, snapshot_round_trip);
    tcase_add_test(tc, snapshot_corrupt_or_oversized_refused);
    tcase_add_test(tc, snapshot_in_the_store);
    tcase_add_test(tc, aggregate_in_the_store);
    tcase_add_test(tc, schema_checked_once_per_connection);
    suite_add_tcase(s, tc);
    return s;
}

FM_TEST_MAIN(table_suite)
