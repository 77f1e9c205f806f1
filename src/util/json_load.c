/* fm_json_loadb: json_loadb for a request's message, without jansson's
 * lexer on the common shape.  jansson reads a message a character at a
 * time through its stream, copies every token into a string buffer and
 * walks each string twice: ~200 instructions a byte, 7% of a loaded HTTP
 * server's CPU (perf) for a 120-byte tools/call.
 *
 * The fast path here takes only what it can build exactly as jansson
 * would: objects and arrays (insertion order kept, a duplicate key left
 * to jansson), strings of printable ASCII without escapes, integers of at
 * most 18 digits (no overflow possible), true, false, null.  Anything
 * else (an escape, a byte outside printable ASCII, a fraction or an
 * exponent, deep nesting, any error) drops what was built and hands the
 * whole message to json_loadb, so its values and its errors (text and
 * position) are jansson's own. */
#include "fleetmcp/fm_util.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Beyond this depth jansson decides (its own bound is 2048). */
#define FAST_DEPTH 32
#define FAST_DIGITS 18

typedef struct {
    const char *p, *end;
    int depth;
    bool reject_dups;
} fast_in;

static void skip_ws(fast_in *in)
{
    while (in->p < in->end && (*in->p == ' ' || *in->p == '\t' || *in->p == '\n' || *in->p == '\r'))
        in->p++;
}

static bool take(fast_in *in, char c)
{
    skip_ws(in);
    if (in->p >= in->end || *in->p != c) return false;
    in->p++;
    return true;
}

/* A string's bytes (after its opening quote), borrowed; false when it
 * holds anything but printable ASCII or does not end. */
static bool plain_string(fast_in *in, const char **s, size_t *n)
{
    const char *b = in->p;
    while (in->p < in->end) {
        unsigned char c = (unsigned char)*in->p;
        if (c == '"') {
            *s = b;
            *n = (size_t)(in->p++ - b);
            return true;
        }
        if (c < 0x20 || c >= 0x7f || c == '\\') return false;
        in->p++;
    }
    return false;
}

/* -?(0|[1-9][0-9]*) with no fraction or exponent after it. */
static json_t *plain_integer(fast_in *in)
{
    bool neg = in->p < in->end && *in->p == '-';
    if (neg) in->p++;
    const char *d = in->p;
    long long v = 0;
    while (in->p < in->end && *in->p >= '0' && *in->p <= '9' && in->p - d < FAST_DIGITS)
        v = v * 10 + (*in->p++ - '0');
    size_t nd = (size_t)(in->p - d);
    if (nd == 0 || (nd > 1 && *d == '0')) return NULL;
    if (in->p < in->end &&
        (*in->p == '.' || *in->p == 'e' || *in->p == 'E' || (*in->p >= '0' && *in->p <= '9')))
        return NULL;
    return json_integer(neg ? -v : v);
}

static json_t *literal(fast_in *in, const char *word, size_t n, json_t *v)
{
    if ((size_t)(in->end - in->p) < n || memcmp(in->p, word, n)) return NULL;
    in->p += n;
    return v;
}

static json_t *fast_value(fast_in *in);

/* One "key": value into the object o; false to hand the message on. */
static bool fast_member(fast_in *in, json_t *o)
{
    const char *k;
    size_t kn;
    json_t *v;
    if (!take(in, '"') || !plain_string(in, &k, &kn) || !take(in, ':') ||
        (in->reject_dups && json_object_getn(o, k, kn)) || !(v = fast_value(in)))
        return false;
    return !json_object_setn_new_nocheck(o, k, kn, v);
}

/* One value onto the array a. */
static bool fast_element(fast_in *in, json_t *a)
{
    json_t *v = fast_value(in);
    return v && !json_array_append_new(a, v);
}

/* The items of the container c (just opened) up to its close, each read
 * by one; c itself, or NULL (c dropped). */
static json_t *fast_items(fast_in *in, json_t *c, char close, bool (*one)(fast_in *, json_t *))
{
    if (!c) return NULL;
    if (take(in, close)) return c;
    while (one(in, c)) {
        if (take(in, close)) return c;
        if (!take(in, ',')) break;
    }
    json_decref(c);
    return NULL;
}

static json_t *fast_value(fast_in *in)
{
    skip_ws(in);
    if (in->p >= in->end) return NULL;
    char c = *in->p++;
    const char *s;
    size_t n;
    json_t *v = NULL;
    switch (c) {
    case '{':
    case '[':
        if (++in->depth > FAST_DEPTH) return NULL;
        v = c == '{' ? fast_items(in, json_object(), '}', fast_member)
                     : fast_items(in, json_array(), ']', fast_element);
        in->depth--;
        return v;
    case '"':
        return plain_string(in, &s, &n) ? json_stringn_nocheck(s, n) : NULL;
    case 't':
        return literal(in, "rue", 3, json_true());
    case 'f':
        return literal(in, "alse", 4, json_false());
    case 'n':
        return literal(in, "ull", 3, json_null());
    default:
        in->p--;
        return plain_integer(in);
    }
}

json_t *fm_json_loadb(const char *buf, size_t len, size_t flags, json_error_t *err)
{
    /* Only the flags whose effect the fast path has (a raw NUL is an
     * error either way, and an escaped one is jansson's to read). */
    if (flags & ~(size_t)(JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL))
        return json_loadb(buf, len, flags, err);
    fast_in in = {buf, buf + len, 0, (flags & JSON_REJECT_DUPLICATES) != 0};
    skip_ws(&in);
    /* Without JSON_DECODE_ANY jansson takes only an object or an array. */
    json_t *v = in.p < in.end && (*in.p == '{' || *in.p == '[') ? fast_value(&in) : NULL;
    skip_ws(&in);
    if (v && in.p == in.end) {
        if (err) {
            /* As json_loadb leaves it on success: read to the end. */
            memset(err, 0, sizeof *err);
            err->line = err->column = -1;
            err->position = (int)len;
            strcpy(err->source, "<buffer>");
        }
        return v;
    }
    json_decref(v);
    return json_loadb(buf, len, flags, err);
}
