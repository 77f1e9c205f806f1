#!/bin/bash
# The TypeScript SDK client against fleetmcp wired to the real local stack:
# every read tool answers with live Slurm, Prometheus and SSH data, and the
# SDK validates each structuredContent against its outputSchema.
set -u
cd "$(dirname "$0")/../.."
dir=$(mktemp -d /tmp/fm-sdk-stack.XXXXXX)
cleanup() { FM_STACK_NO_RECORD=1 bash tests/stack/down.sh "$dir" > /dev/null 2>&1; rm -rf "$dir"; }
trap cleanup EXIT
if ! FM_STACK_NO_RECORD=1 bash tests/stack/up.sh "$dir" > "$dir.up.log" 2>&1; then
    echo "FAIL: the stack did not start:"; tail -20 "$dir.up.log"; exit 1
fi
rm -f "$dir.up.log"
set -a
. "$dir/stack.env"
set +a
node tests/interop/sdk-client.mjs build/fleetmcp
