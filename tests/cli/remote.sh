#!/bin/bash
# mcp-cli --url: the same commands against a remote server over Streamable
# HTTP.  The peer is the SDK's reference server (server-everything in
# streamableHttp mode) on a free loopback port: it answers with SSE streams,
# sends progress, and gives an Mcp-Session-Id that every later request must
# carry.  Ctrl-C during a long call is typed into a real terminal (tmux).
set -u
cd "$(dirname "$0")/../.."
se=tests/interop/node_modules/@modelcontextprotocol/server-everything/dist/index.js
[ -f "$se" ] || { echo "FAIL: $se is missing (make deps runs npm ci in tests/interop)"; exit 1; }
command -v tmux > /dev/null || { echo "FAIL: tmux is not installed (make deps)"; exit 1; }
tmp=$(mktemp -d)
sock=fm-remote-$$
sepid=
fmpid=
cleanup() {
    tmux -L "$sock" kill-server 2> /dev/null
    [ -n "$fmpid" ] && kill "$fmpid" 2> /dev/null && wait "$fmpid" 2> /dev/null
    [ -n "$sepid" ] && kill "$sepid" 2> /dev/null && wait "$sepid" 2> /dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
cli=$PWD/build/mcp-cli
. tests/cli/lib.sh

# A free port, then the server; wait (bounded) until it listens.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
PORT=$port node "$se" streamableHttp > "$tmp/se.log" 2>&1 &
sepid=$!
for _ in $(seq 100); do grep -q "listening on port" "$tmp/se.log" && break; sleep 0.1; done
grep -q "listening on port" "$tmp/se.log" || { echo "FAIL: server-everything did not start:"; cat "$tmp/se.log"; exit 1; }
url=http://127.0.0.1:$port/mcp

expect 0 "list over HTTP" -- "$cli" --url "$url" list
contains "$tmp/out" "trigger-long-running-operation" "the remote tools are listed"
expect 0 "a quoted value over HTTP" -- "$cli" --url "$url" call echo message="GPU 3 fell off the bus"
contains "$tmp/out" "Echo: GPU 3 fell off the bus" "the value kept its blanks"
expect 0 "describe over HTTP" -- "$cli" --url "$url" describe get-sum
contains "$tmp/out" "^  a  *number  *yes  *First number" "describe's argument table"
expect 0 "json over HTTP" -- "$cli" --url "$url" --format json call get-structured-content location=Chicago
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert "temperature" in d["structuredContent"]' "$tmp/out" \
    && ok || bad "--format json is the exact result"
# Progress from an SSE stream: plain lines when stderr is not a terminal.
expect 0 "a long call with progress" -- "$cli" --url "$url" call trigger-long-running-operation duration=1 steps=2
contains "$tmp/err" "^  \[ 50%\]" "progress line at 50%"
contains "$tmp/err" "^  \[100%\]" "progress line at 100%"
contains "$tmp/out" "Long running operation completed" "the result after the progress"
expect 0 "the shell over HTTP" -- sh -c "printf '%s\n' \"echo message='it is ok'\" 'get-sum a=2 b=3' | $cli --url $url shell"
contains "$tmp/out" "Echo: it is ok" "shell call over HTTP"
contains "$tmp/out" "The sum of 2 and 3 is 5" "a second call in the same session"
# A server's text reaches the terminal without its control bytes: an ESC
# sequence in a result (a drain reason, a ticket summary) cannot clear the
# screen or restyle what an operator reads.
expect 0 "a result with control bytes" -- "$cli" --url "$url" call echo message="$(printf 'a\033[2Jb\rc')"
if grep -q "$(printf '\033')" "$tmp/out" || grep -q "$(printf '\r')" "$tmp/out"; then
    bad "ESC or CR reached the terminal: $(od -c "$tmp/out" | head -3)"
else ok; fi
contains "$tmp/out" "Echo: a \[2Jb c" "the text around them is kept"
printf 'tok-123\n' > "$tmp/token"
expect 0 "a token file" -- "$cli" --url "$url" --token-file "$tmp/token" call echo message=x
printf 'tok\r\nX-Evil: 1\n' > "$tmp/bad-token"
expect 1 "a token with a line break is refused" -- "$cli" --url "$url" --token-file "$tmp/bad-token" list
contains "$tmp/err" "visible ASCII" "the refusal says what a token may hold"
expect 1 "a missing token file" -- "$cli" --url "$url" --token-file "$tmp/none" list
expect 1 "not http" -- "$cli" --url "ftp://127.0.0.1/mcp" list
expect 1 "--url and --server together" -- "$cli" --url "$url" --server build/fleetmcp list
expect 4 "nothing listening" -- "$cli" --url "http://127.0.0.1:1/mcp" list
contains "$tmp/err" "cannot reach" "unreachable says so"
expect 5 "a tool error over HTTP" -- "$cli" --url "$url" call nope
contains "$tmp/err" "not found" "the server's refusal is shown"

# fleetmcp --http on a free loopback port, with ARGS; waits (bounded)
# until it listens, then sets fmpid and fmurl ("" if it did not start).
start_fm() { # start_fm LOG ARGS...
    local log=$1
    shift
    build/fleetmcp "$@" --http 127.0.0.1:0 > /dev/null 2> "$log" &
    fmpid=$!
    for _ in $(seq 100); do grep -q "serving MCP on" "$log" && break; sleep 0.1; done
    fmurl=$(grep -o 'http://127\.0\.0\.1:[0-9]*/mcp' "$log" | head -1)
}

# The same commands against fleetmcp's own Streamable HTTP transport.
start_fm "$tmp/fm.log" --db "$tmp/fm.db"
if [ -z "$fmurl" ]; then
    bad "fleetmcp --http did not start:"; cat "$tmp/fm.log"
else
    expect 0 "list from fleetmcp --http" -- "$cli" --url "$fmurl" list
    contains "$tmp/out" "^repair_plan  *create" "fleetmcp's tools with their autonomy"
    expect 0 "a call to fleetmcp --http" -- "$cli" --url "$fmurl" call runbook_get id=rb-gpu-hang
    contains "$tmp/out" "GPU hang" "the runbook over HTTP"
    expect 5 "a refusal from fleetmcp --http" -- "$cli" --url "$fmurl" call node_drain node=gpu-a01 reason="no plan"
    contains "$tmp/err" "SHADOW\|NOTCONFIGURED\|APPROVAL" "the gate's refusal word is shown"
fi

# Replay re-issues a session's mutations: FLEETMCP_MODE=shadow reaches only
# a server mcp-cli starts, so against one at --url in fleet mode nothing is
# called (the kill switch a recorded killswitch_engage names stays off)
# unless the operator asks for that mode by name.
printf 'mode: fleet\n' > "$tmp/fleet.yaml"
printf '%s\n' '{"seq":1,"tool":"killswitch_engage","arguments":{"reason":"replayed session"},"isError":false,"result":{"engaged":true,"reason":"replayed session"},"mutation":true}' \
    > "$tmp/engage.jsonl"
kill "$fmpid" 2> /dev/null && wait "$fmpid" 2> /dev/null
start_fm "$tmp/ff.log" --config "$tmp/fleet.yaml" --db "$tmp/fleet.db"
if [ -z "$fmurl" ]; then
    bad "fleetmcp --http in fleet mode did not start:"; cat "$tmp/ff.log"
else
    expect 1 "replay against a fleet-mode server is refused" -- "$cli" --url "$fmurl" replay "$tmp/engage.jsonl"
    contains "$tmp/err" "runs in fleet mode.*nothing was called" "the refusal says why and what to do"
    expect 0 "fleet_status after the refused replay" -- "$cli" --url "$fmurl" --format json call fleet_status
    engaged() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["structuredContent"]["kill_switch"]["engaged"])' "$tmp/out"; }
    [ "$(engaged)" = False ] && ok || bad "the recorded mutation ran: kill switch $(engaged)"
    expect 0 "replay for real when asked by name" -- env FLEETMCP_MODE=fleet "$cli" --url "$fmurl" replay "$tmp/engage.jsonl"
    expect 0 "fleet_status after the replay asked for" -- "$cli" --url "$fmurl" --format json call fleet_status
    [ "$(engaged)" = True ] && ok || bad "the replay asked for did not run: kill switch $(engaged)"
