"""Drawing the ADA pipeline's per-image parameters: at random, or at a fixed quantile.

Each group is applied to an image with probability p times the group's multiplier, with a
parameter drawn from the group's distribution (docs/ENGINE.md, "ADA augmentation"). The
quantile mode (`quantile=q`) applies every enabled group with probability 1 and takes the
parameter that q selects, the same for every image: that makes the pipeline deterministic,
so tests and figures can compare it, group by group, with known outputs.

The draws happen on the host: they are a few hundred numbers made by ~150 tiny ops, which on
a GPU would each be a kernel launch. The finished matrices are shipped once per batch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from . import matrices as am
from .filter import band_gains

GEOMETRIC_GROUPS = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac")
COLOUR_GROUPS = ("brightness", "contrast", "lumaflip", "hue", "saturation")
IMAGE_GROUPS = ("imgfilter", "noise", "cutout")
GROUPS = GEOMETRIC_GROUPS + COLOUR_GROUPS + IMAGE_GROUPS


@dataclass(frozen=True)
class AugmentStrengths:
    """How strong each group is when it applies. Translations are fractions of the image
    size, rotations fractions of pi, *_std of multiplicative groups are in log2 units."""

    xint_max: float = 0.125
    scale_std: float = 0.2
    rotate_max: float = 1.0
    aniso_std: float = 0.2
    xfrac_std: float = 0.125
    brightness_std: float = 0.2
    contrast_std: float = 0.5
    hue_max: float = 1.0
    saturation_std: float = 1.0
    imgfilter_std: float = 1.0
    imgfilter_bands: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    noise_std: float = 0.1
    cutout_size: float = 0.5


@dataclass
class AugmentDraw:
    """One batch's parameters. A group that is off leaves its entry None.

    `g_inv` [N, 3, 3] maps output pixels to the input positions they show (centred pixel
    coordinates); `colour` [N, 4, 4] acts on (r, g, b, 1); `filter_gains` [N, 4] are the band
    gains; `noise_sigma` [N]; `cutout` [N, 4] = (centre x, centre y, width, height) as
    fractions of the size. `params` holds each group's raw parameter, [N, k]."""

    g_inv: torch.Tensor | None = None
    colour: torch.Tensor | None = None
    filter_gains: torch.Tensor | None = None
    noise_sigma: torch.Tensor | None = None
    cutout: torch.Tensor | None = None
    params: dict[str, torch.Tensor] = field(default_factory=dict)


class Sampler:
    """The random numbers of one batch of `n` images, or, in quantile mode, the values the
    quantile `q` selects (every chance then succeeds)."""

    def __init__(self, n: int, p: float, quantile: float | None = None) -> None:
        if quantile is not None and not 0.0 < quantile < 1.0:
            raise ValueError(f"AugmentPipe: the quantile must lie in (0, 1), got {quantile}")
        self.n, self.p, self.q = n, p, quantile

    def _full(self, value: float, *shape: int) -> torch.Tensor:
        return torch.full((self.n, *shape), float(value))

    def uniform(self, *shape: int) -> torch.Tensor:
        return torch.rand(self.n, *shape) if self.q is None else self._full(self.q, *shape)

    def signed_uniform(self, *shape: int) -> torch.Tensor:
        """Uniform in [-1, 1)."""
        return self.uniform(*shape) * 2 - 1

    def normal(self, *shape: int) -> torch.Tensor:
        # The quantile mode maps q through erfinv(2q - 1), the convention the reference tests
        # use; it is the normal quantile divided by sqrt 2.
        if self.q is None:
            return torch.randn(self.n, *shape)
        return self._full(torch.erfinv(torch.tensor(2 * self.q - 1.0)).item(), *shape)

    def half_normal(self) -> torch.Tensor:
        if self.q is None:
            return torch.randn(self.n).abs()
        return self._full(torch.erfinv(torch.tensor(self.q)).item())

    def integer(self, count: int) -> torch.Tensor:
        if self.q is None:
            return torch.randint(count, (self.n,))
        return self._full(min(math.floor(count * self.q), count - 1)).long()

    def chance(self, multiplier: float, rotation: bool = False) -> torch.Tensor:
        """[N] bool: whether each image gets the group. A rotation is drawn twice (around the
        anisotropic scale), each time with 1 - sqrt(1 - p), so that the chance that an image
        is rotated at all is p."""
        if self.q is not None:
            return torch.ones(self.n, dtype=torch.bool)
        prob = min(max(self.p * multiplier, 0.0), 1.0)
        if rotation:
            prob = 1 - math.sqrt(1 - prob)
        return torch.rand(self.n) < prob


