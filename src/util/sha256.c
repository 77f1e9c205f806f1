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
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleetmcp/fm_util.h"

void fm_sha256(const void *data, size_t len, unsigned char out[32])
{
    SHA256_CTX c;
    if (!FM_CRYPTO(SHA256_Init)(&c) || !FM_CRYPTO(SHA256_Update)(&c, data, len) ||
        !FM_CRYPTO(SHA256_Final)(out, &c)) {
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

/* HMAC-SHA256 (RFC 2104) over the same low-level SHA-256 as above, not
 * OpenSSL's HMAC: that one goes through EVP, and its first use loads the
 * default provider, which left 2.0 MB more of libcrypto resident
 * (VmHWM 3,256 -> 5,224 kB in a bare process) in every server that
 * writes one audit row.  Only the RFC's padding is done here; the digest
 * is libcrypto's.  The audit key is 32 bytes, under SHA-256's 64-byte
 * block, so it is used as is, zero-padded.  The two states after the
 * padded key are kept (fm_hmac_key): a MAC then costs the message's
 * blocks and one more block, as with a kept HMAC_CTX. */
#define HMAC_BLOCK 64

struct fm_hmac_key {
    unsigned char key[32];
    SHA256_CTX inner, outer; /* after (key ^ ipad) and (key ^ opad) */
};

static void hmac_keyed(fm_hmac_key *h, const unsigned char key[32])
{
    unsigned char pad[HMAC_BLOCK];
    memcpy(h->key, key, sizeof h->key);
    memset(pad, 0x36, sizeof pad);
    for (int i = 0; i < 32; i++)
        pad[i] ^= key[i];
    if (!FM_CRYPTO(SHA256_Init)(&h->inner) || !FM_CRYPTO(SHA256_Update)(&h->inner, pad, sizeof pad))
        hmac_fail();
    memset(pad, 0x5c, sizeof pad);
    for (int i = 0; i < 32; i++)
        pad[i] ^= key[i];
    if (!FM_CRYPTO(SHA256_Init)(&h->outer) || !FM_CRYPTO(SHA256_Update)(&h->outer, pad, sizeof pad))
        hmac_fail();
    FM_CRYPTO(OPENSSL_cleanse)(pad, sizeof pad);
}

static void hmac_run(const fm_hmac_key *h, const void *data, size_t len, unsigned char md[32])
{
    SHA256_CTX c = h->inner;
    if (!FM_CRYPTO(SHA256_Update)(&c, data, len) || !FM_CRYPTO(SHA256_Final)(md, &c)) hmac_fail();
    c = h->outer;
    if (!FM_CRYPTO(SHA256_Update)(&c, md, 32) || !FM_CRYPTO(SHA256_Final)(md, &c)) hmac_fail();
    FM_CRYPTO(OPENSSL_cleanse)(&c, sizeof c);
}

void fm_hmac_sha256(const unsigned char key[32], const void *data, size_t len,
                    unsigned char out[32])
{
    fm_hmac_key h;
    hmac_keyed(&h, key);
    hmac_run(&h, data, len, out);
    FM_CRYPTO(OPENSSL_cleanse)(&h, sizeof h);
}

void fm_hmac_sha256_hex(const unsigned char key[32], const void *data, size_t len, char out[65])
{
    unsigned char md[32];
    fm_hmac_sha256(key, data, len, md);
    fm_hex(md, 32, out);
}

void fm_hmac_sha256_hex_kept(fm_hmac_key **k, const unsigned char key[32], const void *data,
                             size_t len, char out[65])
{
    fm_hmac_key *h = *k;
    if (h && memcmp(h->key, key, sizeof h->key)) {
        fm_hmac_key_free(h);
        h = *k = NULL;
    }
    if (!h) {
        h = malloc(sizeof *h);
        if (!h) hmac_fail();
        hmac_keyed(h, key);
        *k = h;
    }
    unsigned char md[32];
    hmac_run(h, data, len, md);
    fm_hex(md, 32, out);
}

void fm_hmac_key_free(fm_hmac_key *k)
{
    if (!k) return; /* never made: libcrypto may not be loaded, and need not be */
    FM_CRYPTO(OPENSSL_cleanse)(k, sizeof *k);
    free(k);
}
