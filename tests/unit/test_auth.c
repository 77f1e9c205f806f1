/* The identity layer: tokens minted here with test keys (RS256, ES256)
 * against a JWKS file and a JWKS URL served on loopback by python3. */
#include <cjose/cjose.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "fleetmcp/fm_auth.h"
#include "fleetmcp/fm_util.h"
#include "fm_test.h"

#define ISS "https://idp.test/realms/fleet"
#define AUD "https://fleet.test/mcp"
#define STATIC_TOKEN "ci-secret-token-1"

static cjose_jwk_t *rsa_key, *ec_key, *rogue_key, *weak_key, *oct_key;
static char tmpdir[] = "/tmp/fm-auth-XXXXXX";
static char jwks_path[600];

/* For setup, which runs before Check does: a failure aborts the run. */
#define NEED(c)                                                                                    \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "test_auth: %s failed at line %d\n", #c, __LINE__);                    \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* The public half of key k with kid, as a new JSON object. */
static json_t *public_jwk(cjose_jwk_t *k)
{
    char *s = cjose_jwk_to_json(k, false, NULL);
    NEED(s);
    json_t *j = json_loads(s, 0, NULL);
    free(s);
    NEED(j);
    return j;
}

static void write_jwks(const char *path, cjose_jwk_t *const *keys, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, public_jwk(keys[i]));
    json_t *doc = json_pack("{s:o}", "keys", arr);
    char tmp[700];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    NEED(json_dump_file(doc, tmp, 0) == 0);
    NEED(rename(tmp, path) == 0); /* a reader never sees half a file */
    json_decref(doc);
}

static cjose_jwk_t *rsa_new(size_t bits, const char *kid)
{
    static const uint8_t e[] = {1, 0, 1};
    cjose_jwk_t *k = cjose_jwk_create_RSA_random(bits, e, sizeof e, NULL);
    NEED(k);
    NEED(cjose_jwk_set_kid(k, kid, strlen(kid), NULL));
    return k;
}

static pid_t owner;

/* Check forks a child per test and children exit through exit(): only the
 * process that made the directory removes it. */
static void remove_tmpdir(void)
{
    if (getpid() != owner) return;
    unlink(jwks_path);
    rmdir(tmpdir);
    cjose_jwk_t *keys[] = {rsa_key, rogue_key, weak_key, ec_key, oct_key};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        cjose_jwk_release(keys[i]);
}

static void make_keys(void)
{
    owner = getpid();
    rsa_key = rsa_new(2048, "rsa-1");
    rogue_key = rsa_new(2048, "rogue");
    weak_key = rsa_new(1024, "rsa-weak");
    ec_key = cjose_jwk_create_EC_random(CJOSE_JWK_EC_P_256, NULL);
    NEED(ec_key);
    NEED(cjose_jwk_set_kid(ec_key, "ec-1", 4, NULL));
    /* A symmetric key in the issuer's set must be ignored, never used. */
    oct_key = cjose_jwk_create_oct_random(32, NULL);
    NEED(cjose_jwk_set_kid(oct_key, "hmac-1", 6, NULL));
    NEED(mkdtemp(tmpdir));
    snprintf(jwks_path, sizeof jwks_path, "%s/jwks.json", tmpdir);
    cjose_jwk_t *set[] = {rsa_key, ec_key, weak_key, oct_key};
    write_jwks(jwks_path, set, 4);
    atexit(remove_tmpdir);
}

/* Claims valid for ten minutes, for alice through agent-7. */
static json_t *claims(const char *scope)
{
    long long now = (long long)time(NULL);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "iss", ISS, "aud", AUD, "sub", "alice",
                     "client_id", "agent-7", "scope", scope, "iat", now, "exp", now + 600);
}

/* A compact JWS over c (stolen), signed by k with alg and kid (NULL: none). */
static char *mint(cjose_jwk_t *k, const char *alg, const char *kid, json_t *c)
{
    cjose_header_t *h = cjose_header_new(NULL);
    ck_assert(cjose_header_set(h, CJOSE_HDR_ALG, alg, NULL));
    if (kid) ck_assert(cjose_header_set(h, CJOSE_HDR_KID, kid, NULL));
    char *payload = json_dumps(c, JSON_COMPACT);
    json_decref(c);
    cjose_err err = {0};
    cjose_jws_t *jws = cjose_jws_sign(k, h, (const uint8_t *)payload, strlen(payload), &err);
    ck_assert_msg(jws != NULL, "sign: %s", err.message ? err.message : "?");
    const char *ser = NULL;
    ck_assert(cjose_jws_export(jws, &ser, NULL));
    char *out = strdup(ser);
    cjose_jws_release(jws);
    cjose_header_release(h);
    free(payload);
    return out;
}

