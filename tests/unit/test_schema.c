/* fm_schema: fleetmcp's own cases, chiefly the error messages a caller
 * acts on, the JSON-number rules (1 == 1.0), code-point lengths, refusals
 * at compile time, and the cost of a validation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fleetmcp/fm_schema.h"
#include "fm_test.h"

static json_t *J(const char *text)
{
    json_error_t je;
    json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    ck_assert_msg(v != NULL, "bad test JSON %s: %s", text, je.text);
    return v;
}

/* Validates (one-shot and compiled) and returns the error text; "" if valid.
 * Both paths must agree. */
static const char *why(const char *schema, const char *instance)
{
    static char out[sizeof((fm_err *)0)->text];
    json_t *s = J(schema), *i = J(instance);
    fm_err e1 = {0}, e2 = {0}, ce = {0};
    int r1 = fm_schema_validate(s, i, &e1);
    fm_schema *cs = fm_schema_compile(s, &ce);
    ck_assert_msg(cs != NULL, "compile %s: %s", schema, ce.text);
    int r2 = fm_schema_check(cs, i, &e2);
    ck_assert_int_eq(r1, r2);
    ck_assert_str_eq(e1.text, e2.text);
    if (r1)
        ck_assert_int_eq(e1.code, FM_ERR_INVALID);
    else
        ck_assert_int_eq(e1.code, FM_OK);
    snprintf(out, sizeof out, "%s", e1.text);
    fm_schema_free(cs);
    json_decref(s);
    json_decref(i);
    return out;
}

#define VALID(schema, inst) ck_assert_str_eq(why(schema, inst), "")
#define INVALID(schema, inst, msg) ck_assert_str_eq(why(schema, inst), msg)

static const char *tool_schema =
    "{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"node\"],"
    "\"properties\":{"
    "\"node\":{\"type\":\"string\",\"pattern\":\"^[a-z][a-z0-9-]{0,62}$\"},"
    "\"limit\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":500},"
    "\"state\":{\"enum\":[\"idle\",\"drain\"]},"
    "\"reason\":{\"type\":\"string\",\"minLength\":3,\"maxLength\":64},"
    "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"maxItems\":4,"
    "\"uniqueItems\":true}}}";

