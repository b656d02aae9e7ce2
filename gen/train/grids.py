"""The fixed-seed image grids of a run: reals.png, fakes_init.png, fakesNNNNNN.png.

The latents are drawn once from the run's seed with a private generator (never the global
RNG, so writing a grid cannot change the training trajectory) and the noise is the
network's constant noise, so successive fakes grids differ only by what G_ema learned.
A conditional run gets one row per class, labelled.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from gen.core.grids import save_grid, to_uint8
from gen.train.config import GanTrainConfig
from gen.train.data import GanTrainData

GRID_COLS = 8
UNCOND_ROWS = 4


@dataclass
class GridSpec:
    z: torch.Tensor  # [N, z_dim]
    labels: torch.Tensor  # int64 [N], index into the run's classes
    c: torch.Tensor  # one-hot [N, c_dim] (or [N, 0])
    row_names: list[str] | None
    seed: int

    @classmethod
    def build(cls, cfg: GanTrainConfig, data: GanTrainData) -> GridSpec:
        rows = len(data.classes) if data.c_dim else UNCOND_ROWS
        gen = torch.Generator().manual_seed(cfg.seed)
        z = torch.randn([rows * GRID_COLS, cfg.z_dim], generator=gen)
        labels = (torch.arange(rows).repeat_interleave(GRID_COLS) if data.c_dim
                  else torch.zeros(len(z), dtype=torch.int64))
        names = list(data.classes) if data.c_dim else None
        return cls(z, labels, data.one_hot(labels), names, cfg.seed)


@torch.no_grad()
def save_fakes(G_ema: torch.nn.Module, spec: GridSpec, path: Path, chunk: int = 16) -> None:
    device = next(G_ema.parameters()).device
    out = []
    for z, c in zip(spec.z.split(chunk), spec.c.split(chunk)):
        img = G_ema(z.to(device), c.to(device), noise_mode="const")
        out.append(to_uint8(img.float()).cpu())
    save_grid(torch.cat(out), path, nrow=GRID_COLS, labels=spec.row_names)


def save_reals(data: GanTrainData, spec: GridSpec, path: Path) -> None:
    """Real train images in the same layout (one row per class when conditional)."""
    gen = torch.Generator().manual_seed(spec.seed)
    if spec.row_names:
        picks = []
        for row in range(len(spec.row_names)):
            pool = torch.nonzero(data.labels == row).flatten()
            order = pool[torch.randperm(len(pool), generator=gen)]
            picks.append(order[torch.arange(GRID_COLS) % len(order)])  # repeat if a class is tiny
        idx = torch.cat(picks)
    else:
        idx = torch.randperm(len(data.labels), generator=gen)[: len(spec.labels)]
    save_grid(data.images[idx], path, nrow=GRID_COLS, labels=spec.row_names)
