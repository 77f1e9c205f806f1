/* Parsers of the catalog commands' output (src/backends/exec_parse.c):
 * shapes from real tools, and hostile input (invalid UTF-8, NULs, long
 * lines, broken JSON) that must come out bounded and valid. */
#include "fleetmcp/fm_exec.h"

#include <stdlib.h>
#include <string.h>

#include "fm_test.h"

#define S(x) x, strlen(x)

static const char NVSMI[] =
    "\n==============NVSMI LOG==============\n\n"
    "Timestamp                                 : Mon Nov 23 14:29:11 2026\n"
    "Driver Version                            : 535.154.05\n\n"
    "Attached GPUs                             : 3\n"
    "Unable to determine the device handle for GPU 0000:18:00.0: Unknown Error\n"
    "GPU 00000000:2A:00.0\n"
    "    Product Name                          : NVIDIA H100 80GB HBM3\n"
    "    PCI\n"
    "        Bus Id                            : 00000000:2A:00.0\n"
    "    ECC Errors\n"
    "        Volatile\n"
    "            SRAM Correctable              : 0\n"
    "            SRAM Uncorrectable            : 1\n"
    "            DRAM Correctable              : 0\n"
    "            DRAM Uncorrectable            : 2\n"
    "        Aggregate\n"
    "            SRAM Uncorrectable            : 0\n"
    "            DRAM Uncorrectable            : 5\n"
    "    Remapped Rows\n"
    "        Correctable Error                 : 0\n"
    "        Uncorrectable Error               : 1\n"
    "        Pending                           : Yes\n"
    "        Remapping Failure Occurred        : No\n"
    "    Temperature\n"
    "        GPU Current Temp                  : 92 C\n"
    "    Processes                             : None\n\n"
    /* an older driver's layout */
    "GPU 00000000:3A:00.0\n"
    "    ECC Errors\n"
    "        Volatile\n"
    "            Single Bit\n"
    "                Total                     : 7\n"
    "            Double Bit\n"
    "                Device Memory             : 1\n"
    "                Total                     : 1\n"
    "    Temperature\n"
    "        GPU Current Temp                  : 40 C\n";

START_TEST(nvsmi_q_highlights)
{
    json_t *p = fm_parse_nvsmi_q(S(NVSMI), NULL, 0);
    ck_assert_int_eq(json_integer_value(json_object_get(p, "attached")), 3);
    ck_assert_int_eq(json_integer_value(json_object_get(p, "gpus_seen")), 2);
    json_t *g0 = json_array_get(json_object_get(p, "gpus"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(g0, "bus")), "00000000:2A:00.0");
    ck_assert_int_eq(json_integer_value(json_object_get(g0, "temp_c")), 92);
    ck_assert_int_eq(json_integer_value(json_object_get(g0, "ecc_dbe_vol")), 3);
    ck_assert_int_eq(json_integer_value(json_object_get(g0, "ecc_dbe_agg")), 5);
    ck_assert(json_is_true(json_object_get(g0, "remap_pending")));
    ck_assert(json_is_false(json_object_get(g0, "remap_failure")));
    json_t *g1 = json_array_get(json_object_get(p, "gpus"), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(g1, "ecc_dbe_vol")), 1);
    ck_assert_ptr_null(json_object_get(g1, "remap_pending"));
    json_t *u = json_object_get(p, "unreachable");
    ck_assert_int_eq(json_array_size(u), 1);
    ck_assert_str_eq(json_string_value(json_array_get(u, 0)), "0000:18:00.0");
    json_decref(p);
}
END_TEST

