#include "fleetmcp/fm_util.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/random.h>
#include <unistd.h>

void fm_hex(const unsigned char *bytes, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[bytes[i] >> 4];
        out[2 * i + 1] = hex[bytes[i] & 15];
    }
    out[2 * n] = '\0';
}

char *fm_json_canonical(const json_t *v)
{
    size_t n;
    return fm_json_dumps_compact(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY, &n);
}

static char ascii_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Whether s starts with w (lower case), ignoring ASCII case. */
static bool starts_nocase(const char *s, const char *w)
{
    while (*w && ascii_lower(*s) == *w)
        s++, w++;
    return !*w;
}

/* One pass over the key, comparing in place, where a lowercased copy and
 * a strstr for each word walked it a dozen times (every audited call's
 * every argument key).  The whole key, not its first 63 bytes. */
bool fm_key_is_secret(const char *key)
{
    static const char *const words[] = {"password",   "passwd", "secret",        "token",
                                        "api_key",    "apikey", "authorization", "private_key",
                                        "credential", "cookie", "signature"};
    /* "pat" (a personal access token) only as the whole key: inside one
     * it is "path", "pattern". */
    if (!strcasecmp(key, "pat")) return true;
    for (const char *s = key; *s; s++) {
        char c = ascii_lower(*s);
        for (size_t i = 0; i < sizeof words / sizeof *words; i++)
            if (words[i][0] == c && starts_nocase(s, words[i])) return true;
    }
    return false;
}

/* True when v holds a secret-looking key at any depth. */
static bool has_secret(const json_t *v)
{
    const char *k;
    json_t *val;
    size_t i;
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, k,
                            val) if (fm_key_is_secret(k) || has_secret(val)) return true;
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, val) if (has_secret(val)) return true;
    }
    return false;
}

/* Most arguments hold no secret (every audited call's are redacted): v
 * itself then, not a deep copy to throw away after one dump. */
json_t *fm_json_redact(const json_t *v)
{
    if (!has_secret(v)) return json_incref((json_t *)v);
    if (json_is_object(v)) {
        json_t *out = json_object();
        const char *k;
        json_t *val;
        json_object_foreach((json_t *)v, k, val)
        {
            if (fm_key_is_secret(k))
                json_object_set_new(out, k, json_string("[REDACTED]"));
            else
                json_object_set_new(out, k, fm_json_redact(val));
        }
        return out;
    }
    if (json_is_array(v)) {
        json_t *out = json_array();
        size_t i;
        json_t *val;
        json_array_foreach(v, i, val) json_array_append_new(out, fm_json_redact(val));
        return out;
    }
    return json_deep_copy(v);
}

void fm_random_hex(char *out, size_t nbytes)
{
    unsigned char buf[32];
    if (nbytes > sizeof buf) nbytes = sizeof buf;
    /* getrandom(2), not RAND_bytes: seeding OpenSSL's DRBG costs ~8M
     * instructions, more than the rest of start-up together. */
    if (getrandom(buf, nbytes, 0) != (ssize_t)nbytes) {
        /* No entropy source: ids only need to be unique, so fall back to
         * time and pid rather than abort. */
        uint64_t x = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
        for (size_t i = 0; i < nbytes; i++)
            buf[i] = (unsigned char)(x >> (8 * (i % 8)));
    }
    fm_hex(buf, nbytes, out);
}

const char *fm_json_str(const json_t *obj, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : dflt;
}

void fm_iso_time(int64_t ms, char out[32])
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(ms % 1000));
}

char *fm_json_join(const json_t *arr, size_t flags, bool reverse, const char *before,
                   const char *after, size_t *len)
{
    return fm_json_join_with(arr, flags, reverse, before, after, NULL, NULL, len);
}

