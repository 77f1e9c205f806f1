#!/bin/bash
# repair_plan with every guardrail over a real slurmctld with 2,000 nodes
# (tests/stack/bench-2000.sh), through the server, median of 15 calls in one
# session, for both Slurm backends.  Target: under 100 ms.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(mktemp -d /tmp/fm-bench-plan.XXXXXX)
trap 'bash tests/stack/bench-2000.sh down "$dir" > /dev/null 2>&1; rm -rf "$dir"' EXIT
bash tests/stack/bench-2000.sh up "$dir" > /dev/null
set -a; . "$dir/stack.env"; set +a
node=$(sinfo -h -p gpu -o '%N' | sed 's/\[\([0-9]*\)[-,].*/\1/' | cut -d, -f1)
python3 - "$node" <<'PY'
import os, statistics, sys, time
sys.path.insert(0, "tests/replay")
from session import Session
node = sys.argv[1]
for name, cfg in (("cli", os.environ["FM_CONFIG_CLI"]), ("rest", os.environ["FM_CONFIG"])):
    s = Session("build/fleetmcp", cfg, os.path.join(os.environ["FM_BENCH_STACK"], f"plan-{name}.db"),
                env={"FLEETMCP_MODE": "shadow"})
    times, res, err = [], None, None
    for i in range(16):
        t0 = time.perf_counter()
        res, err = s.call("repair_plan", node=node, fault_class="gpu_fallen_off_bus")
        if i: times.append((time.perf_counter() - t0) * 1000)  # first call warms caches
    s.close()
    verdicts = len(res["guardrails"].get("verdicts", [])) if res else 0
    med = statistics.median(times)
    print(f"repair_plan, all guardrails, 2,000 nodes, {name:4} backend: median {med:6.1f} ms"
          f" (min {min(times):.1f}), {verdicts} verdicts  target < 100 ms "
          f"{'ok' if med < 100 else 'MISSED'}" + ("" if res else f"  error: {err}"))
PY
