"""Shared part of the fake GPU tools (nvidia-smi, dcgmi, ibstat, journalctl).

They run on the test sshd as the test user and answer from the node's
state.json through gpu_state.py, so a fault injected with gpu_state.py shows
up in their output the way it would on real hardware.

Which node am I?  The address the SSH client connected to (third field of
SSH_CONNECTION) is looked up in $FM_STACK/nodes/*/addr; FM_FAKE_NODE
overrides it for running a tool by hand.

Test knobs, per node, in $FM_STACK/nodes/<node>/fakegpu.json (optional):
  {"<tool>": {"sleep_s": 5, "pad_bytes": 100000, "exit": 3}}
sleep_s delays the tool (capped at 120 s), pad_bytes appends filler lines
to its stdout (capped at 64 MiB), exit overrides its exit status.
"""

import json
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
for _d in (HERE, os.path.dirname(HERE)):
    if os.path.exists(os.path.join(_d, "gpu_state.py")):
        sys.path.insert(0, _d)
        break
import gpu_state  # noqa: E402  (tests/stack/gpu_state.py, or its copy beside us)

MAX_SLEEP = 120
MAX_PAD = 64 << 20


def die(msg, code):
    print(msg, file=sys.stderr)
    sys.exit(code)


def stack():
    s = os.environ.get("FM_STACK")
    if not s:
        die("fakegpu: FM_STACK is not set (sshd.sh sets it with SetEnv)", 9)
    return s


def node():
    n = os.environ.get("FM_FAKE_NODE")
    if n:
        return n
    conn = os.environ.get("SSH_CONNECTION", "").split()
    if len(conn) < 3:
        die("fakegpu: no SSH_CONNECTION and no FM_FAKE_NODE: cannot tell which node this is", 9)
    local = conn[2]
    nodes = os.path.join(stack(), "nodes")
    for name in sorted(os.listdir(nodes)):
        try:
            with open(os.path.join(nodes, name, "addr")) as f:
                if f.read().strip() == local:
                    return name
        except OSError:
            continue
    die(f"fakegpu: no node in {nodes} has address {local}", 9)


def load():
    """(stack, node, state) for this invocation."""
    s, n = stack(), node()
    try:
        return s, n, gpu_state.load(s, n)
    except gpu_state.StateError as e:
        die(f"fakegpu: {e}", 9)


def knobs(s, n, tool):
    try:
        with open(os.path.join(s, "nodes", n, "fakegpu.json")) as f:
            k = json.load(f).get(tool, {})
            return k if isinstance(k, dict) else {}
    except (OSError, ValueError):
        return {}


def run(tool, main):
    """Runs main(stack, node, state, argv) -> exit code, applying the knobs."""
    # A reader that stops early (a capped SSH channel) ends us quietly.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    s, n, st = load()
    k = knobs(s, n, tool)
    delay = min(float(k.get("sleep_s", 0) or 0), MAX_SLEEP)
    if delay > 0:
        time.sleep(delay)
    rc = main(s, n, st, sys.argv[1:])
    pad = min(int(k.get("pad_bytes", 0) or 0), MAX_PAD)
    line = "#" * 99 + "\n"
    while pad > 0:
        chunk = line * min(1000, pad // 100 + 1)
        sys.stdout.write(chunk[:pad])
        pad -= len(chunk[:pad])
    sys.stdout.flush()
    if "exit" in k:
        rc = int(k["exit"])
    return rc
