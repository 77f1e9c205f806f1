"""The local stack's backends for a harness's own config (tests/stack/up.sh
writes them to $FM_STACK/fleetmcp-cli.yaml)."""
import os


def backends_yaml(stack):
    """fleetmcp-cli.yaml of the stack directory without its mode and store
    sections: its slurm, metrics and ssh for a config that sets its own
    mode and store."""
    with open(os.path.join(stack, "fleetmcp-cli.yaml")) as f:
        text = f.read()
    keep, skip = [], False
    for line in text.splitlines():
        if line.startswith("mode:") or line.startswith("store:"):
            skip = line.startswith("store:")
            continue
        if skip and line.startswith(" "):
            continue
        skip = False
        keep.append(line)
    return "\n".join(keep) + "\n"
