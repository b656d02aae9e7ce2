"""Batch augmentation on the training device: classic (kornia) and mixup/cutmix.

All functions take float images in [0, 1], shape [B, C, H, W], already on the device, so no
per-image PIL work happens during training.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ClassicLevel:
    """One strength of the `classic` strategy: every level flips and turns by quarters (cells and
    parts have no canonical orientation; on square images nothing leaves the frame), then a
    shift with mirrored borders, exposure jitter, and, above `mild`, a small warp, sensor noise
    and random erasing (half as often as the other ops)."""

    degrees: float  # affine rotation range, +-
    shift: float  # affine translation, fraction of the side
    scale: tuple[float, float] | None  # affine scale range (None: no scaling)
    brightness: float  # +- fraction
    contrast: float  # +- fraction
    noise_std: float  # 0: no sensor noise
    erase: tuple[float, float] | None  # erased area range, fraction of the image (None: no erasing)

    def ops(self, K, p: float) -> list[nn.Module]:
        ops = [
            K.RandomHorizontalFlip(p=p),
            K.RandomVerticalFlip(p=p),
            K.RandomRotation90(times=(0, 3), p=p),
            K.RandomAffine(degrees=self.degrees, translate=(self.shift, self.shift), scale=self.scale, p=p,
                           padding_mode="reflection"),
            K.RandomBrightness(brightness=(1 - self.brightness, 1 + self.brightness), p=p),
            K.RandomContrast(contrast=(1 - self.contrast, 1 + self.contrast), p=p),
        ]
        if self.noise_std > 0:
            ops.append(K.RandomGaussianNoise(mean=0.0, std=self.noise_std, p=p))
        if self.erase is not None:
            ops.append(K.RandomErasing(scale=self.erase, ratio=(0.3, 3.3), value=0.0, p=p * 0.5))
        return ops


# Strength levels of the `classic` strategy (`--classic`), each a kornia recipe for grayscale
# defect images (hue/saturation jitter is left out everywhere: it means nothing in grey).
CLASSIC_LEVELS = {
    # Orientation and exposure only: shifts of at most 3%, brightness and contrast +-10%. No
    # rotation by arbitrary angles, no scaling, no erasing: nothing that can move a small defect
    # out of the frame or cover it. The default.
    "mild": ClassicLevel(degrees=0.0, shift=0.03, scale=None, brightness=0.1, contrast=0.1, noise_std=0.0,
                         erase=None),
    # The suite's earlier default: 5 degrees, 5% shift, 0.95-1.05 scale, brightness +-15%, contrast
    # +-20%, noise std 0.02, erasing 1-5% of the image.
    "medium": ClassicLevel(degrees=5.0, shift=0.05, scale=(0.95, 1.05), brightness=0.15, contrast=0.2,
                           noise_std=0.02, erase=(0.01, 0.05)),
    # medium, harder: 15 degrees, 10% shifts, 0.9-1.1 scale, brightness +-25%, contrast +-30%,
    # noise std 0.04, erasing 2-10% of the image.
    "strong": ClassicLevel(degrees=15.0, shift=0.1, scale=(0.9, 1.1), brightness=0.25, contrast=0.3,
                           noise_std=0.04, erase=(0.02, 0.1)),
}


def classic_augment(level: str = "mild", p: float = 0.5) -> nn.Module:
    """The `classic` augmentation at strength `level`, each op applied with probability `p`."""
    import kornia.augmentation as K  # noqa: PLC0415 — kornia: heavy, only runs that augment

    if level not in CLASSIC_LEVELS:
        raise ValueError(f"unknown classic level {level!r}; choose from {', '.join(CLASSIC_LEVELS)}")
    return K.AugmentationSequential(*CLASSIC_LEVELS[level].ops(K, p))


def apply_classic(aug: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run the kornia pipeline and keep the result a valid image in [0, 1]."""
    return aug(x).clamp_(0.0, 1.0)


def mixup(x: torch.Tensor, y: torch.Tensor, alpha: float,
          gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Blend each image and its soft label with a random partner (Zhang et al. 2018)."""
    lam = float(torch.distributions.Beta(alpha, alpha).sample()) if alpha > 0 else 1.0
    perm = torch.randperm(x.shape[0], generator=gen).to(x.device)
    return lam * x + (1 - lam) * x[perm], lam * y + (1 - lam) * y[perm]


def cutmix(x: torch.Tensor, y: torch.Tensor, alpha: float,
           gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Paste a random box from a partner image; labels mix by the pasted area (Yun et al. 2019)."""
    lam = float(torch.distributions.Beta(alpha, alpha).sample()) if alpha > 0 else 1.0
    perm = torch.randperm(x.shape[0], generator=gen).to(x.device)
    h, w = x.shape[-2:]
    cut = (1.0 - lam) ** 0.5
    bh, bw = int(round(h * cut)), int(round(w * cut))
    cy = int(torch.randint(0, h, (1,), generator=gen))
    cx = int(torch.randint(0, w, (1,), generator=gen))
    y0, y1 = max(cy - bh // 2, 0), min(cy + (bh + 1) // 2, h)
    x0, x1 = max(cx - bw // 2, 0), min(cx + (bw + 1) // 2, w)
    out = x.clone()
    out[:, :, y0:y1, x0:x1] = x[perm, :, y0:y1, x0:x1]
    # The box can be clipped at the border, so the label uses the area actually pasted.
    area = (y1 - y0) * (x1 - x0) / float(h * w)
    return out, (1 - area) * y + area * y[perm]
