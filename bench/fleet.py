#!/usr/bin/env python3
"""The fleet-scale rows of `make bench`, over a running benchmark controller
(tests/stack/bench-fleet.sh; bench/fleet.sh starts one per size).

  slurm_nodes   one tools/call round trip through a running build/fleetmcp
                over stdio (sinfo or slurmrestd, parsing, normalizing, the
                gate, the audit row), against the raw `sinfo --json` it
                replaces: time and bytes (structuredContent as compact JSON
                against sinfo's stdout; the whole reply line is printed too).
                slurmrestd's own raw /nodes is timed beside it: the REST
                backend's first call cannot be faster than that.
  repair_plan   every guardrail, on one node, in shadow mode, beside what each
                Slurm command a CLI plan could ask costs alone (scontrol show
                node, which packs every node; sinfo -N -n NODE, which packs
                that node; the sinfo aggregates; scontrol show partition; a
                command that asks slurmctld nothing) and the two reads the
                CLI plan makes, run concurrently as it runs them: the CLI
                plan's floor (the aggregate makes slurmctld pack and sinfo
                unpack the whole node table)
  fleet_status  the dashboard read
  diagnose      node mode on one node, and cluster mode over the whole fleet
                (the bench controller has no metrics)
  peak RSS      VmHWM of each fleetmcp process when its calls are done

Every tool is timed in a fresh fleetmcp process, all processes of one backend
sharing one store: its first call (on REST, the very first process loads the
node table with a whole listing and leaves its snapshot in the store; later
processes restore that and pay two conditional reads; repair_plan's first
call is also timed on an empty store) is reported on its own, then
the median of FM_BENCH_RUNS (default 10) later calls in the same session
back to back (on REST most of those reuse a table check under 250 ms old),
then slurm_nodes and repair_plan calls 300 ms apart (each pays its
conditional reads).  On the CLI each plan says which read answered its
capacity (capacity_as_of: sinfo now, or another call's aggregate shared
through the store and its age); the first call of fresh processes is timed
with a recent aggregate in the store (slurm.cli.aggregate_max_age_s).
Beside the times, per call: CPU seconds of fleetmcp, slurmctld and slurmrestd
(/proc, 10 ms ticks) and what slurmctld was asked (sdiag's RPC counts by
type), since wall times on a shared machine are the load's.

Targets (issue 20, at 16,384 nodes): slurm_nodes < 2x sinfo's time and
>= 20x smaller; repair_plan <= 100 ms; peak RSS <= 32 MB.  Judged per
backend, first call and later calls apart; the closing line says which
target fails where.
"""
import json
import os
import re
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "replay"))
from session import Session  # noqa: E402

fleetmcp = sys.argv[1]
runs = int(os.environ.get("FM_BENCH_RUNS", "10"))
stack = os.environ["FM_BENCH_STACK"]
nodes_n = int(os.environ["FM_BENCH_NODES"])
socket = os.environ.get("FM_SLURM_SOCKET", os.path.join(stack, "rest", "slurmrestd.sock"))
TICK = os.sysconf("SC_CLK_TCK")
BACKENDS = (("cli", os.environ["FM_CONFIG_CLI"]), ("rest", os.environ["FM_CONFIG"]))


def vmhwm_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def cpu_s(pid):
    """utime + stime of pid and its waited-for children, in seconds (0 if gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError, TypeError):
        return 0.0
    return sum(int(x) for x in fields[11:15]) / TICK


def pidfile(name):
    try:
        with open(os.path.join(stack, "run", name)) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


ctld_pid, rest_pid = pidfile("slurmctld.pid"), pidfile("slurmrestd-local.pid")
SDIAG = re.compile(r"^\s+(\w+)\s+\(\s*\d+\)\s+count:(\d+)\s+ave_time:\d+\s+total_time:(\d+)")


def rpcs():
    """slurmctld's RPC counts and total microseconds by type (sdiag)."""
    out = subprocess.run(["sdiag"], capture_output=True, text=True, timeout=120).stdout
    got, on = {}, False
    for line in out.splitlines():
        if line.startswith("Remote Procedure Call statistics by message type"):
            on = True
        elif on and not line.strip():
            break
        elif on and (m := SDIAG.match(line)):
            got[m.group(1)] = (int(m.group(2)), int(m.group(3)))
    return got