START_TEST(messages_name_the_fix)
{
    VALID(tool_schema, "{\"node\":\"gpu-01\",\"limit\":500,\"state\":\"idle\",\"reason\":\"xid\","
                       "\"tags\":[\"a\",\"b\"]}");
    INVALID(tool_schema, "{\"node\":\"a\",\"limit\":501}", "/limit: must be at most 500");
    INVALID(tool_schema, "{\"node\":\"a\",\"limit\":0}", "/limit: must be at least 1");
    INVALID(tool_schema, "{}", "/node: required property missing");
    INVALID(tool_schema, "{\"node\":\"a\",\"state\":\"busy\"}",
            "/state: must be one of [\"idle\", \"drain\"]");
    INVALID(tool_schema, "{\"node\":\"a\",\"foo\":1}",
            "(root): unknown property 'foo' (allowed: limit, node, reason, state, tags)");
    INVALID(tool_schema, "{\"node\":5}", "/node: must be string, got integer");
    INVALID(tool_schema, "{\"node\":\"A\"}", "/node: must match pattern /^[a-z][a-z0-9-]{0,62}$/");
    INVALID(tool_schema, "{\"node\":\"a\",\"limit\":2.5}", "/limit: must be integer, got number");
    INVALID(tool_schema, "{\"node\":\"a\",\"reason\":\"ab\"}",
            "/reason: must be at least 3 characters long");
    INVALID(tool_schema, "{\"node\":\"a\",\"tags\":[\"a\",\"b\",\"a\"]}",
            "/tags: items 0 and 2 are equal; items must be unique");
    INVALID(tool_schema, "{\"node\":\"a\",\"tags\":[\"a\",1]}",
            "/tags/1: must be string, got integer");
    INVALID(tool_schema, "{\"node\":\"a\",\"tags\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}",
            "/tags: must have at most 4 items");
    INVALID(tool_schema, "[]", "(root): must be object, got array");
    INVALID("{\"type\":[\"string\",\"null\",\"integer\"]}", "true",
            "(root): must be null, integer or string, got boolean");
    INVALID("{\"const\":\"drain\"}", "\"x\"", "(root): must be \"drain\"");
    INVALID("{\"minimum\":0.5}", "0.25", "(root): must be at least 0.5");
    INVALID("{\"exclusiveMinimum\":0}", "0", "(root): must be greater than 0");
    INVALID("{\"exclusiveMaximum\":10}", "10.0", "(root): must be less than 10");
    INVALID("{\"multipleOf\":5}", "7", "(root): must be a multiple of 5");
    INVALID("{\"minProperties\":1}", "{}", "(root): must have at least 1 property");
    INVALID("{\"maxProperties\":1}", "{\"a\":1,\"b\":2}", "(root): must have at most 1 property");
    INVALID("{\"minItems\":2}", "[1]", "(root): must have at least 2 items");
    INVALID("{\"maxLength\":1}", "\"ab\"", "(root): must be at most 1 character long");
    INVALID("{\"not\":{\"type\":\"null\"}}", "null", "(root): must not match the schema in 'not'");
    INVALID("false", "1", "(root): is not allowed here");
    INVALID("{\"properties\":{\"x\":false}}", "{\"x\":1}", "/x: is not allowed here");
    INVALID("{\"additionalProperties\":false}", "{\"x\":1}",
            "(root): unknown property 'x' (no properties allowed)");
    INVALID("{\"properties\":{\"a\":{}},\"patternProperties\":{\"^x-\":{}},"
            "\"additionalProperties\":false}",
            "{\"b\":1}", "(root): unknown property 'b' (allowed: a, names matching /^x-/)");
    INVALID("{\"prefixItems\":[{},{}],\"items\":false}", "[1,2,3]",
            "(root): must have at most 2 items");
    INVALID("{\"items\":false}", "[1]", "(root): must be an empty array");
    /* pointers escape ~ and / (RFC 6901) */
    INVALID("{\"properties\":{\"a/b~c\":{\"type\":\"string\"}}}", "{\"a/b~c\":1}",
            "/a~1b~0c: must be string, got integer");
    INVALID("{\"items\":{\"required\":[\"id\"]}}", "[{\"id\":1},{}]",
            "/1/id: required property missing");
}
END_TEST

START_TEST(applicator_messages)
{
    INVALID("{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"null\"}]}", "1",
            "(root): must match at least one anyOf schema: [0] must be string, got integer; [1] "
            "must be null, got integer");
    INVALID("{\"oneOf\":[{\"required\":[\"a\"]},{\"required\":[\"b\"]}]}", "{}",
            "(root): must match exactly one oneOf schema, matches none: [0] /a: required "
            "property missing; [1] /b: required property missing");
    INVALID("{\"oneOf\":[{\"minimum\":0},{\"maximum\":10}]}", "5",
            "(root): must match exactly one oneOf schema, matches [0] and [1]");
    INVALID("{\"allOf\":[{\"minimum\":0},{\"maximum\":10}]}", "11", "(root): must be at most 10");
    INVALID("{\"if\":{\"properties\":{\"kind\":{\"const\":\"drain\"}}},"
            "\"then\":{\"required\":[\"reason\"]},\"else\":{\"maxProperties\":1}}",
            "{\"kind\":\"drain\"}", "/reason: required property missing");
    INVALID("{\"if\":{\"properties\":{\"kind\":{\"const\":\"drain\"}}},"
            "\"then\":{\"required\":[\"reason\"]},\"else\":{\"maxProperties\":1}}",
            "{\"kind\":\"x\",\"y\":1}", "(root): must have at most 1 property");
    VALID("{\"if\":{\"type\":\"string\"},\"then\":{\"minLength\":2}}", "5");
    /* many branches: the message stays bounded */
    const char *s = "{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"null\"},{\"type\":\"array\"},"
                    "{\"type\":\"object\"},{\"type\":\"boolean\"},{\"minimum\":100}]}";
    const char *w = why(s, "1");
    ck_assert_msg(strstr(w, "[3] must be object, got integer; ..."), "%s", w);
}
END_TEST