static char *b64url(const char *s)
{
    char *out = NULL;
    size_t n = 0;
    ck_assert(cjose_base64url_encode((const uint8_t *)s, strlen(s), &out, &n, NULL));
    return out; /* cjose's allocator is malloc here */
}

static fm_auth *open_cfg(json_t *cfg)
{
    fm_auth *a = NULL;
    fm_err err = {0};
    int rc = fm_auth_open(&a, cfg, &err);
    ck_assert_msg(rc == 0, "fm_auth_open: %s", err.text);
    json_decref(cfg);
    return a;
}

static fm_auth *open_file_auth(void)
{
    char hash[65];
    fm_sha256_hex(STATIC_TOKEN, strlen(STATIC_TOKEN), hash);
    return open_cfg(json_pack("{s:s, s:s, s:{s:s}, s:[{s:s, s:s, s:[s]}]}", "audience", AUD,
                              "issuer", ISS, "jwks", "file", jwks_path, "tokens", "sha256", hash,
                              "subject", "ci-bot", "scopes", "fleetmcp:read"));
}

/* Verifies "Bearer tok" (tok freed). */
static fm_auth_status check(fm_auth *a, char *tok, fm_principal *p, fm_auth_fail *f)
{
    char *h = malloc(strlen(tok) + 8);
    sprintf(h, "Bearer %s", tok);
    fm_auth_status st = fm_auth_verify(a, h, p, f);
    free(h);
    free(tok);
    return st;
}

/* The common case: claims c (stolen) signed RS256 with the issuer's key. */
static fm_auth_status check_rs(fm_auth *a, json_t *c, fm_principal *p, fm_auth_fail *f)
{
    return check(a, mint(rsa_key, "RS256", "rsa-1", c), p, f);
}

START_TEST(valid_rs256_and_es256)
{
    fm_auth *a = open_file_auth();
    fm_principal p;
    fm_auth_fail f;
    fm_auth_status st = check_rs(a, claims("fleetmcp:read fleetmcp:hitl"), &p, &f);
    ck_assert_msg(st == FM_AUTH_OK, "%s", f.description);
    ck_assert_int_eq(p.source, FM_PRINCIPAL_JWT);
    ck_assert_str_eq(p.subject, "alice");
    ck_assert_str_eq(p.client_id, "agent-7");
    ck_assert_str_eq(p.scopes, "fleetmcp:read fleetmcp:hitl");
    ck_assert(fm_principal_allows(&p, FM_AUTONOMY_READ));
    ck_assert(fm_principal_allows(&p, FM_AUTONOMY_HITL));
    ck_assert(!fm_principal_allows(&p, FM_AUTONOMY_CREATE));
    ck_assert(!fm_principal_allows(&p, FM_AUTONOMY_CANARY));
    ck_assert_int_gt(p.expires_s, (int64_t)time(NULL));
    ck_assert_str_eq(fm_principal_source_name(p.source), "jwt");
    json_t *j = fm_principal_json(&p);
    ck_assert_str_eq(json_string_value(json_object_get(j, "subject")), "alice");
    ck_assert_str_eq(json_string_value(json_object_get(j, "source")), "jwt");
    json_decref(j);
    /* A client naming itself mcp-cli is still the token's subject, verified. */
    json_t *c = claims("fleetmcp:read");
    json_object_set_new(c, "client_id", json_string("mcp-cli"));
    ck_assert_int_eq(check_rs(a, c, &p, &f), FM_AUTH_OK);
    ck_assert_str_eq(p.subject, "alice");
    ck_assert_str_eq(p.client_id, "mcp-cli");
    ck_assert_int_eq(p.source, FM_PRINCIPAL_JWT);

    c = claims("fleetmcp:canary");
    json_object_del(c, "client_id");
    json_object_set_new(c, "azp", json_string("agent-9"));
    st = check(a, mint(ec_key, "ES256", "ec-1", c), &p, &f);
    ck_assert_msg(st == FM_AUTH_OK, "%s", f.description);
    ck_assert_str_eq(p.client_id, "agent-9");
    ck_assert(fm_principal_allows(&p, FM_AUTONOMY_CANARY));
    ck_assert(!fm_principal_allows(&p, FM_AUTONOMY_READ));
    /* The scheme is case-insensitive (RFC 7235); trailing blanks are not part of the token. */
    char *tok = mint(rsa_key, "PS256", "rsa-1", claims("fleetmcp:read"));
    char h[4096];
    snprintf(h, sizeof h, "bearer  %s  ", tok);
    free(tok);
    ck_assert_int_eq(fm_auth_verify(a, h, &p, &f), FM_AUTH_OK);
    fm_auth_close(a);
}
END_TEST

