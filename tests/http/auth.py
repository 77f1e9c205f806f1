#!/usr/bin/env python3
"""fleetmcp --http with an `auth` section (static bearer tokens): no token
and a bad token get 401 with WWW-Authenticate naming the RFC 9728 metadata
URL, the metadata document is served without a token, a read-only token
sees only read tools and is refused a create tool (nothing runs: no intent
row), a create token's call is recorded under the token's subject (never
as a human, whatever clientInfo.name says), and a non-loopback bind is
allowed once tokens are configured.  Every wait is bounded.
Usage: auth.py path/to/fleetmcp"""
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fmhttp import Checks, HITL_SCOPES, META, auth_yaml, bearer, post, raw, start, stateless  # noqa: E402

FM = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/fleetmcp")
tmp = tempfile.mkdtemp(prefix="fm-http-auth-")
check = Checks("http-auth")

READ_TOKEN = "read-token-" + os.urandom(8).hex()
CREATE_TOKEN = "create-token-" + os.urandom(8).hex()


HITL_TOKEN = "hitl-token-" + os.urandom(8).hex()
CLI = os.path.join(os.path.dirname(FM), "mcp-cli")


def keygen(name):
    """An approver key pair: the private key file, the public key."""
    out = subprocess.run([CLI, "keygen", "--out", os.path.join(tmp, name + ".key"),
                          "--approver", name], capture_output=True, text=True, timeout=30).stdout
    return re.search(r"public_key:\s*(\S+)", out).group(1)


# alice's token creates plans; separate_creator (default on) keeps her
# from approving them, with either of her keys.
PUB = {k: keygen(k) for k in ("alice", "bob")}


CONFIG = os.path.join(tmp, "auth.yaml")
with open(CONFIG, "w") as f:
    f.write("mode: fleet\ntickets:\n  backend: local\n"
            + auth_yaml({"token": READ_TOKEN, "subject": "reader-bot", "scopes": ["fleetmcp:read"]},
                        {"token": CREATE_TOKEN, "subject": "ci-pipeline", "client_id": "ci-client",
                         "scopes": ["fleetmcp:read", "fleetmcp:create"]},
                        {"token": HITL_TOKEN, "subject": "alice@example.com",
                         "scopes": HITL_SCOPES}) +
            "approvals:\n  keys:\n"
            f"    - {{id: alice, public_key: \"{PUB['alice']}\", person: alice@example.com}}\n"
            f"    - {{id: bob, public_key: \"{PUB['bob']}\"}}\n")

DB = "auth.db"
srv, port = start(FM, CONFIG, tmp, DB)


def meta(name):
    m = dict(META)
    m["io.modelcontextprotocol/clientInfo"] = {"name": name, "version": "1"}
    return m


def call(tok, tool, args, name="auth-test"):
    return stateless(port, "tools/call", {"name": tool, "arguments": args, "_meta": meta(name)},
                     bearer(tok) if tok else None)


def listed(tok):
    st, _, b = stateless(port, "tools/list", {"_meta": meta("auth-test")}, bearer(tok))
    tools = b.get("result", {}).get("tools", []) if isinstance(b, dict) else []
    return st, {t["name"]: t for t in tools}


# ---- no credential, bad credential --------------------------------------------
st, hd, b = call(None, "fleet_status", {})
wa = hd.get("www-authenticate", "")
check(st == 401 and wa.startswith("Bearer ") and
      'resource_metadata="http://127.0.0.1/.well-known/oauth-protected-resource/mcp"' in wa,
      f"no token is 401 naming the metadata URL: {st} {wa!r} {b}")
st, hd, b = call("not-a-token", "fleet_status", {})
wa = hd.get("www-authenticate", "")
check(st == 401 and "invalid_token" in wa and "resource_metadata=" in wa,
      f"a bad token is 401 invalid_token: {st} {wa!r}")
st, hd, b = call(None, "fleet_status", {}, name="mcp-cli")
check(st == 401, f"a client calling itself mcp-cli still needs a token: {st}")
st, hd, b = post(port, b"{}", {"Authorization": "Basic dXNlcjpwdw=="})
check(st == 401, f"a Basic credential is 401: {st}")

# ---- RFC 9728 metadata, no token needed ---------------------------------------
st, hd, body = raw(port, (f"GET /.well-known/oauth-protected-resource/mcp HTTP/1.1\r\n"
                          f"Host: 127.0.0.1:{port}\r\n\r\n").encode())
try:
    doc = json.loads(body)
except ValueError:
    doc = {}
check(st == 200 and doc.get("resource") == "http://127.0.0.1/mcp" and
      "fleetmcp:create" in doc.get("scopes_supported", []) and
      "header" in doc.get("bearer_methods_supported", []),
      f"metadata document served: {st} {body[:300]!r}")

