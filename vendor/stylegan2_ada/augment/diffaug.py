"""Differentiable augmentation ("DiffAugment", Zhao et al. 2020) for training D on tiny sets.

Beside ADA (`augment.AugmentPipe`): every image D sees (reals, fakes, the R1 reals) is
augmented every time, with three cheap differentiable policies, so D cannot memorise a few
hundred reals, and G still gets gradients through the augmentation:
- colour: brightness + U(-0.5, 0.5); saturation x U(0, 2) about the per-pixel channel mean
  (the identity for one channel); contrast x U(0.5, 1.5) about the image mean;
- translation: a whole-pixel shift of up to 1/8 of the size per axis, filled with zeros;
- cutout: a zeroed square of half the size at a random place.
Images are in [-1, 1], so zero is mid-grey. Everything is arithmetic, padding and gathers:
differentiable twice (R1 takes the gradient of a gradient through it).

`p` exists only so that training logs and snapshots treat both augmenters alike: DiffAugment
always applies (p = 1) and is never adapted.
"""

from __future__ import annotations

import torch

POLICIES = ("color", "translation", "cutout")


class DiffAugment(torch.nn.Module):
    def __init__(self, policies: tuple[str, ...] = POLICIES, translation: float = 0.125, cutout: float = 0.5):
        super().__init__()
        unknown = sorted(set(policies) - set(POLICIES))
        if unknown:
            raise ValueError(f"DiffAugment: unknown policies {unknown}; choose from {POLICIES}")
        self.policies, self.translation, self.cutout = tuple(policies), translation, cutout
        self.register_buffer("p", torch.ones([]))

    def extra_repr(self) -> str:
        return f"policies={','.join(self.policies)}"

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4:
            raise ValueError(f"DiffAugment: expected images [N, C, H, W], got {list(images.shape)}")
        x = images
        if "color" in self.policies:
            x = _colour(x)
        if "translation" in self.policies:
            x = _translate(x, self.translation)
        if "cutout" in self.policies:
            x = _cutout(x, self.cutout)
        return x


def _uniform(n: int, low: float, high: float, like: torch.Tensor) -> torch.Tensor:
    return (torch.rand(n, 1, 1, 1, device=like.device, dtype=like.dtype) * (high - low) + low)


def _colour(x: torch.Tensor) -> torch.Tensor:
    n = x.shape[0]
    x = x + _uniform(n, -0.5, 0.5, x)
    channel_mean = x.mean(dim=1, keepdim=True)
    x = (x - channel_mean) * _uniform(n, 0.0, 2.0, x) + channel_mean
    image_mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - image_mean) * _uniform(n, 0.5, 1.5, x) + image_mean


def _translate(x: torch.Tensor, ratio: float) -> torch.Tensor:
    """Shift each image by whole pixels (dx, dy) in [-ratio * size, ratio * size]; zeros come in."""
    n, c, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sy, sy + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(-sx, sx + 1, (n, 1, 1), device=x.device)
    ys = torch.arange(h, device=x.device)[None, :, None] - dy  # source row of each output row
    xs = torch.arange(w, device=x.device)[None, None, :] - dx
    inside = ((ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)).to(x.dtype)
    index = (ys.clamp(0, h - 1) * w + xs.clamp(0, w - 1)).reshape(n, 1, h * w).expand(n, c, h * w)
    moved = x.reshape(n, c, h * w).gather(2, index).reshape(n, c, h, w)
    return moved * inside[:, None]


def _cutout(x: torch.Tensor, ratio: float) -> torch.Tensor:
    """Zero a square of ratio x size (per axis) centred at a uniformly random pixel."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device)
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    hole = (ys >= cy - ch // 2) & (ys < cy - ch // 2 + ch) & (xs >= cx - cw // 2) & (xs < cx - cw // 2 + cw)
    return x * (~hole).to(x.dtype)[:, None]
