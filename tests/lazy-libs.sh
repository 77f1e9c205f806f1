#!/bin/bash
# Libraries fleetmcp loads on first use stay out of every start.
#
# libcrypto and libcjose (src/util/crypto_lazy.c), libcurl, libssh2, libpq,
# libmicrohttpd, libyaml and PCRE2 are compiled against but not linked
# (Makefile LAZY_PKGS):
# linked, they map and relocate at every start, and initialize, tools/list
# or --version never call them.  This stage proves, on the built binaries:
#   1. none of them is DT_NEEDED;
#   2. the executables define no symbol named like a libcrypto or libcjose
#      export (same-named wrappers took libcjose's own calls into libcrypto
#      and deadlocked), and reference none directly;
#   3. initialize + tools/list on an existing database maps neither
#      libcrypto nor libcjose (nor libyaml, PCRE2: no config file), and an
#      audited call loads both and answers;
#   4. a libcrypto that cannot be used is a clear error and exit 69, not a
#      crash.
set -euo pipefail
cd "$(dirname "$0")/.."
TMP=$(mktemp -d /tmp/fm-lazy.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
fail=0
bad() {
    echo "lazy-libs: FAIL: $*" >&2
    fail=1
}
bins=(build/fleetmcp build/mcp-cli)
for b in "${bins[@]}"; do
    [ -x "$b" ] || { echo "lazy-libs: NOTFOUND: $b: run make first" >&2; exit 1; }
done

# 1. DT_NEEDED
for b in "${bins[@]}"; do
    if needed=$(readelf -d "$b" | grep NEEDED | grep -E 'libcrypto|libssl|libcjose|libcurl|libssh2|libmicrohttpd|libpq|libyaml|libpcre2'); then
        bad "$b links a library it should load on first use: $needed"
    fi
done

# 2. symbol names, against the real libraries' exports
libdir_c=$(pkg-config --variable=libdir libcrypto)
libdir_j=$(pkg-config --variable=libdir cjose)
for so in "$libdir_c/libcrypto.so.3" "$libdir_j/libcjose.so.0"; do
    [ -e "$so" ] || { echo "lazy-libs: NOTFOUND: $so: install libssl-dev and libcjose-dev (make deps)" >&2; exit 1; }
done
nm -D --defined-only "$libdir_c/libcrypto.so.3" "$libdir_j/libcjose.so.0" |
    awk 'NF >= 3 { sub(/@.*/, "", $3); print $3 }' | sort -u >"$TMP/exports"
[ "$(wc -l <"$TMP/exports")" -gt 1000 ] || bad "read too few libcrypto/libcjose exports ($(wc -l <"$TMP/exports")): is nm working?"
for b in "${bins[@]}"; do
    nm --defined-only "$b" | awk 'NF >= 3 { print $3 }' | sort -u >"$TMP/defined"
    nm -D --undefined-only "$b" | awk '{ sub(/@.*/, "", $2); print $2 }' | sort -u >"$TMP/undefined"
    clash=$(comm -12 "$TMP/exports" "$TMP/defined" | head -5)
    [ -z "$clash" ] || bad "$b defines libcrypto/libcjose names (wrappers would take libcjose's calls): $clash"
    direct=$(comm -12 "$TMP/exports" "$TMP/undefined" | head -5)
    [ -z "$direct" ] || bad "$b calls libcrypto/libcjose directly, not through FM_CRYPTO(): $direct"
done

# 3. what a start maps
init='{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"lazy","version":"1"}}}'
note='{"jsonrpc":"2.0","method":"notifications/initialized"}'
list='{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
call='{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"runbook_list","arguments":{"fault_class":"gpu_fallen_off_bus"}}}'
export FLEETMCP_DB="$TMP/fm.db"
# A new database anchors its audit chain (an HMAC): that first start may load libcrypto.
printf '%s\n' "$init" "$note" "$list" | build/fleetmcp >/dev/null 2>"$TMP/first.err" ||
    { cat "$TMP/first.err" >&2; bad "fleetmcp did not create its database"; }
printf '%s\n' "$init" "$note" "$list" | LD_DEBUG=files build/fleetmcp >"$TMP/list.out" 2>"$TMP/list.err"
grep -q '"id":1,"result"' "$TMP/list.out" || bad "tools/list did not answer: $(tail -c 300 "$TMP/list.out")"
! grep -E 'file=(libcrypto|libcjose)' "$TMP/list.err" || bad "initialize + tools/list loaded libcrypto or libcjose"
! grep -E 'file=(libyaml|libpcre2)' "$TMP/list.err" || bad "initialize + tools/list loaded libyaml or PCRE2"
LD_DEBUG=files build/fleetmcp --version >/dev/null 2>"$TMP/version.err"
! grep -E 'file=(libcrypto|libcjose)' "$TMP/version.err" || bad "--version loaded libcrypto or libcjose"
printf '%s\n' "$init" "$note" "$call" | LD_DEBUG=files build/fleetmcp >"$TMP/call.out" 2>"$TMP/call.err"
grep -q '"id":2,"result"' "$TMP/call.out" || bad "the audited call did not answer: $(tail -c 300 "$TMP/call.out")"
grep -q '"isError":true' "$TMP/call.out" && bad "the audited call failed: $(tail -c 300 "$TMP/call.out")"
grep -qE 'file=libcrypto\.so\.3' "$TMP/call.err" || bad "the audited call did not load libcrypto (the chain needs its HMAC)"
grep -qE 'file=libcjose\.so\.0' "$TMP/call.err" || bad "libcjose was not loaded with libcrypto"

# 4. a libcrypto without the functions fleetmcp needs: a clear error, exit 69
mkdir "$TMP/fake"
echo 'int fm_not_libcrypto(void); int fm_not_libcrypto(void) { return 0; }' >"$TMP/fake.c"
cc -shared -fPIC -Wl,-soname,libcrypto.so.3 -o "$TMP/fake/libcrypto.so.3" "$TMP/fake.c"
set +e
printf '%s\n' "$init" "$note" "$call" | LD_LIBRARY_PATH="$TMP/fake" build/fleetmcp >"$TMP/fake.out" 2>"$TMP/fake.err"
rc=$?
set -e
[ "$rc" -eq 69 ] || bad "a broken libcrypto gave exit $rc, not 69 (over 128 is a signal: a crash): $(cat "$TMP/fake.err")"
grep -q 'libcrypto.so.3 has no .*install libssl3' "$TMP/fake.err" ||
    bad "a broken libcrypto did not say what to install: $(cat "$TMP/fake.err")"
grep -q '"id":0,"result"' "$TMP/fake.out" || bad "initialize did not answer before libcrypto was needed"

[ "$fail" -eq 0 ] && echo "lazy-libs: ok: ${bins[*]} link none of libcrypto/libcjose/libcurl/libssh2/libmicrohttpd/libpq/libyaml/libpcre2, define none of $(wc -l <"$TMP/exports") libcrypto/libcjose names; tools/list maps none of libcrypto/libcjose/libyaml/libpcre2; the audited call loads both; a broken libcrypto exits 69 with its fix"
exit "$fail"