START_TEST(echoed_names_are_clipped)
{
    char inst[600];
    char name[300];
    memset(name, 'x', 200);
    name[200] = '\0';
    snprintf(inst, sizeof inst, "{\"%s\":1}", name);
    const char *w = why("{\"properties\":{\"a\":{}},\"additionalProperties\":false}", inst);
    char want[200];
    snprintf(want, sizeof want, "(root): unknown property '%.64s...' (allowed: a)", name);
    ck_assert_str_eq(w, want);
    /* control characters never reach a message */
    w = why("{\"additionalProperties\":false}", "{\"a\\nb\\u0007\":1}");
    ck_assert_str_eq(w, "(root): unknown property 'a b ' (no properties allowed)");
    w = why("{\"additionalProperties\":{\"type\":\"string\"}}", "{\"a\\nb\":1}");
    ck_assert_str_eq(w, "/a b: must be string, got integer");
    /* UTF-8 is cut on a character boundary: 63 ASCII + a 2-byte character */
    snprintf(inst, sizeof inst, "{\"%.63s\\u00e9zz\":1}", name);
    w = why("{\"additionalProperties\":false}", inst);
    snprintf(want, sizeof want, "(root): unknown property '%.63s...' (no properties allowed)",
             name);
    ck_assert_str_eq(w, want);
}
END_TEST

START_TEST(numbers_follow_json_schema)
{
    VALID("{\"type\":\"integer\"}", "1.0");
    VALID("{\"type\":\"integer\"}", "-0.0");
    VALID("{\"type\":\"integer\"}", "1e300");
    INVALID("{\"type\":\"integer\"}", "1.5", "(root): must be integer, got number");
    VALID("{\"type\":\"number\"}", "3");
    VALID("{\"enum\":[1,2]}", "1.0");
    VALID("{\"const\":2.0}", "2");
    VALID("{\"const\":{\"a\":[1,{\"b\":2}],\"c\":null}}", "{\"c\":null,\"a\":[1.0,{\"b\":2.0}]}");
    INVALID("{\"const\":[1]}", "[true]", "(root): must be [1]");
    INVALID("{\"const\":false}", "0", "(root): must be false");
    INVALID("{\"uniqueItems\":true}", "[1,1.0]",
            "(root): items 0 and 1 are equal; items must be unique");
    INVALID("{\"uniqueItems\":true}", "[{\"a\":1,\"b\":2},{\"b\":2.0,\"a\":1}]",
            "(root): items 0 and 1 are equal; items must be unique");
    VALID("{\"uniqueItems\":true}", "[1,\"1\",true,null,[1],{\"1\":1}]");
    /* exact integer/real comparison beyond 2^53 */
    INVALID("{\"maximum\":9007199254740992}", "9007199254740993",
            "(root): must be at most 9007199254740992");
    VALID("{\"maximum\":9007199254740992}", "9007199254740992.0");
    INVALID("{\"maximum\":9007199254740992.0}", "9007199254740993",
            "(root): must be at most 9007199254740992");
    VALID("{\"minimum\":-9223372036854775808}", "-9223372036854775808");
    INVALID("{\"maximum\":9223372036854775807}", "1e19",
            "(root): must be at most 9223372036854775807");
    INVALID("{\"exclusiveMaximum\":0.1}", "0.1", "(root): must be less than 0.1");
    /* multipleOf with floats: quotient rounding is tolerated, real misses are not */
    VALID("{\"multipleOf\":0.01}", "19.99");
    VALID("{\"multipleOf\":0.1}", "0.3");
    VALID("{\"multipleOf\":0.0001}", "0.0075");
    INVALID("{\"multipleOf\":0.0001}", "0.00751", "(root): must be a multiple of 0.0001");
    INVALID("{\"multipleOf\":1}", "1.0000000001", "(root): must be a multiple of 1");
    VALID("{\"multipleOf\":3}", "-9.0");
    VALID("{\"multipleOf\":1.5}", "-4.5");
    INVALID("{\"multipleOf\":0.123456789}", "1e308", "(root): must be a multiple of 0.123456789");
}
END_TEST

START_TEST(lengths_count_code_points)
{
    VALID("{\"maxLength\":3}", "\"h\\u00e9\\u00e9\""); /* 5 bytes, 3 code points */
    INVALID("{\"maxLength\":3}", "\"h\\u00e9\\u00e9\\u00e9\"",
            "(root): must be at most 3 characters long");
    INVALID("{\"minLength\":2}", "\"\\u00e9\"", "(root): must be at least 2 characters long");
    VALID("{\"minLength\":2,\"maxLength\":2}", "\"\\ud83d\\ude00x\""); /* U+1F600: 4 bytes */
    VALID("{\"maxLength\":1}", "\"\\u0000\"");
}
END_TEST

