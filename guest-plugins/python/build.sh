#!/usr/bin/env bash
# Builds every Python example plugin into a component: examples/<name>/app.py -> target/<name>.wasm, with the SDK
# (sdk/retention_sdk) on the Python path and the contract from ../../wit (world `plugin`).
#   ./build.sh              every example
#   ./build.sh age-tiering  only these
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/template/_venv.sh"
wit="$(cd "$here/../../wit" && pwd)"
mkdir -p "$here/target"
if [[ $# -gt 0 ]]; then names=("$@"); else names=(); for d in "$here"/examples/*/; do names+=("$(basename "$d")"); done; fi
for name in "${names[@]}"; do
    dir="$here/examples/$name"
    [[ -f "$dir/app.py" ]] || { echo "no example $name (expected $dir/app.py)" >&2; exit 1; }
    out="$here/target/$name.wasm"
    # VIRTUAL_ENV unset: an activated venv would add its site-packages to the path componentize-py searches.
    (cd "$dir" && env -u VIRTUAL_ENV "$venv/bin/componentize-py" -q -d "$wit" -w plugin componentize app \
        -p "$dir" -p "$here/sdk" -o "$out")
    echo "built $out ($(wc -c <"$out" | tr -d " ") bytes)"
done
