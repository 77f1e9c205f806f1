/* fm_yaml: core-schema typing, refusals with file:line:col, line map. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fleetmcp/fm_yaml.h"
#include "fm_test.h"

/* Loads text (must succeed) and returns the doc. */
static fm_yaml_doc load_ok(const char *text)
{
    fm_yaml_doc d;
    fm_err err = {0};
    int rc = fm_yaml_load_string(text, strlen(text), "t.yaml", &d, &err);
    ck_assert_msg(rc == 0, "load failed: %s", err.text);
    ck_assert_int_eq(err.code, FM_OK);
    return d;
}

/* Loads text (must fail) and returns the error. */
static fm_err load_bad(const char *text)
{
    fm_yaml_doc d;
    fm_err err = {0};
    int rc = fm_yaml_load_string(text, strlen(text), "t.yaml", &d, &err);
    ck_assert_msg(rc == -1, "load of %s unexpectedly succeeded", text);
    ck_assert_ptr_null(d.root);
    ck_assert_ptr_null(d.lines);
    ck_assert_int_ne(err.code, FM_OK);
    return err;
}

/* Compares the loaded document with the expected JSON text. */
static void expect_json(const char *yaml, const char *json)
{
    fm_yaml_doc d = load_ok(yaml);
    json_error_t je;
    json_t *want = json_loads(json, JSON_DECODE_ANY, &je);
    ck_assert_msg(want != NULL, "bad expected json %s", json);
    char *got = json_dumps(d.root, JSON_ENCODE_ANY | JSON_SORT_KEYS | JSON_COMPACT);
    ck_assert_msg(json_equal(want, d.root), "yaml %s -> %s, want %s", yaml, got, json);
    /* jansson's json_equal ignores integer vs real: check types too */
    if (json_is_number(want)) ck_assert_int_eq(json_typeof(want), json_typeof(d.root));
    free(got);
    json_decref(want);
    fm_yaml_doc_free(&d);
}

START_TEST(plain_scalars_follow_core_schema)
{
    expect_json("~", "null");
    expect_json("null", "null");
    expect_json("NULL", "null");
    expect_json("", "null");
    expect_json("# only a comment\n", "null");
    expect_json("k:", "{\"k\": null}");
    expect_json("true", "true");
    expect_json("False", "false");
    expect_json("TRUE", "true");
    expect_json("yes", "\"yes\""); /* YAML 1.1 bool, a string in 1.2 */
    expect_json("on", "\"on\"");
    expect_json("42", "42");
    expect_json("-17", "-17");
    expect_json("+5", "5");
    expect_json("0x1F", "31");
    expect_json("0o17", "15");
    expect_json("017", "17"); /* 1.2: decimal, not octal */
    expect_json("9223372036854775807", "9223372036854775807");
    expect_json("-9223372036854775808", "-9223372036854775808");
    expect_json("1.5", "1.5");
    expect_json("-.5", "-0.5");
    expect_json("1e3", "1000.0");
    expect_json("2.", "2.0");
    expect_json("6.02E+23", "6.02e23");
    expect_json("1_000", "\"1_000\"");
    expect_json("0x", "\"0x\"");
    expect_json("-0x10", "\"-0x10\"");
    expect_json("12:30", "\"12:30\"");
    expect_json("hello world", "\"hello world\"");
    expect_json("Null pointer", "\"Null pointer\"");
    expect_json(".", "\".\"");
}
END_TEST

START_TEST(quoted_and_block_scalars_are_strings)
{
    expect_json("'true'", "\"true\"");
    expect_json("\"42\"", "\"42\"");
    expect_json("''", "\"\"");
    expect_json("\"~\"", "\"~\"");
    expect_json("a: |\n  1\n", "{\"a\": \"1\\n\"}");
    expect_json("a: >-\n  null\n", "{\"a\": \"null\"}");
    expect_json("\"caf\\u00e9\"", "\"caf\\u00e9\"");
}
END_TEST

START_TEST(tags)
{
    expect_json("!!str 42", "\"42\"");
    expect_json("! 42", "\"42\"");
    expect_json("!!int 42", "42");
    expect_json("!!float 1.0", "1.0");
    expect_json("!!null ~", "null");
    expect_json("!!bool true", "true");
    expect_json("!!map {a: 1}", "{\"a\": 1}");
    expect_json("!!seq [1]", "[1]");
    fm_err e = load_bad("!!int abc");
    ck_assert_msg(strstr(e.text, "does not match its tag"), "%s", e.text);
    e = load_bad("x: !custom 1");
    ck_assert_str_eq(e.text, "t.yaml:1:4: unsupported tag '!custom'; remove it");
    e = load_bad("x: !!binary aGk=");
    ck_assert_msg(strstr(e.text, "unsupported tag"), "%s", e.text);
    e = load_bad("x: !!set {a}");
    ck_assert_msg(strstr(e.text, "unsupported tag"), "%s", e.text);
}
END_TEST

