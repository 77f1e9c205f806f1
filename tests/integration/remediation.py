#!/usr/bin/env python3
"""Remediation integration tests (driven by tests/integration/remediation.sh).

Every server is a real `fleetmcp` started by `mcp-cli` over stdio, against
the real Slurm stack and sshd with the fake GPU tools.  Every loop is bounded
by count and time.  Each scenario gets its own store (a fresh database), and
nodes are put back (resume, fake GPU state re-initialised) between them.
"""
import copy
import datetime
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from stack_config import backends_yaml  # noqa: E402
from tally import Tally  # noqa: E402

BUILD = os.environ.get("FM_BUILD", "build")
STACK = os.environ["FM_STACK"]
GPU_STATE = os.environ.get("FM_GPU_STATE", "tests/stack/gpu_state.py")
CLI = os.path.join(BUILD, "mcp-cli")
SERVER = os.path.join(BUILD, "fleetmcp")
TMP = tempfile.mkdtemp(prefix="fm-remed-")
NODES = ["gpu-a01", "gpu-a02", "gpu-a03", "gpu-b01", "gpu-b02", "gpu-b03", "gpu-a04"]

# FM_TEST_PG (tests/integration/policy-pg.sh): every scenario's store is a
# new database on that throwaway PostgreSQL instead of a SQLite file.
PG = os.environ.get("FM_TEST_PG", "")
ENVS = []

# One tally for this driver and every driver that imports it for its
# helpers (policy, pools, monitor, safety, alerts); end() names it.
TALLY = Tally("remediation", detail_max=1500)
check = TALLY.check


def sh(*argv, timeout=60, check_rc=False):
    r = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    if check_rc and r.returncode:
        raise RuntimeError(f"{argv}: {r.returncode} {r.stderr}")
    return r


# ---- config and store --------------------------------------------------

KEYGEN = sh(CLI, "keygen", "--out", os.path.join(TMP, "alice.key"), "--approver", "alice",
            check_rc=True).stdout
APPROVALS = KEYGEN[KEYGEN.index("approvals:"):]
BASE = backends_yaml(STACK)  # the stack's slurm/metrics/ssh; mode and store are ours


# A kernel line an agent could pass as signals: made-up evidence unless the
# node's own journal says so.
XID63 = ("NVRM: Xid (PCI:0000:3b:00): 63, pid=1234, Row Remapper: New row marked for"
         " remapping, reset gpu to activate.")


class Env:
    """One scenario: a config file and a fresh store."""

    def __init__(self, name, mode="fleet", extra=""):
        self.dir = os.path.join(TMP, name)
        os.makedirs(self.dir, exist_ok=True)
        self.db = os.path.join(self.dir, "fm.db")
        self.cfg = os.path.join(self.dir, "fm.yaml")
        store = f"path: {self.db}"
        if PG:
            dbname = f"fm_{len(ENVS)}_{name}".replace("-", "_")
            sh("psql", "-q", "-d", PG, "-c", f'CREATE DATABASE "{dbname}"', check_rc=True)
            self.db = PG.rsplit("/", 1)[0] + "/" + dbname
            store = f"url: {self.db}"
        ENVS.append(self)
        with open(self.cfg, "w") as f:
            f.write(f"mode: {mode}\nstore:\n  {store}\n")
            f.write(BASE)
            f.write(APPROVALS)
            f.write("canary:\n  feature: canary\n")
            f.write(extra)
        r = sh(SERVER, "check-config", "--config", self.cfg)
        if r.returncode:
            raise RuntimeError(f"config {self.cfg}: {r.stdout}{r.stderr}")

    def diagnosed(self, node, fault_class="gpu_row_remap_pending"):
        """Records a diagnosis of node from evidence fleetmcp collects itself
        (node mode: the fault injected into the node's journal, nvidia-smi
        and metrics): the gate lets a canary repair run without a human only
        on a fresh one of the plan's class at act, from collected evidence."""
        rc, sc, err = self.call("diagnose", node=node)
        top = (sc or {}).get("top") or {}
        return rc == 0 and top.get("fault_class") == fault_class and bool(top.get("act"))

    def call(self, tool, timeout=300, **args):
        r = sh(CLI, "--format", "json", "--config", self.cfg, "--timeout", str(timeout), "call",
               tool, "--args", json.dumps(args), timeout=timeout + 30)
        try:
            doc = json.loads(r.stdout) if r.stdout.strip() else {}
        except ValueError:
            doc = {}
        sc = doc.get("structuredContent") if isinstance(doc, dict) else None
        return r.returncode, sc, (r.stderr + r.stdout)

    def approve(self, plan):
        r = sh(CLI, "--format", "json", "--config", self.cfg, "approve", plan, "--key",
               os.path.join(TMP, "alice.key"), "--approver", "alice", "--ttl", "10m", "--yes")
        if r.returncode:
            return None
        return json.loads(r.stdout)["structuredContent"]["approval_id"]

    def sql(self, q, args=()):
        if PG:
            return pg_sql(self.db, q, args)
        con = sqlite3.connect(self.db, timeout=10)
        try:
            rows = con.execute(q, args).fetchall()
            con.commit()
            return rows
        finally:
            con.close()


def pg_sql(url, q, args):
    """Env.sql on PostgreSQL, through psql: each ? becomes a psql variable
    (quoted by psql itself), rows come back as tuples, integers as int."""
    parts = q.split("?")
    assert len(parts) == len(args) + 1, "one argument per ?"
    text = parts[0] + "".join(f":'p{i}'" + p for i, p in enumerate(parts[1:]))
    cmd = ["psql", "-X", "-q", "-A", "-t", "-F", "\x1f", "-v", "ON_ERROR_STOP=1", "-d", url]
    for i, a in enumerate(args):
        cmd += ["-v", f"p{i}={a}"]
    r = subprocess.run(cmd, input=text + ";\n", capture_output=True, text=True, timeout=60)
    if r.returncode:
        raise RuntimeError(f"psql: {r.stderr.strip()}")
    rows = []
    for line in r.stdout.splitlines():
        rows.append(tuple(int(v) if v.lstrip("-").isdigit() else v for v in line.split("\x1f")))
    return rows


