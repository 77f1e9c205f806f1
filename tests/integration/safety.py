#!/usr/bin/env python3
"""Safety promises under hostile use (issue 13, items 1-4), against the real
stack with Slurm's scontrol and scancel replaced by wrappers that log every
argv before running the real program: the checks count the mutations that
actually ran instead of trusting replies.

  1. one approval releases one execution: a replayed signature, a second
     approval of an executed plan and a reused approval id all act zero times;
     the signature is redacted in audit_query;
  2. a read (workflow_get, fleet_status) on a store with an orphaned
     workflow, in shadow + read_only mode, acts zero times and returns at once;
  3. SIGTERM, and EOF on stdin, stop an in-flight workflow: the server exits
     within a bounded time and nothing runs when the node's job ends;
  4. an approvals row inserted straight into the store (no valid signature)
     releases nothing;
  5. a single-node tool's server killed (-9) mid-step (issue 14): the node
     reads repairing meanwhile (the action's state_during), the same tool
     with other arguments and another tool are refused with no SSH session
     and no Slurm change, the same call approved again resumes and finishes
     the dead workflow, nothing is left held, and the audit chain verifies.

Driven by tests/integration/safety.sh.  Shares remediation.py's helpers.
"""
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import remediation as R  # noqa: E402  (its helpers; its main() is not run)

check, sh, wait_for, sbatch, restore = R.check, R.sh, R.wait_for, R.sbatch, R.restore
LOG = os.path.join(R.TMP, "slurm-argv.log")
WRAP = os.path.join(R.TMP, "bin")
MUTATING = ("update", "reboot", "requeue", "cancel", "resume")


def make_wrappers():
    os.makedirs(WRAP, exist_ok=True)
    for prog in ("scontrol", "scancel"):
        real = sh("sh", "-c", f"command -v {prog}").stdout.strip()
        path = os.path.join(WRAP, prog)
        with open(path, "w") as f:
            f.write(f"#!/bin/sh\nprintf '%s %s\\n' {prog} \"$*\" >> '{LOG}'\n"
                    f"exec '{real}' \"$@\"\n")
        os.chmod(path, 0o755)


def mutations(node=None):
    """The logged argv lines that change Slurm (not `scontrol show`)."""
    try:
        with open(LOG) as f:
            lines = [ln.strip() for ln in f if ln.strip()]
    except OSError:
        return []
    out = []
    for ln in lines:
        words = ln.split()
        if words[0] == "scancel" or (len(words) > 1 and words[1] in MUTATING):
            if node is None or node in ln:
                out.append(ln)
    return out


def reboots(node):
    return [m for m in mutations(node) if m.split()[:2] == ["scontrol", "reboot"]]


class Env(R.Env):
    """A scenario whose Slurm mutations go through the logging wrappers."""

    def __init__(self, name, mode="fleet", extra=""):
        super().__init__(name, mode, extra)
        with open(self.cfg) as f:
            text = f.read()
        text = text.replace("    scontrol: scontrol\n",
                            f"    scontrol: {WRAP}/scontrol\n    scancel: {WRAP}/scancel\n")
        assert f"{WRAP}/scontrol" in text, "the stack config names scontrol differently"
        with open(self.cfg, "w") as f:
            f.write(text)

    def call_args(self, tool, args, timeout=120):
        """call() for arguments whose names clash with its own (tool=)."""
        r = sh(R.CLI, "--format", "json", "--config", self.cfg, "--timeout", str(timeout),
               "call", tool, "--args", json.dumps(args), timeout=timeout + 30)
        try:
            sc = json.loads(r.stdout).get("structuredContent")
        except (ValueError, AttributeError):
            sc = None
        return r.returncode, sc, r.stderr + r.stdout

    def reconfigure(self, mode, extra=""):
        """Same store, another mode (and more keys)."""
        with open(self.cfg) as f:
            lines = [ln for ln in f.read().splitlines()
                     if not ln.startswith(("mode:", "read_only:"))]
        with open(self.cfg, "w") as f:
            f.write(f"mode: {mode}\n" + "\n".join(lines) + "\n" + extra)


