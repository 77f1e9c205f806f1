#!/usr/bin/env python3
"""Server-to-client requests over Streamable HTTP (2025 sessions).

Two replicas of the conformance fixture share one store, each with 2
workers: A in the default layout (serving threads of one process), B in
worker processes (http.processes: true).  A tool call on replica A asks its client
(elicitation/create) on the POST's SSE stream; the answer is POSTed to
replica B and must reach the call waiting in A.  Also: an answer under a
foreign or unknown session, with an unknown id, or over the size cap is
refused and never reaches the call; a call whose client does not answer
gets a clear error after its timeout and its pending row is gone; a
client that hangs up ends the wait; one worker always stays free, and a
worker killed while waiting does not hold that budget.
Then the approval path of the real server (fleetmcp --http with `auth`):
a hitl call by a trusted token subject on a 2025 session asks for the
approval on its stream, and the answer POSTed back releases it once.
Every wait is bounded.
Usage: backchannel.py path/to/conformance-fixture path/to/fleetmcp"""
import json
import os
import signal
import socket
import sqlite3
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fmhttp import (Checks, HITL_SCOPES, auth_yaml, bearer, post, request, start,  # noqa: E402
                    stateless, wait_exit)

FIX = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/conformance-fixture")
FM = os.path.abspath(sys.argv[2] if len(sys.argv) > 2 else "build/fleetmcp")
if not os.path.exists(FIX):
    raise SystemExit(f"{FIX} is missing: make build/conformance-fixture")
tmp = tempfile.mkdtemp(prefix="fm-backchannel-")
DB = os.path.join(tmp, "shared.db")
V = "2025-11-25"
check = Checks("http-backchannel")


AUTH = {}  # the Authorization header, for the real server's part


def headers(sid):
    return {"Mcp-Session-Id": sid, "MCP-Protocol-Version": V, **AUTH}


def session(port, caps):
    st, hd, _ = post(port, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": V, "capabilities": caps,
        "clientInfo": {"name": "backchannel-test", "version": "1"}}}, AUTH)
    sid = hd.get("mcp-session-id")
    if st != 200 or not sid:
        raise SystemExit(f"initialize on {port} answered {st}")
    post(port, {"jsonrpc": "2.0", "method": "notifications/initialized"}, headers(sid))
    return sid


class Call:
    """A tools/call POST whose response is read as an SSE stream."""

    def __init__(self, port, sid, name, args, rid=2):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.s.sendall(request(port, {"jsonrpc": "2.0", "id": rid, "method": "tools/call",
                                      "params": {"name": name, "arguments": args}}, headers(sid)))
        self.buf, self.head, self.eof = b"", None, False

    def _fill(self, deadline):
        if self.eof or time.time() >= deadline:
            return False
        self.s.settimeout(max(0.05, deadline - time.time()))
        try:
            chunk = self.s.recv(65536)
        except (socket.timeout, OSError):
            return False
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def message(self, timeout=10.0):
        """The next message on the stream (or the plain JSON reply), or None."""
        deadline = time.time() + timeout
        while self.head is None:
            if b"\r\n\r\n" in self.buf:
                self.head, _, self.buf = self.buf.partition(b"\r\n\r\n")
                self.head = self.head.decode("latin-1")
                break
            if not self._fill(deadline):
                return None
        if "text/event-stream" not in self.head.lower():
            while self._fill(deadline):
                pass
            return json.loads(self.buf) if self.buf else None
        while True:
            ev, sep, rest = self.buf.partition(b"\n\n")
            if sep:
                self.buf = rest
                data = [l[5:].strip() for l in ev.split(b"\n") if l.startswith(b"data:")]
                if data and data[0]:
                    return json.loads(b"".join(data))
                continue
            if not self._fill(deadline):
                return None

    def close(self):
        self.s.close()


def answer(port, sid, rid, result):
    return post(port, {"jsonrpc": "2.0", "id": rid, "result": result}, headers(sid))[0]


