#!/usr/bin/env bash
# Start the fleetmcp local test stack: munge, slurmctld, one slurmd per fake
# node, slurmrestd twice (unix socket + local auth; TCP + JWT), node_exporter
# serving the fake DCGM metrics, Prometheus, and sshd (tests/stack/sshd.sh, if
# present). Everything listens on 127.0.0.0/8 on ports chosen free at start;
# all state lives under one directory.
#
#   tests/stack/up.sh [STACK_DIR]
#
# Prints `export FM_STACK=...` and writes $STACK_DIR/stack.env. Stop it with
# tests/stack/down.sh [STACK_DIR]. See tests/stack/README.md.
# Env knobs: FM_STACK_NO_RECORD=1 (do not write build/stack.current),
# FM_STACK_REST_USER (default fleetmcp-test), FM_STACK_NO_SSH=1 (skip sshd.sh).
set -euo pipefail

T0=$(date +%s.%N)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CURRENT="$REPO/build/stack.current"
REST_USER=${FM_STACK_REST_USER:-fleetmcp-test}
CLUSTER=fmtest
PY=/usr/bin/python3

started=0
die() {
    echo "up.sh: $*" >&2
    if [ "$started" = 1 ]; then env -u FM_STACK_DAEMON "$HERE/down.sh" "$S" >&2 || true; fi
    exit 1
}
log() { printf 'up.sh: %s\n' "$*" >&2; }
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
PHASES=""
phase() { PHASES+="${PHASES:+, }$1 $(elapsed)s"; }   # for the closing log line

[ "$(id -u)" = 0 ] || die "run as root (slurmd/slurmctld/munged need it; daemons that refuse root are run as $REST_USER)"
for b in munged slurmctld slurmd slurmrestd prometheus prometheus-node-exporter scontrol sinfo openssl curl setsid; do
    command -v "$b" >/dev/null || die "missing $b: run make deps (tools/deps.sh)"
done

