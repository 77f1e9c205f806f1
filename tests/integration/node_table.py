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
aggregate) must be the REST plan's, word for word.  Every wait is bounded."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "replay"))
from session import Session  # noqa: E402

STACK = os.environ["FM_STACK"]
BUILD = os.environ.get("FM_BUILD", "build")
PLAN_NODE, OTHER = "gpu-a03", "gpu-a04"
failed = 0


def check(ok, what):
    global failed
    print(f"{'ok  ' if ok else 'FAIL'} {what}")
    failed += not ok


def scontrol(*args):
    subprocess.run(["scontrol", "update", f"nodename={OTHER}"] + list(args), check=True,
                   capture_output=True, timeout=30)


def session(name, cfg="FM_CONFIG"):
    db = os.path.join(STACK, f"node-table-{name}.db")
    return Session(os.path.join(BUILD, "fleetmcp"), os.environ[cfg], db,
                   env={"FLEETMCP_MODE": "shadow"}, client="node-table")


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


def main():
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
    print(f"node_table: {8 - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
