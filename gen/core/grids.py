"""Image grids for people: tiles in rows, optional row labels, written atomically as PNG."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from classify.core.fileio import atomic_save_image

MIN_TILE = 64


def to_uint8(img: torch.Tensor) -> torch.Tensor:
    """Map generator output (nominally [-1, 1]) to uint8 [0, 255], clamping overshoot."""
    return ((img.detach().float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


def grid_image(
    images: torch.Tensor, nrow: int, labels: Sequence[str] | None = None, pad: int = 2
) -> Image.Image:
    """Lay out uint8 images [N, C, H, W] as `nrow` tiles per row; `labels` names each row.

    Labels go in a strip to the left of their row so that no tile is covered; a reader of
    `rejected.png` must see both the sample and the filter that rejected it.
    """
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(f"save_grid expects uint8 [N, C, H, W], got {images.dtype} {tuple(images.shape)}")
    n, c, h, w = images.shape
    if c not in (1, 3, 4):
        raise ValueError(f"save_grid supports 1, 3 or 4 channels, got {c}")
    nrow = max(1, min(nrow, max(n, 1)))
    rows = max(1, math.ceil(n / nrow))
    label_w = 0 if not labels else 8 + 6 * max(len(s) for s in labels)
    canvas = np.full((rows * (h + pad) + pad, label_w + nrow * (w + pad) + pad, 3), 255, np.uint8)
    arr = images.cpu().numpy().transpose(0, 2, 3, 1)
    if c == 1:
        arr = np.repeat(arr, 3, axis=3)
    arr = arr[..., :3]
    for i in range(n):
        r, col = divmod(i, nrow)
        y, x = pad + r * (h + pad), label_w + pad + col * (w + pad)
        canvas[y : y + h, x : x + w] = arr[i]
    img = Image.fromarray(canvas)
    if labels:
        draw = ImageDraw.Draw(img)
        for r, text in enumerate(labels[:rows]):
            draw.text((4, pad + r * (h + pad) + max(0, h // 2 - 5)), text, fill=(200, 0, 0))
    return img


def save_grid(
    images: torch.Tensor, path: str | os.PathLike, nrow: int, labels: Sequence[str] | None = None
) -> None:
    """Write a grid of uint8 images [N, C, H, W] to `path` (PNG, atomic).

    Tiles smaller than MIN_TILE px are enlarged by a whole factor with nearest-neighbour
    (a 32 px grid of 8 tiles is 270 px wide, too small to judge); every pixel stays exact."""
    h, w = images.shape[-2:]
    factor = max(1, math.ceil(MIN_TILE / max(h, w, 1)))
    if factor > 1:
        images = images.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)
    atomic_save_image(grid_image(images, nrow, labels), path)
