#!/usr/bin/env python3
"""MCP elicitation as the optional second approval path: only when the
config enables it, only for a client it names as trusted, and only if that
client declared the capability.  Accepting approves exactly the plan, once;
declining leaves the usual APPROVAL refusal.  Every wait is bounded."""
import json
import os
import select
import sqlite3
import subprocess
import sys
import tempfile
import time

SERVER = sys.argv[1] if len(sys.argv) > 1 else "build/fleetmcp"
TMP = tempfile.mkdtemp(prefix="fm-elicit-")
DB = os.path.join(TMP, "e.db")
passed = failed = 0


def check(c, what):
    global passed, failed
    if c:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what)


def config(enabled):
    p = os.path.join(TMP, f"c{int(enabled)}.yaml")
    with open(p, "w") as f:
        f.write("mode: fleet\napprovals:\n  elicitation:\n"
                f"    enabled: {'true' if enabled else 'false'}\n"
                "    trusted_clients: [trusted-agent]\n")
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
decline = {"action": "decline"}
res, asked = session(config(True), "trusted-agent", True, accept)
check(len(asked) == 1 and "killswitch_release" in asked[0]["params"]["message"]
      and asked[0]["params"]["requestedSchema"]["properties"]["approve"]["type"] == "boolean",
      f"a trusted, capable client is asked: {asked}")
check(res.get("isError") is not True and res.get("structuredContent", {}).get("engaged") is False,
      f"accepted: the release ran: {res}")
con = sqlite3.connect(DB)
row = con.execute("select approver, used_ms is not null from approvals order by created_ms desc"
                  " limit 1").fetchone()
check(row == ("elicitation:trusted-agent", 1), f"approval recorded and used: {row}")
n = con.execute("select count(*) from audit where tool='killswitch_release' and phase='intent'"
                " and approval_id like 'ap-%'").fetchone()[0]
check(n == 1, f"the approved intent names its approval ({n})")

res, asked = session(config(True), "trusted-agent", True, decline)
check(len(asked) == 1 and res.get("isError") and "APPROVAL" in res["content"][0]["text"],
      f"declined: refused with APPROVAL: {res}")
res, asked = session(config(True), "other-agent", True, accept)
check(not asked and res.get("isError"), f"an untrusted client is never asked: {asked} {res}")
res, asked = session(config(True), "trusted-agent", False, accept)
check(not asked and res.get("isError"), "a client without the capability is never asked")
res, asked = session(config(False), "trusted-agent", True, accept)
check(not asked and res.get("isError"), "disabled in the config: never asked")
print(f"elicitation: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
