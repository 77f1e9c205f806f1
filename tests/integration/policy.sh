#!/usr/bin/env bash
# Fleet policy guardrails (issue 18) against the real local stack, with
# scontrol/scancel wrapped to log every argv so the checks count the
# mutations that really ran: the circuit breaker and repeat offenders, each
# tripped (nothing runs) and let through (after a human's approved reset).
# The driver is tests/integration/policy.py.
#
#   tests/integration/policy.sh                  own stack, stopped on exit
#   FM_STACK=/tmp/s tests/integration/policy.sh  use that running stack
#   FM_ONLY=breaker,offender                     only these scenarios
#   BUILD=/tmp/b                                 binaries from that build dir
#
# Needs root (the stack does).
exec bash "$(dirname "$0")/../stack/drive.sh" policy 600
