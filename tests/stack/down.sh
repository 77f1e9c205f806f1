#!/usr/bin/env bash
# Stop the fleetmcp test stack started by tests/stack/up.sh.
#
#   tests/stack/down.sh [STACK_DIR]     (default: the dir in build/stack.current)
#
# Ends exactly what the stack started: the pids in $STACK_DIR/run/*.pid (each
# checked to still be our daemon: its command line names STACK_DIR), then
# leftovers of jobs the stack's slurmd ran (processes carrying
# FM_STACK_DAEMON=STACK_DIR in their environment, set only by up.sh on the
# daemons it starts). Waits for each with a bound, then SIGKILL. Removes no
# files (logs stay for inspection). Safe to run twice.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CURRENT="$REPO/build/stack.current"

if [ $# -ge 1 ]; then
    S=$1
elif [ -f "$CURRENT" ]; then
    S=$(cat "$CURRENT")
else
    echo "down.sh: no STACK_DIR given and no $CURRENT" >&2
    exit 1
fi
[ -d "$S" ] || { echo "down.sh: $S: no such stack dir" >&2; exit 1; }
S=$(cd "$S" && pwd)

ours() {   # ours PID: alive and started for this stack
    [ -n "$1" ] && [ -d "/proc/$1" ] && grep -qaF -- "$S" "/proc/$1/cmdline" 2>/dev/null
}

stop_pids() {   # stop_pids NAME PID...: TERM, wait <= 10 s, then KILL
    local name=$1; shift
    local live=() p
    for p in "$@"; do ours "$p" && live+=("$p"); done
    [ ${#live[@]} -gt 0 ] || return 0
    kill -TERM "${live[@]}" 2>/dev/null
    for _ in $(seq 100); do
        local any=0
        for p in "${live[@]}"; do ours "$p" && any=1; done
        [ $any = 0 ] && return 0
        sleep 0.1
    done
    echo "down.sh: $name did not stop in 10 s: SIGKILL ${live[*]}" >&2
    kill -KILL "${live[@]}" 2>/dev/null
    sleep 0.2
}

pidof_file() { cat "$S/run/$1.pid" 2>/dev/null; }

marked() {   # pids (not ours, not zombies) whose environment has FM_STACK_DAEMON=$S
    local e p st
    for e in /proc/[0-9]*/environ; do
        p=${e#/proc/}; p=${p%/environ}
        [ "$p" = $$ ] && continue
        if tr '\0' '\n' 2>/dev/null <"$e" | grep -qxF "FM_STACK_DAEMON=$S"; then
            st=$(awk '/^State:/ {print $2}' "/proc/$p/status" 2>/dev/null)
            [ -n "$st" ] && [ "$st" != Z ] && echo "$p"
        fi
    done
}

# Jobs first, while slurmctld and slurmd still run, so their steps end cleanly
# (proctrack/linuxproc: slurmstepd kills the job's processes, then exits).
if ours "$(pidof_file slurmctld)"; then
    jobs=$(SLURM_CONF="$S/slurm/slurm.conf" timeout 10 squeue -h -o %A 2>/dev/null)
    if [ -n "$jobs" ]; then
        # shellcheck disable=SC2086
        SLURM_CONF="$S/slurm/slurm.conf" timeout 10 scancel --quiet $jobs 2>/dev/null
        for _ in $(seq 100); do
            steps=0
            for p in $(marked); do [ "$(cat "/proc/$p/comm" 2>/dev/null)" = slurmstepd ] && steps=1; done
            [ $steps = 0 ] && break
            sleep 0.1
        done
    fi
fi

if [ -x "$HERE/sshd.sh" ] && { [ -f "$S/run/sshd.called" ] || [ -f "$S/ssh.env" ]; }; then
    "$HERE/sshd.sh" down "$S" || echo "down.sh: sshd.sh down $S failed" >&2
fi

stop_pids slurmrestd "$(pidof_file slurmrestd-local)" "$(pidof_file slurmrestd-jwt)"
stop_pids prometheus "$(pidof_file prometheus)"
stop_pids node_exporter "$(pidof_file node-exporter)"
slurmd_pids=()
for f in "$S"/run/slurmd-*.pid; do [ -f "$f" ] && slurmd_pids+=("$(cat "$f")"); done
# A reboot in flight (slurm/reboot-node.sh worker) may start a new slurmd: stop it first.
workers=()
for p in $(pgrep -f -- "$S/slurm/reboot-node.sh --worker" 2>/dev/null); do workers+=("$p"); done
stop_pids reboot-worker "${workers[@]}"
stop_pids slurmd "${slurmd_pids[@]}"
stop_pids slurmctld "$(pidof_file slurmctld)"

# Leftovers (a slurmstepd that outlived its slurmd, its job): they carry the marker.
left=()
for p in $(marked); do
    [ "$(cat "/proc/$p/comm" 2>/dev/null)" = munged ] && continue   # stopped last, below
    left+=("$p")
done
if [ ${#left[@]} -gt 0 ]; then
    echo "down.sh: ending ${#left[@]} leftover job process(es): ${left[*]}" >&2
    kill -TERM "${left[@]}" 2>/dev/null
    for _ in $(seq 50); do
        alive=0
        for p in "${left[@]}"; do [ -d "/proc/$p" ] && [ "$(awk '/^State:/ {print $2}' "/proc/$p/status" 2>/dev/null)" != Z ] && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    for p in "${left[@]}"; do [ -d "/proc/$p" ] && kill -KILL "$p" 2>/dev/null; done
fi

stop_pids munged "$(pidof_file munged)"

echo "down.sh: stack in $S stopped" >&2
exit 0
