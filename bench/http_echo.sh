#!/usr/bin/env bash
# HTTP benchmark of switchboard's Streamable HTTP transport.
#
#   bench/http_echo.sh [--quick]
#
# 1. Throughput and latency of a modern (2026-07-28) tools/call of the
#    built-in `echo` tool (bench/mcp_echo.lua) at 1, 16, 64 and 256
#    connections, each beside a BASELINE measured in the same run: the same
#    load on the cheapest response the server gives (GET of an unknown path,
#    a 404), so the ratio shows what the MCP layer costs on this machine.
# 2. Memory per idle keep-alive connection: the server's VmRSS before and
#    after opening 1000 idle connections (bench/idle_conns.c), once with
#    connections that sent nothing and once after one request each.
#
# Runs are 10 s each (--quick: 2 s, for smoke testing). wrk and the server
# share this machine's cores, so figures are lower bounds on a bigger box.
# Each server runs on a fresh store in a temporary directory, removed at
# exit. Exits non-zero if the server doesn't start, any echo response isn't
# 2xx, or connections fail; a figure that misses its bar is reported, not
# fatal.
#
# Environment: SWITCHBOARD_BIN (default build/switchboard, built in Release
# if missing), SB_BENCH_IDLE_CONNS (default 1000).
set -euo pipefail
cd "$(dirname "$0")/.."
bench_name=http_echo
# shellcheck source=bench/lib.sh
source bench/lib.sh
die() { bench_die "$@"; }

duration=10
for arg in "$@"; do
  case $arg in
  --quick) duration=2 ;;
  -h | --help)
    bench_help
    exit 0
    ;;
  *) bench_usage "unknown argument $arg" ;;
  esac
done

bin=${SWITCHBOARD_BIN:-build/switchboard}
idle_n=${SB_BENCH_IDLE_CONNS:-1000}
conns_list=(1 16 64 256)
bar_rps=40000      # req/s at 256 connections
bar_idle_kib=20    # KiB per idle connection

# The request bench/mcp_echo.lua sends, for the curl sanity check.
echo_body='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}'
echo_headers=(-H 'Content-Type: application/json'
  -H 'Accept: application/json, text/event-stream'
  -H 'MCP-Protocol-Version: 2026-07-28'
  -H 'Mcp-Method: tools/call' -H 'Mcp-Name: echo')

bench_count SB_BENCH_IDLE_CONNS "$idle_n" 1 100000
bench_setup
bench_need wrk curl cc

# ---- build ----------------------------------------------------------------
if [[ ! -x $bin ]]; then
  [[ $bin == build/switchboard ]] || die "SWITCHBOARD_BIN=$bin is not executable"
  # Only a fresh build dir gets Release; an existing one is shared with
  # scripts/test.sh and keeps its own type.
  echo "http_echo: building switchboard in build" >&2
  bench_build build switchboard
fi
build_type=$(bench_build_type "$(dirname "$bin")")

work=$(mktemp -d "${TMPDIR:-/tmp}/http_echo.XXXXXX")
server_pid=""
idle_pid=""

stop_server() {
  bench_stop "$server_pid"
  server_pid=""
}

cleanup() {
  [[ -n $idle_pid ]] && kill "$idle_pid" 2>/dev/null
  stop_server
  rm -rf "$work"
}
trap cleanup EXIT

