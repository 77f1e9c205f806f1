/* Shared scaffolding for the Check unit tests: each tests/unit/test_X.c
 * defines one suite and ends with FM_TEST_MAIN(x_suite). */
#ifndef FM_TEST_H
#define FM_TEST_H

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fleetmcp/fm_db.h"

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
    static const char *const suffix[] = {"",         "-wal",       "-shm",
                                         "-journal", ".audit-key", ".audit-anchor"};
    for (size_t i = 0; i < sizeof suffix / sizeof *suffix; i++) {
        char p[600];
        snprintf(p, sizeof p, "%s%s", path, suffix[i]);
        unlink(p);
    }
}

/* The store a test opens.  Without FM_TEST_PG: the SQLite path the test
 * names.  With FM_TEST_PG=postgresql://... (stage store-pg, which starts a
 * throwaway server): that database, so the same test runs on both. */
static inline const char *fm_test_target(const char *sqlite_path)
{
    const char *pg = getenv("FM_TEST_PG");
    return pg && *pg ? pg : sqlite_path;
}

/* fm_test_target, emptied first: a fresh store like a new SQLite file
 * (tables dropped, and the audit key and anchor in FLEETMCP_AUDIT_DIR
 * removed). */
static inline const char *fm_test_store(const char *sqlite_path)
{
    const char *pg = getenv("FM_TEST_PG");
    if (!pg || !*pg) return sqlite_path;
    fm_db *db = NULL;
    ck_assert_int_eq(fm_db_open(pg, &db), FM_DB_OK);
    ck_assert_int_eq(
        fm_db_exec(db, "DROP SCHEMA public CASCADE; CREATE SCHEMA public", NULL, NULL, NULL),
        FM_DB_OK);
    fm_db_close(db);
    const char *dir = getenv("FLEETMCP_AUDIT_DIR");
    ck_assert_msg(dir && *dir, "FM_TEST_PG needs FLEETMCP_AUDIT_DIR (a scratch directory)");
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        char p[600];
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    if (d) closedir(d);
    return pg;
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
