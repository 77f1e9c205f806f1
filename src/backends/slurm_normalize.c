/* Slurm answers to fleetmcp's normalized nodes and jobs.
 *
 * One place for every shape difference: slurmrestd v0.0.38 and sinfo/squeue
 * --json of Slurm 22.05 (state a lower-case word plus state_flags, features
 * a comma string, plain integers), v0.0.39+ (state an array, features an
 * array), v0.0.40+ (numbers as {set, infinite, number}, exit_code an
 * object), and `scontrol show node -o` text.  Both backends call these, so
 * the same cluster gives byte-identical normalized answers whichever
 * backend asked.  Everything read here is untrusted: types are checked,
 * strings and lists are bounded. */
#include "fleetmcp/fm_slurm.h"

#include "slurm_impl.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <ctype.h>
#include <fnmatch.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_LIST 256       /* features, partitions, states per node */
#define MAX_JOB_NODES 4096 /* node_list entries per job */
#define MAX_FIELD 1024     /* any one string copied from an answer */
#define MATCH_LIMIT 100000 /* PCRE2 backtracking bound per match */

struct fm_slurm_domains {
    pcre2_code *rack;
    pcre2_code *sku;
    pcre2_match_data *md;
};

/* ---- small helpers -------------------------------------------------- */

/* A Slurm number: plain integer/real, or v0.0.40's {set, infinite,
 * number}.  Returns true and *out if a finite value is present. */
static bool slurm_num(const json_t *v, long long *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return true;
    }
    if (json_is_real(v)) {
        *out = (long long)json_real_value(v);
        return true;
    }
    if (json_is_object(v)) {
        const json_t *set = json_object_get(v, "set"), *inf = json_object_get(v, "infinite");
        if ((set && !json_is_true(set)) || json_is_true(inf)) return false;
        return slurm_num(json_object_get(v, "number"), out);
    }
    return false;
}

/* A string field (borrowed) or NULL when absent, not a string, empty. */
static const char *slurm_str(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return (s && *s) ? s : NULL;
}

/* New JSON string clipped to MAX_FIELD bytes, or null for NULL/empty. */
static json_t *str_or_null(const char *s)
{
    if (!s || !*s) return json_null();
    size_t n = strnlen(s, MAX_FIELD);
    return json_stringn_nocheck(s, n);
}

static json_t *int_or_null(const json_t *v)
{
    long long x;
    return slurm_num(v, &x) ? json_integer(x) : json_null();
}

json_t *fm_slurm_iso_time(long long epoch)
{
    if (epoch <= 0) return json_null();
    time_t t = (time_t)epoch;
    struct tm tm;
    char buf[32];
    if (!gmtime_r(&t, &tm) || !strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm))
        return json_null();
    return json_string(buf);
}

static json_t *time_field(const json_t *v)
{
    long long x;
    return slurm_num(v, &x) ? fm_slurm_iso_time(x) : json_null();
}

/* Appends the pieces of a separated string (sep in seps) to arr, bounded. */
static void split_into(json_t *arr, const char *s, const char *seps, bool upper)
{
    if (!s) return;
    char buf[MAX_FIELD + 1];
    size_t n = strnlen(s, MAX_FIELD);
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *save = NULL;
    for (char *tok = strtok_r(buf, seps, &save); tok && json_array_size(arr) < MAX_LIST;
         tok = strtok_r(NULL, seps, &save)) {
        if (upper)
            for (char *p = tok; *p; p++)
                *p = (char)toupper((unsigned char)*p);
        json_array_append_new(arr, json_string(tok));
    }
}

/* A list that is either a comma string (v0.0.38) or an array of strings
 * (v0.0.39+): new array. */
static json_t *str_list(const json_t *v, bool upper)
{
    json_t *out = json_array();
    if (json_is_string(v)) {
        split_into(out, json_string_value(v), ",", upper);
    } else if (json_is_array(v)) {
        size_t i;
        const json_t *e;
        json_array_foreach(v, i, e)
        {
            if (json_array_size(out) >= MAX_LIST) break;
            if (json_is_string(e)) split_into(out, json_string_value(e), ",", upper);
        }
    }
    return out;
}

bool fm_slurm_valid_node_name(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 63) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!isalnum(c) && c != '.' && c != '_' && c != '-') return false;
    }
    return name[0] != '-' && name[0] != '.';
}

/* ---- failure domains ------------------------------------------------ */

static pcre2_code *compile_re(const char *pat, const char *what, fm_err *err)
{
    int ec;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, 0, &ec, &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(ec, msg, sizeof msg);
        char clip[129];
        fm_clip(clip, sizeof clip, pat);
        fm_err_set(err, FM_ERR_INVALID, "%s pattern '%s' at offset %zu: %s", what, clip,
                   (size_t)off, (const char *)msg);
    }
    return re;
}

