#!/usr/bin/env bash
# Regenerates the dealership demo data (data/demo/<tenant>.db) with
# dealer-data: deterministic, so every run writes the same data.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc)" --target dealer-data >&2
exec build/agents/dealer-data --out data/demo "$@"
