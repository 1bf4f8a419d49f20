# bench/lib.sh: helpers shared by the benchmarks (bench/*.sh). Sourced, not
# run, from the repository's root. The caller sets:
#   bench_name  prefix of messages ("http_echo")
# and, for run_wrk only:
#   work        a scratch directory (wrk outputs go there)
#   duration    seconds per wrk run
# shellcheck shell=bash

bench_die() {
  echo "$bench_name: FAIL: $*" >&2
  exit 1
}

# bench_usage MESSAGE: a bad command line; exits 2 (before any setup or
# build).
bench_usage() {
  echo "$bench_name: $* (try --help)" >&2
  exit 2
}

# bench_help: prints the script's header, every comment line after the
# shebang up to the first line that is not a comment, without the "# ".
bench_help() {
  awk 'NR == 1 && /^#!/ { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' \
    "bench/${0##*/}"
}

# bench_count OPTION VALUE MIN MAX: VALUE (empty when the option came last)
# must be a whole number in MIN..MAX, else a usage error naming OPTION.
bench_count() {
  local opt=$1 v=${2-} min=$3 max=$4
  if [[ ! $v =~ ^[0-9]{1,18}$ ]] || ((10#$v < min || 10#$v > max)); then
    bench_usage "$opt needs a whole number in $min..$max${v:+, not '$v'}"
  fi
}

# bench_setup: scripts/setup.sh, which installs what the benches need (the
# Debian packages, node_modules) and is quick when all of it is there. Its
# output goes to stderr, beside the other progress lines.
bench_setup() {
  scripts/setup.sh >&2 || bench_die "scripts/setup.sh failed"
}

# bench_need TOOL...: each must be on PATH.
bench_need() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || bench_die "$tool is not installed (scripts/setup.sh)"
  done
}

# bench_build DIR TARGET...: configure DIR in Release if it has no cache yet
# (an existing build dir keeps its own type), then build the targets.
bench_build() {
  local dir=$1
  shift
  local type_flag=()
  [[ -f $dir/CMakeCache.txt ]] || type_flag=(-DCMAKE_BUILD_TYPE=Release)
  cmake -S . -B "$dir" "${type_flag[@]}" >/dev/null || bench_die "cmake configure of $dir failed"
  cmake --build "$dir" -j2 --target "$@" >/dev/null || bench_die "building $* in $dir failed"
}

# bench_build_type DIR: CMAKE_BUILD_TYPE of a build dir, or "unknown".
bench_build_type() {
  local t=""
  [[ -f $1/CMakeCache.txt ]] && t=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$1/CMakeCache.txt")
  echo "${t:-unknown}"
}

# bench_stop PID: SIGTERM, wait for the exit with a deadline (5 s), then
# SIGKILL. Only for processes this script started.
bench_stop() {
  local pid=$1
  [[ -n $pid ]] || return 0
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# wrk latency like "812.00us", "1.20ms", "2.01s" -> milliseconds, 2 decimals
to_ms() {
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    if (u == "us") n /= 1000; else if (u == "s") n *= 1000;
    else if (u == "m") n *= 60000;
    printf "%.2f", n }'
}

# the same -> whole microseconds
to_us() {
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    if (u == "ms") n *= 1000; else if (u == "s") n *= 1000000;
    else if (u == "m") n *= 60000000;
    printf "%.0f", n }'
}

# run_wrk NAME CONNS URL [LUA] -> sets rps p50 p99 (ms), p50_us p99_us,
# requests non2xx sockerr. Two threads (one per connection below two).
run_wrk() {
  local name=$1 c=$2 url=$3 lua=${4:-}
  local threads=2
  ((c < threads)) && threads=$c
  local out=$work/wrk.$name.$c.txt
  local args=(-t"$threads" -c"$c" -d"${duration}s" --latency)
  [[ -n $lua ]] && args+=(-s "$lua")
  wrk "${args[@]}" "$url" >"$out" 2>&1 || bench_die "wrk failed: $(cat "$out")"
  rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$out")
  local raw50 raw99
  raw50=$(awk '$1 == "50%" {print $2}' "$out")
  raw99=$(awk '$1 == "99%" {print $2}' "$out")
  p50=$(to_ms "$raw50") p99=$(to_ms "$raw99")
  p50_us=$(to_us "$raw50") p99_us=$(to_us "$raw99")
  requests=$(awk '/requests in/ {print $1}' "$out")
  non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$out")
  non2xx=${non2xx:-0}
  sockerr=$(sed -n 's/.*Socket errors: //p' "$out")
  [[ -n $rps && -n $requests ]] || bench_die "could not parse wrk output: $(cat "$out")"
}
