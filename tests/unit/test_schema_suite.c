/* Runs the official JSON-Schema-Test-Suite against fm_schema, one Check
 * test per keyword file, and fails on any case that is not in the skip
 * list below.  Counts per file go to stdout.
 *
 * Where: $FM_SCHEMA_SUITE (a draft directory such as .../tests/draft7), else
 * the Debian package json-schema-test-suite's draft7 directory.  A missing
 * suite is a failure, not a skip: tools/deps.sh installs it.
 *
 * Drafts: Debian bookworm's package (2.0.0) stops at draft7; fleetmcp
 * validates draft 2020-12.  The keywords tested here mean the same in both,
 * except tuple validation: draft7's array-form "items" + "additionalItems"
 * is 2020-12's "prefixItems" + "items".  For draft7 files, schemas are
 * rewritten that way (translate_draft7) before compiling, so items.json and
 * additionalItems.json exercise prefixItems/items.  A draft2020-12
 * directory is used as is, with its own file names (prefixItems, defs). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fleetmcp/fm_schema.h"
#include "fm_test.h"

#define DEFAULT_SUITE "/usr/share/json-schema-test-suite/tests/draft7"

/* Keyword files run.  Each supported keyword, draft7 name first, 2020-12
 * name second (NULL when the same). */
static const struct {
    const char *draft7, *draft2020;
} files[] = {
    {"type.json", NULL},
    {"enum.json", NULL},
    {"const.json", NULL},
    {"properties.json", NULL},
    {"required.json", NULL},
    {"additionalProperties.json", NULL},
    {"patternProperties.json", NULL},
    {"items.json", NULL},
    {"additionalItems.json", "prefixItems.json"}, /* translated: prefixItems + items */
    {"minItems.json", NULL},
    {"maxItems.json", NULL},
    {"uniqueItems.json", NULL},
    {"minLength.json", NULL},
    {"maxLength.json", NULL},
    {"pattern.json", NULL},
    {"minimum.json", NULL},
    {"maximum.json", NULL},
    {"exclusiveMinimum.json", NULL},
    {"exclusiveMaximum.json", NULL},
    {"multipleOf.json", NULL},
    {"minProperties.json", NULL},
    {"maxProperties.json", NULL},
    {"allOf.json", NULL},
    {"anyOf.json", NULL},
    {"oneOf.json", NULL},
    {"not.json", NULL},
    {"if-then-else.json", NULL},
    {"ref.json", NULL},
    {"definitions.json", "defs.json"},
    {"default.json", NULL},
    {"boolean_schema.json", NULL},
};
#define NFILES (sizeof files / sizeof *files)

/* Cases we do not run, each with the reason.  test == NULL skips the whole
 * group.  Every entry must match something (see run_file), so the list
 * cannot go stale quietly. */
static const struct {
    const char *file, *group, *test, *why;
} skips[] = {
    /* draft7 only: $ref replaces its siblings there; in 2020-12 (what we
     * implement) maxItems next to $ref applies, so [1,2,3] is invalid. */
    {"ref.json", "ref overrides any sibling keywords", "ref valid, maxItems ignored",
     "draft7-only semantics: 2020-12 applies keywords beside $ref"},
    /* remote references: fleetmcp resolves local refs only */
    {"ref.json", "remote ref, containing refs itself", NULL,
     "remote $ref (http://json-schema.org/draft-07/schema#)"},
    {"definitions.json", "valid definition", NULL, "remote $ref to the draft-07 metaschema"},
    {"definitions.json", "invalid definition", NULL, "remote $ref to the draft-07 metaschema"},
    /* $id-based resolution: refs relative to an embedded base URI */
    {"ref.json", "Recursive references between schemas", NULL,
     "$id-based resolution (\"$id\": \"http://localhost:1234/tree\", \"$ref\": \"node\")"},
    /* the ref points into draft7's array-form items, which translation
     * moves to prefixItems, so the pointer no longer exists */
    {"ref.json", "relative pointer ref to array", NULL,
     "$ref into draft7 tuple-form \"items\" (\"#/items/0\"), renamed by translation"},
};
#define NSKIPS (sizeof skips / sizeof *skips)

static char suite_dir[1024];
static int is_draft7;

static void locate_suite(void)
{
    const char *env = getenv("FM_SCHEMA_SUITE");
    snprintf(suite_dir, sizeof suite_dir, "%s", env && *env ? env : DEFAULT_SUITE);
    size_t n = strlen(suite_dir);
    while (n > 1 && suite_dir[n - 1] == '/')
        suite_dir[--n] = '\0';
    const char *base = strrchr(suite_dir, '/');
    base = base ? base + 1 : suite_dir;
    is_draft7 = strcmp(base, "draft2020-12") != 0;
}

static json_t *translate_draft7(json_t *s);

static void translate_each(json_t *container)
{
    if (json_is_array(container)) {
        for (size_t i = 0; i < json_array_size(container); i++)
            translate_draft7(json_array_get(container, i));
    } else if (json_is_object(container)) {
        const char *k;
        json_t *v;
        json_object_foreach(container, k, v) translate_draft7(v);
    }
}

/* Rewrites draft7 tuple validation into 2020-12's in place (s borrowed,
 * returned), recursing through every keyword that holds subschemas. */
