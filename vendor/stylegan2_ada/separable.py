"""Separable resampling filters as matrices (docs/ENGINE.md, the fourth round's list under
"Convolution gradients for the penalties": the image path's 2x upsampling).

A rank-one 2-D filter f = outer(row, col) makes `upfirdn2d`'s 2x upsampling a fixed linear map
per axis, a [2L, L] matrix; `ops.upsample2d` applies the pair as two matrix products on a CPU.
"""

from __future__ import annotations

import functools

import torch

Taps = tuple[float, ...]


def banded(offset: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """The matrix of taps[offset[r, c]] where 0 <= offset < len(taps), zero elsewhere: a 1-D
    filter (with resampling) as a matrix. Also builds the ADA warp's sym6 matrices."""
    k = taps.shape[0]
    inside = (offset >= 0) & (offset < k)
    picked = taps[offset.clamp(0, k - 1)]
    return torch.where(inside, picked, torch.zeros((), dtype=taps.dtype, device=taps.device))


def separable_taps(f: torch.Tensor, x: torch.Tensor) -> tuple[Taps, Taps] | None:
    """(row taps, column taps) with outer(row, col) = f, if f is such a product; else None.
    Read on the host, so only for CPU tensors outside torch.compile, and never for a filter
    that is being trained."""
    if x.device.type != "cpu" or f.device.type != "cpu" or f.requires_grad or f.ndim != 2:
        return None
    if torch.compiler.is_compiling():
        return None
    return factor_filter(tuple(tuple(row) for row in f.tolist()))


@functools.lru_cache(maxsize=16)
def factor_filter(values: tuple[Taps, ...]) -> tuple[Taps, Taps] | None:
    """The factors of a rank-one filter (row sums, column sums / total), else None."""
    f = torch.tensor(values, dtype=torch.float64)
    total = float(f.sum())
    if total == 0:
        return None
    row, col = f.sum(dim=1), f.sum(dim=0) / total
    if not torch.allclose(torch.outer(row, col), f, rtol=1e-7, atol=1e-12):
        return None
    return tuple(row.tolist()), tuple(col.tolist())


@functools.lru_cache(maxsize=64)
def upsample_matrix(taps: Taps, pad_before: int, length: int, dtype: torch.dtype,
                     device: torch.device) -> torch.Tensor:
    """[2L, L]: zero-stuff by 2, pad `pad_before`, true convolution with 2 * taps (gain 2 per
    axis, 4 over both), as a matrix: output j takes input m with 2 taps[K - 1 - (2m + p0 - j)].
    Built in float64 once per (taps, length, dtype, device) and kept, read-only."""
    with torch.inference_mode(False):  # a kept tensor must be usable outside inference mode
        flipped = torch.tensor(taps, dtype=torch.float64).flip(0) * 2
        j = torch.arange(2 * length)[:, None]
        m = torch.arange(length)[None, :]
        return banded(2 * m + pad_before - j, flipped).to(dtype=dtype, device=device)
