"""Imbalance-aware classification metrics (scikit-learn underneath).

`positive` is the minority / defect class index: the one whose probability is the score for
ROC-AUC/AP and whose precision/recall/F1 at the decision threshold users care about.
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

from classify.core.errors import UserError


def predict_labels(probs: np.ndarray, threshold: float | None, positive: int) -> np.ndarray:
    """Binary with a threshold: positive iff p(positive) >= threshold; otherwise argmax."""
    if threshold is None or probs.shape[1] != 2:
        return probs.argmax(axis=1)
    other = 1 - positive
    return np.where(probs[:, positive] >= threshold, positive, other)


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, bins: int = 15) -> float:
    """Top-label ECE: |accuracy - confidence| averaged over equal-width confidence bins."""
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y_true).astype(float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # Bin i holds (edges[i], edges[i+1]]; confidence is at least 1/K, so nothing falls at 0.
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - conf[mask].mean())
    return float(ece)


def _check_classes(y_true: np.ndarray, num_classes: int, context: str) -> None:
    present = np.unique(y_true)
    if len(present) < 2:
        raise UserError(
            f"{context} holds a single class (label {int(present[0]) if len(present) else 'none'}); "
            "ROC-AUC and AP are undefined — use a split with examples of at least two classes"
        )


def classification_metrics(y_true, probs, threshold: float | None, positive: int,
                           class_names: list[str] | None = None,
                           context: str = "the evaluated split") -> dict:
    """Every number of the evaluation report; raises UserError if y_true has one class only."""
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    k = probs.shape[1]
    _check_classes(y_true, k, context)
    y_pred = predict_labels(probs, threshold, positive)
    labels = list(range(k))
    is_pos = (y_true == positive).astype(int)
    score = probs[:, positive]
    p, r, f, support = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    names = class_names or [str(i) for i in labels]
    if k == 2:
        roc_auc = float(skm.roc_auc_score(is_pos, score))
    else:
        roc_auc = float(skm.roc_auc_score(y_true, probs, multi_class="ovr", average="macro", labels=labels))
    prec_curve, rec_curve, _ = skm.precision_recall_curve(is_pos, score)
    fpr, tpr, _ = skm.roc_curve(is_pos, score)
    return {
        "n": int(len(y_true)),
        "threshold": threshold,
        "positive_class": names[positive],
        "roc_auc": roc_auc,
        "average_precision": float(skm.average_precision_score(is_pos, score)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y_true, y_pred)),
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "macro_f1": float(skm.f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "minority_precision": float(p[positive]),
        "minority_recall": float(r[positive]),
        "minority_f1": float(f[positive]),
        "per_class": {names[i]: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                                 "support": int(support[i])} for i in labels},
        "ece": expected_calibration_error(probs, y_true),
        "confusion": skm.confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "pr": {"precision": prec_curve.tolist(), "recall": rec_curve.tolist()},
        "roc": {"fpr": fpr.tolist(), "tpr": tpr.tolist()},
    }


def choose_threshold(y_true, score, target_recall: float | None = None) -> float:
    """Pick the decision threshold on validation scores of the positive class.

    Default: the threshold with the best F1. With target_recall: the highest threshold whose
    recall reaches the target (the most precise one that still catches enough defects).
    """
    is_pos = np.asarray(y_true).astype(int)
    score = np.asarray(score, dtype=np.float64)
    if is_pos.min() == is_pos.max():
        raise UserError("validation holds a single class; a decision threshold cannot be chosen — "
                        "re-prepare the data so val has both classes")
    precision, recall, thresholds = skm.precision_recall_curve(is_pos, score)
    # precision/recall have one more entry than thresholds (the final recall=0 point).
    precision, recall = precision[:-1], recall[:-1]
    if target_recall is not None:
        ok = np.nonzero(recall >= target_recall)[0]
        return float(thresholds[ok.max()])
    f1 = 2 * precision * recall / np.clip(precision + recall, 1e-12, None)
    return float(thresholds[int(np.argmax(f1))])
