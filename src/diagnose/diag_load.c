/* Loading the signature catalog: YAML -> schema check -> semantic checks
 * (class ids, duplicate ids, regexes) -> compiled, read-only fm_diag_db.
 * Nothing is half-loaded: the first problem frees everything. */
#include "diag_int.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

#include "fleetmcp/fm_schema.h"
#include "fleetmcp/fm_schemas.h"
#include "fleetmcp/fm_yaml.h"

#define SCHEMA_NAME "signatures.schema.json"
#define MAX_EXTRA_FILES 64

static const char *const SRC_NAMES[DS_N] = {"kernel_log",   "job_log",          "events",
                                            "slurm.reason", "slurm.node_state", "slurm.jobs",
                                            "history",      "metrics"};

typedef struct loadctx {
    struct fm_diag_db *db;
    fm_err *err;
    const char *file; /* for messages */
    const fm_yaml_doc *doc;
} loadctx;

static int bad(loadctx *lc, const char *ptr, const char *fmt, const char *a, const char *b)
{
    char what[300];
    snprintf(what, sizeof what, fmt, a ? a : "", b ? b : "");
    int line = lc->doc ? fm_yaml_line(lc->doc, ptr) : 0;
    fm_err_set(lc->err, FM_ERR_INVALID, "%s:%d: %s: %s; fix the signature file and retry", lc->file,
               line, ptr, what);
    return -1;
}

int diag_class_index(const struct fm_diag_db *db, const char *id)
{
    for (int i = 0; i < db->nclasses; i++)
        if (strcmp(db->classes[i].id, id) == 0) return i;
    return -1;
}

const diag_xid *diag_xid_find(const struct fm_diag_db *db, int code)
{
    for (int i = 0; i < db->nxids; i++)
        if (db->xids[i].code == code) return &db->xids[i];
    return NULL;
}

bool diag_re_match(const diag_re *re, const char *s, size_t len, pcre2_match_data *md)
{
    if (!re->code) return false;
    return pcre2_match(re->code, (PCRE2_SPTR)s, len, 0, 0, md, NULL) >= 0;
}

static int compile(loadctx *lc, diag_re *re, const char *pat, const char *ptr)
{
    int ec;
    PCRE2_SIZE off;
    re->code = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, 0, &ec, &off, NULL);
    if (!re->code) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(ec, msg, sizeof msg);
        char at[200];
        snprintf(at, sizeof at, "%s at offset %zu", (const char *)msg, (size_t)off);
        return bad(lc, ptr, "regex does not compile: %s%s", at, NULL);
    }
    /* JIT is an optimisation: a platform without it still matches.  Its
     * SIMD loads read whole 16-byte words past a subject's end, which
     * valgrind reports, so it is skipped there (or with FLEETMCP_NO_JIT). */
    if (!lc->db->no_jit) (void)pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE);
    uint32_t caps = 0;
    pcre2_pattern_info(re->code, PCRE2_INFO_CAPTURECOUNT, &caps);
    if (caps + 1 > lc->db->max_caps) lc->db->max_caps = caps + 1;
    return 0;
}

static void re_free(diag_re *re)
{
    if (re->code) pcre2_code_free(re->code);
    re->code = NULL;
}

static int strength_of(const char *s)
{
    if (!s) return ST_STRONG;
    if (strcmp(s, "decisive") == 0) return ST_DECISIVE;
    if (strcmp(s, "weak") == 0) return ST_WEAK;
    return ST_STRONG;
}

static int op_of(const char *s)
{
    static const char *const ops[] = {">", ">=", "<", "<=", "==", "!=", "&"};
    for (int i = 0; i < 7; i++)
        if (strcmp(s, ops[i]) == 0) return i;
    return OP_GT;
}

static int class_ref(loadctx *lc, const char *id, const char *ptr, int *out)
{
    int c = diag_class_index(lc->db, id);
    if (c < 0)
        return bad(lc, ptr, "unknown fault class '%s' (not in fault-classes.yaml)", id, NULL);
    *out = c;
    return 0;
}

static int sources_of(loadctx *lc, const json_t *v, const char *ptr, unsigned *mask)
{
    *mask = 0;
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_is_array(v) ? json_array_get(v, i) : v);
        int k = -1;
        for (int j = 0; s && j < DS_N; j++)
            if (strcmp(SRC_NAMES[j], s) == 0) k = j;
        if (k < 0) return bad(lc, ptr, "unknown source '%s'", s, NULL);
        *mask |= 1u << k;
    }
    return 0;
}

