/* The REST backend against slurmrestd v0.0.42..v0.0.44 (Slurm 24.11 to
 * 25.11), served from fixtures built from Slurm's published OpenAPI
 * documents by tests/integration/slurmrestd_fixture.py, since the stack
 * runs Slurm 22.05.  Discovery takes the newest version it can read from
 * what /openapi/v3 offers; slurm.rest.api_version overrides it; every
 * version normalizes to exactly what the captured 22.05 answers of the same
 * cluster give; job cancel is a DELETE; node updates are POSTs.
 *
 * The node table's snapshot in the store is per cluster: two clusters
 * behind the same endpoint string never restore each other's, on SQLite
 * and (FM_TEST_PG set) on PostgreSQL.
 *
 * Run by tests/integration/slurm_rest_versions.sh with FM_FIX_A (offers
 * 42,43,44), FM_FIX_B (43,44,45), FM_FIX_C (45 only): fixture servers'
 * ports, and FM_FIXTURES (tests/fixtures/slurm). */
#include <jansson.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../src/backends/fm_http.h"
#include "fleetmcp/fm_slurm.h"
#include "fleetmcp/fm_store.h"
#include "../unit/fm_test.h"

static char *url_of(const char *env, char *buf, size_t len)
{
    const char *port = getenv(env);
    ck_assert_msg(port != NULL, "%s not set", env);
    snprintf(buf, len, "http://127.0.0.1:%s", port);
    return buf;
}

/* The fixture server's record of what it was asked (new array). */
static json_t *requests(const char *env)
{
    char base[64], url[128];
    snprintf(url, sizeof url, "%s/_fixture/requests", url_of(env, base, sizeof base));
    fm_http_req req = {.url = url, .timeout_ms = 5000, .what = "fixture", .hint = ""};
    fm_http_resp resp;
    fm_err err = {0};
    ck_assert_msg(fm_http_perform(&req, &resp, &err) == 0, "%s", err.text);
    json_t *j = json_loadb(resp.body, resp.len, 0, NULL);
    fm_http_resp_free(&resp);
    ck_assert_ptr_nonnull(j);
    return j;
}

static void reset(const char *env)
{
    char base[64], url[128];
    snprintf(url, sizeof url, "%s/_fixture/reset", url_of(env, base, sizeof base));
    fm_http_req req = {
        .url = url, .post_body = "{}", .timeout_ms = 5000, .what = "fixture", .hint = ""};
    fm_http_resp resp;
    fm_err err = {0};
    ck_assert_msg(fm_http_perform(&req, &resp, &err) == 0, "%s", err.text);
    fm_http_resp_free(&resp);
}

/* Was "METHOD path" asked?  Returns the request's body (borrowed from
 * reqs) or NULL. */
static const char *asked(const json_t *reqs, const char *method, const char *path)
{
    size_t i;
    const json_t *r;
    json_array_foreach(reqs, i, r)
    {
        if (!strcmp(json_string_value(json_array_get(r, 0)), method) &&
            !strcmp(json_string_value(json_array_get(r, 1)), path))
            return json_string_value(json_array_get(r, 2));
    }
    return NULL;
}

static const struct fm_slurm_ops *open_rest(const char *env, const char *version, void **st)
{
    char base[64];
    json_t *sec =
        json_pack("{s:s, s:I, s:{s:s, s:s}}", "backend", "rest", "timeout_ms", (json_int_t)5000,
                  "rest", "url", url_of(env, base, sizeof base), "api_version", version);
    const struct fm_slurm_ops *ops;
    fm_err err = {0};
    ck_assert_msg(fm_slurm_open(sec, &ops, st, &err) == 0, "%s", err.text);
    json_decref(sec);
    reset(env);
    return ops;
}

/* The captured 22.05 answer of the same cluster, normalized (new). */
static json_t *expected(const char *fixture, bool jobs)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", getenv("FM_FIXTURES"), fixture);
    json_t *ans = json_load_file(path, 0, NULL);
    ck_assert_msg(ans != NULL, "cannot read %s", path);
    fm_err err = {0};
    fm_slurm_domains *dom = fm_slurm_domains_new(NULL, NULL, &err);
    json_t *out =
        jobs ? fm_slurm_norm_jobs(ans, NULL, &err) : fm_slurm_norm_nodes(ans, dom, NULL, &err);
    ck_assert_msg(out != NULL, "%s", err.text);
    fm_slurm_domains_free(dom);
    json_decref(ans);
    return out;
}

