#!/bin/bash
# Fleet metrics end to end: a canary repair completes, a shadow-mode
# recommendation is later carried out by a human, and `fleetmcp metrics
# --textfile` into node_exporter's textfile directory shows up in the real
# Prometheus with the right values.
set -u
cd "$(dirname "$0")/../.."
. tests/stack/with-stack.sh
dir=$fm_stack_dir
export FLEETMCP_DB=$dir/metrics.db
# shellcheck source=tests/lib/tally.sh
. tests/lib/tally.sh
build/mcp-cli keygen --out "$dir/alice.key" --approver alice > "$dir/keygen.txt"
fleet=$dir/fleet.yaml
{ echo "mode: fleet"; grep -v '^mode:' "$FM_CONFIG"; sed -n '/^approvals:/,$p' "$dir/keygen.txt"; } > "$fleet"
shadow=$dir/shadow.yaml
{ echo "mode: shadow"; grep -v '^mode:' "$FM_CONFIG"; } > "$shadow"

# 1. A canary repair that completes (row remap pending on the canary node).
python3 tests/stack/gpu_state.py inject gpu-a04 row_remap_pending > /dev/null
# The canary repair runs unapproved only on a fresh diagnosis of its class,
# from evidence fleetmcp collects itself (node mode reads the injected Xid).
build/mcp-cli --config "$fleet" --format json call diagnose node=gpu-a04 |
    python3 -c 'import json,sys; t=json.load(sys.stdin)["structuredContent"]["top"]; sys.exit(not (t["fault_class"] == "gpu_row_remap_pending" and t["act"]))' &&
    ok || bad "diagnose collects the row remap on gpu-a04 at act"
plan=$(build/mcp-cli --config "$fleet" --format json call repair_plan node=gpu-a04 fault_class=gpu_row_remap_pending |
       python3 -c 'import json,sys; print(json.load(sys.stdin)["structuredContent"]["plan_id"])')
if build/mcp-cli --config "$fleet" --timeout 300 call repair_execute plan_id="$plan" > "$dir/out" 2>&1; then ok; else bad "canary repair: $(tail -5 "$dir/out")"; fi
# 2. An agent in shadow mode recommends draining gpu-b03; a human then does.
build/mcp-cli --config "$shadow" --server "env FLEETMCP_DB=$FLEETMCP_DB build/fleetmcp --config $shadow" call node_drain node=gpu-b03 reason=flaky > /dev/null 2>&1
build/mcp-cli --config "$fleet" call node_drain node=gpu-b03 reason=flaky 2> "$dir/err"
p2=$(grep -o 'pl-[0-9a-f]\{16\}' "$dir/err" | head -1)
ap=$(build/mcp-cli --config "$fleet" --format json approve "$p2" --key "$dir/alice.key" --approver alice --yes 2>/dev/null |
     python3 -c 'import json,sys; print(json.load(sys.stdin)["structuredContent"]["approval_id"])')
if build/mcp-cli --config "$fleet" call node_drain node=gpu-b03 reason=flaky approval_id="$ap" > /dev/null 2>&1; then ok; else bad "human drain with approval"; fi

# 3. The figures, from the store and then through Prometheus.
build/fleetmcp metrics --config "$fleet" > "$dir/m.json" || bad "metrics"
python3 - "$dir/m.json" <<'PY' && ok || bad "metrics values: $(cat "$dir/m.json")"
import json, sys
m = json.load(open(sys.argv[1]))
assert m["automation_success_ratio"] == 1.0, m
assert m["mean_repair_seconds"] and m["mean_repair_seconds"] > 0, m
assert m["nodes"].get("returned", 0) >= 1, m
assert m["shadow_recommendations"] == 1 and m["shadow_agreement_ratio"] == 1.0, m
PY
build/fleetmcp metrics --config "$fleet" --textfile "$FM_STACK/textfile/fleetmcp.prom" || bad "textfile"
python3 - "$FM_PROM_URL" <<'PY' && ok || bad "Prometheus did not show the metrics"
import json, sys, time, urllib.parse, urllib.request
url = sys.argv[1]
def q(expr):
    with urllib.request.urlopen(f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": expr}), timeout=5) as r:
        return json.load(r)["data"]["result"]
for _ in range(40):
    a = q("fleetmcp_automation_success_ratio")
    b = q('fleetmcp_nodes{state="returned"}')
    c = q("fleetmcp_shadow_agreement_ratio")
    d = q('fleetmcp_tool_calls{tool="repair_execute",decision="allow"}')
    if a and b and c and d:
        assert float(a[0]["value"][1]) == 1.0 and float(b[0]["value"][1]) >= 1
        assert float(c[0]["value"][1]) == 1.0 and float(d[0]["value"][1]) >= 1
        sys.exit(0)
    time.sleep(0.5)
sys.exit(1)
PY
# fleet_status carries the same view.
build/mcp-cli --config "$fleet" --format json call fleet_status > "$dir/fs.json" &&
python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["structuredContent"]; assert s["metrics"]["automation_success_ratio"]==1.0 and "workflows" in s and s["capacity_removed_nodes"]>=1, s' "$dir/fs.json" && ok || bad "fleet_status metrics"
tally_end fleet-metrics
