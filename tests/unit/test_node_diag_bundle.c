/* node_diag_bundle through a fake executor (one more fm_exec_ops
 * instance) and a real store: the reply validates against the tool's
 * outputSchema, the bundle is stored with a matching sha256 and can be
 * loaded by the tickets subsystem, and errors are classified per node or
 * per section. */
#include "fleetmcp/fm_db.h"
#include <string.h>

#include "fleetmcp/fm_exec.h"
#include "fleetmcp/fm_gate.h"
#include "fleetmcp/fm_schema.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_tickets.h"
#include "fleetmcp/fm_util.h"
#include "fm_test.h"

#include "fm_tools.gen.h"

typedef struct fake {
    const char *out[FM_CMD_COUNT];
    int exit[FM_CMD_COUNT];
    fm_code fail[FM_CMD_COUNT]; /* run() fails with this code */
    int calls;
    char last_node[64];
} fake;

static int fake_run(void *st, const char *node, fm_cmd_id cmd, const fm_cmd_args *a,
                    fm_exec_result *out, fm_err *err)
{
    fake *f = st;
    memset(out, 0, sizeof *out);
    out->exit_status = -1;
    f->calls++;
    snprintf(f->last_node, sizeof f->last_node, "%s", node);
    if (f->fail[cmd])
        return fm_err_set(err, f->fail[cmd], "fake failure of %s", fm_cmd_name(cmd)), -1;
    const char *o = f->out[cmd] ? f->out[cmd] : "";
    out->out = strdup(o);
    out->out_len = strlen(o);
    out->err_out = strdup(f->exit[cmd] ? "something failed\n" : "");
    out->err_len = strlen(out->err_out);
    out->exit_status = f->exit[cmd];
    out->duration_ms = 5;
    return 0;
}

static void fake_close(void *st)
{
    (void)st;
}

static const struct fm_exec_ops fake_ops = {.name = "fake", .run = fake_run, .close = fake_close};

static fm_ctx ctx;
static fake f;

static const char NVSMI[] = "Attached GPUs                             : 2\n"
                            "Unable to determine the device handle for GPU 0000:18:00.0: Unknown "
                            "Error\n"
                            "GPU 00000000:2A:00.0\n"
                            "    Temperature\n"
                            "        GPU Current Temp                  : 41 C\n";
static const char XID[] = "2026-11-23T14:00:01+0000 n kernel: NVRM: Xid (PCI:0000:18:00): 79, "
                          "pid='<unknown>', name=<unknown>, GPU has fallen off the bus.\n";
static const char HEALTH[] = "{\"body\":{\"Overall Health\":{\"value\":\"Failure\"},\"GPU\":{"
                             "\"children\":{\"0\":{\"value\":\"Failure\",\"children\":{\"Errors\":"
                             "{\"children\":{\"Driver\":{\"value\":\"Failure\",\"overflow\":["
                             "\"fell off\"]}}}}}}}},\"header\":[\"Health Monitor Report\"]}";
static const char IB[] = "CA 'mlx5_0'\n\tPort 1:\n\t\tState: Active\n\t\tPhysical state: LinkUp\n"
                         "\t\tRate: 400\n";

static void setup(void)
{
    memset(&ctx, 0, sizeof ctx);
    memset(&f, 0, sizeof f);
    fm_err err = {0};
    ck_assert_int_eq(fm_store_open(&ctx.store, ":memory:", &err), 0);
    ctx.be.exec = &fake_ops;
    ctx.be.exec_st = &f;
    f.out[FM_CMD_NVSMI_QUERY] = NVSMI;
    f.exit[FM_CMD_NVSMI_QUERY] = 15;
    f.out[FM_CMD_KERNEL_XID] = XID;
    f.out[FM_CMD_DCGMI_HEALTH] = HEALTH;
    f.out[FM_CMD_IBSTAT] = IB;
}

static void teardown(void)
{
    fm_store_close(&ctx.store);
}

static json_t *call_tool(const char *args_json, fm_err *err)
{
    json_t *args = json_loads(args_json, 0, NULL);
    ck_assert_ptr_nonnull(args);
    fm_call c = {.ctx = &ctx, .args = args};
    fm_err_clear(err);
    json_t *out = fm_tool_node_diag_bundle(&c, err);
    json_decref(args);
    return out;
}

