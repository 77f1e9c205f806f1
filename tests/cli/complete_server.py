#!/usr/bin/env python3
"""A minimal MCP server over stdio that offers completions, for
tests/cli/tty.sh: its one tool's `node` argument completes only through
completion/complete (with the prefix typed so far), so the shell's Tab can
only find these names by asking.  Every completion request is appended to
the file named by the first argument, for the test to read."""
import json
import sys

NODES = ["rack7-node01", "rack7-node02", "rack9-node01"]
log = open(sys.argv[1], "a")
TOOL = {"name": "probe", "title": "Probe a node",
        "inputSchema": {"type": "object", "properties": {"node": {"type": "string"}}},
        "_meta": {"autonomy": "read"}}

for line in sys.stdin:
    msg = json.loads(line)
    if "id" not in msg:
        continue
    method, params = msg.get("method"), msg.get("params") or {}
    if method == "initialize":
        result = {"protocolVersion": params.get("protocolVersion"),
                  "capabilities": {"tools": {}, "completions": {}},
                  "serverInfo": {"name": "complete-server", "version": "1"}}
    elif method == "tools/list":
        result = {"tools": [TOOL]}
    elif method == "completion/complete":
        log.write(json.dumps(params) + "\n")
        log.flush()
        prefix = params["argument"]["value"]
        values = [n for n in NODES if n.startswith(prefix)]
        result = {"completion": {"values": values, "total": len(values), "hasMore": False}}
    elif method == "tools/call":
        node = (params.get("arguments") or {}).get("node")
        result = {"content": [{"type": "text", "text": f"probed {node}"}]}
    else:
        print(json.dumps({"jsonrpc": "2.0", "id": msg["id"],
                          "error": {"code": -32601, "message": "Method not found"}}), flush=True)
        continue
    print(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result}), flush=True)
