#!/bin/bash
# MCP over Streamable HTTP: an audited read call (fleetmcp: runbook_list;
# the reference: echo) from 1 and 32 keep-alive clients, fleetmcp --http
# beside @modelcontextprotocol/server-everything in streamableHttp mode,
# the same client (bench/httpbench.c), the same run.  Peak RSS is the
# server's VmHWM after both loads, summed over the service's processes
# (one with the default serving threads; with http.processes the parent
# and every worker).  fleetmcp runs twice: with http.workers: 1 (one
# serving thread) and with the default (one worker per CPU), so the gain
# is measured in the same run.  With FM_BASE=PATH
# (another build, e.g. of main) that binary runs the 32-client loads too,
# in the same run, for a ratio that a shared machine's load cannot skew.
#   [FM_BASE=path/to/fleetmcp] bash bench/http.sh [seconds]
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

start_fm() { # $1: label, $2: config file or "" -> sets fm_pid, fm_port
    FLEETMCP_RUNBOOKS="$PWD/runbooks" "${FM_BIN:-build/fleetmcp}" ${2:+--config "$2"} --db "$tmp/$1.db" \
        --http 127.0.0.1:0 2>"$tmp/$1.err" &
    fm_pid=$!
    pids+=($fm_pid)
    fm_port=""
    for _ in $(seq 100); do
        fm_port=$(grep -o 'http://127.0.0.1:[0-9]*' "$tmp/$1.err" | head -1 | cut -d: -f3 || true)
        [ -n "$fm_port" ] && break
        sleep 0.05
    done
    [ -n "$fm_port" ] || { cat "$tmp/$1.err"; exit 1; }
    sleep 0.2 # the workers are forked after the line above
}
# A /proc/PID/status or smaps_rollup field (kB) summed over a process and
# its children: VmHWM (peak RSS; counts each worker's copy of the same
# libraries) or Pss (now; shared pages split among the processes).
tree_sum() { # $1: pid, $2: file, $3: field
    local sum=0 p
    for p in $1 $(pgrep -P "$1" || true); do
        sum=$((sum + $(awk -v f="$3:" '$1 == f {print $2}' "/proc/$p/$2")))
    done
    echo $sum
}
printf 'http:\n  workers: 1\n' >"$tmp/one.yaml"
# A free port for the reference (it takes PORT, not 0).
ev_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
PORT=$ev_port node "$everything" streamableHttp >"$tmp/ev.log" 2>&1 &
pids+=($!)
ev_pid=$!
for _ in $(seq 100); do if grep -q listening "$tmp/ev.log"; then break; fi; sleep 0.1; done

run() { "$tmp/httpbench" --port "$1" --clients "$2" --seconds "$secs" --tool "$3" --args "$4"; }
start_fm one "$tmp/one.yaml"
one1=$(run "$fm_port" 1 runbook_list '{"fault_class":"gpu_fallen_off_bus"}')
one32=$(run "$fm_port" 32 runbook_list '{"fault_class":"gpu_fallen_off_bus"}')
one_rss=$(tree_sum "$fm_pid" status VmHWM)
one_pss=$(tree_sum "$fm_pid" smaps_rollup Pss)
kill "$fm_pid"
start_fm many ""
workers=$(grep -o '([0-9]* \(worker processes\|serving threads\))' "$tmp/many.err" | grep -o '[0-9]*' || echo 1)
fm1=$(run "$fm_port" 1 runbook_list '{"fault_class":"gpu_fallen_off_bus"}')
fm32=$(run "$fm_port" 32 runbook_list '{"fault_class":"gpu_fallen_off_bus"}')
fm_rss=$(tree_sum "$fm_pid" status VmHWM)
fm_pss=$(tree_sum "$fm_pid" smaps_rollup Pss)
kill "$fm_pid"
base='{}'
if [ -n "${FM_BASE:-}" ]; then
    FM_BIN=$FM_BASE start_fm base_one "$tmp/one.yaml"
    b_one=$(run "$fm_port" 32 runbook_list '{"fault_class":"gpu_fallen_off_bus"}')
    kill "$fm_pid"
    FM_BIN=$FM_BASE start_fm base_many ""
    b_many=$(run "$fm_port" 32 runbook_list '{"fault_class":"gpu_fallen_off_bus"}')
    kill "$fm_pid"
    base="{\"one\": $b_one, \"many\": $b_many}"
