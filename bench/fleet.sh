#!/usr/bin/env bash
# Fleet-scale rows of `make bench` (bench/fleet.py): for each size, a real
# slurmctld with that many nodes (tests/stack/bench-fleet.sh, no slurmd),
# then slurm_nodes against `sinfo --json`, repair_plan with every
# guardrail, fleet_status, diagnose and peak RSS, for both Slurm backends.
#
#   bench/fleet.sh                 2,000 and 16,384 nodes
#   bench/fleet.sh 16384           one size (2000: 50 racks x 40; else racks of 64)
#   FM_BENCH_RUNS=N                calls per median (default 10)
#   FM_BENCH_ONLY=repair_plan      only these parts (slurm_nodes, repair_plan, fleet_status, diagnose)
#
# Needs root (the controller does).  16,384 nodes: ~30 s to start, and
# `sinfo --json` alone peaks near 360 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
[ "$(id -u)" = 0 ] || { echo "bench/fleet.sh: run as root (the bench controller needs it)" >&2; exit 1; }
make -s "$BUILD/fleetmcp" >&2
rc=0
for n in "${@:-2000 16384}"; do
    for size in $n; do
        if [ "$size" = 2000 ]; then racks=50 per=40; else per=64 racks=$(((size + 63) / 64)); fi
        dir=$(mktemp -d /tmp/fm-bench-fleet.XXXXXX)
        trap 'bash tests/stack/bench-fleet.sh down "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
        echo "== $((racks * per)) nodes ($racks racks of $per)"
        FM_BENCH_RACKS=$racks FM_BENCH_PER_RACK=$per bash tests/stack/bench-fleet.sh up "$dir" >/dev/null
        (set -a; . "$dir/stack.env"; set +a; python3 bench/fleet.py "$BUILD/fleetmcp") || rc=1
        bash tests/stack/bench-fleet.sh down "$dir" >/dev/null 2>&1 || true
        rm -rf "$dir"
        trap - EXIT
    done
done
exit $rc
