# Sourced by tests and the demo that need the local stack for themselves:
#   . tests/stack/with-stack.sh   (from the repository root)
# Starts a fresh stack in its own directory, exports its stack.env and
# stops it (and removes the directory) when the script exits.
fm_stack_dir=$(mktemp -d /tmp/fm-stack-own.XXXXXX)
fm_stack_cleanup() {
    FM_STACK_NO_RECORD=1 bash tests/stack/down.sh "$fm_stack_dir" > /dev/null 2>&1
    rm -rf "$fm_stack_dir" "$fm_stack_dir.log"
}
trap fm_stack_cleanup EXIT
if ! FM_STACK_NO_RECORD=1 bash tests/stack/up.sh "$fm_stack_dir" > "$fm_stack_dir.log" 2>&1; then
    echo "FAIL: the local stack did not start:"
    tail -20 "$fm_stack_dir.log"
    exit 1
fi
rm -f "$fm_stack_dir.log"
set -a
. "$fm_stack_dir/stack.env"
set +a
