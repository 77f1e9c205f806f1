/* The executor's command catalog: argv building, remote quoting and the
 * strict argument patterns (src/backends/exec_catalog.c). */
#include "fleetmcp/fm_exec.h"

#include <string.h>

#include "fm_test.h"

static int build(fm_cmd_id cmd, const fm_cmd_args *a, int max_level, fm_cmd_line *line, fm_err *err)
{
    fm_err_clear(err);
    return fm_cmd_build(cmd, a, max_level, line, err);
}

START_TEST(argv_and_remote_for_each_command)
{
    static const struct {
        fm_cmd_id cmd;
        int gpu;
        const char *bus;
        int level;
        const char *remote;
    } cases[] = {
        {FM_CMD_NVSMI_QUERY, -1, "", 0, "'nvidia-smi' '-q'"},
        {FM_CMD_NVSMI_QUERY, 7, "", 0, "'nvidia-smi' '-q' '-i' '7'"},
        {FM_CMD_NVSMI_QUERY_GPU, -1, "", 0,
         "'nvidia-smi' '--query-gpu=" FM_NVSMI_QUERY_FIELDS "' '--format=csv,noheader,nounits'"},
        {FM_CMD_NVSMI_RESET, -1, "00000000:18:00.0", 0,
         "'nvidia-smi' '--gpu-reset' '-i' '00000000:18:00.0'"},
        {FM_CMD_DCGMI_DIAG, -1, "", 2, "'dcgmi' 'diag' '-r' '2' '-j'"},
        {FM_CMD_DCGMI_HEALTH, -1, "", 0, "'dcgmi' 'health' '-c' '-j'"},
        {FM_CMD_KERNEL_XID, -1, "", 0,
         "'journalctl' '-k' '--no-pager' '-o' 'short-iso' '-n' '200' '--grep=NVRM: Xid'"},
        {FM_CMD_IBSTAT, -1, "", 0, "'ibstat'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        fm_cmd_args a;
        fm_cmd_args_init(&a);
        a.gpu_index = cases[i].gpu;
        snprintf(a.pci_bus, sizeof a.pci_bus, "%s", cases[i].bus);
        a.diag_level = cases[i].level;
        fm_cmd_line line;
        fm_err err;
        ck_assert_msg(build(cases[i].cmd, &a, 3, &line, &err) == 0, "case %zu: %s", i, err.text);
        ck_assert_str_eq(line.remote, cases[i].remote);
    }
}
END_TEST

START_TEST(argv_elements_are_exact)
{
    fm_cmd_args a;
    fm_cmd_args_init(&a);
    a.diag_level = 3;
    fm_cmd_line line;
    fm_err err;
    ck_assert_int_eq(build(FM_CMD_DCGMI_DIAG, &a, 3, &line, &err), 0);
    ck_assert_int_eq(line.argc, 5);
    const char *want[] = {"dcgmi", "diag", "-r", "3", "-j"};
    for (int i = 0; i < 5; i++)
        ck_assert_str_eq(line.argv[i], want[i]);
    /* arguments a command does not take are ignored, not passed through */
    snprintf(a.pci_bus, sizeof a.pci_bus, "00000000:18:00.0");
    a.gpu_index = 2;
    ck_assert_int_eq(build(FM_CMD_IBSTAT, &a, 3, &line, &err), 0);
    ck_assert_int_eq(line.argc, 1);
    ck_assert_str_eq(line.remote, "'ibstat'");
    /* NULL args: commands without required arguments still build */
    ck_assert_int_eq(build(FM_CMD_DCGMI_HEALTH, NULL, 3, &line, &err), 0);
    ck_assert_int_eq(build(FM_CMD_NVSMI_RESET, NULL, 3, &line, &err), -1);
    ck_assert_int_eq(err.code, FM_ERR_INVALID);
}
END_TEST

START_TEST(bad_pci_bus_ids_refused)
{
    static const char *bad[] = {
        "",
        "0000:18:00.0",             /* 4-digit domain: not the form we accept */
        "00000000:18:00.8",         /* function 0..7 */
        "00000000:18:00.0'",        /* quote */
        "00000000:18:00.0' ; id '", /* injection through quoting */
        "'00000000:18:00.0",
        "00000000:18:00.0\n",
        "00000000:18:00.0 ",
        "$(id):18:00.0",
        "0000000g:18:00.0",
        "00000000-18-00.0",
        "00000000:18:00:0",
        "00000000:18:00.0;reboot",
        "`reboot`",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        fm_cmd_args a;
        fm_cmd_args_init(&a);
        snprintf(a.pci_bus, sizeof a.pci_bus, "%s", bad[i]);
        fm_cmd_line line;
        fm_err err;
        ck_assert_msg(build(FM_CMD_NVSMI_RESET, &a, 3, &line, &err) == -1, "accepted '%s'", bad[i]);
        ck_assert_int_eq(err.code, FM_ERR_INVALID);
        ck_assert(strchr(err.text, '\n') == NULL); /* echoed input is clipped and cleaned */
        ck_assert_str_eq(line.remote, "");
    }
    /* A bus field without its terminating NUL is refused, not over-read. */
    fm_cmd_args a;
    fm_cmd_args_init(&a);
    memset(a.pci_bus, 'A', sizeof a.pci_bus);
    fm_cmd_line line;
    fm_err err;
    ck_assert_int_eq(build(FM_CMD_NVSMI_RESET, &a, 3, &line, &err), -1);
    /* Upper and lower case hex both pass. */
    snprintf(a.pci_bus, sizeof a.pci_bus, "0000000a:2A:1f.7");
    ck_assert_int_eq(build(FM_CMD_NVSMI_RESET, &a, 3, &line, &err), 0);
}
END_TEST

START_TEST(gpu_index_and_diag_level_bounds)
{
    fm_cmd_args a;
    fm_cmd_line line;
    fm_err err;
    const int bad_gpu[] = {-2, 64, 1000, -100};
    for (size_t i = 0; i < 4; i++) {
        fm_cmd_args_init(&a);
        a.gpu_index = bad_gpu[i];
        ck_assert_int_eq(build(FM_CMD_NVSMI_QUERY, &a, 3, &line, &err), -1);
        ck_assert_int_eq(err.code, FM_ERR_INVALID);
    }
    fm_cmd_args_init(&a);
    a.gpu_index = 63;
    ck_assert_int_eq(build(FM_CMD_NVSMI_QUERY_GPU, &a, 3, &line, &err), 0);
    a.gpu_index = 0;
    ck_assert_int_eq(build(FM_CMD_NVSMI_QUERY, &a, 3, &line, &err), 0);

    const int bad_level[] = {0, -1, 4, 5};
    for (size_t i = 0; i < 4; i++) {
        fm_cmd_args_init(&a);
        a.diag_level = bad_level[i];
        ck_assert_int_eq(build(FM_CMD_DCGMI_DIAG, &a, 3, &line, &err), -1);
    }
    ck_assert(strstr(err.text, "max_diag_level") != NULL);
    a.diag_level = 4;
    ck_assert_int_eq(build(FM_CMD_DCGMI_DIAG, &a, 4, &line, &err), 0);
    ck_assert_str_eq(line.remote, "'dcgmi' 'diag' '-r' '4' '-j'");
    a.diag_level = 5;
    ck_assert_int_eq(build(FM_CMD_DCGMI_DIAG, &a, 4, &line, &err), -1);
    a.diag_level = 4; /* any other max means 3 */
    ck_assert_int_eq(build(FM_CMD_DCGMI_DIAG, &a, 99, &line, &err), -1);
}
END_TEST

START_TEST(unknown_commands_refused)
{
    fm_cmd_line line;
    fm_err err;
    ck_assert_int_eq(build((fm_cmd_id)-1, NULL, 3, &line, &err), -1);
    ck_assert_int_eq(err.code, FM_ERR_INVALID);
    ck_assert_int_eq(build((fm_cmd_id)FM_CMD_COUNT, NULL, 3, &line, &err), -1);
    ck_assert_ptr_null(fm_cmd_name(-1));
    ck_assert_ptr_null(fm_cmd_name(FM_CMD_COUNT));
    ck_assert_str_eq(fm_cmd_name(FM_CMD_NVSMI_RESET), "nvsmi_reset");
    ck_assert_str_eq(fm_cmd_name(FM_CMD_KERNEL_XID), "kernel_xid");
    /* the node's clock, for its kernel stamps: a constant argv */
    ck_assert_int_eq(build(FM_CMD_NODE_CLOCK, NULL, 3, &line, &err), 0);
    ck_assert_str_eq(line.remote, "'date' '+%s'");
    /* stable numbers */
    ck_assert_int_eq(FM_CMD_NVSMI_QUERY, 0);
    ck_assert_int_eq(FM_CMD_IBSTAT, 6);
    ck_assert_int_eq(FM_CMD_NODE_CLOCK, 9);
    ck_assert_int_eq(FM_CMD_JOB_LOG_STAT, 10);
    for (int c = 0; c < FM_CMD_COUNT; c++)
        ck_assert_int_eq(fm_cmd_mutates((fm_cmd_id)c), c == FM_CMD_NVSMI_RESET);
}
END_TEST

START_TEST(node_names)
{
    static const char *good[] = {"gpu-a01", "a", "GPU_7", "n1.rack2.example", "0node"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        ck_assert_msg(fm_exec_valid_node(good[i]), "%s", good[i]);
    static const char *bad[] = {
        "",
        "gpu-a01; rm -rf /",
        "$(id)",
        "gpu-a01\n",
        "gpu\nid",
        "`id`",
        "-oProxyCommand=x",
        ".hidden",
        "_x",
        "gpu a",
        "gpu'a",
        "gpu\"a",
        "a/b",
        "a\\b",
        "gpu-a01|id",
        "n\xc3\xa9",
        "a&b",
        "a>b",
        "a*",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ck_assert_msg(!fm_exec_valid_node(bad[i]), "accepted '%s'", bad[i]);
    ck_assert(!fm_exec_valid_node(NULL));
    char n63[64], n64[65];
    memset(n63, 'a', 63);
    n63[63] = '\0';
    memset(n64, 'a', 64);
    n64[64] = '\0';
    ck_assert(fm_exec_valid_node(n63));
    ck_assert(!fm_exec_valid_node(n64));
}
END_TEST

START_TEST(addresses)
{
    static const char *good[] = {"127.0.0.11", "10.1.2.3",          "::1", "fe80::1",
                                 "gpu-a01",    "node1.example.com", "a"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        ck_assert_msg(fm_exec_valid_address(good[i]), "%s", good[i]);
    static const char *bad[] = {"",      "a..b", "-a",  "a-", "host;id", "999.1.1.1", "1.2.3",
                                "$(id)", "a b",  "a_b", ".a", "a.",      "[::1]"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ck_assert_msg(!fm_exec_valid_address(bad[i]), "accepted '%s'", bad[i]);
    ck_assert(!fm_exec_valid_address(NULL));
}
END_TEST

START_TEST(job_log_paths)
{
    static const char *good[] = {"/scratch/u1/slurm-42.out", "/home/a.b/run_7/train-99.err",
                                 "/lustre/proj+x/logs/job@n1=2,3~.log", "/tmp/x", "/libdata/x"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        ck_assert_msg(fm_exec_valid_log_path(good[i]), "%s", good[i]);
    static const char *bad[] = {"",
                                "slurm-42.out",
                                "-n/x",
                                "/",
                                "/scratch/",
                                "/scratch//x",
                                "/scratch/../etc/shadow",
                                "/scratch/./x",
                                "/scratch/a b",
                                "/scratch/$(id)",
                                "/scratch/a;id",
                                "/scratch/a'b",
                                "/scratch/%j.out",
                                "/scratch/a\nb",
                                "/etc/shadow",
                                "/proc/1/environ",
                                "/sys/x",
                                "/dev/sda",
                                "/root/.ssh/id_rsa",
                                "/var/lib/slurm/x",
                                "/lib64/x",
                                "/usr/x"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ck_assert_msg(!fm_exec_valid_log_path(bad[i]), "accepted '%s'", bad[i]);
    ck_assert(!fm_exec_valid_log_path(NULL));
    /* the argv: options end before the path */
    fm_cmd_args a;
    fm_cmd_args_init(&a);
    fm_cmd_line line;
    fm_err err;
    ck_assert_int_eq(build(FM_CMD_JOB_LOG_TAIL, &a, 3, &line, &err), -1);
    ck_assert_int_eq(err.code, FM_ERR_INVALID);
    snprintf(a.path, sizeof a.path, "/etc/passwd");
    ck_assert_int_eq(build(FM_CMD_JOB_LOG_TAIL, &a, 3, &line, &err), -1);
    snprintf(a.path, sizeof a.path, "/scratch/u1/slurm-42.out");
    /* the read names the file the path must open as: OWNER:DEV:INODE */
    ck_assert_int_eq(build(FM_CMD_JOB_LOG_TAIL, &a, 3, &line, &err), -1);
    ck_assert_int_eq(err.code, FM_ERR_INVALID);
    static const char *const bad_file[] = {"u1",      "u1:2049",   "u1:2049:x", ":2049:77",
                                           "u 1:1:2", "u1:1:2;id", "u1:1:2\n",  "$(id):1:2",
                                           "u1:-1:2", "u'1:1:2",   "u1::2"};
    for (size_t i = 0; i < sizeof bad_file / sizeof *bad_file; i++) {
        snprintf(a.file, sizeof a.file, "%s", bad_file[i]);
        ck_assert_msg(build(FM_CMD_JOB_LOG_TAIL, &a, 3, &line, &err) == -1, "accepted '%s'",
                      bad_file[i]);
    }
    snprintf(a.file, sizeof a.file, "u1.x@lab:2049:77");
    ck_assert_int_eq(build(FM_CMD_JOB_LOG_TAIL, &a, 3, &line, &err), 0);
    /* one script, constant: the path and the file are its arguments */
    ck_assert_int_eq(line.argc, 6);
    ck_assert_str_eq(line.argv[0], "sh");
    ck_assert_str_eq(line.argv[1], "-c");
    ck_assert_ptr_null(strstr(line.argv[2], "slurm-42"));
    ck_assert_str_eq(line.argv[3], "sh");
    ck_assert_str_eq(line.argv[4], "/scratch/u1/slurm-42.out");
    ck_assert_str_eq(line.argv[5], "u1.x@lab:2049:77");
    ck_assert(!fm_cmd_mutates(FM_CMD_JOB_LOG_TAIL));
}
END_TEST

START_TEST(pci_pattern)
{
    ck_assert(fm_exec_valid_pci_bus("00000000:18:00.0"));
    ck_assert(fm_exec_valid_pci_bus("ABCDEF01:ff:1F.7"));
    ck_assert(!fm_exec_valid_pci_bus("00000000:18:00.0.0"));
    ck_assert(!fm_exec_valid_pci_bus("00000000:18:0.0"));
    ck_assert(!fm_exec_valid_pci_bus(NULL));
}
END_TEST

START_TEST(remote_command_is_fully_quoted)
{
    /* Every element is wrapped in single quotes and nothing outside them
     * but single spaces and \' (a quote inside an element, written '\''):
     * no shell syntax can appear unquoted. */
    for (int c = 0; c < FM_CMD_COUNT; c++) {
        fm_cmd_args a;
        fm_cmd_args_init(&a);
        snprintf(a.pci_bus, sizeof a.pci_bus, "00000000:18:00.0");
        snprintf(a.path, sizeof a.path, "/scratch/u1/slurm-42.out");
        snprintf(a.file, sizeof a.file, "u1:2049:77");
        a.diag_level = 1;
        a.gpu_index = 5;
        fm_cmd_line line;
        fm_err err;
        ck_assert_int_eq(build((fm_cmd_id)c, &a, 3, &line, &err), 0);
        bool in = false;
        for (const char *p = line.remote; *p; p++) {
            if (*p == '\'')
                in = !in;
            else if (!in && p[0] == '\\' && p[1] == '\'' && p[-1] == '\'')
                p++; /* '\'' : closed, an escaped quote, reopened */
            else if (!in)
                ck_assert_msg(*p == ' ', "unquoted '%c' in %s", *p, line.remote);
        }
        ck_assert(!in);
    }
}
END_TEST

static Suite *exec_catalog_suite(void)
{
    Suite *s = suite_create("exec_catalog");
    TCase *tc = tcase_create("catalog");
    tcase_add_test(tc, argv_and_remote_for_each_command);
    tcase_add_test(tc, argv_elements_are_exact);
    tcase_add_test(tc, bad_pci_bus_ids_refused);
    tcase_add_test(tc, gpu_index_and_diag_level_bounds);
    tcase_add_test(tc, unknown_commands_refused);
    tcase_add_test(tc, node_names);
    tcase_add_test(tc, addresses);
    tcase_add_test(tc, pci_pattern);
    tcase_add_test(tc, job_log_paths);
    tcase_add_test(tc, remote_command_is_fully_quoted);
    suite_add_tcase(s, tc);
    return s;
}

FM_TEST_MAIN(exec_catalog_suite)
