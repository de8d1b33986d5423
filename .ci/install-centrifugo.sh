#!/usr/bin/env bash
# Installs Centrifugo (the fan-out comparison in bench/centrifugo_bench.py and the smoke test
# bench.centrifugo_smoke) into .tools/bin of the checkout, built from source by the Go toolchain
# through the Go module proxy, at a pinned version.
# Idempotent: when the right version is there it exits in well under a second.
# A tool that cannot be installed is an error (a red CI), never a skipped test.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="${WSGATE_TOOLS_DIR:-$PWD/.tools}"
CENTRIFUGO_VERSION=v6.9.1
GO="${GO:-}"
if [ -z "$GO" ]; then
  if command -v go >/dev/null; then GO=$(command -v go); else GO=/usr/local/go/bin/go; fi
fi
mkdir -p "$TOOLS/bin"

# A `go install` build carries no release ldflags (its `centrifugo version` says 0.0.0), so read
# the module version from the binary instead.
if ! "$GO" version -m "$TOOLS/bin/centrifugo" 2>/dev/null \
    | grep -q "github.com/centrifugal/centrifugo/v6[[:space:]]*${CENTRIFUGO_VERSION}[[:space:]]"; then
  if [ ! -x "$GO" ]; then
    echo "install-centrifugo: no Go toolchain (looked for go on PATH and /usr/local/go/bin/go)" >&2
    exit 1
  fi
  echo "install-centrifugo: building centrifugo ${CENTRIFUGO_VERSION} with $("$GO" version)"
  GOBIN="$TOOLS/bin" GOFLAGS=-mod=mod "$GO" install "github.com/centrifugal/centrifugo/v6@${CENTRIFUGO_VERSION}"
fi
