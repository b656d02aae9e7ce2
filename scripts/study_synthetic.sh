#!/usr/bin/env bash
# The synthetic-data study (docs/RESULTS.md, "Synthetic images that teach the defect"): ELPV
# `defective`, minority fraction 0.25, one resolution; a conditional and a transfer generator with
# the exact ADA augmentation; then sample sets with their two-sample AUCs, and the ablation
# (symmetric synthesis, loss weight, warm-up schedule, ratios; each GAN arm also with +classic).
#
#   scripts/study_synthetic.sh gans      # prepare, judge, the two GANs (~1 h 40 at 45m each)
#   scripts/study_synthetic.sh samples   # sample sets (both classes) and their filter reports
#   scripts/study_synthetic.sh ablate    # the ablation (5 seeds) and the verdict
#   scripts/study_synthetic.sh all       # all three
#
# Every step is resumable: rerun the same phase after a kill (the GANs continue from their last
# snapshot with --resume latest). Settings by environment:
#   OUT (runs/study-synthetic)  RES (32)  BUDGET (45m)  SEEDS (0,1,2,3,4)  N_SAMPLES (2500)
#   PRECISION (bf16)  EPOCHS (10)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PHASE="${1:-all}"
OUT="${OUT:-$ROOT/runs/study-synthetic}"
RES="${RES:-32}"
BUDGET="${BUDGET:-45m}"
SEEDS="${SEEDS:-0,1,2,3,4}"
N_SAMPLES="${N_SAMPLES:-2500}"
PRECISION="${PRECISION:-bf16}"
EPOCHS="${EPOCHS:-10}"
RECIPES="conditional transfer"
DATA="$OUT/data"
JUDGE="$OUT/judge/model.pt"
mkdir -p "$OUT"
# shellcheck source=scripts/study_lib.sh
source "$ROOT/scripts/study_lib.sh"

train_gan() {  # $1 = recipe
  local dir="$OUT/gan_$1"
  [ -f "$dir/.trained" ] && return 0
  local resume=()
  [ -n "$(ls "$dir"/network-snapshot-*.pt 2>/dev/null)" ] && resume=(--resume latest)
  log "gan $1 for $BUDGET"
  gen train --data "$DATA" --class defective --out "$dir" --recipe "$1" --aug ada --augpipe bgc \
    --preset cpu-tiny --res "$RES" --budget "$BUDGET" --kimg 100000 --metrics fd,kd --judge "$JUDGE" \
    --metric-every 5 --precision "$PRECISION" --device cpu "${resume[@]}"
  touch "$dir/.trained"
}

case "$PHASE" in
  gans|all)
    prepare_and_judge
    for r in $RECIPES; do train_gan "$r"; done
    ;;&
  samples|all)
    bash "$ROOT/scripts/study_synthetic_samples.sh"
    ;;&
  ablate|all)
    bash "$ROOT/scripts/study_synthetic_ablate.sh"
    ;;
  gans|samples) ;;
  *) echo "usage: $0 gans|samples|ablate|all" >&2; exit 2 ;;
esac
log "phase $PHASE done"
