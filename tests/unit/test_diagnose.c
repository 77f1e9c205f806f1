/* diagnose engine: catalog loading and validation, scoring rules (noise
 * never acts, destructive needs corroboration, decisive Xids), correlation
 * (several jobs on one node, history, rank disagreement), traceback
 * context, rising counters, input bounds, signatures.d extension, and the
 * bulk scanner.  Runs from the repository root (make unit). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fleetmcp/fm_diagnose.h"
#include "fleetmcp/fm_schema.h"
#include "fleetmcp/fm_server.h"
#include "fleetmcp/fm_tool.h"
#include "fm_test.h"

#define SIGS "runbooks/signatures.yaml"

static struct fm_diag_db *db;

static void setup(void)
{
    fm_err err = {0};
    ck_assert_msg(fm_diag_load(SIGS, &db, &err) == 0, "load: %s", err.text);
}

static void teardown(void)
{
    fm_diag_free(db);
    db = NULL;
}

/* Runs signals given as JSON text; returns the result (new). */
static json_t *diag(const char *signals_json)
{
    json_error_t je;
    json_t *s = json_loads(signals_json, 0, &je);
    ck_assert_msg(s != NULL, "bad test JSON: %s", je.text);
    fm_err err = {0};
    json_t *r = fm_diag_run(db, s, NULL, &err);
    ck_assert_msg(r != NULL, "run: %s", err.text);
    json_decref(s);
    return r;
}

static const json_t *top(const json_t *r)
{
    return json_object_get(r, "top");
}

static const char *top_class(const json_t *r)
{
    return json_string_value(json_object_get(top(r), "fault_class"));
}

/* The top class of signals given as JSON text is (or, with is false, is
 * not) cls. */
static void expect_top(const char *signals_json, const char *cls, bool is)
{
    json_t *r = diag(signals_json);
    const char *got = top_class(r);
    ck_assert_msg(is == (got && !strcmp(got, cls)), "top %s, expected %s%s", got ? got : "(none)",
                  is ? "" : "anything but ", cls);
    json_decref(r);
}

static double top_conf(const json_t *r)
{
    return json_number_value(json_object_get(top(r), "confidence"));
}

static bool top_act(const json_t *r)
{
    return json_is_true(json_object_get(top(r), "act"));
}

/* Confidence of class in the ranked list, 0 if absent. */
static double conf_of(const json_t *r, const char *cls)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(r, "classes"), i, c)
    {
        if (strcmp(json_string_value(json_object_get(c, "fault_class")), cls) == 0)
            return json_number_value(json_object_get(c, "confidence"));
    }
    return 0;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = malloc(1 << 20);
    *len = fread(buf, 1, (1 << 20) - 1, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

/* ---- catalog ------------------------------------------------------------- */

START_TEST(loads_real_catalog)
{
    ck_assert_int_gt((int)fm_diag_sig_count(db), 50);
    json_t *lits = fm_diag_literals(db);
    ck_assert_int_gt((int)json_array_size(lits), 50);
    json_decref(lits);
}
END_TEST

/* The project's taxonomy is the shared one, byte for byte, plus only its
 * own classes appended after it (inconclusive). */
START_TEST(taxonomy_copy_matches_shared)
{
    size_t a_len, b_len;
    char *b = slurp("../shared/fault-classes.yaml", &b_len);
    if (!b) return; /* no shared checkout beside the repo: nothing to compare */
    char *a = slurp("runbooks/fault-classes.yaml", &a_len);
    ck_assert_ptr_nonnull(a);
    ck_assert_msg(
        a_len >= b_len && memcmp(a, b, b_len) == 0,
        "runbooks/fault-classes.yaml drifted from ../shared/fault-classes.yaml: copy it again");
    const char *own = a + b_len;
    ck_assert_msg(strstr(own, "- id: inconclusive") != NULL,
                  "runbooks/fault-classes.yaml lacks its own class inconclusive after the shared "
                  "ones");
    free(a);
    free(b);
}
END_TEST

/* A scratch catalog dir with the real taxonomy and the given signatures. */
static void scratch_catalog(const char *dir, const char *sigs_yaml)
{
    char p[256];
    mkdir(dir, 0700);
    size_t n;
    char *tax = slurp("runbooks/fault-classes.yaml", &n);
    ck_assert_ptr_nonnull(tax);
    snprintf(p, sizeof p, "%s/fault-classes.yaml", dir);
    write_file(p, tax);
    free(tax);
    snprintf(p, sizeof p, "%s/signatures.yaml", dir);
    write_file(p, sigs_yaml);
}

static fm_err load_bad(const char *sigs_yaml)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/fm-diag-bad-%d", (int)getpid());
    scratch_catalog(dir, sigs_yaml);
    char p[128];
    snprintf(p, sizeof p, "%s/signatures.yaml", dir);
    struct fm_diag_db *d = NULL;
    fm_err err = {0};
    ck_assert_int_eq(fm_diag_load(p, &d, &err), -1);
    ck_assert_ptr_null(d);
    snprintf(p, sizeof p, "rm -rf %s", dir);
    ck_assert_int_eq(system(p), 0);
    return err;
}

START_TEST(rejects_unknown_class)
{
    fm_err e = load_bad("version: 1\nsignatures:\n  - id: x\n    fault_class: gpu_on_fire\n"
                        "    source: kernel_log\n    pattern: 'smoke'\n    strength: weak\n");
    ck_assert_int_eq(e.code, FM_ERR_INVALID);
    ck_assert_msg(strstr(e.text, "gpu_on_fire") && strstr(e.text, "signatures.yaml:"), "%s",
                  e.text);
}
END_TEST

START_TEST(rejects_bad_regex_with_line)
{
    fm_err e =
        load_bad("version: 1\nsignatures:\n  - id: x\n    fault_class: gpu_hang\n"
                 "    source: kernel_log\n    pattern: 'unbalanced ('\n    strength: weak\n");
    ck_assert_int_eq(e.code, FM_ERR_INVALID);
    ck_assert_msg(strstr(e.text, "regex does not compile") && strstr(e.text, ":6:"), "%s", e.text);
}
END_TEST

START_TEST(rejects_schema_violation)
{
    fm_err e =
        load_bad("version: 1\nsignatures:\n  - id: x\n    fault_class: gpu_hang\n"
                 "    source: kernel_log\n    pattern: 'a'\n    strength: weak\n    colour: red\n");
    ck_assert_int_eq(e.code, FM_ERR_INVALID);
}
END_TEST

START_TEST(signatures_d_adds_without_rebuild)
{
    char dir[64], p[160];
    snprintf(dir, sizeof dir, "/tmp/fm-diag-ext-%d", (int)getpid());
    scratch_catalog(dir, "version: 1\nsignatures: []\n");
    snprintf(p, sizeof p, "%s/signatures.d", dir);
    mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/signatures.d/site.yaml", dir);
    write_file(p, "signatures:\n  - id: site-disk\n    fault_class: node_disk_full\n"
                  "    source: [kernel_log, events]\n    literal: quota\n"
                  "    pattern: 'quota exceeded on /lscratch'\n    strength: strong\n");
    snprintf(p, sizeof p, "%s/signatures.yaml", dir);
    struct fm_diag_db *d = NULL;
    fm_err err = {0};
    ck_assert_msg(fm_diag_load(p, &d, &err) == 0, "%s", err.text);
    json_t *s = json_pack("{s:[s], s:[s]}", "kernel_log", "xfs: quota exceeded on /lscratch",
                          "events", "quota exceeded on /lscratch for uid 1201");
    json_t *r = fm_diag_run(d, s, NULL, &err);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(top_class(r), "node_disk_full");
    json_decref(r);
    json_decref(s);
    fm_diag_free(d);
    snprintf(p, sizeof p, "rm -rf %s", dir);
    ck_assert_int_eq(system(p), 0);
}
END_TEST

