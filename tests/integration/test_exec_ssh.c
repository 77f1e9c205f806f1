/* The SSH executor against a real OpenSSH sshd (tests/stack/sshd.sh) and
 * the fake GPU tools.  Run through tests/integration/ssh.sh, which starts a
 * private sshd with two nodes and exports:
 *   FM_STACK, FM_SSH_PORT, FM_SSH_KEY, FM_SSH_KNOWN_HOSTS, FM_SSH_USER,
 *   FM_TEST_NODE1/2 (h100 / a100), FM_TEST_DIR with kh_unknown,
 *   kh_changed (wrong key for node 1), kh_revoked (the right keys plus an
 *   @revoked line for the server's key), wrong_key (not authorized) and
 *   pass_key (authorized, passphrase "correct horse battery"),
 *   FM_GPU_STATE (tests/stack/gpu_state.py), FM_TEST_AGENT_SOCK (an
 *   ssh-agent holding the test key). */
#include "fleetmcp/fm_exec.h"

#include <check.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <spawn.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../unit/fm_test.h"

extern char **environ;

static const char *env(const char *k)
{
    const char *v = getenv(k);
    ck_assert_msg(v && *v, "%s is not set: run tests/integration/ssh.sh", k);
    return v;
}

static char node1[64], node2[64], addr1[64], addr2[64];

static void read_addr(const char *node, char *out, size_t cap)
{
    char p[600];
    snprintf(p, sizeof p, "%s/nodes/%s/addr", env("FM_STACK"), node);
    FILE *f = fopen(p, "r");
    ck_assert_msg(f != NULL, "cannot read %s", p);
    ck_assert(fgets(out, (int)cap, f) != NULL);
    fclose(f);
    out[strcspn(out, "\n ")] = '\0';
}

static void setup(void)
{
    snprintf(node1, sizeof node1, "%s", env("FM_TEST_NODE1"));
    snprintf(node2, sizeof node2, "%s", env("FM_TEST_NODE2"));
    read_addr(node1, addr1, sizeof addr1);
    read_addr(node2, addr2, sizeof addr2);
}

