from lib import *

BY = {s["id"]: s for s in REG}


def steps(start, n, every_s, step0, dstep, fmt, seed, loss0=2.4):
    rnd = random.Random(seed)
    out = []
    loss = loss0
    for i in range(n):
        t = start + dt.timedelta(seconds=every_s * i + rnd.uniform(-2, 2))
        loss = max(0.9, loss - rnd.uniform(0.0, 0.004) + rnd.uniform(-0.002, 0.002))
        out.append(fmt.format(t=t, ts=t.strftime("%Y-%m-%d %H:%M:%S"), step=step0 + dstep * i, loss=loss,
                              tput=rnd.uniform(395, 415), lr=3e-4 * (0.9999 ** i), gn=rnd.uniform(0.6, 1.4)))
    return out


# job_hung: 12 h of progress, then nothing
s = BY["b27-job-hung-util-zero-two-hours"]
s["signals"]["job_log"] = steps(T("2026-12-05 12:03:00"), 166, 250, 11400, 240,
                                "{ts} step {step} loss {loss:.3f} lr {lr:.2e} grad_norm {gn:.2f} tok/s/gpu {tput:.0f}", 501) + \
    s["signals"]["job_log"]
s["tags"].add("long")

# rank divergence: long normal stretch from several ranks before the hang
s = BY["b27-rank-divergence-seqnum-mismatch"]
pre = []
for r in (0, 7, 15):
    pre += steps(T("2026-12-04 07:00:00"), 40, 300, 3600, 20,
                 "[rank%d]:[I{t:%%m%%d %%H:%%M:%%S}] step {step} loss {loss:.4f}" % r, 502 + r)
pre.sort(key=lambda x: x.split("]:[I")[1][:14])
s["signals"]["job_log"] = pre + s["signals"]["job_log"]
s["tags"].add("long")

# credential pipeline: noisy workflow log
s = BY["b27-pipeline-expired-token-upstream"]
rnd = random.Random(503)
noise = []
for i in range(90):
    t = T("2026-12-05 00:00:00") + dt.timedelta(seconds=30 * i)
    noise.append(rnd.choice([
        f"time=\"{t:%Y-%m-%dT%H:%M:%SZ}\" level=info msg=\"node changed\" phase=Running workflow=nightly-pt-1205",
        f"time=\"{t:%Y-%m-%dT%H:%M:%SZ}\" level=info msg=\"Processing workflow\" namespace=ml-pipelines workflow=nightly-pt-1205",
        f"time=\"{t:%Y-%m-%dT%H:%M:%SZ}\" level=info msg=\"Updated phase Running -> Running\"",
        f"time=\"{t:%Y-%m-%dT%H:%M:%SZ}\" level=info msg=\"TaskSet Reconciliation\" workflow=nightly-pt-1205",
        f"[sync-shards] {t:%H:%M:%S} download: s3://corp-train/meta/index-{rnd.randint(1, 40):04d}.json ok (HeadObject cached)"]))
jl = s["signals"]["job_log"]
s["signals"]["job_log"] = noise[:30] + jl[:2] + noise[30:70] + jl[2:4] + noise[70:] + jl[4:]
s["tags"].add("long")

# ray head oom: raylet noise before
s = BY["b27-ray-head-oom-gcs-gone"]
rnd = random.Random(504)
pre = []
for i in range(110):
    t = T("2026-12-06 01:30:00") + dt.timedelta(seconds=55 * i)
    pre.append(rnd.choice([
        f"[{t:%Y-%m-%d %H:%M:%S},{rnd.randint(0, 999):03d} I 77 77] raylet: Reporting resource usage to GCS",
        f"[{t:%Y-%m-%d %H:%M:%S},{rnd.randint(0, 999):03d} I 77 77] (raylet) local_object_manager.cc:245: :info_message:Spilled {rnd.randint(100, 900)} MiB, {rnd.randint(10, 99)} objects",
        f"(embed_batch pid={rnd.randint(3000, 9000)}) processed shard {rnd.randint(1, 4000)} in {rnd.uniform(8, 14):.1f}s",
        f"[{t:%Y-%m-%d %H:%M:%S},{rnd.randint(0, 999):03d} I 1 1] gcs_server: GCS heartbeat ok, {32} alive nodes, head RSS {10 + i * 0.05:.1f} GiB"]))
