#!/usr/bin/env bash
# slurm_nodes summary over a real slurmctld with 2,000 nodes
# (tests/stack/bench-2000.sh), side by side with the raw `sinfo --json` it
# replaces.  Times are medians of N runs (wall clock; the tool's is one
# tools/call round trip through a running build/fleetmcp over stdio, so it
# includes sinfo/slurmrestd, parsing, normalizing, the gate and the audit
# row).  Bytes: the tool's structuredContent (compact JSON) against sinfo's
# stdout; the whole JSON-RPC reply line (which also carries the same JSON as
# text content) is printed too.
#
#   bench/slurm_nodes_2000.sh            (FM_BENCH_RUNS=10)
#
# Targets (issue 3): tool time < 2x sinfo time; result >= 20x smaller.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
RUNS=${FM_BENCH_RUNS:-10}
[ "$(id -u)" = 0 ] || { echo "slurm_nodes_2000: run as root (the bench controller needs it)" >&2; exit 1; }
make -s "$BUILD/fleetmcp" >&2
B=$(mktemp -d /tmp/fm-bench-slurm.XXXXXX)
trap 'tests/stack/bench-2000.sh down "$B" >/dev/null 2>&1 || true; rm -rf "$B"' EXIT
tests/stack/bench-2000.sh up "$B" >/dev/null
# shellcheck disable=SC1091
. "$B/stack.env"
python3 - "$BUILD/fleetmcp" "$RUNS" <<'PY'
import json, os, select, statistics, subprocess, sys, time
fleetmcp, runs = sys.argv[1], int(sys.argv[2])
env = dict(os.environ)

def sinfo():
    t0 = time.perf_counter()
    out = subprocess.run(["sinfo", "--json"], env=env, check=True, capture_output=True).stdout
    return time.perf_counter() - t0, len(out), json.loads(out)

class Server:
    def __init__(self, config):
        self.p = subprocess.Popen([fleetmcp, "--config", config, "--db",
                                   os.path.join(os.environ["FM_BENCH_STACK"], "bench.db")],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL)
        self.buf, self.id = b"", 0
        self.rpc("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                "clientInfo": {"name": "bench", "version": "1"}})
        self.p.stdin.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
        self.p.stdin.flush()
    def rpc(self, method, params):
        self.id += 1
        self.p.stdin.write(json.dumps({"jsonrpc": "2.0", "id": self.id, "method": method,
                                       "params": params}).encode() + b"\n")
        self.p.stdin.flush()
        end = time.time() + 60
        while time.time() < end:
            if b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                msg = json.loads(line)
                if msg.get("id") == self.id:
                    return line, msg
                continue
            r, _, _ = select.select([self.p.stdout], [], [], 1)
            if r:
                chunk = os.read(self.p.stdout.fileno(), 1 << 22)
                if not chunk:
                    sys.exit("server exited")
                self.buf += chunk
        sys.exit("no answer in 60 s")
    def call(self, args):
        t0 = time.perf_counter()
        line, msg = self.rpc("tools/call", {"name": "slurm_nodes", "arguments": args})
        dt = time.perf_counter() - t0
        res = msg["result"]
        if res.get("isError"):
            sys.exit("slurm_nodes failed: " + res["content"][0]["text"])
        sc = json.dumps(res["structuredContent"], separators=(",", ":"))
        return dt, len(sc), len(line), res["structuredContent"]
    def close(self):
        self.p.stdin.close()
        self.p.wait(10)

s_times, s_bytes = [], 0
for _ in range(runs):
    t, n, doc = sinfo()
    s_times.append(t)
    s_bytes = n
nodes = len(doc["nodes"])
s_med = statistics.median(s_times)
print(f"nodes: {nodes}   runs: {runs} (medians)")
print(f"{'':44} {'time':>9} {'bytes':>10} {'time vs sinfo':>14} {'smaller by':>11}")
print(f"{'sinfo --json (raw)':44} {s_med*1000:>7.1f}ms {s_bytes:>10}")
ok = True
for label, cfg, args in (("slurm_nodes {} via cli (sinfo --json)", "FM_CONFIG_CLI", {}),
                         ("slurm_nodes {} via rest (slurmrestd socket)", "FM_CONFIG", {}),
                         ("slurm_nodes {limit:0} via cli (counts only)", "FM_CONFIG_CLI", {"limit": 0})):
    srv = Server(os.environ[cfg])
    srv.call(args)  # warm: the first call also discovers the REST version
    ts, sc_b, line_b = [], 0, 0
    for _ in range(runs):
        dt, sc_b, line_b, res = srv.call(args)
        ts.append(dt)
    srv.close()
    med = statistics.median(ts)
    tr, br = med / s_med, s_bytes / sc_b
    print(f"{label:44} {med*1000:>7.1f}ms {sc_b:>10} {tr:>13.2f}x {br:>10.0f}x")
    print(f"{'  (whole JSON-RPC reply line)':44} {'':>9} {line_b:>10} {'':>14} {s_bytes/line_b:>10.0f}x")
    if res["total"] != nodes:
        print(f"  MISMATCH: tool counted {res['total']} nodes, sinfo {nodes}")
        ok = False
    if "{}" in label:
        ok = ok and tr < 2 and br >= 20
print("targets (time < 2x sinfo, >= 20x smaller):", "met" if ok else "MISSED")
PY
