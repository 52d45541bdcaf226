#!/usr/bin/env bash
# Does the registration rate hold at scale?  Seeds two data dirs through
# the service API (bulk operations), one with BENCH_SCALE_SMALL (1000)
# enrollments and one with BENCH_SCALE_LARGE (1000000), then runs
# alternating register rounds against each and compares the median rates
# and server CPU per registration.  See docs/benchmark.md.
#
# Knobs: those of bench/run.sh (BENCH_DURATION, BENCH_ROUNDS,
# BENCH_CONCURRENCY, BENCH_SEED_CONCURRENCY, BENCH_WORKERS, pinning,
# BENCH_BUILD_DIR, BENCH_KEEP) plus BENCH_SCALE_SMALL and BENCH_SCALE_LARGE.
set -euo pipefail

# shellcheck source=bench/run.sh
. "$(dirname "${BASH_SOURCE[0]}")/run.sh"
RATE= # its runs are closed loops: BENCH_RATE does not apply
# Its runs each start provd afresh (its CPU from /usr/bin/time, start-up
# included): longer runs than bench/run.sh's alternating ones.
DURATION=${BENCH_DURATION:-15}
ROUNDS=${BENCH_ROUNDS:-3}

SMALL=${BENCH_SCALE_SMALL:-1000}
LARGE=${BENCH_SCALE_LARGE:-1000000}

# use_size N: points DATA, CONFIG, PORT and ENROLLMENTS at the data dir of
# N enrollments (created on first use).
use_size() {
  ENROLLMENTS=$1
  DATA=$WORK/data-$1
  CONFIG=$WORK/provd-$1.yaml
  PORT=$(free_port)
  write_config
}

scale_report() {
  local small_rate large_rate small_cpu large_cpu r
  small_rate=$(median_of "register-small" rate)
  large_rate=$(median_of "register-large" rate)
  small_cpu=$(for r in $(seq 1 "$ROUNDS"); do cpu_us_per_unit "register-small$r" "provd-small$r"; done | median)
  large_cpu=$(for r in $(seq 1 "$ROUNDS"); do cpu_us_per_unit "register-large$r" "provd-large$r"; done | median)
  echo
  echo "== provd registration rate at scale =="
  echo "load         $CONCURRENCY concurrent devices, ${DURATION}s per run, $ROUNDS alternating rounds, $WORKERS workers; load average before: $LOAD_BEFORE"
  ENROLLMENTS=$SMALL
  echo "seeding      $(seeding_line enroll-small)"
  ENROLLMENTS=$LARGE
  echo "seeding      $(seeding_line enroll-large)"
  echo
  printf "%-10s %9s %8s %8s %7s %8s %9s %10s %8s %9s\n" "run" "rate/s" "p50 ms" \
    "p99 ms" "errors" "resumed" "srv cpu s" "srv us/req" "srv cores" "cli cpu s"
  for r in $(seq 1 "$ROUNDS"); do
    report_row "small$r" "register-small$r" "provd-small$r"
    report_row "large$r" "register-large$r" "provd-large$r"
  done
  local errors=0
  for r in $(seq 1 "$ROUNDS"); do
    errors=$(( errors + $(field "$WORK/register-small$r.out" errors) +
               $(field "$WORK/register-large$r.out" errors) ))
  done
  echo
  echo "BENCH_SCALE small=$SMALL large=$LARGE small_rate=$small_rate large_rate=$large_rate rate_ratio=$(awk -v a="$large_rate" -v b="$small_rate" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }') small_cpu_us=$small_cpu large_cpu_us=$large_cpu seed_large_s=$(field "$WORK/enroll-large.out" elapsed_s) errors=$errors"
  [ "$errors" -eq 0 ] || return 3
}

scale_main() {
  check_setup
  [[ $SMALL =~ ^[0-9]+$ && $LARGE =~ ^[0-9]+$ && $SMALL -ge 1 &&
     $LARGE -le 10000000 ]] || die "BENCH_SCALE_SMALL/LARGE must be 1..10000000"
  LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg)
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/provd-scale.XXXXXX")
  use_size "$SMALL"
  seed_enrollments enroll-small
  use_size "$LARGE"
  seed_enrollments enroll-large
  local r
  for r in $(seq 1 "$ROUNDS"); do
    use_size "$SMALL"
    measure_register "$r" -small
    use_size "$LARGE"
    measure_register "$r" -large
  done
  scale_report
}

scale_main "$@"