char *fm_json_join_with(const json_t *arr, size_t flags, bool reverse, const char *before,
                        const char *after, fm_json_dump_fn dump, const void *cls, size_t *len)
{
    size_t n = json_array_size(arr), bl = strlen(before), al = strlen(after);
    size_t used = 0, cap = 256;
    char *buf = malloc(cap);
    for (size_t k = 0; buf && k < n; k++) {
        const json_t *v = json_array_get(arr, reverse ? n - 1 - k : k);
        size_t tl = 0;
        char *t = dump ? dump(v, flags, cls, &tl) : json_dumps(v, flags);
        if (t && !dump) tl = strlen(t);
        if (used + bl + tl + al + 1 > cap) {
            cap = (used + bl + tl + al + 1) * 2;
            char *nb = realloc(buf, cap);
            if (!nb) free(buf);
            buf = nb;
        }
        if (buf && t) {
            memcpy(buf + used, before, bl);
            memcpy(buf + used + bl, t, tl);
            memcpy(buf + used + bl + tl, after, al);
            used += bl + tl + al;
        }
        free(t);
    }
    if (!buf) return NULL;
    buf[used] = '\0';
    *len = used;
    return buf;
}

/* Length of the valid UTF-8 sequence at s (of n bytes left) that starts
 * with a byte >= 0x80, or 0: jansson's rules (no overlong forms, no
 * surrogates, nothing past U+10FFFF), so a string it would refuse to
 * dump is refused here too. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned u = s[0];
    size_t k = u >= 0xC2 && u <= 0xDF   ? 2
               : u >= 0xE0 && u <= 0xEF ? 3
               : u >= 0xF0 && u <= 0xF4 ? 4
                                        : 0;
    if (!k || k > n) return 0;
    unsigned long v = u & (k == 2 ? 0x1F : k == 3 ? 0x0F : 0x07);
    for (size_t i = 1; i < k; i++) {
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    bool overlong = (k == 3 && v < 0x800) || (k == 4 && v < 0x10000);
    return v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF) || overlong ? 0 : k;
}

/* s[0, n) as the inside of a JSON string, escaped as jansson's dump
 * escapes it (without JSON_ENSURE_ASCII or JSON_ESCAPE_SLASH): quote,
 * backslash and control characters; UTF-8 as it is.  s[n] is NUL (as in
 * every jansson string and key): it ends a run without a bound check.
 * Writes to w what fits in cap bytes (from the first piece that does not
 * on, nothing); returns the whole length (more than cap: write it again
 * into more room), or (size_t)-1 when s is not UTF-8. */
static size_t escape_into(char *w, size_t cap, const char *str, size_t n)
{
    /* 1: ends a run copied as it is (control, quote, backslash); 2: the
     * first byte of a multi-byte character, checked. */
    // clang-format off
#define X16(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v
    static const unsigned char special[256] = {
        X16(1), X16(1),                                 /* 0x00: control characters */
        0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x20: quote */
        X16(0), X16(0),
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, /* 0x50: backslash */
        X16(0), X16(0),
        X16(2), X16(2), X16(2), X16(2), X16(2), X16(2), X16(2), X16(2)}; /* 0x80-0xff */
#undef X16
    // clang-format on
    static const char hex[] = "0123456789ABCDEF", shorts[] = "btn\0fr"; /* \b .. \r */
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0, o = 0;
    while (i < n) {
        size_t run = i;
        while (!special[s[i]])
            i++;
        if (o + (i - run) > cap) w = NULL;
        if (w) memcpy(w + o, s + run, i - run);
        o += i - run;
        if (i == n) break;
        unsigned c = s[i];
        if (special[c] == 2) {
            size_t k = utf8_len(s + i, n - i);
            if (!k) return (size_t)-1;
            if (o + k > cap) w = NULL;
            if (w) memcpy(w + o, s + i, k);
            o += k, i += k;
            continue;
        }
        i++;
        char e[6] = {'\\', (char)c, '0', '0', 0, 0};
        size_t k = 2;
        if (c < 0x20 && c >= 8 && c <= 13 && shorts[c - 8]) {
            e[1] = shorts[c - 8];
        } else if (c < 0x20) {
            e[1] = 'u', e[4] = hex[c >> 4], e[5] = hex[c & 15];
            k = 6;
        }
        if (o + k > cap) w = NULL;
        if (w) memcpy(w + o, e, k);
        o += k;
    }
    return o;
}