START_TEST(nvsmi_q_unreachable_from_stderr_and_garbage)
{
    const char err[] = "Unable to determine the device handle for GPU0000:3B:00.0: Unknown Error\n"
                       "Unable to determine the device handle for GPU $(id): x\n";
    json_t *p = fm_parse_nvsmi_q(NULL, 0, S(err));
    ck_assert_int_eq(json_integer_value(json_object_get(p, "gpus_seen")), 0);
    ck_assert_ptr_null(json_object_get(p, "attached"));
    json_t *u = json_object_get(p, "unreachable");
    ck_assert_int_eq(json_array_size(u), 1); /* the $(id) one is not a bus id */
    ck_assert_str_eq(json_string_value(json_array_get(u, 0)), "0000:3B:00.0");
    json_decref(p);

    /* Binary junk, NULs, a 100 KB line, thousands of GPU headers. */
    size_t n = 400000;
    char *junk = malloc(n);
    for (size_t i = 0; i < n; i++)
        junk[i] = (char)(i * 131 + 7);
    memset(junk + 1000, 'x', 100000);
    for (size_t off = 200000; off + 20 < n; off += 20)
        memcpy(junk + off, "\nGPU 0000000x:0\n   ", 20);
    p = fm_parse_nvsmi_q(junk, n, junk, n);
    ck_assert(json_array_size(json_object_get(p, "gpus")) <= 64);
    char *txt = json_dumps(p, 0);
    ck_assert_ptr_nonnull(txt); /* valid UTF-8 throughout */
    free(txt);
    json_decref(p);
    free(junk);
}
END_TEST

static const char XID[] =
    "2026-11-23T14:00:01+0000 gpu-a01 kernel: NVRM: Xid (PCI:0000:18:00): 79, pid='<unknown>', "
    "name=<unknown>, GPU has fallen off the bus.\n"
    "2026-11-23T14:00:02+0000 gpu-a01 kernel: NVRM: Xid (PCI:0000:2a:00): 48, pid=1, DBE\n"
    "2026-11-23T14:00:03+0000 gpu-a01 kernel: NVRM: Xid (PCI:0000:2a:00): 48, pid=1, DBE \xff\xfe\n"
    "2026-11-23T14:00:04+0000 gpu-a01 kernel: NVRM: Xid (PCI:zz;id): 48, junk\n"
    "-- No entries --\n";

START_TEST(kernel_xid_counts_and_last_lines)
{
    json_t *p = fm_parse_kernel_xid(S(XID), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(p, "lines")), 4);
    json_t *k = json_object_get(p, "xids");
    ck_assert_int_eq(json_array_size(k), 2);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(k, 0), "pci")), "0000:18:00");
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(k, 0), "xid")), 79);
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(k, 1), "count")), 2);
    json_t *last = json_object_get(p, "last");
    ck_assert_int_eq(json_array_size(last), 2);
    const char *l0 = json_string_value(json_array_get(last, 0));
    ck_assert(strstr(l0, "DBE ??") != NULL); /* invalid UTF-8 replaced */
    ck_assert(strstr(json_string_value(json_array_get(last, 1)), "zz;id") != NULL);
    json_decref(p);

    p = fm_parse_kernel_xid(S("-- No entries --\n"), 10);
    ck_assert_int_eq(json_integer_value(json_object_get(p, "lines")), 0);
    ck_assert_int_eq(json_array_size(json_object_get(p, "last")), 0);
    json_decref(p);
}
END_TEST

START_TEST(dcgmi_health_shapes)
{
    const char boxed[] =
        "{\"body\":{\"Overall Health\":{\"value\":\"Failure\"},\"GPU\":{\"children\":{"
        "\"1\":{\"value\":\"Failure\",\"children\":{\"Errors\":{\"children\":{"
        "\"Memory system\":{\"value\":\"Failure\",\"overflow\":[\"1 volatile DBE\","
        "\"pending row remap\"]},\"PCIe system\":{\"value\":\"Warning\",\"overflow\":[\"replays\"]}"
        "}}}}}}},\"header\":[\"Health Monitor Report\"]}";
    json_t *p = fm_parse_dcgmi_health(S(boxed));
    ck_assert(json_is_true(json_object_get(p, "parsed")));
    ck_assert_str_eq(json_string_value(json_object_get(p, "overall")), "Failure");
    json_t *inc = json_object_get(p, "incidents");
    ck_assert_int_eq(json_array_size(inc), 2);
    json_t *m = json_array_get(inc, 0);
    ck_assert_int_eq(json_integer_value(json_object_get(m, "gpu")), 1);
    ck_assert_str_eq(json_string_value(json_object_get(m, "system")), "Memory system");
    ck_assert_str_eq(json_string_value(json_object_get(m, "message")),
                     "1 volatile DBE pending row remap");
    json_decref(p);

    /* keys without "children" wrappers are read too */
    const char flat[] = "{\"body\":{\"Overall Health\":{\"value\":\"Warning\"},\"GPU\":{\"3\":{"
                        "\"value\":\"Warning\",\"Errors\":{\"Thermal system\":{\"value\":"
                        "\"Warning\",\"overflow\":\"hot\"}}}}}}";
    p = fm_parse_dcgmi_health(S(flat));
    ck_assert_str_eq(json_string_value(json_object_get(p, "overall")), "Warning");
    ck_assert_int_eq(json_array_size(json_object_get(p, "incidents")), 1);
    json_decref(p);

    p = fm_parse_dcgmi_health(S("Error: unable to establish a connection"));
    ck_assert(json_is_false(json_object_get(p, "parsed")));
    ck_assert_ptr_null(json_object_get(p, "overall"));
    ck_assert_int_eq(json_array_size(json_object_get(p, "incidents")), 0);
    json_decref(p);
    p = fm_parse_dcgmi_health(NULL, 0);
    ck_assert(json_is_false(json_object_get(p, "parsed")));
    json_decref(p);
}
END_TEST

