/* libcrypto (OpenSSL 3), loaded on first use.
 *
 * Mapping and relocating libcrypto costs about 120 page faults at every
 * start (perf stat on this project's VM), most of an empty program's
 * start-up again, and a process that answers initialize and exits never
 * hashes.  The entry points fleetmcp uses (SHA-256 for the audit chain,
 * base64, Ed25519 for approvals; libssh2 through ssh_lazy.c) are defined
 * here and forward to the real library, loaded under pthread_once the
 * first time one is called.  Loading it also
 * skips the system openssl.cnf (engines, modules): fleetmcp needs only
 * the default provider, and that keeps the resident set small. */
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_Init and friends: see sha256.c */
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <string.h>

#include "lazy.h"

#define FM_CRYPTO_SONAME "libcrypto.so.3"

/* X(return type, name, parameters, arguments, value if not loadable);
 * V(name, parameters, arguments) for functions returning nothing. */
#define FM_CRYPTO_FUNCS(X, V)                                                                      \
    X(int, SHA256_Init, (SHA256_CTX * c), (c), 0)                                                  \
    X(int, SHA256_Update, (SHA256_CTX * c, const void *d, size_t n), (c, d, n), 0)                 \
    X(int, SHA256_Final, (unsigned char *md, SHA256_CTX *c), (md, c), 0)                           \
    X(const EVP_MD *, EVP_sha256, (void), (), NULL)                                                \
    X(unsigned char *, HMAC,                                                                       \
      (const EVP_MD *md, const void *key, int kl, const unsigned char *d, size_t n,                \
       unsigned char *out, unsigned int *ol),                                                      \
      (md, key, kl, d, n, out, ol), NULL)                                                          \
    X(int, EVP_EncodeBlock, (unsigned char *t, const unsigned char *f, int n), (t, f, n), -1)      \
    X(int, EVP_DecodeBlock, (unsigned char *t, const unsigned char *f, int n), (t, f, n), -1)      \
    X(BIO *, BIO_new_mem_buf, (const void *buf, int len), (buf, len), NULL)                        \
    X(int, BIO_free, (BIO * a), (a), 0)                                                            \
    X(EVP_MD_CTX *, EVP_MD_CTX_new, (void), (), NULL)                                              \
    V(EVP_MD_CTX_free, (EVP_MD_CTX * c), (c))                                                      \
    X(int, EVP_DigestSignInit,                                                                     \
      (EVP_MD_CTX * c, EVP_PKEY_CTX * *pc, const EVP_MD *t, ENGINE *e, EVP_PKEY *k),               \
      (c, pc, t, e, k), 0)                                                                         \
    X(int, EVP_DigestSign,                                                                         \
      (EVP_MD_CTX * c, unsigned char *sig, size_t *siglen, const unsigned char *tbs, size_t n),    \
      (c, sig, siglen, tbs, n), 0)                                                                 \
    X(int, EVP_DigestVerifyInit,                                                                   \
      (EVP_MD_CTX * c, EVP_PKEY_CTX * *pc, const EVP_MD *t, ENGINE *e, EVP_PKEY *k),               \
      (c, pc, t, e, k), 0)                                                                         \
    X(int, EVP_DigestVerify,                                                                       \
      (EVP_MD_CTX * c, const unsigned char *sig, size_t siglen, const unsigned char *tbs,          \
       size_t n),                                                                                  \
      (c, sig, siglen, tbs, n), 0)                                                                 \
    V(EVP_PKEY_free, (EVP_PKEY * k), (k))                                                          \
    X(int, EVP_PKEY_get_base_id, (const EVP_PKEY *k), (k), 0)                                      \
    X(int, EVP_PKEY_get_raw_public_key, (const EVP_PKEY *k, unsigned char *pub, size_t *len),      \
      (k, pub, len), 0)                                                                            \
    X(EVP_PKEY *, EVP_PKEY_new_raw_public_key,                                                     \
      (int type, ENGINE *e, const unsigned char *pub, size_t len), (type, e, pub, len), NULL)      \
    X(EVP_PKEY *, PEM_read_PrivateKey, (FILE * fp, EVP_PKEY * *x, pem_password_cb * cb, void *u),  \
      (fp, x, cb, u), NULL)                                                                        \
    X(EVP_PKEY *, PEM_read_bio_PUBKEY, (BIO * bp, EVP_PKEY * *x, pem_password_cb * cb, void *u),   \
      (bp, x, cb, u), NULL)                                                                        \
    X(int, PEM_write_PrivateKey,                                                                   \
      (FILE * fp, const EVP_PKEY *x, const EVP_CIPHER *enc, const unsigned char *kstr, int klen,   \
       pem_password_cb *cb, void *u),                                                              \
      (fp, x, enc, kstr, klen, cb, u), 0)

static struct {
    FM_CRYPTO_FUNCS(FM_LAZY_FIELD, FM_LAZY_VFIELD)
    EVP_PKEY *(*EVP_PKEY_Q_keygen)(OSSL_LIB_CTX *, const char *, const char *, ...);
    int loaded;
} lib;

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void)
{
    void *h = fm_lazy_open(FM_CRYPTO_SONAME, "approvals and the SSH executor", "libssl3");
    if (!h) return;
    int (*init)(uint64_t, const OPENSSL_INIT_SETTINGS *) = NULL;
    FM_LAZY_SYM(h, init, "OPENSSL_init_crypto");
    if (!init(OPENSSL_INIT_NO_LOAD_CONFIG, NULL)) return;
    FM_CRYPTO_FUNCS(FM_LAZY_LOAD, FM_LAZY_VLOAD)
    FM_LAZY_SYM(h, lib.EVP_PKEY_Q_keygen, "EVP_PKEY_Q_keygen");
    lib.loaded = 1;
}

int fm_crypto_load(void)
{
    pthread_once(&once, load);
    return lib.loaded;
}

static int ready(void)
{
    return fm_crypto_load();
}

FM_CRYPTO_FUNCS(FM_LAZY_WRAP, FM_LAZY_VWRAP)

/* Variadic: the extra arguments depend on the key type (RSA: bits, EC: a
 * curve name, Ed25519 and X25519: none), as in OpenSSL's own macros. */
EVP_PKEY *EVP_PKEY_Q_keygen(OSSL_LIB_CTX *libctx, const char *propq, const char *type, ...)
{
    if (!ready()) return NULL;
    va_list ap;
    va_start(ap, type);
    EVP_PKEY *k;
    if (!strcmp(type, "RSA"))
        k = lib.EVP_PKEY_Q_keygen(libctx, propq, type, va_arg(ap, size_t));
    else if (!strcmp(type, "EC"))
        k = lib.EVP_PKEY_Q_keygen(libctx, propq, type, va_arg(ap, const char *));
    else
        k = lib.EVP_PKEY_Q_keygen(libctx, propq, type);
    va_end(ap);
    return k;
}
