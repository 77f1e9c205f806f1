#!/usr/bin/env python3
"""The fleet-scale rows of `make bench`, over a running benchmark controller
(tests/stack/bench-fleet.sh; bench/fleet.sh starts one per size).

  slurm_nodes   one tools/call round trip through a running build/fleetmcp
                over stdio (sinfo or slurmrestd, parsing, normalizing, the
                gate, the audit row), against the raw `sinfo --json` it
                replaces: time and bytes (structuredContent as compact JSON
                against sinfo's stdout; the whole reply line is printed too)
  repair_plan   every guardrail, on one node, in shadow mode, beside the Slurm
                reads it cannot avoid (scontrol show node; one sinfo aggregate
                over the node's partitions, which makes slurmctld pack and
                sinfo unpack the whole node table: the plan's floor)
  fleet_status  the dashboard read
  diagnose      node mode on one node, and cluster mode over the whole fleet
                (one Slurm listing; the bench controller has no metrics)
  peak RSS      VmHWM of each fleetmcp process when its calls are done

Times are medians of FM_BENCH_RUNS (default 10) calls after a warm-up call
in the same session (the warm-up also discovers the REST version).

Targets (issue 20, at 16,384 nodes): slurm_nodes < 2x sinfo's time and
>= 20x smaller; repair_plan <= 100 ms; peak RSS <= 32 MB.
"""
import json
import os
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


def vmhwm_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def timed(s, tool, args):
    t0 = time.perf_counter()
    r = s.rpc("tools/call", {"name": tool, "arguments": args})
    dt = time.perf_counter() - t0
    res = r.get("result") or {}
    if "error" in r or res.get("isError"):
        err = r["error"]["message"] if "error" in r else res["content"][0]["text"]
        return dt, None, err, 0
    return dt, res.get("structuredContent"), None, len(json.dumps(r, separators=(",", ":")))


first_call = {}


def series(s, tool, args, n):
    """Median seconds over n calls after one warm-up; the last result.  The
    warm-up's time is kept in first_call[tool] (the call that loads what a
    session keeps, e.g. the REST node table)."""
    first_call[tool] = timed(s, tool, args)[0]
    ts, last, err, line = [], None, None, 0
    for _ in range(n):
        dt, last, err, line = timed(s, tool, args)
        if err:
            break
        ts.append(dt)
    return (statistics.median(ts) if ts else float("nan")), last, err, line


def session(cfg, name, shadow=False):
    return Session(fleetmcp, cfg, os.path.join(stack, f"bench-{name}.db"),
                   env={"FLEETMCP_MODE": "shadow"} if shadow else None, client="bench")


