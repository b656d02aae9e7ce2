"""`model.pt` for classifiers: writing it, checking its fields, and the `Classifier` it loads as
(the judge API).

Reading a file of either kind (a classifier or a `classify ensemble`): `classify.model.loading`.

The file holds only tensors and plain values (loadable with weights_only=True):
format_version, kind, config (ClassifierTrainConfig dict), model {name, num_classes, in_chans},
state_dict, classes, positive_class, res, fit, in_chans, threshold, norm {mean, std},
epoch, val (selection metrics at that epoch), data_manifest_hash (the prepared folder it
was trained on; absent in older files), head (a decoupled scikit-learn head as plain arrays,
`classify.model.heads`; absent or None for the network's own head).

Test-time augmentation (`tta`): "none", "flip" (the image and its mirror image) or "flips"
(also upside down, and both); the class probabilities of the views are averaged.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from classify.core.errors import UserError
from classify.core.fileio import atomic_torch_save
from classify.data.images import SQUARE_FITS
from classify.model.heads import head_probabilities
from classify.model.inference import match_input, predict_probs
from classify.model.models import MAX_RES, build_model
from classify.model.tta import tta_views

FORMAT_VERSION = 1
KIND = "ganbalance.classifier"
REQUIRED = ("model", "state_dict", "classes", "res", "in_chans", "threshold", "norm", "positive_class")


def save_checkpoint(path: str | Path, *, model: torch.nn.Module, model_name: str, config: dict,
                    classes: list[str], positive: int, in_chans: int, res: int, fit: str,
                    threshold: float | None, norm: dict, epoch: int, val: dict,
                    data_manifest_hash: str = "", head: dict | None = None) -> None:
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    atomic_torch_save({
        "format_version": FORMAT_VERSION,
        "kind": KIND,
        "config": config,
        "model": {"name": model_name, "num_classes": len(classes), "in_chans": in_chans},
        "state_dict": state,
        "classes": list(classes),
        "positive_class": classes[positive],
        "res": int(res),
        "fit": fit,
        "in_chans": int(in_chans),
        "threshold": None if threshold is None else float(threshold),
        "norm": norm,
        "epoch": int(epoch),
        "val": val,
        "data_manifest_hash": data_manifest_hash,
        "head": head,
    }, path)


def field_problem(ckpt: dict) -> str | None:
    """What is wrong with a checkpoint's plain fields (None when they make sense), so a damaged
    or crafted file fails in one line here instead of deep inside inference."""
    classes, res, in_chans = ckpt["classes"], ckpt["res"], ckpt["in_chans"]
    norm, threshold = ckpt["norm"], ckpt["threshold"]
    if not (isinstance(classes, list) and len(classes) >= 2 and len(set(classes)) == len(classes)
            and all(isinstance(c, str) for c in classes)):
        return f"classes {classes!r} (need at least 2 distinct names)"
    if ckpt["positive_class"] not in classes:
        return f"positive class {ckpt['positive_class']!r}, which is not one of its classes {classes}"
    if type(res) is not int or not 1 <= res <= MAX_RES:
        return f"res {res!r} (need a whole number in 1..{MAX_RES})"
    if in_chans not in (1, 3) or type(in_chans) is not int:
        return f"in_chans {in_chans!r} (need 1 or 3)"
    if ckpt.get("fit", "crop") not in SQUARE_FITS:
        return f"fit {ckpt.get('fit')!r} (need one of {', '.join(SQUARE_FITS)})"
    if threshold is not None and not (isinstance(threshold, (int, float)) and 0.0 <= threshold <= 1.0):
        return f"threshold {threshold!r} (need a number in [0, 1], or none for several classes)"
    if not _good_norm(norm, in_chans):
        return f"normalisation {norm!r} (need {in_chans} finite means and positive standard deviations)"
    model = ckpt["model"]
    if not isinstance(model, dict) or model.get("num_classes", len(classes)) != len(classes):
        return f"model record {model!r} that disagrees with its {len(classes)} classes"
    return None


def _good_norm(norm, in_chans: int) -> bool:
    try:
        mean, std = [float(v) for v in norm["mean"]], [float(v) for v in norm["std"]]
    except (TypeError, KeyError, ValueError):
        return False
    return (len(mean) == len(std) == in_chans and all(math.isfinite(v) for v in mean)
            and all(math.isfinite(v) and v > 0 for v in std))


class Classifier:
    """A trained classifier ready for inference on uint8 images of any size/channel count."""

    def __init__(self, ckpt: dict, device: str = "cpu", path: str | Path | None = None):
        self.path = path
        self.classes: list[str] = list(ckpt["classes"])
        self.positive_class: str = ckpt["positive_class"]
        self.res: int = int(ckpt["res"])
        self.in_chans: int = int(ckpt["in_chans"])
        self.fit: str = ckpt.get("fit", "crop")
        self.threshold: float | None = ckpt["threshold"]
        self.norm: dict = ckpt["norm"]
        self.model_name: str = ckpt["model"]["name"]
        self.config: dict = ckpt.get("config", {})
        self.data_manifest_hash: str | None = ckpt.get("data_manifest_hash") or None
        self.device = torch.device(device)
        net = build_model(self.model_name, num_classes=len(self.classes), in_chans=self.in_chans)
        try:
            net.load_state_dict(ckpt["state_dict"])
        except RuntimeError as exc:
            raise UserError(f"checkpoint {path} does not match model {self.model_name} "
                            f"({str(exc).splitlines()[0]}); "
                            "it is from another version — retrain it") from None
        self.model = net.to(self.device).eval()
        self.head: dict | None = ckpt.get("head")

    @property
    def positive_index(self) -> int:
        return self.classes.index(self.positive_class)

    def predict_proba(self, x_uint8: torch.Tensor, batch: int = 256, tta: str = "none") -> torch.Tensor:
        """[N, K] class probabilities (CPU float) for uint8 [N, C, H, W] images."""
        x = match_input(x_uint8, self.res, self.in_chans)
        views = tta_views(x, tta)
        if self.head is not None:
            return sum(self.probs_from_features(self._features(v, batch)) for v in views) / len(views)
        return sum(predict_probs(self.model, v, self.norm, self.device, batch=batch)
                   for v in views) / len(views)

    def features(self, x_uint8: torch.Tensor, batch: int = 256) -> torch.Tensor:
        """[N, D] penultimate embeddings (CPU float) for uint8 [N, C, H, W] images."""
        return self._features(match_input(x_uint8, self.res, self.in_chans), batch)

    def _features(self, x: torch.Tensor, batch: int) -> torch.Tensor:
        return predict_probs(self.model, x, self.norm, self.device, batch=batch, features=True)

    @torch.no_grad()
    def probs_from_features(self, feats: torch.Tensor) -> torch.Tensor:
        """[N, K] probabilities from `features()` output (the network's head or the decoupled
        one), so a caller that wants both (gen sample: judge confidence + realism) runs the
        backbone once."""
        if self.head is not None:
            return head_probabilities(self.head, feats)
        logits = self.model.head(feats.to(self.device, torch.float32))
        return torch.softmax(logits.float(), dim=1).cpu()
