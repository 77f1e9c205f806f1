/* fm_db_run: the one statement helper the table modules use (see fm_db.h).
 * Engine-neutral: it calls only the fm_db API, so SQLite and PostgreSQL
 * get the same caching, binding and stepping. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "fleetmcp/fm_db.h"

/* Enough for every statement the table modules run; past it a run
 * prepares its statement for that run alone (correct, slower), so a
 * module that grows beyond the cache does not break, it shows in bench. */
#define RUN_CACHE 128
/* Table modules that check their schema once per connection (fm_db_mark). */
#define RUN_MARKS 32

struct fm_db_run_cache {
    struct {
        const char *sql;
        fm_db_stmt *s;
        bool busy;  /* a run is stepping it (a row callback may nest runs) */
        bool loose; /* handed out by fm_db_kept: may be mid-rows, bound */
    } e[RUN_CACHE];
    /* fm_db_kept's statements past a full cache whose idle entries are
     * all held by callers: never replaced, as a caller may still hold
     * one; finalized with the cache. */
    struct kept_extra {
        const char *sql;
        fm_db_stmt *s;
        struct kept_extra *next;
    } * extra;
    /* fm_db_mark's keys: things done once per connection. */
    const void *marks[RUN_MARKS];
    int n_marks;
};

void fm_db_run_forget(fm_db *db)
{
    if (!db || !db->cache) return;
    for (int i = 0; i < RUN_CACHE; i++)
        fm_db_finalize(db->cache->e[i].s);
    for (struct kept_extra *x = db->cache->extra, *next; x; x = next) {
        next = x->next;
        fm_db_finalize(x->s);
        free(x);
    }
    free(db->cache);
    db->cache = NULL;
}

/* db's cache, made at first use (NULL: out of memory). */
static struct fm_db_run_cache *cache_of(fm_db *db)
{
    if (!db->cache) db->cache = calloc(1, sizeof *db->cache);
    return db->cache;
}

/* The one lookup of both hand-outs: the entry kept for sql, or -1; then
 * *free_slot is the first empty entry and *spare an idle one no caller
 * of fm_db_kept holds (-1: none). */
static int lookup(const struct fm_db_run_cache *c, const char *sql, int *free_slot, int *spare)
{
    *free_slot = *spare = -1;
    for (int i = 0; i < RUN_CACHE; i++) {
        if (c->e[i].sql == sql) return i;
        if (!c->e[i].sql && *free_slot < 0)
            *free_slot = i;
        else if (c->e[i].sql && !c->e[i].busy && !c->e[i].loose)
            *spare = i;
    }
    return -1;
}

/* Idle entry i handed to a run (busy) or to a caller of fm_db_kept
 * (loose), reset and unbound first when a caller of fm_db_kept left it
 * (mid-rows, bound): a run resets its own when it ends. */
static fm_db_stmt *take(struct fm_db_run_cache *c, int i, bool loose)
{
    if (c->e[i].loose) {
        fm_db_reset(c->e[i].s);
        fm_db_clear_bindings(c->e[i].s);
    }
    c->e[i].loose = loose;
    c->e[i].busy = !loose;
    return c->e[i].s;
}

/* sql prepared into entry i (empty, or idle: its statement is replaced
 * once the new one is made) and taken. */
static fm_db_stmt *keep(fm_db *db, int i, const char *sql, bool loose)
{
    struct fm_db_run_cache *c = db->cache;
    fm_db_stmt *s = NULL;
    if (fm_db_prepare_v3(db, sql, -1, FM_DB_PREPARE_PERSISTENT, &s, NULL) != FM_DB_OK) return NULL;
    fm_db_finalize(c->e[i].s);
    c->e[i].sql = sql;
    c->e[i].s = s;
    c->e[i].loose = false;
    return take(c, i, loose);
}

/* The kept statement for sql, or a fresh one in *own (finalized by the
 * caller) when it is busy or the cache is full.  *slot: the entry marked
 * busy, or -1. */
static fm_db_stmt *get(fm_db *db, const char *sql, fm_db_stmt **own, int *slot)
{
    *own = NULL;
    *slot = -1;
    struct fm_db_run_cache *c = cache_of(db);
    int free_slot = -1, spare = -1, hit = c ? lookup(c, sql, &free_slot, &spare) : -1;
    if (hit >= 0 && !c->e[hit].busy) {
        *slot = hit;
        return take(c, hit, false);
    }
    if (hit < 0 && free_slot >= 0) {
        fm_db_stmt *s = keep(db, free_slot, sql, false);
        if (s) *slot = free_slot;
        return s;
    }
    /* In use by an outer run, or no room: this run's own copy. */
    if (fm_db_prepare_v2(db, sql, -1, own, NULL) != FM_DB_OK) return NULL;
    return *own;
}

/* fm_db_kept past a cache full of held statements: sql's statement in
 * the extra list, reset and unbound, made there at first use. */
static fm_db_stmt *kept_extra(fm_db *db, struct fm_db_run_cache *c, const char *sql)
{
    for (struct kept_extra *x = c->extra; x; x = x->next) {
        if (x->sql != sql) continue;
        fm_db_reset(x->s);
        fm_db_clear_bindings(x->s);
        return x->s;
    }
    struct kept_extra *x = calloc(1, sizeof *x);
    if (!x || fm_db_prepare_v3(db, sql, -1, FM_DB_PREPARE_PERSISTENT, &x->s, NULL) != FM_DB_OK) {
        free(x);
        return NULL;
    }
    x->sql = sql;
    x->next = c->extra;
    c->extra = x;
    return x->s;
}

