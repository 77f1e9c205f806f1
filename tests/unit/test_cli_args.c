/* mcp-cli's word and argument rules (tools/mcp-cli/args.c): the shell
 * splits a typed line into the words a POSIX shell would give `mcp-cli
 * call`, and both then go through the same cli_args_parse.  Also its text
 * output for people (tools/mcp-cli/format.c). */
#include <string.h>
#include <sys/stat.h>

#include "../../tools/mcp-cli/args.h"
#include "../../tools/mcp-cli/format.h"
#include "fm_test.h"

/* Splits line strictly and checks the words against want (NULL-ended). */
static void words_are(const char *line, const char *const want[])
{
    cli_words w;
    char err[128] = "";
    ck_assert_msg(cli_words_split(line, false, &w, err, sizeof err) == 0, "%s: %s", line, err);
    int n = 0;
    while (want[n])
        n++;
    ck_assert_msg(w.argc == n, "%s: %d words, wanted %d", line, w.argc, n);
    for (int i = 0; i < n; i++)
        ck_assert_str_eq(w.argv[i], want[i]);
    ck_assert_ptr_null(w.argv[n]);
    cli_words_free(&w);
}

START_TEST(split_like_a_shell)
{
    words_are("call ticket_create summary=\"GPU 3 fell off the bus\" severity=high",
              (const char *const[]){"call", "ticket_create", "summary=GPU 3 fell off the bus",
                                    "severity=high", NULL});
    words_are("  a\t b  ", (const char *const[]){"a", "b", NULL});
    words_are("", (const char *const[]){NULL});
    words_are("k='it is \"x\" $HOME \\n'", (const char *const[]){"k=it is \"x\" $HOME \\n", NULL});
    /* In double quotes a backslash escapes only " \ $ ` and newline. */
    words_are("k=\"a \\\"q\\\" \\\\ \\$ \\n\"", (const char *const[]){"k=a \"q\" \\ $ \\n", NULL});
    words_are("k=a\\ b\\'c", (const char *const[]){"k=a b'c", NULL});
    words_are("'it'\\''s'", (const char *const[]){"it's", NULL});
    words_are("x='' y=\"\"", (const char *const[]){"x=", "y=", NULL});
    words_are("a\"b c\"d", (const char *const[]){"ab cd", NULL});
    words_are("line\\\ncont", (const char *const[]){"linecont", NULL});
}
END_TEST

START_TEST(strict_refuses_open_quotes)
{
    cli_words w;
    char err[128];
    ck_assert_int_eq(cli_words_split("a \"open", false, &w, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "double quote"));
    ck_assert_int_eq(cli_words_split("a 'open", false, &w, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "single quote"));
    ck_assert_int_eq(cli_words_split("a\\", false, &w, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "backslash"));
}
END_TEST

START_TEST(partial_for_completion)
{
    cli_words w;
    ck_assert_int_eq(cli_words_split("call ticket_create summary=\"GPU 3", true, &w, NULL, 0), 0);
    ck_assert_int_eq(w.argc, 3);
    ck_assert_str_eq(w.argv[2], "summary=GPU 3");
    ck_assert_int_eq(w.open_quote, '"');
    ck_assert(!w.at_blank);
    ck_assert_uint_eq(w.last_start, 19);
    cli_words_free(&w);
    ck_assert_int_eq(cli_words_split("call ", true, &w, NULL, 0), 0);
    ck_assert(w.at_blank);
    ck_assert_int_eq(w.argc, 1);
    cli_words_free(&w);
    ck_assert_int_eq(cli_words_split("node=a\\ ", true, &w, NULL, 0), 0);
    ck_assert(!w.at_blank); /* an escaped blank is inside the word */
    ck_assert_str_eq(w.argv[0], "node=a ");
    cli_words_free(&w);
}
END_TEST

static json_t *parse_line(const char *line, FILE *in, bool stdin_ok, char *err, size_t errlen)
{
    cli_words w;
    ck_assert_int_eq(cli_words_split(line, false, &w, err, errlen), 0);
    cli_args_src src = {.in = in, .stdin_ok = stdin_ok};
    json_t *args = cli_args_parse(w.argc, w.argv, &src, err, errlen);
    cli_words_free(&w);
    return args;
}

static void args_are(const char *line, const char *want_json)
{
    char err[256] = "";
    json_t *got = parse_line(line, NULL, false, err, sizeof err);
    ck_assert_msg(got != NULL, "%s: %s", line, err);
    json_t *want = json_loads(want_json, 0, NULL);
    ck_assert_ptr_nonnull(want);
    char *g = json_dumps(got, JSON_SORT_KEYS | JSON_COMPACT);
    ck_assert_msg(json_equal(got, want), "%s: got %s, wanted %s", line, g, want_json);
    free(g);
    json_decref(got);
    json_decref(want);
}

