#!/usr/bin/env bash
# The REST backend's node table kept between calls (issue 20) against the
# real local stack's slurmrestd (Slurm 22.05): a long-lived session's
# repair_plan sees a drain and a resume that someone else made with
# scontrol, as a full read would. The driver is tests/integration/node_table.py.
#
#   tests/integration/node_table.sh                  own stack, stopped on exit
#   FM_STACK=/tmp/s tests/integration/node_table.sh  use that running stack
#
# Needs root (the stack does).
exec bash "$(dirname "$0")/../stack/drive.sh" node_table 300
