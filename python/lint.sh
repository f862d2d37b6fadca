#!/usr/bin/env bash
# Lint the stoker package: ruff check, ruff format --check and mypy, as
# configured in python/pyproject.toml (stoker/v1 is generated: left out).
# Usage: bash python/lint.sh
#
# The tools live in a venv of their own ($STOKER_LINT_VENV, default
# ~/.cache/stoker/lint-venv), made from requirements-lint.txt and reused
# while its stamp matches that file (about 200 MB; made and run from
# nothing in 37 s here, a run after that in about 1 s).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${STOKER_LINT_VENV:-$HOME/.cache/stoker/lint-venv}"
python="${PYTHON:-python3}"
stamp="$(sha256sum < "$here/requirements-lint.txt" | cut -d' ' -f1)"

if [[ ! -x "$venv/bin/python" || "$(cat "$venv/.stoker-stamp" 2>/dev/null)" != "$stamp" ]]; then
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$here/requirements-lint.txt" >&2
  echo "$stamp" > "$venv/.stoker-stamp"
  echo "lint: made $venv" >&2
fi

cd "$here"
export RUFF_CACHE_DIR="$venv/ruff-cache" MYPY_CACHE_DIR="$venv/mypy-cache"
status=0
"$venv/bin/ruff" check stoker || status=1
"$venv/bin/ruff" format --check stoker || status=1
"$venv/bin/mypy" || status=1
if [[ $status -ne 0 ]]; then
  echo "lint: failed (ruff check --fix / ruff format fix much of it: run them from $venv/bin in python/)" >&2
fi
exit $status
