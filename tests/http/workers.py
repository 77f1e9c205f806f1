#!/usr/bin/env python3
"""Several workers behind one socket (http.workers), in both layouts: the
default, serving threads of one process, and worker processes
(http.processes: true).  Parallel keep-alive clients of both protocol
eras get their own correct answers, every call is in the audit chain and
the chain verifies afterwards, a session ended by DELETE is ended at
every worker, a burst of connections is spread over the workers, a worker
process that dies is replaced, and SIGTERM stops them all.
Bounded by count (CLIENTS x CALLS) and by time (DEADLINE_S); no timing is
asserted.  Usage: workers.py path/to/fleetmcp"""
import glob
import http.client
import json
import os
import re
import signal
import sqlite3
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
# Every fifth parallel call is a hitl tool the gate must refuse (shadow
# mode: it says it would have), beside the read calls a batch commits.
GATED = "gated"
tmp = tempfile.mkdtemp(prefix="fm-workers-")
check = Checks("http-workers")


def config(layout, cap, spread=False):
    """A config file for 3 workers of this layout, with this connection
    cap, spreading connections evenly (http.spread) or not (the default:
    the first worker takes them while it is free, the others stand by)."""
    path = os.path.join(tmp, f"{layout}-{cap}-{spread}.yaml")
    with open(path, "w") as f:
        f.write(f"http:\n  workers: 3\n  max_connections: {cap}\n  shutdown_grace_s: 5\n"
                + ("  processes: true\n" if layout == "processes" else "")
                + ("  spread: true\n" if spread else ""))
    return path


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
        if fault_class == GATED:
            args = {"name": "killswitch_release", "arguments": {"reason": f"workers {rid}"}}
        else:
            args = {"name": "runbook_list", "arguments": {"fault_class": fault_class}}
        st, _, b = self.rpc("tools/call", args, rid)
        return st, b


def answer(b):
    """The part of a reply that depends on the request, not on timing (a
    refusal: its verdict, not its plan and row ids)."""
    r = (b or {}).get("result") or {}
    text = " ".join(c.get("text", "") for c in r.get("content", []))
    if text.startswith("SHADOW:"):
        return re.sub(r"\(autonomy.*", "", text), r.get("isError")
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


def started(layout, cap, db, spread=False):
    """The service, its port, and its log file; the layout checked."""
    name = f"{layout}-{cap}-{time.monotonic_ns()}"
    srv, port = start(FM, config(layout, cap, spread), tmp, db, name=name)
    log = glob.glob(os.path.join(tmp, f"{name}-*.err"))[0]
    deadline = time.time() + 10  # workers start after the line start() waits for
    want = 3 if layout == "processes" else 0
    while time.time() < deadline and len(children(srv.pid)) < want:
        time.sleep(0.05)
    with open(log) as f:
        said = f.read()
    if layout == "processes":
        check(len(children(srv.pid)) == 3 and "(3 worker processes)" in said,
              f"{layout}: http.workers: 3 starts three worker processes: {children(srv.pid)}")
    else:
        while True:  # each names itself as it starts, after the line above
            names = []
            for tid in os.listdir(f"/proc/{srv.pid}/task"):
                with open(f"/proc/{srv.pid}/task/{tid}/comm") as f:
                    names.append(f.read().strip())
            serving = sorted(n for n in names if n.startswith("fm-serve-"))
            if len(serving) >= 3 or time.time() > deadline:
                break
            time.sleep(0.05)
        check(not children(srv.pid) and "(3 serving threads)" in said
              and serving == ["fm-serve-0", "fm-serve-1", "fm-serve-2"],
              f"{layout}: http.workers: 3 serves from one process with 3 serving threads:"
              f" {children(srv.pid)}, {names}")
    return srv, port, log


def stopped(srv, log, label):
    """SIGTERM; the per-worker connection counts the workers logged."""
    srv.send_signal(signal.SIGTERM)
    check(wait_exit(srv, 20) == 0, f"{label}: SIGTERM stops the service and its workers")
    check(not children(srv.pid), f"{label}: nothing outlives the service")
    with open(log) as f:
        return sorted(int(n) for n in re.findall(r"http worker \d+: (\d+) connections", f.read()))


