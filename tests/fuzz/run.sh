#!/usr/bin/env bash
# `make fuzz`: builds the libFuzzer targets of tests/fuzz with Debian's clang
# (-fsanitize=fuzzer,address,undefined) into $BUILD_FUZZ (default build-fuzz/) and runs each for
# FUZZ_SECONDS (default 60) on a copy of its seed corpus, then prints a summary line per target:
# executions, coverage (libFuzzer's cov: and ft:), corpus size and crashes.
#
#   FUZZ_SECONDS=60 FUZZ_TARGETS="url jwt_hs256" JOBS=2 bash tests/fuzz/run.sh
#
# Crashing inputs are left in $BUILD_FUZZ/crashes/<target>/ and make the script exit 1. The seed
# corpus in the repository is not changed (new inputs go to $BUILD_FUZZ/corpus/<target>/).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD_FUZZ="${BUILD_FUZZ:-$ROOT/build-fuzz}"
FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
JOBS="${JOBS:-2}"
ALL="frame_scanner ws_handshake request_head http_bridge_codec external_client_codec url target_policy path_template jwt_hs256 redis_url config_yaml admin_body"
FUZZ_TARGETS="${FUZZ_TARGETS:-$ALL}"

# clang 14 on Debian bookworm: libFuzzer's runtime (libclang_rt.fuzzer) is in libclang-rt-14-dev,
# which clang does not pull in.
if ! command -v clang++ >/dev/null || ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  echo "fuzz: installing clang and libclang-rt-14-dev"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends clang libclang-rt-14-dev
fi

cmake -S "$ROOT/tests/fuzz" -B "$BUILD_FUZZ" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DWSGATE_FUZZ=ON >/dev/null
cmake --build "$BUILD_FUZZ" -j "$JOBS"

status=0
summary=()
for t in $FUZZ_TARGETS; do
  corpus="$BUILD_FUZZ/corpus/$t"
  crashes="$BUILD_FUZZ/crashes/$t"
  mkdir -p "$corpus" "$crashes"
  cp -n "$ROOT/tests/fuzz/corpus/$t/"* "$corpus/" 2>/dev/null || true
  log="$BUILD_FUZZ/$t.log"
  echo "fuzz: $t for ${FUZZ_SECONDS}s (log: $log)"
  set +e
  "$BUILD_FUZZ/fuzz_$t" -max_total_time="$FUZZ_SECONDS" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$crashes/" "$corpus" >"$log" 2>&1
  rc=$?
  set -e
  # The last status line (#N DONE/pulse ... cov: X ft: Y corp: Z/...) and the final stats.
  last="$(grep -E '^#[0-9]+' "$log" | tail -1 || true)"
  execs="$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}' || true)"
  cov="$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")"
  ft="$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")"
  corp="$(sed -nE 's/.* corp: ([0-9]+\/[0-9a-zA-Z]+).*/\1/p' <<<"$last")"
  ncrash="$(find "$crashes" -type f | wc -l)"
  line="$(printf '%-22s execs=%-10s cov=%-6s ft=%-6s corp=%-12s crashes=%s rc=%s' "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$ncrash" "$rc")"
  echo "  $line"
  summary+=("$line")
  if [ "$rc" != 0 ] || [ "$ncrash" != 0 ]; then status=1; grep -E 'ERROR|FUZZ_CHECK|SUMMARY' "$log" | head -5 || true; fi
done
echo
echo "fuzz summary ($(date -u '+%Y-%m-%d %H:%M UTC'), ${FUZZ_SECONDS}s per target):"
printf '  %s\n' "${summary[@]}"
exit $status
