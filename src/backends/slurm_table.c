/* The node table kept between calls (include/fleetmcp/fm_slurm_table.h).
 * Nodes are sorted by name for lookups; partitions are interned into a
 * 64-bit mask per node, so a capacity count is a walk over small structs. */
#include "fleetmcp/fm_slurm_table.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <strings.h>

#define MAX_TABLE_PARTS 64
#define MAX_TABLE_NODES 1000000

typedef struct entry {
    uint64_t parts; /* bit i: partition part[i] */
    uint32_t pos;   /* place in Slurm's listing */
    bool in_service;
    char *text;    /* normalized node, compact JSON */
    char name[64]; /* fm_slurm_valid_node_name: at most 63 characters */
} entry;

typedef struct nodeset {
    entry *e;
    uint32_t *order; /* e's indexes in Slurm's listing order, for walks */
    size_t n, cap;
    char part[MAX_TABLE_PARTS][72];
    size_t nparts;
    bool parts_overflow; /* a partition beyond MAX_TABLE_PARTS: no capacity answers */
    char *arena;         /* restored from a snapshot: every text points into it */
} nodeset;

struct fm_slurm_table {
    nodeset s;
    bool loaded;
    long long stamp;
};

struct fm_slurm_table_load {
    fm_slurm_table *t;
    fm_slurm_nodes_feed *fd;
    nodeset next;
    bool failed;
    fm_err *err;
};

bool fm_slurm_node_schedulable(const json_t *node)
{
    static const char *const out[] = {"DRAIN",         "DRAINING",       "DRAINED",
                                      "DOWN",          "FAIL",           "FAILING",
                                      "MAINT",         "REBOOT",         "REBOOT_REQUESTED",
                                      "REBOOT_ISSUED", "NOT_RESPONDING", "INVAL",
                                      "POWERED_DOWN",  "POWERING_DOWN",  "UNKNOWN",
                                      "FUTURE",        "RESERVED"};
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(node, "state"), i, v)
    {
        const char *w = json_string_value(v);
        for (size_t k = 0; w && k < sizeof out / sizeof *out; k++)
            if (!strcasecmp(w, out[k])) return false;
    }
    return true;
}

static void set_free(nodeset *s)
{
    for (size_t i = 0; !s->arena && i < s->n; i++)
        free(s->e[i].text);
    free(s->arena);
    free(s->e);
    free(s->order);
    memset(s, 0, sizeof *s);
}

fm_slurm_table *fm_slurm_table_new(void)
{
    return calloc(1, sizeof(fm_slurm_table));
}

void fm_slurm_table_clear(fm_slurm_table *t)
{
    if (!t) return;
    set_free(&t->s);
    t->loaded = false;
    t->stamp = 0;
}

void fm_slurm_table_free(fm_slurm_table *t)
{
    fm_slurm_table_clear(t);
    free(t);
}

bool fm_slurm_table_loaded(const fm_slurm_table *t)
{
    return t && t->loaded;
}

size_t fm_slurm_table_size(const fm_slurm_table *t)
{
    return t ? t->s.n : 0;
}

long long fm_slurm_table_stamp(const fm_slurm_table *t)
{
    return t ? t->stamp : 0;
}

static int part_index(nodeset *s, const char *p)
{
    for (size_t i = 0; i < s->nparts; i++)
        if (!strcmp(s->part[i], p)) return (int)i;
    if (s->nparts == MAX_TABLE_PARTS || strlen(p) >= sizeof s->part[0]) return -1;
    strcpy(s->part[s->nparts], p);
    return (int)s->nparts++;
}

