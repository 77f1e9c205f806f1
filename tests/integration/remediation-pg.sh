#!/usr/bin/env bash
# integration:remediation's workflow-recovery and race scenarios with their
# stores on a throwaway PostgreSQL (tests/store/pg-up.sh; one new database
# per scenario) instead of a SQLite file: kill -9 of the server that owns
# a waiting workflow and its takeover by the next one, and two servers,
# configured as two hosts (FLEETMCP_HOST_ID), racing real repair
# workflows for two nodes of one rack (the reservation's lock row, not a
# store-wide lock, decides).  Each chain is verified there.
#
#   tests/integration/remediation-pg.sh   (the variables of remediation.sh apply)
#   FM_RACE_ROUNDS=N                      race rounds (default 5, as remediation.sh)
#
# Needs root (the stack does).
set -u
cd "$(dirname "$0")/../.."
DIR=$(mktemp -d /tmp/fm-remed-pg.XXXXXX)
trap 'tests/store/pg-down.sh "$DIR"; rm -rf "$DIR"' EXIT
URL=$(tests/store/pg-up.sh "$DIR") || exit 1
echo "remediation-pg: PostgreSQL at $URL"
# The chain's key and anchor of a PostgreSQL store are host-local files.
export FM_TEST_PG=$URL FLEETMCP_AUDIT_DIR=$DIR/side FM_RACE_HOSTS=1
mkdir -p "$FLEETMCP_AUDIT_DIR"
export FM_ONLY=${FM_ONLY:-kill9,race} FM_RACE_ROUNDS=${FM_RACE_ROUNDS:-5}
bash tests/integration/remediation.sh