START_TEST(patterns)
{
    VALID("{\"pattern\":\"^.$\"}", "\"\\u00e9\""); /* UTF mode: one character */
    INVALID("{\"pattern\":\"^a$\"}", "\"a\\n\"", "(root): must match pattern /^a$/"); /* ECMA $ */
    VALID("{\"pattern\":\"b\"}", "\"abc\"");               /* unanchored search */
    VALID("{\"pattern\":\"^\\\\u00e9$\"}", "\"\\u00e9\""); /* \uXXXX as in ECMA */
    INVALID("{\"pattern\":\"^\\\\d+$\"}", "\"\\u0661\"", "(root): must match pattern /^\\d+$/");
    VALID("{\"pattern\":\"^\\\\p{L}+$\"}", "\"\\u00e9t\\u00e9\"");
    VALID("{\"pattern\":\"a\"}", "5"); /* applies to strings only */
    VALID("{\"patternProperties\":{\"^x-\":{\"type\":\"integer\"}},\"additionalProperties\":false}",
          "{\"x-a\":1}");
    INVALID("{\"patternProperties\":{\"^x-\":{\"type\":\"integer\"}}}", "{\"x-a\":\"s\"}",
            "/x-a: must be integer, got string");
    /* a catastrophic pattern meets the match limit and fails closed, fast */
    char inst[80];
    memset(inst, 0, sizeof inst);
    inst[0] = '"';
    memset(inst + 1, 'a', 40);
    strcat(inst, "!\"");
    INVALID("{\"pattern\":\"^(a+)+$\"}", inst,
            "(root): could not be matched against pattern /^(a+)+$/ (regex limit)");
}
END_TEST

START_TEST(refs_and_defs)
{
    const char *tree =
        "{\"$defs\":{\"node\":{\"type\":\"object\",\"required\":[\"name\"],"
        "\"properties\":{\"name\":{\"type\":\"string\"},\"kids\":{\"type\":\"array\","
        "\"items\":{\"$ref\":\"#/$defs/node\"}}}}},\"$ref\":\"#/$defs/node\"}";
    VALID(tree, "{\"name\":\"a\",\"kids\":[{\"name\":\"b\",\"kids\":[{\"name\":\"c\"}]}]}");
    INVALID(tree, "{\"name\":\"a\",\"kids\":[{\"name\":\"b\",\"kids\":[{}]}]}",
            "/kids/0/kids/0/name: required property missing");
    VALID(
        "{\"definitions\":{\"n\":{\"type\":\"integer\"}},\"items\":{\"$ref\":\"#/definitions/n\"}}",
        "[1,2]");
    /* escaped and percent-encoded pointer segments */
    VALID(
        "{\"$defs\":{\"a/b~c\":{\"type\":\"integer\"},\"p%q\":{\"type\":\"string\"}},"
        "\"properties\":{\"x\":{\"$ref\":\"#/$defs/a~1b~0c\"},\"y\":{\"$ref\":\"#/$defs/p%25q\"}}}",
        "{\"x\":1,\"y\":\"s\"}");
    /* keywords beside $ref apply (2020-12) */
    INVALID("{\"$defs\":{\"a\":{\"type\":\"array\"}},\"$ref\":\"#/$defs/a\",\"maxItems\":1}",
            "[1,2]", "(root): must have at most 1 item");
    /* a ref loop that consumes nothing fails closed instead of recursing forever */
    INVALID("{\"$ref\":\"#\"}", "1", "(root): nested too deeply to validate");
    INVALID("{\"$defs\":{\"a\":{\"$ref\":\"#/$defs/b\"},\"b\":{\"$ref\":\"#/$defs/a\"}},"
            "\"$ref\":\"#/$defs/a\"}",
            "{}", "(root): nested too deeply to validate");
}
END_TEST

START_TEST(deep_instances)
{
    /* recursive schema: depth is bounded, and fails closed */
    const char *s = "{\"type\":\"array\",\"items\":{\"$ref\":\"#\"}}";
    char inst[1200];
    for (int depth = 100; depth <= 300; depth += 200) {
        size_t n = 0;
        for (int i = 0; i < depth; i++)
            inst[n++] = '[';
        for (int i = 0; i < depth; i++)
            inst[n++] = ']';
        inst[n] = '\0';
        const char *w = why(s, inst);
        if (depth == 100)
            ck_assert_str_eq(w, "");
        else
            ck_assert_msg(strstr(w, ": nested too deeply to validate"), "%s", w);
    }
}
END_TEST

