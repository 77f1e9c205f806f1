#!/bin/bash
# Interop with the MCP Inspector's headless CLI: tools/list and tools/call.
set -u
here=$(cd "$(dirname "$0")" && pwd)
server=$(realpath "${1:-build/fleetmcp}")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export FLEETMCP_DB=$tmp/inspector.db
# shellcheck source=tests/lib/tally.sh
. "$here/../lib/tally.sh"
insp() { (cd "$here" && timeout 120 npx --no-install @modelcontextprotocol/inspector --cli -e "FLEETMCP_DB=$FLEETMCP_DB" "$server" "$@") 2>"$tmp/err"; }

out=$(insp --method tools/list)
if echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); n=[t["name"] for t in d["tools"]]; assert "fleet_status" in n and "audit_query" in n, n'; then ok; else bad "tools/list: $out $(cat "$tmp/err")"; fi

out=$(insp --method tools/call --tool-name fleet_status)
if echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["structuredContent"]["mode"]=="shadow", d'; then ok; else bad "tools/call fleet_status: $out $(cat "$tmp/err")"; fi

out=$(insp --method tools/call --tool-name audit_query --tool-arg limit=5 --tool-arg tool=fleet_status)
if echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); r=d["structuredContent"]["rows"]; assert len(r)>=1 and r[0]["tool"]=="fleet_status", d'; then ok; else bad "tools/call audit_query with args: $out $(cat "$tmp/err")"; fi

# The inspector's calls are audited as an agent's, with its client name.
out=$(sqlite3 "$FLEETMCP_DB" "select distinct initiator_kind from audit")
if [ "$out" = "agent" ]; then ok; else bad "inspector calls audited as agent: $out"; fi

# The same over Streamable HTTP: fleetmcp --http on a free loopback port.
"$server" --db "$tmp/http.db" --http 127.0.0.1:0 2>"$tmp/http.err" &
http_pid=$!
url=""
for _ in $(seq 50); do
    url=$(grep -o 'http://127.0.0.1:[0-9]*/mcp' "$tmp/http.err" | head -1)
    [ -n "$url" ] && break
    sleep 0.1
done
if [ -n "$url" ]; then
    out=$( (cd "$here" && timeout 120 npx --no-install @modelcontextprotocol/inspector --cli "$url" --transport http --method tools/call --tool-name fleet_status) 2>"$tmp/err")
    if echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["structuredContent"]["mode"]=="shadow", d'; then ok; else bad "http tools/call fleet_status: $out $(cat "$tmp/err")"; fi
    out=$( (cd "$here" && timeout 120 npx --no-install @modelcontextprotocol/inspector --cli "$url" --transport http --method tools/list) 2>"$tmp/err")
    if echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); n=[t["name"] for t in d["tools"]]; assert "fleet_status" in n, n'; then ok; else bad "http tools/list: $out $(cat "$tmp/err")"; fi
else
    bad "fleetmcp --http did not start: $(cat "$tmp/http.err")"
fi
kill -TERM "$http_pid" 2>/dev/null
wait "$http_pid" && ok || bad "fleetmcp --http did not exit 0 on SIGTERM"

tally_end inspector-interop
