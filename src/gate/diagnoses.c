/* Recorded diagnoses: the gate's evidence for acting without a human.
 * diagnose records its top answer per node (class, confidence, the act
 * threshold it was judged against, when, and whether the engine itself
 * said "act": corroborated enough for a destructive class).  A canary
 * repair runs without an approval only on a node whose latest diagnosis
 * names the plan's class, reached `act`, and is younger than
 * diagnose.max_age_s ("confidence high? if not, human review"), and only
 * on evidence fleetmcp collected itself: a diagnosis from the caller's
 * signals alone never counts (an agent could make the evidence up), and
 * one from collected evidence plus the caller's counts only when the
 * collected evidence alone, through the same engine, named the same class
 * at act (collected_act): the caller's lines may add to such an answer,
 * never be the reason it is acted on without a human. */
/* Data access: this file owns the table diagnoses; every statement on
 * it is here, others call its functions (the data-access stage checks). */
#include <stdio.h>
#include <string.h>

#include "fleetmcp/fm_policy.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_util.h"

#define DEFAULT_MAX_AGE_S 3600
/* How far in the future a diagnosis may be dated and still count: the
 * clock steps of one host, or the skew between hosts sharing the store.
 * Beyond it, the recording host's clock runs ahead (or this one's was
 * set back), and the diagnosis would stay "fresh" that much longer than
 * diagnose.max_age_s: it counts as stale instead. */
#define MAX_FUTURE_S 60
/* Rows older than this are history nobody decides on: pruned per node. */
#define KEEP_MS (30LL * 86400 * 1000)

static const char ddl[] =
    "CREATE TABLE IF NOT EXISTS diagnoses(seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " id TEXT NOT NULL UNIQUE, node TEXT NOT NULL,"
    " fault_class TEXT NOT NULL, confidence REAL NOT NULL, act_threshold REAL NOT NULL,"
    " act INTEGER NOT NULL, source TEXT NOT NULL, at_ms INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS diagnoses_node ON diagnoses(node, seq);";
/* v2: whether fleetmcp's own evidence alone named the class at act.  Rows
 * before it: a node-mode diagnosis without caller signals is its own
 * evidence (act), any other is not. */
static const char ddl_v2[] =
    "ALTER TABLE diagnoses ADD COLUMN collected_act INTEGER NOT NULL DEFAULT 0;"
    "UPDATE diagnoses SET collected_act=act WHERE source='collected';";
static const char put_sql[] =
    "INSERT INTO diagnoses(id,node,fault_class,confidence,act_threshold,act,source,at_ms,"
    "collected_act) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9)";
static const char prune_sql[] = "DELETE FROM diagnoses WHERE node=? AND at_ms<?";
static const char latest_sql[] =
    "SELECT id, fault_class, confidence, act_threshold, act, source, at_ms, collected_act"
    " FROM diagnoses"
    " WHERE node=? ORDER BY seq DESC LIMIT 1";

int fm_diagnosis_init(fm_ctx *ctx, fm_err *err)
{
    return fm_store_migrate(&ctx->store, "diagnoses", 1, ddl, err) ||
                   fm_store_migrate(&ctx->store, "diagnoses", 2, ddl_v2, err)
               ? -1
               : 0;
}

int fm_diagnosis_record(fm_ctx *ctx, const char *node, const fm_diagnosis *d, char *id_out,
                        fm_err *err)
{
    char id[FM_DIAGNOSIS_ID_LEN] = "dg-";
    fm_random_hex(id + 3, 8);
    /* The store's clock: another host judges the diagnosis's age. */
    int64_t now = fm_store_now_ms(&ctx->store);
    int rc = fm_db_run(ctx->store.db, put_sql, NULL, NULL, "tttddntin", id, node, d->fault_class,
                       d->confidence, d->act_threshold, d->act ? 1 : 0, d->source, now,
                       d->collected_act ? 1 : 0);
    if (rc != FM_DB_DONE) {
        fm_store_fail(&ctx->store, err, "recording the diagnosis");
        return -1;
    }
    fm_db_run(ctx->store.db, prune_sql, NULL, NULL, "ti", node, now - KEEP_MS);
    if (id_out) snprintf(id_out, FM_DIAGNOSIS_ID_LEN, "%s", id);
    return 0;
}

static int latest_row(fm_db_stmt *s, void *arg)
{
    fm_diagnosis *d = arg;
    const unsigned char *t;
    t = fm_db_column_text(s, 0);
    snprintf(d->id, sizeof d->id, "%s", t ? (const char *)t : "");
    t = fm_db_column_text(s, 1);
    snprintf(d->fault_class, sizeof d->fault_class, "%s", t ? (const char *)t : "");
    d->confidence = fm_db_column_double(s, 2);
    d->act_threshold = fm_db_column_double(s, 3);
    d->act = fm_db_column_int64(s, 4) != 0;
    t = fm_db_column_text(s, 5);
    snprintf(d->source, sizeof d->source, "%s", t ? (const char *)t : "");
    d->at_ms = fm_db_column_int64(s, 6);
    d->collected_act = fm_db_column_int64(s, 7) != 0;
    return 1;
}