/* ---- scoring -------------------------------------------------------------- */

START_TEST(single_weak_signal_never_acts)
{
    json_t *r = diag("{\"kernel_log\":[\"[1.0] watchdog: BUG: soft lockup - CPU#3 stuck for 22s! "
                     "[kworker/3:1]\"]}");
    /* a weak hint no class explains: inconclusive (escalate), never a class
     * that acts and never healthy */
    ck_assert_str_eq(top_class(r), "inconclusive");
    ck_assert(!top_act(r));
    ck_assert(!json_is_true(json_object_get(r, "act")));
    json_decref(r);
}
END_TEST

START_TEST(many_weak_signals_stay_below_report)
{
    /* four different weak hints for one class: still capped below report */
    json_t *r = diag("{\"kernel_log\":[\"watchdog: BUG: soft lockup - CPU#1 stuck for 23s!\","
                     "\"rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:\"],"
                     "\"slurm\":{\"node_state\":[\"COMPLETING\"]}}");
    ck_assert_str_eq(top_class(r), "inconclusive"); /* unexplained, not healthy */
    ck_assert(!json_is_true(json_object_get(r, "act")));
    ck_assert_double_lt(conf_of(r, "node_unreachable"), 0.56);
    json_decref(r);
}
END_TEST

START_TEST(destructive_needs_corroboration)
{
    /* one strong source: reported, but not corroborated and no act */
    json_t *r = diag("{\"node\":\"n1\",\"slurm\":{\"node_state\":[\"DOWN\"]}}");
    ck_assert_str_eq(top_class(r), "node_unreachable");
    ck_assert(!top_act(r));
    ck_assert(!json_is_true(json_object_get(top(r), "corroborated")));
    ck_assert_double_lt(top_conf(r), 0.7);
    json_decref(r);
    /* a second, independent source corroborates */
    r = diag("{\"node\":\"n1\",\"slurm\":{\"node_state\":[\"DOWN\"]},"
             "\"events\":[\"error: Nodes n1 not responding, setting DOWN\"]}");
    ck_assert_str_eq(top_class(r), "node_unreachable");
    ck_assert(top_act(r));
    ck_assert(json_is_true(json_object_get(top(r), "corroborated")));
    json_decref(r);
}
END_TEST

START_TEST(decisive_xid79_acts_alone_and_is_never_a_reset)
{
    json_t *r = diag("{\"kernel_log\":[\"kernel: NVRM: Xid (PCI:0000:3b:00): 79, pid=1, name=x, "
                     "GPU has fallen off the bus.\"]}");
    ck_assert_str_eq(top_class(r), "gpu_fallen_off_bus");
    ck_assert(top_act(r));
    ck_assert_str_eq(json_string_value(json_object_get(top(r), "runbook")),
                     "rb-gpu-fallen-off-bus");
    const json_t *resp = json_object_get(top(r), "response");
    bool reboot = false, reset = false;
    size_t i;
    json_t *v;
    json_array_foreach(resp, i, v)
    {
        reboot |= strcmp(json_string_value(v), "reboot_node") == 0;
        reset |= strcmp(json_string_value(v), "reset_gpu") == 0;
    }
    ck_assert(reboot && !reset);
    json_decref(r);
}
END_TEST

START_TEST(xid_code_decides_class)
{
    /* terse phrasings: the code, not the wording, decides */
    json_t *r = diag("{\"events\":[\"dcgmi health: GPU 2: uncontained error (XID 95)\"],"
                     "\"metrics\":[{\"name\":\"DCGM_FI_DEV_XID_ERRORS\",\"labels\":{\"gpu\":\"2\"},"
                     "\"value\":95}]}");
    ck_assert_str_eq(top_class(r), "gpu_ecc_uncorrectable");
    json_decref(r);
    r = diag(
        "{\"kernel_log\":[\"NVRM: Xid (PCI:0000:07:00): 13, pid=4, name=python, Graphics "
        "Exception\"],"
        "\"job_log\":[\"RuntimeError: CUDA error: an illegal memory access was encountered\"]}");
    ck_assert_str_eq(top_class(r), "gpu_app_fault");
    ck_assert_str_eq(json_string_value(json_object_get(top(r), "scope")), "job");
    ck_assert(!json_is_true(json_object_get(top(r), "destructive")));
    ck_assert(json_is_null(json_object_get(top(r), "runbook")));
    json_decref(r);
    /* Xid 45 is cleanup after something else: alone it means nothing */
    expect_top(
        "{\"kernel_log\":[\"NVRM: Xid (PCI:0000:07:00): 45, pid=4, name=python, Ch 00000010\"]}",
        "healthy", true);
}
END_TEST

START_TEST(dbe_explains_remap_pending)
{
    json_t *r = diag("{\"kernel_log\":[\"NVRM: Xid (PCI:0000:47:00): 48, pid=1, name=p, An "
                     "uncorrectable double bit error (DBE)\","
                     "\"NVRM: Xid (PCI:0000:47:00): 63, pid=1, name=p, Row Remapper: New row "
                     "marked for remapping, reset gpu to activate.\"]}");
    ck_assert_str_eq(top_class(r), "gpu_ecc_uncorrectable");
    ck_assert_double_lt(conf_of(r, "gpu_row_remap_pending"), top_conf(r));
    json_decref(r);
}
END_TEST

START_TEST(oom_forward_vs_backward_by_traceback)
{
    json_t *r = diag("{\"job_log\":[\"Traceback (most recent call last):\",\"  File \\\"t.py\\\", "
                     "line 9, in step\","
                     "\"    loss.backward()\",\"  File \\\"torch/autograd/__init__.py\\\", line 3, "
                     "in backward\","
                     "\"torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2 GiB\"]}");
    ck_assert_str_eq(top_class(r), "oom_activation");
    json_decref(r);
    /* a backward from an earlier traceback must not leak into this one */
    r = diag("{\"job_log\":[\"loss.backward() took 0.3s\",\"Traceback (most recent call last):\","
             "\"  File \\\"t.py\\\", line 3, in forward\",\"torch.OutOfMemoryError: CUDA out of "
             "memory.\"]}");
    ck_assert_str_eq(top_class(r), "oom_batch_size");
    ck_assert_double_eq(conf_of(r, "oom_activation"), 0);
    json_decref(r);
}
END_TEST

