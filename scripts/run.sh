#!/usr/bin/env bash
# Sets up, builds and runs switchboard with the example configuration.
#   scripts/run.sh           Streamable HTTP on the address in examples/switchboard.yaml
#   scripts/run.sh --stdio   MCP on stdin/stdout
# Extra arguments are passed to `switchboard serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >&2
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target switchboard >&2
exec build/switchboard serve --config examples/switchboard.yaml "$@"
