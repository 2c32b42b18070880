#!/usr/bin/env bash
# A/B cost of the production shell on the echo benchmark: the same binary with
# `--no-auth --no-audit` ("off") against API-key auth + audit trail (SQLite) + metrics
# ("on"; metrics are always on), server pinned to core 0, the shared harness's load
# generator pinned to core 1, c=64, 1 s warm-up + 5 s measured, 2026-07-28 request body
# with routing headers. Rounds alternate off/on; the machine is noisy, so the medians and
# the median of the paired losses are what to read.
#
#   bench/security.sh [ROUNDS=8]
ROUNDS=${1:-8}
source "$(dirname "$0")/common.sh"

run() { # $1 label, rest: extra serve args; appends "label req/s"
  local label=$1; shift
  local data; data=$(mktemp -d)
  local port=$((20000 + RANDOM % 12000))
  taskset -c 0 "$BIN" serve --listen "127.0.0.1:$port" --data-dir "$data" --log error "$@" >"$data/out" 2>"$data/err" &
  local pid=$!
  local auth=()
  if [ "$label" = on ]; then
    for _ in $(seq 1 200); do grep -q WAYGATE_API_KEY "$data/out" 2>/dev/null && break; sleep 0.05; done
    auth=(-H "Authorization: Bearer $(grep -o 'wg_[A-Za-z0-9_]*' "$data/out" | head -1)")
  fi
  for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$port/ready" >/dev/null && break; sleep 0.05; done
  taskset -c 1 "$LG" http --url "http://127.0.0.1:$port/mcp" --body "$BODY" -c 64 -d 5 -w 1 \
    -H 'MCP-Protocol-Version: 2026-07-28' -H 'Mcp-Method: tools/call' -H 'Mcp-Name: echo' "${auth[@]}" \
    --expect hello --json | python3 -c "import json,sys; r=json.load(sys.stdin); print('$label', int(r['rps']), r['errors'])" >>"$OUT"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$data"
}

for _ in $(seq 1 "$ROUNDS"); do
  run off --no-auth --no-audit
  run on
done
python3 - "$OUT" <<'PY'
import statistics as st, sys
rows = [l.split() for l in open(sys.argv[1])]
val = {k: [int(r[1]) for r in rows if r[0] == k] for k in ("off", "on")}
errs = sum(int(r[2]) for r in rows)
for k, v in val.items():
    print(f"{k:4} median {st.median(v):>8.0f} req/s   runs {v}")
loss = [100 * (1 - b / a) for a, b in zip(val["off"], val["on"])]
print(f"paired loss: median {st.median(loss):.1f} %  (each: {', '.join(f'{x:.1f}' for x in loss)}); errors {errs}")
PY
rm -f "$OUT"
