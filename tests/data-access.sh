#!/usr/bin/env bash
# Stage data-access (issue 14): every store table is touched by exactly
# one source file, its module, except the pairs tools/data-access.allow
# names with a reason.  Then the check itself is checked, on a scratch
# copy of src/: it must fail when a second file starts using a table, and
# when an allow-list line no longer matches anything.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 tools/data-access.py
scratch=$(mktemp -d /tmp/fm-data-access.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/tools"
cp -R src "$scratch/"
cp tools/data-access.allow "$scratch/tools/"
expect_fail() { # what, then the message the check must print
    local out
    if out=$(python3 tools/data-access.py --root "$scratch" 2>&1); then
        echo "data-access: FAILED: the check passed with $1" >&2
        return 1
    fi
    grep -qF "$2" <<<"$out" || {
        echo "data-access: FAILED: with $1 the check did not say '$2':" >&2
        echo "$out" >&2
        return 1
    }
    echo "data-access: refused, as it must, $1"
}
# A second file reading node_states, split over two literals as C joins them.
cat >"$scratch/src/gate/intruder.c" <<'C'
static const char q[] = "SELECT state FROM "
                        "node_states WHERE node=?";
C
expect_fail "a second file reading node_states" \
    "table node_states is touched by 2 files: src/gate/intruder.c, src/nodestate/nodestate.c"
rm "$scratch/src/gate/intruder.c"
# A write counts too (INSERT INTO), and a comment naming the table does not.
cat >"$scratch/src/mcp/intruder.c" <<'C'
/* SELECT * FROM plans: a comment, not a statement */
static const char w[] = "INSERT INTO plans(id) VALUES(?)";
C
expect_fail "a second file writing plans" "table plans is touched by 2 files"
echo '/* DELETE FROM plans (a comment only) */' >"$scratch/src/mcp/intruder.c"
python3 tools/data-access.py --root "$scratch" >/dev/null
rm "$scratch/src/mcp/intruder.c"
# A stale allow-list line: the pair it excuses is gone.
echo "plans src/tools/plans.c stale on purpose" >>"$scratch/tools/data-access.allow"
expect_fail "a stale allow-list line" "src/tools/plans.c no longer touches plans"
