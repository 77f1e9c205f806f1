/* Shared scaffolding for the Check unit tests: each tests/unit/test_X.c
 * defines one suite and ends with FM_TEST_MAIN(x_suite). */
#ifndef FM_TEST_H
#define FM_TEST_H

#include <check.h>
#include <stdlib.h>

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
