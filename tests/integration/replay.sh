#!/bin/bash
# Recorded sessions (tests/replay/*.jsonl: a diagnosis, a refused plan, an
# approved repair) replayed against the real stack in shadow mode: nothing
# may drift.  Then a runbook change must be caught as drift (exit 6): a
# removed step, a changed timeout_s, and a changed step of the workflow the
# approved repair ran.
set -u
cd "$(dirname "$0")/../.."
. tests/stack/with-stack.sh
dir=$fm_stack_dir
python3 -c 'import os, sys; sys.path.insert(0, "tests/replay"); import record; record.setup(os.environ)' || exit 1
cfg=$dir/replay.yaml
{ echo "mode: shadow"; grep -v '^mode:' "$FM_CONFIG"; } > "$cfg"
# shellcheck source=tests/lib/tally.sh
. tests/lib/tally.sh
for f in tests/replay/*.jsonl; do
    if FLEETMCP_DB=$dir/$(basename "$f").db build/mcp-cli --config "$cfg" replay "$f" > "$dir/out" 2>&1; then
        ok
    else
        bad "$f drifted:"; grep -v '^same' "$dir/out"
    fi
done
# drifts NAME SESSION PATTERN EDIT: replays SESSION with the Xid 79 runbook
# changed by the Python statements EDIT (on its document d); the replay
# must exit 6 (drift) with a line matching PATTERN.
drifts() {
    local name=$1 session=$2 pattern=$3 edit=$4 rc=0
    rm -rf "$dir/rb-$name" && mkdir -p "$dir/rb-$name" && cp -R runbooks/* "$dir/rb-$name/"
    python3 -c "import sys, yaml
p = sys.argv[1]
d = yaml.safe_load(open(p))
$edit
yaml.safe_dump(d, open(p, 'w'), sort_keys=False)" "$dir/rb-$name/rb-gpu-fallen-off-bus.yaml" || return 1
    FLEETMCP_RUNBOOKS=$dir/rb-$name FLEETMCP_DB=$dir/$name.db build/mcp-cli --config "$cfg" \
        replay "$session" > "$dir/out" 2>&1 || rc=$?
    if [ "$rc" -eq 6 ] && grep -Ezq "$pattern" "$dir/out"; then ok; else
        bad "$name was not caught as drift (exit $rc):"; cat "$dir/out"; fi
}
# A behaviour change must show: the Xid 79 runbook loses its probe step.
drifts removed-step tests/replay/refused-plan.jsonl "DRIFT call 1 repair_plan" '
d["version"] += 1
d["verification"] = [s for s in d["verification"] if s["action"] != "health_probe"] or d["verification"]
d["steps"] = [s for s in d["steps"] if s["action"] != "diag_bundle"]'
# A changed argument must show, though its key ends in _s: the same
# runbook (same version) with a longer wait for the job.
drifts changed-timeout tests/replay/refused-plan.jsonl "timeout_s: expected" '
for s in d["steps"]:
    if s["action"] == "wait_idle":
        s["timeout_s"] = s.get("timeout_s", 600) + 60'
# A changed step must show in the approved repair: replayed in shadow mode
# its workflow "would run", and the steps it would run are compared with
# the steps the recording ran.  Same version, one verification step less.
drifts changed-step tests/replay/approved-repair.jsonl \
    "DRIFT call 3 repair_execute:[^D]*workflow steps: recorded" '
d["verification"] = [s for s in d["verification"] if s["action"] != "health_probe"]'
tally_end replay
