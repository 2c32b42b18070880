#!/usr/bin/env bash
# Start a throw-away PostgreSQL server on 127.0.0.1 for the store tests (installing
# Debian's package if needed) and print its URL on stdout. Usage:
#   export WAYGATE_TEST_POSTGRES_URL=$(.ci/postgres.sh start)   # and later: .ci/postgres.sh stop
set -euo pipefail
PORT=${PGPORT_TEST:-55432}
DIR=${PGDATA_TEST:-/tmp/waygate-pg}
BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
case "${1:-start}" in
  start)
    if [ -z "$BIN" ] || [ ! -x "$BIN/initdb" ]; then
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2
      BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    fi
    if [ -f "$DIR/postmaster.pid" ]; then
      su postgres -c "$BIN/pg_ctl -D $DIR -m fast stop" </dev/null >/dev/null 2>&1 || true
    fi
    rm -rf "$DIR" && mkdir -p "$DIR" && chown postgres "$DIR"
    su postgres -c "$BIN/initdb -D $DIR -A trust -U postgres --no-sync" >/dev/null
    # The server must not inherit our stdout/stderr: a caller reading them through a
    # pipe would otherwise wait for the daemon to exit.
    su postgres -c "$BIN/pg_ctl -D $DIR -l $DIR/server.log -w -o '-h 127.0.0.1 -p $PORT -k $DIR -F' start" </dev/null >/dev/null 2>&1
    echo "postgres://postgres@127.0.0.1:$PORT/postgres"
    ;;
  stop)
    [ -n "$BIN" ] && su postgres -c "$BIN/pg_ctl -D $DIR -m fast stop" </dev/null >/dev/null 2>&1 || true
    ;;
  pause)
    su postgres -c "$BIN/pg_ctl -D $DIR -m fast -w stop" </dev/null >/dev/null 2>&1
    ;;
  resume)
    su postgres -c "$BIN/pg_ctl -D $DIR -l $DIR/server.log -w -o '-h 127.0.0.1 -p $PORT -k $DIR -F' start" </dev/null >/dev/null 2>&1
    ;;
  restart)
    su postgres -c "$BIN/pg_ctl -D $DIR -l $DIR/server.log -m fast -w restart -o '-h 127.0.0.1 -p $PORT -k $DIR -F'" </dev/null >/dev/null 2>&1
    ;;
esac
