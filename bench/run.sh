#!/usr/bin/env bash
# Registration benchmark: server CPU per symmetric-key registration in
# provd against two ceilings that only do TLS and answer a fixed body:
# provd's own listener stack (provd-tls-baseline) and nginx, all with a
# full TLS handshake per device.  See docs/benchmark.md.
# Builds nothing: run `make build` first (or `make bench`).
#
# Knobs: BENCH_DURATION (s per run, 5), BENCH_ROUNDS (9 alternating
# register/baseline/nginx rounds; figures are medians), BENCH_CONCURRENCY
# (32), BENCH_ENROLLMENTS (100000), BENCH_SEED_CONCURRENCY (16 connections
# seeding), BENCH_WORKERS (nproc), BENCH_NGINX (the
# nginx binary; found on PATH or in /usr/sbin), BENCH_SERVER_CPUS and
# BENCH_CLIENT_CPUS (taskset lists; empty = no pinning), BENCH_BUILD_DIR
# (build), BENCH_KEEP=1 keeps the work directory, BENCH_KIND (individual:
# each device has its own enrollment; group: devices derive their keys
# from one symmetric-key enrollment group, beside the seeded individual
# enrollments; x509: mutual TLS, every device presents its own ECDSA P-256
# certificate signed by one enrollment group's CA, BENCH_X509_DEVICES of
# them (20000), and the ceilings get the same client certificates; mqtt:
# individual enrollments registering over MQTT/TLS against the same HTTPS
# ceilings; tpm:
# TPM devices (software TPM, the whole challenge round) against
# symmetric-key devices in the same run, no ceilings),
# BENCH_NOTIFIERS=1 (provd also runs a webhook and an smtp notifier for
# every event, against receivers that take 1 s per request: compare
# register_rate with a run without), BENCH_LIMITS (the body of a
# `limits: { ... }` map for provd's config, e.g. "max_handshakes: 64"),
# BENCH_RATE (an open loop: that many units start per second, the same
# rate for provd and both ceilings, up to BENCH_CONCURRENCY in flight;
# empty: closed loop, each device starts its next unit when one ends),
# BENCH_COMMIT_WINDOW (provd's storage.commit_window, e.g. "0s"; empty:
# provd's default), BENCH_STORAGE_OPTIONS (the body of the sqlite plugin's
# `options: { ... }`, e.g. "mmap_size: 256MiB").
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BENCH_BUILD_DIR:-$ROOT/build}
DURATION=${BENCH_DURATION:-5}
ROUNDS=${BENCH_ROUNDS:-9}
CONCURRENCY=${BENCH_CONCURRENCY:-32}
ENROLLMENTS=${BENCH_ENROLLMENTS:-100000}
WORKERS=${BENCH_WORKERS:-$(nproc)}
SERVER_CPUS=${BENCH_SERVER_CPUS:-}
CLIENT_CPUS=${BENCH_CLIENT_CPUS:-}
KEEP=${BENCH_KEEP:-0}
SEED_CONCURRENCY=${BENCH_SEED_CONCURRENCY:-16}
NGINX=${BENCH_NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
KIND=${BENCH_KIND:-individual}
X509_DEVICES=${BENCH_X509_DEVICES:-20000}
NOTIFIERS=${BENCH_NOTIFIERS:-0}
LIMITS=${BENCH_LIMITS:-}
RATE=${BENCH_RATE:-}
COMMIT_WINDOW=${BENCH_COMMIT_WINDOW:-}
STORAGE_OPTIONS=${BENCH_STORAGE_OPTIONS:-}

SCOPE=0ne00000001
SEED=provd-bench-seed
PREFIX=bench-dev-
GROUP_ID=bench-group
GROUP_PREFIX=bench-grp-
X509_GROUP_ID=bench-x509
X509_PREFIX=bench-x509-
TPM_PREFIX=bench-tpm-
PROVCTL=$BUILD/provctl
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
  [ "$KIND" = tpm ] || [ -x "$NGINX" ] ||
    die "nginx is needed as the external ceiling: run scripts/install-deps.sh (Debian nginx-light) or set BENCH_NGINX"
  [[ $DURATION =~ ^[0-9]+$ && $DURATION -ge 1 && $DURATION -le 3600 ]] ||
    die "BENCH_DURATION must be 1..3600 seconds"
  [[ $CONCURRENCY =~ ^[0-9]+$ && $CONCURRENCY -ge 1 && $CONCURRENCY -le 20000 ]] ||
    die "BENCH_CONCURRENCY must be 1..20000"
  [[ -z $RATE || ( $RATE =~ ^[0-9]+$ && $RATE -ge 1 && $RATE -le 100000 ) ]] ||
    die "BENCH_RATE must be 1..100000 units per second"
  [[ -z $RATE || $KIND != tpm ]] ||
    die "BENCH_RATE is for the kinds measured against the ceilings, not tpm"
  [[ $ENROLLMENTS =~ ^[0-9]+$ && $ENROLLMENTS -ge 1 && $ENROLLMENTS -le 10000000 ]] ||
    die "BENCH_ENROLLMENTS must be 1..10000000"
  [[ $SEED_CONCURRENCY =~ ^[0-9]+$ && $SEED_CONCURRENCY -ge 1 && $SEED_CONCURRENCY -le 1000 ]] ||
    die "BENCH_SEED_CONCURRENCY must be 1..1000"
  [[ $KIND == individual || $KIND == group || $KIND == x509 || $KIND == tpm || $KIND == mqtt ]] ||
    die "BENCH_KIND must be individual, group, x509, tpm or mqtt"
  [[ $X509_DEVICES =~ ^[0-9]+$ && $X509_DEVICES -ge 1 && $X509_DEVICES -le 200000 ]] ||
    die "BENCH_X509_DEVICES must be 1..200000"
  [ "$KIND" = individual ] || [ "$KIND" = mqtt ] || [ -x "$PROVCTL" ] ||
    die "missing $PROVCTL: run 'make build' first"
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

# Server CPU seconds (user + system) of the run NAME: what /proc counted
# over that run of a server that serves every round (NAME.cpu, see
# timed_load), else the time file's last line (a server started for that
# one run: bench/scale.sh, bench/overload.sh).
server_cpu() {
  if [ -f "$WORK/$1.cpu" ]; then
    cat "$WORK/$1.cpu"
  else
    tail -n 1 "$WORK/$1.time" | awk 'NF >= 2 { printf "%.2f", $1 + $2 }'
  fi
}

# process_ticks PID: CPU clock ticks (user + system, all threads) the
# running process PID and its children (nginx's workers) have used.
process_ticks() {
  local pid total=0 t
  for pid in "$1" $(ps -o pid= --ppid "$1" 2>/dev/null); do
    t=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null) || t=0
    total=$(( total + ${t:-0} ))
  done
  echo "$total"
}

