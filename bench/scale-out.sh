#!/usr/bin/env bash
# Scale-out benchmark (docs/scale-out.md): registrations/s and server CPU
# per registration with 1, 2 and 3 provd instances on one PostgreSQL
# (behind HAProxy, TCP passthrough, for 2 and 3), against one provd on
# the SQLite default, in the same run; optionally the PostgreSQL store at
# BENCH_SCALE_LARGE enrollments against BENCH_ENROLLMENTS.
#
# Everything runs on this machine: the instances, PostgreSQL, HAProxy and
# the load generator share its cores, so more instances cannot mean more
# registrations/s here; the CPU per registration of provd and of
# PostgreSQL, measured apart, is what extrapolates to separate machines.
#
# Knobs: BENCH_DURATION (s per run, 15), BENCH_CONCURRENCY (32),
# BENCH_ENROLLMENTS (1000), BENCH_SCALE_LARGE (0: skip; 1000000 for the
# issue's comparison; seeding a million takes minutes, its progress
# lines count bulk operations of 10), BENCH_WORKERS (2 per
# instance), BENCH_BUILD_DIR (build), BENCH_KEEP=1 keeps the work dir.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BENCH_BUILD_DIR:-$ROOT/build}
DURATION=${BENCH_DURATION:-15}
CONCURRENCY=${BENCH_CONCURRENCY:-32}
ENROLLMENTS=${BENCH_ENROLLMENTS:-1000}
LARGE=${BENCH_SCALE_LARGE:-0}
WORKERS=${BENCH_WORKERS:-2}
KEEP=${BENCH_KEEP:-0}
SCOPE=0ne00000001
SEED=provd-bench-seed
PREFIX=bench-dev-
LOADGEN=$BUILD/bench/provd-loadgen
WORK=$(mktemp -d /tmp/provd-scale-out.XXXXXX)
PG=$WORK/pg
PIDS=()

die() { echo "bench: $*" >&2; exit 1; }
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true; done
  "$ROOT/scripts/pg-test-cluster.sh" stop "$PG" >/dev/null 2>&1 || true
  [ "$KEEP" = 1 ] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT

