#!/usr/bin/env bash
# Self-test of the local test stack: up, every piece answers, fault injection
# shows in Prometheus, reset/reboot semantics, the Slurm reboot path, down,
# nothing left running. Every wait is bounded by count and time.
#
#   tests/stack/test_stack.sh        (root; ~40 s)
#
# Runs in its own temp dir and does not touch build/stack.current, so a dev
# stack started with up.sh can stay up meanwhile.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
S=$(mktemp -d /tmp/fm-stack-test.XXXXXX)
export FM_STACK_NO_RECORD=1
PASS=0 FAIL=0

ok() { PASS=$((PASS + 1)); printf 'ok   %s\n' "$*"; }
bad() { FAIL=$((FAIL + 1)); printf 'FAIL %s\n' "$*"; }
check() {   # check DESC CMD...
    local d=$1; shift
    if "$@"; then ok "$d"; else bad "$d"; fi
}
# wait_until TRIES DESC CMD...: retry every 0.1 s; TRIES bounds the time too.
wait_until() {
    local tries=$1 d=$2; shift 2
    local t0=$SECONDS
    for _ in $(seq "$tries"); do
        if "$@" >/dev/null 2>&1; then ok "$d"; return 0; fi
        [ $((SECONDS - t0)) -gt $((tries / 10 + 5)) ] && break
        sleep 0.1
    done
    bad "$d (gave up after $((SECONDS - t0)) s)"
    return 1
}
cleanup() { "$HERE/down.sh" "$S" >/dev/null 2>&1 || true; }
trap cleanup EXIT

# ---------------------------------------------------------------- up
t0=$(date +%s.%N)
if ! "$HERE/up.sh" "$S" >"$S.up.out" 2>&1; then
    cat "$S.up.out"
    bad "up.sh failed"
    exit 1
fi
up_s=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
check "up.sh started in ${up_s}s (< 30 s)" awk -v t="$up_s" 'BEGIN { exit !(t < 30) }'
check "up.sh prints export FM_STACK=$S" grep -qxF "export FM_STACK=$S" "$S.up.out"
rm -f "$S.up.out"
if "$HERE/up.sh" "$S" >"$S.up2" 2>&1; then
    bad "up.sh twice must fail"
else
    check "up.sh twice fails and says to run down.sh" grep -q 'down.sh' "$S.up2"
fi
rm -f "$S.up2"

# shellcheck disable=SC1091
. "$S/stack.env"
for v in FM_STACK SLURM_CONF FM_SLURM_SOCKET FM_SLURM_URL FM_SLURM_JWT_FILE FM_SLURM_USER \
    FM_PROM_URL FM_NODES FM_CONFIG FM_CONFIG_CLI FM_CONFIG_JWT; do
    check "stack.env sets $v" test -n "${!v:-}"
done
for f in "$FM_CONFIG" "$FM_CONFIG_CLI" "$FM_CONFIG_JWT"; do
    check "$(basename "$f") is a fleetmcp config valid against schemas/config/*.json" python3 - "$f" "$HERE/../../schemas/config" <<'EOF'
import json, os, sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
assert c["mode"] == "fleet" and c["slurm"]["backend"] in ("rest", "cli")
assert c["metrics"]["url"].startswith("http://127.0.0.1:")
try:
    import jsonschema
except ImportError:
    sys.exit(0)                      # basic checks only
d = sys.argv[2]
core = {}
for k, v in c.items():
    p = os.path.join(d, k + ".json")
    if os.path.exists(p) and k != "root":
        jsonschema.validate(v, json.load(open(p)))
    else:
        core[k] = v
if os.path.exists(os.path.join(d, "root.json")):
    jsonschema.validate(core, json.load(open(os.path.join(d, "root.json"))))
