#!/usr/bin/env python3
"""Approvals as multi round-trip requests (2026-07-28) over fleetmcp --http:
a hitl call from a trusted client that declared elicitation gets an
InputRequiredResult; its requestState is sealed, bound to the caller and
the plan, single-use and expiring; everything else is denied by default.
Usage: mrtr.py path/to/fleetmcp"""
import json
import os
import signal
import sqlite3
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fmhttp import Checks, META, start, stateless  # noqa: E402

FM = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/fleetmcp")
tmp = tempfile.mkdtemp(prefix="fm-mrtr-")
check = Checks("http-mrtr")


CONFIG = os.path.join(tmp, "mrtr.yaml")
with open(CONFIG, "w") as f:
    f.write("mode: fleet\napprovals:\n  elicitation:\n    enabled: true\n"
            "    trusted_clients: [trusted-agent, second-agent]\n")
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
    assert st == 200, (st, b)
    return b["result"]


def engaged():
    return call("fleet_status", {})["structuredContent"]["kill_switch"]["engaged"]


ACCEPT = {"approve": {"action": "accept", "content": {"approve": True}}}
RELEASE = {"reason": "mrtr test"}

r = call("killswitch_engage", {"reason": "mrtr test"})
check(not r.get("isError") and engaged(), f"kill switch engaged: {r}")

# Deny by default: no capability, or a client the config does not trust.
r = call("killswitch_release", RELEASE, capable=False)
check(r.get("isError") and r["content"][0]["text"].startswith("APPROVAL") and
      r["resultType"] == "complete", f"a client that cannot answer is refused: {r}")
r = call("killswitch_release", RELEASE, name="stranger")
check(r.get("isError") and "inputRequests" not in r, f"an untrusted client is never asked: {r}")

# First round: the question and a sealed state.
r = call("killswitch_release", RELEASE)
ask = r.get("inputRequests", {}).get("approve", {})
state = r.get("requestState", "")
check(r.get("resultType") == "input_required" and ask.get("method") == "elicitation/create" and
      "killswitch_release" in ask["params"]["message"] and
      ask["params"]["requestedSchema"]["properties"]["approve"]["type"] == "boolean" and state,
      f"InputRequiredResult with requestState: {r}")

# A tampered state approves nothing: it is refused as invalid params.
def refused(extra):
    params = {"name": "killswitch_release", "arguments": RELEASE, "_meta": meta("trusted-agent")}
    params.update(extra)
    st, _, b = stateless(port, "tools/call", params)
    return st == 400 and b["error"]["code"] == -32602 and "issued" in b["error"]["message"]


forged = state[:-1] + ("0" if state[-1] != "0" else "1")
check(refused({"inputResponses": ACCEPT, "requestState": forged}) and engaged(),
      "a tampered state is refused")
# Neither does a state altered in its payload (the MAC covers it).
body, mac = state.split(".")
check(refused({"inputResponses": ACCEPT, "requestState": body[:-2] + "AA." + mac}) and engaged(),
      "a state with an altered payload is refused")
# Another caller cannot spend it.
r = call("killswitch_release", RELEASE, name="second-agent",
         extra={"inputResponses": ACCEPT, "requestState": state})
check(r.get("isError") and engaged(), f"a state issued to another caller is refused: {r}")
# Nor can it approve a different plan (other arguments).
r = call("killswitch_release", {"reason": "something else"},
         extra={"inputResponses": ACCEPT, "requestState": state})
check(r.get("isError") and engaged(), f"a state for another plan is refused: {r}")
# A decline spends a fresh state and approves nothing.
r = call("killswitch_release", RELEASE)
declined = r["requestState"]
r = call("killswitch_release", RELEASE,
         extra={"inputResponses": {"approve": {"action": "decline"}}, "requestState": declined})
check(r.get("isError") and engaged(), f"a decline is a refusal: {r}")
r = call("killswitch_release", RELEASE, extra={"inputResponses": ACCEPT, "requestState": declined})
check(r.get("isError") and engaged(), "a spent state cannot be answered again")

# The real answer: accepted, the release runs once.
r = call("killswitch_release", RELEASE, extra={"inputResponses": ACCEPT, "requestState": state})
check(not r.get("isError") and r.get("resultType") == "complete" and not engaged(),
      f"accepted: the release ran: {r}")
# Replayed after success: refused, the switch stays engaged.
call("killswitch_engage", {"reason": "mrtr test again"})
r = call("killswitch_release", RELEASE, extra={"inputResponses": ACCEPT, "requestState": state})
check(r.get("isError") and engaged(), f"a replayed state is refused: {r}")

srv.send_signal(signal.SIGTERM)
check(srv.wait(timeout=10) == 0, "server exits 0")
con = sqlite3.connect(os.path.join(tmp, "mrtr.db"))
rows = con.execute("select approver from approvals").fetchall()
check(rows == [("elicitation:trusted-agent",)], f"exactly one approval, by the asked client: {rows}")
n = con.execute("select count(*) from audit where tool='killswitch_release' and phase='intent'"
                " and approval_id like 'ap-%'").fetchone()[0]
check(n == 1, f"one approved intent in the audit ({n})")
check.finish()
