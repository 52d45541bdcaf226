#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for tests and benchmarks.
#
#   scripts/pg-test-cluster.sh start DIR   # initdb into DIR, start on a free
#                                          # 127.0.0.1 port; prints the conninfo
#   scripts/pg-test-cluster.sh stop DIR    # stop it and remove DIR
#   scripts/pg-test-cluster.sh conninfo DIR
#   scripts/pg-test-cluster.sh pause DIR   # stop the server, keep the data
#   scripts/pg-test-cluster.sh resume DIR  # start it again on the same port
#
# PostgreSQL refuses to run as root, so as root the cluster belongs to
# `nobody` (runuser).  Trust authentication on loopback only: the cluster
# lives as long as one test run.  DIR/conninfo holds the connection string
# (database provd, user provd).
set -euo pipefail

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop|conninfo DIR" >&2; exit 2; }

bindir=""
for d in /usr/lib/postgresql/15/bin "$(pg_config --bindir 2>/dev/null || true)"; do
  if [ -n "$d" ] && [ -x "$d/initdb" ]; then bindir=$d; break; fi
done
[ -n "$bindir" ] || { echo "pg-test-cluster: PostgreSQL 15 (initdb) not found; run scripts/install-deps.sh" >&2; exit 1; }

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u nobody -- "$@"
  else
    "$@"
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

case "$cmd" in
start)
  "$0" stop "$dir" # a cluster a killed run left behind
  mkdir -p "$dir"
  chmod 0755 "$dir"
  if [ "$(id -u)" -eq 0 ]; then
    chown nobody:nogroup "$dir"
    # nobody must reach DIR: a mktemp -d parent is 0700.
    chmod o+x "$(dirname "$dir")"
  fi
  as_owner "$bindir/initdb" -D "$dir/data" -U provd -A trust -E UTF8 \
    --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; exit 1; }
  for attempt in 1 2 3; do
    port=$(free_port)
    # fsync stays on: the durability tests kill provd, not PostgreSQL, but
    # the benchmark's figures should be those of a real server.
    opts="-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c max_connections=200 -c shared_buffers=128MB"
    if as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
        -o "$opts" start >/dev/null 2>&1; then
      echo "$opts" >"$dir/server.opts"
      break
    fi
    port=""
  done
  [ -n "$port" ] || { cat "$dir/server.log" >&2; exit 1; }
  as_owner "$bindir/createdb" -h 127.0.0.1 -p "$port" -U provd provd
  echo "host=127.0.0.1 port=$port dbname=provd user=provd" >"$dir/conninfo"
  cat "$dir/conninfo"
  ;;
stop)
  if [ -d "$dir/data" ]; then
    as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
  ;;
conninfo)
  cat "$dir/conninfo"
  ;;
pause)
  as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
  ;;
resume)
  as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
    -o "$(cat "$dir/server.opts")" start >/dev/null
  ;;
*)
  echo "usage: $0 start|stop|conninfo|pause|resume DIR" >&2; exit 2
  ;;
esac
