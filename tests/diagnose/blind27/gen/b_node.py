from lib import *

# 24 IB link down, ibstat + NCCL socket fallback
ev = [(100, "kernel", "mlx5_core 0000:d2:00.0 mlx5_3: Port: 1 Link DOWN"),
      (100.2, "kernel", "ib0: lost carrier"),
      (101, "kernel", "mlx5_core 0000:d2:00.0: mlx5_port_module_event:1155:(pid 0): Port 1: Cable plugged, but module has no power or is in low power mode")]
scen("b27-h100-ibstat-port-polling-socket-fallback",
     "h100-ib-14: mlx5_3 port goes Down/Polling, NCCL on the next job falls back to NET/Socket and all-reduce bus bandwidth drops from 180 to 1.7 GB/s",
     """Label ib_link_down: ibstat shows State Down / Physical state Polling on mlx5_3, kernel logs the
link down, and NCCL picks the socket transport with ~100x lower bandwidth. Format: ibstat output,
mlx5_core kernel lines, NCCL INFO/WARN text, nccl-tests output columns.""",
     {"node": "h100-ib-14",
      "kernel_log": timeline("h100-ib-14", T("2026-11-30 20:00:00"), 5, 100, ev, seed=124),
      "job_log": ["h100-ib-14:3310:3310 [0] NCCL INFO NET/IB : No device found.",
                  "h100-ib-14:3310:3310 [0] NCCL INFO NET/Socket : Using [0]bond0:10.12.4.14<0>",
                  "h100-ib-14:3310:3310 [0] NCCL INFO Using network Socket",
                  "#       size         count      type   redop    root     time   algbw   busbw #wrong",
                  "  1073741824     268435456     float     sum      -1   1152412    0.93    1.74      0"],
      "events": ["$ ibstat mlx5_3\nCA 'mlx5_3'\n\tCA type: MT4129\n\tNumber of ports: 1\n\tFirmware version: 28.43.1014\n\tPort 1:\n\t\tState: Down\n\t\tPhysical state: Polling\n\t\tRate: 10\n\t\tBase lid: 65535\n\t\tLink layer: InfiniBand"]},
     "ib_link_down", "node", True)

# 25 IB link down upstream, errors on many nodes; one is source
scen("b27-ib-source-node-among-victims",
     "64-node job dies with NCCL timeouts on 8 nodes; only b200-k9-03 has a port that went down at 04:12:07, the rest are its peers",
     """Label ib_link_down for b200-k9-03: the other nodes show only remote/timeout errors naming
b200-k9-03's address after 04:12:07; b200-k9-03's own kernel log shows mlx5_1 link down and ibstat
Down. Upstream cause on one node, victims elsewhere. Format: NCCL WARN text, Slurm sacct, UFM event
wording, mlx5 kernel lines; mixed time zones (UTC kernel, CET job log).""",
     {"node": "b200-k9-03",
      "kernel_log": ["2026-12-04T04:12:07.441+00:00 b200-k9-03 kernel: mlx5_core 0000:3b:00.0 mlx5_1: Port: 1 Link DOWN",
                     "2026-12-04T04:12:07.442+00:00 b200-k9-03 kernel: ibp59s0: lost carrier",
                     "2026-12-04T04:20:00.001+00:00 b200-k9-03 CRON[7781]: (root) CMD (/usr/lib/sa/sa1 1 1)",
                     "2026-12-04T04:30:12.000+00:00 b200-k9-03 chronyd[1211]: Selected source 10.0.0.3 (ntp3.mgmt.local)"],
      "job_log": ["2026-12-04 05:12:37 CET [rank 121 b200-k9-07] NCCL WARN NET/IB : Got completion from peer 10.50.9.3<56221> with status=12 opcode=0 len=0 vendor err 129 (Recv)",
                  "2026-12-04 05:12:37 CET [rank 18 b200-k9-11] NCCL WARN NET/IB : Got completion from peer 10.50.9.3<41137> with status=12 opcode=0 len=0 vendor err 129 (Send)",
                  "2026-12-04 05:22:39 CET [rank 40 b200-k9-20] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=771203, OpType=ALLREDUCE, NumelIn=25165824, Timeout(ms)=600000) ran for 600041 milliseconds before timing out.",
                  "2026-12-04 05:22:39 CET [rank 24 b200-k9-03] NCCL WARN NET/IB : ibv_poll_cq error 12 on mlx5_1 port 1: port is not active",
                  "2026-12-04 05:22:40 CET srun: error: b200-k9-07: tasks 120-127: Exited with exit code 1"],
      "events": ["UFM event 2026-12-04 04:12:07 UTC: Link went down: b200-k9-03 HCA-2/1 (mlx5_1) <-> leaf-sw-k9-2/23, severity Critical",
                 "$ ssh b200-k9-03 ibstat mlx5_1 | grep -E 'State|Physical'\n\t\tState: Down\n\t\tPhysical state: Disabled",
                 "other 7 nodes with errors: ibstat all ports Active, 400 Gb/sec (4X NDR)"],
      "slurm": {"jobs": [{"job_id": 899101, "state": "FAILED", "exit_code": "1:0", "nodes": "b200-k9-[01-64]"}]}},
     "ib_link_down", "node", True, tags=["upstream", "time"])