# A stack whose recorded daemons still run means `up` twice: refuse.
wait_for() {   # wait_for WHAT TRIES CMD...: 0.1 s apart, and at most TRIES/10 + 5 seconds
    local what=$1 tries=$2 t0=$SECONDS; shift 2
    for _ in $(seq "$tries"); do
        "$@" >/dev/null 2>&1 && return 0
        [ $((SECONDS - t0)) -gt $((tries / 10 + 5)) ] && break
        sleep 0.1
    done
    die "$what did not come up in time (logs in $S/log)"
}
stack_running() {
    local d=$1 f pid
    [ -d "$d/run" ] || return 1
    for f in "$d"/run/*.pid; do
        [ -f "$f" ] || continue
        pid=$(cat "$f" 2>/dev/null) || continue
        [ -n "$pid" ] && [ -d "/proc/$pid" ] && grep -qaF -- "$d" "/proc/$pid/cmdline" 2>/dev/null && return 0
    done
    return 1
}

if [ $# -ge 1 ]; then
    S=$1
    mkdir -p "$S"
    S=$(cd "$S" && pwd)
    stack_running "$S" && die "a stack is already running in $S: run tests/stack/down.sh $S first"
    if [ -n "$(ls -A "$S" 2>/dev/null)" ]; then
        die "$S is not empty: give a new or empty directory (down.sh leaves its files for inspection)"
    fi
else
    if [ -z "${FM_STACK_NO_RECORD:-}" ] && [ -f "$CURRENT" ]; then
        prev=$(cat "$CURRENT")
        if [ -n "$prev" ] && stack_running "$prev"; then
            die "a stack is already running in $prev: run tests/stack/down.sh first"
        fi
    fi
    S=$(mktemp -d /tmp/fm-stack.XXXXXX)
fi
chmod 755 "$S"   # slurmrestd runs as $REST_USER and reads slurm.conf here

# On any failure: stop what was started, show where to look.
on_err() {
    local rc=$?
    log "FAILED after $(elapsed)s (rc=$rc); logs in $S/log"
    if [ "$started" = 1 ]; then env -u FM_STACK_DAEMON "$HERE/down.sh" "$S" >&2 || true; fi
    exit "$rc"
}
trap on_err ERR

mkdir -p "$S"/{munge,slurm/state,slurm/spool,rest,prom/data,textfile,nodes,run,log,dev}

# GPUs as Slurm GRES: gres/gpu with no File= registers 0 GPUs on 22.05, so each
# node gets File=$S/dev/nvidia[0-7], character devices 1:3 (clones of /dev/null).
# Without mknod rights, fall back to the `gpus=8` feature alone (always set).
GRES_NODE="Gres=gpu:8"
for g in 0 1 2 3 4 5 6 7; do
    if ! mknod -m 666 "$S/dev/nvidia$g" c 1 3 2>/dev/null; then GRES_NODE=""; break; fi
done

# --- the unprivileged user for slurmrestd -----------------------------------
if ! id -u "$REST_USER" >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /bin/sh "$REST_USER"
    log "created user $REST_USER"
fi

# --- ports: all picked at once so they are distinct --------------------------
read -r CTLD_PORT SLURMD_PORT REST_PORT PROM_PORT NE_PORT NODE_PORTS < <(
    "$PY" - <<'EOF'
import socket
socks = []
for _ in range(5 + 16):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
ports = [s.getsockname()[1] for s in socks]
print(*ports[:5], ",".join(map(str, ports[5:])))
EOF
)
IFS=, read -r -a NODE_PORT <<<"$NODE_PORTS"

# --- nodes: name rack sku extra-features --------------------------------------
NODE_SPEC=(
    "gpu-a01 r01 h100"
    "gpu-a02 r01 h100"
    "gpu-a03 r01 h100"
    "gpu-b01 r02 a100"
    "gpu-b02 r02 a100"
    "gpu-b03 r02 a100"
    "gpu-a04 r01 h100 canary"
)
DEBUG_NODES="gpu-a03,gpu-b03"
NODES=()
NODE_LINES=""
i=0
for spec in "${NODE_SPEC[@]}"; do
    read -r name rack sku extra <<<"$spec"
    feats="rack=$rack,sku=$sku,gpus=8${extra:+,$extra}"
    NODE_LINES+="NodeName=$name NodeHostname=localhost NodeAddr=127.0.0.1 Port=${NODE_PORT[$i]} CPUs=64 Boards=1 SocketsPerBoard=2 CoresPerSocket=32 ThreadsPerCore=1 RealMemory=512000 $GRES_NODE Features=$feats State=UNKNOWN"$'\n'
    NODES+=("$name")
    mkdir -p "$S/nodes/$name"
    echo "127.0.0.$((11 + i))" >"$S/nodes/$name/addr"
    "$PY" "$HERE/gpu_state.py" --stack "$S" init "$name" --sku "$sku"
    i=$((i + 1))
done
ALL_NODES=$(IFS=,; echo "${NODES[*]}")

export FM_STACK_DAEMON="$S"   # marks every process the stack starts (down.sh sweeps job leftovers by it)
started=1
# --- node_exporter (textfile only) + Prometheus, first: Prometheus takes ~5 s
# (its discovery-to-scrape update interval) before the first scrape.
setsid prometheus-node-exporter --web.listen-address="127.0.0.1:$NE_PORT" \
    --collector.disable-defaults --collector.textfile \
    --collector.textfile.directory="$S/textfile" \
    >"$S/log/node-exporter.log" 2>&1 </dev/null &
echo $! >"$S/run/node-exporter.pid"
sed -e "s|@NE_PORT@|$NE_PORT|g" "$HERE/prometheus/prometheus.yml.in" >"$S/prom/prometheus.yml"
setsid prometheus --config.file="$S/prom/prometheus.yml" --storage.tsdb.path="$S/prom/data" \
    --web.listen-address="127.0.0.1:$PROM_PORT" --storage.tsdb.retention.time=1d \
    >"$S/log/prometheus.log" 2>&1 </dev/null &
echo $! >"$S/run/prometheus.pid"
# --- munge: own key, own socket ---------------------------------------------
dd if=/dev/urandom of="$S/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$S/munge/munge.key"
chmod 711 "$S/munge"   # clients (also $REST_USER) must reach the socket
munged --socket="$S/munge/munge.socket.2" --key-file="$S/munge/munge.key" \
    --pid-file="$S/run/munged.pid" --log-file="$S/log/munged.log" \
    --seed-file="$S/munge/munged.seed" --num-threads=4 --force
wait_for "munged (its socket)" 50 test -S "$S/munge/munge.socket.2"

# --- slurm config -------------------------------------------------------------
dd if=/dev/urandom bs=32 count=1 status=none | od -An -tx1 | tr -d ' \n' >"$S/slurm/jwt_hs256.key"
chmod 600 "$S/slurm/jwt_hs256.key"
subst() {
    sed -e "s|@STACK@|$S|g" -e "s|@TESTS@|$HERE|g" -e "s|@CLUSTER@|$CLUSTER|g" \
        -e "s|@CTLD_PORT@|$CTLD_PORT|g" -e "s|@SLURMD_PORT@|$SLURMD_PORT|g" \
        -e "s|@ALL_NODES@|$ALL_NODES|g" -e "s|@DEBUG_NODES@|$DEBUG_NODES|g" "$1"
}
subst "$HERE/slurm/slurm.conf.in" | awk -v nodes="$NODE_LINES" '$0 == "@NODES@" { printf "%s", nodes; next } { print }' >"$S/slurm/slurm.conf"
if [ -n "$GRES_NODE" ]; then
    subst "$HERE/slurm/gres.conf.in" >"$S/slurm/gres.conf"
else
    echo "# no GRES: mknod not permitted; GPUs are only the gpus=8 feature" >"$S/slurm/gres.conf"
fi
subst "$HERE/slurm/reboot-node.sh.in" >"$S/slurm/reboot-node.sh"
chmod 755 "$S/slurm/reboot-node.sh"
chmod 644 "$S/slurm/slurm.conf" "$S/slurm/gres.conf"
export SLURM_CONF="$S/slurm/slurm.conf"

# --- slurmctld, then one slurmd per node --------------------------------------
slurmctld -f "$SLURM_CONF" -i
ctld_up() { timeout 5 scontrol ping 2>/dev/null | grep -q 'is UP'; }
wait_for "slurmctld" 100 ctld_up
phase slurmctld
for n in "${NODES[@]}"; do
    mkdir -p "$S/slurm/spool/$n"
    slurmd -f "$SLURM_CONF" -N "$n"
done

# --- slurmrestd x2 (refuses root: -u drops to $REST_USER after binding) -------
chown "$REST_USER" "$S/rest"
chmod 755 "$S/rest"
# unix socket, local auth: Slurm sees the uid slurmrestd runs as ($REST_USER).
setsid slurmrestd -f "$SLURM_CONF" -a rest_auth/local -s openapi/v0.0.38 -u "$REST_USER" \
    "unix:$S/rest/slurmrestd.sock" >"$S/log/slurmrestd-local.log" 2>&1 </dev/null &
echo $! >"$S/run/slurmrestd-local.pid"
# TCP, JWT auth (X-SLURM-USER-NAME + X-SLURM-USER-TOKEN headers). SLURM_JWT=daemon
# makes auth/jwt its primary auth plugin; without it every token is rejected
# ("Rejecting thread config token").
SLURM_JWT=daemon setsid slurmrestd -f "$SLURM_CONF" -a rest_auth/jwt -s openapi/v0.0.38 -u "$REST_USER" \
    "127.0.0.1:$REST_PORT" >"$S/log/slurmrestd-jwt.log" 2>&1 </dev/null &
echo $! >"$S/run/slurmrestd-jwt.pid"
timeout 10 scontrol token username="$REST_USER" lifespan=172800 | sed -n 's/^SLURM_JWT=//p' >"$S/rest/jwt"
chmod 600 "$S/rest/jwt"
[ -s "$S/rest/jwt" ] || die "scontrol token gave no token (see $S/log/slurmctld.log)"

unset FM_STACK_DAEMON
phase spawned

# --- sshd (the SSH engineer's part) ------------------------------------------
if [ -z "${FM_STACK_NO_SSH:-}" ] && [ -x "$HERE/sshd.sh" ]; then
    touch "$S/run/sshd.called"   # down.sh then calls `sshd.sh down` even if up failed halfway
    FM_STACK="$S" "$HERE/sshd.sh" up "$S" >&2
fi

# --- wait until every piece answers (bounded) ---------------------------------
nodes_idle() {
    [ "$(timeout 5 sinfo -h -N -p gpu -t idle -o '%N' | sort -u | wc -l)" -eq "${#NODES[@]}" ]
}
[ -z "${FM_STACK_NO_SSH:-}" ] && [ -x "$HERE/sshd.sh" ] && phase sshd
wait_for "all slurmd idle" 200 nodes_idle
phase nodes-idle
wait_for "slurmrestd (unix socket)" 100 curl -sf --max-time 2 --unix-socket "$S/rest/slurmrestd.sock" \
    http://localhost/slurm/v0.0.38/ping
JWT=$(cat "$S/rest/jwt")
wait_for "slurmrestd (JWT)" 100 curl -sf --max-time 2 -H "X-SLURM-USER-NAME: $REST_USER" \
    -H "X-SLURM-USER-TOKEN: $JWT" "http://127.0.0.1:$REST_PORT/slurm/v0.0.38/ping"
prom_has_gpus() {
    curl -sf --max-time 2 "http://127.0.0.1:$PROM_PORT/api/v1/query" \
        --data-urlencode 'query=count(DCGM_FI_DEV_GPU_TEMP)' | grep -q '"value":\[[0-9.]*,"[1-9]'
}
wait_for "Prometheus scraping DCGM metrics" 150 prom_has_gpus
phase prometheus

# --- fleetmcp configs and stack.env --------------------------------------------
hosts_yaml=""
for n in "${NODES[@]}"; do hosts_yaml+="    $n: $(cat "$S/nodes/$n/addr")"$'\n'; done
ssh_user="" ssh_port="" ssh_key="" ssh_kh=""
if [ -f "$S/ssh.env" ]; then
    # shellcheck disable=SC1091
    ssh_user=$(. "$S/ssh.env"; echo "${FM_SSH_USER:-}")
    ssh_port=$(. "$S/ssh.env"; echo "${FM_SSH_PORT:-}")
    ssh_key=$(. "$S/ssh.env"; echo "${FM_SSH_KEY:-}")
    ssh_kh=$(. "$S/ssh.env"; echo "${FM_SSH_KNOWN_HOSTS:-}")
fi
write_config() {   # write_config FILE BACKEND REST_BLOCK
    cat >"$1" <<EOF
# fleetmcp config for the local test stack in $S (generated by tests/stack/up.sh)
mode: fleet
store:
  path: $S/fleetmcp${4:-}.db
slurm:
  backend: $2
  timeout_ms: 5000
  cluster: $CLUSTER
  rest:
$3
    api_version: auto
  cli:
    sinfo: sinfo
    squeue: squeue
    scontrol: scontrol
    slurm_conf: $SLURM_CONF
  domains:
    rack: "^rack=(.+)\$"
    sku: "^sku=(.+)\$"
metrics:
  backend: prometheus
  url: http://127.0.0.1:$PROM_PORT
  timeout_ms: 5000
EOF
    if [ -n "$ssh_port" ]; then
        cat >>"$1" <<EOF
ssh:
  user: $ssh_user
  port: $ssh_port
  key_file: $ssh_key
  known_hosts: $ssh_kh
  hosts:
$hosts_yaml  connect_timeout_ms: 3000
  command_timeout_ms: 30000
  max_output_bytes: 1048576
EOF
    fi
}
REST_SOCKET_BLOCK="    socket: $S/rest/slurmrestd.sock
    user: $REST_USER"
REST_URL_BLOCK="    url: http://127.0.0.1:$REST_PORT
    token:
      file: $S/rest/jwt
    user: $REST_USER"
write_config "$S/fleetmcp.yaml" rest "$REST_SOCKET_BLOCK"
write_config "$S/fleetmcp-cli.yaml" cli "$REST_SOCKET_BLOCK" -cli
write_config "$S/fleetmcp-jwt.yaml" rest "$REST_URL_BLOCK" -jwt

{
    echo "# fleetmcp test stack (tests/stack/up.sh); source me"
    echo "export FM_STACK=$S"
    echo "export SLURM_CONF=$SLURM_CONF"
    echo "export FM_SLURM_SOCKET=$S/rest/slurmrestd.sock"
    echo "export FM_SLURM_URL=http://127.0.0.1:$REST_PORT"
    echo "export FM_SLURM_JWT_FILE=$S/rest/jwt"
    echo "export FM_SLURM_USER=$REST_USER"
    echo "export FM_PROM_URL=http://127.0.0.1:$PROM_PORT"
    echo "export FM_NODE_EXPORTER_URL=http://127.0.0.1:$NE_PORT"
    echo "export FM_NODES=\"${NODES[*]}\""
    echo "export FM_GPU_STATE=$HERE/gpu_state.py"
    echo "export FM_CONFIG=$S/fleetmcp.yaml"
    echo "export FM_CONFIG_CLI=$S/fleetmcp-cli.yaml"
    echo "export FM_CONFIG_JWT=$S/fleetmcp-jwt.yaml"
    if [ -f "$S/ssh.env" ]; then cat "$S/ssh.env"; fi
} >"$S/stack.env.tmp"
mv "$S/stack.env.tmp" "$S/stack.env"

if [ -z "${FM_STACK_NO_RECORD:-}" ]; then
    mkdir -p "$REPO/build"
    echo "$S" >"$CURRENT.tmp" && mv "$CURRENT.tmp" "$CURRENT"
fi
trap - ERR
log "stack up in $(elapsed)s (${PHASES}): ${#NODES[@]} nodes; source $S/stack.env"
echo "export FM_STACK=$S"
