"""The ADA augmentation pipeline ("bgc": blit + geometric + colour) and the ADA p rule.

Written from Karras et al. 2020b (appendix B); what it implements is in docs/ENGINE.md, "ADA augmentation".
Every step is applied to each image independently with probability `p` (times the
step's multiplier). Geometric steps are composed into one affine matrix per image and
resampled once with the sym6 filter pair (see `augment_warp`; pure flips, quarter turns and
whole-pixel shifts are copied exactly); colour steps are composed into one 4x4 colour matrix
per image, which a grey image sees through its rows' mean. Because each step is skipped with probability 1 - p, the distribution of
augmented images still determines the distribution of clean ones for p < ~0.8, so the
augmentations do not leak into generated images.

Images are expected in the networks' range, roughly [-1, 1] (contrast scales about 0).
The pipeline is differentiable w.r.t. its input to any order (R1 needs the gradient of
a gradient). Images whose geometric matrix is the identity are passed through untouched,
so p = 0 is exactly the identity.
"""

from __future__ import annotations

import math

import torch

from . import augment_matrices as am
from .augment_warp import blit, is_blit, warp

_LN2 = math.log(2)


class AugmentPipe(torch.nn.Module):
    """ADA pipeline; `p` is a scalar tensor buffer (assign a float or a tensor to set it)."""

    def __init__(
        self,
        num_channels: int,
        xflip: float = 1, rotate90: float = 1, xint: float = 1, scale: float = 1,
        rotate: float = 1, aniso: float = 1, xfrac: float = 1,
        brightness: float = 1, contrast: float = 1, lumaflip: float = 1,
        hue: float = 1, saturation: float = 1,
        xint_max: float = 0.125, scale_std: float = 0.2, rotate_max: float = 1.0,
        aniso_std: float = 0.2, xfrac_std: float = 0.125,
        brightness_std: float = 0.2, contrast_std: float = 0.5, hue_max: float = 1.0,
        saturation_std: float = 1.0,
    ) -> None:
        super().__init__()
        if num_channels not in (1, 3, 4):
            raise ValueError(f"AugmentPipe: num_channels must be 1, 3 or 4, got {num_channels}")
        self.num_channels = num_channels
        # Multipliers on p per step; 0 disables a step.
        self.xflip, self.rotate90, self.xint, self.scale = xflip, rotate90, xint, scale
        self.rotate, self.aniso, self.xfrac = rotate, aniso, xfrac
        self.brightness, self.contrast, self.lumaflip = brightness, contrast, lumaflip
        self.hue, self.saturation = hue, saturation
        # Strengths. *_std of scale/aniso/contrast/saturation are in log2 units;
        # rotate_max/hue_max are fractions of pi; translations are fractions of the size.
        self.xint_max, self.scale_std, self.rotate_max = xint_max, scale_std, rotate_max
        self.aniso_std, self.xfrac_std = aniso_std, xfrac_std
        self.brightness_std, self.contrast_std = brightness_std, contrast_std
        self.hue_max, self.saturation_std = hue_max, saturation_std
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
        return f"num_channels={self.num_channels}, p={float(self.p):.4f}"

    # ---- random parameters ------------------------------------------------------------

    def geometric_matrices(self, n: int, width: int, height: int, device: torch.device) -> torch.Tensor:
        """[N, 3, 3] content transforms; each step is left-multiplied (applied after the last)."""
        p = float(self.p)  # read once: on a GPU every read is a host sync
        m = torch.eye(3, device=device).repeat(n, 1, 1)
        zero = torch.zeros(n, device=device)
        one = torch.ones(n, device=device)
        if self.xflip > 0:
            flip = torch.randint(2, (n,), device=device) * _chance(n, p * self.xflip, device)
            m = am.scale2d(1 - 2 * flip.float(), one) @ m
        if self.rotate90 > 0:
            k = torch.randint(4, (n,), device=device) * _chance(n, p * self.rotate90, device)
            m = am.quarter_turns(k) @ m
        if self.xint > 0:
            t = (torch.rand(n, 2, device=device) * 2 - 1) * self.xint_max
            t = t * _chance(n, p * self.xint, device)[:, None]
            # Whole pixels only, so this step on its own needs no interpolation.
            m = am.translate2d(torch.round(t[:, 0] * width), torch.round(t[:, 1] * height)) @ m
        if self.scale > 0:
            s = torch.exp2(torch.randn(n, device=device) * self.scale_std)
            s = torch.where(_chance(n, p * self.scale, device), s, one)
            m = am.scale2d(s, s) @ m
        m = self._maybe_rotate(m, n, p, device)
        if self.aniso > 0:
            s = torch.exp2(torch.randn(n, device=device) * self.aniso_std)
            s = torch.where(_chance(n, p * self.aniso, device), s, one)
            m = am.scale2d(s, 1 / s) @ m
        m = self._maybe_rotate(m, n, p, device)
        if self.xfrac > 0:
            t = torch.randn(n, 2, device=device) * self.xfrac_std
            t = torch.where(_chance(n, p * self.xfrac, device)[:, None], t, zero[:, None])
            m = am.translate2d(t[:, 0] * width, t[:, 1] * height) @ m
        return m

    def _maybe_rotate(self, m: torch.Tensor, n: int, p: float, device: torch.device) -> torch.Tensor:
        if self.rotate <= 0:
            return m
        theta = (torch.rand(n, device=device) * 2 - 1) * math.pi * self.rotate_max
        theta = torch.where(_rotation_chance(n, p * self.rotate, device), theta, torch.zeros_like(theta))
        return am.rotate2d(theta) @ m

    def colour_matrices(self, n: int, device: torch.device) -> torch.Tensor:
        """[N, 4, 4] colour transforms, the same for any channel count (`apply_colour` reads
        a grey image through the rows' mean)."""
        p = float(self.p)
        c = torch.eye(4, device=device).repeat(n, 1, 1)
        one = torch.ones(n, device=device)
        if self.brightness > 0:
            b = torch.randn(n, device=device) * self.brightness_std
            c = am.translate3d(b * _chance(n, p * self.brightness, device)) @ c
        if self.contrast > 0:
            s = torch.exp2(torch.randn(n, device=device) * self.contrast_std)
            c = am.scale3d(torch.where(_chance(n, p * self.contrast, device), s, one)) @ c
        if self.lumaflip > 0:
            flip = torch.randint(2, (n,), device=device) * _chance(n, p * self.lumaflip, device)
            c = am.luma_flip(flip) @ c
        if self.hue > 0:
            theta = (torch.rand(n, device=device) * 2 - 1) * math.pi * self.hue_max
            theta = theta * _chance(n, p * self.hue, device)
            c = am.hue_rotation(theta) @ c
        if self.saturation > 0:
            s = torch.exp2(torch.randn(n, device=device) * self.saturation_std)
            c = am.saturation(torch.where(_chance(n, p * self.saturation, device), s, one)) @ c
        return c

    # ---- application ------------------------------------------------------------------

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != self.num_channels:
            raise ValueError(
                f"AugmentPipe: expected images [N, {self.num_channels}, H, W], got {list(images.shape)}"
            )
        if float(self.p) == 0:
            # Early in ADA p sits at 0 for a while; skip the warp's work. (One host sync on
            # CUDA, small next to a training step.)
            return images
        n, _, h, w = images.shape
        # The per-image parameters are a few hundred numbers made by ~150 tiny ops: on a
        # GPU each would be a kernel launch, and launches dominate at these sizes, so draw
        # them on the host and ship the two finished matrix stacks in one copy each.
        host = torch.device("cpu")
        geom = self.geometric_matrices(n, w, h, host).to(images.device)
        colour = self.colour_matrices(n, host).to(images.device)
        return apply_colour(apply_geometric(images, geom), colour)