static void assert_valid_output(const json_t *out)
{
    const fm_tool_def *t = NULL;
    for (size_t i = 0; i < fm_tool_count; i++)
        if (!strcmp(fm_tool_table[i].name, "node_diag_bundle")) t = &fm_tool_table[i];
    ck_assert_ptr_nonnull(t);
    ck_assert(t->autonomy == FM_AUTONOMY_READ);
    ck_assert_uint_eq(t->flags, FM_TOOL_IDEMPOTENT | FM_TOOL_OPEN_WORLD);
    ck_assert_uint_eq(t->backends, FM_BACKEND_SSH);
    json_t *schema = json_loads(t->output_schema, 0, NULL);
    fm_err err = {0};
    ck_assert_msg(fm_schema_validate(schema, out, &err) == 0, "%s", err.text);
    json_decref(schema);
}

START_TEST(summary_stored_and_valid)
{
    fm_err err;
    json_t *out = call_tool("{\"node\": \"gpu-a01\"}", &err);
    ck_assert_msg(out != NULL, "%s", err.text);
    assert_valid_output(out);
    ck_assert_int_eq(f.calls, 4);
    ck_assert_str_eq(f.last_node, "gpu-a01");
    ck_assert_ptr_null(json_object_get(out, "raw"));
    json_t *s = json_object_get(out, "sections");
    json_t *nv = json_object_get(s, "nvidia_smi");
    ck_assert_int_eq(json_integer_value(json_object_get(nv, "exit_status")), 15);
    ck_assert_int_eq(json_integer_value(json_object_get(nv, "gpus_seen")), 1);
    /* healthy GPUs appear only as a temperature */
    ck_assert_int_eq(json_integer_value(json_array_get(json_object_get(nv, "temps_c"), 0)), 41);
    ck_assert_int_eq(json_array_size(json_object_get(nv, "gpus")), 0);
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(nv, "unreachable"), 0)),
                     "0000:18:00.0");
    ck_assert_str_eq(json_string_value(json_object_get(nv, "stderr")), "something failed\n");
    ck_assert_int_eq(json_integer_value(json_object_get(nv, "bytes")), (json_int_t)strlen(NVSMI));
    json_t *x = json_object_get(s, "kernel_xid");
    ck_assert_int_eq(
        json_integer_value(json_object_get(json_array_get(json_object_get(x, "xids"), 0), "xid")),
        79);
    ck_assert_str_eq(
        json_string_value(json_object_get(json_object_get(s, "dcgmi_health"), "overall")),
        "Failure");
    ck_assert_int_eq(json_array_size(json_object_get(json_object_get(s, "ibstat"), "ports")), 1);

    /* stored: sha256 over the body, raw text included there */
    char id[32];
    ck_assert_ptr_nonnull(json_string_value(json_object_get(out, "bundle_id")));
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(out, "bundle_id")));
    fm_db_stmt *st;
    ck_assert_int_eq(fm_db_prepare_v2(ctx.store.db,
                                      "SELECT node, sha256, body FROM diag_bundles WHERE id = ?",
                                      -1, &st, NULL),
                     FM_DB_OK);
    fm_db_bind_text(st, 1, id, -1, FM_DB_STATIC);
    ck_assert_int_eq(fm_db_step(st), FM_DB_ROW);
    ck_assert_str_eq((const char *)fm_db_column_text(st, 0), "gpu-a01");
    const char *body = (const char *)fm_db_column_text(st, 2);
    char sha[65];
    fm_sha256_hex(body, strlen(body), sha);
    ck_assert_str_eq((const char *)fm_db_column_text(st, 1), sha);
    ck_assert_str_eq(json_string_value(json_object_get(out, "sha256")), sha);
    json_t *doc = json_loads(body, 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(json_object_get(doc, "raw"), "ibstat"), "stdout")),
                     IB);
    json_decref(doc);
    size_t body_len = strlen(body);
    fm_db_finalize(st); /* body is gone from here on */

    /* the tickets subsystem reads it by the same id */
    char node[64];
    unsigned char *b = NULL;
    size_t blen = 0;
    fm_err_clear(&err);
    ck_assert_msg(fm_ticket_bundle_load(&ctx.store, id, node, sizeof node, &b, &blen, &err) == 0,
                  "%s", err.text);
    ck_assert_str_eq(node, "gpu-a01");
    ck_assert_uint_eq(blen, body_len);
    free(b);
    json_decref(out);

    /* a second bundle gets a new id */
    out = call_tool("{\"node\": \"gpu-a01\", \"raw\": true, \"xid_lines\": 0}", &err);
    ck_assert_ptr_nonnull(out);
    ck_assert_str_ne(json_string_value(json_object_get(out, "bundle_id")), id);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(out, "raw"), "ibstat")), IB);
    ck_assert_int_eq(json_array_size(json_object_get(
                         json_object_get(json_object_get(out, "sections"), "kernel_xid"), "last")),
                     0);
    assert_valid_output(out);
    json_decref(out);
}
END_TEST

