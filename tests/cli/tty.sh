#!/bin/bash
# `mcp-cli shell` as an operator meets it: tmux runs it in a real terminal,
# send-keys types (Tab, Up, Ctrl-R, quotes, Ctrl-C) and capture-pane reads
# what a person would see.  Runs against the local stack, so node names
# complete from slurm_nodes and a real repair waits on a real job, sending
# progress until Ctrl-C cancels it.  Every wait polls the screen with a
# deadline; the tmux server has its own socket and is killed at the end.
set -u
cd "$(dirname "$0")/../.."
command -v tmux > /dev/null || { echo "FAIL: tmux is not installed (make deps)"; exit 1; }
. tests/stack/with-stack.sh
tmp=$(mktemp -d)
sock=fm-tty-$$
T() { tmux -L "$sock" "$@"; }
cleanup_tty() {
    T kill-server 2> /dev/null
    [ -n "${job:-}" ] && scancel "$job" 2> /dev/null
    rm -rf "$tmp"
    fm_stack_cleanup
}
trap cleanup_tty EXIT
. tests/cli/lib.sh

cli=$PWD/build/mcp-cli
# Fleet mode, so the canary repair really runs (and can be cancelled).
sed 's/^mode: .*/mode: fleet/' "$FM_CONFIG" > "$tmp/fleet.yaml"
grep -q '^mode: fleet' "$tmp/fleet.yaml" || echo "mode: fleet" >> "$tmp/fleet.yaml"
export FLEETMCP_CONFIG=$tmp/fleet.yaml FLEETMCP_DB=$tmp/tty.db XDG_STATE_HOME=$tmp/state
hist=$XDG_STATE_HOME/fleetmcp/mcp-cli.history

printf 'set -g remain-on-exit on\nset -g history-limit 5000\n' > "$tmp/tmux.conf"
screen() { T capture-pane -p -J -S - -t "$1"; }
# wait_for WINDOW TEXT [SECONDS]: polls the screen until TEXT shows.
wait_for() {
    local deadline=$((SECONDS + ${3:-15}))
    while [ $SECONDS -lt $deadline ]; do
        screen "$1" | grep -qF -- "$2" && return 0
        sleep 0.1
    done
    echo "--- screen of $1 while waiting for '$2':"
    screen "$1" | grep -v '^$' | tail -15
    return 1
}
expect_screen() { # expect_screen WINDOW TEXT WHAT [SECONDS]
    if wait_for "$1" "$2" "${4:-15}"; then ok; else bad "$3"; fi
}
# expect_line WINDOW TEXT WHAT: TEXT shows in the line being edited (the
# last two non-blank lines: libedit puts its search prompt below), not
# merely somewhere in the scrollback.
expect_line() {
    local deadline=$((SECONDS + 15))
    while [ $SECONDS -lt $deadline ]; do
        screen "$1" | grep -v '^$' | tail -2 | grep -qF -- "$2" && { ok; return; }
        sleep 0.1
    done
    bad "$3"
    screen "$1" | grep -v '^$' | tail -4
}
start_shell() { # start_shell NAME [ENV=VALUE...]: a new window running the shell
    local name=$1
    shift
    # The exit status is printed on the screen when the shell ends; bash,
    # as an operator's login shell would, lets mcp-cli handle Ctrl-C.
    T new-window -d -n "$name" env TERM=xterm-256color "$@" \
        bash -c '"$@"; echo "shell exited with $?"' bash "$cli" shell
}

T -f "$tmp/tmux.conf" new-session -d -s main -x 200 -y 50 "sleep 600"

# --- completion, quoting, describe ----------------------------------------
start_shell s1
expect_screen s1 "fleetmcp>" "the shell starts and prompts"
T send-keys -t s1 "descr" Tab
expect_line s1 "fleetmcp> describe " "Tab completes a command"
T send-keys -t s1 "node_dr" Tab Enter
expect_screen s1 "the gate asks for: a plan and a signed approval" "describe says what the gate asks for"
if screen s1 | grep -qE '^  name +type +required +enum +default +description'; then ok; else bad "describe prints the argument table"; fi
if screen s1 | grep -qE '^  reason +string +yes'; then ok; else bad "the table marks reason as required"; fi

