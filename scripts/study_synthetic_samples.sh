#!/usr/bin/env bash
# Phase "samples" of scripts/study_synthetic.sh, per generator (RECIPES, default "conditional transfer"):
#   samples_<g>_judge    --class defective, the default filters (judge, realism, memorisation, duplicates)
#   samples_<g>_gapkeep  the same seeds, no judge: stats, memorisation and duplicates decide, and the 1,000
#                        samples ranked best by realism and the two-sample score are kept (--keep; with a
#                        two-sample AUC of 1 the twosample threshold alone would reject every sample)
# and for the conditional generator samples_conditional_all (--class all: both classes in their real
# proportion) for symmetric synthesis. Each folder's filter_report.json holds its two-sample AUCs.
# A complete folder (samples.csv) is skipped; a refused one is logged and the study goes on.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${OUT:-$ROOT/runs/study-synthetic}"
N_SAMPLES="${N_SAMPLES:-2500}"
N_ALL="${N_ALL:-4000}"
RECIPES="${RECIPES:-conditional transfer}"
JUDGE="$OUT/judge/model.pt"
GAP_FILTERS="stats,realism,twosample,memorisation,duplicates"
# shellcheck source=scripts/study_lib.sh
source "$ROOT/scripts/study_lib.sh"

sample() {  # $1 = generator recipe, $2 = folder suffix, then gen sample flags
  local gan="$OUT/gan_$1" dir="$OUT/samples_$1_$2"
  shift 2
  [ -f "$gan/.trained" ] || { log "skip samples of $gan: not trained yet"; return 0; }
  [ -f "$dir/samples.csv" ] && return 0
  log "samples $dir"
  gen sample "$gan" --out "$dir" --judge "$JUDGE" --snapshot best --device cpu "$@" || log "samples $dir stopped"
}

for g in $RECIPES; do
  sample "$g" judge --class defective --n "$N_SAMPLES"
  sample "$g" gapkeep --class defective --n "$N_SAMPLES" --filters "$GAP_FILTERS" --keep 1000
done
case " $RECIPES " in
  *" conditional "*) sample conditional all --class all --n "$N_ALL" ;;
esac
log "samples done"