START_TEST(collections)
{
    expect_json("a: 1\nb: [x, 2, true]\nc:\n  d: {e: ~}\n  f:\n    - 1.5\n    - - z\n",
                "{\"a\":1,\"b\":[\"x\",2,true],\"c\":{\"d\":{\"e\":null},\"f\":[1.5,[\"z\"]]}}");
    expect_json("[]", "[]");
    expect_json("{}", "{}");
    expect_json("1: one\ntrue: yes\n~: n\n", "{\"1\":\"one\",\"true\":\"yes\",\"~\":\"n\"}");
    expect_json("---\na: 1\n...\n", "{\"a\":1}");
    expect_json("&anchor a: 1", "{\"a\":1}"); /* anchors alone are harmless */
}
END_TEST

START_TEST(integer_out_of_range)
{
    fm_err e = load_bad("n: 9223372036854775808");
    ck_assert_int_eq(e.code, FM_ERR_PARSE);
    ck_assert_str_eq(e.text,
                     "t.yaml:1:4: integer '9223372036854775808' out of range (64-bit signed)");
    e = load_bad("- -9223372036854775809");
    ck_assert_msg(strstr(e.text, "out of range"), "%s", e.text);
    e = load_bad("0xFFFFFFFFFFFFFFFF");
    ck_assert_msg(strstr(e.text, "out of range"), "%s", e.text);
    e = load_bad("1e999");
    ck_assert_msg(strstr(e.text, "t.yaml:1:1: number '1e999' out of range"), "%s", e.text);
}
END_TEST

START_TEST(inf_and_nan_are_refused)
{
    /* core-schema floats, but JSON has no representation for them */
    const char *cases[] = {".inf", "-.Inf", "+.INF", ".nan", ".NaN"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        fm_err e = load_bad(cases[i]);
        ck_assert_msg(strstr(e.text, "cannot be represented in JSON"), "%s", e.text);
    }
    expect_json("'.inf'", "\".inf\"");
    expect_json(".infinity", "\".infinity\"");
}
END_TEST

START_TEST(aliases_refused)
{
    fm_err e = load_bad("a: &x [1, 2]\nb: *x\n");
    ck_assert_int_eq(e.code, FM_ERR_PARSE);
    ck_assert_str_eq(e.text,
                     "t.yaml:2:4: aliases ('*') are not allowed; write the value out in full");
    /* billion laughs never expands */
    e = load_bad("a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n");
    ck_assert_msg(strstr(e.text, "t.yaml:2:8: aliases"), "%s", e.text);
    e = load_bad("base: &b {x: 1}\nderived:\n  <<: *b\n");
    ck_assert_msg(strstr(e.text, "aliases"), "%s", e.text);
}
END_TEST

START_TEST(duplicate_keys_refused)
{
    fm_err e = load_bad("a: 1\nb:\n  c: 1\n  c: 2\n");
    ck_assert_str_eq(e.text, "t.yaml:4:3: duplicate key 'c' (first at line 3); keep one");
    e = load_bad("{x: 1, \"x\": 2}");
    ck_assert_msg(strstr(e.text, "duplicate key 'x'"), "%s", e.text);
}
END_TEST

START_TEST(non_scalar_keys_refused)
{
    fm_err e = load_bad("? [a, b]\n: 1\n");
    ck_assert_msg(strstr(e.text, "t.yaml:1:3: a sequence cannot be a mapping key"), "%s", e.text);
    e = load_bad("{{a: 1}: 2}");
    ck_assert_msg(strstr(e.text, "a mapping cannot be a mapping key"), "%s", e.text);
    e = load_bad("!!int 1: x");
    ck_assert_msg(strstr(e.text, "keys are plain strings"), "%s", e.text);
    e = load_bad("\"a\\0b\": 1");
    ck_assert_msg(strstr(e.text, "NUL"), "%s", e.text);
    e = load_bad("a: \"x\\0y\"");
    ck_assert_str_eq(e.text, "t.yaml:1:4: string contains a NUL byte (\\0); remove it");
}
END_TEST

