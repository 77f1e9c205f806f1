#!/bin/bash
# The TypeScript SDK client against fleetmcp wired to the real local stack:
# every read tool answers with live Slurm, Prometheus and SSH data, and the
# SDK validates each structuredContent against its outputSchema.
set -u
cd "$(dirname "$0")/../.."
. tests/stack/with-stack.sh
dir=$fm_stack_dir
node tests/interop/sdk-client.mjs build/fleetmcp
