"""Decoupled heads: a scikit-learn linear classifier refit on the trained network's features.

A linear model on a CNN's features often beats the CNN's own head on few images; `--head logreg|svm`
fits one after training: the penultimate features of every train image the run used are standardised
and a class-balanced LogisticRegression or LinearSVC is fitted. The head is stored in model.pt as
plain arrays (mean, scale, coef, intercept), never a pickled estimator, and applied by
`head_probabilities`. Logistic regression gives probabilities; the SVM's margins go through the
logistic function (binary) or a softmax (several classes), uncalibrated: AP, ROC-AUC and the
validation-chosen threshold depend only on their order.
"""

from __future__ import annotations

import numpy as np
import torch

HEAD_KINDS = ("logreg", "svm")


def fit_head(kind: str, feats: torch.Tensor, labels: torch.Tensor, seed: int = 0,
             sample_weight: torch.Tensor | None = None) -> dict[str, torch.Tensor | str]:
    """Fit the head on [N, D] features and int labels (optionally weighted per row); returns its
    plain-array form."""
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415 — scikit-learn: heavy, only this step needs it
    from sklearn.preprocessing import StandardScaler  # noqa: PLC0415 — scikit-learn: heavy, only this step needs it
    from sklearn.svm import LinearSVC  # noqa: PLC0415 — scikit-learn: heavy, only this step needs it

    if kind not in HEAD_KINDS:
        raise ValueError(f"unknown head {kind!r}; choose from {HEAD_KINDS}")
    x, y = feats.double().numpy(), labels.numpy()
    scaler = StandardScaler().fit(x)
    model = (LogisticRegression(class_weight="balanced", max_iter=5000, random_state=seed) if kind == "logreg"
             else LinearSVC(class_weight="balanced", max_iter=20000, random_state=seed))
    model.fit(scaler.transform(x), y,
              sample_weight=None if sample_weight is None else sample_weight.double().numpy())
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    return {"kind": kind, "mean": torch.from_numpy(scaler.mean_).float(),
            "scale": torch.from_numpy(scale).float(),
            "coef": torch.from_numpy(np.atleast_2d(model.coef_)).float(),
            "intercept": torch.from_numpy(np.atleast_1d(model.intercept_)).float()}


def head_probabilities(head: dict, feats: torch.Tensor) -> torch.Tensor:
    """[N, K] class probabilities of a stored head for [N, D] features (CPU float)."""
    z = (feats.float().cpu() - head["mean"]) / head["scale"]
    logits = z @ head["coef"].T + head["intercept"]
    if logits.shape[1] == 1:  # binary: one margin for class 1
        p1 = torch.sigmoid(logits[:, 0])
        return torch.stack([1 - p1, p1], dim=1)
    return torch.softmax(logits, dim=1)