def draw_geometric(s: Sampler, on: Mapping[str, float], st: AugmentStrengths, width: int, height: int,
                   params: dict) -> torch.Tensor:
    """[N, 3, 3] inverse transform; each enabled group right-multiplies its own inverse, so the
    groups act on the content in the order listed."""
    g = torch.eye(3).repeat(s.n, 1, 1)
    one = torch.ones(s.n)
    if on.get("xflip", 0) > 0:
        i = s.integer(2) * s.chance(on["xflip"])
        params["xflip"] = i[:, None].float()
        g = g @ am.scale2d(1 - 2 * i.float(), one)
    if on.get("rotate90", 0) > 0:
        i = s.integer(4) * s.chance(on["rotate90"])
        params["rotate90"] = i[:, None].float()
        g = g @ am.quarter_turns(i)
    if on.get("xint", 0) > 0:
        t = s.signed_uniform(2) * st.xint_max * s.chance(on["xint"])[:, None]
        shift = torch.stack([torch.round(t[:, 0] * width), torch.round(t[:, 1] * height)], dim=1)
        params["xint"] = torch.cat([t, shift], dim=1)
        g = g @ am.translate2d(-shift[:, 0], -shift[:, 1])
    if on.get("scale", 0) > 0:
        factor = torch.where(s.chance(on["scale"]), torch.exp2(s.normal() * st.scale_std), one)
        params["scale"] = factor[:, None]
        g = g @ am.scale2d(1 / factor, 1 / factor)
    g = _rotation(s, on, st, g, params, first=True)
    if on.get("aniso", 0) > 0:
        factor = torch.where(s.chance(on["aniso"]), torch.exp2(s.normal() * st.aniso_std), one)
        params["aniso"] = factor[:, None]
        g = g @ am.scale2d(1 / factor, factor)
    g = _rotation(s, on, st, g, params, first=False)
    if on.get("xfrac", 0) > 0:
        t = s.normal(2) * st.xfrac_std * s.chance(on["xfrac"])[:, None]
        shift = torch.stack([t[:, 0] * width, t[:, 1] * height], dim=1)
        params["xfrac"] = torch.cat([t, shift], dim=1)
        g = g @ am.translate2d(-shift[:, 0], -shift[:, 1])
    return g


def _rotation(s: Sampler, on: Mapping[str, float], st: AugmentStrengths, g: torch.Tensor, params: dict,
              first: bool) -> torch.Tensor:
    """The arbitrary rotation, drawn before and after the anisotropic scale. The output pixel
    at p shows the input at R(theta) p, so the content turns by -theta (x right, y down). In
    quantile mode the first takes (2q - 1) pi and the second none."""
    if on.get("rotate", 0) <= 0:
        return g
    theta = s.signed_uniform() * math.pi * st.rotate_max
    if not first and s.q is not None:
        theta = torch.zeros_like(theta)
    theta = theta * s.chance(on["rotate"], rotation=True)
    params["rotate" if first else "rotate_post"] = theta[:, None]
    return g @ am.rotate2d(theta)


def draw_colour(s: Sampler, on: Mapping[str, float], st: AugmentStrengths, channels: int,
                params: dict) -> torch.Tensor:
    """[N, 4, 4] colour matrix; each group left-multiplies (acts after the ones before). Hue and
    saturation turn about the grey axis, so with one channel they are skipped (no draws)."""
    c = torch.eye(4).repeat(s.n, 1, 1)
    one = torch.ones(s.n)
    if on.get("brightness", 0) > 0:
        b = s.normal() * st.brightness_std * s.chance(on["brightness"])
        params["brightness"] = b[:, None]
        c = am.translate3d(b) @ c
    if on.get("contrast", 0) > 0:
        factor = torch.where(s.chance(on["contrast"]), torch.exp2(s.normal() * st.contrast_std), one)
        params["contrast"] = factor[:, None]
        c = am.scale3d(factor) @ c
    if on.get("lumaflip", 0) > 0:
        i = s.integer(2) * s.chance(on["lumaflip"])
        params["lumaflip"] = i[:, None].float()
        c = am.luma_flip(i) @ c
    if channels > 1 and on.get("hue", 0) > 0:
        theta = s.signed_uniform() * math.pi * st.hue_max * s.chance(on["hue"])
        params["hue"] = theta[:, None]
        c = am.hue_rotation(theta) @ c
    if channels > 1 and on.get("saturation", 0) > 0:
        factor = torch.where(s.chance(on["saturation"]), torch.exp2(s.normal() * st.saturation_std), one)
        params["saturation"] = factor[:, None]
        c = am.saturation(factor) @ c
    return c


def draw_filter_gains(s: Sampler, multiplier: float, st: AugmentStrengths, params: dict) -> torch.Tensor:
    """[N, 4] raw band gains 2^(N(0, 1) std), one band after another, each with probability p
    times the multiplier times the band's own weight (a band of weight 0 keeps gain 1)."""
    raw = torch.ones(s.n, len(st.imgfilter_bands))
    for band, weight in enumerate(st.imgfilter_bands):
        gain = torch.exp2(s.normal() * st.imgfilter_std)
        if weight <= 0:
            gain = torch.ones_like(gain)
        raw[:, band] = torch.where(s.chance(multiplier * weight), gain, raw[:, band])
    bands_on = [b for b, weight in enumerate(st.imgfilter_bands) if weight > 0]
    params["imgfilter"] = raw[:, bands_on[:1]] if bands_on else torch.ones(s.n, 1)
    return band_gains(raw)


def draw(s: Sampler, on: Mapping[str, float], st: AugmentStrengths, channels: int, height: int,
         width: int) -> AugmentDraw:
    """Every enabled group's parameters for one batch, in the pipeline's order."""
    out = AugmentDraw()
    if any(on.get(name, 0) > 0 for name in GEOMETRIC_GROUPS):
        out.g_inv = draw_geometric(s, on, st, width, height, out.params)
    if any(on.get(name, 0) > 0 for name in COLOUR_GROUPS):
        out.colour = draw_colour(s, on, st, channels, out.params)
    if on.get("imgfilter", 0) > 0:
        out.filter_gains = draw_filter_gains(s, on["imgfilter"], st, out.params)
    if on.get("noise", 0) > 0:
        out.noise_sigma = s.half_normal() * st.noise_std * s.chance(on["noise"])
        out.params["noise"] = out.noise_sigma[:, None]
    if on.get("cutout", 0) > 0:
        size = torch.full((s.n, 2), st.cutout_size) * s.chance(on["cutout"])[:, None]
        out.cutout = torch.cat([s.uniform(2), size], dim=1)
        out.params["cutout"] = out.cutout
    return out