# 26 NIC flapping over many hours
ev = []
for i, m in enumerate([35, 36, 180, 181, 420, 421.5, 610, 611, 900, 900.6]):
    ev.append((m, "kernel", "mlx5_core 0000:a1:00.1 eth3: Link down" if i % 2 == 0 else "mlx5_core 0000:a1:00.1 eth3: Link up"))
    if i % 2 == 1:
        ev.append((m + 0.01, "NetworkManager", "<info>  [1764900000.%04d] device (eth3): carrier: link connected" % i))
ev.append((905, "kernel", "bond1: (slave eth3): link status definitely down, disabling slave"))
scen("b27-l40s-eth3-flaps-all-day",
     "l40s-k8s-22: eth3 (RoCE) goes down and up five times in 15 h; two Ray Train runs got NCCL timeouts, each time on this node",
     """Label nic_flapping: repeating link down/up on one interface over hours with intermittent NCCL
timeouts that follow the node; the link comes back each time (not a hard down). Format: mlx5_core
and NetworkManager journal lines, Kubernetes 1.33 node. Time order matters: pattern, not one event.""",
     {"node": "l40s-k8s-22",
      "kernel_log": timeline("l40s-k8s-22", T("2026-12-01 06:00:00"), 16, 260, ev, seed=126, noise=K8S_NOISE),
      "job_log": ["(raytrain-a) 2026-12-01 09:01:12 NCCL WARN NET/Socket : peer 10.30.2.22<52110> shut down while reading",
                  "(raytrain-b) 2026-12-01 16:10:48 Watchdog caught collective operation timeout: WorkNCCL(SeqNum=9911, OpType=ALLGATHER) ran for 1800012 milliseconds before timing out (rank on l40s-k8s-22)"]},
     "nic_flapping", "node", False, tags=["time", "long"])

# 27 node unreachable, slurmctld log
ev = [(m, "slurmctld", msg) for m, msg in [
    (10, "sched: Allocate JobId=877001 NodeList=a100-n-[100-107] #CPUs=512 Partition=gpu"),
    (200, "error: Nodes a100-n-104 not responding"),
    (205, "error: Nodes a100-n-104 not responding"),
    (210, "Killing JobId=877001 StepId=0 on failed node a100-n-104"),
    (210.1, "Requeue JobId=877044 due to failure of node a100-n-104"),
    (210.2, "_job_complete: JobId=877102 WEXITSTATUS 0 ... NODE_FAIL"),
    (215, "update_node: node a100-n-104 state set to DOWN, reason: Not responding"),
    (300, "error: Nodes a100-n-104 not responding, setting DOWN"),
]]
scen("b27-slurmctld-node-not-responding",
     "slurmctld log: a100-n-104 stops answering, three jobs on it end NODE_FAIL at once; node DOWN* and ping fails",
     """Label node_unreachable: slurmctld 'not responding', node DOWN*, several jobs fail at once,
BMC ping answers but OS does not. Format: slurmctld.log (Slurm 24.05), sinfo -R, ping/ipmitool output.""",
     {"node": "a100-n-104",
      "kernel_log": timeline("slurmctld", T("2026-11-28 00:00:00"), 6, 90, ev, style="iso", seed=127),
      "slurm": {"node_state": ["DOWN", "NOT_RESPONDING"], "reason": "Not responding",
                "jobs": [{"job_id": 877001, "state": "NODE_FAIL", "nodes": "a100-n-[100-107]"},
                         {"job_id": 877044, "state": "REQUEUED", "nodes": "a100-n-104"},
                         {"job_id": 877102, "state": "NODE_FAIL", "nodes": "a100-n-104"}]},
      "events": ["$ sinfo -R -n a100-n-104\nREASON               USER      TIMESTAMP           NODELIST\nNot responding       slurm     2026-11-28T03:35:00 a100-n-104",
                 "$ ping -c2 a100-n-104\n2 packets transmitted, 0 received, 100% packet loss",
                 "$ ipmitool -H a100-n-104-bmc chassis status | head -1\nSystem Power         : on"]},
     "node_unreachable", "node", True, tags=["long"])

