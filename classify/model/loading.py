"""Reading a `model.pt` of either kind: a classifier (`classify train`) or an ensemble (`classify ensemble`).

Above both formats (`classify.model.checkpoint`, `classify.model.ensemble`), so neither needs
the other to tell them apart: the judge API a caller gets is the same for both. `check_classes`
is the one check that a loaded model answers for a prepared folder's classes.
"""

from __future__ import annotations

from pathlib import Path

import torch

from classify.core.errors import UserError
from classify.model.checkpoint import FORMAT_VERSION, KIND, REQUIRED, Classifier, field_problem
from classify.model.ensemble import KIND as ENSEMBLE_KIND
from classify.model.ensemble import EnsembleClassifier, check_ensemble_file


def read_checkpoint(path: str | Path, accept_ensemble: bool = False) -> dict:
    """torch.load(weights_only=True) plus format checks, each failure a one-line UserError.
    With `accept_ensemble`, a `classify ensemble` file is returned too (its members checked)."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.pt"
    if not path.is_file():
        raise UserError(f"classifier checkpoint {path} not found; "
                        "pass the model.pt written by `classify train`")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"cannot read classifier checkpoint {path} ({type(exc).__name__}); "
                        "it is truncated or not a `classify train` model.pt — "
                        "retrain or pick another file") from None
    if isinstance(ckpt, dict) and ckpt.get("kind") == ENSEMBLE_KIND and accept_ensemble:
        return check_ensemble_file(ckpt, path)
    if not isinstance(ckpt, dict) or ckpt.get("kind") != KIND:
        raise UserError(f"{path} is not a ganbalance classifier checkpoint; "
                        "pass a model.pt from `classify train`"
                        + (" (an ensemble file cannot be used here)" if isinstance(ckpt, dict) and
                           ckpt.get("kind") == ENSEMBLE_KIND else ""))
    if ckpt.get("format_version") != FORMAT_VERSION:
        raise UserError(f"{path} has format_version {ckpt.get('format_version')}, this version reads "
                        f"{FORMAT_VERSION}; retrain it with this version of `classify train`")
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing:
        raise UserError(f"{path} lacks {', '.join(missing)}; it is damaged — retrain it")
    problem = field_problem(ckpt)
    if problem:
        raise UserError(f"{path} holds {problem}; it is damaged or not from `classify train` — retrain it")
    return ckpt


def load_classifier(path: str | Path, device: str = "cpu"):
    """A `Classifier`, or an `EnsembleClassifier` for a `classify ensemble` file: the same API."""
    ckpt = read_checkpoint(path, accept_ensemble=True)
    if ckpt.get("kind") == ENSEMBLE_KIND:
        return EnsembleClassifier(ckpt, device=device, path=path)
    return Classifier(ckpt, device=device, path=path)


def check_classes(clf, data_classes: list[str], model_path, data_dir, fix: str) -> None:
    """The one check that a loaded model answers for a prepared folder's classes, in the same order
    (its outputs are indexed by them): eval, explain and outliers refuse other data with it; `fix`
    says what to do instead."""
    if list(data_classes) != list(clf.classes):
        raise UserError(f"{model_path} was trained on classes {list(clf.classes)} but {data_dir} has "
                        f"{list(data_classes)}; {fix}")
