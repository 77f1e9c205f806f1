/* node_diag_bundle: read-only SSH collection on one node (nvidia-smi -q,
 * kernel Xid lines, dcgmi health, ibstat) through the executor's catalog.
 * The reply is compact: per section its exit status, size, truncation and
 * parsed highlights; raw text only on request.  The whole bundle (with raw
 * text) is stored in diag_bundles so a ticket can attach it by id later;
 * the sha256 lets the attacher check it was not altered. */
/* Data access: this file owns the table diag_bundles; every statement on
 * it is here, others call its functions (the data-access stage checks). */
#include "fleetmcp/fm_db.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fleetmcp/fm_exec.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_tickets.h"
#include "fleetmcp/fm_util.h"
#include "fm_tools.gen.h"
#include "read_common.h"

#define RAW_REPLY_CAP 16384      /* per section, in the reply when raw: true */
#define RAW_STORE_CAP (1u << 20) /* per section, in the stored bundle */
#define STDERR_CAP 200           /* stderr quoted in a section */
#define KEEP_PER_NODE 100        /* stored bundles kept per node */

static const struct {
    const char *key;
    fm_cmd_id cmd;
    const char *label;
} SECTIONS[] = {
    {"nvidia_smi", FM_CMD_NVSMI_QUERY, "nvidia-smi -q"},
    {"kernel_xid", FM_CMD_KERNEL_XID, "kernel Xid lines"},
    {"dcgmi_health", FM_CMD_DCGMI_HEALTH, "dcgmi health"},
    {"ibstat", FM_CMD_IBSTAT, "ibstat"},
};
#define NSECTIONS (sizeof SECTIONS / sizeof *SECTIONS)

static const char DDL_V1[] =
    "CREATE TABLE IF NOT EXISTS diag_bundles("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " node TEXT NOT NULL,"
    " created_ms INTEGER NOT NULL,"
    " sha256 TEXT NOT NULL,"
    " body TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS diag_bundles_node ON diag_bundles(node, id);";

/* Errors that say the node cannot be reached at all: stop, do not try the
 * other sections (they would fail the same way, each after a timeout). */
static bool node_level(fm_code c)
{
    return c == FM_ERR_HOSTKEY || c == FM_ERR_AUTH || c == FM_ERR_NOT_FOUND ||
           c == FM_ERR_UNAVAILABLE || c == FM_ERR_INVALID || c == FM_ERR_NOT_CONFIGURED ||
           c == FM_ERR_NOMEM;
}

/* Agents pay per token: every GPU's temperature as one small array, and
 * full rows only for GPUs whose memory needs attention.  Takes p (new)
 * and returns it. */
static json_t *compact_gpus(json_t *p)
{
    json_t *rows = json_object_get(p, "gpus"), *temps = json_array(), *flagged = json_array();
    size_t i;
    json_t *g;
    json_array_foreach(rows, i, g)
    {
        json_t *t = json_object_get(g, "temp_c");
        json_array_append_new(temps, t ? json_incref(t) : json_null());
        if (json_integer_value(json_object_get(g, "ecc_dbe_vol")) > 0 ||
            json_is_true(json_object_get(g, "remap_pending")) ||
            json_is_true(json_object_get(g, "remap_failure")))
            json_array_append(flagged, g);
    }
    json_object_set_new(p, "temps_c", temps);
    json_object_set_new(p, "gpus", flagged);
    return p;
}

/* Highlights of one section's output (new object). */
static json_t *highlights(fm_cmd_id cmd, const fm_exec_result *r, size_t xid_lines)
{
    switch (cmd) {
    case FM_CMD_NVSMI_QUERY:
        return compact_gpus(fm_parse_nvsmi_q(r->out, r->out_len, r->err_out, r->err_len));
    case FM_CMD_KERNEL_XID:
        return fm_parse_kernel_xid(r->out, r->out_len, xid_lines);
    case FM_CMD_DCGMI_HEALTH:
        return fm_parse_dcgmi_health(r->out, r->out_len);
    case FM_CMD_IBSTAT:
        return fm_parse_ibstat(r->out, r->out_len);
    case FM_CMD_NVSMI_QUERY_GPU:
    case FM_CMD_NVSMI_RESET:
    case FM_CMD_DCGMI_DIAG:
    case FM_CMD_KERNEL_LOG:
    case FM_CMD_JOB_LOG_TAIL:
    case FM_CMD_NODE_CLOCK:
    case FM_CMD_JOB_LOG_STAT:
        break;
    }
    return json_object();
}