def verify_all():
    """Every scenario's audit chain verifies (run last)."""
    for env in ENVS:
        r = sh(SERVER, "audit", "verify", "--db", env.db)
        check(r.returncode == 0, f"audit verify {env.dir}", r.stdout + r.stderr)


# ---- Slurm and fake GPU helpers -----------------------------------------

def sinfo():
    # "*" (not responding) flickers on this one-host stack after a resume;
    # it is not a state anything here sets, so it is left out.
    r = sh("sinfo", "-N", "-h", "-o", "%N|%T|%E")
    return "\n".join(sorted(set(r.stdout.replace("*|", "|").split("\n"))))


def unchanged(before, what):
    """(ok, what, diff): Slurm's node states and reasons as they were."""
    now = sinfo()
    diff = [ln for ln in set(now.split("\n")) ^ set(before.split("\n"))]
    return now == before, what, diff


def node_line(node):
    r = sh("scontrol", "show", "node", node, "-o")
    return r.stdout


def slurm_state(node):
    line = node_line(node)
    for tok in line.split():
        if tok.startswith("State="):
            return tok[6:]
    return "?"


def wait_for(pred, timeout, step=0.5):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


def gpu(node, *args):
    return sh("python3", GPU_STATE, "--stack", STACK, *args, node)


def inject(node, fault, *extra):
    r = sh("python3", GPU_STATE, "--stack", STACK, "inject", node, fault, *extra)
    assert r.returncode == 0, r.stderr


def restore(*nodes):
    """Puts nodes back: no jobs, resumed, healthy fake GPUs."""
    sh("scancel", "-w", ",".join(nodes))
    for n in nodes:
        sku = "a100" if n.startswith("gpu-b") else "h100"
        sh("python3", GPU_STATE, "--stack", STACK, "init", n, "--sku", sku)
    wait_for(lambda: all(not sh("squeue", "-h", "-w", n).stdout.strip() for n in nodes), 30)
    for n in nodes:
        st = slurm_state(n)
        if "DRAIN" in st or "DOWN" in st:
            sh("scontrol", "update", f"nodename={n}", "state=resume")
    wait_for(lambda: all(slurm_state(n) in ("IDLE", "MIXED", "ALLOCATED") for n in nodes), 60)


def run_scenarios(name, scenarios, finish=None, kept="configs and stores"):
    """Runs each scenario FM_ONLY names (all without it), timed; a crash
    is a failure, not the end.  Prints the totals and exits."""
    restore(*NODES)
    only = os.environ.get("FM_ONLY", "").split(",")
    for fn in scenarios:
        if only != [""] and fn.__name__ not in only:
            continue
        t0 = time.time()
        try:
            fn()
            print(f"     ({fn.__name__}: {time.time() - t0:.0f} s)", flush=True)
        except Exception as e:  # a scenario crashing is a failure, not the end
            check(False, f"{fn.__name__} raised", repr(e))
            restore(*NODES)
    if finish:
        finish()
    end(name, kept)


def end(name, kept):
    """Prints the totals as NAME's, keeps TMP (saying so) if a check
    failed or removes it, and exits with the tally's status."""
    TALLY.name = name
    rc = TALLY.summary()
    if rc:
        print(f"{name}: {kept} kept in {TMP}")
    else:
        shutil.rmtree(TMP, ignore_errors=True)
    sys.exit(rc)


def sbatch(node, seconds):
    r = sh("sbatch", "-w", node, "-o", "/dev/null", "--parsable", "--wrap", f"sleep {seconds}",
           check_rc=True)
    job = r.stdout.strip().split(";")[0]
    wait_for(lambda: sh("squeue", "-h", "-j", job, "-o", "%T").stdout.strip() == "RUNNING", 20)
    return job


def job_state(job):
    """The job's Slurm state, or "" once it has left the queue."""
    return sh("squeue", "-h", "-j", job, "-o", "%T").stdout.strip()


def plan_id_from(text):
    import re
    m = re.search(r"pl-[0-9a-f]{16}", text)
    return m.group(0) if m else None


# ---- scenarios ------------------------------------------------------------

