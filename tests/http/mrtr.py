#!/usr/bin/env python3
"""Approvals as multi round-trip requests (2026-07-28) over fleetmcp --http.
Trust is bound to verified principals: a config naming self-declared client
names (trusted_clients) is refused at start; without auth every hitl call
without a signed approval is denied with no question asked, whatever the
client sends as requestState.  With auth, a token subject listed in
approvals.elicitation.trusted_subjects is asked and its answer releases the
call once (recorded under the subject); another subject is refused
unasked whatever name its client declares; and separate_creator refuses
the creator's own elicited approval.  The sealed state itself is
unit-tested (test_exchange) and the round trip by the conformance suite.
Usage: mrtr.py path/to/fleetmcp"""
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fmhttp import Checks, HITL_SCOPES, META, auth_yaml, bearer, start, stateless  # noqa: E402

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
con.close()

# ---- trust bound to verified principals: token subjects, not client names ------------
# alice's token is trusted (approvals.elicitation.trusted_subjects); bob's is
# not, and a client calling itself a trusted name proves nothing.
ALICE, BOB = "alice-" + os.urandom(8).hex(), "bob-" + os.urandom(8).hex()


def verified_config(name, separate):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write("mode: fleet\n"
                + auth_yaml({"token": ALICE, "subject": "alice@example.com", "scopes": HITL_SCOPES},
                            {"token": BOB, "subject": "bob-bot", "scopes": HITL_SCOPES}) +
                "approvals:\n"
                f"  separate_creator: {'true' if separate else 'false'}\n"
                "  elicitation:\n    enabled: true\n    trusted_subjects: [alice@example.com]\n")
    return path


def vcall(port_, tok, tool, args, name="some-agent", extra=None):
    params = {"name": tool, "arguments": args, "_meta": meta(name)}
    params.update(extra or {})
    st, _, b = stateless(port_, "tools/call", params, bearer(tok))
    return st, b.get("result", {}) if isinstance(b, dict) else {}


def released(port_, tok, name="some-agent"):
    """Engages, then asks to release: (first answer, second answer)."""
    vcall(port_, tok, "killswitch_engage", {"reason": "mrtr verified"})
    st, r1 = vcall(port_, tok, "killswitch_release", RELEASE, name)
    if r1.get("resultType") != "input_required":
        return r1, None
    st, r2 = vcall(port_, tok, "killswitch_release", RELEASE, name,
                   {"inputResponses": ACCEPT, "requestState": r1.get("requestState")})
    return r1, r2


srv, port = start(FM, verified_config("verified.yaml", False), tmp, db="verified.db")
r1, r2 = released(port, BOB, name="trusted-agent")
check(r2 is None and r1.get("isError") and "APPROVAL" in r1["content"][0]["text"],
      f"an untrusted subject is refused without a question, whatever its name: {r1}")
r1, r2 = released(port, ALICE)
check(r1.get("resultType") == "input_required" and "approve" in r1.get("inputRequests", {}),
      f"a trusted subject's call asks for the approval: {r1}")
check(r2 is not None and not r2.get("isError"), f"the answered approval releases the call: {r2}")
check(srv.poll() is None, "server still serving")
srv.send_signal(signal.SIGTERM)
check(srv.wait(timeout=10) == 0, "server exits 0")
con = sqlite3.connect(os.path.join(tmp, "verified.db"))
rows = con.execute("select approver, used_ms is not null from approvals").fetchall()
check(rows == [("elicitation:alice@example.com", 1)],
      f"the approval is recorded under the token subject and used: {rows}")
rows = con.execute("select initiator_name, reason from audit where tool='killswitch_release'"
                   " and phase='intent' and decision='allow'").fetchall()
check(len(rows) == 1 and rows[0][0] == "alice@example.com" and
      rows[0][1].startswith("approved by alice@example.com "),
      f"the released row names the subject and who approved: {rows}")
con.close()

# With separate_creator on, the subject that made the plan cannot approve it
# through its own client either.
srv, port = start(FM, verified_config("separate.yaml", True), tmp, db="separate.db")
r1, r2 = released(port, ALICE)
check(r2 is not None and r2.get("isError") and
      "created the plan and cannot approve it" in r2["content"][0]["text"],
      f"separate_creator refuses the creator's own elicited approval: {r2}")
srv.send_signal(signal.SIGTERM)
check(srv.wait(timeout=10) == 0, "server exits 0 (separate_creator)")
check.finish()
