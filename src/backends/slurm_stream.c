/* Slurm's big answers read as they arrive.  slurmrestd's /nodes on 16,384
 * nodes is ~21 MB; held whole, it alone puts the server over its memory
 * budget.  This splitter takes the text in pieces (libcurl's), cuts each
 * entry of the top-level "nodes" or "jobs" array out as soon as it is
 * complete, and hands it to slurm_slim.c's field-picking reader; the rest
 * of the document (meta, errors) is kept, with the array emptied, and read
 * by the same reader at the end.  So memory is one entry plus the small
 * remainder, and the result is what fm_slurm_scan_answer gives on the
 * whole text (tests feed every fixture both ways, byte by byte too).
 * Untrusted input: entry and remainder sizes and nesting are bounded; any
 * syntax error fails the whole answer. */
#include <stdlib.h>
#include <string.h>

#include "fleetmcp/fm_slurm.h"

#define MAX_DEPTH 64
#define MAX_ENTRY (1u << 20) /* one node or job */
#define MAX_REST (1u << 20)  /* everything but the entries */

struct fm_slurm_stream {
    bool jobs;
    fm_slurm_entry_cb cb;
    void *ud;
    int depth;
    bool in_str, esc;
    bool key_at_top;  /* the open string is a key or value of the top object */
    char key[8];      /* the last such string, if short ("nodes", "jobs") */
    size_t key_len;   /* its length (may exceed sizeof key: then no match) */
    bool in_array;    /* inside the streamed array */
    bool want_entry;  /* in the array, after '[' or ',' */
    size_t entries;   /* entries of the current array */
    char *ent, *rest; /* the entry being cut; the remainder */
    size_t ent_len, rest_len, ent_cap, rest_cap;
    bool failed;
};

fm_slurm_stream *fm_slurm_stream_new(bool jobs, fm_slurm_entry_cb cb, void *ud)
{
    fm_slurm_stream *st = calloc(1, sizeof *st);
    if (!st) return NULL;
    st->jobs = jobs;
    st->cb = cb;
    st->ud = ud;
    return st;
}

/* Room for n more bytes in *buf (grown by doubling, at most max); false
 * when that would pass max or memory is short. */
static bool room(char **buf, size_t *cap, size_t len, size_t n, size_t max)
{
    if (len + n <= *cap) return true;
    if (n > max - len) return false;
    size_t c = *cap ? *cap : 4096;
    while (c < len + n)
        c *= 2;
    if (c > max) c = max;
    char *nb = realloc(*buf, c);
    if (!nb) return false;
    *buf = nb;
    *cap = c;
    return true;
}

void fm_slurm_stream_free(fm_slurm_stream *st)
{
    if (!st) return;
    free(st->ent);
    free(st->rest);
    free(st);
}

static int fail(fm_slurm_stream *st, fm_err *err, const char *why)
{
    st->failed = true;
    return fm_err_set(err, FM_ERR_PARSE, "Slurm's %s answer: %s", st->jobs ? "jobs" : "nodes", why),
           -1;
}

/* Strings and nesting, for the byte c outside the array's own level. */
static int track(fm_slurm_stream *st, char c, fm_err *err)
{
    if (st->in_str) {
        if (st->esc)
            st->esc = false;
        else if (c == '\\')
            st->esc = true;
        else if (c == '"')
            st->in_str = false;
        if (st->in_str && st->key_at_top && st->key_len++ < sizeof st->key)
            st->key[st->key_len - 1] = c;
        return 0;
    }
    if (c == '"') {
        st->in_str = true;
        st->key_at_top = st->depth == 1;
        if (st->key_at_top) st->key_len = 0;
    } else if (c == '{' || c == '[') {
        if (++st->depth > MAX_DEPTH) return fail(st, err, "nested too deep");
    } else if (c == '}' || c == ']') {
        if (--st->depth < 0) return fail(st, err, "unbalanced brackets");
    }
    return 0;
}

static bool array_key(const fm_slurm_stream *st)
{
    const char *k = st->jobs ? "jobs" : "nodes";
    size_t n = strlen(k);
    return st->key_len == n && !memcmp(st->key, k, n);
}