/* Runs argv (no shell), quietly; returns its exit status. */
static int run_argv(char *const argv[])
{
    pid_t pid;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    ck_assert_int_eq(rc, 0);
    int st;
    ck_assert(waitpid(pid, &st, 0) == pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void gpu_state(const char *verb, const char *node, const char *a1, const char *a2,
                      const char *a3)
{
    char *argv[] = {"/usr/bin/python3", (char *)env("FM_GPU_STATE"),
                    "--stack",          (char *)env("FM_STACK"),
                    (char *)verb,       (char *)node,
                    (char *)a1,         (char *)a2,
                    (char *)a3,         NULL};
    ck_assert_int_eq(run_argv(argv), 0);
}

static void fresh_node(const char *node, const char *sku)
{
    gpu_state("init", node, "--sku", sku, NULL);
    char p[600];
    snprintf(p, sizeof p, "%s/nodes/%s/fakegpu.json", env("FM_STACK"), node);
    unlink(p);
}

static void knobs(const char *node, const char *json)
{
    char p[600];
    snprintf(p, sizeof p, "%s/nodes/%s/fakegpu.json", env("FM_STACK"), node);
    FILE *f = fopen(p, "w");
    ck_assert(f != NULL);
    fputs(json, f);
    fclose(f);
}

/* A ssh config section (new) with overrides applied. */
static json_t *section(const char *known_hosts, const char *key, int cmd_timeout, int max_out)
{
    json_t *hosts =
        json_pack("{s:s, s:s, s:s}", node1, addr1, node2, addr2, "gpu-nobody", "127.0.0.99");
    return json_pack(
        "{s:s, s:I, s:s, s:s, s:o, s:i, s:i, s:i}", "user", env("FM_SSH_USER"), "port",
        (json_int_t)atoi(env("FM_SSH_PORT")), "key_file", key ? key : env("FM_SSH_KEY"),
        "known_hosts", known_hosts ? known_hosts : env("FM_SSH_KNOWN_HOSTS"), "hosts", hosts,
        "connect_timeout_ms", 3000, "command_timeout_ms", cmd_timeout ? cmd_timeout : 20000,
        "max_output_bytes", max_out ? max_out : 1048576);
}

typedef struct exec_h {
    const struct fm_exec_ops *ops;
    void *st;
} exec_h;

static exec_h open_exec(json_t *sec)
{
    exec_h h;
    fm_err err = {0};
    int rc = fm_exec_ssh_open(sec, &h.ops, &h.st, &err);
    ck_assert_msg(rc == 0, "open: %s: %s", fm_strerror(err.code), err.text);
    json_decref(sec);
    return h;
}

/* Runs cmd; returns run()'s rc and fills r and err. */
static int run(exec_h *h, const char *node, fm_cmd_id cmd, const fm_cmd_args *a, fm_exec_result *r,
               fm_err *err)
{
    fm_err_clear(err);
    return h->ops->run(h->st, node, cmd, a, r, err);
}

static void path_in_testdir(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", env("FM_TEST_DIR"), name);
}

START_TEST(every_catalog_command_runs)
{
    fresh_node(node1, "h100");
    exec_h h = open_exec(section(NULL, NULL, 0, 0));
    fm_cmd_args a;
    fm_cmd_args_init(&a);
    fm_exec_result r;
    fm_err err;

    ck_assert_int_eq(run(&h, node1, FM_CMD_NVSMI_QUERY, &a, &r, &err), 0);
    ck_assert_int_eq(r.exit_status, 0);
    ck_assert(!r.truncated);
    json_t *p = fm_parse_nvsmi_q(r.out, r.out_len, r.err_out, r.err_len);
    ck_assert_int_eq(json_integer_value(json_object_get(p, "gpus_seen")), 8);
    ck_assert_int_eq(json_integer_value(json_object_get(p, "attached")), 8);
    json_decref(p);
    fm_exec_result_free(&r);

    a.gpu_index = 3;
    ck_assert_int_eq(run(&h, node1, FM_CMD_NVSMI_QUERY_GPU, &a, &r, &err), 0);
    ck_assert_int_eq(r.exit_status, 0);
    ck_assert_msg(!strncmp(r.out, "3, 00000000:5D:00.0, GPU-", 25), "got %s", r.out);
    fm_exec_result_free(&r);
    a.gpu_index = -1;
    ck_assert_int_eq(run(&h, node1, FM_CMD_NVSMI_QUERY_GPU, &a, &r, &err), 0);
    int lines = 0;
    for (size_t i = 0; i < r.out_len; i++)
        lines += r.out[i] == '\n';
    ck_assert_int_eq(lines, 8);
    fm_exec_result_free(&r);

    ck_assert_int_eq(run(&h, node1, FM_CMD_DCGMI_HEALTH, &a, &r, &err), 0);
    p = fm_parse_dcgmi_health(r.out, r.out_len);
    ck_assert_str_eq(json_string_value(json_object_get(p, "overall")), "Healthy");
    json_decref(p);
    fm_exec_result_free(&r);

    a.diag_level = 2;
    ck_assert_int_eq(run(&h, node1, FM_CMD_DCGMI_DIAG, &a, &r, &err), 0);
    ck_assert_int_eq(r.exit_status, 0);
    ck_assert(strstr(r.out, "\"DCGM GPU Diagnostic\"") != NULL);
    ck_assert(strstr(r.out, "\"PCIe\"") != NULL);       /* level 2 test */
    ck_assert(strstr(r.out, "Targeted Power") == NULL); /* level 3 only */
    fm_exec_result_free(&r);

    ck_assert_int_eq(run(&h, node1, FM_CMD_KERNEL_XID, &a, &r, &err), 0);
    ck_assert_int_eq(r.exit_status, 0);
    ck_assert(strstr(r.out, "-- No entries --") != NULL);
    fm_exec_result_free(&r);

    ck_assert_int_eq(run(&h, node1, FM_CMD_IBSTAT, &a, &r, &err), 0);
    p = fm_parse_ibstat(r.out, r.out_len);
    json_t *port = json_array_get(json_object_get(p, "ports"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(port, "state")), "Active");
    ck_assert_int_eq(json_integer_value(json_object_get(port, "rate")), 400);
    json_decref(p);
    fm_exec_result_free(&r);

    snprintf(a.pci_bus, sizeof a.pci_bus, "00000000:2A:00.0");
    ck_assert_int_eq(run(&h, node1, FM_CMD_NVSMI_RESET, &a, &r, &err), 0);
    ck_assert_int_eq(r.exit_status, 0);
    ck_assert(strstr(r.out, "GPU 00000000:2A:00.0 was successfully reset.") != NULL);
    ck_assert(r.duration_ms >= 0 && r.duration_ms < 20000);
    fm_exec_result_free(&r);

    /* The second node answers as itself (its own address, its own SKU). */
    fresh_node(node2, "a100");
    ck_assert_int_eq(run(&h, node2, FM_CMD_NVSMI_QUERY_GPU, &a, &r, &err), 0);
    ck_assert_msg(strstr(r.out, "NVIDIA A100-SXM4-80GB") != NULL, "got %s", r.out);
    fm_exec_result_free(&r);
    h.ops->close(h.st);
}
END_TEST

START_TEST(unknown_host_key_refused)
{
    char kh[600];
    path_in_testdir(kh, sizeof kh, "kh_unknown"); /* only node 2's address */
    exec_h h = open_exec(section(kh, NULL, 0, 0));
    fm_exec_result r;
    fm_err err;
    ck_assert_int_eq(run(&h, node1, FM_CMD_IBSTAT, NULL, &r, &err), -1);
    ck_assert_int_eq(err.code, FM_ERR_HOSTKEY);
    ck_assert_msg(strstr(err.text, "not in known_hosts") && strstr(err.text, "ssh-keyscan") &&
                      strstr(err.text, "SHA256:"),
                  "%s", err.text);
    ck_assert(r.out == NULL);
    /* the same file still lets node 2 in */
    ck_assert_int_eq(run(&h, node2, FM_CMD_IBSTAT, NULL, &r, &err), 0);
    fm_exec_result_free(&r);
    h.ops->close(h.st);
}
END_TEST

START_TEST(changed_host_key_refused)
{
    char kh[600];
    path_in_testdir(kh, sizeof kh, "kh_changed");
    exec_h h = open_exec(section(kh, NULL, 0, 0));
    fm_exec_result r;
    fm_err err;
    ck_assert_int_eq(run(&h, node1, FM_CMD_IBSTAT, NULL, &r, &err), -1);
    ck_assert_int_eq(err.code, FM_ERR_HOSTKEY);
    ck_assert_msg(strstr(err.text, "host key CHANGED") != NULL, "%s", err.text);
    h.ops->close(h.st);
}
END_TEST

START_TEST(revoked_host_key_refused)
{
    char kh[600];
    path_in_testdir(kh, sizeof kh, "kh_revoked"); /* right key, plus @revoked for it */
    exec_h h = open_exec(section(kh, NULL, 0, 0));
    fm_exec_result r;
    fm_err err;
    ck_assert_int_eq(run(&h, node1, FM_CMD_IBSTAT, NULL, &r, &err), -1);
    ck_assert_int_eq(err.code, FM_ERR_HOSTKEY);
    ck_assert_msg(strstr(err.text, "@revoked") != NULL, "%s", err.text);
    h.ops->close(h.st);
}
END_TEST

START_TEST(wrong_client_key_refused)
{
    char key[600];
    path_in_testdir(key, sizeof key, "wrong_key");
    exec_h h = open_exec(section(NULL, key, 0, 0));
    fm_exec_result r;
    fm_err err;
    ck_assert_int_eq(run(&h, node1, FM_CMD_IBSTAT, NULL, &r, &err), -1);
    ck_assert_int_eq(err.code, FM_ERR_AUTH);
    ck_assert_msg(strstr(err.text, "refused") != NULL, "%s", err.text);
    h.ops->close(h.st);
}
END_TEST

START_TEST(unreachable_and_unlisted_nodes)
{
    exec_h h = open_exec(section(NULL, NULL, 0, 0));
    fm_exec_result r;
    fm_err err;
    ck_assert_int_eq(run(&h, "gpu-nobody", FM_CMD_IBSTAT, NULL, &r, &err), -1);
    ck_assert_int_eq(err.code, FM_ERR_UNAVAILABLE);
    ck_assert_int_eq(run(&h, "gpu-zz99", FM_CMD_IBSTAT, NULL, &r, &err), -1);
    ck_assert_int_eq(err.code, FM_ERR_NOT_FOUND);
    h.ops->close(h.st);
}
END_TEST

START_TEST(injection_refused_before_connecting)
{
    exec_h h = open_exec(section(NULL, NULL, 0, 0));
    fm_exec_result r;
    fm_err err;
    static const char *nodes[] = {"gpu-a01; rm -rf /", "$(id)", "gpu-a01\nid",      "`id`",
                                  "gpu a01",           "",      "-oProxyCommand=id"};
    for (size_t i = 0; i < sizeof nodes / sizeof *nodes; i++) {
        ck_assert_int_eq(run(&h, nodes[i], FM_CMD_IBSTAT, NULL, &r, &err), -1);
        ck_assert_int_eq(err.code, FM_ERR_INVALID);
    }
    fm_cmd_args a;
    fm_cmd_args_init(&a);
    snprintf(a.pci_bus, sizeof a.pci_bus, "00000000:18:00.0' ; id '");
    ck_assert_int_eq(run(&h, node1, FM_CMD_NVSMI_RESET, &a, &r, &err), -1);
    ck_assert_int_eq(err.code, FM_ERR_INVALID);
    fm_cmd_args_init(&a);
    a.diag_level = 4; /* not allowed without ssh.max_diag_level: 4 */
    ck_assert_int_eq(run(&h, node1, FM_CMD_DCGMI_DIAG, &a, &r, &err), -1);
    ck_assert_int_eq(err.code, FM_ERR_INVALID);
    ck_assert_int_eq(run(&h, node1, (fm_cmd_id)99, &a, &r, &err), -1);
    ck_assert_int_eq(err.code, FM_ERR_INVALID);
    h.ops->close(h.st);
}
END_TEST

START_TEST(command_timeout_honoured)
{
    fresh_node(node1, "h100");
    knobs(node1, "{\"ibstat\": {\"sleep_s\": 6}}");
    exec_h h = open_exec(section(NULL, NULL, 1000, 0));
    fm_exec_result r;
    fm_err err;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert_int_eq(run(&h, node1, FM_CMD_IBSTAT, NULL, &r, &err), -1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    ck_assert_int_eq(err.code, FM_ERR_TIMEOUT);
    ck_assert_msg(s >= 0.9 && s < 4.0, "timed out after %.2f s", s);
    /* other commands on the same node are unaffected */
    ck_assert_int_eq(run(&h, node1, FM_CMD_KERNEL_XID, NULL, &r, &err), 0);
    fm_exec_result_free(&r);
    h.ops->close(h.st);
}
END_TEST

START_TEST(output_cap_truncates)
{
    fresh_node(node1, "h100");
    knobs(node1, "{\"nvidia-smi\": {\"pad_bytes\": 300000}}");
    exec_h h = open_exec(section(NULL, NULL, 0, 65536));
    fm_exec_result r;
    fm_err err;
    ck_assert_int_eq(run(&h, node1, FM_CMD_NVSMI_QUERY, NULL, &r, &err), 0);
    ck_assert(r.truncated);
    ck_assert_uint_eq(r.out_len, 65536);
    ck_assert_int_eq(r.exit_status, 0); /* drained: the status still arrives */
    ck_assert(strstr(r.out, "Attached GPUs") != NULL);
    fm_exec_result_free(&r);

    /* Far over the cap: cut short, status unknown, still bounded. */
    knobs(node1, "{\"nvidia-smi\": {\"pad_bytes\": 8000000}}");
    h.ops->close(h.st);
    h = open_exec(section(NULL, NULL, 0, 4096));
    ck_assert_int_eq(run(&h, node1, FM_CMD_NVSMI_QUERY, NULL, &r, &err), 0);
    ck_assert(r.truncated);
    ck_assert_uint_eq(r.out_len, 4096);
    ck_assert_int_eq(r.exit_status, -1);
    fm_exec_result_free(&r);
    h.ops->close(h.st);
}
END_TEST

START_TEST(exit_status_propagated)
{
    fresh_node(node1, "h100");
    knobs(node1, "{\"ibstat\": {\"exit\": 3}}");
    exec_h h = open_exec(section(NULL, NULL, 0, 0));
    fm_exec_result r;
    fm_err err;
    ck_assert_int_eq(run(&h, node1, FM_CMD_IBSTAT, NULL, &r, &err), 0);
    ck_assert_int_eq(r.exit_status, 3);
    fm_exec_result_free(&r);
    fm_cmd_args a;
    fm_cmd_args_init(&a);
    a.diag_level = 1;
    gpu_state("inject", node1, "row_remap_pending", "--gpu", "2");
    ck_assert_int_eq(run(&h, node1, FM_CMD_DCGMI_DIAG, &a, &r, &err), 0);
    ck_assert_int_eq(r.exit_status, 226);
    fm_exec_result_free(&r);
    h.ops->close(h.st);
}
END_TEST

/* ---- a job's output file: one command opens it and reads it ---------- */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
    ck_assert_int_eq(chmod(path, 0644), 0); /* the ssh user reads it */
}

/* Reads path's tail as the file "file" (OWNER:DEV:INODE); returns the
 * exit status, and whether what came back is job_text (out must be empty
 * otherwise).  Never the other file's text. */
static int read_as(exec_h *h, const char *path, const char *file, const char *job_text,
                   bool *got_job)
{
    fm_cmd_args a;
    fm_cmd_args_init(&a);
    snprintf(a.path, sizeof a.path, "%s", path);
    snprintf(a.file, sizeof a.file, "%s", file);
    fm_exec_result r;
    fm_err err;
    ck_assert_msg(run(h, node1, FM_CMD_JOB_LOG_TAIL, &a, &r, &err) == 0, "%s", err.text);
    int st = r.exit_status;
    ck_assert_msg(!r.out_len || !strstr(r.out, "secret"), "read the other file: %s", r.out);
    *got_job = r.out_len && !strcmp(r.out, job_text);
    ck_assert_msg(st != 0 || *got_job, "exit 0 with '%.80s'", r.out ? r.out : "");
    ck_assert_msg(st == 0 || !r.out_len, "exit %d with output '%.80s'", st, r.out);
    fm_exec_result_free(&r);
    return st;
}

/* The file a job's path names, as the tool takes it: stat (links not
 * followed) into OWNER:DEV:INODE. */
static void stat_ident(exec_h *h, const char *path, char *file, size_t cap)
{
    fm_cmd_args a;
    fm_cmd_args_init(&a);
    snprintf(a.path, sizeof a.path, "%s", path);
    fm_exec_result r;
    fm_err err;
    ck_assert_msg(run(h, node1, FM_CMD_JOB_LOG_STAT, &a, &r, &err) == 0, "%s", err.text);
    ck_assert_int_eq(r.exit_status, 0);
    char owner[64], type[32], ident[48];
    long long size;
    ck_assert_int_eq(sscanf(r.out, "%63[^|]|%31[^|]|%lld|%47s", owner, type, &size, ident), 4);
    ck_assert_str_eq(type, "regular file");
    snprintf(file, cap, "%s:%s", owner, ident);
    fm_exec_result_free(&r);
}

/* Swaps path between the job's file (parked) and the thing at swap_in
 * until killed, at most 20 s or 200000 swaps. */
static pid_t swapper(const char *path, const char *parked, const char *swap_in)
{
    pid_t sw = fork();
    ck_assert_int_ge(sw, 0);
    if (sw) return sw;
    time_t end = time(NULL) + 20;
    for (int i = 0; i < 200000 && time(NULL) < end; i++)
        if (rename(path, parked) || rename(swap_in, path) || rename(path, swap_in) ||
            rename(parked, path))
            _exit(1);
    _exit(0);
}

/* The path of a job's output file is its user's to change at any time:
 * the read opens it once and reads only if that descriptor is the file
 * the stat showed.  Swapped after the stat for another file, or for a
 * link to one, nothing is read; and while a process swaps it back and
 * forth, every read is the job's file or nothing (bounded: 30 reads,
 * the swapper stops after 20 s or 200000 swaps). */
START_TEST(job_log_read_only_of_the_stat_file)
{
    exec_h h = open_exec(section(NULL, NULL, 0, 0));
    char path[256], other[256], parked[256], file[128], wrong[160];
    path_in_testdir(path, sizeof path, "job-42.out");
    path_in_testdir(other, sizeof other, "other.out");
    path_in_testdir(parked, sizeof parked, "job-42.parked");
    static const char job[] = "step 9 | loss 2.1\n";
    write_file(path, job);
    write_file(other, "not the job's: secret\n");
    stat_ident(&h, path, file, sizeof file);
    bool got = false;
    ck_assert_int_eq(read_as(&h, path, file, job, &got), 0);
    ck_assert(got);
    /* Another file put at the path after the stat. */
    ck_assert_int_eq(rename(path, parked), 0);
    ck_assert_int_eq(rename(other, path), 0);
    ck_assert_int_eq(read_as(&h, path, file, job, &got), 68);
    /* A link to it: not followed, so nothing opened. */
    ck_assert_int_eq(rename(path, other), 0);
    ck_assert_int_eq(symlink(other, path), 0);
    ck_assert_int_eq(read_as(&h, path, file, job, &got), 66);
    ck_assert_int_eq(unlink(path), 0);
    /* The job's file back, claimed for another owner: not read. */
    ck_assert_int_eq(rename(parked, path), 0);
    snprintf(wrong, sizeof wrong, "nobody%s", strchr(file, ':'));
    ck_assert_int_eq(read_as(&h, path, wrong, job, &got), 68);
    /* A swapper racing the reads. */
    pid_t sw = swapper(path, parked, other);
    int ok = 0, refused = 0;
    for (int i = 0; i < 30; i++) {
        if (read_as(&h, path, file, job, &got) == 0)
            ok++;
        else
            refused++;
    }
    kill(sw, SIGKILL);
    waitpid(sw, NULL, 0);
    ck_assert_int_eq(ok + refused, 30);
    fprintf(stderr,
            "job_log_read_only_of_the_stat_file: racing a swapper, %d reads of the"
            " job's file, %d refused, none of the other\n",
            ok, refused);
    h.ops->close(h.st);
}
END_TEST

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Opens of dev seen by inotify since the last call (IN_OPEN on the inode,
 * whichever path reached it). */
static int opens_seen(int ino)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    int n = 0;
    ssize_t len;
    while ((len = read(ino, buf, sizeof buf)) > 0)
        for (char *p = buf; p < buf + len;
             p += sizeof(struct inotify_event) + ((struct inotify_event *)(void *)p)->len)
            n += (((struct inotify_event *)(void *)p)->mask & IN_OPEN) != 0;
    return n;
}

/* A job's user can put a FIFO or a link to a device at its output path
 * after the stat.  Put there before the read: refused at once, the FIFO
 * not waited on (command_timeout_ms is 20 s here), the device (a private
 * node with /dev/null's numbers, so inotify sees only this test's opens)
 * never opened.  A FIFO with a writer and data: refused (67), not read.
 * Swapped back and forth by a racing process while reads run (15 reads
 * each, each under 4 s): every read is the job's file or a refusal, and
 * the device is never opened. */
START_TEST(job_log_fifo_and_device_link_not_opened)
{
    exec_h h = open_exec(section(NULL, NULL, 0, 0));
    char path[256], parked[256], fifo[256], dev[256], link[256], file[128];
    path_in_testdir(path, sizeof path, "job-43.out");
    path_in_testdir(parked, sizeof parked, "job-43.parked");
    path_in_testdir(fifo, sizeof fifo, "job-43.fifo");
    path_in_testdir(dev, sizeof dev, "null-dev");
    path_in_testdir(link, sizeof link, "job-43.link");
    static const char job[] = "step 3 | loss 4.0\n";
    write_file(path, job);
    stat_ident(&h, path, file, sizeof file);
    unlink(fifo);
    unlink(dev);
    unlink(link);
    ck_assert_int_eq(mkfifo(fifo, 0666), 0);
    ck_assert_int_eq(chmod(fifo, 0666), 0);
    ck_assert_int_eq(mknod(dev, S_IFCHR | 0666, makedev(1, 3)), 0); /* /dev/null's numbers */
    ck_assert_int_eq(chmod(dev, 0666), 0);
    ck_assert_int_eq(symlink(dev, link), 0);
    int ino = inotify_init1(IN_NONBLOCK);
    ck_assert_int_ge(ino, 0);
    ck_assert_int_ge(inotify_add_watch(ino, dev, IN_OPEN), 0);
    bool got = false;
    /* A FIFO at the path: not opened, not waited on. */
    ck_assert_int_eq(rename(path, parked), 0);
    ck_assert_int_eq(rename(fifo, path), 0);
    double t0 = now_s();
    ck_assert_int_eq(read_as(&h, path, file, job, &got), 66);
    ck_assert_msg(now_s() - t0 < 4.0, "a FIFO held the read %.1f s", now_s() - t0);
    /* The same with a writer that put data in it: opened, not read. */
    int wfd = open(path, O_RDWR | O_NONBLOCK);
    ck_assert_int_ge(wfd, 0);
    ck_assert_int_eq(write(wfd, "secret\n", 7), 7);
    ck_assert_int_eq(read_as(&h, path, file, job, &got), 67);
    close(wfd);
    ck_assert_int_eq(rename(path, fifo), 0);
    /* A link to a device at the path: refused, the device not opened. */
    ck_assert_int_eq(rename(link, path), 0);
    ck_assert_int_eq(read_as(&h, path, file, job, &got), 66);
    ck_assert_int_eq(opens_seen(ino), 0);
    ck_assert_int_eq(rename(path, link), 0);
    ck_assert_int_eq(rename(parked, path), 0);
    ck_assert_int_eq(read_as(&h, path, file, job, &got), 0);
    ck_assert(got);
    /* Racing swappers, one for each. */
    const char *swap_in[2] = {fifo, link};
    for (int k = 0; k < 2; k++) {
        pid_t sw = swapper(path, parked, swap_in[k]);
        int ok = 0, refused = 0;
        double slowest = 0;
        for (int i = 0; i < 15; i++) {
            t0 = now_s();
            int st = read_as(&h, path, file, job, &got);
            double took = now_s() - t0;
            slowest = took > slowest ? took : slowest;
            ck_assert_msg(took < 4.0, "a read under a %s swapper took %.1f s", swap_in[k], took);
            ck_assert_msg(st == 0 || (st >= 66 && st <= 68), "exit %d", st);
            if (st == 0)
                ok++;
            else
                refused++;
        }
        kill(sw, SIGKILL);
        waitpid(sw, NULL, 0);
        /* put the job's file back at path whatever the swapper left */
        struct stat sb;
        if (lstat(path, &sb) == 0 && !S_ISREG(sb.st_mode))
            ck_assert_int_eq(rename(path, swap_in[k]), 0);
        if (lstat(parked, &sb) == 0) ck_assert_int_eq(rename(parked, path), 0);
        int opened = opens_seen(ino);
        fprintf(stderr,
                "job_log_fifo_and_device_link_not_opened: racing %s, %d reads of the job's file,"
                " %d refused, slowest %.2f s, device opens %d\n",
                swap_in[k], ok, refused, slowest, opened);
        ck_assert_int_eq(opened, 0);
    }
    close(ino);
    h.ops->close(h.st);
}
END_TEST

static json_t *gpu_row(json_t *parsed, const char *bus)
{
    size_t i;
    json_t *g;
    json_array_foreach(json_object_get(parsed, "gpus"), i,
                       g) if (!strcmp(json_string_value(json_object_get(g, "bus")), bus)) return g;
    return NULL;
}

START_TEST(reset_clears_dbe_not_remap_failure)
{
    fresh_node(node1, "h100");
    gpu_state("inject", node1, "dbe", "--gpu", "1");
    gpu_state("inject", node1, "row_remap_failure", "--gpu", "1");
    exec_h h = open_exec(section(NULL, NULL, 0, 0));
    fm_exec_result r;
    fm_err err;
    fm_cmd_args a;
    fm_cmd_args_init(&a);

    ck_assert_int_eq(run(&h, node1, FM_CMD_NVSMI_QUERY, &a, &r, &err), 0);
    json_t *p = fm_parse_nvsmi_q(r.out, r.out_len, r.err_out, r.err_len);
    json_t *g = gpu_row(p, "00000000:2A:00.0");
    ck_assert(g != NULL);
    ck_assert_int_eq(json_integer_value(json_object_get(g, "ecc_dbe_vol")), 1);
    ck_assert(json_is_true(json_object_get(g, "remap_pending")));
    ck_assert(json_is_true(json_object_get(g, "remap_failure")));
    json_decref(p);
    fm_exec_result_free(&r);

    ck_assert_int_eq(run(&h, node1, FM_CMD_KERNEL_XID, &a, &r, &err), 0);
    p = fm_parse_kernel_xid(r.out, r.out_len, 5);
    ck_assert_int_eq(json_integer_value(json_object_get(p, "lines")), 3); /* 48, 63, 64 */
    json_decref(p);
    fm_exec_result_free(&r);

    snprintf(a.pci_bus, sizeof a.pci_bus, "00000000:2a:00.0");
    ck_assert_int_eq(run(&h, node1, FM_CMD_NVSMI_RESET, &a, &r, &err), 0);
    ck_assert_int_eq(r.exit_status, 0);
    fm_exec_result_free(&r);

    fm_cmd_args_init(&a);
    ck_assert_int_eq(run(&h, node1, FM_CMD_NVSMI_QUERY, &a, &r, &err), 0);
    p = fm_parse_nvsmi_q(r.out, r.out_len, r.err_out, r.err_len);
    g = gpu_row(p, "00000000:2A:00.0");
    ck_assert_int_eq(json_integer_value(json_object_get(g, "ecc_dbe_vol")), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(g, "ecc_dbe_agg")), 1);
    ck_assert(json_is_false(json_object_get(g, "remap_pending")));
    ck_assert(json_is_true(json_object_get(g, "remap_failure")));
    json_decref(p);
    fm_exec_result_free(&r);

    ck_assert_int_eq(run(&h, node1, FM_CMD_DCGMI_HEALTH, &a, &r, &err), 0);
    p = fm_parse_dcgmi_health(r.out, r.out_len);
    ck_assert_str_eq(json_string_value(json_object_get(p, "overall")), "Failure");
    json_t *inc = json_array_get(json_object_get(p, "incidents"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(inc, "system")), "Memory system");
    ck_assert_int_eq(json_integer_value(json_object_get(inc, "gpu")), 1);
    json_decref(p);
    fm_exec_result_free(&r);
    h.ops->close(h.st);
}
END_TEST

