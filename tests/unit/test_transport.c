/* Framing: the bounded line reader. */
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "fleetmcp/fm_transport.h"
#include "fleetmcp/fm_util.h"
#include "fm_test.h"

static int feed(const char *data, size_t len)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    /* Write from a child so large inputs cannot fill the pipe and block. */
    if (fork() == 0) {
        close(p[0]);
        for (size_t off = 0; off < len;) {
            ssize_t w = write(p[1], data + off, len - off);
            if (w <= 0) _exit(1);
            off += (size_t)w;
        }
        _exit(0);
    }
    close(p[1]);
    return p[0];
}

START_TEST(lines_and_crlf)
{
    const char in[] = "{\"a\":1}\n{\"b\":2}\r\n\nlast";
    int fd = feed(in, sizeof in - 1);
    fm_transport tx;
    ck_assert_int_eq(fm_tx_init(&tx, fd, -1, 1024), 0);
    const char *l;
    size_t n;
    ck_assert_int_eq(fm_tx_next(&tx, true, &l, &n), FM_RX_LINE);
    ck_assert_str_eq(l, "{\"a\":1}");
    ck_assert_int_eq(fm_tx_next(&tx, true, &l, &n), FM_RX_LINE);
    ck_assert_str_eq(l, "{\"b\":2}");
    ck_assert_uint_eq(n, 7);
    ck_assert_int_eq(fm_tx_next(&tx, true, &l, &n), FM_RX_LINE);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(fm_tx_next(&tx, true, &l, &n), FM_RX_LINE);
    ck_assert_str_eq(l, "last");
    ck_assert_int_eq(fm_tx_next(&tx, true, &l, &n), FM_RX_EOF);
    fm_tx_free(&tx);
    close(fd);
}
END_TEST

START_TEST(oversize_is_skipped_not_buffered)
{
    size_t big = 5u << 20;
    char *in = malloc(big + 64);
    memset(in, 'x', big);
    in[big] = '\n';
    strcpy(in + big + 1, "{\"ok\":true}\n");
    int fd = feed(in, strlen(in));
    fm_transport tx;
    fm_tx_init(&tx, fd, -1, 1u << 20);
    const char *l;
    size_t n;
    ck_assert_int_eq(fm_tx_next(&tx, true, &l, &n), FM_RX_TOO_LARGE);
    ck_assert_int_eq(fm_tx_next(&tx, true, &l, &n), FM_RX_LINE);
    ck_assert_str_eq(l, "{\"ok\":true}");
    /* The buffer never grew to hold the 5 MiB line. */
    ck_assert_uint_lt(tx.cap, 3u << 20);
    ck_assert_int_eq(fm_tx_next(&tx, true, &l, &n), FM_RX_EOF);
    fm_tx_free(&tx);
    free(in);
    close(fd);
}
END_TEST

START_TEST(nonblocking_again)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    fm_transport tx;
    fm_tx_init(&tx, p[0], -1, 1024);
    const char *l;
    size_t n;
    ck_assert_int_eq(fm_tx_next(&tx, false, &l, &n), FM_RX_AGAIN);
    ck_assert_int_eq(write(p[1], "{\"x\"", 4), 4);
    ck_assert_int_eq(fm_tx_next(&tx, false, &l, &n), FM_RX_AGAIN);
    ck_assert_int_eq(write(p[1], ":1}\n", 4), 4);
    ck_assert_int_eq(fm_tx_next(&tx, false, &l, &n), FM_RX_LINE);
    ck_assert_str_eq(l, "{\"x\":1}");
    fm_tx_free(&tx);
    close(p[0]);
    close(p[1]);
}
END_TEST

