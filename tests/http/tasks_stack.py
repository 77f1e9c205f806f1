#!/usr/bin/env python3
"""A real long call as a task against the local stack (driven by
tests/http/tasks-stack.sh, which starts the stack): fleetmcp --http wired
to Slurm and the sshd with the fake GPU tools runs health_probe level 3
(dcgmi diag -r 3 over SSH) on the canary node as a task, then the same
probe for a client without the extension in the request; a node_reboot
without approval is refused in the request, before any task exists.
Usage: tasks_stack.py path/to/fleetmcp"""
import json
import os
import re
import signal
import sqlite3
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fmhttp import Checks, start, stateless, wait_exit  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from stack_config import backends_yaml  # noqa: E402

FM = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/fleetmcp")
STACK = os.environ["FM_STACK"]
EXT = "io.modelcontextprotocol/tasks"
tmp = tempfile.mkdtemp(prefix="fm-tasks-stack-")
check = Checks("http-tasks-stack")

# The stack's backends (slurm, metrics, ssh); our own mode and store.
CONF = os.path.join(tmp, "fm.yaml")
with open(CONF, "w") as f:
    f.write("mode: fleet\ncanary:\n  feature: canary\n" + backends_yaml(STACK))
srv, port = start(FM, CONF, tmp, db="stack.db")
DB = os.path.join(tmp, "stack.db")


def call(method, params, tasks=True):
    caps = {"extensions": {EXT: {}}} if tasks else {}
    params = dict(params, _meta={"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                                 "io.modelcontextprotocol/clientCapabilities": caps,
                                 "io.modelcontextprotocol/clientInfo": {"name": "stack-agent",
                                                                        "version": "1"}})
    h = {"Mcp-Name": params["taskId"]} if "taskId" in params else None
    st, _, b = stateless(port, method, params, h)
    return st, b if isinstance(b, dict) else {}


t0 = time.time()
st, b = call("tools/call", {"name": "health_probe", "arguments": {"node": "gpu-a04", "level": 3}})
r = b.get("result", {})
tid = r.get("taskId", "")
check(r.get("resultType") == "task" and re.fullmatch(r"task-[0-9a-f]{32}", tid),
      f"health_probe level 3 on the canary node answers with a task: {st} {b}")
print(f"task created in {1000 * (time.time() - t0):.0f} ms")
deadline = time.time() + 120
messages = set()
while time.time() < deadline:
    st, b = call("tasks/get", {"taskId": tid})
    r = b.get("result", {})
    messages.add(r.get("statusMessage", ""))
    if r.get("status") in ("completed", "failed", "cancelled"):
        break
    time.sleep(0.1)
print(f"status messages seen: {sorted(messages)}")
sc = r.get("result", {}).get("structuredContent", {})
check(r.get("status") == "completed" and sc.get("level") == 3 and sc.get("node") == "gpu-a04"
      and isinstance(sc.get("tests"), list) and sc["tests"],
      f"the task completes with dcgmi's level-3 result: {json.dumps(r)[:800]}")
print(f"task done in {time.time() - t0:.1f} s")
con = sqlite3.connect(DB, timeout=10)
rows = con.execute("SELECT phase, decision, client_name FROM audit WHERE tool = 'health_probe'"
                   " ORDER BY id").fetchall()
con.close()
check(rows and rows[0][:2] == ("intent", "allow") and rows[-1][0] == "result" and
      all(x[2] == "stack-agent" for x in rows),
      f"the gate's intent in the request, the runner's result row, one caller: {rows}")

# The same probe without the extension: run in the request, as before.
st, b = call("tools/call", {"name": "health_probe", "arguments": {"node": "gpu-a04", "level": 3}},
             tasks=False)
r = b.get("result", {})
check(r.get("resultType") == "complete" and r.get("structuredContent", {}).get("level") == 3,
      f"without the extension the probe answers in the request: {json.dumps(b)[:500]}")

# A hitl call without approval is refused in the request: no task is made.
st, b = call("tools/call", {"name": "node_reboot", "arguments": {"node": "gpu-b01",
                                                                  "reason": "tasks test"}})
r = b.get("result", {})
text = json.dumps(r)
check(r.get("isError") is True and "APPROVAL" in text and "taskId" not in r,
      f"node_reboot without approval: refused in the request, no task: {text[:400]}")
con = sqlite3.connect(DB, timeout=10)
n = con.execute("SELECT count(*) FROM mcp_tasks WHERE tool = 'node_reboot'").fetchone()[0]
con.close()
check(n == 0, f"no task row for the refused reboot: {n}")
srv.send_signal(signal.SIGTERM)
check(wait_exit(srv, 30) == 0, "fleetmcp stops cleanly")
check.finish()