# ---- a read-only token -----------------------------------------------------------
st, tools = listed(READ_TOKEN)
check(st == 200 and "fleet_status" in tools and "runbook_list" in tools and
      "ticket_create" not in tools and "repair_plan" not in tools and "node_drain" not in tools,
      f"a read token lists only read tools: {st} {sorted(tools)}")
st, _, b = call(READ_TOKEN, "fleet_status", {})
r = b.get("result", {}) if isinstance(b, dict) else {}
check(st == 200 and not r.get("isError"), f"a read token calls fleet_status: {st} {b}")
def text_of(b):
    r = b.get("result", {}) if isinstance(b, dict) else {}
    return (r.get("content") or [{}])[0].get("text", "") if r else ""


def step_up(st, hd, b, scope):
    """403 insufficient_scope naming the scopes to ask for (RFC 6750 3.1)."""
    wa = hd.get("www-authenticate", "")
    return (st == 403 and 'error="insufficient_scope"' in wa and scope in wa and
            "resource_metadata=" in wa and isinstance(b, dict) and
            b.get("error") == "insufficient_scope" and scope in b.get("scope", ""))


st, hd, b = call(READ_TOKEN, "ticket_create",
                 {"summary": "should not exist", "node": "gpu-a01", "fault_class": "xid_79"})
check(step_up(st, hd, b, "fleetmcp:create"),
      f"a read token is refused ticket_create: 403 step-up naming the scope: {st} {hd} {b}")

# The scope is asked before the arguments (fm_gate.h steps 1b, then the input schema):
# arguments a read token cannot know the shape of still get the scope answer, not INVALID.
for bad in ({"node": 5, "no_such_argument": True}, {}):
    st, hd, b = call(READ_TOKEN, "node_drain", bad)
    check(step_up(st, hd, b, "fleetmcp:hitl") and "INVALID" not in json.dumps(b),
          f"a read token calling a hitl tool with bad arguments {bad} is DENIED for the scope,"
          f" not INVALID: {st} {hd} {b}")
st, hd, b = call(READ_TOKEN, "ticket_create", {"summary": 7})
check(step_up(st, hd, b, "fleetmcp:create") and "INVALID" not in json.dumps(b),
      f"a read token calling ticket_create with a bad summary gets the scope answer: {st} {b}")
st, _, b = call(READ_TOKEN, "fleet_status", {"no_such_argument": 1})
check(st == 200 and "INVALID" in text_of(b),
      f"within its scope, bad arguments are still INVALID: {st} {b}")

# ---- a create token ---------------------------------------------------------------
st, tools = listed(CREATE_TOKEN)
check(st == 200 and "ticket_create" in tools and "repair_plan" in tools and
      "node_drain" not in tools and "repair_execute" not in tools,
      f"a create token lists read and create tools only: {sorted(tools)}")
st, _, b = call(CREATE_TOKEN, "ticket_create",
                {"summary": "GPU fell off the bus", "node": "gpu-a02",
                 "fault_class": "gpu_fallen_off_bus"}, name="mcp-cli")
r = b.get("result", {}) if isinstance(b, dict) else {}
check(st == 200 and not r.get("isError"), f"a create token runs ticket_create: {st} {b}")
st, hd, b = call(CREATE_TOKEN, "node_drain", {"node": "gpu-a02", "reason": "maintenance"},
                 name="mcp-cli")
check(step_up(st, hd, b, "fleetmcp:hitl"),
      f"a create token is refused a hitl tool: 403 step-up naming fleetmcp:hitl: {st} {hd} {b}")

# ---- a 2025 session: the token, not the declared name, says who ----------------------
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "mcp-cli", "version": "1"}}}
st, hd, b = post(port, INIT)
check(st == 401, f"initialize without a token is 401: {st}")
st, hd, b = post(port, INIT, bearer(CREATE_TOKEN))
sid = hd.get("mcp-session-id")
check(st == 200 and sid, f"initialize with a token opens a session: {st} {b}")
if sid:
    h = dict(bearer(CREATE_TOKEN), **{"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25"})
    post(port, {"jsonrpc": "2.0", "method": "notifications/initialized"}, h)
    st, _, b = post(port, {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                           "params": {"name": "ticket_update",
                                      "arguments": {"key": "NOPE-1", "comment": "x"}}}, h)
    check(st == 200 and "result" in b, f"a 2025 session call answers: {st} {b}")
    h["Authorization"] = f"Bearer {READ_TOKEN}"
    st, _, b = post(port, {"jsonrpc": "2.0", "id": 3, "method": "tools/list"}, h)
    names = [t["name"] for t in b.get("result", {}).get("tools", [])] if isinstance(b, dict) else []
    check(st == 200 and "ticket_create" not in names and "fleet_status" in names,
          f"each request is judged by its own token, not the session's first: {names}")