static void same(const json_t *got, const json_t *want, const char *what)
{
    if (json_equal(got, want)) return;
    char *g = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS);
    char *w = json_dumps(want, JSON_COMPACT | JSON_SORT_KEYS);
    ck_abort_msg("%s differs:\n got  %.1500s\n want %.1500s", what, g, w);
}

START_TEST(discovery_takes_newest_known)
{
    void *st;
    const struct fm_slurm_ops *ops = open_rest("FM_FIX_A", "auto", &st);
    fm_err err = {0};
    json_t *nodes = ops->nodes(st, NULL, &err);
    ck_assert_msg(nodes != NULL, "%s", err.text);
    json_t *want = expected("rest_v0.0.38_nodes.json", false);
    same(nodes, want, "v0.0.44 nodes against 22.05's");
    json_decref(nodes);
    json_decref(want);
    json_t *reqs = requests("FM_FIX_A");
    ck_assert_ptr_nonnull(asked(reqs, "GET", "/openapi/v3"));
    ck_assert_ptr_nonnull(asked(reqs, "GET", "/slurm/v0.0.44/nodes"));
    json_decref(reqs);
    ops->close(st);

    /* a slurmrestd newer than fleetmcp: the newest version it knows */
    ops = open_rest("FM_FIX_B", "auto", &st);
    nodes = ops->nodes(st, NULL, &err);
    ck_assert_msg(nodes != NULL, "%s", err.text);
    json_decref(nodes);
    reqs = requests("FM_FIX_B");
    ck_assert_ptr_nonnull(asked(reqs, "GET", "/slurm/v0.0.44/nodes"));
    ck_assert_ptr_null(asked(reqs, "GET", "/slurm/v0.0.45/nodes"));
    json_decref(reqs);
    ops->close(st);
}
END_TEST

START_TEST(only_unknown_versions_is_a_clear_error)
{
    void *st;
    const struct fm_slurm_ops *ops = open_rest("FM_FIX_C", "auto", &st);
    fm_err err = {0};
    ck_assert_ptr_null(ops->nodes(st, NULL, &err));
    ck_assert_int_eq(err.code, FM_ERR_BACKEND);
    ck_assert_msg(strstr(err.text, "v0.0.38..v0.0.44") && strstr(err.text, "api_version"), "%s",
                  err.text);
    ops->close(st);
}
END_TEST

/* Each version, named in the config, reads the same cluster the same way:
 * nodes, one node, jobs, and an unknown node. */
START_TEST(every_version_normalizes_alike)
{
    json_t *want_nodes = expected("rest_v0.0.38_nodes.json", false);
    json_t *want_jobs = expected("rest_v0.0.38_jobs.json", true);
    for (int minor = 42; minor <= 44; minor++) {
        char ver[16], what[64], path[64];
        snprintf(ver, sizeof ver, "v0.0.%d", minor);
        void *st;
        const struct fm_slurm_ops *ops = open_rest("FM_FIX_A", ver, &st);
        fm_err err = {0};
        json_t *got = ops->nodes(st, NULL, &err);
        ck_assert_msg(got != NULL, "%s: %s", ver, err.text);
        snprintf(what, sizeof what, "%s nodes", ver);
        same(got, want_nodes, what);
        json_decref(got);
        got = ops->jobs(st, NULL, &err);
        ck_assert_msg(got != NULL, "%s: %s", ver, err.text);
        snprintf(what, sizeof what, "%s jobs", ver);
        same(got, want_jobs, what);
        json_decref(got);
        got = ops->node(st, "gpu-b02", &err);
        ck_assert_msg(got != NULL, "%s: %s", ver, err.text);
        size_t i;
        json_t *n, *w = NULL;
        json_array_foreach(want_nodes, i,
                           n) if (!strcmp(json_string_value(json_object_get(n, "name")), "gpu-b02"))
            w = n;
        snprintf(what, sizeof what, "%s node gpu-b02", ver);
        same(got, w, what);
        ck_assert(json_is_true(json_object_get(got, "fleetmcp_owned")));
        json_decref(got);
        fm_err_clear(&err);
        ck_assert_ptr_null(ops->node(st, "gpu-zz9", &err));
        ck_assert_msg(err.code == FM_ERR_NOT_FOUND, "%s: %s", ver, err.text);
        json_t *reqs = requests("FM_FIX_A");
        ck_assert_ptr_null(asked(reqs, "GET", "/openapi/v3"));
        snprintf(path, sizeof path, "/slurm/%s/jobs", ver);
        ck_assert_ptr_nonnull(asked(reqs, "GET", path));
        json_decref(reqs);
        ops->close(st);
    }
    json_decref(want_nodes);
    json_decref(want_jobs);
}
END_TEST

