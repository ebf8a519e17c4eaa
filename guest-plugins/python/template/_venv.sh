# Sourced by build.sh and test.sh (here and in every project `retention plugin new --lang python` makes): makes sure
# $venv ($here/.venv) exists and holds exactly what $here/requirements.lock pins (re-installed when the lock file
# changes). Uses $PYTHON, default python3 (3.11 or newer).
venv="$here/.venv"
lock="$here/requirements.lock"
stamp="$venv/.requirements.lock.sha256"
if [[ ! -x "$venv/bin/python" ]]; then
    "${PYTHON:-python3}" -m venv "$venv"
fi
want="$("$venv/bin/python" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$lock")"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes -r "$lock"
    echo "$want" >"$stamp"
fi
