#!/usr/bin/env bash
# Benchmark of the context store and manager (src/ctx/manager.c on
# src/store/sqlite.c).
#
#   bench/ctx_bench.sh [--quick]
#
# On a temporary SQLite store (WAL, synchronous=FULL as in production):
# 1. Populations of 10k and 1M contexts, each with a 20-version history
#    (~6 KB dealership conversations, one message per version). 10k go
#    through sb_ctx_create + sb_ctx_update; 1M are bulk-loaded through the
#    store's own SQL from 1000 distinct contexts made with the manager's
#    algorithms (same documents, patches, snapshots every 32, head row
#    rewritten per version), replayed under fresh ids. fsync is skipped
#    while loading only; every measured write pays for it (fsync/op column).
# 2. On each: ops/s, p50 and p99 of create, get (head), get of a random past
#    version, projected get, and merge-patch update with the right
#    expectedVersion, on random contexts, beside a BASELINE measured in the
#    same run (op kinds take turns, so all see the same cache state): raw
#    SQLite primary-key lookups of the same rows (SELECT doc
#    FROM contexts WHERE tenant_id=? AND id=?). Disk bytes per context (db +
#    wal after a checkpoint).
# 3. Projection size on a large dealership context (200 messages, 500
#    vehicles) for a sales and a service agent's requirement sets.
#
# --quick: 10k only, bulk-loaded, fewer ops (well under a minute). The
# full run takes ~15 minutes and ~30 GB of disk under $TMPDIR (scaled down,
# with a note, if there is less room).
#
# Environment: SB_BENCH_BUILD_DIR (default build; configured in Release if
# it does not exist yet), TMPDIR (where the store goes).
set -euo pipefail
cd "$(dirname "$0")/.."
bench_name=ctx_bench
# shellcheck source=bench/lib.sh
source bench/lib.sh
die() { bench_die "$@"; }

quick=0
for arg in "$@"; do
  case $arg in
  --quick) quick=1 ;;
  -h | --help)
    bench_help
    exit 0
    ;;
  *) bench_usage "unknown argument $arg" ;;
  esac
done

bench_setup
bench_need cc pkg-config

# ---- build ----------------------------------------------------------------
build=${SB_BENCH_BUILD_DIR:-build}
type_flag=()
# Only choose the build type for a fresh build dir; an existing one is
# shared with scripts/test.sh and keeps its own.
[[ -f $build/CMakeCache.txt ]] || type_flag=(-DCMAKE_BUILD_TYPE=Release)
echo "ctx_bench: building libsbcore.a in $build" >&2
cmake -S . -B "$build" "${type_flag[@]}" >/dev/null
cmake --build "$build" -j2 --target sbcore >/dev/null
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt")
build_type=${build_type:-RelWithDebInfo}

work=$(mktemp -d "${TMPDIR:-/tmp}/ctx_bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Same warnings as the tree; -O2 like a Release build.
# shellcheck disable=SC2046
cc -std=c11 -O2 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wstrict-prototypes \
  -Wno-unused-parameter -Werror -Isrc -Ibench \
  -o "$work/ctx_bench" bench/ctx_bench.c bench/ctx_fixture.c "$build/libsbcore.a" \
  $(pkg-config --cflags --libs libuv jansson libmicrohttpd yaml-0.1 libsodium sqlite3) \
  -lm || die "could not build bench/ctx_bench.c"

echo "ctx_bench: library build type $build_type; store under $work" \
  "($(df -h --output=avail "$work" | tail -n1 | tr -d ' ') free)" >&2
if ((quick)); then
  args=(--sizes 10000 --manager-max 0 --reads 2000 --writes 300)
else
  args=(--sizes "10000,1000000" --manager-max 10000 --reads 5000 --writes 2000)
fi
start=$SECONDS
"$work/ctx_bench" --dir "$work" "${args[@]}" || die "the bench failed"
echo
echo "cores: $(nproc); library build: $build_type; total time $((SECONDS - start)) s"