def guardrails():
    print("== guardrails refuse, Slurm unchanged", flush=True)
    ks = os.path.join(TMP, "killswitch")
    env = Env("guard", extra=f"killswitch:\n  file: {ks}\nexclusions:\n  nodes: [gpu-b02]\n")

    # kill switch (file)
    open(ks, "w").close()
    before = sinfo()
    rc, sc, err = env.call("node_drain", node="gpu-b01", reason="test drain")
    check(rc == 5 and "kill switch" in err, "kill switch refuses node_drain", err)
    rc, sc, err = env.call("repair_plan", node="gpu-b01", fault_class="gpu_ecc_uncorrectable")
    check(rc == 5 and "kill switch" in err, "kill switch refuses repair_plan too", sc or err)
    check(*unchanged(before, "kill switch: Slurm unchanged"))
    os.unlink(ks)

    # exclusions
    before = sinfo()
    rc, sc, err = env.call("node_drain", node="gpu-b02", reason="test drain")
    check(rc == 5 and "GUARDRAIL" in err and "exclusions" in err, "exclusions refuse", err)
    check(*unchanged(before, "exclusions: Slurm unchanged"))

    # blast radius: gpu-a02 in remediation (approved drain), then gpu-a03 of the same rack
    rc, sc, err = env.call("node_drain", node="gpu-a02", reason="blast radius setup")
    plan = plan_id_from(err)
    ap = env.approve(plan) if plan else None
    rc, sc, err = env.call("node_drain", node="gpu-a02", reason="blast radius setup",
                           approval_id=ap)
    check(rc == 0 and sc and sc["drained"] and sc["reason"].startswith(f"fleetmcp:{plan}: "),
          "approved node_drain drains with a fleetmcp:<plan> reason", err)
    check("DRAIN" in slurm_state("gpu-a02"), "gpu-a02 drained in Slurm", slurm_state("gpu-a02"))
    before = sinfo()
    rc, sc, err = env.call("node_reboot", node="gpu-a03", reason="second in rack")
    check(rc == 5 and "blast_radius" in err and "rack r01" in err,
          "blast radius refuses node_reboot at the gate", err)
    # A drain takes the node out of the pool too: the gate refuses it
    # before any plan is made or approval is asked for.
    rc, sc, err = env.call("node_drain", node="gpu-a03", reason="second in rack")
    check(rc == 5 and "blast_radius" in err and "rack r01" in err and plan_id_from(err) is None,
          "blast radius refuses node_drain at the gate", err)
    rc, sc, err = env.call("repair_plan", node="gpu-b01", fault_class="gpu_ecc_uncorrectable")
    check(sc and not sc["guardrails"]["pass"] and "partition gpu" in sc["guardrails"]["summary"],
          "blast radius per partition shows in repair_plan", sc and sc["guardrails"]["summary"])
    check(*unchanged(before, "blast radius: Slurm unchanged"))
    # our own drain is ours to resume (approved)
    rc, sc, err = env.call("node_resume", node="gpu-a02")
    plan = plan_id_from(err)
    ap = env.approve(plan) if plan else None
    rc, sc, err = env.call("node_resume", node="gpu-a02", approval_id=ap)
    check(rc == 0 and sc and sc["resumed"], "approved node_resume of our drain", err)

    # capacity headroom
    env2 = Env("capacity", extra="guardrails:\n  min_schedulable_share: 0.95\n")
    before = sinfo()
    rc, sc, err = env2.call("node_reboot", node="gpu-b01", reason="capacity test")
    check(rc == 5 and "capacity" in err and "minimum 95%" in err, "capacity headroom refuses", err)
    rc, sc, err = env2.call("repair_plan", node="gpu-b01", fault_class="gpu_ecc_uncorrectable")
    rc, wf, err = env2.call("repair_execute", plan_id=sc["plan_id"]) if sc else (1, None, "")
    check(rc == 5 and "capacity" in err, "capacity headroom refuses repair_execute", err)
    check(*unchanged(before, "capacity: Slurm unchanged"))

    # ownership: someone else's drain
    sh("scontrol", "update", "nodename=gpu-b03", "state=drain", "reason=admin maintenance")
    before = sinfo()
    rc, sc, err = env.call("node_resume", node="gpu-b03")
    check(rc == 5 and "ownership" in err, "ownership refuses resuming an admin drain", err)
    check(*unchanged(before, "ownership: Slurm unchanged"))

    # runbook precondition: a node already escalated cannot start a runbook
    env.sql("INSERT OR REPLACE INTO node_states(node,state,since_ms,updated_ms)"
            " VALUES('gpu-b01','escalated',0,0)")
    before = sinfo()
    rc, sc, err = env.call("repair_plan", node="gpu-b01", fault_class="gpu_ecc_uncorrectable")
    check(sc and "precondition_state" in sc["guardrails"]["summary"],
          "precondition on node state shows in the plan", sc and sc["guardrails"]["summary"])
    rc, sc2, err = env.call("repair_execute", plan_id=sc["plan_id"]) if sc else (1, None, "")
    check(rc == 5 and "precondition_state" in err, "precondition refuses repair_execute", err)
    check(*unchanged(before, "precondition: Slurm unchanged"))
    env.sql("DELETE FROM node_states WHERE node='gpu-b01'")

    # retry budget: two attempts already recorded for this node and class
    now = int(time.time() * 1000)
    for _ in range(2):
        env.sql("INSERT INTO node_attempts(node,fault_class,ts_ms) VALUES(?,?,?)",
                ("gpu-b01", "gpu_fallen_off_bus", now))
    rc, sc, err = env.call("repair_plan", node="gpu-b01", fault_class="gpu_fallen_off_bus")
    check(sc and "retry_budget" in sc["guardrails"]["summary"] and "2 of 2" in
          sc["guardrails"]["summary"], "retry budget shows in the plan",
          sc and sc["guardrails"]["summary"])
    plan = sc["plan_id"] if sc else None
    ap = env.approve(plan) if plan else None
    before = sinfo()
    rc, sc, err = env.call("repair_execute", plan_id=plan, approval_id=ap)
    check(rc == 5 and "retry_budget" in err, "retry budget refuses even with an approval", err)
    check(*unchanged(before, "retry budget: Slurm unchanged"))

    # mode canary: only canary nodes
    env3 = Env("canarymode", mode="canary")
    before = sinfo()
    rc, sc, err = env3.call("health_probe", node="gpu-b01", level=1)
    check(rc == 5 and "mode" in err, "canary mode refuses a non-canary node", err)
    check(*unchanged(before, "canary mode: Slurm unchanged"))
    restore("gpu-a02", "gpu-b03", "gpu-b01")