def pending_rows():
    try:
        with sqlite3.connect(DB, timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM mcp_client_requests").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def text_of(msg):
    r = (msg or {}).get("result") or {}
    return " ".join(c.get("text", "") for c in r.get("content", [])), bool(r.get("isError"))


A, pa = start(None, tmp=tmp, argv=[FIX, "--db", DB], name="replica-a")
# The fixture reads no --config; FLEETMCP_CONFIG reaches its context.
PROCS = os.path.join(tmp, "processes.yaml")
with open(PROCS, "w") as f:
    f.write("http:\n  workers: 2\n  processes: true\n")
os.environ["FLEETMCP_CONFIG"] = PROCS
B, pb = start(None, tmp=tmp, argv=[FIX, "--db", DB], name="replica-b")
del os.environ["FLEETMCP_CONFIG"]
ELICIT = {"elicitation": {}}
try:
    # The answer goes to replica B; the call waits in replica A.
    sid = session(pa, ELICIT)
    other = session(pb, ELICIT)
    t0 = time.time()
    call = Call(pa, sid, "test_elicitation", {"message": "Who are you?"})
    ask = call.message()
    check(ask and ask.get("method") == "elicitation/create" and ask.get("id")
          and ask["params"]["message"] == "Who are you?",
          f"the call asks its client on the response stream: {ask}")
    rid = (ask or {}).get("id", "none")
    good = {"action": "accept", "content": {"username": "testuser", "email": "t@example.com"}}
    check(answer(pb, other, rid, good) == 404,
          "an answer under another session is refused (404)")
    check(answer(pb, "not-a-session", rid, good) == 404, "an answer under no session is 404")
    check(answer(pb, sid, rid + "x", good) == 404, "an answer to an unknown id is 404")
    big = {"action": "accept", "content": {"username": "x" * 70000, "email": "e"}}
    st_big = answer(pb, sid, rid, big)
    check(st_big == 413, f"an answer over 64 KiB is refused (413): {st_big}")
    check(pending_rows() == 1, "the question is pending in the store while the call waits")
    check(answer(pb, sid, rid, good) == 202, "the answer POSTed to the other replica is taken (202)")
    done = call.message()
    text, is_err = text_of(done)
    check(done and done.get("id") == 2 and not is_err and "testuser" in text
          and "x" * 100 not in text,
          f"the call's reply carries the answer, not a refused one: {done}")
    check(call.message(timeout=3) is None and call.eof, "the stream ends after the reply")
    call.close()
    print(f"round trip across replicas: {1000 * (time.time() - t0):.0f} ms")
    check(answer(pb, sid, rid, good) == 404, "a second answer to the same question is 404")
    check(pending_rows() == 0, "the pending row is gone once answered")

    # No answer: the tool gets a clear error at its timeout, the row goes.
    call = Call(pa, sid, "test_elicitation", {"message": "Anyone?", "timeout_s": 1})
    ask = call.message()
    rid = (ask or {}).get("id", "none")
    t0 = time.time()
    done = call.message(timeout=10)
    text, is_err = text_of(done)
    check(is_err and "no answer to elicitation/create within 1 s" in text
          and time.time() - t0 < 5, f"an unanswered question times out with a clear error: {done}")
    call.close()
    check(pending_rows() == 0, "the timed-out question's row is cleaned up")
    check(answer(pb, sid, rid, good) == 404, "a late answer is 404")

    # A waiting worker leaves one free: a second asking call on the same
    # replica is told so at once; the first still completes.
    first = Call(pa, sid, "test_elicitation", {"message": "First"})
    ask1 = first.message()
    s2 = session(pa, ELICIT)
    second = Call(pa, s2, "test_elicitation", {"message": "Second"}, rid=3)
    msg2 = second.message(timeout=10)
    text2, err2 = text_of(msg2)
    check(err2 and "must stay free" in text2,
          f"a second asking call on a replica with 2 workers is refused, not queued: {msg2}")
    second.close()
    check(answer(pa, sid, (ask1 or {}).get("id", "none"), good) == 202,
          "the first call's answer reaches it through the free worker of the same replica")
    text1, err1 = text_of(first.message())
    check(not err1 and "testuser" in text1, "the first call completes")
    first.close()

    # A client that hangs up ends the wait and the row.
    call = Call(pa, sid, "test_elicitation", {"message": "Bye", "timeout_s": 30})
    check((call.message() or {}).get("method") == "elicitation/create", "asked again")
    call.close()
    deadline = time.time() + 5
    while pending_rows() and time.time() < deadline:
        time.sleep(0.1)
    check(pending_rows() == 0, "a closed stream ends the wait and removes the row within 5 s")
    call = Call(pa, sid, "test_simple_text", {})
    text, is_err = text_of(call.message())
    check("simple text" in text, "the replica serves calls again after the hang-up")
    call.close()

    # A task created on A while a call of A waits for its answer: the
    # runner forks from the other serving thread, whose fork waits for the
    # waiting one's store connection to be idle (between its polls), and
    # closes it in the runner; the runner opens its own and completes.
    first = Call(pa, sid, "test_elicitation", {"message": "Meanwhile"})
    ask1 = first.message()
    task_meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                 "io.modelcontextprotocol/clientCapabilities": {
                     "extensions": {"io.modelcontextprotocol/tasks": {}}},
                 "io.modelcontextprotocol/clientInfo": {"name": "bc-task", "version": "1"}}
    st, _, b = stateless(pa, "tools/call", {"name": "slow_compute", "_meta": task_meta,
                                            "arguments": {"seconds": 1, "label": "meanwhile"}})
    tid = ((b or {}).get("result") or {}).get("taskId", "none")
    status, deadline = None, time.time() + 20
    while time.time() < deadline and status not in ("completed", "failed", "cancelled"):
        time.sleep(0.3)
        _, _, g = stateless(pa, "tasks/get", {"taskId": tid, "_meta": task_meta},
                            {"Mcp-Name": tid})
        status = ((g or {}).get("result") or {}).get("status")
    check(st == 200 and status == "completed",
          f"threads: a task created while another thread's call waits completes: {status} {b}")
    check(answer(pa, sid, (ask1 or {}).get("id", "none"), good) == 202, "and the wait is answered")
    text1, err1 = text_of(first.message())
    check(not err1 and "testuser" in text1, f"the waiting call completes: {text1}")
    first.close()

    # The same on replica B, whose workers are processes, answered via A.
    first = Call(pb, sid, "test_elicitation", {"message": "First"})
    ask1 = first.message()
    second = Call(pb, s2, "test_elicitation", {"message": "Second"}, rid=3)
    text2, err2 = text_of(second.message(timeout=10))
    check(err2 and "must stay free" in text2, f"processes: a second asking call is refused: {text2}")
    second.close()
    check(answer(pa, sid, (ask1 or {}).get("id", "none"), good) == 202,
          "processes: the answer POSTed to the threaded replica is taken")
    text1, err1 = text_of(first.message())
    check(not err1 and "testuser" in text1, f"processes: the first call completes: {text1}")
    first.close()

    # A worker process killed while it waits: its row does not hold the
    # budget.  (A serving thread cannot die alone: its process goes.)
    call = Call(pb, sid, "test_elicitation", {"message": "Die", "timeout_s": 60})
    check((call.message() or {}).get("method") == "elicitation/create", "asked once more")
    with sqlite3.connect(DB, timeout=5) as db:
        pid = db.execute("SELECT pid FROM mcp_client_requests").fetchone()[0]
    os.kill(pid, signal.SIGKILL)
    check(call.message(timeout=5) is None and call.eof, "the killed worker's stream ends")
    call.close()
    time.sleep(1.5)  # the parent replaces a dead worker at most once a second
    call = Call(pb, sid, "test_elicitation", {"message": "After", "timeout_s": 10})
    ask = call.message()
    check((ask or {}).get("method") == "elicitation/create",
          f"a dead worker's question does not keep the next call from asking: {ask}")
    check(answer(pa, sid, (ask or {}).get("id", "none"), good) == 202, "answered")
    text, is_err = text_of(call.message())
    check(not is_err and pending_rows() == 0, f"completed, and the dead row is gone: {text}")
    call.close()

    # Sampling needs the capability: a session without it gets an error.
    nos = session(pb, {})
    call = Call(pb, nos, "test_sampling", {"prompt": "hi"})
    text, is_err = text_of(call.message())
    check(is_err and "sampling" in text, f"no sampling capability, no question: {text}")
    call.close()
