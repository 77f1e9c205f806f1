#!/bin/bash
# No leaks and no memory errors under valgrind: a scripted session through
# the server (good calls, refusals, hostile input) and mcp-cli.
set -u
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export FLEETMCP_DB=$tmp/vg.db
VG="valgrind -q --leak-check=full --show-leak-kinds=definite,indirect,possible --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=3"
cfg=${FM_CONFIG:-}
args=()
[ -n "$cfg" ] && args=(--config "$cfg")
{
    echo '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","clientInfo":{"name":"vg","version":"1"}}}'
    echo '{"jsonrpc":"2.0","method":"notifications/initialized"}'
    echo '{"jsonrpc":"2.0","id":2,"method":"tools/list"}'
    echo '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"fleet_status","arguments":{}}}'
    echo '{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"killswitch_engage","arguments":{"reason":"valgrind"}}}'
    echo '{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"killswitch_release","arguments":{"reason":"valgrind"}}}'
    echo '{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"audit_query","arguments":{"limit":3,"detail":true,"since":"1h"}}}'
    echo '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"audit_query","arguments":{"limit":"x"}}}'
    echo '{"jsonrpc":"2.0","id":8,"method":"tools/list","params":{"cursor":"bad"}}'
    echo '{"jsonrpc":"2.0","id":9,"method":"logging/setLevel","params":{"level":"debug"}}'
    echo '{"broken json'
    printf '\xff\xfe\n'
    echo '[{"jsonrpc":"2.0","id":10,"method":"ping"}]'
    # A tool's whole output schema (tools/list lists its top level only).
    echo '{"jsonrpc":"2.0","id":11,"method":"resources/read","params":{"uri":"fleetmcp://schemas/tools/diagnose/output"}}'
    echo '{"jsonrpc":"2.0","id":12,"method":"resources/read","params":{"uri":"fleetmcp://schemas/tools/no_such/output"}}'
    echo '{"jsonrpc":"2.0","id":13,"method":"completion/complete","params":{"ref":{"type":"ref/resource","uri":"fleetmcp://schemas/tools/{name}/output"},"argument":{"name":"name","value":"slurm"}}}'
    echo '{"jsonrpc":"2.0","id":14,"method":"resources/templates/list"}'
    for t in $(python3 -c 'import json,glob; print(" ".join(json.load(open(f))["name"] for f in sorted(glob.glob("schemas/tools/*.json")) if json.load(open(f))["autonomy"]=="read"))'); do
        echo "{\"jsonrpc\":\"2.0\",\"id\":\"$t\",\"method\":\"tools/call\",\"params\":{\"name\":\"$t\",\"arguments\":{}}}"
    done
} > "$tmp/session.jsonl"
fail=0
if ! $VG build/fleetmcp "${args[@]}" < "$tmp/session.jsonl" > "$tmp/out.jsonl" 2> "$tmp/err"; then
    echo "FAIL: valgrind reported errors in fleetmcp:"; cat "$tmp/err"; fail=1
fi
n=$(wc -l < "$tmp/out.jsonl")
[ "$n" -ge 12 ] || { echo "FAIL: only $n replies"; fail=1; }
grep -q '"id":11,"result":{"contents":\[{"uri":"fleetmcp://schemas/tools/diagnose/output"' "$tmp/out.jsonl" ||
    { echo "FAIL: no output schema resource for diagnose"; fail=1; }
if ! $VG build/mcp-cli --db "$FLEETMCP_DB" call audit_query limit=2 > /dev/null 2> "$tmp/err2"; then
    echo "FAIL: valgrind reported errors in mcp-cli:"; cat "$tmp/err2"; fail=1
fi
if ! $VG build/fleetmcp audit verify --db "$FLEETMCP_DB" > /dev/null 2> "$tmp/err3"; then
    echo "FAIL: valgrind: audit verify:"; cat "$tmp/err3"; fail=1
fi
[ $fail -eq 0 ] && echo "valgrind: 3 passed, 0 failed" || echo "valgrind: failed"
exit $fail
