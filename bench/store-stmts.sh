#!/bin/bash
# Where PostgreSQL's work per audit append goes, counted (the counts
# hold on a shared machine; its CPU figure moves with the load): N
# writers (default 1) each
# make CALLS audited runbook_list calls against a throwaway PostgreSQL
# 15 with pg_stat_statements loaded (this cluster only), then per append:
# each statement's calls, execution time and WAL bytes, transactions,
# WAL bytes in all (pg_current_wal_lsn before and after), the rows each
# table got (so the indexes each insert maintains), inserts lost to
# another writer, and the CPU of every PostgreSQL process (/proc of the
# postmaster and its children, exited backends included; each server's
# start, its connection and schema check, is in it too, so make 1,000
# calls or more).
#   bash bench/store-stmts.sh [calls] [writers] [fsync on|off]
# FM_BENCH_SERVER=PATH counts another build's fleetmcp (main's, for an
# A/B); the client is this tree's.
set -euo pipefail
cd "$(dirname "$0")/.."
calls=${1:-1000} nw=${2:-1} fsync=${3:-off}
server=${FM_BENCH_SERVER:-build/fleetmcp}
tmp=$(mktemp -d /tmp/fm-bench-stmts.XXXXXX)
chmod 711 "$tmp" # the cluster runs as postgres when this runs as root
trap 'tests/store/pg-down.sh "$tmp/pg" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
mkdir "$tmp/pg"
url=$(FM_PG_FSYNC=$fsync tests/store/pg-up.sh "$tmp/pg")
port=$(cat "$tmp/pg/port")
# shellcheck disable=SC2012 # the newest of Debian's version directories
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
AS=()
[ "$(id -u)" = 0 ] && AS=(runuser -u postgres --)
psql() { "${AS[@]}" "$BIN/psql" -X -q -h "$tmp/pg" -p "$port" -U fm fm "$@"; }
psql -c "ALTER SYSTEM SET shared_preload_libraries='pg_stat_statements'"
"${AS[@]}" "$BIN/pg_ctl" -D "$tmp/pg/data" -l "$tmp/pg/pg.log" -w -t 60 restart -o \
    "-p $port -k $tmp/pg -c listen_addresses=127.0.0.1 -c fsync=$fsync" >/dev/null
psql -c "CREATE EXTENSION pg_stat_statements"
# shellcheck disable=SC2046 # one word per package
libs=$(pkg-config --cflags --libs $(make -s --no-print-directory print-pkgs))
# shellcheck disable=SC2086
cc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -Iinclude bench/mcpbench.c build/libfleetmcp.a \
    $libs -lpthread -lm -o "$tmp/mcpbench"
export FLEETMCP_AUDIT_DIR=$tmp/side FLEETMCP_RUNBOOKS=$PWD/runbooks
run() { # $1: calls, $2: when they start (mcpbench --calls-at; 0: at once)
    FLEETMCP_DB=$url "$tmp/mcpbench" --tool runbook_list --args '{"fault_class":"gpu_fallen_off_bus"}' \
        --starts 1 --pings 10 --calls "$1" --calls-at "${2:-0}" -- "$server"
}
pgcpu() { # microseconds of CPU of the postmaster and its children so far
    python3 - "$(head -1 "$tmp/pg/data/postmaster.pid")" <<'PY'
import os, sys
pm = sys.argv[1]
def stat(p):
    return open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
s = stat(pm)
t = sum(int(x) for x in s[11:15])  # its own and its exited children's
for d in filter(str.isdigit, os.listdir("/proc")):
    try:
        s = stat(d)
    except OSError:
        continue
    if s[1] == pm:
        t += int(s[11]) + int(s[12])
print(t * 1000000 // os.sysconf("SC_CLK_TCK"))
PY
}
run 50 >/dev/null # the schema, and every statement prepared once
psql -At -c "SELECT pg_stat_statements_reset(), pg_stat_reset(), pg_stat_reset_shared('wal')" >/dev/null
cpu0=$(pgcpu)
lsn0=$(psql -At -c "SELECT pg_current_wal_lsn()")
at=$(python3 -c 'import time; print(int((time.monotonic() + 2) * 1e6))')
for i in $(seq "$nw"); do FLEETMCP_AUDIT_STATS=1 run "$calls" "$at" >"$tmp/w.$i" 2>"$tmp/e.$i" & done
wait
cpu1=$(pgcpu)
n=$((calls * nw))
lost=$(cat "$tmp"/e.* | python3 -c '
import re, sys
print(sum(int(m[1]) for m in re.finditer(r"(\d+) inserts lost", sys.stdin.read())))')
echo "$nw writer(s), $calls calls each, fsync $fsync: per append, PostgreSQL CPU $(((cpu1 - cpu0) / n)) us," \
    "inserts lost $(python3 -c "print(round($lost / $n, 2))")"
psql -At -c "SELECT 'WAL bytes ' || round(pg_wal_lsn_diff(pg_current_wal_lsn(), '$lsn0') / $n)
    || ', WAL records ' || round(wal_records::numeric / $n, 1)
    || ', transactions ' || (SELECT round(xact_commit::numeric / $n, 2) FROM pg_stat_database
                             WHERE datname = 'fm') FROM pg_stat_wal"
psql -c "SELECT round(calls::numeric / $n, 2) AS per_append,
    round(((total_exec_time + total_plan_time) * 1000 / $n)::numeric, 1) AS us_per_append,
    round(wal_bytes / greatest(calls, 1)) AS wal_bytes,
    left(regexp_replace(query, '\s+', ' ', 'g'), 90) AS statement
  FROM pg_stat_statements WHERE calls >= $n / 100 ORDER BY total_exec_time DESC"
psql -c "SELECT relname AS table, round(n_tup_ins::numeric / $n, 2) AS inserts,
    round(n_tup_upd::numeric / $n, 2) AS updates, round(n_tup_hot_upd::numeric / $n, 2) AS hot,
    (SELECT string_agg(indexrelname, ' ') FROM pg_stat_user_indexes i WHERE i.relid = t.relid) AS indexes
  FROM pg_stat_user_tables t WHERE n_tup_ins + n_tup_upd >= $n / 100 ORDER BY 2 DESC"
