#!/bin/bash
# The store: an audited read call (runbook_list) on SQLite and on a
# throwaway PostgreSQL on loopback, the same client (bench/mcpbench.c),
# the same run; then audited calls per second with 1, 2 and 4 server
# processes writing one PostgreSQL at once.   bash bench/store.sh [calls]
set -euo pipefail
cd "$(dirname "$0")/.."
calls=${1:-1000}
tmp=$(mktemp -d /tmp/fm-bench-store.XXXXXX)
trap 'tests/store/pg-down.sh "$tmp"; rm -rf "$tmp"' EXIT
libs=$(pkg-config --cflags --libs $(make -s --no-print-directory print-pkgs))
# shellcheck disable=SC2086
cc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -Iinclude bench/mcpbench.c build/libfleetmcp.a \
    $libs -lpthread -lm -o "$tmp/mcpbench"
url=$(tests/store/pg-up.sh "$tmp")
export FLEETMCP_AUDIT_DIR=$tmp/side FLEETMCP_RUNBOOKS=$PWD/runbooks
run() { # $1: store, $2: calls
    FLEETMCP_DB=$1 "$tmp/mcpbench" --tool runbook_list --args '{"fault_class":"gpu_fallen_off_bus"}' \
        --starts 1 --pings 10 --calls "$2" -- build/fleetmcp
}
lite=$(run "$tmp/bench.db" "$calls")
pg=$(run "$url" "$calls")
rates=()
for n in 1 2 4; do
    t0=$(date +%s.%N)
    for i in $(seq "$n"); do run "$url" "$calls" >/dev/null & done
    wait
    rates+=("$(python3 -c "import sys; print($n * $calls / ($(date +%s.%N) - $t0))")")
done
verify=$(build/fleetmcp audit verify --db "$url")
python3 - "$lite" "$pg" "${rates[@]}" "$verify" "$(nproc)" <<'PY'
import json, sys
lite, pg = json.loads(sys.argv[1]), json.loads(sys.argv[2])
r1, r2, r4 = (float(x) for x in sys.argv[3:6])
print(f"{'audited runbook_list round trip (median)':52} {'SQLite':>10} {'PostgreSQL':>11} {'ratio':>7}")
print(f"{'':52} {lite['call_us']:>8.1f}us {pg['call_us']:>9.1f}us {pg['call_us'] / lite['call_us']:>6.1f}x")
print(f"PostgreSQL, audited calls/s with 1, 2, 4 writers: {r1:.0f}, {r2:.0f}, {r4:.0f}"
      f" (4 vs 1: {r4 / r1:.2f}x; target 2x: {'ok' if r4 >= 2 * r1 else 'MISSED'})")
print(f"after the writers: {sys.argv[6]}  ({sys.argv[7]} CPUs)")
PY