/* A growing buffer for fm_json_dumps_compact; bad once anything failed. */
typedef struct {
    char *b;
    size_t n, cap;
    bool bad;
} dump_buf;

static char *reserve(dump_buf *d, size_t k)
{
    if (d->bad) return NULL;
    if (d->n + k + 1 > d->cap) {
        /* 1,000 bytes first: most answers fit, one malloc, and one that
         * glibc serves from its per-thread cache (1 KB or more would
         * consolidate its fast bins first: malloc_consolidate). */
        size_t cap = d->n + k + 1 < 500 ? 1000 : (d->n + k + 1) * 2;
        char *nb = realloc(d->b, cap);
        if (!nb) {
            d->bad = true;
            return NULL;
        }
        d->b = nb, d->cap = cap;
    }
    return d->b + d->n;
}

static void put(dump_buf *d, const char *s, size_t k)
{
    char *w = reserve(d, k);
    if (w) memcpy(w, s, k), d->n += k;
}

static void put_string(dump_buf *d, const char *s, size_t n)
{
    /* Escaped in one pass into room for the string and some escapes; one
     * with more is written again into the room it measured.  Room for the
     * worst case (6 bytes a byte) grew a tool result's reply past 1 KB,
     * and glibc consolidates its fast bins for such a realloc (perf: ~0.9%
     * of a loaded HTTP server's CPU). */
    size_t room = n + n / 4 + 16;
    char *w = reserve(d, room + 2);
    size_t e = w ? escape_into(w + 1, room, s, n) : (size_t)-1;
    if (e != (size_t)-1 && e > room && (w = reserve(d, e + 2))) escape_into(w + 1, e, s, n);
    if (!w || e == (size_t)-1) {
        d->bad = true;
        return;
    }
    w[0] = '"';
    w[e + 1] = '"';
    d->n += e + 2;
}

size_t fm_i64_text(long long v, char out[24])
{
    char t[24], *p = t + sizeof t;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do
        *--p = (char)('0' + u % 10);
    while (u /= 10);
    if (v < 0) *--p = '-';
    size_t n = (size_t)(t + sizeof t - p);
    memcpy(out, p, n);
    out[n] = '\0';
    return n;
}

size_t fm_cat3(char *out, size_t cap, const char *a, const char *b, const char *c)
{
    const char *part[3] = {a, b, c};
    size_t n = 0;
    for (int i = 0; i < 3 && cap; i++) {
        if (!part[i]) continue;
        size_t k = strlen(part[i]);
        if (k > cap - 1 - n) k = cap - 1 - n;
        memcpy(out + n, part[i], k);
        n += k;
    }
    if (cap) out[n] = '\0';
    return n;
}

static void put_int(dump_buf *d, json_int_t v)
{
    char t[24];
    put(d, t, fm_i64_text(v, t));
}

/* Deeper than jansson parses: a loop in a tree (a bug) ends here. */
#define DUMP_MAX_DEPTH 2048

static void dump_value(dump_buf *d, const json_t *v, size_t flags, int depth);

static void dump_member(dump_buf *d, void *it, size_t flags, int depth, bool first)
{
    put(d, ",", first ? 0 : 1);
    put_string(d, json_object_iter_key(it), json_object_iter_key_len(it));
    put(d, ":", 1);
    dump_value(d, json_object_iter_value(it), flags, depth + 1);
}

/* JSON_SORT_KEYS orders keys as jansson 2.14 does: bytes (memcmp) over
 * the shorter length, then the shorter first. */
static int key_order(const void *a, const void *b)
{
    void *ia = *(void *const *)a, *ib = *(void *const *)b;
    size_t na = json_object_iter_key_len(ia), nb = json_object_iter_key_len(ib);
    int c = memcmp(json_object_iter_key(ia), json_object_iter_key(ib), na < nb ? na : nb);
    return c ? c : (na > nb) - (na < nb);
}

