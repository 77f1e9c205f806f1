/* Internal to src/auth/: the issuer's key set. */
#ifndef FM_AUTH_INT_H
#define FM_AUTH_INT_H

#include "fleetmcp/fm_crypto.h"
#include <cjose/cjose.h>
#include <stddef.h>

#include "fleetmcp/fm_error.h"

#define FM_JWKS_MAX_BYTES (256u << 10) /* a JWKS with dozens of RSA keys is ~20 KiB */
#define FM_JWKS_MAX_KEYS 64

typedef struct fm_jwk {
    char kid[128];       /* "" when the key has none */
    char alg[16];        /* the key's "alg" member, "" when absent */
    cjose_jwk_kty_t kty; /* RSA or EC: other types are dropped when parsed */
    cjose_jwk_ec_curve crv;
    cjose_jwk_t *jwk; /* refcounted by cjose; retain/release under the owner's mutex */
} fm_jwk;

typedef struct fm_keyset {
    fm_jwk *keys;
    size_t n;
} fm_keyset;

/* Parses a JWKS document ({"keys": [...]}) into ks, keeping RSA and EC
 * signing keys and skipping (with a log line) keys it cannot use.  Fails
 * with PARSE when the document is not a JWKS or holds no usable key. */
int fm_keyset_parse(const char *json, size_t len, const char *what, fm_keyset *ks, fm_err *err);
void fm_keyset_free(fm_keyset *ks);

/* Reads a JWKS file (bounded) or fetches a JWKS URL (bounded, with a
 * timeout, no redirects) and parses it. */
int fm_keyset_load_file(const char *path, fm_keyset *ks, fm_err *err);
int fm_keyset_fetch(const char *url, fm_keyset *ks, fm_err *err);

#endif
