#!/usr/bin/env python3
"""Monitor steps hold their window (issue 18) against the real stack.

rb-gpu-sram-ecc-rate ends with `watch`, a monitor step of 86,400 s; with
runbooks.monitor.time_scale 0.0005 it lasts 43 s and is sampled every 8 s
(sample_every_s 16000, scaled): wide enough for a loaded machine.  Each
tool call is its own fleetmcp process (mcp-cli over stdio), so the server
that started the workflow is gone while it monitors: whatever continues it
is a restart.

  clean:  repair_execute returns with the workflow parked as "monitoring"
          (window end, one sample), long before the window ends; no process
          owns it; `fleetmcp workflows run-due` before the next sample is
          due samples nothing; each due run-due takes one sample and parks
          it again; a run-due killed with SIGKILL mid-sample is taken over
          by the next at once; a second plan for the node is refused while
          it monitors; after the window the workflow continues and ends done,
          the watch step one row with every sample clean.
  bad:    the same runbook on another node; an NVLink fault (Xid 74) is
          injected mid-window; the next due sample is bad and the workflow
          escalates at once (on_failure, a ticket), before the window ends.

Driven by tests/integration/monitor.sh.
"""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import remediation as R  # noqa: E402  (helpers only)

check, sh, wait_for, restore = R.check, R.sh, R.wait_for, R.restore

SCALE = 0.0005
WINDOW = 86400 * SCALE  # the watch step's window, in real seconds
EXTRA = ("guardrails:\n  max_per_domain: 10\n  min_schedulable_share: 0\n"
         f"runbooks:\n  monitor:\n    time_scale: {SCALE}\n    sample_every_s: 16000\n")


def start(env, node):
    """Plans, approves and executes the sram-ecc-rate runbook on node:
    (seconds it took, repair_execute's answer, its text)."""
    rc, sc, err = env.call("repair_plan", node=node, fault_class="gpu_sram_ecc_rate")
    plan = (sc or {}).get("plan_id")
    check(rc == 0 and plan, f"a sram-ecc-rate plan for {node}", err)
    args = {"plan_id": plan}
    if (sc or {}).get("approval_needed"):
        args["approval_id"] = env.approve(plan)
    t0 = time.time()
    rc, out, err = env.call("repair_execute", **args)
    return time.time() - t0, out or {}, err


def get(env, wf):
    rc, sc, err = env.call("workflow_get", workflow_id=wf)
    return sc or {}


def run_due(env):
    r = sh(R.SERVER, "workflows", "run-due", "--config", env.cfg, timeout=120)
    n = -1
    if r.returncode == 0 and "run-due:" in r.stdout:
        n = int(r.stdout.split("run-due:")[1].split()[0])
    return n, r.stdout + r.stderr


def watch_rows(env, wf):
    return env.sql("SELECT status FROM workflow_steps WHERE workflow_id=? AND step_id='watch'",
                   (wf,))


def until_due(doc):
    """Sleeps until the parked workflow's next sample is due (bounded)."""
    nxt = (doc.get("monitor") or {}).get("next_sample")
    if not nxt:
        return
    import datetime
    due = datetime.datetime.strptime(nxt[:19], "%Y-%m-%dT%H:%M:%S").replace(
        tzinfo=datetime.timezone.utc).timestamp()
    time.sleep(min(max(due - time.time() + 1.1, 0), 10))