fm_slurm_domains *fm_slurm_domains_new(const char *rack, const char *sku, fm_err *err)
{
    fm_slurm_domains *d = calloc(1, sizeof *d);
    if (!d) {
        fm_err_set(err, FM_ERR_NOMEM, "domains");
        return NULL;
    }
    d->rack = compile_re(rack ? rack : "^rack=(.+)$", "slurm.domains.rack", err);
    d->sku = d->rack ? compile_re(sku ? sku : "^sku=(.+)$", "slurm.domains.sku", err) : NULL;
    d->md = pcre2_match_data_create(4, NULL);
    if (!d->rack || !d->sku || !d->md) {
        fm_err_set(err, FM_ERR_NOMEM, "domains");
        fm_slurm_domains_free(d);
        return NULL;
    }
    return d;
}

void fm_slurm_domains_free(fm_slurm_domains *d)
{
    if (!d) return;
    pcre2_code_free(d->rack);
    pcre2_code_free(d->sku);
    pcre2_match_data_free(d->md);
    free(d);
}

/* Bounded match: a pathological pattern fails instead of spinning. */
static int re_match(const pcre2_code *re, pcre2_match_data *md, const char *s)
{
    pcre2_match_context *mc = pcre2_match_context_create(NULL);
    if (mc) pcre2_set_match_limit(mc, MATCH_LIMIT);
    int rc = pcre2_match(re, (PCRE2_SPTR)s, strlen(s), 0, 0, md, mc);
    pcre2_match_context_free(mc);
    return rc;
}

/* The domain value from the first feature re matches: group 1, or the
 * whole match when the pattern has no group.  New string or null. */
static json_t *domain_of(const pcre2_code *re, pcre2_match_data *md, const json_t *features)
{
    size_t i;
    const json_t *f;
    json_array_foreach(features, i, f)
    {
        const char *s = json_string_value(f);
        int rc = re_match(re, md, s);
        if (rc <= 0) continue;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        int g = rc > 1 ? 1 : 0;
        if (ov[2 * g] == PCRE2_UNSET) continue;
        return json_stringn(s + ov[2 * g], ov[2 * g + 1] - ov[2 * g]);
    }
    return json_null();
}

/* ---- GPUs ----------------------------------------------------------- */

/* Sums GPU counts in a GRES string such as "gpu:8", "gpu:h100:4(S:0-1)",
 * "gpu:a100:2,gpu:h100:2".  -1 when no gpu entry is present. */
static long long gres_gpus(const char *gres)
{
    if (!gres) return -1;
    long long total = -1;
    char buf[MAX_FIELD + 1];
    size_t n = strnlen(gres, MAX_FIELD);
    memcpy(buf, gres, n);
    buf[n] = '\0';
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        if (strncmp(tok, "gpu", 3) != 0 || (tok[3] != ':' && tok[3] != '\0')) continue;
        char *paren = strchr(tok, '(');
        if (paren) *paren = '\0';
        char *last = strrchr(tok, ':');
        long long c = 1;
        if (last) {
            char *end;
            long long v = strtoll(last + 1, &end, 10);
            if (end != last + 1 && *end == '\0' && v >= 0 && v < 1000000) c = v;
        }
        total = (total < 0 ? 0 : total) + c;
    }
    return total;
}

/* GPU count from a TRES string: "cpu=1,gres/gpu=8" or "gres:gpu:8". */
static long long tres_gpus(const char *tres)
{
    if (!tres) return -1;
    const char *p = strstr(tres, "gres/gpu=");
    if (p) return strtoll(p + 9, NULL, 10);
    p = strstr(tres, "gres/gpu:");
    if (!p) p = strstr(tres, "gres:gpu:");
    if (p) {
        /* "gres:gpu:8" or "gres:gpu:h100:8": the last number before ',' */
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char buf[128];
        if (n >= sizeof buf) return -1;
        memcpy(buf, p, n);
        buf[n] = '\0';
        char *last = strrchr(buf, ':');
        return last ? strtoll(last + 1, NULL, 10) : -1;
    }
    return -1;
}

/* GPUs from GRES, else from a "gpus=N" feature, else 0. */
static long long node_gpus(const char *gres, const json_t *features)
{
    long long g = gres_gpus(gres);
    if (g >= 0) return g;
    size_t i;
    const json_t *f;
    json_array_foreach(features, i, f)
    {
        const char *s = json_string_value(f);
        if (strncmp(s, "gpus=", 5) == 0) {
            char *end;
            long long v = strtoll(s + 5, &end, 10);
            if (end != s + 5 && *end == '\0' && v >= 0 && v < 100000) return v;
        }
    }
    return 0;
}

/* ---- nodes ---------------------------------------------------------- */

/* Builds the normalized object from parts already extracted (all new refs
 * are stolen). */
