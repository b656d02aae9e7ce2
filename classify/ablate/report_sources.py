"""The cells a report reads: one ablation folder, or several put on one minority-fraction axis.

A cell's `minority_fraction` is relative to the train split of its data folder, and
`classify prepare --minority-fraction` may already have moved real minority images to the
`unused` split. A scarcity study often does exactly that: one prepared folder per fraction,
each with its own judge and GAN, because a generator must never see real minority images its
cells may not (a GAN trained on a 25% folder matches that folder's cells image for image,
which the per-seed subsample of `--minority-fraction` inside one ablation cannot offer).

So the report's fraction is of the *full* data's real minority train images: prepare's
fraction times the cell's. Records are copies with that value in `cell["minority_fraction"]`;
the cell's own value stays in `cell["ablation_minority_fraction"]`. Nothing on disk changes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from classify.ablate.config import default_setting, result_train_keys
from classify.ablate.design import Cell, SyntheticAxes, build_grid
from classify.ablate.runner import failed_cells, load_cells
from classify.core.errors import UserError


def prepared_info(data_dir: str | None) -> dict | None:
    """DATA_DIR/classes.json (what `classify prepare` wrote); None if missing or unreadable."""
    try:
        info = json.loads((Path(data_dir or "") / "classes.json").read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def prepared_minority_fraction(data_dir: str | None) -> float | None:
    """The --minority-fraction `classify prepare` applied to DATA_DIR; None if unreadable."""
    try:
        return float((prepared_info(data_dir).get("config") or {}).get("minority_fraction", 1.0))
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def _rescaled(record: dict, kept: float | None, source: str) -> dict:
    cell = dict(record["cell"])
    own = float(cell["minority_fraction"])
    cell["ablation_minority_fraction"] = own
    cell["minority_fraction"] = round(own * (1.0 if kept is None else kept), 6)
    return dict(record, cell=cell, source_dir=source)


REPORTED_METRICS = ("minority_f1", "average_precision", "roc_auc", "balanced_accuracy", "ece")


def _valid_cells(records: list[dict]) -> tuple[list[dict], list[str]]:
    """The records a report can use, and one reason per record it cannot: a cell that does not
    parse (`seed: "x"`), or a metric that is not a finite number in [0, 1] (a hand-edited or
    corrupted file must be named, not averaged in or crash the report)."""
    good, broken = [], []
    for r in records:
        name = str(r.get("id", "?"))
        try:
            Cell.from_dict(r["cell"])
        except (KeyError, TypeError, ValueError) as exc:
            broken.append(f"{name}: its cell does not parse ({type(exc).__name__}: {exc})")
            continue
        bad = [k for k in REPORTED_METRICS if k in r["metrics"] and not _in_unit_range(r["metrics"][k])]
        if bad:
            broken.append(f"{name}: {', '.join(bad)} not a finite number in [0, 1]")
            continue
        good.append(r)
    return good, broken


def _in_unit_range(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and 0 <= value <= 1)


def load_records(ablate_dirs: list[str | Path]) -> tuple[list[dict], list[str]]:
    """Finished cells of every folder (rescaled, see module doc) and notes for the caveats.

    Refuses folders whose cells would land on the same (model, fraction, arm, seed): their
    results would silently overwrite each other in the paired tables.
    """
    records: list[dict] = []
    notes: list[str] = []
    owner: dict[tuple, str] = {}
    kept_of: dict[str, float | None] = {}
    training: dict[tuple, str] = {}
    for folder in map(str, ablate_dirs):
        cells, broken = _valid_cells(load_cells(folder))
        if broken:
            notes.append(f"{len(broken)} cell record(s) of {folder} are left out: {'; '.join(broken[:5])}"
                         + (" …" if len(broken) > 5 else ""))
        notes += unfinished_notes(folder, len(cells) + len(broken))
        for record in cells:
            _same_training(record, folder, training)
            data_dir = str((record.get("train_config") or {}).get("data_dir", ""))
            if data_dir not in kept_of:
                kept_of[data_dir] = prepared_minority_fraction(data_dir)
                if kept_of[data_dir] is None:
                    notes.append(f"could not read {data_dir}/classes.json: minority fractions of cells on it "
                                 "are relative to that folder's train split, not to the full data")
            r = _rescaled(record, kept_of[data_dir], folder)
            c = r["cell"]
            key = (c["model"], c["minority_fraction"], r["arm"], int(c["seed"]))
            if owner.setdefault(key, folder) != folder:
                raise UserError(f"{owner[key]} and {folder} both hold {r['arm']} seed {c['seed']} "
                                f"at minority fraction {c['minority_fraction']:g}; combine only folders of "
                                "different fractions (or models/strategies)")
            records.append(r)
    return records, notes


def _hashable(value):
    return tuple(value) if isinstance(value, list) else value


def _same_training(record: dict, folder: str, seen: dict[tuple, str]) -> None:
    tc = record.get("train_config") or {}
    # The settings check_study enforces inside one folder; a key missing from an older cell
    # predates that setting, so the cell was trained with its default.
    settings = tuple((k, _hashable(tc.get(k, default_setting(k)))) for k in result_train_keys())
    if seen and settings not in seen:
        other, first = next(iter(seen.items()))
        shown = ", ".join(f"{k}={v!r} vs {dict(other)[k]!r}" for k, v in settings if dict(other)[k] != v)
        raise UserError(f"{folder} and {first} were trained with different settings ({shown}); "
                        "their results are not comparable: combine only folders made with the same "
                        "training settings")
    seen.setdefault(settings, folder)


def unfinished_notes(folder: str, n_finished: int) -> list[str]:
    """Say what the report leaves out: failed cells and cells of the study's grid never run."""
    notes = []
    failed = failed_cells(folder)
    if failed:
        notes.append(f"{len(failed)} cell(s) of {folder} failed and are not in this report (tracebacks in "
                     f"{folder}/failed/)")
    try:
        cfg = json.loads((Path(folder) / "study.json").read_text())["config"]
        axes = SyntheticAxes(tuple(cfg["synthetic_ratios"]),
                             tuple(cfg.get("synthetic_classes", ["minority"])),
                             tuple(cfg.get("synthetic_weights", [1.0])),
                             tuple(cfg.get("synthetic_schedules", ["mixed"])))
        planned = len(build_grid(cfg["strategies"], cfg["models"], cfg["seeds"], axes,
                                 cfg["minority_fractions"]))
    except (OSError, ValueError, KeyError, TypeError):
        return notes
    missing = planned - n_finished - len(failed)
    if missing > 0:
        notes.append(f"{missing} of the {planned} cells planned in {folder}/study.json have not run yet "
                     "(another --shard, or an interrupted run): this report covers only the finished ones")
    return notes
