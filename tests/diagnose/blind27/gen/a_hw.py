from lib import *

# 1 Xid 79 buried in a 3-day syslog
ev = [
    (3900, "kernel", "NVRM: GPU at PCI:0000:9b:00: GPU-5e1c7a02-77d4-1b9e-2c3a-1e8f0d6b4a21"),
    (3900.01, "kernel", "NVRM: Xid (PCI:0000:9b:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus."),
    (3900.02, "kernel", "NVRM: GPU 0000:9b:00.0: GPU has fallen off the bus."),
    (3900.03, "kernel", "NVRM: A GPU crash dump has been created. If possible, please run"),
    (3900.04, "kernel", "NVRM: nvidia-bug-report.sh as root to collect this data before"),
    (3900.05, "kernel", "NVRM: the NVIDIA kernel module is unloaded."),
    (3901, "slurmstepd", "error: *** JOB 845512 ON h100-r07-n12 CANCELLED AT 2026-11-26T17:01:02 DUE TO TASK FAILURE ***"),
    (3903, "nvidia-persistenced", "device 0000:9b:00.0 - failed to query device state: Unknown Error"),
    (3960, "dcgm-exporter", "level=warning msg=\"Failed to get field values for GPU 4: GPU is lost\""),
]
scen("b27-xid79-h100-three-day-syslog",
     "h100-r07-n12: three days of routine syslog, one Xid 79 on GPU 4 on day three, then exporter reports the GPU lost",
     """Label gpu_fallen_off_bus: Xid 79 'GPU has fallen off the bus' on 0000:9b:00, followed by the
persistence daemon and dcgm-exporter losing the device; nothing afterwards shows recovery.
Format: NVIDIA Xid catalog (Xid 79, immediate action RESTART_BM) and ordinary RHEL syslog lines.
The signal is ~9 lines in ~300 lines of cron/sshd/slurmd/chrony noise (long-timeline emphasis).""",
     {"node": "h100-r07-n12",
      "kernel_log": timeline("h100-r07-n12", T("2026-11-24 00:00:00"), 70, 290, ev, seed=101),
      "slurm": {"node_state": ["MIXED", "DRAIN"], "reason": "gpu count mismatch: expected 8 found 7",
                "jobs": [{"job_id": 845512, "state": "FAILED", "exit_code": "1:0", "nodes": "h100-r07-n[12-15]"}]},
      "events": ["$ nvidia-smi -L | wc -l\n7", "$ nvidia-smi -i 4\nUnable to determine the device handle for GPU0000:9B:00.0: Unknown Error"]},
     "gpu_fallen_off_bus", "node", True, tags=["long", "time"])

# 2 GB200 Xid 79 then Xid 154 node reboot; victims on other trays
ev = [
    (55, "kernel", "NVRM: Xid (PCI:0019:01:00): 79, pid=88123, name=python3, GPU has fallen off the bus."),
    (55.01, "kernel", "NVRM: GPU 0019:01:00.0: GPU has fallen off the bus."),
    (55.2, "kernel", "NVRM: Xid (PCI:0019:01:00): 154, GPU recovery action changed from 0x0 (None) to 0x2 (Node Reboot Required)"),
    (56, "nvidia-imex", "[ERROR] Lost connection to GPU 2 on this node; IMEX domain degraded"),
]
scen("b27-gb200-xid79-with-154-and-nvl-victims",
     "GB200 NVL72 compute tray nvl72-c03-t09: Xid 79 plus Xid 154 asking for node reboot; NCCL errors on 17 other trays are victims",
     """Label gpu_fallen_off_bus on nvl72-c03-t09: the source tray logs Xid 79 and then Xid 154 with
recovery action 'Node Reboot Required'; the other trays only show NCCL remote errors after the
same minute (victims, upstream cause on this tray). Format: NVIDIA Xid catalog entries 79 and 154
(GPU recovery action enum from NVML docs), journald JSON export, NCCL WARN text. Driver 570.""",
     {"node": "nvl72-c03-t09",
      "kernel_log": timeline("nvl72-c03-t09", T("2026-12-02 08:00:00"), 2, 60, ev, style="json", seed=102,
                             noise=K8S_NOISE),
      "job_log": [
          "[rank37]:[E1202 08:55:41.003] [PG ID 0 PG GUID 0 Rank 37] NCCL WARN NET/IB : Got completion from peer 10.44.3.9<49211> with status=12 opcode=0 len=0 vendor err 129 (Recv) localGid ::ffff:10.44.5.2",
          "[rank12]:[E1202 08:55:41.118] NCCL WARN Cuda failure 'unspecified launch failure' transport/p2p.cc:275",
          "nvl72-c03-t09:88123:88401 [2] misc/cudawrap.cc:188 NCCL WARN cuMemCreate failed: CUDA_ERROR_DEVICE_UNAVAILABLE",
          "[rank4]:[E1202 08:55:42.551] ProcessGroupNCCL.cpp:1787] [PG 0 Rank 4] Process group watchdog thread terminated with exception: NCCL error: unhandled system error (run with NCCL_DEBUG=INFO for details)",
          "torchrun: ERROR: failures: 72 ranks exited; first failure rank 38 on host nvl72-c03-t09 exitcode -6",
      ],
      "events": ["nvl72-c03-t01..t18 (except t09): no Xid in the window; dcgmi health -c: Healthy",
                 "$ nvidia-smi --query-gpu=index,pci.bus_id --format=csv (on t09)\nindex, pci.bus_id\n0, 00000008:01:00.0\n1, 00000009:01:00.0\n3, 00000019:02:00.0"]},
     "gpu_fallen_off_bus", "node", True, tags=["upstream", "time"])

