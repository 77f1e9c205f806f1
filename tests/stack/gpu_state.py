#!/usr/bin/env python3
"""Fake GPU state of the fleetmcp test stack: library + CLI.

$STACK/nodes/<node>/state.json is the single source of truth for a node's fake
GPUs (format: /work/notes/stack-contract.md, tests/stack/README.md). Every
change is written atomically (temp file + rename, under a per-node flock) and
re-renders $STACK/textfile/<node>.prom, the node's DCGM metrics in
dcgm-exporter's names and labels, which node_exporter serves to Prometheus.

CLI (stack dir from --stack or $FM_STACK):
  gpu_state.py init NODE [--sku h100|a100] [--exporter legacy|stock]
                                               healthy state (keeps nothing)
  gpu_state.py inject NODE FAULT [--gpu N] [--persistent]
  gpu_state.py reset-gpu NODE --gpu N          what nvidia-smi --gpu-reset clears
  gpu_state.py reboot NODE                     what a reboot clears
  gpu_state.py render NODE                     rewrite the node's .prom file
  gpu_state.py show NODE                       print state.json
  gpu_state.py faults                          list FAULT names
Exit codes: 0 ok, 1 refused (e.g. reset of a busy GPU), 2 usage/not found.
Standard library only (slurmd runs it through the RebootProgram).
"""

import argparse
import contextlib
import fcntl
import json
import os
import sys
import tempfile
import time
import uuid

SKUS = {
    "h100": {"model": "NVIDIA H100 80GB HBM3", "power_limit": 700, "max_sm_clock": 1980,
             "mem_total_mib": 81559, "temp": 41, "power": 95.5,
             "bus": ["18", "2a", "3a", "5d", "9a", "ab", "ba", "db"]},
    "a100": {"model": "NVIDIA A100-SXM4-80GB", "power_limit": 400, "max_sm_clock": 1410,
             "mem_total_mib": 81920, "temp": 36, "power": 61.0,
             "bus": ["07", "0f", "47", "4e", "87", "90", "b7", "bd"]},
}
NGPUS = 8

# DCGM clock-throttle-reason bits (dcgm_fields.h DCGM_CLOCKS_THROTTLE_REASON_*).
THR_SW_POWER_CAP = 0x4
THR_HW_SLOWDOWN = 0x8
THR_SW_THERMAL = 0x20
THR_HW_THERMAL = 0x40

# Kernel log texts as the NVIDIA driver prints them (NVRM: Xid (PCI:dddd:bb:dd): N, ...).
XID_TEXT = {
    13: "pid=4242, name=python3, Graphics SM Warp Exception on (GPC 1, TPC 2, SM 0): "
        "Out Of Range Address",
    31: "pid=4242, name=python3, Ch 00000008, intr 00000000. MMU Fault: ENGINE GRAPHICS "
        "GPCCLIENT_T1_3 faulted @ 0x7f3a_12340000. Fault is of type FAULT_PDE "
        "ACCESS_TYPE_VIRT_READ",
    48: "pid='<unknown>', name=<unknown>, An uncorrectable double bit error (DBE) has been "
        "detected on GPU in the framebuffer at partition 0, subpartition 0.",
    63: "pid='<unknown>', name=<unknown>, Row Remapper: New row (0x00000000000a2b40) "
        "marked for remapping, reset gpu to activate.",
    64: "pid='<unknown>', name=<unknown>, Row Remapper Error: row remapping failed, "
        "no spare rows available in bank (0x00000000000a2b40).",
    74: "pid='<unknown>', name=<unknown>, NVLink: fatal error detected on link 3"
        "(0x0, 0x0, 0x10000, 0x0, 0x0, 0x0, 0x0)",
    79: "pid='<unknown>', name=<unknown>, GPU has fallen off the bus.",
    92: "pid='<unknown>', name=<unknown>, High single-bit ECC error rate",
    94: "pid=4242, name=python3, Contained: SM (0x1). RST: No, D-RST: No",
    95: "pid='<unknown>', name=<unknown>, Uncontained: FBHUB. RST: Yes, D-RST: No",
}