def shared_aggregate():
    """Issue 20: a CLI plan may show capacity from another call's recent
    sinfo aggregate (shared through the store, slurm.cli.aggregate_max_age_s),
    because a plan is a proposal: repair_execute decides capacity again from
    Slurm read then.  Here the shared answer says capacity is fine, Slurm
    then drains another node of the partition, and repair_execute is
    refused by capacity with nothing run (Slurm unchanged, no workflow, no
    step, so no SSH).  Past the age bound a plan reads sinfo itself."""
    print("== shared sinfo aggregate: the plan's answer, re-decided at execution", flush=True)
    node, other, fc = "gpu-b01", "gpu-b02", "gpu_ecc_uncorrectable"
    probe = Env("aggregate-probe")
    rc, sc, err = probe.call("repair_plan", node=node, fault_class=fc, dry_run=True)
    cap = ((sc or {}).get("capacity") or {}).get("gpu")
    if not check(rc == 0 and cap and cap["total"] > 0, "probe plan's capacity", err):
        return
    # The share exactly met now: one more node out of service refuses.
    share = cap["schedulable_after"] / cap["total"] - 1e-6
    env = Env("aggregate", extra=f"guardrails:\n  min_schedulable_share: {share:.6f}\n")
    try:
        rc, sc, err = env.call("repair_plan", node=node, fault_class=fc, dry_run=True)
        asof = (sc or {}).get("capacity_as_of") or {}
        check(rc == 0 and asof.get("source") == "read_now",
              "first plan on an empty store reads sinfo", asof or err)
        rc, sc, err = env.call("repair_plan", node=node, fault_class=fc)
        asof = (sc or {}).get("capacity_as_of") or {}
        verdict = next((v for v in (sc or {}).get("guardrails", {}).get("verdicts", [])
                        if v["guardrail"] == "capacity"), {})
        check(rc == 0 and asof.get("source") == "shared_aggregate" and asof.get("age_ms", 1e9)
              < 5000 and asof.get("rechecked_at_execution") is True and verdict.get("ok")
              and "again with a fresh read"
              in verdict.get("detail", ""),
              "the next plan answers capacity from the shared aggregate and says execution"
              " checks again", {"as_of": asof, "verdict": verdict})
        # Another cluster's name on the same store (and so another key):
        # never this cluster's aggregate, however recent.
        twin = copy.copy(env)
        twin.cfg = env.cfg + ".other-cluster.yaml"
        with open(env.cfg) as f, open(twin.cfg, "w") as g:
            text = f.read()
            g.write(re.sub(r"(?m)^  cluster: .*$", "  cluster: fm-other-cluster", text))
        rc, sc2, err = twin.call("repair_plan", node=node, fault_class=fc, dry_run=True)
        other_asof = (sc2 or {}).get("capacity_as_of") or {}
        check(rc == 0 and other_asof.get("source") == "read_now" and "cluster: fm-other" in
              open(twin.cfg).read(), "a plan naming another cluster on the same store reads"
              " sinfo itself", other_asof or err)
        plan = (sc or {}).get("plan_id")
        ap = env.approve(plan) if plan else None
        sh("scontrol", "update", f"nodename={other}", "state=drain",
           "reason=shared aggregate test: drained outside fleetmcp")
        wait_for(lambda: "DRAIN" in slurm_state(other), 15, 0.2)
        before = sinfo()
        rc, sc, err = env.call("repair_execute", plan_id=plan, approval_id=ap)
        check(rc == 5 and "capacity" in err, "Slurm drained another node: repair_execute is"
              " refused by the fresh capacity check", err)
        check(*unchanged(before, "shared aggregate: Slurm unchanged (no scontrol update)"))
        def rows(table):
            try:
                return env.sql(f"SELECT count(*) FROM {table}")[0][0]
            except Exception as e:  # never created: no workflow ever started here
                if "no such table" in str(e) or "does not exist" in str(e):
                    return 0
                raise
        w, n = rows("workflows"), rows("workflow_steps")
        check(n == 0 and w == 0, "no workflow and no step ran (no SSH)", (w, n))
        # Past the bound (5 s by default) a plan reads sinfo again, and sees the drain.
        time.sleep(5.2)
        rc, sc, err = env.call("repair_plan", node=node, fault_class=fc, dry_run=True)
        asof = (sc or {}).get("capacity_as_of") or {}
        cap2 = ((sc or {}).get("capacity") or {}).get("gpu") or {}
        check(rc == 0 and asof.get("source") == "read_now"
              and cap2.get("schedulable_now") == cap["schedulable_now"] - 1,
              "past aggregate_max_age_s the plan reads sinfo and counts the drain",
              {"as_of": asof, "capacity": cap2, "before": cap})
    finally:
        restore(other)


def shadow():
    print("== shadow mode", flush=True)
    env = Env("shadow", mode="shadow")
    before = sinfo()
    rc, sc, err = env.call("node_drain", node="gpu-b01", reason="shadow test")
    check(rc == 5 and "SHADOW" in err, "shadow records node_drain", err)
    rc, sc, err = env.call("repair_plan", node="gpu-a04", fault_class="gpu_row_remap_pending")
    check(sc and sc["approval_needed"], "shadow: a plan still needs approval", sc)
    rc, sc2, err = env.call("repair_execute", plan_id=sc["plan_id"]) if sc else (1, None, "")
    check(rc == 5 and "SHADOW" in err, "shadow records repair_execute", err)
    check(*unchanged(before, "shadow: Slurm untouched"))
    n = env.sql("SELECT count(*) FROM audit WHERE decision='shadow'")[0][0]
    check(n == 2, "shadow recommendations audited", n)


def canary():
    print("== canary node repaired without approval", flush=True)
    env = Env("canary")
    # Made-up evidence: gpu-a04 is healthy, and an agent passes an Xid 63
    # line as signals (with node: collected plus the caller's; alone: the
    # caller's only).  Either diagnosis informs the plan, which then needs
    # an approval and says why; the unapproved repair runs nothing.
    before = sinfo()
    for args, source in (({"node": "gpu-a04", "signals": {"kernel_log": [XID63]}},
                          "collected+caller"),
                         ({"signals": {"node": "gpu-a04", "kernel_log": [XID63]}}, "signals")):
        rc, sc, err = env.call("diagnose", **args)
        check(rc == 0 and sc and sc["top"]["fault_class"] == "gpu_row_remap_pending" and
              sc["top"]["act"], f"made-up evidence ({source}): diagnose believes it", sc or err)
        rc, sc, err = env.call("repair_plan", node="gpu-a04", fault_class="gpu_row_remap_pending")
        dg = (sc or {}).get("diagnosis") or {}
        check(sc and sc["approval_needed"] is True and dg.get("source") == source and
              dg.get("collected_act") is False and "evidence the caller passed" in dg.get("summary", ""),
              f"made-up evidence ({source}): the plan needs an approval and says why", sc or err)
        rc, wf, err = env.call("repair_execute", plan_id=sc["plan_id"]) if sc else (1, None, "")
        check(rc == 5 and "APPROVAL" in err and "evidence the caller passed" in err,
              f"made-up evidence ({source}): unapproved canary repair_execute refused", err)
    check(*unchanged(before, "made-up evidence: nothing drained"))
    n = env.sql("SELECT count(*) FROM audit WHERE tool='repair_execute' AND decision='allow'")[0][0]
    check(n == 0, "made-up evidence: repair_execute never allowed", n)
    n = env.sql("SELECT count(*) FROM diagnoses")[0][0]
    env.sql("DELETE FROM diagnoses")
    check(n == 2, "made-up evidence: both diagnoses were recorded (then cleared)", n)
    inject("gpu-a04", "row_remap_pending")
    # Without a recorded diagnosis the canary runbook needs a human: the
    # unapproved repair_execute is refused and nothing is drained or reset.
    before = sinfo()
    rc, sc, err = env.call("repair_plan", node="gpu-a04", fault_class="gpu_row_remap_pending")
    check(sc and sc["approval_needed"] is True and "no diagnosis" in sc["diagnosis"]["summary"],
          "no diagnosis: the canary plan needs an approval and says why", sc or err)
    rc, wf, err = env.call("repair_execute", plan_id=sc["plan_id"]) if sc else (1, None, "")
    check(rc == 5 and "APPROVAL" in err and "run diagnose" in err,
          "no diagnosis: unapproved canary repair_execute refused", err)
    check(*unchanged(before, "no diagnosis: nothing drained"))
    st = json.loads(gpu("gpu-a04", "show").stdout)
    check(any(g["row_remap_pending"] for g in st["gpus"]), "no diagnosis: no GPU reset")
    n = env.sql("SELECT count(*) FROM audit WHERE tool='repair_execute' AND decision='allow'")[0][0]
    check(n == 0, "no diagnosis: repair_execute never allowed", n)
    check(env.diagnosed("gpu-a04"), "diagnose records Xid 63 at act")
    rc, sc, err = env.call("repair_plan", node="gpu-a04", fault_class="gpu_row_remap_pending")
    check(sc and sc["approval_needed"] is False and sc["guardrails"]["pass"] and
          sc["diagnosis"]["enough"] and sc["diagnosis"]["fault_class"] == "gpu_row_remap_pending",
          "canary runbook on the canary node, freshly diagnosed, needs no approval", sc or err)
    rc, wf, err = env.call("repair_execute", plan_id=sc["plan_id"])
    check(rc == 0 and wf and wf["status"] == "done", "canary repair ran to done", wf or err)
    st = json.loads(gpu("gpu-a04", "show").stdout)
    check(all(not g["row_remap_pending"] for g in st["gpus"]), "row remap no longer pending")
    check(wait_for(lambda: slurm_state("gpu-a04") == "IDLE", 20), "gpu-a04 back in service", slurm_state("gpu-a04"))
    n = env.sql("SELECT count(*) FROM audit WHERE tool='repair_execute' AND phase='intent'"
                " AND approval_id IS NULL AND decision='allow'")[0][0]
    check(n == 1, "allowed without an approval, audited", n)
    # A hitl runbook on the same canary node still needs a human.
    rc, sc, err = env.call("repair_plan", node="gpu-a04", fault_class="gpu_fallen_off_bus")
    rc, wf, err = env.call("repair_execute", plan_id=sc["plan_id"])
    check(rc == 5 and "APPROVAL" in err, "hitl runbook on a canary node still needs approval", err)
    restore("gpu-a04")


