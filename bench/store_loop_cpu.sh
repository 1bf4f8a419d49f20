#!/usr/bin/env bash
# The CPU one REST context update costs the server: its loop thread (what
# every other request, such as the built-in echo, waits for) and the whole
# process, per update, under the write load of bench/store_bench.sh's echo
# phase (8 connections PATCHing as fast as they are answered, 3 s). CPU
# per update does not depend on what else runs on the machine the way
# requests per second do, so it compares two builds on a busy box.
#
#   bench/store_loop_cpu.sh [BIN]    (default build/switchboard)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/switchboard}
work=$(mktemp -d "${TMPDIR:-/tmp}/store_loop_cpu.XXXXXX")
$bin serve --listen 127.0.0.1:0 --store $work/rest.db 2>$work/log >/dev/null </dev/null & spid=$!
port=""
for _ in $(seq 300); do port=$(sed -n 's#.*listening on http://[^ ]*:\([0-9][0-9]*\)/mcp.*#\1#p' $work/log | head -1); [ -n "$port" ] && break; sleep 0.05; done
base=http://127.0.0.1:$port
: > $work/ids
for _ in $(seq 8); do curl -sS -o /dev/null -D - -X POST -H 'Content-Type: application/json' --data '{}' $base/v1/contexts | sed -n 's#^[Ll]ocation: */v1/contexts/\([^[:space:]]*\).*#\1#p' >> $work/ids; done
cpu() { awk '{print $14+$15}' /proc/$spid/task/$1/stat; }
all() { awk '{print $14+$15}' /proc/$spid/stat; }
l0=$(cpu $spid); a0=$(all)
SB_BENCH_IDS=$work/ids wrk -t8 -c8 -d3s -s bench/ctx_update.lua $base/ > $work/wrk.txt 2>&1
l1=$(cpu $spid); a1=$(all)
n=$(awk '/requests in/ {print $1}' $work/wrk.txt); rps=$(awk '/^Requests\/sec:/ {print $2}' $work/wrk.txt)
tck=$(getconf CLK_TCK)
echo "updates=$n rps=$rps loop_us_per_update=$(echo "($l1-$l0)*1000000/$tck/$n" | bc) process_us_per_update=$(echo "($a1-$a0)*1000000/$tck/$n" | bc)"
kill "$spid"
wait "$spid" 2>/dev/null || true
rm -rf "$work"
