#!/usr/bin/env bash
# Runs the plugin's tests natively with pytest (tests/, through retention_sdk.testing). Arguments go to pytest.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/_venv.sh"
cd "$here" && "$venv/bin/python" -m pytest "$@"
