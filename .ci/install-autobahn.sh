#!/usr/bin/env bash
# Installs the Autobahn TestSuite (`wstest`, PyPI autobahntestsuite) that the conformance test
# (tests/integration/conformance/) runs, into .tools/autobahn of the checkout. It runs only on
# Python 2.7: pyenv's 2.7.18 on these machines (PYTHON27 overrides). Versions are pinned in
# .ci/autobahn-requirements.txt and installed with --no-deps, so every machine gets the same set.
# Idempotent: when the same pinned set is there it exits at once. A missing Python 2.7 or a
# failed install is an error (the test then fails too), never a skip.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="${WSGATE_TOOLS_DIR:-$PWD/.tools}"
DEST="$TOOLS/autobahn"
REQS="$PWD/.ci/autobahn-requirements.txt"
PYTHON27="${PYTHON27:-}"
if [ -z "$PYTHON27" ]; then
  root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
  PYTHON27="$root/versions/2.7.18/bin/python"
fi
if [ ! -x "$PYTHON27" ]; then
  echo "install-autobahn: no Python 2.7 at $PYTHON27 (set PYTHON27; pyenv has: $(ls "$(dirname "$(dirname "$(dirname "$PYTHON27")")")" 2>/dev/null | tr '\n' ' '))" >&2
  exit 1
fi
stamp="$DEST/.installed"
# The pins, the interpreter and the place: a moved checkout or another Python reinstalls (the
# wrapper names both).
want=$( { cat "$REQS"; echo "$PYTHON27 $DEST"; } | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$DEST/wstest" ]; then
  exit 0
fi
echo "install-autobahn: installing the pinned Autobahn TestSuite into $DEST with $PYTHON27"
rm -rf "$DEST"
mkdir -p "$DEST"
nice -n 10 "$PYTHON27" -m pip install -q --no-deps --target "$DEST/lib" -r "$REQS"
# zope.interface installs as a namespace package whose __init__ pip --target does not write:
# without it `import zope.interface` (Twisted) fails.
touch "$DEST/lib/zope/__init__.py"
cat >"$DEST/wstest" <<WRAP
#!/bin/sh
# Runs the pinned Autobahn TestSuite (written by .ci/install-autobahn.sh).
PYTHONPATH="$DEST/lib" PYTHONWARNINGS=ignore exec "$PYTHON27" -m autobahntestsuite.wstest "\$@"
WRAP
chmod +x "$DEST/wstest"
"$DEST/wstest" --autobahnversion >/dev/null
echo "$want" >"$stamp"
echo "install-autobahn: $("$DEST/wstest" --autobahnversion 2>&1 | tr '\n' ' ')"
