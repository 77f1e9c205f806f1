/* A field-picking reader for Slurm's big answers (sinfo/squeue --json,
 * slurmrestd /nodes and /jobs).  Building a full jansson tree of a
 * 2,000-node answer (2.6 MB, ~50 keys per node) costs more than sinfo
 * itself; the normalizer reads a dozen keys per entry.  So this scanner
 * walks the text once, skips what it does not need, and builds JSON values
 * only for the wanted keys of each entry (plus the small "errors" array).
 * The result has the same shape as the full parse restricted to those keys,
 * so the normalizer cannot tell the difference (tests compare both paths on
 * every fixture).  Untrusted input: depth and lengths are bounded, any
 * syntax error fails the whole parse. */
#include <stdlib.h>
#include <string.h>

#include "fleetmcp/fm_slurm.h"

#define MAX_DEPTH 64

typedef struct scan {
    const char *p, *end;
    int depth;
} scan;

static const char *const NODE_KEYS[] = {
    "name",       "state",    "state_flags", "reason", "reason_set_by_user", "reason_changed_at",
    "partitions", "features", "gres",        "cpus",   "real_memory",        "boot_time",
    NULL};
static const char *const JOB_KEYS[] = {"job_id",         "name",
                                       "user_name",      "job_state",
                                       "state_reason",   "nodes",
                                       "partition",      "start_time",
                                       "time_limit",     "exit_code",
                                       "tres_alloc_str", "tres_per_node",
                                       "tres_req_str",   "standard_output",
                                       "standard_error", "current_working_directory",
                                       "batch_host",     "array_job_id",
                                       "array_task_id",  NULL};

static void ws(scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
        s->p++;
}

static bool eat(scan *s, char c)
{
    ws(s);
    if (s->p < s->end && *s->p == c) {
        s->p++;
        return true;
    }
    return false;
}

/* Skips a string whose opening quote was consumed; start/len give the raw
 * (still escaped) contents. */
static bool skip_str(scan *s, const char **start, size_t *len)
{
    const char *b = s->p;
    while (s->p < s->end) {
        char c = *s->p++;
        if (c == '"') {
            if (start) *start = b, *len = (size_t)(s->p - 1 - b);
            return true;
        }
        if (c == '\\') {
            if (s->p >= s->end) return false;
            s->p++;
        } else if ((unsigned char)c < 0x20) {
            return false;
        }
    }
    return false;
}

static bool skip_value(scan *s);

static bool skip_container(scan *s, char close, bool object)
{
    if (++s->depth > MAX_DEPTH) return false;
    if (eat(s, close)) {
        s->depth--;
        return true;
    }
    do {
        if (object) {
            if (!eat(s, '"') || !skip_str(s, NULL, NULL) || !eat(s, ':')) return false;
        }
        if (!skip_value(s)) return false;
    } while (eat(s, ','));
    s->depth--;
    return eat(s, close);
}

static bool skip_value(scan *s)
{
    ws(s);
    if (s->p >= s->end) return false;
    char c = *s->p++;
    if (c == '"') return skip_str(s, NULL, NULL);
    if (c == '{') return skip_container(s, '}', true);
    if (c == '[') return skip_container(s, ']', false);
    s->p--;
    const char *b = s->p;
    while (s->p < s->end && (strchr("+-.eE", *s->p) || (*s->p >= '0' && *s->p <= '9') ||
                             (*s->p >= 'a' && *s->p <= 'z')))
        s->p++;
    return s->p > b;
}

/* Builds one value (bounded depth).  Plain strings, integers, literals,
 * arrays and objects are built directly; strings with escapes and
 * non-integer numbers go through jansson so they decode exactly as the
 * full parse would. */
static json_t *take_value(scan *s)
{
    ws(s);
    if (s->p >= s->end || s->depth >= MAX_DEPTH) return NULL;
    const char *b = s->p;
    char c = *s->p;
    if (c == '"') {
        const char *str;
        size_t n;
        s->p++;
        if (!skip_str(s, &str, &n)) return NULL;
        if (!memchr(str, '\\', n)) return json_stringn(str, n);
        return json_loadb(b, (size_t)(s->p - b), JSON_DECODE_ANY, NULL);
    }
    if (c == '[') {
        s->p++;
        s->depth++;
        json_t *a = json_array();
        if (!eat(s, ']')) {
            do {
                json_t *v = take_value(s);
                if (!v) {
                    json_decref(a);
                    return NULL;
                }
                json_array_append_new(a, v);
            } while (eat(s, ','));
            if (!eat(s, ']')) {
                json_decref(a);
                return NULL;
            }
        }
        s->depth--;
        return a;
    }
    if (c == '{') {
        s->p++;
        s->depth++;
        json_t *o = json_object();
        if (!eat(s, '}')) {
            do {
                const char *k;
                size_t kl;
                json_t *v = NULL;
                char key[128];
                if (!eat(s, '"') || !skip_str(s, &k, &kl) || kl >= sizeof key ||
                    memchr(k, '\\', kl) || !eat(s, ':') || !(v = take_value(s))) {
                    json_decref(o);
                    return NULL;
                }
                memcpy(key, k, kl);
                key[kl] = '\0';
                json_object_set_new(o, key, v);
            } while (eat(s, ','));
            if (!eat(s, '}')) {
                json_decref(o);
                return NULL;
            }
        }
        s->depth--;
        return o;
    }
    if (!skip_value(s)) return NULL;
    size_t n = (size_t)(s->p - b);
    if (n == 4 && memcmp(b, "null", 4) == 0) return json_null();
    if (n == 4 && memcmp(b, "true", 4) == 0) return json_true();
    if (n == 5 && memcmp(b, "false", 5) == 0) return json_false();
    bool integer = n < 19;
    for (size_t i = 0; i < n && integer; i++)
        integer = (b[i] >= '0' && b[i] <= '9') || (i == 0 && b[i] == '-' && n > 1);
    if (integer) {
        char num[24]; /* buf need not be NUL-terminated */
        memcpy(num, b, n);
        num[n] = '\0';
        return json_integer(strtoll(num, NULL, 10));
    }
    return json_loadb(b, n, JSON_DECODE_ANY, NULL);
}