# Start a fresh server on a free port, on a store of its own in $work
# (never the repository's data/switchboard.db); sets server_pid and port.
# Waits for the "listening on http://HOST:PORT/mcp" line with a deadline.
start_server() {
  local tag=$RANDOM
  local log=$work/server.$tag.log
  : >"$log"
  "$bin" serve --listen 127.0.0.1:0 --store "$work/store.$tag.db" \
    2>"$log" >/dev/null </dev/null &
  server_pid=$!
  port=""
  local deadline=$((SECONDS + 15))
  while ((SECONDS < deadline)); do
    port=$(sed -n 's#.*listening on http://[^ ]*:\([0-9][0-9]*\)/mcp.*#\1#p' "$log" | head -n1)
    [[ -n $port ]] && return 0
    if ! kill -0 "$server_pid" 2>/dev/null; then
      server_pid=""
      die "server exited before listening; its log:
$(cat "$log")"
    fi
    sleep 0.05
  done
  die "no 'listening on http://HOST:PORT/mcp' line within 15 s; log:
$(cat "$log")"
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$server_pid/status"; }
fd_count() { find "/proc/$server_pid/fd" -mindepth 1 -maxdepth 1 | wc -l; }

# ---- throughput -------------------------------------------------------------
start_server
url=http://127.0.0.1:$port/mcp
base_url=http://127.0.0.1:$port/bench-404

# Sanity: one echo and one 404, by hand, before any load.
code=$(curl -sS -o "$work/echo.out" -w '%{http_code}' -X POST "${echo_headers[@]}" \
  --data "$echo_body" "$url") || die "curl to $url failed"
[[ $code == 200 ]] || die "echo answered HTTP $code: $(head -c 500 "$work/echo.out")"
if ! grep -q '"result"' "$work/echo.out" || ! grep -q '"text": *"hello"' "$work/echo.out"; then
  die "echo response lacks a result with the echoed text: $(head -c 500 "$work/echo.out")"
fi
code=$(curl -sS -o /dev/null -w '%{http_code}' "$base_url") || die "curl to $base_url failed"
[[ $code == 404 ]] || die "GET of an unknown path answered HTTP $code, expected 404"

echo "switchboard HTTP bench: $(nproc) cores shared by wrk and the server;" \
  "${duration}s per run; binary $bin (build type $build_type)"
echo "echo = POST /mcp tools/call echo (2026-07-28); baseline = GET unknown path (404)"
echo
printf '%6s | %10s %8s %8s | %10s %8s %8s | %8s\n' \
  conns "echo rq/s" "p50 ms" "p99 ms" "404 rq/s" "p50 ms" "p99 ms" "echo/404"
printf -- '-------+------------------------------+------------------------------+---------\n'
failures=()
rps_at_256=""
for c in "${conns_list[@]}"; do
  run_wrk echo "$c" "$url" bench/mcp_echo.lua
  e_rps=$rps e_p50=$p50 e_p99=$p99
  if ((requests == 0)); then failures+=("echo at $c connections: no responses"); fi
  if ((non2xx > 0)); then
    failures+=("echo at $c connections: $non2xx of $requests responses were not 2xx")
  fi
  [[ -n $sockerr ]] && failures+=("echo at $c connections: socket errors: $sockerr")
  ((c == 256)) && rps_at_256=$e_rps

  run_wrk baseline "$c" "$base_url"
  if ((non2xx != requests)); then
    failures+=("baseline at $c connections: only $non2xx of $requests were 404s")
  fi
  ratio=$(awk -v a="$e_rps" -v b="$rps" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
  printf '%6d | %10s %8s %8s | %10s %8s %8s | %8s\n' \
    "$c" "$e_rps" "$e_p50" "$e_p99" "$rps" "$p50" "$p99" "$ratio"
done
echo
if [[ -n $rps_at_256 ]]; then
  verdict="meets the bar"
  ((rps_at_256 >= bar_rps)) || verdict="BELOW the bar"
  echo "echo at 256 connections: $rps_at_256 req/s (bar >= $bar_rps): $verdict"
fi
stop_server

# ---- memory per idle connection -------------------------------------------
cc -O2 -o "$work/idle_conns" bench/idle_conns.c || die "could not build bench/idle_conns.c"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# measure_idle MODE LABEL: fresh server, one warm-up request, then idle_n
# connections; prints one line of figures.
measure_idle() {
  local mode=$1 label=$2
  start_server
  local rss0 fds0 rss1 fds1 line deadline
  fds0=$(fd_count)
  curl -sS -o /dev/null -X POST "${echo_headers[@]}" --data "$echo_body" \
    "http://127.0.0.1:$port/mcp" || die "warm-up request failed"
  # The server closes the warm-up connection on its own schedule; wait for
  # that so the fd baseline doesn't count it.
  deadline=$((SECONDS + 10))
  while (($(fd_count) > fds0)); do
    ((SECONDS < deadline)) || die "server kept the warm-up connection open"
    sleep 0.05
  done
  rss0=$(rss_kib)
  coproc IDLE { exec "$work/idle_conns" 127.0.0.1 "$port" "$idle_n" "$mode"; }
  idle_pid=$IDLE_PID
  local idle_out=${IDLE[0]} idle_in=${IDLE[1]}
  read -r -t 60 line <&"$idle_out" || die "idle_conns ($mode) did not get ready"
  [[ $line == "ready $idle_n" ]] || die "idle_conns ($mode): $line of $idle_n"
  # Connect-only sockets may still sit in the accept queue: wait until the
  # server really holds them (its fd count), with a deadline.
  deadline=$((SECONDS + 30))
  while (($(fd_count) < fds0 + idle_n)); do
    ((SECONDS < deadline)) || die "server holds only $(($(fd_count) - fds0)) of $idle_n connections"
    sleep 0.05
  done
  rss1=$(rss_kib)
  fds1=$(fd_count)
  exec {idle_in}>&-
  read -r -t 30 line <&"$idle_out" || line="still-open ?"
  wait "$idle_pid" || die "idle_conns ($mode) reported failed connections"
  idle_pid=""
  [[ $line == "still-open $idle_n" ]] ||
    failures+=("idle ($mode): server closed connections while idle ($line of $idle_n)")
  local per
  per=$(awk -v a="$rss0" -v b="$rss1" -v n="$idle_n" 'BEGIN { printf "%.2f", (b - a) / n }')
  local verdict="meets the bar"
  awk -v p="$per" -v bar="$bar_idle_kib" 'BEGIN { exit !(p <= bar) }' || verdict="BELOW the bar"
  printf '%-22s RSS %7d -> %7d KiB (+%d KiB, fds +%d): %6s KiB/conn (bar <= %d): %s\n' \
    "$label" "$rss0" "$rss1" $((rss1 - rss0)) $((fds1 - fds0)) "$per" "$bar_idle_kib" "$verdict"
  stop_server
}

echo
echo "memory per idle keep-alive connection ($idle_n connections, fresh server each):"
measure_idle none "connect only"
measure_idle get "after one request"

if ((${#failures[@]})); then
  echo
  for f in "${failures[@]}"; do echo "http_echo: FAIL: $f" >&2; done
  exit 1
fi
