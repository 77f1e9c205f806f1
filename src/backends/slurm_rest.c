/* The Slurm backend over slurmrestd (libcurl): a unix socket with local
 * auth, or an http URL with JWT (X-SLURM-USER-NAME/-TOKEN).  The API
 * version is configured (slurm.rest.api_version) or discovered on first use
 * from GET /openapi/v3: the newest version the normalizer knows (v0.0.38 to
 * v0.0.44, Slurm 22.05 to 25.11) among those serving /nodes, falling back to
 * probing each version's /ping.  slurmrestd keeps only its last three plugin
 * versions, so whatever it offers is taken as offered.  Discovery is lazy,
 * so the server starts even while slurmrestd is down.  Answers go to the
 * shared normalizer (slurm_normalize.c). */
#include "fleetmcp/fm_config.h"
#include "fleetmcp/fm_slurm.h"
#include "fleetmcp/fm_slurm_table.h"
#include "fleetmcp/fm_store.h"
#include "fleetmcp/fm_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fm_http.h"
#include "slurm_impl.h"

#define DEFAULT_MAX_BYTES (64u << 20)
/* The data_parser versions whose node and job shapes slurm_normalize.c
 * reads (checked against Slurm's published OpenAPI documents, see
 * tests/fixtures/slurm/README.md). */
#define MINOR_MIN 38
#define MINOR_MAX 44

typedef struct rest_st {
    char base[512];   /* "http://host:port" or "http://localhost" for a socket */
    char socket[512]; /* "" for TCP */
    char user[64];
    json_t *token_ref; /* owned copy of slurm.rest.token, or NULL (local auth) */
    char version[16];  /* "v0.0.38"; "" until discovered */
    bool version_fixed;
    long timeout_ms;
    size_t max_bytes;
    char what[600];
    char hint[200];
    char timeout_hint[200];
    fm_slurm_domains *dom;
    void *cli;              /* scontrol for what this slurmrestd cannot change, or NULL */
    long last_status;       /* HTTP status of the last answer, for discovery */
    fm_slurm_table *table;  /* nodes kept between calls (slurm_table.c), or NULL */
    double table_checked;   /* CLOCK_MONOTONIC seconds of the last check that found it current */
    struct fm_store *store; /* the table's snapshot is shared there (slurm_snapshot.c), or NULL */
    char domains[65]; /* sha256 of slurm.domains.rack and .sku: they shape every normalized node */
    char cluster_cfg[129]; /* slurm.cluster, or "" */
    char cluster[129];     /* ClusterName as slurmctld reported it in the last /diag, or "" */
    bool cluster_warned;   /* the "snapshot not shared" warning is said once per process */
} rest_st;

/* A check this recent stands for the next read: one plan reads the table
 * three times (node, capacity, fleet count) within milliseconds, and each
 * conditional read costs slurmctld a pass over every node under its node
 * lock (select_g_select_nodeinfo_set_all() runs before the update_time
 * test).  The old sequence of full reads of one plan spanned longer. */
#define TABLE_REUSE_S 0.25

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int version_minor(const char *v)
{
    int minor = 0;
    return sscanf(v, "v0.0.%d", &minor) == 1 ? minor : 0;
}

enum { ANS_FULL = -1, ANS_NODES = 0, ANS_JOBS = 1 };

/* GET path, POST it (post set) or another verb (method set); on success
 * resp holds the answer, whatever its status but 401/403 (free it with
 * fm_http_resp_free). */
static int rest_fetch_to(rest_st *s, const char *method, const char *path, const char *post,
                         int (*stream)(void *, const char *, size_t), void *stream_ud,
                         fm_http_resp *resp, fm_err *err)
{
    char url[1024];
    snprintf(url, sizeof url, "%s%s", s->base, path);
    char hname[128], htok[4200];
    const char *headers[3] = {NULL, NULL, NULL};
    int nh = 0;
    if (s->token_ref) {
        char tok[4096];
        if (fm_secret_resolve(s->token_ref, tok, sizeof tok, err)) return -1;
        size_t tl = strlen(tok);
        while (tl && (tok[tl - 1] == '\n' || tok[tl - 1] == '\r' || tok[tl - 1] == ' '))
            tok[--tl] = '\0';
        /* `scontrol token` prints SLURM_JWT=...; accept the file as is */
        const char *t = strncmp(tok, "SLURM_JWT=", 10) == 0 ? tok + 10 : tok;
        snprintf(htok, sizeof htok, "X-SLURM-USER-TOKEN: %s", t);
        memset(tok, 0, sizeof tok);
        if (*s->user) {
            snprintf(hname, sizeof hname, "X-SLURM-USER-NAME: %s", s->user);
            headers[nh++] = hname;
        }
        headers[nh++] = htok;
    }
    fm_http_req req = {.url = url,
                       .unix_socket = *s->socket ? s->socket : NULL,
                       .post_body = post,
                       .method = method,
                       .content_type = "application/json",
                       .headers = headers,
                       .timeout_ms = s->timeout_ms,
                       .max_bytes = s->max_bytes,
                       .what = s->what,
                       .hint = s->hint,
                       .timeout_hint = s->timeout_hint,
                       .stream = stream,
                       .stream_ud = stream_ud};
    int rc = fm_http_perform(&req, resp, err);
    memset(htok, 0, sizeof htok);
    if (rc) return -1;
    s->last_status = resp->status;
    if (resp->status == 401 || resp->status == 403) {
        fm_http_resp_free(resp);
        return fm_err_set(err, FM_ERR_AUTH,
                          "%s refused the credentials (HTTP %ld): check slurm.rest.token "
                          "and slurm.rest.user (tokens expire; mint one with `scontrol token`)",
                          s->what, s->last_status),
               -1;
    }
    return 0;
}

