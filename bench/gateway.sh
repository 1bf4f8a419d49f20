#!/usr/bin/env bash
# Gateway benchmark: switchboard beside the Node MCP proxies, one run.
#
#   bench/gateway.sh [--quick] [--perf]
#
# One stdio agent of our own (bench/echo_agent.c, tool `echo`) is fronted by
#   sb-mcp      switchboard, POST /mcp, modern stateless tools/call of the
#               namespaced tool echo__echo
#   sb-legacy   switchboard, POST /agents/echo/mcp in a legacy session
#               (initialize + notifications/initialized first, 2025-11-25)
#   mcp-proxy-modern   mcp-proxy (npm, pinned in package-lock.json), its
#               stream endpoint, modern stateless tools/call
#   mcp-proxy-legacy   the same mcp-proxy, a legacy session
#   supergateway-legacy  supergateway --stateful (Streamable HTTP; its
#               stateless mode spawns an agent per request), a legacy session
# and, as BASELINE in the same switchboard, its built-in `echo` on /mcp
# (sb-builtin). Each is loaded with wrk (bench/gateway_call.lua, a unique
# JSON-RPC id per request) at 1, 16, 64 and 256 connections, all targets
# taking turns at each connection count. Before and after every run a curl
# call checks the answer is 2xx and carries the echoed text; for switchboard
# the agent's failed-call counter must not move. Prints req/s, p50, p99, the
# ratio of switchboard to the best Node peer, and the agent hop (sb-mcp p50
# minus sb-builtin p50 at 1 connection) beside its floor: right after the
# 1-connection runs, bench/pipe_rtt times a bare round trip of one line
# between two processes on this machine (libuv on both sides over pipes,
# as switchboard and the agent are; also blocking reads, a socketpair, and
# one side spinning instead of sleeping), which no relay through a second
# process can beat; and the CPU each call cost switchboard and the agent at
# 1 connection (every thread's run time from /proc/PID/task/*/schedstat,
# over the calls made), which does not move with how fast idle CPUs wake
# as the latency does. Writes bench/results/gateway-<stamp>.json and .md,
# where <stamp> is the UTC start, YYYY-MM-DDTHHMMZ, and after a --quick run
# the start followed by -quick (gateway-<start>-quick.json and .md, which
# git ignores).
#
# Bars (reported, not fatal): at 256 connections switchboard >= 10x the best
# Node peer; at 1 connection the agent hop adds <= 25 us p50.
#
# --quick: 2 s runs (smoke test); default 10 s. --perf: afterwards, profile
# switchboard with `perf record --call-graph dwarf` during an extra
# 256-connection sb-mcp run and write bench/results/gateway-<stamp>-perf.txt
# (perf's overhead never touches the measured runs).
#
# wrk, the proxies, the agents and switchboard share this machine's cores,
# so figures are lower bounds on a bigger box; the load average before and
# after is recorded. Everything listens on 127.0.0.1, on ports picked free
# at run time, and is stopped on exit.
#
# CPU idle: on a virtual machine whose idle vCPUs halt (here: the
# haltpoll cpuidle driver with guest_halt_poll_ns 0), waking a halted vCPU
# costs 35-40 us, which swamps any 1-connection latency (bench/pipe_rtt
# between two processes: 76 us p50 halting, 6 us polling). So, run as root,
# the benchmark holds /dev/cpu_dma_latency at 0 for the whole matrix, as
# tuned's latency-performance profile does: idle CPUs poll instead of
# halting, for every target alike, and the request is dropped when the
# run ends. The 1-connection switchboard rows, and the floor, are then
# measured again with the machine's own idle, and both hops are reported.
#
# Environment: SB_BENCH_BUILD_DIR (default build-release, configured in
# Release if new; switchboard, echo_agent and pipe_rtt are built there);
# SB_BENCH_BUSY_POLL_US (limits.agent_busy_poll_us of the switchboard
# under test; unset: the config's default), recorded in the results;
# SB_BENCH_CPU_IDLE: poll (the default; falls back to the machine's idle,
# noted, when /dev/cpu_dma_latency cannot be opened) or machine (leave
# the CPUs' idle states alone, one pass).
set -euo pipefail
cd "$(dirname "$0")/.."
bench_name=gateway
# shellcheck source=bench/lib.sh
source bench/lib.sh

duration=10
perf=0
for arg in "$@"; do
  case $arg in
  --quick) duration=2 ;;
  --perf) perf=1 ;;
  -h | --help)
    bench_help
    exit 0
    ;;
  *) bench_usage "unknown argument $arg" ;;
  esac
done
[[ -z ${SB_BENCH_BUSY_POLL_US:-} ]] ||
  bench_count SB_BENCH_BUSY_POLL_US "$SB_BENCH_BUSY_POLL_US" 0 1000
cpu_idle=${SB_BENCH_CPU_IDLE:-poll}
[[ $cpu_idle == poll || $cpu_idle == machine ]] ||
  bench_usage "SB_BENCH_CPU_IDLE is poll or machine, not '$cpu_idle'"