START_TEST(node_level_error_stops_and_stores_nothing)
{
    fm_code codes[] = {FM_ERR_HOSTKEY, FM_ERR_AUTH, FM_ERR_UNAVAILABLE, FM_ERR_NOT_FOUND};
    for (size_t i = 0; i < 4; i++) {
        f.calls = 0;
        f.fail[FM_CMD_NVSMI_QUERY] = codes[i];
        fm_err err;
        json_t *out = call_tool("{\"node\": \"gpu-a01\"}", &err);
        ck_assert_ptr_null(out);
        ck_assert_int_eq(err.code, codes[i]);
        ck_assert_int_eq(f.calls, 1);
    }
    fm_db_stmt *st;
    /* the table may exist or not; either way, no row */
    if (fm_db_prepare_v2(ctx.store.db, "SELECT count(*) FROM diag_bundles", -1, &st, NULL) ==
        FM_DB_OK) {
        ck_assert_int_eq(fm_db_step(st), FM_DB_ROW);
        ck_assert_int_eq(fm_db_column_int(st, 0), 0);
        fm_db_finalize(st);
    }
}
END_TEST

START_TEST(section_timeout_is_recorded_others_kept)
{
    f.fail[FM_CMD_DCGMI_HEALTH] = FM_ERR_TIMEOUT;
    fm_err err;
    json_t *out = call_tool("{\"node\": \"gpu-a01\"}", &err);
    ck_assert_msg(out != NULL, "%s", err.text);
    assert_valid_output(out);
    json_t *h = json_object_get(json_object_get(out, "sections"), "dcgmi_health");
    ck_assert_int_eq(json_integer_value(json_object_get(h, "exit_status")), -1);
    ck_assert(strncmp(json_string_value(json_object_get(h, "error")), "TIMEOUT: ", 9) == 0);
    json_t *ib = json_object_get(json_object_get(out, "sections"), "ibstat");
    ck_assert_int_eq(json_integer_value(json_object_get(ib, "exit_status")), 0);
    ck_assert_int_eq(f.calls, 4);
    json_decref(out);
}
END_TEST

START_TEST(missing_backend_and_bad_node)
{
    /* The gate refuses the call before the handler when ssh is missing. */
    fm_err err = {0};
    int ti = -1;
    for (size_t i = 0; i < fm_tool_count; i++)
        if (fm_tool_table[i].handler == fm_tool_node_diag_bundle) ti = (int)i;
    ck_assert_int_ge(ti, 0);
    ctx.be.exec = NULL;
    ck_assert_int_eq(fm_gate_backends(&ctx, ti, &err), -1);
    ck_assert_int_eq(err.code, FM_ERR_NOT_CONFIGURED);
    ck_assert(strstr(err.text, "ssh") != NULL);
    ctx.be.exec = &fake_ops;
    fm_err_clear(&err);
    ck_assert_int_eq(fm_gate_backends(&ctx, ti, &err), 0);
    ck_assert_ptr_null(call_tool("{\"node\": \"a;b\"}", &err));
    ck_assert_int_eq(err.code, FM_ERR_INVALID);
    ck_assert_int_eq(f.calls, 0);
}
END_TEST

static Suite *node_diag_bundle_suite(void)
{
    Suite *s = suite_create("node_diag_bundle");
    TCase *tc = tcase_create("tool");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, summary_stored_and_valid);
    tcase_add_test(tc, node_level_error_stops_and_stores_nothing);
    tcase_add_test(tc, section_timeout_is_recorded_others_kept);
    tcase_add_test(tc, missing_backend_and_bad_node);
    suite_add_tcase(s, tc);
    return s;
}

FM_TEST_MAIN(node_diag_bundle_suite)
