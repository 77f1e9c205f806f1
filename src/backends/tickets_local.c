/* Local tickets: the default backend, kept in the fleetmcp store so the
 * product works with no Jira.  Keys are FM-<n>.  Several server processes
 * may share the database: every write runs in BEGIN IMMEDIATE, and a
 * partial unique index keeps one open ticket per (node, fault class)
 * whatever the callers do. */
/* Data access: this file owns the tables ticket_attachments, ticket_comments, tickets; every
 * statement on them is here, others call its functions (the data-access stage checks). */
#include "fleetmcp/fm_tickets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleetmcp/fm_config.h"
#include "fleetmcp/fm_store.h"
#include "fleetmcp/fm_util.h"

typedef struct local_st {
    fm_store *store; /* borrowed from the ctx */
    char url_base[256];
    json_t *priority_map; /* owned copy, may be NULL */
} local_st;

static const char ddl_v1[] =
    "CREATE TABLE tickets("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " key TEXT NOT NULL UNIQUE,"
    " summary TEXT NOT NULL,"
    " description TEXT NOT NULL DEFAULT '',"
    " status TEXT NOT NULL DEFAULT 'Open',"
    " open INTEGER NOT NULL DEFAULT 1,"
    " node TEXT, fault_class TEXT, priority TEXT,"
    " labels TEXT NOT NULL DEFAULT '[]',"
    " context TEXT NOT NULL DEFAULT '{}',"
    " created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, closed_ms INTEGER);"
    "CREATE UNIQUE INDEX tickets_open_pair ON tickets(node, fault_class) WHERE open = 1;"
    "CREATE INDEX tickets_node ON tickets(node, open);"
    "CREATE TABLE ticket_comments("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " ticket_id INTEGER NOT NULL REFERENCES tickets(id),"
    " author TEXT NOT NULL, body TEXT NOT NULL, created_ms INTEGER NOT NULL);"
    "CREATE INDEX ticket_comments_ticket ON ticket_comments(ticket_id);"
    "CREATE TABLE ticket_attachments("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " ticket_id INTEGER NOT NULL REFERENCES tickets(id),"
    " name TEXT NOT NULL, size INTEGER NOT NULL, sha256 TEXT NOT NULL,"
    " body BLOB NOT NULL, created_ms INTEGER NOT NULL);"
    "CREATE INDEX ticket_attachments_ticket ON ticket_attachments(ticket_id);";

#define TICKET_COLS                                                                                \
    "t.key, t.summary, t.description, t.status, t.open, t.node, t.fault_class, t.priority,"        \
    " t.labels, t.context, t.created_ms, t.updated_ms,"                                            \
    " (SELECT count(*) FROM ticket_comments c WHERE c.ticket_id = t.id),"                          \
    " (SELECT count(*) FROM ticket_attachments a WHERE a.ticket_id = t.id), t.id"

void *fm_tickets_local_new(struct fm_store *store, const json_t *section, fm_err *err)
{
    if (!store || !store->db) {
        fm_err_set(err, FM_ERR_INTERNAL, "local tickets need an open store");
        return NULL;
    }
    if (fm_store_migrate(store, "tickets", 1, ddl_v1, err) != 0) return NULL;
    local_st *l = calloc(1, sizeof *l);
    if (!l) {
        fm_err_set(err, FM_ERR_NOMEM, "out of memory opening local tickets");
        return NULL;
    }
    l->store = store;
    const char *ub = section ? fm_cfg_str(section, "url_base", NULL) : NULL;
    if (ub) {
        snprintf(l->url_base, sizeof l->url_base, "%s", ub);
        size_t n = strlen(l->url_base);
        while (n && l->url_base[n - 1] == '/')
            l->url_base[--n] = '\0';
    }
    const json_t *pm = json_object_get(section, "priority_map");
    if (json_is_object(pm)) l->priority_map = json_deep_copy(pm);
    return l;
}

static void local_destroy(void *st)
{
    local_st *l = st;
    if (!l) return;
    json_decref(l->priority_map);
    free(l);
}

static json_t *local_url(const local_st *l, const char *key)
{
    if (!l->url_base[0]) return json_null();
    char u[320];
    snprintf(u, sizeof u, "%s/%s", l->url_base, key);
    return json_string(u);
}

static const char *col_text(fm_db_stmt *s, int i)
{
    return (const char *)fm_db_column_text(s, i);
}

static json_t *col_str(fm_db_stmt *s, int i, size_t max)
{
    const char *t = col_text(s, i);
    return t ? fm_ticket_str_clip(t, max) : json_null();
}

