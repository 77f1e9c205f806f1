#!/bin/sh
# The node table's snapshot at 16,384 nodes (bench/snapshot_load.c): write
# and restore as one value against the SELECT of 16,384 rows, on SQLite and
# on a throwaway PostgreSQL on loopback.  Needs build/libfleetmcp.a (make).
set -e
cd "$(dirname "$0")/.."
B=build/bench
mkdir -p "$B"
${CC:-cc} -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
  -Wmissing-prototypes -Wno-unused-parameter -Iinclude -Itests/unit -O2 -g -o "$B/snapshot_load" \
  bench/snapshot_load.c build/libfleetmcp.a \
  $(pkg-config --cflags --libs $(make -s --no-print-directory print-pkgs)) -lpthread -lm
tmp=$(mktemp -d /tmp/fm-bench-snap.XXXXXX)
chmod 711 "$tmp"
trap 'tests/store/pg-down.sh "$tmp/pg" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
export FLEETMCP_AUDIT_DIR=$tmp/side
mkdir -p "$FLEETMCP_AUDIT_DIR" "$tmp/pg"
fix=tests/fixtures/slurm/rest_v0.0.38_nodes.json
"$B/snapshot_load" "$tmp/bench.db" "$fix"
url=$(tests/store/pg-up.sh "$tmp/pg")
"$B/snapshot_load" "$url" "$fix"