START_TEST(expired_and_not_yet_valid)
{
    fm_auth *a = open_file_auth();
    fm_principal p;
    fm_auth_fail f;
    long long now = (long long)time(NULL);
    json_t *c = claims("fleetmcp:read");
    json_object_set_new(c, "exp", json_integer(now - 3600));
    ck_assert_int_eq(check_rs(a, c, &p, &f), FM_AUTH_EXPIRED);
    ck_assert_ptr_nonnull(strstr(f.description, "EXPIRED"));
    ck_assert_str_eq(p.subject, ""); /* a refused token leaves no principal */
    /* Within the default 60 s of skew a just-expired token still passes. */
    c = claims("fleetmcp:read");
    json_object_set_new(c, "exp", json_integer(now - 20));
    ck_assert_int_eq(check_rs(a, c, &p, &f), FM_AUTH_OK);
    c = claims("fleetmcp:read");
    json_object_set_new(c, "nbf", json_integer(now + 3600));
    ck_assert_int_eq(check(a, mint(ec_key, "ES256", "ec-1", c), &p, &f), FM_AUTH_EXPIRED);
    ck_assert_ptr_nonnull(strstr(f.description, "not valid"));
    c = claims("fleetmcp:read");
    json_object_del(c, "exp");
    ck_assert_int_eq(check_rs(a, c, &p, &f), FM_AUTH_INVALID);
    fm_auth_close(a);
}
END_TEST

START_TEST(wrong_issuer_and_audience)
{
    fm_auth *a = open_file_auth();
    fm_principal p;
    fm_auth_fail f;
    json_t *c = claims("fleetmcp:read");
    json_object_set_new(c, "iss", json_string("https://evil.test/"));
    ck_assert_int_eq(check_rs(a, c, &p, &f), FM_AUTH_INVALID);
    ck_assert_ptr_nonnull(strstr(f.description, "issuer"));
    /* A token for another resource is never passed through. */
    c = claims("fleetmcp:read");
    json_object_set_new(c, "aud", json_string("https://other.test/api"));
    ck_assert_int_eq(check_rs(a, c, &p, &f), FM_AUTH_AUDIENCE);
    c = claims("fleetmcp:read");
    json_object_del(c, "aud");
    ck_assert_int_eq(check_rs(a, c, &p, &f), FM_AUTH_AUDIENCE);
    c = claims("fleetmcp:read");
    json_object_set_new(c, "aud", json_pack("[s,s]", "https://other.test/api", AUD));
    ck_assert_int_eq(check_rs(a, c, &p, &f), FM_AUTH_OK);
    c = claims("fleetmcp:read");
    json_object_set_new(c, "aud", json_pack("[s]", "https://fleet.test/mcp/"));
    ck_assert_int_eq(check_rs(a, c, &p, &f), FM_AUTH_AUDIENCE);
    fm_auth_http h;
    fm_auth_http_answer(a, &f, &h);
    ck_assert_int_eq(h.status, 401);
    ck_assert_ptr_nonnull(strstr(h.www_authenticate, "error=\"invalid_token\""));
    ck_assert_str_eq(json_string_value(json_object_get(h.body, "error")), "invalid_token");
    json_decref(h.body);
    fm_auth_close(a);
}
END_TEST

START_TEST(bad_signature)
{
    fm_auth *a = open_file_auth();
    fm_principal p;
    fm_auth_fail f;
    char *tok = mint(rsa_key, "RS256", "rsa-1", claims("fleetmcp:read"));
    char *sig = strrchr(tok, '.') + 1;
    sig[10] = sig[10] == 'A' ? 'B' : 'A';
    ck_assert_int_eq(check(a, tok, &p, &f), FM_AUTH_INVALID);
    ck_assert_ptr_nonnull(strstr(f.description, "signature"));
    /* A valid signature over other claims: swap in a payload granting more. */
    char *good = mint(ec_key, "ES256", "ec-1", claims("fleetmcp:read"));
    char *forged_body = b64url("{\"iss\":\"" ISS "\",\"aud\":\"" AUD
                               "\",\"sub\":\"mallory\",\"scope\":\"fleetmcp:canary\","
                               "\"exp\":9999999999}");
    char *dot1 = strchr(good, '.'), *dot2 = strrchr(good, '.');
    char forged[4096];
    snprintf(forged, sizeof forged, "%.*s.%s%s", (int)(dot1 - good), good, forged_body, dot2);
    free(forged_body);
    free(good);
    ck_assert_int_eq(check(a, strdup(forged), &p, &f), FM_AUTH_INVALID);
    /* Signed by a key the issuer never published, under a published kid. */
    ck_assert_int_eq(check(a, mint(rogue_key, "RS256", "rsa-1", claims("fleetmcp:read")), &p, &f),
                     FM_AUTH_INVALID);
    fm_auth_close(a);
}
END_TEST