def single_actions():
    print("== single actions: health_probe, job_requeue, node_reboot", flush=True)
    env = Env("single")
    rc, sc, err = env.call("health_probe", node="gpu-a04", level=2)
    check(rc == 0 and sc and sc["passed"] and len(sc["tests"]) >= 5,
          "health_probe on the canary node runs without approval", sc or err)
    inject("gpu-a04", "row_remap_failure")
    rc, sc, err = env.call("health_probe", node="gpu-a04", level=1)
    check(rc == 0 and sc and not sc["passed"] and
          any(t["status"] == "Fail" for t in sc["tests"]), "health_probe reports failing tests",
          sc or err)
    job = sbatch("gpu-a04", 30)
    rc, sc, err = env.call("health_probe", node="gpu-a04", level=1)
    check(rc == 5 and "job" in err, "health_probe refuses a node running jobs", err)
    rc, sc, err = env.call("health_probe", node="gpu-b01", level=1)
    check(rc == 5 and "APPROVAL" in err, "health_probe elsewhere needs approval", err)
    restore("gpu-a04")

    job = sbatch("gpu-b03", 60)
    rc, sc, err = env.call("job_requeue", node="gpu-b03", job_id=int(job))
    plan = plan_id_from(err)
    ap = env.approve(plan) if plan else None
    rc, sc, err = env.call("job_requeue", node="gpu-b03", job_id=int(job), approval_id=ap)
    check(rc == 0 and sc and sc["requeued"] and sc["excluded_node"] == "gpu-b03",
          "approved job_requeue", sc or err)
    info = sh("scontrol", "show", "job", job, "-o").stdout
    check("ExcNodeList=gpu-b03" in info, "the job is kept off the bad node",
          [t for t in info.split() if t.startswith(("ExcNodeList", "JobState", "NodeList"))])
    sh("scancel", job)

    r = sh("python3", GPU_STATE, "--stack", STACK, "show", "gpu-b03")
    reboots = json.loads(r.stdout)["reboots"]
    rc, sc, err = env.call("node_reboot", node="gpu-b03", reason="single reboot test")
    plan = plan_id_from(err)
    ap = env.approve(plan) if plan else None
    rc, sc, err = env.call("node_reboot", node="gpu-b03", reason="single reboot test",
                           approval_id=ap)
    check(rc == 0 and sc and sc["reboot_requested"] and sc["reason"].startswith("fleetmcp:"),
          "approved node_reboot", sc or err)
    ok = wait_for(lambda: json.loads(gpu("gpu-b03", "show").stdout)["reboots"] > reboots, 30)
    check(ok, "the node rebooted")
    check(wait_for(lambda: slurm_state("gpu-b03") == "IDLE", 30),
          "Slurm returned it to service (nextstate=RESUME)", slurm_state("gpu-b03"))
    restore("gpu-b03")


def steps_of(wf):
    return {s["step"]: s for s in wf.get("steps", [])}


