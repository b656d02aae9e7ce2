"""Anti-aliased affine warping for the ADA pipeline: one warp per image, no aliasing.

A geometric augmentation must not add frequencies that real images never contain, or the
discriminator learns to spot augmented images and the generator copies the artefacts
(Karras et al. 2020b, section 2.3). docs/ENGINE.md ("Geometric resampling, exactly") states
the convention this file implements; in short, for a batch and its matrices:

  1. margins: how far the warped image reads outside the input, from the four transformed
     corners plus the filters' reach, the largest over the batch; the image is padded by them
     with reflection that does not repeat the edge pixel;
  2. the padded image is upsampled 2x with the symlet-6 ("sym6") low-pass filter;
  3. each output sample of a 2x-finer grid reads the upsampled image bilinearly (zeros beyond
     the padded area);
  4. the result is filtered with the same taps read the other way round and downsampled 2x.

sym6 is an orthogonal wavelet: its low-pass h satisfies sum_t 2 h[t] h[t + 2n] = [n == 0]
(h normalised to sum 1), so steps 2 and 4 with nothing in between give back the input to
float rounding, and every image keeps its detail (a [1, 3, 3, 1] filter would blur it).

Coordinates: matrices act on *centred* pixel coordinates p = (i - (W - 1) / 2, j - (H - 1) / 2, 1),
x along the width, y down. A matrix `G` here is an inverse transform: the output pixel at p
shows the input at G p. Rotation and scaling therefore turn about the image centre exactly.

Every image of the batch goes through the filter pair, flips and quarter turns included: the
pair is not symmetric, so even an x-flip is not an exact pixel permutation (it differs from
`torch.flip` by up to ~0.09), and a copy would not reproduce the method.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..separable import banded

# Decomposition low-pass of the symlet-6 wavelet (the standard published coefficients).
SYM6 = (
    0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
    0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
    -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148,
)
TAPS = len(SYM6)
# Coarse pixels each filter of the pair reaches to either side (12 fine taps = 6 fine = 3 coarse).
REACH = TAPS // 4
# Coarse pixels an output pixel depends on beyond its own position: the down filter's reach,
# then the up filter's; the warped image is sampled on a grid this much larger on every side.
GUARD = 2 * REACH
# Fine sample j of the upsampled image sits at coarse position j / 2, so a fine coordinate u
# and a matrix on fine pixel centres are related by u + FINE_SHIFT (docs/ENGINE.md). This half
# sample is what puts the centre of rotation exactly on the image centre; one more half sample
# (1.0) turns about a point a quarter pixel off, the engine's convention before 2026-12.
FINE_SHIFT = 0.5


def sym6_filter(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The 12 sym6 low-pass taps normalised to sum 1 (computed in float64, then cast)."""
    h = torch.tensor(SYM6, dtype=torch.float64)
    return (h / h.sum()).to(dtype=dtype, device=device)