START_TEST(refused_algorithms)
{
    fm_auth *a = open_file_auth();
    fm_principal p;
    fm_auth_fail f;
    /* alg none, unsigned and with a real signature attached. */
    char *hdr = b64url("{\"alg\":\"none\",\"kid\":\"rsa-1\"}");
    char *body = b64url("{\"iss\":\"" ISS "\",\"aud\":\"" AUD
                        "\",\"sub\":\"mallory\",\"scope\":\"fleetmcp:hitl\",\"exp\":9999999999}");
    char tok[4096];
    snprintf(tok, sizeof tok, "%s.%s.", hdr, body);
    ck_assert_int_eq(check(a, strdup(tok), &p, &f), FM_AUTH_INVALID);
    char *good = mint(rsa_key, "RS256", "rsa-1", claims("fleetmcp:read"));
    snprintf(tok, sizeof tok, "%s.%s%s", hdr, body, strrchr(good, '.'));
    free(good);
    ck_assert_int_eq(check(a, strdup(tok), &p, &f), FM_AUTH_INVALID);
    ck_assert_ptr_nonnull(strstr(f.description, "alg"));
    free(hdr);
    free(body);
    /* HS256 with the issuer's public RSA key as the HMAC secret. */
    char *pub = cjose_jwk_to_json(rsa_key, false, NULL);
    cjose_jwk_t *confused = cjose_jwk_create_oct_spec((const uint8_t *)pub, strlen(pub), NULL);
    free(pub);
    ck_assert_int_eq(check(a, mint(confused, "HS256", "rsa-1", claims("fleetmcp:read")), &p, &f),
                     FM_AUTH_INVALID);
    ck_assert_ptr_nonnull(strstr(f.description, "HS256"));
    cjose_jwk_release(confused);
    /* A symmetric key published in the set is not a way in either. */
    ck_assert_int_eq(check(a, mint(oct_key, "HS256", "hmac-1", claims("fleetmcp:read")), &p, &f),
                     FM_AUTH_INVALID);
    /* The alg must fit the key: ES256 header naming the RSA key. */
    ck_assert_int_eq(check(a, mint(ec_key, "ES256", "rsa-1", claims("fleetmcp:read")), &p, &f),
                     FM_AUTH_INVALID);
    ck_assert_ptr_nonnull(strstr(f.description, "type or curve"));
    /* RSA keys under 2048 bits are refused even when published. */
    ck_assert_int_eq(check(a, mint(weak_key, "RS256", "rsa-weak", claims("fleetmcp:read")), &p, &f),
                     FM_AUTH_INVALID);
    ck_assert_ptr_nonnull(strstr(f.description, "2048"));
    fm_auth_close(a);
}
END_TEST

START_TEST(unknown_kid)
{
    fm_auth *a = open_file_auth();
    fm_principal p;
    fm_auth_fail f;
    ck_assert_int_eq(check(a, mint(rogue_key, "RS256", "rogue", claims("fleetmcp:read")), &p, &f),
                     FM_AUTH_INVALID);
    ck_assert_ptr_nonnull(strstr(f.description, "rogue"));
    /* No kid at all, with several keys published: no guessing. */
    ck_assert_int_eq(check(a, mint(rsa_key, "RS256", NULL, claims("fleetmcp:read")), &p, &f),
                     FM_AUTH_INVALID);
    fm_auth_close(a);
}
END_TEST

START_TEST(missing_scope_step_up)
{
    fm_auth *a = open_file_auth();
    fm_principal p;
    fm_auth_fail f;
    ck_assert_int_eq(check_rs(a, claims("fleetmcp:read openid"), &p, &f), FM_AUTH_OK);
    ck_assert_str_eq(p.scopes, "fleetmcp:read");
    ck_assert_int_eq(fm_auth_require(a, &p, FM_AUTONOMY_READ, &f), FM_AUTH_OK);
    /* A read-only token is never granted a hitl tool, whatever else the call carries. */
    ck_assert(!fm_principal_allows(&p, FM_AUTONOMY_HITL));
    ck_assert_int_eq(fm_auth_require(a, &p, FM_AUTONOMY_HITL, &f), FM_AUTH_INSUFFICIENT_SCOPE);
    ck_assert_str_eq(f.scope, "fleetmcp:read fleetmcp:hitl");
    fm_auth_http h;
    fm_auth_http_answer(a, &f, &h);
    ck_assert_int_eq(h.status, 403);
    ck_assert_ptr_nonnull(strstr(h.www_authenticate, "Bearer error=\"insufficient_scope\""));
    ck_assert_ptr_nonnull(strstr(h.www_authenticate, "scope=\"fleetmcp:read fleetmcp:hitl\""));
    ck_assert_ptr_nonnull(strstr(h.www_authenticate,
                                 "resource_metadata=\"https://fleet.test/.well-known/"
                                 "oauth-protected-resource/mcp\""));
    ck_assert_str_eq(json_string_value(json_object_get(h.body, "error")), "insufficient_scope");
    json_decref(h.body);
    ck_assert_int_eq(fm_auth_require(a, &p, FM_AUTONOMY_CANARY, &f), FM_AUTH_INSUFFICIENT_SCOPE);
    ck_assert_str_eq(f.scope, "fleetmcp:read fleetmcp:canary");
    /* scp as an array, as some issuers send it. */
    json_t *c = claims("");
    json_object_set_new(c, "scp", json_pack("[s,s]", "fleetmcp:create", "fleetmcp:hitl"));
    ck_assert_int_eq(check_rs(a, c, &p, &f), FM_AUTH_OK);
    ck_assert_str_eq(p.scopes, "fleetmcp:create fleetmcp:hitl");
    fm_auth_close(a);
}
END_TEST