fi
ev1=$(run "$ev_port" 1 echo '{"message":"hi"}')
ev32=$(run "$ev_port" 32 echo '{"message":"hi"}')
ev_rss=$(awk '/VmHWM/ {print $2}' "/proc/$ev_pid/status")
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'),"\
     "load average $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$fm1" "$fm32" "$ev1" "$ev32" "$fm_rss" "$ev_rss" "$one1" "$one32" "$one_rss" "$workers" "$one_pss" "$fm_pss" "$base" <<'PY'
import json, sys
fm1, fm32, ev1, ev32 = (json.loads(a) for a in sys.argv[1:5])
fm_rss, ev_rss = int(sys.argv[5]), int(sys.argv[6])
one1, one32, one_rss, workers = json.loads(sys.argv[7]), json.loads(sys.argv[8]), int(sys.argv[9]), sys.argv[10]
one_pss, fm_pss = int(sys.argv[11]), int(sys.argv[12])
w = f"{workers} workers"
print(f"{'audited read call over HTTP keep-alive':40} {'1 process':>10} {w:>10} {'reference':>10} {'ratio':>7}  target")
for label, o, f, e in (("1 client", one1, fm1, ev1), ("32 clients", one32, fm32, ev32)):
    r = f["calls_per_s"] / e["calls_per_s"] if e["calls_per_s"] else float("inf")
    tgt = "  >= 10x " + ("ok" if r >= 10 else "MISSED") if label == "32 clients" else ""
    print(f"{label + ': calls per second':40} {o['calls_per_s']:>10.0f} {f['calls_per_s']:>10.0f} {e['calls_per_s']:>10.0f} {r:>6.1f}x{tgt}")
    for k in ("p50_us", "p99_us"):
        t = "  <= 2000 us " + ("ok" if f[k] <= 2000 else "MISSED") if label == "32 clients" and k == "p99_us" else ""
        print(f"{label + ': ' + k[:3] + ' latency (us)':40} {o[k]:>10.0f} {f[k]:>10.0f} {e[k]:>10.0f}{'':>8}{t}")
print(f"{'peak RSS with 32 clients (kB, all procs)':40} {one_rss:>10} {fm_rss:>10} {ev_rss:>10}{'':>8}  <= 16384 kB {'ok' if fm_rss <= 16384 else 'MISSED'}")
print(f"{'PSS after 32 clients (kB, all procs)':40} {one_pss:>10} {fm_pss:>10}")
base = json.loads(sys.argv[13])
if base:
    bo, bm = base["one"], base["many"]
    print(f"{'FM_BASE, 32 clients: calls per second':40} {bo['calls_per_s']:>10.0f} {bm['calls_per_s']:>10.0f}"
          f"{'':>10} {one32['calls_per_s'] / bo['calls_per_s']:>6.2f}x / {fm32['calls_per_s'] / bm['calls_per_s']:.2f}x this build vs FM_BASE")
    for k in ("p50_us", "p99_us"):
        print(f"{'FM_BASE, 32 clients: ' + k[:3] + ' latency (us)':40} {bo[k]:>10.0f} {bm[k]:>10.0f}")
print(f"calls: 1 process {one1['calls']}+{one32['calls']}, {w} {fm1['calls']}+{fm32['calls']}, reference {ev1['calls']}+{ev32['calls']};"
      f" errors {one1['errors'] + one32['errors']} / {fm1['errors'] + fm32['errors']} / {ev1['errors'] + ev32['errors']}")
PY
