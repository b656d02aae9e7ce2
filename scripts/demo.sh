#!/usr/bin/env bash
# README command 1: install into .venv (reused when up to date), then run the ganbalance
# pipeline on the ELPV solar-cell data. Each step is skipped when its output is complete,
# so a killed run continues where it stopped when started again.
#   scripts/demo.sh [--scale cpu|gpu] [--out runs/demo]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SCALE=cpu
OUT=runs/demo
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) SCALE="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "demo.sh: unknown argument $1 (use --scale cpu|gpu, --out DIR)" >&2; exit 2 ;;
  esac
done
case "$SCALE" in cpu|gpu) ;; *) echo "demo.sh: --scale must be cpu or gpu, not $SCALE" >&2; exit 2 ;; esac
start=$(date +%s)
# shellcheck disable=SC1091
source "$ROOT/scripts/install.sh"
gen pipeline --config "scripts/demo-$SCALE.toml" --out "$OUT"
echo "[demo] total wall time $(( $(date +%s) - start ))s"