def clean():
    print("== a clean window", flush=True)
    env = R.Env("monitor-clean", extra=EXTRA)
    node = "gpu-b02"
    took, out, err = start(env, node)
    wf = out.get("workflow_id", "wf-none")
    mon = out.get("monitor") or {}
    check(out.get("status") == "monitoring" and mon.get("window_end") and
          mon.get("samples") == 1, "repair_execute returns the workflow parked as monitoring,"
          " with its window end and one sample", err[-1500:])
    check(took < WINDOW - 5, f"it returned in {took:.1f} s, before the {WINDOW:.0f} s window"
          " ended (the window is not held by a process)")
    doc = get(env, wf)
    check(doc.get("status") == "monitoring" and (doc.get("monitor") or {}).get("next_sample") and
          doc.get("owner", {}).get("pid") == 0,
          "workflow_get from a new server: monitoring, next sample named, no process owns it",
          doc.get("monitor"))
    n, text = run_due(env)
    check(n == 0 and get(env, wf).get("monitor", {}).get("samples") == 1,
          "run-due before the next sample is due samples nothing", text)
    rc, sc, err = env.call("repair_plan", node=node, fault_class="gpu_sram_ecc_rate")
    check(rc != 0 and wf in err, "a second plan for the node is refused, naming the monitoring"
          " workflow", err[-600:])
    killed = False
    for _ in range(3):
        # A driver killed with SIGKILL mid-sample (it owns the workflow,
        # its SSH probe in flight): the next run-due takes it over at once.
        doc = get(env, wf)
        before = (doc.get("monitor") or {}).get("samples", 0)
        until_due(doc)
        p = subprocess.Popen([R.SERVER, "workflows", "run-due", "--config", env.cfg],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        end = time.time() + 10
        while time.time() < end and p.poll() is None:
            owner = env.sql("SELECT owner_pid FROM workflows WHERE id=?", (wf,))
            if owner and owner[0][0] == p.pid:
                os.kill(p.pid, signal.SIGKILL)
                killed = True
                break
            time.sleep(0.01)
        p.communicate(timeout=30)
        if killed:
            break
    check(killed, "a run-due was killed with SIGKILL while it owned the workflow")
    doc = get(env, wf)
    check(doc.get("status") == "monitoring" and doc.get("owner", {}).get("alive") is False,
          "after the kill: still monitoring, its owner dead", (doc.get("status"),
                                                                 doc.get("owner")))
    n, text = run_due(env)
    after = get(env, wf)
    check(n == 1 and (after.get("monitor") or {}).get("samples") == before + 1 and
          watch_rows(env, wf) == [("monitoring",)],
          "the next run-due takes it over at once and samples it (still one step row)",
          (text, after.get("monitor"), watch_rows(env, wf)))
    t_end = time.time() + WINDOW + 30
    while time.time() < t_end:
        doc = get(env, wf)
        if doc.get("status") != "monitoring":
            break
        before = (doc.get("monitor") or {}).get("samples", 0)
        until_due(doc)
        n, text = run_due(env)
        after = get(env, wf)
        check(n == 1 and ((after.get("monitor") or {}).get("samples") == before + 1),
              "a due run-due samples it once", (text, after.get("monitor")))
    doc = get(env, wf)
    mon = doc.get("monitor") or {}
    samples = mon.get("samples", 0)
    check(doc.get("status") == "done" and mon.get("result") == "clean" and samples >= 3 and
          mon.get("bad_samples") == 0,
          f"after the window the workflow continued and ended done ({samples} clean samples)",
          doc)
    check(watch_rows(env, wf) == [("done",)], "the watch step is one row, done",
          watch_rows(env, wf))
    ev = [e.get("kind") for e in doc.get("events", [])]
    check("monitoring" in ev and ev[-1] == "finished", "the events say monitoring, then finished",
          ev)
    restore(node)


def bad():
    print("== a bad sample mid-window", flush=True)
    env = R.Env("monitor-bad", extra=EXTRA)
    node = "gpu-b03"
    t0 = time.time()
    took, out, err = start(env, node)
    wf = out.get("workflow_id", "wf-none")
    check(out.get("status") == "monitoring", "the workflow parks as monitoring", err[-1500:])
    R.inject(node, "nvlink")
    doc = get(env, wf)
    until_due(doc)
    n, text = run_due(env)
    doc = get(env, wf)
    mon = doc.get("monitor") or {}
    check(n == 1 and doc.get("status") == "escalated" and mon.get("result") == "bad sample" and
          mon.get("bad_samples") == 1, "the next due sample is bad: the workflow escalates",
          (text, doc.get("status"), mon))
    check(time.time() - t0 < WINDOW, "it escalated before the window ended, not after it")
    errs = " ".join(e.get("error", "") for e in doc.get("errors", []))
    check("bad" in errs and ("nvlink" in errs or "xid" in errs), "the error names the bad sample",
          errs)
    tickets = [s for s in doc.get("steps", []) if s.get("action") == "escalate"]
    check(tickets and tickets[-1].get("status") == "done" and
          (tickets[-1].get("output") or {}).get("ticket"), "on_failure escalated with a ticket",
          tickets)
    check(watch_rows(env, wf) == [("failed",)], "the watch step is one row, failed",
          watch_rows(env, wf))
    restore(node)


def main():
    R.run_scenarios("monitor", (clean, bad))


if __name__ == "__main__":
    main()
