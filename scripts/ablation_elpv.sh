#!/usr/bin/env bash
# The ELPV ablation behind docs/RESULTS.md: prepare -> judge -> GAN on 'defective' -> filtered
# samples -> ablation grid -> report. Every setting is an environment variable so the same
# script runs the GPU study and a tiny CPU rehearsal:
#   scripts/ablation_elpv.sh                                  # GPU defaults below
#   SRC=csv:sub.csv RES=32 KIMG=0.2 EPOCHS=1 SEEDS=0 DEVICE=cpu scripts/ablation_elpv.sh
# SRC is a `classify prepare` source (default: the built-in ELPV set). Steps whose output exists
# are skipped (gen sample and classify ablate resume by themselves).
set -euo pipefail
SRC=${SRC:-elpv}
OUT=${OUT:-runs/elpv_ablation}
RES=${RES:-128}
KIMG=${KIMG:-200}
GAN_PRESET=${GAN_PRESET:-auto}
N_SAMPLES=${N_SAMPLES:-3000}
EPOCHS=${EPOCHS:-10}
SEEDS=${SEEDS:-0,1,2}
JOBS=${JOBS:-1}
DEVICE=${DEVICE:-cuda}
STRATEGIES=${STRATEGIES:-baseline,oversample,classic,oversample+classic,gan,gan_filtered,gan_filtered+classic}
# Without an installed console script (e.g. a bare GPU image), run the click groups directly.
classify() { if command -v classify >/dev/null; then command classify "$@"; else python3 -c 'from classify.cli import main; main()' "$@"; fi; }
gen() { if command -v gen >/dev/null; then command gen "$@"; else python3 -c 'from gen.cli import main; main()' "$@"; fi; }
step() { echo "[ablation_elpv] $(date -u +%H:%M:%S) $*"; }

start=$(date +%s)
[ -f "$OUT/data/manifest.csv" ] || { step prepare; classify prepare "$SRC" --out "$OUT/data" --minority-class defective; }
[ -f "$OUT/judge/metrics.json" ] || { step judge; classify train --data "$OUT/data" --out "$OUT/judge" --strategy oversample \
  --epochs "$EPOCHS" --res "$RES" --device "$DEVICE" --quiet; }
resume=(); ls "$OUT"/gan/network-snapshot-*.pt >/dev/null 2>&1 && resume=(--resume "$OUT/gan")  # after an interruption
[ -f "$OUT/gan/best.json" ] || { step "gen train ($KIMG kimg)"; gen train --data "$OUT/data" --class defective \
  --out "$OUT/gan" --preset "$GAN_PRESET" --res "$RES" --kimg "$KIMG" --metrics fd,kd --judge "$OUT/judge/model.pt" \
  --device "$DEVICE" "${resume[@]}"; }
step "gen sample ($N_SAMPLES)"
gen sample "$OUT/gan" --out "$OUT/samples" --n "$N_SAMPLES" --class defective --judge "$OUT/judge/model.pt" \
  --device "$DEVICE"
step ablate
classify ablate --data "$OUT/data" --out "$OUT/ablate" --samples "$OUT/samples" --strategies "$STRATEGIES" \
  --models resnet18 --seeds "$SEEDS" --res "$RES" --epochs "$EPOCHS" --device "$DEVICE" --jobs "$JOBS"
step "done in $(( $(date +%s) - start ))s; report: $OUT/ablate/report.md"
