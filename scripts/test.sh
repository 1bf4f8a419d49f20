#!/usr/bin/env bash
# Sets up, builds and runs every test (unit, integration, negative).
#   scripts/test.sh            the normal build in build/
#   scripts/test.sh --sanitize the ASan+UBSan build in build-asan/
#   scripts/test.sh --tsan     the ThreadSanitizer build in build-tsan/: the
#                              tests of the threaded modules only (store,
#                              its runs and events, the event bus, context
#                              manager), which is where threads are
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
if [[ ${1:-} == --tsan ]]; then
  build=build-tsan
  flags+=(-DSB_TSAN=ON -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang)
  export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
  tsan_tests=(test_store test_store_crash test_ctx_manager test_store_runs test_events
              test_core_log)
  cmake -S . -B "$build" "${flags[@]}" >/dev/null
  cmake --build "$build" -j2 --target "${tsan_tests[@]}"
  ctest --test-dir "$build" --output-on-failure -j2 \
    -R "^unit/($(IFS='|'; echo "${tsan_tests[*]}"))\$"
  exit 0
fi
cmake -S . -B "$build" "${flags[@]}" >/dev/null
cmake --build "$build" -j"$(nproc)"
# Under the sanitizers every process runs several times slower; one test
# at a time keeps the integration tests' deadlines meaningful there.
jobs=2
[[ $build == build-asan ]] && jobs=1
ctest --test-dir "$build" --output-on-failure -j"$jobs"
