/* JSON equality, hashing and number comparison with JSON Schema's rules:
 * a number is a number, so 1 and 1.0 are equal (jansson's json_equal
 * says otherwise), and integer/real comparisons are exact. */
#include <math.h>
#include <string.h>

#include "schema_int.h"

bool fm_schema_is_integral(const json_t *v)
{
    if (json_is_integer(v)) return true;
    if (!json_is_real(v)) return false;
    double d = json_real_value(v);
    return isfinite(d) && floor(d) == d;
}

static int cmp_ll(long long a, long long b)
{
    return a < b ? -1 : a > b;
}

/* Exact comparison of an integer with a double, without long double
 * (valgrind emulates it with 64-bit precision). */
static int cmp_int_real(long long i, double d)
{
    if (d >= 9223372036854775808.0) return -1;
    if (d < -9223372036854775808.0) return 1;
    double t = trunc(d);
    long long ti = (long long)t;
    if (i != ti) return cmp_ll(i, ti);
    double frac = d - t;
    return frac > 0 ? -1 : frac < 0 ? 1 : 0;
}

int fm_schema_num_cmp(const json_t *a, const json_t *b)
{
    if (json_is_integer(a) && json_is_integer(b))
        return cmp_ll(json_integer_value(a), json_integer_value(b));
    if (json_is_integer(a)) return cmp_int_real(json_integer_value(a), json_real_value(b));
    if (json_is_integer(b)) return -cmp_int_real(json_integer_value(b), json_real_value(a));
    double x = json_real_value(a), y = json_real_value(b);
    return x < y ? -1 : x > y;
}

bool fm_schema_json_equal(const json_t *a, const json_t *b)
{
    if (a == b) return true;
    if (!a || !b) return false;
    if (json_is_number(a) && json_is_number(b)) return fm_schema_num_cmp(a, b) == 0;
    if (json_typeof(a) != json_typeof(b)) return false;
    switch (json_typeof(a)) {
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               !memcmp(json_string_value(a), json_string_value(b), json_string_length(a));
    case JSON_ARRAY: {
        size_t n = json_array_size(a);
        if (n != json_array_size(b)) return false;
        for (size_t i = 0; i < n; i++)
            if (!fm_schema_json_equal(json_array_get(a, i), json_array_get(b, i))) return false;
        return true;
    }
    case JSON_OBJECT: {
        if (json_object_size(a) != json_object_size(b)) return false;
        const char *k;
        size_t klen;
        json_t *v;
        json_object_keylen_foreach((json_t *)a, k, klen, v)
        {
            if (!fm_schema_json_equal(v, json_object_getn(b, k, klen))) return false;
        }
        return true;
    }
    case JSON_TRUE:
    case JSON_FALSE:
    case JSON_NULL:
        return true;
    case JSON_INTEGER:
    case JSON_REAL:
        break; /* handled above */
    }
    return false;
}

static unsigned long long mix(unsigned long long x)
{
    /* splitmix64 finaliser */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static unsigned long long hash_bytes(const char *s, size_t n)
{
    unsigned long long h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return mix(h ^ n);
}

unsigned long long fm_schema_json_hash(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_NULL:
        return 0x11;
    case JSON_TRUE:
        return 0x22;
    case JSON_FALSE:
        return 0x33;
    case JSON_INTEGER:
        return mix((unsigned long long)json_integer_value(v) ^ 0x44);
    case JSON_REAL: {
        double d = json_real_value(v);
        /* integral reals in int64 range hash like the equal integer */
        if (fm_schema_is_integral(v) && d >= -9223372036854775808.0 && d < 9223372036854775808.0)
            return mix((unsigned long long)(long long)d ^ 0x44);
        unsigned long long bits;
        memcpy(&bits, &d, sizeof bits);
        return mix(bits ^ 0x55);
    }
    case JSON_STRING:
        return hash_bytes(json_string_value(v), json_string_length(v));
    case JSON_ARRAY: {
        unsigned long long h = 0x66;
        for (size_t i = 0; i < json_array_size(v); i++)
            h = mix(h * 31 + fm_schema_json_hash(json_array_get(v, i)));
        return h;
    }
    case JSON_OBJECT: {
        /* order-independent: a sum of per-member hashes */
        unsigned long long h = 0x77;
        const char *k;
        size_t klen;
        json_t *m;
        json_object_keylen_foreach((json_t *)v, k, klen, m)
        {
            h += mix(hash_bytes(k, klen) * 0x9e3779b97f4a7c15ULL + fm_schema_json_hash(m));
        }
        return mix(h);
    }
    }
    return 0;
}
