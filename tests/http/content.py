#!/usr/bin/env python3
"""Resources, prompts and completions, in both protocol eras: runbooks as
runbook://ID (and its template), recorded audit sessions as
audit://session/ID, the operator prompts, completions for node names,
fault classes and runbook ids; 2026-07-28 results carry caching hints.
Over HTTP (stateless and with a session) and over stdio.
Usage: content.py path/to/fleetmcp"""
import json
import os
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fmhttp import Checks, META, post, start, stateless  # noqa: E402

FM = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/fleetmcp")
tmp = tempfile.mkdtemp(prefix="fm-content-")
check = Checks("http-content")


CONFIG = os.path.join(tmp, "c.yaml")
open(CONFIG, "w").write("mode: shadow\n")
srv, port = start(FM, CONFIG, tmp, db="content.db")


def rpc(method, params=None):
    p = dict(params or {})
    p["_meta"] = META
    st, _, b = stateless(port, method, p, {"Mcp-Name": p.get("uri", p.get("name", ""))}
                         if method in ("resources/read", "prompts/get", "tools/call") else None)
    return st, b


# Leave an audited session with a node in it, for the audit resource and
# the node completion.
st, b = rpc("tools/call", {"name": "diagnose", "arguments": {"signals": {
    "node": "gpu-c07", "kernel_log": ["NVRM: Xid (PCI:0000:18:00): 79, GPU has fallen off the bus."]}}})
check(st == 200 and not b["result"].get("isError"), f"diagnose recorded: {b}")

st, b = rpc("server/discover")
caps = b["result"]["capabilities"]
check(all(k in caps for k in ("resources", "prompts", "completions")),
      f"discover declares resources, prompts, completions: {caps}")

st, b = rpc("resources/list")
res = b["result"]
uris = [r["uri"] for r in res["resources"]]
check("runbook://rb-gpu-fallen-off-bus" in uris, f"runbooks listed: {uris[:5]}")
sessions = [u for u in uris if u.startswith("audit://session/")]
check(len(sessions) >= 1, f"the recorded session is listed: {uris}")
check(res["ttlMs"] >= 0 and res["cacheScope"] == "private" and res["resultType"] == "complete",
      "resources/list has caching hints")

st, b = rpc("resources/templates/list")
tpl = [t["uriTemplate"] for t in b["result"]["resourceTemplates"]]
check("runbook://{id}" in tpl and "audit://session/{session}" in tpl, f"templates: {tpl}")

st, b = rpc("resources/read", {"uri": "runbook://rb-gpu-fallen-off-bus"})
c = b["result"]["contents"][0]
check(c["mimeType"] == "application/yaml" and "id: rb-gpu-fallen-off-bus" in c["text"] and
      b["result"]["ttlMs"] > 0, f"a runbook reads as its YAML: {c.get('text', '')[:80]}")

st, b = rpc("resources/read", {"uri": sessions[0]})
lines = b["result"]["contents"][0]["text"].splitlines()
rows = [json.loads(x) for x in lines]
check(any(r.get("tool") == "diagnose" and r.get("node") == "gpu-c07" for r in rows) and
      b["result"]["ttlMs"] == 0, f"the session reads as JSON lines: {lines[:2]}")

for uri in ("runbook://no-such-runbook", "runbook://../../etc/passwd", "audit://session/nope",
            "file:///etc/passwd"):
    st, b = rpc("resources/read", {"uri": uri})
    check(st == 400 and b["error"]["code"] == -32602 and b["error"]["data"]["uri"] == uri,
          f"{uri} is not found, with the uri in data: {st} {b}")

st, b = rpc("prompts/list")
names = [p["name"] for p in b["result"]["prompts"]]
check(names == ["triage_node", "repair_node", "incident_summary"] and b["result"]["ttlMs"] >= 0,
      f"prompts listed: {names}")
st, b = rpc("prompts/get", {"name": "repair_node",
                            "arguments": {"node": "gpu-c07", "fault_class": "gpu_fallen_off_bus"}})
text = b["result"]["messages"][0]["content"]["text"]
check("gpu-c07" in text and "gpu_fallen_off_bus" in text and "repair_plan" in text,
      f"repair_node prompt: {text[:80]}")
st, b = rpc("prompts/get", {"name": "triage_node", "arguments": {}})
check(st == 400 and b["error"]["code"] == -32602 and "node" in b["error"]["message"],
      f"a missing argument is invalid params: {b}")
st, b = rpc("prompts/get", {"name": "triage_node", "arguments": {"node": "x; rm -rf /"}})
check(st == 400 and b["error"]["code"] == -32602, "a hostile node name is refused")
st, b = rpc("prompts/get", {"name": "nope"})
check(st == 400 and b["error"]["code"] == -32602, "an unknown prompt is invalid params")


def complete(ref, name, value):
    st, b = rpc("completion/complete", {"ref": ref, "argument": {"name": name, "value": value}})
    return b["result"]["completion"]["values"]


v = complete({"type": "ref/prompt", "name": "triage_node"}, "node", "gpu-c")
check(v == ["gpu-c07"], f"node names complete from what fleetmcp has seen: {v}")
v = complete({"type": "ref/prompt", "name": "repair_node"}, "fault_class", "gpu_fa")
check("gpu_fallen_off_bus" in v and all(x.startswith("gpu_fa") for x in v), f"fault classes: {v}")
v = complete({"type": "ref/resource", "uri": "runbook://{id}"}, "id", "rb-gpu-f")
check(v == ["rb-gpu-fallen-off-bus"], f"runbook ids: {v}")
check(complete({"type": "ref/prompt", "name": "triage_node"}, "node", "zz") == [],
      "no candidates, no error")

# The same over a 2025 session.
st, hd, b = post(port, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "c", "version": "1"}}})
sid = hd["mcp-session-id"]
st, _, b = post(port, {"jsonrpc": "2.0", "id": 2, "method": "resources/read",
                       "params": {"uri": "runbook://rb-gpu-fallen-off-bus"}}, {"Mcp-Session-Id": sid})
check(st == 200 and "ttlMs" not in b["result"] and "resultType" not in b["result"] and
      b["result"]["contents"][0]["text"], f"2025 session: plain result: {b}")
srv.send_signal(signal.SIGTERM)
srv.wait(timeout=10)

# And over stdio.
msgs = [{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "c", "version": "1"}}},
    {"jsonrpc": "2.0", "id": 2, "method": "prompts/list"},
    {"jsonrpc": "2.0", "id": 3, "method": "resources/templates/list", "params": {"_meta": META}}]
out = subprocess.run([FM, "--config", CONFIG, "--db", os.path.join(tmp, "stdio.db")],
                     input="".join(json.dumps(m) + "\n" for m in msgs), capture_output=True,
                     text=True, timeout=20).stdout.splitlines()
r = {m["id"]: m for m in map(json.loads, out)}
check(len(r[2]["result"]["prompts"]) == 3, "stdio: prompts/list")
check(r[3]["result"]["resultType"] == "complete" and "ttlMs" in r[3]["result"],
      "stdio: a stateless request beside the session gets 2026 results")
check.finish()
