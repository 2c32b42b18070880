#!/usr/bin/env bash
# Regenerates crates/waygate/link/hot.ld: every function the serving path runs, which the
# linker gathers into one `.text.hot` section in front of `.text` (see build.rs).
#
# Why: the kernel maps 64 KiB around every code page a process touches, so hot code
# scattered over a 37 MB `.text` kept ~18 MB of it resident after a c=64 run although the
# functions actually run add up to ~5 MB. Packed together they cost about their size.
#
# Coverage comes from runs of the production configuration (API key + audit + metrics):
# callgrind (complete: start-up, every era's handshake, lists, calls, metrics, shutdown),
# perf samples (what runs on the real CPU — SHA-NI, AVX string code — which valgrind's CPU
# model hides), perf page faults at c=64 (what touches a code page again after start-up
# released them), and the gateway in front of a stdio and an HTTP upstream. Serving's
# functions go first, the gateway's next, start-up's last: once start-up is over the
# server drops its code pages (waygate_core::memory) and only the first groups come back.
#
# The patterns name each function's section with a trailing `*`, because ThinLTO appends a
# per-build `.llvm.<hash>` to the local functions it shares between modules;
# `.text.unlikely.` is where #[cold] functions live. Regenerate after a toolchain upgrade
# or any change to the crate graph — a dependency, a feature, a crate's own dependencies:
# the symbol hash of every generic instance covers the crates' metadata, so such a change
# renames most of them (a name that no longer exists matches nothing; `it::layout` fails
# below 85 % of the serving group). Run it twice after a large change (the page-fault pass
# sees what the previous layout missed). The names do not depend on where the checkout is.
#
#   bench/hot_symbols.sh
source "$(dirname "$0")/common.sh"
OUTFILE=$ROOT/crates/waygate/link/hot.ld
W=$(mktemp -d)
BD="$DIR/bodies"