# field FILE KEY: a value from the loadgen's RESULT line.
field() {
  grep '^RESULT ' "$1" | tail -n 1 | tr ' ' '\n' | sed -n "s/^$2=//p" |
    sed 's:/s$::'
}

write_config() {
  cat >"$CONFIG" <<EOF
# Written by bench/run.sh; shape of configs/provd.yaml.
id_scope: $SCOPE
listen:
  https: 127.0.0.1:$PORT
$([ "$KIND" != mqtt ] || echo "  mqtt: 127.0.0.1:$MQTT_PORT")
data_dir: $DATA
plugin_path: [ $BUILD/plugins ]
storage:
  plugin: sqlite
$([ -z "$COMMIT_WINDOW" ] || echo "  commit_window: $COMMIT_WINDOW")
$([ -z "$STORAGE_OPTIONS" ] || echo "  options: { $STORAGE_OPTIONS }")
workers: $WORKERS
hubs:
  - { name: hub-1, hostname: hub-1.example.net, weight: 1 }
  - { name: hub-2, hostname: hub-2.example.net, weight: 1 }
plugins:
  - { kind: attestation, name: symmetric-key }
$([ "$KIND" != x509 ] || echo "  - { kind: attestation, name: x509 }")
$([ "$KIND" != tpm ] || echo "  - { kind: attestation, name: tpm }")
  - { kind: allocation, name: hashed }
$([ -z "$LIMITS" ] || echo "limits: { $LIMITS }")
EOF
  [ "$NOTIFIERS" = 1 ] || return 0
  cat >>"$CONFIG" <<EOF
  - kind: notifier
    name: webhook
    id: slow-hook
    options: { url: "http://127.0.0.1:$HOOK_PORT/slow", secret: bench, timeout: 5s }
  - kind: notifier
    name: smtp
    id: slow-mail
    options: { url: "smtp://127.0.0.1:$SMTP_PORT", from: bench@example.net, to: [ ops@example.net ], starttls: "off" }
EOF
}

