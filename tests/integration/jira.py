#!/usr/bin/env python3
"""Ticket tools end to end against the Jira contract server AND the local store,
with the same assertions.

Starts tests/jira/contract_server.py on 127.0.0.1, writes configs for three
backends (Jira with email + API token from a file, Jira with a PAT from the
environment, the local store), and drives the real ticket tools through
tests/integration/tickets_driver.c (config loaded and validated, store and
backend opened, arguments and results checked against the tools' schemas).
Checks: create, dedup -> comment, update, attach a diag bundle, search by
node and class, close through a transition, escalation, 429 with Retry-After
honoured, 500 retried, 401 and 400 surfaced with Jira's messages, the
contract server's violation list empty, and the secrets never in the SQLite
files, stderr or any result.

The Jira scenario runs twice: against the contract server as Data Center
(/rest/api/2/search with startAt) and as Jira Cloud (the old search answers
410 Gone, the enhanced /rest/api/3/search/jql pages with nextPageToken, one
issue per page here so paging is exercised), with jira.deployment: auto
finding which from serverInfo.

usage: python3 tests/integration/jira.py [--lib build/libfleetmcp.a] [--keep]
  ASan: make asan, then EXTRA_CFLAGS=-fsanitize=address,undefined
        python3 tests/integration/jira.py --lib build/asan/libfleetmcp.a
"""
import argparse
import hashlib
import json
import os
import queue
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from tally import Tally  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOKEN = "fmTOKEN-7f3a9c1e5b-SECRET-never-log-me"
PAT = "fmPAT-0b9d4e2a77-SECRET-never-log-me"
EMAIL = "fleetmcp-bot@example.com"
# The Makefile's package list (make print-pkgs), so a package added there
# reaches this driver too.
PKGS = subprocess.run(["make", "-s", "--no-print-directory", "-C", ROOT, "print-pkgs"],
                      check=True, capture_output=True, text=True).stdout
CFLAGS = ("-std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes "
          "-Wmissing-prototypes -Wno-unused-parameter -O1 -g").split()


def build_driver(lib, out):
    flags = subprocess.run(["pkg-config", "--cflags", "--libs"] + PKGS.split(),
                           check=True, capture_output=True, text=True).stdout.split()
    # EXTRA_CFLAGS / EXTRA_LDFLAGS as in the Makefile, e.g. for an ASan library
    extra = os.environ.get("EXTRA_CFLAGS", "").split() + os.environ.get("EXTRA_LDFLAGS", "").split()
    cmd = (["cc"] + CFLAGS + extra + ["-I" + os.path.join(ROOT, "include"),
                              "-I" + os.path.join(ROOT, "build", "gen"), "-o", out,
                              os.path.join(ROOT, "tests", "integration", "tickets_driver.c"), lib]
           + flags + ["-lpthread", "-lm"])
    subprocess.run(cmd, check=True)


