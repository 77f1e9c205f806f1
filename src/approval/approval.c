/* Approvals: Ed25519 signatures (OpenSSL libcrypto) over a plan's hash. */
/* Data access: this file owns the tables approval_signatures, approvals; every statement on
 * them is here, others call its functions (the data-access stage checks). */
#include "fleetmcp/fm_approval.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fleetmcp/fm_crypto.h"
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "fleetmcp/fm_approval_roles.h"
#include "fleetmcp/fm_plan.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_util.h"

/* What an approval given through elicitation stores instead of a
 * signature. */
#define ELICITED_SIG "elicitation"
/* A signature's base64 text: 128 bytes at most (signature_check's bound). */
#define FM_APPROVAL_SIG_TEXT (4 * ((128 + 2) / 3) + 1)

static const char approval_ddl[] =
    "CREATE TABLE IF NOT EXISTS approvals(id TEXT PRIMARY KEY, plan_id TEXT NOT NULL,"
    " plan_hash TEXT NOT NULL, approver TEXT NOT NULL, expires_ms INTEGER NOT NULL,"
    " signature TEXT NOT NULL, created_ms INTEGER NOT NULL, used_ms INTEGER,"
    " used_session TEXT);"
    "CREATE INDEX IF NOT EXISTS approvals_plan ON approvals(plan_id);"
    /* v2: a signature is recorded once.  Its own table (not a unique index
     * on approvals) so a store that already holds replayed copies still
     * migrates: the oldest approval keeps the signature. */
    "CREATE TABLE IF NOT EXISTS approval_signatures(signature TEXT PRIMARY KEY,"
    " approval_id TEXT NOT NULL) WITHOUT ROWID;"
    "INSERT OR IGNORE INTO approval_signatures(signature, approval_id)"
    " SELECT signature, id FROM approvals WHERE signature<>'" ELICITED_SIG "'"
    " ORDER BY created_ms;";

int fm_approval_init(fm_ctx *ctx, fm_err *err)
{
    return fm_store_migrate(&ctx->store, "approvals", 2, approval_ddl, err);
}

size_t fm_approval_message(char *buf, size_t len, const char *plan_id, const char *plan_hash,
                           const char *approver, int64_t expires_ms)
{
    int n = snprintf(buf, len, "fleetmcp-approval-v1|%s|%s|%s|%lld", plan_id, plan_hash, approver,
                     (long long)expires_ms);
    return n < 0 ? 0 : (size_t)n < len ? (size_t)n : len - 1;
}

static int b64_decode(const char *in, unsigned char *out, size_t outlen, size_t *n)
{
    size_t len = strlen(in);
    long m = len ? fm_base64_decode(in, len, out, outlen) : -1;
    if (m < 0) return -1;
    *n = (size_t)m;
    return 0;
}

/* The one spelling of a signature that is recorded: base64 leaves unused
 * bits in its last character, so several texts decode to the same bytes
 * and each would pass the "recorded once" key as new.  The decoded bytes
 * re-encoded, or -1 when sig_b64 is not base64 of at most 128 bytes. */
static int canonical_sig(const char *sig_b64, char out[FM_APPROVAL_SIG_TEXT], fm_err *err)
{
    unsigned char raw[128];
    size_t n = 0;
    if (b64_decode(sig_b64, raw, sizeof raw, &n))
        return fm_err_set(err, FM_ERR_APPROVAL,
                          "the signature is not base64 of an Ed25519 signature: sign again with"
                          " `mcp-cli approve`");
    fm_base64_encode(raw, n, out);
    return 0;
}