static json_t *build_node(const char *name, json_t *state, const char *reason,
                          const char *reason_user, json_t *reason_time, json_t *partitions,
                          json_t *features, const char *gres, json_t *cpus, json_t *memory,
                          json_t *boot_time, const fm_slurm_domains *dom)
{
    json_t *n = json_object();
    json_object_set_new(n, "name", json_string(name));
    json_object_set_new(n, "state", state);
    json_object_set_new(n, "reason", str_or_null(reason));
    json_object_set_new(n, "reason_user", str_or_null(reason ? reason_user : NULL));
    json_object_set_new(n, "reason_time", reason ? reason_time : json_null());
    if (!reason) json_decref(reason_time);
    json_object_set_new(n, "partitions", partitions);
    json_object_set_new(n, "features", features);
    json_object_set_new(n, "gpus", json_integer(node_gpus(gres, features)));
    json_object_set_new(n, "cpus", cpus);
    json_object_set_new(n, "memory_mb", memory);
    json_object_set_new(n, "boot_time", boot_time);
    json_t *d = json_object();
    json_object_set_new(d, "rack", dom ? domain_of(dom->rack, dom->md, features) : json_null());
    json_object_set_new(d, "sku", dom ? domain_of(dom->sku, dom->md, features) : json_null());
    json_t *p0 = json_array_get(partitions, 0);
    json_object_set_new(d, "partition", p0 ? json_copy(p0) : json_null());
    json_object_set_new(n, "domains", d);
    json_object_set_new(n, "fleetmcp_owned",
                        json_boolean(reason && strncmp(reason, FM_SLURM_OWNED_PREFIX,
                                                       strlen(FM_SLURM_OWNED_PREFIX)) == 0));
    return n;
}

json_t *fm_slurm_norm_node(const json_t *raw, const fm_slurm_domains *dom, fm_err *err)
{
    const char *name = slurm_str(raw, "name");
    if (!json_is_object(raw) || !name || !fm_slurm_valid_node_name(name)) {
        fm_err_set(err, FM_ERR_PARSE, "Slurm node entry without a valid name");
        return NULL;
    }
    /* v0.0.38: "idle" + state_flags ["DRAIN"]; v0.0.39+: ["IDLE","DRAIN"] */
    json_t *state = str_list(json_object_get(raw, "state"), true);
    json_t *flags = str_list(json_object_get(raw, "state_flags"), true);
    json_array_extend(state, flags);
    json_decref(flags);
    long long rt = 0;
    slurm_num(json_object_get(raw, "reason_changed_at"), &rt);
    const json_t *mem = json_object_get(raw, "real_memory");
    return build_node(name, state, slurm_str(raw, "reason"), slurm_str(raw, "reason_set_by_user"),
                      fm_slurm_iso_time(rt), str_list(json_object_get(raw, "partitions"), false),
                      str_list(json_object_get(raw, "features"), false), slurm_str(raw, "gres"),
                      int_or_null(json_object_get(raw, "cpus")), int_or_null(mem),
                      time_field(json_object_get(raw, "boot_time")), dom);
}

int fm_slurm_answer_errors(const json_t *answer, const char *what, fm_err *err)
{
    const json_t *errs = json_object_get(answer, "errors");
    if (!json_is_array(errs) || json_array_size(errs) == 0) return 0;
    const json_t *e0 = json_array_get(errs, 0);
    const char *msg = json_string_value(json_object_get(e0, "error"));
    const char *desc = json_string_value(json_object_get(e0, "description"));
    long long no = 0;
    if (!slurm_num(json_object_get(e0, "errno"), &no))
        slurm_num(json_object_get(e0, "error_number"), &no);
    char clip[129], clip2[129];
    fm_clip(clip, sizeof clip, msg ? msg : "unknown error");
    fm_clip(clip2, sizeof clip2, desc ? desc : "");
    /* 2008 invalid node name (rest), 2017 invalid job id, 2018 invalid node */
    fm_code code = (no == 2017 || no == 2018 || no == 2008) ? FM_ERR_NOT_FOUND : FM_ERR_BACKEND;
    return fm_err_set(err, code, "%s: Slurm said '%s'%s%s (errno %lld)", what, clip,
                      *clip2 ? ": " : "", clip2, no);
}

static bool ci_in(const json_t *arr, const char *want)
{
    size_t i;
    const json_t *e;
    json_array_foreach(arr, i, e)
    {
        if (strcasecmp(json_string_value(e), want) == 0) return true;
    }
    return false;
}

static bool exact_in(const json_t *arr, const char *want)
{
    size_t i;
    const json_t *e;
    json_array_foreach(arr, i, e)
    {
        if (strcmp(json_string_value(e), want) == 0) return true;
    }
    return false;
}

static bool ci_substr(const char *hay, const char *needle)
{
    if (!hay) return false;
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0) return true;
    return n == 0;
}

static bool set(const char *s)
{
    return s && *s;
}