/* Adds sig index si to literal text (deduplicated). */
static int add_literal(struct fm_diag_db *db, const char *text, int si)
{
    int li = -1;
    for (int i = 0; i < db->nlits; i++)
        if (strcmp(db->lits[i].text, text) == 0) li = i;
    if (li < 0) {
        diag_lit *nl = realloc(db->lits, (size_t)(db->nlits + 1) * sizeof *nl);
        if (!nl) return -1;
        db->lits = nl;
        li = db->nlits++;
        memset(&db->lits[li], 0, sizeof db->lits[li]);
        db->lits[li].text = strdup(text);
        db->lits[li].len = strlen(text);
        db->lits[li].next = -1;
        if (!db->lits[li].text) return -1;
    }
    diag_lit *l = &db->lits[li];
    for (int i = 0; i < l->nsigs; i++)
        if (l->sigs[i] == si) return 0;
    int *ns = realloc(l->sigs, (size_t)(l->nsigs + 1) * sizeof *ns);
    if (!ns) return -1;
    l->sigs = ns;
    l->sigs[l->nsigs++] = si;
    return 0;
}

static int new_sig(struct fm_diag_db *db)
{
    diag_sig *ns = realloc(db->sigs, (size_t)(db->nsigs + 1) * sizeof *ns);
    if (!ns) return -1;
    db->sigs = ns;
    memset(&db->sigs[db->nsigs], 0, sizeof db->sigs[0]);
    return db->nsigs++;
}

static int literals_of(loadctx *lc, const json_t *lit, int si)
{
    if (!lit) {
        int *na = realloc(lc->db->always, (size_t)(lc->db->nalways + 1) * sizeof *na);
        if (!na) return fm_err_set(lc->err, FM_ERR_NOMEM, "out of memory"), -1;
        lc->db->always = na;
        lc->db->always[lc->db->nalways++] = si;
        return 0;
    }
    size_t n = json_is_array(lit) ? json_array_size(lit) : 1;
    for (size_t i = 0; i < n; i++) {
        const char *t = json_string_value(json_is_array(lit) ? json_array_get(lit, i) : lit);
        if (!t || strlen(t) < 3)
            return bad(lc, "/literal", "literal shorter than 3 bytes", NULL, NULL);
        if (add_literal(lc->db, t, si))
            return fm_err_set(lc->err, FM_ERR_NOMEM, "out of memory"), -1;
        lc->db->sigs[si].nlit++;
    }
    return 0;
}

static int load_metric(loadctx *lc, diag_metric *m, const json_t *o, const char *ptr)
{
    char p[160];
    snprintf(p, sizeof p, "%s/metric", ptr);
    if (compile(lc, &m->name, json_string_value(json_object_get(o, "name")), p)) return -1;
    m->op = op_of(json_string_value(json_object_get(o, "op")));
    m->thr = json_number_value(json_object_get(o, "threshold"));
    m->min_series = (int)json_integer_value(json_object_get(o, "min_series"));
    if (m->min_series < 1) m->min_series = 1;
    m->rising = json_is_true(json_object_get(o, "rising"));
    m->counter = json_is_true(json_object_get(o, "counter"));
    m->sustained = (int)json_integer_value(json_object_get(o, "sustained"));
    m->fell_from = json_number_value(json_object_get(o, "fell_from"));
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)json_object_get(o, "labels"), k, v)
    {
        if (m->nlabels >= DIAG_MAX_LABELS) break;
        m->label_key[m->nlabels] = strdup(k);
        if (!m->label_key[m->nlabels])
            return fm_err_set(lc->err, FM_ERR_NOMEM, "out of memory"), -1;
        if (compile(lc, &m->label_re[m->nlabels], json_string_value(v), p)) return -1;
        m->nlabels++;
    }
    const json_t *w = json_object_get(o, "with");
    if (w) {
        m->has_with = true;
        if (compile(lc, &m->with_name, json_string_value(json_object_get(w, "name")), p)) return -1;
        m->with_op = op_of(json_string_value(json_object_get(w, "op")));
        m->with_thr = json_number_value(json_object_get(w, "threshold"));
    }
    const json_t *vs = json_object_get(o, "vs");
    if (vs) {
        m->has_vs = true;
        if (compile(lc, &m->vs_name, json_string_value(json_object_get(vs, "name")), p)) return -1;
        m->vs_factor = json_number_value(json_object_get(vs, "factor"));
    }
    m->outlier = json_number_value(json_object_get(o, "outlier"));
    return 0;
}

