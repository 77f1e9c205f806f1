#!/usr/bin/env bash
# Runs the Python driver of an integration stage against the real local
# stack: its own stack, stopped on exit, or the running one FM_STACK names.
#
#   bash tests/stack/drive.sh NAME [TIMEOUT_S]   runs tests/integration/NAME.py
#   FM_STACK=/tmp/s ...                          use that running stack
#   BUILD=/tmp/b ...                             binaries from that build dir
#
# Needs root (the stack does).
set -u
cd "$(dirname "$0")/../.."
name=$1
[ "$(id -u)" = 0 ] || { echo "$name: run as root (the test stack needs it)" >&2; exit 1; }
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
timeout "${2:-600}" python3 "tests/integration/$name.py"
