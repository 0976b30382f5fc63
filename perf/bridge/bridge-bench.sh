#!/usr/bin/env bash
# Throughput of pipebridge (each engine) against socat and cat, with an external writer and reader.
#   FIFO -> FIFO : dd if=/dev/zero bs=1M > in | BRIDGE | dd of=/dev/null bs=1M < out
#   TCP  -> Unix : dd | socat -> tcp-listen | BRIDGE | unix-listen -> socat | dd
# Rounds alternate the candidates (A B C D, A B C D, ...); the median per candidate is reported.
# Usage: bridge-bench.sh [GiB per run (default 4)] [rounds (default 5)] [taskset cpu list, e.g. 0]
set -euo pipefail
GIB=${1:-4}
ROUNDS=${2:-5}
PIN=${3:-}
HERE=$(cd "$(dirname "$0")" && pwd)
DLL=${PIPEBRIDGE_DLL:-$HERE/../../src/PipeTransport.Bridge/bin/Release/net10.0/pipebridge.dll}
[ -f "$DLL" ] || { echo "build first: dotnet build src/PipeTransport.Bridge -c Release" >&2; exit 2; }
RUN=()
[ -n "$PIN" ] && RUN=(taskset -c "$PIN")
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
COUNT=$((GIB * 1024))

now() { date +%s.%N; }

# One FIFO -> FIFO run; prints seconds.
fifo_run() {
  local name=$1; shift
  rm -f "$d/in" "$d/out"; mkfifo "$d/in" "$d/out"
  local start end
  start=$(now)
  "${RUN[@]}" dd if=/dev/zero of="$d/in" bs=1M count=$COUNT status=none &
  local w=$!
  "${RUN[@]}" dd if="$d/out" of=/dev/null bs=1M status=none &
  local r=$!
  case $name in
    pipebridge-*) "${RUN[@]}" dotnet "$DLL" -u -b 1m --engine "${name#pipebridge-}" "fifo:$d/in" "fifo:$d/out" ;;
    socat) "${RUN[@]}" socat -u -b 65536 "GOPEN:$d/in" "GOPEN:$d/out" ;;
    cat) "${RUN[@]}" cat < "$d/in" > "$d/out" ;;
  esac
  wait $w $r
  end=$(now)
  echo "$end - $start" | bc
}

# One TCP -> Unix run; prints seconds. Both bridges report "listening on" (-v, -d -d) before the writer starts.
tcp_unix_run() {
  local name=$1; shift
  rm -f "$d/s.sock" "$d/bridge.log"
  "${RUN[@]}" socat -u -b 1048576 "UNIX-LISTEN:$d/s.sock" OPEN:/dev/null &
  local r=$!
  while [ ! -S "$d/s.sock" ]; do sleep 0.01; done
  local start end
  start=$(now)
  case $name in
    pipebridge-*) "${RUN[@]}" dotnet "$DLL" -v -u -b 1m --engine "${name#pipebridge-}" "tcp-listen:127.0.0.1:0" "unix:$d/s.sock" 2> "$d/bridge.log" & ;;
    socat) "${RUN[@]}" socat -d -d -u -b 65536 "TCP-LISTEN:0,bind=127.0.0.1" "UNIX-CONNECT:$d/s.sock" 2> "$d/bridge.log" & ;;
  esac
  local b=$!
  until grep -q "listening on" "$d/bridge.log" 2>/dev/null; do
    kill -0 $b 2>/dev/null || { cat "$d/bridge.log" >&2; exit 1; }
    sleep 0.005
  done
  local port
  port=$(grep -o 'listening on.*' "$d/bridge.log" | grep -oE '[0-9]+$')
  "${RUN[@]}" socat -u -b 1048576 "OPEN:/dev/zero,readbytes=$((COUNT * 1048576))" "TCP:127.0.0.1:$port"
  wait $b $r
  end=$(now)
  echo "$end - $start" | bc
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

declare -A results
fifo_candidates=(pipebridge-copy pipebridge-splice socat cat)
for ((round = 1; round <= ROUNDS; round++)); do
  for c in "${fifo_candidates[@]}"; do
    results[fifo-$c]+="$(fifo_run "$c") "
  done
done
echo "FIFO -> FIFO, ${GIB} GiB per run, ${ROUNDS} alternating rounds${PIN:+, taskset -c $PIN}"
for c in "${fifo_candidates[@]}"; do
  m=$(tr ' ' '\n' <<< "${results[fifo-$c]}" | grep . | median)
  printf '  %-18s median %6.3f s  %7.2f GiB/s   runs: %s\n' "$c" "$m" "$(echo "$GIB / $m" | bc -l)" "${results[fifo-$c]}"
done

tcp_candidates=(pipebridge-copy pipebridge-splice socat)
for ((round = 1; round <= ROUNDS; round++)); do
  for c in "${tcp_candidates[@]}"; do
    results[tcp-$c]+="$(tcp_unix_run "$c") "
  done
done
echo "TCP -> Unix socket, ${GIB} GiB per run, ${ROUNDS} alternating rounds${PIN:+, taskset -c $PIN}"
for c in "${tcp_candidates[@]}"; do
  m=$(tr ' ' '\n' <<< "${results[tcp-$c]}" | grep . | median)
  printf '  %-18s median %6.3f s  %7.2f GiB/s   runs: %s\n' "$c" "$m" "$(echo "$GIB / $m" | bc -l)" "${results[tcp-$c]}"
done
