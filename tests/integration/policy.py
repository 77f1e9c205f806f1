#!/usr/bin/env python3
"""Fleet policy guardrails (issue 18) against the real stack.  Slurm's
scontrol and scancel are wrapped (safety.py's wrappers) so every check
counts the mutations that actually ran.

  breaker:  with circuit_breaker.max_share 0.3 of 7 nodes, two drains run;
            the third is refused and trips the breaker (no scontrol
            update for that node); fleet_status, the metrics textfile and
            every later refusal say so; after an approved guardrail_reset
            the same drain runs.
  offender: with repeat_offenders.max_repairs 2, two approved reboots run
            and the node is escalated with a ticket; a third reboot and a
            GPU reset are refused (no scontrol reboot, no reset) until an
            approved guardrail_reset clears the node, and then it runs.
  equivalence: a GPU reset on a node with a reboot pending in Slurm is
            refused (no call reaches the handler); with the reboot
            cancelled the approved reset runs.  While a workflow waits on a
            node, a second repair_plan and a node_reboot for it are refused,
            naming the workflow; a plan for another node passes.
  windows:  outside partition debug's change window a drain of a debug
            node is refused (nothing runs) while a gpu-only node drains;
            an approved emergency_start suspending windows lets it run,
            loud in the result and the audit rows, and ends by itself;
            inside the window the drain runs.

Every scenario's audit chain verifies at the end.  Driven by
tests/integration/policy.sh, and by policy-pg.sh with every store on a
throwaway PostgreSQL.
"""
import datetime
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import remediation as R  # noqa: E402  (helpers only)
import safety as S  # noqa: E402  (the logging wrappers)

check, sh, wait_for, restore = R.check, R.sh, R.wait_for, R.restore

LOOSE = ("guardrails:\n  max_per_domain: 10\n  min_schedulable_share: 0\n")


def approved(env, tool, **args):
    """tool called as an agent, its plan approved by alice, called again:
    (rc, structuredContent, text) of the approved call, or of the refusal
    when no plan came back."""
    rc, sc, err = env.call(tool, **args)
    plan = R.plan_id_from(err)
    if rc != 5 or not plan or "APPROVAL" not in err:
        return rc, sc, err
    ap = env.approve(plan)
    if not ap:
        return 99, None, f"approving {plan} failed"
    return env.call(tool, approval_id=ap, **args)


def drains(node):
    return [m for m in S.mutations(node) if m.split()[:2] == ["scontrol", "update"]]


def status(env):
    rc, sc, err = env.call("fleet_status")
    return (sc or {}).get("guardrails", {})


