#!/usr/bin/env bash
# Installs what `make docs` (docs/gen_operate.py) needs beyond the build: grpcurl, into .tools/bin
# of the checkout. grpcurl is not a Debian package; it is built from source by the Go toolchain
# through the Go module proxy.
# Idempotent: when the right version is there it checks it and exits in well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="${WSGATE_TOOLS_DIR:-$PWD/.tools}"
GRPCURL_VERSION=v1.9.1
GO="${GO:-}"
if [ -z "$GO" ]; then
  if command -v go >/dev/null; then GO=$(command -v go); else GO=/usr/local/go/bin/go; fi
fi
mkdir -p "$TOOLS/bin"

# A `go install` build reports no version through `grpcurl -version` ("dev build"), so read the
# module version Go recorded in the binary instead.
if "$GO" version -m "$TOOLS/bin/grpcurl" 2>/dev/null \
    | grep -q "github.com/fullstorydev/grpcurl[[:space:]]*${GRPCURL_VERSION}[[:space:]]"; then
  echo "install-docs-tools: grpcurl ${GRPCURL_VERSION} already in $TOOLS/bin"
  exit 0
fi
if [ ! -x "$GO" ]; then
  echo "install-docs-tools: no Go toolchain (looked for go on PATH and /usr/local/go/bin/go)" >&2
  exit 1
fi
echo "install-docs-tools: building grpcurl ${GRPCURL_VERSION} with $("$GO" version)"
GOBIN="$TOOLS/bin" GOFLAGS=-mod=mod nice -n 19 "$GO" install \
  "github.com/fullstorydev/grpcurl/cmd/grpcurl@${GRPCURL_VERSION}"
"$GO" version -m "$TOOLS/bin/grpcurl" \
  | grep -q "github.com/fullstorydev/grpcurl[[:space:]]*${GRPCURL_VERSION}[[:space:]]" || {
  echo "install-docs-tools: $TOOLS/bin/grpcurl is not ${GRPCURL_VERSION} after the install" >&2
  exit 1
}
echo "install-docs-tools: grpcurl ${GRPCURL_VERSION} installed in $TOOLS/bin"