static bool wanted(const char *const *keys, const char *k, size_t n)
{
    for (; *keys; keys++)
        if (**keys == *k && strncmp(*keys, k, n) == 0 && (*keys)[n] == '\0') return true;
    return false;
}

/* One entry of the array: an object reduced to the wanted keys (new). */
static json_t *take_entry(scan *s, const char *const *keys)
{
    if (!eat(s, '{')) return NULL;
    json_t *o = json_object();
    if (eat(s, '}')) return o;
    do {
        const char *k;
        size_t kl;
        if (!eat(s, '"') || !skip_str(s, &k, &kl) || !eat(s, ':')) goto fail;
        if (wanted(keys, k, kl)) {
            json_t *v = take_value(s);
            if (!v) goto fail;
            char key[64];
            memcpy(key, k, kl);
            key[kl] = '\0';
            json_object_set_new(o, key, v);
        } else if (!skip_value(s)) {
            goto fail;
        }
    } while (eat(s, ','));
    if (eat(s, '}')) return o;
fail:
    json_decref(o);
    return NULL;
}

int fm_slurm_scan_answer(const char *buf, size_t len, bool jobs, fm_slurm_entry_cb cb, void *ud,
                         json_t **errors, fm_err *err)
{
    const char *array_key = jobs ? "jobs" : "nodes";
    const char *const *keys = jobs ? JOB_KEYS : NODE_KEYS;
    scan s = {buf, buf + len, 0};
    *errors = NULL;
    bool seen = false;
    if (!eat(&s, '{')) goto bad;
    if (eat(&s, '}')) goto done;
    do {
        const char *k;
        size_t kl;
        if (!eat(&s, '"') || !skip_str(&s, &k, &kl) || !eat(&s, ':')) goto bad;
        if (kl == strlen(array_key) && memcmp(k, array_key, kl) == 0) {
            seen = true;
            if (!eat(&s, '[')) goto bad;
            if (eat(&s, ']')) continue;
            do {
                json_t *e = take_entry(&s, keys);
                if (!e) goto bad;
                /* one entry at a time: the answer's tree is never built */
                int rc = cb(ud, e);
                json_decref(e);
                if (rc) {
                    json_decref(*errors);
                    *errors = NULL;
                    return -1;
                }
            } while (eat(&s, ','));
            if (!eat(&s, ']')) goto bad;
        } else if (kl == 6 && memcmp(k, "errors", 6) == 0) {
            json_t *v = take_value(&s);
            if (!v) goto bad;
            json_decref(*errors);
            *errors = v;
        } else if (!skip_value(&s)) {
            goto bad;
        }
    } while (eat(&s, ','));
    if (!eat(&s, '}')) goto bad;
done:
    ws(&s);
    if (s.p == s.end) return seen ? 1 : 0;
bad:
    json_decref(*errors);
    *errors = NULL;
    fm_err_set(err, FM_ERR_PARSE, "Slurm's %s answer is not valid JSON (near byte %zu of %zu)",
               array_key, (size_t)(s.p - buf), len);
    return -1;
}

json_t *fm_slurm_take_entry(const char *buf, size_t len, bool jobs)
{
    scan s = {buf, buf + len, 0};
    json_t *e = take_entry(&s, jobs ? JOB_KEYS : NODE_KEYS);
    ws(&s);
    if (e && s.p != s.end) {
        json_decref(e);
        return NULL;
    }
    return e;
}

static int append_entry(void *ud, json_t *entry)
{
    return json_array_append(ud, entry);
}

json_t *fm_slurm_parse_answer(const char *buf, size_t len, bool jobs, fm_err *err)
{
    json_t *arr = json_array(), *errors = NULL;
    int rc = fm_slurm_scan_answer(buf, len, jobs, append_entry, arr, &errors, err);
    if (rc < 0) {
        json_decref(arr);
        return NULL;
    }
    json_t *out = json_object();
    if (rc > 0)
        json_object_set_new(out, jobs ? "jobs" : "nodes", arr);
    else
        json_decref(arr);
    if (errors) json_object_set_new(out, "errors", errors);
    return out;
}
