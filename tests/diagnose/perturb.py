#!/usr/bin/env python3
"""Meaning-preserving rewrites of the development scenarios: does the
diagnosis depend on what the signals mean, or on how they were written?

usage: perturb.py [--cli build/diag/diag_cli] [--signatures runbooks/signatures.yaml]
                  [--variants 3] [--seed 19] [--floor PCT] [-v] [DIR...]

Default DIRs: ../shared/scenarios and tests/scenarios (never a held-out
set: those are scored by run_scenarios.py alone).  Each scenario is
rewritten --variants times, every variant drawing (seeded, so the run is
deterministic) from these rewrites of its surface:

  timestamps   one style for every leading timestamp of the scenario: ISO
               8601 with offset, syslog, journald short-precise, epoch
  host         the node's name as a fully qualified name in the text
               (signals.node and the metric labels keep the short one,
               as collectors do)
  levels       log levels (INFO, WARN, ERROR...) in another case
  noise        benign lines added to sources that were collected
  order        metric samples and Slurm's job list in another order (sets)
  labels       Prometheus labels in another order and spacing; the
               exporter's Hostname label as hostname (May 2026) or back
  fields       DCGM's and nvidia-smi's renamed clock-reason field
               (CLOCK_THROTTLE_REASONS / CLOCKS_EVENT_REASONS, "Clocks
               Throttle Reasons" / "Clocks Event Reasons")
  promtext     the metrics as the exporter's Prometheus text, pasted into
               events (a scrape an operator copied)
  kernelstyle  the kernel log as dmesg -T prints it, or with journald's
               monotonic stamp after 'kernel:'
  hexcase      PCI bus ids upper or lower case
  slurmcase    node states in lower case, as sinfo prints them

A variant keeps its scenario's meaning, so it must keep the scenario's
expected top class and scope.  Prints the count that do (and per rewrite
which flipped, with -v the files); exit 1 under --floor percent.
"""
import argparse
import calendar
import copy
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time

import yaml

import run_scenarios  # beside this file: the scenario set and its loader

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
TEXT_SOURCES = ("kernel_log", "job_log", "events")

# Leading timestamps: (regex, parser to a UTC epoch).  The year of a syslog
# stamp is the scenarios' (2026).
TS_ISO = re.compile(r"^(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:[.,](\d+))?(Z|[+-]\d\d:?\d\d)?(?= )")
TS_SYSLOG = re.compile(r"^([A-Z][a-z]{2}) +(\d{1,2}) (\d\d):(\d\d):(\d\d)(?:\.(\d+))?(?= )")
TS_EPOCH = re.compile(r"^(1[6-9]\d{8})(?:\.(\d+))?(?= )")


def parse_ts(line):
    m = TS_ISO.match(line)
    if m:
        y, mo, d, h, mi, s = (int(x) for x in m.groups()[:6])
        ep = calendar.timegm((y, mo, d, h, mi, s))
        tz = m.group(8)
        if tz and tz != "Z":
            sign = 1 if tz[0] == "+" else -1
            tz = tz[1:].replace(":", "")
            ep -= sign * (int(tz[:2]) * 3600 + int(tz[2:]) * 60)
        return ep, m.end()
    m = TS_SYSLOG.match(line)
    if m and m.group(1) in MONTHS:
        mo = MONTHS.index(m.group(1)) + 1
        ep = calendar.timegm((2026, mo, int(m.group(2)), int(m.group(3)), int(m.group(4)),
                              int(m.group(5))))
        return ep, m.end()
    m = TS_EPOCH.match(line)
    if m:
        return int(m.group(1)), m.end()
    return None


def fmt_ts(ep, style):
    t = time.gmtime(ep)
    if style == "iso":
        return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", t)
    if style == "syslog":
        return f"{MONTHS[t.tm_mon - 1]} {t.tm_mday:2d} " + time.strftime("%H:%M:%S", t)
    if style == "journald":
        return f"{MONTHS[t.tm_mon - 1]} {t.tm_mday:02d} " + time.strftime("%H:%M:%S", t) + ".000000"
    return f"{ep}.000000"


def each_text(sig, fn):
    """fn(line) -> line over every text line (multi-line entries line by line)."""
    for src in TEXT_SOURCES:
        v = sig.get(src)
        if not isinstance(v, list):
            continue
        out = []
        for e in v:
            if isinstance(e, str):
                out.append("\n".join(fn(x) for x in e.split("\n")))
            else:
                out.append(e)
        sig[src] = out


