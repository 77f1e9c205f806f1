/* SHA-256 through OpenSSL's low-level functions rather than EVP.
 *
 * Why low-level: in OpenSSL 3 the first EVP digest loads the default
 * provider, which costs 1.4 MB of resident memory and an implicit
 * algorithm fetch per digest; the audit hashes every call.  SHA256_Init
 * and friends are deprecated since 3.0 but still shipped, and run the same
 * assembly (SHA-NI where the CPU has it).  libcrypto itself is loaded on
 * first use (crypto_lazy.c), so a process that never hashes never maps it.
 * Without libcrypto no audit row can be chained: that is fatal, not a
 * digest of zeros. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "fleetmcp/fm_crypto.h"
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleetmcp/fm_util.h"

void fm_sha256(const void *data, size_t len, unsigned char out[32])
{
    SHA256_CTX c;
    if (!FM_CRYPTO(SHA256_Init)(&c) || !FM_CRYPTO(SHA256_Update)(&c, data, len) || !FM_CRYPTO(SHA256_Final)(out, &c)) {
        fputs("fleetmcp: UNAVAILABLE: SHA-256 needs libcrypto.so.3: install libssl3\n", stderr);
        abort();
    }
}

void fm_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[32];
    fm_sha256(data, len, md);
    fm_hex(md, 32, out);
}

static void hmac_fail(void)
{
    fputs("fleetmcp: UNAVAILABLE: HMAC-SHA256 needs libcrypto.so.3: install libssl3\n", stderr);
    abort();
}

void fm_hmac_sha256_hex(const unsigned char key[32], const void *data, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!FM_CRYPTO(HMAC)(FM_CRYPTO(EVP_sha256)(), key, 32, data, len, md, &n) || n != 32)
        hmac_fail();
    fm_hex(md, 32, out);
}

struct fm_hmac_key {
    unsigned char key[32];
    HMAC_CTX *ctx; /* keyed: HMAC_Init_ex with no key restarts from its pads */
};

void fm_hmac_sha256_hex_kept(fm_hmac_key **k, const unsigned char key[32], const void *data,
                             size_t len, char out[65])
{
    fm_hmac_key *h = *k;
    if (h && memcmp(h->key, key, sizeof h->key)) {
        fm_hmac_key_free(h);
        h = *k = NULL;
    }
    if (!h) {
        h = calloc(1, sizeof *h);
        if (!h) hmac_fail();
        memcpy(h->key, key, sizeof h->key);
        h->ctx = FM_CRYPTO(HMAC_CTX_new)();
        if (!h->ctx || !FM_CRYPTO(HMAC_Init_ex)(h->ctx, key, 32, FM_CRYPTO(EVP_sha256)(), NULL)) {
            fm_hmac_key_free(h);
            hmac_fail();
        }
        *k = h;
    } else if (!FM_CRYPTO(HMAC_Init_ex)(h->ctx, NULL, 0, NULL, NULL)) {
        hmac_fail();
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!FM_CRYPTO(HMAC_Update)(h->ctx, data, len) || !FM_CRYPTO(HMAC_Final)(h->ctx, md, &n) ||
        n != 32)
        hmac_fail();
    fm_hex(md, 32, out);
}

void fm_hmac_key_free(fm_hmac_key *k)
{
    if (!k) return; /* never made: libcrypto may not be loaded, and need not be */
    FM_CRYPTO(HMAC_CTX_free)(k->ctx);
    FM_CRYPTO(OPENSSL_cleanse)(k->key, sizeof k->key);
    free(k);
}