static json_t *translate_draft7(json_t *s)
{
    if (!json_is_object(s)) return s;
    json_t *items = json_object_get(s, "items");
    if (json_is_array(items)) {
        json_object_set(s, "prefixItems", items);
        json_t *extra = json_object_get(s, "additionalItems");
        if (extra)
            json_object_set(s, "items", extra);
        else
            json_object_del(s, "items");
    }
    /* draft7 ignores additionalItems without array-form items */
    json_object_del(s, "additionalItems");
    static const char *const single[] = {
        "items",    "additionalProperties", "not", "if", "then", "else",
        "contains", "propertyNames",        NULL};
    static const char *const many[] = {"properties",  "patternProperties",
                                       "definitions", "$defs",
                                       "prefixItems", "allOf",
                                       "anyOf",       "oneOf",
                                       NULL};
    for (const char *const *k = single; *k; k++)
        translate_draft7(json_object_get(s, *k));
    for (const char *const *k = many; *k; k++)
        translate_each(json_object_get(s, *k));
    return s;
}

static int skip_index(const char *file, const char *group, const char *test)
{
    for (size_t i = 0; i < NSKIPS; i++)
        if (!strcmp(skips[i].file, file) && !strcmp(skips[i].group, group) &&
            (!skips[i].test || !strcmp(skips[i].test, test)))
            return (int)i;
    return -1;
}

START_TEST(suite_file)
{
    locate_suite();
    struct stat st;
    ck_assert_msg(stat(suite_dir, &st) == 0 && S_ISDIR(st.st_mode),
                  "JSON-Schema-Test-Suite not found at %s: run tools/deps.sh (Debian "
                  "package json-schema-test-suite) or set FM_SCHEMA_SUITE",
                  suite_dir);
    const char *file = is_draft7 || !files[_i].draft2020 ? files[_i].draft7 : files[_i].draft2020;
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", suite_dir, file);
    json_error_t je;
    json_t *groups = json_load_file(path, 0, &je);
    ck_assert_msg(json_is_array(groups), "%s: cannot load: %s (line %d)", path, je.text, je.line);

    int run = 0, passed = 0, skipped = 0, failed = 0;
    int used[NSKIPS] = {0};
    size_t gi;
    json_t *g;
    json_array_foreach(groups, gi, g)
    {
        const char *gdesc = json_string_value(json_object_get(g, "description"));
        json_t *schema = json_deep_copy(json_object_get(g, "schema"));
        if (is_draft7) translate_draft7(schema);
        fm_err cerr = {0};
        fm_schema *cs = fm_schema_compile(schema, &cerr);
        size_t ti;
        json_t *t;
        json_array_foreach(json_object_get(g, "tests"), ti, t)
        {
            const char *tdesc = json_string_value(json_object_get(t, "description"));
            int sk = skip_index(file, gdesc, tdesc);
            if (sk >= 0) {
                used[sk] = 1;
                skipped++;
                continue;
            }
            run++;
            if (!cs) {
                failed++;
                printf("FAIL %s | %s | %s: schema did not compile: %s\n", file, gdesc, tdesc,
                       cerr.text);
                continue;
            }
            const json_t *data = json_object_get(t, "data");
            int want = json_is_true(json_object_get(t, "valid"));
            fm_err err = {0};
            int got = fm_schema_check(cs, data, &err) == 0;
            /* the one-shot and collect-all paths must agree with the compiled one */
            fm_err err2 = {0};
            int got2 = fm_schema_validate(schema, data, &err2) == 0;
            json_t *all = json_array();
            size_t n = fm_schema_check_all(cs, data, all, 10);
            int ok = got == want && got2 == got && (n == 0) == got && json_array_size(all) == n;
            if (!got) {
                /* a refusal always says where and why */
                ok = ok && err.code == FM_ERR_INVALID &&
                     (err.text[0] == '/' || !strncmp(err.text, "(root): ", 8));
            }
            if (ok) {
                passed++;
            } else {
                failed++;
                char *d = json_dumps(data, JSON_ENCODE_ANY | JSON_COMPACT);
                printf("FAIL %s | %s | %s: data %s want %s got %s/%s/%zu (%s)\n", file, gdesc,
                       tdesc, d, want ? "valid" : "invalid", got ? "valid" : "invalid",
                       got2 ? "valid" : "invalid", n, err.text);
                free(d);
            }
            json_decref(all);
        }
        fm_schema_free(cs);
        json_decref(schema);
    }
    json_decref(groups);
    for (size_t i = 0; i < NSKIPS; i++) {
        if (strcmp(skips[i].file, file) || used[i]) continue;
        failed++;
        printf("FAIL %s: stale skip entry '%s' / '%s'\n", file, skips[i].group,
               skips[i].test ? skips[i].test : "(group)");
    }
    for (size_t i = 0; i < NSKIPS; i++)
        if (used[i])
            printf("  skip %s | %s | %s: %s\n", file, skips[i].group,
                   skips[i].test ? skips[i].test : "(whole group)", skips[i].why);
    printf("%-28s run %3d passed %3d skipped %2d\n", file, run, passed, skipped);
    fflush(stdout);
    ck_assert_msg(failed == 0, "%s: %d failing case(s), see output", file, failed);
    /* draft7's definitions.json only validates against the remote metaschema,
     * so all of it is skipped; $defs/definitions are covered in test_schema.c */
    ck_assert_msg(run + skipped > 0, "%s: no cases found", file);
}
END_TEST

static Suite *schema_suite_suite(void)
{
    Suite *s = suite_create("schema_suite");
    TCase *tc = tcase_create("json-schema-test-suite");
    tcase_add_loop_test(tc, suite_file, 0, (int)NFILES);
    suite_add_tcase(s, tc);
    return s;
}

FM_TEST_MAIN(schema_suite_suite)