START_TEST(several_jobs_failing_on_one_node_point_at_the_node)
{
    const char *base =
        "{\"node\":\"gpu-a033\",\"job_log\":[\"OSError: [Errno 28] No space left on device\"],"
        "\"slurm\":{\"jobs\":[%s]}}";
    char one[512], many[1024];
    snprintf(one, sizeof one, base,
             "{\"job_id\":1,\"state\":\"FAILED\",\"nodes\":\"gpu-a[032-033]\"}");
    snprintf(many, sizeof many, base,
             "{\"job_id\":1,\"state\":\"FAILED\",\"nodes\":\"gpu-a[032-033]\"},"
             "{\"job_id\":2,\"state\":\"FAILED\",\"nodes\":\"gpu-a033\"},"
             "{\"job_id\":3,\"state\":\"FAILED\",\"nodes\":\"gpu-b001\"}");
    json_t *r1 = diag(one), *r2 = diag(many);
    ck_assert_str_eq(top_class(r2), "node_disk_full");
    ck_assert_double_gt(top_conf(r2), top_conf(r1));
    json_decref(r1);
    json_decref(r2);
}
END_TEST

START_TEST(history_follows_job)
{
    json_t *r = diag("{\"kernel_log\":[\"NVRM: Xid (PCI:0000:52:00): 13, pid=9, name=python, "
                     "Graphics SM Warp Exception\"],"
                     "\"history\":[{\"attempt\":1,\"step\":1500,\"node\":\"a\",\"error\":\"Xid 13 "
                     "illegal memory access\"},"
                     "{\"attempt\":2,\"step\":1500,\"node\":\"b\",\"error\":\"Xid 13 illegal "
                     "memory access\"}]}");
    ck_assert_str_eq(top_class(r), "gpu_app_fault");
    ck_assert_double_gt(top_conf(r), 0.8);
    json_decref(r);
}
END_TEST

START_TEST(same_step_different_errors_points_at_one_cause)
{
    const char *hot = "{\"metrics\":[{\"name\":\"DCGM_FI_DEV_GPU_TEMP\",\"labels\":{\"gpu\":\"1\"},"
                      "\"value\":90}]%s}";
    char plain[512], hist[1024];
    snprintf(plain, sizeof plain, hot, "");
    snprintf(hist, sizeof hist, hot,
             ",\"history\":[{\"attempt\":1,\"step\":8800,\"error\":\"NCCL watchdog timeout\"},"
             "{\"attempt\":2,\"step\":8800,\"error\":\"CUDA error: unspecified launch failure\"}]");
    json_t *a = diag(plain), *b = diag(hist);
    ck_assert_str_eq(top_class(a), "healthy"); /* one hot sample is noise */
    ck_assert_str_eq(top_class(b), "gpu_thermal");
    json_decref(a);
    json_decref(b);
}
END_TEST

START_TEST(ranks_disagreeing_about_a_collective)
{
    json_t *r = diag("{\"job_log\":["
                     "\"[Rank 0] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=77, "
                     "OpType=ALLREDUCE, NumelIn=2)\","
                     "\"[Rank 5] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=77, "
                     "OpType=BROADCAST, NumelIn=9)\"]}");
    ck_assert_str_eq(top_class(r), "nccl_rank_divergence");
    json_decref(r);
    r = diag("{\"job_log\":["
             "\"[Rank 0] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=77, "
             "OpType=ALLREDUCE, NumelIn=2)\","
             "\"[Rank 5] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=77, "
             "OpType=ALLREDUCE, NumelIn=2)\"]}");
    ck_assert_double_eq(conf_of(r, "nccl_rank_divergence"), 0);
    json_decref(r);
}
END_TEST

START_TEST(counters_need_a_rate)
{
    json_t *r = diag("{\"metrics\":[{\"name\":\"DCGM_FI_DEV_ECC_SBE_VOL_TOTAL\",\"labels\":{"
                     "\"gpu\":\"3\"},\"value\":1}]}");
    ck_assert_str_eq(top_class(r), "healthy");
    json_decref(r);
    /* two samples of one series: the delta is the rate */
    expect_top(
        "{\"metrics\":[{\"name\":\"DCGM_FI_DEV_ECC_SBE_VOL_TOTAL\",\"labels\":{\"gpu\":\"3\"},"
        "\"value\":40},"
        "{\"name\":\"DCGM_FI_DEV_ECC_SBE_VOL_TOTAL\",\"labels\":{\"gpu\":\"3\"},\"value\":900}]}",
        "gpu_sram_ecc_rate", true);
}
END_TEST

START_TEST(metric_pairs_join_on_the_gpu)
{
    json_t *r = diag("{\"metrics\":[{\"name\":\"DCGM_FI_DEV_GPU_UTIL\",\"labels\":{\"gpu\":\"5\","
                     "\"Hostname\":\"h\"},\"value\":100},"
                     "{\"name\":\"DCGM_FI_PROF_SM_ACTIVE\",\"labels\":{\"gpu\":\"4\",\"Hostname\":"
                     "\"h\"},\"value\":0.0}]}");
    ck_assert_double_eq(conf_of(r, "gpu_hang"), 0); /* different GPUs */
    json_decref(r);
    r = diag("{\"metrics\":[{\"name\":\"DCGM_FI_DEV_GPU_UTIL\",\"labels\":{\"gpu\":\"5\","
             "\"Hostname\":\"h\"},\"value\":100},"
             "{\"name\":\"DCGM_FI_PROF_SM_ACTIVE\",\"labels\":{\"gpu\":\"5\",\"Hostname\":\"h\"},"
             "\"value\":0.0}]}");
    ck_assert_double_gt(conf_of(r, "gpu_hang"), 0.5);
    json_decref(r);
}
END_TEST

START_TEST(neighbour_samples_do_not_blame_this_node)
{
    const char *hot = "{\"node\":\"%s\",\"metrics\":["
                      "{\"name\":\"DCGM_FI_DEV_GPU_TEMP\",\"labels\":{\"gpu\":\"1\",\"Hostname\":"
                      "\"n2\"},\"value\":93},"
                      "{\"name\":\"DCGM_FI_DEV_GPU_TEMP\",\"labels\":{\"gpu\":\"2\",\"Hostname\":"
                      "\"n2.cluster\"},\"value\":94},"
                      "{\"name\":\"DCGM_FI_DEV_CLOCK_THROTTLE_REASONS\",\"labels\":{\"gpu\":\"1\","
                      "\"Hostname\":\"n2\"},\"value\":64}]}";
    char buf[1024];
    snprintf(buf, sizeof buf, hot, "n1");
    json_t *r = diag(buf);
    ck_assert_str_eq(top_class(r), "healthy");
    json_decref(r);
    snprintf(buf, sizeof buf, hot, "n2");
    expect_top(buf, "gpu_thermal", true);
}
END_TEST

START_TEST(input_bounds)
{
    fm_err err = {0};
    json_t *s = json_pack("{s:s}", "kernel_log", "not an array");
    ck_assert_ptr_null(fm_diag_run(db, s, NULL, &err));
    ck_assert_int_eq(err.code, FM_ERR_INVALID);
    json_decref(s);
    char *big = malloc(40000);
    memset(big, 'x', 39999);
    big[39999] = '\0';
    fm_err_clear(&err);
    s = json_pack("{s:[s]}", "job_log", big);
    ck_assert_ptr_null(fm_diag_run(db, s, NULL, &err));
    ck_assert_int_eq(err.code, FM_ERR_TOO_LARGE);
    json_decref(s);
    free(big);
    fm_err_clear(&err);
    s = json_pack("{s:[{s:i}]}", "metrics", "value", 1);
    ck_assert_ptr_null(fm_diag_run(db, s, NULL, &err));
    ck_assert_int_eq(err.code, FM_ERR_INVALID);
    json_decref(s);
}
END_TEST

