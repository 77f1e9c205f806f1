/* YAML to JSON with libyaml's event parser (see fm_yaml.h).
 *
 * The event parser (not the document loader) is used so that aliases are
 * refused the moment they appear, before anything is expanded, and so the
 * tree is built with an explicit stack bounded by FM_YAML_MAX_DEPTH. */
#include "fleetmcp/fm_yaml.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#define TAG_PREFIX "tag:yaml.org,2002:"

typedef struct frame {
    json_t *node; /* borrowed: owned by its parent (or by the loader for the root) */
    bool is_map;
    bool have_key;
    char *key; /* owned: pending key of a mapping, waiting for its value */
    size_t key_len;
    int key_line;   /* a value's line is its key's line: where a reader looks */
    size_t ptr_len; /* length of the JSON pointer of this collection */
    size_t index;   /* next index of a sequence */
} frame;

typedef struct loader {
    const char *name;
    fm_err *err;
    json_t *root;  /* owned */
    json_t *lines; /* owned */
    frame stack[FM_YAML_MAX_DEPTH];
    size_t depth;
    char *ptr; /* JSON pointer of the node being placed; grown as needed */
    size_t ptr_len, ptr_cap;
    int docs;
} loader;

static int fail_at(loader *l, fm_code code, const yaml_mark_t *m, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail_at(loader *l, fm_code code, const yaml_mark_t *m, const char *fmt, ...)
{
    char why[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    fm_err_set(l->err, code, "%s:%zu:%zu: %s", l->name, m->line + 1, m->column + 1, why);
    return -1;
}

/* Echoed scalars are clipped to 64 bytes and cleaned of control bytes. */
static void clip64(char *dst, size_t dstlen, const char *src, size_t len)
{
    char tmp[72];
    size_t n = len < 64 ? len : 64;
    memcpy(tmp, src, n);
    tmp[n] = '\0';
    fm_clip(dst, dstlen, tmp);
    if (len > 64 && dstlen > 68) strcat(dst, "...");
}

static int ptr_reserve(loader *l, size_t extra)
{
    if (l->ptr_len + extra + 1 <= l->ptr_cap) return 0;
    size_t cap = l->ptr_cap ? l->ptr_cap : 256;
    while (cap < l->ptr_len + extra + 1)
        cap *= 2;
    char *p = realloc(l->ptr, cap);
    if (!p) return -1;
    l->ptr = p;
    l->ptr_cap = cap;
    return 0;
}

/* Appends "/" + the RFC 6901 escaped segment (~ -> ~0, / -> ~1). */
static int ptr_push(loader *l, const char *seg, size_t len)
{
    if (ptr_reserve(l, 1 + 2 * len)) return -1;
    l->ptr[l->ptr_len++] = '/';
    for (size_t i = 0; i < len; i++) {
        if (seg[i] == '~') {
            l->ptr[l->ptr_len++] = '~';
            l->ptr[l->ptr_len++] = '0';
        } else if (seg[i] == '/') {
            l->ptr[l->ptr_len++] = '~';
            l->ptr[l->ptr_len++] = '1';
        } else {
            l->ptr[l->ptr_len++] = seg[i];
        }
    }
    l->ptr[l->ptr_len] = '\0';
    return 0;
}

static bool all_in(const char *s, size_t n, const char *set)
{
    if (!n) return false;
    for (size_t i = 0; i < n; i++)
        if (!strchr(set, s[i]) || !s[i]) return false;
    return true;
}

static bool is_one_of(const char *s, size_t n, const char *const *words)
{
    for (; *words; words++)
        if (strlen(*words) == n && !memcmp(s, *words, n)) return true;
    return false;
}

static const char *const null_words[] = {"", "~", "null", "Null", "NULL", NULL};
static const char *const true_words[] = {"true", "True", "TRUE", NULL};
static const char *const false_words[] = {"false", "False", "FALSE", NULL};
static const char *const inf_words[] = {".inf", ".Inf", ".INF", NULL};
static const char *const nan_words[] = {".nan", ".NaN", ".NAN", NULL};

/* YAML 1.2 core schema: [-+]?[0-9]+ | 0o[0-7]+ | 0x[0-9a-fA-F]+ */
static bool is_core_int(const char *s, size_t n, int *base, size_t *skip)
{
    if (n > 2 && s[0] == '0' && s[1] == 'o' && all_in(s + 2, n - 2, "01234567")) {
        *base = 8;
        *skip = 2;
        return true;
    }
    if (n > 2 && s[0] == '0' && s[1] == 'x' && all_in(s + 2, n - 2, "0123456789abcdefABCDEF")) {
        *base = 16;
        *skip = 2;
        return true;
    }
    size_t i = (n && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
    *base = 10;
    *skip = 0;
    return all_in(s + i, n - i, "0123456789");
}

/* [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )? */
static bool is_core_float(const char *s, size_t n)
{
    size_t i = 0, digits = 0;
    if (i < n && (s[i] == '-' || s[i] == '+')) i++;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++, digits++;
    if (i < n && s[i] == '.') {
        i++;
        size_t frac = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++, frac++;
        if (!digits && !frac) return false;
    } else if (!digits) {
        return false;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '-' || s[i] == '+')) i++;
        size_t exp = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++, exp++;
        if (!exp) return false;
    }
    return i == n;
}

typedef enum { K_AUTO, K_STR, K_NULL, K_BOOL, K_INT, K_FLOAT } scalar_kind;

/* New reference, or NULL with l->err set. */
static json_t *scalar_to_json(loader *l, const yaml_event_t *ev)
{
    const char *s = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    const char *tag = (const char *)ev->data.scalar.tag;
    const yaml_mark_t *m = &ev->start_mark;
    char shown[80];
    scalar_kind want = K_AUTO;

    if (tag && strcmp(tag, "!") != 0) {
        const char *t =
            strncmp(tag, TAG_PREFIX, strlen(TAG_PREFIX)) == 0 ? tag + strlen(TAG_PREFIX) : NULL;
        if (t && !strcmp(t, "str"))
            want = K_STR;
        else if (t && !strcmp(t, "null"))
            want = K_NULL;
        else if (t && !strcmp(t, "bool"))
            want = K_BOOL;
        else if (t && !strcmp(t, "int"))
            want = K_INT;
        else if (t && !strcmp(t, "float"))
            want = K_FLOAT;
        else {
            clip64(shown, sizeof shown, tag, strlen(tag));
            fail_at(l, FM_ERR_PARSE, m, "unsupported tag '%s'; remove it", shown);
            return NULL;
        }
    } else if (tag || ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
        /* the non-specific "!" tag and every quoted or block scalar is a string */
        want = K_STR;
    }

    json_t *v = NULL;
    if (memchr(s, '\0', n)) {
        /* jansson could hold it, but every C reader would see a shorter string */
        fail_at(l, FM_ERR_PARSE, m, "string contains a NUL byte (\\0); remove it");
        return NULL;
    }
    if (want == K_STR) {
        v = json_stringn(s, n);
        if (!v) fail_at(l, FM_ERR_PARSE, m, "string is not valid UTF-8");
        return v;
    }
    clip64(shown, sizeof shown, s, n);
    int base;
    size_t skip;
    if ((want == K_AUTO || want == K_NULL) && is_one_of(s, n, null_words)) {
        v = json_null();
    } else if ((want == K_AUTO || want == K_BOOL) && is_one_of(s, n, true_words)) {
        v = json_true();
    } else if ((want == K_AUTO || want == K_BOOL) && is_one_of(s, n, false_words)) {
        v = json_false();
    } else if ((want == K_AUTO || want == K_INT) && is_core_int(s, n, &base, &skip)) {
        char buf[80];
        if (n >= sizeof buf) {
            fail_at(l, FM_ERR_PARSE, m, "integer '%s' out of range", shown);
            return NULL;
        }
        memcpy(buf, s + skip, n - skip);
        buf[n - skip] = '\0';
        errno = 0;
        char *end;
        long long x;
        if (base == 10) {
            x = strtoll(buf, &end, 10);
        } else {
            /* 0x/0o literals are unsigned bit patterns; refuse anything above LLONG_MAX */
            unsigned long long u = strtoull(buf, &end, base);
            if (u > (unsigned long long)LLONG_MAX) errno = ERANGE;
            x = (long long)u;
        }
        if (errno == ERANGE || *end) {
            fail_at(l, FM_ERR_PARSE, m, "integer '%s' out of range (64-bit signed)", shown);
            return NULL;
        }
        v = json_integer(x);
    } else if ((want == K_AUTO || want == K_FLOAT) && is_core_float(s, n)) {
        char buf[512];
        if (n >= sizeof buf) {
            fail_at(l, FM_ERR_PARSE, m, "number '%s' too long", shown);
            return NULL;
        }
        memcpy(buf, s, n);
        buf[n] = '\0';
        errno = 0;
        double d = strtod(buf, NULL);
        if (!isfinite(d)) {
            fail_at(l, FM_ERR_PARSE, m, "number '%s' out of range", shown);
            return NULL;
        }
        v = json_real(d);
    } else if ((want == K_AUTO || want == K_FLOAT) &&
               ((n && (s[0] == '-' || s[0] == '+') && is_one_of(s + 1, n - 1, inf_words)) ||
                is_one_of(s, n, inf_words) || is_one_of(s, n, nan_words))) {
        /* a YAML float, but JSON (and jansson) cannot hold it: say so */
        fail_at(l, FM_ERR_PARSE, m,
                "'%s' (infinity/NaN) cannot be represented in JSON; "
                "use a finite number",
                shown);
        return NULL;
    } else if (want == K_AUTO) {
        v = json_stringn(s, n);
        if (!v) fail_at(l, FM_ERR_PARSE, m, "string is not valid UTF-8");
        return v;
    } else {
        fail_at(l, FM_ERR_PARSE, m, "'%s' does not match its tag %s", shown, tag);
        return NULL;
    }
    if (!v) fail_at(l, FM_ERR_NOMEM, m, "out of memory");
    return v;
}

static int record_line(loader *l, int line)
{
    json_t *n = json_integer(line);
    /* nocheck: the pointer is built from UTF-8 checked keys and ASCII */
    if (!n || json_object_set_new_nocheck(l->lines, l->ptr, n)) {
        fm_err_set(l->err, FM_ERR_NOMEM, "%s: out of memory", l->name);
        return -1;
    }
    return 0;
}

/* Places node (stolen) at the current position: the root, the next item of
 * a sequence, or the value of a mapping's pending key.  Sets l->ptr to the
 * node's pointer. */
static int place(loader *l, json_t *node, const yaml_mark_t *m)
{
    int line = (int)m->line + 1;
    if (l->depth == 0) {
        if (l->root) {
            json_decref(node);
            return fail_at(l, FM_ERR_PARSE, m, "more than one root node");
        }
        l->root = node;
        l->ptr_len = 0;
        if (ptr_reserve(l, 0)) return fail_at(l, FM_ERR_NOMEM, m, "out of memory");
        l->ptr[0] = '\0';
        return record_line(l, line);
    }
    frame *f = &l->stack[l->depth - 1];
    l->ptr_len = f->ptr_len;
    if (f->is_map) {
        int rc = ptr_push(l, f->key, f->key_len);
        line = f->key_line;
        if (!rc)
            rc = json_object_set_new(f->node, f->key, node);
        else
            json_decref(node);
        free(f->key);
        f->key = NULL;
        f->have_key = false;
        if (rc) return fail_at(l, FM_ERR_NOMEM, m, "out of memory");
    } else {
        char idx[32];
        int n = snprintf(idx, sizeof idx, "%zu", f->index++);
        if (ptr_push(l, idx, (size_t)n) || json_array_append_new(f->node, node))
            return fail_at(l, FM_ERR_NOMEM, m, "out of memory");
    }
    return record_line(l, line);
}

/* A scalar in key position of the innermost mapping: remember it. */
static int take_key(loader *l, frame *f, const yaml_event_t *ev)
{
    const char *s = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    char shown[80];
    clip64(shown, sizeof shown, s, n);
    if (ev->data.scalar.tag && strcmp((const char *)ev->data.scalar.tag, "!") &&
        strcmp((const char *)ev->data.scalar.tag, TAG_PREFIX "str"))
        return fail_at(l, FM_ERR_PARSE, &ev->start_mark,
                       "key '%s' has a tag; keys are plain strings", shown);
    if (memchr(s, '\0', n))
        return fail_at(l, FM_ERR_PARSE, &ev->start_mark, "key '%s' contains a NUL byte", shown);
    json_t *probe = json_stringn(s, n);
    if (!probe) return fail_at(l, FM_ERR_PARSE, &ev->start_mark, "key is not valid UTF-8");
    json_decref(probe);
    if (json_object_get(f->node, s)) {
        /* find where the first one was, to point the reader at both */
        size_t save = l->ptr_len;
        l->ptr_len = f->ptr_len;
        int first = 0;
        if (!ptr_push(l, s, n)) {
            json_t *ln = json_object_get(l->lines, l->ptr);
            first = ln ? (int)json_integer_value(ln) : 0;
        }
        l->ptr_len = save;
        return fail_at(l, FM_ERR_PARSE, &ev->start_mark,
                       "duplicate key '%s' (first at line %d); keep one", shown, first);
    }
    f->key = strndup(s, n);
    if (!f->key) return fail_at(l, FM_ERR_NOMEM, &ev->start_mark, "out of memory");
    f->key_len = n;
    f->key_line = (int)ev->start_mark.line + 1;
    f->have_key = true;
    return 0;
}

static int check_collection_tag(loader *l, const yaml_char_t *tag, const char *want,
                                const yaml_mark_t *m)
{
    if (!tag || !strcmp((const char *)tag, "!")) return 0;
    if (!strncmp((const char *)tag, TAG_PREFIX, strlen(TAG_PREFIX)) &&
        !strcmp((const char *)tag + strlen(TAG_PREFIX), want))
        return 0;
    char shown[80];
    clip64(shown, sizeof shown, (const char *)tag, strlen((const char *)tag));
    return fail_at(l, FM_ERR_PARSE, m, "unsupported tag '%s'; remove it", shown);
}

static int on_event(loader *l, const yaml_event_t *ev, bool *done)
{
    const yaml_mark_t *m = &ev->start_mark;
    frame *top = l->depth ? &l->stack[l->depth - 1] : NULL;

    switch (ev->type) {
    case YAML_NO_EVENT:
    case YAML_STREAM_START_EVENT:
    case YAML_DOCUMENT_END_EVENT:
        return 0;
    case YAML_STREAM_END_EVENT:
        *done = true;
        return 0;
    case YAML_DOCUMENT_START_EVENT:
        if (++l->docs > 1)
            return fail_at(l, FM_ERR_PARSE, m,
                           "more than one YAML document ('---'); use one document per file");
        return 0;
    case YAML_ALIAS_EVENT:
        return fail_at(l, FM_ERR_PARSE, m,
                       "aliases ('*') are not allowed; write the value out in full");
    case YAML_SCALAR_EVENT: {
        if (top && top->is_map && !top->have_key) return take_key(l, top, ev);
        json_t *v = scalar_to_json(l, ev);
        if (!v) return -1;
        return place(l, v, m);
    }
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        bool is_map = ev->type == YAML_MAPPING_START_EVENT;
        if (top && top->is_map && !top->have_key)
            return fail_at(l, FM_ERR_PARSE, m,
                           "a %s cannot be a mapping key; keys are plain strings",
                           is_map ? "mapping" : "sequence");
        if (l->depth >= FM_YAML_MAX_DEPTH)
            return fail_at(l, FM_ERR_TOO_LARGE, m, "nested deeper than %d levels",
                           FM_YAML_MAX_DEPTH);
        const yaml_char_t *tag = is_map ? ev->data.mapping_start.tag : ev->data.sequence_start.tag;
        if (check_collection_tag(l, tag, is_map ? "map" : "seq", m)) return -1;
        json_t *c = is_map ? json_object() : json_array();
        if (!c) return fail_at(l, FM_ERR_NOMEM, m, "out of memory");
        if (place(l, c, m)) return -1;
        frame *f = &l->stack[l->depth++];
        memset(f, 0, sizeof *f);
        f->node = c;
        f->is_map = is_map;
        f->ptr_len = l->ptr_len;
        return 0;
    }
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        if (!l->depth) return fail_at(l, FM_ERR_INTERNAL, m, "unbalanced collection end");
        free(top->key);
        top->key = NULL;
        l->depth--;
        return 0;
    }
    return 0;
}

