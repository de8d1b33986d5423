#!/bin/bash
# Profiles wsgate's proxy hot path on the 64 B scenario (10 connections x 40 in flight): one
# wsgate worker in front of wsecho, driven by wsload for a few seconds. Not part of `make bench`.
#
#   bash bench/profile.sh callgrind [BUILD]   # user-space instructions per round trip (load-independent)
#   bash bench/profile.sh strace [BUILD]      # system calls of the worker thread (strace -c)
#   bash bench/profile.sh perf [BUILD]        # perf record -e cpu-clock on the worker thread
#   SCENARIO=handshake bash bench/profile.sh perf   # the same on the proxied-handshake scenario
#
# BUILD defaults to ./build. Everything runs on ephemeral 127.0.0.1 ports; every process started
# here is stopped on exit. Outputs stay in the temp directory it prints.
set -euo pipefail
MODE=${1:?usage: profile.sh callgrind|strace|perf [BUILD]}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${2:-$ROOT/build}" && pwd)
WSGATE=$BUILD/controlplane/main/wsgate
TOOLS=$BUILD/bench
OUT=$(mktemp -d /tmp/wsprofile.XXXXXX)
cd "$OUT"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
free_port() { /usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

"$TOOLS/wsecho" --port 0 --lifetime-s 600 >echo.out 2>echo.err &
PIDS+=($!)
for _ in $(seq 50); do [ -s echo.out ] && break; sleep 0.1; done
EPORT=$(grep -o '[0-9]\+' echo.out | head -1)
cat >gw.yaml <<EOF
server:
  listen_address: 127.0.0.1
routes:
  - name: bench
    path: /bench
    websocket:
      upstreams: ["ws://127.0.0.1:$EPORT/bench"]
      connect_timeout_ms: 5000
    limits:
      max_message_bytes: 1048576
EOF
PORT=$(free_port) ADMIN=$(free_port) GRPC=$(free_port)
WRAP=()
[ "$MODE" = callgrind ] && WRAP=(valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out")
"${WRAP[@]}" "$WSGATE" --config gw.yaml --port "$PORT" --admin-port "$ADMIN" --grpc-port "$GRPC" \
  --workers 1 --log-level warn --shutdown-grace 1 >gw.out 2>gw.err &
GW=$!
PIDS+=($GW)
for _ in $(seq 600); do
  curl -sf -o /dev/null "http://127.0.0.1:$ADMIN/ready" && break
  sleep 0.1
done
load() {  # load DURATION: the scenario (SCENARIO=msg64, the default, msg1k or handshake); prints wsload's JSON line
  if [ "${SCENARIO:-msg64}" = msg1k ]; then
    "$TOOLS/wsload" --mode throughput --port "$PORT" --path /bench --size 1024 --conns 100 \
      --inflight 1 --duration "$1" --warmup 0 --watch-pids "$GW"
  elif [ "${SCENARIO:-msg64}" = handshake ]; then
    "$TOOLS/wsload" --mode handshake --port "$PORT" --path /bench --conns 32 --src-addrs 64 \
      --duration "$1" --warmup 0 --watch-pids "$GW"
  else
    "$TOOLS/wsload" --mode throughput --port "$PORT" --path /bench --size 64 --conns 10 \
      --inflight 40 --duration "$1" --warmup 0 --watch-pids "$GW"
  fi
}
# The worker thread: the one that used the most CPU during a short warm-up.
load 0.5 >/dev/null
WORKER=$(for t in /proc/$GW/task/*; do echo "$(basename "$t") $(awk '{print $14+$15}' "$t/stat")"; done |
  sort -k2 -n | tail -1 | cut -d' ' -f1)
case "$MODE" in
  callgrind)
    callgrind_control -z "$GW" >/dev/null
    RES=$(load 3)
    callgrind_control -d "$GW" >/dev/null
    MSGS=$(echo "$RES" | grep -o '"msgs":[0-9]*' | cut -d: -f2)
    IR=$(callgrind_annotate callgrind.out.1 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}')
    NEWS=$(callgrind_annotate --inclusive=yes --tree=caller --threshold=100 --auto=no callgrind.out.1 2>/dev/null |
      grep -o '< ???:operator new(unsigned long) ([0-9,]*x)' | head -1 | grep -o '[0-9,]*x' | tr -d ,x)
    echo "round trips $MSGS; instructions $IR; per round trip $((IR / MSGS)); operator new per round trip $(echo "scale=2; ${NEWS:-0} / $MSGS" | bc)"
    echo "profile: callgrind_annotate $OUT/callgrind.out.1"
    ;;
  strace)
    timeout 4 strace ${STRACE_ARGS:--c} -p "$WORKER" -o strace.txt &
    TRACER=$!
    sleep 0.5
    load 2 | grep -o '"msgs":[0-9]*\|"handshakes":[0-9]*'
    wait "$TRACER" || true  # not a bare wait: wsecho and wsgate are background jobs too
    cat strace.txt
    ;;
  perf)
    perf record -e cpu-clock -t "$WORKER" -o perf.data -- sleep 3 >/dev/null 2>&1 &
    TRACER=$!
    sleep 0.3
    load 2.5 | grep -o '"msgs_per_s":[0-9.]*\|"handshakes_per_s":[0-9.]*\|"proxy_cpu_us_per_unit":[0-9.]*'
    wait "$TRACER" || true
    perf report -i perf.data --sort dso 2>/dev/null | grep -v '^#' | grep .
    perf report -i perf.data --sort sym 2>/dev/null | grep -v '^#' | grep . | head -30
    ;;
  *) echo "unknown mode $MODE" >&2; exit 2 ;;
esac
echo "outputs in $OUT"
