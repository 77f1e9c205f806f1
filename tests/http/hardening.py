#!/usr/bin/env python3
"""fleetmcp --http over raw sockets: Host/Origin checks, loopback-only
binds, the body cap, header and body deadlines, the connection cap, a
graceful SIGTERM that finishes a request in flight, sealed sessions that a
second replica sharing the store accepts, and the 2026-07-28 header rules.
Every wait is bounded.  Usage: hardening.py path/to/fleetmcp"""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fmhttp import Checks, META, post, raw, start as start_server, stateless, wait_exit  # noqa: E402

FM = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/fleetmcp")
tmp = tempfile.mkdtemp(prefix="fm-http-")
check = Checks("http-hardening")


CONFIG = os.path.join(tmp, "http.yaml")
with open(CONFIG, "w") as f:
    f.write("limits:\n  max_message_bytes: 4096\n"
            "http:\n  max_connections: 6\n  header_timeout_s: 1\n  body_timeout_s: 3\n"
            "  shutdown_grace_s: 5\n  allowed_origins: [\"http://ops.example:8443\"]\n")


INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "hardening", "version": "1"}}}


def start(db="shared.db", listen="127.0.0.1:0"):
    return start_server(FM, CONFIG, tmp, db, listen)


# ---- binds ----------------------------------------------------------------
for addr in ("0.0.0.0:0", "10.1.2.3:8080", "[::]:0"):
    r = subprocess.run([FM, "--config", CONFIG, "--db", os.path.join(tmp, "x.db"), "--http", addr],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10)
    check(r.returncode == 1 and "DENIED" in r.stderr and "loopback" in r.stderr,
          f"non-loopback bind {addr} refused: rc={r.returncode} {r.stderr.strip()}")
r = subprocess.run([FM, "--http", "nonsense"], stdin=subprocess.DEVNULL, capture_output=True,
                   text=True, timeout=10)
check(r.returncode == 1 and "HOST:PORT" in r.stderr, f"malformed --http refused: {r.stderr}")

srv, port = start()

# ---- routing and media types ------------------------------------------------
st, _, _ = raw(port, f"GET /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
check(st == 405, f"GET /mcp is 405, got {st}")
st, _, _ = raw(port, f"POST /other HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\r\n".encode())
check(st == 404, f"another path is 404, got {st}")
st, _, _ = post(port, INIT, {"Content-Type": "text/plain"})
check(st == 415, f"text/plain body is 415, got {st}")

# ---- Host and Origin (DNS rebinding) -----------------------------------------
st, _, b = post(port, INIT, host="evil.example.com")
check(st == 403 and "Host" in json.dumps(b), f"foreign Host is 403, got {st} {b}")
st, _, _ = post(port, INIT, host=f"localhost:{port + 1 if port < 65535 else 1}")
check(st == 403, f"loopback Host on another port is 403, got {st}")
st, _, b = post(port, INIT, {"Origin": "http://evil.example.com"})
check(st == 403 and "Origin" in json.dumps(b), f"foreign Origin is 403, got {st}")
st, _, _ = post(port, INIT, {"Origin": "http://localhost"})
check(st == 403, f"loopback Origin on port 80 (another server's page) is 403, got {st}")
st, _, _ = post(port, INIT, {"Origin": f"http://localhost:{port}"})
check(st == 200, f"own Origin accepted, got {st}")
st, _, _ = post(port, INIT, {"Origin": "http://ops.example:8443"})
check(st == 200, f"configured Origin accepted, got {st}")

# ---- sessions: sealed, checked, shared by replicas ---------------------------
st, hd, b = post(port, INIT)
sid = hd.get("mcp-session-id", "")
check(st == 200 and b["result"]["protocolVersion"] == "2025-11-25" and sid,
      f"initialize answers with a session id: {st} {hd}")
call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "fleet_status", "arguments": {}}}
st, _, b = post(port, call, {"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25"})
check(st == 200 and b["result"]["structuredContent"]["mode"] == "shadow", f"call in session: {st} {b}")
st, _, b = post(port, call)
check(st == 400 and "Mcp-Session-Id" in b["error"]["message"], f"no session id is 400: {st} {b}")
forged = sid[:-1] + ("0" if sid[-1] != "0" else "1")
st, _, b = post(port, call, {"Mcp-Session-Id": forged})
check(st == 404, f"tampered session id is 404: {st} {b}")
st, _, b = post(port, call, {"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-06-18"})
check(st == 400, f"protocol header differing from the session's is 400: {st}")
st, _, _ = post(port, {"jsonrpc": "2.0", "method": "notifications/initialized"}, {"Mcp-Session-Id": sid})
check(st == 202, f"a notification is 202: {st}")

replica, port2 = start()  # same store, another process
st, _, b = post(port2, call, {"Mcp-Session-Id": sid})
check(st == 200 and "result" in b, f"a replica sharing the store serves the session: {st} {b}")
other, port3 = start(db="other.db")  # another store: another key
st, _, b = post(port3, call, {"Mcp-Session-Id": sid})
check(st == 404, f"a service with another store refuses the session: {st}")
for p in (replica, other):
    p.send_signal(signal.SIGTERM)
    check(p.wait(timeout=10) == 0, "replica exits 0 on SIGTERM")

# ---- 2026-07-28: stateless requests and their headers -------------------------
st, hd, b = stateless(port, "server/discover", {"_meta": META})
check(st == 200 and "2026-07-28" in b["result"]["supportedVersions"] and
      b["result"]["resultType"] == "complete" and "mcp-session-id" not in hd,
      f"server/discover, no session: {st} {b}")
st, _, b = stateless(port, "tools/list", {"_meta": META})
r = b["result"]
check(st == 200 and r["ttlMs"] >= 0 and r["cacheScope"] in ("public", "private") and r["tools"],
      f"tools/list has caching hints: {st}")
