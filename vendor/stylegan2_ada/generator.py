"""Generator = mapping network + skip-architecture synthesis network."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .config import GeneratorConfig
from .layers import MappingNetwork
from .synthesis import SynthesisNetwork


class Generator(nn.Module):
    """StyleGAN2-ADA generator. State-dict keys: `mapping.*`, `synthesis.*` as in the reference."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        if not isinstance(config, GeneratorConfig):
            raise ValueError(
                f"Generator expects a GeneratorConfig, got {type(config).__name__}; "
                "use Generator.from_config(dict) for plain dicts"
            )
        self.config = config
        self.z_dim, self.c_dim, self.w_dim = config.z_dim, config.c_dim, config.w_dim
        self.img_resolution = config.img_resolution
        self.img_channels = config.img_channels
        self.synthesis = SynthesisNetwork(
            w_dim=config.w_dim,
            img_resolution=config.img_resolution,
            img_channels=config.img_channels,
            channel_base=config.channel_base,
            channel_max=config.channel_max,
            num_fp16_res=config.num_fp16_res,
            fp16_dtype=config.fp16_dtype,
            conv_clamp=config.conv_clamp,
            channels_last=config.channels_last,
        )
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(
            z_dim=config.z_dim,
            c_dim=config.c_dim,
            w_dim=config.w_dim,
            num_ws=self.num_ws,
            num_layers=config.mapping_layers,
            lr_mul=config.mapping_lr_mul,
            w_avg_beta=config.w_avg_beta,
        )

    @classmethod
    def from_config(cls, config: GeneratorConfig | Mapping[str, Any]) -> Generator:
        """Build from a GeneratorConfig or its plain-dict form."""
        if not isinstance(config, GeneratorConfig):
            config = GeneratorConfig.from_dict(config)
        return cls(config)

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "random",
        update_emas: bool = False,
        fused_modconv: bool | None = None,
        force_fp32: bool = False,
    ) -> torch.Tensor:
        ws = self.mapping(
            z,
            c,
            truncation_psi=truncation_psi,
            truncation_cutoff=truncation_cutoff,
            update_emas=update_emas,
        )
        return self.synthesis(ws, noise_mode=noise_mode, fused_modconv=fused_modconv, force_fp32=force_fp32)
