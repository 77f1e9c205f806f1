# Sourced by test scripts.  `fm_skipped REASON...` prints a check left out
# and, under make check (tests/run-check.sh), appends it to $FM_SKIPS so
# the closing summary counts and lists it: a skip is never silent.
fm_skipped() {
    printf 'skip %s\n' "$*"
    [ -z "${FM_SKIPS:-}" ] || printf '%s: %s\n' "${FM_STAGE:-$(basename "$0")}" "$*" >>"$FM_SKIPS"
}
