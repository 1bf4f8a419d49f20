#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for N seconds
# (default 60) on its corpus in tests/fuzz/corpus/<target>/.
# Only the fuzz targets are built, so a fuzz run does not depend on the rest
# of the tree linking. New inputs go to a scratch dir (the committed corpus
# stays small); crash artifacts go to build-fuzz/artifacts/ and fail the run.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
scripts/setup.sh
# SB_FUZZ also instruments the library for coverage (-fsanitize=fuzzer-no-link).
cmake -S . -B build-fuzz -DSB_FUZZ=ON -DSB_SANITIZE=ON -DCMAKE_C_COMPILER=clang \
  -DCMAKE_BUILD_TYPE=Debug >/dev/null

shopt -s nullglob
targets=()
for src in tests/fuzz/fuzz_*.c; do
  targets+=("$(basename "$src" .c)")
done
if ((${#targets[@]} == 0)); then
  echo "fuzz: no targets in tests/fuzz/" >&2
  exit 1
fi
cmake --build build-fuzz -j"$(nproc)" --target "${targets[@]}"

artifacts=build-fuzz/artifacts
mkdir -p "$artifacts"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
for name in "${targets[@]}"; do
  bin=build-fuzz/tests/$name
  corpus=tests/fuzz/corpus/$name
  mkdir -p "$corpus"
  work=$(mktemp -d)
  log=$(mktemp)
  echo "fuzz: $name for ${seconds}s ($(find "$corpus" -type f | wc -l) seed inputs)" >&2
  if "$bin" -max_total_time="$seconds" -max_len=65536 -print_final_stats=1 \
      -artifact_prefix="$artifacts/$name-" "$work" "$corpus" >"$log" 2>&1; then
    grep -E '^(#[0-9]+.*DONE|Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" >&2 || tail -n 5 "$log" >&2
  else
    echo "fuzz: $name FAILED; log follows, reproducer in $artifacts/" >&2
    cat "$log" >&2
    status=1
  fi
  rm -rf "$work" "$log"
done
exit $status