class Meter:
    """CPU of fleetmcp, slurmctld, slurmrestd and slurmctld's RPCs over a span."""

    def __init__(self, pid):
        self.pid = pid
        self.r0 = rpcs()
        self.c0 = (cpu_s(pid), cpu_s(ctld_pid), cpu_s(rest_pid))

    def done(self, calls):
        c1 = (cpu_s(self.pid), cpu_s(ctld_pid), cpu_s(rest_pid))
        r1 = rpcs()
        per = [(b - a) / calls for a, b in zip(self.c0, c1)]
        asked = {}
        for k, (n, us) in r1.items():
            n0, us0 = self.r0.get(k, (0, 0))
            if n > n0 and k != "REQUEST_STATS_INFO":  # sdiag's own
                asked[k.replace("REQUEST_", "")] = ((n - n0) / calls, (us - us0) / 1000 / calls)
        return per, asked


def fmt_cost(per, asked):
    rp = ", ".join(f"{k} x{n:.2g} ({ms:.0f} ms)" for k, (n, ms) in sorted(asked.items())) or "none"
    return (f"CPU per call: fleetmcp (+ the commands it runs) {per[0]*1000:.0f} ms, slurmctld "
            f"{per[1]*1000:.0f} ms, slurmrestd {per[2]*1000:.0f} ms; slurmctld asked per call: "
            f"{rp}")


def timed(s, tool, args):
    t0 = time.perf_counter()
    r = s.rpc("tools/call", {"name": tool, "arguments": args})
    dt = time.perf_counter() - t0
    res = r.get("result") or {}
    if "error" in r or res.get("isError"):
        err = r["error"]["message"] if "error" in r else res["content"][0]["text"]
        return dt, None, err, 0
    return dt, res.get("structuredContent"), None, len(json.dumps(r, separators=(",", ":")))


def spaced(s, tool, args, n, gap=0.3):
    """n calls gap seconds apart (past the 250 ms a REST table check stands
    for, so each pays its conditional reads): median seconds and cost."""
    ts, m = [], Meter(s.p.pid)
    for _ in range(n):
        time.sleep(gap)
        dt, _, err, _ = timed(s, tool, args)
        if err:
            break
        ts.append(dt)
    return (statistics.median(ts) if ts else float("nan")), m.done(max(1, len(ts)))


def as_of(res):
    """Which read answered a plan's capacity: (source, age ms) from
    capacity_as_of (the CLI's: its own sinfo now, or another call's
    aggregate shared through the store), or None."""
    a = (res or {}).get("capacity_as_of")
    return (a["source"], a["age_ms"]) if a else None


def paths(ps):
    """'read_now x1, shared_aggregate x9 (age median 1234 ms, max 2345 ms)'."""
    ps = [p for p in ps if p]
    if not ps:
        return "not said"
    out = []
    for src in sorted({p[0] for p in ps}):
        ages = [p[1] for p in ps if p[0] == src]
        out.append(f"{src} x{len(ages)}" + (f" (age median {statistics.median(ages):.0f} ms, max "
                                             f"{max(ages)} ms)" if src != "read_now" else ""))
    return ", ".join(out)


def series(s, tool, args, n):
    """The first call in the session, then n more: a dict with first (s),
    med (s), the last result, err, line, and both spans' costs."""
    m = Meter(s.p.pid)
    first, res, err, line = timed(s, tool, args)
    first_cost = m.done(1)
    out = {"first": first, "med": float("nan"), "res": res, "err": err, "line": line,
           "first_cost": first_cost, "cost": None, "paths": [as_of(res)]}
    if err:
        return out
    m, ts = Meter(s.p.pid), []
    for _ in range(n):
        dt, res, err, line = timed(s, tool, args)
        if err:
            break
        ts.append(dt)
        out["paths"].append(as_of(res))
    out.update(med=statistics.median(ts) if ts else float("nan"), res=res, err=err, line=line,
               cost=m.done(max(1, len(ts))))
    return out


def session(cfg, name, shadow=False, store=None):
    """A fresh fleetmcp process.  Every process of one backend shares one
    store (bench-<backend>.db), as the fresh stdio process per agent session
    of one deployment does: on REST the first process to read the whole
    listing leaves the node table's snapshot there for the next ones."""
    db = store or f"bench-{name.rsplit('-', 1)[-1]}.db"
    return Session(fleetmcp, cfg, os.path.join(stack, db),
                   env={"FLEETMCP_MODE": "shadow"} if shadow else None, client="bench")


