#!/usr/bin/env bash
# README command 2: install into .venv (reused when up to date), lint, run the test suite.
# Fails loudly: any install error, lint error, failing test, or "no tests collected".
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
start=$(date +%s)
# shellcheck disable=SC1091
source "$ROOT/scripts/install.sh"

echo "[test] ruff check"
ruff check .

echo "[test] pytest"
set +e
python -m pytest -q "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "[test] FAILED: pytest collected no tests (exit 5) — that is not a pass" >&2
  exit 1
fi
echo "[test] finished in $(( $(date +%s) - start ))s with exit code $rc"
exit "$rc"
