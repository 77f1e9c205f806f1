#!/usr/bin/env python3
"""A minimal MCP server over stdio whose audit_query answers rows a
well-behaved fleetmcp never writes: a result row with no phase and one
whose phase is not a string, both pointing at the recorded intent.  For
tests/cli/run.sh: `mcp-cli audit export` must export the call (its result
counts as missing), not crash on what a server answered."""
from stdio_fake import serve

ROWS = [  # newest first, as audit_query answers
    {"id": 4, "call_ref": 2, "phase": 7, "tool": "node_drain"},
    {"id": 3, "call_ref": 2, "tool": "node_drain"},
    {"id": 2, "phase": "intent", "tool": "node_drain", "args": {"node": "gpu-a01"}},
]


def answer(method, params):
    if method == "tools/list":
        return {"tools": [{"name": "audit_query", "inputSchema": {"type": "object"}}]}
    if method == "tools/call":
        return {"content": [{"type": "text", "text": "rows"}], "structuredContent": {"rows": ROWS}}
    return None


serve("odd-audit-server", {"tools": {}}, answer)