static bool node_match(const json_t *n, const fm_slurm_node_filter *f, const pcre2_code *re,
                       pcre2_match_data *md)
{
    if (!f) return true;
    const char *name = json_string_value(json_object_get(n, "name"));
    if (set(f->state) && !ci_in(json_object_get(n, "state"), f->state)) return false;
    if (set(f->partition) && !exact_in(json_object_get(n, "partitions"), f->partition))
        return false;
    if (set(f->feature) && !exact_in(json_object_get(n, "features"), f->feature)) return false;
    if (set(f->reason) && !ci_substr(json_string_value(json_object_get(n, "reason")), f->reason))
        return false;
    if (set(f->name_glob) && fnmatch(f->name_glob, name, 0) != 0) return false;
    if (re && re_match(re, md, name) <= 0) return false;
    return true;
}

/* The filter, with its regex compiled once per listing. */
typedef struct each_st {
    const fm_slurm_domains *dom;
    const fm_slurm_node_filter *f;
    pcre2_code *re;
    pcre2_match_data *md;
    fm_slurm_node_cb cb;
    void *ud;
    fm_err *err;
} each_st;

static int each_open(each_st *e, const fm_slurm_domains *dom, const fm_slurm_node_filter *f,
                     fm_slurm_node_cb cb, void *ud, fm_err *err)
{
    *e = (each_st){.dom = dom, .f = f, .cb = cb, .ud = ud, .err = err};
    if (f && set(f->name_regex)) {
        e->re = compile_re(f->name_regex, "name_regex", err);
        if (!e->re) return -1;
        e->md = pcre2_match_data_create_from_pattern(e->re, NULL);
    }
    return 0;
}

static void each_close(each_st *e)
{
    pcre2_match_data_free(e->md);
    pcre2_code_free(e->re);
}

/* One raw node: normalized, filtered, handed on. */
static int each_node(void *ud, json_t *raw)
{
    each_st *e = ud;
    json_t *n = fm_slurm_norm_node(raw, e->dom, e->err);
    if (!n) return -1;
    int rc = node_match(n, e->f, e->re, e->md) ? e->cb(e->ud, n, e->err) : 0;
    json_decref(n);
    return rc;
}

struct fm_slurm_node_matcher {
    each_st e;
};

fm_slurm_node_matcher *fm_slurm_node_matcher_new(const fm_slurm_node_filter *f, fm_err *err)
{
    fm_slurm_node_matcher *m = calloc(1, sizeof *m);
    if (!m) return fm_err_set(err, FM_ERR_NOMEM, "node filter"), NULL;
    if (each_open(&m->e, NULL, f, NULL, NULL, err)) {
        free(m);
        return NULL;
    }
    return m;
}

bool fm_slurm_node_matches(fm_slurm_node_matcher *m, const json_t *node)
{
    return node_match(node, m->e.f, m->e.re, m->e.md);
}

void fm_slurm_node_matcher_free(fm_slurm_node_matcher *m)
{
    if (!m) return;
    each_close(&m->e);
    free(m);
}

struct fm_slurm_nodes_feed {
    each_st e;
    fm_slurm_stream *st;
};

static int feed_entry(void *ud, json_t *raw)
{
    return each_node(ud, raw);
}

fm_slurm_nodes_feed *fm_slurm_nodes_feed_open(const fm_slurm_domains *dom,
                                              const fm_slurm_node_filter *f, fm_slurm_node_cb cb,
                                              void *ud, fm_err *err)
{
    fm_slurm_nodes_feed *fd = calloc(1, sizeof *fd);
    if (!fd) return fm_err_set(err, FM_ERR_NOMEM, "node reader"), NULL;
    if (each_open(&fd->e, dom, f, cb, ud, err)) {
        free(fd);
        return NULL;
    }
    fd->st = fm_slurm_stream_new(false, feed_entry, &fd->e);
    if (!fd->st) {
        each_close(&fd->e);
        free(fd);
        return fm_err_set(err, FM_ERR_NOMEM, "node reader"), NULL;
    }
    return fd;
}

int fm_slurm_nodes_feed_push(fm_slurm_nodes_feed *fd, const char *p, size_t n)
{
    return fm_slurm_stream_feed(fd->st, p, n, fd->e.err);
}

int fm_slurm_nodes_feed_close(fm_slurm_nodes_feed *fd, json_t **errors)
{
    fm_err *err = fd->e.err;
    int rc = fm_slurm_stream_end(fd->st, errors, err);
    fm_slurm_stream_free(fd->st);
    each_close(&fd->e);
    free(fd);
    if (rc == 0 && !(json_is_array(*errors) && json_array_size(*errors))) {
        fm_err_set(err, FM_ERR_PARSE, "Slurm nodes answer has no 'nodes' array");
        rc = -1;
    }
    if (rc < 0) {
        json_decref(*errors);
        *errors = NULL;
    }
    return rc < 0 ? -1 : 0;
}

int fm_slurm_norm_nodes_each(const char *buf, size_t len, const fm_slurm_domains *dom,
                             const fm_slurm_node_filter *f, fm_slurm_node_cb cb, void *ud,
                             json_t **errors, fm_err *err)
{
    *errors = NULL;
    fm_slurm_nodes_feed *fd = fm_slurm_nodes_feed_open(dom, f, cb, ud, err);
    if (!fd) return -1;
    fm_slurm_nodes_feed_push(fd, buf, len);
    return fm_slurm_nodes_feed_close(fd, errors);
}

