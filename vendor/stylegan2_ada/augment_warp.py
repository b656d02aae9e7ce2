"""Anti-aliased affine warping for the ADA pipeline: one warp per image, no aliasing.

A geometric augmentation must not add frequencies that real images never contain, or the
discriminator learns to spot augmented images and the generator copies the artefacts
(Karras et al. 2020b, section 2.3). So each image is
  1. upsampled 2x with the symlet-6 ("sym6") wavelet low-pass filter (docs/ENGINE.md,
     "ADA augmentation"),
  2. warped once with bilinear sampling on that finer grid (gather-based, twice
     differentiable on every supported torch), and
  3. filtered with the same taps in the other orientation and downsampled 2x back.
sym6 is an orthogonal wavelet: its low-pass h satisfies sum_t 2 h[t] h[t + 2n] = [n == 0]
(h normalised to sum 1), so steps 1 and 3 with nothing in between give back the input
exactly, and every image keeps its detail. (A [1, 3, 3, 1] filter instead blurs every
augmented image, about 2.6 % of its standard deviation.)

Pure pixel permutations (flips, quarter turns, whole-pixel shifts and their products) are
blits: `apply_geometric` copies their pixels instead (`blit`), so an x-flip is exactly
`torch.flip`. sym6 is not symmetric, so sending a flip through the filter pair would not be.

Coordinates: pixel `i` of an image of width `W` covers [i - 0.5, i + 0.5]; the matrices act
on *centred* pixel coordinates, p = i - (W - 1) / 2, with x along width and y along height. A
matrix `M` moves content: the output at p shows the input at M^-1 p. Outside the image the
content is mirrored about the image edge (symmetric reflection).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Decomposition low-pass of the symlet-6 wavelet (the standard published coefficients).
SYM6 = (
    0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
    0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
    -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148,
)
TAPS = len(SYM6)
# Fine sample j of the upsampled image (a full transposed convolution) holds coarse
# coordinate (j - CENTRE) / 2; the downsampling correlation reads fine samples 2k .. 2k + 11
# for coarse pixel k, which puts it at the same place.
CENTRE = (TAPS - 1) / 2
# Coarse pixels of mirrored border upsampled with the image: the filter's reach, so the fine
# samples near the edge are those of the mirrored image, not of zeros.
MARGIN = TAPS // 2
# How far outside the image (coarse pixels) a source coordinate is read from the upsampled
# border as it is; further out it is mirrored into the image first. Within this reach the
# fine samples are complete sums of the padded image (the first and last TAPS - 2 samples of
# the transposed convolution are not), and the identity warp's reads (up to 2.75 px out)
# stay unfolded, so the identity is exact.
REACH = 3


def sym6_filter(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The 12 sym6 low-pass taps normalised to sum 1 (computed in float64, then cast)."""
    h = torch.tensor(SYM6, dtype=torch.float64)
    return (h / h.sum()).to(dtype=dtype, device=device)