FAULTS = {
    "xid79": "GPU fell off the bus (Xid 79): no metrics, reset impossible, reboot clears",
    "dbe": "uncorrectable ECC (Xid 48) + row remap pending (Xid 63)",
    "row_remap_pending": "row remap pending (Xid 63): reset or reboot activates it",
    "row_remap_failure": "row remap failure (Xid 64): persistent, needs RMA",
    "nvlink": "NVLink fatal error (Xid 74) + CRC flit errors",
    "hot": "thermal slowdown: 92 C, clocks throttled",
    "power_cap": "power capping: clocks throttled by SW power cap",
    "ib_down": "InfiniBand port 1 Down/Polling",
    "sbe_storm": "single-bit ECC storm (Xid 92)",
    "pcie_replay": "PCIe replay counter climbing",
    "xid13": "graphics engine exception (Xid 13, application)",
    "xid31": "MMU fault (Xid 31, application)",
    "xid94": "contained ECC error (Xid 94)",
    "xid95": "uncontained ECC error (Xid 95): reset needed",
    "busy": "a process (python3, 40 GiB) uses the GPU",
    "idle": "no process uses the GPU",
    "hw_dead": "node hardware dead: reboot clears nothing",
}


class StateError(Exception):
    """A refused operation (exit 1) or a missing node (exit 2)."""

    def __init__(self, msg, code=1):
        super().__init__(msg)
        self.code = code


# ----------------------------------------------------------------- paths, I/O

def stack_dir(arg=None):
    d = arg or os.environ.get("FM_STACK")
    if not d:
        raise StateError("no stack dir: pass --stack DIR or set FM_STACK", 2)
    return d


def node_dir(stack, node):
    if not node or "/" in node or node.startswith("."):
        raise StateError(f"bad node name {node!r}", 2)
    return os.path.join(stack, "nodes", node)


def state_path(stack, node):
    return os.path.join(node_dir(stack, node), "state.json")


def _atomic_write(path, text, mode=0o644):
    d = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp.", suffix=".part")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _locked(stack, node):
    d = node_dir(stack, node)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, ".lock"), "a") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lk, fcntl.LOCK_UN)


def load(stack, node):
    """Return the node's state dict (raises StateError if it has none)."""
    p = state_path(stack, node)
    try:
        with open(p) as f:
            return json.load(f)
    except FileNotFoundError:
        raise StateError(f"no state for node {node} in {stack} (run init)", 2) from None


def save(stack, node, st):
    """Write state.json atomically and re-render the node's .prom file."""
    _atomic_write(state_path(stack, node), json.dumps(st, indent=1) + "\n")
    render(stack, node, st)


@contextlib.contextmanager
def modify(stack, node):
    """Read-modify-write a node's state under its lock: `with modify(s, n) as st:`."""
    with _locked(stack, node):
        st = load(stack, node)
        yield st
        save(stack, node, st)


# ----------------------------------------------------------------- state model

def _klog(st, text):
    up = max(0.0, time.time() - st.get("boot_time", time.time()))
    st["kernel_log"].append(f"[{up:12.6f}] {text}")
    del st["kernel_log"][:-200]          # bounded, like a ring buffer


def _pci_short(g):
    # "00000000:18:00.0" -> "0000:18:00" as in "NVRM: Xid (PCI:0000:18:00)"
    dom, bus, dev = g["pci_bus_id"].split(":")
    return f"{dom[-4:]}:{bus}:{dev.split('.')[0]}"


def _xid(st, g, code):
    g["xid"] = code
    _klog(st, f"NVRM: Xid (PCI:{_pci_short(g)}): {code}, {XID_TEXT[code]}")


def _healthy_gpu(node, sku, idx):
    s = SKUS[sku]
    return {
        "index": idx,
        "uuid": "GPU-" + str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{node}.gpu{idx}.fleetmcp.test")),
        "pci_bus_id": f"00000000:{s['bus'][idx]}:00.0",
        "model": s["model"], "temp": s["temp"] + idx % 3, "power": s["power"],
        "power_limit": s["power_limit"], "sm_clock": s["max_sm_clock"],
        "max_sm_clock": s["max_sm_clock"], "mem_used_mib": 0,
        "mem_total_mib": s["mem_total_mib"], "util": 0,
        "xid": 0, "ecc_sbe_vol": 0, "ecc_dbe_vol": 0, "ecc_sbe_agg": 0, "ecc_dbe_agg": 0,
        "row_remap_pending": 0, "row_remap_failure": 0, "remapped_rows_corr": 0,
        "remapped_rows_unc": 0, "pcie_replay": 0, "nvlink_crc": 0, "clock_events": 0,
        "fallen_off_bus": False, "persistent_fault": False, "processes": [],
    }


