#!/usr/bin/env bash
# Catalog scale: one stdio upstream (bench/many_tools.py) with N tools; RSS after start,
# unpaged tools/list latency, time until a list change is visible, RSS after. Usage: bench/catalog_scale.sh N
N=${1:?usage: bench/catalog_scale.sh N}; BIN=${BIN:-${CARGO_TARGET_DIR:-$(dirname "$0")/../target}/release/waygate}
d=$(mktemp -d); port=$((20000 + RANDOM % 12000))
cat > $d/g.toml <<T
version = 3
[mcp]
page_size = 100000
[pinning]
enabled = false
[[upstreams]]
name = "many"
command = "python3"
args = ["$(cd "$(dirname "$0")" && pwd)/many_tools.py", "$N"]
T
taskset -c 0 $BIN serve --no-auth --no-audit --listen 127.0.0.1:$port --data-dir $d --config $d/g.toml --log error >$d/out 2>$d/err & pid=$!
for _ in $(seq 1 400); do c=$(curl -s -X POST http://127.0.0.1:$port/mcp -H 'content-type: application/json' -H 'accept: application/json' -d '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' | grep -o '"name":"tool_' | wc -l); [ "$c" -ge "$N" ] && break; sleep 0.1; done
sleep 1
echo "N=$N tools=$c RSS=$(grep VmRSS /proc/$pid/status)"
python3 - $port <<'P'
import http.client, json, sys, time
port=int(sys.argv[1]); c=http.client.HTTPConnection("127.0.0.1",port)
body=json.dumps({"jsonrpc":"2.0","id":1,"method":"tools/list"})
ts=[]
for i in range(20):
    t=time.perf_counter(); c.request("POST","/mcp",body,{"content-type":"application/json","accept":"application/json"}); r=c.getresponse(); data=r.read(); ts.append(time.perf_counter()-t)
ts.sort(); print(f"unpaged tools/list: p50 {ts[10]*1000:.1f} ms  max {ts[-1]*1000:.1f} ms  bytes {len(data)}")
# catalog update: call touch, wait until tool_00000's description changes
t=time.perf_counter()
c.request("POST","/mcp",json.dumps({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"many__touch" if False else "touch","arguments":{}}}),{"content-type":"application/json","accept":"application/json"}); r=c.getresponse(); print("touch:", r.read()[:80])
while True:
    c.request("POST","/mcp",body,{"content-type":"application/json","accept":"application/json"}); d=json.loads(c.getresponse().read())
    if any(x["name"]=="tool_00000" and "generation 1" in x["description"] for x in d["result"]["tools"]): break
    if time.perf_counter()-t>30: print("update never seen"); break
print(f"update visible after {(time.perf_counter()-t)*1000:.0f} ms")
P
echo "RSS after: $(grep VmRSS /proc/$pid/status)"
kill $pid; wait $pid 2>/dev/null; rm -rf $d
