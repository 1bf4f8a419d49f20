#!/usr/bin/env bash
# Sets up, builds and runs every test (unit, integration, negative).
#   scripts/test.sh            the normal build in build/
#   scripts/test.sh --sanitize the ASan+UBSan build in build-asan/
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

build=build
flags=(-DSB_WERROR=ON)
if [[ ${1:-} == --sanitize ]]; then
  build=build-asan
  flags+=(-DSB_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang)
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi
cmake -S . -B "$build" "${flags[@]}" >/dev/null
cmake --build "$build" -j"$(nproc)"
ctest --test-dir "$build" --output-on-failure -j2
