#!/bin/bash
# `make demo`: the story of one broken GPU node, driven with mcp-cli the way
# an agent (and then a human) would, against a real local stack: Slurm with
# 7 nodes, Prometheus with DCGM metrics, sshd with fake GPU tools.
# Starts the stack, injects an Xid 79 under a running job, diagnoses, plans,
# shows the refusal without approval, approves with a demo key, repairs
# with progress, verifies, files the ticket, shows the audit trail, verifies
# the chain, and tears everything down.
set -u
cd "$(dirname "$0")/.."
B=$'\e[1m' N=$'\e[0m'
[ -t 1 ] || B="" N=""
say() { echo; echo "${B}### $*${N}"; }
agent() { echo "${B}[agent]\$ mcp-cli $*${N}"; build/mcp-cli --client demo-agent --config "$cfg" "$@"; local rc=$?; [ $rc -eq 0 ] || echo "(exit $rc)"; return 0; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

say "Starting the local stack (Slurm, Prometheus, sshd; all on 127.0.0.1)"
t0=$SECONDS
. tests/stack/with-stack.sh
dir=$fm_stack_dir
export FLEETMCP_DB=$dir/demo.db
echo "up in $((SECONDS - t0)) s: nodes $FM_NODES"
build/mcp-cli keygen --out "$dir/oncall.key" --approver oncall-alice > "$dir/keygen.txt"
cfg=$dir/demo.yaml
{ echo "mode: fleet"; grep -v '^mode:' "$FM_CONFIG"; sed -n '/^approvals:/,$p' "$dir/keygen.txt"; } > "$cfg"
echo "config: $cfg (mode fleet, one approver key: oncall-alice)"

say "1. An agent reads the fleet"
agent call slurm_nodes limit=3
job=$(sbatch --parsable -o /dev/null -w gpu-a02 -J train-llm --wrap 'sleep 12' | cut -d';' -f1)
echo "(a training job $job is running on gpu-a02)"

say "2. GPU 0 of gpu-a02 falls off the bus (Xid 79 injected)"
python3 tests/stack/gpu_state.py inject gpu-a02 xid79 > /dev/null
for _ in $(seq 1 30); do   # bounded: until Prometheus has scraped it
    build/mcp-cli --config "$cfg" --format json call gpu_health node=gpu-a02 2>/dev/null |
        grep -q '"faulty"' && break
    sleep 0.5
done
agent call gpu_health node=gpu-a02

say "3. Diagnose: from the node's own signals (Prometheus, Slurm, kernel log over SSH)"
build/mcp-cli --client demo-agent --config "$cfg" --format json call diagnose node=gpu-a02 > "$dir/diag.json"
json '"top: %s  confidence %.2f  act=%s  runbook=%s\n  evidence: %s" % (d["structuredContent"]["top"]["fault_class"], d["structuredContent"]["top"]["confidence"], d["structuredContent"]["top"]["act"], d["structuredContent"]["top"].get("runbook"), d["structuredContent"]["top"]["evidence"][0])' < "$dir/diag.json"
agent call ticket_create node=gpu-a02 fault_class=gpu_fallen_off_bus summary="GPU 0 fell off the bus (Xid 79)" \
    --args '{"evidence": ["NVRM: Xid 79 on GPU 0000:18:00.0", "DCGM series for GPU 0 stopped"]}'

say "4. Plan the repair (a dry run: steps, risk, guardrails, approval)"
build/mcp-cli --client demo-agent --config "$cfg" --format json call repair_plan node=gpu-a02 fault_class=gpu_fallen_off_bus > "$dir/plan.json"
plan=$(json 'd["structuredContent"]["plan_id"]' < "$dir/plan.json")
python3 - "$dir/plan.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))["structuredContent"]
print(f"plan {p['plan_id']}: runbook {p['runbook'].get('id')} v{p['runbook'].get('version')}, risk {p['risk']}, approval needed: {p['approval_needed']}")
for i, s in enumerate(p["steps"], 1):
    print(f"  step {i}: {s.get('action') if isinstance(s, dict) else s}")
g = p["guardrails"]
for v in g.get("verdicts", g if isinstance(g, list) else []):
    print(f"  guardrail {v['guardrail']:<20} {'ok' if v['ok'] else 'REFUSED'}  {v['detail'][:70]}")
print(f"  next: {p['next'][:150]}")
PY

say "5. The agent tries to run it: refused, and told exactly what a human must do"
agent call repair_execute plan_id="$plan"

say "6. A human approves it with their key (the server only holds public keys)"
echo "${B}[human]\$ mcp-cli approve $plan --key oncall.key --approver oncall-alice${N}"
build/mcp-cli --config "$cfg" --format json approve "$plan" --key "$dir/oncall.key" --approver oncall-alice --ttl 10m --yes > "$dir/ap.json" 2> "$dir/plan.txt"
sed 's/^/  /' "$dir/plan.txt"
ap=$(json 'd["structuredContent"]["approval_id"]' < "$dir/ap.json")
echo "approval: $ap (single use, expires in 10 min)"

say "7. The agent runs the approved plan: drain waits for the job, reboot, verify, resume"
echo "${B}[agent]\$ mcp-cli call repair_execute plan_id=$plan approval_id=$ap${N}"
build/mcp-cli --client demo-agent --config "$cfg" --timeout 300 --format json call repair_execute plan_id="$plan" approval_id="$ap" > "$dir/run.json"
json '"workflow %s: %s, %d steps" % (d["structuredContent"]["workflow_id"], d["structuredContent"]["status"], len(d["structuredContent"]["steps"]))' < "$dir/run.json"
echo "${B}[agent]\$ mcp-cli call repair_execute plan_id=$plan approval_id=$ap   # again${N}"
build/mcp-cli --client demo-agent --config "$cfg" call repair_execute plan_id="$plan" approval_id="$ap" 2>&1 | cut -c1-160

say "8. Verify: the node is back in Slurm and its GPUs are healthy"
agent call slurm_node node=gpu-a02 2>/dev/null | grep -E '"(state|reason|open_ticket)"|IDLE|MIXED' | head -5
build/mcp-cli --config "$cfg" --format json call gpu_health node=gpu-a02 | json '"gpu_health verdict: " + d["structuredContent"]["verdict"]'

say "9. The ticket, and the audit trail of everything above"
tk=$(build/mcp-cli --config "$cfg" --format json call ticket_search node=gpu-a02 | json 'd["structuredContent"]["tickets"][0]["key"]')
agent call ticket_update key="$tk" comment="Repaired by fleetmcp workflow; GPU back after reboot" > /dev/null
build/mcp-cli --config "$cfg" --format json call ticket_get key="$tk" | json '"%s [%s] %s (node %s, %s comment(s))" % (d["structuredContent"]["key"], d["structuredContent"]["status"], d["structuredContent"]["summary"], d["structuredContent"]["node"], d["structuredContent"].get("comments_count"))'
build/mcp-cli --config "$cfg" --format json call audit_query node=gpu-a02 limit=40 |
    json '"\n".join("  #%-3d %-8s %-16s %-7s %-18s %s" % (r["id"], r["phase"], r["tool"], r["decision"], r["initiator"], (r.get("error") or r.get("reason") or r.get("state_after") or "")[:60]) for r in reversed(d["structuredContent"]["rows"]))'
echo; echo "${B}\$ fleetmcp audit verify${N}"
build/fleetmcp audit verify
echo; echo "demo done in $((SECONDS - t0)) s; tearing the stack down"