fm_db_stmt *fm_db_kept(fm_db *db, const char *sql)
{
    struct fm_db_run_cache *c = db ? cache_of(db) : NULL;
    if (!c) return NULL;
    int free_slot, spare, hit = lookup(c, sql, &free_slot, &spare);
    /* Stepped by a run right now: resetting it would cut that run. */
    if (hit >= 0) return c->e[hit].busy ? NULL : take(c, hit, true);
    if (free_slot < 0 && spare < 0) return kept_extra(db, c, sql);
    /* Full (more hot statements than slots): an idle entry of the runs'
     * is replaced, never one a caller holds. */
    return keep(db, free_slot >= 0 ? free_slot : spare, sql, true);
}

/* One parameter, i (1-based), of type type (see fm_db.h); p and len for
 * the pointer types, iv and dv for the numbers. */
static int bind_one(fm_db_stmt *s, int i, char type, const void *p, int len, int64_t iv, double dv)
{
    switch (type) {
    case 't':
        return fm_db_bind_text(s, i, p, -1, FM_DB_STATIC);
    case 'T':
        return fm_db_bind_text(s, i, p, len, FM_DB_STATIC);
    case 'b':
        return fm_db_bind_blob(s, i, p ? p : "", len, FM_DB_STATIC);
    case 'i':
    case 'n':
        return fm_db_bind_int64(s, i, iv);
    case 'd':
        return fm_db_bind_double(s, i, dv);
    default:
        /* A programming error in a table module, caught by its tests. */
        fprintf(stderr, "fm_db_run: unknown parameter type '%c'\n", type);
        return FM_DB_ERROR;
    }
}

static int bind_all(fm_db_stmt *s, const char *types, va_list ap)
{
    for (int i = 1; types && types[i - 1]; i++) {
        char t = types[i - 1];
        const void *p = NULL;
        int len = 0;
        int64_t iv = 0;
        double dv = 0;
        if (t == 't')
            p = va_arg(ap, const char *);
        else if (t == 'T' || t == 'b')
            p = va_arg(ap, const void *), len = va_arg(ap, int);
        else if (t == 'i')
            iv = va_arg(ap, int64_t);
        else if (t == 'n')
            iv = va_arg(ap, int);
        else if (t == 'd')
            dv = va_arg(ap, double);
        int rc = bind_one(s, i, t, p, len, iv, dv);
        if (rc != FM_DB_OK) return rc;
    }
    return FM_DB_OK;
}

static int bind_params(fm_db_stmt *s, const fm_db_param *p, int n)
{
    for (int i = 0; i < n; i++) {
        int rc = bind_one(s, i + 1, p[i].type, p[i].p, p[i].len, p[i].i, p[i].d);
        if (rc != FM_DB_OK) return rc;
    }
    return FM_DB_OK;
}

/* Steps s (bound when rc is FM_DB_OK) into row and gives it back. */
static int step_release(fm_db *db, fm_db_stmt *s, fm_db_stmt *own, int slot, int rc,
                        fm_db_row_fn row, void *arg)
{
    if (rc == FM_DB_OK) {
        while ((rc = fm_db_step(s)) == FM_DB_ROW)
            if (row && row(s, arg)) break;
        /* A write reports DONE; a read the callback did not stop too. */
    }
    if (own) {
        fm_db_finalize(own);
    } else {
        fm_db_reset(s);
        fm_db_clear_bindings(s);
        db->cache->e[slot].busy = false;
    }
    return rc;
}

int fm_db_runv(fm_db *db, const char *sql, fm_db_row_fn row, void *arg, const char *types,
               va_list ap)
{
    fm_db_stmt *own, *s;
    int slot;
    if (!db || !(s = get(db, sql, &own, &slot))) return FM_DB_ERROR;
    return step_release(db, s, own, slot, bind_all(s, types, ap), row, arg);
}

int fm_db_run(fm_db *db, const char *sql, fm_db_row_fn row, void *arg, const char *types, ...)
{
    va_list ap;
    va_start(ap, types);
    int rc = fm_db_runv(db, sql, row, arg, types, ap);
    va_end(ap);
    return rc;
}

int fm_db_run_params(fm_db *db, const char *sql, fm_db_row_fn row, void *arg,
                     const fm_db_param *params, int n)
{
    fm_db_stmt *own, *s;
    int slot;
    if (!db || n < 0 || !(s = get(db, sql, &own, &slot))) return FM_DB_ERROR;
    return step_release(db, s, own, slot, bind_params(s, params, n), row, arg);
}

int fm_db_marked(fm_db *db, const void *key)
{
    for (int i = 0; db && db->cache && i < db->cache->n_marks; i++)
        if (db->cache->marks[i] == key) return 1;
    return 0;
}

void fm_db_mark(fm_db *db, const void *key)
{
    if (!db || fm_db_marked(db, key)) return;
    /* No room (or memory): unmarked, so the caller does its work again. */
    if (!cache_of(db) || db->cache->n_marks == RUN_MARKS) return;
    db->cache->marks[db->cache->n_marks++] = key;
}

int fm_db_row_int64(fm_db_stmt *row, void *arg)
{
    *(int64_t *)arg = fm_db_column_int64(row, 0);
    return 1;
}

long long fm_db_count(fm_db *db, const char *sql, const char *types, ...)
{
    int64_t n = 0;
    va_list ap;
    va_start(ap, types);
    int rc = fm_db_runv(db, sql, fm_db_row_int64, &n, types, ap);
    va_end(ap);
    return rc == FM_DB_ROW || rc == FM_DB_DONE ? n : -1;
}

int fm_db_row_text(fm_db_stmt *row, void *arg)
{
    fm_db_text_buf *t = arg;
    const unsigned char *v = fm_db_column_text(row, 0);
    snprintf(t->buf, t->len, "%s", v ? (const char *)v : "");
    t->found = 1;
    return 1;
}
