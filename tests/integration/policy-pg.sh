#!/usr/bin/env bash
# integration:policy with every scenario's store on a throwaway PostgreSQL
# (tests/store/pg-up.sh; one new database per scenario) instead of a
# SQLite file: the same guardrail checks against the real Slurm stack, the
# breaker's and offenders' counts, approvals and emergency mode read from
# PostgreSQL, and each scenario's audit chain verified there.
#
#   tests/integration/policy-pg.sh      (the variables of policy.sh apply)
#   FM_ONLY=breaker,offender,equivalence,windows   all four scenarios
#
# By default three of policy.sh's four scenarios (breaker, offender,
# windows: reservations and counts, repairs and tickets, emergency mode
# and approvals), so the stage stays near two minutes with the stack's
# start; equivalence (workflows waiting on a node) runs with FM_ONLY.
#
# Needs root (the stack does).
set -u
cd "$(dirname "$0")/../.."
DIR=$(mktemp -d /tmp/fm-policy-pg.XXXXXX)
trap 'tests/store/pg-down.sh "$DIR"; rm -rf "$DIR"' EXIT
URL=$(tests/store/pg-up.sh "$DIR") || exit 1
echo "policy-pg: PostgreSQL at $URL"
# The chain's key and anchor of a PostgreSQL store are host-local files.
export FM_TEST_PG=$URL FLEETMCP_AUDIT_DIR=$DIR/side
mkdir -p "$FLEETMCP_AUDIT_DIR"
export FM_ONLY=${FM_ONLY:-breaker,offender,windows}
bash tests/stack/drive.sh policy 600