START_TEST(missing_and_malformed_header)
{
    fm_auth *a = open_file_auth();
    fm_principal p;
    fm_auth_fail f;
    ck_assert_int_eq(fm_auth_verify(a, NULL, &p, &f), FM_AUTH_MISSING);
    fm_auth_http h;
    fm_auth_http_answer(a, &f, &h);
    ck_assert_int_eq(h.status, 401);
    ck_assert_str_eq(h.www_authenticate,
                     "Bearer resource_metadata=\"https://fleet.test/.well-known/"
                     "oauth-protected-resource/mcp\", scope=\"fleetmcp:read\"");
    ck_assert_ptr_null(json_object_get(h.body, "error"));
    json_decref(h.body);
    ck_assert_int_eq(fm_auth_verify(a, "", &p, &f), FM_AUTH_MISSING);
    ck_assert_int_eq(fm_auth_verify(a, "Basic YWxpY2U6cHc=", &p, &f), FM_AUTH_MISSING);
    ck_assert_int_eq(fm_auth_verify(a, "Bearer ", &p, &f), FM_AUTH_MISSING);
    ck_assert_int_eq(fm_auth_verify(a, "Bearer a b", &p, &f), FM_AUTH_INVALID);
    ck_assert_int_eq(fm_auth_verify(a, "Bearer a\"b", &p, &f), FM_AUTH_INVALID);
    ck_assert_int_eq(fm_auth_verify(a, "Bearer x.y.z", &p, &f), FM_AUTH_INVALID);
    ck_assert_int_eq(fm_auth_verify(a, "Bearer ...", &p, &f), FM_AUTH_INVALID);
    char *big = malloc(9000 + 8);
    memcpy(big, "Bearer ", 7);
    memset(big + 7, 'a', 9000);
    big[9007] = '\0';
    ck_assert_int_eq(fm_auth_verify(a, big, &p, &f), FM_AUTH_INVALID);
    free(big);
    /* A sub holding a control character is refused, not cleaned. */
    json_t *c = claims("fleetmcp:read");
    json_object_set_new(c, "sub", json_string("ali\nce"));
    ck_assert_int_eq(check_rs(a, c, &p, &f), FM_AUTH_INVALID);
    c = claims("fleetmcp:read");
    json_object_del(c, "sub");
    ck_assert_int_eq(check_rs(a, c, &p, &f), FM_AUTH_INVALID);
    fm_auth_close(a);
}
END_TEST

START_TEST(static_tokens)
{
    fm_auth *a = open_file_auth();
    fm_principal p;
    fm_auth_fail f;
    ck_assert_int_eq(fm_auth_verify(a, "Bearer " STATIC_TOKEN, &p, &f), FM_AUTH_OK);
    ck_assert_int_eq(p.source, FM_PRINCIPAL_STATIC_TOKEN);
    ck_assert_str_eq(p.subject, "ci-bot");
    ck_assert_str_eq(p.scopes, "fleetmcp:read");
    ck_assert(!fm_principal_allows(&p, FM_AUTONOMY_CREATE));
    ck_assert_int_eq(fm_auth_verify(a, "Bearer " STATIC_TOKEN "x", &p, &f), FM_AUTH_INVALID);
    ck_assert_int_eq(fm_auth_verify(a, "Bearer ci-secret-token-2", &p, &f), FM_AUTH_INVALID);
    fm_auth_close(a);

    /* Static tokens alone, no issuer: a JWT-shaped token is just unknown. */
    char hash[65];
    fm_sha256_hex(STATIC_TOKEN, strlen(STATIC_TOKEN), hash);
    a = open_cfg(json_pack("{s:s, s:[{s:s, s:s, s:s, s:[s,s]}]}", "audience",
                           "http://127.0.0.1:8080", "tokens", "sha256", hash, "subject", "ci-bot",
                           "client_id", "ci", "scopes", "fleetmcp:read", "fleetmcp:create"));
    ck_assert_int_eq(fm_auth_verify(a, "Bearer " STATIC_TOKEN, &p, &f), FM_AUTH_OK);
    ck_assert_str_eq(p.client_id, "ci");
    ck_assert(fm_principal_allows(&p, FM_AUTONOMY_CREATE));
    ck_assert_int_eq(check_rs(a, claims("fleetmcp:read"), &p, &f), FM_AUTH_INVALID);
    ck_assert_str_eq(fm_auth_metadata_path(a), "/.well-known/oauth-protected-resource");
    json_t *md = fm_auth_resource_metadata(a);
    ck_assert_ptr_null(json_object_get(md, "authorization_servers"));
    json_decref(md);
    fm_auth_close(a);
}
END_TEST

