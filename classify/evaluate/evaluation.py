"""`classify eval`: score a trained model.pt on one split of a prepared folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from classify.core.errors import UserError
from classify.data.dataset import open_prepared
from classify.model.checkpoint import Classifier
from classify.model.loading import check_classes, load_classifier
from classify.train.metrics import classification_metrics


def check_threshold(clf: Classifier, threshold: float | None) -> None:
    if threshold is None:
        return
    if len(clf.classes) != 2:
        raise UserError("--threshold applies to two-class models; "
                        f"this one has {len(clf.classes)} classes and predicts by argmax")
    if not 0.0 <= threshold <= 1.0:
        raise UserError(f"--threshold is a probability of {clf.positive_class!r}; give a value in [0, 1], "
                        f"got {threshold}")


def other_data_note(clf: Classifier, manifest_hash: str, data_dir) -> str | None:
    """A warning when the model was trained on another preparation than `data_dir`.

    Evaluating on new data is legitimate (a new production batch), so this is a note, not a
    refusal: but if both folders were prepared from the same images with other seeds or split
    fractions, the model's train images can sit in this split and the metrics are optimistic.
    """
    if clf.data_manifest_hash is None or clf.data_manifest_hash == manifest_hash:
        return None
    return (f"the model was trained on another prepared folder than {data_dir} (manifest "
            f"{clf.data_manifest_hash[:12]} vs {manifest_hash[:12]}); if both come from the same images, "
            "its train images may be in this split and the metrics are optimistic")


def evaluate_checkpoint(model_path: str | Path, data_dir: str | Path, split: str = "test",
                        device: str = "cpu", threshold: float | None = None, tta: str = "none") -> dict:
    """Metrics of a checkpoint on a split (at its validation-chosen threshold unless given),
    with test-time augmentation `tta` (none | flip | flips)."""
    clf = load_classifier(model_path, device=device)
    check_threshold(clf, threshold)
    data = open_prepared(data_dir)
    check_classes(clf, data.classes, model_path, data_dir,
                  "evaluate on the data it was trained for, or retrain")
    if split not in ("train", "val", "test", "unused"):
        raise UserError(f"unknown split {split!r}; use train, val or test")
    part = data.select(split=split)
    if len(part) == 0:
        raise UserError(f"the {split} split of {data_dir} is empty; "
                        "pick another --split or re-prepare the data")
    x = part.images(res=clf.res, channels=clf.in_chans, fit=clf.fit)
    probs = clf.predict_proba(x, tta=tta).numpy()
    y_true = part.labels.numpy()
    thr = clf.threshold if threshold is None else threshold
    m = classification_metrics(y_true, probs, thr, clf.positive_index, clf.classes,
                               context=f"the {split} split of {data_dir}")
    m.update({
        "split": split,
        "model": str(model_path),
        "data_dir": str(data_dir),
        "manifest_hash": data.manifest_hash,
        "threshold_source": "validation" if threshold is None else "--threshold",
        "tta": tta,
        "data_note": other_data_note(clf, data.manifest_hash, data_dir),
        "classes": clf.classes,
        "y_true": y_true.tolist(),
        "y_score": probs[:, clf.positive_index].astype(np.float64).tolist(),
        "paths": [str(p) for p in part.paths],
    })
    return m


def summary_text(m: dict) -> str:
    """A readable block for the terminal."""
    lines = [
        f"{m['split']} split: n={m['n']}, positive class {m['positive_class']!r}, threshold "
        + ("argmax" if m["threshold"] is None else f"{m['threshold']:.4f}")
        + (" (from --threshold)" if m.get("threshold_source") == "--threshold" else ""),
        f"  ROC-AUC {m['roc_auc']:.4f}   AP {m['average_precision']:.4f}   "
        f"balanced acc {m['balanced_accuracy']:.4f}",
        f"  minority P/R/F1 {m['minority_precision']:.4f} / {m['minority_recall']:.4f} / "
        f"{m['minority_f1']:.4f}   macro-F1 {m['macro_f1']:.4f}   ECE {m['ece']:.4f}",
        "  confusion (rows true, cols predicted; order " + ", ".join(m["classes"]) + "):",
    ]
    lines += ["    " + " ".join(f"{v:6d}" for v in row) for row in m["confusion"]]
    if m.get("data_note"):
        lines.append(f"note: {m['data_note']}")
    return "\n".join(lines)