int fm_diagnosis_latest(fm_ctx *ctx, const char *node, fm_diagnosis *d)
{
    memset(d, 0, sizeof *d);
    int rc = fm_db_run(ctx->store.db, latest_sql, latest_row, d, "t", node);
    return rc == FM_DB_ROW ? 1 : rc == FM_DB_DONE ? 0 : -1;
}

long long fm_diagnosis_max_age_s(const fm_ctx *ctx)
{
    return fm_cfg_int(fm_config_section(&ctx->cfg, "diagnose"), "max_age_s", DEFAULT_MAX_AGE_S);
}

json_t *fm_diagnosis_basis(fm_ctx *ctx, const char *node, const char *fault_class, bool *enough,
                           char *why, size_t len)
{
    *enough = false;
    fm_diagnosis d;
    int found = fm_diagnosis_latest(ctx, node, &d);
    if (found < 0) {
        snprintf(why, len, "the recorded diagnoses of %s cannot be read (%s), so none counts", node,
                 fm_db_errmsg(ctx->store.db));
        return NULL;
    }
    if (found == 0) {
        snprintf(why, len,
                 "no diagnosis of %s is recorded; run diagnose {node: %s} first, or"
                 " have a human approve the plan",
                 node, node);
        return NULL;
    }
    long long max_age = fm_diagnosis_max_age_s(ctx);
    /* On the store's clock, as it was stamped: a host whose own clock ran
     * behind the recorder's took a stale diagnosis for a fresh one. */
    long long age_s = (long long)((fm_store_now_ms(&ctx->store) - d.at_ms) / 1000);
    bool agrees = fault_class && !strcmp(d.fault_class, fault_class);
    bool confident = d.act && d.confidence >= d.act_threshold;
    bool future = age_s < -MAX_FUTURE_S;
    bool fresh = age_s <= max_age && !future;
    bool own = d.collected_act;
    char at[32];
    fm_iso_time(d.at_ms, at);
    if (!agrees)
        snprintf(why, len,
                 "the plan's fault class %s disagrees with %s's latest diagnosis %s"
                 " (%s, %s, confidence %.2f): a human must approve it, or make a plan for the"
                 " diagnosed class",
                 fault_class ? fault_class : "(none)", node, d.id, d.fault_class, at, d.confidence);
    else if (!confident)
        snprintf(why, len,
                 "%s's latest diagnosis %s names %s with confidence %.2f, %s the act"
                 " threshold %.2f%s: a human must approve the plan, or diagnose again when"
                 " the evidence is stronger",
                 node, d.id, d.fault_class, d.confidence,
                 d.confidence >= d.act_threshold ? "at" : "below", d.act_threshold,
                 d.confidence >= d.act_threshold ? " but not corroborated" : "");
    else if (!own)
        snprintf(why, len,
                 "%s's latest diagnosis %s (%s) rests on evidence the caller passed"
                 " (source %s), not on evidence fleetmcp collected itself: a human must approve"
                 " the plan, or run diagnose {node: %s} without signals so fleetmcp reads the"
                 " node itself",
                 node, d.id, d.fault_class, d.source, node);
    else if (future)
        snprintf(why, len,
                 "%s's latest diagnosis %s is dated %s, %lld s ahead of this server's clock"
                 " (clocks differ between the hosts sharing the store, or this one was set"
                 " back), so its age is unknown: fix the clocks (NTP) and run diagnose {node:"
                 " %s} again, or have a human approve the plan",
                 node, d.id, at, -age_s, node);
    else if (!fresh)
        snprintf(why, len,
                 "%s's latest diagnosis %s (%s) is %lld s old, over diagnose.max_age_s"
                 " %lld: run diagnose {node: %s} again, or have a human approve the plan",
                 node, d.id, at, age_s, max_age, node);
    else
        snprintf(why, len,
                 "diagnosis %s of %s names %s with confidence %.2f (act %.2f), %lld s"
                 " ago",
                 d.id, node, d.fault_class, d.confidence, d.act_threshold, age_s);
    *enough = agrees && confident && own && fresh;
    return json_pack("{s:s, s:s, s:f, s:f, s:b, s:s, s:b, s:s, s:I, s:b, s:b, s:b}", "id", d.id,
                     "fault_class", d.fault_class, "confidence", d.confidence, "act_threshold",
                     d.act_threshold, "act", d.act, "source", d.source, "collected_act", own, "at",
                     at, "age_s", (json_int_t)age_s, "agrees", agrees, "fresh", fresh, "enough",
                     *enough);
}