# start_slow_receivers: the webhook and SMTP sinks of BENCH_NOTIFIERS=1,
# each answering after one second.
start_slow_receivers() {
  [ "$NOTIFIERS" = 1 ] || return 0
  local py=python3
  "$py" -c 'import aiosmtpd' 2>/dev/null || py=/usr/bin/python3
  python3 "$ROOT/tests/e2e/lib/notify_peer.py" receive --port "$HOOK_PORT" \
    --log "$WORK/hook.jsonl" --secret bench &
  PIDS+=("$!")
  PYTHONPATH="$ROOT/bench" "$py" -m aiosmtpd -n -l "127.0.0.1:$SMTP_PORT" \
    -c slow_smtp.SlowSink 2>>"$WORK/smtpd.err" &
  PIDS+=("$!")
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

# seed_enrollments [NAME]: BENCH_ENROLLMENTS enrollments through the
# service API's bulk operations (10 per POST /enrollments), a progress
# line every 10 %.
seed_enrollments() {
  local name=${1:-enroll}
  echo "== seeding $ENROLLMENTS enrollments: $(( (ENROLLMENTS + 9) / 10 )) bulk operations of 10 (the progress counts operations), $SEED_CONCURRENCY keep-alive connections =="
  start_server "provd-seed-$name" "$PROVD" -c "$CONFIG"
  wait_ready "provd-seed-$name" "https://127.0.0.1:$PORT/healthz"
  run_load "$name" --mode enroll-bulk --ids "$ENROLLMENTS" \
    --count $(( (ENROLLMENTS + 9) / 10 )) --concurrency "$SEED_CONCURRENCY" \
    --url "https://127.0.0.1:$PORT" --data-dir "$DATA" \
    --prefix "$PREFIX" --keys-seed "$SEED"
  case $KIND in
    group|x509) seed_group "$name" ;;
    tpm) seed_tpm "$name" ;;
  esac
  stop_server "provd-seed-$name"
  [ "$(field "$WORK/$name.out" errors)" = 0 ] ||
    die "seeding had errors (see $WORK/$name.out and $WORK/provd-seed-$name.log)"
}

# seed_tpm NAME: as many TPM enrollments (TPM_PREFIX*), all with the
# software TPM's EK (the server's work does not depend on which EK).
seed_tpm() {
  echo "== $ENROLLMENTS TPM enrollments ($TPM_PREFIX*, the software TPM's EK) =="
  run_load "$1-tpm" --mode enroll-bulk --ids "$ENROLLMENTS" \
    --count $(( (ENROLLMENTS + 9) / 10 )) --concurrency "$SEED_CONCURRENCY" \
    --url "https://127.0.0.1:$PORT" --data-dir "$DATA" \
    --prefix "$TPM_PREFIX" --tpm-keys "$TPM_KEYS"
  [ "$(field "$WORK/$1-tpm.out" errors)" = 0 ] ||
    die "seeding TPM enrollments had errors (see $WORK/$1-tpm.out)"
}

# The group key is derived from the seed, so nothing secret is stored.
group_key() {
  printf '%s-group' "$SEED" | openssl dgst -sha256 -binary | base64
}

# seed_group NAME: one symmetric-key enrollment group (BENCH_KIND=group)
# whose members register as GROUP_PREFIX0 ... on the seeding server.
seed_group() {
  [ "$KIND" = x509 ] && { seed_x509_group "$1"; return; }
  echo "== enrollment group $GROUP_ID (devices $GROUP_PREFIX*, keys derived from the group key) =="
  "$PROVCTL" --url "https://127.0.0.1:$PORT" --data-dir "$DATA" \
    group add "$GROUP_ID" --primary-key "$(group_key)" \
    --secondary-key "$(group_key)" --force >"$WORK/$1-group.out" 2>&1 ||
    die "creating the enrollment group failed (see $WORK/$1-group.out)"
}

# The device ids and key arguments of the register and ceiling loads.
# seed_x509_group NAME: an ECDSA P-256 CA and one X.509 enrollment group
# on it (BENCH_KIND=x509); the load generator signs each device's
# certificate with it before the measured runs.
seed_x509_group() {
  echo "== enrollment group $X509_GROUP_ID (X.509: $X509_DEVICES devices $X509_PREFIX*, each with its own certificate from the group's CA) =="
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -subj "/CN=provd bench device CA" -days 30 \
    -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,cRLSign \
    -keyout "$WORK/x509-ca.key" -out "$WORK/x509-ca.pem" >"$WORK/$1-x509-ca.out" 2>&1 ||
    die "making the device CA failed (see $WORK/$1-x509-ca.out)"
  "$PROVCTL" --url "https://127.0.0.1:$PORT" --data-dir "$DATA" \
    group add "$X509_GROUP_ID" --attestation x509 --ca-cert "$WORK/x509-ca.pem" \
    --force >"$WORK/$1-group.out" 2>&1 ||
    die "creating the X.509 enrollment group failed (see $WORK/$1-group.out)"
}

