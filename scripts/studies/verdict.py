"""The GAN-recipe study's verdict table: every arm against a reference arm, paired by seed.

Reads finished ablation cells of one folder of non-GAN arms (`--base`) and one folder of GAN
arms per recipe; names the GAN arms `<recipe folder>:<arm>`; prints (and writes) per arm the
mean and 95% CI of AP, ROC-AUC and minority F1 over seeds, and the paired difference to the
reference arm (default `oversample`) with its 95% t-interval and the plain verdict ("better",
"worse", "no detectable difference"). Uses the ablation report's own statistics
(`classify.ablate.stats`, `classify.ablate.analysis`).

    python scripts/studies/verdict.py --base ABL_BASE ABL_RECIPE1 ABL_RECIPE2 ... --out verdict.md
    python scripts/studies/verdict.py --base B --reference oversample,oversample+classic
                                      --samples S1 S2 ... F1 F2 --out v.md

With several references, one table per reference, then the goal of the synthetic-data study: the
best GAN arm (by mean AP) no worse than the last reference on any metric (CI not below 0) and
better than the first on AP (CI above 0). `--samples` adds each sample folder's two-sample AUCs
(its filter_report.json's domain-gap block).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from classify.ablate.analysis import METRIC_RANGE, METRICS, paired, values_by_arm
from classify.ablate.runner import load_cells
from classify.ablate.stats import summarize
from classify.core.errors import UserError

SHOWN = [m for m in METRICS if m.key in ("average_precision", "roc_auc", "minority_f1")]


def arms_of(folders: list[str], base: str) -> dict[str, dict[str, dict[int, float]]]:
    """metric -> arm -> seed -> value, over every folder (GAN arms prefixed by their folder)."""
    out: dict[str, dict[str, dict[int, float]]] = {m.key: {} for m in SHOWN}
    for folder in [base, *folders]:
        prefix = "" if folder == base else Path(folder).name.removeprefix("ablate_") + ":"
        try:
            records = load_cells(folder)
        except UserError as exc:  # a folder whose grid was refused or has not run: say so, go on
            print(f"note: {folder} left out ({exc})")
            continue
        for m in SHOWN:
            for _key, arms in values_by_arm(records, m.key).items():
                for arm, seeds in arms.items():
                    out[m.key][prefix + arm] = seeds
    return out


def table(values: dict[str, dict[str, dict[int, float]]], reference: str) -> list[str]:
    head = "| arm | " + " | ".join(f"{m.label} mean [95% CI] | Δ vs {reference} [95% CI] | verdict"
                                   for m in SHOWN)
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


def gap_table(sample_dirs: list[str]) -> list[str]:
    """Two-sample AUCs (pixels / judge features) of every sample folder, all and accepted."""
    lines = ["| sample set | class | pixels: all | accepted | real train vs val | features: all | accepted | "
             "real train vs val | brightness reals / all / accepted |", "|---" * 9 + "|"]
    for folder in sample_dirs:
        path = Path(folder) / "filter_report.json"
        if not path.is_file():
            continue
        gap = json.loads(path.read_text()).get("domain_gap") or {}
        for cls, entry in gap.get("per_class", {}).items():
            auc = [(entry.get(space) or {}).get(key, {}).get("auc") for space in ("pixels", "features")
                   for key in ("all", "accepted", "real_train_vs_val")]
            bright = [entry["stats"].get(k, {}).get("brightness", {}).get("mean")
                      for k in ("real_train", "all", "accepted")]
            lines.append(f"| {Path(folder).name} | {cls} | "
                         + " | ".join("n/a" if a is None else f"{a:.3f}" for a in auc)
                         + " | " + " / ".join("n/a" if b is None else f"{b:.3f}" for b in bright) + " |")
    return lines


def goal(values: dict[str, dict[str, dict[int, float]]], references: list[str]) -> list[str]:
    """Is the best GAN arm (by mean AP) no worse than the strongest reference on every metric and
    better than the first reference on AP?"""
    ap_arms = values["average_precision"]
    gan = [a for a in ap_arms if ":" in a]
    if not gan or any(r not in ap_arms for r in references):
        return []
    best = max(gan, key=lambda a: summarize(list(ap_arms[a].values())).mean)
    strong, weak = references[-1], references[0]
    lines = [f"Best GAN arm by mean AP: `{best}`."]
    no_worse = True
    for m in SHOWN:
        c = paired(values[m.key], best, strong, m)
        no_worse &= c.verdict != "worse"  # "no worse": the CI does not lie wholly below 0
        lines.append(f"- vs `{strong}` on {m.label}: {c.diff:+.3f} [{c.ci_low:+.3f}, {c.ci_high:+.3f}] "
                     f"({c.verdict})")
    c = paired(values["average_precision"], best, weak,
               next(m for m in SHOWN if m.key == "average_precision"))
    lines.append(f"- vs `{weak}` on AP: {c.diff:+.3f} [{c.ci_low:+.3f}, {c.ci_high:+.3f}] ({c.verdict})")
    reached = no_worse and c.ci_low > 0
    lines.append(f"Goal (no worse than `{strong}` on any metric, better than `{weak}` on AP): "
                 f"{'reached' if reached else 'not reached'}.")
    return lines


def parser() -> argparse.ArgumentParser:
    """The flags (a function, so the study TOMLs' steps can be checked against it in tests)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="*", help="ablation folders of GAN arms, one per recipe")
    ap.add_argument("--base", required=True, help="ablation folder of the non-GAN arms")
    ap.add_argument("--reference", default="oversample", help="reference arm(s), comma list")
    ap.add_argument("--samples", nargs="*", default=[],
                    help="gen sample folders whose two-sample AUCs to list")
    ap.add_argument("--out", required=True)
    return ap


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    values = arms_of(args.folders, args.base)
    references = [r.strip() for r in args.reference.split(",") if r.strip()]
    n_seeds = {arm: len(seeds) for arm, seeds in values[SHOWN[0].key].items()}
    lines = [f"Seeds per arm: {json.dumps(n_seeds)}.", ""]
    for ref in references:
        lines += [f"Paired by seed against `{ref}`:", "", *table(values, ref), ""]
    lines += goal(values, references)
    if args.samples:
        lines += ["", "Two-sample AUCs of the sample sets (0.5 = indistinguishable from the real train "
                  "images):", "", *gap_table(args.samples)]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
