/* The HTTP exchange (both protocol eras, no sockets), sealed state, and
 * the content provider, through fm_mcp_http_exchange. */
#include "fleetmcp/fm_content.h"
#include "fleetmcp/fm_jsonrpc.h"
#include "fleetmcp/fm_transport.h"
#include "fleetmcp/fm_util.h"
#include "fm_test.h"
#include "test_core_helpers.h"

#define META                                                                                       \
    "\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\","                       \
    "\"io.modelcontextprotocol/clientCapabilities\":{}}"

typedef struct {
    int status;
    json_t *reply; /* the last message (new) */
    size_t count;  /* messages sent */
    char *session;
} answer;

static answer ex(test_server *t, const char *body, const char *version, const char *session,
                 const char *method, const char *name)
{
    fm_mcp_http x = {.body = body,
                     .len = strlen(body),
                     .version_hdr = version,
                     .session_hdr = session,
                     .method_hdr = method,
                     .name_hdr = name};
    fm_mcp_http_exchange(&t->ctx, &x);
    answer a = {.status = x.status, .count = json_array_size(x.out), .session = x.session_id};
    a.reply = json_incref(json_array_get(x.out, a.count ? a.count - 1 : 0));
    json_decref(x.out);
    ck_assert_ptr_null(t->ctx.tx); /* the collecting transport is gone */
    return a;
}

static int err_code(const answer *a)
{
    return (int)json_integer_value(json_object_get(json_object_get(a->reply, "error"), "code"));
}

static const json_t *result(const answer *a)
{
    return json_object_get(a->reply, "result");
}

static void done(answer *a)
{
    json_decref(a->reply);
    free(a->session);
}

START_TEST(sealed_state)
{
    test_server t;
    ts_open(&t, NULL);
    fm_err err = {0};
    json_t *p = json_pack("{s:s, s:i}", "k", "x", "n", 42);
    char *tok = fm_state_seal(&t.ctx, p, &err);
    ck_assert_ptr_nonnull(tok);
    json_t *back = fm_state_open(&t.ctx, tok, &err);
    ck_assert(json_equal(p, back));
    json_decref(back);
    /* One flipped character anywhere is refused. */
    for (size_t i = 0, n = strlen(tok); i < n; i += 7) {
        char saved = tok[i];
        tok[i] = saved == 'A' ? 'B' : 'A';
        fm_err e2 = {0};
        ck_assert_ptr_null(fm_state_open(&t.ctx, tok, &e2));
        ck_assert_int_eq(e2.code, FM_ERR_INVALID);
        tok[i] = saved;
    }
    ck_assert_ptr_null(fm_state_open(&t.ctx, "", NULL));
    ck_assert_ptr_null(fm_state_open(&t.ctx, "abc.def", NULL));
    ck_assert_ptr_null(fm_state_open(&t.ctx, NULL, NULL));
    free(tok);
    json_decref(p);
    ts_close(&t);
}
END_TEST