static int load_sig(loadctx *lc, const json_t *s, size_t idx)
{
    struct fm_diag_db *db = lc->db;
    char ptr[96];
    snprintf(ptr, sizeof ptr, "/signatures/%zu", idx);
    const char *id = json_string_value(json_object_get(s, "id"));
    for (int i = 0; i < db->nsigs; i++)
        if (strcmp(db->sigs[i].id, id) == 0)
            return bad(lc, ptr, "duplicate signature id '%s'", id, NULL);
    int si = new_sig(db);
    if (si < 0) return fm_err_set(lc->err, FM_ERR_NOMEM, "out of memory"), -1;
    diag_sig *g = &db->sigs[si];
    snprintf(g->id, sizeof g->id, "%s", id);
    const char *grp = json_string_value(json_object_get(s, "group"));
    snprintf(g->group, sizeof g->group, "%s", grp ? grp : id);
    g->strength = strength_of(json_string_value(json_object_get(s, "strength")));
    g->xid = json_is_true(json_object_get(s, "xid"));
    g->anomaly = json_is_true(json_object_get(s, "anomaly"));
    g->marker = json_is_true(json_object_get(s, "marker"));
    const char *sc = json_string_value(json_object_get(s, "scope"));
    g->level = !sc ? -1 : strcmp(sc, "node") == 0 ? 1 : strcmp(sc, "cluster") == 0 ? 2 : 0;
    g->recovery = json_is_true(json_object_get(s, "recovery"));
    {
        const json_t *b = json_object_get(s, "boot");
        const char *bs = json_string_value(b);
        g->boot = json_is_true(b)                 ? 1
                  : !bs                           ? 0
                  : strcmp(bs, "previous") == 0   ? 2
                  : strcmp(bs, "id") == 0         ? 3
                  : strcmp(bs, "current_id") == 0 ? 4
                  : strcmp(bs, "uptime") == 0     ? 5
                  : strcmp(bs, "boot_time") == 0  ? 6
                  : strcmp(bs, "repair") == 0     ? 7
                                                  : 0;
    }
    const char *qt = json_string_value(json_object_get(s, "quote"));
    g->quote = !qt                           ? 0
               : strcmp(qt, "entry") == 0    ? 2
               : strcmp(qt, "flat") == 0     ? 3
               : strcmp(qt, "injected") == 0 ? 4
                                             : 1;
    const char *mca = json_string_value(json_object_get(s, "mca_status"));
    if (mca && strcmp(mca, "uncorrected") != 0 && strcmp(mca, "corrected") != 0)
        return bad(lc, ptr, "mca_status is 'uncorrected' or 'corrected', not '%s'", mca, NULL);
    g->mca = !mca ? 0 : strcmp(mca, "uncorrected") == 0 ? 1 : 2;
    g->xid_cap = json_object_get(s, "strength") ? g->strength : ST_DECISIVE;
    g->min_count = (int)json_integer_value(json_object_get(s, "min_count"));
    if (g->min_count < 1) g->min_count = 1;
    if (sources_of(lc, json_object_get(s, "source"), ptr, &g->srcmask)) return -1;
    const json_t *fc = json_object_get(s, "fault_class");
    size_t nfc = json_is_array(fc) ? json_array_size(fc) : (fc ? 1 : 0);
    for (size_t i = 0; i < nfc && i < DIAG_MAX_CLASSES; i++) {
        const char *c = json_string_value(json_is_array(fc) ? json_array_get(fc, i) : fc);
        if (class_ref(lc, c, ptr, &g->cls[g->ncls])) return -1;
        g->ncls++;
    }
    const char *al = json_string_value(json_object_get(s, "also"));
    if (al && compile(lc, &g->also, al, ptr)) return -1;
    const char *un = json_string_value(json_object_get(s, "unless"));
    if (un && compile(lc, &g->unless, un, ptr)) return -1;
    const char *rq = json_string_value(json_object_get(s, "requires"));
    if (rq && compile(lc, &g->requires, rq, ptr)) return -1;
    if (g->srcmask & (1u << DS_METRICS)) {
        if (g->srcmask != (1u << DS_METRICS))
            return bad(lc, ptr, "a metric signature has only the metrics source", NULL, NULL);
        g->is_metric = true;
        return load_metric(lc, &g->m, json_object_get(s, "metric"), ptr);
    }
    char p[128];
    snprintf(p, sizeof p, "%s/pattern", ptr);
    if (compile(lc, &g->re, json_string_value(json_object_get(s, "pattern")), p)) return -1;
    if (g->xid) {
        int n = pcre2_substring_number_from_name(g->re.code, (PCRE2_SPTR) "xid");
        if (n <= 0) return bad(lc, p, "an xid signature needs a (?<xid>...) capture", NULL, NULL);
        g->cap_xid = (uint32_t)n;
    }
    int n = pcre2_substring_number_from_name(g->re.code, (PCRE2_SPTR) "pid");
    g->cap_pid = n > 0 ? (uint32_t)n : 0;
    g->min_hosts = (int)json_integer_value(json_object_get(s, "min_hosts"));
    if (g->min_hosts > 1) {
        int h = pcre2_substring_number_from_name(g->re.code, (PCRE2_SPTR) "host");
        if (h <= 0)
            return bad(lc, p, "a min_hosts signature needs a (?<host>...) capture", NULL, NULL);
        g->cap_host = (uint32_t)h;
    }
    if (g->mca) {
        int k = pcre2_substring_number_from_name(g->re.code, (PCRE2_SPTR) "mca");
        if (k <= 0)
            return bad(lc, p, "an mca_status signature needs a (?<mca>...) capture", NULL, NULL);
        g->cap_mca = (uint32_t)k;
    }
    if (g->recovery) {
        int k = pcre2_substring_number_from_name(g->re.code, (PCRE2_SPTR) "key");
        int v = pcre2_substring_number_from_name(g->re.code, (PCRE2_SPTR) "val");
        if (k <= 0 || v <= 0)
            return bad(lc, p, "a recovery signature needs (?<key>...) and (?<val>...) captures",
                       NULL, NULL);
        g->cap_key = (uint32_t)k;
        g->cap_val = (uint32_t)v;
    }
    if (g->boot >= 3) {
        /* boot ids in val; uptime's days in key, hours:minutes in val */
        int k = pcre2_substring_number_from_name(g->re.code, (PCRE2_SPTR) "key");
        int v = pcre2_substring_number_from_name(g->re.code, (PCRE2_SPTR) "val");
        if (v <= 0 || (g->boot == 5 && k <= 0))
            return bad(lc, p,
                       "a boot id or uptime signature needs a (?<val>...) capture "
                       "(uptime also (?<key>...))",
                       NULL, NULL);
        g->cap_key = k > 0 ? (uint32_t)k : 0;
        g->cap_val = (uint32_t)v;
    }
    const char *ex = json_string_value(json_object_get(s, "exclude"));
    if (ex && compile(lc, &g->exclude, ex, ptr)) return -1;
    const json_t *cx = json_object_get(s, "context");
    if (cx) {
        if (compile(lc, &g->ctx, json_string_value(json_object_get(cx, "pattern")), ptr)) return -1;
        const char *st = json_string_value(json_object_get(cx, "stop"));
        if (st && compile(lc, &g->ctx_stop, st, ptr)) return -1;
        json_t *b = json_object_get(cx, "before");
        g->ctx_before = b ? (int)json_integer_value(b) : 40;
        g->ctx_negate = json_is_true(json_object_get(cx, "negate"));
    }
    return literals_of(lc, json_object_get(s, "literal"), si);
}

