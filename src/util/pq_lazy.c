/* libpq, loaded on first use.
 *
 * Linked, libpq maps itself and its TLS, Kerberos and LDAP libraries at
 * every start (libcrypto among them, which crypto_lazy.c keeps off the
 * start), yet only a store configured as postgresql:// ever calls it.  So
 * the entry points src/store/db_pg.c calls are defined here and forward
 * to the real library, loaded under pthread_once the first time one of
 * them is called.  No library fleetmcp links calls libpq, so wrappers
 * named like its functions take no one else's calls. */
#include <libpq-fe.h>
#include <stddef.h>

#include "lazy.h"

#define FM_PQ_SONAME "libpq.so.5"

/* X(return type, name, parameters, arguments, value if not loadable);
 * V(name, parameters, arguments) for functions returning nothing. */
#define FM_PQ_FUNCS(X, V)                                                                          \
    X(PGconn *, PQconnectdbParams,                                                                 \
      (const char *const *keywords, const char *const *values, int expand_dbname),                 \
      (keywords, values, expand_dbname), NULL)                                                     \
    V(PQfinish, (PGconn * conn), (conn))                                                           \
    V(PQreset, (PGconn * conn), (conn))                                                            \
    X(ConnStatusType, PQstatus, (const PGconn *conn), (conn), CONNECTION_BAD)                      \
    X(PGTransactionStatusType, PQtransactionStatus, (const PGconn *conn), (conn), PQTRANS_UNKNOWN) \
    X(char *, PQerrorMessage, (const PGconn *conn), (conn), NULL)                                  \
    X(char *, PQhost, (const PGconn *conn), (conn), NULL)                                          \
    X(char *, PQport, (const PGconn *conn), (conn), NULL)                                          \
    X(PQnoticeProcessor, PQsetNoticeProcessor, (PGconn * conn, PQnoticeProcessor proc, void *arg), \
      (conn, proc, arg), NULL)                                                                     \
    X(PGresult *, PQexec, (PGconn * conn, const char *query), (conn, query), NULL)                 \
    X(PGresult *, PQexecParams,                                                                    \
      (PGconn * conn, const char *command, int nParams, const Oid *paramTypes,                     \
       const char *const *paramValues, const int *paramLengths, const int *paramFormats,           \
       int resultFormat),                                                                          \
      (conn, command, nParams, paramTypes, paramValues, paramLengths, paramFormats, resultFormat), \
      NULL)                                                                                        \
    X(PGresult *, PQprepare,                                                                       \
      (PGconn * conn, const char *stmtName, const char *query, int nParams,                        \
       const Oid *paramTypes),                                                                     \
      (conn, stmtName, query, nParams, paramTypes), NULL)                                          \
    X(PGresult *, PQdescribePrepared, (PGconn * conn, const char *stmt), (conn, stmt), NULL)       \
    X(PGresult *, PQmakeEmptyPGresult, (PGconn * conn, ExecStatusType status), (conn, status),     \
      NULL)                                                                                        \
    V(PQclear, (PGresult * res), (res))                                                            \
    X(ExecStatusType, PQresultStatus, (const PGresult *res), (res), PGRES_FATAL_ERROR)             \
    X(char *, PQresultErrorMessage, (const PGresult *res), (res), NULL)                            \
    X(char *, PQresultErrorField, (const PGresult *res, int fieldcode), (res, fieldcode), NULL)    \
    X(char *, PQcmdTuples, (PGresult * res), (res), NULL)                                          \
    X(int, PQntuples, (const PGresult *res), (res), 0)                                             \
    X(int, PQnfields, (const PGresult *res), (res), 0)                                             \
    X(char *, PQfname, (const PGresult *res, int field_num), (res, field_num), NULL)               \
    X(Oid, PQftype, (const PGresult *res, int field_num), (res, field_num), 0)                     \
    X(char *, PQgetvalue, (const PGresult *res, int tup_num, int field_num),                       \
      (res, tup_num, field_num), NULL)                                                             \
    X(int, PQgetisnull, (const PGresult *res, int tup_num, int field_num),                         \
      (res, tup_num, field_num), 1)                                                                \
    X(int, PQgetlength, (const PGresult *res, int tup_num, int field_num),                         \
      (res, tup_num, field_num), 0)                                                                \
    X(PGresult *, PQgetResult, (PGconn * conn), (conn), NULL)                                      \
    X(int, PQsendQueryParams,                                                                      \
      (PGconn * conn, const char *command, int nParams, const Oid *paramTypes,                     \
       const char *const *paramValues, const int *paramLengths, const int *paramFormats,           \
       int resultFormat),                                                                          \
      (conn, command, nParams, paramTypes, paramValues, paramLengths, paramFormats, resultFormat), \
      0)                                                                                           \
    X(int, PQsendPrepare,                                                                          \
      (PGconn * conn, const char *stmtName, const char *query, int nParams,                        \
       const Oid *paramTypes),                                                                     \
      (conn, stmtName, query, nParams, paramTypes), 0)                                             \
    X(int, PQsendQueryPrepared,                                                                    \
      (PGconn * conn, const char *stmtName, int nParams, const char *const *paramValues,           \
       const int *paramLengths, const int *paramFormats, int resultFormat),                        \
      (conn, stmtName, nParams, paramValues, paramLengths, paramFormats, resultFormat), 0)         \
    X(int, PQenterPipelineMode, (PGconn * conn), (conn), 0)                                        \
    X(int, PQexitPipelineMode, (PGconn * conn), (conn), 0)                                         \
    X(int, PQpipelineSync, (PGconn * conn), (conn), 0)                                             \
    X(unsigned char *, PQunescapeBytea, (const unsigned char *strtext, size_t *retbuflen),         \
      (strtext, retbuflen), NULL)

FM_LAZY_LIBRARY(FM_PQ_FUNCS, FM_PQ_SONAME, "a PostgreSQL store", "libpq5")