def cmd_median(argv, n):
    ts, out = [], b""
    for _ in range(n):
        t0 = time.perf_counter()
        out = subprocess.run(argv, check=True, capture_output=True, timeout=600).stdout
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), out


def together_median(argvs, n):
    """Median seconds until all of argvs, started at once, have ended."""
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        ps = [subprocess.Popen(a, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
              for a in argvs]
        for p in ps:
            p.wait(timeout=600)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


verdicts = {"cli": [], "rest": []}  # (target, where, ok, why)
ONLY = set(filter(None, os.environ.get("FM_BENCH_ONLY", "").split(",")))


def want(part):
    """FM_BENCH_ONLY=repair_plan,... runs only those parts (default: all)."""
    return not ONLY or part in ONLY


def judge(backend, target, where, ok, why):
    verdicts[backend].append((target, where, ok, why))
    return "ok" if ok else "MISSED"


s_med, out = cmd_median(["sinfo", "--json"], max(3, runs // 2))
s_bytes = len(out)
node = json.loads(out)["nodes"][0]["name"]
del out
r_med, rout = cmd_median(["curl", "-sf", "--unix-socket", socket,
                          "http://localhost/slurm/v0.0.38/nodes"], 3)
r_bytes = len(rout)
del rout
print(f"nodes: {nodes_n}   runs: {runs} (medians)   machine: {os.uname().nodename}, "
      f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
print(f"{'':52} {'time':>10} {'bytes':>10} {'vs sinfo':>9} {'smaller':>8} {'peak RSS':>10}")
print(f"{'sinfo --json (raw)':52} {s_med*1000:>8.0f}ms {s_bytes:>10}")
print(f"{'slurmrestd /nodes (raw, curl; the REST first-call floor)':52} {r_med*1000:>8.0f}ms "
      f"{r_bytes:>10} {r_med/s_med:>8.2f}x")
for backend, cfg in (BACKENDS if want("slurm_nodes") else ()):
    s = session(cfg, f"nodes-{backend}")
    sr = series(s, "slurm_nodes", {}, runs)
    if backend == "rest" and not sr["err"]:
        # The first call on an empty store is slurmrestd's listing plus
        # fleetmcp's own parse (streamed as it arrives): which part misses.
        own = sr["first"] - r_med
        print(f"slurm_nodes rest first call: slurmrestd's raw /nodes {r_med*1000:.0f} ms "
              f"({r_med/s_med:.2f}x sinfo), fleetmcp's share beyond it {own*1000:.0f} ms "
              f"({own/s_med:.2f}x sinfo; its CPU {sr['first_cost'][0][0]*1000:.0f} ms)")
        judge("rest", "slurm_nodes", "slurmrestd's raw /nodes alone", r_med / s_med < 2,
              f"{r_med/s_med:.2f}x sinfo before fleetmcp parses a byte")
    gap = spaced(s, "slurm_nodes", {}, max(3, runs // 2)) if not sr["err"] else None
    rss = vmhwm_kb(s.p.pid)
    s.close()
    if sr["err"]:
        print(f"slurm_nodes via {backend}: FAILED: {sr['err']}")
        judge(backend, "slurm_nodes", "call", False, f"failed: {sr['err'][:120]}")
        continue
    sc = len(json.dumps(sr["res"], separators=(",", ":")))
    br = s_bytes / sc
    for where, t in (("first call", sr["first"]), ("later calls", sr["med"]),
                     ("later, 300 ms apart", gap[0])):
        tr = t / s_med
        good = tr < 2 and br >= 20 and rss <= 32 * 1024
        v = judge(backend, "slurm_nodes", where, good,
                  f"{tr:.2f}x sinfo" + (f", RSS {rss} kB" if rss > 32 * 1024 else ""))
        label = f"slurm_nodes {{}} via {backend}, {where}"
        print(f"{label:52} {t*1000:>8.0f}ms {sc:>10} {tr:>8.2f}x {br:>7.0f}x {rss:>8}kB  {v}")
    print(f"  first call: {fmt_cost(*sr['first_cost'])}")
    print(f"  later calls: {fmt_cost(*sr['cost'])}")
    print(f"  later, 300 ms apart: {fmt_cost(*gap[1])}")
    print(f"  (whole JSON-RPC reply line: {sr['line']} bytes)")
    if sr["res"]["total"] != nodes_n:
        print(f"  MISMATCH: the tool counted {sr['res']['total']} nodes, the controller has "
              f"{nodes_n}")
        judge(backend, "slurm_nodes", "count", False, "wrong node count")

floor_runs = runs if want("repair_plan") else 1
# The node read's form must match src/backends/slurm_cli.c (cli_plan_node).
SINFO_NODE = ("NodeList:|,StateComplete:|,User:|,Timestamp:|,Features:|,Gres:|,CPUs:|,"
              "Memory:|,PartitionName:|,Reason:")
plan_node = ["sinfo", "-h", "-N", "-n", node, "-O", SINFO_NODE]
aggregate = ["sinfo", "-h", "-a", "-o", "%R|%T|%D|%N"]
forms = (("no RPC at all (scontrol --version: the start of any command)", ["scontrol", "--version"]),
         ("scontrol show node NODE --oneliner (packs every node)",
          ["scontrol", "show", "node", node, "--oneliner"]),
         ("scontrol show node NODE (multi-line)", ["scontrol", "show", "node", node]),
         ("sinfo -N -n NODE -O ... (packs that node: the plan's)", plan_node),
         ("sinfo aggregate %R|%T|%D|%N (the plan's capacity and fleet)", aggregate),
         ("sinfo aggregate %R|%T|%D (no hostlists)", ["sinfo", "-h", "-a", "-o", "%R|%T|%D"]),
         ("sinfo --summarize", ["sinfo", "-h", "-s"]),
         ("scontrol show partition (no node states)", ["scontrol", "show", "partition"]))
cost = {}
for label, argv in (forms if want("repair_plan") else forms[1:2] + forms[3:5]):
    cost[label], _ = cmd_median(argv, floor_runs)
    print(f"  Slurm command alone: {label:62} {cost[label]*1000:7.0f} ms")
floor_cli = together_median([plan_node, aggregate], floor_runs)
print(f"repair_plan's CLI Slurm reads (sinfo -n NODE and the aggregate, concurrently as the "
      f"plan runs them): {floor_cli*1000:.0f} ms (one after the other before: scontrol show node"
      f" + aggregate {(cost[forms[1][0]] + cost[forms[4][0]])*1000:.0f} ms), "
      + ("over" if floor_cli > 0.1 else "under") + " 100 ms before fleetmcp does anything")
for backend, cfg in (BACKENDS if want("repair_plan") else ()):
    pargs = {"node": node, "fault_class": "gpu_fallen_off_bus"}
    if backend == "rest":
        # A process whose store holds no snapshot: the whole listing (on the
        # shared store when no earlier row wrote it, so it leaves one).
        shared = os.path.exists(os.path.join(stack, "bench-rest.db"))
        s = session(cfg, "plan-cold-rest", shadow=True,
                    store="bench-plan-cold.db" if shared else "bench-rest.db")
        cold = series(s, "repair_plan", pargs, 0)
        s.close()
        print(f"repair_plan, every guardrail, rest first call, empty store (no snapshot: one "
              f"whole listing): {cold['first']*1000:8.1f} ms"
              + (f"  error: {cold['err']}" if cold["err"] else ""))
        print(f"  {fmt_cost(*cold['first_cost'])}")
    s = session(cfg, f"plan-{backend}", shadow=True)
    sr = series(s, "repair_plan", pargs, runs)
    gap = spaced(s, "repair_plan", pargs, max(3, runs // 2)) if not sr["err"] else None
    rss = vmhwm_kb(s.p.pid)
    s.close()
    res, err = sr["res"], sr["err"]
    nv = len(res["guardrails"].get("verdicts", [])) if res else 0
    firsts = [sr["first"]]
    if backend == "cli":
        print(f"repair_plan, every guardrail, cli first call, no aggregate in the store: "
              f"{sr['first']*1000:8.1f} ms ({paths(sr['paths'][:1])}); later calls: capacity "
              f"from {paths(sr['paths'][1:])}")
        firsts = []  # the fresh processes below: a recent aggregate in the store
    if not err:
        # More fresh processes on the shared store: the first call an agent
        # framework's new session pays (REST: snapshot, /diag, two 304s;
        # CLI: the node read and the aggregate another process shared, when
        # younger than slurm.cli.aggregate_max_age_s).
        fpaths = []
        for i in range(max(2, runs // 2) - 1):
            f = session(cfg, f"plan-again{i}-{backend}", shadow=True)
            fr = series(f, "repair_plan", pargs, 0)
            firsts.append(fr["first"])
            fpaths += fr["paths"]
            rss = max(rss, vmhwm_kb(f.p.pid))
            f.close()
        print(f"repair_plan, every guardrail, {backend} first call in {len(firsts)} fresh "
              f"processes on the shared store: median {statistics.median(firsts)*1000:.1f} ms, "
              f"min {min(firsts)*1000:.1f} ms, max {max(firsts)*1000:.1f} ms"
              + (f"; capacity from {paths(fpaths)}" if backend == "cli" else ""))
    for where, t in (("first call", statistics.median(firsts)), ("later calls", sr["med"]),
                     ("300 ms apart", gap[0] if gap else float("nan"))):
        good = not err and t * 1000 <= 100 and rss <= 32 * 1024
        v = judge(backend, "repair_plan", where, good,
                  f"{t*1000:.0f} ms" + (f", RSS {rss} kB" if rss > 32 * 1024 else "")
                  + (f"; Slurm's own reads alone {floor_cli*1000:.0f} ms"
                     if backend == "cli" else ""))
        print(f"repair_plan, every guardrail, {backend:4} {where:12}: {t*1000:8.1f} ms, {nv} "
              f"verdicts, peak RSS {rss} kB  (<= 100 ms, <= 32 MB: {v})"
              + (f"  error: {err}" if err else ""))
    print(f"  first call: {fmt_cost(*sr['first_cost'])}"
          + ("  (restores the node table's snapshot another process left in the store, then"
             " the two conditional reads)" if backend == "rest" else ""))
    if sr["cost"]:
        print(f"  later calls: {fmt_cost(*sr['cost'])}")
    if gap:
        print(f"  300 ms apart: {fmt_cost(*gap[1])}")

for backend, cfg in (BACKENDS if want("fleet_status") else ()):
    s = session(cfg, f"status-{backend}")
    sr = series(s, "fleet_status", {}, runs)
    print(f"fleet_status ({backend}): first {sr['first']*1000:.0f} ms, later median "
          f"{sr['med']*1000:.0f} ms, peak RSS {vmhwm_kb(s.p.pid)} kB"
          + (f"  error: {sr['err']}" if sr["err"] else ""))
    if sr["cost"]:
        print(f"  later calls: {fmt_cost(*sr['cost'])}  (orphaned drains: a node listing)")
    if backend == "cli":
        sr = series(s, "diagnose", {"node": node}, max(3, runs // 2))
        print(f"diagnose node mode (cli, no metrics or SSH here): median "
              f"{sr['med']*1000:7.1f} ms, peak RSS {vmhwm_kb(s.p.pid)} kB"
              + (f"  error: {sr['err']}" if sr["err"] else ""))
    s.close()
for backend, cfg in (BACKENDS if want("diagnose") else ()):
    s = session(cfg, f"cluster-{backend}")
    sr = series(s, "diagnose", {"cluster": {}}, max(3, runs // 4))
    rss = vmhwm_kb(s.p.pid)
    s.close()
    cl = (sr["res"] or {}).get("cluster", {})
    print(f"diagnose cluster mode, whole fleet ({backend}, no metrics here): first "
          f"{sr['first']*1000:.0f} ms, later median {sr['med']*1000:.0f} ms, "
          f"{cl.get('nodes_in_scope')} nodes, {len(cl.get('ranked', []))} ranked, counts "
          f"{cl.get('counts')}, peak RSS {rss} kB"
          + (f"  error: {sr['err']}" if sr["err"] else ""))
    judge(backend, "peak RSS", "cluster mode", rss <= 32 * 1024, f"{rss} kB")
    if sr["cost"]:
        print(f"  later calls: {fmt_cost(*sr['cost'])}")
    if not sr["err"] and cl.get("nodes_in_scope") != nodes_n:
        print(f"  MISMATCH: cluster mode saw {cl.get('nodes_in_scope')} nodes, the controller "
              f"has {nodes_n}")
        judge(backend, "cluster mode", "count", False, "wrong node count")

print("targets (slurm_nodes < 2x sinfo and >= 20x smaller, repair_plan <= 100 ms, "
      "peak RSS <= 32 MB), per backend:")
ok = True
for backend, vs in verdicts.items():
    missed = [f"{t} {w} ({why})" for t, w, good, why in vs if not good]
    ok = ok and not missed
    print(f"  {backend}: " + ("met" if not missed else "MISSED: " + "; ".join(missed)))
print("targets:", "met" if ok else "MISSED (see the lines above for where)")
sys.exit(0 if ok else 1)