START_TEST(resource_metadata)
{
    fm_auth *a = open_file_auth();
    ck_assert_str_eq(fm_auth_metadata_path(a), "/.well-known/oauth-protected-resource/mcp");
    ck_assert_str_eq(fm_auth_metadata_url(a),
                     "https://fleet.test/.well-known/oauth-protected-resource/mcp");
    json_t *md = fm_auth_resource_metadata(a);
    ck_assert_str_eq(json_string_value(json_object_get(md, "resource")), AUD);
    json_t *as = json_object_get(md, "authorization_servers");
    ck_assert_int_eq(json_array_size(as), 1);
    ck_assert_str_eq(json_string_value(json_array_get(as, 0)), ISS);
    json_t *sc = json_object_get(md, "scopes_supported");
    ck_assert_int_eq(json_array_size(sc), 4);
    ck_assert_str_eq(json_string_value(json_array_get(sc, 2)), "fleetmcp:hitl");
    json_t *bm = json_object_get(md, "bearer_methods_supported");
    ck_assert_int_eq(json_array_size(bm), 1);
    ck_assert_str_eq(json_string_value(json_array_get(bm, 0)), "header");
    json_decref(md);
    fm_auth_close(a);
}
END_TEST

START_TEST(configurable_scope_names)
{
    fm_auth *a = open_cfg(json_pack("{s:s, s:s, s:{s:s}, s:{s:s, s:s}}", "audience", AUD, "issuer",
                                    ISS, "jwks", "file", jwks_path, "scopes", "read", "fleet.read",
                                    "hitl", "fleet.operate"));
    fm_principal p;
    fm_auth_fail f;
    ck_assert_int_eq(check_rs(a, claims("fleet.read fleetmcp:hitl"), &p, &f), FM_AUTH_OK);
    ck_assert(fm_principal_allows(&p, FM_AUTONOMY_READ));
    ck_assert(!fm_principal_allows(&p, FM_AUTONOMY_HITL));
    ck_assert_str_eq(fm_auth_scope_name(a, FM_AUTONOMY_HITL), "fleet.operate");
    ck_assert_str_eq(fm_auth_scope_name(a, FM_AUTONOMY_CREATE), "fleetmcp:create");
    ck_assert_int_eq(fm_auth_require(a, &p, FM_AUTONOMY_HITL, &f), FM_AUTH_INSUFFICIENT_SCOPE);
    ck_assert_str_eq(f.scope, "fleet.read fleet.operate");
    fm_auth_close(a);
}
END_TEST

static void open_fails(json_t *cfg, const char *needle)
{
    fm_auth *a = NULL;
    fm_err err = {0};
    ck_assert_int_eq(fm_auth_open(&a, cfg, &err), -1);
    ck_assert_ptr_null(a);
    ck_assert_msg(strstr(err.text, needle) != NULL, "'%s' lacks '%s'", err.text, needle);
    json_decref(cfg);
}