for f in "$BUILD/provd" "$LOADGEN"; do [ -x "$f" ] || die "missing $f: run make build"; done
command -v haproxy >/dev/null || die "haproxy is needed: scripts/install-deps.sh"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# cpu_ticks PID...: user+system clock ticks of the processes (and of
# their exited children waited for).
cpu_ticks() {
  local total=0 p
  for p in "$@"; do
    [ -r "/proc/$p/stat" ] || continue
    total=$((total + $(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$p/stat")))
  done
  echo "$total"
}

# The PostgreSQL server processes: the postmaster and its children.
pg_pids() {
  local pm
  pm=$(head -n 1 "$("$ROOT/scripts/pg-test-cluster.sh" datadir "$PG")/postmaster.pid")
  echo "$pm $(ps -o pid= --ppid "$pm" | tr '\n' ' ')"
}

config() { # FILE DATA PORT STORAGE_YAML
  cat >"$1" <<EOF
id_scope: $SCOPE
listen: { https: "127.0.0.1:$3" }
data_dir: $2
plugin_path: [ $BUILD/plugins ]
workers: $WORKERS
storage: $4
hubs:
  - { name: hub-1, hostname: hub-1.example.net, weight: 1 }
  - { name: hub-2, hostname: hub-2.example.net, weight: 1 }
plugins:
  - { kind: attestation, name: symmetric-key }
  - { kind: allocation, name: hashed }
EOF
}

start_provd() { # NAME CONFIG PORT DATA: sets LAST_PID
  "$BUILD/provd" -c "$2" >"$WORK/$1.log" 2>&1 &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
  for _ in $(seq 1 300); do
    [ -f "$4/tls/ca.pem" ] && curl -sf --max-time 2 --cacert "$4/tls/ca.pem" "https://127.0.0.1:$3/healthz" >/dev/null 2>&1 && return 0
    kill -0 "$LAST_PID" 2>/dev/null || die "$1 exited (see $WORK/$1.log)"
    sleep 0.1
  done
  die "$1 did not become ready"
}

stop_pid() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# seed PORT DATA N NAME: N enrollments through the service API's bulk
# operation (10 per POST /enrollments, 16 keep-alive connections), the
# path a fleet's import takes; prints how long it took.
seed() {
  local t0 t1
  t0=$(date +%s.%N)
  "$LOADGEN" --mode enroll-bulk --ids "$3" --count $(( ($3 + 9) / 10 )) \
    --concurrency 16 --url "https://127.0.0.1:$1" --data-dir "$2" \
    --prefix "$PREFIX" --keys-seed "$SEED" >"$WORK/seed-$3.out" ||
    die "seeding failed (see $WORK/seed-$3.out)"
  t1=$(date +%s.%N)
  python3 -c 'import sys; n, s = int(sys.argv[1]), float(sys.argv[3]) - float(sys.argv[2]); print(f"seeded {n} enrollments ({sys.argv[4]}) in {s:.1f} s: {n / s:.0f} enrollments/s")' \
    "$3" "$t0" "$t1" "$4"
}

load() { # NAME PORT DATA N: prints the registrations completed
  "$LOADGEN" --mode register --concurrency "$CONCURRENCY" --duration "$DURATION" \
    --url "https://127.0.0.1:$2" --ca "$3/tls/ca.pem" --scope "$SCOPE" \
    --ids "$4" --prefix "$PREFIX" --keys-seed "$SEED" >"$WORK/$1.out" || true
  grep '^RESULT ' "$WORK/$1.out" | tr ' ' '\n' | sed -n 's/^ok=//p'
}

haproxy_up() { # PORT BACKEND_PORTS...: sets HAPROXY_PID
  local port=$1 i=0 b
  shift
  {
    printf 'defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n'
    printf 'frontend dps\n  bind 127.0.0.1:%s\n  default_backend provd\n' "$port"
    printf 'backend provd\n  balance roundrobin\n'
    for b in "$@"; do
      i=$((i + 1))
      printf '  server p%s 127.0.0.1:%s check inter 500ms\n' "$i" "$b"
    done
  } >"$WORK/haproxy.cfg"
  haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
  HAPROXY_PID=$!
  PIDS+=("$HAPROXY_PID")
  sleep 1.5
}

TICK=$(getconf CLK_TCK)

# measure NAME N_INSTANCES STORAGE_YAML DATA N: one run, one result line.
measure() {
  local name=$1 count=$2 storage=$3 data=$4 n=$5 port i p
  local ports=() pids=()
  for i in $(seq 1 "$count"); do
    port=$(free_port)
    config "$WORK/$name-$i.yaml" "$data" "$port" "$storage"
    start_provd "$name-$i" "$WORK/$name-$i.yaml" "$port" "$data"
    ports+=("$port")
    pids+=("$LAST_PID")
  done
  local target=${ports[0]} hp=
  if [ "$count" -gt 1 ]; then
    target=$(free_port)
    haproxy_up "$target" "${ports[@]}"
    hp=$HAPROXY_PID
  fi
  local pg0=0 pg1=0 p0 p1 t0 t1 ok
  [[ $storage == *sqlite* ]] || pg0=$(cpu_ticks $(pg_pids))
  p0=$(cpu_ticks "${pids[@]}")
  t0=$(date +%s.%N)
  ok=$(load "$name" "$target" "$data" "$n")
  t1=$(date +%s.%N)
  p1=$(cpu_ticks "${pids[@]}")
  [[ $storage == *sqlite* ]] || pg1=$(cpu_ticks $(pg_pids))
  for p in "${pids[@]}" $hp; do stop_pid "$p"; done
  python3 - "$name" "${ok:-0}" "$t0" "$t1" "$((p1 - p0))" "$((pg1 - pg0))" "$TICK" "$WORK/results" <<'PY'
import sys
name, ok, t0, t1, ptk, pgtk, tick, results = sys.argv[1:]
ok, el, tick = int(ok), float(t1) - float(t0), float(tick)
def per(ticks):
    return int(ticks) / tick * 1000.0 / ok if ok else 0.0
rate = ok / el if el > 0 else 0.0
print(f"{name:<24} {rate:8.1f} reg/s   provd {per(ptk):6.3f} ms CPU/reg"
      f"   postgres {per(pgtk):6.3f} ms CPU/reg")
with open(results, "a") as f:
    f.write(f"{name} {rate:.1f} {per(ptk):.3f} {per(pgtk):.3f}\n")
PY
}

echo "== scale-out benchmark: $CONCURRENCY concurrent devices, ${DURATION}s per run, $ENROLLMENTS enrollments, $WORKERS workers per instance; $(nproc) cores shared by everything; load average before: $(cut -d' ' -f1-3 /proc/loadavg) =="
CONNINFO=$("$ROOT/scripts/pg-test-cluster.sh" start "$PG")
PGSTORE="{ plugin: postgres, options: { conninfo: \"$CONNINFO\", pool_size: 8 } }"

# Each store is seeded once, through one provd.
seed_store() { # NAME DATA STORAGE_YAML N
  local port
  port=$(free_port)
  config "$WORK/$1.yaml" "$2" "$port" "$3"
  start_provd "$1" "$WORK/$1.yaml" "$port" "$2"
  seed "$port" "$2" "$4" "$1"
  stop_pid "$LAST_PID"
}
mkdir -p "$WORK/sqlite" "$WORK/pgdata"
seed_store seed-sqlite "$WORK/sqlite" "{ plugin: sqlite }" "$ENROLLMENTS"
seed_store seed-pg "$WORK/pgdata" "$PGSTORE" "$ENROLLMENTS"

measure sqlite-1 1 "{ plugin: sqlite }" "$WORK/sqlite" "$ENROLLMENTS"
measure postgres-1 1 "$PGSTORE" "$WORK/pgdata" "$ENROLLMENTS"
measure postgres-2-haproxy 2 "$PGSTORE" "$WORK/pgdata" "$ENROLLMENTS"
measure postgres-3-haproxy 3 "$PGSTORE" "$WORK/pgdata" "$ENROLLMENTS"

if [ "$LARGE" -gt 0 ]; then
  # A database of its own, so that the same device names are seeded anew.
  psql "$CONNINFO" -qX -c 'CREATE DATABASE provd_large' >/dev/null
  LARGESTORE="{ plugin: postgres, options: { conninfo: \"${CONNINFO/dbname=provd/dbname=provd_large}\", pool_size: 8 } }"
  echo "== seeding $LARGE enrollments into PostgreSQL =="
  mkdir -p "$WORK/pglarge"
  seed_store seed-large "$WORK/pglarge" "$LARGESTORE" "$LARGE"
  # What an operator does after a bulk load: statistics and dead tuples
  # settled, dirty pages written, so no autovacuum or checkpoint of the
  # load runs during the measurement.
  echo "== VACUUM ANALYZE and CHECKPOINT after the load =="
  psql "${CONNINFO/dbname=provd/dbname=provd_large}" -qX \
    -c 'VACUUM ANALYZE' -c 'CHECKPOINT' >/dev/null
  # The same $ENROLLMENTS devices register against both stores (the same
  # mix of first and repeated registrations, the same client work), the
  # small and the large store alternately, so only the store's size
  # differs between each pair of runs.
  for count in 1 3; do
    name=postgres-$count
    [ "$count" = 1 ] || name=postgres-3-haproxy
    measure "$name-at-$ENROLLMENTS" "$count" "$PGSTORE" "$WORK/pgdata" \
      "$ENROLLMENTS"
    measure "$name-at-$LARGE" "$count" "$LARGESTORE" "$WORK/pglarge" \
      "$ENROLLMENTS"
  done
  awk -v small="$ENROLLMENTS" -v large="$LARGE" '
    { rate[$1] = $2; cpu[$1] = $3 }
    END {
      split("postgres-1 postgres-3-haproxy", names, " ")
      for (i = 1; i <= 2; i++) {
        s = names[i] "-at-" small; l = names[i] "-at-" large
        if (rate[s] > 0 && cpu[l] > 0)
          printf "%s: rate at %d enrollments = %.2f x the rate at %d (target >= 0.90); provd CPU per registration %.2f x\n",
            names[i], large, rate[l] / rate[s], small, cpu[l] / cpu[s]
      }
    }' "$WORK/results"
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