def _chance(n: int, prob: float, device: torch.device) -> torch.Tensor:
    """Bernoulli(prob) per image, as a bool mask [N]."""
    return torch.rand(n, device=device) < min(max(prob, 0.0), 1.0)


def _rotation_chance(n: int, prob: float, device: torch.device) -> torch.Tensor:
    # Rotation is drawn twice (around aniso); 1 - sqrt(1 - p) each keeps the chance
    # that an image is rotated at all equal to p.
    prob = min(max(prob, 0.0), 1.0)
    return torch.rand(n, device=device) < 1 - math.sqrt(1 - prob)


def apply_geometric(images: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """Warp each image by its matrix: identity images pass through bit-exact, pure pixel
    permutations (flips, quarter turns, whole-pixel shifts) are copied exactly, everything
    else is resampled through the sym6 filter pair (`augment_warp.warp`).

    `torch.where` (not indexing) keeps this free of host syncs and data-dependent shapes;
    its gradient reaches each input only through the branch that was selected.
    """
    eye = torch.eye(3, device=matrices.device)
    moved = (matrices - eye).abs().amax(dim=(1, 2)) > 0
    exact = is_blit(matrices)
    warped = torch.where(exact[:, None, None, None], blit(images, matrices), warp(images, matrices))
    return torch.where(moved[:, None, None, None], warped, images)


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
