/* Compiles a JSON Schema (the subset in fm_schema.h) into fm_snode graphs.
 *
 * Everything that can be wrong with a schema is found here, once, with the
 * schema pointer of the culprit, so validation itself cannot meet a
 * malformed keyword.  Keywords we cannot honour are refused rather than
 * ignored: a tool schema that says "contains" must not silently accept
 * everything. */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema_int.h"

#define COMPILE_MAX_DEPTH 128

typedef struct comp {
    fm_schema *s;
    fm_err *err;
    int depth;
    size_t splen;
    char sp[512]; /* schema pointer of the keyword being compiled */
} comp;

static const char *const refused[] = {
    "contains",
    "minContains",
    "maxContains",
    "propertyNames",
    "dependentRequired",
    "dependentSchemas",
    "dependencies",
    "additionalItems",
    "unevaluatedItems",
    "unevaluatedProperties",
    "$dynamicRef",
    "$recursiveRef",
    NULL,
};

static fm_snode *compile_node(comp *c, const json_t *j);

static fm_snode *bad(comp *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static fm_snode *bad(comp *c, const char *fmt, ...)
{
    char why[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    fm_err_set(c->err, FM_ERR_INVALID, "(schema) %s: %s", c->splen ? c->sp : "(root)", why);
    return NULL;
}

/* Appends an escaped segment; a pointer too long for the buffer ends in
 * "..." (only messages use it). */
static size_t sp_push(comp *c, const char *seg)
{
    size_t save = c->splen;
    char tmp[sizeof c->sp];
    size_t n = 0;
    tmp[n++] = '/';
    for (; *seg && n < sizeof tmp - 3; seg++) {
        if (*seg == '~' || *seg == '/') {
            tmp[n++] = '~';
            tmp[n++] = *seg == '~' ? '0' : '1';
        } else {
            tmp[n++] = *seg;
        }
    }
    if (c->splen + n + 4 >= sizeof c->sp) {
        if (c->splen + 4 < sizeof c->sp) {
            memcpy(c->sp + c->splen, "...", 4);
            c->splen += 3;
        }
        return save;
    }
    memcpy(c->sp + c->splen, tmp, n);
    c->splen += n;
    c->sp[c->splen] = '\0';
    return save;
}

static void sp_pop(comp *c, size_t save)
{
    c->splen = save;
    c->sp[save] = '\0';
}

static size_t sp_push_index(comp *c, size_t i)
{
    char b[32];
    snprintf(b, sizeof b, "%zu", i);
    return sp_push(c, b);
}

static fm_snode *find_node(const fm_schema *s, const json_t *j)
{
    for (size_t i = 0; i < s->nnodes; i++)
        if (s->nodes[i]->json == j) return s->nodes[i];
    return NULL;
}

static fm_snode *new_node(comp *c, const json_t *j)
{
    fm_schema *s = c->s;
    if (s->nnodes == s->capnodes) {
        size_t cap = s->capnodes ? s->capnodes * 2 : 16;
        fm_snode **n = realloc(s->nodes, cap * sizeof *n);
        if (!n) return NULL;
        s->nodes = n;
        s->capnodes = cap;
    }
    fm_snode *node = calloc(1, sizeof *node);
    if (!node) return NULL;
    node->json = j;
    node->min_props = node->max_props = -1;
    node->min_items = node->max_items = -1;
    node->min_len = node->max_len = -1;
    s->nodes[s->nnodes++] = node;
    return node;
}

static const fm_regex *get_regex(comp *c, const char *src)
{
    fm_schema *s = c->s;
    for (size_t i = 0; i < s->nregexes; i++)
        if (!strcmp(s->regexes[i]->src, src)) return s->regexes[i];
    int ec;
    PCRE2_SIZE off;
    /* ECMA-262 flavour where PCRE2 can give it: $ only at the very end,
     * \uXXXX escapes; no UCP, so \d and \w stay ASCII as in ECMA. */
    pcre2_code *code =
        pcre2_compile((PCRE2_SPTR)src, PCRE2_ZERO_TERMINATED,
                      PCRE2_UTF | PCRE2_DOLLAR_ENDONLY | PCRE2_ALT_BSUX, &ec, &off, NULL);
    if (!code) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(ec, msg, sizeof msg);
        bad(c, "bad regex at offset %zu: %s", (size_t)off, (const char *)msg);
        return NULL;
    }
    /* no JIT: on fleetmcp's short names and ids it measured no faster,
     * and it needs executable memory and upsets valgrind */
    if (s->nregexes == s->capregexes) {
        size_t cap = s->capregexes ? s->capregexes * 2 : 4;
        fm_regex **r = realloc(s->regexes, cap * sizeof *r);
        if (!r) {
            pcre2_code_free(code);
            bad(c, "out of memory");
            return NULL;
        }
        s->regexes = r;
        s->capregexes = cap;
    }
    fm_regex *re = calloc(1, sizeof *re);
    if (re) re->src = strdup(src);
    if (!re || !re->src) {
        if (re) free(re);
        pcre2_code_free(code);
        bad(c, "out of memory");
        return NULL;
    }
    re->code = code;
    s->regexes[s->nregexes++] = re;
    return re;
}

/* Non-negative integer keyword (1.0 counts, as JSON Schema says). */
static int get_count(comp *c, const json_t *v, long long *out)
{
    if (!fm_schema_is_integral(v)) {
        bad(c, "must be a non-negative integer");
        return -1;
    }
    double d = json_is_integer(v) ? (double)json_integer_value(v) : json_real_value(v);
    if (d < 0) {
        bad(c, "must be a non-negative integer");
        return -1;
    }
    *out = json_is_integer(v) ? json_integer_value(v) : d >= 9.2e18 ? LLONG_MAX : (long long)d;
    return 0;
}

static int get_number(comp *c, const json_t *v, const json_t **out)
{
    if (!json_is_number(v)) {
        bad(c, "must be a number");
        return -1;
    }
    *out = v;
    return 0;
}

static int get_types(comp *c, const json_t *v, unsigned *out)
{
    static const struct {
        const char *name;
        unsigned bit;
    } names[] = {{"null", FM_ST_NULL},    {"boolean", FM_ST_BOOLEAN}, {"object", FM_ST_OBJECT},
                 {"array", FM_ST_ARRAY},  {"number", FM_ST_NUMBER},   {"integer", FM_ST_INTEGER},
                 {"string", FM_ST_STRING}};
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    if (!json_is_array(v) && !json_is_string(v)) {
        bad(c, "must be a type name or an array of them");
        return -1;
    }
    if (json_is_array(v) && n == 0) {
        bad(c, "must not be an empty array");
        return -1;
    }
    *out = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *t = json_is_array(v) ? json_array_get(v, i) : v;
        const char *name = json_string_value(t);
        unsigned bit = 0;
        for (size_t k = 0; name && k < sizeof names / sizeof *names; k++)
            if (!strcmp(name, names[k].name)) bit = names[k].bit;
        if (!bit) {
            bad(c, "unknown type (use null, boolean, object, array, number, integer, string)");
            return -1;
        }
        *out |= bit;
    }
    return 0;
}

