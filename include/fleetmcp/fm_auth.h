/* Who is calling: the identity layer of the HTTP transport (config
 * section `auth`, schemas/config/auth.json).
 *
 * The transport hands the Authorization header of each request to
 * fm_auth_verify() and gets a principal (subject, client id, the autonomy
 * levels its scopes grant, how it was verified) or a failure that
 * fm_auth_http_answer() turns into the exact HTTP answer (401 with
 * WWW-Authenticate, 403 insufficient_scope for step-up, 503 when the
 * issuer's keys cannot be had).  Two modes, usable together: Bearer JWTs
 * from one issuer checked against its JWKS (a file, or a URL fetched and
 * cached), and static bearer tokens stored in the config as SHA-256
 * hashes (small sites, CI).  The gate asks fm_principal_allows() whether
 * a principal may see or call a tool of a given autonomy level.
 *
 * Over stdio nobody is authenticated: fm_principal_stdio() records the OS
 * user and the client's self-declared name, marked as self-declared. */
#ifndef FM_AUTH_H
#define FM_AUTH_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "fleetmcp/fm_error.h"
#include "fleetmcp/fm_tool.h"

typedef struct fm_auth fm_auth;

/* Outcomes of verification.  Numbers are a contract, like fm_code. */
typedef enum {
    FM_AUTH_OK = 0,
    FM_AUTH_MISSING = 1,            /* no credential: 401 without an error code (RFC 6750 3.1) */
    FM_AUTH_INVALID = 2,            /* malformed, bad signature, refused alg, unknown kid or
                                       issuer, unknown static token: 401 invalid_token */
    FM_AUTH_EXPIRED = 3,            /* exp passed or nbf not reached: 401 invalid_token */
    FM_AUTH_AUDIENCE = 4,           /* issued for another resource: 401 invalid_token */
    FM_AUTH_INSUFFICIENT_SCOPE = 5, /* valid, but lacks the scope: 403 insufficient_scope */
    FM_AUTH_UNAVAILABLE = 6,        /* the issuer's keys cannot be loaded now: 503 */
} fm_auth_status;

typedef struct fm_auth_fail {
    fm_auth_status status;
    /* error_description: starts with a code word, says what to do next,
     * never holds token bytes. */
    char description[256];
    /* For FM_AUTH_INSUFFICIENT_SCOPE: the space-separated scopes to ask
     * the authorization server for (the held ones plus the missing one,
     * so a re-authorization does not lose what the client had). */
    char scope[512];
} fm_auth_fail;

typedef enum {
    FM_PRINCIPAL_SELF_DECLARED = 0, /* stdio: OS user + the client's own name */
    FM_PRINCIPAL_JWT = 1,           /* a Bearer JWT verified against the issuer's keys */
    FM_PRINCIPAL_STATIC_TOKEN = 2,  /* a static bearer token whose hash is in the config */
} fm_principal_source;

typedef struct fm_principal {
    fm_principal_source source;
    char subject[128];   /* JWT sub, static token subject, or OS user */
    char client_id[128]; /* JWT client_id (or azp); self-declared client name on stdio */
    unsigned levels;     /* bit (1u << fm_autonomy) per level granted */
    char scopes[512];    /* granted scopes, space-separated, as recorded for audit */
    int64_t expires_s;   /* token expiry (epoch seconds); 0: none */
} fm_principal;

/* Builds the identity layer from the config's `auth` section (borrowed;
 * already schema-checked, but every field is checked again here).  A JWKS
 * file is read now; a JWKS URL is fetched on first use.  Returns 0, or -1
 * with err (INVALID, NOT_CONFIGURED, IO). */
int fm_auth_open(fm_auth **out, const json_t *section, fm_err *err);
void fm_auth_close(fm_auth *a);

/* Verifies an Authorization header value (NULL or "" when absent).  Fills
 * *p on FM_AUTH_OK, *fail otherwise (both may be used by any thread). */
fm_auth_status fm_auth_verify(fm_auth *a, const char *authorization, fm_principal *p,
                              fm_auth_fail *fail);

/* True when the principal's scopes grant autonomy level `level`.  Each
 * scope grants exactly one level (a token lists every level it needs).
 * A self-declared (stdio) principal is granted every level: the gate's
 * other rules still apply to it. */
bool fm_principal_allows(const fm_principal *p, fm_autonomy level);

/* FM_AUTH_OK when allowed; otherwise FM_AUTH_INSUFFICIENT_SCOPE with
 * fail->scope naming what to ask for (the step-up answer). */
fm_auth_status fm_auth_require(const fm_auth *a, const fm_principal *p, fm_autonomy level,
                               fm_auth_fail *fail);

/* The scope name configured for a level, e.g. "fleetmcp:hitl". */
const char *fm_auth_scope_name(const fm_auth *a, fm_autonomy level);

typedef struct fm_auth_http {
    int status;                  /* 401, 403 or 503 */
    char www_authenticate[2048]; /* value of the WWW-Authenticate header ("" for 503) */
    json_t *body;                /* new: {"error", "error_description"}; caller decrefs */
} fm_auth_http;

/* The HTTP answer for a failure (fail->status != FM_AUTH_OK). */
void fm_auth_http_answer(const fm_auth *a, const fm_auth_fail *fail, fm_auth_http *out);

/* The RFC 9728 protected resource metadata document (new reference):
 * resource, authorization_servers, scopes_supported,
 * bearer_methods_supported. */
json_t *fm_auth_resource_metadata(const fm_auth *a);

/* Where that document is served: the path the transport answers
 * ("/.well-known/oauth-protected-resource" plus the resource's path, per
 * RFC 9728 section 3.1) and the absolute URL sent in resource_metadata. */
const char *fm_auth_metadata_path(const fm_auth *a);
const char *fm_auth_metadata_url(const fm_auth *a);

/* Stdio: the OS user running the server and the client's self-declared
 * name (may be NULL), every level granted. */
void fm_principal_stdio(fm_principal *p, const char *client_name);

/* The principal as an audit row records it (new reference):
 * {"subject", "client_id", "source", "scopes"}; source is
 * fm_principal_source_name(), so a self-declared name never reads as a
 * verified one. */
json_t *fm_principal_json(const fm_principal *p);

/* "self-declared", "jwt", "static-token": how the audit row says who. */
const char *fm_principal_source_name(fm_principal_source s);

/* "OK", "MISSING", "INVALID", "EXPIRED", "AUDIENCE", "SCOPE", "UNAVAILABLE". */
const char *fm_auth_status_word(fm_auth_status s);

#endif