static void dump_object(dump_buf *d, const json_t *v, size_t flags, int depth)
{
    size_t n = json_object_size(v), i = 0;
    void *local[16], **its = n <= 16 ? local : malloc(n * sizeof *its);
    if (!its) {
        d->bad = true;
        return;
    }
    put(d, "{", 1);
    for (void *it = json_object_iter((json_t *)v); it && i < n;
         it = json_object_iter_next((json_t *)v, it))
        its[i++] = it;
    if (flags & JSON_SORT_KEYS) qsort(its, i, sizeof *its, key_order);
    for (size_t k = 0; k < i && !d->bad; k++)
        dump_member(d, its[k], flags, depth, k == 0);
    put(d, "}", 1);
    if (its != local) free(its);
}

static void dump_value(dump_buf *d, const json_t *v, size_t flags, int depth)
{
    if (depth > DUMP_MAX_DEPTH) d->bad = true;
    if (d->bad) return;
    if (json_is_object(v)) {
        dump_object(d, v, flags, depth);
    } else if (json_is_array(v)) {
        put(d, "[", 1);
        for (size_t i = 0; i < json_array_size(v) && !d->bad; i++) {
            put(d, ",", i ? 1 : 0);
            dump_value(d, json_array_get(v, i), flags, depth + 1);
        }
        put(d, "]", 1);
    } else if (json_is_string(v)) {
        put_string(d, json_string_value(v), json_string_length(v));
    } else if (json_is_integer(v)) {
        put_int(d, json_integer_value(v));
    } else if (json_is_real(v)) {
        /* Rare on the hot path: jansson's own text for it, so the digits
         * are the same. */
        char *t = json_dumps(v, flags | JSON_ENCODE_ANY);
        if (t)
            put(d, t, strlen(t));
        else
            d->bad = true;
        free(t);
    } else {
        const char *t = json_is_true(v) ? "true" : json_is_false(v) ? "false" : "null";
        put(d, t, strlen(t));
    }
}

char *fm_json_dumps_compact(const json_t *v, size_t flags, size_t *len)
{
    const size_t same = JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY | JSON_SORT_KEYS |
                        JSON_REAL_PRECISION(31);
    if (!(flags & JSON_COMPACT) || (flags & ~same)) {
        char *t = json_dumps(v, flags);
        *len = t ? strlen(t) : 0;
        return t;
    }
    *len = 0;
    if (!v || (!(flags & JSON_ENCODE_ANY) && !json_is_object(v) && !json_is_array(v))) return NULL;
    dump_buf d = {0};
    dump_value(&d, v, flags & ~JSON_ENCODE_ANY, 0);
    if (!reserve(&d, 0)) {
        free(d.b);
        return NULL;
    }
    d.b[d.n] = '\0';
    *len = d.n;
    return d.b;
}

size_t fm_json_splice_room(const char *key, const char *raw)
{
    return strlen(key) + strlen(raw) + 6;
}

size_t fm_json_splice(char *buf, size_t n, const char *key, const char *raw)
{
    /* Compact dumps of {..., "result": {...}} end in "}}". */
    if (n < 3 || buf[n - 1] != '}' || buf[n - 2] != '}') return 0;
    size_t kn = strlen(key), rn = strlen(raw);
    char *w = buf + n - 2;
    if (w[-1] != '{') *w++ = ',';
    *w++ = '"';
    memcpy(w, key, kn), w += kn;
    *w++ = '"', *w++ = ':';
    memcpy(w, raw, rn), w += rn;
    *w++ = '}', *w++ = '}';
    *w = '\0';
    return (size_t)(w - buf);
}

char *fm_json_dumps_spliced(const json_t *v, size_t flags, const char *key, const char *raw,
                            size_t *len)
{
    size_t n = 0;
    char *t = fm_json_dumps_compact(v, flags, &n);
    char *nb = t ? realloc(t, n + fm_json_splice_room(key, raw)) : NULL;
    if (!nb) {
        free(t);
        return NULL;
    }
    *len = fm_json_splice(nb, n, key, raw);
    if (!*len) {
        free(nb);
        return NULL;
    }
    return nb;
}
