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


def _upsample_axis(x: torch.Tensor, dim: int) -> torch.Tensor:
    """2x along `dim` of a signal padded by one sample at each end (length L + 2 -> 2L).

    Zero-stuffing then filtering with [1, 3, 3, 1] / 4 leaves two phases: the fine sample
    at i - 1/4 is (x[i-1] + 3 x[i]) / 4 and the one at i + 1/4 is (3 x[i] + x[i+1]) / 4.
    Computing the phases directly skips the multiplications by the stuffed zeros.
    """
    length = x.shape[dim] - 2
    left, mid, right = (x.narrow(dim, start, length) for start in (0, 1, 2))
    even = 0.25 * left + 0.75 * mid
    odd = 0.75 * mid + 0.25 * right
    out = torch.stack([even, odd], dim=dim + 1)
    return out.flatten(dim, dim + 1)


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, 2H, 2W]; fine sample k sits at coarse coordinate (k - 0.5) / 2.

    A one-pixel replicate pad is exactly the symmetric extension the filter needs.
    """
    x = F.pad(x, (1, 1, 1, 1), mode="replicate")
    return _upsample_axis(_upsample_axis(x, 2), 3)


def _downsample_axis(x: torch.Tensor, dim: int) -> torch.Tensor:
    """[1, 3, 3, 1] / 8 filter and keep every other sample: length 2L + 2 -> L."""
    length = (x.shape[dim] - 2) // 2
    lead = (slice(None),) * dim
    taps = [x[lead + (slice(start, start + 2 * length, 2),)] for start in range(4)]
    return (taps[0] + 3 * taps[1] + 3 * taps[2] + taps[3]) / 8


def downsample2x(x: torch.Tensor) -> torch.Tensor:
    """[N, C, 2H + 2, 2W + 2] fine samples k = -1 .. 2H -> [N, C, H, W] coarse pixels.

    The caller supplies the one-sample margin on each side (it comes from the warp), so
    the filter's four taps k = 2m - 1 .. 2m + 2 centre exactly on coarse pixel m.
    """
    return _downsample_axis(_downsample_axis(x, 2), 3)


def _fine_axis(size: int, device: torch.device) -> torch.Tensor:
    """Centred coarse coordinates of fine samples k = -1 .. 2 * size (margin included)."""
    k = torch.arange(-1, 2 * size + 1, device=device, dtype=torch.float32)
    return (k - 0.5) / 2 - (size - 1) / 2


def affine_inverse(matrices: torch.Tensor) -> torch.Tensor:
    """Top two rows [N, 2, 3] of the inverse of affine [N, 3, 3] matrices (last row 0 0 1).

    Closed form: [A t]^-1 = [A^-1, -A^-1 t]. Cheaper than a batched LU on a GPU.
    """
    a, b, t0 = matrices[:, 0, 0], matrices[:, 0, 1], matrices[:, 0, 2]
    c, d, t1 = matrices[:, 1, 0], matrices[:, 1, 1], matrices[:, 1, 2]
    inv = torch.stack([d, -b, -c, a], dim=1).view(-1, 2, 2) / (a * d - b * c)[:, None, None]
    shift = -(inv @ torch.stack([t0, t1], dim=1)[:, :, None])
    return torch.cat([inv, shift], dim=2)


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
    inverse = affine_inverse(matrices.float())  # output -> input
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