def rw_timestamps(sig, rnd):
    style = rnd.choice(["iso", "syslog", "journald", "epoch"])

    def one(line):
        p = parse_ts(line)
        return fmt_ts(p[0], style) + line[p[1]:] if p else line
    each_text(sig, one)
    return style


def rw_host(sig, rnd):
    node = sig.get("node")
    if not isinstance(node, str) or len(node) < 3 or "." in node:
        return None
    fqdn = node + rnd.choice([".cluster.local", ".gpu.example.internal", ".dc1"])
    pat = re.compile(r"(?<![\w.-])" + re.escape(node) + r"(?![\w-]|\.\w)")
    each_text(sig, lambda line: pat.sub(fqdn, line))
    return fqdn


LEVELS = re.compile(r"\b(INFO|WARN|WARNING|ERROR|DEBUG|Info|Warn|Warning|Error|Debug|info|warn|warning|debug)\b")


def rw_levels(sig, rnd):
    case = rnd.choice([str.lower, str.upper, str.capitalize])
    # only as a log level: the word right after a timestamp, a bracket or a pipe
    pat = re.compile(r"(^|[\[\|] ?|\s)(INFO|WARN|WARNING|ERROR|DEBUG)(?=[\]\|:\s])")
    each_text(sig, lambda line: pat.sub(lambda m: m.group(1) + case(m.group(2)), line))
    return case.__name__


NOISE = {
    "kernel_log": ["IPv6: ADDRCONF(NETDEV_CHANGE): eth0: link becomes ready",
                   "systemd-journald[812]: Suppressed 14 messages from user@1000.service",
                   "audit: type=1400 audit(1764925321.512:411): apparmor=\"STATUS\" operation=\"profile_replace\" name=\"snap.lxd\"",
                   "usb 1-1: new high-speed USB device number 3 using xhci_hcd"],
    "job_log": ["wandb: Syncing run glorious-sun-42",
                "Saving checkpoint to /ckpt/step_000900 ... done",
                "lr=3.0e-04 grad_norm=0.91",
                "dataloader: 16 workers, prefetch_factor=2"],
    "events": ["Normal  Pulled  kubelet  Container image already present on machine",
               "slurmd version 24.05.4 started",
               "chronyd[1021]: Selected source 10.0.0.1",
               "sshd[4410]: Accepted publickey for ops from 10.0.3.7 port 51234"],
}


def rw_noise(sig, rnd):
    added = 0
    for src, pool in NOISE.items():
        v = sig.get(src)
        if not isinstance(v, list) or not v or not all(isinstance(e, str) for e in v):
            continue
        for _ in range(rnd.randint(1, 2)):
            v.insert(rnd.randint(0, len(v)), rnd.choice(pool))
            added += 1
    return added or None


def rw_order(sig, rnd):
    did = []
    m = sig.get("metrics")
    if isinstance(m, list) and len(m) > 1:
        rnd.shuffle(m)
        did.append("metrics")
    sl = sig.get("slurm")
    if isinstance(sl, dict) and isinstance(sl.get("jobs"), list) and len(sl["jobs"]) > 1:
        rnd.shuffle(sl["jobs"])
        did.append("jobs")
    return "+".join(did) or None


PROM = re.compile(r"^(\s*[A-Za-z_:][\w:]*)\{([^}]*)\}(\s+\S+.*)$")
PROM_LABEL = re.compile(r'\s*([A-Za-z_]\w*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*')


def rw_labels(sig, rnd):
    did = False
    m = sig.get("metrics")
    if isinstance(m, list):
        for s in m:
            lab = s.get("labels") if isinstance(s, dict) else None
            if isinstance(lab, dict) and lab:
                items = list(lab.items())
                rnd.shuffle(items)
                s["labels"] = {("hostname" if k == "Hostname" else "Hostname" if k == "hostname" else k): v
                               for k, v in items}
                did = True

    def one(line):
        nonlocal did
        p = PROM.match(line)
        if not p:
            return line
        labels = PROM_LABEL.findall(p.group(2))
        if not labels or ",".join(f'{k}="{v}"' for k, v in labels).replace(" ", "") != p.group(2).replace(" ", "").rstrip(","):
            return line
        rnd.shuffle(labels)
        sep = rnd.choice([",", ", "])
        did = True
        return p.group(1) + "{" + sep.join(f'{k}="{v}"' for k, v in labels) + "}" + p.group(3)
    each_text(sig, one)
    return did or None


