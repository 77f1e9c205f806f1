#!/usr/bin/env bash
# `make install DESTDIR=$tmp PREFIX=/usr` puts everything where it belongs,
# and the installed binaries work from there, away from the source tree:
#   - bin/fleetmcp and bin/mcp-cli, executable, --help and --version answer;
#   - share/fleetmcp/schemas and share/fleetmcp/runbooks identical to the
#     tree's schemas/ and runbooks/ (signatures.yaml, fault-classes.yaml,
#     every rb-*.yaml, signatures.d/ when there is one);
#   - share/man/man1/fleetmcp.1 and mcp-cli.1, which man(1) renders;
#   - run from an unrelated directory with no FLEETMCP_* variables, the
#     installed server finds its runbooks and its diagnosis signatures in
#     share/fleetmcp/runbooks, and check-config reports them.
#
#   tests/install.sh     (needs a build: make)
#   INSTALL_MAKEFILE=path tests/install.sh   tries another Makefile's install rule
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
pass=0 fail=0
ok() { pass=$((pass + 1)); printf 'ok   %s\n' "$*"; }
bad() { fail=$((fail + 1)); printf 'FAIL %s\n' "$*"; }
# shellcheck source=tests/skip.sh
. "$HERE/skip.sh"

TMP=$(mktemp -d /tmp/fm-install.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
D=$TMP/root
P=$D/usr

if make -C "$REPO" -f "${INSTALL_MAKEFILE:-$REPO/Makefile}" --no-print-directory install DESTDIR="$D" PREFIX=/usr >"$TMP/make.log" 2>&1; then
    ok "make install DESTDIR=$D PREFIX=/usr"
else
    bad "make install failed:"; tail -20 "$TMP/make.log" | sed 's/^/     /'
    echo "install.sh: $pass passed, $fail failed"
    exit 1
fi

# Nothing outside DESTDIR/PREFIX: every installed path is under $D/usr.
stray=$(find "$D" -mindepth 1 -maxdepth 1 ! -name usr)
[ -z "$stray" ] && ok "everything installed under DESTDIR/usr" || bad "installed outside PREFIX: $stray"

for b in fleetmcp mcp-cli; do
    if [ -x "$P/bin/$b" ] && [ -f "$P/bin/$b" ]; then
        ok "bin/$b installed, executable"
    else
        bad "bin/$b missing or not executable"
    fi
done

# The data trees are complete copies.
for t in schemas runbooks; do
    if diff -r "$REPO/$t" "$P/share/fleetmcp/$t" >"$TMP/diff.txt" 2>&1; then
        ok "share/fleetmcp/$t identical to the tree's $t/ ($(find "$P/share/fleetmcp/$t" -type f | wc -l) files)"
    else
        bad "share/fleetmcp/$t differs from $t/:"; head -10 "$TMP/diff.txt" | sed 's/^/     /'
    fi
done
for f in runbooks/signatures.yaml runbooks/fault-classes.yaml schemas/runbook.schema.json \
    schemas/signatures.schema.json schemas/config/root.json; do
    [ -f "$P/share/fleetmcp/$f" ] && ok "share/fleetmcp/$f" || bad "share/fleetmcp/$f missing"
done
n=$(find "$P/share/fleetmcp/runbooks" -maxdepth 1 -name 'rb-*.yaml' | wc -l)
[ "$n" -gt 0 ] && ok "$n runbooks installed" || bad "no rb-*.yaml installed"

for m in fleetmcp mcp-cli; do
    page=$P/share/man/man1/$m.1
    if [ -f "$page" ] && [ "$(stat -c %a "$page")" = 644 ]; then
        ok "share/man/man1/$m.1 installed, mode 644"
    else
        bad "share/man/man1/$m.1 missing or not mode 644"
        continue
    fi
    if command -v man >/dev/null 2>&1; then
        if MANWIDTH=80 man -l "$page" 2>/dev/null | grep -q "^NAME"; then
            ok "man -l share/man/man1/$m.1 renders"
        else
            bad "man -l share/man/man1/$m.1 does not render"
        fi
    fi
done

# The installed binaries, run away from the tree with a clean environment.
mkdir -p "$TMP/elsewhere"
cd "$TMP/elsewhere"
clean_env=(env -u FLEETMCP_CONFIG -u FLEETMCP_DB -u FLEETMCP_RUNBOOKS -u FLEETMCP_SIGNATURES
    -u FLEETMCP_MODE -u MCP_CLI_SERVER XDG_STATE_HOME="$TMP/state" PATH=/usr/bin:/bin)

out=$("${clean_env[@]}" "$P/bin/fleetmcp" --help 2>&1) && rc=0 || rc=$?
if [ "$rc" = 0 ] && grep -q '^usage: fleetmcp' <<<"$out" && grep -q 'check-config' <<<"$out"; then
    ok "installed fleetmcp --help: usage, exit 0"
else
    bad "installed fleetmcp --help: rc=$rc: $out"
fi
out=$("${clean_env[@]}" "$P/bin/fleetmcp" --version 2>&1) && rc=0 || rc=$?
[ "$rc" = 0 ] && grep -q '^fleetmcp [0-9]' <<<"$out" && ok "installed fleetmcp --version: $out" ||
    bad "installed fleetmcp --version: rc=$rc: $out"
out=$("${clean_env[@]}" "$P/bin/mcp-cli" --help 2>&1) && rc=0 || rc=$?
[ "$rc" = 0 ] && grep -q '^usage: mcp-cli' <<<"$out" && ok "installed mcp-cli --help: usage, exit 0" ||
    bad "installed mcp-cli --help: rc=$rc: $out"

# mcp-cli starts the fleetmcp beside it; that server lists the installed runbooks.
out=$("${clean_env[@]}" "$P/bin/mcp-cli" --timeout 30 --format json call runbook_list 2>&1) && rc=0 || rc=$?
got=$(python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); print(len(d["structuredContent"]["runbooks"]))' <<<"$out" 2>/dev/null || echo "?")
if [ "$rc" = 0 ] && [ "$got" = "$n" ]; then
    ok "installed server, run from elsewhere, lists the $n installed runbooks"
else
    bad "installed server's runbook_list: rc=$rc, $got runbooks (want $n): $(head -c 400 <<<"$out")"
fi

# diagnose loads signatures.yaml from the installed share directory too.
sig='{"signals":{"kernel_log":["NVRM: Xid (PCI:0000:47:00): 79, pid=1234, name=python, GPU has fallen off the bus."]}}'
out=$("${clean_env[@]}" "$P/bin/mcp-cli" --timeout 30 --format json call diagnose --args "$sig" 2>&1) && rc=0 || rc=$?
top=$(python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); print((d["structuredContent"].get("top") or {}).get("fault_class"))' <<<"$out" 2>/dev/null || echo "?")
if [ "$rc" = 0 ] && [ "$top" = gpu_fallen_off_bus ]; then
    ok "installed server, run from elsewhere, diagnoses Xid 79 with the installed signatures"
else
    bad "installed server's diagnose: rc=$rc, top=$top: $(head -c 400 <<<"$out")"
fi

# check-config with a config naming nothing but its store: the runbook
# report reads the installed catalog.
printf 'mode: shadow\nstore:\n  path: %s/state/c.db\n' "$TMP" >"$TMP/min.yaml"
out=$("${clean_env[@]}" "$P/bin/fleetmcp" check-config --config "$TMP/min.yaml" 2>&1) && rc=0 || rc=$?
if [ "$rc" = 0 ] && grep -q ': ok$' <<<"$out"; then
    ok "installed fleetmcp check-config: ok with the installed runbooks"
else
    bad "installed fleetmcp check-config: rc=$rc: $out"
fi

cd "$REPO"
# Examples as documentation, when the install rule puts them there.
if [ -d "$P/share/doc/fleetmcp/examples" ]; then
    for f in fleetmcp.yaml claude-code.md claude_desktop_config.json vscode/.vscode/mcp.json \
        grafana/fleetmcp-dashboard.json; do
        cmp -s "examples/$f" "$P/share/doc/fleetmcp/examples/$f" && ok "share/doc/fleetmcp/examples/$f" ||
            bad "share/doc/fleetmcp/examples/$f missing or different"
    done
else
    fm_skipped "share/doc/fleetmcp/examples: this install rule does not install the examples"
fi
# uninstall, when there is one, removes every file install put there.
if make -C "$REPO" -f "${INSTALL_MAKEFILE:-$REPO/Makefile}" -n uninstall >/dev/null 2>&1; then
    make -C "$REPO" -f "${INSTALL_MAKEFILE:-$REPO/Makefile}" --no-print-directory uninstall \
        DESTDIR="$D" PREFIX=/usr >"$TMP/make.log" 2>&1 || true
    left=$(find "$D" -type f | sed "s|^$D||")
    [ -z "$left" ] && ok "make uninstall removes every installed file" ||
        bad "make uninstall left: $(head -5 <<<"$left")"
else
    fm_skipped "make uninstall: the Makefile has no uninstall target"
fi

echo "install.sh: $pass passed, $fail failed"
[ "$fail" = 0 ]