device_args() {
  if [ "$KIND" = x509 ]; then
    echo --prefix "$X509_PREFIX" --ids "$X509_DEVICES" \
      --client-ca "$WORK/x509-ca.pem" --client-ca-key "$WORK/x509-ca.key"
  elif [ "$KIND" = group ]; then
    echo --prefix "$GROUP_PREFIX" --group-key "$(group_key)"
  else
    echo --prefix "$PREFIX" --keys-seed "$SEED"
  fi
}

# seeding_line NAME: "N enrollments in S s (R/s)".
seeding_line() {
  local elapsed
  elapsed=$(field "$WORK/$1.out" elapsed_s)
  awk -v n="$ENROLLMENTS" -v s="$elapsed" \
    'BEGIN { printf "%d enrollments in %.1f s (%.0f/s)", n, s, (s > 0 ? n / s : 0) }'
}

# The load line of the reports.
load_shape() {
  if [ -n "$RATE" ]; then
    echo "open loop: $RATE units started per second for every server (at most $CONCURRENCY in flight)"
  else
    echo "closed loop: $CONCURRENCY concurrent devices"
  fi
}

# BENCH_RATE: an open loop at that many units per second, the same for
# provd and the ceilings, so that every server is measured at one load.
rate_args() {
  [ -z "$RATE" ] || echo --rate "$RATE"
}

# Where the next register run on a store starts (NEXT_DEVICE[STORE], the
# load generator's next_id): each run goes on with devices the store has
# not registered yet, so that every registration is a device's first, as
# on a booting fleet, until the enrollments run out (the report says how
# many were registered again).
declare -A NEXT_DEVICE=()

# devices_used STORE LOADGEN_OUT: the next run on STORE starts after the
# devices this one used.
devices_used() {
  local next
  next=$(field "$2" next_id)
  [ -z "$next" ] || NEXT_DEVICE[$1]=$next
}

# The devices the register load cycles over.
device_count() {
  if [ "$KIND" = x509 ]; then echo "$X509_DEVICES"; else echo "$ENROLLMENTS"; fi
}

# set_register_load SECONDS [STORE]: LOAD_ARGS = the load generator's
# arguments for that long a register load against PORT (BENCH_KIND=mqtt:
# the same devices over MQTT/TLS on MQTT_PORT, docs/mqtt.md), from the
# first device STORE (default main) has not registered.
set_register_load() {
  local mode=register port=$PORT
  [ "$KIND" != mqtt ] || { mode=register-mqtt; port=$MQTT_PORT; }
  # shellcheck disable=SC2207 # device_args is a list of arguments
  LOAD_ARGS=(--mode "$mode" --concurrency "$CONCURRENCY" --duration "$1"
    --url "https://127.0.0.1:$port" --ca "$DATA/tls/ca.pem" --scope "$SCOPE"
    --ids "$ENROLLMENTS" $(device_args) $(rate_args)
    --first-id "${NEXT_DEVICE[${2:-main}]:-0}")
}

# A fresh provd process for the measured run, so its rusage covers the
# registrations (plus start-up and shutdown), not the seeding.
measure_register() { # ROUND [TAG]
  local r=$1 tag=${2:-}
  echo "== round $r: register$tag, $(load_shape) for ${DURATION}s, $ENROLLMENTS enrollments =="
  start_server "provd$tag$r" "$PROVD" -c "$CONFIG"
  wait_ready "provd$tag$r" "https://127.0.0.1:$PORT/healthz"
  set_register_load "$DURATION" "main$tag"
  run_load "register$tag$r" "${LOAD_ARGS[@]}"
  devices_used "main$tag" "$WORK/register$tag$r.out"
  stop_server "provd$tag$r"
}

# The fixed answer of both ceilings (FIXED_BODY in bench/tls_baseline.c).
NGINX_BODY='{"operationId":"5.0000000000000000.00000000-0000-0000-0000-000000000000","status":"assigning"}'