workload() { # $1 port, $2 data dir: the requests every deployment serves
  local u=http://127.0.0.1:$1 key
  for _ in $(seq 1 600); do curl -sf "$u/ready" >/dev/null && break; sleep 0.1; done
  key=$(grep -o 'wg_[A-Za-z0-9_]*' "$2/out" | head -1)
  local a=(-H "Authorization: Bearer $key")
  local j=(-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream')
  curl -s "$u/metrics" "${a[@]}" >/dev/null
  curl -s "$u/health" >/dev/null
  for body in "$BD"/*.json; do curl -s "$u/mcp" "${a[@]}" "${j[@]}" --data-binary @"$body" >/dev/null; done
  curl -s -D "$2/h" "$u/mcp" "${a[@]}" "${j[@]}" -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"hot","version":"1"}}}' >/dev/null
  local s; s=$(grep -i '^mcp-session-id' "$2/h" | cut -d' ' -f2 | tr -d '\r')
  local sh=(-H "Mcp-Session-Id: $s" -H 'MCP-Protocol-Version: 2025-06-18')
  curl -s "$u/mcp" "${a[@]}" "${j[@]}" "${sh[@]}" -d '{"jsonrpc":"2.0","method":"notifications/initialized"}' >/dev/null
  for m in tools/list prompts/list resources/list resources/templates/list ping; do
    curl -s "$u/mcp" "${a[@]}" "${j[@]}" "${sh[@]}" -d "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"$m\"}" >/dev/null
  done
  curl -s "$u/mcp" "${a[@]}" "${j[@]}" "${sh[@]}" -d '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}' >/dev/null
  curl -s "$u/mcp" "${j[@]}" -d '{"jsonrpc":"2.0","id":4,"method":"tools/list"}' >/dev/null # 401
  taskset -c 1 "$LG" http --url "$u/mcp" --body "$BODY" -c 16 -d "$3" -w 0 "${a[@]}" \
    -H 'MCP-Protocol-Version: 2026-07-28' -H 'Mcp-Method: tools/call' -H 'Mcp-Name: echo' --json >/dev/null
  curl -s -X DELETE "$u/mcp" "${a[@]}" "${sh[@]}" >/dev/null
}

# 1. callgrind: every function executed, by instructions — start-up (dumped once the
#    server is ready) apart from serving.
port=$((20000 + RANDOM % 12000)); mkdir -p "$W/cg"
valgrind --tool=callgrind --demangle=no --separate-threads=no --callgrind-out-file="$W/cg.out" \
  "$BIN" serve --listen "127.0.0.1:$port" --data-dir "$W/cg" --log info >"$W/cg/out" 2>"$W/cg/err" &
pid=$!
for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$port/ready" >/dev/null && break; sleep 0.1; done
sleep 2; callgrind_control -d "$pid" >/dev/null
workload "$port" "$W/cg" 4
sleep 1; kill -INT "$pid"; wait "$pid" 2>/dev/null || true
names() { callgrind_annotate --threshold=100 --auto=no "$@" 2>/dev/null | grep -o '???:[^ ]*' | sed "s/^???://; s/'[0-9]*\$//"; }
names "$W/cg.out.1" >"$W/start.txt"
names $(ls "$W"/cg.out* | grep -v '\.1$') >"$W/cg.txt"

ready() { for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$1/ready" >/dev/null && break; sleep 0.1; done; sleep 2; }

# 2. perf: what the real CPU runs while serving, by samples (attached after start-up).
port=$((20000 + RANDOM % 12000)); mkdir -p "$W/perf"
taskset -c 0 "$BIN" serve --listen "127.0.0.1:$port" --data-dir "$W/perf" --log info >"$W/perf/out" 2>"$W/perf/err" &
pid=$!
ready "$port"
perf record -q -F 4999 -e cpu-clock -p "$pid" -o "$W/perf.data" -- sleep 7 >/dev/null 2>&1 &
pp=$!
workload "$port" "$W/perf" 5
wait "$pp" || true
kill -INT "$pid"; wait "$pid" 2>/dev/null || true
perf report -i "$W/perf.data" --no-demangle --no-children --dsos "$(basename "$BIN")" \
  --sort symbol --stdio 2>/dev/null | grep -o '\[\.\] [^ ]*' | cut -c5- >"$W/perf.txt"

# 3. page faults at c=64 after start-up released its code pages: the functions that touch
#    a code page again — on a binary already laid out, exactly those the first two runs
#    missed (run the script twice after a large change).
port=$((20000 + RANDOM % 12000)); mkdir -p "$W/pf"
taskset -c 0 "$BIN" serve --listen "127.0.0.1:$port" --data-dir "$W/pf" --log info >"$W/pf/out" 2>"$W/pf/err" &
pid=$!
ready "$port"
perf record -q -e page-faults -c 1 -p "$pid" -o "$W/pf.data" >/dev/null 2>&1 &
pp=$!
workload "$port" "$W/pf" 1
taskset -c 1 "$LG" http --url "http://127.0.0.1:$port/mcp" --body "$BODY" -c 64 -d 5 -w 0 \
  -H "Authorization: Bearer $(grep -o 'wg_[A-Za-z0-9_]*' "$W/pf/out" | head -1)" \
  -H 'MCP-Protocol-Version: 2026-07-28' -H 'Mcp-Method: tools/call' -H 'Mcp-Name: echo' --json >/dev/null
kill -INT "$pp"; wait "$pp" 2>/dev/null || true
kill -INT "$pid"; wait "$pid" 2>/dev/null || true
perf report -i "$W/pf.data" --no-demangle --no-children --dsos "$(basename "$BIN")" \
  --sort symbol --stdio 2>/dev/null | grep -o '\[\.\] [^ ]*' | cut -c5- >"$W/pf.txt"

# 4. the gateway: the same production configuration in front of two upstreams (this
#    binary serving its demo tools over stdio and over HTTP), perf samples and page faults
#    after start-up — a group of its own, so it does not dilute the direct path's pages.
up=$((20000 + RANDOM % 12000)); port=$((up + 1)); mkdir -p "$W/gw" "$W/up" "$W/ups"
"$BIN" serve --listen "127.0.0.1:$up" --no-auth --no-audit --data-dir "$W/up" --log error >/dev/null 2>&1 &
upid=$!
printf '%s\n' 'version = 3' '[plugins]' 'demo = false' \
  '[[upstreams]]' 'name = "s"' 'prefix = "always"' 'transport = "stdio"' "command = \"$BIN\"" \
  "args = [\"serve\", \"--stdio\", \"--data-dir\", \"$W/ups\", \"--log\", \"error\"]" \
  '[[upstreams]]' 'name = "h"' 'prefix = "always"' 'transport = "http"' \
  "url = \"http://127.0.0.1:$up/mcp\"" >"$W/gw/gw.toml"
taskset -c 0 "$BIN" serve --listen "127.0.0.1:$port" --config "$W/gw/gw.toml" --data-dir "$W/gw" --log info >"$W/gw/out" 2>"$W/gw/err" &
pid=$!
ready "$port"
perf record -q -e page-faults/period=1/ -e cpu-clock/freq=4999/ -p "$pid" -o "$W/gw.data" >/dev/null 2>&1 &
pp=$!
key=$(grep -o 'wg_[A-Za-z0-9_]*' "$W/gw/out" | head -1)
for tool in s__echo h__echo; do
  sed "s/\"echo\"/\"$tool\"/" "$BODY" >"$W/gw/$tool.json"
  taskset -c 1 "$LG" http --url "http://127.0.0.1:$port/mcp" --body "$W/gw/$tool.json" -c 32 -d 3 -w 0 \
    -H "Authorization: Bearer $key" -H 'MCP-Protocol-Version: 2026-07-28' -H 'Mcp-Method: tools/call' \
    -H "Mcp-Name: $tool" --expect hello --json | grep -q '"errors":0,' || echo "warning: gateway phase: $tool calls failed" >&2
done
kill -INT "$pp"; wait "$pp" 2>/dev/null || true
kill -INT "$pid"; wait "$pid" 2>/dev/null || true
kill "$upid"; wait "$upid" 2>/dev/null || true
perf report -i "$W/gw.data" --no-demangle --no-children --dsos "$(basename "$BIN")" \
  --sort symbol --stdio 2>/dev/null | grep -o '\[\.\] [^ ]*' | cut -c5- >"$W/gw.txt"

mkdir -p "$(dirname "$OUTFILE")"
# Only names the binary defines (the lists also name libc's functions), without the
# per-build suffix. std's v0 names (`_R…`) come precompiled, never suffixed: exact match.
nm --defined-only "$BIN" | awk '$2 ~ /^[tTwW]$/ {print $3}' | sort -u >"$W/defined.txt"
clean() { grep -Fxf "$W/defined.txt" | sed 's/\.llvm\..*//' | awk '!seen[$0]++'; }
# Serving's functions first, then those only start-up ran: after start-up the server drops
# its code pages (waygate_core::memory) and only the first part comes back.
cat "$W/perf.txt" "$W/cg.txt" "$W/pf.txt" | clean >"$W/hot.txt"
clean <"$W/gw.txt" | grep -vFxf "$W/hot.txt" >"$W/gateway.txt" || true
clean <"$W/start.txt" | grep -vFxf "$W/hot.txt" | grep -vFxf "$W/gateway.txt" >"$W/cold.txt" || true
patterns() {
  awk '/^_R/ {print "      .text." $0 " .text.unlikely." $0; next}
       {print "      .text." $0 "* .text.unlikely." $0 "*"}' "$1"
}
{
  echo "/* Generated by bench/hot_symbols.sh from $(git -C "$ROOT" rev-parse --short HEAD); see build.rs. */"
  echo 'SECTIONS {'
  echo '  .text.hot : {'
  echo '    *('
  patterns "$W/hot.txt"
  echo '    )'
  echo '    *('
  patterns "$W/gateway.txt"
  echo '    )'
  echo '    *('
  patterns "$W/cold.txt"
  echo '    )'
  echo '  }'
  echo '}'
  echo 'INSERT BEFORE .text;'
} >"$OUTFILE"
echo "$(wc -l <"$W/hot.txt") serving + $(wc -l <"$W/gateway.txt") gateway + $(wc -l <"$W/cold.txt") start-up functions -> $OUTFILE"
rm -rf "$W" "$OUT"