START_TEST(stateful_session)
{
    test_server t;
    ts_open(&t, NULL);
    fm_transport *saved = t.ctx.tx;
    t.ctx.tx = NULL;
    answer a = ex(&t,
                  "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
                  "\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},\"clientInfo\":"
                  "{\"name\":\"ux\",\"version\":\"2\"}}}",
                  NULL, NULL, NULL, NULL);
    ck_assert_int_eq(a.status, 200);
    ck_assert_ptr_nonnull(a.session);
    ck_assert_str_eq(json_string_value(json_object_get(result(&a), "protocolVersion")),
                     "2025-06-18");
    char sid[1024];
    snprintf(sid, sizeof sid, "%s", a.session);
    done(&a);
    /* The process's own session is untouched by the exchange. */
    ck_assert(!t.ctx.session.initialized);

    a = ex(&t, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}", "2025-06-18", sid, NULL, NULL);
    ck_assert_int_eq(a.status, 200);
    ck_assert(json_is_object(result(&a)));
    done(&a);
    a = ex(&t, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}", NULL, NULL, NULL, NULL);
    ck_assert_int_eq(a.status, 400);
    done(&a);
    sid[strlen(sid) - 1] ^= 1;
    a = ex(&t, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"ping\"}", NULL, sid, NULL, NULL);
    ck_assert_int_eq(a.status, 404);
    ck_assert_int_eq(json_integer_value(json_object_get(a.reply, "id")), 4);
    done(&a);
    sid[strlen(sid) - 1] ^= 1;
    a = ex(&t, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"ping\"}", "2025-11-25", sid, NULL, NULL);
    ck_assert_int_eq(a.status, 400);
    done(&a);
    a = ex(&t, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}", NULL, sid, NULL,
           NULL);
    ck_assert_int_eq(a.status, 202);
    ck_assert_uint_eq(a.count, 0);
    done(&a);

    /* A log level set on the session is kept for its next requests. */
    a = ex(&t,
           "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"logging/setLevel\",\"params\":"
           "{\"level\":\"debug\"}}",
           NULL, sid, NULL, NULL);
    ck_assert_int_eq(a.status, 200);
    done(&a);
    a = ex(&t,
           "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{\"name\":"
           "\"runbook_get\",\"arguments\":{\"id\":\"nope\"}}}",
           NULL, sid, NULL, NULL);
    ck_assert_int_eq(a.status, 200);
    /* notifications/message first (the gate or the tool logs at debug+), then the reply */
    ck_assert_uint_ge(a.count, 1);
    ck_assert_int_eq(json_integer_value(json_object_get(a.reply, "id")), 7);
    done(&a);

    a = ex(&t, "{nope", NULL, sid, NULL, NULL);
    ck_assert_int_eq(a.status, 400);
    ck_assert_int_eq(err_code(&a), FM_RPC_PARSE_ERROR);
    done(&a);
    a = ex(&t, "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]", NULL, sid, NULL, NULL);
    ck_assert_int_eq(a.status, 400);
    done(&a);
    t.ctx.tx = saved;
    ts_close(&t);
}
END_TEST

START_TEST(stateless_requests)
{
    test_server t;
    ts_open(&t, NULL);
    fm_transport *saved = t.ctx.tx;
    t.ctx.tx = NULL;
    answer a = ex(
        &t, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"server/discover\",\"params\":{" META "}}",
        "2026-07-28", NULL, "server/discover", NULL);
    ck_assert_int_eq(a.status, 200);
    ck_assert_ptr_null(a.session);
    ck_assert_str_eq(json_string_value(json_object_get(result(&a), "resultType")), "complete");
    ck_assert(
        json_is_object(json_object_get(json_object_get(result(&a), "capabilities"), "prompts")));
    done(&a);

    a = ex(&t, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\",\"params\":{" META "}}",
           NULL, NULL, "tools/list", NULL);
    ck_assert_int_eq(a.status, 400);
    ck_assert_int_eq(err_code(&a), FM_RPC_HEADER_MISMATCH);
    done(&a);
    a = ex(&t, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/list\",\"params\":{" META "}}",
           "2026-07-28", NULL, "tools/call", NULL);
    ck_assert_int_eq(err_code(&a), FM_RPC_HEADER_MISMATCH);
    done(&a);
    a = ex(&t,
           "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\",\"params\":{\"name\":"
           "\"fleet_status\"," META "}}",
           "2026-07-28", NULL, "tools/call", "other");
    ck_assert_int_eq(err_code(&a), FM_RPC_HEADER_MISMATCH);
    done(&a);
    a = ex(&t,
           "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/list\",\"params\":{\"_meta\":{"
           "\"io.modelcontextprotocol/protocolVersion\":\"1999-01-01\","
           "\"io.modelcontextprotocol/clientCapabilities\":{}}}}",
           "1999-01-01", NULL, "tools/list", NULL);
    ck_assert_int_eq(a.status, 400);
    ck_assert_int_eq(err_code(&a), FM_RPC_UNSUPPORTED_VERSION);
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(json_object_get(a.reply, "error"), "data"), "requested")),
                     "1999-01-01");
    done(&a);
    a = ex(&t, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"ping\",\"params\":{" META "}}",
           "2026-07-28", NULL, "ping", NULL);
    ck_assert_int_eq(a.status, 404);
    ck_assert_int_eq(err_code(&a), FM_RPC_METHOD_NOT_FOUND);
    done(&a);
    a = ex(&t, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/list\",\"params\":{}}",
           "2026-07-28", NULL, "tools/list", NULL);
    ck_assert_int_eq(a.status, 400);
    ck_assert_int_eq(err_code(&a), FM_RPC_INVALID_PARAMS);
    done(&a);
    a = ex(&t, "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"tools/list\",\"params\":{" META "}}",
           "2026-07-28", NULL, "tools/list", NULL);
    ck_assert_int_eq(a.status, 200);
    ck_assert_int_eq(json_integer_value(json_object_get(result(&a), "ttlMs")), 60000);
    ck_assert_str_eq(json_string_value(json_object_get(result(&a), "cacheScope")), "private");
    done(&a);
    /* A forged requestState is refused before any handler runs. */
    a = ex(&t,
           "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/call\",\"params\":{\"name\":"
           "\"fleet_status\",\"requestState\":\"e30.00000000000000000000000000000000\"," META "}}",
           "2026-07-28", NULL, "tools/call", "fleet_status");
    ck_assert_int_eq(a.status, 400);
    ck_assert_int_eq(err_code(&a), FM_RPC_INVALID_PARAMS);
    done(&a);
    /* Outside a stateless request nothing can ask for input. */
    fm_err err = {0};
    ck_assert_ptr_null(fm_mcp_input_required(&t.ctx, json_object(), NULL, &err));
    ck_assert_int_eq(err.code, FM_ERR_UNAVAILABLE);
    t.ctx.tx = saved;
    ts_close(&t);
}
END_TEST

