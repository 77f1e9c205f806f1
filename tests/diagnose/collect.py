#!/usr/bin/env python3
"""diagnose in node mode against the real local stack (tests/diagnose/collect.sh).

Injects faults with tests/stack/gpu_state.py, then asks build/fleetmcp over
MCP stdio for `diagnose {node}` and checks the class and its evidence:
Xid 79, DBE, IB port down, heat on four nodes; an untouched one stays healthy.
Every wait is bounded.  The closing total counts the checks that ran (one
Tally), and no check at all is a failure.

  collect.py              (FM_STACK: the running stack, tests/diagnose/collect.sh)
  collect.py --self-test  the counting alone, without a stack"""
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from run_scenarios import Mcp, ROOT  # noqa: E402
from tally import Tally  # noqa: E402

# Read in main: --self-test runs without a stack.
STACK = CONFIG = ""
GPU_STATE = os.path.join(ROOT, "tests", "stack", "gpu_state.py")
# node, injected fault (None: untouched), expected top class, evidence word
CASES = [("gpu-a02", "xid79", "gpu_fallen_off_bus", "Xid 79"),
         ("gpu-b01", "dbe", "gpu_ecc_uncorrectable", "Xid 48"),
         ("gpu-b02", "ib_down", "ib_link_down", "State"),
         ("gpu-a01", "hot", "gpu_thermal", "TEMP"),
         ("gpu-a03", None, "healthy", "")]


def gpu_state(*args):
    subprocess.run([sys.executable, GPU_STATE, "--stack", STACK] + list(args), check=True,
                   capture_output=True, timeout=30)


def session(cfg):
    """A fleetmcp over stdio on config cfg, initialized."""
    c = Mcp([os.path.join(ROOT, "build", "fleetmcp"), "--config", cfg], dict(os.environ))
    try:
        c.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                 "clientInfo": {"name": "diagnose-collect", "version": "1"}})
        c.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    except BaseException:
        c.close()
        raise
    return c


def injected(t):
    """The CASES in node mode, then cluster mode on the same faults."""
    c = None
    try:  # a failed injection still puts every node back
        for node, fault, _, _ in CASES:
            if fault:
                gpu_state("inject", node, fault, "--gpu", "3")
        time.sleep(3)  # Prometheus scrapes every second
        c = session(CONFIG)
        for node, _, want, word in CASES:
            res = c.request("tools/call", {"name": "diagnose", "arguments": {"node": node}})
            if res.get("isError"):
                t.check(False, f"{node}: {res['content'][0]['text']}")
                continue
            sc = res["structuredContent"]
            top = sc["top"]
            ev = " | ".join(top["evidence"])
            t.check(top["fault_class"] == want and word in ev,
                    f"{node}: {top['fault_class']} {top['confidence']} act={top['act']}"
                    f" collected={json.dumps(sc.get('collected'))}", f"evidence: {ev[:600]}")
        cluster(c, t)
    finally:
        if c:
            c.close()
        for node, fault, _, _ in CASES:
            if fault:
                gpu_state("init", node, "--sku", "a100" if node.startswith("gpu-b") else "h100")


