#!/usr/bin/env bash
# A large Slurm controller for benchmarks: its own munged, a slurmctld with
# FM_BENCH_RACKS x FM_BENCH_PER_RACK nodes (default 50 x 40 = 2,000; 256 x 64
# = 16,384 for the largest fleets) across 4 SKUs (no slurmd: the nodes show as
# UNKNOWN*/DOWN*/NOT_RESPONDING, which is what a big-fleet listing needs), and a
# slurmrestd on a unix socket (local auth) so the REST backend can be measured
# too. Independent of up.sh's stack: both can run at once.
#
#   tests/stack/bench-fleet.sh up [DIR]    prints `export FM_BENCH_STACK=DIR`,
#                                          writes DIR/stack.env (SLURM_CONF, ...)
#   tests/stack/bench-fleet.sh down [DIR]  DIR defaults to build/bench.current
#
# Nodes: gpu-r001-n01 .. (FM_BENCH_PER_RACK per rack), features rack=rNNN,
# sku=SKU, gpus=8 and Gres=gpu:8; the first 40% of the racks h100, the next
# 30% a100, 20% h200, the last 10% b200 (with 50 racks: r001-r020 h100,
# r021-r035 a100, r036-r045 h200, r046-r050 b200). Partitions: gpu (all,
# default), debug (r001).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CURRENT="$REPO/build/bench.current"
REST_USER=${FM_STACK_REST_USER:-fleetmcp-test}
PY=/usr/bin/python3
RACKS=${FM_BENCH_RACKS:-50} PER_RACK=${FM_BENCH_PER_RACK:-40}
case "$RACKS$PER_RACK" in *[!0-9]*) echo "bench-fleet.sh: FM_BENCH_RACKS and FM_BENCH_PER_RACK are numbers" >&2; exit 1 ;; esac
[ "$RACKS" -ge 1 ] && [ "$RACKS" -le 999 ] && [ "$PER_RACK" -ge 1 ] && [ "$PER_RACK" -le 99 ] ||
    { echo "bench-fleet.sh: 1..999 racks of 1..99 nodes" >&2; exit 1; }

die() { echo "bench-fleet.sh: $*" >&2; exit 1; }

cmd=${1:-}
case "$cmd" in
down)
    if [ $# -ge 2 ]; then S=$2; elif [ -f "$CURRENT" ]; then S=$(cat "$CURRENT"); else die "no DIR and no $CURRENT"; fi
    exec "$HERE/down.sh" "$S"
    ;;
up) ;;
*) die "usage: $0 up [DIR] | down [DIR]" ;;
esac

