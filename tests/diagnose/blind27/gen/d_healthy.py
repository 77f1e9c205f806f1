from lib import *

# H1 Xid 79 two days ago, GPU replaced, clean now
ev = [(30, "kernel", "NVRM: Xid (PCI:0000:c3:00): 79, pid=70112, name=python, GPU has fallen off the bus."),
      (32, "slurmd", "error: NHC: gpu count 7 != 8, draining"),
      (240, "systemd", "Stopping Slurm node daemon..."),
      (242, "systemd-shutdown", "Powering off."),
      (1500, "kernel", "Linux version 5.14.0-503.14.1.el9_5.x86_64 (mockbuild@x86-64-01) #1 SMP PREEMPT_DYNAMIC"),
      (1500.5, "kernel", "NVRM: loading NVIDIA UNIX Open Kernel Module for x86_64  570.158.01  Release Build"),
      (1502, "nvidia-fabricmanager", "Successfully configured all the available NVSwitches to route GPU NVLink traffic. NVLink Peer-to-Peer support will be enabled once the GPUs are successfully registered with the NVLink fabric."),
      (1530, "dcgm-diag", "dcgmi diag -r 3: Deployment PASS, Integration PASS (PCIe), Hardware PASS (GPU Memory, Diagnostic, Targeted Stress, Targeted Power, Memory Bandwidth), Stress PASS"),
      (1545, "slurmd", "slurmd version 24.11.5 started"),
      (1546, "slurmctld", "node h100-r01-n09 returned to service (scontrol update state=resume by ops/mhernandez, reason 'GPU SN 1654823009981 swapped, RMA-7731')")]
scen("b27-healthy-xid79-then-gpu-swap-clean",
     "h100-r01-n09: Xid 79 two days ago, node powered off, GPU swapped under RMA, diag level 3 passes, node resumed and clean for 20 h",
     """Label healthy: the Xid 79 is historic; it was followed by a power-off, a GPU replacement, a clean
dcgmi diag -r 3 and 20 h of clean operation. Time order decides: error, repair, clean. Hard negative
for engines that fire on any Xid 79 in the window. Format: syslog across a power cycle, dcgmi diag
summary, Slurm resume. Driver 570 open kernel module.""",
     {"node": "h100-r01-n09",
      "kernel_log": timeline("h100-r01-n09", T("2026-12-05 08:00:00"), 46, 330, ev, seed=201),
      "metrics": [M("DCGM_FI_DEV_XID_ERRORS", "h100-r01-n09", g, 0) for g in (0, 6)] +
                 [M("DCGM_FI_DEV_GPU_TEMP", "h100-r01-n09", 6, 64), M("DCGM_FI_DEV_GPU_UTIL", "h100-r01-n09", 6, 97)],
      "slurm": {"node_state": ["ALLOCATED"]}},
     "healthy", "node", False, tags=["time", "long"])

# H3 admin drain for kernel upgrade
scen("b27-healthy-admin-drain-kernel-upgrade",
     "b200-k4-11 DRAIN with reason 'kernel 6.8.0-64 rollout' set by an admin; GPUs idle, all health checks clean",
     """Label healthy: the drain is an administrative action (reason text, admin user), not a fault;
dcgmi health is clean and GPUs idle at low temperature. Alarming-looking DRAIN state.
Format: scontrol show node, dcgmi health -c.""",
     {"node": "b200-k4-11",
      "events": ["$ scontrol show node b200-k4-11 | grep -E 'State|Reason'\n   State=IDLE+DRAIN ThreadsPerCore=1 TmpDisk=0 Weight=1 Owner=N/A MCS_label=N/A\n   Reason=kernel 6.8.0-64 rollout, batch 3/7 [root@2026-12-07T06:00:12]",
                 "$ dcgmi health -c\n+---------------------------+-------------------+\n| Health Monitor Report                         |\n+===========================+===================+\n| Overall Health            | Healthy           |\n+---------------------------+-------------------+"],
      "metrics": [M("DCGM_FI_DEV_GPU_TEMP", "b200-k4-11", g, 31 + g, "NVIDIA B200", hk="hostname") for g in (0, 7)],
      "slurm": {"node_state": ["IDLE", "DRAIN"], "reason": "kernel 6.8.0-64 rollout, batch 3/7"}},
     "healthy", "node", False)