static int rest_fetch(rest_st *s, const char *method, const char *path, const char *post,
                      fm_http_resp *resp, fm_err *err)
{
    return rest_fetch_to(s, method, path, post, NULL, NULL, resp, err);
}

/* An answer that is not the JSON asked for. */
static int no_json(const rest_st *s, long status, const char *path, fm_err *err)
{
    if (status == 404)
        return fm_err_set(err, FM_ERR_NOT_FOUND,
                          "%s has no %s (HTTP 404): check slurm.rest.api_version", s->what, path),
               -1;
    return fm_err_set(err, status >= 400 ? FM_ERR_BACKEND : FM_ERR_PARSE,
                      "%s answered HTTP %ld with no JSON for %s", s->what, status, path),
           -1;
}

/* rest_fetch, parsed: *out is the answer (new), the whole document, or for
 * ANS_NODES/ANS_JOBS only what the normalizer reads. */
static int rest_call(rest_st *s, const char *method, const char *path, const char *post, int kind,
                     json_t **out, fm_err *err)
{
    fm_http_resp resp;
    if (rest_fetch(s, method, path, post, &resp, err)) return -1;
    json_error_t je;
    fm_err perr = {0};
    json_t *j = kind == ANS_FULL ? json_loadb(resp.body, resp.len, 0, &je)
                                 : fm_slurm_parse_answer(resp.body, resp.len, kind, &perr);
    long status = resp.status;
    fm_http_resp_free(&resp);
    if (!j) return no_json(s, status, path, err);
    *out = j;
    return 0;
}

/* Picks the newest supported version from /openapi/v3's path list. */
static int discover(rest_st *s, fm_err *err)
{
    if (*s->version) return 0;
    json_t *spec = NULL;
    fm_err e2 = {0};
    if (rest_call(s, NULL, "/openapi/v3", NULL, ANS_FULL, &spec, &e2) == 0) {
        int best = 0;
        const char *path;
        json_t *v;
        json_object_foreach(json_object_get(spec, "paths"), path, v)
        {
            /* "/slurm/v0.0.38/nodes" (22.05) or "/slurm/v0.0.44/nodes/" (24.11+) */
            int minor = 0, end = 0;
            if (sscanf(path, "/slurm/v0.0.%d/nodes%n", &minor, &end) == 1 && end &&
                (path[end] == '\0' || !strcmp(path + end, "/")) && minor >= MINOR_MIN &&
                minor <= MINOR_MAX && minor > best)
                best = minor;
        }
        json_decref(spec);
        if (best) {
            snprintf(s->version, sizeof s->version, "v0.0.%d", best);
            return 0;
        }
    } else if (e2.code == FM_ERR_UNAVAILABLE || e2.code == FM_ERR_TIMEOUT ||
               e2.code == FM_ERR_AUTH) {
        if (err && !err->code) *err = e2;
        return -1;
    }
    for (int minor = MINOR_MAX; minor >= MINOR_MIN; minor--) {
        char path[64];
        snprintf(path, sizeof path, "/slurm/v0.0.%d/ping", minor);
        json_t *j = NULL;
        fm_err e3 = {0};
        if (rest_call(s, NULL, path, NULL, ANS_FULL, &j, &e3) == 0) {
            json_decref(j);
            /* slurmrestd answers an unknown path 404, with a JSON body on 24.11+ */
            if (s->last_status == 404) continue;
            snprintf(s->version, sizeof s->version, "v0.0.%d", minor);
            return 0;
        }
        if (e3.code != FM_ERR_NOT_FOUND && e3.code != FM_ERR_PARSE && e3.code != FM_ERR_BACKEND) {
            if (err && !err->code) *err = e3;
            return -1;
        }
    }
    return fm_err_set(err, FM_ERR_BACKEND,
                      "%s serves none of the Slurm REST API versions v0.0.%d..v0.0.%d that "
                      "fleetmcp reads: run a slurmrestd that loads one (-s openapi/slurmctld "
                      "on 23.11+, -s openapi/v0.0.%d on 22.05) or set slurm.rest.api_version",
                      s->what, MINOR_MIN, MINOR_MAX, MINOR_MIN),
           -1;
}