def xid79_story():
    print("== Xid 79 with a running job: plan, approval, drain waits, reboot, verify", flush=True)
    env = Env("xid79")
    inject("gpu-a01", "xid79")
    job = sbatch("gpu-a01", 20)
    # A second job waits for the node: it must not start before the
    # workflow has verified the node and resumed it (the reboot holds the
    # node DOWN), so it writes down when it started.
    started = os.path.join(TMP, "xid79-job2-started")
    job2 = sh("sbatch", "-w", "gpu-a01", "-o", "/dev/null", "--parsable",
              f"--dependency=afterany:{job}", "--wrap",
              f"python3 -c 'import time; open(\"{started}\", \"w\").write(str(time.time()))'",
              check_rc=True).stdout.strip().split(";")[0]
    rc, sc, err = env.call("repair_plan", node="gpu-a01", fault_class="gpu_fallen_off_bus")
    check(sc and sc["approval_needed"] and sc["running_jobs"] == 1 and sc["risk"] == "high",
          "plan: approval needed, one running job, risk high", sc or err)
    plan = sc["plan_id"]
    before = sinfo()
    rc, wf, err = env.call("repair_execute", plan_id=plan)
    check(rc == 5 and "APPROVAL" in err and "mcp-cli approve" in err,
          "refused without approval, names the approve command", err)
    check(*unchanged(before, "refusal changed nothing in Slurm"))
    ap = env.approve(plan)
    check(ap is not None, "human approves the plan")
    t0 = time.time()
    rc, wf, err = env.call("repair_execute", plan_id=plan, approval_id=ap)
    took = time.time() - t0
    check(rc == 0 and wf and wf["status"] == "done", "workflow done", wf or err)
    s = steps_of(wf or {})
    check(s.get("wait-idle", {}).get("output", {}).get("waited_s", 0) >= 5,
          "drain waited for the job", s.get("wait-idle"))
    check(s.get("reboot", {}).get("state_after") == "repairing" and
          s.get("verify-gpus", {}).get("state_after") == "validating" and
          s.get("resume", {}).get("state_after") == "returned",
          "node states before/after per step", {k: (v["state_before"], v["state_after"])
                                                 for k, v in s.items()})
    check(sh("squeue", "-h", "-j", job).stdout.strip() == "", "the job finished on its own")
    st = json.loads(gpu("gpu-a01", "show").stdout)
    check(st["reboots"] >= 1 and all(not g["fallen_off_bus"] for g in st["gpus"]),
          "node rebooted, GPU back on the bus", st.get("reboots"))
    check(wait_for(lambda: os.path.exists(started) and os.path.getsize(started) > 0, 30),
          "the waiting job ran once the node was back", job_state(job2))
    resumed_at = s.get("resume", {}).get("started", "")
    try:
        t_job2 = float(open(started).read())
        t_resume = datetime.datetime.fromisoformat(resumed_at.replace("Z", "+00:00")).timestamp()
    except (OSError, ValueError):
        t_job2, t_resume = 0.0, 1.0
    check(t_job2 >= t_resume, "no job landed before the resume step (reboot held the node DOWN)",
          {"job2_started": t_job2, "resume_step_started": resumed_at})
    check(wait_for(lambda: slurm_state("gpu-a01") == "IDLE", 20), "gpu-a01 resumed", slurm_state("gpu-a01"))
    print(f"     (workflow took {took:.1f}s)")
    # Attribution and audit chain
    intent = env.sql("SELECT id, initiator_kind, approval_id, plan_id FROM audit WHERE"
                     " tool='repair_execute' AND phase='intent' AND decision='allow'")
    check(len(intent) == 1 and intent[0][1] == "human" and intent[0][2] == ap and
          intent[0][3] == plan, "intent row: human, approval, plan", intent)
    rows = env.sql("SELECT call_ref, workflow_id, node, state_before, state_after, runbook,"
                   " runbook_version, initiator_kind, approval_id FROM audit WHERE phase='step'")
    check(len(rows) == 8 and all(r[0] == intent[0][0] and r[1] == wf["workflow_id"] and
                                 r[2] == "gpu-a01" and r[5] == "rb-gpu-fallen-off-bus" and
                                 r[6] == "1" and r[7] == "human" and r[8] == ap for r in rows),
          "every step audited, attributed to the intent, initiator and approval", rows)
    r = sh(SERVER, "audit", "verify", "--db", env.db)
    check(r.returncode == 0, "audit chain verifies", r.stdout + r.stderr)
    # Replay of the approval is refused.
    rc, wf2, err = env.call("repair_execute", plan_id=plan, approval_id=ap)
    check(rc == 5 and "APPROVAL" in err, "the approval cannot be used twice", err)
    restore("gpu-a01")


def approved_row_remap_with_own_runbooks(name, before_execute=None, before_plan=None):
    """A row-remap plan on gpu-b02 approved by alice, with a private copy of
    the runbooks (edited by before_plan(dir) and before_execute(dir));
    returns the repair_execute answer and whether Slurm stayed unchanged."""
    rbdir = os.path.join(TMP, "runbooks-" + name)
    shutil.copytree(os.environ["FLEETMCP_RUNBOOKS"], rbdir)
    if before_plan:
        before_plan(os.path.join(rbdir, "rb-gpu-row-remap-pending.yaml"))
    env = Env(name, extra=f"runbooks:\n  dir: {rbdir}\n")
    saved = os.environ.pop("FLEETMCP_RUNBOOKS")
    try:
        rc, sc, err = env.call("repair_plan", node="gpu-b02", fault_class="gpu_row_remap_pending")
        plan = sc["plan_id"]
        ap = env.approve(plan)
        if before_execute:
            before_execute(os.path.join(rbdir, "rb-gpu-row-remap-pending.yaml"))
        before = sinfo()
        rc, wf, err = env.call("repair_execute", plan_id=plan, approval_id=ap)
        return rc, err, unchanged(before, "nothing ran")
    finally:
        os.environ["FLEETMCP_RUNBOOKS"] = saved


def edit(path, old, new):
    text = open(path).read().replace(old, new, 1)
    open(path, "w").write(text)


def runbook_change_voids_approval():
    print("== a runbook change voids the approval", flush=True)
    rc, err, same = approved_row_remap_with_own_runbooks(
        "rbchange", before_execute=lambda p: edit(p, "version: 1", "version: 2"))
    check(rc == 5 and "APPROVAL" in err, "approval of v1 refused after the runbook became v2", err)
    check(*same)


def runbook_role_required():
    print("== a runbook's approval_role is asked of its approvers", flush=True)
    rc, err, same = approved_row_remap_with_own_runbooks(
        "rbrole",
        before_plan=lambda p: edit(p, "version: 1", "version: 1\napproval_role: fleet-admin"))
    check(rc == 5 and "alice lacks role fleet-admin" in err,
          "an approver without the runbook's role is refused", err)
    check(*same)