EOF
done
all_loopback() {   # every TCP listener of the stack's daemons is on 127.0.0.0/8
    local f pid addrs
    for f in "$FM_STACK"/run/*.pid; do
        pid=$(cat "$f" 2>/dev/null) || continue
        addrs=$(ss -Hltnp 2>/dev/null | grep -F "pid=$pid," | awk '{print $4}')
        for a in $addrs; do case $a in 127.*) ;; *) echo "pid $pid listens on $a" >&2; return 1 ;; esac; done
    done
}
check "every daemon listens on 127.0.0.0/8 only" all_loopback
read -r -a NODES <<<"$FM_NODES"
NN=${#NODES[@]}

# ---------------------------------------------------------------- Slurm CLI
json_len() { python3 -c 'import json,sys; print(len(json.load(sys.stdin)[sys.argv[1]]))' "$1"; }
check "sinfo --json lists $NN nodes" test "$(sinfo --json | json_len nodes)" = "$NN"
check "scontrol show node -o gives $NN lines" test "$(scontrol show node -o | grep -c '^NodeName=')" = "$NN"
check "gpu-a01 has features rack=r01,sku=h100" bash -c 'scontrol show node -o gpu-a01 | grep -q "AvailableFeatures=rack=r01,sku=h100"'
check "gpu-b01 has features rack=r02,sku=a100" bash -c 'scontrol show node -o gpu-b01 | grep -q "AvailableFeatures=rack=r02,sku=a100"'
check "partition debug exists" bash -c 'sinfo -h -p debug -o %P | grep -q debug'
check "8 GPUs per node (gres gpu:8 or feature gpus=8)" bash -c 'scontrol show node -o gpu-a01 | grep -qE "Gres=gpu:8|gpus=8"'

JOB=$(sbatch --parsable -w gpu-a01 -o /dev/null --wrap 'sleep 300')
check "sbatch -w gpu-a01 gave a job id ($JOB)" test -n "$JOB"
job_running() { [ "$(squeue -h -j "$JOB" -o '%T %N')" = "RUNNING gpu-a01" ]; }
wait_until 100 "job $JOB RUNNING on gpu-a01" job_running
check "squeue --json shows job $JOB on gpu-a01" python3 -c '
import json, subprocess, sys
d = json.loads(subprocess.run(["squeue", "--json"], capture_output=True, check=True).stdout)
assert any(j["job_id"] == int(sys.argv[1]) and j["nodes"] == "gpu-a01" and j["job_state"] == "RUNNING"
           for j in d["jobs"])' "$JOB"

scontrol update nodename=gpu-b02 state=drain reason="stack self-test"
check "drain gpu-b02" bash -c '[ "$(sinfo -h -N -n gpu-b02 -o "%T %E")" = "drained stack self-test" ]'
scontrol update nodename=gpu-b02 state=resume
node_idle() { sinfo -h -N -n "$1" -o %T | grep -qx idle; }
wait_until 50 "resume gpu-b02 -> idle" node_idle gpu-b02

# ---------------------------------------------------------------- slurmrestd
rest_check() {   # rest_check WHAT CURL-ARGS... : nodes and jobs answer
    python3 - "$NN" "$JOB" "$@" <<'EOF'
import json, subprocess, sys
nn, job, args = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
def get(path):
    out = subprocess.run(["curl", "-sf", "--max-time", "5", *args[:-1], args[-1] + path],
                         capture_output=True, check=True).stdout
    return json.loads(out)
n = get("/slurm/v0.0.38/nodes")
assert not n["errors"] and len(n["nodes"]) == nn, n["errors"]
j = get("/slurm/v0.0.38/jobs")
assert any(x["job_id"] == job and x["nodes"] == "gpu-a01" for x in j["jobs"])
EOF
}
check "REST unix socket (local auth, root client): nodes + jobs" \
    rest_check --unix-socket "$FM_SLURM_SOCKET" http://localhost
TOKEN=$(cat "$FM_SLURM_JWT_FILE")
check "REST TCP + JWT: nodes + jobs" \
    rest_check -H "X-SLURM-USER-NAME: $FM_SLURM_USER" -H "X-SLURM-USER-TOKEN: $TOKEN" "$FM_SLURM_URL"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "X-SLURM-USER-NAME: $FM_SLURM_USER" \
    -H "X-SLURM-USER-TOKEN: not-a-token" "$FM_SLURM_URL/slurm/v0.0.38/nodes")
check "REST TCP rejects a bad token (HTTP $code)" test "$code" != 200
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$FM_SLURM_URL/slurm/v0.0.38/nodes")
check "REST TCP rejects no token (HTTP $code)" test "$code" != 200

# ---------------------------------------------------------------- Prometheus
promq() {   # promq QUERY -> "count value-of-first"
    curl -sf --max-time 3 "$FM_PROM_URL/api/v1/query" --data-urlencode "query=$1" |
        python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(len(r), r[0]["value"][1] if r else "-")'
}
prom_is() { [ "$(promq "$1")" = "$2" ]; }
check "DCGM_FI_DEV_GPU_TEMP{Hostname=gpu-a01}: 8 series" \
    bash -c "[ \"\$(curl -sf '$FM_PROM_URL/api/v1/query' --data-urlencode 'query=DCGM_FI_DEV_GPU_TEMP{Hostname=\"gpu-a01\"}' | python3 -c 'import json,sys; print(len(json.load(sys.stdin)[\"data\"][\"result\"]))')\" = 8 ]"
check "all nodes scraped: $((NN * 8)) GPU series" prom_is 'count(DCGM_FI_DEV_GPU_TEMP)' "1 $((NN * 8))"

GS="python3 $HERE/gpu_state.py"
t=$SECONDS
$GS inject gpu-a01 hot --gpu 2
wait_until 30 "inject hot gpu-a01/2 -> temp 92 in Prometheus within 3 s" \
    prom_is 'DCGM_FI_DEV_GPU_TEMP{Hostname="gpu-a01",gpu="2"}' "1 92"
$GS inject gpu-a03 xid79 --gpu 0
wait_until 30 "inject xid79 gpu-a03/0 -> its series vanish within 3 s (7 left)" \
    prom_is 'count(DCGM_FI_DEV_GPU_TEMP{Hostname="gpu-a03"})' "1 7"
check "kernel_log has the real Xid 79 text" bash -c \
    "$GS show gpu-a03 | grep -q \"NVRM: Xid (PCI:0000:18:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.\""
$GS inject gpu-a02 dbe --gpu 1
wait_until 30 "inject dbe gpu-a02/1 -> DBE vol 1 + Xid 48 in Prometheus" \
    prom_is 'DCGM_FI_DEV_ECC_DBE_VOL_TOTAL{Hostname="gpu-a02",gpu="1"} + on(gpu,Hostname) DCGM_FI_DEV_XID_ERRORS' "1 49"
check "reset-gpu refuses a GPU that fell off the bus (exit 1)" bash -c "$GS reset-gpu gpu-a03 --gpu 0 2>/dev/null; [ \$? = 1 ]"
$GS inject gpu-a02 busy --gpu 1
check "reset-gpu refuses a busy GPU (exit 1)" bash -c "$GS reset-gpu gpu-a02 --gpu 1 2>/dev/null; [ \$? = 1 ]"
$GS inject gpu-a02 idle --gpu 1
check "reset-gpu of an idle GPU succeeds" $GS reset-gpu gpu-a02 --gpu 1
check "reset cleared volatile DBE + pending remap, kept aggregate" python3 -c '
import json, sys
g = json.load(open(sys.argv[1]))["gpus"][1]
assert (g["ecc_dbe_vol"], g["row_remap_pending"], g["xid"], g["ecc_dbe_agg"]) == (0, 0, 0, 1), g' \
    "$FM_STACK/nodes/gpu-a02/state.json"
$GS inject gpu-a02 row_remap_failure --gpu 4
echo "state check: $((SECONDS - t)) s for injections"

# ---------------------------------------------------------------- sshd (if sshd.sh ran)
if [ -n "${FM_SSH_PORT:-}" ]; then
    sshn() {   # sshn ADDR CMD...
        local a=$1; shift
        timeout 10 ssh -n -i "$FM_SSH_KEY" -p "$FM_SSH_PORT" -o BatchMode=yes \
            -o UserKnownHostsFile="$FM_SSH_KNOWN_HOSTS" -o StrictHostKeyChecking=yes \
            -o ConnectTimeout=3 "$FM_SSH_USER@$a" "$@"
    }
    ssh_gpus() { [ "$(sshn 127.0.0.14 nvidia-smi -L | grep -c '^GPU ')" = 8 ]; }
    check "ssh gpu-b01 (127.0.0.14): nvidia-smi -L lists 8 GPUs" ssh_gpus
    $GS inject gpu-b01 xid79 --gpu 5
    ssh_gpus7() { [ "$(sshn 127.0.0.14 nvidia-smi -L | grep -c '^GPU ')" = 7 ]; }
    check "ssh gpu-b01: nvidia-smi -L after xid79 on GPU 5 lists 7" ssh_gpus7
fi

# ---------------------------------------------------------------- reboot path
boot0=$(scontrol show node gpu-a03 | grep -o 'BootTime=[^ ]*')
bid0=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["boot_id"])' "$FM_STACK/nodes/gpu-a03/state.json")
scontrol reboot ASAP nextstate=RESUME reason="stack self-test" gpu-a03
rebooted() {
    local l
    l=$(scontrol show node -o gpu-a03)
    grep -q 'State=IDLE ' <<<"$l" && ! grep -q "$boot0" <<<"$l"
}
wait_until 300 "scontrol reboot gpu-a03 -> back IDLE with a new BootTime" rebooted
check "reboot: state.json has new boot_id, reboots=1, GPU 0 back on the bus" python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
assert s["boot_id"] != sys.argv[2] and s["reboots"] == 1 and not s["gpus"][0]["fallen_off_bus"], s["reboots"]' \
    "$FM_STACK/nodes/gpu-a03/state.json" "$bid0"
wait_until 50 "reboot: gpu-a03 has 8 GPU series again" \
    prom_is 'count(DCGM_FI_DEV_GPU_TEMP{Hostname="gpu-a03"})' "1 8"
$GS reboot gpu-a02
check "gpu_state reboot keeps a persistent row remap failure" python3 -c '
import json, sys
g = json.load(open(sys.argv[1]))["gpus"][4]
assert g["row_remap_failure"] == 1 and g["xid"] == 64, g' "$FM_STACK/nodes/gpu-a02/state.json"
check "job $JOB still RUNNING on gpu-a01" job_running

# ---------------------------------------------------------------- down
pids_of_stack() {   # live (non-zombie) processes naming $S or carrying its marker
    local e p st
    for e in /proc/[0-9]*/environ; do
        p=${e#/proc/}; p=${p%/environ}
        [ "$p" = $$ ] && continue
        st=$(awk '/^State:/ {print $2}' "/proc/$p/status" 2>/dev/null)
        [ -z "$st" ] || [ "$st" = Z ] && continue
        if grep -qaF -- "$S" "/proc/$p/cmdline" 2>/dev/null ||
            tr '\0' '\n' 2>/dev/null <"$e" | grep -qxF "FM_STACK_DAEMON=$S"; then
            echo "$p"
        fi
    done
}
n_before=$(pids_of_stack | wc -l)
t=$(date +%s.%N)
"$HERE/down.sh" "$S" 2>/dev/null
down_s=$(awk -v a="$t" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
left=$(pids_of_stack | tr '\n' ' ')
check "down.sh in ${down_s}s: $n_before processes before, none left (${left:-none})" test -z "$left"
check "down.sh twice is fine" "$HERE/down.sh" "$S"
trap - EXIT

echo "test_stack: $PASS passed, $FAIL failed (stack dir $S kept for logs)"
[ "$FAIL" = 0 ]