# The two matrices depend only on the length, dtype and device, and each warp needs four of
# them (building one is ~15 small ops, ~0.3 ms): kept, read-only, per (length, dtype, device).
@functools.lru_cache(maxsize=64)
def upsample_matrix(length: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """[L, 2L]: coarse sample m feeds fine sample j with 2 h[j + 5 - 2m] (zero-stuff, then
    convolve with 2 h per axis, gain 4 over both: the full transposed convolution has length
    2L + 10 and fine j is its sample j + 5)."""
    with torch.inference_mode(False):  # a kept tensor must be usable outside inference mode
        h = 2 * sym6_filter(dtype, device)
        m = torch.arange(length, device=device)[:, None]
        j = torch.arange(2 * length, device=device)[None, :]
        return banded(j + TAPS // 2 - 1 - 2 * m, h)


@functools.lru_cache(maxsize=64)
def downsample_matrix(length: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """[2(L + GUARD), L]: coarse k reads fine samples 2k + 1 + t (t = 0..11) with weight h[t]
    (correlate with h, keep every other sample, past the cropped guard band)."""
    with torch.inference_mode(False):
        h = sym6_filter(dtype, device)
        i = torch.arange(length, device=device)[:, None]
        k = torch.arange(length // 2 - GUARD, device=device)[None, :]
        return banded(i - 1 - 2 * k, h)


# Both filters are linear maps along one axis, so each runs as a matrix product: rows @ M along
# the width, M^T @ rows along the height. The matrices are banded (12 taps), but one dense GEMM
# over all rows is ~5x faster on a CPU than a 1-channel convolution per row (docs/BENCHMARKS.md),
# needs no reshaping, and differentiates to any order (R1 differentiates through it twice).
def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, 2H, 2W] with the sym6 pair's up filter (`upsample_matrix`)."""
    h, w = x.shape[2:]
    return upsample_matrix(h, x.dtype, x.device).t() @ x @ upsample_matrix(w, x.dtype, x.device)


def downsample2x(x: torch.Tensor) -> torch.Tensor:
    """[N, C, 2(H + GUARD), 2(W + GUARD)] -> [N, C, H, W] (`downsample_matrix`)."""
    h, w = x.shape[2:]
    return downsample_matrix(h, x.dtype, x.device).t() @ x @ downsample_matrix(w, x.dtype, x.device)


def reflect_index(size: int, before: int, after: int, device: torch.device) -> torch.Tensor:
    """Source index of each sample of a 1-D axis padded by reflection about the edge pixels
    (the edge is not repeated: ... 2 1 | 0 1 2 ... n-1 | n-2 ...), folded again as often as
    the padding needs, so any margin works even on tiny images (where it equals `F.pad`'s
    'reflect' whenever that one is defined)."""
    i = torch.arange(-before, size + after, device=device)
    if size == 1:
        return torch.zeros_like(i)
    period = 2 * (size - 1)
    i = torch.remainder(i, period)
    return torch.where(i >= size, period - i, i)


def reflect_pad(x: torch.Tensor, left: int, right: int, top: int, bottom: int) -> torch.Tensor:
    """Reflection padding written with `index_select`, which differentiates to any order."""
    h, w = x.shape[2:]
    rows = reflect_index(h, top, bottom, x.device)
    cols = reflect_index(w, left, right, x.device)
    return x.index_select(2, rows).index_select(3, cols)


@dataclass
class WarpPlan:
    """What one batch's warp does: the padding, and where each fine output sample reads.

    `margins` = (left, top, right, bottom) coarse pixels of reflection padding; `fine` [N, 3, 3]
    maps centred fine output coordinates to centred fine input coordinates; `theta` [N, 2, 3]
    is the same map in `F.affine_grid`'s normalised coordinates (align_corners=False)."""

    margins: tuple[int, int, int, int]
    fine: torch.Tensor
    theta: torch.Tensor
    out_size: tuple[int, int]  # (height, width) of the fine output grid
    in_size: tuple[int, int]  # (height, width) of the upsampled padded input


def pad_margins(g_inv: torch.Tensor, width: int, height: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom): how far past each edge the four transformed corners land,
    plus the filters' GUARD, at most one image size, the largest over the batch."""
    cx, cy = (width - 1) / 2, (height - 1) / 2
    corners = torch.tensor([[-cx, cx, cx, -cx], [-cy, -cy, cy, cy], [1.0, 1.0, 1.0, 1.0]],
                           dtype=g_inv.dtype, device=g_inv.device)
    reached = g_inv[:, :2, :] @ corners  # [N, 2 (x, y), 4 corners]
    xs, ys = reached[:, 0].flatten(), reached[:, 1].flatten()
    out = []
    for far, centre, size in ((-xs, cx, width), (-ys, cy, height), (xs, cx, width), (ys, cy, height)):
        out.append(int(math.ceil(min(max(far.max().item() + GUARD - centre, 0.0), size - 1))))
    return out[0], out[1], out[2], out[3]


def _scale(sx: float, sy: float) -> torch.Tensor:
    return torch.diag(torch.tensor([sx, sy, 1.0], dtype=torch.float64))


def _shift(tx: float, ty: float) -> torch.Tensor:
    m = torch.eye(3, dtype=torch.float64)
    m[0, 2], m[1, 2] = tx, ty
    return m


def plan_warp(g_inv: torch.Tensor, width: int, height: int) -> WarpPlan:
    """The padding and the fine-grid matrices for inverse transforms `g_inv` [N, 3, 3]."""
    left, top, right, bottom = pad_margins(g_inv, width, height)
    g = g_inv.double().cpu()
    # The padded image's centre lies half the margin difference away from the original's.
    g = _shift((left - right) / 2, (top - bottom) / 2) @ g
    # To the 2x grid, whose sample j sits at coarse j / 2: u_in + 1/2 = (2 G / 2) (u_out + 1/2).
    g = _scale(2, 2) @ g @ _scale(0.5, 0.5)
    g = _shift(-FINE_SHIFT, -FINE_SHIFT) @ g @ _shift(FINE_SHIFT, FINE_SHIFT)
    out_h, out_w = 2 * (height + GUARD), 2 * (width + GUARD)
    in_h, in_w = 2 * (height + top + bottom), 2 * (width + left + right)
    theta = _scale(2 / in_w, 2 / in_h) @ g @ _scale(out_w / 2, out_h / 2)
    return WarpPlan((left, top, right, bottom), g.float(), theta[:, :2, :].float(), (out_h, out_w),
                    (in_h, in_w))


def bilinear_zeros(img: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Bilinear read of `img` [N, C, H, W] at `coords` [N, Ho, Wo, 2] (x, y pixel indices);
    samples outside the image read zero (`F.grid_sample`, padding_mode='zeros').

    R1 differentiates through the warp twice, and grid_sample's own backward has no
    derivative. But the read is linear in `img`: its backward is the adjoint (torch's
    grid-sampler input gradient), and the adjoint's backward is the read again. `_Bilinear`
    and `_BilinearAdjoint` are that pair, so every order of derivative runs on torch's two
    sampler kernels (the gather-based formula this replaces took ~5x as long forward).
    Gradients flow to `img` only (the coordinates are random draws, not parameters).
    """
    if img.ndim != 4 or coords.ndim != 4 or coords.shape[0] != img.shape[0] or coords.shape[3] != 2:
        raise ValueError(f"bilinear_zeros: expected img [N, C, H, W] and coords [N, Ho, Wo, 2], "
                         f"got {list(img.shape)} and {list(coords.shape)}")
    h, w = img.shape[2:]
    # grid_sample's coordinates with align_corners=False: pixel index i sits at (2i + 1) / size - 1.
    size = torch.tensor([w, h], dtype=coords.dtype, device=coords.device)
    grid = ((2 * coords + 1) / size - 1).to(img.dtype)
    return _Bilinear.apply(img, grid)


# torch's codes for grid_sampler's modes: interpolation 0 = bilinear, padding 0 = zeros.
_BILINEAR, _ZEROS = 0, 0


class _Bilinear(torch.autograd.Function):
    """img -> grid_sample(img, grid); backward: `_BilinearAdjoint` (see `bilinear_zeros`)."""

    @staticmethod
    def forward(ctx, img: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(grid)
        ctx.img_shape = img.shape
        return F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (grid,) = ctx.saved_tensors
        return _BilinearAdjoint.apply(grad, grid, ctx.img_shape), None


class _BilinearAdjoint(torch.autograd.Function):
    """grad -> its image-side gradient (the transpose of the read); backward: `_Bilinear`."""

    @staticmethod
    def forward(ctx, grad: torch.Tensor, grid: torch.Tensor, img_shape: torch.Size) -> torch.Tensor:
        ctx.save_for_backward(grid)
        # The kernel takes the input for its shape (its values only feed the grid's gradient,
        # which is not asked for): a zero tensor of that shape.
        shape_only = grad.new_zeros(img_shape)
        grad_img, _ = torch.ops.aten.grid_sampler_2d_backward(
            grad.contiguous(), shape_only, grid, _BILINEAR, _ZEROS, False, [True, False])
        return grad_img

    @staticmethod
    def backward(ctx, grad_grad: torch.Tensor):
        (grid,) = ctx.saved_tensors
        return _Bilinear.apply(grad_grad, grid), None, None


def fine_source_coords(plan: WarpPlan, device: torch.device) -> torch.Tensor:
    """[N, Ho, Wo, 2] input pixel indices (x, y) on the upsampled padded image read by each
    fine output sample."""
    (out_h, out_w), (in_h, in_w) = plan.out_size, plan.in_size
    ys = torch.arange(out_h, device=device, dtype=torch.float32) - (out_h - 1) / 2
    xs = torch.arange(out_w, device=device, dtype=torch.float32) - (out_w - 1) / 2
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    points = torch.stack([gx, gy, torch.ones_like(gx)], dim=-1)
    src = torch.einsum("nij,hwj->nhwi", plan.fine[:, :2, :].to(device), points)
    return src + torch.tensor([(in_w - 1) / 2, (in_h - 1) / 2], device=device)


def warp(x: torch.Tensor, g_inv: torch.Tensor) -> torch.Tensor:
    """Apply one inverse 3x3 affine matrix per image (output pixel -> input position),
    anti-aliased, same size out as in."""
    n, _, h, w = x.shape
    if g_inv.shape != (n, 3, 3):
        raise ValueError(f"warp: expected matrices of shape [{n}, 3, 3], got {list(g_inv.shape)}")
    plan = plan_warp(g_inv, w, h)
    left, top, right, bottom = plan.margins
    fine = upsample2x(reflect_pad(x, left, right, top, bottom))
    return downsample2x(bilinear_zeros(fine, fine_source_coords(plan, x.device)))


def lowpass(x: torch.Tensor) -> torch.Tensor:
    """What `warp` does to an image under the identity matrix (nothing, up to rounding)."""
    eye = torch.eye(3, device=x.device).expand(x.shape[0], 3, 3)
    return warp(x, eye)
