#!/usr/bin/env bash
# Gateway CPU per forwarded call and added latency: the shared harness's rmcp echo server
# directly, behind Waygate over stdio and over Streamable HTTP. See bench/federation.py.
#
#   bench/federation.sh [ROUNDS=3]
source "$(dirname "$0")/common.sh"
(cd "$DIR/rust" && env -u CARGO_TARGET_DIR cargo build --release --locked -p rmcp-echo >/dev/null 2>&1)
(cd "$ROOT/bench/hyper-proxy" && env -u CARGO_TARGET_DIR cargo build --release >/dev/null 2>&1)
PROXY="$ROOT/bench/hyper-proxy/target/release/hyper-proxy" LG=$LG BIN=$BIN BODY=$BODY RMCP="$DIR/rust/target/release/rmcp-echo" python3 "$ROOT/bench/federation.py" "${1:-3}"
rm -f "$OUT"
