#!/usr/bin/env bash
# Stage store-pg: the store on a real, throwaway PostgreSQL (started here,
# loopback and a socket dir, stopped on exit).  Runs the unit tests that
# open a store against PostgreSQL (FM_TEST_PG; stage unit runs them on
# SQLite), among them the two-process, two-host blast-radius race (50
# rounds, exactly one proceeds), then tests/store/pg_server.py (four
# writers on one chain; PostgreSQL restarted mid-calls).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
make -s all $(ls tests/unit/test_*.c | sed "s|tests/unit/\(.*\)\.c|$BUILD/tests/\1|")
. tests/store/pg-env.sh
fm_pg_env store-pg
URL=$FM_TEST_PG DIR=$FM_PG_DIR
# A fresh schema per test costs more on PostgreSQL than a new SQLite file.
export CK_TIMEOUT_MULTIPLIER=4 CK_DEFAULT_TIMEOUT=60
fail=0
for t in "$BUILD"/tests/test_*; do
    case "$t" in *.d) continue ;; esac
    case "$t" in
    # The "sqlite" case (a v1 SQLite file, SQLite's WAL) is SQLite's own.
    */test_audit) cases=chain ;;
    *) cases= ;;
    esac
    echo "== $(basename "$t") on PostgreSQL"
    if ! env ${cases:+CK_RUN_CASE=$cases} "$t"; then
        echo "FAILED: $t on PostgreSQL"
        fail=1
    fi
done
# A host whose clock runs 60 s ahead: leases are on the server's clock, so
# it leaves a live owner's workflow alone (test_workflow, case "clock").
cc -shared -fPIC -O2 -Wall -Wextra -Werror -o "$BUILD/tests/skew_clock.so" tests/store/skew_clock.c -ldl
echo "== test_workflow (clock) on PostgreSQL, this host's clock 60 s ahead"
if ! env LD_PRELOAD="$PWD/$BUILD/tests/skew_clock.so" FM_TEST_SKEW_MS=60000 CK_RUN_CASE=clock \
    "$BUILD/tests/test_workflow"; then
    echo "FAILED: test_workflow (clock) with a skewed clock on PostgreSQL"
    fail=1
fi
python3 tests/store/pg_server.py "$BUILD/fleetmcp" "$URL" "$DIR" || fail=1
exit $fail
