#!/bin/bash
# `make demo`: drives fleetmcp with mcp-cli the way an agent would, so a
# person sees what it does.  Uses a throwaway store; touches nothing else.
set -u
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export FLEETMCP_DB=$tmp/demo.db
cli() { echo; echo "\$ mcp-cli $*"; build/mcp-cli "$@"; local rc=$?; [ $rc -eq 0 ] || echo "(exit $rc)"; }
say() { echo; echo "### $*"; }

say "The tools an agent sees, each with its autonomy level"
cli list
say "Fleet status: shadow mode by default, no backends configured"
cli call fleet_status
say "Engage the kill switch (safety needs no approval)"
cli call killswitch_engage reason="demo: maintenance window"
say "Releasing it needs a human approval: refused, and the refusal says why"
cli call killswitch_release reason="demo over"
say "A malformed call is refused with the field that is wrong"
cli call audit_query limit=100000
say "Every call above is in the audit log, with who made it"
cli call audit_query limit=6
say "The audit chain verifies"
echo; echo "\$ fleetmcp audit verify"; build/fleetmcp audit verify