s["signals"]["job_log"] = pre + s["signals"]["job_log"]
s["tags"].add("long")

# ib source: source node's syslog with noise, victims' NCCL init lines
s = BY["b27-ib-source-node-among-victims"]
ev = [(12 * 60 + 7.4 / 60, "kernel", "mlx5_core 0000:3b:00.0 mlx5_1: Port: 1 Link DOWN"),
      (12 * 60 + 7.5 / 60, "kernel", "ibp59s0: lost carrier")]
s["signals"]["kernel_log"] = timeline("b200-k9-03", T("2026-12-03 16:00:00"), 14, 200, ev, style="iso", seed=505)
s["tags"].add("long")

# spot: node journal ending at termination (truncated)
s = BY["b27-spot-interruption-notice-k8s"]
ev = [(1018, "aws-node-termination-handler", "Got interruption event from IMDS: spot instance-action terminate at 2026-12-06T15:22:00Z"),
      (1018.2, "kubelet", "I1206 15:20:01.104000    2211 nodeshutdown_manager_linux.go:375] \"Shutdown manager processing preshutdown event\""),
      (1019.5, "kubelet", "I1206 15:21:30.004000    2211 nodeshutdown_manager_linux.go:413] \"Shutdown manager killing pod with gracePeriod\" pod=\"llm/llm-ft-worker-2\" gracePeriod=30"),
      (1020.9, "systemd", "Reached target shutdown.target - System Shutdown.")]
s["signals"]["kernel_log"] = timeline("ip-10-2-14-88", T("2026-12-06 00:20:00"), 17.02, 210, ev, style="json", seed=506, noise=K8S_NOISE)
s["tags"].update(["long", "truncated"])

# k8s panic: node log that simply stops
s = BY["b27-k8s-node-notready-panic-console"]
s["signals"]["kernel_log"] = timeline("h200-k8s-31", T("2026-12-06 12:00:00"), 10.2, 180, [], style="iso", seed=507, noise=K8S_NOISE) + \
    ["(journal ends here; no entries after 22:12:51, collected 22:40 from the persisted journal after console access)"]
s["tags"].update(["long", "truncated"])

# xid79 3-day: logrotate boundary marker
s = BY["b27-xid79-h100-three-day-syslog"]
kl = s["signals"]["kernel_log"]
kl.insert(len(kl) // 3, "==> /var/log/messages-20261125 <== (rotated; next file /var/log/messages)")
s["tags"].add("truncated")

# healthy nccl: long completed-run log
s = BY["b27-healthy-nccl-warn-job-completed"]
jl = s["signals"]["job_log"]
s["signals"]["job_log"] = jl[:3] + steps(T("2026-12-06 18:00:00"), 150, 120, 100, 133,
                                         "{ts} [rank0] step {step}/20000 loss {loss:.3f} tok/s/gpu {tput:.0f}", 508) + jl[3:]
s["tags"].add("long")

# nccl wrong iface: init chatter for more ranks
s = BY["b27-nccl-bootstrap-on-docker0"]
extra = []
for r in range(16):
    h = "a100-n-021" if r < 8 else "a100-n-022"
    p = 9911 + r if r < 8 else 7120 + r
    extra += [f"{h}:{p}:{p} [{r % 8}] NCCL INFO cudaDriverVersion 12080",
              f"{h}:{p}:{p} [{r % 8}] NCCL INFO Bootstrap : Using docker0:172.17.0.1<0>",
              (f"{h}:{p}:{p} [{r % 8}] NCCL INFO comm 0x55d1c0 rank {r} nRanks 16 nNodes 2 localRanks 8 localRank {r % 8} MNNVL 0" if r < 8 else
               f"{h}:{p}:{p + 40} [{r % 8}] NCCL WARN socketProgress: Connection closed by remote peer 172.17.0.1<{43100 + r}>, retrying")]
jl = s["signals"]["job_log"]
s["signals"]["job_log"] = jl[:6] + extra + jl[6:]
