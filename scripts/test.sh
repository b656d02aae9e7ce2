#!/usr/bin/env bash
# README command 2: install into .venv (reused when up to date), lint, run the test suite.
# Fails loudly: any install error, lint error, failing test, or "no tests collected".
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
start=$(date +%s)
# shellcheck disable=SC1091
source "$ROOT/scripts/install.sh"

# The report test renders index.html in headless Chromium (Debian package `chromium`).
# Install it when absent and apt-get exists; a failed install stops here, loudly, and
# GANBALANCE_TEST_SH makes that test fail rather than skip if chromium is still missing.
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null; then
  echo "[test] installing Debian chromium for the report test (apt-get)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium; } >/tmp/ganbalance-apt.log 2>&1; then
    tail -20 /tmp/ganbalance-apt.log >&2
    echo "[test] FAILED: apt-get install chromium failed (log above, full log /tmp/ganbalance-apt.log)" >&2
    exit 1
  fi
fi
export GANBALANCE_TEST_SH=1

echo "[test] ruff check"
ruff check .

# Tests write up to ~0.5 GiB at once under the temp folder (pytest keeps only failed tests'
# folders). On a nearly full disk they would fail with a wall of PIL/torch ENOSPC tracebacks.
python - <<'PY'
import shutil, sys, tempfile
free = shutil.disk_usage(tempfile.gettempdir()).free / 2**30
if free < 1.0:
    sys.exit(f"[test] FAILED: only {free:.2f} GiB free in {tempfile.gettempdir()}; the tests need ~1 GiB")
PY

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
