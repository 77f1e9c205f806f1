"""Shared helpers for the fleetmcp --http tests: start a server on a free
loopback port and speak raw HTTP/1.1 to it.  Every wait is bounded."""
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from tally import Tally  # noqa: E402


class Checks(Tally):
    """The shared tally (tests/lib/tally.py), called as check(cond, what):
    prints each failure, and finish() ends the run with the summary."""

    def __init__(self, name):
        super().__init__(name, quiet_ok=True)

    __call__ = Tally.check

    def finish(self):
        sys.exit(self.summary())


META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {}}


def start(fm, config=None, tmp=None, db="shared.db", listen="127.0.0.1:0", argv=None,
          name="fleetmcp"):
    """Starts fm with config and db in tmp (or argv, when given: another
    program such as the conformance fixture) serving --http listen;
    returns (process, port)."""
    argv = argv or [fm, "--config", config, "--db", os.path.join(tmp, db)]
    err = open(os.path.join(tmp, f"{name}-{time.monotonic_ns()}.err"), "w+")
    p = subprocess.Popen(argv + ["--http", listen],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.time() + 10
    while time.time() < deadline:
        err.seek(0)
        m = re.search(r"serving MCP on http://127\.0\.0\.1:(\d+)/mcp", err.read())
        if m:
            return p, int(m.group(1))
        if p.poll() is not None:
            break
        time.sleep(0.05)
    err.seek(0)
    raise SystemExit(f"{name} --http did not start: {err.read()}")


def wait_exit(p, timeout):
    """The exit status of p within timeout seconds, else kills it: "hung"."""
    try:
        return p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        return "hung"


def raw(port, data, timeout=5.0):
    """Sends data on a new connection; returns (status, headers, body)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    buf = b""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        buf += chunk
        head, sep, body = buf.partition(b"\r\n\r\n")
        m = re.search(rb"content-length: *(\d+)", head, re.I)
        if sep and m and len(body) >= int(m.group(1)):
            break
    s.close()
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0].startswith("HTTP/") else 0
    hdrs = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    return status, hdrs, body


def request(port, msg, headers=None, host=None):
    """The bytes of a POST /mcp carrying msg (a JSON-RPC object or bytes)."""
    body = msg if isinstance(msg, bytes) else json.dumps(msg).encode()
    h = {"Host": host or f"127.0.0.1:{port}", "Content-Type": "application/json",
         "Accept": "application/json, text/event-stream", "Content-Length": str(len(body))}
    h.update(headers or {})
    req = "POST /mcp HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
    return req.encode() + body


def post(port, msg, headers=None, host=None):
    st, hd, b = raw(port, request(port, msg, headers, host))
    try:
        return st, hd, json.loads(b) if b else None
    except ValueError:
        return st, hd, b


def stateless(port, method, params, headers=None, rid=7):
    """A 2026-07-28 request with its routing headers."""
    h = {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": method}
    if "name" in params:
        h["Mcp-Name"] = params["name"]
    h.update(headers or {})
    return post(port, {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}, h)


HITL_SCOPES = ["fleetmcp:read", "fleetmcp:create", "fleetmcp:hitl"]


def auth_yaml(*tokens):
    """A config's `auth` section accepting static bearer tokens, each a dict
    of token, subject, scopes and any other field of a token entry (the
    config keeps only the token's SHA-256)."""
    lines = ["auth:", "  audience: http://127.0.0.1/mcp", "  tokens:"]
    for t in tokens:
        entry = {"sha256": hashlib.sha256(t["token"].encode()).hexdigest(),
                 **{k: v for k, v in t.items() if k != "token"}}
        lines.append("    - " + json.dumps(entry))  # JSON is YAML flow style
    return "\n".join(lines) + "\n"


def bearer(token):
    return {"Authorization": f"Bearer {token}"}
