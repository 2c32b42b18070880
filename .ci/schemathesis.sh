#!/usr/bin/env bash
# schemathesis (PyPI) against the live admin API document of a real `waygate serve` with
# an admin key: no 5xx, every response matches its documented schema, status code and
# content type, bad input is rejected and good input accepted.
#
# Operations that start processes from request data (loading a plugin, adding an upstream)
# or replace the server's own configuration (the whole file, its policies or its limits) or
# its credential (rotating the key in use) are
# left out here; the black-box tests in
# crates/waygate/tests/it/admin_api.rs cover them with real entries.
set -euo pipefail
BIN=$1
CACHE=$2
VERSION=4.32.5
VENV=${SCHEMATHESIS_VENV:-$CACHE/schemathesis-$VERSION}
if [ ! -x "$VENV/bin/schemathesis" ]; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "schemathesis==$VERSION"
fi
DATA=$(mktemp -d)
"$BIN" serve --listen 127.0.0.1:0 --data-dir "$DATA" >"$DATA/stdout" 2>"$DATA/server.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  grep -q 'WAYGATE_API_KEY=' "$DATA/stdout" 2>/dev/null && break
  sleep 0.1
done
BASE=$(grep -o 'http://[^ ]*/mcp' "$DATA/stdout" | head -1 | sed 's#/mcp$##')
KEY=$(grep -o 'WAYGATE_API_KEY=.*' "$DATA/stdout" | cut -d= -f2)
[ -n "$BASE" ] && [ -n "$KEY" ] || { echo "server did not start"; cat "$DATA/server.log"; exit 1; }
echo "waygate at $BASE"
# A fixed seed makes a red run reproducible (rerun with the same seed); change it on purpose
# to explore other cases. The stateful phase once failed with a random seed (ST202) that did
# not reproduce: the full report is printed now.
SEED=${SCHEMATHESIS_SEED:-326683615358966646511089881375275017333}
timeout 900 "$VENV/bin/schemathesis" --config-file "$(dirname "$0")/schemathesis.toml" run "$BASE/api/v1/openapi.json" \
  -H "X-API-Key: $KEY" \
  --max-examples "${SCHEMATHESIS_EXAMPLES:-30}" \
  --workers 1 \
  --request-timeout 20 \
  --exclude-operation-id post_api_v1_plugins \
  --exclude-operation-id post_api_v1_upstreams \
  --exclude-operation-id put_api_v1_upstreams_name \
  --exclude-operation-id put_api_v1_config \
  --exclude-operation-id put_api_v1_policies \
  --exclude-operation-id put_api_v1_limits \
  --exclude-operation-id post_api_v1_config_snapshots_id_rollback \
  --exclude-operation-id put_api_v1_log_level \
  --exclude-operation-id post_api_v1_keys_id_rotate \
  --suppress-health-check all \
  --seed "$SEED" \
  --no-color ${SCHEMATHESIS_EXTRA:-}
