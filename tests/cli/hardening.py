#!/usr/bin/env python3
"""Hostile and careless use of one server, no stack needed (issue 13):

  6. rows cut from the end of the audit log, or all of them, fail
     `fleetmcp audit verify`;
  7. with another process holding the store's write lock, a read and a
     refusal fail and say their audit row could not be written;
  8. eight processes racing ticket_create stay within the hourly limit;
  9. a backend that echoes the request puts no credential into the reply or
     the audit;
 10. check-config reports private files others can read, a known_hosts
     others can write, missing Slurm programs and slurm.conf (with lines);
     the server refuses a world-readable key; a new store is 0600;
 12. a store path with an unknown URL scheme, or an unreachable PostgreSQL
     URL, is refused, and nothing is created;
 13. a store that cannot be opened (it opens at the first message after
     initialize) answers initialize and ping, refuses a call saying why,
     keeps serving, and the first call after it is repaired is audited;
     a store whose directory cannot be made is still refused at start.

Usage: tests/cli/hardening.py [build/fleetmcp].  Every wait is bounded.
"""
import http.server
import json
import os
import select
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
import threading
import time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from tally import Tally  # noqa: E402

SERVER = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/fleetmcp")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TMP = tempfile.mkdtemp(prefix="fm-harden-")


TALLY = Tally("hardening")
check = TALLY.check


def env(**extra):
    e = dict(os.environ, FLEETMCP_RUNBOOKS=os.path.join(ROOT, "runbooks"))
    for k in ("FLEETMCP_CONFIG", "FLEETMCP_DB", "FLEETMCP_MODE"):
        e.pop(k, None)
    e.update(extra)
    return e