def burst_spread(layout, cap, label, spread=True):
    """With http.spread, connections spread over the workers: 12 opened in
    one burst (all in the backlog before any is accepted) end up with
    every worker, none far past its share.  (Every worker is woken for the
    burst, and the first one up took all of it: one worker served every
    client while the others idled.)  Without, the first worker takes them
    all and the others stand by."""
    srv, at, log = started(layout, cap, f"burst-{layout}-{cap}-{spread}.db", spread)
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
    for bc in burst:
        bc.close()
    got = stopped(srv, log, label)
    if spread:
        check(answered == 12 and len(got) == 3 and sum(got) == 12 and got[0] >= 2
              and got[-1] <= 6,
              f"{label}: 12 connections opened at once, answered ({answered}), spread over"
              f" the 3 workers: {got}")
    else:
        check(answered == 12 and got == [0, 0, 12],
              f"{label}: 12 connections opened at once, answered ({answered}), all taken by"
              f" the first worker: {got}")


def run(layout):
    DB = f"workers-{layout}.db"
    # Spread, so that the parallel calls run on every worker at once.
    srv, port, log = started(layout, 64, DB, spread=True)

    # What each fault class should answer, asked one at a time.
    expected = {}
    one = Client(port, "2026")
    for fc in CLASSES:
        st, b = one.call(fc, 1)
        expected[fc] = answer(b)
        check(st == 200 and b and "result" in b, f"serial {fc}: {st} {b}")
    check(len({v for v in expected.values()}) > 4, "the fault classes give different answers")
    st, b = one.call(GATED, 1)
    expected[GATED] = answer(b)
    check(st == 200 and "refused with APPROVAL" in expected[GATED][0] and expected[GATED][1],
          f"the gate refuses killswitch_release without an approval: {b}")

    results, lock = [], threading.Lock()
    stop_at = time.time() + DEADLINE_S

    def worker(i):
        era = "2026" if i % 2 == 0 else "2025"
        try:
            c = Client(port, era)
            for k in range(CALLS):
                if time.time() > stop_at:
                    break
                fc = GATED if k % 5 == 4 else CLASSES[(i + k) % len(CLASSES)]
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
           if st != 200 or not isinstance(b, dict) or b.get("id") != rid
           or answer(b) != expected.get(fc)]
    check(not bad, f"every parallel call got its own request's answer ({len(bad)} wrong): {bad[:2]}")
    check({e for e, *_ in done} == {"2025", "2026"}, "both protocol eras ran in parallel")

    # Another process that opens and closes the store (the last connection
    # it knows of) leaves the service's WAL alone: a store opened beside
    # another connection of the process used to drop that one's locks, and
    # the closer then deleted the WAL, so the next rows went to a deleted
    # file.
    def audit_rows():
        db = sqlite3.connect(os.path.join(tmp, DB), timeout=10)
        n = db.execute("SELECT COUNT(*) FROM audit").fetchone()[0]
        db.close()
        return n

    before = audit_rows()
    st, b = Client(port, "2026").call("gpu_hang", 7)
    check(st == 200 and audit_rows() > before,
          f"a row written after another process closed the store is in it: {before}")

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

    if layout == "processes":
        # A worker that dies is replaced; the service answers meanwhile.
        victim = children(srv.pid)[0]
        os.kill(victim, signal.SIGKILL)
        deadline = time.time() + 10
        while time.time() < deadline and (victim in children(srv.pid)
                                          or len(children(srv.pid)) < 3):
            time.sleep(0.1)
        check(victim not in children(srv.pid) and len(children(srv.pid)) == 3,
              f"a killed worker is replaced: {children(srv.pid)}")
        st, b = Client(port, "2026").call("gpu_hang", 5)
        check(st == 200 and answer(b) == expected["gpu_hang"], f"served after a worker died: {st}")

    stopped(srv, log, layout)

    r = subprocess.run([FM, "audit", "verify", "--db", os.path.join(tmp, DB),
                        "--config", config(layout, 64, True)], capture_output=True, text=True, timeout=60)
    m = re.search(r"audit chain ok: (\d+) rows", r.stdout)
    check(r.returncode == 0 and m,
          f"the audit chain verifies: {r.stdout.strip()} {r.stderr.strip()[-200:]}")
    check(m and int(m.group(1)) >= CLIENTS * CALLS + len(CLASSES),
          f"every call is in the chain: {m.group(1) if m else None} rows for"
          f" {CLIENTS * CALLS + len(CLASSES)} calls")


for layout in ("threads", "processes"):
    run(layout)
    burst_spread(layout, 64, f"{layout}, select loop, default", spread=False)
    burst_spread(layout, 64, f"{layout}, select loop")
    # The epoll loop (a cap over 256 a worker: 1,200 for 3) shares the
    # accepting too: its workers accept on the shared socket themselves.
    for k in range(3):  # before, most bursts went to one worker ([0, 0, 12]), not all
        burst_spread(layout, 1200, f"{layout}, epoll loop, burst {k + 1}")
    burst_spread(layout, 1200, f"{layout}, epoll loop, default", spread=False)
check.finish()
