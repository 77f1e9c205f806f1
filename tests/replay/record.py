#!/usr/bin/env python3
"""Records the sessions in tests/replay/ against a fresh local stack:
  diagnosis.jsonl       diagnose from signals and from a node, runbook, health
  refused-plan.jsonl    a repair plan and node actions refused without approval
  approved-repair.jsonl the same repair approved by a human and run
Each is one agent session, exported with `mcp-cli audit export`.  The
setup (which faults are injected where) is in setup() and is repeated by
tests/integration/replay.sh before replaying.  Run after a deliberate
change of behaviour:  python3 tests/replay/record.py"""
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from session import Session  # noqa: E402

XID79 = "NVRM: Xid (PCI:0000:18:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus."


def prom_series(url, query):
    import json
    import urllib.parse
    import urllib.request
    q = urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(f"{url}/api/v1/query?{q}", timeout=5) as r:
        return len(json.load(r)["data"]["result"])


def setup(stack_env):
    """The faults every recording and replay starts from, once Prometheus
    has scraped them (bounded wait), so metric-based answers are stable."""
    import time
    gs = os.path.join(ROOT, "tests/stack/gpu_state.py")
    subprocess.run([sys.executable, gs, "inject", "gpu-a02", "xid79"], check=True, env=stack_env)
    subprocess.run([sys.executable, gs, "inject", "gpu-b02", "dbe"], check=True, env=stack_env)
    url = stack_env["FM_PROM_URL"]
    for _ in range(60):
        if (prom_series(url, 'DCGM_FI_DEV_GPU_TEMP{Hostname="gpu-a02"}') == 7 and
                prom_series(url, 'DCGM_FI_DEV_ECC_DBE_VOL_TOTAL{Hostname="gpu-b02"} > 0') >= 1):
            time.sleep(1.5)  # one more scrape, so every series is at its new value
            return
        time.sleep(0.5)
    raise RuntimeError("Prometheus did not show the injected faults within 30 s")


def config(stack, mode, extra=""):
    with open(os.environ["FM_CONFIG"]) as f:
        lines = [l for l in f.read().splitlines() if not l.startswith("mode:")]
    path = os.path.join(stack, f"replay-{mode}.yaml")
    with open(path, "w") as f:
        f.write(f"mode: {mode}\n" + "\n".join(lines) + "\n" + extra)
    return path


def export(db, session_db_client, out, cfg):
    import sqlite3
    con = sqlite3.connect(db)
    ses = con.execute("select session from audit where client_name=? order by id desc limit 1",
                      (session_db_client,)).fetchone()[0]
    subprocess.run([os.path.join(ROOT, "build/mcp-cli"), "--config", cfg, "--db", db, "audit",
                    "export", "--session", ses, "--out", out], check=True)


def main():
    stack = os.environ.get("FM_STACK")
    if not stack:
        sys.exit("run inside a stack: eval \"$(tests/stack/up.sh)\"; . $FM_STACK/stack.env")
    server = os.path.join(ROOT, "build/fleetmcp")
    setup(os.environ)
    tmp = tempfile.mkdtemp(prefix="fm-record-")
    # Diagnosis and the refused plan are recorded in shadow mode, as they
    # are replayed; the approved repair runs for real in fleet mode.
    shadow = config(stack, "shadow")
    db = os.path.join(tmp, "shadow.db")
    s = Session(server, shadow, db, client="rec-diagnosis")
    s.call("runbook_list", fault_class="gpu_fallen_off_bus")
    s.call("diagnose", signals={"node": "gpu-a02", "kernel_log": [XID79],
                                "job_log": ["RuntimeError: CUDA error: unspecified launch failure"],
                                "slurm": {"node_state": ["MIXED"], "jobs": [
                                    {"job_id": 41, "state": "FAILED", "nodes": "gpu-a02"}]}})
    s.call("diagnose", node="gpu-a02")
    s.call("gpu_health", node="gpu-a02")
    s.call("slurm_node", node="gpu-a02")
    s.close()
    export(db, "rec-diagnosis", os.path.join(HERE, "diagnosis.jsonl"), shadow)

    # Its own store, as replay.sh replays each session: the diagnoses the
    # session above recorded would otherwise show in these plans.
    rdb = os.path.join(tmp, "refused.db")
    s = Session(server, shadow, rdb, client="rec-refused")
    s.call("repair_plan", node="gpu-a02", fault_class="gpu_fallen_off_bus")
    s.call("node_drain", node="gpu-b01", reason="suspected bad DIMM")
    s.call("repair_plan", node="gpu-b02", fault_class="gpu_ecc_uncorrectable")
    s.close()
    export(rdb, "rec-refused", os.path.join(HERE, "refused-plan.jsonl"), shadow)

    key = os.path.join(tmp, "alice.key")
    out = subprocess.run([os.path.join(ROOT, "build/mcp-cli"), "keygen", "--out", key,
                          "--approver", "alice"], capture_output=True, text=True, check=True).stdout
    approvals = out[out.index("approvals:"):]
    fleet = config(stack, "fleet", approvals)
    fdb = os.path.join(tmp, "fleet.db")
    s = Session(server, fleet, fdb, client="rec-approved")
    plan, _ = s.call("repair_plan", node="gpu-a02", fault_class="gpu_fallen_off_bus")
    _, refused = s.call("repair_execute", plan_id=plan["plan_id"])
    assert refused and refused.startswith("APPROVAL"), refused
    r = subprocess.run([os.path.join(ROOT, "build/mcp-cli"), "--config", fleet, "--db", fdb,
                        "--format", "json", "approve", plan["plan_id"], "--key", key,
                        "--approver", "alice", "--yes"], capture_output=True, text=True, check=True)
    import json
    ap = json.loads(r.stdout)["structuredContent"]["approval_id"]
    res, err = s.call("repair_execute", plan_id=plan["plan_id"], approval_id=ap)
    assert res, err
    s.close()
    export(fdb, "rec-approved", os.path.join(HERE, "approved-repair.jsonl"), fleet)
    print("recorded:", ", ".join(sorted(f for f in os.listdir(HERE) if f.endswith(".jsonl"))))


if __name__ == "__main__":
    main()
