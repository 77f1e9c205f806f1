#!/usr/bin/env bash
# Monitor steps that hold their window (issue 18) against the real local
# stack: a workflow parks in its monitor step, is sampled by
# `fleetmcp workflows run-due` from other processes, continues after a
# clean window and escalates on a bad sample (an injected NVLink fault).
# The driver is tests/integration/monitor.py.
#
#   tests/integration/monitor.sh                  own stack, stopped on exit
#   FM_STACK=/tmp/s tests/integration/monitor.sh  use that running stack
#   FM_ONLY=clean,bad                             only these scenarios
#   BUILD=/tmp/b                                  binaries from that build dir
#
# Needs root (the stack does).
exec bash "$(dirname "$0")/../stack/drive.sh" monitor 300