static json_t *col_json(fm_db_stmt *s, int i, json_t *(*dflt)(void))
{
    const char *t = col_text(s, i);
    json_t *v = t ? json_loads(t, 0, NULL) : NULL;
    return v ? v : dflt();
}

static json_t *row_ticket(const local_st *l, fm_db_stmt *s, bool full)
{
    json_t *t = json_object();
    const char *key = col_text(s, 0);
    char ts[32];
    json_object_set_new(t, "backend", json_string("local"));
    json_object_set_new(t, "key", json_string(key));
    json_object_set_new(t, "summary", col_str(s, 1, 1024));
    if (full) json_object_set_new(t, "description", col_str(s, 2, FM_TICKET_MAX_DESCRIPTION));
    json_object_set_new(t, "status", col_str(s, 3, 64));
    json_object_set_new(t, "open", json_boolean(fm_db_column_int(s, 4)));
    json_object_set_new(t, "node", col_str(s, 5, 128));
    json_object_set_new(t, "fault_class", col_str(s, 6, 128));
    json_object_set_new(t, "priority", col_str(s, 7, 64));
    json_object_set_new(t, "labels", col_json(s, 8, json_array));
    fm_iso_time(fm_db_column_int64(s, 10), ts);
    json_object_set_new(t, "created", json_string(ts));
    fm_iso_time(fm_db_column_int64(s, 11), ts);
    json_object_set_new(t, "updated", json_string(ts));
    json_object_set_new(t, "url", local_url(l, key));
    json_object_set_new(t, "comments_count", json_integer(fm_db_column_int64(s, 12)));
    json_object_set_new(t, "attachments_count", json_integer(fm_db_column_int64(s, 13)));
    json_object_set_new(t, "context", col_json(s, 9, json_object));
    return t;
}

/* A statement on the tickets tables: fm_db_run on this store's connection. */
#define RUN(l, sql, row, arg, ...) fm_db_run((l)->store->db, sql, row, arg, __VA_ARGS__)

/* Ticket row id for key, inside the caller's transaction; 0 if none. */
static int64_t ticket_id(local_st *l, const char *key, fm_err *err)
{
    int64_t id = 0;
    int rc = RUN(l, "SELECT id FROM tickets WHERE key = ?", fm_db_row_int64, &id, "t", key);
    if (rc != FM_DB_ROW && rc != FM_DB_DONE)
        return fm_store_fail(l->store, err, "finding a ticket"), -1;
    if (!id)
        fm_err_set(err, FM_ERR_NOT_FOUND, "ticket %s does not exist; ticket_search finds keys",
                   key);
    return id;
}

static int touch(local_st *l, int64_t id, fm_err *err)
{
    return RUN(l, "UPDATE tickets SET updated_ms = ? WHERE id = ?", NULL, NULL, "ii", fm_now_ms(),
               id) == FM_DB_DONE
               ? 0
               : fm_store_fail(l->store, err, "updating a ticket");
}

static json_t *local_get(void *st, const char *key, fm_err *err);

