"""Anti-aliased affine warping for the ADA pipeline: one warp per image, no aliasing.

A geometric augmentation must not add frequencies that real images never contain, or the
discriminator learns to spot augmented images and the generator copies the artefacts
(Karras et al. 2020b, "Training GANs with limited data", section 2.3). So each image is
  1. upsampled 2x with the [1, 3, 3, 1] low-pass filter,
  2. warped once with bilinear sampling on that finer grid (gather-based, twice
     differentiable on every supported torch), and
  3. low-pass filtered and downsampled 2x back to its size.
Borders are extended by mirroring about the image edge (symmetric reflection) in every
step, so the three steps agree about what lies outside the image.

Coordinates: pixel `i` of an image of width `W` covers [i - 0.5, i + 0.5] and the matrices
act on *centred* pixel coordinates, p = i - (W - 1) / 2, with x along width and y along
height. A matrix `M` moves content: the output at p shows the input at M^-1 p.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _filter_1d(device: torch.device, dtype: torch.dtype, gain: float) -> torch.Tensor:
    """The normalised [1, 3, 3, 1] binomial filter times `gain` (per axis)."""
    k = torch.tensor([1.0, 3.0, 3.0, 1.0], device=device, dtype=dtype)
    return k * (gain / k.sum())


def _separable_conv(x: torch.Tensor, k: torch.Tensor, stride: int) -> torch.Tensor:
    """Valid depthwise convolution of every channel with `k` along H, then along W."""
    c = x.shape[1]
    taps = k.numel()
    x = F.conv2d(x, k.view(1, 1, taps, 1).expand(c, 1, taps, 1), stride=(stride, 1), groups=c)
    return F.conv2d(x, k.view(1, 1, 1, taps).expand(c, 1, 1, taps), stride=(1, stride), groups=c)


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, 2H, 2W]; fine sample k sits at coarse coordinate (k - 0.5) / 2.

    A one-pixel replicate pad is exactly the symmetric extension the filter needs.
    """
    n, c, h, w = x.shape
    x = F.pad(x, (1, 1, 1, 1), mode="replicate")
    # Zero-stuff: each sample is followed by a zero along both axes (out-of-place, so
    # autograd sees a plain pad and the op stays twice differentiable).
    x = F.pad(x.reshape(n, c, h + 2, 1, w + 2, 1), (0, 1, 0, 0, 0, 1))
    x = x.reshape(n, c, 2 * h + 4, 2 * w + 4)
    # Gain 2 per axis restores the energy lost to the inserted zeros. The valid conv
    # yields 2H + 1 samples starting at coarse coordinate -0.25; keep the first 2H.
    x = _separable_conv(x, _filter_1d(x.device, x.dtype, 2.0), stride=1)
    return x[:, :, : 2 * h, : 2 * w]


def downsample2x(x: torch.Tensor) -> torch.Tensor:
    """[N, C, 2H + 2, 2W + 2] fine samples k = -1 .. 2H -> [N, C, H, W] coarse pixels.

    The caller supplies the one-sample margin on each side (it comes from the warp), so
    the valid filter lands exactly on the coarse pixel centres.
    """
    return _separable_conv(x, _filter_1d(x.device, x.dtype, 1.0), stride=2)


def _fine_axis(size: int, device: torch.device) -> torch.Tensor:
    """Centred coarse coordinates of fine samples k = -1 .. 2 * size (margin included)."""
    k = torch.arange(-1, 2 * size + 1, device=device, dtype=torch.float32)
    return (k - 0.5) / 2 - (size - 1) / 2


def source_coords(matrices: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Fine-grid pixel coordinates (x, y) to read for each output fine sample.

    Returns [N, 2H + 2, 2W + 2, 2]; output fine samples k = -1 .. 2H (the margin that
    `downsample2x` consumes), input indices on the 2H x 2W fine image.
    """
    device = matrices.device
    ys = _fine_axis(height, device)
    xs = _fine_axis(width, device)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    points = torch.stack([gx, gy, torch.ones_like(gx)], dim=-1)  # [H2, W2, 3]
    inverse = torch.linalg.inv(matrices.float())[:, :2, :]  # output -> input
    src = torch.einsum("nij,hwj->nhwi", inverse, points)  # centred coarse coordinates
    # Coarse coordinate s = p + (size - 1) / 2 sits at fine index 2 s + 0.5.
    sizes = torch.tensor([width, height], device=device, dtype=torch.float32)
    return 2 * src + sizes - 0.5


def _reflect(coord: torch.Tensor, size: int) -> torch.Tensor:
    """Fold a pixel coordinate into [-0.5, size - 0.5] by mirroring about the image edges."""
    period = 2 * size
    u = torch.remainder(coord + 0.5, period)
    u = torch.where(u > size, period - u, u)
    return u - 0.5


def bilinear_reflect(img: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Bilinear read of `img` [N, C, H, W] at `coords` [N, Ho, Wo, 2] (x, y pixel indices).

    Written with gather rather than `F.grid_sample` because R1 differentiates through it
    twice, and grid_sample's backward has no derivative in the torch versions we support.
    Gradients flow to `img` only (the coordinates are random draws, not parameters).
    """
    n, c, h, w = img.shape
    ho, wo = coords.shape[1:3]
    x = _reflect(coords[..., 0], w)
    y = _reflect(coords[..., 1], h)
    x0, y0 = torch.floor(x), torch.floor(y)
    fx, fy = (x - x0).to(img.dtype), (y - y0).to(img.dtype)
    flat = img.reshape(n, c, h * w)

    def tap(xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        # Just outside [0, size - 1] the mirrored neighbour is the edge pixel itself.
        xi = xi.clamp(0, w - 1).long()
        yi = yi.clamp(0, h - 1).long()
        index = (yi * w + xi).reshape(n, 1, ho * wo).expand(n, c, ho * wo)
        return flat.gather(2, index).reshape(n, c, ho, wo)

    fx, fy = fx[:, None], fy[:, None]
    top = tap(x0, y0) * (1 - fx) + tap(x0 + 1, y0) * fx
    bottom = tap(x0, y0 + 1) * (1 - fx) + tap(x0 + 1, y0 + 1) * fx
    return top * (1 - fy) + bottom * fy


def warp(x: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """Apply one 3x3 affine matrix per image, anti-aliased, same size out as in."""
    n, _, h, w = x.shape
    if matrices.shape != (n, 3, 3):
        raise ValueError(f"warp: expected matrices of shape [{n}, 3, 3], got {list(matrices.shape)}")
    coords = source_coords(matrices, h, w)
    fine = bilinear_reflect(upsample2x(x), coords)
    return downsample2x(fine)


def lowpass(x: torch.Tensor) -> torch.Tensor:
    """What `warp` does to an image under the identity matrix (a mild blur)."""
    eye = torch.eye(3, device=x.device).expand(x.shape[0], 3, 3)
    return warp(x, eye)