FIELD_SWAPS = [("DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", "DCGM_FI_DEV_CLOCKS_EVENT_REASONS"),
               ("Clocks Throttle Reasons", "Clocks Event Reasons"),
               ("clocks_throttle_reasons.", "clocks_event_reasons.")]


def rw_fields(sig, rnd):
    did = False
    for a, b in FIELD_SWAPS:
        def one(line, a=a, b=b):
            nonlocal did
            if a in line:
                did = True
                return line.replace(a, b)
            if b in line:
                did = True
                return line.replace(b, a)
            return line
        each_text(sig, one)
        m = sig.get("metrics")
        if isinstance(m, list):
            for s in m:
                if isinstance(s, dict) and s.get("name") in (a, b):
                    s["name"] = b if s["name"] == a else a
                    did = True
    return did or None


def prom_value(v):
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def rw_promtext(sig, rnd):
    """The metrics as a scrape of the exporter pasted into events: the
    Prometheus text format (a timestamp in milliseconds when a sample has
    one), the same samples in the same order."""
    m = sig.get("metrics")
    ev = sig.get("events", [])
    if not isinstance(m, list) or not m or not isinstance(ev, list):
        return None
    lines = []
    for s in m:
        if not isinstance(s, dict) or "name" not in s or "value" not in s:
            return None
        lab = s.get("labels") or {}
        body = ",".join(f'{k}="{v}"' for k, v in lab.items())
        line = s["name"] + ("{" + body + "}" if body else "") + " " + prom_value(s["value"])
        ts = s.get("ts")
        if ts is not None:
            if isinstance(ts, (int, float)):
                ep = int(ts)
            else:
                p = parse_ts(str(ts).replace("Z", "+00:00") + " ")
                if not p:
                    return None
                ep = p[0]
            line += f" {ep * 1000}"
        lines.append(line)
    sig["events"] = list(ev) + lines
    del sig["metrics"]
    return True



def rw_kernel_style(sig, rnd):
    """The kernel log as dmesg -T prints it (no host, the time in
    brackets) or with the monotonic stamp journald keeps after 'kernel:'."""
    v = sig.get("kernel_log")
    if not isinstance(v, list) or not v:
        return None
    style = rnd.choice(["dmesg", "monotonic"])
    did = False
    out = []
    for i, e in enumerate(v):
        if not isinstance(e, str):
            out.append(e)
            continue
        p = parse_ts(e)
        words = e[p[1]:].lstrip().split(" ", 2) if p else []
        if len(words) < 3 or words[1] != "kernel:" or re.match(r"\[ *\d+\.\d+\]", words[2]):
            out.append(e)
            continue
        rest = words[2]
        if style == "dmesg":
            t = time.gmtime(p[0])
            out.append(time.strftime("[%a %b ", t) + f"{t.tm_mday:2d} " +
                       time.strftime("%H:%M:%S %Y] ", t) + rest)
        else:
            out.append(e[:len(e) - len(rest)] + f"[{100000 + 7 * i:7d}.{(p[0] % 1000000):06d}] " + rest)
        did = True
    sig["kernel_log"] = out
    return style if did else None


PCI = re.compile(r"\b([0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}(?:\.[0-7])?)\b")


def rw_hexcase(sig, rnd):
    """PCI bus ids in the other case (nvidia-smi prints them upper, the
    kernel lower)."""
    up = rnd.random() < 0.5
    did = False

    def one(line):
        nonlocal did
        def sub(m):
            nonlocal did
            did = True
            return m.group(1).upper() if up else m.group(1).lower()
        return PCI.sub(sub, line)
    each_text(sig, one)
    return did or None


def rw_slurm_case(sig, rnd):
    """Node states as sinfo prints them: lower case."""
    sl = sig.get("slurm")
    st = sl.get("node_state") if isinstance(sl, dict) else None
    if not isinstance(st, list) or not st or not all(isinstance(x, str) for x in st):
        return None
    sl["node_state"] = [x.lower() for x in st]
    return True


