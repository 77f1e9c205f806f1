# The mechanical sqlite3 -> fm_db mapping of include/fleetmcp/fm_db.h:
#   sed -i -E -f tools/sqlite-to-fm-db.sed FILE.c
s|#include <sqlite3.h>|#include "fleetmcp/fm_db.h"|
s/\bsqlite3_/fm_db_/g
s/\bSQLITE_/FM_DB_/g
s/\bsqlite3\b/fm_db/g