/* The configured public key of approver (new EVP_PKEY), or NULL. */
static EVP_PKEY *approver_key(fm_ctx *ctx, const char *approver)
{
    const json_t *keys = json_object_get(fm_config_section(&ctx->cfg, "approvals"), "keys");
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k)
    {
        if (strcmp(fm_json_str(k, "id", ""), approver)) continue;
        const char *pub = fm_json_str(k, "public_key", "");
        if (!strncmp(pub, "-----BEGIN", 10)) {
            BIO *bio = FM_CRYPTO(BIO_new_mem_buf)(pub, -1);
            EVP_PKEY *p = FM_CRYPTO(PEM_read_bio_PUBKEY)(bio, NULL, NULL, NULL);
            FM_CRYPTO(BIO_free)(bio);
            return p;
        }
        unsigned char raw[64];
        size_t n = 0;
        if (b64_decode(pub, raw, sizeof raw, &n) || n != 32) return NULL;
        return FM_CRYPTO(EVP_PKEY_new_raw_public_key)(EVP_PKEY_ED25519, NULL, raw, 32);
    }
    return NULL;
}

static bool verify(EVP_PKEY *key, const char *msg, size_t len, const unsigned char *sig,
                   size_t siglen)
{
    EVP_MD_CTX *md = FM_CRYPTO(EVP_MD_CTX_new)();
    bool ok = md && FM_CRYPTO(EVP_DigestVerifyInit)(md, NULL, NULL, NULL, key) == 1 &&
              FM_CRYPTO(EVP_DigestVerify)(md, sig, siglen, (const unsigned char *)msg, len) == 1;
    FM_CRYPTO(EVP_MD_CTX_free)(md);
    return ok;
}

/* Stores an approval of plan_id (with its hash), records its signature
 * once and, for the first approval (first), moves the plan from proposed
 * to approved, all in one transaction: the same signature sent again, or
 * a first approval of a plan another approval moved on, is refused. */
static int insert_approval(fm_ctx *ctx, const char *plan_id, const char *hash, const char *approver,
                           int64_t expires_ms, const char *signature, bool first,
                           char id_out[FM_APPROVAL_ID_LEN], fm_err *err)
{
    fm_store *st = &ctx->store;
    char hex[17];
    fm_random_hex(hex, 8);
    snprintf(id_out, FM_APPROVAL_ID_LEN, "ap-%s", hex);
    /* No store-wide lock (PostgreSQL): the signature's primary key lets
     * one insert have it, and the plan moves by a conditional UPDATE
     * (fm_plan_transition: WHERE status=from, one row or refused), which
     * a concurrent one waits for and then finds moved. */
    if (fm_store_begin_rows(st, err)) return -1;
    if (strcmp(signature, ELICITED_SIG)) {
        if (fm_db_run(st->db,
                      "INSERT OR IGNORE INTO approval_signatures(signature,approval_id)"
                      " VALUES(?,?)",
                      NULL, NULL, "tt", signature, id_out) != FM_DB_DONE) {
            fm_store_fail(st, err, "approval insert");
            goto fail;
        }
        if (fm_db_changes(st->db) != 1) {
            fm_err_set(err, FM_ERR_APPROVAL,
                       "this signature was recorded before: a signature approves one execution"
                       " once; a human signs a new plan with `mcp-cli approve`");
            goto fail;
        }
    }
    /* The first approval moves the plan to approved; later ones (a second
     * person, where the gate asks for two) join it there. */
    if (fm_plan_transition(ctx, plan_id, first ? "proposed" : "approved", "approved", err))
        goto fail;
    if (fm_db_run(st->db,
                  "INSERT INTO approvals(id,plan_id,plan_hash,approver,expires_ms,"
                  "signature,created_ms) VALUES(?,?,?,?,?,?,?)",
                  NULL, NULL, "ttttiti", id_out, plan_id, hash, approver, expires_ms, signature,
                  fm_now_ms()) != FM_DB_DONE) {
        fm_store_fail(st, err, "approval insert");
        goto fail;
    }
    return fm_store_commit(st, err);
fail:
    fm_store_rollback(st);
    return -1;
}

bool fm_approval_elicitation_allowed(fm_ctx *ctx)
{
    const json_t *el = json_object_get(fm_config_section(&ctx->cfg, "approvals"), "elicitation");
    /* Only a verified principal is trusted, by its token's subject: the
     * name a client declares (trusted_clients, refused by check-config)
     * never counts, whatever the config says. */
    if (!json_is_true(json_object_get(el, "enabled")) || !ctx->session.elicitation ||
        !ctx->session.verified)
        return false;
    size_t i;
    json_t *c;
    json_array_foreach(
        json_object_get(el, "trusted_subjects"), i,
        c) if (json_is_string(c) &&
               !strcmp(json_string_value(c), ctx->session.principal.subject)) return true;
    return false;
}