START_TEST(evidence_is_clipped_and_bounded)
{
    char buf[16384];
    size_t o = (size_t)snprintf(buf, sizeof buf, "{\"kernel_log\":[");
    for (int i = 0; i < 20; i++)
        o += (size_t)snprintf(
            buf + o, sizeof buf - o,
            "%s\"NVRM: Xid (PCI:0000:%02d:00): 79, GPU has fallen off the bus. %0200d\"",
            i ? "," : "", i, 0);
    snprintf(buf + o, sizeof buf - o, "]}");
    json_t *r = diag(buf);
    const json_t *ev = json_object_get(top(r), "evidence");
    ck_assert_int_le((int)json_array_size(ev), 5);
    size_t i;
    json_t *e;
    json_array_foreach(ev, i, e) ck_assert_int_lt((int)strlen(json_string_value(e)), 400);
    json_decref(r);
}
END_TEST

START_TEST(taxonomy_override_and_state_string)
{
    json_error_t je;
    json_t *s = json_loads("{\"node\":\"n1\",\"slurm\":{\"node_state\":\"DOWN+DRAIN\"},"
                           "\"events\":[\"error: Nodes n1 not responding\"]}",
                           0, &je);
    json_t *tax = json_loads("{\"classes\":[{\"id\":\"node_unreachable\",\"scope\":\"node\","
                             "\"response\":[\"page_oncall\"],\"destructive\":false}]}",
                             0, &je);
    fm_err err = {0};
    json_t *r = fm_diag_run(db, s, tax, &err);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(top_class(r), "node_unreachable");
    const json_t *resp = json_object_get(top(r), "response");
    ck_assert_int_eq((int)json_array_size(resp), 1);
    ck_assert_str_eq(json_string_value(json_array_get(resp, 0)), "page_oncall");
    ck_assert(!json_is_true(json_object_get(top(r), "destructive")));
    json_decref(r);
    json_decref(s);
    json_decref(tax);
}
END_TEST

START_TEST(hostlists)
{
    ck_assert(fm_diag_hostlist_has("gpu-a[032-034]", "gpu-a033"));
    ck_assert(fm_diag_hostlist_has("gpu-a[001,033]", "gpu-a033"));
    ck_assert(fm_diag_hostlist_has("n1,gpu-a033", "gpu-a033"));
    ck_assert(fm_diag_hostlist_has("h100-r09-n[01-04]", "h100-r09-n03"));
    ck_assert(!fm_diag_hostlist_has("gpu-a[032-034]", "gpu-a35"));
    ck_assert(!fm_diag_hostlist_has("gpu-a[032-034]", "gpu-a0333"));
    ck_assert(!fm_diag_hostlist_has("gpu-b[032-034]", "gpu-a033"));
    ck_assert(!fm_diag_hostlist_has("", "x"));
}
END_TEST

START_TEST(bulk_scan_counts_lines)
{
    const char *text = "noise line one\n"
                       "NVRM: Xid (PCI:0000:3b:00): 79, pid=1, GPU has fallen off the bus.\n"
                       "more noise about nothing\n"
                       "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2 GiB\n"
                       "tail without newline Xid";
    size_t n = fm_diag_sig_count(db);
    uint64_t *hits = calloc(n, sizeof *hits);
    uint64_t lines = fm_diag_scan(db, text, strlen(text), hits);
    ck_assert_int_eq((int)lines, 2);
    uint64_t xid = 0, oom = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(fm_diag_sig_id(db, i), "xid-line") == 0) xid = hits[i];
        if (strcmp(fm_diag_sig_id(db, i), "cuda-oom-forward") == 0) oom = hits[i];
    }
    ck_assert_int_eq((int)xid, 1);
    ck_assert_int_eq((int)oom, 1);
    free(hits);
}
END_TEST

/* ---- three outcomes ---------------------------------------------------------- */

static bool evidence_mentions(const json_t *r, const char *needle)
{
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(top(r), "evidence"), i, e)
    {
        if (strstr(json_string_value(e), needle)) return true;
    }
    return false;
}

START_TEST(unknown_xid_is_inconclusive_never_healthy)
{
    json_t *r = diag("{\"node\":\"n1\",\"kernel_log\":[\"NVRM: Xid (PCI:0000:3b:00): 199, pid=7, "
                     "name=x, something new\"],\"slurm\":{\"node_state\":[\"IDLE\"]}}");
    ck_assert_str_eq(top_class(r), "inconclusive");
    ck_assert(!top_act(r));
    ck_assert(!json_is_true(json_object_get(r, "act")));
    ck_assert(json_is_null(json_object_get(top(r), "runbook")));
    ck_assert(evidence_mentions(r, "Xid 199 is not in the Xid catalog"));
    json_decref(r);
    /* the same through DCGM's last-Xid gauge */
    expect_top("{\"node\":\"n1\",\"metrics\":[{\"name\":\"DCGM_FI_DEV_XID_ERRORS\","
               "\"labels\":{\"gpu\":\"1\",\"hostname\":\"n1\"},\"value\":201}]}",
               "inconclusive", true);
    /* a catalogued code with no class (NVIDIA: CONTACT_SUPPORT) is no better */
    r = diag("{\"kernel_log\":[\"NVRM: Xid (PCI:0000:3b:00): 142, pid=7, name=x\"]}");
    ck_assert_str_eq(top_class(r), "inconclusive");
    ck_assert(evidence_mentions(r, "CONTACT_SUPPORT"));
    json_decref(r);
}
END_TEST

/* Unreachable is a claim about now: the same down state and NODE_FAIL job
 * with the node answering (uptime run on it) is not node_unreachable, and
 * the evidence it ruled out stays an anomaly for a human. */
START_TEST(node_that_answers_now_is_not_unreachable)
{
    const char *down = "{\"node\":\"n1\",\"slurm\":{\"node_state\":[\"DOWN*\"],"
                       "\"reason\":\"Not responding\"},\"events\":[\"ping n1: 3 packets "
                       "transmitted, 0 received, 100%% packet loss\"%s]}";
    char buf[512];
    snprintf(buf, sizeof buf, down, "");
    json_t *r = diag(buf);
    ck_assert_str_eq(top_class(r), "node_unreachable");
    json_decref(r);
    snprintf(buf, sizeof buf, down, ",\"uptime: 08:01:10 up 6 min,  load average: 0.1, 0.2, 0.1\"");
    r = diag(buf);
    ck_assert_str_eq(top_class(r), "inconclusive");
    ck_assert(!top_act(r));
    char *txt = json_dumps(json_object_get(top(r), "evidence"), 0);
    ck_assert_msg(strstr(txt, "node_unreachable") && strstr(txt, "node-answers-now"), "%s", txt);
    free(txt);
    json_decref(r);
}
END_TEST