static int rule_type(const char *t)
{
    static const char *const names[] = {"multi_job_same_node",
                                        "history_follows_job",
                                        "history_follows_node",
                                        "history_same_step_different_errors",
                                        "capture_disagree",
                                        "distinct_values",
                                        "outlier",
                                        "configured_vs_chosen",
                                        "explains",
                                        "absorb",
                                        "below_reference",
                                        "unowned_value",
                                        "slowdown_after_change"};
    for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++)
        if (strcmp(t, names[i]) == 0) return i;
    return -1;
}

static int class_list(loadctx *lc, const json_t *a, const char *ptr, diag_rule *r)
{
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        if (r->ntargets >= 16) break;
        if (class_ref(lc, json_string_value(v), ptr, &r->targets[r->ntargets])) return -1;
        r->ntargets++;
    }
    return 0;
}

static int load_rule(loadctx *lc, const json_t *o, size_t idx)
{
    struct fm_diag_db *db = lc->db;
    char ptr[96];
    snprintf(ptr, sizeof ptr, "/rules/%zu", idx);
    diag_rule *nr = realloc(db->rules, (size_t)(db->nrules + 1) * sizeof *nr);
    if (!nr) return fm_err_set(lc->err, FM_ERR_NOMEM, "out of memory"), -1;
    db->rules = nr;
    diag_rule *r = &db->rules[db->nrules++];
    memset(r, 0, sizeof *r);
    r->cls = -1;
    r->sig = -1;
    snprintf(r->id, sizeof r->id, "%s", json_string_value(json_object_get(o, "id")));
    r->type = rule_type(json_string_value(json_object_get(o, "type")));
    r->strength = strength_of(json_string_value(json_object_get(o, "strength")));
    r->min_jobs = (int)json_integer_value(json_object_get(o, "min_jobs"));
    if (r->min_jobs < 2) r->min_jobs = 2;
    r->window_min = (int)json_integer_value(json_object_get(o, "window_min"));
    if (r->window_min < 1) r->window_min = 10;
    r->min = json_number_value(json_object_get(o, "min"));
    r->min_keys = (int)json_integer_value(json_object_get(o, "min_keys"));
    if (r->min_keys < 2) r->min_keys = 3;
    r->low = json_is_true(json_object_get(o, "low"));
    json_t *f = json_object_get(o, "factor");
    r->factor = f ? json_number_value(f) : 0.5;
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(o, "states"), i, v)
    {
        if (r->nstates < 16)
            snprintf(r->states[r->nstates++], sizeof r->states[0], "%s", json_string_value(v));
    }
    const char *c = json_string_value(json_object_get(o, "fault_class"));
    if (!c) c = json_string_value(json_object_get(o, "if"));
    if (c && class_ref(lc, c, ptr, &r->cls)) return -1;
    /* an explains rule may wait for an anomaly (and a marker) instead of a
     * class: what is unexplained can still rule a class out */
    const char *ia = json_string_value(json_object_get(o, "if_anomaly"));
    const char *as = json_string_value(json_object_get(o, "and_seen"));
    snprintf(r->if_anomaly, sizeof r->if_anomaly, "%s", ia ? ia : "");
    snprintf(r->and_seen, sizeof r->and_seen, "%s", as ? as : "");
    const char *ws = json_string_value(json_object_get(o, "wide_seen"));
    snprintf(r->wide_seen, sizeof r->wide_seen, "%s", ws ? ws : "");
    if (r->type == RT_SLOWDOWN_AFTER) {
        if (!as || ia || c)
            return bad(lc, ptr,
                       "a slowdown_after_change rule needs and_seen (the change marker) "
                       "and no fault_class or if_anomaly: it reports an anomaly",
                       NULL, NULL);
    } else if ((ia || as) && (r->type != RT_EXPLAINS || c)) {
        return bad(lc, ptr, "if_anomaly and and_seen belong to an explains rule without if", NULL,
                   NULL);
    } else if (ws) {
        return bad(lc, ptr, "wide_seen belongs to a slowdown_after_change rule", NULL, NULL);
    }
    if (class_list(lc, json_object_get(o, "classes"), ptr, r)) return -1;
    if (class_list(lc, json_object_get(o, "demote"), ptr, r)) return -1;
    if (class_list(lc, json_object_get(o, "from"), ptr, r)) return -1;
    bool capture = r->type == RT_CAPTURE_DISAGREE || r->type == RT_DISTINCT_VALUES ||
                   r->type == RT_OUTLIER || r->type == RT_CONFIG_CHOSEN ||
                   r->type == RT_BELOW_REFERENCE || r->type == RT_UNOWNED ||
                   r->type == RT_SLOWDOWN_AFTER;
    bool needs_cls = (capture && r->type != RT_SLOWDOWN_AFTER) ||
                     (r->type == RT_EXPLAINS && !ia && !as) || r->type == RT_ABSORB;
    if (needs_cls && r->cls < 0)
        return bad(lc, ptr, "this rule type needs fault_class (or if)", NULL, NULL);
    if ((r->type == RT_EXPLAINS || r->type == RT_ABSORB) && r->ntargets == 0)
        return bad(lc, ptr, "this rule type needs demote (or from)", NULL, NULL);
    if (r->type == RT_BELOW_REFERENCE || r->type == RT_SLOWDOWN_AFTER) {
        const char *ref = json_string_value(json_object_get(o, "reference"));
        if (!ref)
            return bad(lc, ptr, "below_reference and slowdown_after_change rules need reference",
                       NULL, NULL);
        if (compile(lc, &r->reference, ref, ptr)) return -1;
    }
    const char *blk = json_string_value(json_object_get(o, "block"));
    if (blk && r->type != RT_DISTINCT_VALUES)
        return bad(lc, ptr, "block belongs to a distinct_values rule", NULL, NULL);
    if (blk && compile(lc, &r->block, blk, ptr)) return -1;
    if (capture) {
        const char *pat = json_string_value(json_object_get(o, "pattern"));
        if (!pat) return bad(lc, ptr, "a capture rule needs a pattern", NULL, NULL);
        int si = new_sig(db);
        if (si < 0) return fm_err_set(lc->err, FM_ERR_NOMEM, "out of memory"), -1;
        r = &db->rules[db->nrules - 1];
        r->sig = si;
        diag_sig *g = &db->sigs[si];
        snprintf(g->id, sizeof g->id, "rule:%.58s", r->id);
        snprintf(g->group, sizeof g->group, "%s", g->id);
        g->ncls = 0; /* rule patterns give no evidence by themselves */
        g->min_count = 1;
        if (sources_of(lc, json_object_get(o, "source"), ptr, &g->srcmask)) return -1;
        if (compile(lc, &g->re, pat, ptr)) return -1;
        int k = pcre2_substring_number_from_name(g->re.code, (PCRE2_SPTR) "key");
        int vv = pcre2_substring_number_from_name(g->re.code, (PCRE2_SPTR) "val");
        if (vv <= 0 || (r->type != RT_DISTINCT_VALUES && k <= 0))
            return bad(lc, ptr, "the pattern needs (?<val>...) (and (?<key>...) to disagree)", NULL,
                       NULL);
        g->cap_key = k > 0 ? (uint32_t)k : 0;
        g->cap_val = (uint32_t)vv;
        /* outlier: ranks that share a host are grouped by it */
        int h = pcre2_substring_number_from_name(g->re.code, (PCRE2_SPTR) "host");
        g->cap_host = h > 0 ? (uint32_t)h : 0;
        /* every record of a line: several ranks' readings, a limit and its
         * default, two ranks' collectives compared in one sentence */
        g->multi = r->type == RT_OUTLIER || r->type == RT_BELOW_REFERENCE ||
                   r->type == RT_CAPTURE_DISAGREE;
        /* slowdown_after_change reads its lines itself, only when the
         * change is on record: never scanned, so it costs no log scan */
        if (r->type != RT_SLOWDOWN_AFTER && literals_of(lc, json_object_get(o, "literal"), si))
            return -1;
    }
    return 0;
}

