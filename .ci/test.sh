#!/usr/bin/env bash
# `make test`: every test, in the order that costs the least wall time on a small machine.
#   1. The release build of what ships (wsgate, the benchmark tools, the admin UI) and its tests
#      end to end: ctest label `binary` (e2e.*, helm.*, bench.*). The C++ test binaries are not
#      built here: they run once, in step 3, where the sanitizers make them worth more.
#   2. The chart tools (.tools/: a Go build of helm when missing, minutes of CPU) build beside
#      step 1's tests, which mostly wait on sockets; the helm.* tests run once they are there.
#   3. An AddressSanitizer + UBSan build of everything, and every test against it.
# Exits non-zero when any step fails; runs all of them so that one CI run shows every failure.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BUILD_ASAN=${BUILD_ASAN:-build-asan}
JOBS=${JOBS:-$(nproc)}
MAKE_VARS=(BUILD="$BUILD" BUILD_ASAN="$BUILD_ASAN" JOBS="$JOBS")

step() { echo "test: $1 ($((SECONDS / 60)) min $((SECONDS % 60)) s since the start)"; }

# The Debian packages first (a compiler among them: pip builds a few C extensions for wstest).
make --no-print-directory deps
mkdir -p "$BUILD"
autobahn_log="$BUILD/autobahn-tools.log"
nice -n 10 make --no-print-directory autobahn-tools >"$autobahn_log" 2>&1 &
autobahn_pid=$!

make --no-print-directory "${MAKE_VARS[@]}" build
step "release build done"

helm_log="$BUILD/helm-tools.log"
nice -n 10 bash .ci/install-helm-tools.sh >"$helm_log" 2>&1 &
helm_pid=$!

# The conformance test's wstest (.tools/autobahn; pip from PyPI on a fresh machine, a no-op
# when there), installed while the release build runs, needed by the release tests.
if ! wait "$autobahn_pid"; then
  cat "$autobahn_log" >&2
  echo "test: the Autobahn TestSuite could not be installed (see above)" >&2
  exit 1
fi
cat "$autobahn_log"
step "autobahn tools ready"

failed=()
ctest --test-dir "$BUILD" --output-on-failure -j "$JOBS" --timeout 600 -L binary -LE helm \
  || failed+=("release")
step "release tests done"

if ! wait "$helm_pid"; then
  cat "$helm_log" >&2
  echo "test: the chart tools could not be installed (see above)" >&2
  exit 1
fi
cat "$helm_log"
step "chart tools ready"
ctest --test-dir "$BUILD" --output-on-failure -j "$JOBS" --timeout 600 -L helm \
  || failed+=("release helm")

# The UI is the same for both builds: reuse step 1's (admin-ui/build.sh sees it is up to date).
mkdir -p "$BUILD_ASAN/controlplane/main"
if [ -d "$BUILD/controlplane/main/admin-ui" ] && [ ! -e "$BUILD_ASAN/controlplane/main/admin-ui" ]; then
  cp -a "$BUILD/controlplane/main/admin-ui" "$BUILD_ASAN/controlplane/main/admin-ui"
fi
make --no-print-directory "${MAKE_VARS[@]}" test-asan || failed+=("asan")
step "sanitizer build and tests done"

if [ ${#failed[@]} -ne 0 ]; then
  echo "test: FAILED in: ${failed[*]}" >&2
  exit 1
fi
echo "test: every step passed (release binaries, chart, AddressSanitizer + UBSan)"
