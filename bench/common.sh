# Shared by the bench scripts: copies the shared harness, builds its load generator and the
# release `waygate`, and sets LG, BIN, BODY and OUT.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED=${SHARED_BENCH:-$ROOT/../shared/bench}
DIR=${BENCH_DIR:-/tmp/waygate-bench}
mkdir -p "$DIR" && cp -r "$SHARED"/. "$DIR"/
(cd "$DIR/rust" && env -u CARGO_TARGET_DIR cargo build --release --locked -p loadgen >/dev/null 2>&1)
LG="$DIR/rust/target/release/loadgen"
# --workspace: the same features as the test build, so no second full build.
[ -n "${SKIP_WAYGATE_BUILD:-}" ] || (cd "$ROOT" && cargo build --release --workspace >/dev/null 2>&1)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/waygate
BODY="$DIR/bodies/tools_call_modern.json"
OUT=$(mktemp)
