#!/usr/bin/env bash
# Benchmark of the asynchronous context store (src/store/, group commit)
# and of what it leaves the event loop.
#
#   bench/store_bench.sh [--quick] [--population N]
#
# 1. In-process (bench/store_bench.c): context creates and updates per
#    second with p50/p99 at 1, 8 and 64 concurrent writers through the
#    context manager (WAL, synchronous=FULL), beside raw SQLite on the same
#    disk measured in the same run: single-row commits/s, and rows/s inside
#    one transaction, the ceiling of this disk. --population N also
#    measures updates among N bulk-loaded contexts (e.g. 1000000).
# 2. Over REST (wrk): creates (POST /v1/contexts) and updates (PATCH with
#    If-Match, each connection its own context) at 1, 8 and 64 connections.
# 3. The built-in echo (modern tools/call, 16 connections) alone, then under
#    a saturating REST write load running at the same time: 8 connections
#    (SB_BENCH_LOAD_CONNS), each PATCHing as fast as it is answered — the
#    load of the issue that measured echo falling from 40,235 to 2,664
#    req/s before the store left the loop.
#
# Phases are 3 s each (--quick: 1 s). wrk, the bench and the server share
# this machine's cores, so figures are lower bounds on a bigger box.
#
# Environment: SB_BENCH_BUILD_DIR (default build; configured in Release if
# it does not exist yet; libsbcore.a and switchboard are built there),
# SWITCHBOARD_BIN (the server measured over REST; default
# $SB_BENCH_BUILD_DIR/switchboard), SB_BENCH_LOAD_CONNS (default 8), TMPDIR.
set -euo pipefail
cd "$(dirname "$0")/.."
bench_name=store_bench
# shellcheck source=bench/lib.sh
source bench/lib.sh
die() { bench_die "$@"; }

duration=3
population=0
while (($#)); do
  case $1 in
  --quick) duration=1 ;;
  --population)
    bench_count "$1" "${2-}" 0 1000000000
    population=$2
    shift
    ;;
  -h | --help)
    bench_help
    exit 0
    ;;
  *) bench_usage "unknown argument $1" ;;
  esac
  shift
done
load=${SB_BENCH_LOAD_CONNS:-8}
bench_count SB_BENCH_LOAD_CONNS "$load" 1 256

bench_setup
bench_need wrk curl cc pkg-config

# ---- build ------------------------------------------------------------------
build=${SB_BENCH_BUILD_DIR:-build}
type_flag=()
[[ -f $build/CMakeCache.txt ]] || type_flag=(-DCMAKE_BUILD_TYPE=Release)
echo "store_bench: building libsbcore.a and switchboard in $build" >&2
cmake -S . -B "$build" "${type_flag[@]}" >/dev/null || die "cmake configure of $build failed"
cmake --build "$build" -j2 --target sbcore switchboard >/dev/null ||
  die "building libsbcore.a and switchboard in $build failed"