def cluster(c, t):
    """Cluster mode on the same injected faults, from bulk sources only (one
    Slurm listing, one Prometheus query per DCGM field, no SSH): the whole
    fleet ranks the Xid 79 and DBE nodes with their classes from the DCGM
    fields alone, leaves the untouched node out, counts every node, and
    never acts; a node list scopes it."""
    res = c.request("tools/call", {"name": "diagnose", "arguments": {"cluster": {}}})
    sc = {} if res.get("isError") else res.get("structuredContent", {})
    cl = sc.get("cluster", {})
    ranked = {r["node"]: r for r in cl.get("ranked", [])}
    want = {"gpu-a02": "gpu_fallen_off_bus", "gpu-b01": "gpu_ecc_uncorrectable"}
    ok = (cl.get("nodes_in_scope") == 7 and sum(cl.get("counts", {}).values()) == 7
          and all(ranked.get(n, {}).get("fault_class") == k for n, k in want.items())
          and all(n in cl.get("follow_up", []) for n in want)
          and "gpu-a03" not in ranked and cl.get("metric_series", 0) > 0
          and sc.get("act") is False and sc.get("top", {}).get("act") is False
          and "ssh" not in sc.get("collected", {}).get("sources", []))
    t.check(ok, f"cluster {{}}: {cl.get('nodes_in_scope')} nodes, counts {cl.get('counts')},"
            f" ranked {[(n, r['fault_class'], r['confidence']) for n, r in ranked.items()]}",
            f"answer: {json.dumps(res)}")
    res = c.request("tools/call", {"name": "diagnose",
                                   "arguments": {"cluster": {"nodes": ["gpu-a02", "gpu-a03",
                                                                       "gpu-zz9"]}}})
    cl = {} if res.get("isError") else res.get("structuredContent", {}).get("cluster", {})
    ok = (cl.get("nodes_in_scope") == 2 and [r["node"] for r in cl.get("ranked", [])] == ["gpu-a02"]
          and cl.get("unknown_nodes") == ["gpu-zz9"])
    t.check(ok, f"cluster {{nodes}}: {cl.get('nodes_in_scope')} nodes, ranked "
            f"{[r['node'] for r in cl.get('ranked', [])]}, unknown {cl.get('unknown_nodes')}",
            f"answer: {json.dumps(res)}")


def evidence(top):
    return " | ".join(top.get("evidence", []))


def rising_counter(t):
    """A counter is judged by its growth over metrics.gpu_health.counter_window:
    a PCIe replay burst within the window reads as gpu_pcie_error, and the
    same total after a quiet window is no longer rising."""
    node, window = "gpu-a04", 6
    text = open(CONFIG).read().replace(
        "\nmetrics:\n", f"\nmetrics:\n  gpu_health:\n    counter_window: {window}s\n", 1)
    cfg = os.path.join(STACK, "fleetmcp-window.yaml")
    with open(cfg, "w") as f:
        f.write(text)
    c = session(cfg)
    try:
        time.sleep(window + 2)  # a flat history to compare with
        gpu_state("inject", node, "pcie_replay", "--gpu", "3")
        time.sleep(3)

        def top():
            res = c.request("tools/call", {"name": "diagnose", "arguments": {"node": node}})
            return res.get("structuredContent", {}).get("top", {})
        tp = top()
        ev = evidence(tp)
        t.check(tp.get("fault_class") == "gpu_pcie_error" and "rose by" in ev,
                f"{node}: PCIe replays rising within {window}s -> {tp.get('fault_class')}"
                f" {tp.get('confidence')}", f"evidence: {ev[:600]}")
        time.sleep(window + 2)  # the counter stays at its total, no longer rising
        # (the stack's fake dcgmi health keeps warning from the total; a
        # real one watches the rate: only the metric's part is checked)
        tp = top()
        t.check(not any("rose by" in e for e in tp.get("evidence", [])),
                f"{node}: the same total a window later is no longer rising evidence ->"
                f" {tp.get('fault_class')}", f"evidence: {evidence(tp)[:600]}")
    finally:
        c.close()
        gpu_state("init", node, "--sku", "h100")


