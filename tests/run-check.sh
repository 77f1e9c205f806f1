#!/bin/bash
# `make check`: every test fleetmcp has, in order of cost.  Each stage is
# reported; the run fails if any stage fails.  The closing line is
# "N passed, N failed" over the stages.
set -u
cd "$(dirname "$0")/.."
export FM_ROOT=$PWD
passed=0
failed=0
failed_names=()
stage() {
    local name=$1
    shift
    echo
    echo "==== $name"
    local t0=$SECONDS
    if "$@"; then
        passed=$((passed + 1))
        echo "==== $name: ok ($((SECONDS - t0)) s)"
    else
        failed=$((failed + 1))
        failed_names+=("$name")
        echo "==== $name: FAILED ($((SECONDS - t0)) s)"
    fi
}

stage build make -s all
stage unit make -s unit
stage unit-asan make -s asan
stage protocol python3 tests/protocol/run.py build/fleetmcp
stage interop-sdk node tests/interop/sdk-client.mjs build/fleetmcp
stage interop-sdk-http node tests/interop/sdk-client.mjs build/fleetmcp --http
stage interop-sdk-stack bash tests/interop/sdk-stack.sh
stage interop-inspector bash tests/interop/inspector.sh build/fleetmcp
stage http-hardening python3 tests/http/hardening.py build/fleetmcp
stage http-mrtr python3 tests/http/mrtr.py build/fleetmcp
stage http-content python3 tests/http/content.py build/fleetmcp
stage conformance-fixture make -s build/conformance-fixture
stage conformance python3 tests/conformance/run.py build/fleetmcp build/conformance-fixture
stage mcp-cli bash tests/cli/run.sh
stage approvals bash tests/cli/approval.sh
stage elicitation python3 tests/cli/elicitation.py build/fleetmcp
stage valgrind bash tests/valgrind.sh
stage examples bash tests/examples.sh
stage install bash tests/install.sh
for t in tests/integration/*.sh; do
    [ -e "$t" ] || continue
    stage "integration:$(basename "$t" .sh)" bash "$t"
done
stage diagnose-scenarios python3 tests/diagnose/run_scenarios.py
stage diagnose-collect bash tests/diagnose/collect.sh
stage fuzz-smoke bash tests/fuzz/run.sh "${FM_FUZZ_SECONDS:-60}"

echo
if [ "$failed" -gt 0 ]; then
    echo "failed stages: ${failed_names[*]}"
fi
echo "check: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
