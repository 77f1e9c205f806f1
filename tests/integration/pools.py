#!/usr/bin/env python3
"""Pool plans (issue 18) against the real stack (7 nodes: rack r01 =
gpu-a01..a04, rack r02 = gpu-b01..b03; partition debug = gpu-a03, gpu-b03).
Slurm's scontrol and scancel are wrapped (safety.py's wrappers), so every
check counts the mutations that really ran.

  batches:     rack r01 with max_per_domain 2 is planned as two batches of
               two, each verdict naming rack r01; a dry run records no plan
               and reserves nothing, the recorded plan reserves nothing
               either; a fault_class selector picks the node diagnosed so.
  concurrency: with concurrency 2 both nodes of batch 1 are drained before
               either reboots (max_in_flight 2), and batch 2's node is
               touched only after both are resumed.
  stop:        three batches of one (concurrency 1); the first node's
               fault survives the reboot, its workflow escalates, and the
               other two nodes are never touched.
  rollback:    two nodes at once; when one fails, the other (drained and
               rebooted by this plan) is resumed and released.
  capacity:    partition debug with min_schedulable_share 0.6 is refused
               per batch (each node alone breaks it) and an approved
               execute runs nothing; a batch whose rack filled up after
               planning is refused when its turn comes, nothing ran on it.

Driven by tests/integration/pools.sh.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import remediation as R  # noqa: E402  (helpers only)
import safety as S  # noqa: E402  (the logging wrappers)

check, sh, wait_for, restore = R.check, R.sh, R.wait_for, R.restore
FC = "gpu_fallen_off_bus"


def limits(per_domain, share=0):
    # The circuit breaker is not under test here (stage integration:policy
    # trips it): a scenario drains up to 4 of the 7 nodes.
    return (f"guardrails:\n  max_per_domain: {per_domain}\n  min_schedulable_share: {share}\n"
            "  circuit_breaker:\n    max_share: 1\n")


def count(env, table):
    try:
        return env.sql(f"SELECT count(*) FROM {table}")[0][0]
    except Exception:  # the table is created on first use
        return 0


def execute(env, plan, **args):
    ap = env.approve(plan)
    if not ap:
        return 99, None, f"approving {plan} failed"
    return env.call("repair_execute", timeout=240, plan_id=plan, approval_id=ap, **args)


def hits(lines, node, word):
    """Indexes of the argv lines acting on node whose verb (scontrol
    update state=drain|resume, or scontrol reboot) is word."""
    out = []
    for i, ln in enumerate(lines):
        w = ln.split()
        if node not in ln or len(w) < 3:
            continue
        verb = "reboot" if w[1] == "reboot" else w[3].lower() if len(w) > 3 else ""
        if verb == word:
            out.append(i)
    return out


def first(lines, node, word):
    h = hits(lines, node, word)
    return h[0] if h else -1


def last(lines, node, word):
    h = hits(lines, node, word)
    return h[-1] if h else -1


def entries(result):
    return {e["node"]: e for b in (result or {}).get("batches", []) for e in b.get("nodes", [])}


def batches():
    print("== pool plan: selectors, batches, dry run", flush=True)
    env = S.Env("batches", extra=limits(2))
    before = len(S.mutations())
    rc, sc, err = env.call("repair_plan", rack="r01", fault_class=FC, dry_run=True)
    g = (sc or {}).get("guardrails", {})
    bs = g.get("batches", [])
    check(rc == 0 and [b["nodes"] for b in bs] == [["gpu-a01", "gpu-a02"], ["gpu-a03", "gpu-a04"]],
          "rack r01 (4 nodes), 2 per domain: two batches of two", sc or err)
    br = [v for b in bs for v in b["verdicts"] if v["guardrail"] == "blast_radius"]
    check(len(br) == 2 and all(v["ok"] and "rack=r01: 2 in this batch" in v["detail"] for v in br),
          "each batch's blast radius verdict names rack r01 at 2 of 2", br)
    check(g.get("pass") is True and sc.get("approval_needed") is True and
          len(sc.get("per_node", [])) == 4 and all(p.get("guardrails", {}).get("exclusions")
                                                   for p in sc["per_node"]),
          "dry run shows each node's guardrail verdicts, approval needed", sc)
    check("plan_id" not in sc and sc.get("dry_run") is True and "dry run" in sc.get("next", ""),
          "a dry run names no plan", sc)
    check(count(env, "plans") == 0 and count(env, "node_states") == 0 and
          len(S.mutations()) == before, "a dry run records no plan, reserves and runs nothing",
          (count(env, "plans"), count(env, "node_states"), S.mutations()[before:]))
    rc, sc, err = env.call("repair_plan", rack="r01", fault_class=FC)
    check(rc == 0 and (sc or {}).get("plan_id") and count(env, "plans") == 1 and
          count(env, "node_states") == 0 and len(S.mutations()) == before,
          "the recorded plan reserves nothing and runs nothing", sc or err)
    rc, plan, err = env.call("plan_get", plan_id=(sc or {}).get("plan_id", "pl-0000000000000000"))
    check(rc == 0 and plan.get("batches") == [["gpu-a01", "gpu-a02"], ["gpu-a03", "gpu-a04"]] and
          len(plan.get("nodes", [])) == 4, "plan_get shows the batches the approval covers", plan)
    # One approval covers the pool, and the two-person rule counts its nodes.
    two = S.Env("batches-two", extra=limits(2))
    with open(two.cfg) as f:
        text = f.read()
    with open(two.cfg, "w") as f:
        f.write(text.replace("\napprovals:\n", "\napprovals:\n  two_person: {above_nodes: 1}\n", 1))
    rc, sc, err = two.call("repair_plan", nodes=["gpu-b01", "gpu-b02"], fault_class=FC)
    rc, res, err = two.call("repair_execute", plan_id=(sc or {}).get("plan_id", "pl-0"))
    check(rc == 5 and "APPROVAL" in err and "2 distinct people" in err and "above_nodes" in err,
          "a pool of 2 over above_nodes 1 takes two approvers", err)
    rc, sc, err = env.call("repair_plan", node="gpu-a01", rack="r01", fault_class=FC)
    check(rc != 0 and "one selector" in err, "two selectors are refused", err)
    # A fault_class alone: every node whose latest diagnosis is that class.
    R.inject("gpu-b02", "xid79")
    rc, d, err = env.call("diagnose", node="gpu-b02")
    top = ((d or {}).get("top") or {}).get("fault_class")
    rc, sc, err = env.call("repair_plan", fault_class=FC, dry_run=True)
    check(top == FC and rc == 0 and (sc or {}).get("nodes") == ["gpu-b02"] and
          sc.get("selector") == {"diagnosed": FC},
          "fault_class alone selects the node diagnosed with it", (top, sc or err))
    rc, sc, err = env.call("repair_plan", fault_class="gpu_thermal", dry_run=True)
    check(rc != 0 and "matches no node" in err, "a class nobody has: a clear error", err)
    restore("gpu-b02")


def concurrency():
    print("== pool execute: concurrency", flush=True)
    env = S.Env("concurrency", extra=limits(2))
    nodes = ["gpu-a01", "gpu-a02", "gpu-b01"]
    rc, sc, err = env.call("repair_plan", nodes=nodes, fault_class=FC)
    bs = [b["nodes"] for b in (sc or {}).get("guardrails", {}).get("batches", [])]
    check(rc == 0 and bs == [["gpu-a01", "gpu-a02"], ["gpu-b01"]],
          "three nodes, 2 per domain (partition gpu holds all): batches of 2 and 1", sc or err)
    before = len(S.mutations())
    t0 = time.time()
    rc, res, err = execute(env, sc["plan_id"], concurrency=2)
    took = time.time() - t0
    m = S.mutations()[before:]
    check(rc == 0 and res["status"] == "done" and res["nodes_done"] == 3 and
          res["max_in_flight"] == 2, "all three repaired, at most two in flight", res or err)
    drained = [first(m, n, "state=drain") for n in ("gpu-a01", "gpu-a02")]
    rebooted = [first(m, n, "reboot") for n in ("gpu-a01", "gpu-a02")]
    check(min(drained) >= 0 and max(drained) < min(rebooted),
          "concurrency 2: both nodes of batch 1 drained before either rebooted", m)
    check(first(m, "gpu-b01", "state=drain") >
          max(last(m, "gpu-a01", "state=resume"), last(m, "gpu-a02", "state=resume")) > 0,
          "batch 2 starts only once batch 1's nodes are back", m)
    wfs = env.sql("SELECT count(DISTINCT id) FROM workflows WHERE plan_id=?", (sc["plan_id"],))
    check(wfs == [(3,)], "one workflow per node, under the pool's plan", wfs)
    check(wait_for(lambda: all(R.slurm_state(n) == "IDLE" for n in nodes), 20),
          "all back in service", [R.slurm_state(n) for n in nodes])
    print(f"     (3 nodes in 2 batches at concurrency 2: {took:.1f}s)")
    restore(*nodes)


def stop():
    print("== pool execute: stop on first failure", flush=True)
    env = S.Env("stop", extra=limits(1))
    rc, sc, err = env.call("repair_plan", nodes=["gpu-b01", "gpu-b02", "gpu-b03"], fault_class=FC)
    check(rc == 0 and len(sc["guardrails"]["batches"]) == 3, "1 per domain: three batches",
          sc or err)
    R.inject("gpu-b01", "xid79", "--persistent")
    before = len(S.mutations())
    rc, res, err = execute(env, sc["plan_id"])
    e = entries(res)
    check(rc == 0 and res["status"] == "stopped" and res["rollback"] == "stop" and
          e.get("gpu-b01", {}).get("status") in ("escalated", "failed") and
          sorted(res["not_started"]) == ["gpu-b02", "gpu-b03"],
          "the first node fails; the pool stops, the others not started", res or err)
    check(not S.mutations("gpu-b02")[before:] and not [x for x in S.mutations()[before:]
                                                       if "gpu-b02" in x or "gpu-b03" in x],
          "nothing ran on gpu-b02 or gpu-b03", S.mutations()[before:])
    check(e.get("gpu-b01", {}).get("ticket"), "the failed node's escalation names its ticket", e)
    restore("gpu-b01", "gpu-b02", "gpu-b03")


def rollback():
    print("== pool execute: rollback", flush=True)
    env = S.Env("rollback", extra=limits(2))
    rc, sc, err = env.call("repair_plan", nodes=["gpu-a01", "gpu-a02"], fault_class=FC)
    R.inject("gpu-a01", "xid79", "--persistent")
    before = len(S.mutations())
    rc, res, err = execute(env, sc["plan_id"], concurrency=2, rollback="rollback")
    e = entries(res)
    rb = {x["node"]: x for x in (res or {}).get("rolled_back", [])}
    m = S.mutations()[before:]
    check(rc == 0 and res["status"] == "rolled_back" and
          e.get("gpu-a02", {}).get("status") == "rolled_back" and
          rb.get("gpu-a02", {}).get("resumed") is True,
          "gpu-a01 fails; gpu-a02, drained by this plan, is rolled back", res or err)
    check(first(m, "gpu-a02", "state=drain") >= 0 and last(m, "gpu-a02", "state=resume") >
          first(m, "gpu-a02", "state=drain") and
          wait_for(lambda: R.slurm_state("gpu-a02") == "IDLE", 20),
          "gpu-a02 was drained and is resumed", (m, R.slurm_state("gpu-a02")))
    st = env.sql("SELECT state FROM node_states WHERE node='gpu-a02'")
    check(st == [("healthy",)], "its reservation is released", st)
    check("DRAIN" in R.slurm_state("gpu-a01") or "DOWN" in R.slurm_state("gpu-a01"),
          "the failed node stays out of service (its runbook escalated it)",
          R.slurm_state("gpu-a01"))
    restore("gpu-a01", "gpu-a02")


def capacity():
    print("== pool plan: capacity refused per batch", flush=True)
    env = S.Env("capacity", extra=limits(2, 0.6))
    rc, sc, err = env.call("repair_plan", partition="debug", fault_class=FC)
    bs = (sc or {}).get("guardrails", {}).get("batches", [])
    cap = [v for b in bs for v in b["verdicts"] if v["guardrail"] == "capacity" and not v["ok"]]
    check(rc == 0 and len(bs) == 2 and not any(b["pass"] for b in bs) and
          all("partition debug" in v["detail"] for v in cap) and len(cap) == 2,
          "partition debug at 60%: each node alone breaks it, two failing batches", sc or err)
    before = len(S.mutations())
    rc, res, err = execute(env, sc["plan_id"])
    check(rc == 5 and "GUARDRAIL" in err and "capacity" in err,
          "an approved execute is refused by the capacity guardrail", err)
    check(len(S.mutations()) == before and count(env, "workflows") == 0,
          "nothing ran, no workflow", S.mutations()[before:])
    # Planned while it fit; by its turn the rack has filled up.
    env2 = S.Env("capacity-live", extra=limits(2))
    rc, sc, err = env2.call("repair_plan", nodes=["gpu-b01", "gpu-b02"], fault_class=FC)
    check(rc == 0 and sc["guardrails"]["pass"], "r02 pair planned as one batch", sc or err)
    ap = env2.approve(sc["plan_id"])
    rc2, d, err2 = env2.call("node_drain", node="gpu-b03", reason="pool capacity test")
    p2 = R.plan_id_from(err2)
    a2 = env2.approve(p2) if p2 else None
    rc2, d, err2 = env2.call("node_drain", node="gpu-b03", reason="pool capacity test",
                             approval_id=a2)
    check(rc2 == 0, "another drain fills rack r02", err2)
    before = len(S.mutations())
    rc, res, err = env2.call("repair_execute", plan_id=sc["plan_id"], approval_id=ap)
    check(rc == 0 and res["status"] == "stopped" and "blast_radius" in str(res["errors"]) and
          sorted(res["not_started"]) == ["gpu-b01", "gpu-b02"],
          "the batch is refused on live state when its turn comes", res or err)
    check(len(S.mutations()) == before, "nothing ran on it", S.mutations()[before:])
    restore("gpu-b01", "gpu-b02", "gpu-b03")


def main():
    S.make_wrappers()
    R.run_scenarios("pools", (batches, capacity, concurrency, stop, rollback),
                    kept="configs, stores and the argv log")


if __name__ == "__main__":
    main()
