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
from pathlib import Path

from classify.ablate import load_cells
from classify.errors import UserError


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


def load_records(ablate_dirs: list[str | Path]) -> tuple[list[dict], list[str]]:
    """Finished cells of every folder (rescaled, see module doc) and notes for the caveats.

    Refuses folders whose cells would land on the same (model, fraction, arm, seed): their
    results would silently overwrite each other in the paired tables.
    """
    records: list[dict] = []
    notes: list[str] = []
    owner: dict[tuple, str] = {}
    kept_of: dict[str, float | None] = {}
    for folder in map(str, ablate_dirs):
        for record in load_cells(folder):
            data_dir = str((record.get("train_config") or {}).get("data_dir", ""))
            if data_dir not in kept_of:
                kept_of[data_dir] = prepared_minority_fraction(data_dir)
                if kept_of[data_dir] is None:
                    notes.append(f"could not read {data_dir}/classes.json: minority fractions of cells on it are "
                                 "relative to that folder's train split, not to the full data")
            r = _rescaled(record, kept_of[data_dir], folder)
            c = r["cell"]
            key = (c["model"], c["minority_fraction"], r["arm"], int(c["seed"]))
            if owner.setdefault(key, folder) != folder:
                raise UserError(f"{owner[key]} and {folder} both hold {r['arm']} seed {c['seed']} at minority "
                                f"fraction {c['minority_fraction']:g}; combine only folders of different fractions "
                                "(or models/strategies)")
            records.append(r)
    return records, notes
