"""Building what the loop needs: device, networks, loss, ADA, transfer-learning weights.

Kept apart from the loop so that gen/train/trainer.py reads as the training schedule only.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from classify.core.errors import UserError
from gen.train.config import GanTrainConfig

# Label-dependent layers: their shapes change with the class count, so a transfer between
# different class counts re-initialises them. G: the label embedding and the first mapping
# FC (its input grows by w_dim with a label). D: its label mapping and the output FC.
LABEL_LAYERS = {"G": ("mapping.embed.", "mapping.fc0."), "D": ("mapping.", "b4.out.")}


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
    if cfg.aug != "none":
        pipe = AugmentPipe(num_channels=channels).train().requires_grad_(False).to(device)
        pipe.p.copy_(torch.as_tensor(cfg.p))
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


def _read_transfer_source(path: Path) -> dict[str, dict[str, torch.Tensor]]:
    """State dicts {G, D?, G_ema} from our .pt / .safetensors or a reference .pkl."""
    if not path.is_file():
        raise UserError(f"--resume-from {path} does not exist; pass a .pt snapshot, a .safetensors generator or a .pkl")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        g = load_file(str(path))
        return {"G": g, "G_ema": g}
    if suffix == ".pt":
        from gen.train.snapshot import load_snapshot

        snap = load_snapshot(path)
        return {k: snap[k] for k in ("G", "D", "G_ema")}
    if suffix == ".pkl":
        from stylegan2_ada.pkl.importer import load_reference_pkl

        ckpt = load_reference_pkl(path)  # restricted unpickler: executes nothing from the file
        found = {"G": ckpt.G_state, "D": ckpt.D_state, "G_ema": ckpt.G_ema_state}
        return {k: v for k, v in found.items() if v is not None}
    raise UserError(f"--resume-from {path}: unknown file type {suffix!r}; use .pt, .safetensors or .pkl")


def _copy_matching(module: torch.nn.Module, source: dict[str, torch.Tensor], label_prefixes: tuple[str, ...],
                   what: str, path: Path) -> list[str]:
    """Copy same-shaped tensors; label layers may differ (kept fresh); anything else is an error."""
    own = module.state_dict()
    reinit, bad = [], []
    for key, value in own.items():
        src = source.get(key)
        if src is not None and tuple(src.shape) == tuple(value.shape):
            value.copy_(src.to(value.dtype))
        elif key.startswith(label_prefixes):
            reinit.append(key)
        else:
            bad.append(f"{key} {tuple(value.shape)} vs {None if src is None else tuple(src.shape)}")
    if bad:
        raise UserError(
            f"--resume-from {path}: {what} does not fit this run ({bad[0]}, {len(bad)} mismatch(es)); "
            "use the same --res, channels and architecture flags as the source"
        )
    return reinit


def apply_transfer(nets: Networks, path: Path, log) -> None:
    """Initialise from another run or a reference checkpoint; says what was re-initialised."""
    states = _read_transfer_source(path)
    notes = []
    for name, module, key in (("G", nets.G, "G"), ("G_ema", nets.G_ema, "G_ema"), ("D", nets.D, "D")):
        if key not in states:
            notes.append(f"{name} kept its random init (not in the file)")
            continue
        reinit = _copy_matching(module, states[key], LABEL_LAYERS[name[0]], name, path)
        if reinit:
            notes.append(f"{name} label layers re-initialised for the new class count ({len(reinit)} tensors)")
    log(f"transfer: initialised from {path}" + ("; " + "; ".join(notes) if notes else ""))
