#!/usr/bin/env bash
# How long a restart that brings back many waiting runs holds the event
# loop: the slowest and p99 GET /healthz while N runs come back, beside the
# same restart with none (bench/resume_stall.mjs).
#
#   bench/resume_stall.sh [N...]        (default: 1000 9000)
#
# Build: build-release/ (Release).
set -euo pipefail
cd "$(dirname "$0")/.."
bench_name=resume_stall
# shellcheck source=bench/lib.sh
source bench/lib.sh
case ${1:-} in -h | --help) bench_help; exit 0 ;; esac
bench_setup
build=${SB_BENCH_BUILD_DIR:-build-release}
echo "resume_stall: building switchboard in $build" >&2
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null || bench_die "cmake configure of $build failed"
cmake --build "$build" -j2 --target switchboard >/dev/null || bench_die "building switchboard in $build failed"
SWITCHBOARD_BIN="$PWD/$build/switchboard" node bench/resume_stall.mjs "$@"
