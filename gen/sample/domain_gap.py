"""The report's domain-gap block: how far a sample set is from the real images of its class.

Per class: the classifier two-sample test's AUC (classify.evaluate.twosample; 0.5 = a
logistic regression cannot tell the sets apart, 1.0 = it always can) for all samples and for
the accepted ones, on raw pixels and on the extractor's features, beside the same test
between the class's real train and val images (the floor: two real sets); and the brightness
and contrast distributions of reals, all samples and accepted samples.

A twosample filter decides with the train reals, so the accepted set's AUC against them is
in-sample; the real-vs-real floor shows what "indistinguishable" reads at this set size.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from classify.core.errors import UserError
from classify.evaluate.twosample import image_stats, pixel_features, stats_summary, two_sample_test

NOTE = ("two-sample AUC: out-of-fold ROC-AUC of a class-balanced logistic regression telling the samples "
        "from the class's real train images (0.5 = indistinguishable, 1 = always told apart); "
        "real_train_vs_val is the same test between two real sets, the floor at this size.")


def _auc(real: np.ndarray, fake: np.ndarray) -> dict[str, Any]:
    try:
        return two_sample_test(real, fake).to_dict()
    except UserError as exc:
        return {"auc": None, "skipped": str(exc)}


def _tests(real: np.ndarray, fake: np.ndarray, accepted: np.ndarray,
           val: np.ndarray | None) -> dict[str, Any]:
    out = {"all": _auc(real, fake), "accepted": _auc(real, fake[accepted])}
    if val is not None:
        out["real_train_vs_val"] = _auc(real, val)
    return out


def domain_gap(images: torch.Tensor, feats: torch.Tensor | None, class_idx: np.ndarray, accepted: np.ndarray,
               classes: list[str], reals: dict, heldout: dict) -> dict[str, Any]:
    """{class: {"pixels": {...}, "features": {...}, "stats": {...}}} plus a note; {} without reals."""
    out: dict[str, Any] = {}
    stats = image_stats(images)
    for c in np.unique(class_idx):
        real, val = reals.get(int(c)), heldout.get(int(c))
        if real is None:
            continue
        rows = class_idx == c
        acc = accepted[rows]
        entry: dict[str, Any] = {
            "pixels": _tests(pixel_features(real.images), pixel_features(images[rows]), acc,
                             pixel_features(val.images) if val is not None else None)}
        if feats is not None and real.feats is not None:
            entry["features"] = _tests(real.feats.numpy(), feats[rows].numpy(), acc,
                                       val.feats.numpy() if val is not None and val.feats is not None
                                       else None)
        mine = {k: v[rows] for k, v in stats.items()}
        entry["stats"] = {"real_train": stats_summary(image_stats(real.images)), "all": stats_summary(mine),
                          "accepted": stats_summary({k: v[acc] for k, v in mine.items()})}
        out[classes[int(c)]] = entry
    return {"note": NOTE, "per_class": out} if out else {}


def gap_lines(gap: dict[str, Any]) -> list[str]:
    """One line per class and feature space, for the console and index.html."""
    lines = []
    for cls, entry in gap.get("per_class", {}).items():
        for space in ("pixels", "features"):
            if space not in entry:
                continue
            t = entry[space]
            parts = [f"{name} {_fmt(t[key])}" for key, name in
                     (("all", "all samples"), ("accepted", "accepted"),
                      ("real_train_vs_val", "real train vs val"))
                     if key in t]
            lines.append(f"[{cls}] two-sample AUC on {space}: {', '.join(parts)} (0.5 = indistinguishable)")
        st = entry["stats"]
        if "brightness" in st.get("real_train", {}):
            lines.append(f"[{cls}] mean brightness: reals {st['real_train']['brightness']['mean']:.3f}, "
                         f"samples {st['all'].get('brightness', {}).get('mean', float('nan')):.3f}, accepted "
                         f"{st['accepted'].get('brightness', {}).get('mean', float('nan')):.3f}")
    return lines


def _fmt(test: dict[str, Any]) -> str:
    return "n/a" if test.get("auc") is None else f"{test['auc']:.3f}"