def dbe_reset():
    print("== DBE ECC repaired by GPU reset", flush=True)
    env = Env("dbe")
    inject("gpu-b01", "dbe", "--gpu", "2")
    # The job that hit the DBE is still running: the runbook cancels it,
    # which its approval covers (cancel always needs one).
    job = sbatch("gpu-b01", 600)
    check(job_state(job) == "RUNNING", "a job runs on gpu-b01", job_state(job))
    rc, sc, err = env.call("repair_plan", node="gpu-b01", fault_class="gpu_ecc_uncorrectable")
    plan = sc["plan_id"]
    ap = env.approve(plan)
    rc, wf, err = env.call("repair_execute", plan_id=plan, approval_id=ap)
    check(rc == 0 and wf and wf["status"] == "done", "DBE workflow done", wf or err)
    cancelled = steps_of(wf or {}).get("cancel", {}).get("output", {}).get("cancelled", [])
    check(int(job) in cancelled and job_state(job) in ("CANCELLED", ""),
          "the approved plan cancelled the job on the node", (cancelled, job_state(job)))
    s = steps_of(wf or {})
    reset = s.get("reset", {}).get("output", {}).get("reset", [])
    check(len(reset) == 8 and all(r["exit_status"] == 0 for r in reset), "8 GPUs reset", reset)
    check(s.get("verify-memory", {}).get("output", {}).get("ok") is True, "verification passed",
          s.get("verify-memory"))
    st = json.loads(gpu("gpu-b01", "show").stdout)
    g = st["gpus"][2]
    check(g["ecc_dbe_vol"] == 0 and not g["row_remap_pending"] and st["reboots"] == 0,
          "volatile DBE and pending remap cleared without a reboot", g)
    check(wait_for(lambda: slurm_state("gpu-b01") == "IDLE", 20), "gpu-b01 resumed", slurm_state("gpu-b01"))
    # The single-action tool on one GPU reports what it cleared.
    inject("gpu-b01", "dbe", "--gpu", "1")
    rc, sc, err = env.call("gpu_reset", node="gpu-b01", gpu=1)
    plan = plan_id_from(err)
    ap = env.approve(plan)
    rc, sc, err = env.call("gpu_reset", node="gpu-b01", gpu=1, approval_id=ap)
    check(rc == 0 and sc and "ecc_dbe_vol" in sc["cleared"], "gpu_reset reports what it cleared",
          sc or err)
    # ...and refuses a GPU with a process on it.
    inject("gpu-b01", "busy", "--gpu", "3")
    rc, sc, err = env.call("gpu_reset", node="gpu-b01", gpu=3)
    plan = plan_id_from(err)
    ap = env.approve(plan)
    rc, sc, err = env.call("gpu_reset", node="gpu-b01", gpu=3, approval_id=ap)
    check(rc == 5 and "process" in err, "gpu_reset refuses a busy GPU", err)
    restore("gpu-b01")


def survives():
    print("== a fault that survives repair is escalated, not retried", flush=True)
    env = Env("survive")
    inject("gpu-a03", "xid79", "--persistent")
    rc, sc, err = env.call("repair_plan", node="gpu-a03", fault_class="gpu_fallen_off_bus")
    plan = sc["plan_id"]
    ap = env.approve(plan)
    rc, wf, err = env.call("repair_execute", plan_id=plan, approval_id=ap)
    check(rc == 0 and wf and wf["status"] == "escalated", "workflow escalated", wf or err)
    s = steps_of(wf or {})
    check(s.get("verify-gpus", {}).get("status") == "failed", "verification failed",
          s.get("verify-gpus"))
    check(s.get("keep-drained", {}).get("status") == "done" and
          s.get("escalate", {}).get("status") == "done", "rollback then escalate ran")
    check("probe" not in s and "resume" not in s, "no further repair steps after the failure")
    ticket = (wf or {}).get("ticket")
    check(bool(ticket), "a ticket was opened", wf and wf.get("errors"))
    esc = s.get("escalate", {}).get("output", {})
    check(bool(esc.get("bundle_id")), "the diag bundle is attached", esc)
    line = node_line("gpu-a03")
    check("DRAIN" in slurm_state("gpu-a03") and f"fleetmcp:{wf['workflow_id']}" in line,
          "node kept drained under our reason", line)
    st = env.sql("SELECT state FROM node_states WHERE node='gpu-a03'")
    check(st and st[0][0] == "escalated", "node state escalated", st)
    # Not retried: a new plan is refused by the guardrails, even approved.
    rc, sc, err = env.call("repair_plan", node="gpu-a03", fault_class="gpu_fallen_off_bus")
    check(sc and not sc["guardrails"]["pass"], "a second repair plan fails its guardrails",
          sc and sc["guardrails"]["summary"])
    ap2 = env.approve(sc["plan_id"])
    before = sinfo()
    rc, wf2, err = env.call("repair_execute", plan_id=sc["plan_id"], approval_id=ap2)
    check(rc == 5 and "GUARDRAIL" in err, "a second attempt is refused", err)
    check(*unchanged(before, "nothing changed in Slurm"))
    n = env.sql("SELECT count(*) FROM node_attempts WHERE node='gpu-a03'")[0][0]
    check(n == 1, "one attempt recorded", n)
    restore("gpu-a03")
    # Row remap failure: the runbook never resets, it drains and escalates
    # (canary runbook on the canary node: no approval).
    inject("gpu-a04", "row_remap_failure")
    check(env.diagnosed("gpu-a04", "gpu_row_remap_failure"), "diagnose records Xid 64 at act")
    rc, sc, err = env.call("repair_plan", node="gpu-a04", fault_class="gpu_row_remap_failure")
    rc, wf, err = env.call("repair_execute", plan_id=sc["plan_id"]) if sc else (1, None, "")
    check(rc == 0 and wf and wf["status"] == "escalated" and wf.get("ticket"),
          "row remap failure: drained and escalated with a ticket", wf or err)
    check("DRAIN" in slurm_state("gpu-a04"), "gpu-a04 stays drained")
    rc, sc, err = env.call("repair_plan", node="gpu-a04", fault_class="gpu_row_remap_failure")
    check(sc and not sc["guardrails"]["pass"], "and is not planned again",
          sc and sc["guardrails"]["summary"])
    restore("gpu-a04")


