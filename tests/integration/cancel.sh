#!/bin/bash
# Progress and cancellation on a real long call: a canary repair waits for
# a job to leave the node, sending notifications/progress; the client
# sends notifications/cancelled; the call stops, no response is sent for
# it, the server keeps serving, and the audit says CANCELLED.
set -u
cd "$(dirname "$0")/../.."
. tests/stack/with-stack.sh
dir=$fm_stack_dir
python3 - <<'PY'
import json, os, select, subprocess, sys, time
sys.path[:0] = ["tests/replay", "tests/lib"]
from session import Session
from tally import Tally
stack = os.environ["FM_STACK"]
cfg = os.path.join(stack, "cancel.yaml")
with open(os.environ["FM_CONFIG"]) as f:
    base = f.read()
with open(cfg, "w") as f:
    f.write(base.replace("mode: shadow", "mode: fleet") if "mode:" in base else "mode: fleet\n" + base)
db = os.path.join(stack, "cancel.db")
TALLY = Tally("cancel", quiet_ok=True)
check = TALLY.check
env = dict(os.environ)
subprocess.run(["python3", "tests/stack/gpu_state.py", "inject", "gpu-a04", "row_remap_pending"], check=True)
job = subprocess.run(["sbatch", "--parsable", "-o", "/dev/null", "-w", "gpu-a04", "--wrap", "sleep 120"],
                     capture_output=True, text=True, env=env).stdout.strip().split(";")[0]
for _ in range(50):
    out = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True).stdout
    if "RUNNING" in out: break
    time.sleep(0.2)
s = Session("build/fleetmcp", cfg, db, client="cancel-test")
# The canary repair runs unapproved only on a fresh diagnosis of its class,
# from evidence fleetmcp collects itself (node mode: the injected Xid 63 in
# the node's journal and nvidia-smi -q), never from lines the caller passes.
dg, err = s.call("diagnose", node="gpu-a04")
top = (dg or {}).get("top") or {}
check(top.get("fault_class") == "gpu_row_remap_pending" and top.get("act"),
      f"diagnose collects the row remap on gpu-a04 at act: {top or err}")
plan, err = s.call("repair_plan", node="gpu-a04", fault_class="gpu_row_remap_pending")
check(plan and plan.get("plan_id"), f"repair_plan on the canary node: {err}")
pid = plan["plan_id"] if plan else "pl-0000000000000000"
s.send({"jsonrpc": "2.0", "id": 900, "method": "tools/call",
        "params": {"name": "repair_execute", "arguments": {"plan_id": pid},
                   "_meta": {"progressToken": "tok-1"}}})
progress, answered, deadline = [], None, time.time() + 60
# Wait for progress from the waiting step, then cancel.
while time.time() < deadline and len(progress) < 2 and answered is None:
    r, _, _ = select.select([s.p.stdout], [], [], 1.0)
    if not r: continue
    s.buf += os.read(s.p.stdout.fileno(), 1 << 20)
    while b"\n" in s.buf:
        line, s.buf = s.buf.split(b"\n", 1)
        m = json.loads(line)
        if m.get("method") == "notifications/progress": progress.append(m["params"])
        elif m.get("id") == 900: answered = m
check(len(progress) >= 2 and all(p["progressToken"] == "tok-1" for p in progress),
      f"progress notifications with the token ({len(progress)}; early answer: {answered})")
check(all(progress[i]["progress"] <= progress[i + 1]["progress"] for i in range(len(progress) - 1)),
      "progress never goes backwards")
s.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 900, "reason": "test"}})
time.sleep(3)
r = s.rpc("ping", {}, timeout=30)
check(r.get("result") == {}, "server still serves after the cancel")
# No response for the cancelled request may arrive.
late = [json.loads(l) for l in s.buf.split(b"\n") if l.strip()]
check(not any(m.get("id") == 900 for m in late) and answered is None, "no response for the cancelled call")
s.close()
import sqlite3
con = sqlite3.connect(db)
n = con.execute("select count(*) from audit where tool='repair_execute' and phase='result' and error_code='CANCELLED'").fetchone()[0]
check(n == 1, f"audit records the cancellation ({n})")
subprocess.run(["scancel", job])
sys.exit(TALLY.summary())
PY
