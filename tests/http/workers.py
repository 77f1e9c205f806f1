#!/usr/bin/env python3
"""Several worker processes behind one socket (http.workers): parallel
keep-alive clients of both protocol eras get their own correct answers,
every call is in the audit chain and the chain verifies afterwards, a
session ended by DELETE is ended at every worker, a worker that dies is
replaced, and SIGTERM stops them all.
Bounded by count (CLIENTS x CALLS) and by time (DEADLINE_S); no timing is
asserted.  Usage: workers.py path/to/fleetmcp"""
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fmhttp import Checks, META, start, wait_exit  # noqa: E402

FM = os.path.abspath(sys.argv[1])
RUNBOOKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "runbooks")
os.environ["FLEETMCP_RUNBOOKS"] = os.path.abspath(RUNBOOKS)
CLIENTS, CALLS, DEADLINE_S = 16, 25, 120
CLASSES = ["gpu_fallen_off_bus", "gpu_nvlink_error", "gpu_pcie_error", "gpu_hang",
           "credential_expired", "gpu_app_fault", "gpu_ecc_uncorrectable", "no_such_fault"]
tmp = tempfile.mkdtemp(prefix="fm-workers-")
check = Checks("http-workers")
CONFIG = os.path.join(tmp, "fm.yaml")
with open(CONFIG, "w") as f:
    f.write("http:\n  workers: 3\n  max_connections: 64\n  shutdown_grace_s: 5\n")
DB = "workers.db"