def kill9():
    print("== kill -9 mid-workflow, the next server recovers", flush=True)
    env = Env("kill9")
    inject("gpu-b02", "row_remap_pending")
    job = sbatch("gpu-b02", 15)
    rc, sc, err = env.call("repair_plan", node="gpu-b02", fault_class="gpu_row_remap_pending")
    plan = sc["plan_id"]
    ap = env.approve(plan)
    p = subprocess.Popen([CLI, "--format", "json", "--config", env.cfg, "call", "repair_execute",
                          "--args", json.dumps({"plan_id": plan, "approval_id": ap})],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def waiting():
        try:
            r = env.sql("SELECT id, owner_pid FROM workflows WHERE status='waiting'")
            return r[0] if r else None
        except (sqlite3.Error, RuntimeError):  # RuntimeError: psql (PostgreSQL)
            return None
    ok = wait_for(lambda: waiting() is not None, 30)
    wf_id, pid = waiting() if ok else (None, None)
    check(ok, "workflow reached its wait step")
    if not ok:
        p.kill()
        p.communicate()
        restore("gpu-b02")
        return
    os.kill(pid, signal.SIGKILL)
    out, errtxt = p.communicate(timeout=30)
    check(p.returncode == 4, "the client saw the server die", p.returncode)
    check("DRAIN" in slurm_state("gpu-b02"), "node left drained by the dead server")
    # A read shows the dead owner and acts on nothing; resuming is an
    # explicit, gated act: repair_execute of the same plan, approved again.
    rc, wf, err = env.call("workflow_get", workflow_id=wf_id, timeout=120)
    check(rc == 0 and wf and wf["status"] == "waiting" and not wf["owner"]["alive"],
          "workflow_get shows the orphan and leaves it", wf or err)
    rc, sc, err = env.call("repair_execute", plan_id=plan)
    plan2 = plan_id_from(err)
    ap2 = env.approve(plan2) if plan2 else None
    check(ap2 is not None, "resuming needs the plan approved again", err)
    rc, wf, err = env.call("repair_execute", plan_id=plan, approval_id=ap2, timeout=120)
    check(rc == 0 and wf and wf["workflow_id"] == wf_id and wf["status"] == "done" and
          wf.get("recovered") == 1, "the next server resumed it to done", wf or err)
    rc, wf, err = env.call("workflow_get", workflow_id=wf_id, timeout=120)
    s = [x for x in (wf or {}).get("steps", [])]
    interrupted = [x for x in s if x["status"] == "interrupted"]
    check(len(interrupted) == 1 and interrupted[0]["step"] == "wait-idle",
          "the interrupted step is recorded", interrupted)
    check(any(e["kind"] == "resumed" for e in (wf or {}).get("events", [])), "resume event")
    pids = env.sql("SELECT DISTINCT pid FROM workflow_steps WHERE workflow_id=?", (wf_id,))
    check(len(pids) == 2, "steps ran under two server processes", pids)
    check(wait_for(lambda: slurm_state("gpu-b02") == "IDLE", 20), "gpu-b02 resumed", slurm_state("gpu-b02"))
    r = sh(SERVER, "audit", "verify", "--db", env.db)
    check(r.returncode == 0, "audit chain verifies after the crash", r.stdout + r.stderr)
    restore("gpu-b02")


def race():
    rounds = int(os.environ.get("FM_RACE_ROUNDS", "50"))
    print(f"== two servers race for two nodes of rack r01, {rounds} rounds", flush=True)
    env = Env("race")
    # Both nodes canary (config), so repair_execute runs without approvals.
    with open(env.cfg) as f:
        text = f.read().replace("canary:\n  feature: canary\n",
                                "canary:\n  feature: canary\n  nodes: [gpu-a02, gpu-a03]\n")
    # Two plans a round: past 30 rounds the default hourly limit on create
    # tools (60) would refuse them, as it should in production.
    text += "rate_limits:\n  repair_plan: 1000\n"
    with open(env.cfg, "w") as f:
        f.write(text)
    # Diagnosed once, from the injected fault: the diagnosis stays fresh
    # (diagnose.max_age_s) for every round.
    for n in ("gpu-a02", "gpu-a03"):
        inject(n, "row_remap_pending")
        check(env.diagnosed(n), f"race: {n} diagnosed at act")
    exactly_one = 0
    paths = {"gate": 0, "reservation": 0}
    for i in range(rounds):
        for n in ("gpu-a02", "gpu-a03"):
            inject(n, "row_remap_pending")
        plans = {}
        for n in ("gpu-a02", "gpu-a03"):
            rc, sc, err = env.call("repair_plan", node=n, fault_class="gpu_row_remap_pending")
            plans[n] = sc["plan_id"] if sc else None
        # FM_RACE_HOSTS (remediation-pg.sh): the two servers are two hosts
        # to the store.
        procs = {n: subprocess.Popen([CLI, "--format", "json", "--config", env.cfg, "call",
                                      "repair_execute", "--args",
                                      json.dumps({"plan_id": plans[n]})],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=dict(os.environ, FLEETMCP_HOST_ID=f"host-{n}")
                                     if os.environ.get("FM_RACE_HOSTS") else None)
                 for n in plans}
        res = {}
        for n, p in procs.items():
            out, err = p.communicate(timeout=240)
            st = None
            try:
                st = json.loads(out)["structuredContent"]["status"]
            except (ValueError, KeyError, TypeError):
                pass
            res[n] = (p.returncode, st, err + out)
        done = [n for n, r in res.items() if r[0] == 0 and r[1] == "done"]
        losers = [n for n in res if n not in done]
        lost_ok = all(res[n][0] == 5 and "GUARDRAIL" in res[n][2] and "blast" in res[n][2]
                      for n in losers)
        for n in losers:
            paths["reservation" if "got there first" in res[n][2] else "gate"] += 1
        if len(done) == 1 and lost_ok:
            exactly_one += 1
        else:
            print(f"     round {i}: {res}")
        # the loser's node was never touched
        for n in losers:
            if "DRAIN" in slurm_state(n):
                print(f"     round {i}: loser {n} was drained")
                exactly_one -= 1
        restore("gpu-a02", "gpu-a03")
        env.sql("DELETE FROM node_states")
        env.sql("DELETE FROM node_attempts")
    print(f"     losers refused by the gate's check {paths['gate']}x, by the atomic"
          f" reservation {paths['reservation']}x")
    check(exactly_one == rounds, f"exactly one of two proceeded in {exactly_one}/{rounds} rounds")


def main():
    run_scenarios("remediation", (guardrails, shared_aggregate, shadow, canary, single_actions, xid79_story,
                                  runbook_change_voids_approval, runbook_role_required, dbe_reset,
                                  survives, kill9, race),
                  kept="configs, stores and logs")


if __name__ == "__main__":
    main()
