#!/bin/bash
# Stage check-config: `fleetmcp check-config` opens the CONFIGURED store
# (store.path, --db, FLEETMCP_DB, or a postgresql:// URL) the way the first
# message after initialize will, reports each thing that would make that
# message fail with what to do, and changes nothing in the store; and the
# stdio server's start-time pre-check (no SQLite) still refuses the
# commonest mistake before it answers initialize.
#
# SQLite: a path under a regular file, a directory, a file that is not a
# database, a store a newer fleetmcp migrated, a missing audit key while
# keyed rows exist, and (as an unprivileged user, since root passes every
# permission check) an unwritable file and directory; each store file's
# bytes and the directory's listing are compared before and after.
# PostgreSQL (a throwaway server, tests/store/pg-env.sh): a clean store, a
# newer schema, a role without grants, an unreachable URL.
#
#   bash tests/cli/check-config.sh       (FM_CC_PG=0: leave PostgreSQL out;
#                                         FM=build/asan/fleetmcp: the ASan build)
set -u
cd "$(dirname "$0")/../.."
FM=${FM:-$PWD/build/fleetmcp}
tmp=$(mktemp -d /tmp/fm-check-config.XXXXXX)
chmod 755 "$tmp"
# shellcheck disable=SC2034 # read by ok() in tests/lib/tally.sh
tally_verbose=1
# shellcheck source=tests/lib/tally.sh
. tests/lib/tally.sh
unset FLEETMCP_CONFIG FLEETMCP_DB FLEETMCP_MODE
export FLEETMCP_RUNBOOKS=$PWD/runbooks

cfg() { # cfg NAME STORE: a shadow-mode config naming its store
    printf 'mode: shadow\nstore:\n  %s: %s\n' "$([[ $2 == postgresql://* ]] && echo url || echo path)" \
        "$2" >"$tmp/$1.yaml"
    echo "$tmp/$1.yaml"
}
# expect NAME RC PATTERN CONFIG [ARGS...]: check-config's exit code and a line.
expect() {
    local name=$1 rc=$2 pat=$3
    shift 3
    out=$("$FM" check-config --config "$@" 2>&1)
    local got=$?
    if [ "$got" = "$rc" ] && grep -qE -- "$pat" <<<"$out"; then
        ok "$name"
    else
        bad "$name: rc=$got (want $rc), output:"
        sed 's/^/     /' <<<"$out"
    fi
}
# A store's files: names, sizes and bytes, to prove a check changed nothing.
snap() { (cd "$1" && for f in $(ls -A | sort); do echo "$f $(md5sum <"$f")"; done); }
# One call through the stdio server, so the store has tables and keyed rows.
use_store() {
    printf '%s\n' \
        '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"cc","version":"1"}}}' \
        '{"jsonrpc":"2.0","method":"notifications/initialized"}' \
        '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"fleet_status","arguments":{}}}' |
        timeout 30 "$FM" --config "$1" >/dev/null 2>"$tmp/serve.err"
}

# ---- SQLite --------------------------------------------------------------------
c=$(cfg fresh "$tmp/new/dir/fm.db")
expect "a store that does not exist yet: ok, the first message creates it" 0 \
    "fm.db: does not exist yet; the first message creates it" "$c"
[ ! -e "$tmp/new" ] && ok "nothing created for it" || bad "check-config created $tmp/new"

: >"$tmp/afile"
c=$(cfg underfile "$tmp/afile/fm.db")
expect "a store under a regular file cannot be created, said with the fix" 1 \
    "does not exist and cannot be created .*Not a directory.*set store.path" "$c"
# The stdio server's pre-check refuses the same store at start, before initialize.
out=$(echo '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"cc","version":"1"}}}' |
    timeout 10 "$FM" --config "$c" 2>&1 >/dev/null)
rc=$?
[ "$rc" = 1 ] && grep -q "cannot open the store $tmp/afile/fm.db for writing: Not a directory" <<<"$out" &&
    ok "the stdio server refuses it at start (no SQLite needed)" || bad "stdio start: rc=$rc $out"