def breaker():
    print("== circuit breaker", flush=True)
    env = S.Env("breaker", extra=LOOSE + "  circuit_breaker:\n    max_share: 0.3\n"
                "    window_s: 600\n")
    for node in ("gpu-a01", "gpu-b01"):
        rc, sc, err = approved(env, "node_drain", node=node, reason="policy breaker test")
        check(rc == 0 and "DRAIN" in R.slurm_state(node), f"drain of {node} runs", err)
    cb = status(env).get("circuit_breaker", {})
    check(cb.get("tripped") is False and cb.get("drained_in_window") == 2,
          "fleet_status: breaker closed, 2 drained in the window", cb)
    before = len(S.mutations())
    rc, sc, err = env.call("node_drain", node="gpu-a02", reason="policy breaker test")
    check(rc == 5 and "GUARDRAIL" in err and "circuit_breaker" in err and "3 (43%)" in err,
          "the third drain (3 of 7 > 30%) is refused by the breaker, with numbers", err)
    check(R.plan_id_from(err) is None, "the refusal makes no plan to approve", err)
    cb = status(env).get("circuit_breaker", {})
    check(cb.get("tripped") is True and "gpu-a02" in cb.get("reason", ""),
          "fleet_status: the breaker is tripped, saying by which drain", cb)
    # Tripped: even a drain within the share is refused, naming the fix.
    rc, sc, err = env.call("node_drain", node="gpu-b02", reason="policy breaker test")
    check(rc == 5 and "circuit breaker tripped" in err and "guardrail_reset" in err,
          "while tripped every drain is refused and says how to reset", err)
    check(len(S.mutations()) == before and not drains("gpu-a02") and not drains("gpu-b02"),
          "nothing ran while the breaker refused", S.mutations()[before:])
    rc, plan, err = env.call("repair_plan", node="gpu-b02", fault_class="gpu_fallen_off_bus")
    verdicts = ((plan or {}).get("guardrails") or {}).get("verdicts", [])
    cbv = [v for v in verdicts if v.get("guardrail") == "circuit_breaker"]
    check(cbv and cbv[0].get("ok") is False, "repair_plan's verdicts show the breaker", plan)
    prom = os.path.join(env.dir, "fleetmcp.prom")
    r = sh(R.SERVER, "metrics", "--config", env.cfg, "--textfile", prom)
    text = open(prom).read() if r.returncode == 0 else r.stderr
    check("fleetmcp_circuit_breaker_tripped 1" in text, "the metrics say tripped", text[-600:])
    # A human's approved reset lets the same drain through.
    rc, sc, err = approved(env, "guardrail_reset", guardrail="circuit_breaker",
                           reason="two bad nodes, one real fault: checked by alice")
    check(rc == 0 and (sc or {}).get("reset") is True, "an approved reset runs", err)
    rc, sc, err = approved(env, "node_drain", node="gpu-a02", reason="policy breaker test")
    check(rc == 0 and len(drains("gpu-a02")) == 1, "after the reset the drain runs", err)
    cb = status(env).get("circuit_breaker", {})
    check(cb.get("tripped") is False, "fleet_status: closed again", cb)
    restore("gpu-a01", "gpu-b01", "gpu-a02")


def offender():
    print("== repeat offenders", flush=True)
    env = S.Env("offender", extra=LOOSE + "  repeat_offenders:\n    max_repairs: 2\n"
                "    window_s: 3600\n")
    node = "gpu-b02"

    def resets():
        return env.sql("SELECT count(*) FROM audit WHERE tool='gpu_reset' AND phase='intent'"
                       " AND decision='allow' AND node=?", (node,))[0][0]
    # Repairs are reboots, counted in Slurm's own argv log.  (A GPU reset
    # of a node in service does not count as a repair: it is not recorded
    # as one, for the retry budget either.)
    for i in (1, 2):
        rc, sc, err = approved(env, "node_reboot", node=node, reason=f"policy offender {i}")
        check(rc == 0 and len(S.reboots(node)) == i, f"repair {i} (a reboot) runs", err)
        wait_for(lambda: R.slurm_state(node) == "IDLE", 30)
    off = status(env).get("repeat_offenders", [])
    mine = [o for o in off if o.get("node") == node]
    check(mine and mine[0].get("repairs") == 2 and mine[0].get("ticket"),
          "fleet_status lists the node as escalated after 2 repairs, with its ticket", off)
    key = mine[0].get("ticket") if mine else None
    rc, t, err = env.call("ticket_get", key=key or "none")
    check(rc == 0 and (t or {}).get("node") == node and
          (t or {}).get("fault_class") == "repeat_offender", "the ticket names node and class", t)
    rc, sc, err = env.call("node_reboot", node=node, reason="policy offender 3")
    check(rc == 5 and "GUARDRAIL" in err and "repeat_offender" in err and key in err,
          "the third reboot is refused, naming the ticket", err)
    check(len(S.reboots(node)) == 2, "no third reboot ran", S.reboots(node))
    # The second reboot may still be pending in Slurm; while it is, the
    # equivalence guardrail refuses a reset first.  This check is about
    # the offender rule, so it waits (bounded) for the reboot to finish.
    wait_for(lambda: "REBOOT" not in R.slurm_state(node), 60)
    rc, sc, err = env.call("gpu_reset", node=node, gpu=0)
    check(rc == 5 and "repeat_offender" in err and resets() == 0,
          "a GPU reset is refused too, and none ran", err)
    rc, sc, err = approved(env, "guardrail_reset", guardrail="repeat_offender", node=node,
                           reason="replaced the riser card")
    check(rc == 0 and (sc or {}).get("node") == node, "an approved clear runs", err)
    check(not [o for o in status(env).get("repeat_offenders", []) if o.get("node") == node],
          "fleet_status no longer lists it", status(env))
    rc, sc, err = approved(env, "node_reboot", node=node, reason="policy offender 4")
    check(rc == 0 and len(S.reboots(node)) == 3, "after the clear the reboot runs", err)
    wait_for(lambda: R.slurm_state(node) == "IDLE", 30)
    restore(node)