START_TEST(xid79_gpu_missing_reset_refused_reboot_clears)
{
    fresh_node(node1, "h100");
    gpu_state("inject", node1, "xid79", "--gpu", "0");
    exec_h h = open_exec(section(NULL, NULL, 0, 0));
    fm_exec_result r;
    fm_err err;
    fm_cmd_args a;
    fm_cmd_args_init(&a);

    ck_assert_int_eq(run(&h, node1, FM_CMD_NVSMI_QUERY, &a, &r, &err), 0);
    ck_assert_int_eq(r.exit_status, 15);
    json_t *p = fm_parse_nvsmi_q(r.out, r.out_len, r.err_out, r.err_len);
    ck_assert_int_eq(json_integer_value(json_object_get(p, "gpus_seen")), 7);
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(p, "unreachable"), 0)),
                     "0000:18:00.0");
    json_decref(p);
    fm_exec_result_free(&r);

    ck_assert_int_eq(run(&h, node1, FM_CMD_KERNEL_XID, &a, &r, &err), 0);
    p = fm_parse_kernel_xid(r.out, r.out_len, 5);
    json_t *x = json_array_get(json_object_get(p, "xids"), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(x, "xid")), 79);
    ck_assert_str_eq(json_string_value(json_object_get(x, "pci")), "0000:18:00");
    json_decref(p);
    fm_exec_result_free(&r);

    snprintf(a.pci_bus, sizeof a.pci_bus, "00000000:18:00.0");
    ck_assert_int_eq(run(&h, node1, FM_CMD_NVSMI_RESET, &a, &r, &err), 0);
    ck_assert_int_eq(r.exit_status, 15);
    ck_assert(strstr(r.out, "Unable to determine the device handle") != NULL);
    fm_exec_result_free(&r);

    gpu_state("reboot", node1, NULL, NULL, NULL);
    fm_cmd_args_init(&a);
    ck_assert_int_eq(run(&h, node1, FM_CMD_NVSMI_QUERY, &a, &r, &err), 0);
    ck_assert_int_eq(r.exit_status, 0);
    p = fm_parse_nvsmi_q(r.out, r.out_len, r.err_out, r.err_len);
    ck_assert_int_eq(json_integer_value(json_object_get(p, "gpus_seen")), 8);
    json_decref(p);
    fm_exec_result_free(&r);
    /* a new boot: the old Xid lines are gone from journalctl -k */
    ck_assert_int_eq(run(&h, node1, FM_CMD_KERNEL_XID, &a, &r, &err), 0);
    ck_assert(strstr(r.out, "Xid") == NULL);
    fm_exec_result_free(&r);
    h.ops->close(h.st);
}
END_TEST

