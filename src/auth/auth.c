/* The identity layer: Bearer JWTs and static bearer tokens → principal.
 *
 * JOSE comes from libcjose (Debian libcjose-dev) rather than libjwt:
 * cjose imports JWKs (RSA and EC) straight from a JWK Set, which is how
 * issuers publish their keys, while libjwt 1.10 (Debian 12) takes only PEM
 * keys and would need our own JWK→PEM conversion; cjose is also built on
 * the jansson and libcrypto fleetmcp already loads.  Linking it costs 5
 * page faults more per start (245 → 250 for `fleetmcp --version`,
 * perf stat -r 30; elapsed time moved less than the noise of this VM), too
 * little to justify a lazy loader like src/util/curl_lazy.c.
 *
 * cjose verifies whatever "alg" the token names with the key it is given,
 * so the choices that keep forgeries out are made here, before it runs:
 * only asymmetric algorithms, the key's type and curve must fit the alg,
 * and the key is chosen by kid from the configured issuer's set only. */
#include "fleetmcp/fm_auth.h"

#include "fleetmcp/fm_crypto.h"
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdarg.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "auth_int.h"
#include "fleetmcp/fm_config.h"
#include "fleetmcp/fm_util.h"

#define FM_AUTH_MAX_TOKEN 8192 /* IdP access tokens are 1-2 KiB */
#define FM_AUTH_NLEVELS 4
#define WELL_KNOWN "/.well-known/oauth-protected-resource"

typedef struct static_token {
    unsigned char hash[32];
    char subject[128];
    char client_id[128];
    unsigned levels;
} static_token;

struct fm_auth {
    char issuer[512];
    char audience[512];
    char metadata_url[1100];
    char metadata_path[560];
    char scope[FM_AUTH_NLEVELS][64];
    json_t *auth_servers; /* owned array of strings */
    int64_t skew_s;
    static_token *tokens;
    size_t ntokens;
    bool jwt;
    char jwks_url[1024];
    int64_t refresh_s, min_refresh_s;
    pthread_mutex_t mu; /* guards everything below */
    fm_keyset keys;
    int64_t fetched_at, tried_at;
    bool fetching;
};

static const char *const default_scope[FM_AUTH_NLEVELS] = {"fleetmcp:read", "fleetmcp:create",
                                                           "fleetmcp:hitl", "fleetmcp:canary"};

const char *fm_auth_status_word(fm_auth_status s)
{
    switch (s) {
    case FM_AUTH_OK:
        return "OK";
    case FM_AUTH_MISSING:
        return "MISSING";
    case FM_AUTH_INVALID:
        return "INVALID";
    case FM_AUTH_EXPIRED:
        return "EXPIRED";
    case FM_AUTH_AUDIENCE:
        return "AUDIENCE";
    case FM_AUTH_INSUFFICIENT_SCOPE:
        return "SCOPE";
    case FM_AUTH_UNAVAILABLE:
        return "UNAVAILABLE";
    }
    return "UNKNOWN";
}

const char *fm_principal_source_name(fm_principal_source s)
{
    switch (s) {
    case FM_PRINCIPAL_SELF_DECLARED:
        return "self-declared";
    case FM_PRINCIPAL_JWT:
        return "jwt";
    case FM_PRINCIPAL_STATIC_TOKEN:
        return "static-token";
    }
    return "self-declared";
}

static fm_auth_status fail(fm_auth_fail *f, fm_auth_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static fm_auth_status fail(fm_auth_fail *f, fm_auth_status st, const char *fmt, ...)
{
    f->status = st;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->description, sizeof f->description, fmt, ap);
    va_end(ap);
    return st;
}

/* ---- config ------------------------------------------------------------ */

/* Length of the origin ("https://host[:port]") of an absolute http(s) URI
 * without query or fragment, or 0 when uri is not one. */
static size_t uri_origin_len(const char *uri)
{
    const char *rest = !strncmp(uri, "https://", 8)  ? uri + 8
                       : !strncmp(uri, "http://", 7) ? uri + 7
                                                     : NULL;
    if (!rest || !*rest || *rest == '/' || strpbrk(uri, "?# \t\r\n\"\\")) return 0;
    return (size_t)(rest - uri) + strcspn(rest, "/");
}

