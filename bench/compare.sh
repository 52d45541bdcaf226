#!/usr/bin/env bash
# Is one provd build cheaper than another?  Both run side by side on
# copies of one seeded data dir; the load generator alternates between
# them in short slices, and each server's CPU per registration is read
# from /proc over its own slices only.  Slices seconds apart see the same
# machine: on a shared VM whose speed drifts by 10 % and more between
# bench/run.sh's rounds, the same build compared with itself comes out
# within about 1 %.  No ceilings: this compares provd with provd (use
# bench/run.sh for nginx and the targets).  See docs/benchmark.md.
#
# Knobs: BENCH_BUILD_DIR (A, default build), BENCH_COMPARE_BUILD_DIR (B,
# required), BENCH_SLICE (seconds per slice, 4), BENCH_SLICES (slices per
# build, 12), BENCH_KIND (individual, group, x509 or mqtt), and those of
# bench/run.sh for the load and the seeding (BENCH_CONCURRENCY, BENCH_RATE,
# BENCH_ENROLLMENTS, BENCH_X509_DEVICES, BENCH_WORKERS, BENCH_KEEP, pinning,
# BENCH_COMMIT_WINDOW, BENCH_STORAGE_OPTIONS).
set -euo pipefail

# shellcheck source=bench/run.sh
. "$(dirname "${BASH_SOURCE[0]}")/run.sh"

BUILD_A=$BUILD
BUILD_B=${BENCH_COMPARE_BUILD_DIR:-}
SLICE=${BENCH_SLICE:-4}
SLICES=${BENCH_SLICES:-12}

declare -A SIDE_PID SIDE_TIME SIDE_PORT SIDE_MQTT SIDE_OK SIDE_TICKS

# use_side A|B: points BUILD, PROVD, DATA, CONFIG and the ports at one
# side (writing its config the first time).
use_side() {
  local side=$1
  BUILD=$([ "$side" = A ] && echo "$BUILD_A" || echo "$BUILD_B")
  PROVD=$BUILD/provd
  DATA=$WORK/data-$side
  CONFIG=$WORK/provd-$side.yaml
  PORT=${SIDE_PORT[$side]}
  MQTT_PORT=${SIDE_MQTT[$side]}
  [ -f "$CONFIG" ] || write_config
}

start_side() {
  use_side "$1"
  start_server "provd-$1" "$PROVD" -c "$CONFIG"
  SIDE_PID[$1]=$SERVER_PID
  SIDE_TIME[$1]=$TIME_PID
  wait_ready "provd-$1" "https://127.0.0.1:$PORT/healthz"
}

stop_side() {
  SERVER_PID=${SIDE_PID[$1]}
  TIME_PID=${SIDE_TIME[$1]}
  stop_server "provd-$1"
}

# run_slice SIDE N: one slice of load on SIDE, its CPU counted.
run_slice() {
  local side=$1 n=$2 before after name
  use_side "$side"
  set_register_load "$SLICE" "$side"
  name=slice-$side$n
  before=$(process_ticks "${SIDE_PID[$side]}")
  pin "$CLIENT_CPUS" "$LOADGEN" "${LOAD_ARGS[@]}" >"$WORK/$name.out" 2>/dev/null || true
  after=$(process_ticks "${SIDE_PID[$side]}")
  devices_used "$side" "$WORK/$name.out"
  grep -q '^RESULT ' "$WORK/$name.out" ||
    die "$name: no RESULT from the load generator (see $WORK/$name.out)"
  local ok errors
  ok=$(field "$WORK/$name.out" ok)
  errors=$(field "$WORK/$name.out" errors)
  [ "$errors" = 0 ] || die "$name had $errors errors (see $WORK/$name.out, $WORK/provd-$side.log)"
  SIDE_OK[$side]=$(( SIDE_OK[$side] + ok ))
  SIDE_TICKS[$side]=$(( SIDE_TICKS[$side] + after - before ))
  awk -v s="$side" -v n="$n" -v ok="$ok" -v t="$((after - before))" \
      -v hz="$(getconf CLK_TCK)" -v d="$SLICE" \
      'BEGIN { printf "slice %2d %s  %6d registrations  %6.0f us each  %.2f cores\n",
               n, s, ok, (ok > 0 ? t * 1e6 / hz / ok : 0), t / hz / d }'
}

# Server CPU µs per registration of one side over all its slices.
side_us() {
  awk -v t="${SIDE_TICKS[$1]}" -v ok="${SIDE_OK[$1]}" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { printf "%.0f", (ok > 0 ? t * 1e6 / hz / ok : 0) }'
}

compare_report() {
  local a b
  a=$(side_us A)
  b=$(side_us B)
  echo
  echo "== provd A against provd B, $KIND registrations =="
  echo "A            $BUILD_A: ${SIDE_OK[A]} registrations, $a us of server CPU each"
  echo "B            $BUILD_B: ${SIDE_OK[B]} registrations, $b us of server CPU each"
  echo "load         $CONCURRENCY concurrent devices, $SLICES alternating slices of ${SLICE}s each; load average before: $LOAD_BEFORE"
  echo "COMPARE kind=$KIND a_cpu_us=$a b_cpu_us=$b b_vs_a=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", (a > 0 ? b / a : 0) }') a_ok=${SIDE_OK[A]} b_ok=${SIDE_OK[B]}"
}

compare_main() {
  [ -n "$BUILD_B" ] || die "set BENCH_COMPARE_BUILD_DIR to the build to compare with $BUILD_A"
  [ -x "$BUILD_B/provd" ] || die "missing $BUILD_B/provd: build it first"
  [[ $SLICE =~ ^[0-9]+$ && $SLICE -ge 1 && $SLICE -le 600 ]] ||
    die "BENCH_SLICE must be 1..600 seconds"
  [[ $SLICES =~ ^[0-9]+$ && $SLICES -ge 1 && $SLICES -le 1000 ]] ||
    die "BENCH_SLICES must be 1..1000"
  [[ $KIND == individual || $KIND == group || $KIND == x509 || $KIND == mqtt ]] ||
    die "BENCH_KIND must be individual, group, x509 or mqtt"
  check_setup
  LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg)
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/provd-compare.XXXXXX")
  local side
  for side in A B; do
    SIDE_PORT[$side]=$(free_port)
    SIDE_MQTT[$side]=$(free_port)
    SIDE_OK[$side]=0
    SIDE_TICKS[$side]=0
  done
  # One seeding (with A), then two copies: the same enrollments, keys and
  # server certificate on both sides.
  use_side A
  seed_enrollments
  cp -a "$DATA" "$WORK/data-B"
  start_side A
  start_side B
  local n
  for n in $(seq 1 "$SLICES"); do
    run_slice A "$n"
    run_slice B "$n"
  done
  stop_side A
  stop_side B
  compare_report
}

compare_main "$@"
