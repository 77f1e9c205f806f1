/* SHA-256 through OpenSSL's low-level functions rather than EVP.
 *
 * Why: in OpenSSL 3 the first EVP digest loads the default provider,
 * which costs 1.4 MB of resident memory (a sixth of the server's budget)
 * and, done the simple way, an implicit algorithm fetch of about 8,000
 * instructions per digest; the audit hashes every call.  SHA256_Init and
 * friends are deprecated since 3.0 but still shipped, and run the same
 * assembly (SHA-NI where the CPU has it).  Ed25519 keeps using EVP: only
 * approvals need it. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#include "fleetmcp/fm_util.h"

void fm_sha256(const void *data, size_t len, unsigned char out[32])
{
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, data, len);
    SHA256_Final(out, &c);
}

void fm_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[32];
    fm_sha256(data, len, md);
    fm_hex(md, 32, out);
}
