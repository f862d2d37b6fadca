#!/usr/bin/env bash
# Make a virtual environment with what python/tests need, and the stoker
# package, from PyPI. Usage: bash python/install_test_deps.sh [VENV]
# (default $STOKER_VENV or ~/.cache/stoker/venv). Prints the venv's python.
#
# A venv whose stamp matches requirements-test.txt is
# reused as it is (only the package is reinstalled); otherwise it is made
# anew. On a fresh machine this downloads about 2.7 GB (torch and its CUDA
# runtime libraries, tensorflow-cpu) and took 2-4 minutes here.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${1:-${STOKER_VENV:-$HOME/.cache/stoker/venv}}"
python="${PYTHON:-python3}"
stamp="$(sha256sum < "$here/requirements-test.txt" | cut -d' ' -f1)"

if [[ ! -x "$venv/bin/python" || "$(cat "$venv/.stoker-stamp" 2>/dev/null)" != "$stamp" ]]; then
  start=$(date +%s)
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$here/requirements-test.txt" >&2
  echo "$stamp" > "$venv/.stoker-stamp"
  echo "install_test_deps: installed in $(( $(date +%s) - start ))s into $venv" >&2
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "$here" >&2
echo "$venv/bin/python"