START_TEST(long_pointers_are_truncated)
{
    /* 20 levels of 100-byte keys: the pointer outgrows its buffer */
    json_t *inst = json_integer(1), *schema = J("{\"additionalProperties\":{\"$ref\":\"#\"},"
                                                "\"type\":\"object\"}");
    char key[101];
    memset(key, 'k', 100);
    key[100] = '\0';
    for (int i = 0; i < 20; i++) {
        json_t *o = json_object();
        json_object_set_new(o, key, inst);
        inst = o;
    }
    json_t *errs = json_array();
    ck_assert_int_eq(fm_schema_validate_all(schema, inst, errs, 5), 1);
    const char *path = json_string_value(json_object_get(json_array_get(errs, 0), "path"));
    ck_assert_msg(strlen(path) < 1100 && !strcmp(path + strlen(path) - 4, "/..."), "%s", path);
    fm_err e = {0};
    ck_assert_int_eq(fm_schema_validate(schema, inst, &e), -1);
    ck_assert_msg(strstr(e.text, "/...: must be object, got integer") ||
                      strlen(e.text) == sizeof e.text - 1,
                  "%s", e.text);
    json_decref(errs);
    json_decref(inst);
    json_decref(schema);
}
END_TEST

START_TEST(validate_all_collects)
{
    json_t *s = J(tool_schema);
    json_t *i = J("{\"limit\":0,\"state\":\"x\",\"bogus\":true,\"tags\":[1,2]}");
    json_t *errs = json_array();
    size_t n = fm_schema_validate_all(s, i, errs, 20);
    ck_assert_uint_eq(n, 6);
    ck_assert_uint_eq(json_array_size(errs), 6);
    char *dump = json_dumps(errs, JSON_COMPACT);
    ck_assert_str_eq(
        dump, "[{\"path\":\"/node\",\"message\":\"required property missing\"},"
              "{\"path\":\"/limit\",\"message\":\"must be at least 1\"},"
              "{\"path\":\"/state\",\"message\":\"must be one of [\\\"idle\\\", \\\"drain\\\"]\"},"
              "{\"path\":\"\",\"message\":\"unknown property 'bogus' (allowed: limit, node, "
              "reason, state, tags)\"},"
              "{\"path\":\"/tags/0\",\"message\":\"must be string, got integer\"},"
              "{\"path\":\"/tags/1\",\"message\":\"must be string, got integer\"}]");
    free(dump);
    /* the cap holds, and the count is capped */
    json_array_clear(errs);
    ck_assert_uint_eq(fm_schema_validate_all(s, i, errs, 2), 2);
    ck_assert_uint_eq(json_array_size(errs), 2);
    json_array_clear(errs);
    json_t *good = J("{\"node\":\"ok\"}");
    ck_assert_uint_eq(fm_schema_validate_all(s, good, errs, 5), 0);
    json_decref(good);
    json_decref(errs);
    json_decref(i);
    json_decref(s);
}
END_TEST

/* Compile must fail with this message. */
static void refused(const char *schema, const char *msg)
{
    json_t *s = J(schema);
    fm_err e = {0};
    fm_schema *cs = fm_schema_compile(s, &e);
    ck_assert_msg(cs == NULL, "%s compiled", schema);
    ck_assert_int_eq(e.code, FM_ERR_INVALID);
    ck_assert_msg(!strncmp(e.text, msg, strlen(msg)), "got '%s', want '%s...'", e.text, msg);
    /* the one-shot path reports a bad schema as a bug in fleetmcp, not as bad input */
    fm_err e2 = {0};
    json_t *one = json_integer(1);
    ck_assert_int_eq(fm_schema_validate(s, one, &e2), -1);
    ck_assert_int_eq(e2.code, FM_ERR_INTERNAL);
    ck_assert_str_eq(e2.text, e.text);
    json_t *errs = json_array();
    ck_assert_uint_eq(fm_schema_validate_all(s, one, errs, 3), 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(errs, 0), "message")),
                     e.text);
    json_decref(errs);
    json_decref(one);
    json_decref(s);
}

