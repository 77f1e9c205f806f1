#!/usr/bin/env bash
# The Slurm REST backend against slurmrestd v0.0.42..v0.0.44 (Slurm 24.11,
# 25.05, 25.11), which this machine cannot run: three loopback fixture
# servers (tests/integration/slurmrestd_fixture.py) answer from fixtures
# built from Slurm's published OpenAPI documents, and
# tests/integration/test_slurm_rest_versions.c drives the backend against
# them.  The node table's snapshot is checked to be per cluster on SQLite
# and on a throwaway PostgreSQL.  No stack; under a minute (more when loaded).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
make -s "$BUILD/libfleetmcp.a" >&2
BIN="$BUILD/tests/integration_slurm_rest_versions"
# shellcheck source=tests/lib/check-driver.sh
. tests/lib/check-driver.sh
fm_check_driver tests/integration/test_slurm_rest_versions.c "$BIN"
# A throwaway PostgreSQL too: the snapshot-per-cluster case runs on both stores.
. tests/store/pg-env.sh
fm_pg_env slurm-rest-versions
tmp=$(mktemp -d /tmp/fm-slurm-versions.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
    tests/store/pg-down.sh "$FM_PG_DIR"
    rm -rf "$FM_PG_DIR"
}
trap cleanup EXIT
start() { # $1: name, $2: versions offered; sets FM_FIX_<name> to its port
    python3 tests/integration/slurmrestd_fixture.py --versions "$2" >"$tmp/$1.port" \
        2>"$tmp/$1.err" &
    pids+=($!)
    for _ in $(seq 50); do [ -s "$tmp/$1.port" ] && break; sleep 0.1; done
    [ -s "$tmp/$1.port" ] || { cat "$tmp/$1.err" >&2; echo "fixture server $1 did not start" >&2; exit 1; }
    export "FM_FIX_$1=$(head -1 "$tmp/$1.port")"
}
start A 42,43,44
start B 43,44,45
start C 45
export FM_FIXTURES=$PWD/tests/fixtures/slurm
CK_DEFAULT_TIMEOUT=30 timeout 420 "$BIN"
