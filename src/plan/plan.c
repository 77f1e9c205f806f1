/* Plans in the store.  A plan is immutable once recorded except for its
 * status; approvals bind to its hash. */
/* Data access: this file owns the table plans; every statement on
 * it is here, others call its functions (the data-access stage checks). */
#include "fleetmcp/fm_plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_util.h"

static const char plan_ddl[] =
    "CREATE TABLE IF NOT EXISTS plans(id TEXT PRIMARY KEY, created_ms INTEGER NOT NULL,"
    " tool TEXT NOT NULL, content TEXT NOT NULL, detail TEXT NOT NULL, hash TEXT NOT NULL,"
    " status TEXT NOT NULL, session TEXT, initiator TEXT, updated_ms INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS plans_hash ON plans(hash, status);";

int fm_plan_init(fm_ctx *ctx, fm_err *err)
{
    return fm_store_migrate(&ctx->store, "plans", 1, plan_ddl, err);
}

json_t *fm_plan_content(const char *tool, const json_t *args, const json_t *nodes,
                        const json_t *steps, const char *runbook, int runbook_version)
{
    json_t *a = args ? json_deep_copy(args) : json_object();
    json_object_del(a, "approval_id");
    json_t *c = json_pack("{s:s, s:o, s:O, s:O}", "tool", tool, "args", a, "nodes",
                          nodes ? nodes : json_array(), "steps", steps ? steps : json_array());
    /* json_pack "O" on a temporary would leak it: build the defaults apart. */
    if (!nodes) json_decref(json_object_get(c, "nodes"));
    if (!steps) json_decref(json_object_get(c, "steps"));
    if (runbook) {
        json_object_set_new(c, "runbook", json_string(runbook));
        json_object_set_new(c, "runbook_version", json_integer(runbook_version));
    }
    return c;
}

void fm_plan_hash(const json_t *content, char out[65])
{
    char *text = fm_json_canonical(content);
    fm_sha256_hex(text ? text : "", text ? strlen(text) : 0, out);
    free(text);
}

int fm_plan_create(fm_ctx *ctx, const json_t *content, const json_t *detail,
                   char id_out[FM_PLAN_ID_LEN], fm_err *err)
{
    char hex[17], hash[65];
    fm_random_hex(hex, 8);
    snprintf(id_out, FM_PLAN_ID_LEN, "pl-%s", hex);
    fm_plan_hash(content, hash);
    char *ctext = fm_json_canonical(content), *dtext = fm_json_canonical(detail);
    char who[160];
    snprintf(who, sizeof who, "%s:%s", ctx->session.initiator ? "human" : "agent",
             fm_session_who(&ctx->session));
    int64_t now = fm_now_ms();
    int rc = 0;
    if (fm_db_run(ctx->store.db,
                  "INSERT INTO plans(id,created_ms,tool,content,detail,hash,status,"
                  "session,initiator,updated_ms) VALUES(?,?,?,?,?,?,'proposed',?,?,?)",
                  NULL, NULL, "titttttti", id_out, now, fm_json_str(content, "tool", ""),
                  ctext ? ctext : "{}", dtext ? dtext : "{}", hash, ctx->session.id, who,
                  now) != FM_DB_DONE) {
        fm_store_fail(&ctx->store, err, "plan insert");
        rc = -1;
    }
    free(ctext);
    free(dtext);
    return rc;
}

int fm_plan_find_proposed(fm_ctx *ctx, const char *hash, char id_out[FM_PLAN_ID_LEN])
{
    static const char sql[] =
        "SELECT id FROM plans WHERE hash=? AND status='proposed' ORDER BY created_ms DESC LIMIT 1";
    char buf[FM_PLAN_ID_LEN];
    fm_db_text_buf t = {buf, sizeof buf, 0};
    if (fm_db_run(ctx->store.db, sql, fm_db_row_text, &t, "t", hash) != FM_DB_ROW) return -1;
    snprintf(id_out, FM_PLAN_ID_LEN, "%s", buf);
    return 0;
}

/* fm_plan_get's row as the plan's JSON (arg: json_t **, new). */
static int plan_row(fm_db_stmt *s, void *arg)
{
    json_t *content = json_loads((const char *)fm_db_column_text(s, 2), 0, NULL);
    json_t *detail = json_loads((const char *)fm_db_column_text(s, 3), 0, NULL);
    char created[32], updated[32];
    fm_iso_time(fm_db_column_int64(s, 1), created);
    fm_iso_time(fm_db_column_int64(s, 7), updated);
    json_t *out = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "plan_id",
                            (const char *)fm_db_column_text(s, 0), "created", created, "updated",
                            updated, "hash", (const char *)fm_db_column_text(s, 4), "status",
                            (const char *)fm_db_column_text(s, 5), "created_by",
                            (const char *)fm_db_column_text(s, 6));
    if (json_is_object(content)) json_object_update(out, content);
    if (json_is_object(detail)) json_object_update_missing(out, detail);
    json_decref(content);
    json_decref(detail);
    *(json_t **)arg = out;
    return 1;
}

json_t *fm_plan_get(fm_ctx *ctx, const char *id, fm_err *err)
{
    json_t *out = NULL;
    int rc = fm_db_run(ctx->store.db,
                       "SELECT id,created_ms,content,detail,hash,status,initiator,updated_ms"
                       " FROM plans WHERE id=?",
                       plan_row, &out, "t", id);
    if (rc != FM_DB_ROW && rc != FM_DB_DONE) {
        fm_store_fail(&ctx->store, err, "plan read");
        return NULL;
    }
    if (!out) {
        char c[64];
        fm_clip(c, sizeof c, id);
        fm_err_set(err, FM_ERR_NOT_FOUND, "no plan %s (plans are listed in audit_query rows)", c);
    }
    return out;
}

int fm_plan_transition(fm_ctx *ctx, const char *id, const char *from, const char *to, fm_err *err)
{
    if (fm_db_run(ctx->store.db, "UPDATE plans SET status=?, updated_ms=? WHERE id=? AND status=?",
                  NULL, NULL, "titt", to, fm_now_ms(), id, from) != FM_DB_DONE)
        return fm_store_fail(&ctx->store, err, "plan update");
    if (fm_db_changes(ctx->store.db) == 1) return 0;
    char c[64];
    fm_clip(c, sizeof c, id);
    return fm_err_set(err, FM_ERR_APPROVAL,
                      "plan %s is no longer %s (approved or executed already): an approval"
                      " releases one execution of one plan; make a new plan",
                      c, from);
}