def equivalence():
    print("== equivalent actions", flush=True)
    env = S.Env("equiv", extra=LOOSE)
    node = "gpu-b01"
    job = R.sbatch(node, 120)
    sh("scontrol", "reboot", node)
    pending = wait_for(lambda: "REBOOT" in R.slurm_state(node), 10)
    check(pending, "a reboot is pending behind the job", R.slurm_state(node))
    rc, sc, err = env.call("gpu_reset", node=node, gpu=1)
    check(rc == 5 and "GUARDRAIL" in err and "equivalence" in err and "pending" in err,
          "a GPU reset is refused: the pending reboot supersedes it", err)
    ran = env.sql("SELECT count(*) FROM audit WHERE tool='gpu_reset' AND decision='allow'")
    check(ran == [(0,)] and R.plan_id_from(err) is None, "no gpu_reset ran, no plan made", ran)
    # A repair planned now says so too, not only its repair_execute later.
    rc, sc, err = env.call("repair_plan", node=node, fault_class="gpu_hang", dry_run=True)
    v = [x for x in ((sc or {}).get("guardrails") or {}).get("verdicts", [])
         if x.get("guardrail") == "equivalence"]
    check(rc == 0 and v and v[0].get("ok") is False and "refuse" in (sc or {}).get("next", ""),
          "a repair plan with a GPU reset names the pending reboot that supersedes it", err or sc)
    sh("scontrol", "cancel_reboot", node)
    sh("scancel", job)
    wait_for(lambda: R.slurm_state(node) == "IDLE", 30)
    rc, sc, err = approved(env, "gpu_reset", node=node, gpu=1)
    check(rc == 0 and sc, "with no reboot pending the approved GPU reset runs", err)
    restore(node)
    # A workflow waiting on the node owns it.
    R.inject(node, "xid79")
    R.sbatch(node, 120)
    rc, sc, err = env.call("repair_plan", node=node, fault_class="gpu_fallen_off_bus")
    plan = (sc or {}).get("plan_id")
    ap = env.approve(plan) if plan else None
    check(ap is not None, "the first repair is planned and approved", err)
    p = S.subprocess.Popen([R.CLI, "--format", "json", "--config", env.cfg, "call",
                            "repair_execute", "--args",
                            json.dumps({"plan_id": plan, "approval_id": ap})],
                           stdout=S.subprocess.PIPE, stderr=S.subprocess.PIPE, text=True)
    try:
        waiting = wait_for(lambda: S.waiting_workflow(env) is not None, 30)
        check(waiting, "its workflow waits for the job")
        wf = S.waiting_workflow(env)[0] if waiting else "wf-none"
        before = len(S.mutations(node))
        rc, sc, err = env.call("repair_plan", node=node, fault_class="gpu_fallen_off_bus")
        check(rc != 0 and "CONFLICT" in err and wf in err and "workflow_get" in err,
              "a second plan for the node is refused and points at the running workflow", err)
        rc, sc, err = env.call("node_reboot", node=node, reason="policy equivalence")
        check(rc == 5 and "running_workflow" in err and wf in err,
              "a node_reboot on it is refused, naming the workflow", err)
        check(len(S.mutations(node)) == before, "nothing ran on the node",
              S.mutations(node)[before:])
        rc, sc, err = env.call("repair_plan", node="gpu-b02", fault_class="gpu_fallen_off_bus")
        v = [x for x in ((sc or {}).get("guardrails") or {}).get("verdicts", [])
             if x.get("guardrail") == "running_workflow"]
        check(rc == 0 and v and v[0].get("ok") is True, "a plan for another node passes", err)
    finally:
        p.terminate()
        p.communicate(timeout=60)
    restore(node, "gpu-b02")