START_TEST(depth_limit)
{
    char buf[512];
    size_t n = 0;
    for (int i = 0; i < FM_YAML_MAX_DEPTH; i++)
        buf[n++] = '[';
    for (int i = 0; i < FM_YAML_MAX_DEPTH; i++)
        buf[n++] = ']';
    buf[n] = '\0';
    fm_yaml_doc d = load_ok(buf);
    fm_yaml_doc_free(&d);

    n = 0;
    for (int i = 0; i < FM_YAML_MAX_DEPTH + 1; i++)
        buf[n++] = '[';
    for (int i = 0; i < FM_YAML_MAX_DEPTH + 1; i++)
        buf[n++] = ']';
    buf[n] = '\0';
    fm_err e = load_bad(buf);
    ck_assert_int_eq(e.code, FM_ERR_TOO_LARGE);
    ck_assert_str_eq(e.text, "t.yaml:1:65: nested deeper than 64 levels");
}
END_TEST

START_TEST(multiple_documents_refused)
{
    fm_err e = load_bad("a: 1\n---\nb: 2\n");
    ck_assert_str_eq(e.text, "t.yaml:2:1: more than one YAML document ('---'); use one "
                             "document per file");
}
END_TEST

START_TEST(syntax_errors_have_location)
{
    fm_err e = load_bad("a: 1\nb: [1, 2\n");
    ck_assert_int_eq(e.code, FM_ERR_PARSE);
    ck_assert_msg(!strncmp(e.text, "t.yaml:3:1: YAML syntax: ", 25), "%s", e.text);
    e = load_bad("a: 1\n  b: 2\n");
    ck_assert_msg(!strncmp(e.text, "t.yaml:2:4: YAML syntax: ", 25), "%s", e.text);
    e = load_bad("a: \"unterminated\n");
    ck_assert_msg(strstr(e.text, "YAML syntax"), "%s", e.text);
    /* NUL bytes are not YAML */
    fm_yaml_doc d;
    fm_err err = {0};
    ck_assert_int_eq(fm_yaml_load_string("a: b\0c", 6, "n.yaml", &d, &err), -1);
    ck_assert_msg(!strncmp(err.text, "n.yaml:1:", 9), "%s", err.text);
}
END_TEST

START_TEST(size_limit)
{
    size_t n = FM_YAML_MAX_BYTES + 1;
    char *big = malloc(n);
    ck_assert_ptr_nonnull(big);
    memset(big, '#', n);
    fm_yaml_doc d;
    fm_err e = {0};
    ck_assert_int_eq(fm_yaml_load_string(big, n, "big.yaml", &d, &e), -1);
    ck_assert_int_eq(e.code, FM_ERR_TOO_LARGE);
    ck_assert_str_eq(e.text, "big.yaml: 4194305 bytes, over the 4194304 byte limit");

    char path[] = "/tmp/fm_yaml_big_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, big, n), (ssize_t)n);
    close(fd);
    fm_err_clear(&e);
    ck_assert_int_eq(fm_yaml_load_file(path, &d, &e), -1);
    ck_assert_int_eq(e.code, FM_ERR_TOO_LARGE);
    ck_assert_msg(strstr(e.text, "over the 4194304 byte limit"), "%s", e.text);
    unlink(path);
    free(big);
}
END_TEST

START_TEST(load_file_and_lines)
{
    char path[] = "/tmp/fm_yaml_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    const char *text = "id: drain-node\n"     /* 1 */
                       "steps:\n"             /* 2 */
                       "  - action: drain\n"  /* 3 */
                       "    args:\n"          /* 4 */
                       "      reason: x\n"    /* 5 */
                       "  - action: reboot\n" /* 6 */
                       "\"a/b~c\": 1\n"       /* 7 */
                       "list: [1,\n"          /* 8 */
                       "  2]\n";              /* 9 */
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    fm_yaml_doc d;
    fm_err e = {0};
    ck_assert_msg(fm_yaml_load_file(path, &d, &e) == 0, "%s", e.text);
    ck_assert_str_eq(d.path, path);
    ck_assert_int_eq(fm_yaml_line(&d, ""), 1);
    ck_assert_int_eq(fm_yaml_line(&d, "/id"), 1);
    ck_assert_int_eq(fm_yaml_line(&d, "/steps"), 2);
    ck_assert_int_eq(fm_yaml_line(&d, "/steps/0"), 3);
    ck_assert_int_eq(fm_yaml_line(&d, "/steps/0/action"), 3);
    ck_assert_int_eq(fm_yaml_line(&d, "/steps/0/args"), 4);
    ck_assert_int_eq(fm_yaml_line(&d, "/steps/0/args/reason"), 5);
    ck_assert_int_eq(fm_yaml_line(&d, "/steps/1/action"), 6);
    ck_assert_int_eq(fm_yaml_line(&d, "/a~1b~0c"), 7);
    ck_assert_int_eq(fm_yaml_line(&d, "/list/1"), 9);
    /* unknown nodes fall back to the nearest ancestor */
    ck_assert_int_eq(fm_yaml_line(&d, "/steps/1/args/timeout"), 6);
    ck_assert_int_eq(fm_yaml_line(&d, "/steps/7"), 2);
    ck_assert_int_eq(fm_yaml_line(&d, "/nope"), 1);
    ck_assert_int_eq(fm_yaml_line(&d, "nope"), 0);
    ck_assert_int_eq(fm_yaml_line(NULL, ""), 0);
    json_t *a = json_object_get(d.root, "a/b~c");
    ck_assert_int_eq(json_integer_value(a), 1);
    fm_yaml_doc_free(&d);
    fm_yaml_doc_free(&d); /* idempotent */

    /* errors in files carry the path */
    fd = open(path, O_WRONLY | O_TRUNC);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "a: 1\na: 2\n", 10), 10);
    close(fd);
    fm_err_clear(&e);
    ck_assert_int_eq(fm_yaml_load_file(path, &d, &e), -1);
    char want[300];
    snprintf(want, sizeof want, "%s:2:1: duplicate key 'a' (first at line 1); keep one", path);
    ck_assert_str_eq(e.text, want);
    unlink(path);

    fm_err_clear(&e);
    ck_assert_int_eq(fm_yaml_load_file("/nonexistent/x.yaml", &d, &e), -1);
    ck_assert_int_eq(e.code, FM_ERR_IO);
    ck_assert_msg(strstr(e.text, "/nonexistent/x.yaml: cannot open"), "%s", e.text);
    fm_err_clear(&e);
    ck_assert_int_eq(fm_yaml_load_file("/tmp", &d, &e), -1);
    ck_assert_str_eq(e.text, "/tmp: not a regular file");
}
END_TEST

