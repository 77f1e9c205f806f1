from lib import *

# I1 unknown Xid code, driver 590
ev = [(333, "kernel", "NVRM: Xid (PCI:0000:2c:00): 211, pid=40021, name=python3, Ch 00000021 (0x00000000 0x0001a2b0 0x00000000 0x00000000)")]
scen("b27-inc-unknown-xid-211-driver-590",
     "b200-z1-04 on driver 590: one Xid 211 that is not in the published catalog; job kept running, no other anomaly",
     """Label inconclusive (scope node, destructive_ok false): the code is not in NVIDIA's Xid catalog as
published, the driver is newer than the catalog, and nothing else explains it. An engine must not
call this healthy (it is an anomaly) nor map it to a class; escalate to a human / NVIDIA.
Format: standard NVRM Xid line shape; syslog noise over 10 h.""",
     {"node": "b200-z1-04",
      "kernel_log": timeline("b200-z1-04", T("2026-12-06 12:00:00"), 10, 200, ev, seed=301) +
                    ["(nvidia-smi -q header) Driver Version : 590.18   CUDA Version : 13.1"],
      "slurm": {"node_state": ["MIXED"], "jobs": [{"job_id": 909100, "state": "RUNNING", "nodes": "b200-z1-04"}]}},
     "inconclusive", "node", False, tags=["long"])

# I2 SIGKILL with no OOM, no preemption
scen("b27-inc-sigkill-no-oom-no-scancel",
     "job step killed by signal 9 at 14:03 with no OOM record, no scancel, no preemption, no time limit, node clean",
     """Label inconclusive (scope job): exit 0:9 with no memcg OOM line, no slurmctld cancel/preempt, far
from the time limit, and no node errors. Nothing in the class list explains who killed it.
Format: sacct, slurmctld and kernel log excerpts.""",
     {"node": "h100-r08-n03",
      "slurm": {"node_state": ["MIXED"], "jobs": [{"job_id": 909201, "state": "FAILED", "exit_code": "0:9", "nodes": "h100-r08-n03", "elapsed": "03:12:40", "time_limit": "2-00:00:00"}]},
      "job_log": ["step 18110 loss 1.402", "srun: error: h100-r08-n03: task 0: Killed", "srun: Terminating StepId=909201.0"],
      "events": ["$ journalctl -k --since 13:55 --until 14:10 | grep -iE 'oom|killed process' -> (no matches)",
                 "$ grep 909201 /var/log/slurmctld.log -> only 'sched: Allocate' and '_job_complete ... WTERMSIG 9'",
                 "$ sacct -j 909201 -o ReqMem,MaxRSS -> 500G, 61G",
                 "dcgmi health -c: Healthy; no Xid since boot"]},
     "inconclusive", "job", False)