mkdir "$tmp/adir"
expect "a directory is not a store" 1 "is a directory: name a file in it" "$(cfg isdir "$tmp/adir")"

echo "not a database, just text, long enough to fill SQLite's header: 0123456789" >"$tmp/text.db"
before=$(md5sum <"$tmp/text.db")
expect "a file that is not a database" 1 \
    "cannot be read as a fleetmcp store: file is not a database; point store.path" \
    "$(cfg text "$tmp/text.db")"
[ "$(md5sum <"$tmp/text.db")" = "$before" ] && ok "the file is unchanged" || bad "text.db changed"

mkdir "$tmp/s"
c=$(cfg used "$tmp/s/fm.db")
use_store "$c" || bad "serve: $(cat "$tmp/serve.err")"
before=$(snap "$tmp/s")
expect "a store in use: ok" 0 ": ok$" "$c"
expect "--db overrides store.path, as for the server" 1 "adir: is a directory" "$c" --db "$tmp/adir"
FLEETMCP_DB=$tmp/adir expect "so does FLEETMCP_DB" 1 "adir: is a directory" "$c"
[ "$(snap "$tmp/s")" = "$before" ] && ok "the store's files are unchanged (no -wal, -shm or rows)" ||
    bad "store files changed: $(diff <(echo "$before") <(snap "$tmp/s"))"

# A store migrated by a newer fleetmcp, and one that is behind.
cp -a "$tmp/s" "$tmp/newer"
audit_v=$(sqlite3 "$tmp/newer/fm.db" "SELECT version FROM schema_migrations WHERE subsystem = 'audit'")
sqlite3 "$tmp/newer/fm.db" "UPDATE schema_migrations SET version = 99 WHERE subsystem = 'audit'"
before=$(snap "$tmp/newer")
expect "a newer schema version: run the newer fleetmcp" 1 \
    "audit is at schema version 99, newer than this fleetmcp knows \($audit_v\)" "$(cfg newer "$tmp/newer/fm.db")"
sqlite3 "$tmp/newer/fm.db" "UPDATE schema_migrations SET version = 1 WHERE subsystem = 'approvals'"
expect "migrations due are said (the first message runs them)" 1 \
    "the first message migrates approvals v1->v2" "$(cfg newer "$tmp/newer/fm.db")"
sqlite3 "$tmp/newer/fm.db" "UPDATE schema_migrations SET version = $audit_v WHERE subsystem = 'audit'"
expect "a store that is only behind is ok" 0 "the first message migrates approvals v1->v2" \
    "$(cfg newer "$tmp/newer/fm.db")"
v=$(sqlite3 "$tmp/newer/fm.db" "SELECT version FROM schema_migrations WHERE subsystem = 'approvals'")
[ "$v" = 1 ] && ok "check-config migrated nothing" || bad "approvals is at $v after check-config"

# The audit key: missing while keyed rows exist.
cp -a "$tmp/s" "$tmp/nokey"
rm "$tmp/nokey/fm.db.audit-key"
expect "a missing audit key with keyed rows: restore it" 1 \
    "audit key .*nokey/fm.db.audit-key cannot be read \(No such file or directory\) and the log has rows keyed with it: restore the file" \
    "$(cfg nokey "$tmp/nokey/fm.db")"
[ ! -e "$tmp/nokey/fm.db.audit-key" ] && ok "no new key was made" || bad "check-config made a key"
echo "not hex" >"$tmp/nokey/fm.db.audit-key"
expect "a damaged audit key" 1 "is not 64 hex characters: restore it" "$(cfg nokey "$tmp/nokey/fm.db")"

