#!/usr/bin/env bash
# Sets up, builds and runs the dealership demo (switchboard demo): the five
# agents over two dealer groups' data, the scripted conversations through
# their workflows with a trace of every handoff, a summary, and then the
# server keeps serving MCP on http://127.0.0.1:8080/mcp until Ctrl-C.
#   scripts/run.sh            the demo, then serving
#   scripts/run.sh --once     the demo, then exit
# Extra arguments are passed to `switchboard demo` (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >&2
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target switchboard dealer-data \
  dealer-general dealer-sales dealer-service dealer-parts dealer-finance >&2
# The agents' data is regenerated each time (deterministic: the same
# inventory, slots and parts, with no bookings left from an earlier run).
build/agents/dealer-data --out data/demo >&2
exec build/switchboard demo "$@"
