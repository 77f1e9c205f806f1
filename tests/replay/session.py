"""A scripted MCP session over stdio: one server process, many calls.
Used to record the sessions in tests/replay/ and by tests that need a
session id.  Every wait is bounded."""
import json
import os
import select
import subprocess
import time


class Session:
    def __init__(self, server, config, db, env=None, client="replay-recorder"):
        e = dict(os.environ)
        e["FLEETMCP_DB"] = db
        if env:
            e.update(env)
        self.p = subprocess.Popen([server, "--config", config], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=e)
        self.buf = b""
        self.id = 0
        r = self.rpc("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                    "clientInfo": {"name": client, "version": "1"}})
        assert "result" in r, r
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def send(self, obj):
        self.p.stdin.write(json.dumps(obj).encode() + b"\n")
        self.p.stdin.flush()

    def rpc(self, method, params, timeout=300):
        self.id += 1
        self.send({"jsonrpc": "2.0", "id": self.id, "method": method, "params": params})
        deadline = time.time() + timeout
        while time.time() < deadline:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                msg = json.loads(line)
                if msg.get("id") == self.id and "method" not in msg:
                    return msg
            r, _, _ = select.select([self.p.stdout], [], [], max(0.0, deadline - time.time()))
            if not r:
                break
            chunk = os.read(self.p.stdout.fileno(), 1 << 20)
            if not chunk:
                break
            self.buf += chunk
        raise TimeoutError(f"no answer to {method}")

    def call(self, tool, **args):
        """(structuredContent or None, error text or None)"""
        r = self.rpc("tools/call", {"name": tool, "arguments": args})
        res = r.get("result", {})
        if "error" in r:
            return None, r["error"]["message"]
        if res.get("isError"):
            return None, res["content"][0]["text"]
        return res.get("structuredContent"), None

    def close(self):
        self.p.stdin.close()
        try:
            self.p.wait(30)
        except subprocess.TimeoutExpired:
            self.p.kill()
