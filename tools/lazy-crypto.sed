# Rewrites direct libcrypto/libcjose calls into calls through the lazy
# table (include/fleetmcp/fm_crypto.h): NAME( -> FM_CRYPTO(NAME)(, and adds
# the header after the first openssl/cjose include.  Idempotent: a name
# already inside FM_CRYPTO( is not followed by "(".  Comment lines are left
# alone.  Apply with
#   for f in FILE...; do sed -E -i -f tools/lazy-crypto.sed "$f"; done
# one file per sed: the hold space, which remembers that the header is in,
# is not reset between files.
# The names are FM_CRYPTO_FUNCS and FM_CJOSE_FUNCS; keep the lists equal.
# Not for src/util/crypto_lazy.c or include/fleetmcp/fm_crypto.h.
/^[[:space:]]*(\/\*|\*([[:space:]/]|$)|\/\/)/b
s/\b(BIO_free|BIO_new_mem_buf|CRYPTO_memcmp|EVP_DecodeBlock|EVP_DigestSign|EVP_DigestSignInit|EVP_DigestVerify|EVP_DigestVerifyInit|EVP_EncodeBlock|EVP_MD_CTX_free|EVP_MD_CTX_new|EVP_PKEY_Q_keygen|EVP_PKEY_free|EVP_PKEY_get_base_id|EVP_PKEY_get_raw_public_key|EVP_PKEY_new_raw_public_key|EVP_sha256|HMAC|HMAC_CTX_free|HMAC_CTX_new|HMAC_Final|HMAC_Init_ex|HMAC_Update|OPENSSL_cleanse|OPENSSL_init_crypto|PEM_read_PrivateKey|PEM_read_bio_PUBKEY|PEM_write_PrivateKey|RAND_bytes|SHA256|SHA256_Final|SHA256_Init|SHA256_Update|cjose_jwk_EC_get_curve|cjose_jwk_get_keysize|cjose_jwk_get_kty|cjose_jwk_import_json|cjose_jwk_release|cjose_jwk_retain|cjose_jws_get_plaintext|cjose_jws_get_protected|cjose_jws_import|cjose_jws_release|cjose_jws_verify)[[:space:]]*\(/FM_CRYPTO(\1)(/g
# The header, once, before the first openssl/cjose include, unless in already.
/^#include "fleetmcp\/fm_crypto\.h"/h
/^#include <(openssl|cjose)\/[a-z_]+\.h>/{
  x
  /./{
    x
    b
  }
  s/.*/in/
  x
  s/^/#include "fleetmcp\/fm_crypto.h"\n/
}
