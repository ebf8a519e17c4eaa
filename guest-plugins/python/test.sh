#!/usr/bin/env bash
# Runs the native tests (pytest on CPython, no component): the SDK's, then every example's.
# Extra arguments go to every pytest run (e.g. ./test.sh -q -k tier).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/template/_venv.sh"
# The template's lock file is a copy of this one (a new project is standalone): they must not drift.
cmp -s "$here/requirements.lock" "$here/template/requirements.lock" ||
    { echo "template/requirements.lock differs from requirements.lock: copy it" >&2; exit 1; }
(cd "$here/sdk" && "$venv/bin/python" -m pytest "$@")
for d in "$here"/examples/*/; do
    (cd "$d" && "$venv/bin/python" -m pytest "$@")
done
# The template of `retention plugin new --lang python`, with this SDK in place of its vendored copy.
(cd "$here/template" && "$venv/bin/python" -m pytest -o pythonpath=". ../sdk" "$@")
