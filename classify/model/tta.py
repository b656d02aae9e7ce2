"""Test-time augmentation: the views of an image batch whose class probabilities are averaged.

"none" (the image), "flip" (and its mirror image), "flips" (also upside down, and both).
Flips keep every pixel, so no defect leaves the frame; torch is not imported here so that the
command line can offer the choices without loading it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from classify.core.errors import UserError

if TYPE_CHECKING:
    import torch

TTA_MODES = ("none", "flip", "flips")


def tta_views(x: torch.Tensor, tta: str) -> list[torch.Tensor]:
    """The images a test-time-augmented prediction averages over."""
    if tta not in TTA_MODES:
        raise UserError(f"--tta {tta!r} is not one of {', '.join(TTA_MODES)}")
    views = [x]
    if tta in ("flip", "flips"):
        views.append(x.flip(3))
    if tta == "flips":
        views += [x.flip(2), x.flip(2).flip(3)]
    return views
