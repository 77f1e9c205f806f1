#include "fleetmcp/fm_util.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    return fm_json_dumps_len(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY, &n);
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
    if (starts_nocase(key, "pat") && !key[3]) return true;
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

/* A growing buffer for fm_json_dumps_len; bad once anything failed. */
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

/* jansson's dump callback: each piece into the growing buffer. */
static int dump_piece(const char *piece, size_t k, void *arg)
{
    dump_buf *d = arg;
    put(d, piece, k);
    return d->bad ? -1 : 0;
}

char *fm_json_dumps_len(const json_t *v, size_t flags, size_t *len)
{
    *len = 0;
    dump_buf d = {0};
    if (!v || json_dump_callback(v, dump_piece, &d, flags) || !reserve(&d, 0)) {
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
    char *t = fm_json_dumps_len(v, flags, &n);
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
