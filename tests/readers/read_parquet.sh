#!/usr/bin/env bash
# Runs read_parquet.py FILE under pyarrow, from a venv beside this script holding exactly what requirements.lock pins
# (made on first use, re-made when the lock file changes).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv"
lock="$here/requirements.lock"
stamp="$venv/.requirements.lock.sha256"
if [[ ! -x "$venv/bin/python" ]]; then
    "${PYTHON:-python3}" -m venv "$venv"
fi
want="$(sha256sum "$lock" | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes -r "$lock"
    echo "$want" >"$stamp"
fi
exec "$venv/bin/python" "$here/read_parquet.py" "$@"