START_TEST(cancel_is_a_delete)
{
    void *st;
    const struct fm_slurm_ops *ops = open_rest("FM_FIX_A", "auto", &st);
    fm_err err = {0};
    ck_assert_msg(ops->cancel_job(st, 2, &err) == 0, "%s", err.text);
    json_t *reqs = requests("FM_FIX_A");
    ck_assert_ptr_nonnull(asked(reqs, "DELETE", "/slurm/v0.0.44/job/2"));
    json_decref(reqs);
    fm_slurm_job_filter f = {.node = "gpu-b03"};
    json_t *jobs = ops->jobs(st, &f, &err);
    ck_assert_msg(jobs != NULL, "%s", err.text);
    ck_assert_int_eq(json_array_size(jobs), 0);
    json_decref(jobs);
    /* slurmctld's per-job answer: HTTP 200 with status[].error */
    ck_assert_int_eq(ops->cancel_job(st, 4242, &err), -1);
    ck_assert_int_eq(err.code, FM_ERR_NOT_FOUND);
    ck_assert_msg(strstr(err.text, "4242") && strstr(err.text, "2017"), "%s", err.text);
    ops->close(st);
}
END_TEST

START_TEST(node_update_is_a_post)
{
    void *st;
    const struct fm_slurm_ops *ops = open_rest("FM_FIX_A", "v0.0.43", &st);
    fm_err err = {0};
    ck_assert_msg(ops->update_node(st, "gpu-a01", FM_SLURM_DRAIN, "fleetmcp:wf-9 xid 79", &err) ==
                      0,
                  "%s", err.text);
    json_t *reqs = requests("FM_FIX_A");
    const char *body = asked(reqs, "POST", "/slurm/v0.0.43/node/gpu-a01");
    ck_assert_ptr_nonnull(body);
    json_t *b = json_loads(body, 0, NULL);
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(b, "state"), 0)), "DRAIN");
    ck_assert_str_eq(json_string_value(json_object_get(b, "reason")), "fleetmcp:wf-9 xid 79");
    json_decref(b);
    json_decref(reqs);
    ops->close(st);
}
END_TEST

/* ---- the snapshot's cluster ------------------------------------------- */

extern char **environ;

/* A fixture server of its own (killed by fixture_stop) on the unix socket
 * sock, for cluster, listing the first `nodes` nodes.  No node changed in
 * the last hour, so a snapshot of either cluster passes the other's
 * conditional reads: only the cluster's name can keep them apart. */