def _boot_log(st):
    st["kernel_log"] = []
    _klog(st, "Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org)")
    _klog(st, "nvidia: loading out-of-tree module taints kernel.")
    _klog(st, "NVRM: loading NVIDIA UNIX x86_64 Kernel Module  535.154.05")
    _klog(st, "mlx5_core 0000:0c:00.0: firmware version: 28.39.1002")


def new_state(node, sku="h100", exporter="legacy"):
    if exporter not in EXPORTERS:
        raise StateError(f"unknown exporter {exporter!r} (known: {', '.join(EXPORTERS)})", 2)
    if sku not in SKUS:
        raise StateError(f"unknown sku {sku!r} (known: {', '.join(SKUS)})", 2)
    now = time.time()
    st = {
        "node": node, "sku": sku, "boot_id": str(uuid.uuid4()), "boot_time": round(now, 3),
        "reboots": 0, "hw_dead": False, "exporter": exporter,
        "gpus": [_healthy_gpu(node, sku, i) for i in range(NGPUS)],
        "ib": [{"ca": "mlx5_0", "port": 1, "state": "Active", "phys_state": "LinkUp",
                "rate": 400}],
        "kernel_log": [],
    }
    _boot_log(st)
    return st


def _gpu(st, idx):
    if idx is None:
        idx = 0
    if not 0 <= idx < len(st["gpus"]):
        raise StateError(f"no GPU {idx} on {st['node']} (0..{len(st['gpus']) - 1})", 2)
    return st["gpus"][idx]


def inject(st, fault, gpu=None, persistent=False):
    """Apply FAULT to the state in place (GPU faults default to GPU 0)."""
    if fault not in FAULTS:
        raise StateError(f"unknown fault {fault!r}; known: {' '.join(sorted(FAULTS))}", 2)
    if fault == "hw_dead":
        st["hw_dead"] = True
        return
    if fault == "ib_down":
        ib = st["ib"][0]
        ib.update(state="Down", phys_state="Polling")
        _klog(st, f"mlx5_core 0000:0c:00.0 ibp12s0: Link down (port {ib['port']})")
        return
    g = _gpu(st, gpu)
    if persistent:
        g["persistent_fault"] = True
    if fault == "xid79":
        g.update(fallen_off_bus=True, util=0)
        _xid(st, g, 79)
    elif fault == "dbe":
        g["ecc_dbe_vol"] += 1
        g["ecc_dbe_agg"] += 1
        g["remapped_rows_unc"] += 1
        g["row_remap_pending"] = 1
        _xid(st, g, 48)
        _klog(st, f"NVRM: Xid (PCI:{_pci_short(g)}): 63, {XID_TEXT[63]}")
    elif fault == "row_remap_pending":
        g["remapped_rows_corr"] += 1
        g["row_remap_pending"] = 1
        _xid(st, g, 63)
    elif fault == "row_remap_failure":
        g["row_remap_failure"] = 1
        g["persistent_fault"] = True      # spare rows exhausted: hardware, RMA
        _xid(st, g, 64)
    elif fault == "nvlink":
        g["nvlink_crc"] += 1500
        _xid(st, g, 74)
    elif fault == "hot":
        g["temp"] = 92
        g["clock_events"] |= THR_SW_THERMAL | THR_HW_THERMAL
        g["sm_clock"] = int(g["max_sm_clock"] * 0.55)
    elif fault == "power_cap":
        g["power"] = float(g["power_limit"])
        g["clock_events"] |= THR_SW_POWER_CAP
        g["sm_clock"] = int(g["max_sm_clock"] * 0.8)
    elif fault == "sbe_storm":
        g["ecc_sbe_vol"] += 5000
        g["ecc_sbe_agg"] += 5000
        _xid(st, g, 92)
    elif fault == "pcie_replay":
        g["pcie_replay"] += 500
    elif fault in ("xid13", "xid31", "xid94", "xid95"):
        _xid(st, g, int(fault[3:]))
    elif fault == "busy":
        g["processes"] = [{"pid": 4242, "name": "python3", "used_mib": 40960}]
        g.update(mem_used_mib=40960, util=97, power=round(g["power_limit"] * 0.8, 1))
    elif fault == "idle":
        g["processes"] = []
        g.update(mem_used_mib=0, util=0, power=SKUS[st.get("sku", "h100")]["power"])


