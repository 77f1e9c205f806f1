#!/bin/bash
# A real long call (health_probe level 3 over SSH) as a task against a
# fresh local stack (tests/http/tasks_stack.py).
set -u
cd "$(dirname "$0")/../.."
. tests/stack/with-stack.sh
python3 tests/http/tasks_stack.py build/fleetmcp
