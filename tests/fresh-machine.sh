#!/bin/bash
# A fresh machine, simulated: the README's first command (`make demo`) must
# build on a machine whose -dev packages arrive only when `make deps` runs.
#
# CI machines have every package already, so a Makefile that reads its
# pkg-config flags before deps has run still builds there and fails on a
# newcomer's machine.  This stage makes that visible without uninstalling
# anything: a clean clone of the committed tree (HEAD, not the work tree)
# runs under a PATH where
#   pkg-config  answers nothing (exit 1, as for an unknown package) until
#               deps has looked at the packages;
#   dpkg-query  marks that moment, then answers as the real one does;
#   apt-get     marks it too and installs nothing (sudo likewise);
#   npm         installs nothing (the clone has no node_modules).
# The clone's examples/demo.sh is replaced by a marker, so the stage stops
# where the build step ends and the stack would start.
#
#   bash tests/fresh-machine.sh [REV]     (default: HEAD)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
rev=$(git -C "$REPO" rev-parse --verify "${1:-HEAD}^{commit}") || {
    echo "fresh-machine: NOTFOUND: $REPO is not a git checkout with ${1:-HEAD}; run from a clone" >&2
    exit 1
}
TMP=$(mktemp -d /tmp/fm-fresh.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

mkdir "$TMP/shim"
real_pkgconfig=$(command -v pkg-config) && real_dpkgquery=$(command -v dpkg-query) || {
    echo "fresh-machine: NOTFOUND: pkg-config or dpkg-query: run make deps (a Debian machine is assumed)" >&2
    exit 1
}
cat >"$TMP/shim/pkg-config" <<EOF
#!/bin/sh
# Nothing is installed until deps has run.
[ -e "$TMP/deps-ran" ] || { echo "pkg-config \$*" >>"$TMP/early-pkg-config"; exit 1; }
exec "$real_pkgconfig" "\$@"
EOF
cat >"$TMP/shim/dpkg-query" <<EOF
#!/bin/sh
touch "$TMP/deps-ran"
exec "$real_dpkgquery" "\$@"
EOF
for c in apt-get sudo npm; do
    printf '#!/bin/sh\ntouch "%s/deps-ran"\necho "%s $*" >>"%s/would-run"\n' "$TMP" "$c" "$TMP" \
        >"$TMP/shim/$c"
done
chmod +x "$TMP/shim/"*

git clone -q --no-checkout --shared "$REPO" "$TMP/fleetmcp"
git -C "$TMP/fleetmcp" checkout -q "$rev"
printf '#!/bin/bash\ntouch "%s/demo-reached"\n' "$TMP" >"$TMP/fleetmcp/examples/demo.sh"

# A newcomer's environment: not this make's flags or jobserver, nor a
# build directory or flags a caller may have exported.
rc=0
(cd "$TMP/fleetmcp" && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u BUILD -u OPT -u EXTRA_CFLAGS \
    -u EXTRA_LDFLAGS PATH="$TMP/shim:$PATH" make demo) >"$TMP/make.log" 2>&1 || rc=$?

fail=0
say() { printf '%s\n' "$*"; }
if [ ! -e "$TMP/early-pkg-config" ]; then
    say "FAIL the shim never answered 'nothing installed': the simulation did not happen"
    fail=1
else
    say "ok   pkg-config was asked $(wc -l <"$TMP/early-pkg-config") time(s) before deps ran, and answered nothing"
fi
if [ "$rc" -eq 0 ] && [ -e "$TMP/demo-reached" ] && [ -x "$TMP/fleetmcp/build/fleetmcp" ] &&
    [ -x "$TMP/fleetmcp/build/mcp-cli" ]; then
    say "ok   make demo on a fresh clone ($(git -C "$REPO" rev-parse --short "$rev")): deps, then a build that links, then the demo"
else
    say "FAIL make demo on a fresh clone ($(git -C "$REPO" rev-parse --short "$rev")) exited $rc before the demo; last lines:"
    tail -15 "$TMP/make.log" | sed 's/^/     /'
    fail=1
fi
if [ "$fail" -eq 0 ] && ! "$TMP/fleetmcp/build/fleetmcp" --version >/dev/null 2>&1; then
    say "FAIL the fresh build's fleetmcp --version does not run"
    fail=1
fi
# The packages the fresh clone's tools/deps.sh installs, read once for the
# header and the Python checks below.
deps_pkgs=$(sed -n '/^PKGS="/,/"$/p' "$TMP/fleetmcp/tools/deps.sh" 2>/dev/null | tr -d '"' | sed 's/^PKGS=//')
# deps_install PKG [EXTRA...]: PKG is one deps.sh installs (or one of EXTRA).
deps_install() { case " $(echo $deps_pkgs ${2:-}) " in *" $1 "*) return 0 ;; esac; return 1; }
# report_missing WHAT MISSING OK-TEXT: one FAIL line naming what is missing, or the ok line.
report_missing() {
    if [ -n "$2" ]; then
        say "FAIL $1 tools/deps.sh does not install:$2"
        fail=1
    else
        say "ok   $3"
    fi
}
# This machine has every package, so a header whose -dev package deps.sh
# does not name still compiles here and fails on a newcomer's machine.
# Every header the sources include must come from a package deps.sh
# installs, or from one a machine with gcc always has.
if [ "$fail" -eq 0 ]; then
    clone="$TMP/fleetmcp"
    cflags=$(cd "$clone" && "$real_pkgconfig" --cflags $(make -s --no-print-directory print-pkgs) check libedit)
    (cd "$clone" && for f in $(find src tools tests/unit -name '*.c'); do
        cc -M -std=c11 -D_GNU_SOURCE -Iinclude -Ibuild/gen $cflags "$f" 2>&1 || echo "UNRESOLVED $f"
    done) >"$TMP/headers"
    if grep -q UNRESOLVED "$TMP/headers"; then
        say "FAIL cc -M could not list the headers of:$(grep UNRESOLVED "$TMP/headers" | cut -d' ' -f2 | tr '\n' ' ')"
        fail=1
    fi
    hdrs=$(tr ' \\' '\n\n' <"$TMP/headers" | grep '^/' | sort -u)
    owners=$(dpkg -S $hdrs 2>/dev/null | cut -d: -f1 | tr ', ' '\n\n' | grep -v '^$' | sort -u)
    base="libc6-dev linux-libc-dev libgcc-12-dev gcc-12 libcrypt-dev"
    missing=""
    for o in $owners; do
        deps_install "$o" "$base" || missing="$missing $o"
    done
    report_missing "headers the build includes come from packages" "$missing" \
        "every header the sources include comes from a package deps.sh installs ($(echo $owners | wc -w) packages)"