st2, _, b2 = stateless(port, "tools/list", {"_meta": META})
check(json.dumps(b2["result"]) == json.dumps(r), "tools/list is deterministic")
st, _, b = stateless(port, "tools/call", {"name": "fleet_status", "arguments": {}, "_meta": META})
check(st == 200 and b["result"]["resultType"] == "complete", f"stateless tools/call: {st} {b}")
st, _, b = stateless(port, "tools/call", {"name": "fleet_status", "arguments": {}, "_meta": META},
                     {"Mcp-Name": "killswitch_release"})
check(st == 400 and b["error"]["code"] == -32020, f"Mcp-Name mismatch is 400/-32020: {st} {b}")
st, _, b = stateless(port, "tools/list", {"_meta": META}, {"Mcp-Method": "tools/call"})
check(st == 400 and b["error"]["code"] == -32020, f"Mcp-Method mismatch is 400/-32020: {st}")
bad = dict(META, **{"io.modelcontextprotocol/protocolVersion": "2099-01-01"})
st, _, b = stateless(port, "tools/list", {"_meta": bad}, {"MCP-Protocol-Version": "2099-01-01"})
check(st == 400 and b["error"]["code"] == -32022 and b["error"]["data"]["requested"] == "2099-01-01"
      and "2026-07-28" in b["error"]["data"]["supported"], f"unsupported version: {st} {b}")
st, _, b = stateless(port, "tools/list", {})
check(st == 400 and b["error"]["code"] == -32602, f"no _meta is 400/-32602: {st} {b}")
st, _, b = stateless(port, "ping", {"_meta": META})
check(st == 404 and b["error"]["code"] == -32601, f"ping is gone in 2026-07-28: {st} {b}")
# The connection's memory (http.c: 16 KB) holds the headers: a large
# bearer token's worth still fits; past it the request is refused whole.
st, _, b = stateless(port, "tools/list", {"_meta": META}, {"X-Pad": "a" * 12000})
check(st == 200 and b["result"]["tools"], f"12 KB of headers are served: {st}")
st, _, _ = stateless(port, "tools/list", {"_meta": META}, {"X-Pad": "a" * 20000})
check(st == 431, f"20 KB of headers are refused with 431: {st}")

# ---- body cap ----------------------------------------------------------------------
big = b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"' + b"a" * 8000 + b'"}}'
st, _, _ = post(port, big)
check(st == 413, f"body over limits.max_message_bytes is 413: {st}")
chunked = (f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
           "Transfer-Encoding: chunked\r\n\r\n").encode()
for _ in range(3):
    chunked += b"%x\r\n" % 3000 + b"a" * 3000 + b"\r\n"
chunked += b"0\r\n\r\n"
st, _, _ = raw(port, chunked)
check(st == 413, f"a chunked body over the cap is 413: {st}")


# ---- deadlines ---------------------------------------------------------------------
def closed_within(sock, seconds):
    """True when the server closes sock within seconds (bounded)."""
    sock.settimeout(0.2)
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if sock.recv(4096) == b"":
                return True
        except socket.timeout:
            pass
        except OSError:
            return True
        try:
            sock.send(b"X")  # a slowloris byte
        except OSError:
            return True
    return False


s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
t0 = time.time()
check(closed_within(s, 5), "trickled headers are cut at header_timeout_s")
check(time.time() - t0 < 4, f"cut within the deadline ({time.time() - t0:.1f} s)")
s.close()
s = socket.create_connection(("127.0.0.1", port))
s.sendall(f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
          "Content-Length: 1000\r\n\r\n{".encode())
check(closed_within(s, 6), "a trickled body is cut at body_timeout_s")
s.close()

# ---- connection cap ----------------------------------------------------------------------
held = [socket.create_connection(("127.0.0.1", port)) for _ in range(6)]
time.sleep(0.2)
# Over the cap, libmicrohttpd stops accepting: the next connection waits
# in the kernel's backlog, costing the service nothing, until a held one
# is cut at header_timeout_s.
extra = socket.create_connection(("127.0.0.1", port))
body = json.dumps(INIT).encode()
extra.sendall(f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
              f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
extra.settimeout(0.5)
try:
    early = extra.recv(100)
except socket.timeout:
    early = None
check(early is None, f"a connection over max_connections is not served while the cap holds: {early}")
extra.settimeout(4)
try:
    late = extra.recv(100)
except OSError:
    late = b""
check(late.startswith(b"HTTP/1.1 200"), f"it is served once held connections are cut: {late[:40]}")
for h in held + [extra]:
    h.close()

# ---- graceful stop: a request in flight gets its answer -----------------------------------------
body = json.dumps(INIT).encode()
s = socket.create_connection(("127.0.0.1", port), timeout=5)
s.sendall(f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
          f"Accept: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body[:10])
idle = socket.create_connection(("127.0.0.1", port))
# Time for the server to read the headers: the request is then in progress
# (its body is arriving), not an idle connection to cut.
time.sleep(0.8)
srv.send_signal(signal.SIGTERM)
time.sleep(0.3)
s.sendall(body[10:])
reply = b""
deadline = time.time() + 5
while time.time() < deadline and b"protocolVersion" not in reply:
    try:
        chunk = s.recv(65536)
    except socket.timeout:
        break
    if not chunk:
        break
    reply += chunk
check(reply.startswith(b"HTTP/1.1 200") and b"protocolVersion" in reply and
      b"Connection: close" in reply, f"the request in flight at SIGTERM is answered: {reply[:80]}")
rc = wait_exit(srv, 8)
check(rc == 0, f"exits 0 after SIGTERM, idle connections cut: {rc}")
s.close()
idle.close()

check.finish()