/* A complete entry's text to the reader and on to cb. */
static int entry_done(fm_slurm_stream *st, fm_err *err)
{
    json_t *e = fm_slurm_take_entry(st->ent, st->ent_len, st->jobs);
    if (!e) return fail(st, err, "an entry is not valid JSON");
    int rc = st->cb(st->ud, e);
    json_decref(e);
    st->entries++;
    if (rc) {
        st->failed = true;
        return -1;
    }
    return 0;
}

static int one_byte(fm_slurm_stream *st, char c, fm_err *err)
{
    bool space = c == ' ' || c == '\n' || c == '\r' || c == '\t';
    if (st->in_array && st->depth == 2) { /* between entries */
        if (space) return 0;
        if (c == '{' && st->want_entry) {
            st->want_entry = false;
            st->ent_len = 0;
            if (!room(&st->ent, &st->ent_cap, 0, 1, MAX_ENTRY))
                return fail(st, err, "no memory for an entry");
            st->ent[st->ent_len++] = c;
            st->depth++;
            return 0;
        }
        if (c == ',' && !st->want_entry) {
            st->want_entry = true;
            return 0;
        }
        if (c == ']' && (!st->want_entry || !st->entries)) {
            st->in_array = false; /* the remainder keeps "[]" */
        } else {
            return fail(st, err, "the array holds something other than objects");
        }
    } else if (st->in_array) { /* inside an entry */
        if (!room(&st->ent, &st->ent_cap, st->ent_len, 1, MAX_ENTRY))
            return fail(st, err, "one entry over 1 MiB");
        st->ent[st->ent_len++] = c;
        if (track(st, c, err)) return -1;
        return st->depth == 2 ? entry_done(st, err) : 0;
    }
    if (!room(&st->rest, &st->rest_cap, st->rest_len, 1, MAX_REST))
        return fail(st, err, "over 1 MiB outside its entries");
    st->rest[st->rest_len++] = c;
    bool opens = !st->in_str && c == '[' && st->depth == 1 && array_key(st);
    if (track(st, c, err)) return -1;
    if (opens) {
        st->in_array = st->want_entry = true;
        st->entries = 0;
    }
    return 0;
}

/* Inside an entry, the common case: runs to the entry's end or the
 * piece's, copying the run at once (one byte at a time costs more than
 * the field reader itself on 21 MB).  Returns how many bytes it took. */
static size_t entry_run(fm_slurm_stream *st, const char *p, size_t n, fm_err *err)
{
    size_t j = 0;
    bool done = false;
    for (; j < n && !done; j++) {
        if (track(st, p[j], err)) return 0;
        done = st->depth == 2;
    }
    if (!room(&st->ent, &st->ent_cap, st->ent_len, j, MAX_ENTRY))
        return fail(st, err, "one entry over 1 MiB"), 0;
    memcpy(st->ent + st->ent_len, p, j);
    st->ent_len += j;
    if (done && entry_done(st, err)) return 0;
    return j;
}

int fm_slurm_stream_feed(fm_slurm_stream *st, const char *p, size_t n, fm_err *err)
{
    if (st->failed) return -1;
    for (size_t i = 0; i < n;) {
        if (st->in_array && st->depth > 2) {
            size_t k = entry_run(st, p + i, n - i, err);
            if (!k) return -1;
            i += k;
        } else if (one_byte(st, p[i++], err)) {
            return -1;
        }
    }
    return 0;
}

static int no_entry(void *ud, json_t *entry)
{
    (void)ud, (void)entry;
    return 0; /* the remainder's arrays are empty */
}

int fm_slurm_stream_end(fm_slurm_stream *st, json_t **errors, fm_err *err)
{
    *errors = NULL;
    if (st->failed) return -1;
    if (st->in_str || st->in_array || st->depth) return fail(st, err, "the text ends early");
    int rc = fm_slurm_scan_answer(st->rest ? st->rest : "", st->rest_len, st->jobs, no_entry, NULL,
                                  errors, err);
    if (rc < 0) return -1;
    return rc || st->entries ? 1 : 0;
}
