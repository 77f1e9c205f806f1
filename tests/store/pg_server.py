#!/usr/bin/env python3
"""Server-level checks on a PostgreSQL store (stage store-pg; tests/store/pg.sh
starts the throwaway server and passes its URL and data dir):

1. four servers, as four hosts, write one audit chain at once: every call
   answered, the chain verifies and has every row (one chain, no fork);
2. PostgreSQL restarted while a server is answering calls: every call gets
   an answer (a result, or an error result that names PostgreSQL), the
   server keeps serving afterwards, and the chain verifies;
3. a SQLite store made by this build, migrated with `fleetmcp store
   migrate` into a new database: the copy verifies, the chain goes on
   there, and a row edited on the copy is found.

Every loop is bounded by a count and a deadline."""
import json
import os
import subprocess
import sys
import threading
import time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from tally import Tally  # noqa: E402

SERVER, URL, PGDIR = sys.argv[1], sys.argv[2], sys.argv[3]
TALLY = Tally("store-pg server", detail_max=600)
check = TALLY.check


def psql(sql):
    r = subprocess.run(["psql", "-X", "-At", URL, "-c", sql], capture_output=True, text=True,
                       timeout=30)
    return r.stdout.strip()


class Server:
    def __init__(self, host, db=None):
        env = dict(os.environ, FLEETMCP_HOST_ID=host)
        env.pop("FLEETMCP_CONFIG", None)
        self.p = subprocess.Popen([SERVER, "--db", db or URL], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=env)
        self.n = 0
        self.send("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                 "clientInfo": {"name": host, "version": "1"}})
        self.p.stdin.write(json.dumps({"jsonrpc": "2.0",
                                       "method": "notifications/initialized"}) + "\n")
        self.p.stdin.flush()

    def send(self, method, params):
        self.n += 1
        self.p.stdin.write(json.dumps({"jsonrpc": "2.0", "id": self.n, "method": method,
                                       "params": params}) + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()  # the server answers in order, one line each
        return json.loads(line) if line else None

    def call(self, tool, args=None):
        return self.send("tools/call", {"name": tool, "arguments": args or {}})

    def close(self):
        self.p.stdin.close()
        try:
            self.p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


def verify(db=None):
    r = subprocess.run([SERVER, "audit", "verify", "--db", db or URL], capture_output=True,
                       text=True, timeout=120)
    return r.returncode, r.stdout + r.stderr


def four_writers(calls=40):
    print("== four servers as four hosts write one chain", flush=True)
    before = int(psql("SELECT count(*) FROM audit") or 0)
    answered = [0] * 4
    deadline = time.monotonic() + 90

    def run(i):
        s = Server(f"host-{i}")
        for _ in range(calls):
            if time.monotonic() > deadline:
                break
            r = s.call("fleet_status")
            if r and "result" in r and not r["result"].get("isError"):
                answered[i] += 1
        s.close()

    ts = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    check(answered == [calls] * 4, f"every call of 4x{calls} answered", answered)
    after = int(psql("SELECT count(*) FROM audit") or 0)
    check(after - before == 4 * calls, "one audit row per call", after - before)
    ids = psql("SELECT count(*), count(DISTINCT prev_hash), max(id) - min(id) + 1 FROM audit")
    n, prevs, span = (int(x) for x in ids.split("|"))
    check(n == prevs == span, "no fork: every row has its own predecessor, ids contiguous", ids)
    rc, out = verify()
    check(rc == 0, "audit verify passes", out)


def restart_mid_calls(calls=60):
    print("== PostgreSQL restarted while calls are in flight", flush=True)
    s = Server("host-r")
    answers, errors, store_errors = 0, [], 0
    bin_dir = sorted(d for d in os.listdir("/usr/lib/postgresql"))[-1]
    pg_ctl = f"/usr/lib/postgresql/{bin_dir}/bin/pg_ctl"
    as_pg = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []
    restarted = threading.Event()

    def restart():
        # -l: the restarted postgres must not inherit a pipe of ours.
        subprocess.run(as_pg + [pg_ctl, "-D", os.path.join(PGDIR, "data"), "-m", "fast",
                                "-l", os.path.join(PGDIR, "pg.log"), "-w", "-t", "60",
                                "restart"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=90)
        restarted.set()

    deadline = time.monotonic() + 120
    last_ok = False
    for i in range(calls):
        if time.monotonic() > deadline:
            break
        if i == 10:
            threading.Thread(target=restart).start()
        if i == calls - 10:
            restarted.wait(90)
        r = s.call("fleet_status")
        if not r or "id" not in r:
            errors.append(f"call {i}: no answer")
            continue
        answers += 1
        res = r.get("result", {})
        if res.get("isError") or "error" in r:
            store_errors += 1
            if store_errors == 1:
                print(f"     first error answer: {json.dumps(r)[:400]}")
            text = json.dumps(r)
            if "PostgreSQL" not in text and "store" not in text:
                errors.append(f"call {i}: error that does not name the store: {text[:300]}")
        last_ok = bool(res) and not res.get("isError")
    print(f"     {store_errors} call(s) answered with a store error during the restart")
    check(answers == calls and not errors, f"every one of {calls} calls answered", errors)
    check(last_ok, "the server serves again after the restart")
    check(s.p.poll() is None, "the server kept running")
    s.close()
    rc, out = verify()
    check(rc == 0, "audit verify passes after the restart", out)


def migrate():
    print("== a SQLite store migrated into PostgreSQL", flush=True)
    lite = os.path.join(PGDIR, "lite.db")
    s = Server("host-lite", lite)
    for args in ({}, {"reason": "migration test"}):
        s.call("fleet_status" if not args else "killswitch_engage", args)
    s.call("killswitch_disengage", {"reason": "done"})
    s.close()
    rc, out = verify(lite)
    check(rc == 0, "the SQLite store verifies", out)
    psql("CREATE DATABASE fm_migrated")
    to = URL.rsplit("/", 1)[0] + "/fm_migrated"
    r = subprocess.run([SERVER, "store", "migrate", "--from", "sqlite:" + lite, "--to", to],
                       capture_output=True, text=True, timeout=120)
    check(r.returncode == 0 and "audit chain ok" in r.stdout, "store migrate copies and verifies",
          r.stdout + r.stderr)
    r = subprocess.run([SERVER, "store", "migrate", "--from", "sqlite:" + lite, "--to", to],
                       capture_output=True, text=True, timeout=120)
    check(r.returncode != 0 and "empty" in r.stderr, "a second migrate into it is refused",
          r.stdout + r.stderr)
    s = Server("host-pg", to)
    res = s.call("fleet_status")
    s.close()
    check(res and not res.get("result", {}).get("isError"), "the copy serves calls", res)
    rc, out = verify(to)
    check(rc == 0, "the chain goes on on the copy", out)
    subprocess.run(["psql", "-X", "-q", to, "-c", "UPDATE audit SET tool='x' WHERE id=2"],
                   capture_output=True, timeout=30)
    rc, out = verify(to)
    check(rc != 0 and "row 2" in out, "an edited row on the copy is found", out)


four_writers()
restart_mid_calls()
migrate()
sys.exit(TALLY.summary())
