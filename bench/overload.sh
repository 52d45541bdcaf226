#!/usr/bin/env bash
# Overload: what provd does when offered more registrations than it can
# serve.  Measures the capacity (closed loop, as bench/run.sh), then
# offers BENCH_OVERLOAD_FACTOR (3) x that rate for BENCH_OVERLOAD_DURATION
# (60) seconds with an open-loop load generator (every device a new
# connection with a full TLS handshake, started on schedule whatever the
# server answers), once alone and once while BENCH_OVERLOAD_IDLE (10000)
# idle TLS connections are held open.  Reports the served rate against
# the capacity, latency of the served registrations, the refusals and
# whether each carried a Retry-After, and provd's RSS before, at peak and
# after.  See docs/benchmark.md.
#
# Knobs: those of bench/run.sh (BENCH_DURATION for the capacity run,
# BENCH_CONCURRENCY, BENCH_ENROLLMENTS (default 20000 here),
# BENCH_WORKERS, pinning, BENCH_KEEP) plus BENCH_OVERLOAD_FACTOR,
# BENCH_OVERLOAD_DURATION, BENCH_OVERLOAD_IDLE, BENCH_OVERLOAD_TIMEOUT
# (10 s: a device gives up after that) and BENCH_OVERLOAD_CONCURRENCY
# (20000: open connections the generator may hold).
set -euo pipefail

BENCH_ENROLLMENTS=${BENCH_ENROLLMENTS:-20000}
# shellcheck source=bench/run.sh
. "$(dirname "${BASH_SOURCE[0]}")/run.sh"
RATE= # its runs are closed loops: BENCH_RATE does not apply
# Its capacity run starts provd afresh (its CPU from /usr/bin/time).
DURATION=${BENCH_DURATION:-15}

FACTOR=${BENCH_OVERLOAD_FACTOR:-3}
OVER_DURATION=${BENCH_OVERLOAD_DURATION:-60}
IDLE=${BENCH_OVERLOAD_IDLE:-10000}
OVER_TIMEOUT=${BENCH_OVERLOAD_TIMEOUT:-10}
OVER_CONCURRENCY=${BENCH_OVERLOAD_CONCURRENCY:-20000}

# overload_run NAME IDLE_COUNT: a fresh provd, the open-loop load while
# IDLE_COUNT idle connections are held; the holder's line in NAME.idle.
overload_run() {
  local name=$1 idle=$2
  echo "== $name: ${OFFERED}/s offered (${FACTOR} x capacity) for ${OVER_DURATION}s, $idle idle TLS connections held =="
  start_server "provd-$name" "$PROVD" -c "$CONFIG"
  wait_ready "provd-$name" "https://127.0.0.1:$PORT/healthz"
  local load=("$LOADGEN" --mode register --rate "$OFFERED"
    --concurrency "$OVER_CONCURRENCY" --duration "$OVER_DURATION"
    --timeout "$OVER_TIMEOUT" --max-errors 100000000
    --url "https://127.0.0.1:$PORT" --ca "$DATA/tls/ca.pem" --scope "$SCOPE"
    --ids "$ENROLLMENTS" $(device_args))
  python3 "$ROOT/bench/idle_holder.py" --port "$PORT" --ca "$DATA/tls/ca.pem" \
    --pid "$SERVER_PID" --count "$idle" \
    --during "${load[*]} > $WORK/$name.out" > "$WORK/$name.idle" ||
    die "$name: the idle holder failed (see $WORK/$name.idle)"
  grep -q '^RESULT ' "$WORK/$name.out" ||
    die "$name: no RESULT from the load generator (see $WORK/$name.out)"
  sed -n '/^== /,/^refusals/p' "$WORK/$name.out" | sed 's/^/  /'
  sed 's/^/  /' "$WORK/$name.idle"
  stop_server "provd-$name"
}

idle_field() { sed -n "s/.* $2=\([0-9]*\).*/\1/p" "$WORK/$1.idle"; }

overload_row() { # NAME
  local name=$1 ok elapsed served
  ok=$(field "$WORK/$name.out" ok)
  elapsed=$(field "$WORK/$name.out" elapsed_s)
  served=$(awk -v ok="$ok" -v s="$elapsed" 'BEGIN { printf "%.0f", (s > 0 ? ok / s : 0) }')
  awk -v n="$name" -v served="$served" -v cap="$CAPACITY" \
      -v p50="$(field "$WORK/$name.out" p50_ms)" -v p99="$(field "$WORK/$name.out" p99_ms)" \
      -v r429="$(field "$WORK/$name.out" refused_429)" -v r503="$(field "$WORK/$name.out" refused_503)" \
      -v nohint="$(field "$WORK/$name.out" refused_no_hint)" \
      -v tmo="$(field "$WORK/$name.out" err_timeout)" -v conn="$(field "$WORK/$name.out" err_connect)" \
      -v missed="$(field "$WORK/$name.out" missed)" \
      -v rb="$(idle_field "$name" before)" -v rm="$(idle_field "$name" max)" -v ra="$(idle_field "$name" after)" \
      -v held="$(idle_field "$name" held)" -v shed="$(idle_field "$name" closed_by_server)" \
      'BEGIN {
         printf "%-10s served %6d/s = %5.1f %% of capacity  p50 %7.1f ms  p99 %7.1f ms  429 %d  503 %d  without Retry-After %d  timeouts %d  connect errors %d  missed %d  RSS %d -> %d -> %d MiB  idle %d held, %d closed by provd\n",
           n, served, (cap > 0 ? 100 * served / cap : 0), p50, p99, r429, r503, nohint, tmo, conn, missed,
           rb / 1024, rm / 1024, ra / 1024, held, shed
       }'
  local cpu_s
  cpu_s=$(server_cpu "provd-$name")
  echo "           server CPU ${cpu_s} s over the ${OVER_DURATION}s = $(awk -v c="$cpu_s" -v d="$OVER_DURATION" 'BEGIN { printf "%.2f", c / d }') cores; $(cpu_us_per_unit "$name" "provd-$name") us per served registration (capacity run: $(cpu_us_per_unit register1 provd1) us); the load generator took $(field "$WORK/$name.out" cpu_client_s) s"
  echo "BENCH overload=$name capacity=$CAPACITY offered=$OFFERED served=$served server_cpu_s=$cpu_s p50_ms=$(field "$WORK/$name.out" p50_ms) p99_ms=$(field "$WORK/$name.out" p99_ms) refused_429=$(field "$WORK/$name.out" refused_429) refused_no_hint=$(field "$WORK/$name.out" refused_no_hint) timeouts=$(field "$WORK/$name.out" err_timeout) rss_max_kib=$(idle_field "$name" max)"
}

overload_main() {
  check_setup
  ulimit -n "$(ulimit -Hn)"
  LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg)
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/provd-bench.XXXXXX")
  DATA=$WORK/data
  CONFIG=$WORK/provd.yaml
  PORT=$(free_port)
  write_config
  seed_enrollments
  measure_register 1
  CAPACITY=$(field "$WORK/register1.out" rate | awk '{ printf "%.0f", $1 }')
  OFFERED=$(( CAPACITY * FACTOR ))
  [ "$OFFERED" -gt 0 ] || die "the capacity run served nothing"
  overload_run overload 0
  overload_run overload-idle "$IDLE"
  echo
  echo "== provd under ${FACTOR} x overload (load average before: $LOAD_BEFORE) =="
  echo "capacity   $CAPACITY registrations/s (closed loop, $CONCURRENCY devices, ${DURATION}s)"
  overload_row overload
  overload_row overload-idle
}

overload_main "$@"
