#!/usr/bin/env bash
# Runs every libFuzzer binary of a -DPROVD_FUZZ=ON clang build for a fixed
# time each (what `make fuzz FUZZ_SECONDS=300` calls):
#   tests/fuzz/run.sh BUILD_DIR [SECONDS]
# For fuzz_<name>: new inputs go to BUILD_DIR/tests/fuzz/corpus-<name>/,
# the committed seeds tests/fuzz/corpus/<name>/ are read only, and
# tests/fuzz/<name>.dict is used when present.  Each run's output is in
# BUILD_DIR/tests/fuzz/fuzz-<name>.log.  The first crash, leak or timeout
# stops the script with exit status 1 and prints the reproducer's path;
# replay it with BUILD_DIR/tests/fuzz/fuzz_<name> PATH (or replay_<name>).
set -euo pipefail

usage() {
  echo "usage: $0 BUILD_DIR [SECONDS]" >&2
  exit 2
}

[ $# -ge 1 ] && [ $# -le 2 ] || usage
seconds=${2:-60}
[[ $seconds =~ ^[1-9][0-9]*$ ]] || usage
src_dir=$(cd "$(dirname "$0")" && pwd)
[ -d "$1/tests/fuzz" ] || {
  echo "$0: $1/tests/fuzz does not exist (configure and build first)" >&2
  exit 2
}
fuzz_dir=$(cd "$1/tests/fuzz" && pwd)

targets=()
for bin in "$fuzz_dir"/fuzz_*; do
  [ -f "$bin" ] && [ -x "$bin" ] && targets+=("$bin")
done
if [ ${#targets[@]} -eq 0 ]; then
  echo "$0: no libFuzzer binaries in $fuzz_dir" >&2
  echo "  configure with: CC=clang cmake -S . -B $1 -DPROVD_FUZZ=ON" >&2
  exit 2
fi

# A new session without a terminal and stdin from /dev/null: a config
# that names /dev/tty or /dev/stdin as a secret file cannot block a run.
detach=()
if command -v setsid >/dev/null; then
  detach=(setsid --wait)
fi

for bin in "${targets[@]}"; do
  name=${bin##*/fuzz_}
  work=$fuzz_dir/corpus-$name
  artifacts=$fuzz_dir/artifacts-$name
  log=$fuzz_dir/fuzz-$name.log
  mkdir -p "$work" "$artifacts"
  args=(-max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048
        -print_final_stats=1
        -artifact_prefix="$artifacts/")
  [ -f "$src_dir/$name.dict" ] && args+=(-dict="$src_dir/$name.dict")
  corpora=("$work")
  [ -d "$src_dir/corpus/$name" ] && corpora+=("$src_dir/corpus/$name")

  echo "== fuzz_$name: ${seconds}s, log $log"
  status=0
  "${detach[@]}" "$bin" "${args[@]}" "${corpora[@]}" </dev/null \
    >"$log" 2>&1 || status=$?
  if [ $status -ne 0 ]; then
    tail -n 60 "$log"
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" |
               tail -n 1)
    echo "FAILED: fuzz_$name exited with status $status" >&2
    if [ -n "$artifact" ]; then
      echo "reproducer: $artifact" >&2
      echo "replay:     $bin $artifact" >&2
    fi
    exit 1
  fi
  grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true
  echo "   corpus: $(find "$work" -type f | wc -l) files in $work"
done
echo "fuzz: ${#targets[@]} targets ran ${seconds}s each without a crash"