static const char *clean_name(const char *name)
{
    return name && *name ? name : "<string>";
}

int fm_yaml_load_string(const char *text, size_t len, const char *name, fm_yaml_doc *out,
                        fm_err *err)
{
    memset(out, 0, sizeof *out);
    fm_clip(out->path, sizeof out->path, clean_name(name));
    if (len > FM_YAML_MAX_BYTES) {
        fm_err_set(err, FM_ERR_TOO_LARGE, "%s: %zu bytes, over the %u byte limit", out->path, len,
                   FM_YAML_MAX_BYTES);
        return -1;
    }
    loader l = {.name = out->path, .err = err};
    l.lines = json_object();
    if (!l.lines) {
        fm_err_set(err, FM_ERR_NOMEM, "%s: out of memory", out->path);
        return -1;
    }
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        json_decref(l.lines);
        /* libyaml is loaded on first use (src/util/yaml_lazy.c): a
         * missing one is logged there, naming the package. */
        fm_err_set(err, FM_ERR_NOMEM,
                   "%s: the YAML parser cannot start (out of memory, or"
                   " libyaml-0-2 is not installed: see the log above)",
                   out->path);
        return -1;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)(text ? text : ""), len);

    int rc = 0;
    bool done = false;
    while (!done) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            char problem[200], context[120];
            fm_clip(problem, sizeof problem, parser.problem ? parser.problem : "syntax error");
            fm_clip(context, sizeof context, parser.context ? parser.context : "");
            const yaml_mark_t *m = &parser.problem_mark;
            fm_err_set(err, parser.error == YAML_MEMORY_ERROR ? FM_ERR_NOMEM : FM_ERR_PARSE,
                       "%s:%zu:%zu: YAML syntax: %s%s%s", out->path, m->line + 1, m->column + 1,
                       problem, *context ? " " : "", context);
            rc = -1;
            break;
        }
        rc = on_event(&l, &ev, &done);
        yaml_event_delete(&ev);
        if (rc) break;
    }
    yaml_parser_delete(&parser);
    for (size_t i = 0; i < l.depth; i++)
        free(l.stack[i].key);
    free(l.ptr);
    if (rc) {
        json_decref(l.root);
        json_decref(l.lines);
        return -1;
    }
    /* an empty stream (or one holding only comments) is a null document */
    out->root = l.root ? l.root : json_null();
    out->lines = l.lines;
    return 0;
}