START_TEST(fleet_content)
{
    setenv("FLEETMCP_RUNBOOKS", "runbooks", 1);
    test_server t;
    ts_open(&t, NULL);
    const fm_content_ops *c = t.ctx.content;
    fm_err err = {0};
    json_t *list = c->resources(&t.ctx, &err);
    ck_assert_msg(list != NULL, "%s", err.text);
    ck_assert_uint_gt(json_array_size(list), 5);
    json_decref(list);
    long long ttl = -1;
    json_t *r = c->read(&t.ctx, "runbook://rb-gpu-fallen-off-bus", &ttl, &err);
    ck_assert_ptr_nonnull(r);
    ck_assert(strstr(json_string_value(json_object_get(json_array_get(r, 0), "text")),
                     "rb-gpu-fallen-off-bus"));
    ck_assert_int_gt(ttl, 0);
    json_decref(r);
    fm_err e2 = {0};
    ck_assert_ptr_null(c->read(&t.ctx, "runbook://../etc/passwd", &ttl, &e2));
    ck_assert_int_eq(e2.code, FM_ERR_NOT_FOUND);
    json_t *args = json_pack("{s:s}", "node", "gpu-a01");
    r = c->prompt(&t.ctx, "triage_node", args, &err);
    ck_assert_ptr_nonnull(r);
    json_decref(r);
    json_decref(args);
    json_t *ref = json_pack("{s:s, s:s}", "type", "ref/resource", "uri", "runbook://{id}");
    r = c->complete(&t.ctx, ref, "id", "rb-gpu-f");
    ck_assert_uint_eq(json_array_size(r), 1);
    json_decref(r);
    json_decref(ref);
    ts_close(&t);
}
END_TEST

/* tools/list lists each output schema's top level only; the whole one is
 * the resource fleetmcp://schemas/tools/NAME/output, the very schema the
 * server checks results against, for the tools the caller can see. */
