#!/bin/bash
# MCP over Streamable HTTP: an audited read call (fleetmcp: runbook_list;
# the reference: echo) from 1 and 32 keep-alive clients, fleetmcp --http
# beside @modelcontextprotocol/server-everything in streamableHttp mode,
# the same client (bench/httpbench.c), the same run.  Peak RSS is the
# server's VmHWM after both loads.   bash bench/http.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
cc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror bench/httpbench.c -lpthread -o "$tmp/httpbench"
everything=tests/interop/node_modules/@modelcontextprotocol/server-everything/dist/index.js
[ -e "$everything" ] || { echo "bench: run 'make deps' first (npm packages)"; exit 1; }

FLEETMCP_RUNBOOKS="$PWD/runbooks" build/fleetmcp --db "$tmp/http.db" --http 127.0.0.1:0 2>"$tmp/fm.err" &
pids+=($!)
fm_pid=$!
fm_port=""
for _ in $(seq 100); do
    fm_port=$(grep -o 'http://127.0.0.1:[0-9]*' "$tmp/fm.err" | head -1 | cut -d: -f3 || true)
    [ -n "$fm_port" ] && break
    sleep 0.05
done
[ -n "$fm_port" ] || { cat "$tmp/fm.err"; exit 1; }
# A free port for the reference (it takes PORT, not 0).
ev_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
PORT=$ev_port node "$everything" streamableHttp >"$tmp/ev.log" 2>&1 &
pids+=($!)
ev_pid=$!
for _ in $(seq 100); do if grep -q listening "$tmp/ev.log"; then break; fi; sleep 0.1; done

run() { "$tmp/httpbench" --port "$1" --clients "$2" --seconds "$secs" --tool "$3" --args "$4"; }
fm1=$(run "$fm_port" 1 runbook_list '{"fault_class":"gpu_fallen_off_bus"}')
fm32=$(run "$fm_port" 32 runbook_list '{"fault_class":"gpu_fallen_off_bus"}')
ev1=$(run "$ev_port" 1 echo '{"message":"hi"}')
ev32=$(run "$ev_port" 32 echo '{"message":"hi"}')
fm_rss=$(awk '/VmHWM/ {print $2}' "/proc/$fm_pid/status")
ev_rss=$(awk '/VmHWM/ {print $2}' "/proc/$ev_pid/status")
python3 - "$fm1" "$fm32" "$ev1" "$ev32" "$fm_rss" "$ev_rss" <<'PY'
import json, sys
fm1, fm32, ev1, ev32 = (json.loads(a) for a in sys.argv[1:5])
fm_rss, ev_rss = int(sys.argv[5]), int(sys.argv[6])
print(f"{'audited read call over HTTP keep-alive':44} {'fleetmcp':>10} {'reference':>10} {'ratio':>8}  target")
for label, f, e in (("1 client", fm1, ev1), ("32 clients", fm32, ev32)):
    r = f["calls_per_s"] / e["calls_per_s"] if e["calls_per_s"] else float("inf")
    tgt = "  >= 10x " + ("ok" if r >= 10 else "MISSED") if label == "32 clients" else ""
    print(f"{label + ': calls per second':44} {f['calls_per_s']:>10.0f} {e['calls_per_s']:>10.0f} {r:>7.1f}x{tgt}")
    for k in ("p50_us", "p99_us"):
        t = "  <= 2000 us " + ("ok" if f[k] <= 2000 else "MISSED") if label == "32 clients" and k == "p99_us" else ""
        print(f"{label + ': ' + k[:3] + ' latency (us)':44} {f[k]:>10.0f} {e[k]:>10.0f}{'':>9}{t}")
print(f"{'peak RSS with 32 clients (kB)':44} {fm_rss:>10} {ev_rss:>10}{'':>9}  <= 16384 kB {'ok' if fm_rss <= 16384 else 'MISSED'}")
print(f"calls: fleetmcp {fm1['calls']}+{fm32['calls']}, reference {ev1['calls']}+{ev32['calls']}; errors {fm1['errors'] + fm32['errors']} / {ev1['errors'] + ev32['errors']}")
PY
