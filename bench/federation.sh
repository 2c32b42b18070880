#!/usr/bin/env bash
# What federation costs per call: `tools/call echo` answered by Waygate itself ("direct")
# against the same call through a gateway to a Waygate upstream over stdio ("stdio") and
# over Streamable HTTP ("http"). All servers are pinned to core 0 (the gateway and its
# upstream share it, so each setup gets the same CPU), the shared harness's load generator
# to core 1; c=64, 1 s warm-up + 5 s measured, 2026-07-28 body with routing headers,
# `--no-auth --no-audit` everywhere. Rounds alternate; read the medians.
#
#   bench/federation.sh [ROUNDS=5]
ROUNDS=${1:-5}
source "$(dirname "$0")/common.sh"

wait_ready() { for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$1/ready" >/dev/null && return; sleep 0.05; done; }

load() { # $1 label, $2 port
  taskset -c 1 "$LG" http --url "http://127.0.0.1:$2/mcp" --body "$BODY" -c 64 -d 5 -w 1 \
    -H 'MCP-Protocol-Version: 2026-07-28' -H 'Mcp-Method: tools/call' -H 'Mcp-Name: echo' \
    --expect hello --json | python3 -c "import json,sys; r=json.load(sys.stdin); print('$1', int(r['rps']), r['errors'])" >>"$OUT"
}

run() { # $1 label: direct | stdio | http
  local data; data=$(mktemp -d)
  local port=$((20000 + RANDOM % 20000)) up=$((40000 + RANDOM % 20000)) pids=()
  local common=(--no-auth --no-audit --log error)
  case $1 in
    direct)
      taskset -c 0 "$BIN" serve --listen "127.0.0.1:$port" --data-dir "$data" "${common[@]}" >/dev/null 2>&1 &
      pids+=($!) ;;
    stdio)
      mkdir -p "$data/up"
      printf 'version = 3\n[plugins]\ndemo = false\n[[upstreams]]\nname = "inner"\ntransport = "stdio"\ncommand = "%s"\nargs = ["serve", "--stdio", "--no-audit", "--log", "error", "--data-dir", "%s"]\nrequired = true\n' \
        "$BIN" "$data/up" >"$data/gw.toml"
      taskset -c 0 "$BIN" serve --listen "127.0.0.1:$port" --data-dir "$data" --config "$data/gw.toml" "${common[@]}" >/dev/null 2>&1 &
      pids+=($!) ;;
    http)
      mkdir -p "$data/up"
      taskset -c 0 "$BIN" serve --listen "127.0.0.1:$up" --data-dir "$data/up" "${common[@]}" >/dev/null 2>&1 &
      pids+=($!)
      wait_ready "$up"
      printf 'version = 3\n[plugins]\ndemo = false\n[[upstreams]]\nname = "inner"\ntransport = "http"\nurl = "http://127.0.0.1:%s/mcp"\nrequired = true\n' \
        "$up" >"$data/gw.toml"
      taskset -c 0 "$BIN" serve --listen "127.0.0.1:$port" --data-dir "$data" --config "$data/gw.toml" "${common[@]}" >/dev/null 2>&1 &
      pids+=($!) ;;
  esac
  wait_ready "$port"
  load "$1" "$port"
  kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
  rm -rf "$data"
}

for _ in $(seq 1 "$ROUNDS"); do
  run direct
  run stdio
  run http
done
python3 - "$OUT" <<'PY'
import statistics as st, sys
rows = [l.split() for l in open(sys.argv[1])]
val = {k: [int(r[1]) for r in rows if r[0] == k] for k in ("direct", "stdio", "http")}
errs = sum(int(r[2]) for r in rows)
for k, v in val.items():
    print(f"{k:6} median {st.median(v):>8.0f} req/s   runs {v}")
print(f"errors {errs}")
PY
rm -f "$OUT"
