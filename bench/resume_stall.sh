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
case ${1:-} in -h | --help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
build=${SB_BENCH_BUILD_DIR:-build-release}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j2 --target switchboard >/dev/null
SWITCHBOARD_BIN="$PWD/$build/switchboard" node bench/resume_stall.mjs "$@"