def hhmm(dt):
    return dt.strftime("%H:%M")


def windows_cfg(start, end):
    return (f"change_windows:\n  partitions:\n    debug:\n      - start: \"{hhmm(start)}\"\n"
            f"        end: \"{hhmm(end)}\"\n")


def one_approver_emergency(env):
    """This scenario is about windows: alice alone starts emergency mode and
    releases actions in it.  The two-person rule for emergency mode is
    proved by stage approvals."""
    with open(env.cfg) as f:
        text = f.read()
    assert "\napprovals:\n" in text
    text = text.replace("\napprovals:\n", "\napprovals:\n  two_person: {emergency: false}\n", 1)
    text += "emergency:\n  approvals_required: 1\n"
    with open(env.cfg, "w") as f:
        f.write(text)
    r = sh(R.SERVER, "check-config", "--config", env.cfg)
    if r.returncode:
        raise RuntimeError(f"config {env.cfg}: {r.stdout}{r.stderr}")


def windows():
    print("== change windows and emergency mode", flush=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    h = datetime.timedelta(hours=1)
    env = S.Env("windows", extra=LOOSE + windows_cfg(now + 2 * h, now + 3 * h))
    one_approver_emergency(env)
    node = "gpu-a03"  # partitions gpu and debug
    rc, sc, err = env.call("node_drain", node=node, reason="policy window test")
    check(rc == 5 and "GUARDRAIL" in err and "change_window" in err and "outside" in err,
          "outside debug's window the drain is refused", err)
    check(not drains(node), "nothing ran", drains(node))
    check("debug" in status(env).get("change_windows", {}), "fleet_status shows the windows",
          status(env))
    rc, sc, err = approved(env, "node_drain", node="gpu-a01", reason="policy window test")
    check(rc == 0 and drains("gpu-a01"), "a node in no windowed partition drains", err)
    rc, sc, err = approved(env, "emergency_start", limits={"change_windows": "suspended"},
                           duration_s=12, reason="rack r01 power event, policy test")
    check(rc == 0 and (sc or {}).get("active") is True, "an approved emergency_start runs", err)
    em = status(env).get("emergency", {})
    check(em.get("active") is True and em.get("until"), "fleet_status shows the emergency", em)
    rc, sc, err = approved(env, "node_drain", node=node, reason="policy window test")
    check(rc == 0 and len(drains(node)) == 1, "in emergency mode the drain runs", err)
    check("EMERGENCY MODE" in err, "the result says EMERGENCY MODE", err[-400:])
    rows = env.sql("SELECT DISTINCT mode FROM audit WHERE tool='node_drain' AND node=?"
                   " AND decision='allow'", (node,))
    check(rows == [("fleet+emergency",)], "its audit rows say fleet+emergency", rows)
    ended = wait_for(lambda: status(env).get("emergency", {}).get("active") is False, 40, 1)
    check(ended, "emergency mode ends by itself", status(env).get("emergency"))
    restore(node, "gpu-a01")
    rc, sc, err = env.call("node_drain", node=node, reason="policy window test")
    check(rc == 5 and "change_window" in err and "EMERGENCY" not in err,
          "after it the window applies again", err)
    # emergency_end ends one early, without an approval.
    rc, sc, err = approved(env, "emergency_start", limits={"max_per_domain": 3},
                           duration_s=600, reason="policy test, ended early")
    rc, sc, err = env.call("emergency_end", reason="over")
    check(rc == 0 and (sc or {}).get("was_active") is True and
          status(env).get("emergency", {}).get("active") is False, "emergency_end ends it", err)
    env2 = S.Env("windows-open", extra=LOOSE + windows_cfg(now - h, now + h))
    rc, sc, err = approved(env2, "node_drain", node=node, reason="policy window test")
    check(rc == 0 and len(drains(node)) == 2, "inside debug's window the drain runs", err)
    restore(node)


def main():
    S.make_wrappers()
    R.run_scenarios("policy", (breaker, offender, equivalence, windows), finish=R.verify_all,
                    kept="configs, stores and the argv log")


if __name__ == "__main__":
    main()
