/* libcrypto and libcjose, loaded together on first use (crypto_lazy.c).
 *
 * Linked, the two map and relocate at every start (~140 page faults), yet
 * initialize, tools/list, --version, check-config and mcp-cli listings
 * never hash, sign or verify.  They are called through a table of
 * pointers, FM_CRYPTO(HMAC)(...), not through wrappers named like the
 * library's functions: such wrappers in the executable would also take
 * libcjose's own calls into libcrypto (that deadlocked in pthread_once).
 * The fields are typed from the real prototypes (__typeof__), so the
 * compiler still checks every call.  tools/lazy-crypto.sed rewrites call
 * sites; the names listed here are the names it rewrites. */
#ifndef FM_CRYPTO_H
#define FM_CRYPTO_H

#include <cjose/cjose.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#define FM_CRYPTO_FUNCS(X)                                                                         \
    X(BIO_free)                                                                                    \
    X(BIO_new_mem_buf)                                                                             \
    X(CRYPTO_memcmp)                                                                               \
    X(EVP_DecodeBlock)                                                                             \
    X(EVP_DigestSign)                                                                              \
    X(EVP_DigestSignInit)                                                                          \
    X(EVP_DigestVerify)                                                                            \
    X(EVP_DigestVerifyInit)                                                                        \
    X(EVP_EncodeBlock)                                                                             \
    X(EVP_MD_CTX_free)                                                                             \
    X(EVP_MD_CTX_new)                                                                              \
    X(EVP_PKEY_Q_keygen)                                                                           \
    X(EVP_PKEY_free)                                                                               \
    X(EVP_PKEY_get_base_id)                                                                        \
    X(EVP_PKEY_get_raw_public_key)                                                                 \
    X(EVP_PKEY_new_raw_public_key)                                                                 \
    X(EVP_sha256)                                                                                  \
    X(HMAC)                                                                                        \
    X(HMAC_CTX_free)                                                                               \
    X(HMAC_CTX_new)                                                                                \
    X(HMAC_Final)                                                                                  \
    X(HMAC_Init_ex)                                                                                \
    X(HMAC_Update)                                                                                 \
    X(OPENSSL_cleanse)                                                                             \
    X(OPENSSL_init_crypto)                                                                         \
    X(PEM_read_PrivateKey)                                                                         \
    X(PEM_read_bio_PUBKEY)                                                                         \
    X(PEM_write_PrivateKey)                                                                        \
    X(RAND_bytes)                                                                                  \
    X(SHA256)                                                                                      \
    X(SHA256_Final)                                                                                \
    X(SHA256_Init)                                                                                 \
    X(SHA256_Update)

#define FM_CJOSE_FUNCS(X)                                                                          \
    X(cjose_jwk_EC_get_curve)                                                                      \
    X(cjose_jwk_get_keysize)                                                                       \
    X(cjose_jwk_get_kty)                                                                           \
    X(cjose_jwk_import_json)                                                                       \
    X(cjose_jwk_release)                                                                           \
    X(cjose_jwk_retain)                                                                            \
    X(cjose_jws_get_plaintext)                                                                     \
    X(cjose_jws_get_protected)                                                                     \
    X(cjose_jws_import)                                                                            \
    X(cjose_jws_release)                                                                           \
    X(cjose_jws_verify)

#define FM_CRYPTO_FIELD(name) __typeof__(&name) name;

/* SHA256_Init and friends are deprecated since OpenSSL 3.0; sha256.c says
 * why fleetmcp still calls them.  Only their pointer types are taken here. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
struct fm_crypto_lib {
    FM_CRYPTO_FUNCS(FM_CRYPTO_FIELD)
    FM_CJOSE_FUNCS(FM_CRYPTO_FIELD)
};
#pragma GCC diagnostic pop

/* The table, both libraries loaded (once, thread-safe).  If either cannot
 * be loaded the process says which and what to install, and exits 69
 * (EX_UNAVAILABLE): without them no audit row can be chained, no approval
 * verified, no token checked, so carrying on would be wrong, not degraded. */
const struct fm_crypto_lib *fm_crypto_lib(void);

#define FM_CRYPTO(name) (fm_crypto_lib()->name)

#endif