T send-keys -t s1 "ticket_create sev" Tab
expect_line s1 "fleetmcp> ticket_create severity=" "Tab completes an argument name from inputSchema"
T send-keys -t s1 "h" Tab
expect_line s1 "ticket_create severity=high " "Tab completes an enum value"
T send-keys -t s1 'summary="GPU 3 fell off the bus" node=gpu-a0' Tab
# gpu-a01..gpu-a04 share "gpu-a0": Tab lists them, typing one more key picks.
T send-keys -t s1 Tab
expect_screen s1 "gpu-a03" "a second Tab lists the node names from slurm_nodes"
T send-keys -t s1 "2" Tab
expect_line s1 "node=gpu-a02 " "Tab completes a node name"
T send-keys -t s1 "fault_cl" Tab "gpu_fallen" Tab
expect_line s1 "fault_class=gpu_fallen_off_bus " "Tab completes a fault class from the runbooks"
T send-keys -t s1 Enter
expect_screen s1 "FM-1" "the quoted call creates a ticket"
if screen s1 | grep -q "is not key=value"; then bad "a quoted value was split"; else ok; fi
# The same words on the command line reach the same arguments: the ticket
# is deduplicated onto FM-1 and its summary kept its blanks.
out=$("$cli" call ticket_create summary="GPU 3 fell off the bus" severity=high node=gpu-a02 \
    fault_class=gpu_fallen_off_bus 2>&1)
if echo "$out" | grep -qE '^key +FM-1' && echo "$out" | grep -qE '^deduplicated +true'; then ok
else bad "the command line with the same words hits the same ticket: $out"; fi
summary=$("$cli" --format json call ticket_get key=FM-1 |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["structuredContent"]["summary"])')
[ "$summary" = "GPU 3 fell off the bus" ] && ok || bad "ticket summary is '$summary'"

# --- history: Up, Ctrl-R, secrets, file mode ------------------------------
T send-keys -t s1 Up
expect_line s1 'fleetmcp> ticket_create severity=high summary="GPU 3 fell off the bus"' "Up recalls the last line"
T send-keys -t s1 C-u
sleep 0.2
T send-keys -t s1 Down C-u C-r "desc"
expect_line s1 "bck:desc" "Ctrl-R searches the history"
expect_line s1 "fleetmcp> describe node_drain" "Ctrl-R finds an earlier line"
T send-keys -t s1 C-u Enter C-u
T send-keys -t s1 "approve pl-0123456789abcdef --key $tmp/none.pem --approver alice" Enter
expect_screen s1 "NOTFOUND: no plan pl-0123456789abcdef" "approve runs in the shell"
T send-keys -t s1 "abc" C-c
expect_line s1 "fleetmcp> ^C" "Ctrl-C at the prompt drops the line"
T send-keys -t s1 "help" Enter
expect_screen s1 "Ctrl-C cancels a running call" "the shell is still there after Ctrl-C"
if screen s1 | grep -q "Unknown tool: abc"; then bad "the dropped line ran"; else ok; fi
T send-keys -t s1 "quit" Enter
expect_screen s1 "shell exited with 0" "quit exits 0"
[ "$(stat -c %a "$hist" 2> /dev/null)" = 600 ] && ok || bad "history file mode is $(stat -c %a "$hist" 2>&1)"
grep -q 'describe' "$hist" && ok || bad "history file keeps lines"
if grep -q -- '--key\|none.pem' "$hist"; then bad "a line with --key reached the history file"; else ok; fi

# History survives a restart; the secret line is not offered either.
start_shell s2
expect_screen s2 "fleetmcp>" "the shell starts again"
T send-keys -t s2 Up
expect_line s2 "fleetmcp> quit" "Up in a new shell recalls the last session's line"

# --- completion/complete, when the server offers completions ---------------
T new-window -d -n s3 env TERM=xterm-256color "$cli" \
    --server "python3 $PWD/tests/cli/complete_server.py $tmp/complete.log" shell
expect_screen s3 "fleetmcp>" "the shell starts on a server that completes"
T send-keys -t s3 "probe node=rack7" Tab
expect_line s3 "fleetmcp> probe node=rack7-node0" "Tab asks completion/complete for the common prefix"
T send-keys -t s3 "2" Tab Enter
expect_screen s3 "probed rack7-node02" "the completed name reaches the call"
if python3 -c 'import json,sys
reqs = [json.loads(l) for l in open(sys.argv[1])]
r = reqs[0]
sys.exit(0 if r["ref"] == {"type": "ref/tool", "name": "probe"} and r["argument"] == {"name": "node", "value": "rack7"}
         and reqs[-1]["argument"]["value"] == "rack7-node02" else 1)' "$tmp/complete.log"; then ok
