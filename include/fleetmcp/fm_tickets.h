/* Incident tickets: one interface, two backends.
 *
 *   jira   (src/backends/tickets_jira.c)   Jira Cloud / Data Center REST v2
 *   local  (src/backends/tickets_local.c)  tables in the fleetmcp store,
 *                                          the default, so the product works
 *                                          with no Jira at all
 *
 * fm_tickets_open() picks one and fills ctx->be.tickets / tickets_st.
 *
 * Fields (what create and update take; every member optional unless said):
 *   summary (string, required on create), description, node, fault_class,
 *   severity ("critical"|"high"|"medium"|"low"), labels [strings],
 *   evidence [strings], active_jobs (int), last_runbook_run {object},
 *   workflow_id, audit_ids [ints], incident_key.
 *
 * Normalized ticket (what get and search return, the same shape for both
 * backends):
 *   {backend, key, summary, description, status, open (bool), node,
 *    fault_class, priority, labels [], created, updated, url,
 *    comments_count, attachments_count, context {active_jobs, ...when
 *    known}, comments [{author, created, body}] (get only, newest last)}
 * node and fault_class also travel as labels "node-<node>" and
 * "fault-<class>" (plus "fleetmcp"), so search works without custom fields. */
#ifndef FM_TICKETS_H
#define FM_TICKETS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "fleetmcp/fm_error.h"
#include "fleetmcp/fm_tool.h"

struct fm_ctx;
struct fm_store;

#define FM_TICKET_MAX_SEARCH 100
#define FM_TICKET_MAX_ATTACH (16u << 20) /* bytes per attachment */
#define FM_TICKET_MAX_SUMMARY 255        /* Jira's own limit, in characters */
#define FM_TICKET_MAX_DESCRIPTION 32000  /* bytes kept from any description */
#define FM_TICKET_MAX_COMMENTS 10        /* comments returned by get */
#define FM_TICKET_MAX_COMMENT_BODY 2000  /* bytes kept per returned comment */

typedef enum {
    FM_TICKET_STATE_OPEN = 0,
    FM_TICKET_STATE_CLOSED = 1,
    FM_TICKET_STATE_ANY = 2,
} fm_ticket_state;

typedef struct fm_ticket_query {
    const char *node;        /* NULL: any node */
    const char *fault_class; /* NULL: any class */
    fm_ticket_state state;
    int limit; /* 1..FM_TICKET_MAX_SEARCH */
} fm_ticket_query;

/* One backend.  st is the backend's own state (ctx->be.tickets_st).  Keys
 * given to any slot are already checked against fm_ticket_key_valid().
 * Every json_t * returned is new; every one taken is borrowed. */
struct fm_ticket_ops {
    const char *name; /* "jira" | "local" */
    /* New ticket from fields.  Returns at least {key, url}.  A backend
     * that can check atomically for an open ticket with the same (node,
     * fault_class) returns that one instead, with "deduplicated": true. */
    json_t *(*create)(void *st, const json_t *fields, fm_err *err);
    /* Normalized ticket with its last comments; FM_ERR_NOT_FOUND if none. */
    json_t *(*get)(void *st, const char *key, fm_err *err);
    /* Sets the members present in fields (summary, description, severity,
     * labels (added), context fields).  Returns 0. */
    int (*update)(void *st, const char *key, const json_t *fields, fm_err *err);
    int (*comment)(void *st, const char *key, const char *body, fm_err *err);
    /* Attaches len bytes (<= FM_TICKET_MAX_ATTACH) as file name. */
    int (*attach)(void *st, const char *key, const char *name, const void *bytes, size_t len,
                  fm_err *err);
    /* Transitions available now: new array of {id, name, to, done (bool)}. */
    json_t *(*transitions)(void *st, const char *key, fm_err *err);
    /* Moves the ticket to a done state; the transition's name goes to
     * name (may be NULL).  Returns 0. */
    int (*close)(void *st, const char *key, char *name, size_t namelen, fm_err *err);
    /* New array of normalized tickets (no description, no comments),
     * newest first, at most q->limit. */
    json_t *(*search)(void *st, const fm_ticket_query *q, fm_err *err);
    void (*destroy)(void *st);
};

extern const struct fm_ticket_ops fm_tickets_jira;
extern const struct fm_ticket_ops fm_tickets_local;