def replayed_approval():
    print("== 1. one approval releases one execution", flush=True)
    env = Env("replay")
    node = "gpu-b02"
    args = {"node": node, "reason": "safety replay test"}
    rc, sc, err = env.call("node_reboot", **args)
    plan = R.plan_id_from(err)
    ap = env.approve(plan) if plan else None
    check(ap is not None, "a human approves the reboot plan", err)
    rc, sc, err = env.call("node_reboot", approval_id=ap, **args)
    check(rc == 0 and len(reboots(node)) == 1, "the approved reboot ran once", reboots(node))
    wait_for(lambda: R.slurm_state(node) == "IDLE", 30)
    # The agent reads the approval back from the audit log...
    rc, rows, err = env.call_args("audit_query", {"tool": "plan_approve", "detail": True})
    recorded = [r.get("args") for r in (rows or {}).get("rows", []) if r.get("args")]
    text = json.dumps(recorded)
    check(recorded and "[REDACTED]" in text and "==" not in text,
          "audit_query shows the signature redacted", text[:400])
    # ...or straight from the store, and sends it again.
    row = env.sql("SELECT plan_id, approver, expires_ms, signature FROM approvals"
                  " WHERE id=?", (ap,))[0]
    replay = {"plan_id": row[0], "approver": row[1], "expires_ms": row[2], "signature": row[3]}
    rc, sc, err = env.call("plan_approve", **replay)
    check(rc == 5 and "APPROVAL" in err, "plan_approve refuses a recorded signature", err)
    ap2 = (sc or {}).get("approval_id")
    if ap2:
        env.call("node_reboot", approval_id=ap2, **args)
    # A human approving the executed plan by mistake releases nothing either.
    ap3 = env.approve(plan)
    check(ap3 is None, "an executed plan cannot be approved again")
    rc, sc, err = env.call("node_reboot", approval_id=ap, **args)
    check(rc == 5 and "APPROVAL" in err, "the used approval id is refused", err)
    # A new call needs a new plan, not the executed one.
    rc, sc, err = env.call("node_reboot", **args)
    check(rc == 5 and R.plan_id_from(err) not in (None, plan), "a new call makes a new plan", err)
    check(len(reboots(node)) == 1, "exactly one reboot from one signature", reboots(node))
    st = env.sql("SELECT status FROM plans WHERE id=?", (plan,))
    check(st == [("executed",)], "the plan is marked executed", st)
    restore(node)


def forged_row():
    print("== 4. an approval row written into the store releases nothing", flush=True)
    env = Env("forged")
    node = "gpu-b03"
    args = {"node": node, "reason": "safety forged test"}
    rc, sc, err = env.call("node_reboot", **args)
    plan = R.plan_id_from(err)
    rc, p, err2 = env.call("plan_get", plan_id=plan)
    check(p and p.get("hash"), "plan_get gives the plan's hash", err2)
    before = len(mutations())
    far = int(time.time() * 1000) + 600000
    env.sql("INSERT INTO approvals(id,plan_id,plan_hash,approver,expires_ms,signature,created_ms)"
            " VALUES('ap-00000000000000f1',?,?,'alice',?,'not-a-signature',?)",
            (plan, p["hash"], far, int(time.time() * 1000)))
    env.sql("UPDATE plans SET status='approved' WHERE id=?", (plan,))
    rc, sc, err = env.call("node_reboot", approval_id="ap-00000000000000f1", **args)
    check(rc == 5 and "APPROVAL" in err and "does not verify" in err,
          "the inserted approval is refused: its signature does not verify", err)
    # A real signature of another plan copied into the row fails too.
    env.sql("UPDATE approvals SET signature=? WHERE id='ap-00000000000000f1'", ("A" * 86 + "==",))
    rc, sc, err = env.call("node_reboot", approval_id="ap-00000000000000f1", **args)
    check(rc == 5 and "APPROVAL" in err, "a wrong signature in the row is refused", err)
    check(len(mutations()) == before, "no Slurm mutation ran", mutations()[before:])
    restore(node)