static int collect(void *ud, const json_t *node, fm_err *err)
{
    (void)err;
    return json_array_append(ud, (json_t *)node);
}

int fm_slurm_count_node(void *ud, const json_t *node, fm_err *err)
{
    (void)node, (void)err;
    ++*(long long *)ud;
    return 0;
}

json_t *fm_slurm_nodes_collect(int (*each)(void *st, const fm_slurm_node_filter *f,
                                           fm_slurm_node_cb cb, void *ud, fm_err *err),
                               void *st, const fm_slurm_node_filter *f, fm_err *err)
{
    json_t *out = json_array();
    if (each(st, f, collect, out, err)) {
        json_decref(out);
        return NULL;
    }
    return out;
}

json_t *fm_slurm_norm_nodes(const json_t *answer, const fm_slurm_domains *dom,
                            const fm_slurm_node_filter *f, fm_err *err)
{
    if (fm_slurm_answer_errors(answer, "listing nodes", err)) return NULL;
    const json_t *nodes = json_object_get(answer, "nodes");
    if (!json_is_array(nodes)) {
        fm_err_set(err, FM_ERR_PARSE, "Slurm nodes answer has no 'nodes' array");
        return NULL;
    }
    json_t *out = json_array();
    each_st e;
    if (each_open(&e, dom, f, collect, out, err)) {
        json_decref(out);
        return NULL;
    }
    size_t i;
    json_t *raw;
    json_array_foreach(nodes, i, raw)
    {
        if (each_node(&e, raw)) {
            json_decref(out);
            out = NULL;
            break;
        }
    }
    each_close(&e);
    return out;
}

/* ---- scontrol show node -o ------------------------------------------ */

/* Local "YYYY-MM-DDTHH:MM:SS" (scontrol prints local time) to epoch; 0 if
 * unparseable or "None"/"Unknown". */
static long long local_time(const char *s, size_t n)
{
    char buf[32];
    if (n == 0 || n >= sizeof buf) return 0;
    memcpy(buf, s, n);
    buf[n] = '\0';
    struct tm tm = {0};
    char *end = strptime(buf, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end || *end) return 0;
    tm.tm_isdst = -1;
    time_t t = mktime(&tm);
    return t < 0 ? 0 : (long long)t;
}

/* Finds " Key=" (or "Key=" at the start) in text; returns the value's
 * start and its length up to the next " Word=" token, or to the end of
 * the line for Reason (the last field, free text that may hold '='). */
static const char *sc_field(const char *text, const char *key, size_t *len)
{
    size_t kl = strlen(key);
    for (const char *p = text; (p = strstr(p, key)); p += kl) {
        if ((p != text && p[-1] != ' ') || p[kl] != '=') continue;
        const char *v = p + kl + 1, *end = v + strcspn(v, "\n");
        if (strcmp(key, "Reason") != 0) {
            /* next token that looks like " Word=" ends the value */
            for (const char *q = v; q < end; q++) {
                if (*q != ' ') continue;
                const char *w = q + 1;
                while (w < end && (isalnum((unsigned char)*w) || *w == '_'))
                    w++;
                if (w > q + 1 && w < end && *w == '=') {
                    end = q;
                    break;
                }
            }
        }
        while (end > v && end[-1] == ' ')
            end--;
        *len = (size_t)(end - v);
        return v;
    }
    *len = 0;
    return NULL;
}

static char *sc_dup(const char *text, const char *key)
{
    size_t n;
    const char *v = sc_field(text, key, &n);
    if (!v || n == 0 || n > MAX_FIELD || (n == 6 && memcmp(v, "(null)", 6) == 0)) return NULL;
    return strndup(v, n);
}

static json_t *sc_int(const char *text, const char *key)
{
    size_t n;
    const char *v = sc_field(text, key, &n);
    if (!v || n == 0 || n > 20) return json_null();
    char buf[24];
    memcpy(buf, v, n);
    buf[n] = '\0';
    char *end;
    long long x = strtoll(buf, &end, 10);
    return *end ? json_null() : json_integer(x);
}