ok = True
s_times, s_bytes = [], 0
for _ in range(max(3, runs // 2)):
    t0 = time.perf_counter()
    out = subprocess.run(["sinfo", "--json"], check=True, capture_output=True).stdout
    s_times.append(time.perf_counter() - t0)
    s_bytes = len(out)
s_med = statistics.median(s_times)
node = json.loads(out)["nodes"][0]["name"]
del out
print(f"nodes: {nodes_n}   runs: {runs} (medians)   machine: {os.uname().nodename}, "
      f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
print(f"{'':52} {'time':>10} {'bytes':>10} {'vs sinfo':>9} {'smaller':>8} {'peak RSS':>10}")
print(f"{'sinfo --json (raw)':52} {s_med*1000:>8.0f}ms {s_bytes:>10}")
for backend, cfg in (("cli", os.environ["FM_CONFIG_CLI"]), ("rest", os.environ["FM_CONFIG"])):
    s = session(cfg, f"nodes-{backend}")
    med, res, err, line = series(s, "slurm_nodes", {}, runs)
    rss = vmhwm_kb(s.p.pid)
    s.close()
    if err:
        print(f"slurm_nodes via {backend}: FAILED: {err}")
        ok = False
        continue
    sc = len(json.dumps(res, separators=(",", ":")))
    tr, br = med / s_med, s_bytes / sc
    good = tr < 2 and br >= 20 and rss <= 32 * 1024
    ok = ok and good
    print(f"{'slurm_nodes {} via ' + backend:52} {med*1000:>8.0f}ms {sc:>10} {tr:>8.2f}x "
          f"{br:>7.0f}x {rss:>8}kB")
    print(f"{'  (whole JSON-RPC reply line)':52} {'':>10} {line:>10}")
    if res["total"] != nodes_n:
        print(f"  MISMATCH: the tool counted {res['total']} nodes, the controller has {nodes_n}")
        ok = False


def cmd_median(argv, n):
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


floor_node = cmd_median(["scontrol", "show", "node", node, "--oneliner"], runs)
floor_cap = cmd_median(["sinfo", "-h", "-p", "gpu,debug", "-o", "%R|%T|%D"], runs)
print(f"repair_plan's Slurm reads alone: scontrol show node {floor_node*1000:.0f} ms, "
      f"sinfo capacity aggregate {floor_cap*1000:.0f} ms (medians)")
for backend, cfg in (("cli", os.environ["FM_CONFIG_CLI"]), ("rest", os.environ["FM_CONFIG"])):
    s = session(cfg, f"plan-{backend}", shadow=True)
    med, res, err, _ = series(s, "repair_plan", {"node": node, "fault_class":
                                                 "gpu_fallen_off_bus"}, runs)
    rss = vmhwm_kb(s.p.pid)
    s.close()
    verdicts = len(res["guardrails"].get("verdicts", [])) if res else 0
    good = not err and med * 1000 <= 100 and rss <= 32 * 1024
    ok = ok and good
    print(f"repair_plan, every guardrail, {backend:4}: median {med*1000:7.1f} ms, {verdicts} "
          f"verdicts, peak RSS {rss} kB  (<= 100 ms, <= 32 MB: {'ok' if good else 'MISSED'})"
          + (f"  error: {err}" if err else ""))
    print(f"  first call in the session {first_call['repair_plan']*1000:7.1f} ms"
          + ("  (loads the node table; later calls: conditional reads)" if backend == "rest"
             else "  (no conditional form in the CLI: every call reads Slurm)"))

s = session(os.environ["FM_CONFIG_CLI"], "status")
med, res, err, _ = series(s, "fleet_status", {}, runs)
print(f"fleet_status (cli): median {med*1000:7.1f} ms, peak RSS {vmhwm_kb(s.p.pid)} kB"
      + (f"  error: {err}" if err else ""))
med, res, err, _ = series(s, "diagnose", {"node": node}, max(3, runs // 2))
print(f"diagnose node mode (cli, no metrics or SSH here): median {med*1000:7.1f} ms, peak RSS "
      f"{vmhwm_kb(s.p.pid)} kB" + (f"  error: {err}" if err else ""))
med, res, err, _ = series(s, "diagnose", {"cluster": {}}, max(3, runs // 4))
cl = (res or {}).get("cluster", {})
print(f"diagnose cluster mode, whole fleet (cli, no metrics here): median {med*1000:7.1f} ms, "
      f"first {first_call['diagnose']*1000:7.1f} ms, {cl.get('nodes_in_scope')} nodes, "
      f"{len(cl.get('ranked', []))} ranked, counts {cl.get('counts')}, peak RSS "
      f"{vmhwm_kb(s.p.pid)} kB" + (f"  error: {err}" if err else ""))
if not err and cl.get("nodes_in_scope") != nodes_n:
    print(f"  MISMATCH: cluster mode saw {cl.get('nodes_in_scope')} nodes, the controller has "
          f"{nodes_n}")
    ok = False
s.close()
print("targets (slurm_nodes < 2x sinfo and >= 20x smaller, repair_plan <= 100 ms, "
      "peak RSS <= 32 MB):", "met" if ok else "MISSED")
sys.exit(0 if ok else 1)