# Permissions, as a user other than root (root passes every access check).
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
    # nobody runs copies under $tmp: the checkout may sit in a directory
    # only root can enter (a clone in `mktemp -d`, mode 700).
    cp "$FM" "$tmp/fleetmcp" && cp -r "$FLEETMCP_RUNBOOKS" "$tmp/runbooks" && chmod -R a+rX "$tmp/runbooks"
    asnobody() { runuser -u nobody -- env FLEETMCP_RUNBOOKS="$tmp/runbooks" "$tmp/fleetmcp" check-config --config "$@" 2>&1; }
    cp -a "$tmp/s" "$tmp/perm"
    c=$(cfg perm "$tmp/perm/fm.db")
    chmod 644 "$c"
    chown -R nobody "$tmp/perm"
    chmod 444 "$tmp/perm/fm.db"
    out=$(asnobody "$c")
    [ $? = 1 ] && grep -q "cannot be read and written by this user (Permission denied)" <<<"$out" &&
        ok "a read-only store file: fix its owner or mode" || bad "read-only file: $out"
    chmod 644 "$tmp/perm/fm.db"
    chown root "$tmp/perm"
    chmod 755 "$tmp/perm"
    out=$(asnobody "$c")
    [ $? = 1 ] && grep -q "its directory $tmp/perm is not writable (Permission denied): SQLite keeps its -wal" <<<"$out" &&
        ok "an unwritable store directory" || bad "unwritable directory: $out"
    mkdir -p "$tmp/rootdir"
    out=$(asnobody "$(cfg rootonly "$tmp/rootdir/x/fm.db")")
    [ $? = 1 ] && grep -q "cannot be created ($tmp/rootdir: Permission denied)" <<<"$out" &&
        ok "a store whose directory cannot be made" || bad "cannot create: $out"
else
    echo "check-config: permission cases need root (to run as nobody)" >>"${FM_SKIPS:-/dev/null}"
    echo "skip: permission cases (not root)"
fi

# ---- PostgreSQL ------------------------------------------------------------------
if [ "${FM_CC_PG:-1}" = 1 ]; then
    . tests/store/pg-env.sh
    fm_pg_env check-config
    BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    port=$(cat "$FM_PG_DIR/port")
    psql() { "$BIN/psql" -q -h 127.0.0.1 -p "$port" -U fm -d fm -v ON_ERROR_STOP=1 "$@"; }
    c=$(cfg pg "$FM_TEST_PG")
    expect "PostgreSQL, empty: ok, the first message creates the tables" 0 \
        "has no fleetmcp tables yet; the first message creates them" "$c"
    n=$(psql -tAc "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
    [ "$n" = 0 ] && ok "PostgreSQL: no table created" || bad "PostgreSQL: $n tables after check-config"
    use_store "$c" || bad "serve on PostgreSQL: $(cat "$tmp/serve.err")"
    rows=$(psql -tAc "SELECT count(*) FROM audit")
    expect "PostgreSQL in use: ok" 0 ": ok$" "$c"
    [ "$(psql -tAc "SELECT count(*) FROM audit")" = "$rows" ] && ok "PostgreSQL: no row written" ||
        bad "PostgreSQL: audit rows changed"
    psql -c "UPDATE schema_migrations SET version = 99 WHERE subsystem = 'plans'"
    expect "PostgreSQL: a newer schema version" 1 "plans is at schema version 99, newer" "$c"
    psql -c "UPDATE schema_migrations SET version = 1 WHERE subsystem = 'plans'"
    psql -c "CREATE ROLE reader LOGIN; GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader;
             REVOKE CREATE ON SCHEMA public FROM PUBLIC"
    expect "PostgreSQL: a role that may only read is told which GRANT it needs" 1 \
        "this role may not read and write [0-9]+ of the store's tables: GRANT SELECT, INSERT" \
        "$(cfg pgreader "${FM_TEST_PG/fm@/reader@}")"
    psql -c "UPDATE schema_migrations SET version = 0 WHERE subsystem = 'plans'"
    expect "PostgreSQL: migrations due and no CREATE on the schema" 1 \
        "migrations are due but this role may not create tables" "$(cfg pgreader "${FM_TEST_PG/fm@/reader@}")"
    dead=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    expect "PostgreSQL unreachable: check store.url" 1 \
        "unreachable: .*check store.url \(or FLEETMCP_DB\) and that the server runs" \
        "$(cfg pgdead "postgresql://fm@127.0.0.1:$dead/fm")"
fi

rm -rf "$tmp"
tally_end check-config