START_TEST(config_errors)
{
    open_fails(NULL, "no auth section");
    open_fails(json_pack("{s:s, s:{s:s}}", "issuer", ISS, "jwks", "file", jwks_path), "audience");
    open_fails(json_pack("{s:s, s:s, s:{s:s}}", "audience", "fleet.test/mcp", "issuer", ISS, "jwks",
                         "file", jwks_path),
               "audience");
    open_fails(json_pack("{s:s}", "audience", AUD), "auth needs");
    open_fails(json_pack("{s:s, s:s}", "audience", AUD, "issuer", ISS), "auth.jwks is not");
    open_fails(json_pack("{s:s, s:s, s:{s:s, s:s}}", "audience", AUD, "issuer", ISS, "jwks", "file",
                         jwks_path, "url", "https://idp.test/certs"),
               "exactly one");
    open_fails(json_pack("{s:s, s:s, s:{s:s}}", "audience", AUD, "issuer", ISS, "jwks", "url",
                         "http://idp.test/certs"),
               "https");
    open_fails(json_pack("{s:s, s:s, s:{s:s}}", "audience", AUD, "issuer", ISS, "jwks", "file",
                         "/nonexistent/jwks.json"),
               "cannot read");
    open_fails(json_pack("{s:s, s:[{s:s, s:s, s:[s]}]}", "audience", AUD, "tokens", "sha256",
                         "00112233", "subject", "x", "scopes", "fleetmcp:read"),
               "sha256");
    char hash[65];
    fm_sha256_hex("t", 1, hash);
    open_fails(json_pack("{s:s, s:[{s:s, s:s, s:[s]}]}", "audience", AUD, "tokens", "sha256", hash,
                         "subject", "x", "scopes", "fleetmcp:admin"),
               "configured scopes");
    open_fails(json_pack("{s:s, s:[{s:s, s:s, s:[s]}, {s:s, s:s, s:[s]}]}", "audience", AUD,
                         "tokens", "sha256", hash, "subject", "x", "scopes", "fleetmcp:read",
                         "sha256", hash, "subject", "y", "scopes", "fleetmcp:hitl"),
               "hash of auth.tokens[0]");
    open_fails(json_pack("{s:s, s:[{s:s, s:s, s:[s]}], s:{s:s, s:s}}", "audience", AUD, "tokens",
                         "sha256", hash, "subject", "x", "scopes", "a", "scopes", "read", "a",
                         "create", "a"),
               "two levels");
    /* A file that is not a JWK Set, or holds no usable key. */
    char path[700];
    snprintf(path, sizeof path, "%s/bad.json", tmpdir);
    FILE *fp = fopen(path, "w");
    fputs("{\"keys\": [{\"kty\": \"oct\", \"k\": \"c2VjcmV0\"}]}", fp);
    fclose(fp);
    open_fails(
        json_pack("{s:s, s:s, s:{s:s}}", "audience", AUD, "issuer", ISS, "jwks", "file", path),
        "no usable");
    unlink(path);
}
END_TEST

START_TEST(stdio_principal)
{
    fm_principal p;
    fm_principal_stdio(&p, "mcp-cli");
    ck_assert_int_eq(p.source, FM_PRINCIPAL_SELF_DECLARED);
    ck_assert_str_eq(fm_principal_source_name(p.source), "self-declared");
    ck_assert_str_eq(p.client_id, "mcp-cli");
    ck_assert_int_gt(strlen(p.subject), 0);
    for (int l = FM_AUTONOMY_READ; l <= FM_AUTONOMY_CANARY; l++)
        ck_assert(fm_principal_allows(&p, (fm_autonomy)l));
    json_t *j = fm_principal_json(&p);
    ck_assert_str_eq(json_string_value(json_object_get(j, "source")), "self-declared");
    ck_assert_str_eq(json_string_value(json_object_get(j, "client_id")), "mcp-cli");
    json_decref(j);
}
END_TEST

/* ---- JWKS over HTTP ------------------------------------------------------ */

typedef struct jwks_server {
    pid_t pid;
    int port;
    char dir[700], log[720];
} jwks_server;

/* python3's http.server on a free loopback port serving dir, its request
 * log in log.  It dies with the test (PDEATHSIG) and after 60 s at most. */
static void server_start(jwks_server *s, const char *dir)
{
    memset(s, 0, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    snprintf(s->log, sizeof s->log, "%s/requests.log", dir);
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    s->pid = fork();
    ck_assert_int_ge(s->pid, 0);
    if (!s->pid) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fds[1], 1);
        FILE *lf = fopen(s->log, "w");
        if (lf) dup2(fileno(lf), 2);
        close(fds[0]);
        execlp("timeout", "timeout", "60", "python3", "-u", "-m", "http.server", "0", "--bind",
               "127.0.0.1", "--directory", dir, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    FILE *out = fdopen(fds[0], "r");
    char line[256] = "";
    /* "Serving HTTP on 127.0.0.1 port N (...)": the first line, once bound. */
    alarm(20);
    ck_assert_ptr_nonnull(fgets(line, sizeof line, out));
    alarm(0);
    fclose(out);
    const char *port = strstr(line, " port ");
    ck_assert_ptr_nonnull(port);
    s->port = atoi(port + 6);
    ck_assert_int_gt(s->port, 0);
}

static void server_stop(jwks_server *s)
{
    kill(s->pid, SIGTERM);
    waitpid(s->pid, NULL, 0);
}

static int server_requests(const jwks_server *s, const char *path)
{
    FILE *f = fopen(s->log, "r");
    if (!f) return 0;
    char line[1024], want[128];
    snprintf(want, sizeof want, "\"GET %s ", path);
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, want) != NULL;
    fclose(f);
    return n;
}

static fm_auth *open_url_auth(const jwks_server *s, const char *file, int min_refresh)
{
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/%s", s->port, file);
    return open_cfg(json_pack("{s:s, s:s, s:{s:s, s:i}}", "audience", AUD, "issuer", ISS, "jwks",
                              "url", url, "min_refresh_s", min_refresh));
}