def reset_gpu(st, idx):
    """What `nvidia-smi --gpu-reset -i N` clears; raises StateError if it would fail."""
    g = _gpu(st, idx)
    if st.get("hw_dead"):
        raise StateError(f"{st['node']}: GPU {g['index']}: Unable to reset: unknown error")
    if g["fallen_off_bus"]:
        raise StateError(f"{st['node']}: GPU {g['pci_bus_id']}: Unable to reset this GPU "
                         "because it is not accessible (it has fallen off the bus)")
    if g["processes"]:
        pids = ",".join(str(p["pid"]) for p in g["processes"])
        raise StateError(f"{st['node']}: GPU {g['pci_bus_id']}: Unable to reset this GPU "
                         f"because it is being used by processes {pids}")
    g.update(ecc_sbe_vol=0, ecc_dbe_vol=0, row_remap_pending=0, mem_used_mib=0, util=0)
    if not g["persistent_fault"]:
        if g["xid"] != 79:
            g["xid"] = 0
        g["clock_events"] = 0
        g["sm_clock"] = g["max_sm_clock"]
        g["temp"] = SKUS[st.get("sku", "h100")]["temp"] + g["index"] % 3
    _klog(st, f"NVRM: GPU at PCI:{_pci_short(g)}: {g['uuid']}: GPU reset")


def reboot(st):
    """What a reboot clears: everything volatile, unless persistent_fault/hw_dead."""
    st["reboots"] += 1
    st["boot_id"] = str(uuid.uuid4())
    st["boot_time"] = round(time.time(), 3)
    _boot_log(st)
    sku = st.get("sku", "h100")
    for g in st["gpus"]:
        g.update(processes=[], mem_used_mib=0, util=0)
        if st.get("hw_dead") or g["persistent_fault"]:
            if g["xid"]:
                _xid(st, g, g["xid"])     # the fault shows again on the new boot
            continue
        g.update(fallen_off_bus=False, xid=0, ecc_sbe_vol=0, ecc_dbe_vol=0,
                 row_remap_pending=0, pcie_replay=0, nvlink_crc=0, clock_events=0,
                 sm_clock=g["max_sm_clock"], temp=SKUS[sku]["temp"] + g["index"] % 3,
                 power=SKUS[sku]["power"])
    if not st.get("hw_dead"):
        for ib in st["ib"]:
            ib.update(state="Active", phys_state="LinkUp")


# ----------------------------------------------------------------- metrics

METRICS = [  # name, type, help, value(gpu)
    ("DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz).", lambda g: g["sm_clock"]),
    ("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C).", lambda g: g["temp"]),
    ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W).", lambda g: g["power"]),
    ("DCGM_FI_DEV_POWER_MGMT_LIMIT", "gauge", "Power management limit (in W).",
     lambda g: g["power_limit"]),
    ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %).", lambda g: g["util"]),
    ("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB).",
     lambda g: g["mem_used_mib"]),
    ("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB).",
     lambda g: g["mem_total_mib"] - g["mem_used_mib"]),
    ("DCGM_FI_DEV_XID_ERRORS", "gauge", "Value of the last XID error encountered.",
     lambda g: g["xid"]),
    ("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "counter", "Total number of single-bit volatile ECC errors.",
     lambda g: g["ecc_sbe_vol"]),
    ("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "counter", "Total number of double-bit volatile ECC errors.",
     lambda g: g["ecc_dbe_vol"]),
    ("DCGM_FI_DEV_ECC_SBE_AGG_TOTAL", "counter",
     "Total number of single-bit persistent ECC errors.", lambda g: g["ecc_sbe_agg"]),
    ("DCGM_FI_DEV_ECC_DBE_AGG_TOTAL", "counter",
     "Total number of double-bit persistent ECC errors.", lambda g: g["ecc_dbe_agg"]),
    ("DCGM_FI_DEV_ROW_REMAP_FAILURE", "gauge", "Whether remapping of rows has failed",
     lambda g: g["row_remap_failure"]),
    ("DCGM_FI_DEV_ROW_REMAP_PENDING", "gauge", "Whether remapping of rows is pending",
     lambda g: g["row_remap_pending"]),
    ("DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", "counter",
     "Number of remapped rows for correctable errors", lambda g: g["remapped_rows_corr"]),
    ("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", "counter",
     "Number of remapped rows for uncorrectable errors", lambda g: g["remapped_rows_unc"]),
    ("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "counter", "Total number of PCIe retries.",
     lambda g: g["pcie_replay"]),
    ("DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL", "counter",
     "Total number of NVLink flow-control CRC errors.", lambda g: g["nvlink_crc"]),
    ("DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", "gauge", "Current clock throttle reasons (bitmask).",
     lambda g: g["clock_events"]),
]