START_TEST(send_is_one_line)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    fm_transport tx;
    fm_tx_init(&tx, -1, p[1], 1024);
    json_t *v = json_pack("{s:s}", "text", "two\nlines");
    ck_assert_int_eq(fm_tx_send(&tx, v), 0);
    char buf[128] = {0};
    ssize_t r = read(p[0], buf, sizeof buf - 1);
    ck_assert_int_gt(r, 0);
    ck_assert_str_eq(buf, "{\"text\":\"two\\nlines\"}\n");
    json_decref(v);
    fm_tx_free(&tx);
    close(p[0]);
    close(p[1]);
}
END_TEST

/* A spliced send is byte for byte what dumping the whole tree gives,
 * including when the buffer must grow and when the object is empty. */
START_TEST(spliced_send_matches_whole_dump)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
    fm_transport tx;
    fm_tx_init(&tx, -1, p[1], 1024);
    const char *sc[] = {"{\"count\":1,\"t\":\"\u00e9\\\"q\"}", "{}"};
    for (int big = 0; big < 2; big++) {
        for (size_t i = 0; i < 2; i++) {
            json_t *content = json_pack("[{s:s, s:s}]", "type", "text", "text", sc[i]);
            json_t *res = i ? json_object() : json_pack("{s:o}", "content", content);
            if (i) json_decref(content);
            if (big) { /* past the first 4 KiB buffer: it must grow */
                char pad[6000];
                memset(pad, 'p', sizeof pad - 1);
                pad[sizeof pad - 1] = '\0';
                json_object_set_new(res, "pad", json_string(pad));
            }
            json_t *reply = json_pack("{s:s, s:i, s:o}", "jsonrpc", "2.0", "id", 7, "result", res);
            ck_assert_int_eq(fm_tx_send_spliced(&tx, reply, "structuredContent", sc[i]), 0);
            json_object_set_new(res, "structuredContent", json_loads(sc[i], 0, NULL));
            ck_assert_int_eq(fm_tx_send(&tx, reply), 0);
            static char a[1 << 16], b[1 << 16];
            FILE *f = fdopen(dup(p[0]), "r");
            ck_assert_ptr_nonnull(fgets(a, sizeof a, f));
            ck_assert_ptr_nonnull(fgets(b, sizeof b, f));
            fclose(f);
            ck_assert_str_eq(a, b);
            json_decref(reply);
        }
    }
    /* Not an object member at the end: nothing written, caller falls back. */
    json_t *arr = json_pack("[i]", 1);
    ck_assert_int_eq(fm_tx_send_spliced(&tx, arr, "k", "1"), 1);
    json_decref(arr);
    fm_tx_free(&tx);
    close(p[0]);
    close(p[1]);
}
END_TEST

/* Collect mode (HTTP): the reply is kept without the member and its text
 * beside it; fm_json_dumps_spliced then gives byte for byte the whole
 * tree's dump.  One splice per exchange; a second falls back (1). */
START_TEST(collect_keeps_the_splice_for_the_dump)
{
    fm_transport tx;
    ck_assert_int_eq(fm_tx_init_collect(&tx), 0);
    const char *sc = "{\"count\":1,\"t\":\"\u00e9\\\"q\"}";
    json_t *reply = json_pack("{s:s, s:i, s:{s:[{s:s}]}}", "jsonrpc", "2.0", "id", 7, "result",
                              "content", "type", "text");
    ck_assert_int_eq(fm_tx_send_spliced(&tx, reply, "structuredContent", sc), 0);
    ck_assert_int_eq(json_array_size(tx.collect), 1);
    ck_assert_ptr_eq(tx.splice_msg, reply);
    ck_assert_str_eq(tx.splice_raw, sc);
    ck_assert_int_eq(fm_tx_send_spliced(&tx, reply, "structuredContent", sc), 1);
    size_t len = 0;
    char *spliced = fm_json_dumps_spliced(reply, JSON_COMPACT, tx.splice_key, tx.splice_raw, &len);
    ck_assert_ptr_nonnull(spliced);
    json_object_set_new(json_object_get(reply, "result"), "structuredContent",
                        json_loads(sc, 0, NULL));
    char *whole = json_dumps(reply, JSON_COMPACT);
    ck_assert_str_eq(spliced, whole);
    ck_assert_uint_eq(len, strlen(whole));
    free(spliced);
    free(whole);
    /* Not {..., {...}} at the end: NULL, the caller takes the slow way. */
    json_t *arr = json_pack("[i]", 1);
    ck_assert_ptr_null(fm_json_dumps_spliced(arr, JSON_COMPACT, "k", "1", &len));
    json_decref(arr);
    json_decref(reply);
    fm_tx_free(&tx); /* frees the kept text */
}
END_TEST

