/* Validates JSON against a compiled schema (see fm_schema.h).
 *
 * Two modes share one walk: "quiet" (inside anyOf/oneOf/not/if, where only
 * the verdict matters, so the first failure returns at once) and
 * "reporting", which records "<instance pointer>: <why>" problems until
 * the caller's cap is reached.  Messages name the fix ("must be at most
 * 500"), and anything echoed from the instance is clipped and cleaned. */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema_int.h"

#define CHECK_MAX_DEPTH 256
/* Schema checks per validation.  Nested anyOf/oneOf over recursive $refs
 * can make naive validation exponential; past this budget we stop and call
 * the instance invalid.  Large enough for a 4 MiB config document. */
#define CHECK_MAX_STEPS 2000000UL
#define PTR_TRUNCATED ((size_t)-1)

/* One step of the instance pointer.  Kept unformatted (the key is borrowed
 * from the instance) so a walk that finds nothing wrong never builds a
 * string. */
typedef struct pseg {
    const char *key; /* NULL: an array index */
    size_t len;      /* key length, or the index */
} pseg;

#define MAX_SEGS (CHECK_MAX_DEPTH + 8)
#define PATH_MAX_BYTES 1024

typedef struct vshared {
    pcre2_match_data *md; /* created on first regex use */
    unsigned long steps;
    /* a limit was hit: the verdict is "invalid" whatever a branch said,
     * because inside "not" a forced failure would turn into a pass */
    bool aborted;
    bool abort_reported; /* a problem saying so has been recorded */
} vshared;

typedef struct vctx {
    const fm_schema *s;
    json_t *errors; /* borrowed; NULL: keep only the first problem */
    size_t max, count;
    int quiet;
    unsigned depth;
    struct vshared *sh; /* one per validation, shared by sub-contexts */
    unsigned over;      /* pushes beyond MAX_SEGS */
    size_t nseg;
    pseg segs[MAX_SEGS];
    char first_path[PATH_MAX_BYTES + 8];
    char first_msg[400];
} vctx;

static bool check_node(vctx *c, const fm_snode *n, const json_t *v);

/* --- instance pointer ------------------------------------------------- */

static size_t ptr_push(vctx *c, const char *key, size_t len)
{
    if (c->nseg == MAX_SEGS) {
        c->over++;
        return PTR_TRUNCATED;
    }
    c->segs[c->nseg].key = key;
    c->segs[c->nseg].len = len;
    return c->nseg++;
}

static size_t ptr_push_index(vctx *c, size_t i)
{
    return ptr_push(c, NULL, i);
}

static void ptr_pop(vctx *c, size_t save)
{
    if (save == PTR_TRUNCATED)
        c->over--;
    else
        c->nseg = save;
}

/* The RFC 6901 pointer ("" for the root), control bytes blanked since it
 * goes into messages; a pointer over PATH_MAX_BYTES ends in "/...". */
static void build_ptr(const vctx *c, char *dst)
{
    size_t o = 0;
    bool cut = c->over > 0;
    for (size_t i = 0; i < c->nseg && !cut; i++) {
        const pseg *g = &c->segs[i];
        char num[24];
        const char *k = g->key;
        size_t len = g->len;
        if (!k) {
            size_t v = g->len, n = 0;
            char rev[24];
            do
                rev[n++] = (char)('0' + v % 10);
            while ((v /= 10) && n < sizeof rev);
            for (size_t j = 0; j < n; j++)
                num[j] = rev[n - 1 - j];
            k = num;
            len = n;
        }
        size_t start = o;
        if (o + 1 > PATH_MAX_BYTES)
            cut = true;
        else
            dst[o++] = '/';
        for (size_t j = 0; j < len && !cut; j++) {
            unsigned char ch = (unsigned char)k[j];
            if (o + 2 > PATH_MAX_BYTES) {
                cut = true;
            } else if (ch == '~' || ch == '/') {
                dst[o++] = '~';
                dst[o++] = ch == '~' ? '0' : '1';
            } else {
                dst[o++] = (ch < 0x20 || ch == 0x7f) ? ' ' : (char)ch;
            }
        }
        if (cut) o = start;
    }
    if (cut) {
        memcpy(dst + o, "/...", 4);
        o += 4;
    }
    dst[o] = '\0';
}