START_TEST(bad_schemas_are_refused)
{
    refused("{\"properties\":{\"x\":{\"pattern\":\"(\"}}}",
            "(schema) /properties/x/pattern: bad regex at offset 1: missing closing parenthesis");
    refused("{\"patternProperties\":{\"[\":{}}}", "(schema) /patternProperties/[: bad regex");
    refused("{\"$ref\":\"http://example.com/s.json\"}",
            "(schema) /$ref: only local references ('#' or '#/<pointer>') are supported");
    refused("{\"$ref\":\"#foo\"}", "(schema) /$ref: anchors ('#name') are not supported");
    refused("{\"$ref\":\"#/$defs/missing\"}", "(schema) /$ref: reference does not resolve");
    refused("{\"$ref\":\"#/$defs/a~2\",\"$defs\":{}}", "(schema) /$ref: bad '~' escape");
    refused("{\"contains\":{}}", "(schema) /contains: keyword not supported");
    refused("{\"items\":{\"unevaluatedProperties\":false}}",
            "(schema) /items/unevaluatedProperties: keyword not supported");
    refused("{\"items\":[{}]}", "(schema) /items: must be a schema; for tuples use prefixItems");
    refused("{\"minLength\":-1}", "(schema) /minLength: must be a non-negative integer");
    refused("{\"maxItems\":1.5}", "(schema) /maxItems: must be a non-negative integer");
    refused("{\"type\":\"str\"}", "(schema) /type: unknown type");
    refused("{\"type\":[]}", "(schema) /type: must not be an empty array");
    refused("{\"multipleOf\":0}", "(schema) /multipleOf: must be greater than 0");
    refused("{\"minimum\":\"1\"}", "(schema) /minimum: must be a number");
    refused("{\"exclusiveMinimum\":true}", "(schema) /exclusiveMinimum: must be a number");
    refused("{\"required\":[1]}", "(schema) /required: must be an array of property names");
    refused("{\"anyOf\":[]}", "(schema) /anyOf: must be a non-empty array of schemas");
    refused("{\"properties\":{\"a\":1}}", "(schema) /properties/a: a schema must be an object");
    refused("{\"$defs\":{\"x\":{\"$id\":\"x.json\"}}}", "(schema) /$defs/x/$id: embedded $id");
    refused("{\"$defs\":{\"a/b\":{\"pattern\":\"[\"}}}", "(schema) /$defs/a~1b/pattern: bad regex");
    refused("42", "(schema) (root): a schema must be an object or a boolean");
    /* annotations and unknown keywords are fine; a root $id too */
    json_t *s = J("{\"$id\":\"https://fleetmcp/x\",\"$schema\":\"https://json-schema.org/draft/"
                  "2020-12/schema\",\"title\":\"t\",\"description\":\"d\",\"format\":\"ipv4\","
                  "\"default\":1,\"examples\":[1],\"x-vendor\":{\"contains\":1}}");
    fm_err e = {0};
    fm_schema *cs = fm_schema_compile(s, &e);
    ck_assert_msg(cs != NULL, "%s", e.text);
    json_t *v = json_string("not an ip");
    ck_assert_int_eq(fm_schema_check(cs, v, &e), 0); /* format is an annotation */
    json_decref(v);
    fm_schema_free(cs);
    fm_schema_free(NULL);
    json_decref(s);
    fm_err_clear(&e);
    ck_assert_int_eq(fm_schema_validate(NULL, NULL, &e), -1);
    ck_assert_int_eq(e.code, FM_ERR_INTERNAL);
}
END_TEST

START_TEST(compiled_schema_is_reusable)
{
    /* one compiled schema, many instances; it keeps its own reference */
    json_t *s = J(tool_schema);
    fm_err e = {0};
    fm_schema *cs = fm_schema_compile(s, &e);
    ck_assert_ptr_nonnull(cs);
    json_decref(s);
    for (int i = 0; i < 100; i++) {
        char buf[64];
        snprintf(buf, sizeof buf, "{\"node\":\"n%d\",\"limit\":%d}", i, i * 10);
        json_t *inst = J(buf);
        fm_err_clear(&e);
        int rc = fm_schema_check(cs, inst, &e);
        if (i == 0)
            ck_assert_str_eq(e.text, "/limit: must be at least 1");
        else if (i > 50)
            ck_assert_str_eq(e.text, "/limit: must be at most 500");
        else
            ck_assert_int_eq(rc, 0);
        json_decref(inst);
    }
    fm_err_clear(&e);
    ck_assert_int_eq(fm_schema_check(cs, NULL, &e), -1);
    ck_assert_str_eq(e.text, "(root): no value given");
    fm_schema_free(cs);
}
END_TEST

