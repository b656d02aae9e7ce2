"""The domain gap as a number: can a small classifier tell synthetic images from real ones?

A classifier two-sample test (Lopez-Paz & Oquab 2017): label the real images 0 and the
synthetic ones 1, train a class-balanced logistic regression on held-out folds, and read the
ROC-AUC of its out-of-fold scores. 0.5 means the two sets cannot be told apart by that model;
1.0 means every synthetic image gives itself away. Run on raw pixels (what a classifier
trained on the images could pick up: brightness, blur, layout) and on a network's features.

Every image gets an out-of-fold score, P(synthetic), from the fold that did not train on it:
the `twosample` filter of `gen sample` keeps the samples whose score is no higher than what
most real images get. The simple image statistics beside it (brightness, contrast, clipped
pixels) say in plain words *what* differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from classify.core.errors import UserError

# Enough to make the AUC's spread small (a few hundred per side) while keeping the test to a
# few seconds; larger sets are subsampled with a fixed seed.
MAX_PER_SIDE = 2000
PIXEL_SIDE = 32  # images are compared at most 32x32: the gap worth knowing is visible there


@dataclass
class TwoSampleResult:
    auc: float  # out-of-fold ROC-AUC of "synthetic" vs "real"; 0.5 = indistinguishable
    n_real: int
    n_synthetic: int
    folds: int
    real_scores: np.ndarray  # out-of-fold P(synthetic) of each real row (NaN if left out by subsampling)
    synthetic_scores: np.ndarray  # the same for each synthetic row

    def to_dict(self) -> dict[str, Any]:
        return {"auc": round(self.auc, 4), "n_real": self.n_real, "n_synthetic": self.n_synthetic,
                "folds": self.folds}


def pixel_features(images: torch.Tensor, side: int = PIXEL_SIDE) -> np.ndarray:
    """uint8 [N, C, H, W] -> [N, C * s * s] floats in [0, 1], area-downsampled to at most side x side."""
    x = images.float() / 255.0
    h, w = x.shape[-2:]
    if max(h, w) > side:
        x = F.adaptive_avg_pool2d(x, (min(h, side), min(w, side)))
    return x.reshape(len(x), -1).double().numpy()


def _subsample(n: int, limit: int, rng: np.random.Generator) -> np.ndarray:
    return np.arange(n) if n <= limit else np.sort(rng.choice(n, limit, replace=False))


def two_sample_test(real: np.ndarray, synthetic: np.ndarray, folds: int = 5, seed: int = 0,
                    max_per_side: int = MAX_PER_SIDE) -> TwoSampleResult:
    """Out-of-fold ROC-AUC of a logistic regression telling `synthetic` [M, D] from `real` [N, D]."""
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415 — scikit-learn: heavy, only this step needs it
    from sklearn.metrics import roc_auc_score  # noqa: PLC0415 — scikit-learn: heavy, only this step needs it
    from sklearn.model_selection import StratifiedKFold  # noqa: PLC0415 — scikit-learn: heavy, only this step needs it
    from sklearn.pipeline import make_pipeline  # noqa: PLC0415 — scikit-learn: heavy, only this step needs it
    from sklearn.preprocessing import StandardScaler  # noqa: PLC0415 — scikit-learn: heavy, only this step needs it

    n_real, n_syn = len(real), len(synthetic)
    if min(n_real, n_syn) < 2:
        raise UserError("a two-sample test needs at least 2 images per side "
                        f"(got {n_real} real, {n_syn} synthetic)")
    rng = np.random.default_rng(seed)
    keep_r, keep_s = _subsample(n_real, max_per_side, rng), _subsample(n_syn, max_per_side, rng)
    x = np.concatenate([real[keep_r], synthetic[keep_s]]).astype(np.float64)
    y = np.concatenate([np.zeros(len(keep_r)), np.ones(len(keep_s))])
    k = int(min(folds, len(keep_r), len(keep_s)))
    scores = np.zeros(len(y))
    # Class-balanced: with 134 reals beside 2,500 samples an unweighted model would barely
    # look at the reals. C = 0.1: strong L2, so a thousand pixel columns do not simply memorise.
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, class_weight="balanced", max_iter=2000))
    for train, test in StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(x, y):
        model.fit(x[train], y[train])
        scores[test] = model.predict_proba(x[test])[:, 1]
    real_scores, syn_scores = np.full(n_real, np.nan), np.full(n_syn, np.nan)
    real_scores[keep_r], syn_scores[keep_s] = scores[: len(keep_r)], scores[len(keep_r):]
    return TwoSampleResult(float(roc_auc_score(y, scores)), n_real, n_syn, k, real_scores, syn_scores)


def image_stats(images: torch.Tensor) -> dict[str, np.ndarray]:
    """Per image, in [0, 1]: mean brightness, contrast (std of the pixels), and the shares of
    pixels above 0.9 and below 0.1 of full scale (clipped highlights and shadows)."""
    x = images.float().reshape(len(images), -1) / 255.0
    return {"brightness": x.mean(1).double().numpy(), "contrast": x.std(1, correction=0).double().numpy(),
            "bright_share": (x > 0.9).float().mean(1).double().numpy(),
            "dark_share": (x < 0.1).float().mean(1).double().numpy()}


def stats_summary(stats: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Mean and the 5/50/95th percentiles of each image statistic."""
    out = {}
    for name, values in stats.items():
        if len(values) == 0:
            continue
        q5, q50, q95 = np.percentile(values, [5, 50, 95])
        out[name] = {"mean": round(float(values.mean()), 4), "p5": round(float(q5), 4),
                     "median": round(float(q50), 4), "p95": round(float(q95), 4)}
    return out