/* A non-empty array of schemas. */
static int get_schema_array(comp *c, const json_t *v, fm_snode ***out, size_t *n)
{
    if (!json_is_array(v) || json_array_size(v) == 0) {
        bad(c, "must be a non-empty array of schemas");
        return -1;
    }
    *n = json_array_size(v);
    *out = calloc(*n, sizeof **out);
    if (!*out) {
        bad(c, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < *n; i++) {
        size_t save = sp_push_index(c, i);
        (*out)[i] = compile_node(c, json_array_get(v, i));
        sp_pop(c, save);
        if (!(*out)[i]) return -1;
    }
    return 0;
}

static int prop_cmp(const void *a, const void *b)
{
    const fm_sprop *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int r = memcmp(x->name, y->name, n);
    return r ? r : (x->len > y->len) - (x->len < y->len);
}

static int get_properties(comp *c, fm_snode *node, const json_t *v)
{
    if (!json_is_object(v)) {
        bad(c, "must be an object of schemas");
        return -1;
    }
    node->nprops = json_object_size(v);
    node->props = calloc(node->nprops ? node->nprops : 1, sizeof *node->props);
    if (!node->props) {
        bad(c, "out of memory");
        return -1;
    }
    size_t i = 0;
    const char *k;
    size_t klen;
    json_t *sub;
    json_object_keylen_foreach((json_t *)v, k, klen, sub)
    {
        size_t save = sp_push(c, k);
        fm_snode *n = compile_node(c, sub);
        sp_pop(c, save);
        if (!n) return -1;
        node->props[i].name = k;
        node->props[i].len = klen;
        node->props[i].node = n;
        i++;
    }
    qsort(node->props, node->nprops, sizeof *node->props, prop_cmp);
    return 0;
}

static int get_patterns(comp *c, fm_snode *node, const json_t *v)
{
    if (!json_is_object(v)) {
        bad(c, "must be an object of schemas keyed by regex");
        return -1;
    }
    node->npatterns = json_object_size(v);
    node->patterns = calloc(node->npatterns ? node->npatterns : 1, sizeof *node->patterns);
    if (!node->patterns) {
        bad(c, "out of memory");
        return -1;
    }
    size_t i = 0;
    const char *k;
    json_t *sub;
    json_object_foreach((json_t *)v, k, sub)
    {
        size_t save = sp_push(c, k);
        const fm_regex *re = get_regex(c, k);
        fm_snode *n = re ? compile_node(c, sub) : NULL;
        sp_pop(c, save);
        if (!n) return -1;
        node->patterns[i].re = re;
        node->patterns[i].node = n;
        i++;
    }
    return 0;
}

static int get_required(comp *c, fm_snode *node, const json_t *v)
{
    if (!json_is_array(v)) {
        bad(c, "must be an array of property names");
        return -1;
    }
    node->nrequired = json_array_size(v);
    node->required = calloc(node->nrequired ? node->nrequired : 1, sizeof *node->required);
    if (!node->required) {
        bad(c, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < node->nrequired; i++) {
        const json_t *name = json_array_get(v, i);
        if (!json_is_string(name) || strlen(json_string_value(name)) != json_string_length(name)) {
            bad(c, "must be an array of property names");
            return -1;
        }
        node->required[i] = json_string_value(name);
    }
    return 0;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Resolves "#" or "#/json/pointer" (URI fragment: percent-decoded first)
 * inside the root schema. */
static const json_t *resolve_ref(comp *c, const char *ref)
{
    if (ref[0] != '#') {
        bad(c, "only local references ('#' or '#/<pointer>') are supported");
        return NULL;
    }
    char buf[512];
    size_t n = 0;
    for (const char *p = ref + 1; *p; p++) {
        if (n + 1 >= sizeof buf) {
            bad(c, "reference too long");
            return NULL;
        }
        if (*p == '%') {
            int hi = hexval(p[1]), lo = hi >= 0 ? hexval(p[2]) : -1;
            if (lo < 0) {
                bad(c, "bad percent-escape in reference");
                return NULL;
            }
            buf[n++] = (char)(hi * 16 + lo);
            p += 2;
        } else {
            buf[n++] = *p;
        }
    }
    buf[n] = '\0';
    if (memchr(buf, '\0', n)) {
        bad(c, "reference contains a NUL byte");
        return NULL;
    }
    const json_t *cur = c->s->root;
    if (n == 0) return cur;
    if (buf[0] != '/') {
        bad(c, "anchors ('#name') are not supported; use '#/<pointer>'");
        return NULL;
    }
    char *seg = buf + 1;
    for (;;) {
        char *end = strchr(seg, '/');
        if (end) *end = '\0';
        /* unescape ~1 and ~0 in place */
        char *w = seg;
        for (char *r = seg; *r; r++) {
            if (*r == '~') {
                if (r[1] == '0')
                    *w++ = '~';
                else if (r[1] == '1')
                    *w++ = '/';
                else {
                    bad(c, "bad '~' escape in reference");
                    return NULL;
                }
                r++;
            } else {
                *w++ = *r;
            }
        }
        *w = '\0';
        if (json_is_object(cur)) {
            cur = json_object_get(cur, seg);
        } else if (json_is_array(cur)) {
            char *e;
            unsigned long idx = strtoul(seg, &e, 10);
            bool ok = *seg >= '0' && *seg <= '9' && !*e && (seg[0] != '0' || !seg[1]);
            cur = ok ? json_array_get(cur, idx) : NULL;
        } else {
            cur = NULL;
        }
        if (!cur) {
            bad(c, "reference does not resolve");
            return NULL;
        }
        if (!end) break;
        seg = end + 1;
    }
    return cur;
}

static int compile_keyword(comp *c, fm_snode *node, const char *k, const json_t *v)
{
    if (!strcmp(k, "type")) return get_types(c, v, &node->types);
    if (!strcmp(k, "enum")) {
        if (!json_is_array(v)) return bad(c, "must be an array"), -1;
        node->enum_vals = v;
        return 0;
    }
    if (!strcmp(k, "const")) {
        node->const_val = v;
        node->has_const = true;
        return 0;
    }
    if (!strcmp(k, "$ref")) {
        if (!json_is_string(v)) return bad(c, "must be a string"), -1;
        node->ref_text = json_string_value(v);
        const json_t *target = resolve_ref(c, node->ref_text);
        if (!target) return -1;
        node->ref = compile_node(c, target);
        return node->ref ? 0 : -1;
    }
    if (!strcmp(k, "properties")) return get_properties(c, node, v);
    if (!strcmp(k, "patternProperties")) return get_patterns(c, node, v);
    if (!strcmp(k, "required")) return get_required(c, node, v);
    if (!strcmp(k, "additionalProperties")) return (node->additional = compile_node(c, v)) ? 0 : -1;
    if (!strcmp(k, "minProperties")) return get_count(c, v, &node->min_props);
    if (!strcmp(k, "maxProperties")) return get_count(c, v, &node->max_props);
    if (!strcmp(k, "prefixItems")) return get_schema_array(c, v, &node->prefix, &node->nprefix);
    if (!strcmp(k, "items")) {
        if (json_is_array(v))
            return bad(c, "must be a schema; for tuples use prefixItems (draft 2020-12)"), -1;
        return (node->items = compile_node(c, v)) ? 0 : -1;
    }
    if (!strcmp(k, "minItems")) return get_count(c, v, &node->min_items);
    if (!strcmp(k, "maxItems")) return get_count(c, v, &node->max_items);
    if (!strcmp(k, "uniqueItems")) {
        if (!json_is_boolean(v)) return bad(c, "must be a boolean"), -1;
        node->unique = json_is_true(v);
        return 0;
    }
    if (!strcmp(k, "minLength")) return get_count(c, v, &node->min_len);
    if (!strcmp(k, "maxLength")) return get_count(c, v, &node->max_len);
    if (!strcmp(k, "pattern")) {
        if (!json_is_string(v)) return bad(c, "must be a string"), -1;
        if (strlen(json_string_value(v)) != json_string_length(v))
            return bad(c, "regex contains a NUL byte"), -1;
        return (node->pattern = get_regex(c, json_string_value(v))) ? 0 : -1;
    }
    if (!strcmp(k, "minimum")) return get_number(c, v, &node->minimum);
    if (!strcmp(k, "maximum")) return get_number(c, v, &node->maximum);
    if (!strcmp(k, "exclusiveMinimum")) return get_number(c, v, &node->ex_minimum);
    if (!strcmp(k, "exclusiveMaximum")) return get_number(c, v, &node->ex_maximum);
    if (!strcmp(k, "multipleOf")) {
        if (get_number(c, v, &node->multiple_of)) return -1;
        if (json_number_value(v) <= 0) return bad(c, "must be greater than 0"), -1;
        return 0;
    }
    if (!strcmp(k, "allOf")) return get_schema_array(c, v, &node->all_of, &node->nall);
    if (!strcmp(k, "anyOf")) return get_schema_array(c, v, &node->any_of, &node->nany);
    if (!strcmp(k, "oneOf")) return get_schema_array(c, v, &node->one_of, &node->none);
    if (!strcmp(k, "not")) return (node->not_ = compile_node(c, v)) ? 0 : -1;
    if (!strcmp(k, "if")) return (node->if_ = compile_node(c, v)) ? 0 : -1;
    if (!strcmp(k, "then")) return (node->then_ = compile_node(c, v)) ? 0 : -1;
    if (!strcmp(k, "else")) return (node->else_ = compile_node(c, v)) ? 0 : -1;
    if (!strcmp(k, "$defs") || !strcmp(k, "definitions")) {
        /* compiled eagerly so a broken definition fails now, not when first used */
        if (!json_is_object(v)) return bad(c, "must be an object of schemas"), -1;
        const char *dk;
        json_t *sub;
        json_object_foreach((json_t *)v, dk, sub)
        {
            size_t save = sp_push(c, dk);
            fm_snode *n = compile_node(c, sub);
            sp_pop(c, save);
            if (!n) return -1;
        }
        return 0;
    }
    if (!strcmp(k, "$id") && node->json != c->s->root)
        return bad(c, "embedded $id is not supported; use $defs and local $ref"), -1;
    for (const char *const *r = refused; *r; r++)
        if (!strcmp(k, *r)) return bad(c, "keyword not supported by fleetmcp's validator"), -1;
    return 0; /* annotations (title, format, default...) and unknown keywords */
}

static fm_snode *compile_node(comp *c, const json_t *j)
{
    fm_snode *node = find_node(c->s, j);
    if (node) return node;
    if (!json_is_object(j) && !json_is_boolean(j))
        return bad(c, "a schema must be an object or a boolean");
    if (c->depth >= COMPILE_MAX_DEPTH) return bad(c, "schema nested too deeply");
    node = new_node(c, j);
    if (!node) return bad(c, "out of memory");
    if (json_is_boolean(j)) {
        node->is_bool = true;
        node->always_ok = json_is_true(j);
        return node;
    }
    c->depth++;
    const char *k;
    json_t *v;
    int rc = 0;
    json_object_foreach((json_t *)j, k, v)
    {
        size_t save = sp_push(c, k);
        rc = compile_keyword(c, node, k, v);
        sp_pop(c, save);
        if (rc) break;
    }
    c->depth--;
    return rc ? NULL : node;
}

static void free_node(fm_snode *n)
{
    free(n->props);
    free((void *)n->required);
    free(n->patterns);
    free(n->prefix);
    free(n->all_of);
    free(n->any_of);
    free(n->one_of);
    free(n);
}

void fm_schema_free(fm_schema *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->nnodes; i++)
        free_node(s->nodes[i]);
    free(s->nodes);
    for (size_t i = 0; i < s->nregexes; i++) {
        pcre2_code_free(s->regexes[i]->code);
        free(s->regexes[i]->src);
        free(s->regexes[i]);
    }
    free(s->regexes);
    pcre2_match_context_free(s->mctx);
    json_decref(s->root);
    free(s);
}

fm_schema *fm_schema_compile(const json_t *schema, fm_err *err)
{
    if (!schema) {
        fm_err_set(err, FM_ERR_INVALID, "(schema) (root): no schema given");
        return NULL;
    }
    fm_schema *s = calloc(1, sizeof *s);
    if (!s) {
        fm_err_set(err, FM_ERR_NOMEM, "(schema) out of memory");
        return NULL;
    }
    s->root = json_incref((json_t *)schema);
    s->mctx = pcre2_match_context_create(NULL);
    if (!s->mctx) {
        fm_err_set(err, FM_ERR_NOMEM, "(schema) out of memory");
        fm_schema_free(s);
        return NULL;
    }
    /* bound backtracking: patterns meet untrusted strings */
    pcre2_set_match_limit(s->mctx, 1000000);
    pcre2_set_depth_limit(s->mctx, 10000);
    comp c = {.s = s, .err = err};
    s->top = compile_node(&c, schema);
    if (!s->top) {
        fm_schema_free(s);
        return NULL;
    }
    return s;
}
