"""Metrics during training: FD/KD (judge) or FID/KID (Inception) of G_ema vs the train reals.

Delegates the maths and extractor naming to gen.core.metrics. The fake latents come from a
private generator seeded by the run seed, so a metric pass never disturbs training RNG and
every evaluation uses the same latents (differences between ticks come from G_ema only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from classify.core.errors import UserError
from gen.core.grids import to_uint8
from gen.train.config import GanTrainConfig
from gen.train.data import GanTrainData
from gen.train.snapshot import better_best

MIN_FAKES = 256
MAX_FAKES = 10_000


def _check_judge_fits(judge: Any, data: GanTrainData, path: str) -> None:
    """The judge's features rank snapshots (best.json): it must know the classes and channels this
    run learns, or the best snapshot is picked on features of other images (`gen sample` refuses
    such a judge too)."""
    if judge is None:
        return
    missing = [c for c in data.classes if c not in judge.classes]
    if missing:
        raise UserError(f"--judge {path} was trained on classes {judge.classes}, not {missing}; "
                        "train the judge on the generator's data (classify train --data ...)")
    if judge.in_chans != data.channels:
        raise UserError(f"--judge {path} takes {judge.in_chans}-channel images but this run learns "
                        f"{data.channels}-channel ones; train the judge on the same data")


class MetricRunner:
    def __init__(self, cfg: GanTrainConfig, data: GanTrainData, device: torch.device):
        from gen.core.metrics import build_extractor  # noqa: PLC0415 — loads torch-fidelity: only runs with --metrics

        names = tuple(m.strip().lower() for m in cfg.metrics if m.strip())
        if cfg.inception_weights:
            self.extractor = build_extractor("inception", weights_path=cfg.inception_weights,
                                             device=str(device))
        elif cfg.judge:
            self.extractor = build_extractor("judge", weights_path=cfg.judge, device=str(device))
            _check_judge_fits(getattr(self.extractor.module, "judge", None), data, cfg.judge)
        else:
            raise UserError(f"--metrics {','.join(names)} needs features: --inception-weights PATH (offline "
                            "Inception .pth) or --judge MODEL.pt from `classify train`")
        self.names, self.data, self.device = names, data, device
        self.n_fakes = min(max(len(data.images), MIN_FAKES), MAX_FAKES)
        gen = torch.Generator().manual_seed(cfg.seed + 2)
        self.z = torch.randn([self.n_fakes, cfg.z_dim], generator=gen)
        self.labels = data.labels[torch.randint(len(data.labels), [self.n_fakes], generator=gen)]
        self.seed = cfg.seed

    @torch.no_grad()
    def fakes(self, G_ema: torch.nn.Module, chunk: int = 64) -> torch.Tensor:
        out = []
        for z, lab in zip(self.z.split(chunk), self.labels.split(chunk)):
            img = G_ema(z.to(self.device), self.data.one_hot(lab).to(self.device), noise_mode="const")
            out.append(to_uint8(img.float()).cpu())
        return torch.cat(out)

    def evaluate(self, G_ema: torch.nn.Module) -> dict[str, float]:
        from gen.core.metrics import compute_metrics  # noqa: PLC0415 — loads torch-fidelity: only runs with --metrics

        return compute_metrics(self.fakes(G_ema), self.data.images, names=self.names,
                               extractor=self.extractor, device=str(self.device), seed=self.seed)

    def primary(self, values: dict[str, Any]) -> str:
        """The metric that picks the best snapshot: the first one asked for."""
        from gen.core.metrics import metric_name  # noqa: PLC0415 — loads torch-fidelity: only runs with --metrics

        return metric_name(self.names[0], self.extractor.label)

    def better_best(self, best: dict | None, entry: dict[str, Any], snap: Path) -> dict | None:
        key = self.primary(entry)
        return better_best(best, key, float(entry[key]), int(entry["kimg"]), snap)