class Client:
    """One keep-alive connection; era 2026 (stateless) or 2025 (session)."""

    def __init__(self, port, era, session=None):
        """session: reuse an Mcp-Session-Id instead of initializing."""
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        self.era, self.session = era, session
        if era == "2025" and not session:
            st, hd, b = self.rpc("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                                "clientInfo": {"name": "workers", "version": "1"}}, 0)
            self.session = hd.get("mcp-session-id")
            self.rpc("notifications/initialized", {}, None)

    def rpc(self, method, params, rid):
        msg = {"jsonrpc": "2.0", "method": method, "params": params}
        h = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        if rid is not None:
            msg["id"] = rid
        if self.era == "2026":
            msg["params"] = dict(params, _meta=META)
            h.update({"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": method})
            if "name" in params:
                h["Mcp-Name"] = params["name"]
        elif self.session:
            h.update({"MCP-Protocol-Version": "2025-11-25", "Mcp-Session-Id": self.session})
        self.c.request("POST", "/mcp", json.dumps(msg), h)
        r = self.c.getresponse()
        body = r.read()
        hd = {k.lower(): v for k, v in r.getheaders()}
        if body.startswith(b"event:"):  # SSE: the reply is the last data line
            body = [l for l in body.split(b"\n") if l.startswith(b"data: ")][-1][6:]
        return r.status, hd, json.loads(body) if body else None

    def call(self, fault_class, rid):
        st, _, b = self.rpc("tools/call", {"name": "runbook_list",
                                           "arguments": {"fault_class": fault_class}}, rid)
        return st, b


def answer(b):
    """The part of a reply that depends on the request, not on timing."""
    r = (b or {}).get("result") or {}
    return json.dumps(r.get("structuredContent"), sort_keys=True), r.get("isError")


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


srv, port = start(FM, CONFIG, tmp, DB)
deadline = time.time() + 10  # the parent says where it serves, then forks
while time.time() < deadline and len(children(srv.pid)) < 3:
    time.sleep(0.05)
kids = children(srv.pid)
check(len(kids) == 3, f"http.workers: 3 starts three worker processes: {kids}")

# What each fault class should answer, asked one at a time.
expected = {}
one = Client(port, "2026")
for fc in CLASSES:
    st, b = one.call(fc, 1)
    expected[fc] = answer(b)
    check(st == 200 and b and "result" in b, f"serial {fc}: {st} {b}")
check(len({v for v in expected.values()}) > 4, "the fault classes give different answers")

results, lock = [], threading.Lock()
stop_at = time.time() + DEADLINE_S


def worker(i):
    era = "2026" if i % 2 == 0 else "2025"
    try:
        c = Client(port, era)
        for k in range(CALLS):
            if time.time() > stop_at:
                break
            fc = CLASSES[(i + k) % len(CLASSES)]
            rid = i * 1000 + k
            st, b = c.call(fc, rid)
            with lock:
                results.append((era, fc, rid, st, b))
    except Exception as e:  # counted below as a missing answer
        with lock:
            results.append((era, None, None, 0, repr(e)))


threads = [threading.Thread(target=worker, args=(i,)) for i in range(CLIENTS)]
for t in threads:
    t.start()
for t in threads:
    t.join(max(0.0, stop_at - time.time()) + 5)
check(not any(t.is_alive() for t in threads), "every client finished within the deadline")
with lock:
    done = list(results)
check(len(done) == CLIENTS * CALLS, f"{CLIENTS} x {CALLS} calls answered: {len(done)}")
bad = [(era, fc, rid, st, b) for era, fc, rid, st, b in done
       if st != 200 or not isinstance(b, dict) or b.get("id") != rid or answer(b) != expected.get(fc)]
check(not bad, f"every parallel call got its own request's answer ({len(bad)} wrong): {bad[:2]}")
check({e for e, *_ in done} == {"2025", "2026"}, "both protocol eras ran in parallel")


def sockets(pid):
    """How many sockets pid has open (a worker: the shared listening one
    and its connections)."""
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return n


def burst_spread(server, at, loop):
    """Connections spread over the workers: 12 opened in one burst (all
    in the backlog before any is accepted) end up with every worker, none
    far past its share.  (Every worker is woken for the burst, and the
    first one up took all of it: one worker served every client while the
    others idled.)"""
    burst = [http.client.HTTPConnection("127.0.0.1", at, timeout=20) for _ in range(12)]
    for bc in burst:
        bc.connect()
    time.sleep(0.5)
    for i, bc in enumerate(burst):
        bc.request("POST", "/mcp", json.dumps({"jsonrpc": "2.0", "id": i, "method": "ping"}),
                   {"Content-Type": "application/json", "Accept": "application/json",
                    "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "ping"})
    statuses = [bc.getresponse().status for bc in burst]  # read, so served
    answered = sum(0 < st < 500 for st in statuses)
    spread = sorted(sockets(k) - 1 for k in children(server.pid))
    check(answered == 12 and len(spread) == 3 and spread[0] >= 2 and spread[-1] <= 6,
          f"{loop}: 12 connections opened at once, answered ({answered}), spread over"
          f" the 3 workers: {spread}")
    for bc in burst:
        bc.close()


burst_spread(srv, port, "select loop")

# DELETE ends a 2025 session for every worker: the end is in the store.
c = Client(port, "2025")
st, _, b = c.rpc("tools/list", {}, 3)
check(st == 200 and "result" in b, f"a new session works: {st}")
c.c.request("DELETE", "/mcp", headers={"Mcp-Session-Id": c.session})
r = c.c.getresponse()
r.read()
check(r.status == 200, f"DELETE with the session id ends it: {r.status}")
after = []
for _ in range(6):  # new connections, spread over the workers
    after.append(Client(port, "2025", c.session).rpc("tools/list", {}, 4)[0])
check(after == [404] * 6, f"the ended session is 404 at every worker: {after}")
c.c.request("DELETE", "/mcp", headers={"Mcp-Session-Id": c.session})
r = c.c.getresponse()
r.read()
check(r.status == 404, f"ending it again is 404: {r.status}")
c.c.request("DELETE", "/mcp")
r = c.c.getresponse()
r.read()
check(r.status == 400, f"DELETE without Mcp-Session-Id is 400: {r.status}")

# A worker that dies is replaced; the service answers meanwhile.
victim = children(srv.pid)[0]
os.kill(victim, signal.SIGKILL)
deadline = time.time() + 10
while time.time() < deadline and (victim in children(srv.pid) or len(children(srv.pid)) < 3):
    time.sleep(0.1)
check(victim not in children(srv.pid) and len(children(srv.pid)) == 3,
      f"a killed worker is replaced: {children(srv.pid)}")
st, b = Client(port, "2026").call("gpu_hang", 5)
check(st == 200 and answer(b) == expected["gpu_hang"], f"served after a worker died: {st}")

srv.send_signal(signal.SIGTERM)
rc = wait_exit(srv, 20)
check(rc == 0, f"SIGTERM stops the parent and its workers: {rc}")
check(not children(srv.pid), "no worker outlives the parent")

r = subprocess.run([FM, "audit", "verify", "--db", os.path.join(tmp, DB), "--config", CONFIG],
                   capture_output=True, text=True, timeout=60)
m = re.search(r"audit chain ok: (\d+) rows", r.stdout)
check(r.returncode == 0 and m, f"the audit chain verifies: {r.stdout.strip()} {r.stderr.strip()[-200:]}")
check(m and int(m.group(1)) >= CLIENTS * CALLS + len(CLASSES),
      f"every call is in the chain: {m.group(1) if m else None} rows for"
      f" {CLIENTS * CALLS + len(CLASSES)} calls")

# The epoll loop (a cap over 256 a worker: 1,200 for 3) shares the
# accepting too: its workers accept on the shared socket themselves.
EPOLL = os.path.join(tmp, "epoll.yaml")
with open(EPOLL, "w") as f:
    f.write("http:\n  workers: 3\n  max_connections: 1200\n  shutdown_grace_s: 5\n")
srv, port = start(FM, EPOLL, tmp, "epoll.db")
deadline = time.time() + 10
while time.time() < deadline and len(children(srv.pid)) < 3:
    time.sleep(0.05)
for k in range(3):  # before, most bursts went to one worker ([0, 0, 12]), not all
    burst_spread(srv, port, f"epoll loop, burst {k + 1}")
st, b = Client(port, "2026").call("gpu_hang", 6)
check(st == 200 and answer(b) == expected["gpu_hang"], f"epoll loop: a call is answered: {st}")
srv.send_signal(signal.SIGTERM)
check(wait_exit(srv, 20) == 0, "epoll loop: SIGTERM stops the parent and its workers")
check.finish()