int fm_yaml_load_file(const char *path, fm_yaml_doc *out, fm_err *err)
{
    memset(out, 0, sizeof *out);
    char shown[256];
    fm_clip(shown, sizeof shown, clean_name(path));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fm_err_set(err, FM_ERR_IO, "%s: cannot open: %s", shown, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        fm_err_set(err, FM_ERR_IO, "%s: not a regular file", shown);
        close(fd);
        return -1;
    }
    if ((unsigned long long)st.st_size > FM_YAML_MAX_BYTES) {
        fm_err_set(err, FM_ERR_TOO_LARGE, "%s: %lld bytes, over the %u byte limit", shown,
                   (long long)st.st_size, FM_YAML_MAX_BYTES);
        close(fd);
        return -1;
    }
    /* read to EOF with a hard cap: the file may grow after fstat */
    size_t cap = (size_t)st.st_size + 1, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        close(fd);
        fm_err_set(err, FM_ERR_NOMEM, "%s: out of memory", shown);
        return -1;
    }
    for (;;) {
        if (len == cap) {
            if (cap > FM_YAML_MAX_BYTES) break;
            size_t ncap = cap * 2 > FM_YAML_MAX_BYTES + 1 ? FM_YAML_MAX_BYTES + 1 : cap * 2;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                close(fd);
                fm_err_set(err, FM_ERR_NOMEM, "%s: out of memory", shown);
                return -1;
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            fm_err_set(err, FM_ERR_IO, "%s: read failed: %s", shown, strerror(errno));
            free(buf);
            close(fd);
            return -1;
        }
        if (r == 0) break;
        len += (size_t)r;
    }
    close(fd);
    if (len > FM_YAML_MAX_BYTES) {
        free(buf);
        fm_err_set(err, FM_ERR_TOO_LARGE, "%s: over the %u byte limit", shown, FM_YAML_MAX_BYTES);
        return -1;
    }
    int rc = fm_yaml_load_string(buf, len, path, out, err);
    free(buf);
    return rc;
}

int fm_yaml_line(const fm_yaml_doc *doc, const char *pointer)
{
    if (!doc || !doc->lines || !pointer) return 0;
    size_t n = strlen(pointer);
    char *p = strndup(pointer, n);
    if (!p) return 0;
    int line = 0;
    for (;;) {
        json_t *v = json_object_get(doc->lines, p);
        if (v) {
            line = (int)json_integer_value(v);
            break;
        }
        if (!*p) break;
        char *slash = strrchr(p, '/');
        if (!slash) break; /* not a pointer (no leading '/'): unknown */
        *slash = '\0';
    }
    free(p);
    return line;
}

void fm_yaml_doc_free(fm_yaml_doc *doc)
{
    if (!doc) return;
    json_decref(doc->root);
    json_decref(doc->lines);
    doc->root = NULL;
    doc->lines = NULL;
}