START_TEST(echoed_values_are_clipped)
{
    char buf[400];
    strcpy(buf, "n: 1");
    memset(buf + 4, '9', 200);
    buf[204] = '\0';
    fm_err e = load_bad(buf);
    ck_assert_msg(strlen(e.text) < 140, "%s", e.text);
    ck_assert_msg(strstr(e.text, "...' out of range"), "%s", e.text);
}
END_TEST

START_TEST(directives_bom_and_many_nodes)
{
    expect_json("%YAML 1.2\n---\na: 1\n", "{\"a\":1}");
    expect_json("\xef\xbb\xbf"
                "a: yes\n",
                "{\"a\":\"yes\"}");
    /* 3000 items: every item and scalar keeps its own line */
    size_t cap = 3000 * 40, n = 0;
    char *buf = malloc(cap);
    ck_assert_ptr_nonnull(buf);
    n += (size_t)snprintf(buf + n, cap - n, "nodes:\n");
    for (int i = 0; i < 3000; i++)
        n += (size_t)snprintf(buf + n, cap - n, "  - name: n%d\n    gpus: %d\n", i, i % 9);
    fm_yaml_doc d;
    fm_err e = {0};
    ck_assert_msg(fm_yaml_load_string(buf, n, "many.yaml", &d, &e) == 0, "%s", e.text);
    ck_assert_uint_eq(json_array_size(json_object_get(d.root, "nodes")), 3000);
    ck_assert_int_eq(fm_yaml_line(&d, "/nodes/2999/name"), 2 + 2 * 2999);
    ck_assert_int_eq(fm_yaml_line(&d, "/nodes/2999/gpus"), 3 + 2 * 2999);
    ck_assert_uint_eq(json_object_size(d.lines), 1 + 1 + 3000 * 3);
    fm_yaml_doc_free(&d);
    free(buf);
}
END_TEST

static Suite *yaml_suite(void)
{
    Suite *s = suite_create("yaml");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, plain_scalars_follow_core_schema);
    tcase_add_test(tc, quoted_and_block_scalars_are_strings);
    tcase_add_test(tc, tags);
    tcase_add_test(tc, collections);
    tcase_add_test(tc, integer_out_of_range);
    tcase_add_test(tc, inf_and_nan_are_refused);
    tcase_add_test(tc, aliases_refused);
    tcase_add_test(tc, duplicate_keys_refused);
    tcase_add_test(tc, non_scalar_keys_refused);
    tcase_add_test(tc, depth_limit);
    tcase_add_test(tc, multiple_documents_refused);
    tcase_add_test(tc, syntax_errors_have_location);
    tcase_add_test(tc, size_limit);
    tcase_add_test(tc, load_file_and_lines);
    tcase_add_test(tc, echoed_values_are_clipped);
    tcase_add_test(tc, directives_bom_and_many_nodes);
    suite_add_tcase(s, tc);
    return s;
}

FM_TEST_MAIN(yaml_suite)
