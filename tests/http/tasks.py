#!/usr/bin/env python3
"""Tasks (io.modelcontextprotocol/tasks, 2026-07-28) over HTTP and stdio, and
the same tasks in the 2025-11-25 core shapes on a stateful session.

A real long call (the conformance fixture's slow_compute, registered
through the same registry, gate and audit as fleetmcp's tools, sleeping in
cancellable steps) runs as a task: created at once, polled with tasks/get
from whichever worker answers, its result inlined when done, with exactly
one audit row written by the runner; cancelled (audited with the caller,
the runner stops); bound to its caller (another client gets "unknown task"
for get and cancel); still there after the server is stopped and started
again on the same store (polled from the new process until it completes);
reported failed when its runner is killed; and the same over stdio.  The
wire shapes themselves are checked by the conformance suite's tasks
scenarios (tests/conformance/run.py).
Usage: tasks.py path/to/fleetmcp path/to/conformance-fixture"""
import json
import os
import re
import select
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fmhttp import Checks, post, start, stateless, wait_exit  # noqa: E402

FM = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/fleetmcp")
FIX = os.path.abspath(sys.argv[2] if len(sys.argv) > 2 else "build/conformance-fixture")
EXT = "io.modelcontextprotocol/tasks"
tmp = tempfile.mkdtemp(prefix="fm-tasks-")
DB = os.path.join(tmp, "tasks.db")
check = Checks("http-tasks")
if not os.path.exists(FIX):
    raise SystemExit(f"{FIX} is missing: make build/conformance-fixture")


def serve(argv, name):
    return start(None, tmp=tmp, argv=argv, name=name)


def meta(client="tasks-test", tasks=True):
    caps = {"extensions": {EXT: {}}} if tasks else {}
    return {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": caps,
            "io.modelcontextprotocol/clientInfo": {"name": client, "version": "1"}}


def rpc(port, method, params, client="tasks-test", tasks=True):
    params = dict(params, _meta=meta(client, tasks))
    h = {"Mcp-Name": params["taskId"]} if "taskId" in params else None
    st, _, b = stateless(port, method, params, h)
    return st, b if isinstance(b, dict) else {}


def start_task(port, seconds, label):
    st, b = rpc(port, "tools/call", {"name": "slow_compute",
                                     "arguments": {"seconds": seconds, "label": label}})
    return b.get("result", {})


def get(port, tid, client="tasks-test"):
    return rpc(port, "tasks/get", {"taskId": tid}, client)


def poll(port, tid, until=("completed", "failed", "cancelled"), timeout=20):
    deadline = time.time() + timeout
    r = {}
    while time.time() < deadline:
        _, b = get(port, tid)
        r = b.get("result", {})
        if r.get("status") in until:
            return r
        time.sleep(0.2)
    return r


def runner_pid(tid):
    con = sqlite3.connect(DB, timeout=10)
    row = con.execute("SELECT runner_pid FROM mcp_tasks WHERE id = ?", (tid,)).fetchone()
    con.close()
    return row[0] if row else None


