#!/usr/bin/env bash
# Builds the TypeScript SDK's examples as components with both engines:
#   target/<example>.starlingmonkey.wasm  (componentize-js: SpiderMonkey, via StarlingMonkey)
#   target/<example>.quickjs.wasm         (componentize-qjs: QuickJS)
# after a clean install of the pinned tools (package-lock.json), a check that the generated WIT types and the
# template's pins are current, and a type-check of everything.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
wit="../../wit"

npm ci --no-audit --no-fund

# sdk/types is generated from the WIT: fail if the WIT changed without regenerating it.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
node sdk/tools/cli.mjs guest-types "$wit" plugin "$tmp"
if ! diff -r "$tmp" sdk/types >/dev/null; then
  echo "sdk/types is stale: run  node sdk/tools/cli.mjs guest-types $wit plugin sdk/types" >&2
  exit 1
fi

# The template pins the same tools as this workspace.
node -e '
  const root = require("./package.json").devDependencies, tmpl = require("./template/package.json").devDependencies;
  if (JSON.stringify(root) !== JSON.stringify(tmpl)) {
    console.error("template/package.json devDependencies differ from package.json: " + JSON.stringify({ root, tmpl }));
    process.exit(1);
  }'

node_modules/.bin/tsc --noEmit -p .

for dir in examples/*/; do
  name="$(basename "$dir")"
  node sdk/tools/cli.mjs build "$dir/src/plugin.ts" --name "$name" --wit "$wit" --world plugin --out-dir target
done
ls -l target/*.wasm
