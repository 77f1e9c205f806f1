"""The JSON-RPC loop of the small MCP servers over stdio that tests/cli
starts with `mcp-cli --server`: it answers initialize, hands every other
request to answer(method, params), and says "Method not found" when that
returns None.  Notifications are ignored."""
import json
import sys


def serve(name, capabilities, answer):
    for line in sys.stdin:
        msg = json.loads(line)
        if "id" not in msg:
            continue
        method, params = msg.get("method"), msg.get("params") or {}
        if method == "initialize":
            result = {"protocolVersion": params.get("protocolVersion"),
                      "capabilities": capabilities,
                      "serverInfo": {"name": name, "version": "1"}}
        else:
            result = answer(method, params)
        if result is None:
            reply = {"error": {"code": -32601, "message": "Method not found"}}
        else:
            reply = {"result": result}
        print(json.dumps({"jsonrpc": "2.0", "id": msg["id"], **reply}), flush=True)