/* Stores body; returns the new row id, or -1 with err set. */
static fm_db_int64 store_bundle(fm_store *st, const char *node, int64_t created_ms, const char *sha,
                                const char *body, fm_err *err)
{
    if (fm_store_migrate(st, "diag_bundles", 1, DDL_V1, err)) return -1;
    /* An insert and a prune of older rows: neither depends on a read, so
     * no store-wide lock (PostgreSQL); two hosts at once each keep their
     * row, and the prune keeps the newest KEEP_PER_NODE. */
    if (fm_store_begin_rows(st, err)) return -1;
    if (fm_db_run(st->db,
                  "INSERT INTO diag_bundles(node, created_ms, sha256, body) VALUES(?, ?, ?, ?)",
                  NULL, NULL, "titt", node, created_ms, sha, body) != FM_DB_DONE)
        goto fail;
    fm_db_int64 id = fm_db_last_insert_rowid(st->db);
    /* Bounded history: tickets copy a bundle when they attach it. */
    if (fm_db_run(st->db,
                  "DELETE FROM diag_bundles WHERE node = ?1 AND id NOT IN"
                  " (SELECT id FROM diag_bundles WHERE node = ?1 ORDER BY id DESC LIMIT ?2)",
                  NULL, NULL, "tn", node, KEEP_PER_NODE) != FM_DB_DONE)
        goto fail;
    if (fm_store_commit(st, err)) return -1;
    return id;
fail:
    fm_store_fail(st, err, "storing a diag bundle");
    fm_store_rollback(st);
    return -1;
}

/* One section: runs the command and fills sec (borrowed) and the raw
 * texts.  Returns 0, or -1 when the node itself is unreachable (err set). */
static int collect(fm_ctx *ctx, const char *node, size_t i, size_t xid_lines, json_t *sec,
                   json_t *stored_raw, json_t *reply_raw, fm_err *err)
{
    fm_cmd_args a;
    fm_cmd_args_init(&a);
    fm_exec_result r;
    fm_err e = {0};
    if (ctx->be.exec->run(ctx->be.exec_st, node, SECTIONS[i].cmd, &a, &r, &e)) {
        if (node_level(e.code)) {
            fm_err_set(err, e.code, "%s", e.text);
            return -1;
        }
        char msg[sizeof e.text + 16];
        snprintf(msg, sizeof msg, "%s: %s", fm_strerror(e.code), e.text);
        json_object_set_new(sec, "exit_status", json_integer(-1));
        json_object_set_new(sec, "bytes", json_integer(0));
        json_object_set_new(sec, "truncated", json_false());
        json_object_set_new(sec, "error", fm_exec_text(msg, strlen(msg), sizeof msg));
        fm_exec_result_free(&r);
        return 0;
    }
    json_t *h = highlights(SECTIONS[i].cmd, &r, xid_lines);
    json_object_update(sec, h);
    json_decref(h);
    json_object_set_new(sec, "exit_status", json_integer(r.exit_status));
    json_object_set_new(sec, "bytes", json_integer((json_int_t)r.out_len));
    json_object_set_new(sec, "truncated", json_boolean(r.truncated));
    json_object_set_new(sec, "duration_ms", json_integer(r.duration_ms));
    if (r.exit_status != 0 && r.err_len)
        json_object_set_new(sec, "stderr", fm_exec_text(r.err_out, r.err_len, STDERR_CAP));
    json_object_set_new(stored_raw, SECTIONS[i].key,
                        json_pack("{s:o, s:o}", "stdout",
                                  fm_exec_text(r.out, r.out_len, RAW_STORE_CAP), "stderr",
                                  fm_exec_text(r.err_out, r.err_len, FM_EXEC_MAX_STDERR)));
    if (reply_raw)
        json_object_set_new(reply_raw, SECTIONS[i].key,
                            fm_exec_text(r.out, r.out_len, RAW_REPLY_CAP));
    fm_exec_result_free(&r);
    return 0;
}

json_t *fm_tool_node_diag_bundle(fm_call *call, fm_err *err)
{
    fm_ctx *ctx = call->ctx;
    const char *node = fm_read_arg_str(call->args, "node");
    if (!fm_exec_valid_node(node)) {
        fm_err_set(err, FM_ERR_INVALID, "node must be a node name");
        return NULL;
    }
    bool raw = fm_read_arg_bool(call->args, "raw", false);
    long long xl = fm_read_arg_int(call->args, "xid_lines", 10);
    size_t xid_lines = xl < 0 ? 0 : xl > 50 ? 50 : (size_t)xl;

    int64_t t0 = fm_now_ms();
    json_t *sections = json_object(), *stored_raw = json_object();
    json_t *reply_raw = raw ? json_object() : NULL;
    json_t *out = NULL;
    char *body = NULL;
    for (size_t i = 0; i < NSECTIONS; i++) {
        if (!fm_call_progress(call, (double)i, (double)NSECTIONS, SECTIONS[i].label)) {
            fm_err_set(err, FM_ERR_CANCELLED, "node_diag_bundle cancelled by the client");
            goto done;
        }
        json_t *sec = json_object();
        json_object_set_new(sections, SECTIONS[i].key, sec);
        if (collect(ctx, node, i, xid_lines, sec, stored_raw, reply_raw, err)) goto done;
    }

    int64_t created = fm_now_ms();
    json_t *doc = json_pack("{s:s, s:I, s:O, s:O}", "node", node, "created_ms", (json_int_t)created,
                            "sections", sections, "raw", stored_raw);
    body = doc ? json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(doc);
    if (!body) {
        fm_err_set(err, FM_ERR_NOMEM, "out of memory serialising the bundle");
        goto done;
    }
    char sha[65];
    fm_sha256_hex(body, strlen(body), sha);
    json_t *id = json_null();
    if (ctx->store.db) {
        fm_db_int64 row = store_bundle(&ctx->store, node, created, sha, body, err);
        if (row < 0) goto done;
        char idbuf[32];
        snprintf(idbuf, sizeof idbuf, "%lld", (long long)row);
        id = json_string(idbuf);
    }
    out = json_pack("{s:s, s:o, s:s, s:I, s:O}", "node", node, "bundle_id", id, "sha256", sha,
                    "duration_ms", (json_int_t)(fm_now_ms() - t0), "sections", sections);
    if (out && reply_raw) json_object_set(out, "raw", reply_raw);
    if (!out) fm_err_set(err, FM_ERR_NOMEM, "out of memory building the reply");
done:
    free(body);
    json_decref(sections);
    json_decref(stored_raw);
    json_decref(reply_raw);
    return out;
}