START_TEST(typed_values)
{
    args_are("summary=\"GPU 3 fell off the bus\" severity=high",
             "{\"summary\": \"GPU 3 fell off the bus\", \"severity\": \"high\"}");
    args_are("limit=5 detail=true x=null l='[\"a\",1]'",
             "{\"limit\": 5, \"detail\": true, \"x\": null, \"l\": [\"a\", 1]}");
    args_are("n='\"5\"' e= eq=a=b", "{\"n\": \"5\", \"e\": \"\", \"eq\": \"a=b\"}");
    args_are("lit=@@home", "{\"lit\": \"@home\"}");
    args_are("--args '{\"a\": 1, \"b\": [2]}' b=3", "{\"a\": 1, \"b\": 3}");
}
END_TEST

START_TEST(values_from_files)
{
    char dir[] = "/tmp/fm-cli-args-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char text[600], json[600], big[600], line[2000];
    snprintf(text, sizeof text, "%s/summary with blank.txt", dir);
    snprintf(json, sizeof json, "%s/args.json", dir);
    snprintf(big, sizeof big, "%s/big", dir);
    FILE *f = fopen(text, "w");
    fputs("GPU 3 fell off the bus\nsecond line\n", f);
    fclose(f);
    f = fopen(json, "w");
    fputs("{\"node\": \"gpu-a01\", \"limit\": 2}\n", f);
    fclose(f);
    f = fopen(big, "w");
    for (unsigned i = 0; i <= CLI_MAX_VALUE_FILE; i += 8)
        fputs("xxxxxxx\n", f);
    fclose(f);
    /* One trailing newline goes; the rest of the text stays as written. */
    snprintf(line, sizeof line, "summary=@'%s' --args @%s", text, json);
    args_are(line, "{\"summary\": \"GPU 3 fell off the bus\\nsecond line\", \"node\": \"gpu-a01\","
                   " \"limit\": 2}");
    snprintf(line, sizeof line, "signals=@%s", json);
    args_are(line, "{\"signals\": {\"node\": \"gpu-a01\", \"limit\": 2}}");
    char err[256];
    snprintf(line, sizeof line, "x=@%s/missing", dir);
    ck_assert_ptr_null(parse_line(line, NULL, false, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "cannot open"));
    snprintf(line, sizeof line, "x=@%s", big);
    ck_assert_ptr_null(parse_line(line, NULL, false, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "larger than"));
    unlink(text);
    unlink(json);
    unlink(big);
    rmdir(dir);
}
END_TEST

START_TEST(args_from_stdin)
{
    char in[] = "{\"limit\": 3, \"tool\": \"fleet_status\"}\n";
    FILE *f = fmemopen(in, strlen(in), "r");
    char err[256];
    json_t *got = parse_line("--args - limit=4", f, true, err, sizeof err);
    fclose(f);
    ck_assert_ptr_nonnull(got);
    ck_assert_int_eq(json_integer_value(json_object_get(got, "limit")), 4);
    ck_assert_str_eq(json_string_value(json_object_get(got, "tool")), "fleet_status");
    json_decref(got);
    /* The shell's standard input is the operator's typing. */
    f = fmemopen(in, strlen(in), "r");
    ck_assert_ptr_null(parse_line("--args -", f, false, err, sizeof err));
    fclose(f);
    ck_assert_ptr_nonnull(strstr(err, "--args @FILE"));
    char arr[] = "[1]";
    f = fmemopen(arr, strlen(arr), "r");
    ck_assert_ptr_null(parse_line("--args -", f, true, err, sizeof err));
    fclose(f);
    ck_assert_ptr_nonnull(strstr(err, "not a JSON object"));
}
END_TEST

START_TEST(bad_words)
{
    char err[256];
    ck_assert_ptr_null(parse_line("summary=GPU 3", NULL, false, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "'3' is not key=value"));
    ck_assert_ptr_nonnull(strstr(err, "key=\"a b\""));
    ck_assert_ptr_null(parse_line("=x", NULL, false, err, sizeof err));
    ck_assert_ptr_null(parse_line("--args", NULL, false, err, sizeof err));
    ck_assert_ptr_null(parse_line("--args '{bad'", NULL, false, err, sizeof err));
}
END_TEST

static bool secret(const char *line)
{
    cli_words w;
    ck_assert_int_eq(cli_words_split(line, false, &w, NULL, 0), 0);
    bool s = cli_words_secret(w.argc, w.argv);
    cli_words_free(&w);
    return s;
}

START_TEST(secrets_stay_out_of_history)
{
    ck_assert(secret("approve pl-0123456789abcdef --key /k.pem --approver alice"));
    ck_assert(secret("approve pl-1 --key=/k.pem"));
    ck_assert(secret("x --token-file /t"));
    ck_assert(secret("call t api_token=abc"));
    ck_assert(secret("call t password='p w'"));
    ck_assert(secret("call t auth=eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhIn0.c2ln"));
    ck_assert(secret("call t h='Bearer abc'"));
    ck_assert(!secret("call ticket_create summary=\"GPU 3 fell off the bus\" severity=high"));
    ck_assert(!secret("describe node_drain"));
}
END_TEST

