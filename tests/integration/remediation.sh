#!/usr/bin/env bash
# Remediation end to end against the real local stack (Slurm, sshd, fake
# GPU tools): guardrails, shadow mode, canary repair, the Xid 79 story
# with approval, DBE repaired by GPU reset, a fault that survives repair
# escalated (not retried), kill -9 mid-workflow and recovery, and two
# servers racing for one rack.  The driver is tests/integration/remediation.py.
#
#   tests/integration/remediation.sh              own stack, stopped on exit
#   FM_STACK=/tmp/fm-wf-stack tests/integration/remediation.sh
#                                                 use that running stack
#   BUILD=/tmp/wf/build ...                       binaries from that build dir
#   FM_RACE_ROUNDS=N                              real-server race rounds (default 5)
#   FM_ONLY=kill9,race                            only these scenarios
#   FM_NO_BUILD=1                                 do not run make (prebuilt $BUILD)
#
# Needs root (the stack does).  Exit status 0 only if every check passed.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BUILD=${BUILD:-build}
cd "$REPO"

die() { echo "remediation.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (the test stack needs it)"
# FM_NO_BUILD=1: use the binaries in $BUILD as they are (e.g. an ASan build
# made with other flags, which a plain make here would mix up).
[ -n "${FM_NO_BUILD:-}" ] || make -s BUILD="$BUILD" "$BUILD/fleetmcp" "$BUILD/mcp-cli" >&2 ||
    die "cannot build $BUILD"

OWN=
if [ -n "${FM_STACK:-}" ]; then
    [ -f "$FM_STACK/stack.env" ] || die "FM_STACK=$FM_STACK has no stack.env"
else
    OWN=$(mktemp -d /tmp/fm-stack-remed.XXXXXX)
    export FM_STACK_NO_RECORD=1
    tests/stack/up.sh "$OWN" > /dev/null || die "stack did not start (see $OWN/log)"
    FM_STACK=$OWN
fi
rc=1
cleanup() {
    [ -z "$OWN" ] || [ -n "${FM_KEEP:-}" ] && return
    tests/stack/down.sh "$OWN" > /dev/null 2>&1 || true
    # the stack's logs are worth keeping only when something failed
    if [ "$rc" = 0 ]; then rm -rf "$OWN"; else echo "remediation.sh: stack logs in $OWN" >&2; fi
}
trap cleanup EXIT
# shellcheck disable=SC1091
. "$FM_STACK/stack.env"
export SLURM_CONF FM_STACK
export FM_BUILD=$BUILD FLEETMCP_RUNBOOKS="$REPO/runbooks"
rc=0
timeout 900 python3 tests/integration/remediation.py || rc=$?
exit $rc