/* --- reporting -------------------------------------------------------- */

static bool stop(const vctx *c)
{
    return c->quiet || c->count >= c->max;
}

static bool report(vctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Records one problem at the current pointer.  Always returns false, so a
 * check can say `return report(...)`. */
static bool report(vctx *c, const char *fmt, ...)
{
    if (c->quiet || c->count >= c->max) return false;
    char msg[400];
    char path[PATH_MAX_BYTES + 8];
    if (c->sh->aborted && !c->sh->abort_reported) {
        /* a limit was met where nothing is recorded (under not, anyOf...):
         * whatever failed since is an echo of that, so say what happened */
        c->sh->abort_reported = true;
        snprintf(msg, sizeof msg, "too deeply nested or too complex to validate");
        path[0] = '\0';
    } else {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        build_ptr(c, path);
    }
    if (c->errors) {
        json_t *e = json_pack("{s:s, s:s}", "path", path, "message", msg);
        if (e) json_array_append_new(c->errors, e);
    } else if (c->count == 0) {
        snprintf(c->first_path, sizeof c->first_path, "%s", path);
        snprintf(c->first_msg, sizeof c->first_msg, "%s", msg);
    }
    c->count++;
    return false;
}

static void put(char *dst, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* snprintf for messages that may be cut short on purpose (bounded echoes) */
static void put(char *dst, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, cap, fmt, ap);
    va_end(ap);
}

/* Called after reporting why a limit stopped the check: from here on no
 * verdict can be trusted (a forced failure under "not" is a pass), so the
 * whole validation fails. */
static void abort_here(vctx *c)
{
    c->sh->aborted = true;
    if (!c->quiet) c->sh->abort_reported = true;
}

/* Echo of untrusted text: at most 64 bytes (cut on a UTF-8 boundary),
 * control bytes blanked, quotes kept visible. */
static void clip(char *dst, size_t cap, const char *s, size_t len)
{
    size_t n = len > 64 ? 64 : len;
    while (n < len && n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    if (n + 4 > cap) n = cap > 4 ? cap - 4 : 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        dst[o++] = (ch < 0x20 || ch == 0x7f) ? ' ' : (char)ch;
    }
    if (n < len) {
        memcpy(dst + o, "...", 3);
        o += 3;
    }
    dst[o] = '\0';
}

/* A number as JSON would print it, shortest form that reads back exactly. */
static void fmt_num(char *dst, size_t cap, const json_t *v)
{
    if (json_is_integer(v)) {
        snprintf(dst, cap, "%lld", (long long)json_integer_value(v));
        return;
    }
    double d = json_real_value(v);
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(dst, cap, "%.*g", prec, d);
        if (strtod(dst, NULL) == d) return;
    }
}

/* Compact JSON of a schema value (enum, const), clipped to 200 bytes. */
static void fmt_json(char *dst, size_t cap, const json_t *v)
{
    char *s = json_dumps(v, JSON_ENCODE_ANY);
    if (!s) {
        snprintf(dst, cap, "(value)");
        return;
    }
    size_t len = strlen(s), n = len > 200 ? 200 : len;
    while (n < len && n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    snprintf(dst, cap, "%.*s%s", (int)n, s, n < len ? "..." : "");
    free(s);
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    case JSON_NULL:
        return "null";
    }
    return "unknown";
}

