#!/usr/bin/env bash
# Phase "ablate" of scripts/study_synthetic.sh: the arms of the synthetic-data study, one ablation folder
# per question (so the synthetic axes are not crossed with each other):
#   ablate_base               oversample, oversample+classic
#   ablate_<g>_ratio          gan_filtered(+classic) at ratios 1 and 2 (RATIOS)
#   ablate_<g>_weight         ratio 1, --synthetic-weight 0.5
#   ablate_<g>_warmup         ratio 1, --synthetic-schedule warmup
#   ablate_<g>_gapkeep        ratio 1 from samples_<g>_gapkeep (filters without the judge)
#   ablate_conditional_symall gan(+classic) at ratio 1 on the --class all set, --synthetic-classes
#                             minority,all (the judge filter accepts too few majority samples for
#                             gan_filtered; both variants draw from the same set, so the pair isolates
#                             symmetry)
# then the verdict tables against oversample and oversample+classic, with the sample sets' two-sample
# AUCs. Rerun after a kill: finished cells are kept; a refused grid is logged and skipped.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${OUT:-$ROOT/runs/study-synthetic}"
RES="${RES:-32}"
SEEDS="${SEEDS:-0,1,2,3,4}"
EPOCHS="${EPOCHS:-10}"
JOBS="${JOBS:-1}"
RATIOS="${RATIOS:-1,2}"
RECIPES="${RECIPES:-conditional transfer}"
GAN_ARMS="gan_filtered,gan_filtered+classic"
DATA="$OUT/data"
# shellcheck source=scripts/study_lib.sh
source "$ROOT/scripts/study_lib.sh"

ablate() {  # $1 = folder name, then classify ablate flags
  local dir="$OUT/$1"
  shift
  log "ablate $dir"
  classify ablate --data "$DATA" --out "$dir" --models resnet18 --seeds "$SEEDS" --res "$RES" --epochs "$EPOCHS" \
    --device cpu --minority-class defective --jobs "$JOBS" --no-report "$@" || log "ablate $dir stopped (see above)"
}

have() { [ -f "$OUT/samples_$1/samples.csv" ]; }

ablate ablate_base --strategies oversample,oversample+classic
folders=()
if have conditional_all && [[ " $RECIPES " == *" conditional "* ]]; then
  ablate ablate_conditional_symall --strategies gan,gan+classic --samples "$OUT/samples_conditional_all" \
    --synthetic-ratio 1 --synthetic-classes minority,all
  folders+=("$OUT/ablate_conditional_symall")
fi
for g in $RECIPES; do
  if have "${g}_judge"; then
    ablate "ablate_${g}_ratio" --strategies "$GAN_ARMS" --samples "$OUT/samples_${g}_judge" --synthetic-ratio "$RATIOS"
    ablate "ablate_${g}_weight" --strategies "$GAN_ARMS" --samples "$OUT/samples_${g}_judge" --synthetic-ratio 1 \
      --synthetic-weight 0.5
    ablate "ablate_${g}_warmup" --strategies "$GAN_ARMS" --samples "$OUT/samples_${g}_judge" --synthetic-ratio 1 \
      --synthetic-schedule warmup
    folders+=("$OUT/ablate_${g}_ratio" "$OUT/ablate_${g}_weight" "$OUT/ablate_${g}_warmup")
  fi
  if have "${g}_gapkeep"; then
    ablate "ablate_${g}_gapkeep" --strategies "$GAN_ARMS" --samples "$OUT/samples_${g}_gapkeep" --synthetic-ratio 1
    folders+=("$OUT/ablate_${g}_gapkeep")
  fi
done
log "verdict"
python "$ROOT/scripts/study_verdict.py" --base "$OUT/ablate_base" --reference oversample,oversample+classic \
  --samples "$OUT"/samples_* --out "$OUT/verdict.md" "${folders[@]}"
log "ablate done"