static int load_xids(loadctx *lc, const json_t *arr)
{
    struct fm_diag_db *db = lc->db;
    size_t i;
    json_t *x;
    json_array_foreach(arr, i, x)
    {
        char ptr[64];
        snprintf(ptr, sizeof ptr, "/xid/%zu", i);
        int code = (int)json_integer_value(json_object_get(x, "code"));
        if (diag_xid_find(db, code)) return bad(lc, ptr, "Xid listed twice", NULL, NULL);
        diag_xid *nx = realloc(db->xids, (size_t)(db->nxids + 1) * sizeof *nx);
        if (!nx) return fm_err_set(lc->err, FM_ERR_NOMEM, "out of memory"), -1;
        db->xids = nx;
        diag_xid *d = &db->xids[db->nxids++];
        memset(d, 0, sizeof *d);
        d->code = code;
        d->cls = -1;
        const char *c = json_string_value(json_object_get(x, "fault_class"));
        if (c && class_ref(lc, c, ptr, &d->cls)) return -1;
        d->strength = strength_of(json_string_value(json_object_get(x, "strength")));
        d->informational = json_is_true(json_object_get(x, "informational"));
        const json_t *ct = json_object_get(x, "contained");
        d->contained = json_is_boolean(ct) ? json_is_true(ct) : -1;
        if (d->informational && d->cls >= 0)
            return bad(lc, ptr, "an informational Xid has no fault_class", NULL, NULL);
        snprintf(d->action, sizeof d->action, "%s",
                 json_string_value(json_object_get(x, "action")));
        const char *iv = json_string_value(json_object_get(x, "investigatory"));
        snprintf(d->invest, sizeof d->invest, "%s", iv ? iv : "");
        const char *mn = json_string_value(json_object_get(x, "mnemonic"));
        snprintf(d->mnemonic, sizeof d->mnemonic, "%s", mn ? mn : "");
        const char *nm = json_string_value(json_object_get(x, "name"));
        snprintf(d->name, sizeof d->name, "%s", nm ? nm : "");
    }
    return 0;
}