def stock_exporter(t):
    """A node whose dcgm-exporter serves only the stock default counters,
    with the `hostname` label: gpu_health and diagnose still find its GPUs,
    say which fields were absent, and a fault the stock set carries (the
    last-Xid gauge, the kernel log) is still diagnosed."""
    node = "gpu-b03"
    gpu_state("init", node, "--sku", "a100", "--exporter", "stock")
    time.sleep(3)
    c = None

    def call(tool, **args):
        res = c.request("tools/call", {"name": tool, "arguments": args})
        return {} if res.get("isError") else res.get("structuredContent", {})
    try:
        c = session(CONFIG)
        h = call("gpu_health", node=node)
        absent = h.get("absent_fields", [])
        t.check(h.get("seen_gpus") == 8 and h.get("verdict") == "healthy"
                and "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL" in absent
                and "DCGM_FI_DEV_CLOCKS_EVENT_REASONS" in absent,
                f"{node}: stock exporter: gpu_health sees {h.get('seen_gpus')} GPUs by"
                f" `hostname`, absent {absent}")
        d = call("diagnose", node=node)
        top = d.get("top", {})
        t.check(top.get("fault_class") == "healthy"
                and "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL" in d.get("metrics_absent", []),
                f"{node}: stock exporter: diagnose {top.get('fault_class')}"
                f" {top.get('confidence')}, metrics_absent {d.get('metrics_absent')}",
                f"evidence: {evidence(top)[:600]}")
        gpu_state("inject", node, "xid79", "--gpu", "2")
        time.sleep(3)
        top = call("diagnose", node=node).get("top", {})
        t.check(top.get("fault_class") == "gpu_fallen_off_bus",
                f"{node}: stock exporter: Xid 79 -> {top.get('fault_class')}"
                f" {top.get('confidence')}")
    finally:
        if c:
            c.close()
        gpu_state("init", node, "--sku", "a100")


def job_logs(t):
    """Node mode reads the output files of the last jobs on the node: the
    paths come from Slurm's job record (squeue --json, the cli backend), %j
    and the default slurm-%j.out expanded, read over SSH with tail.  A job
    that dies of a CUDA OOM and one that hits an NCCL watchdog timeout are
    found from the node name alone."""
    node = "gpu-a03"
    out_dir = tempfile.mkdtemp(prefix="joblogs.", dir=STACK)
    os.chmod(out_dir, 0o755)  # the SSH account reads the files
    env = dict(os.environ, SLURM_CONF=os.path.join(STACK, "slurm", "slurm.conf"))
    oom = ("echo 'step 120 | loss 2.31 | tok/s 8100'; "
           "echo 'torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 4.00 GiB. "
           "GPU 0 has a total capacity of 79.10 GiB of which 1.2 GiB is free.'; exit 1")
    nccl = ("echo '[rank3]:[E1206 06:51:19 ProcessGroupNCCL.cpp:632] [Rank 3] Watchdog caught "
            "collective operation timeout: WorkNCCL(SeqNum=4410, OpType=ALLREDUCE, "
            "Timeout(ms)=600000) ran for 600012 milliseconds before timing out.'; "
            "echo '[rank1]:[E1206 06:51:19 ProcessGroupNCCL.cpp:632] [Rank 1] Watchdog caught "
            "collective operation timeout: WorkNCCL(SeqNum=4412, OpType=ALLREDUCE, "
            "Timeout(ms)=600000) ran for 600003 milliseconds before timing out.'; exit 1")
    cfg = os.path.join(STACK, "fleetmcp-cli.yaml")

    def submit(script, *opts):
        p = subprocess.run(["sbatch", "--parsable", "-w", node, *opts, "--wrap", script],
                           env=env, capture_output=True, text=True, timeout=30, check=True)
        return int(p.stdout.strip().split(";")[0])

    def finished(job):
        for _ in range(60):  # at most 30 s
            p = subprocess.run(["squeue", "-h", "-j", str(job), "-o", "%T"], env=env,
                               capture_output=True, text=True, timeout=30)
            if p.stdout.strip() not in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING"):
                return True
            time.sleep(0.5)
        return False

    c = session(cfg)
    try:
        # 1: an explicit -o pattern with %x and %j
        job = submit(oom, "-J", "train-oom", "-o", os.path.join(out_dir, "%x-%j.out"))
        done = finished(job)
        res = c.request("tools/call", {"name": "diagnose",
                                       "arguments": {"node": node, "job_id": job}})
        sc = res.get("structuredContent", {})
        top = sc.get("top", {})
        ev = evidence(top)
        t.check(done and top.get("fault_class") == "oom_batch_size" and "Tried to allocate" in ev
                and "job_logs" in sc.get("collected", {}).get("sources", []),
                f"{node}: job {job} writes a CUDA OOM to {out_dir}/%x-%j.out ->"
                f" {top.get('fault_class')} {top.get('confidence')}"
                f" collected={json.dumps(sc.get('collected'))}", f"evidence: {ev[:600]}")
        # 2: no -o at all: Slurm's default slurm-%j.out in the working directory
        job2 = submit(nccl, "-J", "train-nccl", "-D", out_dir)
        done = finished(job2)
        res = c.request("tools/call", {"name": "diagnose",
                                       "arguments": {"node": node, "job_id": job2}})
        sc = res.get("structuredContent", {})
        top = sc.get("top", {})
        # the OOM job's log is read too (the last jobs on the node): the
        # timeouts must be found among the ranked classes
        ranked = {k.get("fault_class"): evidence(k) for k in sc.get("classes", [])}
        ev = ranked.get("nccl_rank_divergence", "")
        t.check(done and "Watchdog caught collective operation timeout" in ev,
                f"{node}: job {job2} writes NCCL watchdog timeouts at different SeqNums to its"
                f" default slurm-{job2}.out -> nccl_rank_divergence among"
                f" {sorted(k for k in ranked if k)} (top {top.get('fault_class')})",
                f"classes: {json.dumps(ranked)}")
        # 3: -o names a file another user owns (here nobody's; the job is
        # root's): the ssh user could read it, so it is not read and the
        # answer says why
        theirs = os.path.join(out_dir, "theirs.out")
        with open(theirs, "w") as f:
            f.write("not the job's\n")
        shutil.chown(theirs, "nobody")
        job3 = submit(oom, "-J", "train-theirs", "-o", theirs, "--open-mode=append")
        done = finished(job3)
        res = c.request("tools/call", {"name": "diagnose",
                                       "arguments": {"node": node, "job_id": job3}})
        errors = res.get("structuredContent", {}).get("collected", {}).get("errors", [])
        said = [e for e in errors if f"job {job3} output" in e]
        t.check(done and said and "owned by nobody, not by the job's user root" in said[0],
                f"{node}: job {job3} writes to a file of nobody's -> not read: {said[:1]}",
                f"errors: {json.dumps(errors)}")
    finally:
        c.close()


