#!/usr/bin/env bash
# Runs the native unit tests (node's test runner, no component built): the SDK's, every example's and the
# template's. Installs the pinned tools first if node_modules is missing.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
[ -d node_modules ] || npm ci --no-audit --no-fund
for dir in sdk examples/*/ template; do
  echo "== $dir"
  (cd "$dir" && node "$here/sdk/tools/cli.mjs" test)
done
