#!/bin/sh
# Runs every Check program in BUILD/tests; prints Check's own summary per
# suite and fails if any suite fails.
BUILD=${1:-build}
fail=0
for t in "$BUILD"/tests/test_*; do
    case "$t" in *.d) continue ;; esac
    [ -x "$t" ] || continue
    echo "== $(basename "$t")"
    if ! CK_DEFAULT_TIMEOUT=${CK_DEFAULT_TIMEOUT:-60} "$t"; then
        echo "FAILED: $t"
        fail=1
    fi
done
exit $fail