# nginx with provd's TLS settings (core/tls/server_ctx.c tls_server_ctx_new):
# the data dir's P-256 certificate, TLS 1.2+, the same TLS 1.2 cipher
# list, a client certificate requested but not required, no session
# cache, no tickets.  Everything it writes stays in its own prefix; no
# system configuration is read.
write_nginx_config() { # PREFIX PORT
  mkdir -p "$1/logs" "$1/tmp"
  cat >"$1/nginx.conf" <<EOF
# Written by bench/run.sh.
worker_processes $WORKERS;
pid $1/nginx.pid;
error_log $1/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $1/tmp/body;
  proxy_temp_path $1/tmp/proxy;
  fastcgi_temp_path $1/tmp/fastcgi;
  uwsgi_temp_path $1/tmp/uwsgi;
  scgi_temp_path $1/tmp/scgi;
  server {
    listen 127.0.0.1:$2 ssl;
    ssl_certificate $DATA/tls/server.pem;
    ssl_certificate_key $DATA/tls/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers "$(tls12_ciphers)";
    ssl_prefer_server_ciphers on;
    ssl_session_cache off;
    ssl_session_tickets off;
    ssl_verify_client optional_no_ca;
    default_type "application/json; charset=utf-8";
    location / { return 202 '$NGINX_BODY'; }
  }
}
EOF
}

# provd's TLS 1.2 cipher list, read from the source so the two cannot drift.
tls12_ciphers() {
  sed -n '/#define TLS12_CIPHERS/{n;p}' "$ROOT/core/tls/server_ctx.c" |
    sed 's/^[^"]*"\([^"]*\)".*/\1/'
}

# ---- the measured rounds ----

# The servers of the rounds start once, after the seeding, and serve every
# round; a run's server CPU is what /proc counted for the process (and
# nginx's workers) between the start and the end of that run.  Runs a few
# seconds apart see the same machine, where runs separated by a restart
# each saw the shared VM's speed of their own minute.
declare -A SERVING_PID=() SERVING_TIME=() SERVING_PORT=()

# serve NAME PORT CMD...: starts a server for all the rounds.
serve() {
  local name=$1 port=$2
  shift 2
  start_server "$name" "$@"
  SERVING_PID[$name]=$SERVER_PID
  SERVING_TIME[$name]=$TIME_PID
  SERVING_PORT[$name]=$port
}

unserve() {
  SERVER_PID=${SERVING_PID[$1]}
  TIME_PID=${SERVING_TIME[$1]}
  stop_server "$1"
}

# serve_all: provd over the seeded data dir, and for the kinds measured
# against the ceilings provd-tls-baseline (provd's listener code, same
# certificate and workers) and nginx with provd's TLS settings.
serve_all() {
  serve provd "$PORT" "$PROVD" -c "$CONFIG"
  wait_ready provd "https://127.0.0.1:$PORT/healthz"
  [ "$KIND" != tpm ] || return 0
  local bport nport prefix=$WORK/nginx
  bport=$(free_port)
  serve baseline "$bport" "$BASELINE" --data-dir "$DATA" \
    --listen "127.0.0.1:$bport" --workers "$WORKERS"
  wait_ready baseline "https://127.0.0.1:$bport/"
  nport=$(free_port)
  while [ "$nport" = "$bport" ]; do nport=$(free_port); done
  write_nginx_config "$prefix" "$nport"
  # daemon off: the master stays the child of time, its workers are its
  # children (process_ticks counts them).
  serve nginx "$nport" "$NGINX" -p "$prefix" -c "$prefix/nginx.conf" \
    -g 'daemon off;'
  wait_ready nginx "https://127.0.0.1:$nport/"
}

unserve_all() {
  local name
  for name in "${!SERVING_PID[@]}"; do unserve "$name"; done
}

# timed_load SERVER RUN ARGS...: the load generator against the running
# SERVER (output RUN.out); the server's CPU seconds over it go to RUN.cpu
# (server_cpu RUN reads them back).
timed_load() {
  local server=$1 run=$2 before after
  shift 2
  before=$(process_ticks "${SERVING_PID[$server]}")
  run_load "$run" "$@"
  after=$(process_ticks "${SERVING_PID[$server]}")
  awk -v t=$(( after - before )) -v hz="$(getconf CLK_TCK)" \
    'BEGIN { printf "%.2f\n", t / hz }' >"$WORK/$run.cpu"
}

round_register() { # ROUND
  echo "== round $1: register, $(load_shape) for ${DURATION}s =="
  set_register_load "$DURATION" main
  timed_load provd "register$1" "${LOAD_ARGS[@]}"
  devices_used main "$WORK/register$1.out"
}