static void fmt_types(char *dst, size_t cap, unsigned types)
{
    static const char *const names[] = {"null",   "boolean", "object", "array",
                                        "number", "integer", "string"};
    size_t total = 0, seen = 0, o = 0;
    for (unsigned b = 0; b < 7; b++)
        total += (types >> b) & 1;
    dst[0] = '\0';
    for (unsigned b = 0; b < 7; b++) {
        if (!((types >> b) & 1)) continue;
        seen++;
        const char *sep = seen == 1 ? "" : seen == total ? " or " : ", ";
        int w = snprintf(dst + o, cap - o, "%s%s", sep, names[b]);
        if (w < 0 || (size_t)w >= cap - o) return;
        o += (size_t)w;
    }
}

static const char *plural(long long n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

/* --- keyword checks --------------------------------------------------- */

static bool type_ok(unsigned types, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_NULL:
        return types & FM_ST_NULL;
    case JSON_TRUE:
    case JSON_FALSE:
        return types & FM_ST_BOOLEAN;
    case JSON_OBJECT:
        return types & FM_ST_OBJECT;
    case JSON_ARRAY:
        return types & FM_ST_ARRAY;
    case JSON_STRING:
        return types & FM_ST_STRING;
    case JSON_INTEGER:
        return types & (FM_ST_NUMBER | FM_ST_INTEGER);
    case JSON_REAL:
        return (types & FM_ST_NUMBER) || ((types & FM_ST_INTEGER) && fm_schema_is_integral(v));
    }
    return false;
}

/* 1 match, 0 no match, -1 could not match (limits, memory). */
static int re_match(vctx *c, const fm_regex *re, const char *s, size_t len)
{
    if (!c->sh->md) {
        c->sh->md = pcre2_match_data_create(1, NULL);
        if (!c->sh->md) return -1;
    }
    int rc = pcre2_match(re->code, (PCRE2_SPTR)s, len, 0, 0, c->sh->md, c->s->mctx);
    if (rc >= 0) return 1;
    return rc == PCRE2_ERROR_NOMATCH ? 0 : -1;
}

