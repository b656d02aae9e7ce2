"""Preset table for `gen train`: a name -> function(res, gpus) giving config fields.

`auto` follows the published rule table (docs/ENGINE.md, "Presets"): batch, gamma, EMA and
channel widths derived from resolution and GPU count. The paper presets are the published
hyper-parameters of the StyleGAN2-ADA paper's reference configurations. `cpu-tiny` is ours:
small enough that a CPU shows visible learning within minutes.

Resolution order: dataclass defaults < preset < explicit flags (each flag overrides one
field; `gen.train.recipes.resolve_config`). Presets never touch data/output/machine fields.
The table is plain data: it imports nothing of gen.train, so the config can name its presets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from classify.core.errors import UserError


def _auto(res: int, gpus: int) -> dict[str, Any]:
    mb = max(min(gpus * min(4096 // res, 32), 64), gpus)
    fmaps = 1.0 if res >= 512 else 0.5
    return dict(
        batch=mb, mbstd_group=min(mb // gpus, 4), channel_base=int(fmaps * 32768), channel_max=512,
        lr=0.002 if res >= 1024 else 0.0025, gamma=0.0002 * res * res / mb, ema_kimg=mb * 10 / 32,
        ema_rampup=0.05, map_layers=2, conv_clamp=256,
    )


def _paper(mb: int, mbstd: int, fmaps: float, lr: float, gamma: float, ema: float, ramp: float | None,
           mapl: int):
    def preset(res: int, gpus: int) -> dict[str, Any]:
        return dict(
            batch=mb, mbstd_group=mbstd, channel_base=int(fmaps * 32768), channel_max=512, lr=lr,
            gamma=gamma, ema_kimg=ema, ema_rampup=ramp, map_layers=mapl, conv_clamp=256,
        )

    return preset


def _cifar(res: int, gpus: int) -> dict[str, Any]:
    # The paper's CIFAR-10 configuration also turns off path-length regularisation and style
    # mixing. Its D architecture ('orig') is not implemented (docs/ENGINE.md), so D stays resnet here.
    paper = _paper(mb=64, mbstd=32, fmaps=1, lr=0.0025, gamma=0.01, ema=500, ramp=0.05, mapl=2)(res, gpus)
    return paper | {"pl_weight": 0.0, "style_mixing": 0.0}


def _cpu_tiny(res: int, gpus: int) -> dict[str, Any]:
    # Narrow (64 channels everywhere), short mapping, 128-d latents: a G+D step at 32x32
    # takes tens of milliseconds on a laptop core, so a few kimg show shapes emerging.
    # Short EMA and ticks so the grids and metrics.jsonl move while you watch.
    return dict(
        res=32, batch=16, mbstd_group=4, channel_base=4096, channel_max=64, z_dim=128, w_dim=128,
        lr=0.0025, gamma=0.05, ema_kimg=1.0, ema_rampup=0.05, map_layers=2, conv_clamp=256,
        tick_kimg=1.0, snap=5, kimg=200.0,
    )


PRESETS: dict[str, Callable[[int, int], dict[str, Any]]] = {
    "auto": _auto,
    "stylegan2": _paper(mb=32, mbstd=4, fmaps=1, lr=0.002, gamma=10, ema=10, ramp=None, mapl=8),
    "paper256": _paper(mb=64, mbstd=8, fmaps=0.5, lr=0.0025, gamma=1, ema=20, ramp=None, mapl=8),
    "paper512": _paper(mb=64, mbstd=8, fmaps=1, lr=0.0025, gamma=0.5, ema=20, ramp=None, mapl=8),
    "paper1024": _paper(mb=32, mbstd=4, fmaps=1, lr=0.002, gamma=2, ema=10, ramp=None, mapl=8),
    "cifar": _cifar,
    "cpu-tiny": _cpu_tiny,
}


def list_presets() -> list[str]:
    return list(PRESETS)


def preset_field_names() -> tuple[set[str], set[str]]:
    """(fields every preset sets, fields only some presets set): the help shows where a
    field's effective default comes from."""
    keys = [set(preset(64, 1)) for preset in PRESETS.values()]
    every = set.intersection(*keys)
    return every, set.union(*keys) - every


def preset_fields(name: str, res: int, gpus: int = 1) -> dict[str, Any]:
    if name not in PRESETS:
        raise UserError(f"unknown --preset {name!r}; valid: {', '.join(PRESETS)}")
    return PRESETS[name](res, gpus)
