#!/usr/bin/env bash
# diagnose node mode (collection through Slurm, Prometheus and SSH) against
# the real local stack.  Starts its own stack in a temp dir and stops it on
# exit (FM_STACK=DIR uses a running one instead).  Needs root.  The
# closing line counts the checks that ran; none at all fails.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
cd "$REPO"
# The closing total's counting first: it needs no stack.
timeout 60 python3 "$HERE/collect.py" --self-test
[ "$(id -u)" = 0 ] || { echo "collect.sh: run as root (the stack needs it)" >&2; exit 1; }
make -s build/fleetmcp >&2
if [ -z "${FM_STACK:-}" ]; then
    OWN=$(mktemp -d /tmp/fm-stack-diag.XXXXXX)
    trap 'tests/stack/down.sh "$OWN" >&2 || true' EXIT
    FM_STACK_NO_RECORD=1 tests/stack/up.sh "$OWN" >/dev/null
    export FM_STACK=$OWN
fi
timeout 300 python3 "$HERE/collect.py"
