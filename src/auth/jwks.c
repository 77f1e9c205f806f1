/* The issuer's public keys (RFC 7517 JWK Set), from a file or a URL.
 *
 * Only RSA and EC keys are kept: tokens are checked with asymmetric
 * algorithms only, so a symmetric ("oct") key in the set could only serve
 * an HS256-with-a-public-key forgery and is dropped on purpose. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../backends/fm_http.h"
#include "auth_int.h"
#include "fleetmcp/fm_util.h"

void fm_keyset_free(fm_keyset *ks)
{
    for (size_t i = 0; i < ks->n; i++)
        FM_CRYPTO(cjose_jwk_release)(ks->keys[i].jwk);
    free(ks->keys);
    ks->keys = NULL;
    ks->n = 0;
}

/* One JWK object into k; 0 when usable, -1 (and a log line) otherwise. */
static int import_key(json_t *jk, size_t idx, const char *what, fm_jwk *k)
{
    const char *kid = fm_json_str(jk, "kid", "");
    const char *kty = fm_json_str(jk, "kty", "");
    const char *use = fm_json_str(jk, "use", "sig");
    const char *alg = fm_json_str(jk, "alg", "");
    char ckid[64];
    fm_clip(ckid, sizeof ckid, kid);
    if (strcmp(kty, "RSA") && strcmp(kty, "EC")) {
        fm_log("info",
               "auth: %s key %zu (kid '%s') has kty '%.8s': only RSA and EC keys are"
               " used, skipped",
               what, idx, ckid, kty);
        return -1;
    }
    if (strcmp(use, "sig")) {
        fm_log("info", "auth: %s key %zu (kid '%s') is not a signing key, skipped", what, idx,
               ckid);
        return -1;
    }
    if (strlen(kid) >= sizeof k->kid || strlen(alg) >= sizeof k->alg) {
        fm_log("warning", "auth: %s key %zu has an over-long kid or alg, skipped", what, idx);
        return -1;
    }
    cjose_err cerr = {0};
    cjose_jwk_t *jwk = FM_CRYPTO(cjose_jwk_import_json)((cjose_header_t *)jk, &cerr);
    if (!jwk) {
        fm_log("warning", "auth: %s key %zu (kid '%s') cannot be imported (%s), skipped", what, idx,
               ckid, cerr.message ? cerr.message : "invalid JWK");
        return -1;
    }
    memset(k, 0, sizeof *k);
    snprintf(k->kid, sizeof k->kid, "%s", kid);
    snprintf(k->alg, sizeof k->alg, "%s", alg);
    k->jwk = jwk;
    k->kty = FM_CRYPTO(cjose_jwk_get_kty)(jwk, &cerr);
    k->crv = k->kty == CJOSE_JWK_KTY_EC ? FM_CRYPTO(cjose_jwk_EC_get_curve)(jwk, &cerr)
                                        : CJOSE_JWK_EC_INVALID;
    return 0;
}

static int parse_doc(json_t *doc, const char *what, fm_keyset *ks, fm_err *err)
{
    memset(ks, 0, sizeof *ks);
    json_t *keys = json_object_get(doc, "keys");
    if (!json_is_array(keys))
        return fm_err_set(err, FM_ERR_PARSE,
                          "%s is not a JWK Set (no \"keys\" array): point auth.jwks at the"
                          " issuer's jwks_uri",
                          what);
    size_t n = json_array_size(keys);
    if (n > FM_JWKS_MAX_KEYS)
        return fm_err_set(err, FM_ERR_TOO_LARGE, "%s holds %zu keys, more than %d", what, n,
                          FM_JWKS_MAX_KEYS);
    ks->keys = calloc(n ? n : 1, sizeof *ks->keys);
    if (!ks->keys) return fm_err_set(err, FM_ERR_NOMEM, "JWKS keys");
    for (size_t i = 0; i < n; i++) {
        json_t *jk = json_array_get(keys, i);
        if (!json_is_object(jk)) continue;
        if (import_key(jk, i, what, &ks->keys[ks->n]) == 0) ks->n++;
    }
    if (!ks->n) {
        fm_keyset_free(ks);
        return fm_err_set(err, FM_ERR_PARSE,
                          "%s holds no usable RSA or EC signing key: check auth.jwks", what);
    }
    return 0;
}

int fm_keyset_parse(const char *json, size_t len, const char *what, fm_keyset *ks, fm_err *err)
{
    memset(ks, 0, sizeof *ks);
    if (len > FM_JWKS_MAX_BYTES)
        return fm_err_set(err, FM_ERR_TOO_LARGE, "%s is larger than %u bytes", what,
                          FM_JWKS_MAX_BYTES);
    json_error_t jerr;
    json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc)
        return fm_err_set(err, FM_ERR_PARSE, "%s is not JSON (line %d: %s)", what, jerr.line,
                          jerr.text);
    int rc = parse_doc(doc, what, ks, err);
    json_decref(doc);
    return rc ? -1 : 0;
}

int fm_keyset_load_file(const char *path, fm_keyset *ks, fm_err *err)
{
    memset(ks, 0, sizeof *ks);
    FILE *f = fopen(path, "rb");
    if (!f)
        return fm_err_set(err, FM_ERR_IO, "cannot read JWKS file %s: %s: fix auth.jwks.file", path,
                          strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) || st.st_size > (off_t)FM_JWKS_MAX_BYTES) {
        fclose(f);
        return fm_err_set(err, FM_ERR_TOO_LARGE, "JWKS file %s is larger than %u bytes", path,
                          FM_JWKS_MAX_BYTES);
    }
    char *buf = malloc((size_t)st.st_size + 1);
    size_t n = buf ? fread(buf, 1, (size_t)st.st_size, f) : 0;
    fclose(f);
    if (!buf) return fm_err_set(err, FM_ERR_NOMEM, "JWKS file");
    char what[600];
    snprintf(what, sizeof what, "JWKS file %s", path);
    int rc = fm_keyset_parse(buf, n, what, ks, err);
    free(buf);
    return rc;
}

int fm_keyset_fetch(const char *url, fm_keyset *ks, fm_err *err)
{
    memset(ks, 0, sizeof *ks);
    char what[600];
    snprintf(what, sizeof what, "JWKS URL %s", url);
    fm_http_req req = {.url = url,
                       .timeout_ms = 5000,
                       .max_bytes = FM_JWKS_MAX_BYTES,
                       .what = what,
                       .hint = "is the issuer up? check auth.jwks.url"};
    fm_http_resp resp;
    if (fm_http_perform(&req, &resp, err)) return -1;
    int rc = -1;
    if (resp.status != 200)
        fm_err_set(err, FM_ERR_BACKEND, "%s answered HTTP %ld: check auth.jwks.url", what,
                   resp.status);
    else
        rc = fm_keyset_parse(resp.body, resp.len, what, ks, err);
    fm_http_resp_free(&resp);
    return rc;
}