static pid_t fixture_start(const char *cluster, int nodes, const char *sock)
{
    int fd[2];
    ck_assert_int_eq(pipe(fd), 0);
    char script[512], n[16], since[24];
    snprintf(script, sizeof script, "%s/../../integration/slurmrestd_fixture.py",
             getenv("FM_FIXTURES"));
    snprintf(n, sizeof n, "%d", nodes);
    snprintf(since, sizeof since, "%lld", (long long)time(NULL) - 3600);
    char *argv[] = {"python3", script, "--versions",        "44",  "--cluster", (char *)cluster,
                    "--nodes", n,      "--unchanged-since", since, "--socket",  (char *)sock,
                    NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fd[1], 1);
    posix_spawn_file_actions_addclose(&fa, fd[0]);
    pid_t pid;
    ck_assert_int_eq(posix_spawnp(&pid, "python3", &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(fd[1]);
    /* Its "0" line once it listens, or EOF if it could not; the tcase's
     * timeout bounds the wait. */
    char line[8] = "";
    size_t len = 0;
    while (len < sizeof line - 1 && read(fd[0], line + len, 1) == 1 && line[len] != '\n')
        len++;
    line[len] = '\0';
    close(fd[0]);
    ck_assert_msg(!strcmp(line, "0"), "fixture server for %s did not start", cluster);
    return pid;
}

static void fixture_stop(pid_t pid)
{
    kill(pid, SIGTERM);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
}

/* GET or POST the fixture's control path on sock (new JSON or NULL). */
static json_t *fixture_ctl(const char *sock, const char *path, bool post)
{
    char url[128];
    snprintf(url, sizeof url, "http://localhost%s", path);
    fm_http_req req = {.url = url,
                       .unix_socket = sock,
                       .post_body = post ? "{}" : NULL,
                       .timeout_ms = 5000,
                       .what = "fixture",
                       .hint = ""};
    fm_http_resp resp;
    fm_err err = {0};
    ck_assert_msg(fm_http_perform(&req, &resp, &err) == 0, "%s", err.text);
    json_t *j = json_loadb(resp.body, resp.len, 0, NULL);
    fm_http_resp_free(&resp);
    return j;
}

/* One fresh process's backend on the store: its node count, and whether
 * Slurm's whole listing was read (else the store's snapshot was restored
 * and checked by conditional reads). */
static long long fresh_count(fm_store *store, const char *sock, bool *listed)
{
    json_t *sec = json_pack("{s:s, s:I, s:{s:s, s:s}}", "backend", "rest", "timeout_ms",
                            (json_int_t)5000, "rest", "socket", sock, "api_version", "v0.0.44");
    const struct fm_slurm_ops *ops;
    void *st;
    fm_err err = {0};
    ck_assert_msg(fm_slurm_open(sec, &ops, &st, &err) == 0, "%s", err.text);
    json_decref(sec);
    ops->attach_store(st, store);
    long long n = -1;
    ck_assert_msg(ops->node_count(st, &n, &err) == 0, "%s", err.text);
    ops->close(st);
    json_t *reqs = fixture_ctl(sock, "/_fixture/requests", false);
    ck_assert_ptr_nonnull(reqs);
    *listed = false;
    size_t i;
    const json_t *q;
    json_array_foreach(reqs, i, q)
    {
        if (!strcmp(json_string_value(json_array_get(q, 1)), "/slurm/v0.0.44/nodes") &&
            !*json_string_value(json_array_get(q, 3)))
            *listed = true;
    }
    json_decref(reqs);
    json_decref(fixture_ctl(sock, "/_fixture/reset", true));
    return n;
}

/* Cluster `name` (its first `nodes` nodes) behind sock while fresh
 * processes come, one per letter of expect: L, it reads the whole listing;
 * R, it restores this cluster's snapshot from the store. */
static void cluster_serves(fm_store *store, const char *sock, const char *name, int nodes,
                           const char *expect)
{
    pid_t pid = fixture_start(name, nodes, sock);
    for (const char *e = expect; *e; e++) {
        bool listed;
        ck_assert_int_eq(fresh_count(store, sock, &listed), nodes);
        ck_assert_msg(listed == (*e == 'L'), "%s, process %d: %s", name, (int)(e - expect) + 1,
                      listed ? "read the listing, though its own snapshot was there"
                             : "restored a snapshot, though none of its own was there");
    }
    fixture_stop(pid);
}

/* Two clusters behind one socket path (one after the other, as one path
 * on two hosts is), their clocks the same: each restores only its own
 * snapshot. */
static void per_cluster_on(const char *store_path, const char *sock)
{
    fm_store store = {0};
    fm_err err = {0};
    ck_assert_msg(fm_store_open(&store, store_path, &err) == 0, "%s", err.text);
    /* East's second process shows the mechanism works here at all; west's
     * first must not take east's; east's third finds its own still there. */
    cluster_serves(&store, sock, "east", 7, "LR");
    cluster_serves(&store, sock, "west", 5, "LR");
    cluster_serves(&store, sock, "east", 7, "R");
    fm_store_close(&store);
}

START_TEST(snapshot_is_per_cluster)
{
    char dir[] = "/tmp/fm-snapcluster-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char db[128];
    snprintf(db, sizeof db, "%s/store.db", dir);
    char sock[128];
    snprintf(sock, sizeof sock, "%s/slurmrestd.sock", dir);
    per_cluster_on(db, sock);
    unlink(db);
    char side[160];
    snprintf(side, sizeof side, "%s-wal", db);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", db);
    unlink(side);
    const char *pg = getenv("FM_TEST_PG");
    if (pg && *pg) per_cluster_on(pg, sock);
    unlink(sock);
    rmdir(dir);
}
END_TEST

static Suite *versions_suite(void)
{
    Suite *s = suite_create("slurm_rest_versions");
    TCase *tc = tcase_create("fixtures");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, discovery_takes_newest_known);
    tcase_add_test(tc, only_unknown_versions_is_a_clear_error);
    tcase_add_test(tc, every_version_normalizes_alike);
    tcase_add_test(tc, cancel_is_a_delete);
    tcase_add_test(tc, node_update_is_a_post);
    suite_add_tcase(s, tc);
    /* Six fixture servers started in turn (three per store), each a
     * Python start: seconds apiece on a loaded machine. */
    TCase *snap = tcase_create("snapshot");
    tcase_set_timeout(snap, 240);
    tcase_add_test(snap, snapshot_is_per_cluster);
    suite_add_tcase(s, snap);
    return s;
}

FM_TEST_MAIN(versions_suite)
