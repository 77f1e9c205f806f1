# Sourced by the mcp-cli test scripts (from the repository root): the
# tally (tests/lib/tally.sh) and two checks.  The caller sets $tmp (a
# scratch directory) first.
# shellcheck source=tests/lib/tally.sh
. tests/lib/tally.sh
expect() { # expect CODE DESCRIPTION -- command...: the exit code; output in $tmp/out, $tmp/err
    local want=$1 what=$2
    shift 3
    "$@" > "$tmp/out" 2> "$tmp/err"
    local got=$?
    if [ "$got" -eq "$want" ]; then ok; else
        bad "$what: exit $got, wanted $want"; cat "$tmp/out" "$tmp/err"; fi
}
contains() { # contains FILE TEXT DESCRIPTION
    if grep -q -- "$2" "$1"; then ok; else bad "$3: '$2' not in $(head -c 400 "$1")"; fi
}
