#!/bin/bash
# Instructions per room delivery (user space, callgrind: independent of machine load). One
# wsgate worker under valgrind --tool=callgrind on the in-memory bus, a room of MEMBERS members
# (fanout_load --mode room, member 0 sends 64 B, one message at a time); run twice, with
# REPEATS_LO and REPEATS_HI messages, and the difference of the two totals divided by the extra
# deliveries ((HI - LO) x (MEMBERS - 1)) cancels start-up, the handshakes and the shutdown.
# Not part of `make bench` or `make test`.
#
#   bash bench/profile_room.sh [BUILD] [WSGATE]   # WSGATE defaults to BUILD/controlplane/main/wsgate
#   MEMBERS=1000 REPEATS_LO=20 REPEATS_HI=120 bash bench/profile_room.sh   # the defaults
#
# Everything runs on ephemeral 127.0.0.1 ports; every process started here is stopped on exit.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd)
WSGATE=${2:-$BUILD/controlplane/main/wsgate}
LOAD=$BUILD/bench/fanout_load
MEMBERS=${MEMBERS:-1000}
LO=${REPEATS_LO:-20}
HI=${REPEATS_HI:-120}
OUT=$(mktemp -d /tmp/wsroomprof.XXXXXX)
cd "$OUT"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
free_port() { /usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
cat >gw.yaml <<EOF
server:
  listen_address: 127.0.0.1
routes:
  - name: bench
    path: /room/{client_id}
    room: {}
EOF

run() {  # run REPEATS: prints the callgrind total of instructions (Ir)
  local repeats=$1 port admin grpc gw
  port=$(free_port) admin=$(free_port) grpc=$(free_port)
  valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.$repeats" "$WSGATE" --config gw.yaml \
    --port "$port" --admin-port "$admin" --grpc-port "$grpc" --workers 1 \
    --max-connections $((MEMBERS + 100)) --log-level warn --shutdown-grace 1 \
    >"gw.$repeats.out" 2>"gw.$repeats.err" &
  gw=$!
  PIDS+=("$gw")
  for _ in $(seq 600); do
    curl -sf -o /dev/null "http://127.0.0.1:$admin/ready" && break
    sleep 0.1
  done
  "$LOAD" --mode room --target gateway --port "$port" --path-prefix /room/ --sessions "$MEMBERS" \
    --repeats "$repeats" --size 64 --no-saturation --drain-s 5 --open-timeout-s 300 \
    --connect-concurrency 50 >"load.$repeats.json"
  grep -q '"ok": *true' "load.$repeats.json" || { echo "fanout_load failed: $(cat "load.$repeats.json")" >&2; exit 1; }
  kill -INT "$gw"
  wait "$gw" || true
  awk '/^summary:/ {print $2}' "$OUT/cg.$repeats"  # all threads: worker, bus hub, the rest
}

lo=$(run "$LO")
hi=$(run "$HI")
per=$(( (hi - lo) / ((HI - LO) * (MEMBERS - 1)) ))
echo "members=$MEMBERS repeats=$LO:$HI Ir=$lo:$hi instructions_per_delivery=$per out=$OUT"