int fm_approval_record_elicited(fm_ctx *ctx, const char *plan_id, const char *approver,
                                char id_out[FM_APPROVAL_ID_LEN], fm_err *err)
{
    json_t *plan = fm_plan_get(ctx, plan_id, err);
    if (!plan) return -1;
    int rc = insert_approval(ctx, plan_id, fm_json_str(plan, "hash", ""), approver,
                             fm_now_ms() + 60000, ELICITED_SIG,
                             !strcmp(fm_json_str(plan, "status", ""), "proposed"), id_out, err);
    json_decref(plan);
    return rc;
}

/* Checks sig_b64 against approver's configured key over the approval
 * message; 0, or -1 with FM_ERR_APPROVAL saying why. */
static int signature_check(fm_ctx *ctx, const char *plan_id, const char *hash, const char *approver,
                           int64_t expires_ms, const char *sig_b64, fm_err *err)
{
    EVP_PKEY *key = approver_key(ctx, approver);
    if (!key)
        return fm_err_set(err, FM_ERR_APPROVAL,
                          "approver '%.64s' has no key in approvals.keys of this server's config"
                          " (or the key is malformed): an approver's public key must be"
                          " configured first",
                          approver);
    unsigned char sig[128];
    size_t siglen = 0;
    char msg[512];
    size_t mlen = fm_approval_message(msg, sizeof msg, plan_id, hash, approver, expires_ms);
    bool ok = !b64_decode(sig_b64, sig, sizeof sig, &siglen) && verify(key, msg, mlen, sig, siglen);
    FM_CRYPTO(EVP_PKEY_free)(key);
    if (ok) return 0;
    return fm_err_set(err, FM_ERR_APPROVAL,
                      "signature does not verify for approver '%.64s' over plan %.40s (hash"
                      " %.12s...): forged, for another plan, or signed with another key",
                      approver, plan_id, hash);
}

int fm_approval_record(fm_ctx *ctx, const char *plan_id, const char *approver, int64_t expires_ms,
                       const char *sig_b64, char id_out[FM_APPROVAL_ID_LEN], fm_err *err)
{
    json_t *plan = fm_plan_get(ctx, plan_id, err);
    if (!plan) return -1;
    int rc = -1;
    const char *status = fm_json_str(plan, "status", "");
    const char *hash = fm_json_str(plan, "hash", "");
    int64_t now = fm_now_ms();
    long long max_ttl = fm_cfg_int(fm_config_section(&ctx->cfg, "approvals"), "max_ttl_s", 3600);
    if (expires_ms <= now) {
        fm_err_set(err, FM_ERR_APPROVAL, "approval expired before it arrived: sign a new one");
        goto out;
    }
    if (expires_ms > now + max_ttl * 1000 + 60000) {
        fm_err_set(err, FM_ERR_APPROVAL,
                   "approval lasts longer than approvals.max_ttl_s (%lld s): sign with a shorter"
                   " --ttl",
                   max_ttl);
        goto out;
    }
    /* approved: not executed yet, and a second person may still be
     * needed; whether these approvers together release it is the gate's
     * decision when the call comes. */
    if (strcmp(status, "proposed") && strcmp(status, "approved")) {
        fm_err_set(err, FM_ERR_APPROVAL,
                   "plan %s is %s, not awaiting approval: an approval releases one execution of"
                   " one plan, once; make a new plan",
                   plan_id, status);
        goto out;
    }
    char sig[FM_APPROVAL_SIG_TEXT];
    if (canonical_sig(sig_b64, sig, err) ||
        signature_check(ctx, plan_id, hash, approver, expires_ms, sig, err))
        goto out;
    rc = insert_approval(ctx, plan_id, hash, approver, expires_ms, sig, !strcmp(status, "proposed"),
                         id_out, err);
out:
    json_decref(plan);
    return rc;
}

