"""`classify train`: fit a registry model with a strategy; keep the best epoch on validation.

Selection uses validation AP of the minority class (binary) or macro-F1 (multi-class); the
decision threshold is chosen on validation too. Test data is never read here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from pathlib import Path

import torch

from classify.core.errors import UserError
from classify.core.fileio import atomic_torch_save, atomic_write_json
from classify.core.runlock import folder_lock
from classify.data.manifest import refuse_output_in_prepared
from classify.model.checkpoint import Classifier
from classify.model.heads import fit_head
from classify.model.loading import read_checkpoint
from classify.train.config import ClassifierTrainConfig
from classify.train.data import load_classifier_train_data
from classify.train.loop import fit, sample_weights, train_rows
from classify.train.metrics import choose_threshold, classification_metrics
from classify.train.replace import RunReplacement
from classify.train.strategies import build_strategy


@contextlib.contextmanager
def _determinism(enabled: bool):
    """Deterministic kernels for the run only; the caller's global setting is restored."""
    before = torch.are_deterministic_algorithms_enabled()
    bench = torch.backends.cudnn.benchmark
    if enabled:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)
        torch.backends.cudnn.benchmark = bench


def train_classifier(cfg: ClassifierTrainConfig) -> dict:
    """Train per `cfg`; write model.pt (best epoch), metrics.jsonl, metrics.json, config.json.
    One writer per run folder: a second run into the same --out fails at once (runlock)."""
    cfg.validate()
    refuse_output_in_prepared(cfg.out_dir)  # a run folder inside the data it reads would mix with it
    with folder_lock(cfg.out_dir, "classify train"):
        return _train_classifier(cfg)


def _train_classifier(cfg: ClassifierTrainConfig) -> dict:
    strategy = build_strategy(cfg.strategy)
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {cfg.device} was requested but this machine has no CUDA GPU; use cpu")
    start = time.perf_counter()
    with _determinism(cfg.deterministic):
        torch.manual_seed(cfg.seed)  # kornia and mixup draw from the global generator
        data = load_classifier_train_data(cfg, strategy.synthetic)
        out_dir = Path(cfg.out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        # A finished run here (replaced with --force) stays whole until this one's first checkpoint.
        replacement = RunReplacement(out_dir, {"train": cfg.to_dict(), "strategy": strategy.to_dict()})
        best = fit(cfg, strategy, data, device, out_dir,
                   data_at=lambda res: load_classifier_train_data(dataclasses.replace(cfg, res=res),
                                                                  strategy.synthetic),
                   replacement=replacement)
        if cfg.head != "linear" and best["epoch"]:
            best = refit_head(cfg, data, out_dir, best)
    result = {
        "checkpoint": str(out_dir / "model.pt"),
        "best_epoch": best["epoch"],
        "epochs_run": best["epochs_run"],
        "threshold": best["threshold"],
        "val": best["val"],
        "positive_class": data.classes[data.positive],
        "classes": data.classes,
        "n_train_real": data.n_train_real,
        "n_train_real_minority": int((data.y_train[: data.n_train_real] == data.positive).sum()),
        "n_train_synthetic": data.n_train_synthetic,
        "synthetic_per_class": data.synthetic_per_class,
        "n_synthetic_excluded": data.synthetic_excluded,
        "n_val": int(data.y_val.numel()),
        "head": cfg.head,
        "fit": data.fit,
        "wall_time_s": round(time.perf_counter() - start, 3),
    }
    atomic_write_json(out_dir / "metrics.json", result)
    return result


def refit_head(cfg: ClassifierTrainConfig, data, out_dir: Path, best: dict) -> dict:
    """Replace the best epoch's linear head by a decoupled scikit-learn head (`--head`), fitted on
    the features of every train image the run used; its threshold and val metrics are chosen
    again on the val split, and model.pt is rewritten with the head as plain arrays."""
    ckpt = read_checkpoint(out_dir / "model.pt")
    clf = Classifier(ckpt, device=cfg.device)
    # The rows and weights the network's final epoch trained on: real only after a warm-up schedule,
    # synthetic images at --synthetic-weight.
    rows = train_rows(cfg, data, cfg.epochs)
    clf.head = fit_head(cfg.head, clf.features(data.x_train[rows]), data.y_train[rows], seed=cfg.seed,
                        sample_weight=sample_weights(cfg, data, rows))
    probs = clf.probs_from_features(clf.features(data.x_val))
    threshold = None
    if len(data.classes) == 2:
        threshold = choose_threshold(data.y_val == data.positive, probs[:, data.positive].numpy(),
                                     cfg.target_recall)
    val = classification_metrics(data.y_val.numpy(), probs.numpy(), threshold, data.positive, data.classes,
                                 context=f"the val split of {cfg.data_dir}")
    val.pop("pr"), val.pop("roc")
    atomic_torch_save({**ckpt, "head": clf.head, "threshold": threshold, "val": val}, out_dir / "model.pt")
    return {**best, "threshold": threshold, "val": val}