bench_setup
bench_need wrk curl node cmake
((perf == 0)) || bench_need perf

build_dir=${SB_BENCH_BUILD_DIR:-build-release}
conns_list=(1 16 64 256)
bar_ratio=10  # switchboard / best Node peer at 256 connections
bar_hop_us=25 # agent hop, p50 at 1 connection
lua=bench/gateway_call.lua

# ---- build --------------------------------------------------------------
echo "gateway: building switchboard, echo_agent and pipe_rtt in $build_dir" >&2
bench_build "$build_dir" switchboard echo_agent pipe_rtt
build_type=$(bench_build_type "$build_dir")
sb_bin=$build_dir/switchboard
agent_bin=$(realpath "$build_dir/bench/echo_agent")
pipe_rtt_bin=$build_dir/bench/pipe_rtt
[[ -x node_modules/.bin/mcp-proxy && -x node_modules/.bin/supergateway ]] ||
  bench_die "mcp-proxy / supergateway missing from node_modules after scripts/setup.sh"

work=$(mktemp -d)
pids=()
idle_pid=""

# hold_idle_poll: keeps every CPU out of idle states deeper than polling
# while a child holds /dev/cpu_dma_latency open at 0 (PM QoS); fails when
# it cannot be opened (not root, or no such device).
hold_idle_poll() {
  [[ -w /dev/cpu_dma_latency ]] || return 1
  (exec 9>/dev/cpu_dma_latency && printf '\x00\x00\x00\x00' >&9 && exec sleep infinity) &
  idle_pid=$!
  local deadline=$((SECONDS + 5))
  until [[ $(od -An -tu4 /dev/cpu_dma_latency 2>/dev/null | tr -d ' ') == 0 ]]; do
    kill -0 "$idle_pid" 2>/dev/null && ((SECONDS < deadline)) || {
      release_idle
      return 1
    }
    sleep 0.05
  done
}
release_idle() {
  [[ -n $idle_pid ]] || return 0
  bench_stop "$idle_pid"
  idle_pid=""
}
idle_desc() {
  local driver
  driver=$(cat /sys/devices/system/cpu/cpuidle/current_driver 2>/dev/null || echo unknown)
  echo "cpuidle driver $driver, deepest state $(cat /sys/devices/system/cpu/cpu0/cpuidle/state*/name 2>/dev/null | tail -n1 || echo unknown)"
}

cleanup() {
  local pid child
  release_idle
  for pid in "${pids[@]}"; do
    # the proxies' agents first: they are the proxies' children
    for child in $(pgrep -P "$pid" 2>/dev/null); do kill "$child" 2>/dev/null || true; done
    bench_stop "$pid"
  done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  node -e 'const s = require("net").createServer();
    s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}

# wait_http URL LOG PID: until URL answers anything, with a deadline.
wait_http() {
  local url=$1 log=$2 pid=$3 deadline=$((SECONDS + 30))
  while ((SECONDS < deadline)); do
    curl -s -o /dev/null -m 1 "$url" && return 0
    kill -0 "$pid" 2>/dev/null || bench_die "$url: server exited; its log:
$(tail -n 20 "$log")"
    sleep 0.1
  done
  bench_die "$url: no answer within 30 s; log:
$(tail -n 20 "$log")"
}

# ---- start everything ---------------------------------------------------
busy_poll=${SB_BENCH_BUSY_POLL_US:-}
cat >"$work/switchboard.yaml" <<EOF
server:
  log_level: warning
${busy_poll:+limits: {agent_busy_poll_us: $busy_poll\}}
agents:
  - id: echo
    name: Echo agent
    type: general
    capabilities: [echo]
    models: {primary: none}
    outputFormat: text
    maxTokens: 1
    temperature: 0
    transport: {type: stdio, command: $agent_bin}
    limits: {maxConcurrent: 1024, timeoutMs: 30000}
EOF
"$sb_bin" serve --listen 127.0.0.1:0 --config "$work/switchboard.yaml" \
  --store "$work/switchboard.db" --log-level info \
  >/dev/null 2>"$work/switchboard.log" </dev/null &
sb_pid=$!
pids+=("$sb_pid")
sb_port=""
deadline=$((SECONDS + 15))
while [[ -z $sb_port ]]; do
  ((SECONDS < deadline)) || bench_die "switchboard did not listen; log: $(cat "$work/switchboard.log")"
  kill -0 "$sb_pid" 2>/dev/null || bench_die "switchboard exited; log: $(cat "$work/switchboard.log")"
  sleep 0.05
  sb_port=$(sed -n 's#.*listening on http://[^ ]*:\([0-9][0-9]*\)/mcp.*#\1#p' "$work/switchboard.log" | head -n1)
done
sb=http://127.0.0.1:$sb_port
# the agent is connected once its tools are known
deadline=$((SECONDS + 15))
until curl -s "$sb/v1/agents" | grep -q '"connected": *true'; do
  ((SECONDS < deadline)) || bench_die "agent echo did not connect; log: $(cat "$work/switchboard.log")"
  sleep 0.05