/* Slurm-level errors of an answer: names slurmctld when it is the part
 * that is down (slurmrestd answered, the controller did not). */
static int answer_errors(rest_st *s, const json_t *ans, const char *what, fm_err *err)
{
    fm_err e = {0};
    if (!fm_slurm_answer_errors(ans, what, &e)) return 0;
    const json_t *e0 = json_array_get(json_object_get(ans, "errors"), 0);
    long long no = json_integer_value(json_object_get(e0, "errno"));
    if (!no) no = json_integer_value(json_object_get(e0, "error_number"));
    if ((no >= 1000 && no <= 1010) || (no >= 1800 && no <= 1810))
        return fm_err_set(err, FM_ERR_UNAVAILABLE,
                          "slurmctld not reachable through %s (%s): is slurmctld "
                          "running? check SlurmctldHost/Port in slurm.conf",
                          s->what, e.text),
               -1;
    if (no == -1 && s->token_ref) /* Slurm 22.05 rejects a bad or expired JWT this way (HTTP 500) */
        return fm_err_set(err, FM_ERR_BACKEND,
                          "%s; with JWT auth this is how slurmrestd rejects a token: check "
                          "slurm.rest.token (expired? `scontrol token`) and slurm.rest.user",
                          e.text),
               -1;
    if (err && !err->code) *err = e;
    return -1;
}

static json_t *rest_get(rest_st *s, int kind, const char *what, const char *fmt, const char *arg,
                        fm_err *err)
{
    if (discover(s, err)) return NULL;
    char path[256];
    snprintf(path, sizeof path, fmt, s->version, arg ? arg : "");
    json_t *ans = NULL;
    if (rest_call(s, NULL, path, NULL, kind, &ans, err)) return NULL;
    if (answer_errors(s, ans, what, err)) {
        json_decref(ans);
        return NULL;
    }
    return ans;
}

static int push_nodes(void *ud, const char *p, size_t n)
{
    return fm_slurm_nodes_feed_push(ud, p, n);
}

static int table_fresh(rest_st *s, bool whole, fm_err *err);

/* slurmrestd (or slurmctld behind it) did not answer, or refused us:
 * asking again at once would fail the same way, after as long. */
static bool unreachable(const fm_err *e)
{
    return e->code == FM_ERR_UNAVAILABLE || e->code == FM_ERR_TIMEOUT || e->code == FM_ERR_AUTH;
}

/* The /nodes answer node by node as it arrives: on 16,384 nodes the text
 * is ~21 MB, and held whole it would be most of the server's memory. */
static int listing_each(rest_st *s, const fm_slurm_node_filter *f, fm_slurm_node_cb cb, void *ud,
                        fm_err *err)
{
    char path[64];
    snprintf(path, sizeof path, "/slurm/%s/nodes", s->version);
    fm_slurm_nodes_feed *fd = fm_slurm_nodes_feed_open(s->dom, f, cb, ud, err);
    if (!fd) return -1;
    fm_http_resp resp;
    json_t *errors = NULL;
    if (rest_fetch_to(s, NULL, path, NULL, push_nodes, fd, &resp, err)) {
        fm_slurm_nodes_feed_close(fd, &errors);
        json_decref(errors);
        return -1;
    }
    /* An error answer was buffered, not streamed: read it now. */
    fm_slurm_nodes_feed_push(fd, resp.body, resp.len);
    int rc = fm_slurm_nodes_feed_close(fd, &errors);
    long status = resp.status;
    fm_http_resp_free(&resp);
    if (rc == 0 && errors) {
        json_t *ans = json_pack("{s:o}", "errors", errors);
        rc = answer_errors(s, ans, "listing nodes", err);
        json_decref(ans);
    } else if (rc && err && err->code == FM_ERR_PARSE && status >= 400) {
        fm_err_clear(err);
        no_json(s, status, path, err); /* an error page, not a Slurm answer */
    }
    return rc ? -1 : 0;
}

/* Every listing (slurm_nodes, diagnose's cluster mode, the breaker's count)
 * walks the kept node table: after the first call loads it, a call costs
 * slurmctld two conditional reads (HTTP 304) instead of packing and
 * slurmrestd dumping every node (~6 s of their CPU at 16,384 nodes).  If
 * the table cannot be had (no /diag for this user, say), a listing. */
static int rest_nodes_each(void *st, const fm_slurm_node_filter *f, fm_slurm_node_cb cb, void *ud,
                           fm_err *err)
{
    rest_st *s = st;
    if (discover(s, err)) return -1;
    fm_err te = {0};
    if (table_fresh(s, true, &te) == 0) return fm_slurm_table_each(s->table, f, cb, ud, err);
    /* Slurm unreachable: a listing would only wait for the same timeout. */
    if (unreachable(&te)) {
        if (err) *err = te;
        return -1;
    }
    return listing_each(s, f, cb, ud, err);
}