START_TEST(rejects_marker_condition_outside_explains)
{
    fm_err e = load_bad("version: 1\nsignatures: []\nrules:\n  - {id: x, type: absorb, if: "
                        "straggler_node, and_seen: m, from: [gpu_thermal]}\n");
    ck_assert_int_eq(e.code, FM_ERR_INVALID);
}
END_TEST

START_TEST(healthy_needs_positive_evidence)
{
    /* nothing collected: nothing to call healthy */
    json_t *r = diag("{\"node\":\"n1\"}");
    ck_assert_str_eq(top_class(r), "inconclusive");
    json_decref(r);
    /* one clean source: healthy, but with less confidence than four */
    r = diag("{\"node\":\"n1\",\"slurm\":{\"node_state\":[\"IDLE\"]}}");
    ck_assert_str_eq(top_class(r), "healthy");
    double one = top_conf(r);
    json_decref(r);
    r = diag("{\"node\":\"n1\",\"slurm\":{\"node_state\":[\"IDLE\"]},"
             "\"kernel_log\":[\"EXT4-fs (sda1): mounted filesystem\"],"
             "\"events\":[\"dcgmi health -c: Overall Health: Healthy\"],"
             "\"metrics\":[{\"name\":\"DCGM_FI_DEV_GPU_TEMP\",\"labels\":{\"gpu\":\"0\"},"
             "\"value\":40}]}");
    ck_assert_str_eq(top_class(r), "healthy");
    ck_assert_double_gt(top_conf(r), one + 0.2);
    json_decref(r);
    /* a failed job with no known signature is unexplained, not healthy */
    r = diag("{\"node\":\"n1\",\"job_log\":[\"Segmentation fault (core dumped)\"],"
             "\"slurm\":{\"jobs\":[{\"job_id\":1,\"state\":\"FAILED\",\"nodes\":\"n1\"}]}}");
    ck_assert_str_eq(top_class(r), "inconclusive");
    ck_assert(evidence_mentions(r, "Segmentation fault"));
    json_decref(r);
    /* ... unless the owner cancelled it */
    expect_top("{\"node\":\"n1\",\"job_log\":[\"KeyboardInterrupt\",\"srun: error: n1: task 0: "
               "Killed\"],\"slurm\":{\"jobs\":[{\"job_id\":1,\"state\":\"CANCELLED\","
               "\"nodes\":\"n1\"}]}}",
               "healthy", true);
}
END_TEST

START_TEST(xid154_recovery_action_is_parsed_and_used)
{
    /* a contained error the driver says needs nothing: restart the job */
    const char *x94 = "NVRM: Xid (PCI:0000:ca:00): 94, pid=1, name=p, Contained: SM (0x1). "
                      "RST: No, D-RST: No";
    char buf[1024];
    snprintf(buf, sizeof buf,
             "{\"kernel_log\":[\"%s\",\"NVRM: Xid (PCI:0000:ca:00): 154, GPU recovery action "
             "changed from 0x0 (None) to 0x0 (None)\"]}",
             x94);
    json_t *r = diag(buf);
    ck_assert_str_eq(top_class(r), "gpu_ecc_contained");
    ck_assert(evidence_mentions(r, "driver recovery action None"));
    json_decref(r);
    /* the driver asks for a node reboot: not a job-scope restart any more */
    snprintf(buf, sizeof buf,
             "{\"kernel_log\":[\"%s\",\"NVRM: Xid (PCI:0000:ca:00): 154, GPU recovery action "
             "changed from 0x0 (None) to 0x2 (Node Reboot Required)\"]}",
             x94);
    r = diag(buf);
    ck_assert_str_ne(top_class(r), "gpu_ecc_contained");
    ck_assert_str_ne(top_class(r), "healthy");
    ck_assert(!top_act(r));
    json_decref(r);
    /* 95 is the uncontained twin: the GPU needs a reset */
    r = diag("{\"kernel_log\":[\"NVRM: Xid (PCI:0000:ca:00): 95, pid=1, name=p, Uncontained: "
             "FBHUB. RST: Yes, D-RST: No\"]}");
    ck_assert_str_eq(top_class(r), "gpu_ecc_uncorrectable");
    ck_assert(evidence_mentions(r, "(uncontained)"));
    json_decref(r);
}
END_TEST

/* Phrasings from NVIDIA's and the frameworks' own texts, one source each:
 * the meaning, not one scenario's wording, decides. */