done

# The proxies, in production mode, bound to 127.0.0.1 (bench/loopback_only.cjs
# for supergateway, which takes no host).
export NODE_ENV=production
node_opts="--require $PWD/bench/loopback_only.cjs"
mp_port=$(free_port)
NODE_OPTIONS=$node_opts node_modules/.bin/mcp-proxy --host 127.0.0.1 \
  --port "$mp_port" --server stream -- "$agent_bin" \
  >"$work/mcp-proxy.log" 2>&1 </dev/null &
pids+=($!)
mp=http://127.0.0.1:$mp_port
wait_http "$mp/mcp" "$work/mcp-proxy.log" "${pids[-1]}"

sg_port=$(free_port)
NODE_OPTIONS=$node_opts node_modules/.bin/supergateway --stdio "$agent_bin" \
  --outputTransport streamableHttp --stateful --port "$sg_port" \
  --logLevel none >"$work/supergateway.log" 2>&1 </dev/null &
pids+=($!)
sg=http://127.0.0.1:$sg_port
wait_http "$sg/mcp" "$work/supergateway.log" "${pids[-1]}"

hdrs=(-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream')

# open_session URL -> prints the Mcp-Session-Id of an initialized legacy
# session.
open_session() {
  local url=$1 sid code
  curl -sS -m 10 -D "$work/init.h" -o "$work/init.out" "${hdrs[@]}" "$url" --data \
    '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"gateway-bench","version":"1"}}}' ||
    bench_die "initialize at $url failed"
  sid=$(sed -n 's/^mcp-session-id: *//Ip' "$work/init.h" | tr -d '\r')
  [[ -n $sid ]] || bench_die "initialize at $url gave no Mcp-Session-Id: $(head -c 500 "$work/init.out")"
  code=$(curl -sS -m 10 -o /dev/null -w '%{http_code}' "${hdrs[@]}" -H "Mcp-Session-Id: $sid" \
    -H 'MCP-Protocol-Version: 2025-11-25' "$url" \
    --data '{"jsonrpc":"2.0","method":"notifications/initialized"}') ||
    bench_die "notifications/initialized at $url failed"
  [[ $code == 2* ]] || bench_die "notifications/initialized at $url answered HTTP $code"
  echo "$sid"
}

# Targets, in the order they run at each connection count.
names=(sb-builtin sb-mcp sb-legacy mcp-proxy-modern mcp-proxy-legacy supergateway-legacy)
declare -A t_url t_tool t_session t_desc t_node
t_url[sb-builtin]=$sb/mcp t_tool[sb-builtin]=echo
t_desc[sb-builtin]="switchboard /mcp, built-in echo (modern) - baseline"
t_url[sb-mcp]=$sb/mcp t_tool[sb-mcp]=echo__echo
t_desc[sb-mcp]="switchboard /mcp, echo__echo via the agent (modern, stateless)"
t_url[sb-legacy]=$sb/agents/echo/mcp t_tool[sb-legacy]=echo
t_desc[sb-legacy]="switchboard /agents/echo/mcp, legacy session (2025-11-25)"
t_url[mcp-proxy-modern]=$mp/mcp t_tool[mcp-proxy-modern]=echo t_node[mcp-proxy-modern]=1
t_desc[mcp-proxy-modern]="mcp-proxy --server stream, modern stateless"
t_url[mcp-proxy-legacy]=$mp/mcp t_tool[mcp-proxy-legacy]=echo t_node[mcp-proxy-legacy]=1
t_desc[mcp-proxy-legacy]="mcp-proxy --server stream, legacy session (2025-11-25)"
t_url[supergateway-legacy]=$sg/mcp t_tool[supergateway-legacy]=echo t_node[supergateway-legacy]=1
t_desc[supergateway-legacy]="supergateway --stateful streamableHttp, legacy session (2025-11-25)"
for n in "${names[@]}"; do t_session[$n]=""; done
t_session[sb-legacy]=$(open_session "$sb/agents/echo/mcp")
t_session[mcp-proxy-legacy]=$(open_session "$mp/mcp")
t_session[supergateway-legacy]=$(open_session "$sg/mcp")

# check_echo NAME: one call by curl; 2xx, a result, the echoed text, no
# error. The response may be JSON or one SSE event.
check_echo() {
  local n=$1 text="check-$RANDOM$RANDOM" body code
  local h=("${hdrs[@]}")
  if [[ -n ${t_session[$n]} ]]; then
    h+=(-H "Mcp-Session-Id: ${t_session[$n]}" -H 'MCP-Protocol-Version: 2025-11-25')
    body='{"jsonrpc":"2.0","id":"check","method":"tools/call","params":{"name":"'${t_tool[$n]}'","arguments":{"text":"'$text'"}}}'
  else
    h+=(-H 'MCP-Protocol-Version: 2026-07-28' -H 'Mcp-Method: tools/call' -H "Mcp-Name: ${t_tool[$n]}")
    body='{"jsonrpc":"2.0","id":"check","method":"tools/call","params":{"name":"'${t_tool[$n]}'","arguments":{"text":"'$text'"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}'
  fi
  code=$(curl -sS -m 10 -o "$work/check.out" -w '%{http_code}' "${h[@]}" "${t_url[$n]}" --data "$body") ||
    bench_die "$n: curl to ${t_url[$n]} failed"
  [[ $code == 2* ]] || bench_die "$n: HTTP $code: $(head -c 500 "$work/check.out")"
  if ! grep -q '"result"' "$work/check.out" || ! grep -q "\"text\": *\"$text\"" "$work/check.out" ||
    grep -q '"isError": *true' "$work/check.out"; then
    bench_die "$n: the answer lacks a result echoing $text: $(head -c 500 "$work/check.out")"
  fi
}

# switchboard's count of the agent's calls: "OK FAILED"
agent_calls() {
  curl -sS -m 10 "$sb/v1/agents" | tr -d ' \n' |
    sed -n 's/.*"callsOk":\([0-9]*\),"callsFailed":\([0-9]*\).*/\1 \2/p'
}

# cpu_ns PID: CPU time the process has had, all its threads, in ns (the
# first field of each /proc/PID/task/*/schedstat: exact, not tick-sampled).
cpu_ns() {
  local f ns sum=0
  for f in /proc/"$1"/task/*/schedstat; do
    read -r ns _ <"$f" 2>/dev/null && sum=$((sum + ns))
  done
  echo "$sum"
}
# The echo agent's process: switchboard's one child.
agent_pid() { pgrep -P "$sb_pid" | head -n1; }

# ---- runs ---------------------------------------------------------------
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
for n in "${names[@]}"; do check_echo "$n"; done
# warm-up (JIT, allocator, the agent pipes): 1 s at 16 connections each
saved_duration=$duration
duration=1
for n in "${names[@]}"; do
  export GW_TOOL=${t_tool[$n]} GW_SESSION=${t_session[$n]}
  run_wrk "warmup-$n" 16 "${t_url[$n]}" "$lua"
done
unset GW_TOOL GW_SESSION
duration=$saved_duration

failures=()
notes=()
idle_held=0
if [[ $cpu_idle == poll ]]; then
  if hold_idle_poll; then
    idle_held=1
  else
    notes+=("CPU idle: /dev/cpu_dma_latency could not be held (not root?): the machine's own idle throughout")
  fi
fi
idle_machine="$(idle_desc)"
if ((idle_held)); then
  idle_text="held at polling (/dev/cpu_dma_latency 0) for the matrix; the machine's own: $idle_machine"
else
  idle_text="the machine's own ($idle_machine)"
fi
echo "gateway bench: $(nproc) cores shared by wrk, the proxies, the agents and switchboard;"
echo "  ${duration}s per run; switchboard $build_type build ($build_dir); load before: $load_before"
echo "  CPU idle: $idle_text"
echo
printf '%-20s %6s | %9s %9s %9s\n' target conns "req/s" "p50 ms" "p99 ms"
printf -- '---------------------------+------------------------------\n'
declare -A R P50US P99US FLOOR CPU_SB CPU_AGENT

# measure NAME CONNS KEY: one wrk run of target NAME, its answers checked
# before and after and its agent calls counted; figures kept under KEY.
# For switchboard at 1 connection, also the CPU each call cost switchboard
# and the agent (CPU_SB, CPU_AGENT, in µs): unlike the latency it does not
# move with how fast idle CPUs wake.
measure() {
  local n=$1 c=$2 key=$3 calls_before="" ok0 failed0 ok1 failed1
  local apid="" sb0=0 ag0=0
  [[ $n == sb-mcp || $n == sb-legacy ]] && calls_before=$(agent_calls)
  check_echo "$n"
  if [[ $n == sb-* && $c == 1 ]]; then
    apid=$(agent_pid)
    sb0=$(cpu_ns "$sb_pid") ag0=$(cpu_ns "$apid")
  fi
  export GW_TOOL=${t_tool[$n]} GW_SESSION=${t_session[$n]}
  run_wrk "$n" "$c" "${t_url[$n]}" "$lua"
  unset GW_TOOL GW_SESSION
  if [[ -n $apid ]] && ((requests > 0)); then
    CPU_SB[$key]=$(awk -v a="$sb0" -v b="$(cpu_ns "$sb_pid")" -v n="$requests" 'BEGIN { printf "%.1f", (b - a) / n / 1000 }')
    CPU_AGENT[$key]=$(awk -v a="$ag0" -v b="$(cpu_ns "$apid")" -v n="$requests" 'BEGIN { printf "%.1f", (b - a) / n / 1000 }')
  fi
  check_echo "$n"
  ((requests > 0)) || failures+=("$n at $c connections: no responses")
  ((non2xx == 0)) || failures+=("$n at $c connections: $non2xx of $requests responses were not 2xx")
  if [[ -n $sockerr ]]; then
    # a Node peer timing out under load is a figure of its own, not a
    # broken run; for switchboard it is a failure
    if [[ -n ${t_node[$n]:-} ]]; then
      notes+=("$n at $c connections: socket errors: $sockerr")
    else
      failures+=("$n at $c connections: socket errors: $sockerr")
    fi
  fi
  if [[ -n $calls_before ]]; then
    read -r ok0 failed0 <<<"$calls_before"
    read -r ok1 failed1 <<<"$(agent_calls)"
    ((failed1 == failed0)) || failures+=("$n at $c connections: $((failed1 - failed0)) agent calls failed")
    ((ok1 - ok0 >= requests)) ||
      failures+=("$n at $c connections: $requests responses but only $((ok1 - ok0)) agent calls")
  fi
  R[$key]=$rps P50US[$key]=$p50_us P99US[$key]=$p99_us
  printf '%-20s %6d | %9s %9s %9s\n' "$n" "$c" "$rps" "$p50" "$p99"
}

# measure_floor SUFFIX: bench/pipe_rtt, in the same minute as the hop it
# is compared with; FLOOR[<mode>SUFFIX].
measure_floor() {
  local m
  "$pipe_rtt_bin" --rounds 20000 >"$work/pipe_rtt.txt" || bench_die "pipe_rtt failed"
  for m in uv uv-sock blocking spin; do
    FLOOR[$m$1]=$(awk -v m="$m" '$1 == m {print $3}' "$work/pipe_rtt.txt")
    [[ -n ${FLOOR[$m$1]} ]] || bench_die "pipe_rtt gave no $m figure: $(cat "$work/pipe_rtt.txt")"
  done
}

for c in "${conns_list[@]}"; do
  for n in "${names[@]}"; do
    measure "$n" "$c" "$n,$c"
  done
  printf -- '---------------------------+------------------------------\n'
  ((c == 1)) && measure_floor ""
done
# The switchboard rows at 1 connection again, with the machine's own idle.
if ((idle_held)); then
  release_idle
  echo "1 connection again, with the machine's own CPU idle ($idle_machine):"
  for n in sb-builtin sb-mcp sb-legacy; do
    measure "$n" 1 "$n,1,machine"
  done
  measure_floor ",machine"
  printf -- '---------------------------+------------------------------\n'
fi
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
finished=$(date -u +%Y-%m-%dT%H:%M:%SZ)

# ---- ratios and bars ------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "n/a" }'; }
declare -A BEST BESTN
for c in "${conns_list[@]}"; do
  BEST[$c]=0 BESTN[$c]=none
  for n in "${names[@]}"; do
    [[ -n ${t_node[$n]:-} ]] || continue
    if ((R[$n,$c] > BEST[$c])); then BEST[$c]=${R[$n,$c]} BESTN[$c]=$n; fi
  done
done
echo
echo "switchboard vs the best Node peer (req/s ratio):"
printf '%6s | %-20s %9s | %8s %10s | %14s\n' conns "best Node peer" "req/s" "sb-mcp" "sb-legacy" "builtin/sb-mcp"
for c in "${conns_list[@]}"; do
  printf '%6d | %-20s %9s | %7sx %9sx | %13sx\n' "$c" "${BESTN[$c]}" "${BEST[$c]}" \
    "$(ratio "${R[sb-mcp,$c]}" "${BEST[$c]}")" "$(ratio "${R[sb-legacy,$c]}" "${BEST[$c]}")" \
    "$(ratio "${R[sb-builtin,$c]}" "${R[sb-mcp,$c]}")"
done
hop_us=$((P50US[sb-mcp,1] - P50US[sb-builtin,1]))
hop_legacy_us=$((P50US[sb-legacy,1] - P50US[sb-builtin,1]))
ratio256=$(ratio "${R[sb-mcp,256]}" "${BEST[256]}")
ratio256_legacy=$(ratio "${R[sb-legacy,256]}" "${BEST[256]}")
verdict() { awk -v v="$1" -v bar="$2" -v dir="$3" 'BEGIN {
  if (v == "n/a") { print "not met"; exit }
  ok = (dir == "ge") ? (v + 0 >= bar) : (v + 0 <= bar); print ok ? "met" : "NOT met" }'; }
bar1=$(verdict "$ratio256" "$bar_ratio" ge)
bar1_legacy=$(verdict "$ratio256_legacy" "$bar_ratio" ge)
bar2=$(verdict "$hop_us" "$bar_hop_us" le)
echo
echo "agent hop at 1 connection (p50 minus sb-builtin p50): sb-mcp ${hop_us} us, sb-legacy ${hop_legacy_us} us"
echo "bar: 256 connections, sb-mcp >= ${bar_ratio}x best Node peer: ${ratio256}x: $bar1"
echo "     (sb-legacy: ${ratio256_legacy}x: $bar1_legacy)"
echo "bar: 1 connection, agent hop <= ${bar_hop_us} us p50: ${hop_us} us: $bar2"
floor_us=${FLOOR[uv]}
over_floor=$(awk -v h="$hop_us" -v f="$floor_us" 'BEGIN { printf "%.1f", h - f }')
echo "floor (bench/pipe_rtt, a bare round trip between two processes, p50):" \
  "libuv over pipes ${FLOOR[uv]} us, over a socketpair ${FLOOR[uv-sock]} us," \
  "blocking reads ${FLOOR[blocking]} us, one side spinning ${FLOOR[spin]} us"
echo "agent hop over the floor (sb-mcp hop minus libuv pipes): ${over_floor} us"
echo "CPU idle: $idle_text"
# cpu_row NAME KEY: "switchboard / agent / both" µs per call at 1 connection
cpu_row() {
  awk -v s="${CPU_SB[$2]:-0}" -v a="${CPU_AGENT[$2]:-0}" -v n="$1" \
    'BEGIN { printf "%s: switchboard %.1f, agent %.1f, both %.1f", n, s, a, s + a }'
}
echo "CPU per call at 1 connection (us, all threads):" \
  "$(cpu_row sb-builtin sb-builtin,1); $(cpu_row sb-mcp sb-mcp,1); $(cpu_row sb-legacy sb-legacy,1)"
if ((idle_held)); then
  hop_m_us=$((P50US[sb-mcp,1,machine] - P50US[sb-builtin,1,machine]))
  hop_m_legacy_us=$((P50US[sb-legacy,1,machine] - P50US[sb-builtin,1,machine]))
  echo "with the machine's own CPU idle: sb-builtin p50 ${P50US[sb-builtin,1,machine]} us," \
    "agent hop sb-mcp ${hop_m_us} us, sb-legacy ${hop_m_legacy_us} us;" \
    "floor: libuv over pipes ${FLOOR[uv,machine]} us"
fi
echo "load average before: $load_before, after: $load_after"
for f in "${notes[@]}"; do echo "note: $f"; done

# ---- results files --------------------------------------------------------
mkdir -p bench/results
stamp=$(date -u +%Y-%m-%dT%H%MZ -d "$started")
((duration == 10)) || stamp=$stamp-quick
out_json=bench/results/gateway-$stamp.json
out_md=bench/results/gateway-$stamp.md
pkg_version() { node -p "require('./node_modules/$1/package.json').version"; }
mp_version=$(pkg_version mcp-proxy)
sg_version=$(pkg_version supergateway)
wrk_version=$(wrk --version 2>&1 | head -n1 | cut -d' ' -f2 || true)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
{
  printf '{\n  "benchmark": "gateway",\n  "command": "bench/gateway.sh%s",\n' "$([[ $duration == 2 ]] && echo ' --quick')"
  printf '  "started": "%s",\n  "finished": "%s",\n  "commit": "%s",\n' "$started" "$finished" "$commit"
  printf '  "machine": {"cores": %d, "cpu": "%s", "loadBefore": "%s", "loadAfter": "%s"},\n' \
    "$(nproc)" "$cpu" "$load_before" "$load_after"
  printf '  "buildType": "%s",\n  "durationS": %d,\n' "$build_type" "$duration"
  printf '  "agentBusyPollUs": "%s",\n' "${busy_poll:-default}"
  printf '  "cpuIdle": {"asked": "%s", "heldAtPolling": %s, "machine": "%s"},\n' \
    "$cpu_idle" "$( ((idle_held)) && echo true || echo false)" "$idle_machine"
  printf '  "tools": {"wrk": "%s", "node": "%s", "mcp-proxy": "%s", "supergateway": "%s"},\n' \
    "$wrk_version" "$(node --version)" "$mp_version" "$sg_version"
  printf '  "targets": {\n'
  for n in "${names[@]}"; do
    printf '    "%s": {"description": "%s", "node": %s}%s\n' "$n" "${t_desc[$n]}" \
      "$([[ -n ${t_node[$n]:-} ]] && echo true || echo false)" "$([[ $n == "${names[-1]}" ]] || echo ,)"
  done
  printf '  },\n  "runs": [\n'
  first=1
  for c in "${conns_list[@]}"; do
    for n in "${names[@]}"; do
      ((first)) || printf ',\n'
      first=0
      printf '    {"target": "%s", "connections": %d, "rps": %d, "p50Us": %d, "p99Us": %d}' \
        "$n" "$c" "${R[$n,$c]}" "${P50US[$n,$c]}" "${P99US[$n,$c]}"
    done
  done
  printf '\n  ],\n  "bestNodePeer": {'
  first=1
  for c in "${conns_list[@]}"; do
    ((first)) || printf ', '
    first=0
    printf '"%d": {"target": "%s", "rps": %d}' "$c" "${BESTN[$c]}" "${BEST[$c]}"
  done
  printf '},\n  "ratios": {\n'
  first=1
  for c in "${conns_list[@]}"; do
    ((first)) || printf ',\n'
    first=0
    printf '    "%d": {"sbMcpOverBestNode": %s, "sbLegacyOverBestNode": %s, "builtinOverSbMcp": %s}' "$c" \
      "$(ratio "${R[sb-mcp,$c]}" "${BEST[$c]}")" "$(ratio "${R[sb-legacy,$c]}" "${BEST[$c]}")" \
      "$(ratio "${R[sb-builtin,$c]}" "${R[sb-mcp,$c]}")"
  done
  printf '\n  },\n  "agentHopUs": {"sbMcp": %d, "sbLegacy": %d},\n' "$hop_us" "$hop_legacy_us"
  printf '  "floorP50Us": {"uvPipes": %s, "uvSocketpair": %s, "blocking": %s, "spin": %s},\n' \
    "${FLOOR[uv]}" "${FLOOR[uv-sock]}" "${FLOOR[blocking]}" "${FLOOR[spin]}"
  printf '  "agentHopOverFloorUs": %s,\n' "$over_floor"
  printf '  "cpuUsPerCallAt1": {'
  first=1
  for n in sb-builtin sb-mcp sb-legacy; do
    ((first)) || printf ', '
    first=0
    printf '"%s": {"switchboard": %s, "agent": %s}' "$n" "${CPU_SB[$n,1]:-null}" "${CPU_AGENT[$n,1]:-null}"
  done
  printf '},\n'
  if ((idle_held)); then
    printf '  "machineIdle": {"runs": ['
    first=1
    for n in sb-builtin sb-mcp sb-legacy; do
      ((first)) || printf ', '
      first=0
      printf '{"target": "%s", "connections": 1, "rps": %d, "p50Us": %d, "p99Us": %d, "cpuUsPerCall": {"switchboard": %s, "agent": %s}}' \
        "$n" "${R[$n,1,machine]}" "${P50US[$n,1,machine]}" "${P99US[$n,1,machine]}" \
        "${CPU_SB[$n,1,machine]:-null}" "${CPU_AGENT[$n,1,machine]:-null}"
    done
    printf '], "agentHopUs": {"sbMcp": %d, "sbLegacy": %d},' "$hop_m_us" "$hop_m_legacy_us"
    printf ' "floorP50Us": {"uvPipes": %s, "uvSocketpair": %s, "blocking": %s, "spin": %s}},\n' \
      "${FLOOR[uv,machine]}" "${FLOOR[uv-sock,machine]}" "${FLOOR[blocking,machine]}" "${FLOOR[spin,machine]}"
  else
    printf '  "machineIdle": null,\n'
  fi
  printf '  "bars": {\n'
  printf '    "ratioAt256": {"bar": ">= %dx", "value": %s, "verdict": "%s"},\n' "$bar_ratio" "$ratio256" "$bar1"
  printf '    "ratioAt256Legacy": {"bar": ">= %dx", "value": %s, "verdict": "%s"},\n' "$bar_ratio" "$ratio256_legacy" "$bar1_legacy"
  printf '    "agentHopP50Us": {"bar": "<= %d", "value": %d, "verdict": "%s"}\n  },\n' "$bar_hop_us" "$hop_us" "$bar2"
  printf '  "notes": %d,\n  "failures": %d\n}\n' "${#notes[@]}" "${#failures[@]}"
} >"$out_json"
{
  echo "# Gateway benchmark, $started"
  echo
  echo "Command: \`bench/gateway.sh$([[ $duration == 2 ]] && echo ' --quick')\` at commit $commit;" \
    "switchboard $build_type build (limits.agent_busy_poll_us: ${busy_poll:-default});" \
    "${duration} s per run; wrk $wrk_version," \
    "node $(node --version), mcp-proxy $mp_version, supergateway $sg_version."
  echo "Machine: $(nproc) cores ($cpu) shared by wrk, the proxies, the agents and switchboard;" \
    "load average before $load_before, after $load_after."
  echo "CPU idle: $idle_text."
  echo
  echo "The agent is bench/echo_agent (C, stdio). Targets:"
  echo
  for n in "${names[@]}"; do echo "- \`$n\`: ${t_desc[$n]}"; done
  echo
  echo "| conns | target | req/s | p50 µs | p99 µs |"
  echo "|---:|---|---:|---:|---:|"
  for c in "${conns_list[@]}"; do
    for n in "${names[@]}"; do
      echo "| $c | $n | ${R[$n,$c]} | ${P50US[$n,$c]} | ${P99US[$n,$c]} |"
    done
  done
  echo
  echo "| conns | best Node peer | req/s | sb-mcp / best | sb-legacy / best | sb-builtin / sb-mcp |"
  echo "|---:|---|---:|---:|---:|---:|"
  for c in "${conns_list[@]}"; do
    echo "| $c | ${BESTN[$c]} | ${BEST[$c]} | $(ratio "${R[sb-mcp,$c]}" "${BEST[$c]}")x |" \
      "$(ratio "${R[sb-legacy,$c]}" "${BEST[$c]}")x | $(ratio "${R[sb-builtin,$c]}" "${R[sb-mcp,$c]}")x |"
  done
  echo
  echo "Agent hop at 1 connection (p50 minus sb-builtin's p50): sb-mcp ${hop_us} µs, sb-legacy ${hop_legacy_us} µs."
  echo
  echo "Floor (bench/pipe_rtt right after the 1-connection runs: one line back and forth between two" \
    "processes, p50): libuv over pipes ${FLOOR[uv]} µs (what switchboard and the agent do), over a" \
    "socketpair ${FLOOR[uv-sock]} µs, blocking reads ${FLOOR[blocking]} µs, one side spinning" \
    "${FLOOR[spin]} µs. The sb-mcp hop is ${over_floor} µs over the libuv floor."
  echo
  echo "CPU per call at 1 connection (µs, every thread, from /proc/PID/task/*/schedstat; the agent's" \
    "is 0 for the built-in echo, which does not reach it):"
  echo
  echo "| target | switchboard | agent | both |"
  echo "|---|---:|---:|---:|"
  for n in sb-builtin sb-mcp sb-legacy; do
    echo "| $n | ${CPU_SB[$n,1]} | ${CPU_AGENT[$n,1]} |" \
      "$(awk -v s="${CPU_SB[$n,1]:-0}" -v a="${CPU_AGENT[$n,1]:-0}" 'BEGIN { printf "%.1f", s + a }') |"
  done
  echo
  if ((idle_held)); then
    echo "With the machine's own CPU idle ($idle_machine), right after the matrix, 1 connection:"
    echo
    echo "| target | req/s | p50 µs | p99 µs | CPU per call µs: switchboard | agent |"
    echo "|---|---:|---:|---:|---:|---:|"
    for n in sb-builtin sb-mcp sb-legacy; do
      echo "| $n | ${R[$n,1,machine]} | ${P50US[$n,1,machine]} | ${P99US[$n,1,machine]} |" \
        "${CPU_SB[$n,1,machine]} | ${CPU_AGENT[$n,1,machine]} |"
    done
    echo
    echo "Agent hop there: sb-mcp ${hop_m_us} µs, sb-legacy ${hop_m_legacy_us} µs; floor: libuv over" \
      "pipes ${FLOOR[uv,machine]} µs, blocking reads ${FLOOR[blocking,machine]} µs, one side spinning" \
      "${FLOOR[spin,machine]} µs."
    echo
  fi
  echo "| bar | value | verdict |"
  echo "|---|---:|---|"
  echo "| 256 connections: sb-mcp >= ${bar_ratio}x the best Node peer | ${ratio256}x | $bar1 |"
  echo "| 256 connections: sb-legacy >= ${bar_ratio}x the best Node peer | ${ratio256_legacy}x | $bar1_legacy |"
  echo "| 1 connection: agent hop <= ${bar_hop_us} µs p50 | ${hop_us} µs | $bar2 |"
  if ((${#notes[@]})); then
    echo
    echo "Notes:"
    for f in "${notes[@]}"; do echo "- $f"; done
  fi
  if ((${#failures[@]})); then
    echo
    echo "Failures:"
    for f in "${failures[@]}"; do echo "- $f"; done
  fi
} >"$out_md"
echo "wrote $out_json and $out_md"

# ---- profile (optional) -----------------------------------------------------
if ((perf)); then
  out_perf=bench/results/gateway-$stamp-perf.txt
  export GW_TOOL=echo__echo GW_SESSION=""
  perf record -q --call-graph dwarf,16384 -F 499 -p "$sb_pid" -o "$work/perf.data" -- sleep "$duration" \
    >"$work/perf.log" 2>&1 &
  perf_pid=$!
  run_wrk perf-sb-mcp 256 "$sb/mcp" "$lua"
  wait "$perf_pid" || bench_die "perf record failed: $(cat "$work/perf.log")"
  {
    echo "# perf record --call-graph dwarf -F 499 of switchboard during sb-mcp at 256 connections"
    echo "# (${duration}s, $rps req/s under perf)"
    echo "# 1. self time by symbol"
    perf report -i "$work/perf.data" --stdio --no-children --sort symbol,dso \
      --percent-limit 0.5 -g none 2>/dev/null | grep -v '^$'
    echo
    echo "# 2. inclusive time (self + callees) by symbol"
    perf report -i "$work/perf.data" --stdio --children --sort symbol \
      --percent-limit 1.5 -g none 2>/dev/null | grep -v '^$'
    echo
    echo "# 3. the hottest symbols with their callers"
    perf report -i "$work/perf.data" --stdio --no-children --sort symbol \
      --percent-limit 1.5 -g caller,0.5,callee,function,percent --max-stack 12 \
      2>/dev/null | grep -v '^$' | head -n 400
  } >"$out_perf"
  echo "wrote $out_perf"
fi

if ((${#failures[@]})); then
  echo
  for f in "${failures[@]}"; do echo "gateway: FAIL: $f" >&2; done
  exit 1
fi
