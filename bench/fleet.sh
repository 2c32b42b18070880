#!/usr/bin/env bash
# What the portable session costs, on the session-era echo benchmark (2025-11-25: initialize
# once per connection, then tools/call with Mcp-Session-Id), c=64, 1 s warm-up + 5 s measured,
# servers on core 0, the load generator on core 1:
#   1. one replica, A/B rounds: OLD_BIN (a build from before the fleet work) against this
#      build, both on SQLite, and this build on PostgreSQL (sessions written to the store);
#   2. three replicas on one PostgreSQL (all on core 0), three load generators at once (one
#      per replica, c=22 each), total req/s;
#   3. the added latency of the first call on a replica other than the one that created the
#      session (one store read), against a call where the session is already cached.
#
#   OLD_BIN=/path/to/old/waygate PG=postgres://postgres@127.0.0.1:55432/postgres \
#     bench/fleet.sh [ROUNDS=3]
ROUNDS=${1:-3}
: "${PG:?PG=postgres://… of a server this script may create databases on}"
: "${OLD_BIN:?OLD_BIN=the waygate binary to compare against}"
SKIP_WAYGATE_BUILD=1 source "$(dirname "$0")/common.sh"
PSQL=$(ls /usr/lib/postgresql/*/bin/psql | sort -V | tail -1)
INIT="$DIR/bodies/initialize_2025-11-25.json"
LEGACY="$DIR/bodies/tools_call_legacy.json"
HDR=(-H 'MCP-Protocol-Version: 2025-11-25')  # loadgen adds Mcp-Session-Id after --init-body

fresh_db() {
  local db="wg_bench_$$_$RANDOM"
  "$PSQL" -q "$PG" -c "CREATE DATABASE $db" >/dev/null
  echo "${PG%/*}/$db"
}

# start BIN DATA_DIR [serve args…] → prints "pid port"
start() {
  local bin=$1 data=$2; shift 2
  local port=$((20000 + RANDOM % 12000))
  taskset -c 0 "$bin" serve --no-auth --no-audit --listen "127.0.0.1:$port" --data-dir "$data" --log error "$@" \
    >"$data/out" 2>"$data/err" &
  local pid=$!
  for _ in $(seq 1 400); do curl -sf "http://127.0.0.1:$port/ready" >/dev/null && break; sleep 0.05; done
  echo "$pid $port"
}

load() { # port conns → "rps errors cpu_us"
  local port=$1 c=$2
  taskset -c 1 "$LG" http --url "http://127.0.0.1:$port/mcp" --body "$LEGACY" --init-body "$INIT" \
    -c "$c" -d 5 -w 1 "${HDR[@]}" --expect hello --json
}

one() { # label bin [serve args…]
  local label=$1 bin=$2; shift 2
  local data; data=$(mktemp -d)
  read -r pid port < <(start "$bin" "$data" "$@")
  local t0; t0=$(awk '{print $14+$15}' "/proc/$pid/stat")
  local r; r=$(load "$port" 64)
  local t1; t1=$(awk '{print $14+$15}' "/proc/$pid/stat")
  python3 -c "import json,sys; r=json.loads(sys.argv[1]); tck=$(getconf CLK_TCK); \
print('$label', int(r['rps']), r['errors'], round(($t1-$t0)/tck*1e6/max(1,r['requests']),1))" "$r" >>"$OUT"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$data"
}

echo "== 1. one replica (rounds alternate)"
for _ in $(seq 1 "$ROUNDS"); do
  one before-sqlite "$OLD_BIN"
  one after-sqlite "$BIN"
  one after-postgres "$BIN" --database-url "$(fresh_db)"
done
python3 - "$OUT" <<'PY'
import statistics as st, sys
rows = [l.split() for l in open(sys.argv[1])]
labels = list(dict.fromkeys(r[0] for r in rows))
rps = {k: [int(r[1]) for r in rows if r[0] == k] for k in labels}
cpu = {k: [float(r[3]) for r in rows if r[0] == k] for k in labels}
for k in labels:
    print(f"{k:15} median {st.median(rps[k]):>8.0f} req/s  {st.median(cpu[k]):5.1f} CPU µs/req   runs {rps[k]}")
base = st.median(rps["before-sqlite"])
for k in labels[1:]:
    print(f"{k} vs before-sqlite: {100 * (st.median(rps[k]) / base - 1):+.1f} % req/s")
print("errors:", sum(int(r[2]) for r in rows))
PY
: >"$OUT"

echo "== 2. three replicas on one PostgreSQL, one load generator per replica"
URL=$(fresh_db)
PIDS=() PORTS=() DATAS=()
for i in 0 1 2; do
  d=$(mktemp -d); DATAS+=("$d")
  read -r pid port < <(start "$BIN" "$d" --database-url "$URL")
  PIDS+=("$pid"); PORTS+=("$port")
done
LGP=()
for p in "${PORTS[@]}"; do load "$p" 22 >"$DIR/fleet-$p.json" & LGP+=($!); done
wait "${LGP[@]}"
python3 - "$DIR" "${PORTS[@]}" <<'PY'
import json, sys
d, ports = sys.argv[1], sys.argv[2:]
rs = [json.load(open(f"{d}/fleet-{p}.json")) for p in ports]
print("per replica req/s:", [int(r["rps"]) for r in rs], " total:", int(sum(r["rps"] for r in rs)),
      " errors:", sum(r["errors"] for r in rs))
PY

echo "== 3. first call on another replica (session created elsewhere) vs a cached session"
python3 - "${PORTS[@]}" <<'PY'
import http.client, json, statistics as st, sys, time
ports = [int(p) for p in sys.argv[1:]]
conns = {p: http.client.HTTPConnection("127.0.0.1", p, timeout=10) for p in ports}
H = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
     "MCP-Protocol-Version": "2025-11-25"}
def post(p, body, sid=None):
    h = dict(H, **({"Mcp-Session-Id": sid} if sid else {}))
    t = time.perf_counter()
    conns[p].request("POST", "/mcp", json.dumps(body), h)
    r = conns[p].getresponse(); data = r.read()
    assert r.status in (200, 202), (r.status, data)
    return r, (time.perf_counter() - t) * 1e6
call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "hello"}}}
first, cached, home = [], [], []
for i in range(300):
    a, b = ports[i % 3], ports[(i + 1) % 3]
    r, _ = post(a, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25",
                    "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}})
    sid = r.getheader("Mcp-Session-Id")
    post(a, {"jsonrpc": "2.0", "method": "notifications/initialized"}, sid)
    home.append(post(a, call, sid)[1])
    first.append(post(b, call, sid)[1])
    cached.append(post(b, call, sid)[1])
q = lambda v, f: sorted(v)[int(f * (len(v) - 1))]
for name, v in [("call on the creating replica", home), ("first call on another replica", first),
                ("next call there (cached)", cached)]:
    print(f"{name:32} median {st.median(v):7.0f} µs   p90 {q(v, .9):7.0f} µs")
print(f"added by a session created elsewhere: {st.median(first) - st.median(cached):.0f} µs (median, once per session and replica)")
PY
for p in "${PIDS[@]}"; do kill "$p"; done
wait 2>/dev/null || true
rm -rf "${DATAS[@]}" "$OUT"
