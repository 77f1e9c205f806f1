#!/bin/bash
# `make bench`: fleetmcp against the TypeScript SDK's reference server
# (@modelcontextprotocol/server-everything), same client, same run.
# Figures are medians; ratios compare the two servers measured here.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cc -std=c11 -D_GNU_SOURCE -O2 -Iinclude bench/mcpbench.c build/libfleetmcp.a \
    $(pkg-config --cflags --libs jansson libcurl yaml-0.1 sqlite3 libssh2 libcrypto libpcre2-8) \
    -lpthread -lm -o "$tmp/mcpbench"
everything=tests/interop/node_modules/@modelcontextprotocol/server-everything/dist/index.js
[ -e "$everything" ] || { echo "bench: run 'make deps' first (npm packages)"; exit 1; }

echo "== MCP round trips (same client: bench/mcpbench.c; medians)"
fm=$("$tmp/mcpbench" --tool runbook_list --args '{"fault_class":"gpu_fallen_off_bus"}' \
    --starts 30 --pings 5000 --calls 2000 -- env FLEETMCP_DB="$tmp/bench.db" build/fleetmcp)
fs=$("$tmp/mcpbench" --tool fleet_status --starts 1 --pings 10 --calls 500 -- \
    env FLEETMCP_DB="$tmp/bench-fs.db" build/fleetmcp)
ev=$("$tmp/mcpbench" --tool echo --args '{"message":"hi"}' --starts 10 --pings 2000 --calls 1000 -- \
    node "$everything" stdio)
python3 - "$fm" "$ev" "$fs" <<'PY'
import json, sys
fm, ev, fs = json.loads(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3])
rows = [("cold start (spawn to initialize reply)", "cold_start_us", "us", 5000),
        ("ping round trip", "ping_us", "us", 20),
        ("audited read tools/call (fleetmcp: runbook_list; reference: echo)", "call_us", "us", 60),
        ("peak RSS", "peak_rss_kb", "kB", 8192)]
print(f"{'':64} {'fleetmcp':>10} {'reference':>10} {'ratio':>8}  target")
for name, k, unit, target in rows:
    r = ev[k] / fm[k] if fm[k] else float("inf")
    ok = "ok" if fm[k] <= target else "MISSED"
    print(f"{name:64} {fm[k]:>8.1f}{unit:>2} {ev[k]:>8.1f}{unit:>2} {r:>7.1f}x  <= {target} {unit} {ok}")
print(f"{'fleet_status round trip (dashboard: metrics, workflows, tickets)':64} {fs['call_us']:>8.1f}us")
PY
for b in bench/*.sh; do
    [ "$b" = bench/run.sh ] && continue
    echo
    echo "== $b"
    bash "$b" || echo "bench: $b failed"
done
