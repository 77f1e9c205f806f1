#!/usr/bin/env python3
"""The REST node table's freshness on the real stack (node_table.sh).

One stdio session (REST backend, shadow mode) plans repairs on one node
while scontrol, outside fleetmcp, drains and resumes another node of the
same partition: each plan's capacity numbers must follow Slurm at once
(the conditional read answers "changed", 22.05 with its HTTP 500, and the
table is read again), and a plan after no change must report the same
numbers as a fresh session (a full read).  slurm_nodes in that session
(read from the table) must follow the same changes and say what a CLI
session says (sinfo --json), and a CLI plan's guardrail verdicts (sinfo's
aggregate) must be the REST plan's, word for word.

The table's snapshot in the store (issue 20): through a proxy on
slurmrestd's socket that counts requests by path, a fresh process sharing
the store with one that read the whole listing pays no listing (only the
two conditional reads and /diag) and answers the same; after a drain made
with scontrol outside fleetmcp, a fresh process sees it (one listing,
which the next fresh process then reuses).  Every wait is bounded."""
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "replay"))
from session import Session  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from tally import Tally  # noqa: E402

STACK = os.environ["FM_STACK"]
BUILD = os.environ.get("FM_BUILD", "build")
PLAN_NODE, OTHER = "gpu-a03", "gpu-a04"
TALLY = Tally("node_table")
check = TALLY.check


def scontrol(*args):
    subprocess.run(["scontrol", "update", f"nodename={OTHER}"] + list(args), check=True,
                   capture_output=True, timeout=30)


def session(name, cfg="FM_CONFIG"):
    db = os.path.join(STACK, f"node-table-{name}.db")
    return Session(os.path.join(BUILD, "fleetmcp"), os.environ[cfg], db,
                   env={"FLEETMCP_MODE": "shadow"}, client="node-table")


class CountingProxy:
    """A unix socket in front of slurmrestd's that passes bytes both ways
    and records each request's method and path (client to server)."""

    REQ = re.compile(rb"(?:^|\r\n)(GET|POST|DELETE) (\S+) HTTP/1\.[01]\r\n")

    def __init__(self, upstream, path):
        self.upstream, self.path, self.lock = upstream, path, threading.Lock()
        self.streams = []
        if os.path.exists(path):
            os.unlink(path)
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(16)
        self.srv.settimeout(0.5)
        self.stop = False
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while not self.stop:
            try:
                c, _ = self.srv.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            u.connect(self.upstream)
            buf = bytearray()
            with self.lock:
                self.streams.append(buf)
            threading.Thread(target=self.pipe, args=(c, u, buf), daemon=True).start()
            threading.Thread(target=self.pipe, args=(u, c, None), daemon=True).start()

    def pipe(self, a, b, record):
        a.settimeout(600)
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                if record is not None:
                    with self.lock:
                        record += d
                b.sendall(d)
        except OSError:
            pass
        for x in (a, b):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def requests(self):
        with self.lock:
            return [(m.group(1).decode(), m.group(2).decode())
                    for buf in self.streams for m in self.REQ.finditer(bytes(buf))]

    def reset(self):
        with self.lock:
            self.streams.clear()

    def close(self):
        self.stop = True
        self.srv.close()
        os.unlink(self.path)


def listings(reqs):
    """How many whole node listings (an unconditional GET .../nodes)."""
    return sum(1 for m, p in reqs if m == "GET" and re.fullmatch(r"/slurm/v[0-9.]+/nodes", p))


def call(s, tool, args):
    r = s.rpc("tools/call", {"name": tool, "arguments": args})
    sc = (r.get("result") or {}).get("structuredContent")
    if not sc:
        print("     answer:", json.dumps(r)[:600])
    return sc


def plan(s):
    return call(s, "repair_plan", {"node": PLAN_NODE, "fault_class": "gpu_thermal"})


def gpu_capacity(s):
    sc = plan(s)
    return sc["capacity"].get("gpu") if sc else None


def verdicts(s):
    sc = plan(s)
    return sorted((v["guardrail"], v["ok"], v.get("detail", ""))
                  for v in (sc or {}).get("guardrails", {}).get("verdicts", []))


def nodes(s):
    sc = call(s, "slurm_nodes", {"detail": True})
    if sc:
        sc.pop("backend", None)
    return sc


def other_state(listing):
    return next((n["state"] for n in (listing or {}).get("nodes", []) if n["name"] == OTHER),
                None)


def wait_state(word, present):
    for _ in range(150):
        out = subprocess.run(["sinfo", "-h", "-n", OTHER, "-o", "%T"], capture_output=True,
                             text=True, timeout=30).stdout.upper()
        # A resumed node reads NOT_RESPONDING ("idle*") until slurmctld's
        # next ping answers: not schedulable, and so not back yet.
        if (word in out) == present and (present or "*" not in out):
            return
        time.sleep(0.2)


