#!/usr/bin/env bash
# How long a restart that brings back many waiting runs holds the event
# loop: the slowest and p99 GET /healthz while N runs come back, beside the
# same restart with none (bench/resume_stall.mjs).
#
#   bench/resume_stall.sh [--quick] [N...]   (default: 1000 9000)
#
# Each N is a count of runs, 0..10000 (the engine holds 10000 at most).
# --quick: 1000 only, when no N is given.
#
# Build: build-release/ (Release; another dir with SB_BENCH_BUILD_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
bench_name=resume_stall
# shellcheck source=bench/lib.sh
source bench/lib.sh

quick=0
sizes=()
for arg in "$@"; do
  case $arg in
  --quick) quick=1 ;;
  -h | --help)
    bench_help
    exit 0
    ;;
  -*) bench_usage "unknown argument $arg" ;;
  *)
    bench_count "each N (a count of runs)" "$arg" 0 10000
    sizes+=("$arg")
    ;;
  esac
done
if ((${#sizes[@]} == 0)); then
  if ((quick)); then sizes=(1000); else sizes=(1000 9000); fi
fi

bench_setup
build=${SB_BENCH_BUILD_DIR:-build-release}
echo "resume_stall: building switchboard in $build" >&2
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null || bench_die "cmake configure of $build failed"
cmake --build "$build" -j2 --target switchboard >/dev/null || bench_die "building switchboard in $build failed"
SWITCHBOARD_BIN="$PWD/$build/switchboard" node bench/resume_stall.mjs "${sizes[@]}"