START_TEST(ibstat_ports)
{
    const char t[] = "CA 'mlx5_0'\n\tCA type: MT4129\n\tNumber of ports: 1\n\tPort 1:\n"
                     "\t\tState: Active\n\t\tPhysical state: LinkUp\n\t\tRate: 400\n"
                     "\t\tLink layer: InfiniBand\n"
                     "CA 'mlx5_1'\n\tPort 1:\n\t\tState: Down\n\t\tPhysical state: Polling\n"
                     "\t\tRate: 10\n";
    json_t *p = fm_parse_ibstat(S(t));
    json_t *ports = json_object_get(p, "ports");
    ck_assert_int_eq(json_array_size(ports), 2);
    json_t *a = json_array_get(ports, 0), *b = json_array_get(ports, 1);
    ck_assert_str_eq(json_string_value(json_object_get(a, "ca")), "mlx5_0");
    ck_assert_int_eq(json_integer_value(json_object_get(a, "rate")), 400);
    ck_assert_str_eq(json_string_value(json_object_get(b, "ca")), "mlx5_1");
    ck_assert_str_eq(json_string_value(json_object_get(b, "state")), "Down");
    ck_assert_str_eq(json_string_value(json_object_get(b, "phys_state")), "Polling");
    json_decref(p);
    p = fm_parse_ibstat(S("ibstat: command not found\n"));
    ck_assert_int_eq(json_array_size(json_object_get(p, "ports")), 0);
    json_decref(p);
}
END_TEST

START_TEST(text_is_clean_and_capped)
{
    const char t[] = "ok\n\tline\x01\x1b[31m \xc3\xa9 \xe2\x82 \xf0\x9f\x98\x80 \xed\xa0\x80";
    json_t *j = fm_exec_text(t, sizeof t - 1, 1000);
    ck_assert_str_eq(json_string_value(j), "ok\n\tline  [31m \xc3\xa9 ?? \xf0\x9f\x98\x80 ???");
    json_decref(j);
    j = fm_exec_text("abcdef", 6, 3);
    ck_assert_str_eq(json_string_value(j), "abc");
    json_decref(j);
    const char nul[] = {'a', '\0', 'b'};
    j = fm_exec_text(nul, 3, 10);
    ck_assert_str_eq(json_string_value(j), "a b");
    json_decref(j);
    j = fm_exec_text(NULL, 5, 10);
    ck_assert_str_eq(json_string_value(j), "");
    json_decref(j);
}
END_TEST

static Suite *exec_parse_suite(void)
{
    Suite *s = suite_create("exec_parse");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, nvsmi_q_highlights);
    tcase_add_test(tc, nvsmi_q_unreachable_from_stderr_and_garbage);
    tcase_add_test(tc, kernel_xid_counts_and_last_lines);
    tcase_add_test(tc, dcgmi_health_shapes);
    tcase_add_test(tc, ibstat_ports);
    tcase_add_test(tc, text_is_clean_and_capped);
    suite_add_tcase(s, tc);
    return s;
}

FM_TEST_MAIN(exec_parse_suite)