SECTIONS = (injected, rising_counter, stock_exporter, job_logs)


def run(sections, t):
    """Runs each section's checks into t; the exit status: nonzero when a
    check failed or none ran (a section that returned early, or none left)."""
    for section in sections:
        section(t)
    code = t.summary()
    if t.passed + t.failed == 0:
        print(f"{t.name}: no check ran", flush=True)
        return 1
    return code


def self_test():
    """run() against sections that stand in for the stack's: the closing
    line counts what they checked (one more or one fewer changes it), and a
    run that checked nothing fails."""
    t = Tally("collect --self-test")

    def one_ok(x):
        x.check(True, "stand-in")

    def one_bad(x):
        x.check(False, "stand-in")

    def nothing(x):
        pass
    for sections, line, code in [((one_ok, one_ok, nothing), "2 passed, 0 failed", 0),
                                 ((one_ok,), "1 passed, 0 failed", 0),
                                 ((one_ok, one_bad), "1 passed, 1 failed", 1),
                                 ((nothing,), "0 passed, 0 failed", 1),
                                 ((), "no check ran", 1)]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            got = run(sections, Tally("collect", quiet_ok=True))
        t.check(got == code and line in out.getvalue(),
                f"{len(sections)} stand-in section(s): exit {got}, says \"{line}\"",
                out.getvalue())
    return t.summary()


def main():
    global STACK, CONFIG
    if sys.argv[1:] == ["--self-test"]:
        sys.exit(self_test())
    STACK = os.environ["FM_STACK"]
    CONFIG = os.path.join(STACK, "fleetmcp.yaml")
    sys.exit(run(SECTIONS, Tally("collect", detail_max=1500)))


if __name__ == "__main__":
    main()