fi
# The same for the test harnesses' Python: a module this machine has
# (pip, pyenv) but deps.sh does not install fails a newcomer's make check.
# Debian's own python3 resolves each third-party import to its package.
if [ "$fail" -eq 0 ] && [ -x /usr/bin/python3 ]; then
    mods=$(cd "$TMP/fleetmcp" && /usr/bin/python3 - <<'PY'
import ast, os, sys
files, local = [], set()
for top in ("tests", "bench", "tools"):
    for d, dirs, names in os.walk(top):
        dirs[:] = [x for x in dirs if x != "node_modules"]
        for f in names:
            if f.endswith(".py"):
                files.append(os.path.join(d, f))
                local.add(f[:-3])
mods = set()
for f in files:
    with open(f) as fh:
        tree = ast.parse(fh.read(), f)
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            mods.update(a.name.split(".")[0] for a in n.names)
        elif isinstance(n, ast.ImportFrom) and n.level == 0 and n.module:
            mods.add(n.module.split(".")[0])
print(" ".join(sorted(mods - set(sys.stdlib_module_names) - local)))
PY
)
    missing=""
    for m in $mods; do
        path=$(/usr/bin/python3 -c "import $m; print($m.__file__)" 2>/dev/null) || path=""
        pkg=$([ -n "$path" ] && dpkg -S "$path" 2>/dev/null | cut -d: -f1)
        deps_install "${pkg:-none}" || missing="$missing $m(${pkg:-no Debian package})"
    done
    report_missing "Python modules the tests import come from packages" "$missing" \
        "every Python module the tests import comes from a package deps.sh installs ($mods)"
fi
[ -e "$TMP/would-run" ] && say "note deps asked for: $(tr '\n' ';' <"$TMP/would-run")"
exit "$fail"