START_TEST(agent_auth_without_key_file)
{
    setenv("SSH_AUTH_SOCK", env("FM_TEST_AGENT_SOCK"), 1);
    json_t *sec = section(NULL, NULL, 0, 0);
    json_object_del(sec, "key_file");
    exec_h h = open_exec(sec);
    fm_exec_result r;
    fm_err err;
    ck_assert_msg(run(&h, node1, FM_CMD_IBSTAT, NULL, &r, &err) == 0, "%s", err.text);
    ck_assert_int_eq(r.exit_status, 0);
    fm_exec_result_free(&r);
    h.ops->close(h.st);

    /* no key file and no agent: refused at open, naming both ways */
    unsetenv("SSH_AUTH_SOCK");
    sec = section(NULL, NULL, 0, 0);
    json_object_del(sec, "key_file");
    const struct fm_exec_ops *ops;
    void *st;
    fm_err_clear(&err);
    ck_assert_int_eq(fm_exec_ssh_open(sec, &ops, &st, &err), -1);
    ck_assert_int_eq(err.code, FM_ERR_NOT_CONFIGURED);
    ck_assert(strstr(err.text, "SSH_AUTH_SOCK") != NULL);
    json_decref(sec);
}
END_TEST

START_TEST(silent_server_hits_connect_timeout)
{
    /* A listener that never speaks: the kernel completes the TCP handshake,
     * the SSH banner never comes. */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(listen(lfd, 4), 0);
    socklen_t sl = sizeof sa;
    getsockname(lfd, (struct sockaddr *)&sa, &sl);
    json_t *sec = section(NULL, NULL, 0, 0);
    json_object_set_new(sec, "port", json_integer(ntohs(sa.sin_port)));
    json_object_set_new(sec, "connect_timeout_ms", json_integer(500));
    json_object_set_new(json_object_get(sec, "hosts"), "gpu-silent", json_string("127.0.0.1"));
    exec_h h = open_exec(sec);
    fm_exec_result r;
    fm_err err;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert_int_eq(run(&h, "gpu-silent", FM_CMD_IBSTAT, NULL, &r, &err), -1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    ck_assert_int_eq(err.code, FM_ERR_TIMEOUT);
    ck_assert_msg(s >= 0.45 && s < 2.0, "gave up after %.2f s", s);
    h.ops->close(h.st);
    close(lfd);
}
END_TEST

START_TEST(passphrase_key)
{
    char key[600];
    path_in_testdir(key, sizeof key, "pass_key");
    json_t *sec = section(NULL, key, 0, 0);
    json_object_set_new(sec, "key_passphrase", json_pack("{s:s}", "env", "FM_TEST_KEY_PASS"));
    setenv("FM_TEST_KEY_PASS", "correct horse battery", 1);
    exec_h h = open_exec(json_incref(sec));
    fm_exec_result r;
    fm_err err;
    ck_assert_msg(run(&h, node1, FM_CMD_IBSTAT, NULL, &r, &err) == 0, "%s", err.text);
    fm_exec_result_free(&r);
    h.ops->close(h.st);

    setenv("FM_TEST_KEY_PASS", "wrong", 1);
    h = open_exec(sec);
    ck_assert_int_eq(run(&h, node1, FM_CMD_IBSTAT, NULL, &r, &err), -1);
    ck_assert_int_eq(err.code, FM_ERR_AUTH);
    ck_assert_msg(strstr(err.text, "passphrase") != NULL, "%s", err.text);
    h.ops->close(h.st);
}
END_TEST

START_TEST(nvlink_hot_ib_faults_and_reboot)
{
    fresh_node(node2, "a100");
    gpu_state("inject", node2, "nvlink", "--gpu", "4");
    gpu_state("inject", node2, "hot", "--gpu", "5");
    gpu_state("inject", node2, "ib_down", NULL, NULL);
    exec_h h = open_exec(section(NULL, NULL, 0, 0));
    fm_exec_result r;
    fm_err err;

    ck_assert_int_eq(run(&h, node2, FM_CMD_DCGMI_HEALTH, NULL, &r, &err), 0);
    json_t *p = fm_parse_dcgmi_health(r.out, r.out_len);
    ck_assert_str_eq(json_string_value(json_object_get(p, "overall")), "Failure");
    size_t i;
    json_t *inc;
    bool nvlink = false, thermal = false;
    json_array_foreach(json_object_get(p, "incidents"), i, inc)
    {
        const char *sys = json_string_value(json_object_get(inc, "system"));
        long gpu = (long)json_integer_value(json_object_get(inc, "gpu"));
        nvlink |= !strcmp(sys, "NVLINK system") && gpu == 4;
        thermal |= !strcmp(sys, "Thermal system") && gpu == 5;
    }
    ck_assert(nvlink && thermal);
    json_decref(p);
    fm_exec_result_free(&r);

    ck_assert_int_eq(run(&h, node2, FM_CMD_IBSTAT, NULL, &r, &err), 0);
    p = fm_parse_ibstat(r.out, r.out_len);
    json_t *port = json_array_get(json_object_get(p, "ports"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(port, "state")), "Down");
    ck_assert_str_eq(json_string_value(json_object_get(port, "phys_state")), "Polling");
    json_decref(p);
    fm_exec_result_free(&r);

    gpu_state("reboot", node2, NULL, NULL, NULL);
    ck_assert_int_eq(run(&h, node2, FM_CMD_DCGMI_HEALTH, NULL, &r, &err), 0);
    p = fm_parse_dcgmi_health(r.out, r.out_len);
    ck_assert_str_eq(json_string_value(json_object_get(p, "overall")), "Healthy");
    json_decref(p);
    fm_exec_result_free(&r);
    ck_assert_int_eq(run(&h, node2, FM_CMD_IBSTAT, NULL, &r, &err), 0);
    ck_assert(strstr(r.out, "State: Active") != NULL);
    fm_exec_result_free(&r);
    h.ops->close(h.st);
}
END_TEST

static Suite *exec_ssh_suite(void)
{
    Suite *s = suite_create("exec_ssh");
    TCase *tc = tcase_create("sshd");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, every_catalog_command_runs);
    tcase_add_test(tc, unknown_host_key_refused);
    tcase_add_test(tc, changed_host_key_refused);
    tcase_add_test(tc, revoked_host_key_refused);
    tcase_add_test(tc, wrong_client_key_refused);
    tcase_add_test(tc, unreachable_and_unlisted_nodes);
    tcase_add_test(tc, injection_refused_before_connecting);
    tcase_add_test(tc, command_timeout_honoured);
    tcase_add_test(tc, output_cap_truncates);
    tcase_add_test(tc, exit_status_propagated);
    tcase_add_test(tc, job_log_read_only_of_the_stat_file);
    tcase_add_test(tc, job_log_fifo_and_device_link_not_opened);
    tcase_add_test(tc, reset_clears_dbe_not_remap_failure);
    tcase_add_test(tc, xid79_gpu_missing_reset_refused_reboot_clears);
    tcase_add_test(tc, nvlink_hot_ib_faults_and_reboot);
    tcase_add_test(tc, agent_auth_without_key_file);
    tcase_add_test(tc, silent_server_hits_connect_timeout);
    tcase_add_test(tc, passphrase_key);
    suite_add_tcase(s, tc);
    return s;
}

FM_TEST_MAIN(exec_ssh_suite)