START_TEST(phrasings_by_meaning)
{
    static const struct {
        const char *signals, *want;
    } cases[] = {
        {"{\"kernel_log\":[\"nvidia-nvswitch2: SXid (PCI:0000:c1:00.0): 24007, Fatal, Link 31 "
         "MINION uncorrectable error\"],\"events\":[\"dcgmi health: GPU 4: NVLink: Failure: "
         "DCGM_FR_NVLINK_DOWN\"]}",
         "gpu_nvlink_error"},
        {"{\"job_log\":[\"tensorflow.python.framework.errors_impl.ResourceExhaustedError: OOM "
         "when allocating tensor with shape[64,4096,4096] on /job:worker/device:GPU:0\"]}",
         "oom_batch_size"},
        {"{\"job_log\":[\"n1:88:88 [0] NCCL INFO Bootstrap : Using docker0:172.17.0.1<0>\"]}",
         "nccl_wrong_interface"},
        {"{\"job_log\":[\"n1:88:90 [0] include/shm.h:28 NCCL WARN Error: failed to extend "
         "/dev/shm/nccl-aBcD to 9637892 bytes\"]}",
         "oom_shared_memory"},
        {"{\"job_log\":[\"slurmstepd: error: Detected 3 oom-kill event(s) in StepId=77.0. Some "
         "of your processes may have been killed by the cgroup out-of-memory handler.\"],"
         "\"slurm\":{\"jobs\":[{\"job_id\":77,\"state\":\"OUT_OF_MEMORY\"}]}}",
         "oom_host_dataloader"},
        {"{\"job_log\":[\"botocore.exceptions.ClientError: An error occurred (InvalidAccessKeyId) "
         "when calling the GetObject operation: The AWS Access Key Id you provided does not "
         "exist in our records.\"]}",
         "credential_expired"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        json_t *r = diag(cases[i].signals);
        ck_assert_msg(strcmp(top_class(r), cases[i].want) == 0, "case %zu: %s, want %s", i,
                      top_class(r), cases[i].want);
        json_decref(r);
    }
}
END_TEST

START_TEST(mca_status_power_reference_and_host_grouping)
{
    /* MCA status word: VAL+UC (b2...) is uncorrected, VAL+EN only (90...) is
     * corrected, a word without VAL (32...) says nothing */
    json_t *r =
        diag("{\"node\":\"n1\",\"slurm\":{\"node_state\":[\"IDLE\"]},\"kernel_log\":"
             "[\"mce: [Hardware Error]: CPU 3: Machine Check: 0 Bank 4: b200000000070f0f\"]}");
    ck_assert_str_eq(top_class(r), "inconclusive");
    json_decref(r);
    expect_top("{\"node\":\"n1\",\"slurm\":{\"node_state\":[\"IDLE\"]},\"kernel_log\":"
               "[\"mce: [Hardware Error]: CPU 3: Machine Check: 0 Bank 7: 9000004000010005\"]}",
               "healthy", true);
    expect_top("{\"node\":\"n1\",\"slurm\":{\"node_state\":[\"IDLE\"]},\"events\":"
               "[\"mcelog: STATUS 3200000000070f0f MCGSTATUS 0\"]}",
               "healthy", true);
    /* a power limit against the default of the same nvidia-smi -q section */
    expect_top("{\"node\":\"n1\",\"events\":[\"    Current Power Limit : 400.00 W\","
               "\"    Default Power Limit : 700.00 W\"]}",
               "gpu_power", true);
    expect_top("{\"node\":\"n1\",\"slurm\":{\"node_state\":[\"IDLE\"]},\"events\":"
               "[\"    Current Power Limit : 700.00 W\",\"    Default Power Limit : 700.00 W\"]}",
               "healthy", true);
    /* two hosts of two ranks each: every rank of one host slow names it */
    r = diag("{\"job_log\":[\"rank=0 host=h-1 fwd_ms=100\",\"rank=1 host=h-1 fwd_ms=104\","
             "\"rank=2 host=h-2 fwd_ms=210\",\"rank=3 host=h-2 fwd_ms=215\"]}");
    ck_assert_str_eq(top_class(r), "straggler_node");
    ck_assert(evidence_mentions(r, "host h-2"));
    json_decref(r);
    /* by the wait: the host whose ranks wait least is the one the others
     * wait for; one rank that waits long is not the slow one */
    r = diag(
        "{\"job_log\":[\"rank=0 host=h-1 comm_wait_ms=400\",\"rank=1 host=h-1 comm_wait_ms=410\","
        "\"rank=2 host=h-2 comm_wait_ms=402\",\"rank=3 host=h-3 comm_wait_ms=12\","
        "\"rank=4 host=h-3 comm_wait_ms=15\"]}");
    ck_assert_str_eq(top_class(r), "straggler_node");
    ck_assert(evidence_mentions(r, "host h-3"));
    json_decref(r);
    expect_top(
        "{\"job_log\":[\"rank=0 host=h-1 comm_wait_ms=40\",\"rank=1 host=h-1 comm_wait_ms=41\","
        "\"rank=2 host=h-2 comm_wait_ms=400\",\"rank=3 host=h-3 comm_wait_ms=42\","
        "\"rank=4 host=h-3 comm_wait_ms=39\"]}",
        "straggler_node", false);
    /* one slow rank on a host whose other rank is fast is not the host */
    expect_top("{\"job_log\":[\"rank=0 host=h-1 fwd_ms=100\",\"rank=1 host=h-1 fwd_ms=104\","
               "\"rank=2 host=h-2 fwd_ms=101\",\"rank=3 host=h-2 fwd_ms=103\"]}",
               "straggler_node", false);
}
END_TEST

START_TEST(samples_in_time_order_and_as_pasted_text)
{
    /* listed newest first: by their timestamps the counter rose */
    json_t *r =
        diag("{\"metrics\":[{\"name\":\"DCGM_FI_DEV_ECC_SBE_VOL_TOTAL\",\"labels\":{\"gpu\":\"3\"},"
             "\"value\":900,\"ts\":\"2026-12-05T10:05:00Z\"},"
             "{\"name\":\"DCGM_FI_DEV_ECC_SBE_VOL_TOTAL\",\"labels\":{\"gpu\":\"3\"},\"value\":40,"
             "\"ts\":\"2026-12-05T10:00:00Z\"}]}");
    ck_assert_str_eq(top_class(r), "gpu_sram_ecc_rate");
    json_decref(r);
    /* the same scrape pasted into events as Prometheus text (ms stamps) */
    expect_top("{\"events\":[\"DCGM_FI_DEV_ECC_SBE_VOL_TOTAL{gpu=\\\"3\\\"} 900 1796378700000\","
               "\"DCGM_FI_DEV_ECC_SBE_VOL_TOTAL{gpu=\\\"3\\\"} 40 1796378400000\"]}",
               "gpu_sram_ecc_rate", true);
    /* falling in time: no rate */
    expect_top("{\"events\":[\"DCGM_FI_DEV_ECC_SBE_VOL_TOTAL{gpu=\\\"3\\\"} 40 1796378700000\","
               "\"DCGM_FI_DEV_ECC_SBE_VOL_TOTAL{gpu=\\\"3\\\"} 900 1796378400000\"]}",
               "gpu_sram_ecc_rate", false);
}
END_TEST

START_TEST(slowdown_needs_a_software_change)
{
    const char *slow = "\"job_log\":[\"step_time=0.41s\",\"step_time=0.62s\"],"
                       "\"kernel_log\":[],\"slurm\":{\"node_state\":[\"ALLOCATED\"]}";
    char buf[512];
    snprintf(buf, sizeof buf, "{\"node\":\"n1\",%s}", slow);
    json_t *r = diag(buf);
    ck_assert_str_eq(top_class(r), "healthy"); /* no change on record */
    json_decref(r);
    snprintf(buf, sizeof buf,
             "{\"node\":\"n1\",\"events\":[\"apt: nvidia driver upgraded 550.90 -> 570.86\"],%s}",
             slow);
    r = diag(buf);
    ck_assert_str_eq(top_class(r), "inconclusive");
    ck_assert_str_eq(json_string_value(json_object_get(top(r), "scope")), "node");
    json_decref(r);
    /* the same change, the same speed after it */
    expect_top("{\"node\":\"n1\",\"events\":[\"apt: nvidia driver upgraded 550.90 -> 570.86\"],"
               "\"job_log\":[\"1510 samples/s before\",\"1507 samples/s after\"],"
               "\"kernel_log\":[],\"slurm\":{\"node_state\":[\"allocated\"]}}",
               "healthy", true);
}
END_TEST

START_TEST(rejects_slowdown_rule_without_its_change)
{
    fm_err e = load_bad("version: 1\nsignatures: []\nrules:\n  - {id: x, type: "
                        "slowdown_after_change, reference: 'x', pattern: "
                        "'(?<key>t)=(?<val>\\d+)'}\n");
    ck_assert_int_eq(e.code, FM_ERR_INVALID);
}
END_TEST

/* GPUs busy and then idle in the last samples of a RUNNING job are a
 * stall (fell_from); idle from the start they are not.  A power limit is
 * judged host by host: the node's GPUs set alike below its peers'. */
START_TEST(drop_after_work_and_node_against_peers)
{
    static const char *const hung =
        "{\"slurm\":{\"jobs\":[{\"job_id\":1,\"state\":\"RUNNING\",\"nodes\":\"n1\"}]},"
        "\"metrics\":["
        "{\"name\":\"DCGM_FI_DEV_GPU_UTIL\",\"labels\":{\"gpu\":\"0\",\"hostname\":\"n1\"},"
        "\"value\":%s,\"ts\":\"2026-12-06T00:00:00Z\"},"
        "{\"name\":\"DCGM_FI_DEV_GPU_UTIL\",\"labels\":{\"gpu\":\"0\",\"hostname\":\"n1\"},"
        "\"value\":0,\"ts\":\"2026-12-06T01:00:00Z\"},"
        "{\"name\":\"DCGM_FI_DEV_GPU_UTIL\",\"labels\":{\"gpu\":\"0\",\"hostname\":\"n1\"},"
        "\"value\":0,\"ts\":\"2026-12-06T02:00:00Z\"},"
        "{\"name\":\"DCGM_FI_DEV_GPU_UTIL\",\"labels\":{\"gpu\":\"1\",\"hostname\":\"n1\"},"
        "\"value\":%s,\"ts\":\"2026-12-06T00:00:00Z\"},"
        "{\"name\":\"DCGM_FI_DEV_GPU_UTIL\",\"labels\":{\"gpu\":\"1\",\"hostname\":\"n1\"},"
        "\"value\":0,\"ts\":\"2026-12-06T01:00:00Z\"},"
        "{\"name\":\"DCGM_FI_DEV_GPU_UTIL\",\"labels\":{\"gpu\":\"1\",\"hostname\":\"n1\"},"
        "\"value\":0,\"ts\":\"2026-12-06T02:00:00Z\"}]}";
    char buf[2048];
    snprintf(buf, sizeof buf, hung, "95", "93");
    expect_top(buf, "job_hung", true);
    snprintf(buf, sizeof buf, hung, "0", "0");
    expect_top(buf, "job_hung", false);
    static const char *const lim =
        "{\"node\":\"n1\",\"metrics\":["
        "{\"name\":\"DCGM_FI_DEV_POWER_MGMT_LIMIT\",\"labels\":{\"gpu\":\"0\",\"hostname\":\"n1\"},"
        "\"value\":%s},"
        "{\"name\":\"DCGM_FI_DEV_POWER_MGMT_LIMIT\",\"labels\":{\"gpu\":\"1\",\"hostname\":\"n1\"},"
        "\"value\":%s},"
        "{\"name\":\"DCGM_FI_DEV_POWER_MGMT_LIMIT\",\"labels\":{\"gpu\":\"0\",\"hostname\":\"n2\"},"
        "\"value\":700},"
        "{\"name\":\"DCGM_FI_DEV_POWER_MGMT_LIMIT\",\"labels\":{\"gpu\":\"1\",\"hostname\":\"n2\"},"
        "\"value\":700}]}";
    snprintf(buf, sizeof buf, lim, "400", "400");
    expect_top(buf, "gpu_power", true);
    snprintf(buf, sizeof buf, lim, "700", "700");
    expect_top(buf, "gpu_power", false);
}
END_TEST

START_TEST(boot_boundaries_make_history)
{
    static const char *const x79 = "NVRM: Xid (PCI:0000:3b:00): 79, pid=1, name=x, GPU has fallen "
                                   "off the bus.";
    /* signals around one Xid 79 line (%s), and whether it is evidence now */
    static const struct {
        const char *fmt;
        bool now;
    } cases[] = {
        /* a section of an earlier boot, before the current one's header */
        {"{\"kernel_log\":[\"$ journalctl -k -b -1\",\"Dec 03 02:14:51 n kernel: %s\","
         "\"$ journalctl -k -b 0\",\"Dec 05 08:00:00 n kernel: ok\"]}",
         false},
        /* the current boot's header first, the earlier boot's section after it */
        {"{\"kernel_log\":[\"$ journalctl -k -b\",\"Dec 05 08:00:00 n kernel: ok\","
         "\"$ journalctl -k -b -1\",\"Dec 03 02:14:51 n kernel: %s\"]}",
         false},
        /* dmesg's clock went back: a new boot */
        {"{\"kernel_log\":[\"[401223.5] %s\",\"[  33.1] eth0: up\"]}", false},
        /* another boot id than the current one, then the same one */
        {"{\"events\":[\"random/boot_id: 7c1e2a90-d4b8-4f0f-9e63-a5b1c2d3e4f5\"],"
         "\"kernel_log\":[\"_BOOT_ID=2b9f0c11aa3d4e7e8f1b2c3d4e5f6a7b MESSAGE=%s\"]}",
         false},
        {"{\"events\":[\"random/boot_id: 2b9f0c11-aa3d-4e7e-8f1b-2c3d4e5f6a7b\"],"
         "\"kernel_log\":[\"_BOOT_ID=2b9f0c11aa3d4e7e8f1b2c3d4e5f6a7b MESSAGE=%s\"]}",
         true},
        /* stamped before the boot uptime puts; after a stated boot time */
        {"{\"events\":[\"uptime: 14:02:11 up 2 days,  3:41\"],\"kernel_log\":["
         "\"2026-11-30T09:12:44+00:00 n kernel: %s\","
         "\"2026-12-05T14:00:00+00:00 n kernel: eth0: up\"]}",
         false},
        {"{\"events\":[\"who -b: system boot  2026-11-29 08:14\"],\"kernel_log\":["
         "\"2026-11-30T09:12:44+00:00 n kernel: %s\"]}",
         true},
        /* journalctl's separators with a label: (previous), (current, since ...) */
        {"{\"kernel_log\":[\"-- Boot 2b9e0c4f1a7d48e6b3c5d7e9f1a2b4c6 (previous) --\","
         "\"Dec 05 21:14:02 n kernel: %s\","
         "\"-- Boot 6d4c2a0e8f1b43a5b7c9d1e3f5a7b9c0 (current, since Sat 2026-12-06) --\","
         "\"Dec 06 00:03:10 n kernel: ok\"]}",
         false},
        {"{\"kernel_log\":[\"-- Boot 2b9e0c4f1a7d48e6b3c5d7e9f1a2b4c6 (previous) --\","
         "\"Dec 05 21:14:02 n kernel: %s\"]}",
         false},
        {"{\"kernel_log\":[\"-- Boot 2b9e0c4f1a7d48e6b3c5d7e9f1a2b4c6 (previous) --\","
         "\"Dec 05 21:14:02 n kernel: ok\","
         "\"-- Boot 6d4c2a0e8f1b43a5b7c9d1e3f5a7b9c0 (current) --\","
         "\"Dec 06 00:03:10 n kernel: %s\"]}",
         true},
        /* boot indexes in a pasted header */
        {"{\"kernel_log\":[\"==> boot -1 <==\",\"Dec 05 21:14:02 n kernel: %s\","
         "\"==> boot 0 <==\",\"Dec 06 00:03:10 n kernel: ok\"]}",
         false},
    };
    char buf[2048];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        snprintf(buf, sizeof buf, cases[i].fmt, x79);
        expect_top(buf, "gpu_fallen_off_bus", cases[i].now);
    }
}
END_TEST