else bad "completion/complete requests: $(cat "$tmp/complete.log")"; fi

# --- colour ----------------------------------------------------------------
# The caller's own NO_COLOR (CI runners often set one) must not decide
# the colour check: c1 is a terminal with colour allowed, c2 one without.
T new-window -d -n c1 env -u NO_COLOR TERM=xterm-256color "$cli" describe node_drain
T new-window -d -n c2 env TERM=xterm-256color NO_COLOR=1 "$cli" describe node_drain
wait_for c1 "the gate asks for" > /dev/null && wait_for c2 "the gate asks for" > /dev/null
# The whole scrollback (-S -): describe's bold title is near the top of a
# wrapped page, and once the command exits tmux adds its "Pane is dead"
# line, which can scroll the title off the visible screen.
T capture-pane -p -e -S - -t c1 | grep -q $'\033\\[1m' && ok || bad "describe is bold on a terminal"
T capture-pane -p -e -S - -t c2 | grep -q $'\033\\[1m' && bad "NO_COLOR still coloured" || ok
"$cli" describe node_drain | grep -q $'\033' && bad "colour in a pipe" || ok

# --- progress and Ctrl-C during a long call ------------------------------
python3 tests/stack/gpu_state.py inject gpu-a04 row_remap_pending > /dev/null
job=$(sbatch --parsable -o /dev/null -w gpu-a04 --wrap "sleep 120" | cut -d';' -f1)
for _ in $(seq 50); do squeue -h -j "$job" -o %T | grep -q RUNNING && break; sleep 0.2; done
# Lists for people: aligned tables with the key facts above them.
out=$("$cli" call slurm_jobs node=gpu-a04)
if echo "$out" | grep -qE '^counts +RUNNING=1' && echo "$out" | grep -qE "^  job_id +name +user +state" &&
    echo "$out" | grep -qE "^  $job +wrap +[a-z]+ +RUNNING +gpu-a04"; then ok
else bad "slurm_jobs as a table: $out"; fi
out=$("$cli" call slurm_nodes)
if echo "$out" | grep -qE '^total +7' && echo "$out" | grep -qE '^  gpu-b03 +IDLE +8 +rack=r02 sku=a100'; then ok
else bad "slurm_nodes as a table: $out"; fi
# The canary repair runs unapproved only on a fresh diagnosis of its class,
# from evidence fleetmcp collects itself (node mode reads the injected Xid).
"$cli" --format json call diagnose node=gpu-a04 |
    python3 -c 'import json,sys; t=json.load(sys.stdin)["structuredContent"]["top"]; sys.exit(not (t["fault_class"] == "gpu_row_remap_pending" and t["act"]))' &&
    ok || bad "diagnose collects the row remap on gpu-a04 at act"
plan=$("$cli" --format json call repair_plan node=gpu-a04 fault_class=gpu_row_remap_pending |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["structuredContent"]["plan_id"])')
case "$plan" in pl-*) ok ;; *) bad "repair_plan on the canary node: $plan" ;; esac
T send-keys -t s2 C-u "repair_execute plan_id=$plan" Enter
expect_screen s2 "%]" "a long call shows its progress" 30
# One progress line, rewritten in place: never two on screen.
n=$(screen s2 | grep -c '%\]')
[ "$n" -eq 1 ] && ok || bad "progress took $n lines"
T send-keys -t s2 C-c
expect_screen s2 "mcp-cli: cancelling tools/call" "Ctrl-C sends the cancel" 10
expect_screen s2 "mcp-cli: tools/call cancelled" "the server confirms the call stopped" 60
T send-keys -t s2 "help" Enter
expect_screen s2 "Ctrl-C cancels a running call" "the shell goes on after a cancelled call"
n=$(sqlite3 "$FLEETMCP_DB" "select count(*) from audit where tool='repair_execute' and phase='result' and error_code='CANCELLED'")
[ "$n" = 1 ] && ok || { bad "audit records the cancel ($n rows)"
    sqlite3 "$FLEETMCP_DB" "select id, tool, phase, decision, error_code, substr(error,1,100) from audit where tool='repair_execute'"; }
T send-keys -t s2 "quit" Enter

tally_end "mcp-cli tty"