/* fm_slurm_node_cb: one normalized node into the set being built. */
static int add_node(void *ud, const json_t *node, fm_err *err)
{
    fm_slurm_table_load *l = ud;
    nodeset *s = &l->next;
    const char *name = json_string_value(json_object_get(node, "name"));
    /* The normalizer refuses such a node (and so the whole listing), so
     * the table holds every node a listing would give. */
    if (!name || !fm_slurm_valid_node_name(name)) return 0;
    if (s->n == MAX_TABLE_NODES)
        return fm_err_set(err, FM_ERR_TOO_LARGE, "more than %d nodes in Slurm's answer",
                          MAX_TABLE_NODES),
               -1;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        entry *e = realloc(s->e, cap * sizeof *e);
        if (!e) return fm_err_set(err, FM_ERR_NOMEM, "node table"), -1;
        s->e = e;
        s->cap = cap;
    }
    entry *e = &s->e[s->n];
    memset(e, 0, sizeof *e);
    e->text = json_dumps(node, JSON_COMPACT);
    if (!e->text) return fm_err_set(err, FM_ERR_NOMEM, "node table"), -1;
    strcpy(e->name, name);
    e->pos = (uint32_t)s->n;
    e->in_service = fm_slurm_node_schedulable(node);
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(node, "partitions"), i, p)
    {
        int k = json_is_string(p) ? part_index(s, json_string_value(p)) : -1;
        if (k < 0)
            s->parts_overflow = true;
        else
            e->parts |= (uint64_t)1 << k;
    }
    s->n++;
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const entry *)a)->name, ((const entry *)b)->name);
}

/* Makes next (its entries in listing order) the table: sorted by name for
 * lookups, with the listing order kept for walks.  false (t unchanged,
 * next kept for the caller to free) when it has no node or no memory. */
static bool install(fm_slurm_table *t, nodeset *next, long long stamp)
{
    if (!next->n || !(next->order = malloc(next->n * sizeof *next->order))) return false;
    qsort(next->e, next->n, sizeof *next->e, by_name);
    /* Slurm lists a node once; a snapshot naming one twice is not a listing. */
    for (size_t i = 1; i < next->n; i++)
        if (!strcmp(next->e[i - 1].name, next->e[i].name)) return false;
    for (size_t i = 0; i < next->n; i++)
        next->order[next->e[i].pos] = (uint32_t)i;
    set_free(&t->s);
    t->s = *next;
    memset(next, 0, sizeof *next);
    t->loaded = true;
    t->stamp = stamp;
    return true;
}

fm_slurm_table_load *fm_slurm_table_load_open(fm_slurm_table *t, const fm_slurm_domains *dom,
                                              fm_err *err)
{
    fm_slurm_table_load *l = calloc(1, sizeof *l);
    if (!l) return fm_err_set(err, FM_ERR_NOMEM, "node table"), NULL;
    l->t = t;
    l->err = err;
    l->fd = fm_slurm_nodes_feed_open(dom, NULL, add_node, l, err);
    if (!l->fd) {
        free(l);
        return NULL;
    }
    return l;
}

int fm_slurm_table_load_push(void *load, const char *p, size_t n)
{
    fm_slurm_table_load *l = load;
    if (l->failed) return -1;
    if (fm_slurm_nodes_feed_push(l->fd, p, n)) l->failed = true;
    return l->failed ? -1 : 0;
}

int fm_slurm_table_load_close(fm_slurm_table_load *l, long status, long long stamp, json_t **errors,
                              fm_err *err)
{
    *errors = NULL;
    int rc = fm_slurm_nodes_feed_close(l->fd, errors);
    if (*errors && !json_array_size(*errors)) { /* "errors": [] is no error */
        json_decref(*errors);
        *errors = NULL;
    }
    fm_slurm_table_result res;
    if (status == 200 && !rc && !*errors && install(l->t, &l->next, stamp)) {
        res = FM_TABLE_REPLACED;
    } else {
        res = status == 304 ? FM_TABLE_UNCHANGED : FM_TABLE_REREAD;
        /* A 304 has no body to read, and an answer that is not a listing
         * is the caller's to judge (*errors): neither is a failure here. */
        if (rc && err) fm_err_clear(err);
        if (status == 304) {
            json_decref(*errors);
            *errors = NULL;
        }
    }
    set_free(&l->next);
    free(l);
    return (int)res;
}

int fm_slurm_table_apply(fm_slurm_table *t, const fm_slurm_domains *dom, long status,
                         const char *body, size_t len, long long stamp, json_t **errors,
                         fm_err *err)
{
    *errors = NULL;
    fm_slurm_table_load *l = fm_slurm_table_load_open(t, dom, err);
    if (!l) return -1;
    if (len) fm_slurm_table_load_push(l, body, len);
    return fm_slurm_table_load_close(l, status, stamp, errors, err);
}

static const entry *find(const fm_slurm_table *t, const char *name)
{
    if (!t || !t->loaded || !name || strlen(name) >= sizeof t->s.e[0].name) return NULL;
    entry key;
    strcpy(key.name, name);
    return bsearch(&key, t->s.e, t->s.n, sizeof *t->s.e, by_name);
}

