#!/usr/bin/env bash
# The SSH part of the fleetmcp test stack: one OpenSSH sshd, run as root with
# its own config, host key and free port, listening on one 127.0.0.x address
# per fake node, so each node answers on its own address like a real fleet.
#
#   tests/stack/sshd.sh up STACK_DIR     start; writes STACK_DIR/ssh.env
#   tests/stack/sshd.sh down STACK_DIR   stop the sshd this script started
#
# Nodes: $FM_NODES (space separated) or the directories in STACK_DIR/nodes/.
# A node's address is STACK_DIR/nodes/<node>/addr when present (up.sh writes
# it), otherwise 127.0.0.(11+i) in node order, written there.
#
# The remote account is a dedicated unprivileged user ($FM_SSH_TEST_USER,
# default fleetmcp-ssh, created if missing: shell /bin/sh, home /, password
# field '*' so that sshd without PAM treats it as not locked while no
# password can ever match).  Its commands see PATH=STACK_DIR/ssh/bin:... via
# sshd's SetEnv, so the fake nvidia-smi, dcgmi, ibstat and journalctl
# (tests/stack/fakegpu/, copied there with gpu_state.py so the account
# needs no access to the source tree) come first; FM_STACK tells them where
# the node states are, and SSH_CONNECTION which node they are.
#
# Files (all under STACK_DIR): ssh/sshd_config, ssh/host_ed25519 (host key),
# ssh/client_ed25519 (the test client key), ssh/authorized_keys,
# ssh/known_hosts ("[127.0.0.11]:PORT ssh-ed25519 ..." per node address: the
# form libssh2 and OpenSSH both read), run/sshd.pid, log/sshd.log.
#
# StrictModes is off: the stack lives under /tmp (mode 1777), which fails
# sshd's path check for AuthorizedKeysFile whatever we do below it.  The
# files it guards are root-owned and not group/world-writable all the same.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SSHD=/usr/sbin/sshd   # sshd must be started by absolute path (it re-execs itself)
PY=/usr/bin/python3
TEST_USER=${FM_SSH_TEST_USER:-fleetmcp-ssh}

die() { echo "sshd.sh: $*" >&2; exit 1; }
log() { printf 'sshd.sh: %s\n' "$*" >&2; }

