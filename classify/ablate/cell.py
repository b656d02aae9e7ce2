"""One ablation cell: train with the classification trainer, evaluate on the test split.

`CellTask` is everything a worker process needs (plain values, so it pickles to a spawned
process). `train_and_evaluate` is the default cell function; the runner takes any function
with the same signature, which is how tests exercise it without training.
"""

from __future__ import annotations

import platform
import shutil
import sys
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

from classify import __version__
from classify.ablate.design import Cell
from classify.evaluate.evaluation import evaluate_checkpoint
from classify.train.trainer import ClassifierTrainConfig, train_classifier

CELL_FORMAT_VERSION = 1


@dataclass(frozen=True)
class CellTask:
    cell: Cell
    train: dict[str, Any]  # ClassifierTrainConfig keyword arguments
    work_dir: str  # where the trainer writes model.pt for this cell
    keep_checkpoint: bool
    threads: int  # torch threads for this process; 0 leaves torch's default
    sample_check: dict[str, Any] | None  # leak-guard facts, copied into the cell JSON

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["cell"] = self.cell.to_dict()
        return d


def train_and_evaluate(task: CellTask) -> dict[str, Any]:
    """Train one classifier and evaluate it on TEST with its validation-chosen threshold."""
    if task.threads > 0:
        # With --jobs J every process would otherwise grab all cores and thrash.
        torch.set_num_threads(task.threads)
    cfg = ClassifierTrainConfig(**task.train)  # its `progress` was decided by the plan (a terminal, one job)
    result = train_classifier(cfg)
    metrics = evaluate_checkpoint(result["checkpoint"], data_dir=task.train["data_dir"], split="test",
                                  device=task.train["device"])
    if str(task.train["device"]).startswith("cuda"):
        # The report states the machine; a GPU's name matters more than the host's.
        index = torch.device(task.train["device"]).index
        result = {**result, "device_name": torch.cuda.get_device_name(
            torch.cuda.current_device() if index is None else index)}
    if not task.keep_checkpoint:
        shutil.rmtree(task.work_dir, ignore_errors=True)
    return {"train": _plain(result), "metrics": metrics}


def _plain(result: dict[str, Any]) -> dict[str, Any]:
    # The trainer's result may carry paths; the cell JSON keeps plain values only.
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in result.items()}


def versions() -> dict[str, str]:
    """Versions that can change a result, recorded in every cell."""
    out = {"python": sys.version.split()[0], "platform": f"{platform.platform()} ({platform.machine()})"}
    for dist in ("torch", "torchvision", "timm", "numpy", "scikit-learn", "kornia"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    out["ganbalance"] = __version__
    return out
