/* fleetmcp store migrate: a SQLite store copied into an empty PostgreSQL
 * database with its audit chain and key (src/store/migrate.c). */
#ifndef FM_STORE_MIGRATE_H
#define FM_STORE_MIGRATE_H

#include <stdint.h>

#include "fleetmcp/fm_error.h"

/* from: a SQLite path; to: a postgresql:// URL.  rows: rows copied;
 * verified: audit rows verified on the copy.  0, or -1 with err. */
int fm_store_migrate_copy(const char *from, const char *to, int64_t *rows, int64_t *verified,
                          fm_err *err);

#endif
