#!/usr/bin/env bash
# Alert intake (issue 18) against the real local stack: Alertmanager
# webhook payloads through `fleetmcp alert --stdin` become diagnoses,
# tickets and never-executed plans, deduplicated per node and class, with
# the labels in the audit; malformed payloads are refused whole.
# The driver is tests/integration/alerts.py.
#
#   tests/integration/alerts.sh                  own stack, stopped on exit
#   FM_STACK=/tmp/s tests/integration/alerts.sh  use that running stack
#   BUILD=/tmp/b                                 binaries from that build dir
#
# Needs root (the stack does).
exec bash "$(dirname "$0")/../stack/drive.sh" alerts 300
