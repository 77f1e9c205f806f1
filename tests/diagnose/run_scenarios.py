#!/usr/bin/env python3
"""Runs every labelled scenario through the diagnose tool and checks it.

usage: run_scenarios.py [--direct] [--server build/fleetmcp] [--cli build/diag/diag_cli]
                        [--signatures runbooks/signatures.yaml] [-v] [DIR...]

Default DIRs: ../shared/scenarios (relative to the repo root, when it
exists) and tests/scenarios.  By default each file goes to the real server
over MCP stdio (initialize, notifications/initialized, tools/call diagnose
{signals}); --direct runs the engine through tests/diagnose/diag_cli
instead.  Checks per scenario: the expected top class, the expected scope,
and no destructive recommendation with act=true when destructive_ok is
false.  Prints a per-class table and, per directory, top-1 accuracy and
unsafe calls (a destructive top class for an incident whose destructive_ok
is false: a destructive runbook it did not need); exit 1 on any failure.
"""
import argparse
import json
import os
import select
import subprocess
import sys
import time

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEADLINE_S = 20          # per tools/call
TOTAL_DEADLINE_S = 600   # whole MCP session


def scenario_files(dirs):
    out = []
    for d in dirs:
        if not os.path.isdir(d):
            continue
        out += [os.path.join(d, n) for n in sorted(os.listdir(d)) if n.endswith(".yaml")]
    return out


def load(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def run_direct(cli, sigs, files):
    p = subprocess.run([cli, sigs] + files, capture_output=True, text=True, timeout=300)
    results = {}
    for line in p.stdout.splitlines():
        o = json.loads(line)
        results[o["file"]] = o.get("result") or {"error": o.get("error")}
    if p.returncode not in (0, 1):
        sys.exit(f"diag_cli failed: {p.stderr.strip()}")
    return results


class Mcp:
    """A minimal MCP stdio client: one JSON-RPC message per line."""

    def __init__(self, argv, env):
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=env, cwd=ROOT)
        self.next_id = 1
        self.buf = b""
        self.start = time.monotonic()

    def send(self, obj):
        self.p.stdin.write((json.dumps(obj) + "\n").encode())
        self.p.stdin.flush()

    def request(self, method, params):
        rid = self.next_id
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        end = time.monotonic() + DEADLINE_S
        while True:
            if time.monotonic() > end or time.monotonic() - self.start > TOTAL_DEADLINE_S:
                raise TimeoutError(f"no answer to {method} within {DEADLINE_S}s")
            while b"\n" not in self.buf:
                r, _, _ = select.select([self.p.stdout], [], [], max(0.0, end - time.monotonic()))
                if not r:
                    raise TimeoutError(f"no answer to {method}")
                chunk = os.read(self.p.stdout.fileno(), 1 << 20)
                if not chunk:
                    raise EOFError("server closed stdout: " + self.p.stderr.read().decode()[-500:])
                self.buf += chunk
            line, self.buf = self.buf.split(b"\n", 1)
            msg = json.loads(line)
            if msg.get("id") == rid:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    def close(self):
        try:
            self.p.stdin.close()
            self.p.wait(timeout=10)
        except Exception:
            self.p.kill()


def run_mcp(server, files, env):
    c = Mcp([server], env)
    try:
        c.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                 "clientInfo": {"name": "run_scenarios", "version": "1"}})
        c.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        results = {}
        for f in files:
            res = c.request("tools/call", {"name": "diagnose",
                                           "arguments": {"signals": load(f)["signals"]}})
            if res.get("isError"):
                results[f] = {"error": res["content"][0]["text"]}
            else:
                results[f] = res["structuredContent"]
        return results
    finally:
        c.close()


def check(doc, res):
    exp = doc["expect"]
    if "error" in res:
        return [f"error: {res['error']}"]
    probs = []
    top = res["top"]
    if top["fault_class"] != exp["fault_class"]:
        others = ", ".join(f"{c['fault_class']}={c['confidence']}" for c in res["classes"])
        probs.append(f"top {top['fault_class']} ({top['confidence']}), want {exp['fault_class']} [{others}]")
    if top["scope"] != exp["scope"]:
        probs.append(f"scope {top['scope']}, want {exp['scope']}")
    if not exp["destructive_ok"]:
        for c in res["classes"]:
            if c["destructive"] and c["act"]:
                probs.append(f"destructive {c['fault_class']} with act=true ({c['confidence']})")
    return probs