class Jira:
    """The contract server process and its control endpoints."""

    def __init__(self, tmp, token_file, mode="datacenter"):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "tests", "jira", "contract_server.py"),
             "--email", EMAIL, "--token-file", token_file, "--pat", PAT, "--project", "FM",
             "--custom-field", "customfield_10042", "--custom-field", "customfield_10043",
             "--custom-field", "customfield_10044", "--mode", mode, "--page-cap", "1"],
            stdout=subprocess.PIPE, stderr=open(os.path.join(tmp, "server.err"), "a"),
            text=True)
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            raise SystemExit("contract server did not print its port")
        self.port = int(line)
        self.url = f"http://127.0.0.1:{self.port}"

    def ctl(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read()
        return json.loads(raw) if raw else None

    def fail(self, **kw):
        self.ctl("POST", "/_contract/fail", kw)

    def requests_since(self, n):
        return self.ctl("GET", "/_contract/requests")[n:]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Tools:
    """Runs one tool per driver process; keeps every stderr and stdout."""

    def __init__(self, driver, config, db, log, env=None):
        self.driver, self.config, self.db, self.log = driver, config, db, log
        self.env = dict(os.environ, **(env or {}))
        self.outputs = []

    def call(self, tool, args, timeout=60):
        p = subprocess.run([self.driver, self.config, self.db, tool, json.dumps(args)],
                           capture_output=True, text=True, timeout=timeout, env=self.env)
        with open(self.log, "a") as f:
            f.write(p.stderr)
        self.outputs.append(p.stdout)
        if p.returncode != 0:
            raise SystemExit(f"driver failed ({p.returncode}) on {tool}: {p.stderr.strip()}")
        r = json.loads(p.stdout)
        return r["ok"], r.get("result") if r["ok"] else r["error"]

    def ok(self, tool, args):
        ok, r = self.call(tool, args)
        if not ok:
            raise AssertionError(f"{tool} {args} failed: {r}")
        return r


class Stdio:
    """The real server over stdio: initialize, notifications/initialized,
    then one tools/call per call, through the gate and the audit log."""

    def __init__(self, exe, config, db, log, env=None):
        self.p = subprocess.Popen([exe, "--config", config, "--db", db], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=open(log, "a"), text=True,
                                  env=dict(os.environ, **(env or {})))
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.id = 0
        self.outputs = []
        r = self.rpc("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                    "clientInfo": {"name": "jira-integration", "version": "1"}})
        if "result" not in r:
            raise SystemExit(f"initialize failed: {r}")
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def _read(self):
        for line in self.p.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def send(self, msg):
        self.p.stdin.write(json.dumps(msg) + "\n")
        self.p.stdin.flush()

    def rpc(self, method, params, timeout=60):
        self.id += 1
        self.send({"jsonrpc": "2.0", "id": self.id, "method": method, "params": params})
        deadline = time.monotonic() + timeout
        for _ in range(10000):  # notifications may come first; bounded anyway
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                raise SystemExit(f"server exited during {method}")
            self.outputs.append(line)
            msg = json.loads(line)
            if msg.get("id") == self.id:
                return msg
        raise SystemExit(f"no answer to {method} within {timeout} s")

    def call(self, tool, args, timeout=60):
        r = self.rpc("tools/call", {"name": tool, "arguments": args}, timeout)
        if "error" in r:
            return False, "JSONRPC: " + json.dumps(r["error"])
        res = r["result"]
        if res.get("isError"):
            return False, res["content"][0]["text"]
        return True, res["structuredContent"]

    def ok(self, tool, args):
        ok, r = self.call(tool, args)
        if not ok:
            raise AssertionError(f"{tool} {args} failed: {r}")
        return r

    def close(self):
        self.p.stdin.close()
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()


def gate_rate_limit(check, tools, p, used, limit):
    """ticket_create past tickets.max_creates_per_hour is refused, saying when."""
    for i in range(limit - used):
        tools.ok("ticket_create", {"summary": f"filler {i}", "node": f"gpu-r{i:02d}",
                                   "fault_class": "filler"})
    ok, err = tools.call("ticket_create", {"summary": "one too many", "node": "gpu-r99",
                                           "fault_class": "filler"})
    check(not ok and err.startswith("RATELIMITED:") and "allowed at" in err,
          p + f"create number {limit + 1} in an hour is refused with the next allowed time", err)


def add_bundle(db, bid, node, body):
    con = sqlite3.connect(db, timeout=10)
    # The product's table (src/tools/node_diag_bundle.c): ids are the
    # numbers node_diag_bundle returns, and a bundle_id that is not one
    # names no bundle.
    con.execute("CREATE TABLE IF NOT EXISTS diag_bundles(id INTEGER PRIMARY KEY AUTOINCREMENT,"
                " node TEXT NOT NULL, created_ms INTEGER NOT NULL, sha256 TEXT NOT NULL,"
                " body TEXT NOT NULL)")
    con.execute("INSERT INTO diag_bundles VALUES(?,?,?,?,?)",
                (bid, node, int(time.time() * 1000), hashlib.sha256(body).hexdigest(), body))
    con.commit()
    con.close()


def labels_of(t):
    return set(t.get("labels") or [])


def common_scenario(check, tools, name, db, human=True):
    """The assertions both backends must pass.  human=False: through the
    gate, where ticket_close needs an approval and escalation is not a tool."""
    p = f"[{name}] "
    a = {"summary": "Xid 79 on gpu-a01: GPU fell off the bus", "node": "gpu-a01",
         "fault_class": "xid_79", "severity": "high", "active_jobs": 3,
         "evidence": ["Xid 79 in dmesg at 12:00:01", "nvidia-smi: GPU lost"],
         "workflow_id": "wf-42", "audit_ids": [17], "incident_key": "OPS-7"}
    r1 = tools.ok("ticket_create", a)
    k1 = r1["key"]
    check(r1["deduplicated"] is False and k1, p + "create returns a key, not deduplicated", r1)
    check(r1["url"] and r1["url"].endswith("/" + k1), p + "create returns the ticket url", r1)

    r2 = tools.ok("ticket_create", dict(a, summary="Xid 79 again on gpu-a01", active_jobs=1))
    check(r2["key"] == k1 and r2["deduplicated"] is True,
          p + "second create for the same node and class is deduplicated", r2)

    t = tools.ok("ticket_get", {"key": k1})
    check(t["node"] == "gpu-a01" and t["fault_class"] == "xid_79", p + "get: node and class", t)
    check({"fleetmcp", "node-gpu-a01", "fault-xid_79"} <= labels_of(t), p + "get: labels", t)
    check(t["open"] is True, p + "get: open")
    check(t["comments_count"] == 1 and "repeated xid_79 on gpu-a01" in t["comments"][-1]["body"],
          p + "dedup left a comment saying so", t.get("comments"))
    d = t["description"] or ""
    check(all(s in d for s in ("Node: gpu-a01", "Active jobs: 3", "Xid 79 in dmesg",
                               "Workflow: wf-42", "Related incident: OPS-7")),
          p + "description carries what on-call needs", d)

    u = tools.ok("ticket_update", {"key": k1, "summary": "Xid 79 on gpu-a01: reset failed",
                                   "labels": ["needs-rma"], "comment": "gpu_reset did not help",
                                   "active_jobs": 0})
    check(u["commented"] is True and "summary" in u["updated"], p + "update result", u)
    t = tools.ok("ticket_get", {"key": k1})
    check(t["summary"] == "Xid 79 on gpu-a01: reset failed", p + "update changed the summary")
    check("needs-rma" in labels_of(t) and "node-gpu-a01" in labels_of(t),
          p + "update added a label and kept the others", t["labels"])
    check(t["comments_count"] == 2 and "gpu_reset did not help" in t["comments"][-1]["body"],
          p + "update comment is there", t["comments"])

    body = json.dumps({"node": "gpu-a01", "nvidia_smi_q": "x" * 5000, "xid": [79]}).encode()
    add_bundle(db, 1, "gpu-a01", body)
    u = tools.ok("ticket_update", {"key": k1, "bundle_id": "1"})
    check(u["attached"] == ["diag-bundle-1.json"], p + "bundle attached", u)
    t = tools.ok("ticket_get", {"key": k1})
    check(t["attachments_count"] == 1, p + "get counts the attachment", t["attachments_count"])
    ok, err = tools.call("ticket_update", {"key": k1, "bundle_id": "no-such-bundle"})
    check(not ok and err.startswith("NOTFOUND:"), p + "a missing bundle is NOTFOUND", err)

    r3 = tools.ok("ticket_create", {"summary": "ECC DBE on gpu-a02", "node": "gpu-a02",
                                    "fault_class": "ecc_dbe", "severity": "critical"})
    k2 = r3["key"]
    check(k2 != k1 and r3["deduplicated"] is False, p + "another pair is another ticket", r3)

    s = tools.ok("ticket_search", {"node": "gpu-a01"})
    check([x["key"] for x in s["tickets"]] == [k1], p + "search by node", s)
    s = tools.ok("ticket_search", {"fault_class": "ecc_dbe"})
    check([x["key"] for x in s["tickets"]] == [k2], p + "search by fault class", s)
    s = tools.ok("ticket_search", {"node": "gpu-a02", "fault_class": "xid_79"})
    check(s["count"] == 0, p + "search by node and class", s)
    s = tools.ok("ticket_search", {"state": "any", "limit": 1})
    check(s["count"] == 1 and s["tickets"][0]["key"] == k2, p + "search limit, newest first", s)

    if not human:
        ok, err = tools.call("ticket_close", {"key": k1})
        # In shadow mode the answer is SHADOW, naming the word it would
        # have been refused with; "would run" is no refusal.
        word = err.split(":")[0] if err else ""
        check(not ok and (word in ("DENIED", "APPROVAL") or
                          (word == "SHADOW" and "refused with" in err)),
              p + "the gate refuses ticket_close without a human", err)
        t = tools.ok("ticket_get", {"key": k1})
        check(t["open"] is True, p + "...and the ticket stays open", t["status"])
        clip_and_missing(check, tools, p)
        return k1, k2
    c = tools.ok("ticket_close", {"key": k1, "comment": "RMA shipped, node replaced"})
    check(c["open"] is False and c["already_closed"] is False and c["transition"],
          p + "close moves the ticket to a done state", c)
    s = tools.ok("ticket_search", {"node": "gpu-a01", "state": "closed"})
    check([x["key"] for x in s["tickets"]] == [k1], p + "search finds it closed", s)
    s = tools.ok("ticket_search", {"node": "gpu-a01"})
    check(s["count"] == 0, p + "no open ticket left for the node", s)
    c = tools.ok("ticket_close", {"key": k1})
    check(c["already_closed"] is True, p + "closing twice is harmless", c)

    add_bundle(db, 2, "gpu-a01", b"plain text diag bundle")
    e = tools.ok("escalate", {"node": "gpu-a01", "fault_class": "xid_79",
                              "summary": "repair workflow wf-43 failed verification\n"
                                         "verification step: dcgmi diag",
                              "evidence": ["verification: dcgmi diag -r 1 failed"],
                              "bundle_id": "2"})
    check(e["key"] != k1 and e["deduplicated"] is False and
          e["attached"] == ["diag-bundle-2.txt"],
          p + "escalation after close opens a new ticket with the bundle", e)
    e2 = tools.ok("escalate", {"node": "gpu-a01", "fault_class": "xid_79",
                               "summary": "repair workflow wf-44 failed", "bundle_id": "gone"})
    check(e2["key"] == e["key"] and e2["deduplicated"] is True and e2["attached"] == [] and
          any("bundle not attached" in n for n in e2["notes"]),
          p + "repeat escalation comments, notes the missing bundle", e2)
    t = tools.ok("ticket_get", {"key": e["key"]})
    check(t["summary"] == "repair workflow wf-43 failed verification verification step: dcgmi diag",
          p + "a line break in an escalation summary becomes a space", t["summary"])
    clip_and_missing(check, tools, p)
    return k1, k2


def clip_and_missing(check, tools, p):
    r = tools.ok("ticket_create", {"summary": "\u00e9" * 200, "node": "gpu-u01",
                                   "fault_class": "utf8"})
    t = tools.ok("ticket_get", {"key": r["key"]})
    check(t["summary"] == "\u00e9" * 127, p + "a long UTF-8 summary is clipped to 255 bytes whole",
          len(t["summary"]))
    ok, err = tools.call("ticket_get", {"key": "FM-999"})
    check(not ok and err.startswith("NOTFOUND:"), p + "unknown key is NOTFOUND", err)


def jira_faults(check, tools, jira):
    p = "[jira] "
    n = len(jira.ctl("GET", "/_contract/requests"))
    jira.fail(status=429, retry_after=1, count=2, method="POST", path="/rest/api/2/issue")
    t0 = time.monotonic()
    r = tools.ok("ticket_create", {"summary": "rate limited create", "node": "gpu-b01",
                                   "fault_class": "pcie_replay"})
    took = time.monotonic() - t0
    reqs = [x for x in jira.requests_since(n) if x["method"] == "POST" and
            x["path"] == "/rest/api/2/issue"]
    check([x["status"] for x in reqs] == [429, 429, 201], p + "429 twice, then created",
          [x["status"] for x in reqs])
    gaps = [b["t"] - a["t"] for a, b in zip(reqs, reqs[1:])]
    check(len(gaps) == 2 and all(g >= 0.95 for g in gaps) and took >= 1.9,
          p + "Retry-After: 1 honoured between attempts", (gaps, took))
    key = r["key"]

    n = len(jira.ctl("GET", "/_contract/requests"))
    jira.fail(status=500, count=2, method="GET", path="/rest/api/2/issue/")
    t = tools.ok("ticket_get", {"key": key})
    got = [x["status"] for x in jira.requests_since(n)]
    check(t["key"] == key and got == [500, 500, 200], p + "500 retried with backoff", got)

    jira.fail(status=500, count=20)
    ok, err = tools.call("ticket_get", {"key": key})
    jira.ctl("POST", "/_contract/clear-faults")
    check(not ok and err.startswith("UNAVAILABLE:") and "Internal server error" in err,
          p + "500 past the retry bound surfaces Jira's message", err)

    jira.fail(status=429, retry_after=120, count=5)
    t0 = time.monotonic()
    ok, err = tools.call("ticket_search", {"node": "gpu-b01"})
    took = time.monotonic() - t0
    jira.ctl("POST", "/_contract/clear-faults")
    check(not ok and err.startswith("RATELIMITED:") and "retry after 120 s" in err and took < 5,
          p + "Retry-After beyond the budget fails at once and says when", (err, took))

    jira.fail(status=401, count=1)
    ok, err = tools.call("ticket_get", {"key": key})
    check(not ok and err.startswith("AUTH:") and "You are not authenticated" in err,
          p + "401 surfaces Jira's message as AUTH", err)

    jira.fail(status=400, count=1, method="POST", path="/rest/api/2/issue")
    ok, err = tools.call("ticket_create", {"summary": "bad field", "node": "gpu-b02",
                                           "fault_class": "xid_48"})
    check(not ok and err.startswith("INVALID:") and "customfield_10099" in err and
          "cannot be set" in err, p + "400 surfaces Jira's errors", err)

    issues = jira.ctl("GET", "/_contract/issues")
    iss = issues[key]["fields"]
    check(iss.get("customfield_10042") == "gpu-b01" and iss.get("customfield_10043") ==
          "pcie_replay", p + "node and fault class also set as custom fields", iss)
    check("gpu-fleet" in iss.get("labels", []), p + "configured labels added", iss.get("labels"))
    first = issues.get("FM-1", {}).get("fields", {})
    check(first.get("priority") == {"name": "Highest"}, p + "priority_map applied (xid_79)",
          first.get("priority"))
    # 3 at create, then ticket_update set active_jobs to 0
    check(first.get("customfield_10044") == 0, p + "active_jobs custom field kept up to date",
          first.get("customfield_10044"))


def cloud_checks(check, jira, tools, tools_dc):
    """Cloud only: how the search went, and that the old search is refused."""
    reqs = jira.ctl("GET", "/_contract/requests")
    paths = [(r["method"], r["path"]) for r in reqs]
    check(("GET", "/rest/api/2/serverInfo") in paths,
          "[jira cloud] deployment: auto asked serverInfo", paths[:5])
    check(not any(p.endswith("/rest/api/2/search") for _, p in paths) and
          ("POST", "/rest/api/3/search/jql") in paths,
          "[jira cloud] searches went to /rest/api/3/search/jql, never the removed one")
    n = len(reqs)
    s = tools.ok("ticket_search", {"state": "any"})
    pages = [r for r in jira.requests_since(n) if r["path"] == "/rest/api/3/search/jql"]
    total = len(jira.ctl("GET", "/_contract/issues"))
    check(s["count"] == total and total >= 3 and len(pages) == total,
          "[jira cloud] a search over several pages follows nextPageToken to the end",
          (s["count"], total, len(pages)))
    v = jira.ctl("GET", "/_contract/violations")
    check(v == [], "[jira cloud] contract server recorded no violations", v)
    ok, err = tools_dc.call("ticket_search", {"node": "gpu-a01"})
    v = jira.ctl("GET", "/_contract/violations")
    check(not ok and "410" in err and "removed" in err and len(v) == 1 and v[0]["status"] == 410,
          "[jira cloud] deployment: datacenter against Cloud meets the 410 Gone", (err, v))
    jira.ctl("POST", "/_contract/reset")


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def leaks_of(secret, files, callers):
    out = []
    for path in files:
        if os.path.exists(path) and secret.encode() in open(path, "rb").read():
            out.append(os.path.basename(path))
    if any(secret in o for c in callers for o in c.outputs):
        out.append("tool output")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", default=os.path.join(ROOT, "build", "libfleetmcp.a"))
    ap.add_argument("--server", default=os.path.join(ROOT, "build", "fleetmcp"),
                    help="the server binary for the stdio pass")
    ap.add_argument("--no-stdio", action="store_true", help="skip the pass through the server")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    opt = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="fm-jira-")
    driver = os.path.join(tmp, "tickets_driver")
    build_driver(opt.lib, driver)
    token_file = write(os.path.join(tmp, "jira.token"), TOKEN + "\n")
    os.chmod(token_file, 0o600)
    tally = Tally("jira", detail_max=2000)
    check = tally.check
    jira = Jira(tmp, token_file)
    cloud = Jira(tmp, token_file, mode="cloud")
    stderr_log = os.path.join(tmp, "stderr.log")
    callers, dbs = [], []
    wrong = "fmWRONG-3c1d-SECRET-never-log-me"
    try:
        base = (f"  url: {jira.url}\n  project: FM\n  issue_type: Task\n"
                "  labels: [gpu-fleet]\n  priority_map: {xid_79: Highest}\n"
                "  custom_fields: {node: customfield_10042, fault_class: customfield_10043,"
                " active_jobs: customfield_10044}\n"
                "  timeout_ms: 5000\n  retries: 3\n  retry_budget_ms: 10000\n")
        basic = f"  auth: {{email: {EMAIL}, token: {{file: {token_file}}}}}\n"
        cfg_basic = write(os.path.join(tmp, "jira-basic.yaml"), "jira:\n" + base + basic)
        cfg_pat = write(os.path.join(tmp, "jira-pat.yaml"),
                        "jira:\n" + base + "  auth: {pat: {env: FM_TEST_JIRA_PAT}}\n")
        cfg_small = write(os.path.join(tmp, "jira-small.yaml"),
                          "jira:\n" + base.replace("timeout_ms: 5000",
                                                   "timeout_ms: 5000\n  max_response_bytes: 4096")
                          + basic)
        local = ("tickets:\n  backend: local\n  url_base: https://tickets.example/t\n"
                 "  priority_map: {xid_79: Highest}\n")
        cfg_local = write(os.path.join(tmp, "local.yaml"), local)

        # --- pass 1: the tools at the C level, both backends ---------------
        db_jira = os.path.join(tmp, "jira.db")
        db_local = os.path.join(tmp, "local.db")
        dbs += [db_jira, db_local]
        tj = Tools(driver, cfg_basic, db_jira, stderr_log)
        tl = Tools(driver, cfg_local, db_local, stderr_log)
        callers += [tj, tl]
        common_scenario(check, tj, "jira", db_jira)
        common_scenario(check, tl, "local", db_local)
        jira_faults(check, tj, jira)
        paths = {r["path"] for r in jira.ctl("GET", "/_contract/requests")}
        check("/rest/api/2/serverInfo" in paths and "/rest/api/2/search" in paths,
              "[jira] on Data Center, auto found it and searched /rest/api/2/search")

        cfg_cloud = write(os.path.join(tmp, "jira-cloud.yaml"),
                          "jira:\n" + base.replace(jira.url, cloud.url) + basic)
        cfg_cloud_dc = write(os.path.join(tmp, "jira-cloud-dc.yaml"),
                             "jira:\n" + base.replace(jira.url, cloud.url) + basic +
                             "  deployment: datacenter\n")
        db_cloud = os.path.join(tmp, "jira-cloud.db")
        dbs.append(db_cloud)
        tc = Tools(driver, cfg_cloud, db_cloud, stderr_log)
        tcd = Tools(driver, cfg_cloud_dc, db_cloud, stderr_log)
        callers += [tc, tcd]
        common_scenario(check, tc, "jira cloud", db_cloud)
        cloud_checks(check, cloud, tc, tcd)

        tp = Tools(driver, cfg_pat, db_jira, stderr_log, env={"FM_TEST_JIRA_PAT": PAT})
        callers.append(tp)
        r = tp.ok("ticket_create", {"summary": "bearer auth", "node": "gpu-c01",
                                    "fault_class": "nvlink", "description": "y" * 6000})
        t = tp.ok("ticket_get", {"key": r["key"]})
        check(t["summary"] == "bearer auth", "[jira] PAT (Bearer) auth works", t["summary"])
        ts = Tools(driver, cfg_small, db_jira, stderr_log)
        callers.append(ts)
        ok, err = ts.call("ticket_get", {"key": r["key"]})
        check(not ok and err.startswith("TOOLARGE:") and "max_response_bytes" in err,
              "[jira] an answer over max_response_bytes is cut off", err)

        v = jira.ctl("GET", "/_contract/violations")
        check(v == [], "[jira] contract server recorded no violations", v)

        # A wrong credential is refused by the contract (recorded there),
        # and the refusal never echoes the credential.
        tw = Tools(driver, cfg_pat, db_jira, stderr_log, env={"FM_TEST_JIRA_PAT": wrong})
        callers.append(tw)
        ok, err = tw.call("ticket_get", {"key": r["key"]})
        check(not ok and err.startswith("AUTH:"), "[jira] a wrong PAT is AUTH", err)
        v = jira.ctl("GET", "/_contract/violations")
        check(len(v) == 1 and v[0]["status"] == 401, "[jira] ...and the server saw it as such", v)

        # --- pass 2: the same tools through build/fleetmcp over stdio -------
        if opt.no_stdio:
            print("# stdio pass skipped (--no-stdio)")
        elif not os.access(opt.server, os.X_OK):
            check(False, f"server binary {opt.server} exists for the stdio pass")
        else:
            jira.ctl("POST", "/_contract/reset")
            limit = 6
            rl = f"tickets:\n  max_creates_per_hour: {limit}\n"
            for name, cfg in (("jira", "jira:\n" + base + basic + rl),
                              ("jira cloud", "jira:\n" + base.replace(jira.url, cloud.url) +
                               basic + "  deployment: cloud\n" + rl),
                              ("local", local + f"  max_creates_per_hour: {limit}\n")):
                db = os.path.join(tmp, f"stdio-{name.replace(' ', '-')}.db")
                dbs.append(db)
                yaml = write(os.path.join(tmp, f"stdio-{name.replace(' ', '-')}.yaml"), cfg)
                srv = Stdio(opt.server, yaml, db, stderr_log)
                callers.append(srv)
                try:
                    ok, err = srv.call("ticket_search", {"node": "gpu-a01"})
                    if not ok and "no ticket backend is open" in err:
                        check(False, f"[stdio {name}] the server opens a ticket backend"
                              " (fm_backends_open must call fm_tickets_open)", err)
                        continue
                    common_scenario(check, srv, f"stdio {name}", db, human=False)
                    # creates so far: k1, the deduplicated one, k2, the UTF-8 one
                    gate_rate_limit(check, srv, f"[stdio {name}] ", 4, limit)
                finally:
                    srv.close()
            v = jira.ctl("GET", "/_contract/violations") + cloud.ctl("GET", "/_contract/violations")
            check(v == [], "[stdio jira] contract servers recorded no violations", v)
            paths = {r["path"] for r in cloud.ctl("GET", "/_contract/requests")}
            check("/rest/api/3/search/jql" in paths and "/rest/api/2/serverInfo" not in paths,
                  "[stdio jira cloud] deployment: cloud searches v3 without asking serverInfo")

        files = [stderr_log, os.path.join(tmp, "server.err")]
        for db in dbs:
            files += [db, db + "-wal", db + "-shm"]
        for secret in (TOKEN, PAT, wrong):
            check(not leaks_of(secret, files, callers),
                  f"secret {secret[:8]}... never in the databases, stderr or results",
                  leaks_of(secret, files, callers))
        check(all(os.path.getsize(db) > 0 for db in dbs if os.path.exists(db)),
              "the databases were written (the grep looked at real files)")
    finally:
        jira.stop()
        cloud.stop()
        if not opt.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print("kept", tmp)
    return tally.summary()


if __name__ == "__main__":
    sys.exit(main())
