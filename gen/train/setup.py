"""Building what the loop needs: device, networks, loss, augmentation (transfer: gen.train.recipes).

Kept apart from the loop so that gen/train/trainer.py reads as the training schedule only.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch

from classify.core.errors import UserError
from gen.train.config import GanTrainConfig


@dataclass
class Networks:
    G: torch.nn.Module
    D: torch.nn.Module
    G_ema: torch.nn.Module
    augment_pipe: torch.nn.Module | None


def resolve_device(cfg: GanTrainConfig, rank: int) -> torch.device:
    from classify.core.clitools import parse_device

    dev = torch.device(parse_device(cfg.device))
    if dev.type == "cuda":
        if dev.index is None:  # one process per GPU: rank r uses GPU r
            dev = torch.device("cuda", rank % torch.cuda.device_count())
        torch.cuda.set_device(dev)
        # TF32 matmuls/convs: ~free speed on Ampere+, precision ample for GAN training.
        torch.backends.cuda.matmul.allow_tf32 = cfg.tf32
        torch.backends.cudnn.allow_tf32 = cfg.tf32
        torch.backends.cudnn.benchmark = True
    if cfg.precision == "bf16" and dev.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UserError("--precision bf16 needs a GPU with bfloat16 support; use --precision fp16 or fp32")
    return dev


def network_configs(cfg: GanTrainConfig, c_dim: int, channels: int) -> tuple[Any, Any]:
    from stylegan2_ada import DiscriminatorConfig, GeneratorConfig

    reduced = cfg.precision != "fp32"
    common = dict(
        c_dim=c_dim, img_resolution=cfg.res, img_channels=channels, channel_base=cfg.channel_base,
        channel_max=cfg.channel_max, conv_clamp=cfg.conv_clamp, num_fp16_res=cfg.num_fp16_res if reduced else 0,
        fp16_dtype="bfloat16" if cfg.precision == "bf16" else "float16", channels_last=cfg.channels_last,
    )
    g_cfg = GeneratorConfig(z_dim=cfg.z_dim, w_dim=cfg.w_dim, mapping_layers=cfg.map_layers, **common)
    d_cfg = DiscriminatorConfig(mbstd_group_size=cfg.mbstd_group, **common)
    return g_cfg, d_cfg


def build_training_networks(cfg: GanTrainConfig, c_dim: int, channels: int, device: torch.device) -> Networks:
    """Fresh G, D (random init from the current torch seed), G_ema = copy of G, ADA pipe."""
    from stylegan2_ada import AugmentPipe, Discriminator, Generator

    g_cfg, d_cfg = network_configs(cfg, c_dim, channels)
    G = Generator.from_config(g_cfg).train().requires_grad_(False).to(device)
    D = Discriminator.from_config(d_cfg).train().requires_grad_(False).to(device)
    G_ema = copy.deepcopy(G).eval()
    pipe = None
    if cfg.aug in ("ada", "fixed"):
        pipe = AugmentPipe(num_channels=channels, pipeline=cfg.augpipe).train().requires_grad_(False).to(device)
        pipe.p.copy_(torch.as_tensor(cfg.p))
    elif cfg.aug == "diffaug":
        from stylegan2_ada.augment.diffaug import DiffAugment

        pipe = DiffAugment().train().to(device)
    return Networks(G, D, G_ema, pipe)


def build_loss(cfg: GanTrainConfig, nets: Networks):
    from stylegan2_ada.loss import StyleGAN2Loss

    return StyleGAN2Loss(
        nets.G, nets.D, augment_pipe=nets.augment_pipe, r1_gamma=cfg.gamma, style_mixing_prob=cfg.style_mixing,
        pl_weight=cfg.pl_weight, pl_batch_shrink=cfg.pl_batch_shrink, pl_decay=cfg.pl_decay,
    )


class CompiledGenerator:
    """What the loss needs of G (mapping, synthesis, parameters) with compiled callables.

    Compiled modules cannot be differentiated twice (torch.compile has no double
    backward), so only the main phases use these; R1 and path length stay eager. The
    wrapped modules are G's own, so both views train the same weights.
    """

    def __init__(self, G: torch.nn.Module):
        self._G = G
        self.mapping = torch.compile(G.mapping)
        self.synthesis = torch.compile(G.synthesis)

    def __getattr__(self, name: str):
        return getattr(self._G, name)

    def parameters(self, recurse: bool = True):
        return self._G.parameters(recurse)


def build_main_loss(cfg: GanTrainConfig, nets: Networks, eager_loss):
    """The loss for Gmain/Dmain: a compiled view of G and D with --compile, else the eager one."""
    if not cfg.compile:
        return eager_loss
    from stylegan2_ada.loss import StyleGAN2Loss

    return StyleGAN2Loss(
        CompiledGenerator(nets.G), torch.compile(nets.D), augment_pipe=nets.augment_pipe, r1_gamma=cfg.gamma,
        style_mixing_prob=cfg.style_mixing, pl_weight=cfg.pl_weight, pl_batch_shrink=cfg.pl_batch_shrink,
        pl_decay=cfg.pl_decay,
    )