# H4 burn-in temperature during diag
ev = [(10, "dcgm-diag", "Running dcgmi diag -r 4 (targeted power 700 W, 30 min)"),
      (25, "dcgm-diag", "Targeted Power: GPU 0 holding 700 W, clocks event reason SW Power Cap (expected at this target)"),
      (41, "dcgm-diag", "Targeted Power: Pass  Targeted Stress: Pass  Memory Bandwidth: Pass  EUD: Pass")]
scen("b27-healthy-burnin-hot-but-passing",
     "new H100 node in burn-in: 86-88 C and SW power cap during dcgmi diag -r 4 targeted power test, every test passes, temps back to 33 C after",
     """Label healthy: high temperature and power-cap clock events are expected during a deliberate power
stress test; below 90 C, all tests pass, and idle temperatures afterwards are normal. Hard negative
for temperature/clock-event keyword matching. Format: dcgmi diag, DCGM metric samples.""",
     {"node": "h100-new-07",
      "kernel_log": timeline("h100-new-07", T("2026-12-07 09:00:00"), 1.5, 50, ev, seed=204),
      "metrics": [M("DCGM_FI_DEV_GPU_TEMP", "h100-new-07", 0, 33), M("DCGM_FI_DEV_GPU_TEMP", "h100-new-07", 5, 34),
                  M("DCGM_FI_DEV_CLOCKS_EVENT_REASONS", "h100-new-07", 0, 1)],
      "events": ["during test (09:25): max GPU temp 88 C, avg 86 C; after test (10:30): 33-35 C idle"]},
     "healthy", "node", False, tags=["time"])

# H5 IB flaps during announced switch firmware window, now active
ev = [(120 + i, "kernel", "mlx5_core 0000:3b:00.0 mlx5_1: Port: 1 Link DOWN" if i % 2 == 0 else "mlx5_core 0000:3b:00.0 mlx5_1: Port: 1 Link ACTIVE") for i in range(4)]
ev += [(118, "logger", "MAINT CHG-20931 leaf-sw-k9-2 NVOS upgrade 02:00-02:30 UTC, expect link bounces"),
       (150, "logger", "MAINT CHG-20931 done")]
scen("b27-healthy-ib-bounce-in-change-window",
     "b200-k9-03: two IB link down/up bounces during an announced leaf-switch firmware window; Active at 400 Gb/s for 9 h since",
     """Label healthy: link down/up inside an announced switch maintenance window, link Active afterwards
with no further events for 9 h and a clean NCCL test. Time order decides. Hard negative for
ib_link_down / nic_flapping. Format: mlx5 kernel lines, ibstat, nccl-tests.""",
     {"node": "b200-k9-03",
      "kernel_log": timeline("b200-k9-03", T("2026-12-06 00:00:00"), 12, 230, ev, seed=205),
      "events": ["$ ibstat mlx5_1 | grep -E 'State|Rate'\n\t\tState: Active\n\t\tPhysical state: LinkUp\n\t\tRate: 400",
                 "all_reduce_perf -b 8G -e 8G (16 nodes incl. b200-k9-03) at 11:40: busbw 371.2 GB/s"]},
     "healthy", "node", False, tags=["time", "long"])

# H6 GB200 boot with fabric manager/IMEX startup noise
ev = [(0.2, "kernel", "NVRM: loading NVIDIA UNIX Open Kernel Module for aarch64  580.82.07  Release Build"),
      (0.3, "kernel", "nvidia-nvlink: Nvlink Core is being initialized, major device number 234"),
      (0.9, "nvidia-imex", "IMEX version 580.82.07 is running with the following configuration options"),
      (1.0, "nvidia-imex", "Connecting to 17 peer IMEX daemons... (0/17) waiting"),
      (1.6, "nvidia-imex", "[WARN] Failed to connect to peer 10.7.0.12: connection refused (retry 1)"),
      (2.4, "nvidia-imex", "Connection established to all 17 peers; IMEX domain READY"),
      (2.5, "nvidia-persistenced", "Started (2314)"),
      (3.0, "kernel", "NVRM: GPU0 nvAssertFailedNoLog: Assertion failed: 0 @ g_kern_gmmu_nvoc.h:2011"),
      (4.0, "nvidia-fabricmanager", "fabric state: Completed, cliqueId 3, clusterUuid 9d5a...")]