START_TEST(quote_round_trip)
{
    const char *const samples[] = {"plain-1.2", "GPU 3 fell", "it's", "a\"b\\c $x", "", "\t"};
    for (size_t i = 0; i < sizeof samples / sizeof *samples; i++) {
        char *q = cli_quote_word(samples[i]);
        cli_words w;
        ck_assert_int_eq(cli_words_split(q, false, &w, NULL, 0), 0);
        ck_assert_int_eq(w.argc, 1);
        ck_assert_str_eq(w.argv[0], samples[i]);
        cli_words_free(&w);
        free(q);
    }
    char *q = cli_quote_word("plain-1.2");
    ck_assert_str_eq(q, "plain-1.2");
    free(q);
}
END_TEST

/* What print writes for the JSON text in, not on a terminal (new). */
static char *printed_by(void (*print)(FILE *, const json_t *), const char *json)
{
    json_t *v = json_loads(json, 0, NULL);
    ck_assert_ptr_nonnull(v);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    print(f, v);
    fclose(f);
    json_decref(v);
    return buf;
}

static char *printed(const char *json)
{
    return printed_by(cli_print_structured, json);
}

START_TEST(cells_are_short_and_inert)
{
    char out[41];
    json_t *v = json_string("a\033[2Jb\nc\x7f");
    cli_cell(v, out, 40);
    ck_assert_str_eq(out, "a [2Jb c "); /* no escape reaches the terminal */
    json_decref(v);
    v = json_string("0123456789abcdef");
    cli_cell(v, out, 10);
    ck_assert_str_eq(out, "0123456...");
    json_decref(v);
    v = json_loads("[\"a\", 1, true]", 0, NULL);
    cli_cell(v, out, 40);
    ck_assert_str_eq(out, "a,1,true");
    json_decref(v);
    v = json_loads("{\"rack\": \"r01\", \"gpus\": 8}", 0, NULL);
    cli_cell(v, out, 40);
    ck_assert_str_eq(out, "rack=r01 gpus=8");
    json_decref(v);
    /* A cut never splits a UTF-8 character. */
    v = json_string("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9");
    cli_cell(v, out, 6);
    ck_assert_str_eq(out, "\xc3\xa9...");
    json_decref(v);
}
END_TEST

START_TEST(facts_first_then_tables)
{
    char *s = printed("{\"rows\": [{\"id\": 1, \"tool\": \"fleet_status\"},"
                      " {\"id\": 22, \"tool\": \"x\", \"node\": \"gpu-a01\"}],"
                      " \"count\": 2, \"counts\": {\"IDLE\": 7}, \"empty\": [],"
                      " \"more\": {\"deep\": {\"a\": 1}, \"n\": 3}}");
    ck_assert_str_eq(s, "count    2\n"
                        "counts   IDLE=7\n"
                        "empty    -\n"
                        "\n"
                        "rows (2)\n"
                        "  id  tool          node\n"
                        "  1   fleet_status\n"
                        "  22  x             gpu-a01\n"
                        "more:\n"
                        "  n      3\n"
                        "  deep   a=1\n");
    free(s);
}
END_TEST

START_TEST(describe_table)
{
    char *buf = printed_by(
        cli_print_tool,
        "{\"name\": \"ticket_create\", \"title\": \"Open a ticket\", \"_meta\": {\"autonomy\":"
        " \"hitl\"}, \"inputSchema\": {\"type\": \"object\", \"required\": [\"node\"],"
        " \"properties\": {\"node\": {\"type\": \"string\", \"description\": \"a node\"},"
        " \"severity\": {\"type\": \"string\", \"enum\": [\"high\", \"low\"], \"default\": "
        "\"low\"},"
        " \"labels\": {\"type\": \"array\", \"items\": {\"type\": \"string\"}}}}}");
    ck_assert_ptr_nonnull(
        strstr(buf, "  autonomy:  hitl\n  the gate asks for: a plan and a signed approval"));
    ck_assert_ptr_nonnull(strstr(buf,
                                 "  name      type      required  enum      default  description\n"
                                 "  node      string    yes                          a node\n"
                                 "  severity  string              high,low  low\n"
                                 "  labels    string[]\n"));
    free(buf);
}
END_TEST

static Suite *cli_args_suite(void)
{
    Suite *s = suite_create("cli_args");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, split_like_a_shell);
    tcase_add_test(tc, strict_refuses_open_quotes);
    tcase_add_test(tc, partial_for_completion);
    tcase_add_test(tc, typed_values);
    tcase_add_test(tc, values_from_files);
    tcase_add_test(tc, args_from_stdin);
    tcase_add_test(tc, bad_words);
    tcase_add_test(tc, secrets_stay_out_of_history);
    tcase_add_test(tc, quote_round_trip);
    suite_add_tcase(s, tc);
    TCase *fmt = tcase_create("format");
    tcase_add_test(fmt, cells_are_short_and_inert);
    tcase_add_test(fmt, facts_first_then_tables);
    tcase_add_test(fmt, describe_table);
    suite_add_tcase(s, fmt);
    return s;
}

FM_TEST_MAIN(cli_args_suite)
