#!/usr/bin/env bash
# Create or reuse .venv and install ganbalance editable with the dev and elpv extras.
# Sourced by scripts/test.sh and scripts/demo.sh. Idempotent: skips pip when pyproject.toml
# has not changed since the last successful install (a stamp file records its hash).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
VENV="$ROOT/.venv"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[install] creating $VENV with $($PY --version 2>&1)"
  "$PY" -m venv "$VENV"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"

stamp="$VENV/.ganbalance-install-stamp"
want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || ! python -c "import gen, classify, stylegan2_ada" 2>/dev/null; then
  echo "[install] installing ganbalance[dev,elpv] into .venv (first run takes a few minutes)"
  start=$(date +%s)
  python -m pip install -q --upgrade pip
  # torch first on its own: where a local wheel of 2.14.1 exists pip takes it from disk;
  # elsewhere (GPU machines) an already-installed torch>=2.5 satisfies the floor.
  python -m pip install -q "torch>=2.5" "torchvision>=0.20"
  python -m pip install -q -e "$ROOT[dev,elpv]"
  echo "$want" > "$stamp"
  echo "[install] done in $(( $(date +%s) - start ))s"
else
  echo "[install] .venv is up to date"
fi
