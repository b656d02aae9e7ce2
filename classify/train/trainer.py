"""`classify train`: fit a registry model with a strategy; keep the best epoch on validation.

Selection uses validation AP of the minority class (binary) or macro-F1 (multi-class); the
decision threshold is chosen on validation too. Test data is never read here.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import torch

from classify.core.errors import UserError
from classify.core.fileio import atomic_write_json
from classify.train.config import ClassifierTrainConfig
from classify.train.loop import fit
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


# What a finished run (and `classify eval` on it) leaves. A new training in the folder makes
# them stale: they go once the data has loaded (so a bad flag or data folder loses nothing),
# and a run stopped early is then unfinished, not the old run with a new model.pt.
RUN_RESULTS = ("metrics.json", "eval*.json", "confusion_*.png", "pr_*.png", "roc_*.png")


def clear_results(out_dir: Path) -> None:
    for pattern in RUN_RESULTS:
        for path in out_dir.glob(pattern):
            path.unlink()


def train_classifier(cfg: ClassifierTrainConfig) -> dict:
    """Train per `cfg`; write model.pt (best epoch), metrics.jsonl, metrics.json, config.json."""
    from classify.train.data import load_classifier_train_data

    cfg.validate()
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
        clear_results(out_dir)
        atomic_write_json(out_dir / "config.json", {"train": cfg.to_dict(), "strategy": strategy.to_dict()})
        best = fit(cfg, strategy, data, device, out_dir)
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
        "n_val": int(data.y_val.numel()),
        "wall_time_s": round(time.perf_counter() - start, 3),
    }
    atomic_write_json(out_dir / "metrics.json", result)
    return result