START_TEST(jwks_url_fetch_cache_and_rotation)
{
    char dir[700];
    snprintf(dir, sizeof dir, "%s/web-XXXXXX", tmpdir);
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char jwks[800];
    snprintf(jwks, sizeof jwks, "%s/jwks.json", dir);
    cjose_jwk_t *first[] = {rsa_key};
    write_jwks(jwks, first, 1);
    jwks_server s;
    server_start(&s, dir);
    fm_principal p;
    fm_auth_fail f;

    /* Fetched on first use, then served from the cache. */
    fm_auth *a = open_url_auth(&s, "jwks.json", 60);
    ck_assert_int_eq(server_requests(&s, "/jwks.json"), 0);
    fm_auth_status st = check_rs(a, claims("fleetmcp:read"), &p, &f);
    ck_assert_msg(st == FM_AUTH_OK, "%s", f.description);
    ck_assert_int_eq(check_rs(a, claims("fleetmcp:read"), &p, &f), FM_AUTH_OK);
    ck_assert_int_eq(server_requests(&s, "/jwks.json"), 1);
    /* Unknown kids within min_refresh_s cost the issuer nothing more. */
    cjose_jwk_t *second[] = {rsa_key, ec_key};
    write_jwks(jwks, second, 2);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(check(a, mint(ec_key, "ES256", "ec-1", claims("fleetmcp:read")), &p, &f),
                         FM_AUTH_INVALID);
    ck_assert_int_eq(server_requests(&s, "/jwks.json"), 1);
    fm_auth_close(a);

    /* With a 1 s interval the rotated key is picked up on the next unknown kid. */
    write_jwks(jwks, first, 1);
    a = open_url_auth(&s, "jwks.json", 1);
    ck_assert_int_eq(check_rs(a, claims("fleetmcp:read"), &p, &f), FM_AUTH_OK);
    int before = server_requests(&s, "/jwks.json");
    write_jwks(jwks, second, 2);
    struct timespec ts = {1, 200 * 1000 * 1000};
    nanosleep(&ts, NULL);
    st = check(a, mint(ec_key, "ES256", "ec-1", claims("fleetmcp:read")), &p, &f);
    ck_assert_msg(st == FM_AUTH_OK, "%s", f.description);
    ck_assert_int_eq(server_requests(&s, "/jwks.json"), before + 1);
    fm_auth_close(a);

    /* A missing document and an oversized one: 503, retry later. */
    a = open_url_auth(&s, "missing.json", 60);
    ck_assert_int_eq(check_rs(a, claims("fleetmcp:read"), &p, &f), FM_AUTH_UNAVAILABLE);
    fm_auth_http h;
    fm_auth_http_answer(a, &f, &h);
    ck_assert_int_eq(h.status, 503);
    json_decref(h.body);
    fm_auth_close(a);
    char big[800];
    snprintf(big, sizeof big, "%s/big.json", dir);
    FILE *bf = fopen(big, "w");
    fputs("{\"keys\": [], \"pad\": \"", bf);
    for (int i = 0; i < 300 * 1024; i++)
        fputc('x', bf);
    fputs("\"}", bf);
    fclose(bf);
    a = open_url_auth(&s, "big.json", 60);
    ck_assert_int_eq(check_rs(a, claims("fleetmcp:read"), &p, &f), FM_AUTH_UNAVAILABLE);
    fm_auth_close(a);

    /* Nobody listening: unavailable, not a crash or a hang. */
    server_stop(&s);
    a = open_url_auth(&s, "jwks.json", 60);
    ck_assert_int_eq(check_rs(a, claims("fleetmcp:read"), &p, &f), FM_AUTH_UNAVAILABLE);
    fm_auth_close(a);
    unlink(big);
    unlink(jwks);
    unlink(s.log);
    rmdir(dir);
}
END_TEST

static Suite *auth_suite(void)
{
    make_keys();
    Suite *s = suite_create("auth");
    TCase *tc = tcase_create("auth");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, valid_rs256_and_es256);
    tcase_add_test(tc, expired_and_not_yet_valid);
    tcase_add_test(tc, wrong_issuer_and_audience);
    tcase_add_test(tc, bad_signature);
    tcase_add_test(tc, refused_algorithms);
    tcase_add_test(tc, unknown_kid);
    tcase_add_test(tc, missing_scope_step_up);
    tcase_add_test(tc, missing_and_malformed_header);
    tcase_add_test(tc, static_tokens);
    tcase_add_test(tc, resource_metadata);
    tcase_add_test(tc, configurable_scope_names);
    tcase_add_test(tc, config_errors);
    tcase_add_test(tc, stdio_principal);
    tcase_add_test(tc, jwks_url_fetch_cache_and_rotation);
    suite_add_tcase(s, tc);
    return s;
}

FM_TEST_MAIN(auth_suite)
