#!/bin/sh
# Log throughput of the diagnose scanner against grep -E over the same
# literal set, on one core.  Usage: bench/diagnose.sh [MIB] (default 1024).
# Needs build/libfleetmcp.a (make).  The synthetic log goes to $TMPDIR
# (default /tmp) and is removed afterwards; it is generated only if the
# filesystem has room for it twice over.
set -e
cd "$(dirname "$0")/.."
MIB=${1:-1024}
B=build/bench
mkdir -p "$B"
${CC:-cc} -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
  -Wmissing-prototypes -Wno-unused-parameter -Iinclude -O2 -g -o "$B/diagnose_throughput" \
  bench/diagnose_throughput.c build/libfleetmcp.a \
  $(pkg-config --cflags --libs $(make -s --no-print-directory print-pkgs)) -lpthread -lm
TMP=${TMPDIR:-/tmp}
need=$((MIB * 2 * 1024))
avail=$(df -Pk "$TMP" | awk 'NR==2 {print $4}')
if [ "$avail" -lt "$need" ]; then
    echo "diagnose bench: $TMP has ${avail} KiB free, needs ${need}; set TMPDIR or a smaller MIB" >&2
    exit 1
fi
LOG="$TMP/fleetmcp-bench-$$.log"
PAT="$TMP/fleetmcp-bench-$$.pat"
trap 'rm -f "$LOG" "$PAT"' EXIT
ONE=""
command -v taskset >/dev/null && ONE="taskset -c 0"
"$B/diagnose_throughput" gen "$LOG" "$MIB" 42
"$B/diagnose_throughput" patterns runbooks/signatures.yaml "$PAT"
cat "$LOG" > /dev/null   # both runs start from the page cache
OUT=$($ONE "$B/diagnose_throughput" scan runbooks/signatures.yaml "$LOG")
echo "$OUT"
ours=$(echo "$OUT" | sed -n 's/.*with I\/O \([0-9.]*\) s.*/\1/p')
t0=$(date +%s.%N)
n=$(LC_ALL=C $ONE grep -E -c -f "$PAT" "$LOG" || true)
t1=$(date +%s.%N)
bytes=$(stat -c %s "$LOG")
python3 - "$bytes" "$ours" "$t0" "$t1" "$n" <<'PY'
import sys
b, ours, t0, t1, n = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
g = t1 - t0
print(f"grep -E -c -f literals (LC_ALL=C): {n} lines, {g:.2f} s ({b/1e6/g:.0f} MB/s)")
print(f"diagnose {b/1e6/ours:.0f} MB/s vs grep {b/1e6/g:.0f} MB/s: ratio {g/ours:.2f}x "
      f"(target >= 200 MB/s: {'met' if b/1e6/ours >= 200 else 'NOT met'})")
PY
