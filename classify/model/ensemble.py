"""Ensembles: several trained classifiers answering as one (an average of 3-5 models steadies a
classifier trained on few images).

An ensemble file (`classify ensemble RUN... --out DIR` writes DIR/model.pt) holds its members'
whole checkpoints, so it moves and loads like any model.pt (weights_only, plain values), plus
how to combine them and the threshold chosen on validation for the combination:
- `mean`: the average of the members' class probabilities;
- `rank`: each member's score becomes its percentile among that member's own validation
  scores (stored in the file), and the percentiles are averaged: members with different
  calibration count alike. Percentiles per class are normalised to sum to one.
`load_classifier` (`classify.model.loading`) returns an `EnsembleClassifier` for such a file; it has
the judge API of a single `Classifier` (classes, res, threshold, predict_proba, features,
probs_from_features).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from classify.core.errors import UserError
from classify.model.checkpoint import KIND as CLASSIFIER_KIND
from classify.model.checkpoint import REQUIRED, Classifier

KIND = "ganbalance.ensemble"
FORMAT_VERSION = 1
COMBINES = ("mean", "rank")


class EnsembleClassifier:
    def __init__(self, ckpt: dict, device: str = "cpu", path: str | Path | None = None):
        self.path = path
        self.members = [Classifier(m, device=device, path=f"{path}#member{i}")
                        for i, m in enumerate(ckpt["members"])]
        first = self.members[0]
        self.classes, self.positive_class = first.classes, first.positive_class
        self.res = max(m.res for m in self.members)  # each member resizes to its own res
        self.in_chans, self.fit = first.in_chans, first.fit
        self.threshold: float | None = ckpt.get("threshold")
        self.combine: str = ckpt["combine"]
        self.val_scores = [torch.as_tensor(s, dtype=torch.float64) for s in ckpt.get("val_scores") or []]
        self.data_manifest_hash: str | None = ckpt.get("data_manifest_hash") or None
        self.config: dict = {"ensemble": [m.get("config", {}) for m in ckpt["members"]],
                             "combine": self.combine}
        self.model_name = "ensemble(" + ",".join(m.model_name for m in self.members) + ")"

    @property
    def positive_index(self) -> int:
        return self.classes.index(self.positive_class)

    def member_probs(self, x_uint8: torch.Tensor, batch: int = 256, tta: str = "none") -> list[torch.Tensor]:
        return [m.predict_proba(x_uint8, batch=batch, tta=tta) for m in self.members]

    def predict_proba(self, x_uint8: torch.Tensor, batch: int = 256, tta: str = "none") -> torch.Tensor:
        return self.combined(self.member_probs(x_uint8, batch, tta))

    def combined(self, probs: list[torch.Tensor]) -> torch.Tensor:
        if self.combine == "mean":
            return sum(probs) / len(probs)
        ranks = [percentiles(p, ref) for p, ref in zip(probs, self.val_scores)]
        avg = sum(ranks) / len(ranks)
        return avg / avg.sum(dim=1, keepdim=True).clamp_min(1e-12)

    def features(self, x_uint8: torch.Tensor, batch: int = 256) -> torch.Tensor:
        """The members' penultimate features side by side: [N, sum of their widths]."""
        return torch.cat([m.features(x_uint8, batch=batch) for m in self.members], dim=1)

    def probs_from_features(self, feats: torch.Tensor) -> torch.Tensor:
        parts, start = [], 0
        for m in self.members:
            width = m.model.num_features
            parts.append(m.probs_from_features(feats[:, start:start + width]))
            start += width
        return self.combined(parts)


def check_ensemble_file(ckpt: dict, path: Path) -> dict:
    """The ensemble file `ckpt` read from `path`, its version and members checked (one-line UserErrors)."""
    if ckpt.get("format_version") != FORMAT_VERSION or ckpt.get("combine") not in COMBINES:
        raise UserError(f"{path} is an ensemble file of another version; rebuild it with `classify ensemble`")
    members = ckpt.get("members")
    if not isinstance(members, list) or not members or not all(
            isinstance(m, dict) and m.get("kind") == CLASSIFIER_KIND for m in members):
        raise UserError(f"{path} is an ensemble file without usable members; "
                        "rebuild it with `classify ensemble`")
    for m in members:
        missing = [k for k in REQUIRED if k not in m]
        if missing:
            raise UserError(f"{path}: a member lacks {', '.join(missing)}; rebuild the ensemble")
    return ckpt


def percentiles(probs: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Each class probability's percentile among the member's validation probabilities of that
    class (`reference` [M, K]): the share of validation scores at or below it."""
    ref = np.sort(reference.numpy(), axis=0)
    p = probs.double().numpy()
    out = np.stack([np.searchsorted(ref[:, k], p[:, k], side="right") / len(ref)
                    for k in range(p.shape[1])], 1)
    return torch.from_numpy(out).float()


def check_members(members: list[dict], paths: list[str]) -> None:
    """Members must answer the same question: the same classes and positive class, the same fit."""
    first = members[0]
    for m, p in zip(members[1:], paths[1:]):
        if list(m["classes"]) != list(first["classes"]) or m["positive_class"] != first["positive_class"]:
            raise UserError(f"{p} predicts classes {m['classes']} (positive {m['positive_class']!r}) "
                            f"but {paths[0]} predicts {first['classes']} ({first['positive_class']!r}); "
                            "ensemble models of one task")
        if m.get("fit", "crop") != first.get("fit", "crop"):
            raise UserError(f"{p} fits images with {m.get('fit')!r} "
                            f"but {paths[0]} with {first.get('fit')!r}; members must see the same images")