def _along(x: torch.Tensor, dim: int, fn) -> torch.Tensor:
    """Apply a 1-D op `fn([B, 1, L]) -> [B, 1, L']` along `dim` of a 4-D tensor."""
    moved = x.movedim(dim, -1)
    lead = moved.shape[:-1]
    out = fn(moved.reshape(-1, 1, moved.shape[-1]))
    return out.reshape(*lead, out.shape[-1]).movedim(-1, dim)


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, 2H + 10, 2W + 10]: zero-stuff and filter with 2 h per axis
    (gain 4 in all), as one transposed convolution; the output is complete (no cropping)."""
    h = (2 * sym6_filter(x.dtype, x.device)).view(1, 1, TAPS)
    up = lambda t: F.conv_transpose1d(t, h, stride=2)  # noqa: E731
    return _along(_along(x, 2, up), 3, up)


def downsample2x(x: torch.Tensor) -> torch.Tensor:
    """[N, C, 2H + 10, 2W + 10] -> [N, C, H, W]: correlate with h (the upsampling filter
    flipped) and keep every other sample."""
    h = sym6_filter(x.dtype, x.device).view(1, 1, TAPS)
    down = lambda t: F.conv1d(t, h, stride=2)  # noqa: E731
    return _along(_along(x, 2, down), 3, down)


def _mirror_pad(x: torch.Tensor, margin: int) -> torch.Tensor:
    """Symmetric (edge-repeating) reflection padding by `margin` pixels on every side."""
    def index(size: int) -> torch.Tensor:
        i = torch.arange(-margin, size + margin, device=x.device)
        return _reflect(i.float(), size).round().long()

    return x.index_select(2, index(x.shape[2])).index_select(3, index(x.shape[3]))


def affine_inverse(matrices: torch.Tensor) -> torch.Tensor:
    """Top two rows [N, 2, 3] of the inverse of affine [N, 3, 3] matrices (last row 0 0 1).

    Closed form: [A t]^-1 = [A^-1, -A^-1 t]. Cheaper than a batched LU on a GPU.
    """
    a, b, t0 = matrices[:, 0, 0], matrices[:, 0, 1], matrices[:, 0, 2]
    c, d, t1 = matrices[:, 1, 0], matrices[:, 1, 1], matrices[:, 1, 2]
    inv = torch.stack([d, -b, -c, a], dim=1).view(-1, 2, 2) / (a * d - b * c)[:, None, None]
    shift = -(inv @ torch.stack([t0, t1], dim=1)[:, :, None])
    return torch.cat([inv, shift], dim=2)


def source_pixels(matrices: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Input pixel coordinates (x, y) [N, len(ys), len(xs), 2] that output pixel coordinates
    `xs` x `ys` (uncentred, possibly fractional) read under `matrices`."""
    gy, gx = torch.meshgrid(ys - (height - 1) / 2, xs - (width - 1) / 2, indexing="ij")
    points = torch.stack([gx, gy, torch.ones_like(gx)], dim=-1)
    src = torch.einsum("nij,hwj->nhwi", affine_inverse(matrices.float()), points)
    return src + torch.tensor([(width - 1) / 2, (height - 1) / 2], device=matrices.device)


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


def _fine_coords(matrices: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Where each output fine sample reads on the upsampled, MARGIN-padded input.

    Output fine sample j sits at coarse coordinate (j - CENTRE) / 2; its source coordinate is
    mirrored into the image only when it lies more than REACH pixels outside, so under the
    identity every fine sample reads itself and the warp is exact."""
    dev = matrices.device
    fine = lambda size: (torch.arange(2 * size + TAPS - 2, device=dev, dtype=torch.float32) - CENTRE) / 2  # noqa: E731
    src = source_pixels(matrices, fine(width), fine(height), width, height)
    sizes = torch.tensor([width, height], device=dev, dtype=torch.float32)
    outside = (src < -REACH) | (src > sizes - 1 + REACH)
    folded = torch.stack([_reflect(src[..., 0], width), _reflect(src[..., 1], height)], dim=-1)
    src = torch.where(outside, folded, src)
    return 2 * (src + MARGIN) + CENTRE


def warp(x: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """Apply one 3x3 affine matrix per image, anti-aliased, same size out as in."""
    n, _, h, w = x.shape
    if matrices.shape != (n, 3, 3):
        raise ValueError(f"warp: expected matrices of shape [{n}, 3, 3], got {list(matrices.shape)}")
    fine = upsample2x(_mirror_pad(x, MARGIN))
    return downsample2x(bilinear_reflect(fine, _fine_coords(matrices, h, w)))


def blit(x: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """Apply matrices that move pixel centres onto pixel centres (flips, quarter turns,
    whole-pixel shifts) by copying pixels: exact, no filtering."""
    _, _, h, w = x.shape
    dev = matrices.device
    src = source_pixels(matrices, torch.arange(w, device=dev, dtype=torch.float32),
                        torch.arange(h, device=dev, dtype=torch.float32), w, h)
    return bilinear_reflect(x, src)


def is_blit(matrices: torch.Tensor) -> torch.Tensor:
    """[N] bool: the affine part is all whole numbers, so the warp only permutes pixels
    (for square images, which is what the GAN trains on)."""
    part = matrices[:, :2, :]
    return (part == part.round()).all(dim=2).all(dim=1)


def lowpass(x: torch.Tensor) -> torch.Tensor:
    """What `warp` does to an image under the identity matrix (nothing, up to rounding)."""
    eye = torch.eye(3, device=x.device).expand(x.shape[0], 3, 3)
    return warp(x, eye)
