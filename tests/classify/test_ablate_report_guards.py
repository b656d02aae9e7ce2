"""The ablation report's guards: a plain warning where the classifier barely learns, and
cell records it cannot use named instead of crashing or averaged in."""

from __future__ import annotations

from pathlib import Path

from classify_helpers import config, oversample_helps, run

from classify.ablate.cell import CellTask
from classify.ablate.report import write_report


def near_chance(task: CellTask) -> dict:
    """A classifier that learns nothing (test ROC-AUC around 0.55), yet oversample's F1 is higher."""
    out = oversample_helps(task)
    out["metrics"]["roc_auc"] = 0.55 + 0.01 * task.cell.seed
    return out


def test_report_says_plainly_when_the_classifier_barely_learns(tmp_path):
    cfg = config(tmp_path, seeds=[0, 1, 2])
    run(cfg, cell_fn=near_chance)
    answer = Path(write_report(cfg.out_dir)).read_text().split("## Answer")[1].split("## ")[0]
    first = answer.strip().splitlines()[0]
    assert "barely learns this task" in first and "oversample: test ROC-AUC 0.560" in first
    assert "raise --res/--epochs" in first
    learns = config(tmp_path / "ok", seeds=[0, 1, 2])
    run(learns, cell_fn=oversample_helps)  # ROC-AUC 0.8
    assert "barely learns" not in Path(write_report(learns.out_dir)).read_text()


def test_report_names_broken_cell_records_instead_of_crashing_or_averaging_them(tmp_path):
    """`seed: "x"`, NaN or a string metric in a cell JSON."""
    import json

    cfg = config(tmp_path, seeds=[0, 1, 2])
    run(cfg, cell_fn=oversample_helps)
    cells = Path(cfg.out_dir) / "cells"
    for name, edit in (("baseline__resnet18__frac1__seed0.json", lambda r: r["cell"].update(seed="x")),
                       ("baseline__resnet18__frac1__seed1.json",
                        lambda r: r["metrics"].update(roc_auc=float("nan"))),
                       ("oversample__resnet18__frac1__seed1.json",
                        lambda r: r["metrics"].update(minority_f1="0.9"))):
        record = json.loads((cells / name).read_text())
        edit(record)
        (cells / name).write_text(json.dumps(record))
    md = Path(write_report(cfg.out_dir)).read_text()
    assert "3 cell record(s) of" in md and "its cell does not parse" in md and (
        "roc_auc not a finite number" in md)
    assert "minority_f1 not a finite number" in md