static json_t *rest_nodes(void *st, const fm_slurm_node_filter *f, fm_err *err)
{
    return fm_slurm_nodes_collect(rest_nodes_each, st, f, err);
}

static int discard(void *ud, const char *p, size_t n)
{
    (void)ud, (void)p, (void)n;
    return 0;
}

/* HTTP status of GET /slurm/vX/<what>?update_time=stamp, its body (the
 * whole listing, when Slurm answers one) dropped unread. */
static long cond_get(rest_st *s, const char *what, long long stamp, fm_err *err)
{
    char path[128];
    snprintf(path, sizeof path, "/slurm/%s/%s?update_time=%lld", s->version, what, stamp);
    fm_http_resp resp;
    if (rest_fetch_to(s, NULL, path, NULL, discard, NULL, &resp, err)) return -1;
    long st = resp.status;
    fm_http_resp_free(&resp);
    return st;
}

/* slurmctld's clock now: /diag's statistics.req_time (a number, or from
 * v0.0.40 on a {set, number} object).  The same answer names the cluster
 * from v0.0.40 on (meta.slurm.cluster; 22.05's v0.0.38 names none), kept
 * for the snapshot's key. */
static long long ctld_time(rest_st *s, fm_err *err)
{
    json_t *ans =
        rest_get(s, ANS_FULL, "reading slurmctld's clock (diag)", "/slurm/%s/diag%s", NULL, err);
    if (!ans) return -1;
    const char *name = json_string_value(
        json_object_get(json_object_get(json_object_get(ans, "meta"), "slurm"), "cluster"));
    if (name && strlen(name) < sizeof s->cluster)
        snprintf(s->cluster, sizeof s->cluster, "%s", name);
    else
        s->cluster[0] = '\0';
    const json_t *rt = json_object_get(json_object_get(ans, "statistics"), "req_time");
    if (json_is_object(rt)) rt = json_object_get(rt, "number");
    long long t = json_is_integer(rt) ? (long long)json_integer_value(rt) : -1;
    json_decref(ans);
    if (t <= 0) fm_err_set(err, FM_ERR_PARSE, "%s: /diag has no statistics.req_time", s->what);
    return t;
}

/* The cluster whose snapshot this backend may share: the name slurmctld
 * reports (ctld_time), else slurm.cluster; NULL when neither is known, and
 * then nothing is shared, since an endpoint string alone (one socket path
 * on two hosts, localhost:6820) does not tell two clusters apart. */
static const char *snapshot_cluster(rest_st *s)
{
    const char *c = *s->cluster ? s->cluster : *s->cluster_cfg ? s->cluster_cfg : NULL;
    if (!s->cluster_warned &&
        (!c || (*s->cluster && *s->cluster_cfg && strcmp(s->cluster, s->cluster_cfg) != 0))) {
        s->cluster_warned = true;
        if (!c)
            fm_log("warning",
                   "%s names no cluster in /diag (v0.0.38 and v0.0.39 do not): the node "
                   "table's snapshot is not shared through the store; set slurm.cluster to "
                   "slurmctld's ClusterName (scontrol show config) to share it",
                   s->what);
        else
            fm_log("warning",
                   "slurm.cluster is '%s' but slurmctld reports ClusterName '%s': the reported "
                   "name is used; correct slurm.cluster",
                   s->cluster_cfg, s->cluster);
    }
    return c;
}

/* Which snapshot in the store is this backend's: the same cluster reached
 * through the same slurmrestd, API version and domain patterns normalizes
 * nodes alike. */
static void snapshot_source(const rest_st *s, const char *cluster, char out[65])
{
    char key[1400];
    int n = snprintf(key, sizeof key, "rest\n%s\n%s\n%s\n%s\n%s", cluster, s->base, s->socket,
                     s->version, s->domains);
    fm_sha256_hex(key, n > 0 && (size_t)n < sizeof key ? (size_t)n : 0, out);
}

/* Restores the snapshot another process wrote, when it is newer than the
 * table and not newer than slurmctld's clock now.  0 restored, else none
 * (a store failure or a corrupt row is logged and read past: the snapshot
 * is a cache, Slurm answers instead). */
static int snapshot_load(rest_st *s, long long now)
{
    const char *cluster = s->store && s->store->db ? snapshot_cluster(s) : NULL;
    if (!cluster) return 1;
    char src[65];
    snapshot_source(s, cluster, src);
    fm_err e = {0};
    long long after = fm_slurm_table_loaded(s->table) ? fm_slurm_table_stamp(s->table) : 0;
    int rc = fm_slurm_snapshot_load(s->store, src, cluster, s->table, after, now, s->max_bytes, &e);
    if (rc < 0)
        fm_log("warning", "node table snapshot not used (Slurm is read instead): %s", e.text);
    return rc;
}

