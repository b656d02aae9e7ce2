"""Discriminator, resnet architecture, with mbstd epilogue and projection conditioning
(docs/ENGINE.md, "Discriminator")."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .config import FP16_DTYPES, DiscriminatorConfig, channels_at, fp16_min_resolution
from .layers import Conv2dLayer, FullyConnectedLayer, MappingNetwork
from .ops import in_memory_format, minibatch_std, setup_filter

# Both resnet branches are scaled by sqrt(1/2) so that their sum keeps unit variance.
_RESNET_GAIN = math.sqrt(0.5)


class DiscriminatorBlock(nn.Module):
    """[fromrgb,] conv0, conv1 (down=2) plus a 1x1 down=2 skip; H -> H/2."""

    def __init__(
        self,
        in_channels: int,
        tmp_channels: int,
        out_channels: int,
        resolution: int,
        img_channels: int,
        use_fp16: bool = False,
        fp16_dtype: str = "float16",
        conv_clamp: float | None = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.img_channels = img_channels
        self.use_fp16 = use_fp16
        self.fp16_dtype = FP16_DTYPES[fp16_dtype]
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.register_buffer("resample_filter", setup_filter())
        kw = dict(conv_clamp=conv_clamp, channels_last=channels_last)
        if in_channels == 0:
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, 1, activation="lrelu", **kw)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3, activation="lrelu", **kw)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, 3, activation="lrelu", down=2, **kw)
        self.skip = Conv2dLayer(
            tmp_channels, out_channels, 1, bias=False, down=2, channels_last=channels_last
        )

    def forward(self, x: torch.Tensor | None, img: torch.Tensor, force_fp32: bool = False) -> torch.Tensor:
        dtype = self.fp16_dtype if self.use_fp16 and not force_fp32 else torch.float32
        if self.in_channels == 0:
            x = self.fromrgb(in_memory_format(img.to(dtype=dtype), self.memory_format))
        else:
            x = in_memory_format(x.to(dtype=dtype), self.memory_format)
        y = self.skip(x, gain=_RESNET_GAIN)
        x = self.conv1(self.conv0(x), gain=_RESNET_GAIN)
        return y + x


class DiscriminatorEpilogue(nn.Module):
    """b4: [fromrgb,] mbstd, 3x3 conv, fc, out, then the projection with cmap if conditional.

    `fromrgb` exists only for img_resolution == 4, where no block precedes the epilogue.
    """

    def __init__(
        self,
        in_channels: int,
        cmap_dim: int,
        img_channels: int,
        mbstd_group_size: int = 4,
        mbstd_num_channels: int = 1,
        conv_clamp: float | None = None,
        with_fromrgb: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.cmap_dim = cmap_dim
        self.mbstd_group_size = mbstd_group_size
        self.mbstd_num_channels = mbstd_num_channels
        if with_fromrgb:
            self.fromrgb = Conv2dLayer(
                img_channels, in_channels, 1, activation="lrelu", conv_clamp=conv_clamp
            )
        self.conv = Conv2dLayer(
            in_channels + mbstd_num_channels,
            in_channels,
            3,
            activation="lrelu",
            conv_clamp=conv_clamp,
        )
        self.fc = FullyConnectedLayer(in_channels * 16, in_channels, activation="lrelu")
        self.out = FullyConnectedLayer(in_channels, cmap_dim if cmap_dim > 0 else 1)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor, cmap: torch.Tensor | None) -> torch.Tensor:
        if hasattr(self, "fromrgb"):
            x = self.fromrgb(img.float())
        x = x.to(dtype=torch.float32, memory_format=torch.contiguous_format)
        if tuple(x.shape[1:]) != (self.in_channels, 4, 4):
            raise ValueError(f"epilogue: expected [N, {self.in_channels}, 4, 4], got {tuple(x.shape)}")
        if self.mbstd_num_channels > 0:
            x = minibatch_std(x, self.mbstd_group_size, self.mbstd_num_channels)
        x = self.conv(x)
        x = self.fc(x.flatten(1))
        x = self.out(x)
        if self.cmap_dim > 0:
            x = (x * cmap).sum(dim=1, keepdim=True) * (1.0 / math.sqrt(self.cmap_dim))
        return x


class Discriminator(nn.Module):
    """StyleGAN2-ADA discriminator: D(img [N, C, R, R], c [N, c_dim]) -> logits [N, 1]."""

    def __init__(self, config: DiscriminatorConfig) -> None:
        super().__init__()
        if not isinstance(config, DiscriminatorConfig):
            raise ValueError(
                f"Discriminator expects a DiscriminatorConfig, got {type(config).__name__}; "
                "use Discriminator.from_config(dict) for plain dicts"
            )
        self.config = config
        self.c_dim = config.c_dim
        self.img_resolution = config.img_resolution
        self.img_channels = config.img_channels
        log2 = config.img_resolution.bit_length() - 1
        self.block_resolutions = [2**i for i in range(log2, 2, -1)]
        ch = {
            r: channels_at(r, config.channel_base, config.channel_max) for r in self.block_resolutions + [4]
        }
        fp16_res = fp16_min_resolution(config.img_resolution, config.num_fp16_res)
        for res in self.block_resolutions:
            block = DiscriminatorBlock(
                ch[res] if res < config.img_resolution else 0,
                ch[res],
                ch[res // 2],
                resolution=res,
                img_channels=config.img_channels,
                use_fp16=config.num_fp16_res > 0 and res >= fp16_res,
                fp16_dtype=config.fp16_dtype,
                conv_clamp=config.conv_clamp,
                channels_last=config.channels_last,
            )
            setattr(self, f"b{res}", block)
        cmap_dim = config.resolved_cmap_dim()
        if config.c_dim > 0:
            self.mapping = MappingNetwork(
                z_dim=0,
                c_dim=config.c_dim,
                w_dim=cmap_dim,
                num_ws=None,
                num_layers=config.mapping_layers,
                lr_mul=config.mapping_lr_mul,
                w_avg_beta=None,
            )
        self.b4 = DiscriminatorEpilogue(
            ch[4],
            cmap_dim,
            config.img_channels,
            mbstd_group_size=config.mbstd_group_size,
            mbstd_num_channels=config.mbstd_num_channels,
            conv_clamp=config.conv_clamp,
            with_fromrgb=config.img_resolution == 4,
        )

    @classmethod
    def from_config(cls, config: DiscriminatorConfig | Mapping[str, Any]) -> Discriminator:
        """Build from a DiscriminatorConfig or its plain-dict form."""
        if not isinstance(config, DiscriminatorConfig):
            config = DiscriminatorConfig.from_dict(config)
        return cls(config)

    def _check_inputs(self, img: torch.Tensor, c: torch.Tensor | None) -> None:
        r, ch = self.img_resolution, self.img_channels
        if img.ndim != 4 or tuple(img.shape[1:]) != (ch, r, r):
            raise ValueError(f"D: images must be [N, {ch}, {r}, {r}], got {tuple(img.shape)}")
        if self.c_dim > 0 and (c is None or tuple(c.shape) != (img.shape[0], self.c_dim)):
            got = None if c is None else tuple(c.shape)
            raise ValueError(
                f"D: c must be a one-hot [{img.shape[0]}, {self.c_dim}] tensor "
                f"(the network is conditional), got {got}"
            )

    def forward(
        self, img: torch.Tensor, c: torch.Tensor | None = None, force_fp32: bool = False
    ) -> torch.Tensor:
        self._check_inputs(img, c)
        x = None
        for res in self.block_resolutions:
            x = getattr(self, f"b{res}")(x, img, force_fp32=force_fp32)
        cmap = self.mapping(None, c) if self.c_dim > 0 else None
        return self.b4(x, img, cmap)
