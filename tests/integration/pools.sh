#!/usr/bin/env bash
# Pool plans (issue 18) against the real local stack, with scontrol and
# scancel wrapped to log every argv: selectors and batches by the rack's
# blast radius, dry run, concurrency, stop on failure, rollback, and a
# pool refused per batch by capacity.  The driver is
# tests/integration/pools.py.
#
#   tests/integration/pools.sh                  own stack, stopped on exit
#   FM_STACK=/tmp/s tests/integration/pools.sh  use that running stack
#   FM_ONLY=batches,rollback                    only these scenarios
#   BUILD=/tmp/b                                binaries from that build dir
#
# Needs root (the stack does).
exec bash "$(dirname "$0")/../stack/drive.sh" pools 330