fi

# A bearer token as long as an identity provider's JWT (1-2 KiB) reaches
# fleetmcp whole: a header cut short is refused as an unknown token.
long=$(python3 -c 'import secrets; print("tok-" + secrets.token_hex(900))')
printf '%s\n' "$long" > "$tmp/long-token"
sha=$(printf '%s' "$long" | sha256sum | cut -d' ' -f1)
printf 'auth:\n  audience: http://127.0.0.1/mcp\n  tokens:\n    - {sha256: %s, subject: ops, scopes: [fleetmcp:read]}\n' \
    "$sha" > "$tmp/auth.yaml"
kill "$fmpid" 2> /dev/null && wait "$fmpid" 2> /dev/null
start_fm "$tmp/fa.log" --config "$tmp/auth.yaml" --db "$tmp/auth.db"
if [ -z "$fmurl" ]; then
    bad "fleetmcp --http with auth did not start:"; cat "$tmp/fa.log"
else
    expect 0 "a 1.8 KiB token file" -- "$cli" --url "$fmurl" --token-file "$tmp/long-token" call runbook_list
    contains "$tmp/out" "rb-gpu-hang" "the call ran under the long token"
    expect 4 "no token" -- "$cli" --url "$fmurl" call runbook_list
fi

# Ctrl-C in a terminal during a long call: the stream ends, the cancel is
# sent, and mcp-cli exits 130 after the server acknowledged it.
T() { tmux -L "$sock" "$@"; }
T -f /dev/null new-session -d -s main -x 160 -y 20 \
    bash -c '"$@"; echo "call exited with $?"; sleep 600' bash \
    "$cli" --url "$url" call trigger-long-running-operation duration=60 steps=60
wait_for() { # wait_for TEXT SECONDS
    local deadline=$((SECONDS + $2))
    while [ $SECONDS -lt $deadline ]; do
        T capture-pane -p -t main | grep -qF -- "$1" && return 0
        sleep 0.1
    done
    echo "--- screen while waiting for '$1':"
    T capture-pane -p -t main | grep -v '^$'
    return 1
}
if wait_for "%]" 20; then ok; else bad "progress on the terminal"; fi
T send-keys -t main C-c
if wait_for "call exited with 130" 20; then ok; else bad "Ctrl-C cancels with 130"; fi
if T capture-pane -p -t main | grep -q "tools/call cancelled"; then ok; else
    bad "the cancel is confirmed on screen"; fi
tally_end "mcp-cli remote"
