#!/bin/bash
# The store: an audited read call (runbook_list) on SQLite and on a
# throwaway PostgreSQL on loopback, the same client (bench/mcpbench.c),
# the same run; then audited calls per second with 1, 2 and 4 server
# processes writing one PostgreSQL at once, and `fleetmcp audit verify`
# over what they wrote (one chain, no fork).   bash bench/store.sh [calls]
#
# PostgreSQL runs twice: with fsync on (its default, as in production:
# each commit waits for the disk, and commits of several writers share
# one flush) and with fsync off (what the tests use: only CPU and round
# trips count).  synchronous_commit stays on in both.  SQLite runs with
# the store's own settings (WAL, synchronous=NORMAL: no flush per commit).
set -euo pipefail
cd "$(dirname "$0")/.."
calls=${1:-1000}
tmp=$(mktemp -d /tmp/fm-bench-store.XXXXXX)
chmod 711 "$tmp" # the clusters below run as postgres when this runs as root
trap 'for m in on off; do tests/store/pg-down.sh "$tmp/$m"; done; rm -rf "$tmp"' EXIT
libs=$(pkg-config --cflags --libs $(make -s --no-print-directory print-pkgs))
# shellcheck disable=SC2086
cc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -Iinclude bench/mcpbench.c build/libfleetmcp.a \
    $libs -lpthread -lm -o "$tmp/mcpbench"
export FLEETMCP_AUDIT_DIR=$tmp/side FLEETMCP_RUNBOOKS=$PWD/runbooks
run() { # $1: store, $2: calls
    FLEETMCP_DB=$1 "$tmp/mcpbench" --tool runbook_list --args '{"fault_class":"gpu_fallen_off_bus"}' \
        --starts 1 --pings 10 --calls "$2" -- build/fleetmcp
}
lite=$(run "$tmp/bench.db" "$calls")
out=()
for m in on off; do
    mkdir -p "$tmp/$m"
    url=$(FM_PG_FSYNC=$m tests/store/pg-up.sh "$tmp/$m")
    pg=$(run "$url" "$calls")
    rates=()
    for n in 1 2 4; do
        t0=$(date +%s.%N)
        for i in $(seq "$n"); do run "$url" "$calls" >/dev/null & done
        wait
        rates+=("$(python3 -c "import sys; print($n * $calls / ($(date +%s.%N) - $t0))")")
    done
    verify=$(build/fleetmcp audit verify --db "$url")
    out+=("$m" "$pg" "${rates[@]}" "$verify")
    tests/store/pg-down.sh "$tmp/$m"
done
python3 - "$lite" "$(nproc)" "${out[@]}" <<'PY'
import json, sys
lite, cpus, rest = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3:]
print(f"{'audited runbook_list round trip (median)':44} {'SQLite':>9} {'PostgreSQL':>11} {'ratio':>6}")
runs = [rest[i:i + 6] for i in range(0, len(rest), 6)]
for m, pg, r1, r2, r4, verify in runs:
    pg, r1, r2, r4 = json.loads(pg), float(r1), float(r2), float(r4)
    print(f"{'  PostgreSQL fsync ' + m:44} {lite['call_us']:>7.1f}us {pg['call_us']:>9.1f}us"
          f" {pg['call_us'] / lite['call_us']:>5.1f}x")
for m, pg, r1, r2, r4, verify in runs:
    r1, r2, r4 = float(r1), float(r2), float(r4)
    print(f"PostgreSQL fsync {m}, audited calls/s with 1, 2, 4 writers: {r1:.0f}, {r2:.0f}, {r4:.0f}"
          f" (4 vs 1: {r4 / r1:.2f}x; target 2x: {'ok' if r4 >= 2 * r1 else 'MISSED'})")
    print(f"  after the writers: {verify}")
print(f"({cpus} CPUs)")
PY