static int load_xrecs(loadctx *lc, const json_t *arr)
{
    struct fm_diag_db *db = lc->db;
    size_t i;
    json_t *x;
    json_array_foreach(arr, i, x)
    {
        diag_xrec *nx = realloc(db->xrecs, (size_t)(db->nxrecs + 1) * sizeof *nx);
        if (!nx) return fm_err_set(lc->err, FM_ERR_NOMEM, "out of memory"), -1;
        db->xrecs = nx;
        diag_xrec *d = &db->xrecs[db->nxrecs++];
        d->code = (int)json_integer_value(json_object_get(x, "code"));
        snprintf(d->label, sizeof d->label, "%s", json_string_value(json_object_get(x, "label")));
        snprintf(d->action, sizeof d->action, "%s",
                 json_string_value(json_object_get(x, "action")));
    }
    return 0;
}

const diag_xrec *diag_xrec_find(const struct fm_diag_db *db, const char *code, const char *label)
{
    long c = code && *code ? strtol(code, NULL, 16) : -1;
    for (int i = 0; i < db->nxrecs; i++)
        if (db->xrecs[i].code == c) return &db->xrecs[i];
    for (int i = 0; label && i < db->nxrecs; i++)
        if (strcasecmp(db->xrecs[i].label, label) == 0) return &db->xrecs[i];
    return NULL;
}

static int load_taxonomy(struct fm_diag_db *db, const char *dir, fm_err *err)
{
    char path[600];
    snprintf(path, sizeof path, "%s/fault-classes.yaml", dir);
    fm_yaml_doc doc;
    if (fm_yaml_load_file(path, &doc, err)) return -1;
    const json_t *cl = json_object_get(doc.root, "classes");
    if (!json_is_array(cl) || json_array_size(cl) == 0 || json_array_size(cl) > 256) {
        fm_yaml_doc_free(&doc);
        return fm_err_set(err, FM_ERR_INVALID,
                          "%s: no classes list; restore it from shared/fault-classes.yaml", path),
               -1;
    }
    db->classes = calloc(json_array_size(cl), sizeof *db->classes);
    if (!db->classes) {
        fm_yaml_doc_free(&doc);
        return fm_err_set(err, FM_ERR_NOMEM, "out of memory"), -1;
    }
    size_t i;
    json_t *c;
    json_array_foreach(cl, i, c)
    {
        const char *id = json_string_value(json_object_get(c, "id"));
        const char *sc = json_string_value(json_object_get(c, "scope"));
        json_t *resp = json_object_get(c, "response");
        if (!id || !sc || !json_is_array(resp)) {
            fm_yaml_doc_free(&doc);
            return fm_err_set(err, FM_ERR_INVALID, "%s: class %zu lacks id, scope or response",
                              path, i),
                   -1;
        }
        diag_class *d = &db->classes[db->nclasses++];
        snprintf(d->id, sizeof d->id, "%s", id);
        snprintf(d->scope, sizeof d->scope, "%s", sc);
        d->destructive = json_is_true(json_object_get(c, "destructive"));
        d->response = json_deep_copy(resp);
    }
    fm_yaml_doc_free(&doc);
    if (diag_class_index(db, "healthy") < 0)
        return fm_err_set(err, FM_ERR_INVALID, "%s: the taxonomy needs a 'healthy' class", path),
               -1;
    return 0;
}

