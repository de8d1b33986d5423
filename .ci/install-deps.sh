#!/usr/bin/env bash
# Installs the Debian packages wsgate needs to build, test and benchmark, if any is missing.
# Idempotent and quiet when everything is there. Extra package names may be given as arguments. Needs root (or sudo) on Debian bookworm.
set -euo pipefail

PACKAGES=(
  # build
  cmake ninja-build g++ pkg-config ccache
  libwebsocketpp-dev libboost-dev libboost-system-dev libssl-dev
  libgrpc++-dev libgrpc-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  prometheus-cpp-dev libyaml-cpp-dev nlohmann-json3-dev libspdlog-dev libcli11-dev libhiredis-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  # tests: an independent WebSocket and gRPC implementation, real servers
  python3 python3-pytest python3-websockets python3-grpcio python3-protobuf
  redis-server redis-tools nginx-light openssl
  # tools
  curl procps
  # chart tests (tests/helm): Prometheus + promtool, PyYAML, a venv for kubernetes-validate
  prometheus python3-yaml python3-venv
  # the admin UI's end-to-end test: a real browser driven by Playwright (no browser download)
  chromium
)

# The admin UI builds with Node.js 18+ and npm. The machine image may bring its own Node.js
# (which includes npm); only when npm is absent are Debian's packages installed.
# Packages named on the command line are added (bench/run.sh asks for python3-matplotlib).
PACKAGES+=("$@")

NODE_PACKAGES=()
command -v npm >/dev/null || NODE_PACKAGES=(nodejs npm)

missing=()
for p in "${NODE_PACKAGES[@]}"; do missing+=("$p"); done
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO=sudo; else
    echo "install-deps: missing packages (${missing[*]}) and not root; install them and retry" >&2
    exit 1
  fi
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
