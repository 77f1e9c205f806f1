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
. tests/store/pg-env.sh
fm_pg_env remediation-pg
export FM_RACE_HOSTS=1 FM_ONLY=${FM_ONLY:-kill9,race} FM_RACE_ROUNDS=${FM_RACE_ROUNDS:-5}
bash tests/integration/remediation.sh
