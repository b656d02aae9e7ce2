#!/usr/bin/env bash
# The classifier study (docs/RESULTS.md, "A stronger classifier on ELPV"): ELPV defective vs
# functional at 128 px, resnet18 from scratch, then the seed reports' tools one at a time:
# progressive resizing, test-time augmentation, decoupled heads, a 3-model ensemble; and the
# classic-augmentation strength levels against baseline. Resumable: finished runs are skipped.
#
#   scripts/study_classifier_elpv.sh            # OUT=runs/cls-elpv, ~1 h on a 2-core CPU
#   RES=64 ABLATION=0 scripts/study_classifier_elpv.sh   # the quick version (~20 min)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${OUT:-$ROOT/runs/cls-elpv}"
RES="${RES:-128}"
EPOCHS="${EPOCHS:-10}"
COMMON=(--model resnet18 --res "$RES" --epochs "$EPOCHS" --device cpu --cpu-bf16)
DATA="$OUT/data"
mkdir -p "$OUT"
[ -f "$DATA/manifest.csv" ] || classify prepare elpv --out "$DATA" --minority-class defective

run() {  # $1 = name, rest = extra train flags
  local name="$1"; shift
  [ -f "$OUT/$name/metrics.json" ] || classify train --data "$DATA" --out "$OUT/$name" "${COMMON[@]}" "$@" --force
  [ -f "$OUT/$name/eval.json" ] || classify eval "$OUT/$name" --data "$DATA" --split test --device cpu
}

run baseline --strategy baseline --seed 0
[ -f "$OUT/baseline/eval_test_ttaflips.json" ] || classify eval "$OUT/baseline" --data "$DATA" --split test --tta flips --device cpu
run progressive --strategy baseline --seed 0 --res "64,$RES"
run head_logreg --strategy baseline --seed 0 --head logreg
run head_svm --strategy baseline --seed 0 --head svm
run baseline_seed1 --strategy baseline --seed 1
run baseline_seed2 --strategy baseline --seed 2
if [ ! -f "$OUT/ensemble/eval.json" ]; then
  classify ensemble "$OUT/baseline" "$OUT/baseline_seed1" "$OUT/baseline_seed2" --out "$OUT/ensemble" --device cpu
  classify eval "$OUT/ensemble" --data "$DATA" --split test --device cpu
fi
run classic_mild --strategy classic --seed 0 --classic mild
[ -f "$OUT/classic_mild/eval_test_ttaflips.json" ] || classify eval "$OUT/classic_mild" --data "$DATA" --split test --tta flips --device cpu
run classic_medium --strategy classic --seed 0 --classic medium
python "$ROOT/scripts/study_classifier_table.py" "$OUT" | tee "$OUT/table.md"

# Does classic augmentation still lower AP? 3 seeds at 64 px (time), paired by seed with baseline.
# ABLATION=0 skips it (the GAN-recipe study's 5-seed base ablation at 32 px measures it too).
[ "${ABLATION:-1}" = 1 ] || exit 0
ABL=(--data "$DATA" --models resnet18 --seeds 0,1,2 --res 64 --epochs "$EPOCHS" --device cpu --cpu-bf16
     --minority-class defective --no-report)
classify ablate --out "$OUT/classic_mild_ablate" --strategies baseline,classic,oversample,oversample+classic \
  --classic mild "${ABL[@]}"
classify ablate --out "$OUT/classic_medium_ablate" --strategies classic,oversample+classic --classic medium "${ABL[@]}"
python "$ROOT/scripts/study_verdict.py" --base "$OUT/classic_mild_ablate" --reference baseline \
  "$OUT/classic_medium_ablate" --out "$OUT/classic_verdict.md"