START_TEST(injected_errors_are_the_tests)
{
    /* DCGM's samples and the injecting job's lines are no evidence */
    expect_top("{\"job_log\":[\"dcgmi test --inject --gpuid 0 -f 319 -v 4\","
               "\"Health Monitor Report: GPU 0 Memory: Fail - Volatile DBE error count 4\"],"
               "\"metrics\":[{\"name\":\"DCGM_FI_DEV_ECC_DBE_VOL_TOTAL\","
               "\"labels\":{\"gpu\":\"0\"},\"value\":4}]}",
               "gpu_ecc_uncorrectable", false);
    /* a real kernel line still counts */
    expect_top("{\"job_log\":[\"dcgmi test --inject --gpuid 0 -f 319 -v 4\"],"
               "\"kernel_log\":[\"NVRM: Xid (PCI:0000:07:00): 79, pid=1, name=x, GPU has "
               "fallen off the bus.\"]}",
               "gpu_fallen_off_bus", true);
}
END_TEST

START_TEST(nameless_prometheus_answers_take_the_query_name)
{
    /* avg_over_time keeps the unit: read as a summary of the selector */
    json_t *r = diag("{\"events\":[\"avg_over_time(DCGM_FI_DEV_GPU_UTIL{hostname=\\\"n\\\"}[6h]) "
                     "-> {\\\"data\\\":{\\\"result\\\":[{\\\"metric\\\":{\\\"gpu\\\":\\\"0\\\"},"
                     "\\\"value\\\":[1,\\\"0\\\"]},{\\\"metric\\\":{\\\"gpu\\\":\\\"1\\\"},"
                     "\\\"value\\\":[1,\\\"0\\\"]}]}}\"]}");
    ck_assert_int_eq(
        json_integer_value(json_object_get(json_object_get(r, "signals_seen"), "metrics")), 2);
    json_decref(r);
    /* a rate changes the unit: no name, no samples */
    r = diag("{\"events\":[\"avg_over_time(rate(X_total[5m])[1h:]) -> "
             "{\\\"data\\\":{\\\"result\\\":[{\\\"metric\\\":{\\\"gpu\\\":\\\"0\\\"},"
             "\\\"value\\\":[1,\\\"0\\\"]}]}}\"]}");
    ck_assert_int_eq(
        json_integer_value(json_object_get(json_object_get(r, "signals_seen"), "metrics")), 0);
    json_decref(r);
}
END_TEST