START_TEST(tool_output_schema_resource)
{
    test_server t;
    ts_open(&t, "disabled_tools: [audit_query]\n");
    const fm_content_ops *c = t.ctx.content;
    long long ttl = -1;
    size_t read = 0;
    for (size_t i = 0; i < fm_tool_count; i++) {
        const fm_tool_def *d = &fm_tool_table[i];
        char uri[160];
        snprintf(uri, sizeof uri, "fleetmcp://schemas/tools/%s/output", d->name);
        fm_err err = {0};
        json_t *r = c->read(&t.ctx, uri, &ttl, &err);
        if (!strcmp(d->name, "audit_query") || (d->flags & FM_TOOL_CONTENT_RESULT)) {
            ck_assert_msg(!r && err.code == FM_ERR_NOT_FOUND, "%s: %s", d->name, err.text);
            json_decref(r);
            continue;
        }
        ck_assert_msg(r != NULL, "%s: %s", d->name, err.text);
        json_t *item = json_array_get(r, 0);
        ck_assert_str_eq(json_string_value(json_object_get(item, "uri")), uri);
        ck_assert_str_eq(json_string_value(json_object_get(item, "mimeType")),
                         "application/schema+json");
        json_t *served = json_loads(json_string_value(json_object_get(item, "text")), 0, NULL);
        json_t *whole = json_loads(d->output_schema, 0, NULL);
        ck_assert_msg(served && json_equal(served, whole), "%s: not the enforced schema", d->name);
        ck_assert_int_gt(ttl, 0);
        json_decref(served);
        json_decref(whole);
        json_decref(r);
        read++;
    }
    ck_assert_uint_ge(read, 25);
    static const char *const bad[] = {
        "fleetmcp://schemas/tools/diagnose/input",
        "fleetmcp://schemas/tools/diagnose/output/",
        "fleetmcp://schemas/tools/diagnose",
        "fleetmcp://schemas/tools//output",
        "fleetmcp://schemas/tools/../diagnose/output",
        "fleetmcp://schemas/tools/no_such/output",
        "fleetmcp://schemas/tools/"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/output"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        fm_err err = {0};
        ck_assert_msg(!c->read(&t.ctx, bad[i], &ttl, &err), "%s read", bad[i]);
        ck_assert_int_eq(err.code, FM_ERR_NOT_FOUND);
    }
    /* The template's {name} completes to the tools that have one. */
    json_t *ref = json_pack("{s:s, s:s}", "type", "ref/resource", "uri",
                            "fleetmcp://schemas/tools/{name}/output");
    json_t *names = c->complete(&t.ctx, ref, "name", "audit");
    ck_assert_uint_eq(json_array_size(names), 0); /* disabled: not there */
    json_decref(names);
    names = c->complete(&t.ctx, ref, "name", "diag");
    ck_assert_uint_eq(json_array_size(names), 1);
    ck_assert_str_eq(json_string_value(json_array_get(names, 0)), "diagnose");
    json_decref(names);
    json_decref(ref);
    json_t *tpl = c->templates(&t.ctx);
    bool listed = false;
    size_t k;
    json_t *v;
    json_array_foreach(tpl, k, v) listed |=
        !strcmp(fm_json_str(v, "uriTemplate", ""), "fleetmcp://schemas/tools/{name}/output");
    ck_assert(listed);
    json_decref(tpl);
    ts_close(&t);
}
END_TEST

/* Server-to-client requests over HTTP (src/mcp/backchannel.c), with a
 * stream that records what it is given and may answer at once, as a
 * client POSTing to another worker would (the answer goes through the
 * store either way). */
typedef struct {
    test_server *t;
    int calls;
    json_t *sent;       /* what went out on the stream (new) */
    const char *answer; /* the result to POST back, or NULL: stay silent */
    const char *as_sid; /* answer under this session id instead */
    int answer_status;  /* what fm_mcp_http_reply said */
} fake_client;

static int fake_stream(void *cls, const json_t *msgs)
{
    fake_client *f = cls;
    if (!msgs) return 0;
    f->calls++;
    json_array_extend(f->sent, (json_t *)msgs);
    if (!f->answer) return 0;
    const json_t *req = json_array_get(msgs, json_array_size(msgs) - 1);
    json_t *reply = json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", json_object_get(req, "id"),
                              "result", json_loads(f->answer, 0, NULL));
    char *text = json_dumps(reply, JSON_COMPACT);
    fm_session saved = f->t->ctx.session;
    if (f->as_sid) snprintf(f->t->ctx.session.id, sizeof f->t->ctx.session.id, "%s", f->as_sid);
    fm_err err = {0};
    f->answer_status = fm_mcp_http_reply(&f->t->ctx, reply, strlen(text), &err);
    f->t->ctx.session = saved;
    free(text);
    json_decref(reply);
    return 0;
}