static void snapshot_save(rest_st *s)
{
    /* Not inside a caller's transaction: 7 MB would ride on its commit, and
     * be lost with its rollback. */
    if (!s->store || !s->store->db || !fm_db_get_autocommit(s->store->db)) return;
    const char *cluster = snapshot_cluster(s);
    if (!cluster) return;
    char src[65];
    snapshot_source(s, cluster, src);
    fm_err e = {0};
    if (fm_slurm_snapshot_save(s->store, src, cluster, s->table, s->max_bytes, &e))
        fm_log("warning", "node table snapshot not written (other processes read Slurm): %s",
               e.text);
}

/* Makes s->table what Slurm has now.  Two conditional reads (nodes and
 * partitions, since a partition's node list can change alone) that answer
 * 304 when nothing changed since the table's stamp; otherwise the whole
 * listing, streamed into the table.  The stamp is slurmctld's clock read
 * before the listing is packed: slurmctld answers 304 only if no node
 * changed at or after that second, so a change during the read forces the
 * next reload, and no clock of ours is trusted.  With whole false, a
 * changed table is dropped instead of read again (returns 1): one node is
 * cheaper to ask for alone than 16,384 are to read.
 *
 * Before a whole listing (no table yet, or Slurm changed since its stamp),
 * the snapshot another process left in the store (slurm_snapshot.c) is
 * restored if it is newer than the table, and then checked by the same two
 * conditional reads: a fresh process pays those instead of a listing, and
 * of several processes only the first after a change reads the listing. */
static int table_fresh(rest_st *s, bool whole, fm_err *err)
{
    if (discover(s, err)) return -1;
    if (!s->table && !(s->table = fm_slurm_table_new()))
        return fm_err_set(err, FM_ERR_NOMEM, "node table"), -1;
    long long now = -1; /* slurmctld's clock, read at most once per refresh */
    for (int round = 0; round < 2; round++) {
        if (fm_slurm_table_loaded(s->table)) {
            double t0 = mono_s();
            if (round == 0 && t0 - s->table_checked < TABLE_REUSE_S) return 0;
            long long stamp = fm_slurm_table_stamp(s->table);
            fm_err e = {0};
            long st = cond_get(s, "nodes", stamp, &e);
            if (st == 304) st = cond_get(s, "partitions", stamp, &e);
            if (st == 304) {
                s->table_checked = t0;
                return 0;
            }
            /* Not answering at all: a reload would only wait as long again. */
            if (st < 0 && unreachable(&e)) {
                if (err) *err = e;
                return -1;
            }
        }
        if (round == 1 || !s->store || !s->store->db) break;
        if ((now = ctld_time(s, err)) < 0) {
            fm_slurm_table_clear(s->table); /* stale, and nothing to check it against */
            return -1;
        }
        if (snapshot_load(s, now) != 0) break;
    }
    /* One table at a time: the old one goes before the new one is read. */
    fm_slurm_table_clear(s->table);
    if (!whole) return 1;
    long long t = now > 0 ? now : ctld_time(s, err);
    if (t < 0) return -1;
    char path[64];
    snprintf(path, sizeof path, "/slurm/%s/nodes", s->version);
    fm_err lerr = {0};
    fm_slurm_table_load *l = fm_slurm_table_load_open(s->table, s->dom, &lerr);
    if (!l) return fm_err_set(err, lerr.code, "%s", lerr.text), -1;
    fm_http_resp resp;
    json_t *errors = NULL;
    if (rest_fetch_to(s, NULL, path, NULL, fm_slurm_table_load_push, l, &resp, err)) {
        fm_err keep = lerr;
        fm_slurm_table_load_close(l, 0, 0, &errors, &lerr);
        json_decref(errors);
        if (keep.code && err) *err = keep; /* the answer's own fault, more precise */
        return -1;
    }
    fm_slurm_table_load_push(l, resp.body, resp.len); /* an error answer is buffered */
    long status = resp.status;
    fm_http_resp_free(&resp);
    int res = fm_slurm_table_load_close(l, status, t, &errors, &lerr);
    if (res == FM_TABLE_REPLACED) {
        s->table_checked = mono_s();
        snapshot_save(s);
        return 0;
    }
    int rc = -1;
    if (errors) {
        json_t *ans = json_pack("{s:o}", "errors", errors);
        rc = answer_errors(s, ans, "listing nodes", err);
        json_decref(ans);
    }
    if (!rc || !err || !err->code) no_json(s, status, path, err);
    return -1;
}

static int rest_node_count(void *st, long long *count, fm_err *err)
{
    rest_st *s = st;
    fm_err te = {0};
    if (table_fresh(s, true, &te) == 0) {
        *count = (long long)fm_slurm_table_size(s->table);
        return 0;
    }
    if (unreachable(&te)) {
        if (err) *err = te;
        return -1;
    }
    /* No table (no /diag for this user, say): count a listing as before. */
    *count = 0;
    return listing_each(s, NULL, fm_slurm_count_node, count, err);
}