bin=${SWITCHBOARD_BIN:-$build/switchboard}
work=$(mktemp -d "${TMPDIR:-/tmp}/store_bench.XXXXXX")
server_pid=""
cleanup() {
  if [[ -n $server_pid ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
# shellcheck disable=SC2046
cc -std=c11 -O2 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wstrict-prototypes \
  -Wno-unused-parameter -Werror -Isrc -o "$work/store_bench" \
  bench/store_bench.c "$build/libsbcore.a" \
  $(pkg-config --cflags --libs libuv jansson libmicrohttpd yaml-0.1 libsodium sqlite3) \
  -lm || die "could not build bench/store_bench.c"

echo "store bench: $(nproc) cores shared by the load generators and the" \
  "server; ${duration}s per phase"
echo

# ---- 1. in-process ----------------------------------------------------------
mkdir -p "$work/inproc"
"$work/store_bench" --dir "$work/inproc" --seconds "$duration" \
  --population "$population" || die "the in-process bench failed"
rm -rf "$work/inproc"

# ---- a server ----------------------------------------------------------------
log=$work/server.log
"$bin" serve --listen 127.0.0.1:0 --store "$work/rest.db" 2>"$log" >/dev/null </dev/null &
server_pid=$!
port=""
deadline=$((SECONDS + 15))
while ((SECONDS < deadline)); do
  port=$(sed -n 's#.*listening on http://[^ ]*:\([0-9][0-9]*\)/mcp.*#\1#p' "$log" | head -n1)
  [[ -n $port ]] && break
  kill -0 "$server_pid" 2>/dev/null || die "server exited: $(cat "$log")"
  sleep 0.05
done
[[ -n $port ]] || die "server did not start: $(cat "$log")"
base=http://127.0.0.1:$port

to_ms() {
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    if (u == "us") n /= 1000; else if (u == "s") n *= 1000;
    printf "%.2f", n }'
}

# run_wrk NAME THREADS CONNS URL LUA -> rps p50 p99 requests non2xx
run_wrk() {
  local out=$work/wrk.$1.txt
  wrk -t"$2" -c"$3" -d"${duration}s" --latency -s "$5" "$4" >"$out" 2>&1 ||
    die "wrk failed: $(cat "$out")"
  rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$out")
  p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")
  p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
  requests=$(awk '/requests in/ {print $1}' "$out")
  non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$out")
  non2xx=${non2xx:-0}
}

# One context per connection for the update runs.
make_ids() {
  : >"$work/ids"
  for _ in $(seq 1 "$1"); do
    curl -sS -o /dev/null -D - -X POST -H 'Content-Type: application/json' \
      --data '{}' "$base/v1/contexts" |
      sed -n 's#^[Ll]ocation: */v1/contexts/\([^[:space:]]*\).*#\1#p' >>"$work/ids"
  done
  [[ $(wc -l <"$work/ids") -eq $1 ]] || die "could not create contexts over REST"
}
export SB_BENCH_IDS=$work/ids

# ---- 2. over REST -----------------------------------------------------------
echo
echo "== over REST (wrk, keep-alive) =="
printf '%-8s %6s %10s %9s %9s\n' op conns "ops/s" "p50 ms" "p99 ms"
failures=()
for c in 1 8 64; do
  t=$((c < 2 ? c : 2))
  run_wrk "create$c" "$t" "$c" "$base/v1/contexts" bench/ctx_create.lua
  ((non2xx == 0)) || failures+=("create at $c: $non2xx of $requests not 2xx")
  printf '%-8s %6d %10s %9s %9s\n' create "$c" "$rps" "$p50" "$p99"
  make_ids "$c"
  run_wrk "update$c" "$c" "$c" "$base/" bench/ctx_update.lua
  ((non2xx == 0)) || failures+=("update at $c: $non2xx of $requests not 2xx")
  printf '%-8s %6d %10s %9s %9s\n' update "$c" "$rps" "$p50" "$p99"
done

# ---- 3. echo alone and under write load --------------------------------------
echo
echo "== built-in echo (16 connections) alone and under $load REST writers =="
run_wrk echo-alone 2 16 "$base/mcp" bench/mcp_echo.lua
alone_rps=$rps alone_p99=$p99
make_ids "$load"
wrk -t"$load" -c"$load" -d"$((duration + 2))s" -s bench/ctx_update.lua "$base/" \
  >"$work/wrk.load.txt" 2>&1 &
load_pid=$!
sleep 1 # the write load is running before echo is measured
run_wrk echo-loaded 2 16 "$base/mcp" bench/mcp_echo.lua
wait "$load_pid" || die "the write load failed: $(cat "$work/wrk.load.txt")"
load_rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$work/wrk.load.txt")
printf '%-24s %10s %9s\n' "" "echo rq/s" "p99 ms"
printf '%-24s %10s %9s\n' alone "$alone_rps" "$alone_p99"
printf '%-24s %10s %9s   (updates meanwhile: %s/s)\n' "under write load" "$rps" "$p99" "$load_rps"
awk -v a="$alone_rps" -v b="$rps" -v pa="$alone_p99" -v pb="$p99" 'BEGIN {
  r = b / a; q = pb / pa
  printf "throughput kept: %.0f%% (bar >= 80%%: %s); p99 ratio: %.1fx (bar <= 2x: %s)\n",
    100 * r, (r >= 0.8 ? "met" : "MISSED"), q, (q <= 2 ? "met" : "MISSED") }'

if ((${#failures[@]})); then
  printf 'FAIL: %s\n' "${failures[@]}" >&2
  exit 1
fi
