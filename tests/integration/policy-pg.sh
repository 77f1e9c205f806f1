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
. tests/store/pg-env.sh
fm_pg_env policy-pg
export FM_ONLY=${FM_ONLY:-breaker,offender,windows}
bash tests/stack/drive.sh policy 600
