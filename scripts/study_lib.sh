#!/usr/bin/env bash
# Shared by the ELPV study scripts (sourced, after OUT, DATA, JUDGE and RES are set): the log line
# and the one prepare + judge step every study starts from.
log() { echo "[study $(date +%H:%M:%S)] $*" | tee -a "$OUT/study.log"; }

prepare_and_judge() {
  [ -f "$DATA/manifest.csv" ] || classify prepare elpv --out "$DATA" --minority-class defective --minority-fraction 0.25
  if [ ! -f "$OUT/judge/metrics.json" ]; then
    log "judge"
    classify train --data "$DATA" --out "$OUT/judge" --model resnet18 --strategy oversample --res "$RES" \
      --epochs 15 --device cpu --force
  fi
}
