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
passed=0
failed=0
for f in tests/replay/*.jsonl; do
    if FLEETMCP_DB=$dir/$(basename "$f").db build/mcp-cli --config "$cfg" replay "$f" > "$dir/out" 2>&1; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1)); echo "FAIL: $f drifted:"; grep -v '^same' "$dir/out"
    fi
done
# A behaviour change must show: the Xid 79 runbook loses its probe step.
mkdir -p "$dir/runbooks"
cp -R runbooks/* "$dir/runbooks/"
python3 - "$dir/runbooks/rb-gpu-fallen-off-bus.yaml" <<'PY'
import sys, yaml
p = sys.argv[1]
d = yaml.safe_load(open(p))
d["version"] += 1
d["verification"] = [s for s in d["verification"] if s["action"] != "health_probe"] or d["verification"]
d["steps"] = [s for s in d["steps"] if s["action"] != "diag_bundle"]
yaml.safe_dump(d, open(p, "w"), sort_keys=False)
PY
rc=0
FLEETMCP_RUNBOOKS=$dir/runbooks FLEETMCP_DB=$dir/changed.db build/mcp-cli --config "$cfg" replay tests/replay/refused-plan.jsonl > "$dir/out" 2>&1 || rc=$?
if [ "$rc" -eq 6 ] && grep -q "DRIFT call 1 repair_plan" "$dir/out"; then passed=$((passed + 1)); else
    failed=$((failed + 1)); echo "FAIL: a runbook change was not caught as drift (exit $rc):"; cat "$dir/out"; fi
# A changed argument must show, though its key ends in _s: the same
# runbook (same version) with a longer wait for the job.
rm -rf "$dir/runbooks2" && mkdir -p "$dir/runbooks2" && cp -R runbooks/* "$dir/runbooks2/"
python3 - "$dir/runbooks2/rb-gpu-fallen-off-bus.yaml" <<'PY'
import sys, yaml
p = sys.argv[1]
d = yaml.safe_load(open(p))
for s in d["steps"]:
    if s["action"] == "wait_idle":
        s["timeout_s"] = s.get("timeout_s", 600) + 60
yaml.safe_dump(d, open(p, "w"), sort_keys=False)
PY
rc=0
FLEETMCP_RUNBOOKS=$dir/runbooks2 FLEETMCP_DB=$dir/changed2.db build/mcp-cli --config "$cfg" replay tests/replay/refused-plan.jsonl > "$dir/out" 2>&1 || rc=$?
if [ "$rc" -eq 6 ] && grep -q "timeout_s: expected" "$dir/out"; then passed=$((passed + 1)); else
    failed=$((failed + 1)); echo "FAIL: a changed timeout_s was not caught as drift (exit $rc):"; cat "$dir/out"; fi
# A changed step must show in the approved repair: replayed in shadow mode
# its workflow "would run", and the steps it would run are compared with
# the steps the recording ran.  Same version, one verification step less.
rm -rf "$dir/runbooks3" && mkdir -p "$dir/runbooks3" && cp -R runbooks/* "$dir/runbooks3/"
python3 - "$dir/runbooks3/rb-gpu-fallen-off-bus.yaml" <<'PY'
import sys, yaml
p = sys.argv[1]
d = yaml.safe_load(open(p))
d["verification"] = [s for s in d["verification"] if s["action"] != "health_probe"]
yaml.safe_dump(d, open(p, "w"), sort_keys=False)
PY
rc=0
FLEETMCP_RUNBOOKS=$dir/runbooks3 FLEETMCP_DB=$dir/changed3.db build/mcp-cli --config "$cfg" replay tests/replay/approved-repair.jsonl > "$dir/out" 2>&1 || rc=$?
if [ "$rc" -eq 6 ] && grep -A3 "DRIFT call 3 repair_execute" "$dir/out" | grep -q "workflow steps: recorded"; then
    passed=$((passed + 1)); else
    failed=$((failed + 1)); echo "FAIL: a changed workflow step was not caught as drift (exit $rc):"; cat "$dir/out"; fi
echo "replay: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
