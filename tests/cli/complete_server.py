#!/usr/bin/env python3
"""A minimal MCP server over stdio that offers completions, for
tests/cli/tty.sh: its one tool's `node` argument completes only through
completion/complete (with the prefix typed so far), so the shell's Tab can
only find these names by asking.  Every completion request is appended to
the file named by the first argument, for the test to read."""
import json
import sys

from stdio_fake import serve

NODES = ["rack7-node01", "rack7-node02", "rack9-node01"]
log = open(sys.argv[1], "a")
TOOL = {"name": "probe", "title": "Probe a node",
        "inputSchema": {"type": "object", "properties": {"node": {"type": "string"}}},
        "_meta": {"autonomy": "read"}}


def answer(method, params):
    if method == "tools/list":
        return {"tools": [TOOL]}
    if method == "completion/complete":
        log.write(json.dumps(params) + "\n")
        log.flush()
        prefix = params["argument"]["value"]
        values = [n for n in NODES if n.startswith(prefix)]
        return {"completion": {"values": values, "total": len(values), "hasMore": False}}
    if method == "tools/call":
        node = (params.get("arguments") or {}).get("node")
        return {"content": [{"type": "text", "text": f"probed {node}"}]}
    return None


serve("complete-server", {"tools": {}, "completions": {}}, answer)