[ $# -eq 2 ] || die "usage: sshd.sh up|down STACK_DIR"
ACTION=$1
[ -d "$2" ] || die "no such stack dir: $2"
S=$(cd "$2" && pwd)
PIDFILE="$S/run/sshd.pid"

sshd_running() {
    local pid
    [ -f "$PIDFILE" ] || return 1
    pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
    [ -n "$pid" ] && [ -d "/proc/$pid" ] && grep -qaF -- "$S/ssh/sshd_config" "/proc/$pid/cmdline" 2>/dev/null
}

down() {
    if ! sshd_running; then
        log "no sshd of this stack is running"
        return 0
    fi
    local pid
    pid=$(cat "$PIDFILE")
    kill "$pid"
    for _ in $(seq 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
    if [ -d "/proc/$pid" ]; then kill -9 "$pid" 2>/dev/null || true; fi
    log "stopped sshd $pid"
}

up() {
    [ "$(id -u)" = 0 ] || die "run as root (sshd must switch to the test user)"
    [ -x "$SSHD" ] || die "missing $SSHD: install openssh-server (make deps)"
    command -v ssh-keygen >/dev/null || die "missing ssh-keygen: install openssh-client"
    sshd_running && die "sshd already runs for $S: run sshd.sh down $S first"

    # --- nodes and their addresses ------------------------------------------
    local nodes=() n i=0 addrs=() a
    if [ -n "${FM_NODES:-}" ]; then
        read -r -a nodes <<<"$FM_NODES"
    else
        for n in "$S"/nodes/*/; do [ -d "$n" ] && nodes+=("$(basename "$n")"); done
    fi
    [ ${#nodes[@]} -gt 0 ] || die "no nodes: set FM_NODES or create $S/nodes/<node>/ (gpu_state.py init)"
    for n in "${nodes[@]}"; do
        [[ "$n" =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$ ]] || die "bad node name '$n'"
        mkdir -p "$S/nodes/$n"
        if [ -s "$S/nodes/$n/addr" ]; then
            a=$(tr -d ' \n' <"$S/nodes/$n/addr")
        else
            a="127.0.0.$((11 + i))"
            echo "$a" >"$S/nodes/$n/addr"
        fi
        [[ "$a" =~ ^127\.[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "node $n: address $a is not on 127.0.0.0/8"
        addrs+=("$a")
        i=$((i + 1))
    done

    # --- the test user -------------------------------------------------------
    if ! id -u "$TEST_USER" >/dev/null 2>&1; then
        useradd --system --no-create-home --home-dir / --shell /bin/sh "$TEST_USER"
        log "created user $TEST_USER"
    fi
    usermod -p '*' "$TEST_USER"   # not locked ('!'), yet no password matches

    # --- files ---------------------------------------------------------------
    mkdir -p "$S/ssh/bin" "$S/run" "$S/log"
    chmod 755 "$S" "$S/ssh" "$S/ssh/bin"
    cp "$HERE/fakegpu/_fake.py" "$HERE/fakegpu/nvidia-smi" "$HERE/fakegpu/dcgmi" \
        "$HERE/fakegpu/ibstat" "$HERE/fakegpu/journalctl" "$HERE/gpu_state.py" "$S/ssh/bin/"
    chmod 755 "$S"/ssh/bin/*
    rm -f "$S/ssh/host_ed25519" "$S/ssh/host_ed25519.pub" "$S/ssh/client_ed25519" "$S/ssh/client_ed25519.pub"
    ssh-keygen -q -t ed25519 -N '' -C "fleetmcp-stack-host" -f "$S/ssh/host_ed25519"
    ssh-keygen -q -t ed25519 -N '' -C "fleetmcp-stack-client" -f "$S/ssh/client_ed25519"
    install -m 644 "$S/ssh/client_ed25519.pub" "$S/ssh/authorized_keys"

    # The fake nvidia-smi --gpu-reset rewrites state.json (temp + rename under
    # the node's .lock) and the node's .prom file, as the test user.
    mkdir -p "$S/textfile"
    for n in "${nodes[@]}"; do
        touch "$S/nodes/$n/.lock"
        chown "$TEST_USER" "$S/nodes/$n" "$S/nodes/$n/.lock"
        [ -f "$S/nodes/$n/state.json" ] && chown "$TEST_USER" "$S/nodes/$n/state.json"
    done
    chown "$TEST_USER" "$S/textfile"

    # --- a port free on every address ------------------------------------------
    local port
    port=$("$PY" - "${addrs[@]}" <<'EOF'
import socket, sys
for _ in range(50):
    probe = socket.socket()
    probe.bind((sys.argv[1], 0))
    port = probe.getsockname()[1]
    probe.close()
    try:
        held = []
        for a in sys.argv[1:]:
            s = socket.socket()
            s.bind((a, port))
            held.append(s)
        print(port)
        break
    except OSError:
        continue
    finally:
        for s in held:
            s.close()
else:
    sys.exit("no port free on all node addresses")
EOF
)

    # --- sshd_config ------------------------------------------------------------
    {
        echo "# fleetmcp test stack sshd (tests/stack/sshd.sh); not for production use"
        echo "Port $port"
        for a in "${addrs[@]}"; do echo "ListenAddress $a"; done
        echo "HostKey $S/ssh/host_ed25519"
        echo "PidFile $PIDFILE"
        echo "AuthorizedKeysFile $S/ssh/authorized_keys"
        echo "AllowUsers $TEST_USER"
        echo "AuthenticationMethods publickey"
        echo "PubkeyAuthentication yes"
        echo "PasswordAuthentication no"
        echo "KbdInteractiveAuthentication no"
        echo "HostbasedAuthentication no"
        echo "PermitRootLogin no"
        echo "UsePAM no"
        echo "StrictModes no"
        echo "PermitUserEnvironment no"
        echo "SetEnv PATH=$S/ssh/bin:/usr/bin:/bin:/usr/sbin:/sbin FM_STACK=$S"
        echo "AllowTcpForwarding no"
        echo "AllowAgentForwarding no"
        echo "AllowStreamLocalForwarding no"
        echo "X11Forwarding no"
        echo "PermitTTY no"
        echo "PermitTunnel no"
        echo "PrintMotd no"
        echo "PrintLastLog no"
        echo "UseDNS no"
        echo "LoginGraceTime 20"
        echo "MaxStartups 64:30:128"
        echo "MaxSessions 16"
        echo "LogLevel VERBOSE"
    } >"$S/ssh/sshd_config"
    chmod 644 "$S/ssh/sshd_config"

    mkdir -p /run/sshd && chmod 755 /run/sshd   # privilege separation dir
    "$SSHD" -t -f "$S/ssh/sshd_config" || die "sshd rejects $S/ssh/sshd_config"
    "$SSHD" -f "$S/ssh/sshd_config" -E "$S/log/sshd.log"

    # --- wait until every address answers (bounded: 5 s) ---------------------------
    "$PY" - "$port" "${addrs[@]}" <<'EOF' || die "sshd did not come up (see $S/log/sshd.log)"
import socket, sys, time
port, addrs = int(sys.argv[1]), sys.argv[2:]
end = time.monotonic() + 5
for a in addrs:
    while True:
        try:
            with socket.create_connection((a, port), timeout=1) as s:
                s.settimeout(1)
                if s.recv(4).startswith(b"SSH-"):
                    break
        except OSError:
            pass
        if time.monotonic() > end:
            sys.exit(f"{a}:{port} does not answer")
        time.sleep(0.05)
EOF

    # --- known_hosts and ssh.env ------------------------------------------------------
    local keytype key
    read -r keytype key _ <"$S/ssh/host_ed25519.pub"
    : >"$S/ssh/known_hosts.tmp"
    for a in "${addrs[@]}"; do echo "[$a]:$port $keytype $key" >>"$S/ssh/known_hosts.tmp"; done
    chmod 644 "$S/ssh/known_hosts.tmp"
    mv "$S/ssh/known_hosts.tmp" "$S/ssh/known_hosts"
    {
        echo "export FM_SSH_PORT=$port"
        echo "export FM_SSH_KEY=$S/ssh/client_ed25519"
        echo "export FM_SSH_KNOWN_HOSTS=$S/ssh/known_hosts"
        echo "export FM_SSH_USER=$TEST_USER"
    } >"$S/ssh.env.tmp"
    mv "$S/ssh.env.tmp" "$S/ssh.env"
    log "sshd $(cat "$PIDFILE") on port $port: ${#nodes[@]} nodes (${addrs[*]}); see $S/ssh.env"
}

case "$ACTION" in
up) up ;;
down) down ;;
*) die "usage: sshd.sh up|down STACK_DIR" ;;
esac
