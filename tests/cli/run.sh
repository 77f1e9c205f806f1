#!/bin/bash
# mcp-cli: commands, formats and exit codes (0 ok, 1 usage, 4 server
# unreachable or died, 5 tool isError), and human attribution in the audit.
set -u
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export FLEETMCP_DB=$tmp/cli.db
unset FLEETMCP_CONFIG
cli=build/mcp-cli
passed=0
failed=0
expect() { # expect CODE DESCRIPTION -- command...
    local want=$1 what=$2
    shift 3
    "$@" > "$tmp/out" 2> "$tmp/err"
    local got=$?
    if [ "$got" -eq "$want" ]; then passed=$((passed + 1)); else
        failed=$((failed + 1)); echo "FAIL: $what: exit $got, wanted $want"; cat "$tmp/out" "$tmp/err"; fi
}
contains() { # contains FILE TEXT DESCRIPTION
    if grep -q -- "$2" "$1"; then passed=$((passed + 1)); else
        failed=$((failed + 1)); echo "FAIL: $3: '$2' not in $(head -c 400 "$1")"; fi
}

expect 0 "list" -- $cli list
contains "$tmp/out" "fleet_status" "list shows fleet_status"
contains "$tmp/out" "hitl" "list shows autonomy"
expect 0 "list json" -- $cli --format json list
python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$tmp/out" && passed=$((passed+1)) || { failed=$((failed+1)); echo "FAIL: list json parses"; }
expect 0 "describe" -- $cli describe audit_query
contains "$tmp/out" "the gate asks for" "describe says what the gate asks for"
expect 1 "describe unknown" -- $cli describe nope
expect 0 "call with key=value" -- $cli call audit_query limit=2 tool=fleet_status
expect 0 "call with --args" -- $cli call audit_query --args '{"limit": 1}'
expect 5 "tool isError exits 5" -- $cli call killswitch_release reason=please
contains "$tmp/err" "SHADOW" "shadow refusal text on stderr"
expect 5 "schema failure exits 5" -- $cli call audit_query limit=nope
contains "$tmp/err" "/limit" "schema failure names the field"
expect 1 "unknown tool is usage" -- $cli call no_such_tool
expect 1 "bad key=value" -- $cli call audit_query justaword
expect 1 "no command" -- $cli
expect 1 "bad format" -- $cli --format yaml list
expect 4 "server missing" -- $cli --server /nonexistent/fleetmcp list
expect 4 "server dies" -- $cli --server "/bin/false" list
expect 0 "shell" -- sh -c "printf 'tools\ncall fleet_status\nfleet_status\nhelp\nquit\n' | $cli shell"
contains "$tmp/out" "shadow" "shell ran fleet_status"
# mcp-cli's calls are attributed to a human.
n=$(sqlite3 "$FLEETMCP_DB" "select count(*) from audit where initiator_kind='human' and client_name='mcp-cli'")
[ "$n" -ge 5 ] && passed=$((passed + 1)) || { failed=$((failed + 1)); echo "FAIL: human attribution ($n rows)"; }
echo "mcp-cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
