"""Synthesis network, skip architecture (docs/ENGINE.md, "Synthesis network").

ws routing: each conv consumes the next w; each torgb reuses the w that the next block's conv0
will use, so block b_res reads ws[idx : idx + num_conv + 1] and then advances idx by num_conv.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import FP16_DTYPES, channels_at, fp16_min_resolution
from .layers import FullyConnectedLayer
from .ops import act_gain, bias_act, modulated_conv2d, setup_filter, upsample2d

NOISE_MODES = ("random", "const", "none")


def check_noise_mode(noise_mode: str) -> None:
    if noise_mode not in NOISE_MODES:
        raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")


class SynthesisLayer(nn.Module):
    """Modulated/demodulated 3x3 conv (optionally up=2) + noise + bias + lrelu + clamp.

    The conv weight carries no equalised-LR gain: demodulation removes its scale anyway.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        up: int = 1,
        conv_clamp: float | None = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.resolution = resolution
        self.up = up
        self.conv_clamp = conv_clamp
        self.padding = 1
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, 3, 3]).to(memory_format=fmt))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.register_buffer("noise_const", torch.randn([resolution, resolution]))
        self.register_buffer("resample_filter", setup_filter())

    def _noise(self, x_ref: torch.Tensor, noise_mode: str) -> torch.Tensor | None:
        if noise_mode == "random":
            n, r = x_ref.shape[0], self.resolution
            shape = [n, 1, r, r]
            return torch.randn(shape, device=x_ref.device, dtype=torch.float32) * self.noise_strength
        if noise_mode == "const":
            return self.noise_const * self.noise_strength
        return None

    def forward(
        self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random", fused_modconv: bool = True
    ) -> torch.Tensor:
        in_res = self.resolution // self.up
        if x.ndim != 4 or tuple(x.shape[1:]) != (self.in_channels, in_res, in_res):
            raise ValueError(
                f"SynthesisLayer: expected [N, {self.in_channels}, {in_res}, {in_res}], got {tuple(x.shape)}"
            )
        styles = self.affine(w)
        # lrelu(x + b) * g = lrelu(g * x + g * b) (g > 0): the activation gain rides on the
        # demodulation coefficients, the noise and the bias instead of taking a pass of its own.
        g = act_gain("lrelu")
        x = modulated_conv2d(
            x,
            self.weight,
            styles,
            noise=self._noise(x, noise_mode),
            up=self.up,
            padding=self.padding,
            resample_filter=self.resample_filter,
            fused=fused_modconv,
            out_gain=g,
        )
        return bias_act(x, self.bias * g, act="lrelu", gain=1.0, clamp=self.conv_clamp, inplace=True)


class ToRGBLayer(nn.Module):
    """Modulated 1x1 conv *without* demodulation, then bias and clamp (linear)."""

    def __init__(
        self, in_channels: int, out_channels: int, w_dim: int, conv_clamp: float | None = None
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, 1, 1]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        # Without demodulation the equalised-LR gain goes onto the styles instead.
        self.weight_gain = 1.0 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool = True) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused=fused_modconv)
        return bias_act(x, self.bias, clamp=self.conv_clamp, inplace=True)


class SynthesisBlock(nn.Module):
    """One resolution: (const | conv0 up=2), conv1, torgb; img = upsample(img) + torgb(x)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        img_channels: int,
        use_fp16: bool = False,
        fp16_dtype: str = "float16",
        conv_clamp: float | None = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.resolution = resolution
        self.use_fp16 = use_fp16
        self.fp16_dtype = FP16_DTYPES[fp16_dtype]
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.register_buffer("resample_filter", setup_filter())
        layer_kw = dict(
            w_dim=w_dim, resolution=resolution, conv_clamp=conv_clamp, channels_last=channels_last
        )
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, up=2, **layer_kw)
        self.conv1 = SynthesisLayer(out_channels, out_channels, **layer_kw)
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp)
        self.num_conv = 1 if in_channels == 0 else 2
        self.num_torgb = 1

    def forward(
        self,
        x: torch.Tensor | None,
        img: torch.Tensor | None,
        ws: torch.Tensor,
        noise_mode: str = "random",
        fused_modconv: bool = True,
        force_fp32: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        dtype = self.fp16_dtype if self.use_fp16 and not force_fp32 else torch.float32
        if self.in_channels == 0:
            x = self.const.to(dtype).unsqueeze(0).repeat(ws.shape[0], 1, 1, 1)
            x = x.to(memory_format=self.memory_format)
            x = self.conv1(x, ws[:, 0], noise_mode, fused_modconv)
        else:
            x = x.to(dtype=dtype, memory_format=self.memory_format)
            x = self.conv0(x, ws[:, 0], noise_mode, fused_modconv)
            x = self.conv1(x, ws[:, 1], noise_mode, fused_modconv)
        # The image path stays float32: it accumulates every block's contribution.
        y = self.torgb(x, ws[:, self.num_conv], fused_modconv).to(torch.float32)
        y = y.contiguous()
        img = y if img is None else upsample2d(img, self.resample_filter) + y
        return x, img


class SynthesisNetwork(nn.Module):
    """ws [N, num_ws, w_dim] -> image [N, img_channels, R, R] (raw, no tanh or clamp)."""

    def __init__(
        self,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        channel_base: int = 32768,
        channel_max: int = 512,
        num_fp16_res: int = 0,
        fp16_dtype: str = "float16",
        conv_clamp: float | None = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        log2 = img_resolution.bit_length() - 1
        self.block_resolutions = [2**i for i in range(2, log2 + 1)]
        fp16_res = fp16_min_resolution(img_resolution, num_fp16_res)
        self.num_ws = 0
        for res in self.block_resolutions:
            in_ch = channels_at(res // 2, channel_base, channel_max) if res > 4 else 0
            block = SynthesisBlock(
                in_ch,
                channels_at(res, channel_base, channel_max),
                w_dim=w_dim,
                resolution=res,
                img_channels=img_channels,
                use_fp16=num_fp16_res > 0 and res >= fp16_res,
                fp16_dtype=fp16_dtype,
                conv_clamp=conv_clamp,
                channels_last=channels_last,
            )
            self.num_ws += block.num_conv
            setattr(self, f"b{res}", block)
        self.num_ws += 1  # the last torgb's w

    def forward(
        self,
        ws: torch.Tensor,
        noise_mode: str = "random",
        fused_modconv: bool | None = None,
        force_fp32: bool = False,
    ) -> torch.Tensor:
        if ws.ndim != 3 or tuple(ws.shape[1:]) != (self.num_ws, self.w_dim):
            raise ValueError(
                f"synthesis: ws must be [N, num_ws={self.num_ws}, w_dim={self.w_dim}], got {tuple(ws.shape)}"
            )
        check_noise_mode(noise_mode)
        if fused_modconv is None:
            # Grouped conv is fastest for inference; the activation-scaling path has the
            # cheaper backward, so training uses it.
            fused_modconv = not self.training
        ws = ws.float()
        x = img = None
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            block_ws = ws[:, w_idx : w_idx + block.num_conv + block.num_torgb]
            x, img = block(x, img, block_ws, noise_mode, fused_modconv, force_fp32)
            w_idx += block.num_conv
        return img