json_t *fm_slurm_norm_scontrol_node(const char *text, const fm_slurm_domains *dom, fm_err *err)
{
    char *name = sc_dup(text, "NodeName");
    if (!name || !fm_slurm_valid_node_name(name)) {
        free(name);
        fm_err_set(err, FM_ERR_PARSE, "scontrol output without a valid NodeName");
        return NULL;
    }
    char *state_s = sc_dup(text, "State"), *parts = sc_dup(text, "Partitions");
    char *feats = sc_dup(text, "AvailableFeatures"), *gres = sc_dup(text, "Gres");
    char *reason = sc_dup(text, "Reason");
    json_t *state = json_array();
    /* "IDLE+DRAIN"; a trailing '*' (not responding) is spelled as a flag
     * by the JSON answers */
    if (state_s) {
        size_t sl = strlen(state_s);
        bool star = sl && state_s[sl - 1] == '*';
        if (star) state_s[sl - 1] = '\0';
        split_into(state, state_s, "+", true);
        if (star && !ci_in(state, "NOT_RESPONDING"))
            json_array_append_new(state, json_string("NOT_RESPONDING"));
    }
    json_t *partitions = json_array(), *features = json_array();
    split_into(partitions, parts, ",", false);
    split_into(features, feats, ",", false);
    /* "text [user@2026-11-23T14:24:05]" */
    char *ruser = NULL;
    long long rtime = 0;
    if (reason) {
        size_t rl = strlen(reason);
        char *open = strrchr(reason, '[');
        if (open && rl && reason[rl - 1] == ']') {
            char *at = strchr(open, '@');
            if (at) {
                ruser = strndup(open + 1, (size_t)(at - open - 1));
                rtime = local_time(at + 1, (size_t)(reason + rl - 1 - (at + 1)));
            }
            while (open > reason && open[-1] == ' ')
                open--;
            *open = '\0';
        }
    }
    size_t bl;
    const char *bt = sc_field(text, "BootTime", &bl);
    json_t *n =
        build_node(name, state, (reason && *reason) ? reason : NULL, ruser,
                   fm_slurm_iso_time(rtime), partitions, features, gres, sc_int(text, "CPUTot"),
                   sc_int(text, "RealMemory"), fm_slurm_iso_time(bt ? local_time(bt, bl) : 0), dom);
    free(name);
    free(state_s);
    free(parts);
    free(feats);
    free(gres);
    free(reason);
    free(ruser);
    return n;
}

/* ---- sinfo -N -n NAME -O FM_SLURM_SINFO_NODE_FORMAT -------------------- */

/* One line per partition of the node, in slurmctld's partition order (the
 * order scontrol's Partitions= lists), every other field the same on each
 * line; Reason last, since it is free text that may hold '|'.  sinfo has
 * no boot time: boot_time is null. */
json_t *fm_slurm_norm_sinfo_node(const char *text, const char *name, const fm_slurm_domains *dom,
                                 fm_err *err)
{
    enum { F_NAME, F_STATE, F_USER, F_TIME, F_FEAT, F_GRES, F_CPUS, F_MEM, F_PART, F_REASON, NF };
    char first[NF][MAX_FIELD + 1];
    json_t *partitions = json_array();
    size_t lines = 0;
    for (const char *p = text; *p && lines < MAX_LIST;) {
        const char *eol = p + strcspn(p, "\n");
        char line[NF][MAX_FIELD + 1];
        const char *q = p;
        int f = 0;
        for (; f < NF; f++) {
            const char *e = f == F_REASON ? eol : memchr(q, '|', (size_t)(eol - q));
            if (!e) break;
            size_t n = (size_t)(e - q) < MAX_FIELD ? (size_t)(e - q) : MAX_FIELD;
            memcpy(line[f], q, n);
            line[f][n] = '\0';
            q = e + 1;
        }
        p = *eol ? eol + 1 : eol;
        if (f < NF || strcmp(line[F_NAME], name) != 0) {
            json_decref(partitions);
            fm_err_set(err, FM_ERR_PARSE, "sinfo printed a line that is not node %s's", name);
            return NULL;
        }
        if (!lines++) memcpy(first, line, sizeof first);
        json_array_append_new(partitions, json_string(line[F_PART]));
    }
    if (!lines) {
        json_decref(partitions);
        fm_err_set(err, FM_ERR_NOT_FOUND, "sinfo lists no node %s", name);
        return NULL;
    }
    json_t *state = json_array();
    split_into(state, first[F_STATE], "+", true);
    /* sinfo prints "none" and an Unknown time for a node without a reason */
    bool reason = strcmp(first[F_REASON], "none") || strcmp(first[F_TIME], "Unknown");
    json_t *features = json_array();
    if (strcmp(first[F_FEAT], "(null)")) split_into(features, first[F_FEAT], ",", false);
    json_t *num[2];
    for (int i = 0; i < 2; i++) {
        const char *v = first[i ? F_MEM : F_CPUS];
        char *end;
        long long x = strtoll(v, &end, 10);
        num[i] = *v && !*end ? json_integer(x) : json_null();
    }
    const char *gres = first[F_GRES];
    return build_node(name, state, reason ? first[F_REASON] : NULL, first[F_USER],
                      fm_slurm_iso_time(local_time(first[F_TIME], strlen(first[F_TIME]))),
                      partitions, features, strcmp(gres, "(null)") ? gres : NULL, num[0], num[1],
                      json_null(), dom);
}

/* ---- hostlists ------------------------------------------------------ */

/* Expands one item that may hold bracket groups ("a[01-03]b[1-2]").
 * *budget bounds the calls, whatever the input's shape (fuzzing found
 * products of ranges that yield no names, walked to the end). */
