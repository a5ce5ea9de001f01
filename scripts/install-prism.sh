#!/bin/sh
# Install Stoplight Prism (the mock server users run on contracts/openapi.yaml) into .tools/prism,
# never globally. Prints the path of the `prism` executable. Idempotent: an existing install of
# the pinned version is reused. Exit 1 when npm is missing or the install fails.
#
#   scripts/install-prism.sh            # then: "$(scripts/install-prism.sh)" mock contracts/openapi.yaml
set -eu

VERSION="${PRISM_VERSION:-5.16.0}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PREFIX="$ROOT/.tools/prism"
BIN="$PREFIX/node_modules/.bin/prism"

if [ -x "$BIN" ] && [ "$("$BIN" --version 2>/dev/null)" = "$VERSION" ]; then
    echo "$BIN"
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    echo "install-prism: npm is not installed (Node.js 18+ is needed for Prism)" >&2
    exit 1
fi
mkdir -p "$PREFIX"
# A package.json of its own keeps npm from walking up into another project.
[ -f "$PREFIX/package.json" ] || echo '{"private": true}' > "$PREFIX/package.json"
npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error "@stoplight/prism-cli@$VERSION" >&2
echo "$BIN"
