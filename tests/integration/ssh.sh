#!/usr/bin/env bash
# Integration tests of the SSH node executor (src/backends/exec_ssh.c) and
# the node_diag_bundle parsers against a real OpenSSH sshd and the fake GPU
# tools.  Starts its own private sshd (tests/stack/sshd.sh) with two nodes in
# a temp dir, so it never disturbs a running stack's node states; stops it
# on exit.  Needs root (sshd switches users), openssh-server, python3.
#
#   tests/integration/ssh.sh            build (make), run, clean up
#   FM_KEEP=1 tests/integration/ssh.sh  keep the temp dir (logs: log/sshd.log)
#   CK_FORK=no FM_TEST_WRAP="valgrind --leak-check=full --error-exitcode=9" \
#       tests/integration/ssh.sh         the same under valgrind
#
# Exit status 0 only if every test passed.  Bounded: each test has a 60 s
# Check timeout; sshd start waits at most 5 s.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BUILD=${BUILD:-build}
PY=/usr/bin/python3

die() { echo "ssh.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (the test sshd switches to an unprivileged user)"
[ -x /usr/sbin/sshd ] || die "missing /usr/sbin/sshd: make deps (openssh-server)"

cd "$REPO"
make -s "$BUILD/libfleetmcp.a" >&2 || die "cannot build $BUILD/libfleetmcp.a"
BIN="$BUILD/tests/integration_exec_ssh"
# shellcheck source=tests/lib/check-driver.sh
. tests/lib/check-driver.sh
fm_check_driver tests/integration/test_exec_ssh.c "$BIN"

T=$(mktemp -d /tmp/fm-ssh-test.XXXXXX)
chmod 755 "$T"
AGENT_PID=
cleanup() {
    local rc=$?
    if [ -n "$AGENT_PID" ]; then kill "$AGENT_PID" 2>/dev/null || true; fi
    "$REPO/tests/stack/sshd.sh" down "$T" 2>/dev/null || true
    if [ "$rc" = 0 ] && [ -z "${FM_KEEP:-}" ]; then rm -rf "$T"; else echo "ssh.sh: files kept in $T" >&2; fi
    exit "$rc"
}
trap cleanup EXIT

N1=gpu-t01 N2=gpu-t02
"$PY" tests/stack/gpu_state.py --stack "$T" init "$N1" --sku h100
"$PY" tests/stack/gpu_state.py --stack "$T" init "$N2" --sku a100
FM_NODES="$N1 $N2" tests/stack/sshd.sh up "$T"
# shellcheck disable=SC1091
. "$T/ssh.env"

# Test inputs: a known_hosts without node 1, one with another key for node 1,
# and a client key the server does not know.
mkdir -p "$T/test"
A1=$(cat "$T/nodes/$N1/addr") A2=$(cat "$T/nodes/$N2/addr")
grep -F "[$A2]:" "$FM_SSH_KNOWN_HOSTS" >"$T/test/kh_unknown"
ssh-keygen -q -t ed25519 -N '' -f "$T/test/other_host"
read -r kt kk _ <"$T/test/other_host.pub"
{ echo "[$A1]:$FM_SSH_PORT $kt $kk"; grep -F "[$A2]:" "$FM_SSH_KNOWN_HOSTS"; } >"$T/test/kh_changed"
{ cat "$FM_SSH_KNOWN_HOSTS"; echo "@revoked * $(cut -d' ' -f1,2 "$T/ssh/host_ed25519.pub")"; } >"$T/test/kh_revoked"
ssh-keygen -q -t ed25519 -N '' -f "$T/test/wrong_key"
ssh-keygen -q -t ed25519 -N 'correct horse battery' -f "$T/test/pass_key"
cat "$T/test/pass_key.pub" >>"$T/ssh/authorized_keys"
# An agent holding the test key, for auth without key_file.
AGENT_OUT=$(ssh-agent -s -a "$T/test/agent.sock")
AGENT_PID=$(printf '%s\n' "$AGENT_OUT" | sed -n 's/^SSH_AGENT_PID=\([0-9]*\);.*/\1/p')
[ -n "$AGENT_PID" ] || die "ssh-agent did not start"
SSH_AUTH_SOCK="$T/test/agent.sock" ssh-add -q "$FM_SSH_KEY"

FM_STACK="$T" FM_TEST_NODE1=$N1 FM_TEST_NODE2=$N2 FM_TEST_DIR="$T/test" \
    FM_TEST_AGENT_SOCK="$T/test/agent.sock" \
    FM_GPU_STATE="$REPO/tests/stack/gpu_state.py" ${FM_TEST_WRAP:-} "$BIN"

# --- end to end: node_diag_bundle through the server and mcp-cli -------------
make -s all >&2 || die "cannot build fleetmcp and mcp-cli"
CFG="$T/fleetmcp.yaml"
cat >"$CFG" <<EOF
mode: fleet
store:
  path: $T/fleetmcp.db
ssh:
  user: $FM_SSH_USER
  port: $FM_SSH_PORT
  key_file: $FM_SSH_KEY
  known_hosts: $FM_SSH_KNOWN_HOSTS
  hosts:
    $N1: $A1
    $N2: $A2
  connect_timeout_ms: 3000
  command_timeout_ms: 20000
  max_output_bytes: 1048576
EOF
"$BUILD/fleetmcp" check-config --config "$CFG" >&2 || die "check-config refuses the ssh section"
"$PY" tests/stack/gpu_state.py --stack "$T" init "$N1" --sku h100
"$PY" tests/stack/gpu_state.py --stack "$T" inject "$N1" xid79 --gpu 0
"$PY" tests/stack/gpu_state.py --stack "$T" inject "$N1" ib_down
OUT=$("$BUILD/mcp-cli" --config "$CFG" --format json --timeout 60 call node_diag_bundle node=$N1) ||
    die "node_diag_bundle failed: $OUT"
printf '%s' "$OUT" | "$PY" -c '
import json, sys
r = json.load(sys.stdin)
r = r.get("structuredContent", r)
s = r["sections"]
nv, xid, h, ib = s["nvidia_smi"], s["kernel_xid"], s["dcgmi_health"], s["ibstat"]
checks = [
    (nv["exit_status"] == 15, "nvidia-smi exit 15"),
    (nv["gpus_seen"] == 7 and nv["unreachable"] == ["0000:18:00.0"], "GPU 0 missing"),
    (any(x["xid"] == 79 and x["pci"] == "0000:18:00" for x in xid["xids"]), "Xid 79 line"),
    (h["overall"] == "Failure", "dcgmi health Failure"),
    (ib["ports"][0]["state"] == "Down", "IB port down"),
    (bool(r["bundle_id"]) and len(r["sha256"]) == 64, "bundle stored"),
    ("raw" not in r, "no raw unless asked"),
]
bad = [m for ok, m in checks if not ok]
if bad:
    sys.exit("node_diag_bundle end to end: failed: " + ", ".join(bad) + "\n" + json.dumps(r)[:2000])
print("ssh.sh: node_diag_bundle end to end: %d checks passed (bundle %s)" % (len(checks), r["bundle_id"]))
' >&2
# A node not in ssh.hosts is refused by name, not after a timeout.
if "$BUILD/mcp-cli" --config "$CFG" --format json call node_diag_bundle node=gpu-zz99 >"$T/unknown.out" 2>&1; then
    die "node_diag_bundle accepted a node not in ssh.hosts"
fi
grep -q "NOTFOUND" "$T/unknown.out" || die "unknown node: expected NOTFOUND, got $(cat "$T/unknown.out")"
echo "ssh.sh: all passed" >&2
