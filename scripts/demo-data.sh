#!/usr/bin/env bash
# Regenerates the dealership demo data (data/demo/<tenant>.db), building
# dealer-data first if needed. Extra arguments go to dealer-data.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -d build ]] || cmake -S . -B build >/dev/null
cmake --build build -j2 --target dealer-data >/dev/null
exec build/agents/dealer-data --out data/demo "$@"
