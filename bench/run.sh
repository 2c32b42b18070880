#!/usr/bin/env bash
# Side-by-side benchmark of Waygate against the anchors in ../shared/bench (rmcp, the
# Python and TypeScript SDKs, raw hyper), pinned as that harness does (server on core 0,
# load generator on core 1), loopback only, every run bounded in time.
#
#   bench/run.sh                          # waygate + rmcp + baseline, 2 sets
#   bench/run.sh --only waygate --repeat 1
#   BENCH_ALL=1 bench/run.sh              # every anchor (Python/TS too)
#
# shared/ is read-only, so the harness is copied to $BENCH_DIR (default /tmp/waygate-bench).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${SHARED_BENCH:-$ROOT/../shared/bench}
DIR=${BENCH_DIR:-/tmp/waygate-bench}
mkdir -p "$DIR"
cp -r "$SHARED"/. "$DIR"/
(cd "$ROOT" && cargo build --release -p waygate)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/waygate
DATA=$(mktemp -d)
cat > "$DIR/servers.d/60-waygate.json" <<JSON
{"name": "waygate", "impl": "waygate (Rust, this repo)",
 "version_cmd": ["sh", "-c", "echo waygate \$(git -C $ROOT rev-parse --short HEAD)"],
 "http_cmd": ["$BIN", "serve", "--listen", "127.0.0.1:{port}", "--no-auth", "--no-audit", "--data-dir", "$DATA", "--log", "warn"],
 "stdio_cmd": ["$BIN", "serve", "--stdio", "--no-audit", "--data-dir", "$DATA", "--log", "warn"],
 "protocols": ["2026-07-28", "2025-11-25"]}
JSON
args=("$@")
if [ -z "${BENCH_ALL:-}" ] && [[ " $* " != *" --only "* ]]; then
  args+=(--only waygate,rmcp,baseline)
fi
cd "$DIR" && ./run_anchors.sh "${args[@]}"
echo "results appended to $DIR/RESULTS.md"
