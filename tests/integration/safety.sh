#!/usr/bin/env bash
# Safety promises under hostile use (issue 13, items 1-4) against the real
# local stack, with scontrol/scancel wrapped to log every argv so the
# checks count real mutations: a replayed approval, a read in shadow mode
# over an orphaned workflow, SIGTERM and EOF mid-workflow, an approvals row
# forged in the store, and (issue 14) a one-step gpu_reset killed -9
# mid-step.  The driver is tests/integration/safety.py.
#
#   tests/integration/safety.sh                  own stack, stopped on exit
#   FM_STACK=/tmp/s tests/integration/safety.sh  use that running stack
#   FM_ONLY=replayed_approval,stop               only these scenarios
#   BUILD=/tmp/b                                 binaries from that build dir
#
# Needs root (the stack does).  Takes about 3 minutes (kill_tool_mid_step: 40 s).
exec bash "$(dirname "$0")/../stack/drive.sh" safety 600