json_t *fm_slurm_table_node(const fm_slurm_table *t, const char *name)
{
    const entry *e = find(t, name);
    return e ? json_loads(e->text, 0, NULL) : NULL;
}

int fm_slurm_table_capacity(const fm_slurm_table *t, const char *const *parts, size_t n,
                            long *total, long *in_service, fm_err *err)
{
    if (!t || !t->loaded) return fm_err_set(err, FM_ERR_UNAVAILABLE, "no node table loaded"), -1;
    if (t->s.parts_overflow)
        return fm_err_set(err, FM_ERR_TOO_LARGE, "more than %d partitions in the node table",
                          MAX_TABLE_PARTS),
               -1;
    for (size_t i = 0; i < n; i++) {
        total[i] = in_service[i] = 0;
        int k = -1;
        for (size_t j = 0; parts[i] && j < t->s.nparts; j++)
            if (!strcmp(t->s.part[j], parts[i])) k = (int)j;
        if (k < 0) continue;
        uint64_t bit = (uint64_t)1 << k;
        for (size_t j = 0; j < t->s.n; j++) {
            if (!(t->s.e[j].parts & bit)) continue;
            total[i]++;
            in_service[i] += t->s.e[j].in_service;
        }
    }
    return 0;
}

int fm_slurm_table_each(const fm_slurm_table *t, const fm_slurm_node_filter *f, fm_slurm_node_cb cb,
                        void *ud, fm_err *err)
{
    if (!t || !t->loaded) return fm_err_set(err, FM_ERR_UNAVAILABLE, "no node table loaded"), -1;
    fm_slurm_node_matcher *m = fm_slurm_node_matcher_new(f, err);
    if (!m) return -1;
    int rc = 0;
    for (size_t i = 0; i < t->s.n && !rc; i++) {
        const entry *e = &t->s.e[t->s.order[i]];
        /* A partition filter is a bit test: no node is parsed that cannot match. */
        if (f && f->partition && *f->partition && !t->s.parts_overflow) {
            bool in = false;
            for (size_t k = 0; k < t->s.nparts && !in; k++)
                in = (e->parts >> k & 1) && !strcmp(t->s.part[k], f->partition);
            if (!in) continue;
        }
        json_t *n = json_loads(e->text, 0, NULL);
        if (!n) {
            fm_err_set(err, FM_ERR_NOMEM, "node table");
            rc = -1;
            break;
        }
        if (fm_slurm_node_matches(m, n)) rc = cb(ud, n, err) ? -1 : 0;
        json_decref(n);
    }
    fm_slurm_node_matcher_free(m);
    return rc;
}

/* ---- snapshots (fm_slurm_table_snapshot / _restore) ------------------- */

#define SNAP_MAGIC "fleetmcp-node-table 1"

static bool plain_line(const char *p)
{
    for (; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) return false;
    return true;
}

char *fm_slurm_table_snapshot(const fm_slurm_table *t, size_t max, size_t *len, fm_err *err)
{
    if (!t || !t->loaded) return fm_err_set(err, FM_ERR_UNAVAILABLE, "no node table loaded"), NULL;
    /* Over 64 partitions the table answers no capacity question, and its
     * masks cannot name every partition: nothing worth sharing. */
    if (t->s.parts_overflow)
        return fm_err_set(err, FM_ERR_TOO_LARGE, "more than %d partitions in the node table",
                          MAX_TABLE_PARTS),
               NULL;
    size_t need = sizeof SNAP_MAGIC + 48;
    for (size_t k = 0; k < t->s.nparts; k++) {
        if (!plain_line(t->s.part[k]))
            return fm_err_set(err, FM_ERR_INVALID, "a partition name has a control character"),
                   NULL;
        need += strlen(t->s.part[k]) + 1;
    }
    for (size_t i = 0; i < t->s.n && need <= max; i++)
        need += 21 + strlen(t->s.e[i].name) + strlen(t->s.e[i].text) + 1;
    if (need > max)
        return fm_err_set(err, FM_ERR_TOO_LARGE,
                          "the node table's snapshot would pass %zu bytes (slurm."
                          "max_response_bytes): not shared, every process reads Slurm",
                          max),
               NULL;
    char *out = malloc(need);
    if (!out) return fm_err_set(err, FM_ERR_NOMEM, "node table snapshot"), NULL;
    size_t n = (size_t)snprintf(out, need, SNAP_MAGIC " %zu %zu\n", t->s.n, t->s.nparts);
    for (size_t k = 0; k < t->s.nparts; k++)
        n += (size_t)snprintf(out + n, need - n, "%s\n", t->s.part[k]);
    for (size_t i = 0; i < t->s.n; i++) {
        const entry *e = &t->s.e[t->s.order[i]];
        n += (size_t)snprintf(out + n, need - n, "%d\t%llx\t%s\t%s\n", e->in_service ? 1 : 0,
                              (unsigned long long)e->parts, e->name, e->text);
    }
    *len = n;
    return out;
}

