/* Sealed state: small JSON payloads the server hands to a client and takes
 * back later (an HTTP session id, a multi round-trip requestState), so no
 * replica needs to remember them.  A token is "<base64url(json)>.<mac>"
 * with an HMAC-SHA256 under a key kept in the store: replicas that share a
 * store share the key, and a client can read a token but not forge one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleetmcp/fm_crypto.h"
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "fleetmcp/fm_mcp.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_util.h"

#define KEY_SETTING "mcp_state_key"
#define MAC_HEX 32 /* 128 bits of the HMAC, as hex */
#define MAX_TOKEN 4096

/* Loaded on first use, not at start: stdio sessions never need it. */
static int load_key(fm_ctx *ctx, fm_err *err)
{
    if (ctx->state_key_ready) return 0;
    char hex[80];
    if (fm_store_setting_get(&ctx->store, KEY_SETTING, hex, sizeof hex) || strlen(hex) != 64) {
        unsigned char raw[32];
        if (FM_CRYPTO(RAND_bytes)(raw, sizeof raw) != 1)
            return fm_err_set(err, FM_ERR_INTERNAL, "no randomness for the state key"), -1;
        fm_hex(raw, sizeof raw, hex);
        FM_CRYPTO(OPENSSL_cleanse)(raw, sizeof raw);
        /* Added, never replaced: another replica may have written its key
         * at the same moment, or the read above failed for a moment (a
         * checkpoint truncating the WAL) though a key is there, and a
         * replaced key voids every session and state sealed with it.
         * Whatever the store holds now is the shared one. */
        if (fm_store_setting_add(&ctx->store, KEY_SETTING, hex, err) < 0) return -1;
        if (fm_store_setting_get(&ctx->store, KEY_SETTING, hex, sizeof hex) || strlen(hex) != 64)
            return fm_err_set(err, FM_ERR_IO, "the state key did not persist in the store"), -1;
    }
    for (int i = 0; i < 32; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            return fm_err_set(err, FM_ERR_IO,
                              "the stored state key is not hex; delete setting " KEY_SETTING
                              " to make a new one"),
                   -1;
        ctx->state_key[i] = (unsigned char)v;
    }
    FM_CRYPTO(OPENSSL_cleanse)(hex, sizeof hex);
    ctx->state_key_ready = true;
    return 0;
}

static void mac_hex(const fm_ctx *ctx, const char *data, size_t len, char out[MAC_HEX + 1])
{
    unsigned char mac[32];
    fm_hmac_sha256(ctx->state_key, data, len, mac);
    fm_hex(mac, MAC_HEX / 2, out);
}

char *fm_state_seal(fm_ctx *ctx, const json_t *payload, fm_err *err)
{
    if (load_key(ctx, err)) return NULL;
    char *text = json_dumps(payload, JSON_COMPACT | JSON_SORT_KEYS);
    if (!text) return fm_err_set(err, FM_ERR_NOMEM, "cannot encode state"), NULL;
    size_t n = strlen(text);
    size_t cap = 4 * ((n + 2) / 3) + 1 + MAC_HEX + 2;
    char *tok = cap <= MAX_TOKEN ? malloc(cap) : NULL;
    if (!tok) {
        free(text);
        fm_err_set(err, FM_ERR_TOO_LARGE, "state over %d bytes", MAX_TOKEN);
        return NULL;
    }
    int b = FM_CRYPTO(EVP_EncodeBlock)((unsigned char *)tok, (const unsigned char *)text, (int)n);
    free(text);
    /* base64url without padding: header- and URL-safe. */
    while (b > 0 && tok[b - 1] == '=')
        b--;
    for (int i = 0; i < b; i++)
        tok[i] = tok[i] == '+' ? '-' : tok[i] == '/' ? '_' : tok[i];
    tok[b] = '.';
    mac_hex(ctx, tok, (size_t)b, tok + b + 1);
    return tok;
}

json_t *fm_state_open(fm_ctx *ctx, const char *token, fm_err *err)
{
    if (load_key(ctx, err)) return NULL;
    size_t n = token ? strnlen(token, MAX_TOKEN + 1) : 0;
    const char *dot = n && n <= MAX_TOKEN ? memchr(token, '.', n) : NULL;
    if (!dot || (size_t)(token + n - dot - 1) != MAC_HEX)
        return fm_err_set(err, FM_ERR_INVALID, "malformed state token"), NULL;
    size_t b = (size_t)(dot - token);
    char want[MAC_HEX + 1];
    mac_hex(ctx, token, b, want);
    if (FM_CRYPTO(CRYPTO_memcmp)(want, dot + 1, MAC_HEX))
        return fm_err_set(err, FM_ERR_INVALID, "state token was not issued by this service"), NULL;
    char *buf = malloc(b + 4);
    unsigned char *raw = malloc(b + 4);
    json_t *v = NULL;
    if (buf && raw) {
        for (size_t i = 0; i < b; i++)
            buf[i] = token[i] == '-' ? '+' : token[i] == '_' ? '/' : token[i];
        size_t m = b;
        while (m % 4)
            buf[m++] = '=';
        int r = FM_CRYPTO(EVP_DecodeBlock)(raw, (unsigned char *)buf, (int)m);
        /* EVP_DecodeBlock counts the padding as zero bytes. */
        if (r > 0) v = json_loadb((char *)raw, (size_t)r - (m - b), 0, NULL);
    }
    free(buf);
    free(raw);
    if (!json_is_object(v)) {
        json_decref(v);
        return fm_err_set(err, FM_ERR_INVALID, "state token payload is not an object"), NULL;
    }
    return v;
}
