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
#   BUILD=/tmp/b                                 binaries from that build dir
#
# Needs root (the stack does).  Takes about 2 minutes.
set -u
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "safety.sh: run as root (the test stack needs it)" >&2; exit 1; }
if [ -n "${FM_STACK:-}" ]; then
    set -a
    # shellcheck disable=SC1091
    . "$FM_STACK/stack.env"
    set +a
else
    # shellcheck disable=SC1091
    . tests/stack/with-stack.sh
fi
export FM_BUILD=${BUILD:-build} FLEETMCP_RUNBOOKS=$PWD/runbooks
timeout 600 python3 tests/integration/safety.py