# The TPM devices: a new connection each, PUT register with EK and SRK,
# the 401 challenge activated in software, the same PUT with the token,
# the polls.
round_register_tpm() { # ROUND
  echo "== round $1: register-tpm, $CONCURRENCY devices at a time for ${DURATION}s =="
  timed_load provd "register-tpm$1" --mode register-tpm \
    --concurrency "$CONCURRENCY" --duration "$DURATION" \
    --url "https://127.0.0.1:$PORT" --ca "$DATA/tls/ca.pem" --scope "$SCOPE" \
    --ids "$ENROLLMENTS" --prefix "$TPM_PREFIX" --tpm-keys "$TPM_KEYS" \
    --first-id "${NEXT_DEVICE[tpm]:-0}"
  devices_used tpm "$WORK/register-tpm$1.out"
}

# A ceiling run: the same requests as a registration (PUT register with
# the device's token, then one GET of an operation, on one new connection
# with a full handshake), answered with a fixed body.
round_ceiling() { # SERVER ROUND
  case $1 in
  baseline) echo "== round $2: baseline, same listener stack, certificate and workers, fixed answer ==" ;;
  nginx) echo "== round $2: nginx, same certificate, TLS settings and workers, fixed answer ==" ;;
  esac
  # shellcheck disable=SC2046 # device_args and rate_args are lists
  timed_load "$1" "$1$2" --mode baseline --concurrency "$CONCURRENCY" \
    --duration "$DURATION" --url "https://127.0.0.1:${SERVING_PORT[$1]}" \
    --ca "$DATA/tls/ca.pem" --scope "$SCOPE" --ids "$ENROLLMENTS" \
    $(device_args) $(rate_args)
}

# ---- the report ----

# Server CPU µs per successful unit of one run.
cpu_us_per_unit() { # LOADGEN_OUT SERVER
  awk -v cpu="$(server_cpu "$2")" -v ok="$(field "$WORK/$1.out" ok)" \
    'BEGIN { printf "%.0f\n", (ok > 0 ? cpu * 1e6 / ok : 0) }'
}

report_row() {
  local label=$1 name=$2 server=$3 ok cpu
  ok=$(field "$WORK/$name.out" ok)
  cpu=$(server_cpu "$server")
  awk -v l="$label" -v r="$(field "$WORK/$name.out" rate)" \
      -v p50="$(field "$WORK/$name.out" p50_ms)" \
      -v p99="$(field "$WORK/$name.out" p99_ms)" \
      -v e="$(field "$WORK/$name.out" errors)" -v ok="$ok" -v cpu="$cpu" \
      -v res="$(field "$WORK/$name.out" resumed)" \
      -v ccpu="$(field "$WORK/$name.out" cpu_client_s)" -v d="$DURATION" \
      'BEGIN { printf "%-10s %9.1f %8.2f %8.2f %7d %8d %9.2f %10.0f %8.2f %9.2f\n",
               l, r, p50, p99, e, res, cpu, (ok > 0 ? cpu * 1e6 / ok : 0),
               cpu / d, ccpu }'
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# median_of KIND FIELD: the median over rounds of a loadgen field
# (KIND register|baseline|nginx).
median_of() {
  local r
  for r in $(seq 1 "$ROUNDS"); do field "$WORK/$1$r.out" "$2"; done | median
}

# median_cpu KIND: median server CPU µs per unit of the runs KIND1..
median_cpu() {
  local r
  for r in $(seq 1 "$ROUNDS"); do cpu_us_per_unit "$1$r" "$1$r"; done |
    median
}

# round_ratios CEILING: per round, the ceiling's CPU per unit over provd's
# per registration in the same round, one line each.  Their median is the
# efficiency: a ratio of two runs seconds apart, where the VM's drift over
# the minutes of a run cancels out.
round_ratios() {
  local r
  for r in $(seq 1 "$ROUNDS"); do
    awk -v c="$(cpu_us_per_unit "$1$r" "$1$r")" \
        -v p="$(cpu_us_per_unit "register$r" "register$r")" \
        'BEGIN { printf "%.2f\n", (p > 0 ? c / p : 0) }'
  done
}

