/* The error vocabulary and the man page stay in step (like curl's
 * test1477): every code has a word, words are unique, and the ERRORS
 * section of man/fleetmcp.1 lists exactly those words, in code order. */
#include <stdbool.h>
#include <string.h>

#include "fleetmcp/fm_error.h"
#include "fm_test.h"

#define MAN "man/fleetmcp.1"

/* The words of the .TP/.B entries in the ERRORS section, in order. */
static size_t man_words(char words[][32], size_t max)
{
    FILE *f = fopen(MAN, "r");
    ck_assert_msg(f != NULL, "%s: not found (run the unit tests from the source tree)", MAN);
    char line[512];
    bool in = false, tp = false;
    size_t n = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (!strncmp(line, ".SH ", 4)) {
            in = !strcmp(line, ".SH ERRORS");
            continue;
        }
        if (!in) continue;
        if (tp && !strncmp(line, ".B ", 3)) {
            ck_assert_int_lt(n, max);
            snprintf(words[n++], 32, "%.31s", line + 3);
        }
        tp = !strcmp(line, ".TP");
    }
    fclose(f);
    return n;
}

START_TEST(every_code_has_a_unique_word)
{
    for (int c = 1; c <= FM_ERR_LAST; c++) {
        const char *w = fm_strerror((fm_code)c);
        ck_assert_str_ne(w, "UNKNOWN");
        for (size_t i = 0; w[i]; i++)
            ck_assert(w[i] >= 'A' && w[i] <= 'Z');
        for (int d = 1; d < c; d++)
            ck_assert_str_ne(w, fm_strerror((fm_code)d));
    }
    ck_assert_str_eq(fm_strerror(FM_OK), "OK");
    ck_assert_str_eq(fm_strerror((fm_code)(FM_ERR_LAST + 1)), "UNKNOWN");
}
END_TEST

START_TEST(man_page_lists_every_word)
{
    char words[64][32];
    size_t n = man_words(words, 64);
    ck_assert_msg(n == (size_t)FM_ERR_LAST, "%s ERRORS lists %zu words, fm_strerror has %d", MAN, n,
                  FM_ERR_LAST);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(!strcmp(words[i], fm_strerror((fm_code)(i + 1))),
                      "%s ERRORS entry %zu is %s, code %zu is %s", MAN, i + 1, words[i], i + 1,
                      fm_strerror((fm_code)(i + 1)));
}
END_TEST

static Suite *errors_suite(void)
{
    Suite *s = suite_create("errors");
    TCase *tc = tcase_create("vocabulary");
    tcase_add_test(tc, every_code_has_a_unique_word);
    tcase_add_test(tc, man_page_lists_every_word);
    suite_add_tcase(s, tc);
    return s;
}

FM_TEST_MAIN(errors_suite)