def repair_until_waiting(env, node, seconds):
    """repair_plan + approval of the Xid 79 runbook (drain, wait for the
    job, reboot through scontrol...) for node with a job of `seconds` on
    it; returns (plan, approval_id)."""
    R.inject(node, "xid79")
    sbatch(node, seconds)
    rc, sc, err = env.call("repair_plan", node=node, fault_class="gpu_fallen_off_bus")
    plan = sc["plan_id"] if sc else None
    return plan, env.approve(plan) if plan else None


def waiting_workflow(env):
    try:
        r = env.sql("SELECT id, owner_pid FROM workflows WHERE status='waiting'")
        return r[0] if r else None
    except Exception:
        return None


def gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie child of ours counts as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def read_never_recovers():
    print("== 2. a read in shadow + read_only mode never resumes an orphan", flush=True)
    env = Env("orphan")
    node = "gpu-b01"
    plan, ap = repair_until_waiting(env, node, 12)
    check(ap is not None, "repair planned and approved")
    p = subprocess.Popen([R.CLI, "--format", "json", "--config", env.cfg, "call", "repair_execute",
                          "--args", json.dumps({"plan_id": plan, "approval_id": ap})],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ok = wait_for(lambda: waiting_workflow(env) is not None, 30)
    check(ok, "workflow reached wait-idle")
    if not ok:
        p.kill()
        p.communicate()
        restore(node)
        return
    wf_id, pid = waiting_workflow(env)
    os.kill(pid, signal.SIGKILL)
    p.communicate(timeout=30)
    before = len(mutations(node))
    env.reconfigure("shadow", "read_only: true\n")
    t0 = time.time()
    rc, wf, err = env.call("workflow_get", workflow_id=wf_id, timeout=60)
    took = time.time() - t0
    check(rc == 0 and wf and wf["status"] == "waiting" and not wf["owner"]["alive"],
          "workflow_get shows the orphan as it was, owner dead", wf or err)
    check(took < 10, f"workflow_get answered at once ({took:.1f} s)")
    rc, fs, err = env.call("fleet_status", timeout=60)
    check(rc == 0, "fleet_status answers", err)
    # The job ends; nothing may act on the node afterwards.
    wait_for(lambda: not sh("squeue", "-h", "-w", node).stdout.strip(), 30)
    time.sleep(3)
    check(len(mutations(node)) == before, "no Slurm mutation after the kill",
          mutations(node)[before:])
    steps = env.sql("SELECT count(*) FROM workflow_steps WHERE workflow_id=? AND pid<>?",
                    (wf_id, pid))
    check(steps == [(0,)], "no step ran in another process", steps)
    rows = env.sql("SELECT count(*) FROM audit WHERE phase='step' AND mode='shadow'")
    check(rows == [(0,)], "no step audited in shadow mode", rows)
    # Recovery is an explicit, gated act: in fleet mode, the same plan
    # approved again through repair_execute resumes it (once).
    env.reconfigure("fleet")
    rc, sc, err = env.call("repair_execute", plan_id=plan)
    plan2 = R.plan_id_from(err)
    check(rc == 5 and plan2 and plan2 != plan, "resuming needs a new approval", err)
    ap2 = env.approve(plan2) if plan2 else None
    rc, wf, err = env.call("repair_execute", plan_id=plan, approval_id=ap2, timeout=300)
    check(rc == 0 and wf and wf["workflow_id"] == wf_id and wf["status"] == "done" and
          wf.get("recovered") == 1, "the approved repair_execute resumed it to done", wf or err)
    check(len(reboots(node)) == 1, "one reboot in all", reboots(node))
    restore(node)


def initialize_line():
    return json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "safety-test", "version": "1"}}}) + "\n" + json.dumps(
        {"jsonrpc": "2.0", "method": "notifications/initialized"}) + "\n"


