#!/bin/bash
# `make bench`: fleetmcp against the TypeScript SDK's reference server
# (@modelcontextprotocol/server-everything), same client, same run.
# Figures are medians; ratios compare the two servers measured here.
#
# Round trips are measured twice.  Pinned: client and server share one
# CPU, so a round trip is the two processes' own work plus a context
# switch; the targets are judged here.  Unpinned: the scheduler may put
# them on different CPUs, and on a VM each cross-CPU wakeup can cost tens
# of microseconds (an IPI to an idle vCPU), for any server.  Both are
# printed; the difference is the machine, not the server.
#
#   bash bench/run.sh [mcp]      (mcp: the MCP figures only)
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
libs=$(pkg-config --cflags --libs $(make -s --no-print-directory print-pkgs))
for b in mcpbench callcost; do
    # shellcheck disable=SC2086
    cc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -Iinclude "bench/$b.c" build/libfleetmcp.a \
        $libs -lpthread -lm -o "$tmp/$b"
done
everything=tests/interop/node_modules/@modelcontextprotocol/server-everything/dist/index.js
[ -e "$everything" ] || { echo "bench: run 'make deps' first (npm packages)"; exit 1; }
cpu=$(($(nproc) - 1))
pin="taskset -c $cpu"

# The database is passed in the environment, not with env(1): an extra
# exec would count in fleetmcp's cold start.
fm_run() { # mcpbench over fleetmcp; $1: prefix command (may be empty)
    FLEETMCP_DB="$tmp/bench-$RANDOM.db" $1 "$tmp/mcpbench" --tool runbook_list \
        --args '{"fault_class":"gpu_fallen_off_bus"}' --starts 30 --pings 5000 --calls 2000 -- \
        build/fleetmcp
}
ev_run() { # its start-up banner goes to a file, shown only if it fails
    $1 "$tmp/mcpbench" --tool echo --args '{"message":"hi"}' --starts 10 --pings 2000 --calls 1000 -- \
        node "$everything" stdio 2>>"$tmp/reference.err" || { cat "$tmp/reference.err" >&2; return 1; }
}

echo "== MCP round trips (same client: bench/mcpbench.c; medians)"
fm_pin=$(fm_run "$pin")
ev_pin=$(ev_run "$pin")
fm_free=$(fm_run "")
ev_free=$(ev_run "")
fs=$(FLEETMCP_DB="$tmp/bench-fs.db" $pin "$tmp/mcpbench" --tool fleet_status --starts 1 \
    --pings 10 --calls 500 -- build/fleetmcp)
# The server's own work per message, in process (no pipe, no scheduler).
own=$(FLEETMCP_RUNBOOKS="$PWD/runbooks" $pin "$tmp/callcost" "$tmp/callcost.db" runbook_list \
    '{"fault_class":"gpu_fallen_off_bus"}' 5000)
python3 - "$fm_pin" "$ev_pin" "$fm_free" "$ev_free" "$fs" "$own" <<'PY'
import json, sys
fm, ev, fmf, evf, fs, own = (json.loads(a) for a in sys.argv[1:7])
rows = [("cold start (spawn to initialize reply)", "cold_start_us", "us", 5000),
        ("ping round trip", "ping_us", "us", 20),
        ("audited read tools/call (fleetmcp: runbook_list; reference: echo)", "call_us", "us", 60),
        ("peak RSS", "peak_rss_kb", "kB", 8192)]
print(f"{'pinned to one CPU':64} {'fleetmcp':>10} {'reference':>10} {'ratio':>8}  target")
for name, k, unit, target in rows:
    r = ev[k] / fm[k] if fm[k] else float("inf")
    ok = "ok" if fm[k] <= target else "MISSED"
    print(f"{name:64} {fm[k]:>8.1f}{unit:>2} {ev[k]:>8.1f}{unit:>2} {r:>7.1f}x  <= {target} {unit} {ok}")
print(f"{'unpinned (scheduler may split client and server)':64}")
for name, k, unit, _ in rows[1:3]:
    r = evf[k] / fmf[k] if fmf[k] else float("inf")
    print(f"{name:64} {fmf[k]:>8.1f}{unit:>2} {evf[k]:>8.1f}{unit:>2} {r:>7.1f}x")
print(f"{'server work per audited runbook_list call (in process)':64} {own['call_us']:>8.1f}us")
print(f"{'server work per ping (in process)':64} {own['ping_us']:>8.1f}us")
print(f"{'fleet_status round trip (dashboard: metrics, workflows, tickets)':64} {fs['call_us']:>8.1f}us")
PY
# What an agent pays before its first call: the tools/list answer in bytes
# (about 4 bytes a token; one page holds every tool by default).
# Both answers: 2026-07-28 and 2025-11-25 (older revisions get no
# execution.taskSupport, so theirs is a little shorter).
for v in 2025-11-25 2026-07-28; do
    list_bytes=$(printf '%s\n' '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"'$v'","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}' \
        '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' |
        FLEETMCP_DB="$tmp/list.db" build/fleetmcp 2>/dev/null | tail -n 1 | tr -d '\n' | wc -c)
    printf '%-64s %8d (target 24576)\n' "tools/list answer ($v), bytes" "$list_bytes"
done
[ "${1:-}" = mcp ] && exit 0 # bench/run.sh mcp: the round trips only
for b in bench/*.sh; do
    [ "$b" = bench/run.sh ] && continue
    echo
    echo "== $b"
    bash "$b" || echo "bench: $b failed"
done