static int fill_partitions(rest_st *s, json_t *node, const char *name, fm_err *err)
{
    json_t *ans = rest_get(s, ANS_FULL, "listing partitions", "/slurm/%s/partitions", NULL, err);
    if (!ans) return -1;
    json_t *parts = json_array();
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(ans, "partitions"), i, p)
    {
        const char *list = json_string_value(json_object_get(p, "nodes"));
        const char *pname = json_string_value(json_object_get(p, "name"));
        if (!list || !pname) continue;
        fm_err e2 = {0};
        json_t *names = fm_slurm_hostlist_expand(list, 1000000, &e2);
        size_t k;
        json_t *nm;
        json_array_foreach(names, k, nm) if (!strcmp(json_string_value(nm), name))
        {
            json_array_append_new(parts, json_string(pname));
            break;
        }
        json_decref(names);
    }
    json_decref(ans);
    if (json_array_size(parts)) {
        json_object_set(node, "partitions", parts);
        json_t *dom = json_object_get(node, "domains");
        if (json_is_object(dom)) json_object_set(dom, "partition", json_array_get(parts, 0));
    }
    json_decref(parts);
    return 0;
}

static json_t *rest_node(void *st, const char *name, fm_err *err)
{
    rest_st *s = st;
    if (!fm_slurm_valid_node_name(name)) {
        fm_err_set(err, FM_ERR_INVALID, "not a node name");
        return NULL;
    }
    char what[128];
    snprintf(what, sizeof what, "node %s", name);
    if (discover(s, err)) return NULL;
    /* A table some earlier call loaded answers after a conditional read
     * says it is current; otherwise (never loaded, or Slurm changed since)
     * the node is asked for alone. */
    fm_err te = {0};
    bool shared = s->store && s->store->db;
    if ((fm_slurm_table_loaded(s->table) || shared) && table_fresh(s, false, &te) == 0) {
        json_t *n = fm_slurm_table_node(s->table, name);
        if (!n) fm_err_set(err, FM_ERR_NOT_FOUND, "Slurm has no node %s", name);
        return n;
    }
    if (unreachable(&te)) {
        if (err) *err = te;
        return NULL;
    }
    json_t *ans = rest_get(s, ANS_NODES, what, "/slurm/%s/node/%s", name, err);
    if (!ans) return NULL;
    json_t *all = fm_slurm_norm_nodes(ans, s->dom, NULL, err);
    json_decref(ans);
    if (!all) return NULL;
    json_t *n = NULL;
    size_t i;
    json_t *e;
    json_array_foreach(all, i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "name")), name) == 0) n = json_incref(e);
    }
    json_decref(all);
    if (!n) {
        fm_err_set(err, FM_ERR_NOT_FOUND, "Slurm has no node %s", name);
        return NULL;
    }
    /* v0.0.38 (Slurm 22.05) /node/{name} lists only the node's first
     * partition.  The partitions' host lists name them all, for a small
     * fraction of a full /nodes listing on a large fleet. */
    if (version_minor(s->version) <= 38 && fill_partitions(s, n, name, err)) {
        json_decref(n);
        return NULL;
    }
    return n;
}

static json_t *rest_jobs(void *st, const fm_slurm_job_filter *f, fm_err *err)
{
    rest_st *s = st;
    json_t *ans = rest_get(s, ANS_JOBS, "listing jobs", "/slurm/%s/jobs", NULL, err);
    if (!ans) return NULL;
    json_t *out = fm_slurm_norm_jobs(ans, f, err);
    json_decref(ans);
    return out;
}

/* Node updates arrived in the REST API with Slurm 23.02 (v0.0.39:
 * POST /slurm/v0.0.39/node/{name} with {state:[...], reason}).  This path
 * is written to that documented shape but has not run against a real
 * 23.02+ slurmrestd here (the test stack is 22.05). */
