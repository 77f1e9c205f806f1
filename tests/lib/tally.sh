# The pass/fail tally every shell test harness keeps (tests/lib/tally.py's
# counterpart), sourced from the repository root:
#   . tests/lib/tally.sh
#   ok | bad "what failed"   for each check (with tally_verbose=1 set
#                            before sourcing, ok "what" prints it too)
#   tally_end NAME           last: prints "NAME: P passed, F failed" and
#                            returns nonzero if any check failed
# A failure is printed the moment it happens, so a log cut off by a
# timeout still says what went wrong.
passed=0
failed=0
ok() {
    passed=$((passed + 1))
    [ "${tally_verbose:-0}" = 1 ] && echo "ok: $*"
    return 0
}
bad() {
    failed=$((failed + 1))
    echo "FAIL: $*"
}
tally_end() {
    echo "$1: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
