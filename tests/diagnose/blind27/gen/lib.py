import datetime as dt
import json
import random
import os
import yaml

OUT = "/work/blind27/tests/diagnose/blind27"
UTC = dt.timezone.utc
REG = []


class Lit(str):
    pass


def _lit(dumper, data):
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")


yaml.SafeDumper.add_representer(Lit, _lit)


def T(s):
    """'2026-11-28 03:14:00' -> aware UTC datetime"""
    return dt.datetime.strptime(s, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


SLURM_NOISE = [
    ("CRON", "(root) CMD (/usr/lib64/sa/sa1 1 1)"),
    ("CRON", "(root) CMD (run-parts /etc/cron.hourly)"),
    ("systemd", "Started Session {n} of User slurm."),
    ("systemd", "session-{n}.scope: Deactivated successfully."),
    ("systemd-logind", "New session {n} of user ops."),
    ("systemd-logind", "Session {n} logged out. Waiting for processes to exit."),
    ("sshd", "Accepted publickey for ops from 10.{a}.{b}.{c} port {p} ssh2: ED25519 SHA256:q7Yc0dZl1"),
    ("sshd", "pam_unix(sshd:session): session closed for user ops"),
    ("chronyd", "Selected source 10.0.0.{a} (ntp{b}.mgmt.local)"),
    ("chronyd", "System clock was stepped by 0.000{c} seconds"),
    ("slurmd", "launch task StepId={j}.0 request from UID:{u} GID:{u} HOST:10.{a}.{b}.{c} PORT:{p}"),
    ("slurmd", "task/affinity: task_p_slurmd_batch_request: task_p_slurmd_batch_request: {j}"),
    ("slurmd", "Launching batch job {j} for UID {u}"),
    ("slurmd", "[{j}.batch] done with job"),
    ("slurmstepd", "[{j}.0] done with job"),
    ("slurmd", "credential for job {j} revoked"),
    ("nvidia-persistenced", "Verbose syslog connection opened"),
    ("dcgm-exporter", "level=info msg=\"Collecting metrics\" interval=30s"),
    ("node_exporter", "ts={ts} caller=textfile.go:227 level=info collector=textfile msg=\"refreshed\" files=3"),
    ("systemd", "Starting Cleanup of Temporary Directories..."),
    ("systemd", "systemd-tmpfiles-clean.service: Deactivated successfully."),
    ("systemd", "Starting dnf makecache..."),
    ("systemd", "logrotate.service: Deactivated successfully."),
    ("rsyslogd", "imjournal: journal files changed, reloading...  [v8.2102.0-117.el9]"),
    ("kernel", "perf: interrupt took too long (2503 > 2500), lowering kernel.perf_event_max_sample_rate to 79800"),
    ("munged", "Purged {c} credentials from replay hash"),
    ("auditd", "Audit daemon rotating log files"),
    ("telegraf", "2026/12/01 Outputs: influxdb wrote batch of {n} metrics in 11.{c}ms"),
]

K8S_NOISE = [
    ("kubelet", "I{md} {hms}.{us}    2211 kubelet.go:2458] \"SyncLoop (PLEG): event for pod\" pod=\"monitoring/dcgm-exporter-{s5}\" event={{\"Type\":\"ContainerStarted\"}}"),
    ("kubelet", "I{md} {hms}.{us}    2211 prober.go:107] \"Probe succeeded\" probeType=\"Readiness\" pod=\"kube-system/cilium-{s5}\""),
    ("kubelet", "I{md} {hms}.{us}    2211 kubelet_getters.go:218] \"Pod status updated\" pod=\"kube-system/kube-proxy-{s5}\" status=\"Running\""),
    ("kubelet", "I{md} {hms}.{us}    2211 image_gc_manager.go:353] \"Disk usage on image filesystem is over the low threshold, trying to free bytes\" usage=71 lowThreshold=70"),
    ("containerd", "time=\"{iso}\" level=info msg=\"ImageCreate event name:\\\"sha256:{hex}\\\"\""),
    ("containerd", "time=\"{iso}\" level=info msg=\"shim disconnected\" id={hex} namespace=k8s.io"),
    ("systemd", "Started cri-containerd-{hex}.scope - libcontainer container {hex}."),
    ("systemd", "cri-containerd-{hex}.scope: Deactivated successfully."),
    ("chronyd", "Selected source 169.254.169.123"),
    ("CRON", "(root) CMD (/usr/local/bin/node-problem-check.sh >/dev/null 2>&1)"),
    ("sshd", "Connection closed by 10.{a}.{b}.{c} port {p} [preauth]"),
    ("nvidia-device-plugin", "I{md} {hms}.{us}       1 server.go:299] \"Device health check\" healthy=8"),
    ("dcgm-exporter", "time=\"{iso}\" level=info msg=\"Pipeline starting\""),
    ("systemd", "Starting sysstat-collect.service - system activity accounting tool..."),
    ("systemd", "sysstat-collect.service: Deactivated successfully."),
]


def _fill(tmpl, t, rnd):
    return tmpl.format(
        n=rnd.randint(100, 9999), a=rnd.randint(1, 40), b=rnd.randint(1, 250), c=rnd.randint(1, 250),
        p=rnd.randint(30000, 65000), j=rnd.randint(810000, 899999), u=rnd.choice([5012, 5144, 6021, 7007]),
        ts=t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z", md=t.strftime("%m%d"), hms=t.strftime("%H:%M:%S"),
        us="%06d" % rnd.randint(0, 999999), s5="".join(rnd.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5)),
        iso=t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z", hex="%012x" % rnd.getrandbits(48))


def fmt_line(style, host, t, prog, msg, rnd, boot=None, tz=None):
    pid = rnd.randint(900, 65000) if prog not in ("kernel",) else None
    if style == "syslog":
        lt = t.astimezone(tz) if tz else t
        tag = f"{prog}[{pid}]" if pid else prog
        return f"{lt.strftime('%b %d %H:%M:%S')} {host} {tag}: {msg}"
    if style == "iso":
        lt = t.astimezone(tz) if tz else t
        tag = f"{prog}[{pid}]" if pid else prog
        return f"{lt.isoformat(timespec='microseconds')} {host} {tag}: {msg}"
    if style == "dmesg":
        secs = (t - boot).total_seconds()
        return f"[{secs:12.6f}] {msg}" if prog == "kernel" else None
    if style == "dmesgT":
        return f"[{t.strftime('%a %b %d %H:%M:%S %Y')}] {msg}" if prog == "kernel" else None
    if style == "json":
        d = {"__REALTIME_TIMESTAMP": str(int(t.timestamp() * 1e6)), "_HOSTNAME": host,
             "SYSLOG_IDENTIFIER": prog, "PRIORITY": "6", "MESSAGE": msg}
        if pid:
            d["_PID"] = str(pid)
        if prog == "kernel":
            d["_TRANSPORT"] = "kernel"
            d["PRIORITY"] = "4" if ("NVRM" in msg or "error" in msg.lower()) else "6"
        return json.dumps(d, separators=(",", ":"))
    if style == "logfmt":
        return f'ts={t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]}Z host={host} app={prog} msg={json.dumps(msg)}'
    raise ValueError(style)


def timeline(host, start, hours, n_noise, events, style="syslog", seed=1, noise=SLURM_NOISE, boot=None,
             tz=None, kernel_noise_only=False):
    """events: list of (offset_minutes_float, prog, msg). Returns sorted, formatted lines."""
    rnd = random.Random(seed)
    end = start + dt.timedelta(hours=hours)
    items = []
    pool = [x for x in noise if (x[0] == "kernel")] if kernel_noise_only else noise
    if kernel_noise_only:
        pool = KERNEL_NOISE
    for _ in range(n_noise):
        t = start + dt.timedelta(seconds=rnd.uniform(0, hours * 3600))
        prog, tmpl = rnd.choice(pool)
        items.append((t, prog, _fill(tmpl, t, rnd)))
    for off, prog, msg in events:
        t = start + dt.timedelta(minutes=off)
        items.append((t, prog, msg))
    items.sort(key=lambda x: x[0])
    out = []
    for t, prog, msg in items:
        ln = fmt_line(style, host, t, prog, msg, rnd, boot=boot or start, tz=tz)
        if ln is not None:
            out.append(ln)
    return out


KERNEL_NOISE = [
    ("kernel", "IPv4: martian source 10.{a}.{b}.{c} from 10.{a}.{b}.1, on dev eno1"),
    ("kernel", "perf: interrupt took too long (3141 > 3128), lowering kernel.perf_event_max_sample_rate to 63600"),
    ("kernel", "audit: type=1400 audit({n}.{c}:{n}): apparmor=\"STATUS\" operation=\"profile_replace\" name=\"nvidia_modprobe\""),
    ("kernel", "xfs filesystem being remounted at /var/lib/containerd supports timestamps until 2038 (0x7fffffff)"),
    ("kernel", "EXT4-fs (nvme0n1p2): re-mounted {hex}. Quota mode: none."),
    ("kernel", "bond0: (slave eno2): link status definitely up, 25000 Mbps full duplex"),
    ("kernel", "TCP: request_sock_TCP: Possible SYN flooding on port 6818. Sending cookies.  Check SNMP counters."),
    ("kernel", "nfs: server nfs-home.mgmt.local OK"),
    ("kernel", "cgroup: fork rejected by pids controller in /slurm/uid_{u}/job_{j}"),
    ("kernel", "device veth{s5} entered promiscuous mode"),
    ("kernel", "lxc_bridge: port 3(veth{s5}) entered forwarding state"),
]


def M(name, host, gpu, value, model="NVIDIA H100 80GB HBM3", hk="Hostname", **extra):
    labels = {"gpu": str(gpu), "UUID": "GPU-%08x-%04x-4%03x-9%03x-%012x" % (
        hash((host, gpu, 1)) & 0xffffffff, hash((host, gpu, 2)) & 0xffff, hash((host, gpu, 3)) & 0xfff,
        hash((host, gpu, 4)) & 0xfff, hash((host, gpu, 5)) & 0xffffffffffff),
        "device": f"nvidia{gpu}", "modelName": model, hk: host}
    labels.update(extra)
    return {"name": name, "labels": labels, "value": value}


def scen(sid, title, comment, signals, fc, scope, dok, tags=()):
    assert sid.startswith("b27-")
    REG.append(dict(id=sid, title=title, comment=comment, signals=signals, fc=fc, scope=scope, dok=dok,
                    tags=set(tags)))


def write_all():
    random.seed(0)
    for s in REG:
        doc = {"id": s["id"], "title": s["title"], "signals": s["signals"],
               "expect": {"fault_class": s["fc"], "scope": s["scope"], "destructive_ok": s["dok"]}}
        body = yaml.safe_dump(doc, sort_keys=False, width=4000, allow_unicode=True, default_flow_style=False)
        hdr = "".join("# " + ln + "\n" if ln else "#\n" for ln in s["comment"].strip().splitlines())
        with open(os.path.join(OUT, s["id"] + ".yaml"), "w") as f:
            f.write(hdr + body)
