#!/usr/bin/env python3
"""Raw-bytes protocol test: feeds fleetmcp every JSON-RPC/MCP error case,
oversized and hostile input, and pipelined traffic, and checks each answer
and that the server keeps serving.  Every wait is bounded."""
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from tally import Tally  # noqa: E402

SERVER = sys.argv[1] if len(sys.argv) > 1 else "build/fleetmcp"
TMP = tempfile.mkdtemp(prefix="fm-proto-")


TALLY = Tally("protocol", quiet_ok=True)
check = TALLY.check


class Server:
    def __init__(self, *extra, env=None):
        e = dict(os.environ)
        e["FLEETMCP_DB"] = os.path.join(TMP, "proto.db")
        e.pop("FLEETMCP_CONFIG", None)
        if env:
            e.update(env)
        self.p = subprocess.Popen([SERVER, *extra], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e)
        self.buf = b""
        self.notes = []

    def send(self, data: bytes):
        self.p.stdin.write(data)
        self.p.stdin.flush()

    def send_json(self, obj):
        self.send(json.dumps(obj).encode() + b"\n")

    def recv(self, timeout=10.0, notifications=False):
        """The next message; notifications are collected in self.notes
        and skipped unless asked for."""
        deadline = time.time() + timeout
        while True:
            msg = self._recv_one(deadline)
            if msg is None or notifications or not (isinstance(msg, dict) and "method" in msg):
                return msg
            self.notes.append(msg)

    def _recv_one(self, deadline):
        while b"\n" not in self.buf:
            left = deadline - time.time()
            if left <= 0:
                return None
            r, _, _ = select.select([self.p.stdout], [], [], left)
            if not r:
                return None
            chunk = os.read(self.p.stdout.fileno(), 1 << 20)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def call(self, obj, timeout=10.0):
        self.send_json(obj)
        return self.recv(timeout)

    def init(self, version="2025-11-25"):
        r = self.call({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                       "params": {"protocolVersion": version, "capabilities": {},
                                  "clientInfo": {"name": "proto-test", "version": "1"}}})
        self.send_json({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return r

    def alive(self):
        r = self.call({"jsonrpc": "2.0", "id": "alive", "method": "ping"})
        return r == {"jsonrpc": "2.0", "id": "alive", "result": {}}

    def close(self, timeout=10):
        try:
            self.p.stdin.close()
        except BrokenPipeError:
            pass
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            return None


def err_code(r):
    return r and r.get("error", {}).get("code")


# --- version negotiation ------------------------------------------------
for want, got in [("2025-11-25", "2025-11-25"), ("2025-06-18", "2025-06-18"),
                  ("2025-03-26", "2025-03-26"), ("1999-01-01", "2025-11-25")]:
    s = Server()
    r = s.init(want)
    res = r.get("result", {}) if r else {}
    check(res.get("protocolVersion") == got, f"negotiate {want} -> {got}: {r}")
    check(res.get("serverInfo", {}).get("name") == "fleetmcp", "serverInfo.name")
    check(all(k in res.get("serverInfo", {}) for k in ("name", "version", "title")),
          "serverInfo has name, version, title")
    check("tools" in res.get("capabilities", {}) and "logging" in res.get("capabilities", {}),
          "capabilities tools and logging")
    check(isinstance(res.get("instructions"), str), "instructions")
    check(s.close() == 0, "exit 0 on EOF")

s = Server()
# before initialize: ping works, other requests are refused
check(s.alive(), "ping before initialize")
r = s.call({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
check(err_code(r) == -32600, f"tools/list before initialize refused: {r}")
r = s.call({"jsonrpc": "2.0", "id": 2, "method": "initialize", "params": {}})
check(err_code(r) == -32602, f"initialize without protocolVersion: {r}")
s.init()
r = s.call({"jsonrpc": "2.0", "id": 3, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25"}})
check(err_code(r) == -32600, f"second initialize refused: {r}")

# --- JSON-RPC errors ----------------------------------------------------
r = s.call(None) if False else None
s.send(b'{"jsonrpc": "2.0", "id": 5, "method": "ping"\n')
r = s.recv()
check(err_code(r) == -32700 and r.get("id") is None, f"parse error with id null: {r}")
# Valid JSON with U+0000 in a string: answered with the request's id, so the
# client can match it (invalid params), not as a parse error with id null.
s.send(b'{"jsonrpc": "2.0", "id": 55, "method": "tools/call", "params": {"name":'
       b' "runbook_get", "arguments": {"id": "rb\\u0000x"}}}\n')
r = s.recv()
check(err_code(r) == -32602 and r.get("id") == 55 and "U+0000" in r["error"]["message"],
      f"NUL in a string -> invalid params with the request's id: {r}")
s.send(b'{"jsonrpc": "2.0", "id": "a\\u0000b", "method": "ping"}\n')
r = s.recv()
check(err_code(r) == -32600 and r.get("id") is None, f"NUL in the id itself -> id null: {r}")
r = s.call({"jsonrpc": "1.0", "id": 6, "method": "ping"})
check(err_code(r) == -32600 and r.get("id") == 6, f"wrong jsonrpc: {r}")
r = s.call({"id": 7, "method": "ping"})
check(err_code(r) == -32600, f"missing jsonrpc: {r}")
r = s.call({"jsonrpc": "2.0", "id": None, "method": "ping"})
check(err_code(r) == -32600 and r.get("id") is None, f"null id: {r}")
r = s.call({"jsonrpc": "2.0", "id": {"a": 1}, "method": "ping"})
check(err_code(r) == -32600 and r.get("id") is None, f"object id: {r}")
r = s.call({"jsonrpc": "2.0", "id": 1.5, "method": "ping"})
check(err_code(r) == -32600, f"fractional id: {r}")
r = s.call({"jsonrpc": "2.0", "id": 8, "method": 42})
check(err_code(r) == -32600, f"method not a string: {r}")
r = s.call([{"jsonrpc": "2.0", "id": 9, "method": "ping"}])
check(err_code(r) == -32600, f"batch refused in 2025-11-25: {r}")
r = s.call({"jsonrpc": "2.0", "id": 10, "method": "no/such"})
check(err_code(r) == -32601 and r.get("id") == 10, f"unknown method: {r}")
r = s.call({"jsonrpc": "2.0", "id": "s-11", "method": "ping"})
check(r == {"jsonrpc": "2.0", "id": "s-11", "result": {}}, f"string id kept: {r}")
r = s.call({"jsonrpc": "2.0", "id": 12, "method": "tools/call",
            "params": {"name": "no_such_tool", "arguments": {}}})
check(err_code(r) == -32602, f"unknown tool: {r}")
r = s.call({"jsonrpc": "2.0", "id": 13, "method": "tools/call",
            "params": {"name": "fleet_status", "arguments": [1]}})
check(err_code(r) == -32602, f"arguments not an object: {r}")
r = s.call({"jsonrpc": "2.0", "id": 14, "method": "tools/call", "params": {}})
check(err_code(r) == -32602, f"tools/call without name: {r}")
r = s.call({"jsonrpc": "2.0", "id": 15, "method": "tools/list", "params": {"cursor": "bogus!"}})
check(err_code(r) == -32602, f"bad cursor: {r}")
r = s.call({"jsonrpc": "2.0", "id": 16, "method": "logging/setLevel", "params": {"level": "loud"}})
check(err_code(r) == -32602, f"bad log level: {r}")
r = s.call({"jsonrpc": "2.0", "id": 17, "method": "logging/setLevel", "params": {"level": "info"}})
check(r and r.get("result") == {}, f"setLevel info: {r}")
r = s.call({"jsonrpc": "2.0", "id": 18, "method": "tools/call",
            "params": {"name": "audit_query", "arguments": {"limit": 100000}}})
res = (r or {}).get("result", {})
text = json.dumps(res.get("content"))
check(res.get("isError") is True and "/limit" in text, f"schema failure names the field: {r}")
r = s.call({"jsonrpc": "2.0", "id": 19, "method": "tools/call",
            "params": {"name": "audit_query", "arguments": {"bogus": 1}}})
res = (r or {}).get("result", {})
check(res.get("isError") is True and "bogus" in json.dumps(res.get("content")),
      f"unknown argument named: {r}")
r = s.call({"jsonrpc": "2.0", "id": 20, "method": "tools/call",
            "params": {"name": "fleet_status", "arguments": {}}})
res = (r or {}).get("result", {})
check(res.get("isError") in (None, False) and res.get("structuredContent", {}).get("mode") == "shadow",
      f"fleet_status in shadow mode by default: {r}")
check(json.loads(res["content"][0]["text"]) == res["structuredContent"], "text mirrors structuredContent")
# notifications get no reply; a cancel for an unknown id is ignored
s.send_json({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 999}})
s.send_json({"jsonrpc": "2.0", "method": "notifications/whatever"})
check(s.alive(), "alive after notifications")
# hitl tool refused with a reason (shadow mode records it)
r = s.call({"jsonrpc": "2.0", "id": 21, "method": "tools/call",
            "params": {"name": "killswitch_release", "arguments": {"reason": "test release"}}})
res = (r or {}).get("result", {})
check(res.get("isError") is True, f"killswitch_release refused: {r}")
logs = [n for n in s.notes if n.get("method") == "notifications/message"]
check(logs and logs[-1]["params"]["level"] == "notice" and logs[-1]["params"]["logger"] == "gate"
      and "killswitch_release" in logs[-1]["params"]["data"],
      f"a gate refusal is logged at notice after setLevel info: {s.notes}")
r = s.call({"jsonrpc": "2.0", "id": 22, "method": "logging/setLevel", "params": {"level": "error"}})
s.notes.clear()
s.call({"jsonrpc": "2.0", "id": 23, "method": "tools/call",
        "params": {"name": "killswitch_release", "arguments": {"reason": "test release"}}})
check(not any(n.get("method") == "notifications/message" for n in s.notes),
      f"no notice once the level is error: {s.notes}")

# --- hostile input --------------------------------------------------------
s.send(b"\xff\xfe\xfd not utf8 \xc3\x28\n")
r = s.recv()
check(err_code(r) == -32700, f"invalid UTF-8 -> parse error: {r}")
s.send(b"[" * 200000 + b"]" * 200000 + b"\n")
r = s.recv(30)
check(err_code(r) in (-32700, -32600), f"200,000 nested brackets: {r}")
check(s.alive(), "alive after deep nesting")
s.send(b"\x00\x01\x02garbage\x7f\n")
r = s.recv()
check(err_code(r) == -32700, f"binary garbage: {r}")
check(s.alive(), "alive after garbage")
# 64 MiB line, streamed: answered once, skipped without buffering it whole
big = b'{"jsonrpc":"2.0","id":77,"method":"ping","params":{"x":"' + b"a" * (64 << 20) + b'"}}\n'
t0 = time.time()
for i in range(0, len(big), 1 << 20):
    s.send(big[i:i + (1 << 20)])
r = s.recv(60)
check(err_code(r) == -32600 and "exceeds" in r["error"]["message"], f"64 MiB line: {r}")
check(s.alive(), "alive after 64 MiB line")
try:
    with open(f"/proc/{s.p.pid}/status") as f:
        rss = [l for l in f if l.startswith("VmHWM")][0].split()[1]
    check(int(rss) < 64 * 1024, f"peak RSS {rss} kB stays well under the 64 MiB line")
except OSError:
    pass
# 2,000 pipelined pings
s.send(b"".join(json.dumps({"jsonrpc": "2.0", "id": 1000 + i, "method": "ping"}).encode() + b"\n"
                for i in range(2000)))
ids = []
for _ in range(2000):
    r = s.recv(30)
    if r is None:
        break
    ids.append(r.get("id"))
check(ids == list(range(1000, 3000)), f"2,000 pipelined pings answered in order ({len(ids)})")
check(s.close() == 0, "exit 0 on EOF after all that")

# --- batches in 2025-03-26 ------------------------------------------------
s = Server()
s.init("2025-03-26")
r = s.call([{"jsonrpc": "2.0", "id": 1, "method": "ping"},
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            {"jsonrpc": "2.0", "id": 2, "method": "nope"}])
check(isinstance(r, list) and len(r) == 2 and r[0].get("result") == {} and
      r[1]["error"]["code"] == -32601, f"batch in 2025-03-26: {r}")
r = s.call([])
check(err_code(r) == -32600, f"empty batch: {r}")
s.close()

# --- paging with a small page size -----------------------------------------
cfg = os.path.join(TMP, "page.yaml")
with open(cfg, "w") as f:
    f.write("limits:\n  tools_page_size: 2\n")
s = Server("--config", cfg)
s.init()
names, cursor, pages = [], None, 0
while pages < 100:
    p = {"cursor": cursor} if cursor else {}
    r = s.call({"jsonrpc": "2.0", "id": 100 + pages, "method": "tools/list", "params": p})
    res = r["result"]
    names += [t["name"] for t in res["tools"]]
    check(len(res["tools"]) <= 2, "page size respected")
    pages += 1
    cursor = res.get("nextCursor")
    if not cursor:
        break
check(pages >= 2 and len(names) == len(set(names)), f"paged {pages} pages, {len(names)} tools")
for t in [] if not names else [names[0]]:
    pass
s.close()

# --- SIGTERM exits 0 --------------------------------------------------------
s = Server()
s.init()
check(s.alive(), "alive before SIGTERM")
s.p.send_signal(signal.SIGTERM)
try:
    rc = s.p.wait(10)
except subprocess.TimeoutExpired:
    s.p.kill()
    rc = None
check(rc == 0, f"SIGTERM exits 0 (got {rc})")

# --- the audit chain of everything above verifies ---------------------------
out = subprocess.run([SERVER, "audit", "verify", "--db", os.path.join(TMP, "proto.db")],
                     capture_output=True, text=True, timeout=30)
check(out.returncode == 0 and "ok" in out.stdout, f"audit verify: {out.stdout} {out.stderr}")

sys.exit(TALLY.summary())