# 3 A100 Xid 48 then 63 companion, with dcgm DBE
ev = [
    (121, "kernel", "NVRM: Xid (PCI:0000:47:00): 48, pid=401922, name=python, An uncorrectable double bit error (DBE) has been detected on GPU in the framebuffer at partition 6, subpartition 0."),
    (121.01, "kernel", "NVRM: Xid (PCI:0000:47:00): 63, pid=401922, name=python, Row Remapper: New row (0x00000000000f3a21) marked for remapping, reset gpu to activate."),
    (121.5, "kernel", "python[401922]: segfault at 0 ip 00007f1c2b8a1e4d sp 00007ffd1fa0 error 4 in libcuda.so.550.127.05"),
]
scen("b27-a100-xid48-with-63-companion",
     "dgx-a12: Xid 48 DBE followed by its Xid 63 companion on GPU 2; DBE volatile counter at 1",
     """Label gpu_ecc_uncorrectable: the primary event is Xid 48 (double-bit ECC error); the Xid 63 right
after it is the companion row-remap record that the catalog says accompanies a DBE, not a separate
pending-remap fault. Arguable: gpu_row_remap_pending is a reasonable second answer; both are
destructive node classes. Format: NVIDIA A100 memory error management doc and Xid catalog, dmesg -T.""",
     {"node": "dgx-a12",
      "kernel_log": timeline("dgx-a12", T("2026-11-30 10:00:00"), 4, 40, ev, style="dmesgT", seed=103,
                             kernel_noise_only=True),
      "metrics": [M("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "dgx-a12", 2, 1, "NVIDIA A100-SXM4-80GB"),
                  M("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "dgx-a12", 3, 0, "NVIDIA A100-SXM4-80GB"),
                  M("DCGM_FI_DEV_ROW_REMAP_PENDING", "dgx-a12", 2, 1, "NVIDIA A100-SXM4-80GB")],
      "slurm": {"node_state": ["ALLOCATED"], "jobs": [{"job_id": 771203, "state": "FAILED", "exit_code": "139:0", "nodes": "dgx-a12"}]}},
     "gpu_ecc_uncorrectable", "node", True, tags=["time"])

# 4 H200 Xid 95 uncontained, all processes on GPU killed; 154 to reset
ev = [
    (300, "kernel", "NVRM: Xid (PCI:0000:bb:00): 95, pid=2231, name=pt_main_thread, Uncontained: FBHUB. RST: Yes, D-RST: No"),
    (300.02, "kernel", "NVRM: Xid (PCI:0000:bb:00): 95, pid=2290, name=pt_main_thread, Uncontained: FBHUB. RST: Yes, D-RST: No"),
    (300.05, "kernel", "NVRM: Xid (PCI:0000:bb:00): 154, GPU recovery action changed from 0x0 (None) to 0x1 (GPU Reset Required)"),
]
scen("b27-h200-xid95-uncontained-154-reset",
     "h200-p2-33: uncontained ECC (Xid 95) kills two unrelated jobs' processes on GPU 6; driver asks for a GPU reset",
     """Label gpu_ecc_uncorrectable: Xid 95 is the uncontained memory error; two different jobs on the
same GPU died, and the driver's recovery action (Xid 154) says GPU reset required. Contrast with
Xid 94 (contained, restart app only). Format: Xid catalog (95, 154), ISO-8601 journal with
chrony/kubelet noise over 8 h. Driver 560.35.03, Kubernetes 1.32.""",
     {"node": "h200-p2-33",
      "kernel_log": timeline("h200-p2-33", T("2026-12-01 01:00:00"), 8, 160, ev, style="iso", seed=104, noise=K8S_NOISE),
      "job_log": ["torch.AcceleratorError: CUDA error: uncorrectable ECC error encountered",
                  "pod ml-infer/vllm-7f9c-2 container vllm: exit code 1 (Error)",
                  "pod research/ddp-bert-0 container trainer: terminated, exit code 134"],
      "metrics": [M("DCGM_FI_DEV_XID_ERRORS", "h200-p2-33", 6, 154, "NVIDIA H200", hk="hostname"),
                  M("DCGM_FI_DEV_GPU_UTIL", "h200-p2-33", 6, 0, "NVIDIA H200", hk="hostname")]},
     "gpu_ecc_uncorrectable", "node", True, tags=["long"])

# 5 B200 Xid 94 contained, one pid
ev = [
    (200, "kernel", "NVRM: Xid (PCI:0000:1b:00): 94, pid=77310, name=python3, Contained: SM (0x1). RST: No, D-RST: No"),
    (200.03, "kernel", "NVRM: Xid (PCI:0000:1b:00): 154, GPU recovery action changed from 0x0 (None) to 0x0 (None)"),
]
scen("b27-b200-xid94-contained-single-pid",
     "b200-k4-07: one contained ECC error (Xid 94) killed pid 77310 only; the other seven jobs on the node keep stepping",
     """Label gpu_ecc_contained (scope job): Xid 94 'Contained ... RST: No', recovery action stays None,
one process died and the neighbour jobs continue. NVIDIA's catalog: RESTART_APP. Format: Xid
catalog and a Slurm 25.05 node's syslog over 6 h. Driver 575.57.08.""",
     {"node": "b200-k4-07",
      "kernel_log": timeline("b200-k4-07", T("2026-11-29 06:00:00"), 6, 140, ev, seed=105),
      "job_log": ["Epoch 3 step 18820 loss 1.874",
                  "RuntimeError: CUDA error: uncorrectable ECC error encountered",
                  "CUDA kernel errors might be asynchronously reported at some other API call, so the stacktrace below might be incorrect.",
                  "srun: error: b200-k4-07: task 0: Exited with exit code 1"],
      "slurm": {"node_state": ["MIXED"],
                "jobs": [{"job_id": 889001, "state": "FAILED", "exit_code": "1:0", "nodes": "b200-k4-07", "gres": "gpu:b200:1"},
                         {"job_id": 888950, "state": "RUNNING", "nodes": "b200-k4-07"},
                         {"job_id": 888977, "state": "RUNNING", "nodes": "b200-k4-07"}]}},
     "gpu_ecc_contained", "job", False)

# 6 ticket, human wording, Xid 94 once
scen("b27-ticket-xid94-nonnative",
     "user ticket (non-native English) pasting one Xid 94 line; job already restarted and passed the same step",
     """Label gpu_ecc_contained: one Xid 94 'Contained' with RST: No; the resubmitted job ran past the
failing step on the same GPU, and the GPU shows no further errors. Symptom reported by a human.
Format: ServiceNow-like ticket text, Xid catalog wording.""",
     {"node": "h100-r02-n05",
      "events": [
          "TICKET INC-40918 opened 2026-11-27 09:12 CET by m.takahashi (team vision)",
          "Subject: training is die one time with ECC message, please check",
          "Hello, my job 842117 is died last night around 02:40. In log I found this line from dmesg (admin friend copy it for me):",
          "  NVRM: Xid (PCI:0000:2a:00): 94, pid=55102, name=python, Contained: SM (0x1). RST: No, D-RST: No",
          "I resubmit same script on same node (job 842390) and it is running fine now since 6 hours, step 41000 passed (before die at step 22350).",
          "Is the GPU broken? Should I avoid this node? Thank you very much.",
          "-- update 2026-11-27 11:02 ops/jlee: nvidia-smi -q -d ECC on GPU1: Volatile DRAM Uncorrectable 0, SRAM Uncorrectable 1 (contained); Remapped rows pending: No; no other Xid since boot",
      ],
      "slurm": {"node_state": ["ALLOCATED"], "jobs": [{"job_id": 842117, "state": "FAILED", "exit_code": "1:0", "nodes": "h100-r02-n05"},
                                                       {"job_id": 842390, "state": "RUNNING", "nodes": "h100-r02-n05"}]}},
     "gpu_ecc_contained", "job", False, tags=["human", "time"])

# 7 Xid 63 pending, H100, nvidia-smi -q
ev = [(400, "kernel", "NVRM: Xid (PCI:0000:c1:00): 63, pid='<unknown>', name=<unknown>, Row Remapper: New row (0x0000000000a1b7c0) marked for remapping, reset gpu to activate.")]
scen("b27-h100-xid63-remap-pending-idle-drain",
     "h100-r11-n03: Xid 63 with no DBE, nvidia-smi -q shows Pending: Yes on GPU 7",
     """Label gpu_row_remap_pending: Xid 63 alone (a correctable-error-driven remap), nvidia-smi
'Remapped Rows' Pending Yes, Remapping Failure Occurred No. NVIDIA: reset the GPU when idle.
Format: nvidia-smi -q -d ROW_REMAPPER section, syslog over 12 h.""",
     {"node": "h100-r11-n03",
      "kernel_log": timeline("h100-r11-n03", T("2026-11-28 00:00:00"), 12, 220, ev, seed=107),
      "events": ["$ nvidia-smi -q -i 7 -d ROW_REMAPPER\n    Remapped Rows\n        Correctable Error                 : 1\n        Uncorrectable Error               : 0\n        Pending                           : Yes\n        Remapping Failure Occurred        : No\n        Bank Remap Availability Histogram\n            Max                           : 639 bank(s)\n            High                          : 1 bank(s)\n            Partial                       : 0 bank(s)\n            Low                           : 0 bank(s)\n            None                          : 0 bank(s)"],
      "slurm": {"node_state": ["MIXED"]}},
     "gpu_row_remap_pending", "node", True, tags=["long"])

# 8 remap pending from metrics only; Xid rotated
scen("b27-remap-pending-metrics-log-rotated",
     "a100-q3-19: kernel ring buffer wrapped (no Xid left), but dcgm shows row remap pending and dcgmi health warns",
     """Label gpu_row_remap_pending: the Xid line is gone (log rotated / dmesg wrapped) but DCGM's
pending-row-remap field is 1 on GPU 0 and dcgmi health reports the memory warning for pending
remap. Format: dcgm-exporter sample (field enabled in a custom counters csv), dcgmi health -c table.""",
     {"node": "a100-q3-19",
      "kernel_log": ["[2104881.220113] (dmesg ring buffer wrapped; oldest retained line follows)"] +
                    timeline("a100-q3-19", T("2026-12-03 00:00:00"), 3, 60, [], style="dmesg", seed=108,
                             boot=T("2026-11-08 12:13:00"), kernel_noise_only=True),
      "metrics": [M("DCGM_FI_DEV_ROW_REMAP_PENDING", "a100-q3-19", 0, 1, "NVIDIA A100-SXM4-40GB"),
                  M("DCGM_FI_DEV_ROW_REMAP_FAILURE", "a100-q3-19", 0, 0, "NVIDIA A100-SXM4-40GB"),
                  M("DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", "a100-q3-19", 0, 3, "NVIDIA A100-SXM4-40GB"),
                  M("DCGM_FI_DEV_ROW_REMAP_PENDING", "a100-q3-19", 1, 0, "NVIDIA A100-SXM4-40GB")],
      "events": ["$ dcgmi health -c -g 0\n+---------------------------+----------------------------------------------------------+\n| Health Monitor Report                                                                |\n+===========================+==========================================================+\n| Overall Health            | Warning                                                  |\n| GPU ID: 0                 | Warning                                                  |\n|                           | Memory system: Warning                                   |\n|                           |   GPU 0 has pending row remappings; reset the GPU to     |\n|                           |   complete remapping                                     |\n+---------------------------+----------------------------------------------------------+"]},
     "gpu_row_remap_pending", "node", True, tags=["truncated"])

# 9 Xid 64 remap failure
ev = [
    (90, "kernel", "NVRM: Xid (PCI:0000:4e:00): 48, pid=12001, name=python3, An uncorrectable double bit error (DBE) has been detected on GPU in the framebuffer at partition 2, subpartition 1."),
    (90.01, "kernel", "NVRM: Xid (PCI:0000:4e:00): 64, pid=12001, name=python3, Row Remapper: Failed to remap row (0x0000000000071c22): Row Remapper has run out of spare rows."),
]
scen("b27-h100-xid64-spare-rows-exhausted",
     "h100-b-44: DBE followed by Xid 64 'failed to remap'; DCGM ROW_REMAP_FAILURE=1",
     """Label gpu_row_remap_failure: Xid 64 with the row remapper out of spares and DCGM
ROW_REMAP_FAILURE 1. The DBE (Xid 48) is the trigger; the remap failure is what decides the
response (RMA). Arguable: gpu_ecc_uncorrectable, also destructive node scope. Format: Xid catalog,
NVIDIA memory error management doc (RMA policy thresholds), syslog.""",
     {"node": "h100-b-44",
      "kernel_log": timeline("h100-b-44", T("2026-11-25 12:00:00"), 3, 70, ev, seed=109),
      "metrics": [M("DCGM_FI_DEV_ROW_REMAP_FAILURE", "h100-b-44", 5, 1),
                  M("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", "h100-b-44", 5, 8),
                  M("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "h100-b-44", 5, 1)],
      "events": ["$ dcgmi health -c\n| GPU ID: 5 | Fail | Memory system: Fail - GPU 5 had a row remapping failure (DCGM_FR_ROW_REMAP_FAILURE) |"]},
     "gpu_row_remap_failure", "node", True)

# 10 Xid 92 SBE rate
ev = [(t, "kernel", "NVRM: Xid (PCI:0000:3d:00): 92, pid='<unknown>', name=<unknown>, High single-bit ECC error rate") for t in (130, 610, 1090)]
scen("b27-l40s-xid92-sbe-rate",
     "l40s-inf-08: Xid 92 three times in a day, SBE volatile count climbing by thousands; no DBE, no job failures",
     """Label gpu_sram_ecc_rate: repeated Xid 92 'High single-bit ECC error rate' and a fast-rising SBE
counter, while DBE stays 0 and jobs succeed. Response is monitor + ticket, not destructive.
Format: Xid catalog (92), dcgm-exporter with the ECC fields enabled, CSV scrape history.""",
     {"node": "l40s-inf-08",
      "kernel_log": timeline("l40s-inf-08", T("2026-11-30 00:00:00"), 24, 200, ev, seed=110, noise=K8S_NOISE),
      "events": ["timestamp,gpu,DCGM_FI_DEV_ECC_SBE_VOL_TOTAL,DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
                 "2026-11-30T00:00Z,1,1180,0", "2026-11-30T06:00Z,1,4402,0", "2026-11-30T12:00Z,1,9876,0",
                 "2026-11-30T18:00Z,1,16220,0", "2026-11-30T23:30Z,1,21903,0",
                 "2026-11-30T23:30Z,0,0,0"],
      "metrics": [M("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "l40s-inf-08", 1, 21903, "NVIDIA L40S", hk="hostname"),
                  M("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "l40s-inf-08", 1, 0, "NVIDIA L40S", hk="hostname")]},
     "gpu_sram_ecc_rate", "node", False, tags=["long"])

# 11 NVLink Xid 74 H100
ev = [
    (250, "kernel", "NVRM: Xid (PCI:0000:5d:00): 74, pid=90211, name=python, NVLink: fatal error detected on link 11(0x0, 0x0, 0x10000, 0x0, 0x0, 0x0, 0x0)"),
    (250.1, "kernel", "NVRM: Xid (PCI:0000:5d:00): 45, pid=90211, name=python, Ch 00000008, errorString CTX SWITCH TIMEOUT? no: Preemptive Cleanup, due to previous errors -- Most likely caused by a previous Xid"),
]
ev[1] = (250.1, "kernel", "NVRM: Xid (PCI:0000:5d:00): 45, pid=90211, name=python, Ch 00000008")
scen("b27-h100-xid74-nvlink-crc",
     "hgx-h100-29: Xid 74 on link 11 of GPU 3, secondary Xid 45, NVLink CRC and replay counters jump; nvidia-smi nvlink shows link inactive",
     """Label gpu_nvlink_error: Xid 74 (NVLink fatal) is primary; the Xid 45 is the catalog's secondary
cleanup error, not an app fault. Counters and link state confirm. Format: Xid catalog, nvidia-smi
nvlink -s / -e, dcgm-exporter NVLink fields. Driver 550.144.03, Slurm 24.11.""",
     {"node": "hgx-h100-29",
      "kernel_log": timeline("hgx-h100-29", T("2026-11-26 02:00:00"), 6, 120, ev, seed=111),
      "events": ["$ nvidia-smi nvlink -s -i 3\nGPU 3: NVIDIA H100 80GB HBM3\n\t Link 0: 26.562 GB/s\n\t Link 10: 26.562 GB/s\n\t Link 11: <inactive>\n\t Link 12: 26.562 GB/s",
                 "$ nvidia-smi nvlink -e -i 3 -l 11\nGPU 3: Link 11: Replay Errors: 18821  Recovery Errors: 37  CRC Errors: 2204"],
      "metrics": [M("DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL", "hgx-h100-29", 3, 2204),
                  M("DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL", "hgx-h100-29", 3, 18821),
                  M("DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL", "hgx-h100-29", 2, 0)],
      "slurm": {"node_state": ["MIXED"], "jobs": [{"job_id": 833001, "state": "FAILED", "exit_code": "1:0", "nodes": "hgx-h100-[25-32]"}]}},
     "gpu_nvlink_error", "node", True)

# 12 GB200 NVLink5 Xid 145 recurring across resets
ev = [
    (20, "kernel", "NVRM: Xid (PCI:0008:01:00): 145, RLW_REMAP Nonfatal XC0 i0 Link 07 (0x00000000 0x00000004 0x00000000 0x00000000)"),
    (180, "kernel", "NVRM: GPU 0008:01:00.0: GPU reset requested by nvidia-smi (operator ops/kpatel)"),
    (185, "kernel", "NVRM: loading NVIDIA UNIX aarch64 Kernel Module  580.95.05"),
    (410, "kernel", "NVRM: Xid (PCI:0008:01:00): 145, RLW_REMAP Nonfatal XC0 i0 Link 07 (0x00000000 0x00000004 0x00000000 0x00000000)"),
    (411, "kernel", "NVRM: Xid (PCI:0008:01:00): 149, NETIR_LINK_EVT Fatal XC0 i0 Link 07 (0x00000002 0x00000000 0x00000000 0x00000000)"),
]
scen("b27-gb200-nvlink5-xid145-recurs-after-reset",
     "nvl72-a01-t04 (GB200): NVLink5 Xids on link 7 come back after a GPU reset, second time with a fatal 149",
     """Label gpu_nvlink_error: Xid 144-150 are the NVLink5 family; the same link errors again after the
operator's GPU reset, now fatal. Time order decides: the reset did not cure it. Format: Xid catalog
(NVLink5 rows, GB200 column), nvidia-smi nvlink, journald short-iso. Driver 580 aarch64.""",
     {"node": "nvl72-a01-t04",
      "kernel_log": timeline("nvl72-a01-t04", T("2026-12-04 00:00:00"), 8, 170, ev, style="iso", seed=112, noise=K8S_NOISE),
      "events": ["$ dcgmi health -c\n| GPU ID: 0 | Fail | NVLink: Fail - GPU 0's NVLink link 7 is currently down (DCGM_FR_NVLINK_DOWN) |"]},
     "gpu_nvlink_error", "node", True, tags=["time", "long"])

# 13 Xid 119 GSP timeout B200
ev = [(60 + 7 * i, "kernel", f"NVRM: Xid (PCI:0000:{'9a'}:00): 119, pid={61200 + i}, name=nvidia-smi, Timeout after 6s of waiting for RPC response from GPU2 GSP! Expected function 76 (GSP_RM_CONTROL) (0x20800a4c 0x4).") for i in range(5)]
ev += [(61, "kernel", "NVRM: GPU2 GSP RPC buffer contains function 76 (GSP_RM_CONTROL) and data 0x0000000020800a4c 0x0000000000000004."),
       (95, "kernel", "INFO: task nvidia-smi:61204 blocked for more than 122 seconds."),
       (95.01, "kernel", "      Tainted: P           OE      6.8.0-60-generic #63-Ubuntu")]
scen("b27-b200-xid119-gsp-rpc-timeouts",
     "b200-x2-15: repeated Xid 119 GSP RPC timeouts on GPU 2, nvidia-smi hangs in D state, exporter scrape times out",
     """Label gpu_gsp_timeout: five Xid 119 'Timeout ... waiting for RPC response from GPU2 GSP' lines,
hung nvidia-smi, no 79/ECC. Format: Xid catalog (119), Ubuntu 24.04 kernel hung-task text, logfmt
from the exporter. Driver 570.133.20.""",
     {"node": "b200-x2-15",
      "kernel_log": timeline("b200-x2-15", T("2026-12-05 13:00:00"), 3, 90, ev, seed=113),
      "job_log": ['ts=2026-12-05T14:37:10Z level=error app=dcgm-exporter msg="scrape timeout after 30s" gpu=2'],
      "slurm": {"node_state": ["MIXED", "DRAIN"], "reason": "NHC: nvidia-smi timed out"}},
     "gpu_gsp_timeout", "node", True)

# 14 Xid 120 recurring across two reboots
ev = [
    (30, "kernel", "NVRM: Xid (PCI:0000:18:00): 120, pid=1877, name=python, GSP task exception: illegal instruction (cause:0x2) @ pc:0x4bd3a8, partition:3#0, task:1"),
    (33, "systemd", "Stopping Slurm node daemon..."),
    (38, "kernel", "Linux version 6.5.0-1024-nvidia (buildd@bos03) #25-Ubuntu SMP"),
    (39, "kernel", "NVRM: loading NVIDIA UNIX x86_64 Kernel Module  560.35.03"),
    (760, "kernel", "NVRM: Xid (PCI:0000:18:00): 120, pid=40110, name=python, GSP task exception: illegal instruction (cause:0x2) @ pc:0x4bd3a8, partition:3#0, task:1"),
    (770, "kernel", "Linux version 6.5.0-1024-nvidia (buildd@bos03) #25-Ubuntu SMP"),
    (771, "kernel", "NVRM: loading NVIDIA UNIX x86_64 Kernel Module  560.35.03"),
    (1790, "kernel", "NVRM: Xid (PCI:0000:18:00): 120, pid=9921, name=python, GSP task exception: illegal instruction (cause:0x2) @ pc:0x4bd3a8, partition:3#0, task:1"),
    (1790.1, "kernel", "NVRM: Xid (PCI:0000:18:00): 119, pid=9921, name=python, Timeout after 6s of waiting for RPC response from GPU0 GSP! Expected function 10 (FREE) (0xa55a00c0 0x0)."),
]
scen("b27-h100-xid120-gsp-survives-two-reboots",
     "h100-gw-02: Xid 120 GSP error on GPU 0 returns after each of two reboots over 30 hours",
     """Label gpu_gsp_timeout: Xid 120 (GSP error) recurs on the same GPU after reboot 1 and reboot 2,
the last time with a 119 too. Recurrence across reboots is what distinguishes a node fault from a
one-off. Format: Xid catalog (119/120), syslog across reboots (kernel banner lines), 30 h.""",
     {"node": "h100-gw-02",
      "kernel_log": timeline("h100-gw-02", T("2026-11-21 08:00:00"), 30, 330, ev, seed=114),
      "slurm": {"node_state": ["IDLE", "DRAIN"], "reason": "xid120 again after reboot #2 -- ops"}},
     "gpu_gsp_timeout", "node", True, tags=["time", "long"])

# 15 Xid 109 hang H200
ev = [(500, "kernel", "NVRM: Xid (PCI:0000:38:00): 109, pid=300118, name=python3, Ch 0000000c, errorString CTX SWITCH TIMEOUT, Info 0x3c04a")]
scen("b27-h200-xid109-util-pinned",
     "h200-c-06: Xid 109 context-switch timeout on GPU 1; GPU util stuck at 100% with power near idle and the step counter frozen",
     """Label gpu_hang: Xid 109 CTX SWITCH TIMEOUT, GPU util 100% but power ~110 W and no training
progress for 50 minutes. Format: Xid catalog (109), DCGM metrics, training log timestamps.""",
     {"node": "h200-c-06",
      "kernel_log": timeline("h200-c-06", T("2026-11-27 00:00:00"), 10, 180, ev, seed=115),
      "job_log": ["2026-11-27 08:17:55 | step 90100 | loss 2.013 | 412 TFLOP/s",
                  "2026-11-27 08:19:31 | step 90200 | loss 2.011 | 410 TFLOP/s",
                  "(no further output; file mtime 08:19:31, checked at 09:10)"],
      "metrics": [M("DCGM_FI_DEV_GPU_UTIL", "h200-c-06", 1, 100, "NVIDIA H200"),
                  M("DCGM_FI_DEV_POWER_USAGE", "h200-c-06", 1, 112.4, "NVIDIA H200"),
                  M("DCGM_FI_DEV_GPU_UTIL", "h200-c-06", 0, 0, "NVIDIA H200")],
      "slurm": {"node_state": ["ALLOCATED"], "jobs": [{"job_id": 850711, "state": "RUNNING", "nodes": "h200-c-[05-06]"}]}},
     "gpu_hang", "node", True)

# 16 Xid 62 PMU halt A100, postmortem excerpt
scen("b27-postmortem-xid62-pmu-halt",
     "postmortem excerpt: A100 node had Xid 62 internal micro-controller halt, reset attempted, last state GPU unresponsive",
     """Label gpu_hang: Xid 62 (PMU/internal micro-controller halt) with a failed reset attempt; the
final state in the timeline is the GPU stuck and drained, awaiting reset/verify. Only the last
state matters. Format: postmortem timeline prose, Xid catalog.""",
     {"node": "a100-east-51",
      "events": [
          "Postmortem PM-2026-118 (draft) -- timeline, all times US/Eastern",
          "21:02 alert GpuXidNonZero fired for a100-east-51 gpu=6 xid=62",
          "21:03 dmesg: NVRM: Xid (PCI:0000:bd:00): 62, pid='<unknown>', name=<unknown>, 0000(0000) 00000000 00000000",
          "21:05 on-call acked; two jobs on node still RUNNING, GPU 6 util 100% no progress",
          "21:20 jobs cancelled by on-call (scancel 901233 901240)",
          "21:24 `nvidia-smi -r -i 6` -> 'GPU 00000000:BD:00.0 is currently in use by another process' (nvidia-persistenced); retried after stopping it",
          "21:31 reset returned 'Unable to reset this GPU because it's being used by some other process' again; node drained",
          "22:10 shift handoff: node still DRAIN, GPU 6 not reset, nothing else changed. Current state = this.",
      ],
      "slurm": {"node_state": ["DRAIN"], "reason": "xid62 gpu6 reset pending"}},
     "gpu_hang", "node", True, tags=["time", "human"])

# 17 PCIe AER flood + replay rising
ev = [(300 + 0.7 * i, "kernel", ln) for i, ln in enumerate([
    "pcieport 0000:80:01.1: AER: Corrected error message received from 0000:83:00.0",
    "nvidia 0000:83:00.0: PCIe Bus Error: severity=Corrected, type=Physical Layer, (Receiver ID)",
    "nvidia 0000:83:00.0:   device [10de:2330] error status/mask=00000001/0000e000",
    "nvidia 0000:83:00.0:    [ 0] RxErr                  (First)",
] * 6)] + [(330, "kernel", "pcieport 0000:80:01.1: AER: Multiple Corrected error message received from 0000:83:00.0"),
           (331, "kernel", "nvidia 0000:83:00.0: PCIe Bus Error: severity=Corrected, type=Data Link Layer, (Transmitter ID)"),
           (331.01, "kernel", "nvidia 0000:83:00.0:    [12] Timeout")]
scen("b27-h100-aer-rxerr-flood-replay",
     "h100-r09-n02: AER corrected RxErr/Timeout storm from GPU 5's slot and PCIe replay counter +40k in an hour",
     """Label gpu_pcie_error: AER corrected physical/data-link errors repeating for the GPU's endpoint
and DCGM PCIe replay counter climbing fast. Corrected-only AER would be noise if rare; here it is a
storm with a rising replay rate. Format: Linux AER driver messages, dcgm-exporter replay counter.""",
     {"node": "h100-r09-n02",
      "kernel_log": timeline("h100-r09-n02", T("2026-12-01 18:00:00"), 6, 110, ev, style="dmesg", seed=117,
                             boot=T("2026-11-20 03:00:00"), kernel_noise_only=True),
      "metrics": [M("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "h100-r09-n02", 5, 41877),
                  M("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "h100-r09-n02", 4, 0)],
      "events": ["prometheus: increase(DCGM_FI_DEV_PCIE_REPLAY_COUNTER{Hostname=\"h100-r09-n02\",gpu=\"5\"}[1h]) = 40112"]},
     "gpu_pcie_error", "node", True)

# 18 PCIe replay via Prometheus JSON and dcgmi health PCIE
prom = {"status": "success", "data": {"resultType": "matrix", "result": [{"metric": {"__name__": "DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "gpu": "2", "hostname": "l40s-r3-11", "modelName": "NVIDIA L40S"},
        "values": [[1764547200 + 3600 * i, str(v)] for i, v in enumerate([12, 12, 310, 1904, 5522, 9870, 15301])]},
        {"metric": {"__name__": "DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "gpu": "3", "hostname": "l40s-r3-11", "modelName": "NVIDIA L40S"},
         "values": [[1764547200 + 3600 * i, "0"] for i in range(7)]}]}}
scen("b27-l40s-pcie-replay-prom-range",
     "l40s-r3-11: Prometheus range query shows GPU 2 PCIe replays going 12 -> 15301 in six hours; dcgmi health PCIE warning",
     """Label gpu_pcie_error: replay counter flat then climbing by thousands per hour on one GPU, plus
dcgmi health PCIe warning DCGM_FR_PCI_REPLAY_RATE. Format: Prometheus HTTP API matrix JSON, dcgmi.
Label is 'hostname' (lower case, newer exporter).""",
     {"node": "l40s-r3-11",
      "events": ["GET /api/v1/query_range?query=DCGM_FI_DEV_PCIE_REPLAY_COUNTER{hostname=\"l40s-r3-11\"}&step=1h",
                 json.dumps(prom),
                 "$ dcgmi health -c\nGPU 2: Warning -- PCIe system: Detected more than 8 PCIe replays per minute for GPU 2 : 61 Reconnect PCIe card. Run system side PCIE diagnostic utilities to verify hops off the GPU board. (DCGM_FR_PCI_REPLAY_RATE)"]},
     "gpu_pcie_error", "node", True, tags=["time"])

# 19 thermal L40S
rows = ["timestamp, index, temperature.gpu, clocks.sm [MHz], clocks_event_reasons.hw_thermal_slowdown, clocks_event_reasons.sw_thermal_slowdown, fan.speed [%], power.draw [W]"]
for i in range(24):
    t = T("2026-11-29 12:00:00") + dt.timedelta(minutes=15 * i)
    hot = 91 + (i % 4) if i > 5 else 78 + i * 2
    rows.append(f"{t.strftime('%Y/%m/%d %H:%M:%S.000')}, 3, {hot}, {2520 if hot < 88 else 1410}, {'Not Active' if hot < 88 else 'Active'}, {'Not Active' if hot < 88 else 'Active'}, [N/A], {348 if hot < 88 else 251}")
    rows.append(f"{t.strftime('%Y/%m/%d %H:%M:%S.000')}, 2, 64, 2520, Not Active, Not Active, [N/A], 347")
scen("b27-l40s-thermal-csv-query-loop",
     "l40s-pod-b-04: nvidia-smi --query-gpu CSV loop shows GPU 3 at 91-94 C with HW/SW thermal slowdown for 4.5 h while GPU 2 holds 64 C",
     """Label gpu_thermal: sustained >=90 C on one GPU with thermal slowdown clock events and clock
cut from 2520 to 1410 MHz, neighbour GPU cool (local cooling problem, passive L40S in a server).
Format: nvidia-smi --query-gpu CSV with clocks_event_reasons fields (newer naming). No units column
suffix on temperature (numbers without units).""",
     {"node": "l40s-pod-b-04", "events": rows},
     "gpu_thermal", "node", False, tags=["long", "time"])

# 20 thermal upstream: BMC fan failure
ev = [(600, "ipmiseld", "SEL 0x0a31: Fan FAN4B | Lower Critical going low | Asserted | reading 0 RPM"),
      (601, "ipmiseld", "SEL 0x0a32: Fan FAN4A | Lower Critical going low | Asserted | reading 1200 RPM"),
      (640, "dcgm-health", "GPU 6: DCGM_FR_CLOCK_THROTTLE_THERMAL clock throttling due to thermal violation; GPU temp 92 C"),
      (700, "dcgm-health", "GPU 7: DCGM_FR_CLOCK_THROTTLE_THERMAL clock throttling due to thermal violation; GPU temp 91 C")]
scen("b27-h100-fan-failure-upstream-thermal",
     "h100-f-21: BMC SEL shows fan module 4 failed; 30 min later GPUs 6 and 7 (behind that fan) hit 91-93 C and throttle",
     """Label gpu_thermal: upstream cause is a failed chassis fan (IPMI SEL), downstream symptom is
thermal throttling on the two GPUs in that airflow path. The class is the thermal one (exclude node,
ticket facilities/hardware). Format: ipmitool SEL wording, DCGM health failure reason names.""",
     {"node": "h100-f-21",
      "kernel_log": timeline("h100-f-21", T("2026-12-02 00:00:00"), 14, 240, ev, seed=120),
      "metrics": [M("DCGM_FI_DEV_GPU_TEMP", "h100-f-21", 6, 93), M("DCGM_FI_DEV_GPU_TEMP", "h100-f-21", 7, 91),
                  M("DCGM_FI_DEV_GPU_TEMP", "h100-f-21", 1, 61),
                  M("DCGM_FI_DEV_CLOCKS_EVENT_REASONS", "h100-f-21", 6, 96),
                  M("DCGM_FI_DEV_SM_CLOCK", "h100-f-21", 6, 1290)]},
     "gpu_thermal", "node", False, tags=["upstream", "long"])

# 21 power brake B200 with PSU loss upstream
ev = [(45, "ipmiseld", "SEL 0x01ff: Power Supply PSU3 | Power Supply AC lost | Asserted"),
      (45.1, "ipmiseld", "SEL 0x0200: Power Unit PWR_REDUNDANCY | Redundancy Lost | Asserted"),
      (46, "kernel", "NVRM: GPU at PCI:0000:1b:00 power brake asserted by system (EDPp)")]
scen("b27-b200-psu-lost-power-brake",
     "b200-pw-03: PSU3 lost AC, BMC asserts power brake; all 8 GPUs show HW power brake slowdown at reduced clocks, no Xid",
     """Label gpu_power: clock event reasons show HW power brake slowdown on every GPU, power draw
pinned below TDP, clocks cut; upstream cause is the lost PSU (redundancy lost). Non-destructive
class (ticket). Format: IPMI SEL text, nvidia-smi -q -d PERFORMANCE section.""",
     {"node": "b200-pw-03",
      "kernel_log": timeline("b200-pw-03", T("2026-12-06 09:00:00"), 3, 80, ev, seed=121),
      "events": ["$ nvidia-smi -q -d PERFORMANCE -i 0\n    Clocks Event Reasons\n        Idle                              : Not Active\n        Applications Clocks Setting       : Not Active\n        SW Power Cap                      : Active\n        HW Slowdown                       : Active\n            HW Thermal Slowdown           : Not Active\n            HW Power Brake Slowdown       : Active\n        Sync Boost                        : Not Active\n        SW Thermal Slowdown               : Not Active\n        Display Clock Setting             : Not Active"],
      "metrics": [M("DCGM_FI_DEV_POWER_USAGE", "b200-pw-03", g, 598.0, "NVIDIA B200") for g in (0, 4)] +
                 [M("DCGM_FI_DEV_SM_CLOCK", "b200-pw-03", 0, 705, "NVIDIA B200"),
                  M("DCGM_FI_DEV_GPU_TEMP", "b200-pw-03", 0, 58, "NVIDIA B200")]},
     "gpu_power", "node", False, tags=["upstream"])

# 22 Xid 13 one pid
ev = [(77, "kernel", "NVRM: Xid (PCI:0000:07:00): 13, pid=511873, name=custom_attn_bench, Graphics SM Warp Exception on (GPC 3, TPC 2, SM 1): Out Of Range Address"),
      (77.01, "kernel", "NVRM: Xid (PCI:0000:07:00): 13, pid=511873, name=custom_attn_bench, Graphics Exception: ESR 0x51d730=0x201000e 0x51d734=0x20 0x51d728=0x4c1eb72 0x51d72c=0x174"),
      (77.2, "kernel", "NVRM: Xid (PCI:0000:07:00): 43, pid=511873, name=custom_attn_bench, Ch 00000010")]
scen("b27-a100-xid13-one-user-kernel",
     "dgx-a03: Xid 13 out-of-range address from one user's custom kernel benchmark, then Xid 43; seven other jobs unaffected",
     """Label gpu_app_fault: Xid 13 SM warp exception 'Out Of Range Address' and Xid 43 tied to a single
pid/name (a user's custom CUDA kernel); neighbour jobs continue, no hardware counters move.
Format: Xid catalog (13, 43), dmesg with seconds since boot.""",
     {"node": "dgx-a03",
      "kernel_log": timeline("dgx-a03", T("2026-11-22 14:00:00"), 4, 60, ev, style="dmesg", seed=122,
                             boot=T("2026-11-01 00:00:00"), kernel_noise_only=True),
      "job_log": ["CUDA error: an illegal memory access was encountered (custom_attn_bench.cu:212)",
                  "srun: error: dgx-a03: task 0: Exited with exit code 2"],
      "slurm": {"node_state": ["MIXED"], "jobs": [{"job_id": 811900, "state": "FAILED", "exit_code": "2:0", "nodes": "dgx-a03", "user": "rvarga"},
                                                  {"job_id": 811877, "state": "RUNNING", "nodes": "dgx-a03"}]}},
     "gpu_app_fault", "job", False)

# 23 Xid 31 MMU fault with secondary 45, job-log driven
ev = [(15, "kernel", "NVRM: Xid (PCI:0000:4a:00): 31, pid=2001455, name=python, channel 0x00000012, intr 00000000. MMU Fault: ENGINE GRAPHICS GPC2 GPCCLIENT_T1_4 faulted @ 0x7f4e_a2c00000. Fault is of type FAULT_PDE ACCESS_TYPE_VIRT_READ"),
      (15.05, "kernel", "NVRM: Xid (PCI:0000:4a:00): 45, pid=2001455, name=python, Ch 00000012")]
scen("b27-h100-xid31-mmu-fault-follows-code-not-node",
     "h100-r04-n08: Xid 31 MMU fault then Xid 45 for one pid; history shows the same job failing the same way on two other nodes",
     """Label gpu_app_fault: Xid 31 (MMU fault, FAULT_PDE) tied to one pid, Xid 45 is the secondary
cleanup; the same job crashed identically on other nodes (the fault follows the code, not the GPU).
Format: Xid catalog, PyTorch error text, job history entries.""",
     {"node": "h100-r04-n08",
      "kernel_log": timeline("h100-r04-n08", T("2026-12-03 11:00:00"), 1, 30, ev, seed=123),
      "job_log": ["torch.AcceleratorError: CUDA error: an illegal memory access was encountered",
                  "  File \"/home/pzhou/flashmod/ops.py\", line 88, in fused_rope_fwd",
                  "Compile with `TORCH_USE_CUDA_DSA` to enable device-side assertions."],
      "history": [{"attempt": 1, "node": "h100-r01-n02", "step": 0, "error": "Xid 31 MMU fault, illegal memory access in fused_rope_fwd"},
                  {"attempt": 2, "node": "h100-r06-n11", "step": 0, "error": "Xid 31 MMU fault, illegal memory access in fused_rope_fwd"},
                  {"attempt": 3, "node": "h100-r04-n08", "step": 0, "error": "Xid 31 MMU fault, illegal memory access in fused_rope_fwd"}]},
     "gpu_app_fault", "job", False, tags=["time"])