scen("b27-healthy-gb200-boot-imex-retries",
     "GB200 tray nvl72-b02-t11 after reboot: IMEX peer retries, one nvAssertFailedNoLog line, then domain READY and fabric Completed",
     """Label healthy: boot-time IMEX connection retries resolve within seconds, fabric registration
completes, and a one-off nvAssertFailedNoLog during init with no Xid is not a fault by itself.
Hard negative (warnings, 'Failed to connect', 'Assertion failed'). Format: journald short-iso.""",
     {"node": "nvl72-b02-t11",
      "kernel_log": timeline("nvl72-b02-t11", T("2026-12-07 05:00:00"), 4, 120, ev, style="iso", seed=206, noise=K8S_NOISE),
      "events": ["$ nvidia-smi -q | grep -A2 Fabric\n    Fabric\n        State                             : Completed\n        Status                            : Success"]},
     "healthy", "node", False)

# H7 static nonzero PCIe replay counter
scen("b27-healthy-pcie-replay-static-week",
     "a100-q3-02: PCIe replay counter 212 on GPU 3 but unchanged for seven days (from a riser swap in October)",
     """Label healthy: replay counter is cumulative; a static non-zero value means no current replays.
Hard negative for threshold-on-absolute-value engines. Format: CSV of daily samples, ticket note.""",
     {"node": "a100-q3-02",
      "events": ["date,gpu,DCGM_FI_DEV_PCIE_REPLAY_COUNTER"] + [f"2026-12-0{d},3,212" for d in range(1, 8)] +
                ["note in asset db: 2026-10-14 riser R3 replaced after replay storm (counter frozen since)"],
      "metrics": [M("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "a100-q3-02", 3, 212, "NVIDIA A100-SXM4-40GB")]},
     "healthy", "node", False)

# H8 sshd brute force + cron noise multi-day
ev = [(m, "sshd", f"Failed password for invalid user {u} from 185.{a}.{b}.7 port {p} ssh2") for m, u, a, b, p in
      [(100, "admin", 220, 101, 50211), (100.1, "oracle", 220, 101, 50213), (101, "test", 220, 101, 50219),
       (1400, "ubuntu", 91, 44, 41822), (1400.2, "root", 91, 44, 41830), (2800, "gpuadmin", 45, 9, 39102)]]
ev += [(2801, "fail2ban.actions", "NOTICE  [sshd] Ban 185.45.9.7")]
scen("b27-healthy-ssh-bruteforce-noise",
     "login-facing l40s-ws-01: three days of syslog with failed ssh logins and fail2ban bans; GPUs and jobs normal",
     """Label healthy: authentication failures on sshd from the internet are security noise, not a GPU
node fault and not a job credential problem. No GPU/kernel errors in 72 h. Format: syslog.""",
     {"node": "l40s-ws-01",
      "kernel_log": timeline("l40s-ws-01", T("2026-12-03 00:00:00"), 72, 320, ev, seed=208),
      "metrics": [M("DCGM_FI_DEV_GPU_TEMP", "l40s-ws-01", 0, 55, "NVIDIA L40S"), M("DCGM_FI_DEV_XID_ERRORS", "l40s-ws-01", 0, 0, "NVIDIA L40S")],
      "slurm": {"node_state": ["MIXED"]}},
     "healthy", "node", False, tags=["long"])

# H9 row remap done after reset
ev = [(40, "kernel", "NVRM: Xid (PCI:0000:86:00): 63, pid='<unknown>', name=<unknown>, Row Remapper: New row (0x0000000000b2210e) marked for remapping, reset gpu to activate."),
      (300, "slurmctld", "drain h100-r11-n05 reason=remap pending (auto)"),
      (420, "nvidia-smi", "GPU 00000000:86:00.0 was successfully reset."),
      (421, "slurmctld", "update_node: node h100-r11-n05 state set to IDLE (resume by ops)")]
scen("b27-healthy-remap-completed-after-reset",
     "h100-r11-n05: Xid 63 yesterday, node drained when idle, GPU reset done, Pending now No; 18 h of clean jobs",
     """Label healthy: the pending remap was activated by the reset (Pending: No, failure No, one
correctable remapped row), node resumed and ran jobs cleanly. Time order decides; the Xid 63 is
resolved. Format: syslog, nvidia-smi -q ROW_REMAPPER section.""",
     {"node": "h100-r11-n05",
      "kernel_log": timeline("h100-r11-n05", T("2026-12-06 02:00:00"), 26, 280, ev, seed=209),
      "events": ["$ nvidia-smi -q -i 6 -d ROW_REMAPPER\n    Remapped Rows\n        Correctable Error                 : 1\n        Uncorrectable Error               : 0\n        Pending                           : No\n        Remapping Failure Occurred        : No"],
      "metrics": [M("DCGM_FI_DEV_ROW_REMAP_PENDING", "h100-r11-n05", 6, 0)], "slurm": {"node_state": ["ALLOCATED"]}},
     "healthy", "node", False, tags=["time", "long"])

# H10 idle clock events
scen("b27-healthy-idle-clock-event-bits",
     "new Grafana panel flags 'clock events active' on all 8 GPUs of h200-c-30; the bits are GPU Idle and SW power cap at 0% load",
     """Label healthy: CLOCKS_EVENT_REASONS value 0x1 (GPU idle) / 0x5 (idle + SW power cap) on an idle
node is normal; no thermal or power-brake bits. Hard negative for 'throttle non-zero' rules.
Format: dcgm-exporter samples (stock field name), chat message.""",
     {"node": "h200-c-30",
      "metrics": [M("DCGM_FI_DEV_CLOCKS_EVENT_REASONS", "h200-c-30", g, 1 if g % 2 else 5, "NVIDIA H200", hk="hostname") for g in range(8)] +
                 [M("DCGM_FI_DEV_GPU_UTIL", "h200-c-30", 0, 0, "NVIDIA H200", hk="hostname"), M("DCGM_FI_DEV_GPU_TEMP", "h200-c-30", 0, 29, "NVIDIA H200", hk="hostname")],
      "events": ["#infra 2026-12-07 08:12 <yuki> new panel shows clock events on h200-c-30 all GPUs red?? is it throttle? nobody runs on it now",
                 "slurm: h200-c-30 IDLE since 06:40"],
      "slurm": {"node_state": ["IDLE"]}},
     "healthy", "node", False, tags=["human"])

# H11 kubelet restart NotReady blip
ev = [(200, "systemd", "Stopping kubelet.service - kubelet: The Kubernetes Node Agent..."),
      (200.1, "systemd", "kubelet.service: Deactivated successfully."),
      (200.5, "systemd", "Started kubelet.service - kubelet: The Kubernetes Node Agent."),
      (200.6, "kubelet", "I1207 03:20:36.112233    9001 server.go:487] \"Kubelet version\" kubeletVersion=\"v1.32.9\""),
      (201.0, "kubelet", "I1207 03:21:00.010101    9001 kubelet_node_status.go:75] \"Successfully registered node\" node=\"h100-k8s-12\""),
      (201.1, "kubelet", "E1207 03:21:00.050505    9001 kubelet.go:2902] \"Container runtime network not ready\" networkReady=\"NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized\""),
      (201.6, "kubelet", "I1207 03:21:36.000001    9001 kubelet_node_status.go:538] \"Fast updating node status as it just became ready\"")]
scen("b27-healthy-kubelet-upgrade-notready-blip",
     "h100-k8s-12: kubelet upgraded to 1.32.9 by config management, node NotReady for 70 s, CNI not ready briefly, then Ready for 5 h",
     """Label healthy: a planned kubelet restart with a short NotReady and transient 'cni plugin not
initialized' is expected; node Ready since, pods running. Hard negative for node_unreachable.
Format: journald (systemd + kubelet klog lines), kubectl events.""",
     {"node": "h100-k8s-12",
      "kernel_log": timeline("h100-k8s-12", T("2026-12-07 00:00:00"), 8, 200, ev, style="json", seed=211, noise=K8S_NOISE),
      "events": ["Normal  NodeNotReady  5h  node-controller  Node h100-k8s-12 status is now: NodeNotReady",
                 "Normal  NodeReady     5h  kubelet          Node h100-k8s-12 status is now: NodeReady",
                 "ansible: TASK [kubelet : restart kubelet] changed: [h100-k8s-12]"]},
     "healthy", "node", False, tags=["time", "long"])

# H12 memory temp high-ish but within spec
scen("b27-healthy-hbm-88c-under-load",
     "alert 'GPU memory temp > 85' on b200-k2-14 during a training run: HBM 88 C, GPU core 74 C, no clock events beyond power cap, step time normal",
     """Label healthy: HBM temperature 88 C is under the memory slowdown threshold (nvidia-smi shows
Memory Max Operating Temp 95 C), no thermal clock events, throughput equal to other nodes. A
site-specific alert threshold fired, not a fault. Format: Alertmanager webhook JSON, nvidia-smi -q
TEMPERATURE section.""",
     {"node": "b200-k2-14",
      "events": [json.dumps({"receiver": "gpu-oncall", "status": "firing", "alerts": [{"status": "firing", "labels": {"alertname": "GpuMemTempHigh", "hostname": "b200-k2-14", "gpu": "3", "severity": "warning"}, "annotations": {"summary": "GPU memory temp 88C > 85C"}, "startsAt": "2026-12-07T11:02:30Z"}]}),
                 "$ nvidia-smi -q -d TEMPERATURE -i 3\n    Temperature\n        GPU Current Temp                  : 74 C\n        GPU T.Limit Temp                  : 13 C\n        GPU Shutdown T.Limit Temp         : -5 C\n        GPU Slowdown T.Limit Temp         : -2 C\n        GPU Max Operating T.Limit Temp    : 0 C\n        Memory Current Temp               : 88 C\n        Memory Max Operating Temp         : 95 C",
                 "job 908812 step time: b200-k2-14 ranks 0.611 s/it, other nodes 0.609-0.614 s/it"],
      "metrics": [M("DCGM_FI_DEV_MEMORY_TEMP", "b200-k2-14", 3, 88, "NVIDIA B200", hk="hostname"), M("DCGM_FI_DEV_GPU_TEMP", "b200-k2-14", 3, 74, "NVIDIA B200", hk="hostname"),
                  M("DCGM_FI_DEV_CLOCKS_EVENT_REASONS", "b200-k2-14", 3, 4, "NVIDIA B200", hk="hostname")]},
     "healthy", "node", False)

# H13 NCCL WARN benign + completed job, per-rank timing equal
scen("b27-healthy-nccl-warn-job-completed",
     "job log full of NCCL WARN lines about IB async 'port active' events and a missing topology file, but the job COMPLETED with normal bandwidth",
     """Label healthy: NCCL warnings about async port-active events (link came up) and a missing
NCCL_TOPO_FILE fallback are informational; the job finished COMPLETED, bus bandwidth nominal, no
node errors. Hard negative for NCCL-keyword matching. Format: NCCL log lines, sacct.""",
     {"node": "h200-c-17",
      "job_log": ["h200-c-17:1123:1201 [0] NCCL WARN NET/IB : Got async event : port active",
                  "h200-c-17:1123:1123 [0] NCCL WARN Could not open topology file /etc/nccl/topo.xml, using auto-detection",
                  "h200-c-17:1123:1123 [0] NCCL INFO NET/IB : Using [0]mlx5_0:1/IB [1]mlx5_1:1/IB [2]mlx5_2:1/IB [3]mlx5_3:1/IB ; OOB ibp12s0:10.60.1.17<0>",
                  "step 20000/20000 done, avg busbw 362 GB/s",
                  "Training completed. Saved final checkpoint."],
      "slurm": {"node_state": ["IDLE"], "jobs": [{"job_id": 903999, "state": "COMPLETED", "exit_code": "0:0", "nodes": "h200-c-[17-20]"}]}},
     "healthy", "node", False)