[ "$(id -u)" = 0 ] || die "run as root"
T0=$(date +%s.%N)
if [ $# -ge 2 ]; then
    S=$2
    mkdir -p "$S"
    S=$(cd "$S" && pwd)
    [ -z "$(ls -A "$S")" ] || die "$S is not empty (running? then: $0 down $S)"
else
    if [ -f "$CURRENT" ]; then
        prev=$(cat "$CURRENT")
        pid=$(cat "$prev/run/slurmctld.pid" 2>/dev/null || true)
        if [ -n "$pid" ] && grep -qaF -- "$prev" "/proc/$pid/cmdline" 2>/dev/null; then
            die "a bench controller is already running in $prev: run $0 down first"
        fi
    fi
    S=$(mktemp -d /tmp/fm-bench.XXXXXX)
fi
chmod 755 "$S"
mkdir -p "$S"/{munge,slurm/state,rest,run,log}
started=0
fail() {
    echo "bench-fleet.sh: $* (logs in $S/log)" >&2
    [ "$started" = 1 ] && env -u FM_STACK_DAEMON "$HERE/down.sh" "$S" >&2
    exit 1
}
trap 'fail "failed at line $LINENO"' ERR

id -u "$REST_USER" >/dev/null 2>&1 ||
    useradd --system --no-create-home --home-dir /nonexistent --shell /bin/sh "$REST_USER"

read -r CTLD_PORT SLURMD_PORT < <("$PY" -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')

sku_of() {   # rack number -> sku
    if [ $(($1 * 10)) -le $((RACKS * 4)) ]; then echo h100
    elif [ $(($1 * 10)) -le $((RACKS * 7)) ]; then echo a100
    elif [ $(($1 * 10)) -le $((RACKS * 9)) ]; then echo h200; else echo b200; fi
}
{
    cat <<EOF
# fleetmcp $((RACKS * PER_RACK))-node benchmark controller (tests/stack/bench-fleet.sh); no slurmd.
ClusterName=fmbench
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
AuthType=auth/munge
AuthInfo=socket=$S/munge/munge.socket.2
CredType=cred/munge
StateSaveLocation=$S/slurm/state
SlurmdSpoolDir=$S/slurm/spool/%n
SlurmctldPidFile=$S/run/slurmctld.pid
SlurmctldLogFile=$S/log/slurmctld.log
SlurmctldDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
GresTypes=gpu
ReturnToService=2
# Long timeout: the controller pings thousands of absent slurmd rarely.
SlurmdTimeout=300
MessageTimeout=10
EOF
    for r in $(seq 1 $RACKS); do
        rk=$(printf 'r%03d' "$r")
        printf 'NodeName=gpu-%s-n[01-%02d] NodeHostname=localhost NodeAddr=127.0.0.1 CPUs=64 Boards=1 SocketsPerBoard=2 CoresPerSocket=32 ThreadsPerCore=1 RealMemory=512000 Gres=gpu:8 Features=rack=%s,sku=%s,gpus=8 State=UNKNOWN\n' \
            "$rk" "$PER_RACK" "$rk" "$(sku_of "$r")"
    done
    echo "PartitionName=gpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP"
    printf 'PartitionName=debug Nodes=gpu-r001-n[01-%02d] Default=NO MaxTime=INFINITE State=UP\n' "$PER_RACK"
} >"$S/slurm/slurm.conf"
chmod 644 "$S/slurm/slurm.conf"
export SLURM_CONF="$S/slurm/slurm.conf"

dd if=/dev/urandom of="$S/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$S/munge/munge.key"
chmod 711 "$S/munge"
export FM_STACK_DAEMON="$S"
started=1
munged --socket="$S/munge/munge.socket.2" --key-file="$S/munge/munge.key" \
    --pid-file="$S/run/munged.pid" --log-file="$S/log/munged.log" \
    --seed-file="$S/munge/munged.seed" --force
for _ in $(seq 50); do [ -S "$S/munge/munge.socket.2" ] && break; sleep 0.1; done
[ -S "$S/munge/munge.socket.2" ] || fail "munged did not create its socket"
slurmctld -f "$SLURM_CONF" -i
up=0
t0=$SECONDS
for _ in $(seq 200); do
    timeout 5 scontrol ping 2>/dev/null | grep -q 'is UP' && { up=1; break; }
    [ $((SECONDS - t0)) -gt 25 ] && break
    sleep 0.1
done
[ $up = 1 ] || fail "slurmctld did not come up"
chown "$REST_USER" "$S/rest"
setsid slurmrestd -f "$SLURM_CONF" -a rest_auth/local -s openapi/v0.0.38 -u "$REST_USER" \
    "unix:$S/rest/slurmrestd.sock" >"$S/log/slurmrestd-local.log" 2>&1 </dev/null &
echo $! >"$S/run/slurmrestd-local.pid"
unset FM_STACK_DAEMON
ok=0 t0=$SECONDS
for _ in $(seq 100); do
    [ $((SECONDS - t0)) -gt 15 ] && break
    curl -sf --max-time 5 --unix-socket "$S/rest/slurmrestd.sock" http://localhost/slurm/v0.0.38/ping >/dev/null 2>&1 && { ok=1; break; }
    sleep 0.1
done
[ $ok = 1 ] || fail "slurmrestd did not come up"
n=$(sinfo -h -N -p gpu -o %N | sort -u | wc -l)
[ "$n" = $((RACKS * PER_RACK)) ] || fail "sinfo lists $n nodes, not $((RACKS * PER_RACK))"

for b in rest cli; do
    cat >"$S/fleetmcp-$b.yaml" <<EOF
# fleetmcp config for the $((RACKS * PER_RACK))-node benchmark controller (tests/stack/bench-fleet.sh)
mode: fleet
store:
  path: $S/fleetmcp-$b.db
slurm:
  backend: $b
  timeout_ms: 120000
  cluster: fmbench
  rest:
    socket: $S/rest/slurmrestd.sock
    user: $REST_USER
    api_version: auto
  cli:
    sinfo: sinfo
    squeue: squeue
    scontrol: scontrol
    slurm_conf: $SLURM_CONF
  domains:
    rack: "^rack=(.+)\$"
    sku: "^sku=(.+)\$"
EOF
done
cat >"$S/stack.env" <<EOF
# fleetmcp $((RACKS * PER_RACK))-node benchmark controller (tests/stack/bench-fleet.sh); source me
export FM_BENCH_STACK=$S
export SLURM_CONF=$SLURM_CONF
export FM_SLURM_SOCKET=$S/rest/slurmrestd.sock
export FM_SLURM_USER=$REST_USER
export FM_BENCH_NODES=$((RACKS * PER_RACK))
export FM_CONFIG=$S/fleetmcp-rest.yaml
export FM_CONFIG_CLI=$S/fleetmcp-cli.yaml
EOF
if [ $# -lt 2 ]; then mkdir -p "$REPO/build"; echo "$S" >"$CURRENT"; fi
trap - ERR
echo "bench-fleet.sh: $n nodes up in $(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')s; source $S/stack.env" >&2
echo "export FM_BENCH_STACK=$S"
