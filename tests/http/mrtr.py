#!/usr/bin/env python3
"""Approvals as multi round-trip requests (2026-07-28) over fleetmcp --http,
as they stand until callers are identified by verified credentials: the
InputRequiredResult approval path trusts clients by the name they declare,
so a config that enables it is refused at start (any client can call itself
a trusted name), and every hitl call without a signed approval is denied by
default, with no question asked and nothing run, whatever the client sends
as requestState.  The sealed state itself is unit-tested (test_exchange)
and the round trip by the conformance suite's input-required scenarios.
Usage: mrtr.py path/to/fleetmcp"""
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fmhttp import Checks, META, start, stateless  # noqa: E402

FM = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/fleetmcp")
tmp = tempfile.mkdtemp(prefix="fm-mrtr-")
check = Checks("http-mrtr")

# A config that would let a self-declared name approve is refused at start.
TRUSTING = os.path.join(tmp, "trusting.yaml")
with open(TRUSTING, "w") as f:
    f.write("mode: fleet\napprovals:\n  elicitation:\n    enabled: true\n"
            "    trusted_clients: [trusted-agent]\n")
p = subprocess.run([FM, "--config", TRUSTING, "--db", os.path.join(tmp, "t.db"), "--http",
                    "127.0.0.1:0"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                   timeout=20)
check(p.returncode != 0 and "self-declared" in p.stderr,
      f"a config trusting a declared client name does not start: {p.returncode} {p.stderr[-300:]}")

CONFIG = os.path.join(tmp, "mrtr.yaml")
with open(CONFIG, "w") as f:
    f.write("mode: fleet\n")
srv, port = start(FM, CONFIG, tmp, db="mrtr.db")


def meta(name, capable=True):
    m = dict(META)
    m["io.modelcontextprotocol/clientInfo"] = {"name": name, "version": "1"}
    m["io.modelcontextprotocol/clientCapabilities"] = {"elicitation": {}} if capable else {}
    return m


def call(tool, args, name="trusted-agent", capable=True, extra=None):
    params = {"name": tool, "arguments": args, "_meta": meta(name, capable)}
    params.update(extra or {})
    st, _, b = stateless(port, "tools/call", params)
    return st, b


def engaged():
    st, b = call("fleet_status", {})
    return b["result"]["structuredContent"]["kill_switch"]["engaged"]


ACCEPT = {"approve": {"action": "accept", "content": {"approve": True}}}
RELEASE = {"reason": "mrtr test"}

st, b = call("killswitch_engage", {"reason": "mrtr test"})
check(st == 200 and not b["result"].get("isError") and engaged(), f"kill switch engaged: {b}")

# Deny by default, with or without the capability, under any name.
for name, capable in (("trusted-agent", True), ("mcp-cli", True), ("stranger", False)):
    st, b = call("killswitch_release", RELEASE, name=name, capable=capable)
    r = b.get("result", {})
    check(st == 200 and r.get("isError") and r["content"][0]["text"].startswith("APPROVAL") and
          r.get("resultType") == "complete" and "inputRequests" not in r and engaged(),
          f"{name} (capability {capable}) is refused without a question: {b}")

# A requestState the server never issued approves nothing.
st, b = call("killswitch_release", RELEASE,
             extra={"inputResponses": ACCEPT, "requestState": "AAAA.AAAA"})
check(st == 400 and b["error"]["code"] == -32602 and engaged(),
      f"a requestState the server did not issue is refused: {st} {b}")

srv.send_signal(signal.SIGTERM)
check(srv.wait(timeout=10) == 0, "server exits 0")
con = sqlite3.connect(os.path.join(tmp, "mrtr.db"))
n = con.execute("select count(*) from approvals").fetchone()[0]
check(n == 0, f"no approval was recorded ({n})")
n = con.execute("select count(*) from audit where tool='killswitch_release' and phase='intent'"
                ).fetchone()[0]
check(n == 0, f"no release intent in the audit ({n})")
check.finish()
