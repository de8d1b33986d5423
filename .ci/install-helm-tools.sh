#!/usr/bin/env bash
# Installs the tools the chart tests (tests/helm/) need, into .tools/ of the checkout:
#   helm (built from source by the Go toolchain through the Go module proxy),
#   kubernetes-validate (PyPI, into a venv that ships the Kubernetes schemas offline),
# Prometheus and promtool are Debian packages: .ci/install-deps.sh installs them.
# Idempotent: when everything is there it checks versions and exits in well under a second.
# A tool that cannot be installed is an error (a red CI), never a skipped test.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="${WSGATE_TOOLS_DIR:-$PWD/.tools}"
HELM_VERSION=v3.22.0
KV_VERSION=1.37.0
GO="${GO:-}"
if [ -z "$GO" ]; then
  if command -v go >/dev/null; then GO=$(command -v go); else GO=/usr/local/go/bin/go; fi
fi
mkdir -p "$TOOLS/bin"

# helm
# A `go install` build reports only major.minor (no ldflags), so read the module version instead.
if ! "$GO" version -m "$TOOLS/bin/helm" 2>/dev/null | grep -q "helm.sh/helm/v3[[:space:]]*${HELM_VERSION}[[:space:]]"; then
  if [ ! -x "$GO" ]; then
    echo "install-helm-tools: no Go toolchain (looked for go on PATH and /usr/local/go/bin/go)" >&2
    exit 1
  fi
  echo "install-helm-tools: building helm ${HELM_VERSION} with $("$GO" version)"
  GOBIN="$TOOLS/bin" GOFLAGS=-mod=mod "$GO" install "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
fi

# kubernetes-validate, in its own venv so it never touches the system Python
if ! "$TOOLS/kv/bin/kubernetes-validate" --version 2>/dev/null | grep -q "$KV_VERSION"; then
  echo "install-helm-tools: installing kubernetes-validate ${KV_VERSION}"
  rm -rf "$TOOLS/kv"
  /usr/bin/python3 -m venv "$TOOLS/kv"
  "$TOOLS/kv/bin/pip" install -q "kubernetes-validate==${KV_VERSION}"
fi