report() {
  local r kind errors=0 resumed=0 missed=0 again reg_us base_us ngx_us eff_base eff_ngx ratios lo hi
  for r in $(seq 1 "$ROUNDS"); do
    for kind in register baseline nginx; do
      errors=$(( errors + $(field "$WORK/$kind$r.out" errors) ))
      resumed=$(( resumed + $(field "$WORK/$kind$r.out" resumed) ))
      [ -z "$RATE" ] || missed=$(( missed + $(field "$WORK/$kind$r.out" missed) ))
    done
  done
  reg_us=$(median_cpu register)
  base_us=$(median_cpu baseline)
  ngx_us=$(median_cpu nginx)
  eff_base=$(round_ratios baseline | median)
  ratios=$(round_ratios nginx | sort -g)
  eff_ngx=$(median <<<"$ratios")
  lo=$(head -n 1 <<<"$ratios")
  hi=$(tail -n 1 <<<"$ratios")
  echo
  echo "== provd registration benchmark =="
  echo "machine      $(nproc) cores, $(openssl version 2>/dev/null | cut -d' ' -f1-2), $("$NGINX" -v 2>&1 | sed 's/^nginx version: //'), load average before the runs: $LOAD_BEFORE"
  awk -v l="$LOAD_BEFORE" -v n="$(nproc)" 'BEGIN { exit !(l > n / 4) }' &&
    echo "WARNING      the machine was busy before the runs: rates are skewed by other work"
  echo "load         $(load_shape), ${DURATION}s per run, $ROUNDS alternating rounds; per device a new TLS connection + full handshake, $([ "$KIND" = mqtt ] && echo "MQTT CONNECT + SUBSCRIBE + PUBLISH register, one PUBLISH poll (the ceilings: PUT register, one GET)" || echo "PUT register, one GET of the operation")"
  echo "servers      $WORKERS workers each (provd, provd-tls-baseline, nginx); pinned to: ${SERVER_CPUS:-all cores (no pinning)}"
  echo "client       pinned to: ${CLIENT_CPUS:-all cores (no pinning)}; it shares the machine with the server"
  echo "seeding      $(seeding_line enroll)"
  echo "devices      $KIND enrollments$([ "$KIND" = group ] && echo " (one group, keys derived per device)")$([ "$KIND" = x509 ] && echo " (mutual TLS: one group CA, $X509_DEVICES ECDSA P-256 device certificates; the ceilings see the same client certificates)")"
  if [ "$NOTIFIERS" = 1 ]; then
    echo "notifiers    webhook + smtp on every event, receivers answering after 1 s ($(wc -l < "$WORK/hook.jsonl") webhook requests served)"
  fi
  echo
  printf "%-10s %9s %8s %8s %7s %8s %9s %10s %8s %9s\n" "run" "rate/s" "p50 ms" \
    "p99 ms" "errors" "resumed" "srv cpu s" "srv us/req" "srv cores" "cli cpu s"
  for r in $(seq 1 "$ROUNDS"); do
    report_row "register$r" "register$r" "register$r"
    report_row "baseline$r" "baseline$r" "baseline$r"
    report_row "nginx$r" "nginx$r" "nginx$r"
  done
  echo
  [ "$missed" -eq 0 ] ||
    echo "WARNING      $missed arrivals found all $CONCURRENCY slots busy and were not started: the servers did not all run at ${RATE}/s (raise BENCH_CONCURRENCY or lower BENCH_RATE)"
  again=$(( ${NEXT_DEVICE[main]:-0} - $(device_count) ))
  [ "$again" -le 0 ] ||
    echo "NOTE         $again registrations were of devices already registered earlier in the run (repeat registrations, not first ones): raise $([ "$KIND" = x509 ] && echo BENCH_X509_DEVICES || echo BENCH_ENROLLMENTS) for first registrations only"
  echo "server CPU per request (median of rounds): provd ${reg_us} us per registration, baseline ${base_us} us, nginx ${ngx_us} us"
  echo "efficiency = ceiling CPU per request / provd CPU per registration in the same round, median of rounds: ${eff_ngx} against nginx ($lo .. $hi), ${eff_base} against the baseline"
  [ "$KIND" != mqtt ] || awk -v e="$eff_ngx" 'BEGIN { printf "mqtt target  provd CPU per MQTT registration (handshake, CONNECT, SUBSCRIBE, PUBLISH register, answer, poll) <= 1.25 x nginx per bare handshake + 2 requests: %.2f x (%s)\n", (e > 0 ? 1 / e : 0), (e > 0 && 1 / e <= 1.25 ? "met" : "missed") }'
  [ "$KIND" != x509 ] || awk -v e="$eff_ngx" 'BEGIN { printf "x509 target  provd CPU per registration <= 1.25 x nginx per mTLS handshake: %.2f x (%s)\n", (e > 0 ? 1 / e : 0), (e > 0 && 1 / e <= 1.25 ? "met" : "missed") }'
  echo "BENCH kind=$KIND notifiers=$NOTIFIERS provd_cpu_us=$reg_us baseline_cpu_us=$base_us nginx_cpu_us=$ngx_us efficiency_nginx=$eff_ngx efficiency_baseline=$eff_base register_rate=$(median_of register rate) baseline_rate=$(median_of baseline rate) nginx_rate=$(median_of nginx rate) register_p99_ms=$(median_of register p99_ms) offered_rate=${RATE:-0} missed=$missed registered_again=$(( again > 0 ? again : 0 )) resumed=$resumed errors=$errors"
  [ "$resumed" -eq 0 ] || { echo "bench: $resumed handshakes resumed a session; the figures are not of full handshakes" >&2; return 3; }
  [ "$errors" -eq 0 ] || return 3
}