START_TEST(validation_repeated)
{
    /* A compiled schema is reused for every call: many checks in a row,
     * passing and failing, give the same answers as a one-shot validation
     * (cost is measured by make bench, never here). */
    json_t *s = J(tool_schema);
    json_t *inst = J("{\"node\":\"gpu-node-017\",\"limit\":100,\"state\":\"drain\","
                     "\"reason\":\"xid 79 on gpu 3\",\"tags\":[\"rack-a\",\"h100\"]}");
    fm_err e = {0};
    fm_schema *cs = fm_schema_compile(s, &e);
    ck_assert_ptr_nonnull(cs);
    json_t *bad = J("{\"node\":\"gpu-node-017\",\"limit\":1000}");
    int wrong = 0;
    for (int i = 0; i < 2000; i++) {
        wrong += fm_schema_check(cs, inst, &e) != 0;
        fm_err_clear(&e);
        wrong += fm_schema_check(cs, bad, &e) != -1;
    }
    for (int i = 0; i < 50; i++)
        wrong += fm_schema_validate(s, inst, &e) != 0;
    ck_assert_int_eq(wrong, 0);
    ck_assert_str_eq(e.text, "/limit: must be at most 500");
    json_decref(bad);
    json_decref(inst);
    json_decref(s);
    fm_schema_free(cs);
}
END_TEST

START_TEST(limits_fail_closed)
{
    /* the depth limit met inside "not" must not turn into a pass */
    INVALID("{\"not\":{\"$ref\":\"#\"}}", "1",
            "(root): too deeply nested or too complex to validate");
    INVALID("{\"anyOf\":[{\"$ref\":\"#\"},true]}", "1",
            "(root): too deeply nested or too complex to validate");
    /* two recursive anyOf branches: 2^40 paths; the step budget stops it */
    const char *s = "{\"$defs\":{\"t\":{\"anyOf\":["
                    "{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/t\"},\"minItems\":1},"
                    "{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/t\"},\"maxItems\":5}]}},"
                    "\"$ref\":\"#/$defs/t\"}";
    char inst[200];
    size_t n = 0;
    for (int i = 0; i < 40; i++)
        inst[n++] = '[';
    inst[n++] = '1';
    for (int i = 0; i < 40; i++)
        inst[n++] = ']';
    inst[n] = '\0';
    time_t t0 = time(NULL);
    const char *w = why(s, inst);
    ck_assert_msg(strstr(w, "too complex to validate"), "%s", w);
    ck_assert_msg(time(NULL) - t0 < 30, "budget did not bound the work");
    /* a regex that hits its match limit inside "not" is not a pass either */
    char big[80];
    memset(big, 0, sizeof big);
    big[0] = '"';
    memset(big + 1, 'a', 40);
    strcat(big, "!\"");
    INVALID("{\"not\":{\"pattern\":\"^(a+)+$\"}}", big,
            "(root): too deeply nested or too complex to validate");
}
END_TEST

static Suite *schema_suite(void)
{
    Suite *s = suite_create("schema");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, messages_name_the_fix);
    tcase_add_test(tc, applicator_messages);
    tcase_add_test(tc, echoed_names_are_clipped);
    tcase_add_test(tc, numbers_follow_json_schema);
    tcase_add_test(tc, lengths_count_code_points);
    tcase_add_test(tc, patterns);
    tcase_add_test(tc, refs_and_defs);
    tcase_add_test(tc, deep_instances);
    tcase_add_test(tc, limits_fail_closed);
    tcase_add_test(tc, long_pointers_are_truncated);
    tcase_add_test(tc, validate_all_collects);
    tcase_add_test(tc, bad_schemas_are_refused);
    tcase_add_test(tc, compiled_schema_is_reusable);
    tcase_add_test(tc, validation_repeated);
    suite_add_tcase(s, tc);
    return s;
}

FM_TEST_MAIN(schema_suite)