# I3 NaN only on one node, no hw signal
scen("b27-inc-nan-loss-one-node-clean-diag",
     "three different jobs produce NaN loss only when a100-w-33 is in the nodelist; no Xid, ECC zero, dcgmi diag -r 3 passes",
     """Label inconclusive (scope node): a pattern that suggests silent data corruption on one node, but
no class signal (no Xid, no ECC, no throttling, diag passes). Worth a human and a longer vendor
diag; no destructive action with confidence. Format: chat transcript, dcgmi output.""",
     {"node": "a100-w-33",
      "events": ["#ml-infra 2026-12-04",
                 "<farah> 3rd time this week loss goes nan around step 2-5k and every time a100-w-33 is in the job",
                 "<farah> jobs 905112 (bert), 906001 (diffusion), 906488 (llm) -- other nodes fine, same code reruns fine without w-33",
                 "<tomas> dmesg on w-33 clean, no xid since 40 days. ecc vol/agg 0. dcgmi diag -r 3 PASS all",
                 "<tomas> temps 70s, clocks normal. i dont see anything",
                 "<farah> ok but it's not random..."],
      "metrics": [M("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "a100-w-33", g, 0, "NVIDIA A100-SXM4-80GB") for g in (0, 4)] +
                 [M("DCGM_FI_DEV_XID_ERRORS", "a100-w-33", 0, 0, "NVIDIA A100-SXM4-80GB")]},
     "inconclusive", "node", False, tags=["human"])

# I4 Lustre stalls cluster-wide
ev = [(m, "kernel", msg) for m, msg in [
    (120, "Lustre: 8812:0:(client.c:2338:ptlrpc_expire_one_request()) @@@ Request sent has timed out for slow reply: [sent 1764990120/real 1764990120] req@ffff9a2c x1781 o4->scratch-OST0012-osc-ffff9a@10.9.0.42@o2ib:6/4 lens 488/448 e 0 to 1 dl 1764990227 ref 2 fl Rpc:XQr/2/ffffffff rc 0/-1"),
    (121, "Lustre: scratch-OST0012-osc-ffff9a: Connection to scratch-OST0012 (at 10.9.0.42@o2ib) was lost; in progress operations using this service will wait for recovery to complete"),
    (126, "Lustre: scratch-OST0012-osc-ffff9a: Connection restored to 10.9.0.42@o2ib (at 10.9.0.42@o2ib)"),
    (1560, "Lustre: scratch-OST0012-osc-ffff9a: Connection to scratch-OST0012 (at 10.9.0.42@o2ib) was lost; in progress operations using this service will wait for recovery to complete"),
    (1567, "Lustre: scratch-OST0012-osc-ffff9a: Connection restored to 10.9.0.42@o2ib (at 10.9.0.42@o2ib)")]]
scen("b27-inc-lustre-ost-stalls-cluster",
     "nightly at ~02:00 all training jobs stall 5-7 min in checkpoint writes; every client logs lost/restored connection to one Lustre OST",
     """Label inconclusive (scope cluster): a storage-side stall (one OST server) hits every job; no class
in the vocabulary covers shared-filesystem faults. Not a GPU node fault, not a job bug. Escalate to
the storage team. Format: Lustre client console messages over 26 h on one representative client,
plus a list of affected jobs.""",
     {"node": "h100-r02-n01",
      "kernel_log": timeline("h100-r02-n01", T("2026-12-05 00:00:00"), 26, 260, ev, seed=304),
      "events": ["affected: every job writing to /lustre/scratch between 02:00 and 02:07 on 12-05 and 12-06 (41 jobs, 9 partitions)",
                 "lfs df: scratch-OST0012 61% used; OSS oss-06 load avg 212 during the stalls"]},
     "inconclusive", "cluster", False, tags=["long", "upstream"])

# I5 spontaneous reboots, no trace
ev = [(m, "kernel", "Linux version 6.8.0-60-generic (buildd@lcy02-amd64-017) #63-Ubuntu SMP PREEMPT_DYNAMIC") for m in (380, 745, 1110)]
ev += [(m - 0.5, "CRON", "(root) CMD (/usr/lib/sa/sa1 1 1)") for m in (380, 745, 1110)]
ev += [(m + 1, "systemd-journald", "File /var/log/journal/9f1e/system.journal corrupted or uncleanly shut down, renaming and replacing.") for m in (380, 745, 1110)]
scen("b27-inc-silent-reboots-every-6h",
     "l40s-inf-19 reboots by itself every ~6 h; journal ends mid-line each time, no panic, BMC SEL empty, node answers now",
     """Label inconclusive (scope node): three unclean reboots with no kernel panic, no MCE, no SEL entry,
no Xid; the node is reachable and IDLE now so node_unreachable does not fit. Needs hardware
investigation by a human (PSU? BMC watchdog?), not a known class. Format: journald across reboots.""",
     {"node": "l40s-inf-19",
      "kernel_log": timeline("l40s-inf-19", T("2026-12-05 00:00:00"), 20, 240, ev, seed=305),
      "events": ["$ ipmitool sel elist -> SEL has no entries", "$ last -x reboot | head -3 -> three 'reboot system boot' lines without preceding 'shutdown'",
                 "$ ping l40s-inf-19 -> ok; slurm state IDLE"],
      "slurm": {"node_state": ["IDLE"]}},
     "inconclusive", "node", False, tags=["time", "long"])

# I6 memory clock stuck with no event reason
scen("b27-inc-mem-clock-stuck-no-reason",
     "h100-r13-n02 GPU 4: memory clock 1593 MHz vs 2619 on siblings, no clock event reason set, jobs 30% slower on that GPU",
     """Label inconclusive (scope node): a performance anomaly without any reason bit, Xid or thermal/power
signal; not thermal, not power, and a single GPU being slow is not yet a multi-node straggler
pattern. Escalate with the evidence. Arguable: straggler_node if it recurs in multi-node jobs.
Format: nvidia-smi -q CLOCK section, logfmt benchmark output.""",
     {"node": "h100-r13-n02",
      "events": ["$ nvidia-smi -q -d CLOCK -i 4 | sed -n 2,6p\n    Clocks\n        Graphics                          : 1980 MHz\n        SM                                : 1980 MHz\n        Memory                            : 1593 MHz",
                 "$ nvidia-smi -q -d CLOCK -i 3 | grep Memory | head -1 -> Memory : 2619 MHz",
                 "ts=2026-12-07T07:30:00Z bench=stream gpu=4 bw_gbps=2210",
                 "ts=2026-12-07T07:31:10Z bench=stream gpu=3 bw_gbps=3180"],
      "metrics": [M("DCGM_FI_DEV_CLOCKS_EVENT_REASONS", "h100-r13-n02", 4, 0), M("DCGM_FI_DEV_MEM_CLOCK", "h100-r13-n02", 4, 1593),
                  M("DCGM_FI_DEV_MEM_CLOCK", "h100-r13-n02", 3, 2619), M("DCGM_FI_DEV_GPU_TEMP", "h100-r13-n02", 4, 58)]},
     "inconclusive", "node", False)

# I7 munge invalid credential with clock skew
ev = [(m, "slurmd", "error: Munge decode failed: Rewound credential") for m in (300, 301, 305, 420, 421)]
ev += [(299, "chronyd", "Can't synchronise: no selectable sources"), (298, "chronyd", "Source 10.0.0.2 offline"),
       (425, "slurmd", "error: slurm_unpack_received_msg: [[h200-c-40]:44011] auth_g_verify: REQUEST_LAUNCH_PROLOG has authentication error: Unspecified error")]
scen("b27-inc-munge-rewound-cred-chrony-lost",
     "h200-c-40: chrony lost all NTP sources, slurmd logs munge 'Rewound credential' and prolog launch auth errors; jobs fail to start there",
     """Label inconclusive (scope node): the failure is clock drift breaking munge authentication; the
vocabulary has no class for node time/auth infrastructure (credential_expired is a job pipeline
token problem, node_unreachable does not fit: the node answers). Escalate. Format: syslog over 10 h.""",
     {"node": "h200-c-40",
      "kernel_log": timeline("h200-c-40", T("2026-12-06 20:00:00"), 10, 190, ev, seed=307),
      "slurm": {"node_state": ["IDLE", "DRAIN"], "reason": "Prolog error",
                "jobs": [{"job_id": 909500, "state": "PENDING", "reason": "launch failed requeued held"}]},
      "events": ["$ chronyc tracking | grep 'System time' -> System time : 412.771 seconds fast of NTP time"]},
     "inconclusive", "node", False, tags=["upstream"])