/* Whether a stored approval counts now: a signed one verifies against the
 * keys configured now; an elicited one only while this session may
 * approve through elicitation. */
static bool still_valid(fm_ctx *ctx, const char *plan_id, const char *hash, const char *approver,
                        int64_t expires_ms, const char *sig, fm_err *err)
{
    if (strcmp(sig, ELICITED_SIG))
        return !signature_check(ctx, plan_id, hash, approver, expires_ms, sig, err);
    if (fm_approval_elicitation_allowed(ctx)) return true;
    fm_err_set(err, FM_ERR_APPROVAL,
               "an approval of plan %.40s carries no signature (elicitation), and this caller"
               " is not trusted for elicited approvals (approvals.elicitation.trusted_subjects):"
               " a human approves with `mcp-cli approve`",
               plan_id);
    return false;
}

/* Appends to ids (up to FM_APPROVAL_MAX_PER_PLAN, *n in/out) the approvers
 * of plan_id's other unused, unexpired approvals for hash that are still
 * valid; one that is not is left out (the quorum then says who is
 * missing).  0, or -1 when the store cannot be read. */
/* other_approvers' rows: each still valid approver appended. */
typedef struct {
    fm_ctx *ctx;
    const char *plan_id, *hash;
    char (*ids)[FM_APPROVER_LEN];
    size_t *n;
} others_acc;

static int other_row(fm_db_stmt *s, void *arg)
{
    others_acc *o = arg;
    const char *who = (const char *)fm_db_column_text(s, 0);
    const char *sig = (const char *)fm_db_column_text(s, 2);
    fm_err ignored = {0};
    if (who && sig &&
        still_valid(o->ctx, o->plan_id, o->hash, who, fm_db_column_int64(s, 1), sig, &ignored))
        snprintf(o->ids[(*o->n)++], FM_APPROVER_LEN, "%s", who);
    return *o->n >= FM_APPROVAL_MAX_PER_PLAN;
}

static int other_approvers(fm_ctx *ctx, const char *plan_id, const char *hash, const char *skip,
                           char ids[][FM_APPROVER_LEN], size_t *n, fm_err *err)
{
    if (*n >= FM_APPROVAL_MAX_PER_PLAN) return 0;
    others_acc o = {ctx, plan_id, hash, ids, n};
    int rc = fm_db_run(ctx->store.db,
                       "SELECT approver,expires_ms,signature FROM approvals WHERE plan_id=?"
                       " AND plan_hash=? AND used_ms IS NULL AND expires_ms>? AND id<>?"
                       " ORDER BY created_ms",
                       other_row, &o, "ttit", plan_id, hash, fm_now_ms(), skip);
    if (rc != FM_DB_ROW && rc != FM_DB_DONE)
        return fm_store_fail(&ctx->store, err, "approval read");
    return 0;
}

/* Marks approval_id used (it must still be unused), then every other
 * unused approval of its plan: they released this one execution. */
static int mark_used(fm_ctx *ctx, const char *approval_id, const char *plan_id, fm_err *err)
{
    static const char *const sql[2] = {
        "UPDATE approvals SET used_ms=?, used_session=? WHERE id=? AND used_ms IS NULL",
        "UPDATE approvals SET used_ms=?, used_session=? WHERE plan_id=? AND used_ms IS NULL"};
    int64_t now = fm_now_ms();
    for (int i = 0; i < 2; i++) {
        if (fm_db_run(ctx->store.db, sql[i], NULL, NULL, "itt", now, ctx->session.id,
                      i ? plan_id : approval_id) != FM_DB_DONE)
            return fm_store_fail(&ctx->store, err, "approval update");
        if (!i && fm_db_changes(ctx->store.db) != 1)
            return fm_err_set(err, FM_ERR_APPROVAL, "approval %s was used concurrently",
                              approval_id);
    }
    return 0;
}