def shared_snapshot():
    """Fresh processes on one store, through the counting proxy."""
    proxy = CountingProxy(os.environ["FM_SLURM_SOCKET"], os.path.join(STACK, "node-table.sock"))
    cfg = os.path.join(STACK, "node-table-proxy.yaml")
    with open(os.environ["FM_CONFIG"]) as f:
        text = f.read()
    with open(cfg, "w") as f:
        f.write(text.replace(os.environ["FM_SLURM_SOCKET"], proxy.path))
    db = os.path.join(STACK, "node-table-shared.db")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db + suffix):
            os.unlink(db + suffix)

    def fresh(tool, args):
        proxy.reset()
        s = Session(os.path.join(BUILD, "fleetmcp"), cfg, db, env={"FLEETMCP_MODE": "shadow"},
                    client="node-table")
        try:
            return call(s, tool, args), proxy.requests()
        finally:
            s.close()

    def reused(tool, args, prev):
        """A fresh process after another's: it must pay no listing.  A fresh
        stack's nodes may still change on their own (a listing is then
        right, and leaves a newer snapshot), so up to 3 tries, each
        compared with the process before it."""
        for _ in range(3):
            got, reqs = fresh(tool, args)
            if listings(reqs) == 0:
                return got, reqs, prev
            prev = got
            time.sleep(1.1)  # past the second that listing was stamped in
        return got, reqs, prev

    try:
        first, reqs = fresh("slurm_nodes", {"detail": True})
        check(first is not None and listings(reqs) == 1,
              f"first process, empty store: one whole listing ({listings(reqs)})")
        again, reqs, before = reused("slurm_nodes", {"detail": True}, first)
        conds = [p for m, p in reqs if "update_time=" in p]
        check(again is not None and listings(reqs) == 0 and len(conds) == 2,
              f"fresh process after it: no listing ({listings(reqs)}), two conditional reads "
              f"({len(conds)}); asked {[p for _, p in reqs]}")
        for d in (before, again):
            if d:
                d.pop("backend", None)
        check(again == before, "its answer (from the snapshot) is the process before it's")
        plan0, reqs, _ = reused("repair_plan", {"node": PLAN_NODE, "fault_class": "gpu_thermal"},
                                None)
        check(plan0 is not None and listings(reqs) == 0,
              f"a fresh repair_plan: no listing ({listings(reqs)})")
        scontrol("state=drain", "reason=node-table test: drained outside fleetmcp")
        wait_state("DRAIN", True)
        # slurmctld's stamps are seconds: a listing stamped in the drain's
        # own second is read again by the next process (as it must be).
        time.sleep(1.1)
        seen, reqs = fresh("slurm_nodes", {"detail": True})
        st = other_state(seen)
        check(st is not None and "DRAIN" in st and listings(reqs) == 1,
              f"{OTHER} drained by scontrol: a fresh process sees {st} (listings: "
              f"{listings(reqs)})")
        plan1, reqs = fresh("repair_plan", {"node": PLAN_NODE, "fault_class": "gpu_thermal"})
        cap0 = ((plan0 or {}).get("capacity") or {}).get("gpu") or {}
        cap1 = ((plan1 or {}).get("capacity") or {}).get("gpu") or {}
        check(listings(reqs) == 0 and cap1.get("schedulable_now") is not None
              and cap1.get("schedulable_now") == cap0.get("schedulable_now", 0) - 1,
              f"the next fresh repair_plan reuses that listing ({listings(reqs)}) and counts "
              f"the drain: {cap1} (before {cap0})")
    finally:
        subprocess.run(["scontrol", "update", f"nodename={OTHER}", "state=resume"],
                       capture_output=True, timeout=30)
        wait_state("DRAIN", False)
        proxy.close()


def main():
    shared_snapshot()
    s = session("long")
    try:
        before = gpu_capacity(s)
        again = gpu_capacity(s)
        check(before is not None and before == again,
              f"unchanged Slurm, second plan in the session: {again} (first {before})")
        cli = session("cli", "FM_CONFIG_CLI")
        try:
            listed, cli_listed = nodes(s), nodes(cli)
            check(listed is not None and listed == cli_listed,
                  f"slurm_nodes from the table = the CLI's listing: {listed and listed['counts']}")
            time.sleep(0.3)
            rv, cv = verdicts(s), verdicts(cli)
            check(rv and rv == cv, f"CLI plan (sinfo aggregate) verdicts = REST plan's: "
                  f"{[(g, p) for g, p, _ in cv]}" + ("" if rv == cv else f"\n     rest {rv}"
                                                      f"\n     cli  {cv}"))
        finally:
            cli.close()
        scontrol("state=drain", "reason=node-table test: drained outside fleetmcp")
        wait_state("DRAIN", True)
        time.sleep(0.3)  # past the 250 ms a check stands for
        drained = gpu_capacity(s)
        check(drained is not None and before is not None
              and drained["schedulable_now"] == before["schedulable_now"] - 1
              and drained["total"] == before["total"],
              f"{OTHER} drained by scontrol: the session's next plan sees {drained}")
        time.sleep(0.3)
        st = other_state(nodes(s))
        check(st is not None and "DRAIN" in st,
              f"{OTHER} drained: slurm_nodes in the same session lists it as {st}")
        fresh = session("fresh")
        try:
            full = gpu_capacity(fresh)
        finally:
            fresh.close()
        time.sleep(0.3)
        kept = gpu_capacity(s)
        check(kept == full, f"no change since: the kept table says {kept}, a fresh session {full}")
        scontrol("state=resume")
        wait_state("DRAIN", False)
        time.sleep(0.3)
        back = gpu_capacity(s)
        check(back == before, f"{OTHER} resumed: the session's next plan sees {back}")
        time.sleep(0.3)
        st = other_state(nodes(s))
        check(st is not None and "DRAIN" not in st,
              f"{OTHER} resumed: slurm_nodes in the same session lists it as {st}")
    finally:
        s.close()
        subprocess.run(["scontrol", "update", f"nodename={OTHER}", "state=resume"],
                       capture_output=True, timeout=30)
    sys.exit(TALLY.summary())


if __name__ == "__main__":
    main()
