#!/usr/bin/env bash
# The official conformance suites run *through* Waygate: a gateway with no tools of its own
# fronts a second `waygate serve --plugin everything` (the suites' fixture surface) with
# `prefix = "never"`, once as a stdio upstream and once as a Streamable HTTP upstream.
# Relayed questions (sampling, elicitation, roots), logs during a call and the era bridge
# are what these runs add over the direct ones.
#
# usage: .ci/conformance_gateway.sh BIN NODE STABLE_DIR NEXT_DIR
# The session-era suites (stable, next active) must pass in full; the 2026-07-28 requirement
# set must match .ci/gateway-expected-failures-{stdio,http}.yaml (the known gaps, scenario by
# scenario, each with its reason).
set -euo pipefail
BIN=$1 NODE=$2 STABLE=$3 NEXT=$4
ROOT=$(cd "$(dirname "$0")/.." && pwd)

WORK=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT

# start NAME ARGS… — a waygate on an ephemeral loopback port; prints its /mcp URL.
start() {
  local name=$1; shift
  mkdir -p "$WORK/$name"
  "$BIN" serve --listen 127.0.0.1:0 --no-auth --data-dir "$WORK/$name" "$@" >"$WORK/$name.out" 2>"$WORK/$name.log" &
  PIDS+=($!)
  for _ in $(seq 1 100); do
    grep -q 'listening on' "$WORK/$name.out" 2>/dev/null && break
    sleep 0.1
  done
  grep -o 'http://[^ ]*/mcp' "$WORK/$name.out" | head -1
}

suite() {
  local label=$1 dir=$2 url=$3; shift 3
  local out="$WORK/$label.txt" rc
  set +e
  (cd "$dir" && timeout 900 "$NODE" node_modules/@modelcontextprotocol/conformance/dist/index.js server --url "$url" "$@") >"$out" 2>&1
  rc=$?
  set -e
  grep -E '^Total|^(✗)|Baseline|~ ' "$out" || true
  if [ "$rc" -ne 0 ] || ! grep -qE '^Total: [0-9]+ passed' "$out"; then
    echo "conformance through the gateway ($label) FAILED (exit $rc)"
    tail -40 "$out"
    return 1
  fi
}

for mode in stdio http; do
  cfg="$WORK/gateway-$mode.toml"
  if [ "$mode" = http ]; then
    inner=$(start inner-http --no-demo --plugin everything)
    [ -n "$inner" ] || { echo "inner server did not start"; cat "$WORK/inner-http.log"; exit 1; }
    printf '[[upstreams]]\nname = "inner"\nurl = "%s"\nprefix = "never"\nrequired = true\n[outbound]\nallow_loopback = true\n' "$inner" >"$cfg"
  else
    printf '[[upstreams]]\nname = "inner"\ncommand = "%s"\nargs = ["serve", "--stdio", "--plugin", "everything", "--data-dir", "%s"]\nprefix = "never"\nrequired = true\n' \
      "$BIN" "$WORK/inner-stdio" >"$cfg"
  fi
  url=$(start "gateway-$mode" --no-demo --config "$cfg")
  [ -n "$url" ] || { echo "gateway did not start"; cat "$WORK/gateway-$mode.log"; exit 1; }
  for _ in $(seq 1 50); do
    "$BIN" health --ready --url "${url%/mcp}" --data-dir "$WORK/probe" >/dev/null 2>&1 && break
    sleep 0.2
  done
  echo "== through a $mode upstream: $url"
  suite "$mode-stable" "$STABLE" "$url"
  suite "$mode-next" "$NEXT" "$url"
  suite "$mode-2026-07-28" "$NEXT" "$url" --requirements 2026-07-28 --expected-failures "$ROOT/.ci/gateway-expected-failures-$mode.yaml"
done
echo "conformance through the gateway: every suite passed (stdio and HTTP upstreams)"