finally:
    for p in (A, B):
        p.terminate()
        check(wait_exit(p, 35) == 0, "replica stops cleanly on SIGTERM")

# ---- the approval path of the real server, on a 2025 session ------------------
ALICE = "alice-" + os.urandom(8).hex()
CONF = os.path.join(tmp, "approve.yaml")
with open(CONF, "w") as f:
    f.write("mode: fleet\nhttp:\n  workers: 2\n"
            + auth_yaml({"token": ALICE, "subject": "alice@example.com", "scopes": HITL_SCOPES}) +
            "approvals:\n  separate_creator: false\n"
            "  elicitation:\n    enabled: true\n    trusted_subjects: [alice@example.com]\n")
FDB = os.path.join(tmp, "approve.db")
srv, port = start(FM, CONF, tmp, db="approve.db")
AUTH.update(bearer(ALICE))
try:
    sid = session(port, ELICIT)
    call = Call(port, sid, "killswitch_engage", {"reason": "backchannel test"})
    text, is_err = text_of(call.message())
    call.close()
    check(not is_err, f"kill switch engaged: {text}")
    for action, released in (("decline", False), ("accept", True)):
        call = Call(port, sid, "killswitch_release", {"reason": "backchannel test"})
        ask = call.message()
        props = ((ask or {}).get("params") or {}).get("requestedSchema", {}).get("properties", {})
        check((ask or {}).get("method") == "elicitation/create" and "approve" in props,
              f"the hitl call asks for the approval on its stream: {ask}")
        result = {"action": action, "content": {"approve": True}} if released else \
            {"action": action}
        check(answer(port, sid, (ask or {}).get("id", "none"), result) == 202,
              f"the {action} is taken")
        text, is_err = text_of(call.message(timeout=20))
        call.close()
        check(is_err != released and (released or "APPROVAL" in text),
              f"{action}: the call is {'released' if released else 'refused'}: {text[:200]}")
finally:
    srv.terminate()
    check(wait_exit(srv, 35) == 0, "fleetmcp stops cleanly on SIGTERM")
with sqlite3.connect(FDB) as db:
    rows = db.execute("SELECT approver, used_ms IS NOT NULL FROM approvals").fetchall()
check(rows == [("elicitation:alice@example.com", 1)],
      f"one approval, recorded under the token subject and used: {rows}")
check.finish()