REWRITES = [("timestamps", rw_timestamps), ("host", rw_host), ("levels", rw_levels),
            ("noise", rw_noise), ("order", rw_order), ("labels", rw_labels),
            ("fields", rw_fields), ("promtext", rw_promtext),
            ("kernelstyle", rw_kernel_style), ("hexcase", rw_hexcase),
            ("slurmcase", rw_slurm_case)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dirs", nargs="*")
    ap.add_argument("--cli", default=os.path.join(ROOT, "build", "diag", "diag_cli"))
    ap.add_argument("--signatures", default=os.path.join(ROOT, "runbooks", "signatures.yaml"))
    ap.add_argument("--variants", type=int, default=3)
    ap.add_argument("--seed", type=int, default=19)
    ap.add_argument("--floor", type=float, default=0.0, help="minimum percent that must hold")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    # The same scenarios run_scenarios.py scores, with its missing-shared rule
    # (a failure under CI, otherwise a counted skip).
    dirs = a.dirs or run_scenarios.default_dirs()
    if any("blind" in os.path.basename(os.path.normpath(d)) for d in dirs):
        sys.exit("perturb.py rewrites development scenarios only; held-out sets stay unseen")
    files = run_scenarios.scenario_files(dirs)
    if not files:
        sys.exit("no scenario files found in " + ", ".join(dirs))
    if not os.access(a.cli, os.X_OK):
        sys.exit(f"{a.cli} is missing: build it with sh tests/diagnose/build-standalone.sh")
    rnd = random.Random(a.seed)
    variants = []  # (path, source file, applied rewrites, expect)
    with tempfile.TemporaryDirectory(prefix="fm-perturb-") as tmp:
        for f in files:
            with open(f, encoding="utf-8") as fh:
                doc = yaml.safe_load(fh)
            for v in range(a.variants):
                sig = copy.deepcopy(doc["signals"])
                names = [n for n, _ in REWRITES]
                pick = rnd.sample(names, rnd.randint(2, 4))
                applied = []
                for n, fn in REWRITES:
                    if n in pick and fn(sig, rnd) is not None:
                        applied.append(n)
                if not applied:
                    continue
                out = os.path.join(tmp, f"{len(variants):05d}.yaml")
                with open(out, "w", encoding="utf-8") as fh:
                    yaml.safe_dump({"id": doc.get("id"), "signals": sig, "expect": doc["expect"]},
                                   fh, allow_unicode=True, sort_keys=False)
                variants.append((out, f, applied, doc["expect"]))
        results = {}
        for i in range(0, len(variants), 200):
            chunk = [v[0] for v in variants[i:i + 200]]
            p = subprocess.run([a.cli, a.signatures] + chunk, capture_output=True, text=True,
                               timeout=300)
            if p.returncode not in (0, 1) or not p.stdout.strip():
                sys.exit(f"diag_cli failed: {(p.stderr or p.stdout).strip()[-500:]}")
            for line in p.stdout.splitlines():
                o = json.loads(line)
                results[o["file"]] = o.get("result") or {}
    kept = 0
    flips = {}
    for out, src, applied, exp in variants:
        top = results.get(out, {}).get("top") or {}
        ok = top.get("fault_class") == exp["fault_class"] and top.get("scope") == exp["scope"]
        kept += ok
        if not ok:
            for n in applied:
                flips[n] = flips.get(n, 0) + 1
            if a.verbose:
                print(f"FLIP {os.path.relpath(src, ROOT)} [{'+'.join(applied)}]: "
                      f"{top.get('fault_class')}/{top.get('scope')}, want "
                      f"{exp['fault_class']}/{exp['scope']}")
    n = len(variants)
    pct = 100.0 * kept / n if n else 0.0
    print(f"perturb: {kept}/{n} variants ({pct:.1f}%) of {len(files)} scenarios keep their top "
          f"class and scope (seed {a.seed}, {a.variants} per scenario)")
    applied_n = {}
    for _, _, applied, _ in variants:
        for n_ in applied:
            applied_n[n_] = applied_n.get(n_, 0) + 1
    print("rewrites applied: " + ", ".join(f"{k} {applied_n.get(k, 0)}" for k, _ in REWRITES))
    if flips:
        print("rewrites among the flipped: " +
              ", ".join(f"{k} {v}" for k, v in sorted(flips.items(), key=lambda x: -x[1])))
    if pct < a.floor:
        print(f"perturb: below the floor of {a.floor}%: a rewrite of the surface changed the "
              "diagnosis; run with -v to see which scenarios and fix the engine, not the scenario")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