/* fm_json_dumps_compact gives json_dumps's bytes, or fails where it
 * fails, for every kind of value: escapes, UTF-8 of every length, an
 * embedded NUL, keys that need escaping, integer extremes, reals, empty
 * containers, insertion order and sorted keys (the audit's canonical
 * form), scalars with and without JSON_ENCODE_ANY, other flags (handed
 * to jansson), a string that is not UTF-8 and a loop. */
static void same_dump(const json_t *v, size_t flags)
{
    size_t n = 99;
    char *want = json_dumps(v, flags), *got = fm_json_dumps_compact(v, flags, &n);
    if (!want) {
        ck_assert_ptr_null(got);
        return;
    }
    ck_assert_ptr_nonnull(got);
    ck_assert_str_eq(got, want);
    ck_assert_uint_eq(n, strlen(want));
    free(want);
    free(got);
}

START_TEST(compact_dump_matches_jansson)
{
    char ctl[33];
    for (int c = 1; c < 0x20; c++)
        ctl[c - 1] = (char)c;
    ctl[31] = 'z', ctl[32] = '\0';
    json_t *v =
        json_pack("{s:s, s:s, s:s, s:o, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:b, s:b, s:n,"
                  " s:{}, s:[], s:[i, [s, {s:[]}], {}]}",
                  "zeta", "q\"b\\c/d\x7f", "ctl", ctl, "utf8", "\u00e9\u20ac\U0001F600", "nul",
                  json_stringn("a\0b", 3), "zero", (json_int_t)0, "min", (json_int_t)LLONG_MIN,
                  "max", (json_int_t)LLONG_MAX, "r1", 1.0, "r2", 0.1, "r3", 1e300, "r4", -2.5e-7,
                  "t", 1, "f", 0, "nil", "e1", "e2", "nest", -42, "x", "k", "l");
    json_object_set_new(v, "key \"with\"\n escapes \u00e9", json_integer(7));
    for (size_t flags = 0; flags < 3; flags++) {
        size_t f = flags == 0   ? JSON_COMPACT
                   : flags == 1 ? JSON_COMPACT | JSON_REAL_PRECISION(15)
                                : JSON_COMPACT | JSON_REAL_PRECISION(3) | JSON_PRESERVE_ORDER;
        same_dump(v, f);
        same_dump(json_object_get(v, "nest"), f);
        same_dump(json_object_get(v, "zeta"), f);                   /* not a container: NULL */
        same_dump(json_object_get(v, "zeta"), f | JSON_ENCODE_ANY); /* a scalar */
        same_dump(json_object_get(v, "r2"), f | JSON_ENCODE_ANY);
    }
    /* Sorted: prefixes, case, UTF-8 and an embedded NUL among the keys,
     * more keys than fit the dump's stack array, nested objects. */
    const char *more[] = {"a",      "ab", "A",  "b",  "\u00e9", "zz", "z", "aa", "ba",
                          "nested", "n",  "k1", "k2", "k10",    "Z",  "_", "0",  "9"};
    for (size_t i = 0; i < sizeof more / sizeof *more; i++)
        json_object_set_new(v, more[i], json_pack("{s:i, s:i, s:i}", "b", 1, "a", 2, "ab", 3));
    json_object_setn_new(v, "a\0c", 3, json_true());
    same_dump(v, JSON_COMPACT | JSON_SORT_KEYS);
    same_dump(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    same_dump(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(15));
    same_dump(v, JSON_INDENT(2));
    json_object_set_new(v, "bad", json_stringn_nocheck("\xc3\x28", 2)); /* not UTF-8 */
    same_dump(v, JSON_COMPACT);
    json_object_del(v, "bad");
    json_object_set_new(v, "overlong", json_stringn_nocheck("\xe0\x80\xaf", 3));
    same_dump(v, JSON_COMPACT);
    json_object_del(v, "overlong");
    /* Strings whose escapes overflow the first room (n + n/4 + 16) at
     * every point: all escapes, escapes after a long plain run, a
     * multi-byte character across the bound, and one that is not UTF-8
     * past it. */
    static char esc[6000];
    for (size_t n = 1; n < sizeof esc; n += n / 3 + 1) {
        for (size_t k = 0; k < n; k++)
            esc[k] = k % 7 == 0 ? '\x01' : k % 5 == 0 ? '"' : k > n / 2 ? '\n' : 'x';
        json_t *str = json_stringn(esc, n);
        same_dump(str, JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(str);
    }
    for (size_t q = 40; q <= 80; q++) { /* the room's end at every point of the tail */
        memset(esc, 'y', 100);
        memset(esc + 100, '"', q);
        memcpy(esc + 100 + q, "\xe2\x82\xac", 3);
        json_t *edge = json_stringn(esc, 103 + q);
        same_dump(edge, JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(edge);
        memcpy(esc + 100 + q, "\xc3\x28", 2);
        edge = json_stringn_nocheck(esc, 102 + q);
        same_dump(edge, JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(edge);
    }
    /* A loop (jansson refuses to append an array to itself: through a
     * second one): jansson's dump fails, so must this. */
    json_t *loop = json_array(), *inner = json_array();
    ck_assert_int_eq(json_array_append(inner, loop), 0);
    ck_assert_int_eq(json_array_append_new(loop, inner), 0);
    same_dump(loop, JSON_COMPACT);
    json_array_clear(inner);
    json_decref(loop);
    json_decref(v);
}
END_TEST

/* fm_i64_text and fm_cat3 write what snprintf's "%lld" and "%s%s%s"
 * write, cut the same way at every buffer size. */
START_TEST(text_helpers_match_snprintf)
{
    const long long v[] = {0, 1, -1, 9, 10, -10, 123456789, LLONG_MAX, LLONG_MIN, LLONG_MIN + 1};
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
        char want[24], got[24];
        int n = snprintf(want, sizeof want, "%lld", v[i]);
        ck_assert_uint_eq(fm_i64_text(v[i], got), (size_t)n);
        ck_assert_str_eq(got, want);
    }
    const char *a = "http_session_ended:", *b = "0123456789abcdef", *c = ":x";
    for (size_t cap = 1; cap <= 40; cap++) {
        char want[40], got[40];
        snprintf(want, cap, "%s%s%s", a, b, c);
        size_t n = fm_cat3(got, cap, a, b, c);
        ck_assert_str_eq(got, want);
        ck_assert_uint_eq(n, strlen(want));
        snprintf(want, cap, "%s%s", a, b);
        fm_cat3(got, cap, a, b, NULL);
        ck_assert_str_eq(got, want);
    }
}
END_TEST

static Suite *transport_suite(void)
{
    Suite *s = suite_create("transport");
    TCase *tc = tcase_create("framing");
    tcase_add_test(tc, lines_and_crlf);
    tcase_add_test(tc, oversize_is_skipped_not_buffered);
    tcase_add_test(tc, nonblocking_again);
    tcase_add_test(tc, send_is_one_line);
    tcase_add_test(tc, spliced_send_matches_whole_dump);
    tcase_add_test(tc, collect_keeps_the_splice_for_the_dump);
    tcase_add_test(tc, compact_dump_matches_jansson);
    tcase_add_test(tc, text_helpers_match_snprintf);
    suite_add_tcase(s, tc);
    return s;
}

FM_TEST_MAIN(transport_suite)
