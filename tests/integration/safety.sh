#!/usr/bin/env bash
# Safety promises under hostile use (issue 13, items 1-4) against the real
# local stack, with scontrol/scancel wrapped to log every argv so the
# checks count real mutations: a replayed approval, a read in shadow mode
# over an orphaned workflow, SIGTERM and EOF mid-workflow, an approvals row
# forged in the store.  The driver is tests/integration/safety.py.
#
#   tests/integration/safety.sh                  own stack, stopped on exit
#   FM_STACK=/tmp/s tests/integration/safety.sh  use that running stack
#   FM_ONLY=replayed_approval,stop               only these scenarios
#
# Needs root (the stack does).  Takes about 2 minutes.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BUILD=${BUILD:-build}
cd "$REPO"
die() { echo "safety.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (the test stack needs it)"
[ -n "${FM_NO_BUILD:-}" ] || make -s BUILD="$BUILD" "$BUILD/fleetmcp" "$BUILD/mcp-cli" >&2 ||
    die "cannot build $BUILD"
OWN=
if [ -n "${FM_STACK:-}" ]; then
    [ -f "$FM_STACK/stack.env" ] || die "FM_STACK=$FM_STACK has no stack.env"
else
    OWN=$(mktemp -d /tmp/fm-stack-safety.XXXXXX)
    export FM_STACK_NO_RECORD=1
    tests/stack/up.sh "$OWN" > /dev/null || die "stack did not start (see $OWN/log)"
    FM_STACK=$OWN
fi
rc=1
cleanup() {
    [ -z "$OWN" ] && return
    tests/stack/down.sh "$OWN" > /dev/null 2>&1 || true
    if [ "$rc" = 0 ]; then rm -rf "$OWN"; else echo "safety.sh: stack logs in $OWN" >&2; fi
}
trap cleanup EXIT
# shellcheck disable=SC1091
. "$FM_STACK/stack.env"
export SLURM_CONF FM_STACK
export FM_BUILD=$BUILD FLEETMCP_RUNBOOKS="$REPO/runbooks"
rc=0
timeout 600 python3 tests/integration/safety.py || rc=$?
exit $rc