# ---- creator separation: the token subject that made a plan cannot approve it ------


def approve(plan, who):
    env = dict(os.environ, FLEETMCP_DB=os.path.join(tmp, DB))
    r = subprocess.run([CLI, "--config", CONFIG, "--format", "json", "approve", plan, "--key",
                        os.path.join(tmp, who + ".key"), "--approver", who, "--ttl", "10m",
                        "--yes"], capture_output=True, text=True, env=env, timeout=60)
    try:
        return json.loads(r.stdout)["structuredContent"]["approval_id"]
    except (ValueError, KeyError):
        check(False, f"mcp-cli approve by {who}: {r.returncode} {r.stderr}")
        return "ap-none"


st, _, b = call(HITL_TOKEN, "killswitch_engage", {"reason": "creator-drill"})
check(st == 200 and not b.get("result", {}).get("isError"), f"alice engages: {b}")
RELEASE = {"reason": "creator-drill-over"}
st, _, b = call(HITL_TOKEN, "killswitch_release", RELEASE)
m = re.search(r"pl-[0-9a-f]{16}", text_of(b))
check(m is not None and text_of(b).startswith("APPROVAL:"), f"release makes a plan: {b}")
plan = m.group(0) if m else "pl-none"
ap_alice = approve(plan, "alice")
st, _, b = call(HITL_TOKEN, "killswitch_release", dict(RELEASE, approval_id=ap_alice))
check("alice created the plan and cannot approve it" in text_of(b),
      f"the creator's own approval is refused: {text_of(b)}")
ap_bob = approve(plan, "bob")
st, hd, b = call(READ_TOKEN, "killswitch_release", dict(RELEASE, approval_id=ap_bob))
check(step_up(st, hd, b, "fleetmcp:hitl"),
      f"a read-only token cannot use a valid approval (403 step-up): {st} {b}")
st, _, b = call(HITL_TOKEN, "killswitch_release", dict(RELEASE, approval_id=ap_bob))
check(st == 200 and not b.get("result", {}).get("isError"),
      f"another person's approval releases alice's plan: {b}")

srv.send_signal(signal.SIGTERM)
check(srv.wait(timeout=15) == 0, "server exits 0")

con = sqlite3.connect(os.path.join(tmp, DB))
n = con.execute("select count(*) from audit where tool='ticket_create' and phase='intent'"
                " and initiator_name='reader-bot'").fetchone()[0]
check(n == 0, f"the refused call left no intent row ({n})")
rows = con.execute("select initiator_kind, initiator_name, os_user, client_name, decision"
                   " from audit where tool='ticket_create' and initiator_name='reader-bot'"
                   ).fetchall()
check(rows and all(r[4] != "allow" for r in rows), f"the refusal is recorded as such: {rows}")
rows = con.execute("select initiator_kind, initiator_name, os_user, client_name from audit"
                   " where tool in ('ticket_create', 'ticket_update')"
                   " and initiator_name != 'reader-bot'").fetchall()
check(rows and all(r[0] == "agent" and r[1] == "ci-pipeline" and r[2] == "static-token:ci-client"
                   for r in rows),
      f"the create token's rows name its subject, never a human: {rows}")
# (mcp-cli approve ran on stdio: its rows carry the OS user, not a token.)
n = con.execute("select count(*) from audit where initiator_kind='human'"
                " and os_user like 'static-token:%'").fetchone()[0]
check(n == 0, f"no row is attributed to a human over HTTP ({n})")
rows = con.execute("select initiator_name, reason from audit where tool='killswitch_release'"
                   " and phase='intent' and decision='allow'").fetchall()
check(len(rows) == 1 and rows[0][0] == "alice@example.com" and
      rows[0][1].startswith("approved by bob "),
      f"the released call names its token subject and the approving person: {rows}")
con.close()

# ---- binds: with tokens configured, a non-loopback address may be used ------------
err = open(os.path.join(tmp, "bind.err"), "w+")
p = subprocess.Popen([FM, "--config", CONFIG, "--db", os.path.join(tmp, "bind.db"),
                      "--http", "0.0.0.0:0"], stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=err)
deadline, seen = time.time() + 10, False
while time.time() < deadline and not seen and p.poll() is None:
    err.seek(0)
    seen = re.search(r"serving MCP on http://0\.0\.0\.0:\d+/mcp", err.read()) is not None
    time.sleep(0.05)
if p.poll() is None:
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(timeout=5)
err.seek(0)
check(seen, f"0.0.0.0 bind serves once auth is configured: {err.read()[-300:]}")
err.close()
if not check.failed:
    shutil.rmtree(tmp, ignore_errors=True)
check.finish()