def gone(pid, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not os.path.exists(f"/proc/{pid}") or \
                open(f"/proc/{pid}/stat").read().split(")")[-1].split()[0] == "Z":
            return True
        time.sleep(0.1)
    return False


def audit(sql, args=()):
    con = sqlite3.connect(DB, timeout=10)
    rows = con.execute(sql, args).fetchall()
    con.close()
    return rows


srv, port = serve([FIX, "--db", DB], "fixture")

# Advertised under capabilities.extensions (2026-07-28).
st, b = rpc(port, "server/discover", {})
check(EXT in b.get("result", {}).get("capabilities", {}).get("extensions", {}),
      f"server/discover advertises {EXT}: {b}")

# Create: answered at once with the task, durably (tasks/get resolves).
t0 = time.time()
task = start_task(port, 3, "first")
tid = task.get("taskId", "")
check(task.get("resultType") == "task" and task.get("status") == "working" and
      re.fullmatch(r"task-[0-9a-f]{32}", tid) and time.time() - t0 < 2,
      f"a 3 s call answers at once with an unguessable task id: {task}")
st, b = get(port, tid)
check(b.get("result", {}).get("status") == "working" and "result" not in b.get("result", {}),
      f"tasks/get right away: working, no result yet: {b}")

deadline, msg = time.time() + 3, ""
while time.time() < deadline and "computing" not in msg:
    msg = get(port, tid)[1].get("result", {}).get("statusMessage", "")
    time.sleep(0.2)
check("computing" in msg, f"a working task's statusMessage is the runner's progress: {msg!r}")

# Bound to its caller: another client learns nothing and cancels nothing.
st, b = get(port, tid, client="intruder")
check(st == 400 and b.get("error", {}).get("code") == -32602,
      f"another caller's tasks/get: unknown task (-32602): {st} {b}")
st, b = rpc(port, "tasks/cancel", {"taskId": tid}, client="intruder")
check(st == 400 and b.get("error", {}).get("code") == -32602,
      f"another caller's tasks/cancel: unknown task (-32602): {st} {b}")
st, b = rpc(port, "tasks/get", {"taskId": tid}, tasks=False)
check(st == 400 and b.get("error", {}).get("code") == -32021,
      f"tasks/get without the extension declared: -32021: {st} {b}")

# Result: inlined once completed; one audit row, written by the runner.
r = poll(port, tid)
text = (r.get("result", {}).get("content") or [{}])[0].get("text", "")
check(r.get("status") == "completed" and "Computed first after 3 s" in text,
      f"the task completes with the tool's result inlined: {r}")
rows = audit("SELECT phase, result IS NOT NULL, client_name FROM audit WHERE tool ="
             " 'slow_compute' AND result LIKE '%first%'")
check(rows == [("call", 1, "tasks-test")],
      f"one audit row for the call, with its result and caller: {rows}")
check(gone(runner_pid(tid), 5), "the runner exits after writing the result")

# Cancel: acked empty, status cancelled at once, the runner stops, audited.
task = start_task(port, 60, "to-cancel")
cid = task.get("taskId", "")
pid = runner_pid(cid)
st, b = rpc(port, "tasks/cancel", {"taskId": cid})
check(st == 200 and b.get("result") == {"resultType": "complete"},
      f"tasks/cancel acks with an empty complete result: {st} {b}")
st, b = get(port, cid)
check(b.get("result", {}).get("status") == "cancelled", f"cancelled at once: {b}")
check(pid and gone(pid, 5), f"the runner {pid} stops within a cancellation check")
rows = audit("SELECT client_name, decision FROM audit WHERE tool = 'tasks/cancel' AND args"
             " LIKE ?", (f"%{cid}%",))
check(rows == [("tasks-test", "allow")], f"the cancel is audited with its caller: {rows}")
st, b = get(port, cid)
check(b.get("result", {}).get("status") == "cancelled",
      f"the runner's late result does not undo the cancel: {b}")

# A server restart mid-task: the new process answers for the task.
task = start_task(port, 4, "restart")
rid = task.get("taskId", "")
srv.send_signal(signal.SIGTERM)
check(wait_exit(srv, 30) == 0, "the server stops cleanly with a task running")
srv, port = serve([FIX, "--db", DB], "fixture-again")
st, b = get(port, rid)
check(b.get("result", {}).get("status") in ("working", "completed"),
      f"the restarted server knows the task: {b}")
r = poll(port, rid)
check(r.get("status") == "completed" and "restart" in json.dumps(r.get("result")),
      f"polled from the new process, the task completes: {r}")

# A runner killed mid-task: reported failed (protocol-level), not forever working.
task = start_task(port, 60, "killed")
kid = task.get("taskId", "")
os.kill(runner_pid(kid), signal.SIGKILL)
time.sleep(0.3)
r = poll(port, kid, timeout=5)
check(r.get("status") == "failed" and r.get("error", {}).get("code") == -32603 and
      "result" not in r, f"a killed runner's task is failed with an error: {r}")

# A task-only tool refuses a client without the extension.
st, b = rpc(port, "tools/call", {"name": "failing_job", "arguments": {}}, tasks=False)
check(st == 400 and b.get("error", {}).get("code") == -32021 and
      EXT in json.dumps(b.get("error", {}).get("data")),
      f"a task-only tool without the extension: -32021 naming it: {st} {b}")
srv.send_signal(signal.SIGTERM)
check(wait_exit(srv, 30) == 0, "the fixture stops cleanly")

# The real server offers tasks too (its long tools: repair_execute,
# health_probe level 3, node_reboot), and knows no one else's task ids.
CONF = os.path.join(tmp, "fm.yaml")
with open(CONF, "w") as f:
    f.write("mode: fleet\n")
fm, fport = serve([FM, "--config", CONF, "--db", os.path.join(tmp, "fm.db")], "fleetmcp")
st, b = rpc(fport, "server/discover", {})
check(EXT in b.get("result", {}).get("capabilities", {}).get("extensions", {}),
      f"fleetmcp advertises {EXT}: {b}")
st, b = get(fport, tid)
check(st == 400 and b.get("error", {}).get("code") == -32602,
      f"a task id from another store is unknown: {st} {b}")
fm.send_signal(signal.SIGTERM)
check(wait_exit(fm, 30) == 0, "fleetmcp stops cleanly")

# stdio: the same tasks, the runner beside the stdio server.
p = subprocess.Popen([FIX, "--stdio", "--db", DB], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                     stderr=subprocess.DEVNULL)
buf = b""


def line_rpc(i, method, params, timeout=5):
    global buf
    msg = {"jsonrpc": "2.0", "id": i, "method": method, "params": dict(params, _meta=meta())}
    p.stdin.write((json.dumps(msg) + "\n").encode())
    p.stdin.flush()
    deadline = time.time() + timeout
    while time.time() < deadline:
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            m = json.loads(line)
            if m.get("id") == i:
                return m
        r, _, _ = select.select([p.stdout], [], [], 0.2)
        if r:
            chunk = os.read(p.stdout.fileno(), 65536)
            if not chunk:
                break
            buf += chunk
    return {}


m = line_rpc(1, "tools/call", {"name": "slow_compute", "arguments": {"seconds": 2,
                                                                     "label": "stdio"}})
sid = m.get("result", {}).get("taskId", "")
check(m.get("result", {}).get("resultType") == "task" and sid, f"stdio: a task is created: {m}")
status, n = "", 2
deadline = time.time() + 15
while time.time() < deadline and status not in ("completed", "failed", "cancelled"):
    m = line_rpc(n, "tasks/get", {"taskId": sid})
    status = m.get("result", {}).get("status", "")
    n += 1
    time.sleep(0.2)
check(status == "completed" and "Computed stdio" in json.dumps(m),
      f"stdio: polled to completion: {m}")
p.stdin.close()
check(wait_exit(p, 10) == 0, "stdio fixture exits at EOF")

# ---- the same tasks in the 2025-11-25 core shapes, on a stateful session ------
srv, port = serve([FIX, "--db", DB], "fixture-2025")


def session25(client):
    st, hd, b = post(port, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": client, "version": "1"}}})
    h = {"Mcp-Session-Id": hd.get("mcp-session-id", ""), "MCP-Protocol-Version": "2025-11-25"}
    post(port, {"jsonrpc": "2.0", "method": "notifications/initialized"}, h)
    return (b or {}).get("result", {}), h


def rpc25(h, method, params, rid=2):
    st, _, b = post(port, {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}, h)
    return b if isinstance(b, dict) else {}


init, h25 = session25("tasks-2025")
check(init.get("capabilities", {}).get("tasks") ==
      {"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}},
      f"2025-11-25: initialize offers tasks for tools/call, and tasks/list: "
      f"{init.get('capabilities')}")
tools = {t["name"]: t for t in rpc25(h25, "tools/list", {}).get("result", {}).get("tools", [])}
check(tools.get("slow_compute", {}).get("execution") == {"taskSupport": "optional"} and
      tools.get("test_tool_with_task", {}).get("execution") == {"taskSupport": "required"} and
      "execution" not in tools.get("test_simple_text", {}),
      "2025-11-25: tools/list says which tools run as tasks")
t0 = time.time()
r = rpc25(h25, "tools/call", {"name": "slow_compute", "task": {"ttl": 60000},
                              "arguments": {"seconds": 1, "label": "twenty25"}})
task = r.get("result", {}).get("task", {})
check(task.get("status") == "working" and task.get("taskId", "").startswith("task-") and
      task.get("ttl") and task.get("pollInterval") and time.time() - t0 < 2,
      f"2025-11-25: tools/call with task answers CreateTaskResult at once: {r}")
tid = task.get("taskId", "none")
g = rpc25(h25, "tasks/get", {"taskId": tid}).get("result", {})
check(g.get("taskId") == tid and g.get("status") in ("working", "completed") and
      "result" not in g and "ttlMs" not in g, f"2025-11-25: tasks/get answers the Task: {g}")
res = rpc25(h25, "tasks/result", {"taskId": tid}).get("result", {})
check("Computed twenty25" in json.dumps(res.get("content")) and
      res.get("_meta", {}).get("io.modelcontextprotocol/related-task") == {"taskId": tid},
      f"2025-11-25: tasks/result waits for the end and answers the tool's result: {res}")
_, other = session25("someone-else")
e = rpc25(other, "tasks/get", {"taskId": tid}).get("error", {})
check(e.get("code") == -32602 and "unknown task" in e.get("message", ""),
      f"2025-11-25: another caller gets unknown task: {e}")
r = rpc25(h25, "tools/call", {"name": "slow_compute", "task": {},
                              "arguments": {"seconds": 30, "label": "cancel25"}})
tid = r.get("result", {}).get("task", {}).get("taskId", "none")
c = rpc25(h25, "tasks/cancel", {"taskId": tid}).get("result", {})
check(c.get("status") == "cancelled" and c.get("taskId") == tid,
      f"2025-11-25: tasks/cancel answers the cancelled Task: {c}")
e = rpc25(h25, "tasks/result", {"taskId": tid}).get("error", {})
check(e.get("code") == -32602 and "cancelled" in e.get("message", ""),
      f"2025-11-25: a cancelled task has no result: {e}")
e = rpc25(h25, "tools/call", {"name": "test_simple_text", "task": {}, "arguments": {}})
check(e.get("error", {}).get("code") == -32601,
      f"2025-11-25: a tool that does not run as a task refuses task: {e}")
e = rpc25(h25, "tools/call", {"name": "test_tool_with_task", "arguments": {}})
check(e.get("error", {}).get("code") == -32601,
      f"2025-11-25: a task-only tool refuses a call without task: {e}")
r = rpc25(h25, "tools/call", {"name": "slow_compute", "arguments": {"seconds": 0, "label": "now"}})
check("Computed now" in json.dumps(r.get("result", {})),
      f"2025-11-25: without task the call runs in the request as before: {r}")


def list25(h, cursor=None):
    r = rpc25(h, "tasks/list", {"cursor": cursor} if cursor else {})
    return r.get("result", {}), r.get("error")


# tasks/list: only the caller's tasks, newest first, as Tasks without results.
page, err = list25(h25)
mine = [t.get("taskId") for t in page.get("tasks", [])]
check(err is None and len(mine) >= 2 and tid in mine and mine.index(tid) == 0 and
      all(set(t) <= {"taskId", "status", "createdAt", "lastUpdatedAt", "ttl", "pollInterval",
                     "statusMessage"} for t in page.get("tasks", [])) and "nextCursor" not in page,
      f"2025-11-25: tasks/list shows the caller's tasks, newest first: {page} {err}")
page, _ = list25(other)
check(page.get("tasks") == [], f"2025-11-25: another caller's tasks/list is empty: {page}")
page, err = list25(h25, "12.task-" + "0" * 31 + "g")
check(not page and (err or {}).get("code") == -32602,
      f"2025-11-25: a cursor the server did not give is invalid params: {err}")

# Pages: 60 more of this caller's tasks (rows as the server writes them),
# read 50 at a time with the cursor, each exactly once.
owner = audit("SELECT owner FROM mcp_tasks WHERE id = ?", (tid,))[0][0]
now = int(time.time() * 1000)
con = sqlite3.connect(DB, timeout=10)
con.executemany("INSERT INTO mcp_tasks(id, owner, tool, status, created_ms, updated_ms, ttl_ms)"
                " VALUES(?, ?, 'slow_compute', 'completed', ?, ?, 600000)",
                [("task-%032x" % (0xabc000 + i), owner, now - 100000 + i // 2, now)
                 for i in range(60)])
con.commit()
con.close()
seen, cursor, pages = [], None, 0
while pages < 10:
    page, err = list25(h25, cursor)
    pages += 1
    seen += [t["taskId"] for t in page.get("tasks", [])]
    cursor = page.get("nextCursor")
    if err or not cursor:
        break
check(pages == 2 and len(seen) == len(set(seen)) == 60 + len(mine) and
      {"task-%032x" % (0xabc000 + i) for i in range(60)} <= set(seen),
      f"2025-11-25: tasks/list pages with nextCursor, every task once: {pages} pages,"
      f" {len(seen)} tasks ({len(set(seen))} distinct)")

# ttl: asked for, bounded by the server's range, and the end of what is shown.
for asked, kept in ((1500, 1500), (5, 1000), (10 ** 12, 86400000), (None, 86400000)):
    r = rpc25(h25, "tools/call", {"name": "slow_compute", "task": {"ttl": asked},
                                  "arguments": {"seconds": 1, "label": "ttl"}})
    got = r.get("result", {}).get("task", {}).get("ttl")
    check(got == kept, f"2025-11-25: task ttl {asked} is kept as {kept}: {r}")
e = rpc25(h25, "tools/call", {"name": "slow_compute", "task": {"ttl": "soon"},
                              "arguments": {"seconds": 0, "label": "ttl"}})
check(e.get("error", {}).get("code") == -32602, f"2025-11-25: a ttl that is not a number: {e}")
r = rpc25(h25, "tools/call", {"name": "slow_compute", "task": {"ttl": 1500},
                              "arguments": {"seconds": 4, "label": "outlived"}})
short = r.get("result", {}).get("task", {}).get("taskId", "none")
pid = runner_pid(short)
time.sleep(2.0)
e = rpc25(h25, "tasks/get", {"taskId": short}).get("error", {})
check(e.get("code") == -32602 and "unknown task" in e.get("message", ""),
      f"2025-11-25: past its ttl a task is unknown to tasks/get: {e}")
e = rpc25(h25, "tasks/result", {"taskId": short}).get("error", {})
check(e.get("code") == -32602, f"2025-11-25: and to tasks/result: {e}")
page, _ = list25(h25)
check(short not in [t.get("taskId") for t in page.get("tasks", [])],
      "2025-11-25: and tasks/list leaves it out")
check(pid and not gone(pid, 0.1), f"2025-11-25: the work behind it runs on (runner {pid} alive)")
check(pid and gone(pid, 15) and
      audit("SELECT status FROM mcp_tasks WHERE id = ?", (short,)) == [("completed",)],
      "2025-11-25: and finishes on its own, its row completed (no longer shown)")
srv.send_signal(signal.SIGTERM)
check(wait_exit(srv, 35) == 0, "2025-11-25 fixture exits on SIGTERM")
check.finish()