static json_t *local_create(void *st, const json_t *fields, fm_err *err)
{
    local_st *l = st;
    const char *node = fm_json_str(fields, "node", NULL);
    const char *fc = fm_json_str(fields, "fault_class", NULL);
    const char *summary = fm_json_str(fields, "summary", NULL);
    if (!summary || !*summary) {
        fm_err_set(err, FM_ERR_INVALID, "a ticket needs a summary");
        return NULL;
    }
    if (fm_store_begin_rows(l->store, err)) return NULL;
    /* One open ticket per node and fault class: the lookup and the
     * insert below run under a lock row named after the pair, so two
     * servers filing the same fault make one ticket.  (A name cut to
     * fit only makes unrelated pairs wait for each other.) */
    if (node && fc) {
        char lock[300];
        snprintf(lock, sizeof lock, "ticket-open:%s\x1f%s", node, fc);
        if (fm_store_lock_row(l->store, lock, err)) {
            fm_store_rollback(l->store);
            return NULL;
        }
    }

    char existing[64] = "";
    if (node && fc) {
        fm_db_text_buf t = {existing, sizeof existing, 0};
        int rc = RUN(l, "SELECT key FROM tickets WHERE node = ? AND fault_class = ? AND open = 1",
                     fm_db_row_text, &t, "tt", node, fc);
        if (rc != FM_DB_ROW && rc != FM_DB_DONE) {
            fm_store_fail(l->store, err, "preparing a tickets query");
            goto fail;
        }
    }
    if (existing[0]) {
        if (fm_store_commit(l->store, err)) return NULL;
        json_t *t = local_get(l, existing, err);
        if (t) json_object_set_new(t, "deduplicated", json_true());
        return t;
    }

    char *desc = fm_ticket_render(fields, fm_json_str(fields, "description", NULL));
    json_t *sum = fm_ticket_summary(summary);
    json_t *labels = fm_ticket_labels(fields, NULL);
    json_t *ctxj = fm_ticket_context(fields);
    char *labels_s = json_dumps(labels, JSON_COMPACT);
    char *ctx_s = json_dumps(ctxj, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(labels);
    json_decref(ctxj);
    int64_t now = fm_now_ms();
    int rc = FM_DB_ERROR;
    if (desc && labels_s && ctx_s)
        rc = RUN(l,
                 "INSERT INTO tickets(key, summary, description, node, fault_class, priority,"
                 " labels, context, created_ms, updated_ms)"
                 " VALUES('FM-new-' || hex(randomblob(8)), ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 NULL, NULL, "tttttttii", json_string_value(sum), desc, node, fc,
                 fm_ticket_priority(l->priority_map, fields), labels_s, ctx_s, now, now);
    free(desc);
    free(labels_s);
    free(ctx_s);
    json_decref(sum);
    if (rc != FM_DB_DONE) {
        fm_store_fail(l->store, err, "inserting a ticket");
        goto fail;
    }
    int64_t id = fm_db_last_insert_rowid(l->store->db);
    char key[48];
    snprintf(key, sizeof key, "FM-%lld", (long long)id);
    if (RUN(l, "UPDATE tickets SET key = ? WHERE id = ?", NULL, NULL, "ti", key, id) !=
        FM_DB_DONE) {
        fm_store_fail(l->store, err, "naming a ticket");
        goto fail;
    }
    if (fm_store_commit(l->store, err)) return NULL;
    json_t *out = json_object();
    json_object_set_new(out, "key", json_string(key));
    json_object_set_new(out, "url", local_url(l, key));
    json_object_set_new(out, "deduplicated", json_false());
    return out;
fail:
    fm_store_rollback(l->store);
    return NULL;
}

static int comment_row(fm_db_stmt *s, void *arg)
{
    char ts[32];
    fm_iso_time(fm_db_column_int64(s, 2), ts);
    json_t *c = json_object();
    json_object_set_new(c, "author", col_str(s, 0, 128));
    json_object_set_new(c, "created", json_string(ts));
    json_object_set_new(c, "body", col_str(s, 1, FM_TICKET_MAX_COMMENT_BODY));
    json_array_insert_new(arg, 0, c); /* oldest first, like Jira */
    return 0;
}

static json_t *local_comments(local_st *l, int64_t id, fm_err *err)
{
    json_t *out = json_array();
    int rc = RUN(l,
                 "SELECT author, body, created_ms FROM ticket_comments WHERE ticket_id = ?"
                 " ORDER BY id DESC LIMIT ?",
                 comment_row, out, "in", id, FM_TICKET_MAX_COMMENTS);
    if (rc != FM_DB_DONE && rc != FM_DB_ROW) {
        json_decref(out);
        fm_store_fail(l->store, err, "reading a ticket's comments");
        return NULL;
    }
    return out;
}

/* local_get's row: the ticket (new) and its row id. */
typedef struct {
    const local_st *l;
    json_t *t;
    int64_t id;
} get_acc;

static int get_row(fm_db_stmt *s, void *arg)
{
    get_acc *g = arg;
    g->t = row_ticket(g->l, s, true);
    g->id = fm_db_column_int64(s, 14);
    return 1;
}

static json_t *local_get(void *st, const char *key, fm_err *err)
{
    local_st *l = st;
    get_acc g = {l, NULL, 0};
    int rc = RUN(l, "SELECT " TICKET_COLS " FROM tickets t WHERE t.key = ?", get_row, &g, "t", key);
    if (rc != FM_DB_ROW) {
        if (rc == FM_DB_DONE)
            fm_err_set(err, FM_ERR_NOT_FOUND, "ticket %s does not exist; ticket_search finds keys",
                       key);
        else
            fm_store_fail(l->store, err, "reading a ticket");
        return NULL;
    }
    json_t *t = g.t;
    int64_t id = g.id;
    json_t *c = local_comments(l, id, err);
    if (!c) {
        json_decref(t);
        return NULL;
    }
    json_object_set_new(t, "comments", c);
    return t;
}

/* local_update's read: the stored labels and context (both new). */
typedef struct {
    json_t *labels, *ctx;
} merge_read;

static int merge_row(fm_db_stmt *s, void *arg)
{
    merge_read *m = arg;
    m->labels = col_json(s, 0, json_array);
    m->ctx = col_json(s, 1, json_object);
    return 1;
}

static int local_update(void *st, const char *key, const json_t *fields, fm_err *err)
{
    local_st *l = st;
    /* Labels and context are merged (read, then written): updates of one
     * ticket take its lock row, so none is lost. */
    char lock[160];
    snprintf(lock, sizeof lock, "ticket:%.100s", key);
    if (fm_store_begin_rows(l->store, err)) return -1;
    if (fm_store_lock_row(l->store, lock, err)) {
        fm_store_rollback(l->store);
        return -1;
    }
    char *labels_s = NULL, *ctx_s = NULL;
    json_t *sum = NULL;
    int64_t id = ticket_id(l, key, err);
    if (id <= 0) goto fail;

    /* Merge labels and context with what is stored, so an update only adds. */
    merge_read m = {NULL, NULL};
    if (RUN(l, "SELECT labels, context, node, fault_class FROM tickets WHERE id = ?", merge_row, &m,
            "i", id) != FM_DB_ROW) {
        fm_store_fail(l->store, err, "reading a ticket");
        goto fail;
    }
    json_t *labels = m.labels;
    json_t *ctxj = m.ctx;
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(fields, "labels"), i, v)
    {
        char lb[256];
        fm_ticket_label(lb, sizeof lb, "", json_string_value(v));
        size_t j;
        json_t *w;
        bool have = false;
        json_array_foreach(labels, j, w) have = have || !strcmp(json_string_value(w), lb);
        if (!have) json_array_append_new(labels, json_string(lb));
    }
    json_t *nctx = fm_ticket_context(fields);
    json_object_update(ctxj, nctx);
    json_decref(nctx);
    labels_s = json_dumps(labels, JSON_COMPACT);
    ctx_s = json_dumps(ctxj, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(labels);
    json_decref(ctxj);

    sum = json_object_get(fields, "summary") ? fm_ticket_summary(fm_json_str(fields, "summary", ""))
                                             : NULL;
    const char *summary = json_string_value(sum);
    const char *desc = fm_json_str(fields, "description", NULL);
    const char *prio = json_object_get(fields, "severity") || json_object_get(fields, "priority")
                           ? fm_ticket_priority(l->priority_map, fields)
                           : NULL;
    if (!prio) prio = fm_json_str(fields, "priority", NULL);
    if (!labels_s || !ctx_s) goto fail;
    if (RUN(l,
            "UPDATE tickets SET summary = coalesce(?, summary),"
            " description = coalesce(?, description), priority = coalesce(?, priority),"
            " labels = ?, context = ?, updated_ms = ? WHERE id = ?",
            NULL, NULL, "tttttii", summary, desc, prio, labels_s, ctx_s, fm_now_ms(),
            id) != FM_DB_DONE) {
        fm_store_fail(l->store, err, "updating a ticket");
        goto fail;
    }
    free(labels_s);
    free(ctx_s);
    json_decref(sum);
    return fm_store_commit(l->store, err) ? -1 : 0;
fail:
    free(labels_s);
    free(ctx_s);
    json_decref(sum);
    fm_store_rollback(l->store);
    return -1;
}

/* After a change to ticket id inside the open transaction (rc: its
 * fm_db_run result), marks the ticket updated and commits; rolls back on
 * any failure. */
static int finish_change(local_st *l, int rc, int64_t id, const char *what, fm_err *err)
{
    if (rc != FM_DB_DONE) {
        fm_store_fail(l->store, err, what);
        fm_store_rollback(l->store);
        return -1;
    }
    if (touch(l, id, err)) {
        fm_store_rollback(l->store);
        return -1;
    }
    return fm_store_commit(l->store, err) ? -1 : 0;
}

static int local_comment(void *st, const char *key, const char *body, fm_err *err)
{
    local_st *l = st;
    /* Rows added, or a conditional UPDATE: nothing read decides them. */
    if (fm_store_begin_rows(l->store, err)) return -1;
    int64_t id = ticket_id(l, key, err);
    if (id <= 0) goto fail;
    int rc = RUN(l,
                 "INSERT INTO ticket_comments(ticket_id, author, body, created_ms)"
                 " VALUES(?, 'fleetmcp', ?, ?)",
                 NULL, NULL, "iti", id, body, fm_now_ms());
    return finish_change(l, rc, id, "adding a comment", err);
fail:
    fm_store_rollback(l->store);
    return -1;
}

static int local_attach(void *st, const char *key, const char *name, const void *bytes, size_t len,
                        fm_err *err)
{
    local_st *l = st;
    if (len > FM_TICKET_MAX_ATTACH)
        return fm_err_set(err, FM_ERR_TOO_LARGE, "attachment of %zu bytes is over the %u limit",
                          len, FM_TICKET_MAX_ATTACH);
    char sha[65];
    fm_sha256_hex(bytes, len, sha);
    /* Rows added, or a conditional UPDATE: nothing read decides them. */
    if (fm_store_begin_rows(l->store, err)) return -1;
    int64_t id = ticket_id(l, key, err);
    if (id <= 0) goto fail;
    int rc = RUN(l,
                 "INSERT INTO ticket_attachments(ticket_id, name, size, sha256, body, created_ms)"
                 " VALUES(?, ?, ?, ?, ?, ?)",
                 NULL, NULL, "ititbi", id, name, (int64_t)len, sha, len ? bytes : "", (int)len,
                 fm_now_ms());
    return finish_change(l, rc, id, "storing an attachment", err);
fail:
    fm_store_rollback(l->store);
    return -1;
}

static json_t *local_transitions(void *st, const char *key, fm_err *err)
{
    json_t *t = local_get(st, key, err);
    if (!t) return NULL;
    bool open = json_is_true(json_object_get(t, "open"));
    json_decref(t);
    json_t *tr = json_object();
    json_object_set_new(tr, "id", json_string(open ? "close" : "reopen"));
    json_object_set_new(tr, "name", json_string(open ? "Close" : "Reopen"));
    json_object_set_new(tr, "to", json_string(open ? "Closed" : "Open"));
    json_object_set_new(tr, "done", json_boolean(open));
    json_t *out = json_array();
    json_array_append_new(out, tr);
    return out;
}

static int local_close(void *st, const char *key, char *name, size_t namelen, fm_err *err)
{
    local_st *l = st;
    /* Rows added, or a conditional UPDATE: nothing read decides them. */
    if (fm_store_begin_rows(l->store, err)) return -1;
    int64_t id = ticket_id(l, key, err);
    if (id <= 0) goto fail;
    int64_t now = fm_now_ms();
    if (RUN(l,
            "UPDATE tickets SET open = 0, status = 'Closed', closed_ms = ?, updated_ms = ?"
            " WHERE id = ? AND open = 1",
            NULL, NULL, "iii", now, now, id) != FM_DB_DONE) {
        fm_store_fail(l->store, err, "closing a ticket");
        goto fail;
    }
    if (fm_db_changes(l->store->db) == 0) {
        fm_err_set(err, FM_ERR_CONFLICT, "ticket %s is already closed", key);
        goto fail;
    }
    if (name) snprintf(name, namelen, "Close");
    return fm_store_commit(l->store, err) ? -1 : 0;
fail:
    fm_store_rollback(l->store);
    return -1;
}

/* local_search's rows (arg: the l and the array). */
typedef struct {
    const local_st *l;
    json_t *out;
} search_acc;

static int search_row(fm_db_stmt *s, void *arg)
{
    search_acc *a = arg;
    json_array_append_new(a->out, row_ticket(a->l, s, false));
    return 0;
}

static json_t *local_search(void *st, const fm_ticket_query *q, fm_err *err)
{
    local_st *l = st;
    int lim = q->limit < 1 ? 1 : q->limit > FM_TICKET_MAX_SEARCH ? FM_TICKET_MAX_SEARCH : q->limit;
    search_acc a = {l, json_array()};
    int rc = RUN(l,
                 "SELECT " TICKET_COLS " FROM tickets t"
                 " WHERE (CAST(?1 AS TEXT) IS NULL OR t.node = ?1)"
                 " AND (CAST(?2 AS TEXT) IS NULL OR t.fault_class = ?2)"
                 " AND (?3 = 2 OR t.open = CASE WHEN ?3 = 0 THEN 1 ELSE 0 END) ORDER BY t.id DESC"
                 " LIMIT ?4",
                 search_row, &a, "ttnn", q->node, q->fault_class, (int)q->state, lim);
    if (rc != FM_DB_DONE) {
        json_decref(a.out);
        fm_store_fail(l->store, err, "searching tickets");
        return NULL;
    }
    return a.out;
}

const struct fm_ticket_ops fm_tickets_local = {
    .name = "local",
    .create = local_create,
    .get = local_get,
    .update = local_update,
    .comment = local_comment,
    .attach = local_attach,
    .transitions = local_transitions,
    .close = local_close,
    .search = local_search,
    .destroy = local_destroy,
};