def stop_mid_workflow(how):
    print(f"== 3. {how} stops an in-flight workflow", flush=True)
    env = Env(f"stop-{how}")
    node = "gpu-a02" if how == "sigterm" else "gpu-b02"
    plan, ap = repair_until_waiting(env, node, 10)
    check(ap is not None, f"{how}: repair planned and approved")
    srv = subprocess.Popen([R.SERVER, "--config", env.cfg], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "repair_execute",
                       "arguments": {"plan_id": plan, "approval_id": ap}}}
    srv.stdin.write(initialize_line() + json.dumps(call) + "\n")
    srv.stdin.flush()
    ok = wait_for(lambda: waiting_workflow(env) is not None, 30)
    check(ok, f"{how}: workflow reached wait-idle")
    drained = len(mutations(node))
    t0 = time.time()
    if how == "sigterm":
        srv.send_signal(signal.SIGTERM)
    else:
        srv.stdin.close()
    exited = wait_for(lambda: srv.poll() is not None, 8, 0.1)
    took = time.time() - t0
    check(exited, f"{how}: the server exited within 8 s ({took:.1f} s)")
    if not exited:
        srv.kill()
    srv.wait(timeout=10)
    wait_for(lambda: not sh("squeue", "-h", "-w", node).stdout.strip(), 30)
    time.sleep(4)
    check(len(mutations(node)) == drained, f"{how}: nothing ran on {node} after the stop",
          mutations(node)[drained:])
    wf = env.sql("SELECT id, status FROM workflows WHERE plan_id=?", (plan,))
    check(len(wf) == 1 and wf[0][1] in ("running", "waiting"),
          f"{how}: the workflow is left recoverable", wf)
    ev = env.sql("SELECT message FROM workflow_events WHERE workflow_id=? AND kind='stopped'",
                 (wf[0][0] if wf else "",))
    want = "SIGTERM" if how == "sigterm" else "stdin closed"
    check(len(ev) == 1 and want in ev[0][0], f"{how}: the reason is recorded", ev)
    for p in (srv.stdin, srv.stdout):
        try:
            p.close()
        except (OSError, ValueError):
            pass
    restore(node)


def ssh_sessions():
    """Sessions the stack's sshd accepted so far (its log, LogLevel
    VERBOSE): a call that opens none ran no SSH command."""
    try:
        with open(os.path.join(R.STACK, "log", "sshd.log")) as f:
            return sum(1 for ln in f if "Accepted publickey" in ln)
    except OSError:
        return -1


def slow_nvidia_smi(node, seconds):
    """The fake nvidia-smi on node sleeps this long each run (0: not)."""
    path = os.path.join(R.STACK, "nodes", node, "fakegpu.json")
    if seconds:
        with open(path, "w") as f:
            json.dump({"nvidia-smi": {"sleep_s": seconds}}, f)
        os.chmod(path, 0o644)
    elif os.path.exists(path):
        os.unlink(path)


