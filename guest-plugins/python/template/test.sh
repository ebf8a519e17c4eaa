#!/usr/bin/env bash
# Runs the plugin's tests natively with pytest (tests/, through retention_sdk.testing). Arguments go to pytest.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
stamp="$venv/.requirements.lock.sha256"
[[ -x "$venv/bin/python" ]] || "${PYTHON:-python3}" -m venv "$venv"
want="$("$venv/bin/python" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$here/requirements.lock")"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes -r "$here/requirements.lock"
    echo "$want" >"$stamp"
fi
cd "$here" && "$venv/bin/python" -m pytest "$@"
