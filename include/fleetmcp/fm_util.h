/* Small helpers shared by every layer: logging to stderr, hashing,
 * canonical JSON, ids.  Nothing here keeps state. */
#ifndef FM_UTIL_H
#define FM_UTIL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Logs go to stderr only: stdout belongs to the protocol. */
void fm_log(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* n bytes as 2n lowercase hex characters plus NUL into out. */
void fm_hex(const unsigned char *bytes, size_t n, char *out);

/* SHA-256 of data as 64 lowercase hex characters plus NUL. */
void fm_sha256_hex(const void *data, size_t len, char out[65]);
/* The raw 32-byte digest. */
void fm_sha256(const void *data, size_t len, unsigned char out[32]);
/* HMAC-SHA256 (RFC 2104) of data under a 32-byte key: the raw 32 bytes,
 * or 64 hex characters plus NUL.  Over libcrypto's low-level SHA-256,
 * never EVP (sha256.c says why). */
void fm_hmac_sha256(const unsigned char key[32], const void *data, size_t len,
                    unsigned char out[32]);
void fm_hmac_sha256_hex(const unsigned char key[32], const void *data, size_t len, char out[65]);
/* The same under a key kept ready in *k, for a key that MACs many
 * messages (the audit chain: two per row).  The one-shot form derives the
 * key's pads on every call, two of its blocks for a short message.  *k is
 * made on first use (libcrypto is loaded then, not before) and remade if
 * key changes; one thread at a time. */
typedef struct fm_hmac_key fm_hmac_key;
void fm_hmac_sha256_hex_kept(fm_hmac_key **k, const unsigned char key[32], const void *data,
                             size_t len, char out[65]);
void fm_hmac_key_free(fm_hmac_key *k);

/* Base64 (RFC 4648, padded) of n bytes into out, which holds
 * 4 * ((n + 2) / 3) + 1 bytes; NUL-terminated; returns the length. */
size_t fm_base64_encode(const unsigned char *in, size_t n, char *out);
/* Strict decode of n characters (a multiple of 4, '=' only at the end)
 * into out (cap bytes); returns the byte count, or -1 if invalid or too
 * long for out. */
long fm_base64_decode(const char *in, size_t n, unsigned char *out, size_t cap);

/* Canonical text of a JSON value: sorted keys, compact, UTF-8.  Returns a
 * malloc'd string the caller frees (NULL on failure). */
char *fm_json_canonical(const json_t *v);

/* The elements of arr dumped with flags, each between before and after,
 * last element first when reverse (JSON lines, SSE events).  Returns a
 * malloc'd string and its length in *len, or NULL. */
char *fm_json_join(const json_t *arr, size_t flags, bool reverse, const char *before,
                   const char *after, size_t *len);
/* The same with each element dumped by dump (malloc'd text, its length in
 * *len; NULL skips the element), or by json_dumps when dump is NULL. */
typedef char *(*fm_json_dump_fn)(const json_t *v, size_t flags, const void *cls, size_t *len);
char *fm_json_join_with(const json_t *arr, size_t flags, bool reverse, const char *before,
                        const char *after, fm_json_dump_fn dump, const void *cls, size_t *len);

/* json_dumps(v, flags) for compact flags (JSON_COMPACT, with or without
 * JSON_REAL_PRECISION, JSON_ENCODE_ANY, JSON_PRESERVE_ORDER,
 * JSON_SORT_KEYS): the same
 * bytes, in insertion order or sorted as jansson sorts, without jansson's per-container loop check
 * (a "%p" snprintf and a hashtable insert and delete each) and its
 * per-character UTF-8 walk of strings; a string that is not UTF-8 fails
 * the dump as in jansson.  Other flags go to json_dumps.  malloc'd, its
 * length in *len; NULL on failure. */
char *fm_json_dumps_compact(const json_t *v, size_t flags, size_t *len);

/* Splicing text already dumped into a dump, so it is not parsed and dumped
 * again (a tool result's structuredContent: the call dumped it for its
 * content and its audit row).  fm_json_splice adds "key": raw (JSON text,
 * trusted) as the last member of the object that is the last member of
 * the compact dump buf[0, n) ({..., "result": {...}}), in place: buf has
 * room for fm_json_splice_room(key, raw) more bytes.  Returns the new
 * length (NUL-terminated), or 0 when the dump does not end that way.
 * fm_json_dumps_spliced: v dumped with flags (compact) and spliced,
 * malloc'd, its length in *len; NULL when that shape is not there. */
size_t fm_json_splice_room(const char *key, const char *raw);
size_t fm_json_splice(char *buf, size_t n, const char *key, const char *raw);
char *fm_json_dumps_spliced(const json_t *v, size_t flags, const char *key, const char *raw,
                            size_t *len);

/* Copy of v with secret-looking fields replaced by "[REDACTED]" (a new
 * reference; v itself when it holds none: read it, do not change it). */
json_t *fm_json_redact(const json_t *v);
bool fm_key_is_secret(const char *key);

/* v in decimal into out, NUL-terminated; its length.  snprintf's "%lld"
 * without its format parsing (a per-call cost where rows are built). */
size_t fm_i64_text(long long v, char out[24]);
/* a, b and c (each may be NULL) one after the other into out, cut to cap
 * bytes with the NUL as snprintf "%s%s%s" cuts; the length written. */
size_t fm_cat3(char *out, size_t cap, const char *a, const char *b, const char *c);

/* Random hex id of 2*nbytes characters into out (size >= 2*nbytes+1). */
void fm_random_hex(char *out, size_t nbytes);

/* Borrowed string member or dflt. */
const char *fm_json_str(const json_t *obj, const char *key, const char *dflt);

/* ISO-8601 UTC "2026-11-23T14:00:00.123Z" for epoch milliseconds. */
void fm_iso_time(int64_t ms, char out[32]);

#endif
