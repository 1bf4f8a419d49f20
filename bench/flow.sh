#!/usr/bin/env bash
# Benchmark of workflow steps (src/flow/): a three-step workflow over the C
# stdio echo agent (bench/echo_agent.c), in process on one loop with the
# real store (SQLite, WAL, synchronous=FULL, group commit), context
# manager, event bus, gateway and engine. Printed side by side, measured in
# the same run: the raw agent call through the gateway (1 and N at a time),
# runs one at a time (run latency, and the per-step overhead: what a step
# costs beyond its agent call), and N runs at a time (steps per second),
# with the loop's and the store writer's CPU per step and the bars of the
# workflow issue (overhead p50 <= 1 ms at 1 run, >= 2000 steps/s at 64).
#
#   bench/flow.sh [--quick] [--runs N]
#
# Phases are 3 s (--quick: 1 s). --runs N: runs at a time in the last
# phase (1..256, default 64). Build: build-release/ (Release; another dir
# with SB_BENCH_BUILD_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
bench_name=flow
# shellcheck source=bench/lib.sh
source bench/lib.sh
seconds=3
runs=64
while (($#)); do
  case $1 in
  --quick) seconds=1 ;;
  --runs) bench_count "$1" "${2-}" 1 256; runs=$2; shift ;;
  -h | --help) bench_help; exit 0 ;;
  *) bench_usage "unknown argument $1" ;;
  esac
  shift
done
bench_setup
build=${SB_BENCH_BUILD_DIR:-build-release}
echo "flow: building flow_bench and echo_agent in $build" >&2
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null || bench_die "cmake configure of $build failed"
cmake --build "$build" -j2 --target flow_bench echo_agent >/dev/null ||
  bench_die "building flow_bench and echo_agent in $build failed"
work=$(mktemp -d "${TMPDIR:-/tmp}/flow_bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$build/bench/flow_bench" --agent "$build/bench/echo_agent" --dir "$work" \
  --seconds "$seconds" --runs "$runs"