class Session:
    """One fleetmcp over stdio, initialized."""

    def __init__(self, db, cfg=None, extra_env=None, cwd=None):
        argv = [SERVER] + (["--config", cfg] if cfg else []) + ["--db", db]
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=env(**(extra_env or {})), cwd=cwd)
        self.buf = b""
        self.next_id = 1
        self.request("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                    "clientInfo": {"name": "hardening", "version": "1"}})
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def send(self, obj):
        self.p.stdin.write(json.dumps(obj).encode() + b"\n")
        self.p.stdin.flush()

    def request(self, method, params, timeout=30):
        i = self.next_id
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": i, "method": method, "params": params})
        end = time.time() + timeout
        while time.time() < end:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                m = json.loads(line)
                if m.get("id") == i and "method" not in m:
                    return m
            r, _, _ = select.select([self.p.stdout], [], [], 0.5)
            if r:
                chunk = os.read(self.p.stdout.fileno(), 1 << 20)
                if not chunk:
                    return None
                self.buf += chunk
        return None

    def call(self, tool, args, timeout=30):
        m = self.request("tools/call", {"name": tool, "arguments": args}, timeout)
        return (m or {}).get("result") or {}

    def close(self):
        try:
            self.p.stdin.close()
        except OSError:
            pass
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


def text_of(res):
    return "".join(c.get("text", "") for c in res.get("content", []))


def write(path, text, mode=0o600):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def rows(db, where="1=1", args=()):
    con = sqlite3.connect(db, timeout=30)
    try:
        return con.execute(f"SELECT count(*) FROM audit WHERE {where}", args).fetchone()[0]
    finally:
        con.close()


# ---- 6. the audit log cut from the end ------------------------------------
def audit_truncation():
    db = os.path.join(TMP, "cut.db")
    s = Session(db)
    for _ in range(6):
        s.call("fleet_status", {})
    s.close()
    r = subprocess.run([SERVER, "audit", "verify", "--db", db], capture_output=True, text=True,
                       env=env())
    check(r.returncode == 0, "audit verify: intact log", r.stdout + r.stderr)
    con = sqlite3.connect(db)
    con.execute("DELETE FROM audit WHERE id=(SELECT max(id) FROM audit)")
    con.commit()
    r = subprocess.run([SERVER, "audit", "verify", "--db", db], capture_output=True, text=True,
                       env=env())
    check(r.returncode == 2 and "1 row(s) missing from the end" in r.stdout,
          "audit verify: the last row deleted", r.stdout + r.stderr)
    con.execute("DELETE FROM audit")
    con.commit()
    con.close()
    r = subprocess.run([SERVER, "audit", "verify", "--db", db], capture_output=True, text=True,
                       env=env())
    check(r.returncode == 2 and "missing from the end" in r.stdout,
          "audit verify: every row deleted", r.stdout + r.stderr)


# ---- 7. a locked store ----------------------------------------------------
def locked_store():
    db = os.path.join(TMP, "locked.db")
    s = Session(db)
    s.call("fleet_status", {})
    before = rows(db)
    holder = sqlite3.connect(db, timeout=1, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO settings(key,value,updated_ms) VALUES('lock-holder','x',0)")
    t0 = time.time()
    res = s.call("runbook_list", {}, timeout=60)
    check(res.get("isError") and text_of(res).startswith("IO:") and
          "audit row could not be written" in text_of(res),
          "a read whose audit row cannot be written fails and says so", res)
    res = s.call("node_drain", {"node": "gpu-a01", "reason": "locked store"}, timeout=60)
    check(res.get("isError") and "audit row could not be written" in text_of(res),
          "a refusal whose audit row cannot be written says so", res)
    took = time.time() - t0
    holder.execute("ROLLBACK")
    holder.close()
    check(rows(db) == before, "no row slipped in while locked", rows(db) - before)
    res = s.call("runbook_list", {})
    check(not res.get("isError") and rows(db) == before + 1, "answers again once the lock is gone",
          res)
    s.close()
    print(f"     (two calls against the lock took {took:.1f} s: the store's busy timeout)")


# ---- 8. the hourly limit across processes --------------------------------
def rate_limit_race():
    db = os.path.join(TMP, "rate.db")
    cfg = write(os.path.join(TMP, "rate.yaml"), "mode: fleet\ntickets:\n  max_creates_per_hour: 20\n")
    Session(db, cfg).close()  # migrate once, so the racers only race on calls
    procs = 8
    barrier = threading.Barrier(procs)
    allowed = []

    def racer(k):
        s = Session(db, cfg)
        barrier.wait(30)
        ok = 0
        for i in range(15):
            res = s.call("ticket_create", {"summary": f"race {k}-{i}", "node": f"n{k}-{i}",
                                           "fault_class": "gpu_fallen_off_bus"}, timeout=60)
            ok += 0 if res.get("isError") else 1
        allowed.append(ok)
        s.close()

    ts = [threading.Thread(target=racer, args=(k,)) for k in range(procs)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(180)
    n = rows(db, "tool='ticket_create' AND decision='allow' AND phase='intent'")
    check(sum(allowed) == 20 and n == 20,
          f"8 processes x 15 ticket_create, limit 20: {sum(allowed)} answered, {n} intents allowed")
    refused = rows(db, "tool='ticket_create' AND error_code='RATELIMITED'")
    check(refused == 8 * 15 - 20, f"every other call refused and audited ({refused})")


# ---- 9. a backend that echoes the request --------------------------------
class Echo(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(n)
        body = json.dumps({"status": "error", "errorType": "bad_data",
                           "error": "bad query; request headers were: " +
                           "; ".join(f"{k}: {v}" for k, v in self.headers.items())})
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    do_GET = do_POST

    def log_message(self, *a):
        pass


def echoed_secrets():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    token = "sekrit-token-8d1f0c55e2"
    tok_file = write(os.path.join(TMP, "metrics.token"), token + "\n")
    cfg = write(os.path.join(TMP, "echo.yaml"),
                f"mode: shadow\nmetrics:\n  backend: prometheus\n"
                f"  url: http://127.0.0.1:{srv.server_address[1]}\n"
                f"  token: {{file: {tok_file}}}\n")
    db = os.path.join(TMP, "echo.db")
    s = Session(db, cfg)
    res = s.call("grafana_query", {"promql": "up"})
    s.close()
    srv.shutdown()
    txt = text_of(res)
    check(res.get("isError") and "bad query" in txt, "the backend's error reaches the reply", res)
    check(token not in txt and "Bearer s" not in txt, "no credential in the reply", txt)
    con = sqlite3.connect(db)
    leaked = con.execute("SELECT count(*) FROM audit WHERE error LIKE ? OR result LIKE ?",
                         (f"%{token}%", f"%{token}%")).fetchone()[0]
    con.close()
    check(leaked == 0, "no credential in the audit", leaked)


# ---- 10. check-config on dangerous files --------------------------------
def config_files():
    d = os.path.join(TMP, "cfgfiles")
    os.makedirs(d)
    key = write(os.path.join(d, "id_ed25519"), "not really a key\n", 0o644)
    kh = write(os.path.join(d, "known_hosts"), "", 0o666)
    tok = write(os.path.join(d, "token"), "t0ken-value\n", 0o644)
    cfg = write(os.path.join(d, "fm.yaml"), f"""mode: shadow
slurm:
  backend: cli
  cli:
    scontrol: {d}/no-such-scontrol
    sinfo: no-such-sinfo-anywhere
    slurm_conf: {d}/no-such-slurm.conf
metrics:
  backend: prometheus
  url: http://127.0.0.1:9
  token: {{file: {tok}}}
ssh:
  user: fleet
  key_file: {key}
  known_hosts: {kh}
""")
    r = subprocess.run([SERVER, "check-config", "--config", cfg], capture_output=True,
                       text=True, env=env())
    out = r.stdout + r.stderr
    check(r.returncode == 1, "check-config fails", out)
    for line, what in ((14, "SSH private key"), (15, "known_hosts"), (11, "secret file"),
                       (5, "no-such-scontrol"), (6, "no-such-sinfo"), (7, "no-such-slurm.conf")):
        check(any(f"fm.yaml:{line}:" in ln and what in ln for ln in out.splitlines()),
              f"check-config names {what} at line {line}", out)
    r = subprocess.run([SERVER, "--config", cfg, "--db", os.path.join(d, "s.db")],
                       input="", capture_output=True, text=True, env=env(), timeout=30)
    check(r.returncode != 0 and "other users can read it" in r.stderr,
          "the server refuses to start with a world-readable key", r.stderr)
    db = os.path.join(TMP, "fresh", "new.db")
    s = Session(db)
    s.call("fleet_status", {})
    s.close()
    modes = {p: stat.S_IMODE(os.stat(os.path.join(TMP, "fresh", p)).st_mode)
             for p in os.listdir(os.path.join(TMP, "fresh"))}
    check(modes and all(m & 0o077 == 0 for m in modes.values()),
          "a new store and its side files are private", {k: oct(v) for k, v in modes.items()})


# ---- 12. a URL as the store path -----------------------------------------
def url_store():
    d = os.path.join(TMP, "url")
    os.makedirs(d)
    # A PostgreSQL URL is a store; on a closed loopback port it is refused
    # as unreachable (never a name off this host: tests stay on loopback).
    for url, word in (("postgresql://fleet@127.0.0.1:9/fleet", "unreachable"),
                      ("mysql://x/y", "URL scheme")):
        r = subprocess.run([SERVER, "audit", "verify"], capture_output=True, text=True,
                           env=env(FLEETMCP_DB=url), cwd=d, timeout=30)
        check(r.returncode != 0 and word in r.stderr, f"FLEETMCP_DB={url} refused", r.stderr)
    check(os.listdir(d) == [], "nothing created in the working directory", os.listdir(d))


# ---- 13. a store that cannot be opened -----------------------------------
def unopenable_store():
    d = os.path.join(TMP, "unopenable")
    os.makedirs(d)
    db = write(os.path.join(d, "s.db"), "this is not a SQLite database\n" * 8)
    s = Session(db)
    try:
        m = s.request("tools/call", {"name": "runbook_list", "arguments": {}}) or {}
        msg = (m.get("error") or {}).get("message", "")
        check("store could not be opened" in msg and "not a database" in msg and "--db" in msg,
              "a call on a store that cannot be opened is refused, saying why and what to do", m)
        check((s.request("ping", {}) or {}).get("result") == {}, "the server keeps serving")
        os.unlink(db)  # repaired: the next message opens a new store there
        res = s.call("runbook_list", {})
        check(res.get("structuredContent") is not None and not res.get("isError"),
              "the first call after the repair answers", res)
    finally:
        s.close()
    check(rows(db, "tool='runbook_list'") == 1, "and its audit row is in the repaired store")
    # Still refused at start, before any message: a directory that cannot be made.
    blocker = write(os.path.join(d, "file"), "x")
    r = subprocess.run([SERVER, "--db", os.path.join(blocker, "sub", "s.db")], input="",
                       capture_output=True, text=True, env=env(), timeout=30)
    check(r.returncode == 1 and "cannot create" in r.stderr and "--db" in r.stderr,
          "a store whose directory cannot be made is refused at start", r.stderr)


def main():
    for fn in (audit_truncation, locked_store, rate_limit_race, echoed_secrets, config_files,
               url_store, unopenable_store):
        print(f"== {fn.__name__}", flush=True)
        try:
            fn()
        except Exception as e:  # a scenario crashing is a failure, not the end
            check(False, f"{fn.__name__} raised", repr(e))
    status = TALLY.summary()
    if status:
        print(f"hardening: files kept in {TMP}")
    else:
        shutil.rmtree(TMP, ignore_errors=True)
    sys.exit(status)


if __name__ == "__main__":
    main()
