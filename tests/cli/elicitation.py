#!/usr/bin/env python3
"""MCP elicitation as a second approval path is refused until clients are
identified (issue 13, item 5): trusted_clients would match the name a client
declares for itself, so any client calling itself mcp-cli would approve its
own plans.  check-config and the server refuse such a config; with
elicitation off, a client that calls itself mcp-cli and declares the
capability is never asked and its hitl call is refused; and an unsigned
"elicitation" approval row found in the store releases nothing.  Every
wait is bounded."""
import json
import os
import select
import sqlite3
import subprocess
import sys
import tempfile
import time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from tally import Tally  # noqa: E402

SERVER = sys.argv[1] if len(sys.argv) > 1 else "build/fleetmcp"
TMP = tempfile.mkdtemp(prefix="fm-elicit-")
DB = os.path.join(TMP, "e.db")


TALLY = Tally("elicitation", quiet_ok=True)
check = TALLY.check


def config(enabled, trusted="mcp-cli"):
    p = os.path.join(TMP, f"c{int(enabled)}.yaml")
    with open(p, "w") as f:
        f.write("mode: fleet\napprovals:\n  elicitation:\n"
                f"    enabled: {'true' if enabled else 'false'}\n"
                f"    trusted_clients: [{trusted}]\n")
    return p


def session(cfg, name, capable, answer):
    """Runs engage + release; returns (release result, elicitation requests seen)."""
    p = subprocess.Popen([SERVER, "--config", cfg], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, env=dict(os.environ, FLEETMCP_DB=DB))
    buf = b""
    asked = []

    def send(o):
        p.stdin.write(json.dumps(o).encode() + b"\n")
        p.stdin.flush()

    def wait_for(i, deadline=20):
        nonlocal buf
        end = time.time() + deadline
        while time.time() < end:
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                m = json.loads(line)
                if m.get("method") == "elicitation/create":
                    asked.append(m)
                    send({"jsonrpc": "2.0", "id": m["id"], "result": answer})
                elif m.get("id") == i and "method" not in m:
                    return m
            r, _, _ = select.select([p.stdout], [], [], 0.5)
            if r:
                buf += os.read(p.stdout.fileno(), 1 << 20)
        return None

    caps = {"elicitation": {}} if capable else {}
    send({"jsonrpc": "2.0", "id": 1, "method": "initialize",
          "params": {"protocolVersion": "2025-11-25", "capabilities": caps,
                     "clientInfo": {"name": name, "version": "1"}}})
    wait_for(1)
    send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    send({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
          "params": {"name": "killswitch_engage", "arguments": {"reason": "elicitation test"}}})
    wait_for(2)
    send({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
          "params": {"name": "killswitch_release", "arguments": {"reason": "elicitation test"}}})
    r = wait_for(3, 60)
    p.stdin.close()
    p.wait(10)
    return (r or {}).get("result", {}), asked


accept = {"action": "accept", "content": {"approve": True}}

# The config that trusts a self-declared name is refused, with its line.
r = subprocess.run([SERVER, "check-config", "--config", config(True)], capture_output=True,
                   text=True)
check(r.returncode == 1 and "c1.yaml:4:" in r.stdout and "self-declared" in r.stdout,
      f"check-config refuses elicitation trusting a client name: {r.stdout}{r.stderr}")
r = subprocess.run([SERVER, "--config", config(True)], input="", capture_output=True, text=True,
                   env=dict(os.environ, FLEETMCP_DB=DB), timeout=30)
check(r.returncode != 0 and "self-declared" in r.stderr,
      f"the server refuses to start with it: {r.returncode} {r.stderr}")

# Off: a client calling itself mcp-cli, with the capability, is never asked.
res, asked = session(config(False), "mcp-cli", True, accept)
check(not asked and res.get("isError") and "APPROVAL" in res["content"][0]["text"],
      f"a client named mcp-cli is never asked and is refused: {asked} {res}")

# An unsigned approval row (as an elicitation once recorded, or as anyone
# with the store can write) releases nothing.
con = sqlite3.connect(DB)
plan, phash = con.execute("select id, hash from plans where tool='killswitch_release'"
                          " order by created_ms desc limit 1").fetchone()
con.execute("update plans set status='approved' where id=?", (plan,))
con.execute("insert into approvals(id,plan_id,plan_hash,approver,expires_ms,signature,created_ms)"
            " values('ap-00000000000000e1',?,?,'elicitation:mcp-cli',?,'elicitation',?)",
            (plan, phash, int(time.time() * 1000) + 600000, int(time.time() * 1000)))
con.commit()
con.close()
p = subprocess.run([SERVER, "--config", config(False)], capture_output=True, text=True, timeout=60,
                   env=dict(os.environ, FLEETMCP_DB=DB), input="\n".join(json.dumps(m) for m in [
                       {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                                   "clientInfo": {"name": "mcp-cli", "version": "1"}}},
                       {"jsonrpc": "2.0", "method": "notifications/initialized"},
                       {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                        "params": {"name": "killswitch_release",
                                   "arguments": {"reason": "elicitation test",
                                                 "approval_id": "ap-00000000000000e1"}}}]) + "\n")
reply = [json.loads(ln) for ln in p.stdout.splitlines() if '"id":2' in ln.replace(" ", "")]
res = reply[0]["result"] if reply else {}
check(res.get("isError") and "APPROVAL" in res["content"][0]["text"] and
      "elicited approvals" in res["content"][0]["text"],
      f"an unsigned elicitation row is refused when used: {res}")
con = sqlite3.connect(DB)
engaged = con.execute("select value from settings where key='killswitch'").fetchone()[0]
con.close()
check(engaged.startswith("engaged"), f"the kill switch stayed engaged: {engaged}")
sys.exit(TALLY.summary())