# 28 k8s node NotReady, kernel panic upstream visible on serial console, pods evicted
scen("b27-k8s-node-notready-panic-console",
     "h200-k8s-31 NotReady for 25 min; serial console shows a kernel panic; all five pods on it failed together",
     """Label node_unreachable: node stopped posting status (NodeNotReady, Kubelet stopped posting),
all pods on it terminated together, SOL console shows a panic and the node has not come back. The
panic is the upstream reason; the state to act on is an unreachable node. Format: kubectl describe
node conditions, kube-controller-manager event text, serial console capture. Kubernetes 1.34.""",
     {"node": "h200-k8s-31",
      "events": ["$ kubectl get node h200-k8s-31\nNAME          STATUS     ROLES    AGE   VERSION\nh200-k8s-31   NotReady   <none>   41d   v1.34.1",
                 "Conditions:\n  Type   Status   LastHeartbeatTime               Reason              Message\n  Ready  Unknown  Sun, 06 Dec 2026 22:14:03 +0000 NodeStatusUnknown   Kubelet stopped posting node status.",
                 "Warning  NodeNotReady  25m  node-controller  Node h200-k8s-31 status is now: NodeNotReady",
                 "Normal   TaintManagerEviction  20m  taint-eviction-controller  Marking for deletion Pod llm/sft-worker-3",
                 "sol console (ipmitool sol activate) last lines:\n[1203311.000112] Kernel panic - not syncing: Fatal hardware error!\n[1203311.000115] CPU: 71 PID: 0 Comm: swapper/71 Tainted: P   OE   6.8.0-1015-nvidia\n[1203311.000120] Kernel Offset: disabled\n---[ end Kernel panic - not syncing: Fatal hardware error! ]---",
                 "pods on node: llm/sft-worker-3 Failed, llm/sft-worker-7 Failed, eval/judge-0 Failed, monitoring/dcgm-exporter-qx2lp Unknown, kube-system/cilium-7hd2k Unknown"]},
     "node_unreachable", "node", True, tags=["upstream"])

# 29 stale compute: orphan GPU memory causes OOM for next job (upstream)
scen("b27-orphan-gpu-memory-behind-oom",
     "h100-r05-n01: new job OOMs at model load; nvidia-smi shows 71 GiB held on GPU 0 by a pid from a job that ended yesterday",
     """Label stale_compute_state: the OOM is a downstream symptom; the upstream cause is an orphan
process (pid 22817, job 860010 COMPLETED 19 h ago) still holding GPU memory with no job backing it.
Not oom_batch_size: the model fits an empty 80 GB GPU (ran there before). Format: nvidia-smi process
table, sacct, ps.""",
     {"node": "h100-r05-n01",
      "job_log": ["torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.11 GiB of which 6.81 GiB is free. Process 22817 has 71.02 GiB memory in use. Including non-PyTorch memory, this process has 1.20 GiB memory in use.",
                  "  File \"/opt/app/load.py\", line 40, in load_model"],
      "events": ["$ nvidia-smi --query-compute-apps=pid,used_memory,gpu_uuid --format=csv\npid, used_memory [MiB], gpu_uuid\n22817, 72724 MiB, GPU-0c1f3e55-9a0b-4a5e-b2c1-55aa10fe77d1",
                 "$ ps -o pid,etime,user,cmd -p 22817\n  PID     ELAPSED USER     CMD\n22817  1-03:12:40 kwong    python -m vllm.entrypoints.openai.api_server --model /models/qwen-72b",
                 "$ sacct -j 860010 -o JobID,State,End,NodeList\n860010  COMPLETED  2026-12-05T19:02:11  h100-r05-n01",
                 "$ squeue -w h100-r05-n01 -u kwong\n(no jobs)"],
      "history": [{"attempt": 1, "node": "h100-r02-n03", "step": 0, "error": "none, model loaded, 61 GiB used"}],
      "slurm": {"node_state": ["MIXED"], "jobs": [{"job_id": 861550, "state": "FAILED", "exit_code": "1:0", "nodes": "h100-r05-n01"}]}},
     "stale_compute_state", "node", True, tags=["upstream"])

# 30 disk full on scratch
ev = [(250, "kernel", "EXT4-fs warning (device nvme1n1): ext4_dx_add_entry:2470: Directory (ino: 3145729) index full, reach max htree level :2"),
      (251, "slurmstepd", "error: write(): No space left on device"),
      (251.3, "slurmstepd", "error: Unable to write to /var/spool/slurmd/job870031/slurm_script: No space left on device"),
      (252, "kubelet", "eviction manager: attempting to reclaim ephemeral-storage"),
      (260, "systemd-journald", "Failed to write entry (21 items, 812 bytes) despite vacuuming, ignoring: No space left on device")]
