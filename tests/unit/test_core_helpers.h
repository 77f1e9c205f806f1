/* A server context on an in-memory store with replies captured through a
 * pipe, for dispatch, gate and audit tests. */
#ifndef TEST_CORE_HELPERS_H
#define TEST_CORE_HELPERS_H

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fleetmcp/fm_mcp.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_transport.h"

typedef struct test_server {
    fm_ctx ctx;
    fm_transport tx;
    int rd; /* read end of the reply pipe */
    char cfgpath[64];
} test_server;

/* The same on the store named store (a file shared with a child). */
static inline void ts_open_store(test_server *t, const char *yaml, const char *store)
{
    memset(t, 0, sizeof *t);
    const char *cfg = NULL;
    if (yaml) {
        snprintf(t->cfgpath, sizeof t->cfgpath, "/tmp/fm-unit-XXXXXX");
        int fd = mkstemp(t->cfgpath);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, yaml, strlen(yaml)), (ssize_t)strlen(yaml));
        close(fd);
        cfg = t->cfgpath;
    }
    unsetenv("FLEETMCP_CONFIG");
    unsetenv("FLEETMCP_DB");
    fm_err err = {0};
    int rc = fm_ctx_open(&t->ctx, cfg, store, &err);
    ck_assert_msg(rc == 0, "fm_ctx_open: %s", err.text);
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
    t->rd = p[0];
    fm_tx_init(&t->tx, -1, p[1], 1u << 20);
    t->ctx.tx = &t->tx;
}

/* The one value a query returns (a count, a sum). */
static inline long long ts_scalar(fm_db *db, const char *sql)
{
    fm_db_stmt *s;
    ck_assert_msg(fm_db_prepare_v2(db, sql, -1, &s, NULL) == FM_DB_OK, "%s", sql);
    ck_assert_int_eq(fm_db_step(s), FM_DB_ROW);
    long long n = fm_db_column_int64(s, 0);
    fm_db_finalize(s);
    return n;
}

static inline void ts_open(test_server *t, const char *yaml)
{
    ts_open_store(t, yaml, fm_test_store(":memory:"));
}

static inline void ts_close(test_server *t)
{
    close(t->tx.out_fd);
    close(t->rd);
    fm_tx_free(&t->tx);
    t->ctx.tx = NULL;
    fm_ctx_close(&t->ctx);
    if (t->cfgpath[0]) unlink(t->cfgpath);
}

/* Sends one line, returns the one reply (new) or NULL if none. */
static inline json_t *ts_rpc(test_server *t, const char *line)
{
    fm_mcp_handle_line(&t->ctx, line, strlen(line));
    static char buf[1 << 20];
    ssize_t n = read(t->rd, buf, sizeof buf - 1);
    if (n <= 0) return NULL;
    buf[n] = '\0';
    return json_loads(buf, 0, NULL);
}

static inline void ts_init(test_server *t)
{
    json_t *r = ts_rpc(t, "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":"
                          "{\"protocolVersion\":\"2025-11-25\",\"clientInfo\":{\"name\":\"unit\","
                          "\"version\":\"1\"}}}");
    ck_assert_ptr_nonnull(r);
    json_decref(r);
}

/* tools/call name with args JSON; returns the result object (new). */
static inline json_t *ts_call(test_server *t, const char *name, const char *args)
{
    char line[4096];
    snprintf(line, sizeof line,
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"%s\","
             "\"arguments\":%s}}",
             name, args);
    json_t *r = ts_rpc(t, line);
    ck_assert_ptr_nonnull(r);
    json_t *res = json_incref(json_object_get(r, "result"));
    json_decref(r);
    return res;
}

static inline const char *ts_text(const json_t *res)
{
    return json_string_value(
        json_object_get(json_array_get(json_object_get(res, "content"), 0), "text"));
}

#endif
