"""`classify train`: fit a registry model with a strategy; keep the best epoch on validation.

Selection uses validation AP of the minority class (binary) or macro-F1 (multi-class); the
decision threshold is chosen on validation too. Test data is never read here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from classify.configs import check_known_keys
from classify.errors import UserError
from classify.fileio import atomic_write_json
from classify.strategies import build_strategy
from classify.trainloop import fit


@dataclass
class TrainConfig:
    data_dir: str = "data"
    out_dir: str = "runs/classify"
    model: str = "resnet18"
    strategy: str = "baseline"
    epochs: int = 10
    res: int = 128
    batch: int = 64
    lr: float = 1e-3
    seed: int = 0
    device: str = "cpu"
    synthetic_dir: str | None = None
    synthetic_ratio: float = 1.0
    minority_class: str | None = None
    minority_fraction: float = 1.0
    deterministic: bool = False
    pretrained: str | None = None  # local state-dict file; never downloaded
    channels: int | None = None  # None: the data's native channel count (1 if all grayscale)
    fit: str = "crop"
    optimizer: str = "adamw"  # adamw | sgd (momentum 0.9, nesterov)
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.0
    target_recall: float | None = None  # threshold: reach this val recall instead of max F1
    patience: int = 0  # stop after this many epochs without val improvement; 0 = never
    aug_p: float = 0.5  # probability of each classic augmentation op
    mixup_alpha: float = 0.4
    cutmix_alpha: float = 1.0
    bn_recalibrate: int = 512  # clean train images to re-estimate BatchNorm stats per epoch; 0 = off
    amp: bool = True  # bf16 autocast, CUDA only
    # bf16 autocast on the CPU too. Opt-in: fast where the CPU has native bf16 (AVX512-BF16,
    # AMX), much slower where it is emulated, and it changes results slightly (see BENCHMARKS).
    cpu_bf16: bool = False
    channels_last: bool = True  # CUDA only
    compile: bool = False  # torch.compile, CUDA only
    progress: bool = True

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        check_known_keys(cls, d, "TrainConfig key(s)")
        return cls(**d)

    def validate(self) -> None:
        from classify.models import model_spec

        model_spec(self.model, self.res)  # unknown names and too-small res fail here, before any data is read
        if self.res < 8 or self.batch < 2 or self.epochs < 1 or self.lr <= 0:
            raise UserError(f"need res >= 8, batch >= 2, epochs >= 1, lr > 0 (got res={self.res}, "
                            f"batch={self.batch}, epochs={self.epochs}, lr={self.lr})")
        if self.optimizer not in ("adamw", "sgd"):
            raise UserError(f"unknown optimizer {self.optimizer!r}; use adamw or sgd")
        if self.target_recall is not None and not 0.0 < self.target_recall <= 1.0:
            raise UserError(f"--target-recall must be in (0, 1], got {self.target_recall}")
        if self.synthetic_ratio < 0:
            raise UserError(f"--synthetic-ratio must be >= 0, got {self.synthetic_ratio}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise UserError(f"--label-smoothing must be in [0, 1), got {self.label_smoothing}")


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


def train_classifier(cfg: TrainConfig) -> dict:
    """Train per `cfg`; write model.pt (best epoch), metrics.jsonl, metrics.json, config.json."""
    from classify.traindata import load_train_data

    cfg.validate()
    strategy = build_strategy(cfg.strategy)
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {cfg.device} was requested but this machine has no CUDA GPU; use cpu")
    start = time.perf_counter()
    with _determinism(cfg.deterministic):
        torch.manual_seed(cfg.seed)  # kornia and mixup draw from the global generator
        data = load_train_data(cfg, strategy.synthetic)
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