static int validate(loadctx *lc, const json_t *schema)
{
    fm_err e = {0};
    if (fm_schema_validate(schema, lc->doc->root, &e) == 0) return 0;
    /* e.text is "<pointer>: <why>": point at the line of that node. */
    char ptr[160] = "";
    const char *colon = strstr(e.text, ": ");
    size_t n = colon ? (size_t)(colon - e.text) : 0;
    if (n >= sizeof ptr) n = sizeof ptr - 1;
    memcpy(ptr, e.text, n);
    ptr[n] = '\0';
    fm_err_set(lc->err, FM_ERR_INVALID, "%s:%d: %s; fix the signature file and retry", lc->file,
               fm_yaml_line(lc->doc, ptr), e.text);
    return -1;
}

static int load_file(struct fm_diag_db *db, const char *path, const json_t *schema, bool main_file,
                     fm_err *err)
{
    fm_yaml_doc doc;
    if (fm_yaml_load_file(path, &doc, err)) return -1;
    loadctx lc = {db, err, path, &doc};
    int rc = -1;
    if (!json_is_object(doc.root)) {
        bad(&lc, "", "top level must be a mapping", NULL, NULL);
        goto out;
    }
    if (validate(&lc, schema)) goto out;
    if (main_file) {
        const json_t *t = json_object_get(doc.root, "thresholds");
        json_t *v;
        if ((v = json_object_get(t, "act"))) db->act = json_number_value(v);
        if ((v = json_object_get(t, "report"))) db->report = json_number_value(v);
        if ((v = json_object_get(t, "weak_only_cap"))) db->weak_cap = json_number_value(v);
        if ((v = json_object_get(t, "uncorroborated_cap"))) db->uncorr_cap = json_number_value(v);
        const json_t *s = json_object_get(doc.root, "strength");
        if ((v = json_object_get(s, "decisive"))) db->pstrength[ST_DECISIVE] = json_number_value(v);
        if ((v = json_object_get(s, "strong"))) db->pstrength[ST_STRONG] = json_number_value(v);
        if ((v = json_object_get(s, "weak"))) db->pstrength[ST_WEAK] = json_number_value(v);
    }
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(doc.root, "runbooks"), k, v)
    {
        int c = diag_class_index(db, k);
        if (c < 0) {
            bad(&lc, "/runbooks", "unknown fault class '%s'", k, NULL);
            goto out;
        }
        snprintf(db->classes[c].runbook, sizeof db->classes[c].runbook, "%s",
                 json_is_string(v) ? json_string_value(v) : "");
    }
    if (load_xids(&lc, json_object_get(doc.root, "xid"))) goto out;
    if (load_xrecs(&lc, json_object_get(doc.root, "xid_recovery"))) goto out;
    size_t i;
    json_array_foreach(json_object_get(doc.root, "metrics_expected"), i, v)
    {
        char **ne = realloc(db->expected, (size_t)(db->nexpected + 1) * sizeof *ne);
        if (!ne || !(ne[db->nexpected] = strdup(json_string_value(v)))) {
            if (ne) db->expected = ne;
            fm_err_set(err, FM_ERR_NOMEM, "out of memory");
            goto out;
        }
        db->expected = ne;
        db->nexpected++;
    }
    json_array_foreach(json_object_get(doc.root, "signatures"), i, v)
    {
        if (load_sig(&lc, v, i)) goto out;
    }
    json_array_foreach(json_object_get(doc.root, "rules"), i, v)
    {
        if (load_rule(&lc, v, i)) goto out;
    }
    rc = 0;
out:
    fm_yaml_doc_free(&doc);
    return rc;
}

static int cmpstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted *.yaml files of dir (at most MAX_EXTRA_FILES); absent dir: 0. */
static int extra_files(const char *dir, char **names, int *n)
{
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d)) && *n < MAX_EXTRA_FILES) {
        size_t l = strlen(e->d_name);
        if (l < 6 || e->d_name[0] == '.' || strcmp(e->d_name + l - 5, ".yaml") != 0) continue;
        names[*n] = strdup(e->d_name);
        if (names[*n]) (*n)++;
    }
    closedir(d);
    qsort(names, (size_t)*n, sizeof *names, cmpstr);
    return 0;
}

static uint32_t hash3(const unsigned char *p)
{
    uint32_t k = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
    return (k * 2654435761u) >> 16;
}