# BENCH_KIND=tpm: server CPU per TPM registration against a symmetric-key
# registration measured in the same run (target: at most 3 times).
report_tpm() {
  local r kind errors=0 resumed=0 sym_us tpm_us ratio
  for r in $(seq 1 "$ROUNDS"); do
    for kind in register register-tpm; do
      errors=$(( errors + $(field "$WORK/$kind$r.out" errors) ))
      resumed=$(( resumed + $(field "$WORK/$kind$r.out" resumed) ))
    done
  done
  sym_us=$(median_cpu register)
  tpm_us=$(median_cpu register-tpm)
  ratio=$(awk -v t="$tpm_us" -v s="$sym_us" 'BEGIN { printf "%.2f", (s > 0 ? t / s : 0) }')
  echo
  echo "== provd TPM registration benchmark =="
  echo "machine      $(nproc) cores, $(openssl version 2>/dev/null | cut -d' ' -f1-2), load average before the runs: $LOAD_BEFORE"
  echo "load         $CONCURRENCY concurrent devices, ${DURATION}s per run, $ROUNDS alternating rounds; per device a new TLS connection + full handshake"
  echo "             symmetric key: PUT register, GET operation; TPM: PUT register (401 challenge), PUT register with the token, GET operation"
  echo "devices      the TPM is software (bench/lg_tpm.c): the device's cryptography, no TPM in the loop"
  echo
  printf "%-14s %9s %8s %8s %7s %8s %9s %10s %8s %9s\n" "run" "rate/s" "p50 ms" \
    "p99 ms" "errors" "resumed" "srv cpu s" "srv us/reg" "srv cores" "cli cpu s"
  for r in $(seq 1 "$ROUNDS"); do
    report_row "register$r" "register$r" "register$r"
    report_row "register-tpm$r" "register-tpm$r" "register-tpm$r"
  done
  echo
  echo "server CPU per registration (median of rounds): symmetric key ${sym_us} us, TPM ${tpm_us} us: TPM = ${ratio} x symmetric key (target <= 3)"
  echo "BENCH kind=tpm provd_cpu_us=$sym_us tpm_cpu_us=$tpm_us tpm_ratio=$ratio register_rate=$(median_of register rate) tpm_rate=$(median_of register-tpm rate) resumed=$resumed errors=$errors"
  [ "$resumed" -eq 0 ] || return 3
  [ "$errors" -eq 0 ] || return 3
}

main() {
  check_setup
  LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg)
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/provd-bench.XXXXXX")
  DATA=$WORK/data
  CONFIG=$WORK/provd.yaml
  PORT=$(free_port)
  HOOK_PORT=$(free_port)
  SMTP_PORT=$(free_port)
  MQTT_PORT=$(free_port)
  while [ "$MQTT_PORT" = "$PORT" ]; do MQTT_PORT=$(free_port); done
  while [ "$HOOK_PORT" = "$PORT" ]; do HOOK_PORT=$(free_port); done
  while [ "$SMTP_PORT" = "$PORT" ] || [ "$SMTP_PORT" = "$HOOK_PORT" ]; do SMTP_PORT=$(free_port); done
  start_slow_receivers
  TPM_KEYS=$WORK/tpm-keys.pem
  if [ "$KIND" = tpm ]; then
    { openssl genrsa 2048; openssl genrsa 2048; } >"$TPM_KEYS" 2>/dev/null ||
      die "cannot generate the software TPM's keys"
  fi
  write_config
  seed_enrollments
  serve_all
  # Short alternating rounds: a drift in the machine's speed (a shared VM)
  # hits all the servers alike, and the median ignores odd rounds.
  local r
  for r in $(seq 1 "$ROUNDS"); do
    round_register "$r"
    if [ "$KIND" = tpm ]; then
      round_register_tpm "$r"
    else
      round_ceiling baseline "$r"
      round_ceiling nginx "$r"
    fi
  done
  unserve_all
  if [ "$KIND" = tpm ]; then report_tpm; else report; fi
}

# bench/scale.sh sources this file for its functions.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main "$@"
fi
