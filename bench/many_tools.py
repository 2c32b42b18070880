#!/usr/bin/env python3
"""A stdio MCP server with N small tools (N from argv[1]), for catalog-scale benchmarks.
`touch` changes tool_00000's description and sends list_changed; `flood` sends 2000
list_changed with nothing changed; any other tool answers its own name."""
import json
import sys

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
gen = 0


def tools():
    return [
        {
            "name": f"tool_{i:05d}",
            "description": f"Tool number {i} (generation {gen if i == 0 else 0}).",
            "inputSchema": {"type": "object", "properties": {"x": {"type": "string"}}},
        }
        for i in range(N)
    ] + [
        {"name": "touch", "description": "Change tool_00000 and announce it.", "inputSchema": {"type": "object"}},
        {"name": "flood", "description": "Send 2000 list_changed without changing anything.", "inputSchema": {"type": "object"}},
    ]


def send(msg):
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    mid, method = m.get("id"), m.get("method")
    if mid is None:
        continue
    if method == "initialize":
        res = {"protocolVersion": m["params"]["protocolVersion"], "capabilities": {"tools": {"listChanged": True}},
               "serverInfo": {"name": "many-tools", "version": "1"}}
    elif method == "tools/list":
        res = {"tools": tools()}
    elif method == "tools/call" and m["params"]["name"] == "flood":
        send({"jsonrpc": "2.0", "id": mid, "result": {"content": [{"type": "text", "text": "flooding"}]}})
        for _ in range(2000):
            send({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
        continue
    elif method == "tools/call" and m["params"]["name"] != "touch":
        res = {"content": [{"type": "text", "text": m["params"]["name"]}]}
    elif method == "tools/call":
        gen += 1
        res = {"content": [{"type": "text", "text": f"generation {gen}"}]}
        send({"jsonrpc": "2.0", "id": mid, "result": res})
        send({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
        continue
    elif method == "ping":
        res = {}
    else:
        send({"jsonrpc": "2.0", "id": mid, "error": {"code": -32601, "message": method}})
        continue
    send({"jsonrpc": "2.0", "id": mid, "result": res})
