/* Base64 (RFC 4648, standard alphabet, padded) with OpenSSL's block
 * coder, loaded on first use (crypto_lazy.c).  The wrappers add what
 * EVP_DecodeBlock leaves to the caller: strict length checks and the
 * padding bytes it counts as zeros. */
#include "fleetmcp/fm_crypto.h"
#include <openssl/evp.h>
#include <stdint.h>
#include <string.h>

#include "fleetmcp/fm_util.h"

size_t fm_base64_encode(const unsigned char *in, size_t n, char *out)
{
    out[0] = '\0';
    if (n > (size_t)INT32_MAX / 4 * 3) return 0;
    int m = FM_CRYPTO(EVP_EncodeBlock)((unsigned char *)out, in, (int)n);
    return m > 0 ? (size_t)m : 0;
}

long fm_base64_decode(const char *in, size_t n, unsigned char *out, size_t cap)
{
    if (n % 4 || n > (size_t)INT32_MAX) return -1;
    if (n == 0) return 0;
    size_t pad = (in[n - 1] == '=') + (in[n - 2] == '=');
    size_t want = n / 4 * 3 - pad;
    /* '=' only as the final one or two characters. */
    if (memchr(in, '=', n - pad)) return -1;
    if (want > cap) return -1;
    /* EVP_DecodeBlock writes the padded length: decode through a bounded
     * stack buffer when out has no room for the padding bytes. */
    unsigned char tmp[3 * 128];
    unsigned char *dst = want + pad <= cap ? out : tmp;
    if (dst == tmp && n / 4 * 3 > sizeof tmp) return -1;
    int m = FM_CRYPTO(EVP_DecodeBlock)(dst, (const unsigned char *)in, (int)n);
    if (m < 0 || (size_t)m != n / 4 * 3) return -1;
    if (dst == tmp) memcpy(out, tmp, want);
    return (long)want;
}
