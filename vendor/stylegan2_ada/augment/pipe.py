"""The ADA augmentation pipeline and the ADA p rule.

Written from Karras et al. 2020b (appendix B); what it implements is in docs/ENGINE.md, "ADA
augmentation". Every group is applied to each image independently with probability `p`
(times the group's multiplier in the chosen pipeline). In order: the geometric groups compose
into one inverse affine matrix per image, resampled once (`augment.warp`); the colour groups
into one 4x4 colour matrix, which a grey image sees through its rows' mean; then band
filtering, additive noise and cutout (`augment.filter`). Because each group is skipped with
probability 1 - p, the distribution of augmented images still determines the distribution of
clean ones for p < ~0.8, so the augmentations do not leak into generated images.

Images are expected in the networks' range, roughly [-1, 1] (contrast scales about 0).
The pipeline is differentiable w.r.t. its input to any order (R1 needs the gradient of a
gradient). At p = 0 it returns its input untouched (no warp, no draws).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from .draws import GROUPS, AugmentDraw, AugmentStrengths, Sampler, draw
from .filter import add_noise, apply_band_filter, cutout_mask
from .warp import warp

_BLIT = {"xflip": 1, "rotate90": 1, "xint": 1}
_GEOM = {"scale": 1, "rotate": 1, "aniso": 1, "xfrac": 1}
_COLOR = {"brightness": 1, "contrast": 1, "lumaflip": 1, "hue": 1, "saturation": 1}
# The named pipelines users of the method know (`--augpipe`): each maps group -> multiplier.
AUGPIPES: dict[str, dict[str, float]] = {
    "blit": _BLIT,
    "geom": _GEOM,
    "color": _COLOR,
    "filter": {"imgfilter": 1},
    "noise": {"noise": 1},
    "cutout": {"cutout": 1},
    "bg": {**_BLIT, **_GEOM},
    "bgc": {**_BLIT, **_GEOM, **_COLOR},
    "bgcf": {**_BLIT, **_GEOM, **_COLOR, "imgfilter": 1},
    "bgcfn": {**_BLIT, **_GEOM, **_COLOR, "imgfilter": 1, "noise": 1},
    "bgcfnc": {**_BLIT, **_GEOM, **_COLOR, "imgfilter": 1, "noise": 1, "cutout": 1},
}
DEFAULT_AUGPIPE = "bgc"


def augpipe_groups(pipeline: str | Mapping[str, float]) -> dict[str, float]:
    """group -> multiplier for a pipeline name or an explicit mapping (unknown names refused)."""
    if isinstance(pipeline, str):
        if pipeline not in AUGPIPES:
            raise ValueError(f"unknown augmentation pipeline {pipeline!r}; choose from {', '.join(AUGPIPES)}")
        return dict(AUGPIPES[pipeline])
    unknown = sorted(set(pipeline) - set(GROUPS))
    if unknown:
        raise ValueError(f"unknown augmentation group(s) {', '.join(unknown)}; "
                         f"choose from {', '.join(GROUPS)}")
    return {name: float(m) for name, m in pipeline.items() if m > 0}


class AugmentPipe(torch.nn.Module):
    """ADA pipeline; `p` is a scalar tensor buffer (assign a float or a tensor to set it).

    `pipeline` is a name from AUGPIPES or a {group: multiplier} mapping; `strengths` how
    strong each group is when it applies."""

    def __init__(self, num_channels: int, pipeline: str | Mapping[str, float] = DEFAULT_AUGPIPE,
                 strengths: AugmentStrengths | None = None) -> None:
        super().__init__()
        if num_channels not in (1, 3, 4):
            raise ValueError(f"AugmentPipe: num_channels must be 1, 3 or 4, got {num_channels}")
        self.num_channels = num_channels
        self.groups = augpipe_groups(pipeline)
        self.strengths = strengths or AugmentStrengths()
        self.register_buffer("p", torch.zeros([]))

    def __setattr__(self, name: str, value) -> None:
        # Let the training loop write `pipe.p = 0.3` without replacing the buffer (which
        # would lose its device and its place in the state dict).
        if name == "p" and "p" in self.__dict__.get("_buffers", {}) and not isinstance(value, torch.Tensor):
            with torch.no_grad():
                self._buffers["p"].fill_(float(value))
            return
        super().__setattr__(name, value)

    def extra_repr(self) -> str:
        return f"num_channels={self.num_channels}, groups={','.join(self.groups)}, p={float(self.p):.4f}"

    def draw(self, n: int, height: int, width: int, quantile: float | None = None) -> AugmentDraw:
        """The parameters of a batch of `n` images: random with probability p, or with every
        group on at the parameter the `quantile` selects (docs/ENGINE.md, "quantile mode")."""
        # p is read once: on a GPU every read is a host sync.
        return draw(Sampler(n, float(self.p), quantile), self.groups, self.strengths, self.num_channels,
                    height, width)

    def forward(self, images: torch.Tensor, quantile: float | None = None) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != self.num_channels:
            raise ValueError(
                f"AugmentPipe: expected images [N, {self.num_channels}, H, W], got {list(images.shape)}"
            )
        if quantile is None and float(self.p) == 0:
            # Early in ADA p sits at 0 for a while: nothing would change, so skip the warp's
            # work. (One host sync on CUDA, small next to a training step.)
            return images
        n, _, h, w = images.shape
        return apply_draw(images, self.draw(n, h, w, quantile))


def apply_draw(images: torch.Tensor, d: AugmentDraw, noise: torch.Tensor | None = None) -> torch.Tensor:
    """Apply a batch's parameters: geometric, colour, band filter, noise, cutout. `noise` is the
    standard-normal draw to use (default: a fresh one, like the images)."""
    dev = images.device
    if d.g_inv is not None:
        images = warp(images, d.g_inv.to(dev))
    if d.colour is not None:
        images = apply_colour(images, d.colour.to(dev))
    if d.filter_gains is not None:
        images = apply_band_filter(images, d.filter_gains)
    if d.noise_sigma is not None:
        images = add_noise(images, d.noise_sigma.to(dev),
                           torch.randn_like(images) if noise is None else noise)
    if d.cutout is not None:
        images = images * cutout_mask(d.cutout, images.shape[2], images.shape[3]).to(images)
    return images


def apply_colour(images: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """x' = A x + b per pixel; a 4th (alpha) channel is kept.

    One channel is a grey pixel g (g, g, g): each output channel is g times its row sum of A
    plus its b, and the grey result is their mean. So brightness adds, contrast scales, a luma
    flip negates, and hue rotation and saturation (which keep the luma axis) change nothing.
    """
    mats = matrices.to(images.dtype)
    if images.shape[1] == 1:
        gain = mats[:, :3, :3].sum(dim=2).mean(dim=1)
        offset = mats[:, :3, 3].mean(dim=1)
        return images * gain[:, None, None, None] + offset[:, None, None, None]
    rgb = torch.einsum("nij,njhw->nihw", mats[:, :3, :3], images[:, :3]) + mats[:, :3, 3, None, None]
    return torch.cat([rgb, images[:, 3:]], dim=1)


def ada_update(p, r_t, target: float, n_images: int, ada_kimg: float = 500):
    """One ADA step: p += sign(r_t - target) * n_images / (ada_kimg * 1000), floored at 0.

    `r_t` is E[sign(D(aug(real)))] over the last interval; above `target` the
    discriminator is overfitting, so augment more. Returns the same kind as `p`
    (float or tensor). No upper cap: the rule itself keeps p near where r_t = target.
    """
    step = n_images / (ada_kimg * 1000)
    if isinstance(p, torch.Tensor) or isinstance(r_t, torch.Tensor):
        p_t = torch.as_tensor(p, dtype=torch.float32)
        r = torch.as_tensor(r_t, dtype=torch.float32, device=p_t.device)
        new = (p_t + torch.sign(r - target) * step).clamp(min=0)
        return new if isinstance(p, torch.Tensor) else float(new)
    sign = (r_t > target) - (r_t < target)
    return max(p + sign * step, 0.0)