int fm_approval_plan_of(fm_ctx *ctx, const char *approval_id, char plan_id_out[FM_APPROVAL_ID_LEN],
                        fm_err *err)
{
    fm_db_text_buf t = {plan_id_out, FM_APPROVAL_ID_LEN, 0};
    int rc = fm_db_run(ctx->store.db, "SELECT plan_id FROM approvals WHERE id=?", fm_db_row_text,
                       &t, "t", approval_id);
    if (rc != FM_DB_ROW && rc != FM_DB_DONE)
        return fm_store_fail(&ctx->store, err, "approval read");
    if (rc == FM_DB_ROW) return 0;
    return fm_err_set(err, FM_ERR_APPROVAL, "no approval %.40s: run `mcp-cli approve PLAN` first",
                      approval_id);
}

/* fm_approval_consume's row, copied out: the plan and first approver
 * into the caller's buffers, whether the hash is the caller's, whether
 * it was used, when it expires, its signature. */
typedef struct {
    char *plan_id, *approver;
    const char *want_hash;
    bool same_hash, used;
    int64_t expires_ms;
    char sig[200];
} consume_read;

static int consume_row(fm_db_stmt *s, void *arg)
{
    consume_read *r = arg;
    snprintf(r->plan_id, FM_APPROVAL_ID_LEN, "%s", (const char *)fm_db_column_text(s, 0));
    snprintf(r->approver, FM_APPROVER_LEN, "%s", (const char *)fm_db_column_text(s, 2));
    r->same_hash = !strcmp((const char *)fm_db_column_text(s, 1), r->want_hash);
    r->used = fm_db_column_type(s, 4) != FM_DB_NULL;
    r->expires_ms = fm_db_column_int64(s, 3);
    const unsigned char *sigcol = fm_db_column_text(s, 5);
    snprintf(r->sig, sizeof r->sig, "%s", sigcol ? (const char *)sigcol : "");
    return 1;
}

int fm_approval_consume(fm_ctx *ctx, const char *approval_id, const char *plan_hash,
                        const fm_approval_need *need, char plan_id_out[FM_APPROVAL_ID_LEN],
                        char *approvers_out, size_t approvers_len, fm_err *err)
{
    fm_store *st = &ctx->store;
    /* No store-wide lock (PostgreSQL): what is read here is checked, and
     * the approval is then taken by mark_used's UPDATE ... WHERE used_ms
     * IS NULL (one row, or "used concurrently") and the plan moved by
     * approved -> executed (one row, or refused).  A consumer racing this
     * one waits on those rows and finds them taken: consumed once. */
    if (fm_store_begin_rows(st, err)) return -1;
    int rc = -1;
    char ids[FM_APPROVAL_MAX_PER_PLAN][FM_APPROVER_LEN];
    size_t n = 0;
    consume_read r = {.plan_id = plan_id_out, .approver = ids[0], .want_hash = plan_hash};
    int step = fm_db_run(st->db,
                         "SELECT plan_id,plan_hash,approver,expires_ms,used_ms,signature"
                         " FROM approvals WHERE id=?",
                         consume_row, &r, "t", approval_id);
    if (step != FM_DB_ROW && step != FM_DB_DONE) {
        fm_store_fail(st, err, "approval read");
        goto out;
    }
    if (step != FM_DB_ROW) {
        fm_err_set(err, FM_ERR_APPROVAL, "no approval %.40s: run `mcp-cli approve PLAN` first",
                   approval_id);
        goto out;
    }
    n++;
    if (!r.same_hash) {
        fm_err_set(err, FM_ERR_APPROVAL,
                   "approval %s was given for plan %s, and this call is not that plan (its"
                   " arguments or runbook changed): get a new approval for the new plan",
                   approval_id, plan_id_out);
        goto out;
    }
    if (r.used) {
        fm_err_set(err, FM_ERR_APPROVAL,
                   "approval %s was already used: approvals are single-use, approve again",
                   approval_id);
        goto out;
    }
    int64_t expires_ms = r.expires_ms;
    if (expires_ms <= fm_now_ms()) {
        fm_err_set(err, FM_ERR_APPROVAL, "approval %s expired: approve the plan again",
                   approval_id);
        goto out;
    }
    /* The rows are trusted no more than the store is: every signature is
     * checked again, against the keys configured now. */
    const char *sig = r.sig;
    if (!still_valid(ctx, plan_id_out, plan_hash, ids[0], expires_ms, sig, err)) goto out;
    if (other_approvers(ctx, plan_id_out, plan_hash, approval_id, ids, &n, err)) goto out;
    const char *who[FM_APPROVAL_MAX_PER_PLAN];
    for (size_t i = 0; i < n; i++)
        who[i] = ids[i];
    if (fm_approval_quorum(fm_config_section(&ctx->cfg, "approvals"), need, who, n, approvers_out,
                           approvers_len, err))
        goto out;
    if (mark_used(ctx, approval_id, plan_id_out, err)) goto out;
    if (fm_plan_transition(ctx, plan_id_out, "approved", "executed", err)) goto out;
    rc = 0;
out:
    if (rc == 0) {
        if (fm_store_commit(st, err)) rc = -1;
    } else {
        fm_store_rollback(st);
    }
    return rc;
}