/* fm_ticket_bundle_load's row, checked and copied out (rc: its result). */
typedef struct {
    char *node;
    size_t nodelen;
    unsigned char **body;
    size_t *len;
    const char *idc;
    fm_err *err;
    int rc;
} bundle_out;

static int bundle_row(fm_db_stmt *s, void *arg)
{
    bundle_out *o = arg;
    fm_db_int64 n = fm_db_column_int64(s, 3);
    if (n < 0 || (uint64_t)n > FM_TICKET_MAX_ATTACH) {
        o->rc = fm_err_set(o->err, FM_ERR_TOO_LARGE, "diag bundle %s is over %u bytes", o->idc,
                           FM_TICKET_MAX_ATTACH);
        return 1;
    }
    const void *b = fm_db_column_blob(s, 2);
    n = fm_db_column_bytes(s, 2);
    const char *sha = (const char *)fm_db_column_text(s, 1);
    /* A bundle that does not match its recorded hash is not evidence. */
    if (sha && strlen(sha) == 64) {
        char got[65];
        fm_sha256_hex(b ? b : "", (size_t)n, got);
        if (strcasecmp(got, sha) != 0) {
            o->rc =
                fm_err_set(o->err, FM_ERR_IO,
                           "diag bundle %s does not match its sha256; collect a new one", o->idc);
            return 1;
        }
    }
    snprintf(o->node, o->nodelen, "%s",
             fm_db_column_text(s, 0) ? (const char *)fm_db_column_text(s, 0) : "");
    *o->body = malloc((size_t)n + 1);
    if (!*o->body) {
        o->rc = fm_err_set(o->err, FM_ERR_NOMEM, "out of memory reading diag bundle %s", o->idc);
        return 1;
    }
    if (n) memcpy(*o->body, b, (size_t)n);
    (*o->body)[n] = 0;
    *o->len = (size_t)n;
    o->rc = 0;
    return 1;
}

/* A stored bundle for a ticket attachment (fm_tickets.h): read here, where
 * diag_bundles is owned, so tickets never read the table themselves. */
int fm_ticket_bundle_load(struct fm_store *store, const char *id, char *node, size_t nodelen,
                          unsigned char **body, size_t *len, fm_err *err)
{
    *body = NULL;
    *len = 0;
    char idc[64];
    fm_clip(idc, sizeof idc, id);
    /* The table may not exist yet: made here as the bundle's store makes
     * it (asking sqlite_master failed on PostgreSQL, which has none). */
    if (fm_store_migrate(store, "diag_bundles", 1, DDL_V1, err)) return -1;
    /* Ids are the numbers node_diag_bundle returns; anything else names
     * none (PostgreSQL fails the whole read on a non-number). */
    size_t digits = id ? strspn(id, "0123456789") : 0;
    if (!digits || digits > 18 || id[digits])
        return fm_err_set(err, FM_ERR_NOT_FOUND,
                          "diag bundle %s does not exist: bundle ids are the numbers"
                          " node_diag_bundle returns",
                          idc);
    bundle_out o = {node, nodelen, body, len, idc, err, 1};
    int rc = fm_db_run(store->db,
                       "SELECT node, sha256, body, length(body) FROM diag_bundles WHERE id = ?",
                       bundle_row, &o, "t", id);
    if (rc == FM_DB_ROW) return o.rc;
    if (rc == FM_DB_DONE)
        return fm_err_set(err, FM_ERR_NOT_FOUND,
                          "diag bundle %s does not exist; node_diag_bundle collects one", idc);
    return fm_store_fail(store, err, "reading a diag bundle");
}
