#!/usr/bin/env bash
# Registration benchmark: provd's symmetric-key registration throughput
# against the TLS ceiling of its own listener stack (provd-tls-baseline),
# both with a full TLS handshake per device.  See docs/benchmark.md.
# Builds nothing: run `make build` first (or `make bench`).
#
# Knobs: BENCH_DURATION (s per run, 15), BENCH_ROUNDS (3 alternating
# register/baseline rounds; the ratio is their median), BENCH_CONCURRENCY (200),
# BENCH_ENROLLMENTS (100000), BENCH_WORKERS (nproc), BENCH_SERVER_CPUS and
# BENCH_CLIENT_CPUS (taskset lists; empty = no pinning), BENCH_BUILD_DIR
# (build), BENCH_KEEP=1 keeps the work directory.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BENCH_BUILD_DIR:-$ROOT/build}
DURATION=${BENCH_DURATION:-15}
ROUNDS=${BENCH_ROUNDS:-3}
CONCURRENCY=${BENCH_CONCURRENCY:-200}
ENROLLMENTS=${BENCH_ENROLLMENTS:-100000}
WORKERS=${BENCH_WORKERS:-$(nproc)}
SERVER_CPUS=${BENCH_SERVER_CPUS:-}
CLIENT_CPUS=${BENCH_CLIENT_CPUS:-}
KEEP=${BENCH_KEEP:-0}

SCOPE=0ne00000001
SEED=provd-bench-seed
PREFIX=bench-dev-
PROVD=$BUILD/provd
LOADGEN=$BUILD/bench/provd-loadgen
BASELINE=$BUILD/bench/provd-tls-baseline
STARTUP_TIMEOUT_S=60
STOP_TIMEOUT_S=30

die() { echo "bench: $*" >&2; exit 1; }

check_setup() {
  local f
  for f in "$PROVD" "$LOADGEN" "$BASELINE"; do
    [ -x "$f" ] || die "missing $f: run 'make build' first"
  done
  [ -x /usr/bin/time ] || die "/usr/bin/time is needed for CPU accounting"
  [[ $DURATION =~ ^[0-9]+$ && $DURATION -ge 1 && $DURATION -le 3600 ]] ||
    die "BENCH_DURATION must be 1..3600 seconds"
  [[ $CONCURRENCY =~ ^[0-9]+$ && $CONCURRENCY -ge 1 && $CONCURRENCY -le 20000 ]] ||
    die "BENCH_CONCURRENCY must be 1..20000"
  [[ $ENROLLMENTS =~ ^[0-9]+$ && $ENROLLMENTS -ge 1 && $ENROLLMENTS -le 10000000 ]] ||
    die "BENCH_ENROLLMENTS must be 1..10000000"
  [[ $WORKERS =~ ^[0-9]+$ && $WORKERS -ge 1 && $WORKERS -le 256 ]] ||
    die "BENCH_WORKERS must be 1..256"
}

# ---- processes: every one we start is recorded and stopped on exit ----

