#!/usr/bin/env bash
# Builds app.py into target/{{name}}.wasm: a component of the world `plugin` of wit/retention.wit, made by
# componentize-py (pinned in requirements.lock, installed into .venv) with retention_sdk/ beside app.py.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/_venv.sh"
mkdir -p "$here/target"
# VIRTUAL_ENV unset: an activated venv would add its site-packages to the path componentize-py searches.
(cd "$here" && env -u VIRTUAL_ENV "$venv/bin/componentize-py" -q -d "$here/wit" -w plugin componentize app \
    -p "$here" -o "$here/target/{{name}}.wasm")
echo "built $here/target/{{name}}.wasm ($(wc -c <"$here/target/{{name}}.wasm" | tr -d " ") bytes)"