static json_t *ask(test_server *t, fake_client *f, int waiters, int timeout_ms, fm_err *err)
{
    fm_transport tx, *saved = t->ctx.tx;
    ck_assert_int_eq(fm_tx_init_collect(&tx), 0);
    fm_mcp_http x = {.stream = fake_stream, .stream_cls = f, .stream_waiters = waiters};
    t->ctx.tx = &tx;
    t->ctx.xc = &x;
    json_t *res = fm_mcp_request(&t->ctx, "elicitation/create", json_pack("{s:s}", "message", "?"),
                                 timeout_ms, err);
    t->ctx.tx = saved;
    t->ctx.xc = NULL;
    fm_tx_free(&tx);
    return res;
}

static long long pending(test_server *t)
{
    return ts_scalar(t->ctx.store.db, "SELECT COUNT(*) FROM mcp_client_requests");
}

START_TEST(client_requests)
{
    test_server t;
    ts_open(&t, NULL);
    fm_session saved = t.ctx.session;
    snprintf(t.ctx.session.protocol, sizeof t.ctx.session.protocol, "2025-11-25");
    snprintf(t.ctx.session.id, sizeof t.ctx.session.id, "session-one");
    fake_client f = {.t = &t, .sent = json_array(), .answer = "{\"action\":\"accept\"}"};
    fm_err err = {0};
    json_t *res = ask(&t, &f, 1, 2000, &err);
    ck_assert_msg(res != NULL, "%s", err.text);
    ck_assert_int_eq(f.answer_status, 202);
    ck_assert_str_eq(fm_json_str(res, "action", ""), "accept");
    ck_assert_str_eq(fm_json_str(json_array_get(f.sent, 0), "method", ""), "elicitation/create");
    ck_assert_int_eq(pending(&t), 0);
    json_decref(res);

    /* Another session's answer reaches nothing; the call times out and
     * its row goes. */
    f.as_sid = "session-two";
    memset(&err, 0, sizeof err);
    ck_assert_ptr_null(ask(&t, &f, 1, 100, &err));
    ck_assert_int_eq(f.answer_status, 404);
    ck_assert_int_eq(err.code, FM_ERR_TIMEOUT);
    ck_assert_int_eq(pending(&t), 0);

    /* No free worker: refused before anything is sent. */
    f.as_sid = NULL;
    int calls = f.calls;
    memset(&err, 0, sizeof err);
    ck_assert_ptr_null(ask(&t, &f, 0, 100, &err));
    ck_assert_int_eq(err.code, FM_ERR_RATE_LIMITED);
    ck_assert_int_eq(f.calls, calls);

    /* An answer over the cap is refused. */
    json_t *big = json_pack("{s:s, s:s}", "jsonrpc", "2.0", "id", "fm-x");
    ck_assert_int_eq(fm_mcp_http_reply(&t.ctx, big, 70000, &err), 413);
    ck_assert_int_eq(fm_mcp_http_reply(&t.ctx, big, 100, &err), 404);
    json_decref(big);

    /* Without a stream (stdio-less tests, 2026-07-28, one worker) nothing is asked. */
    fm_transport tx, *stx = t.ctx.tx;
    fm_tx_init_collect(&tx);
    fm_mcp_http x = {0};
    t.ctx.tx = &tx;
    t.ctx.xc = &x;
    memset(&err, 0, sizeof err);
    ck_assert_ptr_null(fm_mcp_request(&t.ctx, "sampling/createMessage", json_object(), 100, &err));
    ck_assert_int_eq(err.code, FM_ERR_UNAVAILABLE);
    t.ctx.tx = stx;
    t.ctx.xc = NULL;
    fm_tx_free(&tx);
    json_decref(f.sent);
    t.ctx.session = saved;
    ts_close(&t);
}
END_TEST

static Suite *exchange_suite(void)
{
    Suite *s = suite_create("exchange");
    TCase *tc = tcase_create("http");
    tcase_add_test(tc, sealed_state);
    tcase_add_test(tc, stateful_session);
    tcase_add_test(tc, stateless_requests);
    tcase_add_test(tc, fleet_content);
    tcase_add_test(tc, tool_output_schema_resource);
    tcase_add_test(tc, client_requests);
    suite_add_tcase(s, tc);
    return s;
}

FM_TEST_MAIN(exchange_suite)