static int expand_item(const char *item, json_t *out, size_t max, size_t *budget, fm_err *err)
{
    if (!*budget) return fm_err_set(err, FM_ERR_TOO_LARGE, "hostlist too complex to expand");
    --*budget;
    const char *open = strchr(item, '[');
    if (!open) {
        if (json_array_size(out) >= max)
            return fm_err_set(err, FM_ERR_TOO_LARGE, "hostlist over %zu nodes", max);
        /* A name that is not UTF-8 must fail here: were it dropped, the
         * array would never reach max and a product of ranges would be
         * walked to the end (found by fuzz_slurm_answer). */
        json_t *name = json_string(item);
        if (!name) return fm_err_set(err, FM_ERR_PARSE, "hostlist name is not valid UTF-8");
        json_array_append_new(out, name);
        return 0;
    }
    const char *close = strchr(open, ']');
    if (!close) return fm_err_set(err, FM_ERR_PARSE, "hostlist with unbalanced '['");
    size_t pre = (size_t)(open - item);
    char ranges[256];
    size_t rl = (size_t)(close - open - 1);
    if (rl >= sizeof ranges) return fm_err_set(err, FM_ERR_PARSE, "hostlist range too long");
    memcpy(ranges, open + 1, rl);
    ranges[rl] = '\0';
    /* "[]" or "[,]" would expand to nothing without a word. */
    if (strspn(ranges, ",") == rl) return fm_err_set(err, FM_ERR_PARSE, "empty hostlist range");
    char *save = NULL;
    for (char *r = strtok_r(ranges, ",", &save); r; r = strtok_r(NULL, ",", &save)) {
        /* strictly "N" or "N-M", digits only, at most 9 digits each, so
         * nothing overflows and the loop below always ends */
        char *dash = strchr(r, '-');
        size_t ll = dash ? (size_t)(dash - r) : strlen(r), hl = dash ? strlen(dash + 1) : ll;
        const char *hs = dash ? dash + 1 : r;
        if (ll == 0 || ll > 9 || hl == 0 || hl > 9 || strspn(r, "0123456789") != ll ||
            strspn(hs, "0123456789") != hl)
            return fm_err_set(err, FM_ERR_PARSE, "bad hostlist range");
        unsigned long lo = strtoul(r, NULL, 10), hi = strtoul(hs, NULL, 10);
        int width = (int)ll;
        if (hi < lo) return fm_err_set(err, FM_ERR_PARSE, "bad hostlist range");
        if (hi - lo >= max)
            return fm_err_set(err, FM_ERR_TOO_LARGE, "hostlist over %zu nodes", max);
        for (unsigned long i = lo; i <= hi; i++) {
            char buf[512];
            int w = snprintf(buf, sizeof buf, "%.*s%0*lu%s", (int)pre, item, width, i, close + 1);
            if (w < 0 || (size_t)w >= sizeof buf)
                return fm_err_set(err, FM_ERR_PARSE, "hostname too long");
            if (expand_item(buf, out, max, budget, err)) return -1;
        }
    }
    return 0;
}

json_t *fm_slurm_hostlist_expand(const char *list, size_t max, fm_err *err)
{
    json_t *out = json_array();
    if (!list || !*list || strcmp(list, "(null)") == 0) return out;
    size_t n = strlen(list);
    if (n > 65536) {
        json_decref(out);
        fm_err_set(err, FM_ERR_TOO_LARGE, "hostlist over 64 KiB");
        return NULL;
    }
    char *item = malloc(n + 1);
    /* Every name costs one call per bracket group; a name has at most a
     * few groups in any real hostlist. */
    size_t depth = 0, k = 0, budget = max * 16 + 1024;
    for (size_t i = 0; i <= n; i++) {
        char c = list[i];
        if (c == '[') depth++;
        if (c == ']' && depth) depth--;
        if ((c == ',' && depth == 0) || c == '\0') {
            item[k] = '\0';
            if (k && expand_item(item, out, max, &budget, err)) {
                json_decref(out);
                out = NULL;
                break;
            }
            k = 0;
        } else {
            item[k++] = c;
        }
    }
    free(item);
    return out;
}

/* ---- jobs ----------------------------------------------------------- */

static json_t *job_exit_code(const json_t *v)
{
    long long x;
    if (json_is_object(v) && json_object_get(v, "return_code"))
        return slurm_num(json_object_get(v, "return_code"), &x) ? json_integer(x) : json_null();
    return slurm_num(v, &x) ? json_integer(x) : json_null();
}

