#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for tests and benchmarks.
#
#   scripts/pg-test-cluster.sh start DIR   # initdb into DIR (as root: into a
#                                          # directory of its own under /tmp,
#                                          # named in DIR/root), start on a free
#                                          # 127.0.0.1 port; prints the conninfo
#   scripts/pg-test-cluster.sh stop DIR    # stop it and remove DIR
#   scripts/pg-test-cluster.sh conninfo DIR
#   scripts/pg-test-cluster.sh datadir DIR  # where PGDATA is
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

# Where the cluster's files live: DIR itself, or, when root runs it as
# nobody, a directory of its own under /tmp (nobody may not be able to
# reach DIR: a clone in a mktemp -d or under /root has 0700 parents).
# DIR/root names it.
cluster_root() {
  if [ -f "$dir/root" ]; then cat "$dir/root"; else echo "$dir"; fi
}

case "$cmd" in
start)
  "$0" stop "$dir" # a cluster a killed run left behind
  mkdir -p "$dir"
  root=$dir
  if [ "$(id -u)" -eq 0 ]; then
    root=$(mktemp -d /tmp/provd-pg.XXXXXX)
    chmod 0755 "$root"
    chown nobody:nogroup "$root"
    echo "$root" >"$dir/root"
  fi
  as_owner "$bindir/initdb" -D "$root/data" -U provd -A trust -E UTF8 \
    --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; exit 1; }
  for attempt in 1 2 3; do
    port=$(free_port)
    # fsync stays on: the durability tests kill provd, not PostgreSQL, but
    # the benchmark's figures should be those of a real server.
    opts="-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$root -c max_connections=200 -c shared_buffers=128MB"
    if as_owner "$bindir/pg_ctl" -D "$root/data" -l "$root/server.log" -w -t 30 \
        -o "$opts" start >/dev/null 2>&1; then
      echo "$opts" >"$dir/server.opts"
      break
    fi
    port=""
  done
  [ -n "$port" ] || { cat "$root/server.log" >&2; exit 1; }
  as_owner "$bindir/createdb" -h 127.0.0.1 -p "$port" -U provd provd
  echo "host=127.0.0.1 port=$port dbname=provd user=provd" >"$dir/conninfo"
  cat "$dir/conninfo"
  ;;
stop)
  root=$(cluster_root)
  if [ -d "$root/data" ]; then
    as_owner "$bindir/pg_ctl" -D "$root/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  [ "$root" = "$dir" ] || rm -rf "$root"
  rm -rf "$dir"
  ;;
conninfo)
  cat "$dir/conninfo"
  ;;
datadir)
  echo "$(cluster_root)/data"
  ;;
pause)
  as_owner "$bindir/pg_ctl" -D "$(cluster_root)/data" -m fast -w stop >/dev/null
  ;;
resume)
  root=$(cluster_root)
  as_owner "$bindir/pg_ctl" -D "$root/data" -l "$root/server.log" -w -t 30 \
    -o "$(cat "$dir/server.opts")" start >/dev/null
  ;;
*)
  echo "usage: $0 start|stop|conninfo|datadir|pause|resume DIR" >&2; exit 2
  ;;
esac
