#!/usr/bin/env bash
# A/B cost of the production shell on the echo benchmark: the same binary with
# `--no-auth --no-audit` against API-key auth + audit trail (SQLite) + metrics (always on),
# server pinned to core 0, the shared harness's load generator to core 1, c=64, 2 s warm-up
# + 8 s measured, 2026-07-28 request body with routing headers, alternating rounds.
#
#   bench/security.sh [ROUNDS=2]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${SHARED_BENCH:-$ROOT/../shared/bench}
DIR=${BENCH_DIR:-/tmp/waygate-bench}
ROUNDS=${1:-2}
mkdir -p "$DIR" && cp -r "$SHARED"/. "$DIR"/
(cd "$DIR/rust" && cargo build --release --locked -p loadgen >/dev/null 2>&1)
LG="$DIR/rust/target/release/loadgen"
(cd "$ROOT" && cargo build --release -p waygate >/dev/null 2>&1)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/waygate
BODY="$DIR/bodies/tools_call_modern.json"
H=(-H 'MCP-Protocol-Version: 2026-07-28' -H 'Mcp-Method: tools/call' -H 'Mcp-Name: echo')

run() { # $1 label, rest: extra serve args; prints "label req/s"
  local label=$1; shift
  local data; data=$(mktemp -d)
  local port=$((20000 + RANDOM % 20000))
  taskset -c 0 "$BIN" serve --listen "127.0.0.1:$port" --data-dir "$data" --log error "$@" >"$data/out" 2>"$data/err" &
  local pid=$!
  for _ in $(seq 1 200); do grep -q WAYGATE_API_KEY "$data/out" 2>/dev/null && break; grep -q listening "$data/out" && [ "$label" = off ] && break; sleep 0.05; done
  local key; key=$(grep -o 'wg_[A-Za-z0-9_]*' "$data/out" | head -1 || true)
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/ready" >/dev/null && break; sleep 0.05; done
  local auth=()
  [ -n "$key" ] && auth=(-H "Authorization: Bearer $key")
  local out
  out=$(taskset -c 1 "$LG" http --url "http://127.0.0.1:$port/mcp" --body "$BODY" -c 64 -d 8 -w 2 "${H[@]}" "${auth[@]}" --expect hello --json)
  kill "$pid"; wait "$pid" 2>/dev/null || true
  python3 -c "import json,sys; r=json.loads(sys.argv[1]); print(f\"$label\t{r['rps']:.0f} req/s\tp50 {r.get('p50_ms',0):.3f} ms\tok {r.get('ok')} err {r.get('errors', r.get('err'))}\")" "$out"
  rm -rf "$data"
}

for i in $(seq 1 "$ROUNDS"); do
  run off --no-auth --no-audit
  run on
done
