#!/usr/bin/env bash
# The GAN-recipe study (docs/RESULTS.md, "GAN recipes at equal CPU budget"): ELPV `defective`,
# minority fraction 0.25, one resolution, every recipe with the same wall budget, one GAN at a
# time; then sample sets, set metrics against the held-out val reals, and the ablation.
#
#   scripts/study_gan_recipes.sh gans      # prepare, judge, the GANs, their sample sets (~2 h 15 at 30m)
#   scripts/study_gan_recipes.sh ablate    # set metrics, the ablation (5 seeds), the reports (~35 min)
#   scripts/study_gan_recipes.sh all       # both
#
# Every step is resumable: rerun the same phase after a kill. Settings by environment:
#   OUT (runs/study-recipes)  RES (32)  BUDGET (30m)  SEEDS (0,1,2,3,4)  N_SAMPLES (2500)  RATIO (7)
#   RECIPES ("minority:ada minority:diffaug conditional:ada transfer:ada")  PRECISION (fp32)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PHASE="${1:-all}"
OUT="${OUT:-$ROOT/runs/study-recipes}"
RES="${RES:-32}"
BUDGET="${BUDGET:-30m}"
SEEDS="${SEEDS:-0,1,2,3,4}"
N_SAMPLES="${N_SAMPLES:-2500}"
RATIO="${RATIO:-7}"
PRECISION="${PRECISION:-fp32}"
RECIPES="${RECIPES:-minority:ada minority:diffaug conditional:ada transfer:ada}"
NON_GAN="baseline,oversample,class_weight,classic,oversample+classic,mixup"
DATA="$OUT/data"
JUDGE="$OUT/judge/model.pt"
mkdir -p "$OUT"
# shellcheck source=scripts/study_lib.sh
source "$ROOT/scripts/study_lib.sh"

gan_name() { echo "${1%%:*}_${1##*:}"; }

train_gan() {  # $1 = recipe:aug
  local recipe="${1%%:*}" aug="${1##*:}" dir
  dir="$OUT/gan_$(gan_name "$1")"
  [ -f "$dir/.trained" ] && return 0
  local resume=()
  [ -n "$(ls "$dir"/network-snapshot-*.pt 2>/dev/null)" ] && resume=(--resume latest)
  log "gan $recipe/$aug for $BUDGET"
  gen train --data "$DATA" --class defective --out "$dir" --recipe "$recipe" --aug "$aug" --preset cpu-tiny \
    --res "$RES" --budget "$BUDGET" --kimg 100000 --metrics fd,kd --judge "$JUDGE" --metric-every 5 \
    --precision "$PRECISION" --device cpu "${resume[@]}"
  touch "$dir/.trained"
}

sample_gan() {  # $1 = recipe:aug
  local name dir
  name="$(gan_name "$1")"
  dir="$OUT/gan_$name"
  [ -f "$OUT/samples_$name/samples.csv" ] && return 0
  log "samples $name"
  gen sample "$dir" --out "$OUT/samples_$name" --n "$N_SAMPLES" --class defective --judge "$JUDGE" \
    --snapshot best --device cpu
}

ablate() {
  log "set metrics"
  python "$ROOT/scripts/study_set_metrics.py" --data "$DATA" --judge "$JUDGE" --out "$OUT/set_metrics.json" \
    $(for r in $RECIPES; do echo "$OUT/samples_$(gan_name "$r")"; done)
  log "non-GAN arms"
  classify ablate --data "$DATA" --out "$OUT/ablate_base" --strategies "$NON_GAN" --models resnet18 \
    --seeds "$SEEDS" --res "$RES" --epochs 10 --device cpu --minority-class defective --no-report
  for r in $RECIPES; do
    local name
    name="$(gan_name "$r")"
    log "GAN arms $name"
    classify ablate --data "$DATA" --out "$OUT/ablate_$name" --strategies gan_filtered,gan --models resnet18 \
      --seeds "$SEEDS" --res "$RES" --epochs 10 --device cpu --minority-class defective \
      --samples "$OUT/samples_$name" --synthetic-ratio "$RATIO" --no-report
  done
  log "verdict"
  python "$ROOT/scripts/study_verdict.py" --base "$OUT/ablate_base" --reference oversample \
    $(for r in $RECIPES; do echo "$OUT/ablate_$(gan_name "$r")"; done) --out "$OUT/verdict.md"
}

case "$PHASE" in
  gans|all)
    prepare_and_judge
    for r in $RECIPES; do train_gan "$r"; sample_gan "$r"; done
    ;;&
  ablate|all)
    ablate
    ;;
  gans) ;;
  *) echo "usage: $0 gans|ablate|all" >&2; exit 2 ;;
esac
log "phase $PHASE done"