WORK=
PIDS=()
cleanup() {
  local rc=$? pid
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [ -n "$WORK" ] && [ -d "$WORK" ]; then
    if [ "$KEEP" = 1 ] || [ $rc -ne 0 ]; then
      echo "bench: work directory kept: $WORK" >&2
    else
      rm -rf "$WORK"
    fi
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pin() {
  local cpus=$1
  shift
  if [ -n "$cpus" ]; then taskset -c "$cpus" "$@"; else "$@"; fi
}

# A free TCP port below the ephemeral range (so the load generator's own
# source ports never take it).
free_port() {
  local port
  for _ in $(seq 1 200); do
    port=$((20000 + RANDOM % 12000))
    if [ -z "$(ss -Htln "sport = :$port" 2>/dev/null)" ]; then
      echo "$port"
      return 0
    fi
  done
  die "no free port found"
}

# start_server NAME CMD...: runs CMD under /usr/bin/time (rusage of the
# whole server process: all threads, user + sys) with output in
# $WORK/NAME.log.  Sets TIME_PID (the time wrapper, which we wait on) and
# SERVER_PID (its only child, which we signal).
start_server() {
  local name=$1
  shift
  local cmd=(/usr/bin/time -f '%U %S %e' -o "$WORK/$name.time" "$@")
  [ -z "$SERVER_CPUS" ] || cmd=(taskset -c "$SERVER_CPUS" "${cmd[@]}")
  # A plain command (not a function) so that $! is time itself.
  "${cmd[@]}" >"$WORK/$name.log" 2>&1 &
  TIME_PID=$!
  PIDS+=("$TIME_PID")
  SERVER_PID=
  for _ in $(seq 1 100); do
    SERVER_PID=$(ps -o pid= --ppid "$TIME_PID" 2>/dev/null | tr -d ' ' || true)
    [ -n "$SERVER_PID" ] && return 0
    kill -0 "$TIME_PID" 2>/dev/null || break
    sleep 0.05
  done
  tail -n 20 "$WORK/$name.log" >&2 || true
  die "$name did not start"
}

# wait_ready NAME URL: polls until URL answers 2xx over TLS with the data
# dir's CA (which the server creates on first start).
wait_ready() {
  local name=$1 url=$2
  for _ in $(seq 1 $((STARTUP_TIMEOUT_S * 10))); do
    if ! kill -0 "$TIME_PID" 2>/dev/null; then
      tail -n 20 "$WORK/$name.log" >&2 || true
      die "$name exited during start-up (log: $WORK/$name.log)"
    fi
    if [ -f "$DATA/tls/ca.pem" ] &&
       curl -sf --max-time 2 --cacert "$DATA/tls/ca.pem" "$url" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.1
  done
  die "$name did not answer $url within ${STARTUP_TIMEOUT_S}s"
}

# stop_server NAME: SIGTERM, then wait for a clean exit (rusage is written
# when the server exits).
stop_server() {
  local name=$1
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  for _ in $(seq 1 $((STOP_TIMEOUT_S * 10))); do
    kill -0 "$TIME_PID" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$TIME_PID" 2>/dev/null; then
    echo "bench: $name ignored SIGTERM for ${STOP_TIMEOUT_S}s; killing" >&2
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  wait "$TIME_PID" 2>/dev/null || true
  forget_pid "$TIME_PID"
}

forget_pid() {
  local kept=() pid
  for pid in "${PIDS[@]}"; do
    [ "$pid" = "$1" ] || kept+=("$pid")
  done
  PIDS=("${kept[@]}")
}

# Server CPU seconds (user + system) from the time file's last line.
server_cpu() {
  tail -n 1 "$WORK/$1.time" | awk 'NF >= 2 { printf "%.2f", $1 + $2 }'
}

# field FILE KEY: a value from the loadgen's RESULT line.
field() {
  grep '^RESULT ' "$1" | tail -n 1 | tr ' ' '\n' | sed -n "s/^$2=//p" |
    sed 's:/s$::'
}

write_config() {
  cat >"$WORK/provd.yaml" <<EOF
# Written by bench/run.sh; shape of configs/provd.yaml.
id_scope: $SCOPE
listen:
  https: 127.0.0.1:$PORT
data_dir: $DATA
plugin_path: [ $BUILD/plugins ]
storage:
  plugin: sqlite
workers: $WORKERS
hubs:
  - { name: hub-1, hostname: hub-1.example.net, weight: 1 }
  - { name: hub-2, hostname: hub-2.example.net, weight: 1 }
plugins:
  - { kind: attestation, name: symmetric-key }
  - { kind: allocation, name: hashed }
EOF
}

# run_load NAME ARGS...: the load generator (stdout kept for the report,
# progress lines on stderr shown), pinned to the client CPUs.
run_load() {
  local name=$1
  shift
  pin "$CLIENT_CPUS" "$LOADGEN" "$@" >"$WORK/$name.out" || true
  grep -q '^RESULT ' "$WORK/$name.out" ||
    die "$name: no RESULT from the load generator (see $WORK/$name.out)"
  sed -n '/^== /,/^client cpu/p' "$WORK/$name.out" | sed 's/^/  /'
}

# ---- the phases ----

seed_enrollments() {
  echo "== seeding $ENROLLMENTS enrollments (service API, keep-alive) =="
  start_server provd-seed "$PROVD" -c "$WORK/provd.yaml"
  wait_ready provd-seed "https://127.0.0.1:$PORT/healthz"
  run_load enroll --mode enroll --count "$ENROLLMENTS" \
    --url "https://127.0.0.1:$PORT" --data-dir "$DATA" \
    --prefix "$PREFIX" --keys-seed "$SEED"
  stop_server provd-seed
  [ "$(field "$WORK/enroll.out" errors)" = 0 ] ||
    die "seeding had errors (see $WORK/enroll.out and $WORK/provd-seed.log)"
}

# A fresh provd process for the measured run, so its rusage covers the
# registrations (plus start-up and shutdown), not the seeding.
measure_register() { # ROUND
  echo "== round $1: register, $CONCURRENCY devices at a time for ${DURATION}s =="
  start_server "provd$1" "$PROVD" -c "$WORK/provd.yaml"
  wait_ready "provd$1" "https://127.0.0.1:$PORT/healthz"
  run_load "register$1" --mode register --concurrency "$CONCURRENCY" \
    --duration "$DURATION" --url "https://127.0.0.1:$PORT" \
    --ca "$DATA/tls/ca.pem" --scope "$SCOPE" --prefix "$PREFIX" \
    --ids "$ENROLLMENTS" --keys-seed "$SEED"
  stop_server "provd$1"
}

measure_baseline() { # ROUND
  local bport
  bport=$(free_port)
  echo "== round $1: baseline, same listener stack, certificate and workers, fixed answer =="
  start_server "baseline$1" "$BASELINE" --data-dir "$DATA" \
    --listen "127.0.0.1:$bport" --workers "$WORKERS"
  wait_ready "baseline$1" "https://127.0.0.1:$bport/"
  run_load "baseline$1" --mode baseline --concurrency "$CONCURRENCY" \
    --duration "$DURATION" --url "https://127.0.0.1:$bport" \
    --ca "$DATA/tls/ca.pem"
  stop_server "baseline$1"
}

# ---- the report ----

report_row() {
  local label=$1 name=$2 server=$3 ok cpu
  ok=$(field "$WORK/$name.out" ok)
  cpu=$(server_cpu "$server")
  awk -v l="$label" -v r="$(field "$WORK/$name.out" rate)" \
      -v p50="$(field "$WORK/$name.out" p50_ms)" \
      -v p99="$(field "$WORK/$name.out" p99_ms)" \
      -v e="$(field "$WORK/$name.out" errors)" -v ok="$ok" -v cpu="$cpu" \
      -v ccpu="$(field "$WORK/$name.out" cpu_client_s)" -v d="$DURATION" \
      'BEGIN { printf "%-10s %9.1f %8.2f %8.2f %7d %9.2f %9.3f %8.2f %9.2f\n",
               l, r, p50, p99, e, cpu, (ok > 0 ? cpu * 1000 / ok : 0),
               cpu / d, ccpu }'
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

report() {
  local r reg_rate base_rate errors=0 ratio ratios=() reg_rates=() base_rates=()
  for r in $(seq 1 "$ROUNDS"); do
    reg_rates+=("$(field "$WORK/register$r.out" rate)")
    base_rates+=("$(field "$WORK/baseline$r.out" rate)")
    ratios+=("$(awk -v a="${reg_rates[-1]}" -v b="${base_rates[-1]}" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')")
    errors=$(( errors + $(field "$WORK/register$r.out" errors) + $(field "$WORK/baseline$r.out" errors) ))
  done
  reg_rate=$(printf '%s\n' "${reg_rates[@]}" | median)
  base_rate=$(printf '%s\n' "${base_rates[@]}" | median)
  ratio=$(printf '%s\n' "${ratios[@]}" | median | awk '{ printf "%.2f", $1 }')
  echo
  echo "== provd registration benchmark =="
  echo "machine      $(nproc) cores, $(openssl version 2>/dev/null | cut -d' ' -f1-2), load average before the runs: $LOAD_BEFORE"
  awk -v l="$LOAD_BEFORE" -v n="$(nproc)" 'BEGIN { exit !(l > n / 4) }' &&
    echo "WARNING      the machine was busy before the runs: rates are skewed by other work"
  echo "load         $CONCURRENCY concurrent devices, ${DURATION}s per run, $ROUNDS alternating rounds, a new TLS connection + full handshake per device"
  echo "server       $WORKERS workers; pinned to: ${SERVER_CPUS:-all cores (no pinning)}"
  echo "client       pinned to: ${CLIENT_CPUS:-all cores (no pinning)}; it shares the machine with the server"
  echo "seeding      $ENROLLMENTS enrollments in $(field "$WORK/enroll.out" elapsed_s)s ($(field "$WORK/enroll.out" rate)/s)"
  echo
  printf "%-10s %9s %8s %8s %7s %9s %9s %8s %9s\n" "run" "rate/s" "p50 ms" \
    "p99 ms" "errors" "srv cpu s" "srv ms/req" "srv cores" "cli cpu s"
  for r in $(seq 1 "$ROUNDS"); do
    report_row "register$r" "register$r" "provd$r"
    report_row "baseline$r" "baseline$r" "baseline$r"
  done
  echo
  echo "ratio per round: ${ratios[*]}"
  echo "ratio = median over rounds of register_rate / baseline_rate = $ratio"
  echo "BENCH ratio=$ratio register_rate=$reg_rate baseline_rate=$base_rate errors=$errors"
  [ "$errors" -eq 0 ] || return 3
}

main() {
  check_setup
  LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg)
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/provd-bench.XXXXXX")
  DATA=$WORK/data
  PORT=$(free_port)
  write_config
  seed_enrollments
  # Alternating rounds: a drift in the machine's speed (a shared VM) hits
  # both sides alike, and the median ratio ignores one odd round.
  local r
  for r in $(seq 1 "$ROUNDS"); do
    measure_register "$r"
    measure_baseline "$r"
  done
  report
}

main "$@"