/* Picks the backend: config `tickets.backend` if set, else Jira when a
 * `jira` section exists, else the local store.  Fills ctx->be.tickets and
 * ctx->be.tickets_st.  Called by fm_backends_open(). */
int fm_tickets_open(struct fm_ctx *ctx, fm_err *err);

/* The key of the node's newest open ticket (new string), or JSON null when
 * there is none or the ticket backend cannot answer: a read tool shows
 * what it knows rather than failing. */
json_t *fm_ticket_open_key(struct fm_ctx *ctx, const char *node);
void fm_tickets_close(struct fm_ctx *ctx);

/* Backend constructors (the opener calls one; tests call them directly).
 * section is the config section (borrowed; copied as needed). */
void *fm_tickets_jira_new(const json_t *section, fm_err *err);
void *fm_tickets_local_new(struct fm_store *store, const json_t *section, fm_err *err);

/* ---- helpers shared by both backends (src/backends/tickets.c) ---- */

/* "PROJ-123": upper-case project, dash, number. */
bool fm_ticket_key_valid(const char *key);

/* Labels for fields: "fleetmcp", "node-<node>", "fault-<class>", then
 * extra (config, borrowed, may be NULL) and fields.labels; spaces become
 * '_', duplicates dropped.  New array. */
json_t *fm_ticket_labels(const json_t *fields, const json_t *extra);

/* Label text for prefix + value ("node-", "gpu 01" -> "node-gpu_01"). */
void fm_ticket_label(char *out, size_t outlen, const char *prefix, const char *value);

/* The description on-call reads: text, then node, fault class, evidence,
 * active jobs, last good runbook run, workflow and audit links, related
 * incident.  malloc'd, caller frees. */
char *fm_ticket_render(const json_t *fields, const char *text);

/* Priority name for fields: map[fault_class], else map[severity], else
 * the default for the severity (critical->Highest ...), else NULL.
 * map is borrowed and may be NULL; the result is borrowed. */
const char *fm_ticket_priority(const json_t *map, const json_t *fields);

/* Copies at most max bytes of s into a new JSON string, never splitting a
 * UTF-8 sequence (new). */
json_t *fm_ticket_str_clip(const char *s, size_t max);

/* A summary Jira accepts: at most FM_TICKET_MAX_SUMMARY bytes (never a
 * split UTF-8 sequence), control characters as spaces (new). */
json_t *fm_ticket_summary(const char *s);

/* Context members of fields (active_jobs, ...): new object, maybe empty. */
json_t *fm_ticket_context(const json_t *fields);

/* ---- tool level (src/tools/tickets_submit.c) ---- */

/* Create-or-comment: if an open ticket exists for (node, fault_class) it
 * gets a comment, else a ticket is created; then the diag bundle
 * bundle_id (may be NULL) from table diag_bundles is attached.
 * strict_bundle: a missing bundle is an error (checked before anything
 * is written) rather than a note.  Returns new
 * {key, deduplicated, url, attached [names], notes [strings]}. */
json_t *fm_ticket_submit(struct fm_ctx *ctx, const json_t *fields, const char *bundle_id,
                         bool strict_bundle, fm_err *err);

/* For workflows that escalate: create-or-comment with dedup, attaching
 * the node's diag bundle when bundle_id names one that exists.
 * evidence: array of strings or an object (borrowed, may be NULL).
 * Returns new {key, deduplicated, url, attached, notes}. */
json_t *fm_ticket_escalate(struct fm_ctx *ctx, const char *node, const char *fault_class,
                           const char *summary, const json_t *evidence, const char *bundle_id,
                           fm_err *err);

/* Loads diag bundle id (node and body) for attaching.  Returns 0, or
 * FM_ERR_NOT_FOUND.  *body is malloc'd. */
int fm_ticket_bundle_load(struct fm_store *store, const char *id, char *node, size_t nodelen,
                          unsigned char **body, size_t *len, fm_err *err);

/* Handlers (schemas/tools/ticket_*.json). */
json_t *fm_tool_ticket_create(fm_call *call, fm_err *err);
json_t *fm_tool_ticket_update(fm_call *call, fm_err *err);
json_t *fm_tool_ticket_get(fm_call *call, fm_err *err);
json_t *fm_tool_ticket_search(fm_call *call, fm_err *err);
json_t *fm_tool_ticket_close(fm_call *call, fm_err *err);

#endif
