#!/usr/bin/env python3
"""A minimal MCP server over stdio whose audit_query answers rows a
well-behaved fleetmcp never writes: a result row with no phase and one
whose phase is not a string, both pointing at the recorded intent.  For
tests/cli/run.sh: `mcp-cli audit export` must export the call (its result
counts as missing), not crash on what a server answered."""
import json
import sys

ROWS = [  # newest first, as audit_query answers
    {"id": 4, "call_ref": 2, "phase": 7, "tool": "node_drain"},
    {"id": 3, "call_ref": 2, "tool": "node_drain"},
    {"id": 2, "phase": "intent", "tool": "node_drain", "args": {"node": "gpu-a01"}},
]

for line in sys.stdin:
    msg = json.loads(line)
    if "id" not in msg:
        continue
    method, params = msg.get("method"), msg.get("params") or {}
    if method == "initialize":
        result = {"protocolVersion": params.get("protocolVersion"),
                  "capabilities": {"tools": {}},
                  "serverInfo": {"name": "odd-audit-server", "version": "1"}}
    elif method == "tools/list":
        result = {"tools": [{"name": "audit_query", "inputSchema": {"type": "object"}}]}
    elif method == "tools/call":
        result = {"content": [{"type": "text", "text": "rows"}],
                  "structuredContent": {"rows": ROWS}}
    else:
        print(json.dumps({"jsonrpc": "2.0", "id": msg["id"],
                          "error": {"code": -32601, "message": "Method not found"}}), flush=True)
        continue
    print(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result}), flush=True)
