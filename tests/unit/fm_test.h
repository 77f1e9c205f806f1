/* Shared scaffolding for the Check unit tests: each tests/unit/test_X.c
 * defines one suite and ends with FM_TEST_MAIN(x_suite). */
#ifndef FM_TEST_H
#define FM_TEST_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Makes path (a "/tmp/fm-...-XXXXXX" buffer) name a new, empty file for a
 * file-backed store. */
static inline void fm_test_temp_db(char *path)
{
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
}

/* Removes a store, whatever SQLite kept beside it and the audit chain's
 * key and anchor. */
static inline void fm_test_unlink_db(const char *path)
{
    static const char *const suffix[] = {"", "-wal", "-shm", "-journal", ".audit-key",
                                         ".audit-anchor"};
    for (size_t i = 0; i < sizeof suffix / sizeof *suffix; i++) {
        char p[600];
        snprintf(p, sizeof p, "%s%s", path, suffix[i]);
        unlink(p);
    }
}

#define FM_TEST_MAIN(suite_fn)                                                                     \
    int main(void)                                                                                 \
    {                                                                                              \
        SRunner *sr = srunner_create(suite_fn());                                                  \
        srunner_run_all(sr, CK_NORMAL);                                                            \
        int failed = srunner_ntests_failed(sr);                                                    \
        srunner_free(sr);                                                                          \
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;                                               \
    }

#endif