/* The line at *p (NUL-terminated in place), *p moved past it; NULL when
 * no whole line is left. */
static char *take_line(char **p, char *end)
{
    char *nl = *p < end ? memchr(*p, '\n', (size_t)(end - *p)) : NULL;
    if (!nl) return NULL;
    char *line = *p;
    *nl = '\0';
    *p = nl + 1;
    return line;
}

/* One node line: "<in service 0|1>\t<partition mask, hex>\t<name>\t<json>". */
static bool restore_node(nodeset *s, char *line, uint32_t pos)
{
    if ((line[0] != '0' && line[0] != '1') || line[1] != '\t' || !isxdigit((unsigned char)line[2]))
        return false;
    char *q;
    unsigned long long mask = strtoull(line + 2, &q, 16);
    if (*q != '\t' || (s->nparts < 64 && mask >> s->nparts)) return false;
    char *name = q + 1, *tab = strchr(name, '\t');
    if (!tab) return false;
    *tab = '\0';
    if (strlen(name) >= sizeof s->e[0].name || !fm_slurm_valid_node_name(name)) return false;
    char *text = tab + 1;
    size_t tl = strlen(text);
    if (tl < 2 || text[0] != '{' || text[tl - 1] != '}' || !plain_line(text)) return false;
    entry *e = &s->e[s->n++];
    memset(e, 0, sizeof *e);
    e->parts = mask;
    e->pos = pos;
    e->in_service = line[0] == '1';
    e->text = text;
    strcpy(e->name, name);
    return true;
}

int fm_slurm_table_restore_owned(fm_slurm_table *t, char *text, size_t len, long long stamp,
                                 fm_err *err)
{
    if (!t || !text || stamp <= 0) {
        free(text);
        return fm_err_set(err, FM_ERR_INVALID, "no snapshot"), -1;
    }
    nodeset next = {0};
    next.arena = text;
    next.arena[len] = '\0';
    char *p = next.arena, *end = next.arena + len, *line = take_line(&p, end);
    unsigned long long nn = 0;
    unsigned np = 0;
    int used = 0;
    bool ok = line && sscanf(line, SNAP_MAGIC " %llu %u%n", &nn, &np, &used) == 2 && !line[used] &&
              nn > 0 && nn <= MAX_TABLE_NODES && np <= MAX_TABLE_PARTS &&
              (next.e = malloc((size_t)nn * sizeof *next.e));
    next.cap = (size_t)nn;
    for (unsigned k = 0; ok && k < np; k++) {
        line = take_line(&p, end);
        ok = line && *line && strlen(line) < sizeof next.part[0] && plain_line(line);
        for (unsigned j = 0; ok && j < k; j++)
            ok = strcmp(next.part[j], line) != 0;
        if (ok) strcpy(next.part[next.nparts++], line);
    }
    for (uint32_t i = 0; ok && i < nn; i++)
        ok = (line = take_line(&p, end)) && restore_node(&next, line, i);
    /* Nothing may follow the last node, and the table is replaced whole or not at all. */
    if (ok && p == end && install(t, &next, stamp)) return 0;
    set_free(&next);
    return fm_err_set(err, FM_ERR_PARSE, "the node table snapshot is not one this build wrote"), -1;
}

int fm_slurm_table_restore(fm_slurm_table *t, const char *text, size_t len, long long stamp,
                           fm_err *err)
{
    char *copy = text && len < SIZE_MAX ? malloc(len + 1) : NULL;
    if (!copy) return fm_err_set(err, FM_ERR_NOMEM, "node table snapshot"), -1;
    memcpy(copy, text, len);
    return fm_slurm_table_restore_owned(t, copy, len, stamp, err);
}