def default_dirs():
    """The shared scenarios and our own.  Without ../shared/scenarios CI
    would pass on our own cases alone: under CI=true that fails, otherwise
    it is a skip that make check counts (tests/run-check.sh, $FM_SKIPS)."""
    shared = os.path.join(ROOT, "..", "shared", "scenarios")
    if not os.path.isdir(shared):
        why = f"the shared scenarios: {os.path.normpath(shared)} is missing (clone the shared repository beside this one)"
        if os.environ.get("CI") == "true":
            sys.exit("NOTFOUND: " + why + "; CI must run them")
        print("skip " + why)
        if os.environ.get("FM_SKIPS"):
            with open(os.environ["FM_SKIPS"], "a") as f:
                f.write(os.environ.get("FM_STAGE", "diagnose-scenarios") + ": " + why + "\n")
        return [os.path.join(ROOT, "tests", "scenarios")]
    return [shared, os.path.join(ROOT, "tests", "scenarios")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dirs", nargs="*")
    ap.add_argument("--direct", action="store_true", help="run the engine via diag_cli")
    ap.add_argument("--server", default=os.path.join(ROOT, "build", "fleetmcp"))
    ap.add_argument("--cli", default=os.path.join(ROOT, "build", "diag", "diag_cli"))
    ap.add_argument("--signatures", default=os.path.join(ROOT, "runbooks", "signatures.yaml"))
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--held-out", nargs=2, type=int, metavar=("MIN_TOP1", "MAX_UNSAFE"),
                    help="score a held-out set: pass when top-1 reaches MIN_TOP1 and unsafe "
                         "calls stay at most MAX_UNSAFE, instead of requiring every scenario")
    a = ap.parse_args()
    dirs = a.dirs or default_dirs()
    files = scenario_files(dirs)
    if not files:
        sys.exit("no scenario files found in " + ", ".join(dirs))
    if a.direct:
        results = run_direct(a.cli, a.signatures, files)
    else:
        env = dict(os.environ)
        db = os.path.join("/tmp", f"fleetmcp-scen-{os.getpid()}.db")
        env.setdefault("FLEETMCP_DB", db)
        try:
            results = run_mcp(a.server, files, env)
        finally:
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(db + suffix):
                    os.remove(db + suffix)
    table = {}
    failed = 0
    per_dir = {}
    # A held-out set stays held out only if nobody working on the engine
    # sees which incidents it misses: without -v it prints counts alone.
    quiet = bool(a.held_out) and not a.verbose
    for f in files:
        doc = load(f)
        cls = doc["expect"]["fault_class"]
        res = results.get(f, {"error": "no result"})
        probs = check(doc, res)
        d = per_dir.setdefault(os.path.dirname(f), [0, 0, 0])
        d[0] += 1
        top = res.get("top") or {}
        d[1] += top.get("fault_class") == cls
        d[2] += bool(top.get("destructive")) and not doc["expect"]["destructive_ok"]
        t = table.setdefault(cls, [0, 0])
        t[0] += 1
        if probs:
            failed += 1
            if not quiet:
                print(f"FAIL {os.path.relpath(f, ROOT)}: " + "; ".join(probs))
        else:
            t[1] += 1
            if a.verbose:
                top = results[f]["top"]
                print(f"ok   {os.path.basename(f)}: {top['fault_class']} {top['confidence']} act={top['act']}")
    total = len(files)
    if not quiet:
        print(f"\n{'class':28} {'cases':>5} {'passed':>6}")
        for cls in sorted(table):
            print(f"{cls:28} {table[cls][0]:5} {table[cls][1]:6}")
        print(f"{'TOTAL':28} {total:5} {total - failed:6}")
        print()
    for d, (n, top1, unsafe) in per_dir.items():
        name = os.path.relpath(os.path.normpath(d), ROOT)
        print(f"set {name}: top-1 {top1}/{n} ({100.0 * top1 / n:.0f}%), unsafe calls {unsafe}")
    if a.held_out:
        # A held-out set is never tuned against, so it is not required to
        # pass whole; it must not fall below the figures last recorded.
        top1 = sum(v[1] for v in per_dir.values())
        unsafe = sum(v[2] for v in per_dir.values())
        floor, ceiling = a.held_out
        ok = top1 >= floor and unsafe <= ceiling
        print(f"held-out: top-1 {top1} (at least {floor}), unsafe calls {unsafe} (at most {ceiling}): "
              + ("ok" if ok else "REGRESSED"))
        sys.exit(0 if ok else 1)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