def kill_tool_mid_step():
    print("== 5. a one-step gpu_reset whose server dies mid-step (kill -9)", flush=True)
    env = Env("killtool")
    node = "gpu-b01"
    R.inject(node, "dbe", "--gpu", "1")
    args = {"node": node, "gpu": 1}
    m0 = len(mutations(node))  # the argv log is the whole run's
    rc, sc, err = env.call("gpu_reset", **args)
    ap = env.approve(R.plan_id_from(err) or "")
    check(ap is not None, "a human approves the reset", err)
    # Each nvidia-smi run of the step (GPU list, processes, snapshot,
    # reset, snapshot) takes 4 s: the step is seen running, then killed.
    slow_nvidia_smi(node, 4)
    p = subprocess.Popen([R.CLI, "--format", "json", "--config", env.cfg, "--timeout", "120",
                          "call", "gpu_reset", "--args", json.dumps(dict(args, approval_id=ap))],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    q = ("SELECT w.id, w.owner_pid, n.state FROM workflows w JOIN workflow_steps s ON"
         " s.workflow_id=w.id JOIN node_states n ON n.node=w.node WHERE w.node=? AND"
         " w.status='running' AND s.status='started'")

    def mid():
        try:
            r = env.sql(q, (node,))
            return r[0] if r else None
        except Exception:  # the server's first write may still hold the store
            return None
    try:
        ok = wait_for(lambda: mid() is not None, 30, 0.2)
        wf, pid, state = mid() if ok else (None, None, None)
        check(ok and state == "repairing",
              "mid-step, another connection reads the node repairing (gpu_reset's state_during)",
              state)
        # What an SRE sees: fleet_status from a second server process.
        rc, st, err = env.call("fleet_status", timeout=60)
        by = (st or {}).get("nodes_by_state", {})
        still = mid()
        check(rc == 0 and by.get("repairing") == 1 and not by.get("quarantined") and
              still is not None, "fleet_status (another process) shows it repairing mid-step",
              (by, still, err[-300:]))
        if not ok:
            return
        os.kill(pid, signal.SIGKILL)
        p.communicate(timeout=30)
        check(p.returncode == 4, "the client saw the server die", p.returncode)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
        slow_nvidia_smi(node, 0)
    steps = env.sql("SELECT status FROM workflow_steps WHERE workflow_id=?", (wf,))
    check(steps == [("started",)], "the step was interrupted, not ended", steps)

    # (b) The same tool with other arguments, and another tool: refused by
    # the dead workflow's hold on the node, nothing run on SSH or Slurm.
    ssh0, slurm0 = ssh_sessions(), len(mutations())
    rc, sc, err = env.call("gpu_reset", node=node, gpu=2)
    check(rc == 5 and "running_workflow" in err and wf in err,
          "gpu_reset with another GPU is refused by the dead workflow", err)
    rc, sc, err = env.call("node_drain", node=node, reason="safety other tool")
    check(rc == 5 and "running_workflow" in err, "another tool on the node is refused", err)
    check(ssh_sessions() == ssh0 and ssh0 >= 0 and len(mutations()) == slurm0,
          "the refusals ran nothing: no SSH session, no Slurm change",
          (ssh0, ssh_sessions(), mutations()[slurm0:]))

    # (a) The same tool with the same arguments, approved again: it claims
    # the dead workflow and finishes it.
    rc, sc, err = env.call("gpu_reset", **args)
    plan2 = R.plan_id_from(err)
    ap2 = env.approve(plan2) if plan2 else None
    check(ap2 is not None, "resuming needs the reset approved again", err)
    ssh1 = ssh_sessions()
    rc, sc, err = env.call("gpu_reset", approval_id=ap2, timeout=120, **args)
    check(rc == 0 and sc and sc.get("reset") is True, "the same call resumes and resets", sc or err)
    check(ssh_sessions() > ssh1, "and its SSH session is counted (the count above sees one)",
          (ssh1, ssh_sessions()))
    g = json.loads(R.gpu(node, "show").stdout)["gpus"][1]
    check(g["ecc_dbe_vol"] == 0, "GPU 1's volatile DBE is cleared", g)
    rows = env.sql("SELECT id, status FROM workflows WHERE node=?", (node,))
    check(rows == [(wf, "done")], "one workflow, the dead call's, now done", rows)
    pids = env.sql("SELECT DISTINCT pid FROM workflow_steps WHERE workflow_id=?", (wf,))
    check(len(pids) == 2, "its step ran under two server processes", pids)
    st = env.sql("SELECT state FROM node_states WHERE node=?", (node,))
    check(st == [("returned",)], "the node in service ends returned", st)

    # (c) Nothing is left held or drained by nobody.
    live = env.sql("SELECT id, node FROM workflows WHERE status IN ('running','waiting')")
    check(not live, "no workflow holds a node", live)
    check("DRAIN" not in R.slurm_state(node) and not mutations(node)[m0:],
          "the node was never drained", (R.slurm_state(node), mutations(node)[m0:]))
    # (d) The audit chain verifies after the crash.
    r = sh(R.SERVER, "audit", "verify", "--db", env.db)
    check(r.returncode == 0, "audit verify passes after the crash", r.stdout + r.stderr)
    restore(node)


def main():
    make_wrappers()
    restore(*R.NODES)
    only = os.environ.get("FM_ONLY", "").split(",")
    for fn in (replayed_approval, forged_row, read_never_recovers,
               lambda: stop_mid_workflow("sigterm"), lambda: stop_mid_workflow("eof"),
               kill_tool_mid_step):
        name = getattr(fn, "__name__", "")
        if only != [""] and name not in only and not (name == "<lambda>" and "stop" in only):
            continue
        try:
            fn()
        except Exception as e:  # a scenario crashing is a failure, not the end
            check(False, f"{name} raised", repr(e))
            restore(*R.NODES)
    R.end("safety", "configs, stores and the argv log")


if __name__ == "__main__":
    main()