scen("b27-a100-scratch-full-journald",
     "a100-lg-09: /local_scratch at 100% from leftover checkpoints; slurmstepd and journald both report ENOSPC",
     """Label node_disk_full: 'No space left on device' from slurmstepd and journald, df shows 100% on
the node's scratch, leftover checkpoint directories of finished jobs. Format: df -h, syslog, du.""",
     {"node": "a100-lg-09",
      "kernel_log": timeline("a100-lg-09", T("2026-11-29 00:00:00"), 5, 110, ev, seed=130),
      "events": ["$ df -h /local_scratch /\nFilesystem      Size  Used Avail Use% Mounted on\n/dev/nvme1n1    3.5T  3.5T     0 100% /local_scratch\n/dev/md0        445G  201G  222G  48% /",
                 "$ du -sh /local_scratch/* | sort -h | tail -3\n610G\t/local_scratch/ckpt_job861002\n1.1T\t/local_scratch/ckpt_job858870\n1.6T\t/local_scratch/tmp_dataset_shards"]},
     "node_disk_full", "node", False)

# 31 straggler over 9 h, per-rank timing, one node clock-capped
lines = []
for h in range(0, 10):
    for r, node in [(0, "h100-r03-n01"), (8, "h100-r03-n02"), (16, "h100-r03-n03"), (24, "h100-r03-n04")]:
        base = 1.02 if node != "h100-r03-n03" else 1.02 + 0.11 * h
        lines.append(f"[2026-11-25 {h:02d}:00:0{r % 7}] rank={r} host={node} step={h * 3000} fwd_bwd_ms={int(base * 1000)} nccl_wait_ms={int((1.02 + 0.11 * h - base) * 1000) + 12}")
lines += ["[2026-11-25 09:48:12] rank=3 Watchdog caught collective operation timeout: WorkNCCL(SeqNum=301122, OpType=ALLREDUCE) ran for 1800077 milliseconds before timing out.",
          "[2026-11-25 09:48:12] rank=17 host=h100-r03-n03 still inside forward pass at step 29311"]
scen("b27-straggler-rank-timing-nine-hours",
     "4-node H100 job: ranks on h100-r03-n03 get 11% slower every hour while the others wait in NCCL; watchdog timeout after 9.8 h",
     """Label straggler_node: per-rank timing shows one node's compute time growing hour by hour while
other ranks' NCCL wait grows by the same amount; the final timeout is the downstream symptom. Node
telemetry shows SM clock cut with no Xid. Format: training logfmt-like lines, NCCL watchdog text.""",
     {"node": "h100-r03-n03", "job_log": lines,
      "metrics": [M("DCGM_FI_DEV_SM_CLOCK", "h100-r03-n03", g, 1155) for g in (0, 3)] +
                 [M("DCGM_FI_DEV_SM_CLOCK", "h100-r03-n01", 0, 1980), M("DCGM_FI_DEV_GPU_TEMP", "h100-r03-n03", 0, 87)],
      "slurm": {"jobs": [{"job_id": 840700, "state": "FAILED", "exit_code": "1:0", "nodes": "h100-r03-n[01-04]", "elapsed": "09:48:30"}]}},
     "straggler_node", "node", True, tags=["time", "upstream", "long"])

# 32 straggler handoff note
scen("b27-handoff-straggler-a100",
     "on-call handoff: three multi-node jobs in a week slowed down and timed out, the common node is a100-s-17 (runs 6-8 C hotter, clocks lower)",
     """Label straggler_node: human-written handoff; the slowdowns follow one node across different jobs
and users; its GPUs run hotter with lower clocks but below the 90 C sustained thermal criterion.
Arguable: gpu_thermal, but the thermal signal is weak and the impact is as a straggler.
Format: on-call handoff note, sacct list.""",
     {"node": "a100-s-17",
      "events": ["HANDOFF 2026-12-03 night -> day (from: ana, to: oluwaseun)",
                 "- noisy: CRAH-2 alarm cleared 19:40 (facilities says nothing else), disk alert on login2 (cleaned)",
                 "- main thing: 3 multi node jobs this week died with NCCL watchdog timeout after 6-11h: 902110 (llm team), 903455 (speech), 904012 (llm). all three had a100-s-17 in nodelist, no other common node",
                 "- in 903455 per rank step time: ranks on s-17 ~1.31 s/it, all others 1.05 s/it",
                 "- s-17 gpus sit at 82-86C under load vs 76-79 for neighbors, SM clock 1275 vs 1410 MHz. no xid, dcgmi diag -r 2 passed",
                 "- I did not drain it. please decide. - ana"],
      "slurm": {"node_state": ["MIXED"], "jobs": [{"job_id": 902110, "state": "FAILED", "nodes": "a100-s-[10-17]"},
                                                  {"job_id": 903455, "state": "FAILED", "nodes": "a100-s-[14-21]"},
                                                  {"job_id": 904012, "state": "FAILED", "nodes": "a100-s-[01-04,17]"}]}},
     "straggler_node", "node", True, tags=["human"])