json_t *fm_slurm_norm_job(const json_t *raw, fm_err *err)
{
    long long id;
    if (!json_is_object(raw) || !slurm_num(json_object_get(raw, "job_id"), &id) || id <= 0) {
        fm_err_set(err, FM_ERR_PARSE, "Slurm job entry without a job_id");
        return NULL;
    }
    json_t *j = json_object();
    json_object_set_new(j, "job_id", json_integer(id));
    json_object_set_new(j, "name", str_or_null(slurm_str(raw, "name")));
    json_object_set_new(j, "user", str_or_null(slurm_str(raw, "user_name")));
    json_t *st = str_list(json_object_get(raw, "job_state"), true);
    char state[128] = "";
    size_t i;
    const json_t *e;
    json_array_foreach(st, i, e)
    {
        size_t l = strlen(state);
        snprintf(state + l, sizeof state - l, "%s%s", l ? "+" : "", json_string_value(e));
    }
    json_decref(st);
    json_object_set_new(j, "state", str_or_null(state));
    const char *reason = slurm_str(raw, "state_reason");
    json_object_set_new(j, "reason", str_or_null(reason && strcmp(reason, "None") ? reason : NULL));
    const char *nodes = slurm_str(raw, "nodes");
    json_object_set_new(j, "nodes", str_or_null(nodes));
    json_t *list = fm_slurm_hostlist_expand(nodes, MAX_JOB_NODES, err);
    if (!list) {
        json_decref(j);
        return NULL;
    }
    json_object_set_new(j, "node_list", list);
    json_object_set_new(j, "partition", str_or_null(slurm_str(raw, "partition")));
    json_object_set_new(j, "start_time", time_field(json_object_get(raw, "start_time")));
    json_object_set_new(j, "time_limit", int_or_null(json_object_get(raw, "time_limit")));
    json_object_set_new(j, "exit_code", job_exit_code(json_object_get(raw, "exit_code")));
    long long g = tres_gpus(slurm_str(raw, "tres_alloc_str"));
    if (g < 0) g = tres_gpus(slurm_str(raw, "tres_per_node"));
    if (g < 0) g = tres_gpus(slurm_str(raw, "tres_req_str"));
    json_object_set_new(j, "gpus", json_integer(g < 0 ? 0 : g));
    /* Output paths as Slurm stores them (patterns like %j unexpanded; ""
     * is the default slurm-%j.out in the working directory).  Only when the
     * answer carries them: squeue --json does, slurmrestd before v0.0.39
     * does not. */
    const char *so = json_string_value(json_object_get(raw, "standard_output"));
    if (so) {
        const char *se = slurm_str(raw, "standard_error");
        const char *wd = slurm_str(raw, "current_working_directory");
        const char *bh = slurm_str(raw, "batch_host");
        json_object_set_new(j, "std_out", json_stringn_nocheck(so, strnlen(so, MAX_FIELD)));
        json_object_set_new(j, "std_err", se ? str_or_null(se) : json_string(""));
        json_object_set_new(j, "work_dir", str_or_null(wd));
        json_object_set_new(j, "batch_host", str_or_null(bh));
        long long aj, at;
        if (slurm_num(json_object_get(raw, "array_job_id"), &aj) && aj > 0 &&
            slurm_num(json_object_get(raw, "array_task_id"), &at) && at >= 0) {
            json_object_set_new(j, "array_job_id", json_integer(aj));
            json_object_set_new(j, "array_task_id", json_integer(at));
        }
    }
    return j;
}

bool fm_slurm_state_has(const char *joined, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = joined; p && *p;) {
        size_t l = strcspn(p, "+");
        if (l == n && !strncasecmp(p, word, n)) return true;
        p += l;
        p += *p == '+';
    }
    return false;
}

static bool job_match(const json_t *j, const fm_slurm_job_filter *f)
{
    if (!f) return true;
    if (set(f->node) && !exact_in(json_object_get(j, "node_list"), f->node)) return false;
    const char *u = json_string_value(json_object_get(j, "user"));
    if (set(f->user) && (!u || strcmp(u, f->user) != 0)) return false;
    /* A flag beside the base state (RUNNING+CONFIGURING, +SIGNALING) does
     * not make a running job something else: the whole state or one of
     * its words. */
    const char *s = json_string_value(json_object_get(j, "state"));
    if (set(f->state) && (!s || (strcasecmp(s, f->state) && !fm_slurm_state_has(s, f->state))))
        return false;
    const char *p = json_string_value(json_object_get(j, "partition"));
    if (set(f->partition) && (!p || strcmp(p, f->partition) != 0)) return false;
    return true;
}

json_t *fm_slurm_norm_jobs(const json_t *answer, const fm_slurm_job_filter *f, fm_err *err)
{
    if (fm_slurm_answer_errors(answer, "listing jobs", err)) return NULL;
    const json_t *jobs = json_object_get(answer, "jobs");
    if (!json_is_array(jobs)) {
        fm_err_set(err, FM_ERR_PARSE, "Slurm jobs answer has no 'jobs' array");
        return NULL;
    }
    json_t *out = json_array();
    size_t i;
    const json_t *raw;
    json_array_foreach(jobs, i, raw)
    {
        json_t *j = fm_slurm_norm_job(raw, err);
        if (!j) {
            json_decref(out);
            return NULL;
        }
        if (job_match(j, f))
            json_array_append_new(out, j);
        else
            json_decref(j);
    }
    return out;
}
