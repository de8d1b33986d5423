#!/usr/bin/env bash
# `make bench`: wsgate vs nginx as WebSocket reverse proxies, side by side.
#
#   bash bench/run.sh              full run: 3 alternating rounds, about 6 minutes
#   bash bench/run.sh --quick      smoke run: 1 round, seconds per figure
#   bash bench/run.sh --all-cores  2 workers per proxy, nothing pinned
#   bash bench/run.sh --help       every option (bench/driver.py)
#   make bench BENCH_ARGS=--quick  the same options through make
#   BENCH_CURVES=0 bash bench/run.sh   without the curves (bench/curves.py) that follow the table
#   BENCH_CENTRIFUGO=0 bash bench/run.sh   without the fan-out comparison with Centrifugo
#                                      (bench/centrifugo_bench.py) that comes last
#
# Installs what it needs (nginx-light, through .ci/install-deps.sh), builds the benchmark tools if
# they are missing, raises the open-files limit, then hands over to bench/driver.py. Whatever
# happens, the EXIT trap stops every process the run started (by pid, from the driver's list).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BUILD="${BUILD:-build}"

bash .ci/install-deps.sh

if [[ ! -x "$BUILD/bench/wsload" || ! -x "$BUILD/bench/wsecho" ]]; then
  [[ -f "$BUILD/build.ninja" ]] || cmake -S . -B "$BUILD" -G Ninja
  cmake --build "$BUILD" --target wsload wsecho
fi

# 8,000 proxied connections need 16,000 sockets in the proxy: use the hard limit (20,000 here).
ulimit -n "$(ulimit -Hn)"

WORK="$(mktemp -d /tmp/wsbench.XXXXXX)"
DRIVER=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n "$DRIVER" ]] && kill -0 "$DRIVER" 2>/dev/null; then
    kill -TERM "$DRIVER" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$DRIVER" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$DRIVER" 2>/dev/null || true
  fi
  # Anything the driver started and could not stop (if it was killed itself).
  if [[ -f "$WORK/pids" ]]; then
    while read -r pid; do
      [[ "$pid" =~ ^[0-9]+$ ]] || continue
      kill -0 "$pid" 2>/dev/null && kill -TERM "$pid" 2>/dev/null || true
    done < "$WORK/pids"
    sleep 0.5
    while read -r pid; do
      [[ "$pid" =~ ^[0-9]+$ ]] || continue
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    done < "$WORK/pids"
  fi
  if [[ $rc -ne 0 && -d "$WORK" ]]; then
    echo "bench: failed (exit $rc); process logs kept in $WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# In the background so that the traps run promptly on Ctrl-C; `wait` returns the driver's status.
# shellcheck disable=SC2086  # BENCH_ARGS is a list of options, split on purpose
/usr/bin/python3 "$ROOT/bench/driver.py" --build "$BUILD" --workdir "$WORK" ${BENCH_ARGS:-} "$@" &
DRIVER=$!
status=0
wait "$DRIVER" || status=$?

# Then the curves (bench/curves.py: msgs/s and p99 against connections, latency CDFs, RSS against
# idle connections) as PNGs in bench/results/<date>/. BENCH_CURVES=0 skips them.
if [[ "${BENCH_CURVES:-1}" != 0 && " ${BENCH_ARGS:-} $* " != *" --help "* ]]; then
  bash .ci/install-deps.sh python3-matplotlib
  quick=""
  [[ " ${BENCH_ARGS:-} $* " == *" --quick "* ]] && quick="--quick"
  /usr/bin/python3 "$ROOT/bench/curves.py" --build "$BUILD" --workdir "$WORK" $quick &
  DRIVER=$!
  wait "$DRIVER" || status=$?
fi

# Last, fan-out next to Centrifugo (bench/centrifugo_bench.py: wsgate's room kind against
# Centrifugo channels, memory and Redis each); Centrifugo is a pinned Go build in .tools/bin.
# BENCH_CENTRIFUGO=0 skips it.
if [[ "${BENCH_CENTRIFUGO:-1}" != 0 && " ${BENCH_ARGS:-} $* " != *" --help "* ]]; then
  bash .ci/install-centrifugo.sh
  bash .ci/install-deps.sh python3-matplotlib
  if [[ ! -x "$BUILD/bench/fanout_load" || ! -x "$BUILD/controlplane/main/wsgate" ]]; then
    cmake --build "$BUILD" --target fanout_load wsgate
  fi
  quick=""
  [[ " ${BENCH_ARGS:-} $* " == *" --quick "* ]] && quick="--quick"
  /usr/bin/python3 "$ROOT/bench/centrifugo_bench.py" --build "$BUILD" $quick &
  DRIVER=$!
  wait "$DRIVER" || status=$?
fi
exit "$status"