static const fm_sprop *find_prop(const fm_snode *n, const char *k, size_t klen)
{
    size_t lo = 0, hi = n->nprops;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const fm_sprop *p = &n->props[mid];
        size_t m = p->len < klen ? p->len : klen;
        int r = memcmp(k, p->name, m);
        if (!r) r = (klen > p->len) - (klen < p->len);
        if (!r) return p;
        if (r < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* "a, b, c" from the declared property names (sorted), clipped. */
static void fmt_allowed(char *dst, size_t cap, const fm_snode *n)
{
    size_t o = 0;
    dst[0] = '\0';
    for (size_t i = 0; i < n->nprops; i++) {
        char name[80];
        clip(name, sizeof name, n->props[i].name, n->props[i].len);
        int w = snprintf(dst + o, cap - o, "%s%s", i ? ", " : "", name);
        if (w < 0 || (size_t)w >= cap - o || o > 200) {
            memcpy(dst + (o + 6 <= cap ? o : cap - 6), ", ...", 6);
            return;
        }
        o += (size_t)w;
    }
    if (n->npatterns) {
        const char *re = n->patterns[0].re->src;
        char shown[80];
        clip(shown, sizeof shown, re, strlen(re));
        snprintf(dst + o, cap - o, "%snames matching /%s/%s", o ? ", " : "", shown,
                 n->npatterns > 1 ? " and other patterns" : "");
    }
}

/* Message helpers are kept out of line so that their buffers are not part
 * of every recursive check frame (deep instances recurse CHECK_MAX_DEPTH
 * times). */
#define COLD __attribute__((noinline, cold))

static COLD bool report_unknown(vctx *c, const fm_snode *n, const char *k, size_t klen)
{
    char name[80], allowed[300];
    clip(name, sizeof name, k, klen);
    fmt_allowed(allowed, sizeof allowed, n);
    return *allowed ? report(c, "unknown property '%s' (allowed: %s)", name, allowed)
                    : report(c, "unknown property '%s' (no properties allowed)", name);
}

static bool check_object(vctx *c, const fm_snode *n, const json_t *v)
{
    bool ok = true;
    long long size = (long long)json_object_size(v);
    if (n->min_props >= 0 && size < n->min_props) {
        ok = report(c, "must have at least %lld %s", n->min_props,
                    plural(n->min_props, "property", "properties"));
        if (stop(c)) return false;
    }
    if (n->max_props >= 0 && size > n->max_props) {
        ok = report(c, "must have at most %lld %s", n->max_props,
                    plural(n->max_props, "property", "properties"));
        if (stop(c)) return false;
    }
    for (size_t i = 0; i < n->nrequired; i++) {
        if (json_object_get(v, n->required[i])) continue;
        size_t save = ptr_push(c, n->required[i], strlen(n->required[i]));
        ok = report(c, "required property missing");
        ptr_pop(c, save);
        if (stop(c)) return false;
    }
    if (!n->nprops && !n->npatterns && !n->additional) return ok;

    const char *k;
    size_t klen;
    json_t *m;
    json_object_keylen_foreach((json_t *)v, k, klen, m)
    {
        bool matched = false;
        const fm_sprop *p = n->nprops ? find_prop(n, k, klen) : NULL;
        if (p) {
            matched = true;
            size_t save = ptr_push(c, k, klen);
            bool r = check_node(c, p->node, m);
            ptr_pop(c, save);
            if (!r) {
                ok = false;
                if (stop(c)) return false;
            }
        }
        for (size_t i = 0; i < n->npatterns; i++) {
            int mr = re_match(c, n->patterns[i].re, k, klen);
            size_t save = ptr_push(c, k, klen);
            bool r = true;
            if (mr < 0) {
                r = report(c,
                           "property name could not be matched against /%s/ "
                           "(regex limit); use a simpler name",
                           n->patterns[i].re->src);
                abort_here(c);
            } else if (mr) {
                r = check_node(c, n->patterns[i].node, m);
            }
            ptr_pop(c, save);
            if (mr) matched = true;
            if (!r) {
                ok = false;
                if (stop(c)) return false;
            }
        }
        if (matched || !n->additional) continue;
        bool r;
        if (n->additional->is_bool && !n->additional->always_ok) {
            r = report_unknown(c, n, k, klen);
        } else {
            size_t save = ptr_push(c, k, klen);
            r = check_node(c, n->additional, m);
            ptr_pop(c, save);
        }
        if (!r) {
            ok = false;
            if (stop(c)) return false;
        }
    }
    return ok;
}

typedef struct hashed {
    unsigned long long h;
    size_t i;
} hashed;

static int hashed_cmp(const void *a, const void *b)
{
    const hashed *x = a, *y = b;
    if (x->h != y->h) return x->h < y->h ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

static bool dup_scan(const json_t *v, size_t *first, size_t *second)
{
    size_t n = json_array_size(v);
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (fm_schema_json_equal(json_array_get(v, i), json_array_get(v, j))) {
                *first = i;
                *second = j;
                return true;
            }
    return false;
}

/* Finds two equal items.  Large arrays are sorted by hash so that only
 * items with equal hashes are compared: O(n log n), not O(n^2). */
static bool find_duplicate(const json_t *v, size_t *first, size_t *second)
{
    size_t n = json_array_size(v);
    if (n <= 16) return dup_scan(v, first, second);
    hashed *t = malloc(n * sizeof *t);
    if (!t) return dup_scan(v, first, second);
    for (size_t i = 0; i < n; i++) {
        t[i].h = fm_schema_json_hash(json_array_get(v, i));
        t[i].i = i;
    }
    qsort(t, n, sizeof *t, hashed_cmp);
    bool found = false;
    for (size_t a = 0; a < n && !found; a++)
        for (size_t b = a + 1; b < n && t[b].h == t[a].h; b++)
            if (fm_schema_json_equal(json_array_get(v, t[a].i), json_array_get(v, t[b].i))) {
                /* sorted by index within a hash run, so a < b */
                *first = t[a].i;
                *second = t[b].i;
                found = true;
                break;
            }
    free(t);
    return found;
}

static bool check_array(vctx *c, const fm_snode *n, const json_t *v)
{
    bool ok = true;
    size_t size = json_array_size(v);
    if (n->min_items >= 0 && (long long)size < n->min_items) {
        ok = report(c, "must have at least %lld %s", n->min_items,
                    plural(n->min_items, "item", "items"));
        if (stop(c)) return false;
    }
    if (n->max_items >= 0 && (long long)size > n->max_items) {
        ok = report(c, "must have at most %lld %s", n->max_items,
                    plural(n->max_items, "item", "items"));
        if (stop(c)) return false;
    }
    size_t a, b;
    if (n->unique && find_duplicate(v, &a, &b)) {
        ok = report(c, "items %zu and %zu are equal; items must be unique", a, b);
        if (stop(c)) return false;
    }
    for (size_t i = 0; i < size; i++) {
        const fm_snode *item = i < n->nprefix ? n->prefix[i] : n->items;
        if (!item) {
            if (i >= n->nprefix) break;
            continue;
        }
        bool r;
        if (i >= n->nprefix && item->is_bool && !item->always_ok) {
            /* "items": false after prefixItems: a length limit, said as one */
            r = n->nprefix ? report(c, "must have at most %zu %s", n->nprefix,
                                    plural((long long)n->nprefix, "item", "items"))
                           : report(c, "must be an empty array");
            ok = false;
            if (stop(c)) return false;
            break;
        }
        size_t save = ptr_push_index(c, i);
        r = check_node(c, item, json_array_get(v, i));
        ptr_pop(c, save);
        if (!r) {
            ok = false;
            if (stop(c)) return false;
        }
    }
    return ok;
}

static size_t utf8_len(const char *s, size_t n)
{
    size_t cps = 0;
    for (size_t i = 0; i < n; i++)
        cps += ((unsigned char)s[i] & 0xC0) != 0x80;
    return cps;
}

static COLD bool report_pattern(vctx *c, const fm_regex *re, int mr)
{
    char shown[80];
    clip(shown, sizeof shown, re->src, strlen(re->src));
    return mr < 0 ? report(c, "could not be matched against pattern /%s/ (regex limit)", shown)
                  : report(c, "must match pattern /%s/", shown);
}

static bool check_string(vctx *c, const fm_snode *n, const json_t *v)
{
    bool ok = true;
    const char *s = json_string_value(v);
    size_t bytes = json_string_length(v);
    if (n->min_len >= 0 || n->max_len >= 0) {
        /* code points, not bytes; a byte count bounds them from above */
        long long cps = (n->max_len >= 0 && (long long)bytes <= n->max_len && n->min_len <= 0)
                            ? 0
                            : (long long)utf8_len(s, bytes);
        if (n->min_len >= 0 && cps < n->min_len) {
            ok = report(c, "must be at least %lld %s long", n->min_len,
                        plural(n->min_len, "character", "characters"));
            if (stop(c)) return false;
        }
        if (n->max_len >= 0 && cps > n->max_len) {
            ok = report(c, "must be at most %lld %s long", n->max_len,
                        plural(n->max_len, "character", "characters"));
            if (stop(c)) return false;
        }
    }
    if (n->pattern) {
        int mr = re_match(c, n->pattern, s, bytes);
        if (mr <= 0) {
            ok = report_pattern(c, n->pattern, mr);
            if (mr < 0) abort_here(c);
            if (stop(c)) return false;
        }
    }
    return ok;
}

static bool is_multiple(const json_t *v, const json_t *m)
{
    if (json_is_integer(v) && json_is_integer(m))
        return json_integer_value(v) % json_integer_value(m) == 0;
    double x = json_number_value(v), d = json_number_value(m);
    double q = x / d;
    if (!isfinite(q)) return false;
    /* x / d carries a rounding error of about one ulp of q (0.0075 / 0.0001
     * is 75.00000000000001): accept an integer quotient within a few ulps */
    return fabs(q - rint(q)) <= 4 * DBL_EPSILON * fmax(1.0, fabs(q));
}

/* "must be at least 1": prefix, then the keyword's value as JSON prints it */
static COLD bool report_num(vctx *c, const char *prefix, const json_t *limit)
{
    char num[40];
    fmt_num(num, sizeof num, limit);
    return report(c, "%s %s", prefix, num);
}

static bool check_number(vctx *c, const fm_snode *n, const json_t *v)
{
    bool ok = true;
    if (n->minimum && fm_schema_num_cmp(v, n->minimum) < 0) {
        ok = report_num(c, "must be at least", n->minimum);
        if (stop(c)) return false;
    }
    if (n->maximum && fm_schema_num_cmp(v, n->maximum) > 0) {
        ok = report_num(c, "must be at most", n->maximum);
        if (stop(c)) return false;
    }
    if (n->ex_minimum && fm_schema_num_cmp(v, n->ex_minimum) <= 0) {
        ok = report_num(c, "must be greater than", n->ex_minimum);
        if (stop(c)) return false;
    }
    if (n->ex_maximum && fm_schema_num_cmp(v, n->ex_maximum) >= 0) {
        ok = report_num(c, "must be less than", n->ex_maximum);
        if (stop(c)) return false;
    }
    if (n->multiple_of && !is_multiple(v, n->multiple_of)) {
        ok = report_num(c, "must be a multiple of", n->multiple_of);
        if (stop(c)) return false;
    }
    return ok;
}

/* Verdict only: no problems recorded. */
static bool passes(vctx *c, const fm_snode *n, const json_t *v)
{
    c->quiet++;
    bool r = check_node(c, n, v);
    c->quiet--;
    return r;
}

/* Why branch n fails, as "msg" or "/deeper/ptr: msg", for anyOf/oneOf
 * messages.  Runs only on the failure path. */
static void why_fails(vctx *c, const fm_snode *n, const json_t *v, char *dst, size_t cap)
{
    vctx *sub = calloc(1, sizeof *sub);
    if (!sub) {
        snprintf(dst, cap, "does not match");
        return;
    }
    sub->s = c->s;
    sub->max = 1;
    sub->sh = c->sh;
    sub->depth = c->depth;
    sub->over = c->over;
    sub->nseg = c->nseg;
    memcpy(sub->segs, c->segs, c->nseg * sizeof *c->segs);
    check_node(sub, n, v);
    char here[PATH_MAX_BYTES + 8];
    build_ptr(c, here);
    if (!sub->count)
        put(dst, cap, "does not match");
    else if (!strcmp(sub->first_path, here))
        put(dst, cap, "%s", sub->first_msg);
    else
        put(dst, cap, "%s: %s", sub->first_path, sub->first_msg);
    free(sub);
}

/* "[0] must be string; [1] /a: required property missing" */
static void why_none(vctx *c, fm_snode *const *branches, size_t nb, const json_t *v, char *dst,
                     size_t cap)
{
    size_t o = 0;
    dst[0] = '\0';
    for (size_t i = 0; i < nb && o < cap; i++) {
        char why[200];
        if (i == 4) {
            snprintf(dst + o, cap - o, "; ...");
            return;
        }
        why_fails(c, branches[i], v, why, sizeof why);
        int w = snprintf(dst + o, cap - o, "%s[%zu] %s", i ? "; " : "", i, why);
        if (w < 0) return;
        o += (size_t)w;
    }
}

static COLD bool report_none(vctx *c, const char *prefix, fm_snode *const *branches, size_t nb,
                             const json_t *v)
{
    char why[320];
    why_none(c, branches, nb, v, why, sizeof why);
    return report(c, "%s %s", prefix, why);
}

static bool check_applicators(vctx *c, const fm_snode *n, const json_t *v)
{
    bool ok = true;
    for (size_t i = 0; i < n->nall; i++) {
        if (!check_node(c, n->all_of[i], v)) {
            ok = false;
            if (stop(c)) return false;
        }
    }
    if (n->nany) {
        bool any = false;
        for (size_t i = 0; i < n->nany && !any; i++)
            any = passes(c, n->any_of[i], v);
        if (!any) {
            if (c->quiet) return false;
            ok = report_none(c, "must match at least one anyOf schema:", n->any_of, n->nany, v);
            if (stop(c)) return false;
        }
    }
    if (n->none) {
        size_t hits = 0, first = 0, second = 0;
        for (size_t i = 0; i < n->none && hits < 2; i++) {
            if (!passes(c, n->one_of[i], v)) continue;
            if (hits++)
                second = i;
            else
                first = i;
        }
        if (hits != 1) {
            if (c->quiet) return false;
            if (hits == 0) {
                ok = report_none(c, "must match exactly one oneOf schema, matches none:", n->one_of,
                                 n->none, v);
            } else {
                ok = report(c, "must match exactly one oneOf schema, matches [%zu] and [%zu]",
                            first, second);
            }
            if (stop(c)) return false;
        }
    }
    if (n->not_ && passes(c, n->not_, v)) {
        ok = report(c, "must not match the schema in 'not'");
        if (stop(c)) return false;
    }
    if (n->if_ && (n->then_ || n->else_)) {
        const fm_snode *branch = passes(c, n->if_, v) ? n->then_ : n->else_;
        if (branch && !check_node(c, branch, v)) {
            ok = false;
            if (stop(c)) return false;
        }
    }
    return ok;
}

static COLD bool report_type(vctx *c, unsigned types, const json_t *v)
{
    char want[80];
    fmt_types(want, sizeof want, types);
    return report(c, "must be %s, got %s", want, type_name(v));
}

static COLD bool report_json(vctx *c, const char *prefix, const json_t *value)
{
    char shown[240];
    fmt_json(shown, sizeof shown, value);
    return report(c, "%s %s", prefix, shown);
}

static bool check_keywords(vctx *c, const fm_snode *n, const json_t *v)
{
    if (n->is_bool) return n->always_ok ? true : report(c, "is not allowed here");
    bool ok = true;
    if (n->ref && !check_node(c, n->ref, v)) {
        ok = false;
        if (stop(c)) return false;
    }
    if (n->types && !type_ok(n->types, v)) {
        /* other keywords would only repeat the point */
        return report_type(c, n->types, v);
    }
    if (n->has_const && !fm_schema_json_equal(n->const_val, v)) {
        ok = report_json(c, "must be", n->const_val);
        if (stop(c)) return false;
    }
    if (n->enum_vals) {
        bool found = false;
        for (size_t i = 0; i < json_array_size(n->enum_vals) && !found; i++)
            found = fm_schema_json_equal(json_array_get(n->enum_vals, i), v);
        if (!found) {
            ok = report_json(c, "must be one of", n->enum_vals);
            if (stop(c)) return false;
        }
    }
    bool r = true;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        r = check_object(c, n, v);
        break;
    case JSON_ARRAY:
        r = check_array(c, n, v);
        break;
    case JSON_STRING:
        r = check_string(c, n, v);
        break;
    case JSON_INTEGER:
    case JSON_REAL:
        r = check_number(c, n, v);
        break;
    case JSON_TRUE:
    case JSON_FALSE:
    case JSON_NULL:
        break;
    }
    if (!r) {
        ok = false;
        if (stop(c)) return false;
    }
    if (!check_applicators(c, n, v)) ok = false;
    return ok;
}

static bool check_node(vctx *c, const fm_snode *n, const json_t *v)
{
    /* a $ref cycle that consumes no instance ({"$ref": "#"}) would recurse
     * forever; so would a hostile, very deep instance: fail closed */
    if (c->sh->aborted && c->depth) return false;
    if (c->depth >= CHECK_MAX_DEPTH) {
        report(c, "nested too deeply to validate");
        abort_here(c);
        return false;
    }
    if (++c->sh->steps > CHECK_MAX_STEPS) {
        report(c, "too complex to validate (over %lu schema checks)", CHECK_MAX_STEPS);
        abort_here(c);
        return false;
    }
    c->depth++;
    bool ok = check_keywords(c, n, v);
    c->depth--;
    return ok;
}

/* --- entry points ----------------------------------------------------- */

/* The match data a run leaves for the next one on this thread: PCRE2
 * keeps its backtracking frames in it (20 KiB at first), so a new one per
 * run was a malloc and free of that size per validated call, and glibc
 * consolidated its fast bins for each.  A run takes it (a run inside a
 * run makes its own) and gives it back. */
static _Thread_local pcre2_match_data *kept_md;

static size_t run(const fm_schema *s, const json_t *instance, json_t *errors, size_t max,
                  char *path, size_t pathcap, char *msg, size_t msgcap)
{
    vshared sh = {.md = kept_md};
    kept_md = NULL;
    vctx ctx, *c = &ctx; /* ~7 KiB of stack, no allocation on the hot path */
    c->s = s;
    c->errors = errors;
    c->max = max;
    c->count = 0;
    c->quiet = 0;
    c->depth = 0;
    c->sh = &sh;
    c->over = 0;
    c->nseg = 0;
    c->first_path[0] = c->first_msg[0] = '\0';
    if (!instance)
        report(c, "no value given");
    else
        check_node(c, s->top, instance);
    if (sh.aborted && !sh.abort_reported) {
        /* the limit was met where problems are not recorded (anyOf, not...);
         * report() puts the limit's own message in place of this text */
        c->quiet = 0;
        report(c, "limit reached");
    }
    size_t n = c->count;
    if (n && path) {
        snprintf(path, pathcap, "%s", c->first_path);
        snprintf(msg, msgcap, "%s", c->first_msg);
    }
    if (kept_md)
        pcre2_match_data_free(sh.md);
    else
        kept_md = sh.md;
    return n;
}

int fm_schema_check(const fm_schema *schema, const json_t *instance, fm_err *err)
{
    char path[PATH_MAX_BYTES + 8], msg[400];
    if (!schema) return fm_err_set(err, FM_ERR_INTERNAL, "(schema) no schema given"), -1;
    if (!run(schema, instance, NULL, 1, path, sizeof path, msg, sizeof msg)) return 0;
    fm_err_set(err, FM_ERR_INVALID, "%s: %s", *path ? path : "(root)", msg);
    return -1;
}

size_t fm_schema_check_all(const fm_schema *schema, const json_t *instance, json_t *errors,
                           size_t max)
{
    if (!schema || !json_is_array(errors) || !max) return 0;
    return run(schema, instance, errors, max, NULL, 0, NULL, 0);
}

int fm_schema_validate(const json_t *schema, const json_t *instance, fm_err *err)
{
    fm_err cerr = {0};
    fm_schema *s = fm_schema_compile(schema, &cerr);
    if (!s) {
        /* our schemas are part of the program: a bad one is a bug */
        fm_err_set(err, FM_ERR_INTERNAL, "%s", cerr.text);
        return -1;
    }
    int rc = fm_schema_check(s, instance, err);
    fm_schema_free(s);
    return rc;
}

size_t fm_schema_validate_all(const json_t *schema, const json_t *instance, json_t *errors,
                              size_t max)
{
    if (!json_is_array(errors) || !max) return 0;
    fm_err cerr = {0};
    fm_schema *s = fm_schema_compile(schema, &cerr);
    if (!s) {
        json_array_append_new(errors, json_pack("{s:s, s:s}", "path", "", "message", cerr.text));
        return 1;
    }
    size_t n = fm_schema_check_all(s, instance, errors, max);
    fm_schema_free(s);
    return n;
}