static int rest_update_node(void *st, const char *name, fm_slurm_node_op op, const char *reason,
                            fm_err *err)
{
    rest_st *s = st;
    if (!fm_slurm_valid_node_name(name))
        return fm_err_set(err, FM_ERR_INVALID, "not a node name"), -1;
    if (discover(s, err)) return -1;
    s->table_checked = 0; /* our own change: the next read asks Slurm */
    /* Slurm's own other interface, scontrol argv, where this slurmrestd
     * cannot change node state (before v0.0.39; reboot on any version). */
    bool reboot = op == FM_SLURM_REBOOT || op == FM_SLURM_REBOOT_HOLD;
    if ((version_minor(s->version) < 39 || reboot) && s->cli)
        return fm_slurm_cli_ops.update_node(s->cli, name, op, reason, err);
    if (version_minor(s->version) < 39 || reboot)
        return fm_err_set(err, FM_ERR_NOT_CONFIGURED,
                          "node %s through slurmrestd %s is not possible (node "
                          "updates need Slurm >= 23.02 REST (v0.0.39+), reboot needs scontrol): "
                          "add a slurm.cli section so mutations use scontrol",
                          reboot ? "reboot" : "updates", s->version),
               -1;
    json_t *body = json_object();
    json_t *state = json_array();
    json_array_append_new(state, json_string(op == FM_SLURM_DRAIN ? "DRAIN" : "RESUME"));
    json_object_set_new(body, "state", state);
    if (reason && *reason) json_object_set_new(body, "reason", json_string(reason));
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    char path[256];
    snprintf(path, sizeof path, "/slurm/%s/node/%s", s->version, name);
    json_t *ans = NULL;
    int rc = rest_call(s, NULL, path, text, ANS_FULL, &ans, err);
    free(text);
    if (rc) return -1;
    char what[128];
    snprintf(what, sizeof what, "updating node %s", name);
    rc = answer_errors(s, ans, what, err);
    json_decref(ans);
    return rc ? -1 : 0;
}

static int rest_requeue_job(void *st, uint64_t job_id, const char *exclude_node, fm_err *err)
{
    rest_st *s = st;
    s->table_checked = 0;
    if (s->cli) return fm_slurm_cli_ops.requeue_job(s->cli, job_id, exclude_node, err);
    return fm_err_set(err, FM_ERR_NOT_CONFIGURED,
                      "job requeue is not implemented over slurmrestd: add a slurm.cli section"
                      " so it uses scontrol"),
           -1;
}

/* Counted in the kept node table (slurmrestd has no per-partition
 * count); if it cannot be read, Slurm's aggregate through sinfo when a
 * slurm.cli section is configured. */
static int rest_partition_capacity(void *st, const char *const *parts, size_t n, long *total,
                                   long *in_svc, fm_err *err)
{
    rest_st *s = st;
    fm_err te = {0};
    if (table_fresh(s, true, &te) == 0 &&
        fm_slurm_table_capacity(s->table, parts, n, total, in_svc, &te) == 0)
        return 0;
    if (!s->cli) {
        if (err) *err = te;
        return -1;
    }
    return fm_slurm_cli_ops.partition_capacity(s->cli, parts, n, total, in_svc, err);
}

/* DELETE /slurm/vX/job/{id}: every version fleetmcp reads serves it, with
 * SIGKILL (scancel's default) when no signal is named.  A failure comes in
 * "errors" (HTTP 404 for an unknown job on 24.11+), or, from v0.0.40 on,
 * as HTTP 200 with the job in "status" carrying error.code (slurmctld's
 * per-job answer to the kill RPC). */
static int rest_cancel_job(void *st, uint64_t job_id, fm_err *err)
{
    rest_st *s = st;
    /* With a slurm.cli section, scancel as before: slurmrestd acts as its
     * own user (local auth) or the token's, who may not be allowed to
     * cancel other users' jobs, while the CLI runs as fleetmcp. */
    s->table_checked = 0;
    if (s->cli) return fm_slurm_cli_ops.cancel_job(s->cli, job_id, err);
    if (discover(s, err)) return -1;
    char path[128], what[96];
    snprintf(path, sizeof path, "/slurm/%s/job/%llu", s->version, (unsigned long long)job_id);
    snprintf(what, sizeof what, "cancelling job %llu", (unsigned long long)job_id);
    json_t *ans = NULL;
    if (rest_call(s, "DELETE", path, NULL, ANS_FULL, &ans, err)) return -1;
    int rc = answer_errors(s, ans, what, err);
    size_t i;
    const json_t *e;
    json_array_foreach(json_object_get(ans, "status"), i, e)
    {
        if (rc) break;
        const json_t *je = json_object_get(e, "error");
        long long code = json_integer_value(json_object_get(je, "code"));
        /* 2021, ESLURM_ALREADY_DONE: the job is ending, as scancel counts it */
        if (!code || code == 2021) continue;
        char msg[129];
        fm_clip(msg, sizeof msg, fm_json_str(je, "message", fm_json_str(je, "string", "")));
        rc = fm_err_set(err, code == 2017 ? FM_ERR_NOT_FOUND : FM_ERR_BACKEND,
                        "%s: Slurm said '%s' (error %lld)", what, msg, code);
    }
    json_decref(ans);
    return rc ? -1 : 0;
}

static void rest_close(void *st)
{
    rest_st *s = st;
    if (!s) return;
    json_decref(s->token_ref);
    fm_slurm_table_free(s->table);
    fm_slurm_domains_free(s->dom);
    if (s->cli) fm_slurm_cli_ops.close(s->cli);
    free(s);
}

static void rest_attach_store(void *st, struct fm_store *store)
{
    ((rest_st *)st)->store = store;
}

