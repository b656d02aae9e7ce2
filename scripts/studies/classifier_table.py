"""The table of the classifier study (scripts/studies/classifier_elpv.toml): test metrics and wall
time of every run.

    python scripts/studies/classifier_table.py runs/cls-elpv [--out table.md]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROWS = [  # (run folder, eval file, what it is)
    ("baseline", "eval.json", "resnet18 from scratch (baseline)"),
    ("progressive", "eval.json", "progressive resizing 64 -> 128"),
    ("baseline", "eval_test_ttaflips.json", "baseline + TTA (4 flips)"),
    ("head_logreg", "eval.json", "decoupled head: logistic regression"),
    ("head_svm", "eval.json", "decoupled head: linear SVM"),
    ("ensemble", "eval.json", "ensemble of 3 baselines (seeds 0-2, mean)"),
    ("classic_mild", "eval.json", "classic augmentation, mild (new default)"),
    ("classic_mild", "eval_test_ttaflips.json", "classic mild + TTA (4 flips): trained with flips"),
    ("classic_medium", "eval.json", "classic augmentation, medium (old default)"),
]


def wall_time(out: Path, run: str) -> str:
    if run == "ensemble":
        seconds = sum(json.loads((out / r / "metrics.json").read_text())["wall_time_s"]
                      for r in ("baseline", "baseline_seed1", "baseline_seed2"))
        return f"{seconds:.0f} (3 trainings)"
    path = out / run / "metrics.json"
    return f"{json.loads(path.read_text())['wall_time_s']:.0f}" if path.is_file() else "—"


def parser() -> argparse.ArgumentParser:
    """The flags (a function, so the study TOMLs' steps can be checked against it in tests)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("study", help="the study's output folder")
    ap.add_argument("--out", help="also write the table to this Markdown file")
    return ap


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    study = Path(args.study)
    lines = ["| run | test ROC-AUC | test AP | minority F1 | accuracy | threshold (val) | train wall s |",
             "|---|---|---|---|---|---|---|"]
    for run, name, label in ROWS:
        path = study / run / name
        if not path.is_file():
            lines.append(f"| {label} | not run | | | | | |")
            continue
        m = json.loads(path.read_text())
        lines.append(f"| {label} | {m['roc_auc']:.4f} | {m['average_precision']:.4f} | "
                     f"{m['minority_f1']:.4f} | {m['accuracy']:.4f} | {m['threshold']:.3f} | "
                     f"{wall_time(study, run)} |")
    print("\n".join(lines))
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
