#!/usr/bin/env bash
# Integration tests of the Slurm and metrics backends and their read tools
# through build/fleetmcp over MCP stdio (tests/integration/slurm_metrics.py)
# against the real local stack.
#
#   tests/integration/slurm_metrics.sh                 own stack in a temp dir,
#                                                      stopped on exit
#   FM_STACK=/tmp/fm-stack.X tests/integration/slurm_metrics.sh
#                                                      use that running stack; it
#                                                      stops and restarts its
#                                                      slurmctld and Prometheus
#                                                      (FM_SKIP_DISRUPT=1 to skip)
#   FM_KEEP=1 ...                                      keep the own stack running
#
# Needs root (the stack does). Exit status 0 only if every test passed.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BUILD=${BUILD:-build}
cd "$REPO"

die() { echo "slurm_metrics.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (the test stack needs it)"
make -s "$BUILD/fleetmcp" "$BUILD/libfleetmcp.a" >&2 || die "cannot build $BUILD/fleetmcp"
# The backends' mutation slots (no tool uses them yet), driven from Check.
BIN="$BUILD/tests/integration_slurm_backends"
# shellcheck source=tests/lib/check-driver.sh
. tests/lib/check-driver.sh
fm_check_driver tests/integration/test_slurm_backends.c "$BIN"

OWN=
if [ -n "${FM_STACK:-}" ]; then
    [ -f "$FM_STACK/stack.env" ] || die "FM_STACK=$FM_STACK has no stack.env"
else
    OWN=$(mktemp -d /tmp/fm-stack-slurmit.XXXXXX)
    cleanup() {
        local rc=$?
        if [ -z "${FM_KEEP:-}" ]; then
            tests/stack/down.sh "$OWN" >&2 || true
            [ "$rc" = 0 ] && rm -rf "$OWN"
        else
            echo "slurm_metrics.sh: stack kept running in $OWN (tests/stack/down.sh $OWN)" >&2
        fi
        exit "$rc"
    }
    trap cleanup EXIT
    FM_STACK_NO_RECORD=1 FM_STACK_NO_SSH=1 tests/stack/up.sh "$OWN" >/dev/null || die "stack did not start"
    export FM_STACK=$OWN
fi
rc=0
timeout 900 python3 "$HERE/slurm_metrics.py" "$BUILD/fleetmcp" || rc=1
(
    # shellcheck disable=SC1091
    . "$FM_STACK/stack.env"
    FM_IT_JOB=$(sbatch --parsable -N1 -w gpu-a03 -J it-requeue -o /dev/null --wrap "sleep 900")
    export FM_IT_JOB
    for _ in $(seq 40); do
        [ "$(squeue -h -j "$FM_IT_JOB" -o %T)" = RUNNING ] && break
        sleep 0.5
    done
    st=0
    CK_DEFAULT_TIMEOUT=60 "$BIN" || st=1
    scancel "$FM_IT_JOB" || true
    scontrol update nodename=gpu-a04 state=resume 2>/dev/null || true
    exit $st
) || rc=1
exit $rc
