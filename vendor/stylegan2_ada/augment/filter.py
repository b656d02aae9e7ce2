"""The ADA pipeline's image-space groups: band filtering (`imgfilter`), additive noise, cutout.

docs/ENGINE.md ("ADA augmentation") states what each group does and how its parameter is
drawn; this file only applies parameters that `augment.draws` drew.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .warp import reflect_pad

# Low-pass taps of the symlet-2 wavelet (the standard published coefficients; they sum to sqrt 2).
SYM2 = (-0.12940952255092145, 0.22414386804185735, 0.836516303737469, 0.48296291314469025)
BANDS = 4
# Share of an image's power expected in each band (the lowest band holds most of it). After a
# band's gain changes, the gains are renormalised so that this expected power stays the same.
EXPECTED_POWER = (10 / 13, 1 / 13, 1 / 13, 1 / 13)


def _conv(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Full 1-D convolution of two float64 vectors."""
    return F.conv1d(a.view(1, 1, -1), b.flip(0).view(1, 1, -1), padding=b.numel() - 1).view(-1)


def filter_bank() -> torch.Tensor:
    """[4, 43] float64: four zero-phase bands, 0 the lowest, that sum to a unit impulse.

    Start with one band, an impulse; three times, stretch every band by 2 (zero-stuffing
    halves its frequencies), low-pass it with H(z)H(1/z)/2, and give the next band the
    high-pass H(-z)H(-1/z)/2 that completes it to an impulse. So band 3 is the top octave,
    band 2 the one below, band 1 the next and band 0 everything lower."""
    h = torch.tensor(SYM2, dtype=torch.float64)
    h_minus = h * torch.tensor([(-1.0) ** k for k in range(h.numel())], dtype=torch.float64)
    low = _conv(h, h.flip(0)) / 2
    high = _conv(h_minus, h_minus.flip(0)) / 2
    bank = torch.zeros(BANDS, 1, dtype=torch.float64)
    bank[0, 0] = 1.0
    for band in range(1, BANDS):
        stuffed = torch.zeros(BANDS, 2 * bank.shape[1] - 1, dtype=torch.float64)
        stuffed[:, ::2] = bank
        bank = torch.stack([_conv(row, low) for row in stuffed])
        start = (bank.shape[1] - high.numel()) // 2
        bank[band, start:start + high.numel()] += high
    return bank


def band_gains(raw: torch.Tensor) -> torch.Tensor:
    """[N, 4] gains from [N, 4] raw per-band gains t_b (1 = unchanged): band by band, the vector
    (1, .., t_b, .., 1) is divided by sqrt(sum(EXPECTED_POWER * vector^2)) and multiplied in."""
    power = torch.tensor(EXPECTED_POWER, dtype=raw.dtype, device=raw.device)
    gains = torch.ones_like(raw)
    for band in range(BANDS):
        vector = torch.ones_like(raw)
        vector[:, band] = raw[:, band]
        gains = gains * vector / (power * vector.square()).sum(dim=1, keepdim=True).sqrt()
    return gains


def apply_band_filter(images: torch.Tensor, gains: torch.Tensor) -> torch.Tensor:
    """Filter each image with `gains @ bank` (43 symmetric taps) along x, then along y, after
    reflection padding by 21; the same filter for every channel of an image."""
    n, c, h, w = images.shape
    taps = (gains.double().cpu() @ filter_bank()).to(images.dtype).to(images.device)  # [N, 43]
    half = taps.shape[1] // 2
    kernel = taps.repeat_interleave(c, dim=0)  # [N * C, 43]
    flat = reflect_pad(images, half, half, half, half).reshape(1, n * c, h + 2 * half, w + 2 * half)
    flat = F.conv2d(flat, kernel[:, None, None, :], groups=n * c)
    flat = F.conv2d(flat, kernel[:, None, :, None], groups=n * c)
    return flat.reshape(n, c, h, w)


def add_noise(images: torch.Tensor, sigma: torch.Tensor, draw: torch.Tensor) -> torch.Tensor:
    """images + sigma * draw, `sigma` per image [N], `draw` standard normal like `images`."""
    return images + sigma.to(images)[:, None, None, None] * draw


def cutout_mask(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[N, 1, H, W] multiplier: 0 inside each image's box (centre x, centre y, width, height as
    fractions of the size, a pixel belonging to it when its centre is strictly inside), else 1."""
    boxes = boxes.float()
    xs = (torch.arange(width, dtype=torch.float32) + 0.5) / width
    ys = (torch.arange(height, dtype=torch.float32) + 0.5) / height
    out_x = (xs[None, :] - boxes[:, 0:1]).abs() >= boxes[:, 2:3] / 2  # [N, W]
    out_y = (ys[None, :] - boxes[:, 1:2]).abs() >= boxes[:, 3:4] / 2  # [N, H]
    return (out_x[:, None, None, :] | out_y[:, None, :, None]).float()