int fm_slurm_rest_open_state(const json_t *sec, fm_slurm_domains *dom, void **out, fm_err *err)
{
    const json_t *rest = json_object_get(sec, "rest");
    const char *sock = json_string_value(json_object_get(rest, "socket"));
    const char *url = json_string_value(json_object_get(rest, "url"));
    if (!json_is_object(rest) || (!sock && !url) || (sock && url))
        return fm_err_set(err, FM_ERR_NOT_CONFIGURED,
                          "slurm.backend rest needs exactly one of slurm.rest.socket "
                          "or slurm.rest.url"),
               -1;
    rest_st *s = calloc(1, sizeof *s);
    if (!s) return fm_err_set(err, FM_ERR_NOMEM, "slurm rest"), -1;
    if (sock) {
        snprintf(s->socket, sizeof s->socket, "%s", sock);
        snprintf(s->base, sizeof s->base, "http://localhost");
        snprintf(s->what, sizeof s->what, "slurmrestd socket %s", sock);
        snprintf(s->hint, sizeof s->hint, "is slurmrestd running? check slurm.rest.socket");
    } else {
        size_t n = strlen(url);
        while (n && url[n - 1] == '/')
            n--;
        snprintf(s->base, sizeof s->base, "%.*s", (int)n, url);
        snprintf(s->what, sizeof s->what, "slurmrestd at %s", s->base);
        snprintf(s->hint, sizeof s->hint, "is slurmrestd running? check slurm.rest.url");
    }
    const json_t *tok = json_object_get(rest, "token");
    if (tok && !json_is_null(tok)) s->token_ref = json_deep_copy(tok);
    const char *user = json_string_value(json_object_get(rest, "user"));
    if (user) snprintf(s->user, sizeof s->user, "%s", user);
    const char *cluster = json_string_value(json_object_get(sec, "cluster"));
    if (cluster) snprintf(s->cluster_cfg, sizeof s->cluster_cfg, "%s", cluster);
    const char *ver = json_string_value(json_object_get(rest, "api_version"));
    if (ver && strcmp(ver, "auto") != 0) {
        int minor = version_minor(ver);
        if (minor < MINOR_MIN || minor > MINOR_MAX) {
            rest_close(s);
            return fm_err_set(err, FM_ERR_INVALID,
                              "slurm.rest.api_version must be auto or v0.0.%d..v0.0.%d", MINOR_MIN,
                              MINOR_MAX),
                   -1;
        }
        snprintf(s->version, sizeof s->version, "v0.0.%d", minor);
        s->version_fixed = true;
    }
    /* slurmrestd itself waits on slurmctld, so a silent socket usually
     * means the controller is down */
    snprintf(s->timeout_hint, sizeof s->timeout_hint,
             "is slurmctld running (scontrol ping)? slurmrestd waits for it; else check "
             "slurmrestd and slurm.timeout_ms");
    json_int_t to = json_integer_value(json_object_get(sec, "timeout_ms"));
    s->timeout_ms = to > 0 ? (long)to : 5000;
    json_int_t mb = json_integer_value(json_object_get(sec, "max_response_bytes"));
    s->max_bytes = mb > 0 ? (size_t)mb : DEFAULT_MAX_BYTES;
    /* With a slurm.cli section, mutations this slurmrestd cannot make go
     * through scontrol argv; its own domains copy keeps ownership simple. */
    if (json_is_object(json_object_get(sec, "cli"))) {
        const json_t *d = json_object_get(sec, "domains");
        fm_slurm_domains *dom2 =
            fm_slurm_domains_new(json_string_value(json_object_get(d, "rack")),
                                 json_string_value(json_object_get(d, "sku")), err);
        if (!dom2 || fm_slurm_cli_open_state(sec, dom2, &s->cli, err)) {
            if (dom2 && !s->cli) fm_slurm_domains_free(dom2);
            json_decref(s->token_ref);
            free(s);
            return -1;
        }
    }
    const json_t *dp = json_object_get(sec, "domains");
    char *pats = NULL;
    if (asprintf(&pats, "%s\n%s", fm_json_str(dp, "rack", ""), fm_json_str(dp, "sku", "")) < 0) {
        rest_close(s);
        return fm_err_set(err, FM_ERR_NOMEM, "slurm rest"), -1;
    }
    fm_sha256_hex(pats, strlen(pats), s->domains);
    free(pats);
    s->dom = dom;
    *out = s;
    return 0;
}

const struct fm_slurm_ops fm_slurm_rest_ops = {
    .name = "rest",
    .nodes = rest_nodes,
    .nodes_each = rest_nodes_each,
    .node = rest_node,
    .jobs = rest_jobs,
    .update_node = rest_update_node,
    .requeue_job = rest_requeue_job,
    .cancel_job = rest_cancel_job,
    .partition_capacity = rest_partition_capacity,
    .node_count = rest_node_count,
    .attach_store = rest_attach_store,
    .close = rest_close,
};
