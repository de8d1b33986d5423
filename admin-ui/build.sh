#!/usr/bin/env bash
# Builds the admin UI into OUT (the admin-ui folder beside the wsgate binary, where wsgate looks
# for it by default). Called by `make build`. Skips everything when OUT is newer than every
# input; otherwise `npm ci` (when node_modules is missing or older than the lockfile), the client
# generated from proto/ with buf, a type check and the Vite build.
set -euo pipefail
OUT=$(realpath -m "${1:?usage: admin-ui/build.sh OUT_DIR}")
cd "$(dirname "$0")"
STAMP="$OUT/.build-stamp"

if [ -f "$STAMP" ] && [ -z "$(find src ../proto index.html package.json package-lock.json \
      vite.config.ts buf.gen.yaml tsconfig.json -newer "$STAMP" -not -path 'src/gen/*' \
      -print -quit)" ]; then
  exit 0
fi
if ! command -v npm >/dev/null; then
  echo "admin-ui: npm is missing (.ci/install-deps.sh installs Node.js)" >&2
  exit 1
fi
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # Playwright drives Debian's chromium: no browser download.
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
fi
npx --no-install buf generate
npx --no-install tsc --noEmit
WSGATE_UI_OUT="$OUT" npx --no-install vite build --logLevel warn
touch "$STAMP"
echo "admin-ui: built into $OUT"
