/* Base64 (RFC 4648, standard alphabet, padded).  Ours rather than
 * OpenSSL's EVP_EncodeBlock so that paging cursors and host-key
 * fingerprints do not load libcrypto (see src/util/sha256.c). */
#include "fleetmcp/fm_util.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t fm_base64_encode(const unsigned char *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < n) v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < n) v |= in[i + 2];
        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
        out[o++] = i + 1 < n ? alphabet[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? alphabet[v & 63] : '=';
    }
    out[o] = '\0';
    return o;
}

static int sextet(char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

long fm_base64_decode(const char *in, size_t n, unsigned char *out, size_t cap)
{
    if (n % 4) return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        bool last = i + 4 == n;
        /* '=' only as the last one or two characters of the input. */
        int pad = last && in[i + 3] == '=' ? (in[i + 2] == '=' ? 2 : 1) : 0;
        int a = sextet(in[i]), b = sextet(in[i + 1]);
        int c = pad == 2 ? 0 : sextet(in[i + 2]), d = pad ? 0 : sextet(in[i + 3]);
        if (a < 0 || b < 0 || c < 0 || d < 0) return -1;
        unsigned v = (unsigned)a << 18 | (unsigned)b << 12 | (unsigned)c << 6 | (unsigned)d;
        size_t k = 3 - (size_t)pad;
        if (o + k > cap) return -1;
        out[o++] = (unsigned char)(v >> 16);
        if (k > 1) out[o++] = (unsigned char)(v >> 8);
        if (k > 2) out[o++] = (unsigned char)v;
    }
    return (long)o;
}