static int build_index(struct fm_diag_db *db, fm_err *err)
{
    db->bucket = malloc(65536 * sizeof *db->bucket);
    db->text_order = calloc((size_t)db->nsigs + 1, sizeof *db->text_order);
    if (!db->bucket || !db->text_order) return fm_err_set(err, FM_ERR_NOMEM, "out of memory"), -1;
    memset(db->bucket, 0xff, 65536 * sizeof *db->bucket);
    for (int i = 0; i < db->nlits; i++) {
        uint32_t h = hash3((const unsigned char *)db->lits[i].text);
        db->bloom[h >> 3] |= (uint8_t)(1u << (h & 7));
        db->lits[i].next = db->bucket[h];
        db->bucket[h] = i;
    }
    for (int i = 0; i < db->nsigs; i++)
        if (!db->sigs[i].is_metric && strncmp(db->sigs[i].id, "rule:", 5) != 0)
            db->text_order[db->ntext_public++] = i;
    return 0;
}

void fm_diag_thresholds(const struct fm_diag_db *db, double *report, double *act)
{
    *report = db->report;
    *act = db->act;
}

void fm_diag_free(struct fm_diag_db *db)
{
    if (!db) return;
    for (int i = 0; i < db->nsigs; i++) {
        diag_sig *g = &db->sigs[i];
        re_free(&g->re);
        re_free(&g->exclude);
        re_free(&g->also);
        re_free(&g->unless);
        re_free(&g->requires);
        re_free(&g->ctx);
        re_free(&g->ctx_stop);
        re_free(&g->m.name);
        re_free(&g->m.with_name);
        re_free(&g->m.vs_name);
        for (int j = 0; j < g->m.nlabels; j++) {
            free(g->m.label_key[j]);
            re_free(&g->m.label_re[j]);
        }
    }
    for (int i = 0; i < db->nclasses; i++)
        json_decref(db->classes[i].response);
    for (int i = 0; i < db->nlits; i++) {
        free(db->lits[i].text);
        free(db->lits[i].sigs);
    }
    free(db->lits);
    free(db->sigs);
    for (int i = 0; i < db->nrules; i++) {
        re_free(&db->rules[i].reference);
        re_free(&db->rules[i].block);
    }
    free(db->rules);
    free(db->xids);
    free(db->xrecs);
    for (int i = 0; i < db->nexpected; i++)
        free(db->expected[i]);
    free(db->expected);
    free(db->classes);
    free(db->always);
    free(db->bucket);
    free(db->text_order);
    free(db);
}

int fm_diag_load(const char *path, struct fm_diag_db **out, fm_err *err)
{
    *out = NULL;
    const char *stext = fm_embedded_schema_find(SCHEMA_NAME);
    json_t *schema = stext ? json_loads(stext, 0, NULL) : NULL;
    if (!schema)
        return fm_err_set(err, FM_ERR_INTERNAL, "schemas/%s is not embedded; rebuild fleetmcp",
                          SCHEMA_NAME),
               -1;
    struct fm_diag_db *db = calloc(1, sizeof *db);
    if (!db) {
        json_decref(schema);
        return fm_err_set(err, FM_ERR_NOMEM, "out of memory"), -1;
    }
    db->no_jit = RUNNING_ON_VALGRIND || getenv("FLEETMCP_NO_JIT") != NULL;
    db->act = 0.7;
    db->report = 0.5;
    db->weak_cap = 0.55;
    db->uncorr_cap = 0.65;
    db->pstrength[ST_DECISIVE] = 0.95;
    db->pstrength[ST_STRONG] = 0.6;
    db->pstrength[ST_WEAK] = 0.25;
    char dir[512];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    int rc = load_taxonomy(db, dir, err);
    if (rc == 0) rc = load_file(db, path, schema, true, err);
    char ddir[600];
    snprintf(ddir, sizeof ddir, "%s/signatures.d", dir);
    char *names[MAX_EXTRA_FILES];
    int nn = 0;
    if (rc == 0) extra_files(ddir, names, &nn);
    for (int i = 0; i < nn; i++) {
        char p[900];
        snprintf(p, sizeof p, "%s/%s", ddir, names[i]);
        if (rc == 0) rc = load_file(db, p, schema, false, err);
        free(names[i]);
    }
    json_decref(schema);
    if (rc == 0) rc = build_index(db, err);
    if (rc) {
        fm_diag_free(db);
        return -1;
    }
    *out = db;
    return 0;
}

size_t fm_diag_sig_count(const struct fm_diag_db *db)
{
    return (size_t)db->ntext_public;
}

const char *fm_diag_sig_id(const struct fm_diag_db *db, size_t i)
{
    return i < (size_t)db->ntext_public ? db->sigs[db->text_order[i]].id : NULL;
}

json_t *fm_diag_literals(const struct fm_diag_db *db)
{
    json_t *a = json_array();
    for (int i = 0; a && i < db->nlits; i++)
        json_array_append_new(a, json_string(db->lits[i].text));
    return a;
}
