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
. tests/cli/lib.sh

expect 0 "list" -- $cli list
contains "$tmp/out" "fleet_status" "list shows fleet_status"
contains "$tmp/out" "hitl" "list shows autonomy"
expect 0 "list json" -- $cli --format json list
python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$tmp/out" && ok || bad "list json parses"
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
# Quoting, key=@FILE and --args - (the rules are unit-tested in
# tests/unit/test_cli_args.c; here they reach a real server).
printf 'GPU 3 fell off the bus\n' > "$tmp/summary.txt"
expect 0 "key=@FILE and a quoted value" -- $cli --format json call ticket_create summary=@"$tmp/summary.txt" \
    node=gpu-a01 fault_class=gpu_fallen_off_bus description="it's gone; \"nvidia-smi\" sees 7 GPUs"
contains "$tmp/out" '"key": "FM-1"' "ticket created"
expect 0 "the same ticket from the shell" -- sh -c "printf '%s\n' 'ticket_get key=FM-1' | $cli --format json shell"
contains "$tmp/out" '"summary": "GPU 3 fell off the bus"' "@FILE value without its trailing newline"
contains "$tmp/out" "it's gone; \\\\\"nvidia-smi\\\\\" sees 7 GPUs" "quotes kept inside a double-quoted value"
expect 0 "--args - reads standard input" -- sh -c "echo '{\"limit\": 1, \"tool\": \"ticket_create\"}' | $cli --format json call audit_query --args -"
contains "$tmp/out" '"count": 1' "--args - applied"
expect 1 "an unquoted blank is refused with advice" -- $cli call ticket_create summary=GPU 3
contains "$tmp/err" "'3' is not key=value (quote a value with blanks" "the refusal says how to quote"
expect 1 "a missing @FILE" -- $cli call audit_query tool=@/nonexistent/x
contains "$tmp/err" "cannot open /nonexistent/x" "the refusal names the file"
# Text output for people: key facts first, lists as aligned tables, no
# colour in a pipe.
expect 0 "audit_query as a table" -- $cli call audit_query limit=3
contains "$tmp/out" "^count " "key facts first"
contains "$tmp/out" "^  id  *ts  *phase  *tool" "rows as an aligned table"
if grep -q $'\033' "$tmp/out"; then bad "colour in a pipe"; else ok; fi
expect 0 "describe as a table" -- $cli describe ticket_create
contains "$tmp/out" "^  severity  *string  *critical,high,medium,low" "enum column"
contains "$tmp/out" "rate-limited" "what the gate asks of a create tool"
expect 0 "shell" -- sh -c "printf 'tools\ncall fleet_status\nfleet_status\nhelp\nquit\n' | $cli shell"
contains "$tmp/out" "shadow" "shell ran fleet_status"
# mcp-cli's calls are attributed to a human, by its own claim: the rows
# carry the OS user and say self-declared, and so does audit_query.
n=$(sqlite3 "$FLEETMCP_DB" "select count(*) from audit where initiator_kind='human' and client_name='mcp-cli' and os_user='self-declared:$(id -un)'")
[ "$n" -ge 5 ] && ok || bad "self-declared human attribution ($n rows)"
n=$(sqlite3 "$FLEETMCP_DB" "select count(*) from audit where os_user not like 'self-declared:%'")
[ "$n" = 0 ] && ok || bad "every stdio row is self-declared ($n are not)"
expect 0 "audit_query shows the label as self-declared" -- $cli --format json call audit_query limit=1 tool=fleet_status
contains "$tmp/out" '"initiator": "human:mcp-cli (self-declared)"' "audit_query marks the label"
expect 0 "fleet_status metrics say whose label they trust" -- $cli --format json call fleet_status
contains "$tmp/out" '"human_label": "self-declared"' "metrics mark the human label"
# audit export reads what a server answers: rows a fleetmcp never writes (a
# result row with no phase, or a phase that is not a string) leave the call
# exported without its result, and mcp-cli does not crash on them.
expect 0 "audit export of odd rows" -- $cli --server "python3 $PWD/tests/cli/odd_audit_server.py" \
    audit export --session s1 --out "$tmp/odd.jsonl"
contains "$tmp/odd.jsonl" '"INCOMPLETE: no result row' "the call is exported, its result missing"
tally_end mcp-cli