static int is_loopback_http(const char *url)
{
    static const char *const ok[] = {"http://127.0.0.1:", "http://127.0.0.1/", "http://localhost:",
                                     "http://localhost/", "http://[::1]:",     "http://[::1]/"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        if (!strncmp(url, ok[i], strlen(ok[i]))) return 1;
    return 0;
}

static int level_of_scope(const fm_auth *a, const char *s, size_t len)
{
    for (int l = 0; l < FM_AUTH_NLEVELS; l++)
        if (strlen(a->scope[l]) == len && !strncmp(a->scope[l], s, len)) return l;
    return -1;
}

static int parse_static_tokens(fm_auth *a, const json_t *list, fm_err *err)
{
    size_t n = json_array_size(list);
    if (!n) return 0;
    a->tokens = calloc(n, sizeof *a->tokens);
    if (!a->tokens) return fm_err_set(err, FM_ERR_NOMEM, "auth tokens");
    for (size_t i = 0; i < n; i++) {
        const json_t *t = json_array_get(list, i);
        static_token *st = &a->tokens[i];
        const char *hex = fm_json_str(t, "sha256", "");
        const char *sub = fm_json_str(t, "subject", "");
        if (strlen(hex) != 64 || strspn(hex, "0123456789abcdef") != 64)
            return fm_err_set(err, FM_ERR_INVALID,
                              "auth.tokens[%zu].sha256 must be 64 lower-case hex digits: store"
                              " `printf %%s \"$TOKEN\" | sha256sum`, never the token",
                              i);
        if (!*sub || strlen(sub) >= sizeof st->subject)
            return fm_err_set(err, FM_ERR_INVALID, "auth.tokens[%zu].subject must be 1-127 bytes",
                              i);
        for (int k = 0; k < 32; k++) {
            unsigned v;
            sscanf(hex + 2 * k, "%2x", &v);
            st->hash[k] = (unsigned char)v;
        }
        for (size_t k = 0; k < i; k++)
            if (!memcmp(a->tokens[k].hash, st->hash, sizeof st->hash))
                return fm_err_set(err, FM_ERR_INVALID,
                                  "auth.tokens[%zu] has the hash of auth.tokens[%zu]: one token"
                                  " must name one subject",
                                  i, k);
        snprintf(st->subject, sizeof st->subject, "%s", sub);
        snprintf(st->client_id, sizeof st->client_id, "%s", fm_json_str(t, "client_id", ""));
        const json_t *sc = json_object_get(t, "scopes");
        size_t j;
        const json_t *s;
        json_array_foreach(sc, j, s)
        {
            const char *name = json_string_value(s);
            int l = name ? level_of_scope(a, name, strlen(name)) : -1;
            if (l < 0)
                return fm_err_set(err, FM_ERR_INVALID,
                                  "auth.tokens[%zu].scopes[%zu] is not one of the configured"
                                  " scopes (%s, %s, %s, %s)",
                                  i, j, a->scope[0], a->scope[1], a->scope[2], a->scope[3]);
            st->levels |= 1u << l;
        }
        a->ntokens++;
    }
    return 0;
}

static int configure(fm_auth *a, const json_t *sec, fm_err *err)
{
    const char *aud = fm_json_str(sec, "audience", "");
    size_t origin = uri_origin_len(aud);
    if (!origin || strlen(aud) >= sizeof a->audience)
        return fm_err_set(err, FM_ERR_INVALID,
                          "auth.audience must be this server's resource URI, an absolute"
                          " http(s) URI without query or fragment (e.g."
                          " https://fleet.example/mcp)");
    snprintf(a->audience, sizeof a->audience, "%s", aud);
    /* RFC 9728 3.1: the well-known segment goes between origin and path. */
    const char *path = !strcmp(aud + origin, "/") ? "" : aud + origin;
    snprintf(a->metadata_path, sizeof a->metadata_path, "%s%s", WELL_KNOWN, path);
    snprintf(a->metadata_url, sizeof a->metadata_url, "%.*s%s", (int)origin, aud, a->metadata_path);

    const json_t *scopes = json_object_get(sec, "scopes");
    for (int l = 0; l < FM_AUTH_NLEVELS; l++) {
        const char *s = fm_json_str(scopes, fm_autonomy_name((fm_autonomy)l), default_scope[l]);
        if (!*s || strlen(s) >= sizeof a->scope[l] || strpbrk(s, " \t\r\n\"\\"))
            return fm_err_set(err, FM_ERR_INVALID,
                              "auth.scopes.%s must be 1-63 characters without spaces or quotes",
                              fm_autonomy_name((fm_autonomy)l));
        snprintf(a->scope[l], sizeof a->scope[l], "%s", s);
        for (int k = 0; k < l; k++)
            if (!strcmp(a->scope[k], s))
                return fm_err_set(err, FM_ERR_INVALID,
                                  "auth.scopes: '%s' names two levels; each level needs its own"
                                  " scope",
                                  s);
    }
    a->skew_s = fm_cfg_int(sec, "clock_skew_s", 60);
    if (a->skew_s < 0 || a->skew_s > 600)
        return fm_err_set(err, FM_ERR_INVALID, "auth.clock_skew_s must be 0-600 seconds");

    if (parse_static_tokens(a, json_object_get(sec, "tokens"), err)) return -1;

    const json_t *jwks = json_object_get(sec, "jwks");
    const char *iss = fm_json_str(sec, "issuer", "");
    if (jwks) {
        if (!*iss || strlen(iss) >= sizeof a->issuer)
            return fm_err_set(err, FM_ERR_INVALID,
                              "auth.issuer must name the authorization server whose tokens"
                              " auth.jwks checks (its \"iss\" claim, exactly)");
        snprintf(a->issuer, sizeof a->issuer, "%s", iss);
        a->jwt = true;
        const char *file = fm_json_str(jwks, "file", NULL);
        const char *url = fm_json_str(jwks, "url", NULL);
        a->refresh_s = fm_cfg_int(jwks, "refresh_s", 3600);
        a->min_refresh_s = fm_cfg_int(jwks, "min_refresh_s", 60);
        if (a->refresh_s < 60 || a->min_refresh_s < 1 || a->min_refresh_s > a->refresh_s)
            return fm_err_set(err, FM_ERR_INVALID,
                              "auth.jwks: refresh_s must be at least 60 and min_refresh_s 1 to"
                              " refresh_s");
        if (!file == !url)
            return fm_err_set(err, FM_ERR_INVALID,
                              "auth.jwks needs exactly one of file: PATH or url: URL");
        if (file && fm_keyset_load_file(file, &a->keys, err)) return -1;
        if (url) {
            if ((strncmp(url, "https://", 8) && !is_loopback_http(url)) ||
                strlen(url) >= sizeof a->jwks_url)
                return fm_err_set(err, FM_ERR_INVALID,
                                  "auth.jwks.url must be https:// (plain http only on loopback)");
            snprintf(a->jwks_url, sizeof a->jwks_url, "%s", url);
        }
    } else if (*iss) {
        return fm_err_set(err, FM_ERR_INVALID,
                          "auth.issuer is set but auth.jwks is not: add jwks: {file: PATH} or"
                          " {url: URL} so its tokens can be checked");
    }
    if (!a->jwt && !a->ntokens)
        return fm_err_set(err, FM_ERR_NOT_CONFIGURED,
                          "auth needs issuer and jwks (OAuth tokens), tokens (static bearer"
                          " tokens), or both");

    const json_t *as = json_object_get(sec, "authorization_servers");
    a->auth_servers = json_is_array(as) ? json_deep_copy(as) : json_array();
    if (!json_array_size(a->auth_servers) && a->jwt)
        json_array_append_new(a->auth_servers, json_string(a->issuer));
    return 0;
}

int fm_auth_open(fm_auth **out, const json_t *section, fm_err *err)
{
    *out = NULL;
    if (!json_is_object(section))
        return fm_err_set(err, FM_ERR_NOT_CONFIGURED,
                          "no auth section: add auth: {audience, issuer, jwks} or auth.tokens"),
               -1;
    fm_auth *a = calloc(1, sizeof *a);
    if (!a) return fm_err_set(err, FM_ERR_NOMEM, "auth"), -1;
    pthread_mutex_init(&a->mu, NULL);
    if (configure(a, section, err)) {
        fm_auth_close(a);
        return -1;
    }
    *out = a;
    return 0;
}

void fm_auth_close(fm_auth *a)
{
    if (!a) return;
    fm_keyset_free(&a->keys);
    free(a->tokens);
    json_decref(a->auth_servers);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

const char *fm_auth_scope_name(const fm_auth *a, fm_autonomy level)
{
    return (unsigned)level < FM_AUTH_NLEVELS ? a->scope[level] : "";
}

const char *fm_auth_metadata_path(const fm_auth *a)
{
    return a->metadata_path;
}

const char *fm_auth_metadata_url(const fm_auth *a)
{
    return a->metadata_url;
}

/* ---- principals and scopes --------------------------------------------- */

static void levels_to_scopes(const fm_auth *a, unsigned levels, char *out, size_t len)
{
    size_t o = 0;
    out[0] = '\0';
    for (int l = 0; l < FM_AUTH_NLEVELS && o < len; l++)
        if (levels & (1u << l))
            o += (size_t)snprintf(out + o, len - o, "%s%s", o ? " " : "", a->scope[l]);
}

bool fm_principal_allows(const fm_principal *p, fm_autonomy level)
{
    if ((unsigned)level >= FM_AUTH_NLEVELS) return false;
    return (p->levels & (1u << level)) != 0;
}

fm_auth_status fm_auth_require(const fm_auth *a, const fm_principal *p, fm_autonomy level,
                               fm_auth_fail *f)
{
    memset(f, 0, sizeof *f);
    if (fm_principal_allows(p, level)) return FM_AUTH_OK;
    levels_to_scopes(a, p->levels | (1u << level), f->scope, sizeof f->scope);
    return fail(f, FM_AUTH_INSUFFICIENT_SCOPE,
                "SCOPE: a %s tool needs scope %s, which this token lacks: ask the authorization"
                " server for a token with it",
                fm_autonomy_name(level), fm_auth_scope_name(a, level));
}

void fm_principal_stdio(fm_principal *p, const char *client_name)
{
    memset(p, 0, sizeof *p);
    p->source = FM_PRINCIPAL_SELF_DECLARED;
    struct passwd pw, *res = NULL;
    char buf[1024];
    if (!getpwuid_r(geteuid(), &pw, buf, sizeof buf, &res) && res)
        snprintf(p->subject, sizeof p->subject, "%s", res->pw_name);
    else
        snprintf(p->subject, sizeof p->subject, "uid:%u", (unsigned)geteuid());
    fm_clip(p->client_id, sizeof p->client_id, client_name ? client_name : "");
    p->levels = (1u << FM_AUTH_NLEVELS) - 1;
}

json_t *fm_principal_json(const fm_principal *p)
{
    return json_pack("{s:s, s:s, s:s, s:s}", "subject", p->subject, "client_id", p->client_id,
                     "source", fm_principal_source_name(p->source), "scopes", p->scopes);
}

/* ---- static tokens ----------------------------------------------------- */

/* Every configured hash is compared, in constant time, so the answer's
 * timing says nothing about how close a guess came. */
static const static_token *find_static(const fm_auth *a, const char *tok, size_t len)
{
    unsigned char h[32];
    fm_sha256(tok, len, h);
    const static_token *hit = NULL;
    for (size_t i = 0; i < a->ntokens; i++)
        if (FM_CRYPTO(CRYPTO_memcmp)(h, a->tokens[i].hash, sizeof h) == 0) hit = &a->tokens[i];
    return hit;
}

/* ---- JWT --------------------------------------------------------------- */

typedef struct alg_rule {
    const char *alg;
    cjose_jwk_kty_t kty;
    cjose_jwk_ec_curve crv; /* EC only */
} alg_rule;

/* The accepted algorithms: asymmetric only.  "none" and HS* are absent on
 * purpose: with a published key as the HMAC secret anyone could sign. */
static const alg_rule alg_rules[] = {
    {"RS256", CJOSE_JWK_KTY_RSA, CJOSE_JWK_EC_INVALID},
    {"RS384", CJOSE_JWK_KTY_RSA, CJOSE_JWK_EC_INVALID},
    {"RS512", CJOSE_JWK_KTY_RSA, CJOSE_JWK_EC_INVALID},
    {"PS256", CJOSE_JWK_KTY_RSA, CJOSE_JWK_EC_INVALID},
    {"PS384", CJOSE_JWK_KTY_RSA, CJOSE_JWK_EC_INVALID},
    {"PS512", CJOSE_JWK_KTY_RSA, CJOSE_JWK_EC_INVALID},
    {"ES256", CJOSE_JWK_KTY_EC, CJOSE_JWK_EC_P_256},
    {"ES384", CJOSE_JWK_KTY_EC, CJOSE_JWK_EC_P_384},
    {"ES512", CJOSE_JWK_KTY_EC, CJOSE_JWK_EC_P_521},
};

static const alg_rule *find_alg(const char *alg)
{
    for (size_t i = 0; alg && i < sizeof alg_rules / sizeof *alg_rules; i++)
        if (!strcmp(alg_rules[i].alg, alg)) return &alg_rules[i];
    return NULL;
}

/* Index of the key for kid (NULL: the token names none), or -1. */
static long find_key(const fm_keyset *ks, const char *kid)
{
    if (!kid) return ks->n == 1 ? 0 : -1;
    for (size_t i = 0; i < ks->n; i++)
        if (!strcmp(ks->keys[i].kid, kid)) return (long)i;
    return -1;
}

/* Fetches the issuer's key set when it is due: never fetched, older than
 * refresh_s, or (want_refresh) a kid is unknown and the last attempt is
 * older than min_refresh_s, so a flood of made-up kids costs the issuer
 * one request per interval.  Called and returns with a->mu held; the
 * fetch itself runs unlocked. */
static void refresh_keys(fm_auth *a, bool want_refresh)
{
    if (!a->jwks_url[0] || a->fetching) return;
    int64_t now = (int64_t)time(NULL);
    bool due = (!a->keys.n || now - a->fetched_at >= a->refresh_s || want_refresh) &&
               (!a->tried_at || now - a->tried_at >= a->min_refresh_s);
    if (!due) return;
    a->tried_at = now;
    a->fetching = true;
    pthread_mutex_unlock(&a->mu);
    fm_keyset ks;
    fm_err err = {0};
    int rc = fm_keyset_fetch(a->jwks_url, &ks, &err);
    pthread_mutex_lock(&a->mu);
    a->fetching = false;
    if (rc) {
        fm_log("warning", "auth: %s%s", err.text,
               a->keys.n ? " (keeping the keys fetched before)" : "");
        return;
    }
    fm_keyset_free(&a->keys);
    a->keys = ks;
    a->fetched_at = now;
}

/* The key for (kid, rule), retained, or a failure. */
static fm_auth_status get_key(fm_auth *a, const char *kid, const alg_rule *rule, cjose_jwk_t **out,
                              fm_auth_fail *f)
{
    char ckid[64];
    fm_clip(ckid, sizeof ckid, kid ? kid : "");
    pthread_mutex_lock(&a->mu);
    refresh_keys(a, false);
    long i = find_key(&a->keys, kid);
    if (i < 0) {
        refresh_keys(a, true);
        i = find_key(&a->keys, kid);
    }
    if (i < 0) {
        bool none = a->keys.n == 0;
        pthread_mutex_unlock(&a->mu);
        if (none)
            return fail(f, FM_AUTH_UNAVAILABLE,
                        "UNAVAILABLE: the issuer's keys cannot be fetched now: retry later");
        if (!kid)
            return fail(f, FM_AUTH_INVALID,
                        "AUTH: the token names no kid and the issuer has several keys");
        return fail(f, FM_AUTH_INVALID,
                    "AUTH: no key '%s' in the issuer's key set: get a token from %s", ckid,
                    a->issuer);
    }
    const fm_jwk *k = &a->keys.keys[i];
    const char *why = NULL;
    if (k->kty != rule->kty || (rule->kty == CJOSE_JWK_KTY_EC && k->crv != rule->crv))
        why = "does not fit that key's type or curve";
    else if (k->alg[0] && strcmp(k->alg, rule->alg))
        why = "is not the key's declared alg";
    else if (k->kty == CJOSE_JWK_KTY_RSA && FM_CRYPTO(cjose_jwk_get_keysize)(k->jwk, NULL) < 2048)
        why = "uses an RSA key shorter than 2048 bits";
    if (why) {
        pthread_mutex_unlock(&a->mu);
        return fail(f, FM_AUTH_INVALID, "AUTH: alg %s %s (key '%s')", rule->alg, why, ckid);
    }
    *out = FM_CRYPTO(cjose_jwk_retain)(k->jwk, NULL);
    pthread_mutex_unlock(&a->mu);
    return FM_AUTH_OK;
}

static void release_key(fm_auth *a, cjose_jwk_t *jwk)
{
    pthread_mutex_lock(&a->mu);
    FM_CRYPTO(cjose_jwk_release)(jwk);
    pthread_mutex_unlock(&a->mu);
}

/* A claim string for the principal: refused (not clipped) when too long or
 * holding control characters, since two subjects clipped alike would be
 * one person to the two-person rule. */
static int claim_str(const json_t *claims, const char *name, char *out, size_t len)
{
    const char *s = json_string_value(json_object_get(claims, name));
    if (!s) return 1;
    size_t n = strlen(s);
    if (n != json_string_length(json_object_get(claims, name)) || n >= len) return -1;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return -1;
    memcpy(out, s, n + 1);
    return 0;
}

static int aud_matches(const json_t *aud, const char *want)
{
    if (json_is_string(aud)) return !strcmp(json_string_value(aud), want);
    size_t i;
    const json_t *v;
    json_array_foreach(aud, i,
                       v) if (json_is_string(v) && !strcmp(json_string_value(v), want)) return 1;
    return 0;
}

static unsigned scope_levels(const fm_auth *a, const json_t *claims)
{
    unsigned levels = 0;
    const json_t *scope = json_object_get(claims, "scope"); /* RFC 9068: one string */
    const json_t *scp = json_object_get(claims, "scp");     /* some issuers: an array */
    if (json_is_string(scope)) {
        const char *s = json_string_value(scope);
        while (*s) {
            size_t n = strcspn(s, " ");
            int l = n ? level_of_scope(a, s, n) : -1;
            if (l >= 0) levels |= 1u << l;
            s += n;
            s += strspn(s, " ");
        }
    }
    size_t i;
    const json_t *v;
    json_array_foreach(scp, i, v)
    {
        const char *s = json_string_value(v);
        int l = s ? level_of_scope(a, s, strlen(s)) : -1;
        if (l >= 0) levels |= 1u << l;
    }
    return levels;
}

static fm_auth_status check_claims(fm_auth *a, const json_t *c, fm_principal *p, fm_auth_fail *f)
{
    int64_t now = (int64_t)time(NULL);
    const char *iss = json_string_value(json_object_get(c, "iss"));
    if (!iss || strcmp(iss, a->issuer)) {
        char ciss[80];
        fm_clip(ciss, sizeof ciss, iss ? iss : "(none)");
        return fail(f, FM_AUTH_INVALID, "AUTH: token issuer '%s' is not %s", ciss, a->issuer);
    }
    const json_t *exp = json_object_get(c, "exp");
    if (!json_is_number(exp))
        return fail(f, FM_AUTH_INVALID, "AUTH: the token has no exp claim; tokens must expire");
    double e = json_number_value(exp);
    if ((double)now > e + (double)a->skew_s)
        return fail(f, FM_AUTH_EXPIRED, "EXPIRED: the token expired %.0f s ago: get a new one",
                    (double)now - e);
    const json_t *nbf = json_object_get(c, "nbf");
    if (nbf && !json_is_number(nbf))
        return fail(f, FM_AUTH_INVALID, "AUTH: the token's nbf claim is not a number");
    if (nbf && (double)(now + a->skew_s) < json_number_value(nbf))
        return fail(f, FM_AUTH_EXPIRED,
                    "EXPIRED: the token is not valid for another %.0f s: check the clocks",
                    json_number_value(nbf) - (double)now);
    if (!aud_matches(json_object_get(c, "aud"), a->audience))
        return fail(f, FM_AUTH_AUDIENCE,
                    "AUDIENCE: the token was issued for another resource: request one with"
                    " resource=%s",
                    a->audience);
    if (claim_str(c, "sub", p->subject, sizeof p->subject) || !p->subject[0])
        return fail(f, FM_AUTH_INVALID,
                    "AUTH: the token's sub claim is missing, empty, over 127 bytes or holds"
                    " control characters");
    int rc = claim_str(c, "client_id", p->client_id, sizeof p->client_id);
    if (rc > 0) rc = claim_str(c, "azp", p->client_id, sizeof p->client_id);
    if (rc < 0)
        return fail(f, FM_AUTH_INVALID,
                    "AUTH: the token's client_id is over 127 bytes or holds control characters");
    p->source = FM_PRINCIPAL_JWT;
    p->levels = scope_levels(a, c);
    levels_to_scopes(a, p->levels, p->scopes, sizeof p->scopes);
    p->expires_s = e < 9e18 ? (int64_t)e : INT64_MAX; /* exp 1e300 is valid JSON */
    return FM_AUTH_OK;
}

static fm_auth_status verify_jwt(fm_auth *a, const char *tok, size_t len, fm_principal *p,
                                 fm_auth_fail *f)
{
    cjose_err cerr = {0};
    cjose_jws_t *jws = FM_CRYPTO(cjose_jws_import)(tok, len, &cerr);
    if (!jws) return fail(f, FM_AUTH_INVALID, "AUTH: the bearer token is not a well-formed JWS");
    json_t *hdr = (json_t *)FM_CRYPTO(cjose_jws_get_protected)(jws);
    const char *alg = json_string_value(json_object_get(hdr, "alg"));
    const json_t *kidv = json_object_get(hdr, "kid");
    const alg_rule *rule = find_alg(alg);
    char calg[24];
    fm_clip(calg, sizeof calg, alg ? alg : "(none)");
    fm_auth_status st = FM_AUTH_OK;
    cjose_jwk_t *key = NULL;
    json_t *claims = NULL;
    if (!rule)
        st = fail(f, FM_AUTH_INVALID,
                  "AUTH: alg %s is refused: tokens must be signed with RS256/384/512,"
                  " PS256/384/512 or ES256/384/512",
                  calg);
    else if (json_object_get(hdr, "crit")) /* RFC 7515 4.1.11: unknown extensions */
        st = fail(f, FM_AUTH_INVALID, "AUTH: the token's header has crit extensions, refused");
    else if (kidv && !json_is_string(kidv))
        st = fail(f, FM_AUTH_INVALID, "AUTH: the token's kid is not a string");
    else
        st = get_key(a, json_string_value(kidv), rule, &key, f);
    if (st == FM_AUTH_OK && !FM_CRYPTO(cjose_jws_verify)(jws, key, &cerr))
        st = fail(f, FM_AUTH_INVALID, "AUTH: the token's signature does not verify");
    if (key) release_key(a, key);
    uint8_t *body = NULL;
    size_t blen = 0;
    if (st == FM_AUTH_OK) {
        json_error_t jerr;
        if (FM_CRYPTO(cjose_jws_get_plaintext)(jws, &body, &blen, &cerr))
            claims = json_loadb((const char *)body, blen, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(claims))
            st = fail(f, FM_AUTH_INVALID, "AUTH: the token's claims are not a JSON object");
        else
            st = check_claims(a, claims, p, f);
    }
    json_decref(claims);
    FM_CRYPTO(cjose_jws_release)(jws);
    return st;
}

/* ---- entry point ------------------------------------------------------- */

fm_auth_status fm_auth_verify(fm_auth *a, const char *h, fm_principal *p, fm_auth_fail *f)
{
    memset(p, 0, sizeof *p);
    memset(f, 0, sizeof *f);
    if (!h || !*h)
        return fail(f, FM_AUTH_MISSING,
                    "AUTH: no bearer token: send Authorization: Bearer TOKEN (how to get one: %s)",
                    a->metadata_url);
    h += strspn(h, " \t");
    if (strncasecmp(h, "Bearer", 6) || (h[6] != ' ' && h[6] != '\t'))
        return fail(f, FM_AUTH_MISSING,
                    "AUTH: only Bearer tokens are accepted: send Authorization: Bearer TOKEN");
    const char *tok = h + 6 + strspn(h + 6, " \t");
    size_t len = strlen(tok);
    while (len && (tok[len - 1] == ' ' || tok[len - 1] == '\t'))
        len--;
    if (!len) return fail(f, FM_AUTH_MISSING, "AUTH: the Bearer token is empty");
    /* RFC 6750 2.1 b64token: also keeps odd bytes out of every later step. */
    static const char b64token[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                   "0123456789-._~+/";
    size_t body = strspn(tok, b64token);
    if (len > FM_AUTH_MAX_TOKEN || body + strspn(tok + body, "=") != len)
        return fail(f, FM_AUTH_INVALID,
                    "AUTH: the bearer token is malformed or longer than %d bytes",
                    FM_AUTH_MAX_TOKEN);
    const static_token *st = a->ntokens ? find_static(a, tok, len) : NULL;
    if (st) {
        p->source = FM_PRINCIPAL_STATIC_TOKEN;
        snprintf(p->subject, sizeof p->subject, "%s", st->subject);
        snprintf(p->client_id, sizeof p->client_id, "%s", st->client_id);
        p->levels = st->levels;
        levels_to_scopes(a, p->levels, p->scopes, sizeof p->scopes);
        return FM_AUTH_OK;
    }
    size_t dots = 0;
    for (size_t i = 0; i < len; i++)
        dots += tok[i] == '.';
    if (a->jwt && dots == 2) {
        fm_auth_status rc = verify_jwt(a, tok, len, p, f);
        if (rc != FM_AUTH_OK) memset(p, 0, sizeof *p);
        return rc;
    }
    return fail(f, FM_AUTH_INVALID, "AUTH: unknown bearer token: check the token you were given");
}

/* ---- HTTP answers and metadata ----------------------------------------- */

/* For a quoted-string in WWW-Authenticate: no quote or backslash. */
static void unquote(char *dst, size_t len, const char *src)
{
    fm_clip(dst, len, src);
    for (char *c = dst; *c; c++)
        if (*c == '"' || *c == '\\') *c = '\'';
}

void fm_auth_http_answer(const fm_auth *a, const fm_auth_fail *f, fm_auth_http *out)
{
    memset(out, 0, sizeof *out);
    char desc[200];
    unquote(desc, sizeof desc, f->description);
    const char *error = NULL;
    switch (f->status) {
    case FM_AUTH_OK:
    case FM_AUTH_MISSING:
        /* RFC 6750 3.1: no error code when no credential was sent. */
        out->status = 401;
        snprintf(out->www_authenticate, sizeof out->www_authenticate,
                 "Bearer resource_metadata=\"%s\", scope=\"%s\"", a->metadata_url, a->scope[0]);
        break;
    case FM_AUTH_INVALID:
    case FM_AUTH_EXPIRED:
    case FM_AUTH_AUDIENCE:
        out->status = 401;
        error = "invalid_token";
        snprintf(out->www_authenticate, sizeof out->www_authenticate,
                 "Bearer error=\"invalid_token\", error_description=\"%s\","
                 " resource_metadata=\"%s\"",
                 desc, a->metadata_url);
        break;
    case FM_AUTH_INSUFFICIENT_SCOPE:
        out->status = 403;
        error = "insufficient_scope";
        snprintf(out->www_authenticate, sizeof out->www_authenticate,
                 "Bearer error=\"insufficient_scope\", scope=\"%s\", error_description=\"%s\","
                 " resource_metadata=\"%s\"",
                 f->scope, desc, a->metadata_url);
        break;
    case FM_AUTH_UNAVAILABLE:
        out->status = 503;
        error = "temporarily_unavailable";
        break;
    }
    out->body = json_object();
    if (error) json_object_set_new(out->body, "error", json_string(error));
    json_object_set_new(out->body, "error_description", json_string(desc));
    if (f->status == FM_AUTH_INSUFFICIENT_SCOPE)
        json_object_set_new(out->body, "scope", json_string(f->scope));
}

json_t *fm_auth_resource_metadata(const fm_auth *a)
{
    json_t *scopes = json_array();
    for (int l = 0; l < FM_AUTH_NLEVELS; l++)
        json_array_append_new(scopes, json_string(a->scope[l]));
    json_t *doc =
        json_pack("{s:s, s:o, s:[s], s:s}", "resource", a->audience, "scopes_supported", scopes,
                  "bearer_methods_supported", "header", "resource_name", "fleetmcp");
    if (doc && json_array_size(a->auth_servers))
        json_object_set_new(doc, "authorization_servers", json_deep_copy(a->auth_servers));
    return doc;
}