# What the node's dcgm-exporter serves.  legacy: every field above with the
# Hostname label (the stack's historic set).  stock: dcgm-exporter's default
# counters as shipped (default-counters.csv): ECC SBE/DBE and NVLink CRC are
# commented out there, row-remap-pending and the clock-event reasons are not
# listed, and the host label is `hostname` (renamed in May 2026).
STOCK_FIELDS = {"DCGM_FI_DEV_SM_CLOCK", "DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_POWER_USAGE",
                "DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE",
                "DCGM_FI_DEV_XID_ERRORS", "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
                "DCGM_FI_DEV_ROW_REMAP_FAILURE", "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
                "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS"}
EXPORTERS = ("legacy", "stock")


def _esc(v):
    return str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_text(st):
    """The node's metrics in Prometheus text format (GPUs off the bus have none)."""
    if st.get("hw_dead"):
        gpus = []
    else:
        gpus = [g for g in st["gpus"] if not g["fallen_off_bus"]]
    stock = st.get("exporter") == "stock"
    host = "hostname" if stock else "Hostname"
    out = []
    for name, typ, hlp, fn in METRICS:
        if stock and name not in STOCK_FIELDS:
            continue
        out.append(f"# HELP {name} {hlp}")
        out.append(f"# TYPE {name} {typ}")
        for g in gpus:
            labels = (f'gpu="{g["index"]}",UUID="{_esc(g["uuid"])}",'
                      f'pci_bus_id="{_esc(g["pci_bus_id"])}",device="nvidia{g["index"]}",'
                      f'modelName="{_esc(g["model"])}",{host}="{_esc(st["node"])}"')
            out.append(f"{name}{{{labels}}} {fn(g)}")
    return "\n".join(out) + "\n"


def render(stack, node, st=None):
    """Write $STACK/textfile/<node>.prom atomically (node_exporter reads *.prom only)."""
    if st is None:
        st = load(stack, node)
    d = os.path.join(stack, "textfile")
    os.makedirs(d, exist_ok=True)
    _atomic_write(os.path.join(d, f"{node}.prom"), render_text(st))


def init(stack, node, sku="h100", exporter="legacy"):
    with _locked(stack, node):
        st = new_state(node, sku, exporter)
        save(stack, node, st)
    return st


# ----------------------------------------------------------------- CLI

def main(argv=None):
    ap = argparse.ArgumentParser(prog="gpu_state.py", description=__doc__.split("\n")[0])
    ap.add_argument("--stack", help="stack dir (default $FM_STACK)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("init")
    p.add_argument("node")
    p.add_argument("--sku", default="h100", choices=sorted(SKUS))
    p.add_argument("--exporter", default="legacy", choices=EXPORTERS,
                   help="which dcgm-exporter field set the node serves")
    p = sub.add_parser("inject")
    p.add_argument("node")
    p.add_argument("fault")
    p.add_argument("--gpu", type=int)
    p.add_argument("--persistent", action="store_true",
                   help="mark the GPU persistent_fault (a reboot does not clear it)")
    p = sub.add_parser("reset-gpu")
    p.add_argument("node")
    p.add_argument("--gpu", type=int, required=True)
    for c in ("reboot", "render", "show"):
        sub.add_parser(c).add_argument("node")
    sub.add_parser("faults")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "faults":
            for k in sorted(FAULTS):
                print(f"{k:18} {FAULTS[k]}")
            return 0
        stack = stack_dir(a.stack)
        if a.cmd == "init":
            init(stack, a.node, a.sku, a.exporter)
        elif a.cmd == "inject":
            with modify(stack, a.node) as st:
                inject(st, a.fault, a.gpu, a.persistent)
        elif a.cmd == "reset-gpu":
            with modify(stack, a.node) as st:
                reset_gpu(st, a.gpu)
        elif a.cmd == "reboot":
            with modify(stack, a.node) as st:
                reboot(st)
        elif a.cmd == "render":
            with _locked(stack, a.node):
                render(stack, a.node)
        elif a.cmd == "show":
            json.dump(load(stack, a.node), sys.stdout, indent=1)
            print()
        return 0
    except StateError as e:
        print(f"gpu_state.py: {e}", file=sys.stderr)
        return e.code
    except BrokenPipeError:            # `show | head`: not an error
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")
        return 0


if __name__ == "__main__":
    sys.exit(main())
