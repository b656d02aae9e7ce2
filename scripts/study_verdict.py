"""The GAN-recipe study's verdict table: every arm against a reference arm, paired by seed.

Reads finished ablation cells of one folder of non-GAN arms (`--base`) and one folder of GAN
arms per recipe; names the GAN arms `<recipe folder>:<arm>`; prints (and writes) per arm the
mean and 95% CI of AP, ROC-AUC and minority F1 over seeds, and the paired difference to the
reference arm (default `oversample`) with its 95% t-interval and the plain verdict ("better",
"worse", "no detectable difference"). Uses the ablation report's own statistics
(`classify.ablate.stats`, `classify.ablate.analysis`).

    python scripts/study_verdict.py --base ABL_BASE ABL_RECIPE1 ABL_RECIPE2 ... --out verdict.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from classify.ablate.analysis import METRIC_RANGE, METRICS, paired, values_by_arm
from classify.ablate.runner import load_cells
from classify.ablate.stats import summarize

SHOWN = [m for m in METRICS if m.key in ("average_precision", "roc_auc", "minority_f1")]


def arms_of(folders: list[str], base: str) -> dict[str, dict[str, dict[int, float]]]:
    """metric -> arm -> seed -> value, over every folder (GAN arms prefixed by their folder)."""
    out: dict[str, dict[str, dict[int, float]]] = {m.key: {} for m in SHOWN}
    for folder in [base, *folders]:
        prefix = "" if folder == base else Path(folder).name.removeprefix("ablate_") + ":"
        records = load_cells(folder)
        for m in SHOWN:
            for _key, arms in values_by_arm(records, m.key).items():
                for arm, seeds in arms.items():
                    out[m.key][prefix + arm] = seeds
    return out


def table(values: dict[str, dict[str, dict[int, float]]], reference: str) -> list[str]:
    head = "| arm | " + " | ".join(f"{m.label} mean [95% CI] | Δ vs {reference} [95% CI] | verdict" for m in SHOWN)
    lines = [head + " |", "|---" * (1 + 3 * len(SHOWN)) + "|"]
    arms = sorted(values[SHOWN[0].key], key=lambda a: (":" in a, a != "baseline", a))
    for arm in arms:
        cells = [arm]
        for m in SHOWN:
            by_arm = values[m.key]
            s = summarize(list(by_arm[arm].values()), bounds=METRIC_RANGE)
            cells.append(f"{s.mean:.3f} [{s.ci_low:.3f}, {s.ci_high:.3f}]")
            if arm == reference or reference not in by_arm:
                cells += ["—", "—"]
                continue
            c = paired(by_arm, arm, reference, m)
            cells += [f"{c.diff:+.3f} [{c.ci_low:+.3f}, {c.ci_high:+.3f}]", c.verdict]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="*", help="ablation folders of GAN arms, one per recipe")
    ap.add_argument("--base", required=True, help="ablation folder of the non-GAN arms")
    ap.add_argument("--reference", default="oversample")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    values = arms_of(args.folders, args.base)
    n_seeds = {arm: len(seeds) for arm, seeds in values[SHOWN[0].key].items()}
    lines = [f"Paired by seed against `{args.reference}` (seeds per arm: {json.dumps(n_seeds)}).", "",
             *table(values, args.reference)]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
