"""`classify pseudo-label MODEL --images FOLDER --threshold T --data DATA --out NEWDATA`.

Unlabelled images that a model (or an ensemble) labels with confidence >= T are added to the
TRAIN split of a copy of a prepared folder: one round of pseudo-labelling.
Val and test are copied unchanged and never receive an image; an image whose md5 is a val or
test image of DATA is refused (counted in the report), and one already in DATA is skipped.
The copy is a normal prepared folder (manifest.csv last, classes.json tied to its hash, a
report.md that says what was added); its rows point at the original files (absolute paths).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from classify.core.configs import Config, setting
from classify.core.errors import UserError
from classify.core.fileio import atomic_write_json, atomic_write_text
from classify.data.dataset import open_prepared
from classify.data.images import ImageRejected, decode_image
from classify.data.manifest import (
    BASE_COLUMNS,
    CLASSES_NAME,
    MANIFEST_NAME,
    REPORT_NAME,
    manifest_text,
    resolve_path,
    text_hash,
    write_manifest,
)
from classify.data.prepare import image_row
from classify.evaluate.predict import list_images, predict_files
from classify.model.loading import load_classifier
from classify.model.tta import TTA_MODES


@dataclasses.dataclass
class PseudoLabelConfig(Config):
    """Every setting of `classify pseudo-label`; its options are built from these fields (but `batch`)."""

    config_name = "pseudo-label config keys"
    renamed = {"model": "model_path", "out": "out_dir"}

    model_path: str  # a model.pt, its run folder or an ensemble (the command's MODEL argument)
    images: str = setting(help="Unlabelled images (file or folder).")
    data_dir: str = setting(help="Prepared folder to copy.", flag="--data", path="dir")
    out_dir: str = setting(help="New prepared folder to write.", flag="--out", path="dir")
    threshold: float = setting(0.95, "Add an image when its most likely class has at least this probability.")
    device: str = setting("cpu", "cpu, cuda, cuda:N or auto.", cli_default="auto")
    tta: str = setting("none", "Test-time augmentation.", choices=TTA_MODES)
    batch: int = 64


def pseudo_label(cfg: PseudoLabelConfig) -> dict:
    """Write the new prepared folder; returns the counts its report states."""
    if not 0.0 < cfg.threshold <= 1.0:
        raise UserError(f"--threshold {cfg.threshold} must be in (0, 1]")
    out, data = Path(cfg.out_dir), open_prepared(cfg.data_dir)
    if out.resolve() == data.root.resolve() or (out / MANIFEST_NAME).exists():
        raise UserError(f"--out {out} is a prepared folder already; pseudo-labels go into a new folder")
    clf = load_classifier(cfg.model_path, device=cfg.device)
    if list(clf.classes) != list(data.classes):
        raise UserError(f"{cfg.model_path} predicts {clf.classes} but {cfg.data_dir} has classes "
                        f"{data.classes}")
    files = list_images([cfg.images])
    preds = predict_files(clf, files, batch=cfg.batch, tta=cfg.tta)
    rows = [dict(r, path=str(resolve_path(data.root, r["path"]))) for r in data.select().rows]
    added, counts = _new_rows(files, preds, clf, rows, cfg, out)
    extra = [k for k in rows[0] if k not in BASE_COLUMNS]
    text = manifest_text(rows + added, extra)
    _write_folder(out, data, text, rows + added, counts, cfg)
    return counts


def _new_rows(files, preds, clf, rows, cfg, out: Path) -> tuple[list[dict], dict]:
    held_out = {r["md5"] for r in rows if r["split"] in ("val", "test")}
    known = {r["md5"] for r in rows}
    counts = {"scored": 0, "below_threshold": 0, "unreadable": 0, "refused_val_test_md5": 0,
              "already_in_data": 0, "added": {c: 0 for c in clf.classes}}
    added: list[dict] = []
    for path, pred in zip(files, preds):
        if pred.probs is None:
            counts["unreadable"] += 1
            continue
        counts["scored"] += 1
        k = max(range(len(pred.probs)), key=pred.probs.__getitem__)
        if pred.probs[k] < cfg.threshold:
            counts["below_threshold"] += 1
            continue
        try:
            row = image_row(out, Path(path), clf.classes[k], decode_image(Path(path)), split="train",
                            note=f"pseudo-label p={pred.probs[k]:.4f} by {cfg.model_path}")
        except (ImageRejected, OSError):
            counts["unreadable"] += 1
            continue
        if row["md5"] in held_out:  # never let an evaluation image back in as training data
            counts["refused_val_test_md5"] += 1
        elif row["md5"] in known:
            counts["already_in_data"] += 1
        else:
            known.add(row["md5"])
            added.append(row)
            counts["added"][clf.classes[k]] += 1
    return added, counts


def _write_folder(out: Path, data, text: str, rows: list[dict], counts: dict, cfg: PseudoLabelConfig) -> None:
    out.mkdir(parents=True, exist_ok=True)
    digest = text_hash(text)
    classes = json.loads((data.root / CLASSES_NAME).read_text())
    split_counts = {c: {s: 0 for s in ("train", "val", "test", "unused")} for c in data.classes}
    for r in rows:
        split_counts[r["label"]][r["split"]] += 1
    classes.update(manifest_hash=digest, counts=split_counts,
                   pseudo_label={**dataclasses.asdict(cfg), "counts": counts,
                                 "from_data": str(data.root), "from_hash": data.manifest_hash})
    lines = [f"# Pseudo-labelled copy of {data.root}", "",
             f"Model `{cfg.model_path}` scored {counts['scored']} images of `{cfg.images}`; those with a "
             f"class probability >= {cfg.threshold} joined the **train** split (val and test unchanged).", "",
             "| outcome | images |", "|---|---|",
             *[f"| added as {c} | {n} |" for c, n in counts["added"].items()],
             f"| below the threshold | {counts['below_threshold']} |",
             f"| refused: same md5 as a val/test image | {counts['refused_val_test_md5']} |",
             f"| skipped: already in the data | {counts['already_in_data']} |",
             f"| unreadable | {counts['unreadable']} |", "", f"Manifest hash: `{digest}`"]
    atomic_write_text(out / REPORT_NAME, "\n".join(lines) + "\n")
    atomic_write_json(out / CLASSES_NAME, classes)
    write_manifest(out / MANIFEST_NAME, text)  # last: the commit point
