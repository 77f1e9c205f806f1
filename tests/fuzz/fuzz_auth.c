/* libFuzzer target: the Authorization header (src/auth), which anyone who
 * can reach the HTTP port controls.  The first byte picks what the rest is:
 *   0: the header value as sent;
 *   1: a JWS header (JSON) up to the first newline and claims after it,
 *      with a made-up signature: reaches alg, kid and crit handling;
 *   2: claims signed here with the issuer's own ES256 key (a JSON object
 *      is laid over valid claims): reaches every claim check, as a token
 *      from a buggy or hostile issuer would.
 * Whatever comes in, a principal is clean and a failure's HTTP answer is
 * one header line that a client can parse. */
#include <cjose/cjose.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fleetmcp/fm_auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static fm_auth *auth;
static cjose_jwk_t *ec_key;

static void setup(void)
{
    ec_key = cjose_jwk_create_EC_random(CJOSE_JWK_EC_P_256, NULL);
    static const uint8_t e[] = {1, 0, 1};
    cjose_jwk_t *rsa = cjose_jwk_create_RSA_random(2048, e, sizeof e, NULL);
    if (!ec_key || !rsa || !cjose_jwk_set_kid(ec_key, "ec-1", 4, NULL) ||
        !cjose_jwk_set_kid(rsa, "rsa-1", 5, NULL))
        abort();
    char *pe = cjose_jwk_to_json(ec_key, false, NULL), *pr = cjose_jwk_to_json(rsa, false, NULL);
    char path[] = "/tmp/fm-fuzz-jwks-XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f || !pe || !pr) abort();
    fprintf(f, "{\"keys\": [%s, %s]}", pe, pr);
    fclose(f);
    free(pe);
    free(pr);
    cjose_jwk_release(rsa);
    /* sha256("fuzz-static-token") */
    json_t *cfg = json_pack("{s:s, s:s, s:{s:s}, s:[{s:s, s:s, s:[s]}]}", "audience",
                            "https://fleet.test/mcp", "issuer", "https://idp.test", "jwks", "file",
                            path, "tokens", "sha256",
                            "3773966a7cf34b15524fa0521ae1cdcd3e98191cef78ba25395a0d8505549ba0",
                            "subject", "ci", "scopes", "fleetmcp:read");
    fm_err err = {0};
    if (fm_auth_open(&auth, cfg, &err)) {
        fprintf(stderr, "fuzz_auth: %s\n", err.text);
        abort();
    }
    unlink(path);
    json_decref(cfg);
}

static char *b64url(const uint8_t *p, size_t n)
{
    char *out = NULL;
    size_t len = 0;
    if (!cjose_base64url_encode(p, n, &out, &len, NULL)) abort();
    return out;
}

/* "Bearer " + the token for this input (new string). */
static char *header_for(const uint8_t *data, size_t size)
{
    char *h = NULL;
    if (data[0] % 3 == 0) {
        h = malloc(size);
        memcpy(h, data + 1, size - 1);
        h[size - 1] = '\0';
        return h;
    }
    const uint8_t *body = data + 1;
    size_t n = size - 1;
    if (data[0] % 3 == 1) {
        const uint8_t *nl = memchr(body, '\n', n);
        size_t hl = nl ? (size_t)(nl - body) : n;
        char *hd = b64url(body, hl);
        char *cl = b64url(nl ? nl + 1 : body + n, nl ? n - hl - 1 : 0);
        size_t len = strlen(hd) + strlen(cl) + 32;
        h = malloc(len);
        snprintf(h, len, "Bearer %s.%s.c2lnbmF0dXJl", hd, cl);
        free(hd);
        free(cl);
        return h;
    }
    /* A JSON object is laid over valid claims, so each claim's check is
     * reached without the fuzzer having to guess the issuer and audience. */
    json_t *in = json_loadb((const char *)body, n, 0, NULL);
    char *claims = NULL;
    if (json_is_object(in)) {
        json_t *base = json_pack("{s:s, s:s, s:s, s:s, s:I}", "iss", "https://idp.test", "aud",
                                 "https://fleet.test/mcp", "sub", "alice", "scope", "fleetmcp:read",
                                 "exp", (json_int_t)4000000000LL);
        json_object_update(base, in);
        claims = json_dumps(base, JSON_COMPACT);
        json_decref(base);
        if (claims) {
            body = (const uint8_t *)claims;
            n = strlen(claims);
        }
    }
    json_decref(in);
    cjose_header_t *jh = cjose_header_new(NULL);
    cjose_header_set(jh, CJOSE_HDR_ALG, "ES256", NULL);
    cjose_header_set(jh, CJOSE_HDR_KID, "ec-1", NULL);
    cjose_jws_t *jws = cjose_jws_sign(ec_key, jh, body, n, NULL);
    free(claims);
    const char *ser = NULL;
    if (!jws || !cjose_jws_export(jws, &ser, NULL)) abort();
    size_t len = strlen(ser) + 8;
    h = malloc(len);
    snprintf(h, len, "Bearer %s", ser);
    cjose_jws_release(jws);
    cjose_header_release(jh);
    return h;
}

static void clean(const char *s, size_t max)
{
    if (strlen(s) >= max) abort();
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!auth) setup();
    if (size < 1) return 0;
    char *h = header_for(data, size);
    fm_principal p;
    fm_auth_fail f;
    fm_auth_status st = fm_auth_verify(auth, h, &p, &f);
    free(h);
    if (st == FM_AUTH_OK) {
        if (!p.subject[0] || p.levels > 15) abort();
        clean(p.subject, sizeof p.subject);
        clean(p.client_id, sizeof p.client_id);
        return 0;
    }
    if (st == FM_AUTH_INSUFFICIENT_SCOPE || (unsigned)st > FM_AUTH_UNAVAILABLE) abort();
    fm_auth_http a;
    fm_auth_http_answer(auth, &f, &a);
    clean(a.www_authenticate, sizeof a.www_authenticate);
    char *body = json_dumps(a.body, 0);
    if (!body) abort();
    free(body);
    json_decref(a.body);
    return 0;
}
