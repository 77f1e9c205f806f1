#!/bin/bash
# Ticket tools against the Jira contract server and the local store (see
# jira.py): C-level pass through tests/integration/tickets_driver.c, then
# the same scenario through build/fleetmcp over stdio.
set -eu
cd "$(dirname "$0")/../.."
[ -e build/libfleetmcp.a ] || make -s all
exec python3 tests/integration/jira.py "$@"