int fm_approval_sign(const char *key_file, const char *msg, size_t msg_len, char *sig_b64,
                     size_t sig_len, fm_err *err)
{
    FILE *f = fopen(key_file, "r");
    if (!f)
        return fm_err_set(err, FM_ERR_NOT_FOUND,
                          "cannot read key %s: %s (make one with"
                          " `mcp-cli keygen --out FILE`)",
                          key_file, strerror(errno));
    EVP_PKEY *key = FM_CRYPTO(PEM_read_PrivateKey)(f, NULL, NULL, NULL);
    fclose(f);
    if (!key || FM_CRYPTO(EVP_PKEY_get_base_id)(key) != EVP_PKEY_ED25519) {
        FM_CRYPTO(EVP_PKEY_free)(key);
        return fm_err_set(err, FM_ERR_INVALID, "%s is not an Ed25519 private key in PEM", key_file);
    }
    unsigned char sig[64];
    size_t n = sizeof sig;
    EVP_MD_CTX *md = FM_CRYPTO(EVP_MD_CTX_new)();
    int ok = md && FM_CRYPTO(EVP_DigestSignInit)(md, NULL, NULL, NULL, key) == 1 &&
             FM_CRYPTO(EVP_DigestSign)(md, sig, &n, (const unsigned char *)msg, msg_len) == 1;
    FM_CRYPTO(EVP_MD_CTX_free)(md);
    FM_CRYPTO(EVP_PKEY_free)(key);
    if (!ok || sig_len < 4 * ((n + 2) / 3) + 1)
        return fm_err_set(err, FM_ERR_INTERNAL, "signing failed");
    fm_base64_encode(sig, n, sig_b64);
    return 0;
}

int fm_approval_keygen(const char *key_file, char *pub_b64, size_t pub_len, fm_err *err)
{
    EVP_PKEY *key = FM_CRYPTO(EVP_PKEY_Q_keygen)(NULL, NULL, "ED25519");
    if (!key) return fm_err_set(err, FM_ERR_INTERNAL, "Ed25519 key generation failed");
    int fd = open(key_file, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        FM_CRYPTO(EVP_PKEY_free)(key);
        return fm_err_set(err, FM_ERR_IO, "cannot create %s: %s (it must not exist yet)", key_file,
                          strerror(errno));
    }
    FILE *f = fdopen(fd, "w");
    int ok = f && FM_CRYPTO(PEM_write_PrivateKey)(f, key, NULL, NULL, 0, NULL, NULL) == 1;
    if (f) fclose(f);
    unsigned char raw[32];
    size_t n = sizeof raw;
    ok =
        ok && FM_CRYPTO(EVP_PKEY_get_raw_public_key)(key, raw, &n) == 1 && n == 32 && pub_len >= 45;
    if (ok) fm_base64_encode(raw, 32, pub_b64);
    FM_CRYPTO(EVP_PKEY_free)(key);
    return ok ? 0 : fm_err_set(err, FM_ERR_IO, "cannot write key %s", key_file);
}