START_TEST(rejects_boot_signatures_without_captures)
{
    /* a boot id needs its val, uptime its key (days) too */
    static const char *const bad[] = {
        "version: 1\nsignatures:\n  - {id: b, boot: id, source: kernel_log, pattern: "
        "'_BOOT_ID=[0-9a-f]+'}\nrules: []\n",
        "version: 1\nsignatures:\n  - {id: b, boot: uptime, source: events, pattern: "
        "'up (?<val>\\d+) min'}\nrules: []\n"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ck_assert_int_eq(load_bad(bad[i]).code, FM_ERR_INVALID);
}
END_TEST

/* A history entry's attempt is a count or a label (a timestamp, "retry-2"):
 * both are accepted, a negative count or a label past 64 characters is not,
 * and every other check of the entry still holds. */
START_TEST(history_attempt_integer_or_label)
{
    int ti = fm_tool_index("diagnose");
    ck_assert_int_ge(ti, 0);
    json_t *schema = json_loads(fm_tool_table[ti].input_schema, 0, NULL);
    ck_assert_ptr_nonnull(schema);
    static const char *const good[] = {
        "{\"history\":[{\"attempt\":2,\"error\":\"Xid 79\"}]}",
        "{\"history\":[{\"attempt\":\"2026-12-07T03:10:00Z\",\"error\":\"Xid 79\"}]}"};
    static const char *const bad[] = {
        "{\"history\":[{\"attempt\":-1}]}",
        "{\"history\":[{\"attempt\":"
        "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}]}",
        "{\"history\":[{\"attempt\":1.5}]}", "{\"history\":[{\"attempt\":\"2\",\"node\":7}]}"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        json_t *v = json_pack("{s:o}", "signals", json_loads(good[i], 0, NULL));
        fm_err e = {0};
        ck_assert_msg(fm_schema_validate(schema, v, &e) == 0, "%s: %s", good[i], e.text);
        json_t *r = diag(good[i]);
        ck_assert_ptr_nonnull(r);
        json_decref(r);
        json_decref(v);
    }
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_t *v = json_pack("{s:o}", "signals", json_loads(bad[i], 0, NULL));
        fm_err e = {0};
        ck_assert_msg(fm_schema_validate(schema, v, &e) != 0, "%s accepted", bad[i]);
        json_decref(v);
    }
    json_decref(schema);
}
END_TEST

static Suite *diagnose_suite(void)
{
    Suite *s = suite_create("diagnose");
    TCase *tc = tcase_create("engine");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, loads_real_catalog);
    tcase_add_test(tc, taxonomy_copy_matches_shared);
    tcase_add_test(tc, rejects_unknown_class);
    tcase_add_test(tc, rejects_bad_regex_with_line);
    tcase_add_test(tc, rejects_schema_violation);
    tcase_add_test(tc, history_attempt_integer_or_label);
    tcase_add_test(tc, signatures_d_adds_without_rebuild);
    tcase_add_test(tc, single_weak_signal_never_acts);
    tcase_add_test(tc, many_weak_signals_stay_below_report);
    tcase_add_test(tc, destructive_needs_corroboration);
    tcase_add_test(tc, decisive_xid79_acts_alone_and_is_never_a_reset);
    tcase_add_test(tc, xid_code_decides_class);
    tcase_add_test(tc, dbe_explains_remap_pending);
    tcase_add_test(tc, oom_forward_vs_backward_by_traceback);
    tcase_add_test(tc, several_jobs_failing_on_one_node_point_at_the_node);
    tcase_add_test(tc, history_follows_job);
    tcase_add_test(tc, same_step_different_errors_points_at_one_cause);
    tcase_add_test(tc, ranks_disagreeing_about_a_collective);
    tcase_add_test(tc, counters_need_a_rate);
    tcase_add_test(tc, metric_pairs_join_on_the_gpu);
    tcase_add_test(tc, neighbour_samples_do_not_blame_this_node);
    tcase_add_test(tc, input_bounds);
    tcase_add_test(tc, evidence_is_clipped_and_bounded);
    tcase_add_test(tc, taxonomy_override_and_state_string);
    tcase_add_test(tc, hostlists);
    tcase_add_test(tc, unknown_xid_is_inconclusive_never_healthy);
    tcase_add_test(tc, healthy_needs_positive_evidence);
    tcase_add_test(tc, xid154_recovery_action_is_parsed_and_used);
    tcase_add_test(tc, phrasings_by_meaning);
    tcase_add_test(tc, bulk_scan_counts_lines);
    tcase_add_test(tc, mca_status_power_reference_and_host_grouping);
    tcase_add_test(tc, node_that_answers_now_is_not_unreachable);
    tcase_add_test(tc, rejects_marker_condition_outside_explains);
    tcase_add_test(tc, samples_in_time_order_and_as_pasted_text);
    tcase_add_test(tc, slowdown_needs_a_software_change);
    tcase_add_test(tc, rejects_slowdown_rule_without_its_change);
    tcase_add_test(tc, boot_boundaries_make_history);
    tcase_add_test(tc, drop_after_work_and_node_against_peers);
    tcase_add_test(tc, injected_errors_are_the_tests);
    tcase_add_test(tc, nameless_prometheus_answers_take_the_query_name);
    tcase_add_test(tc, rejects_boot_signatures_without_captures);
    suite_add_tcase(s, tc);
    return s;
}

FM_TEST_MAIN(diagnose_suite)
