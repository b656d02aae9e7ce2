"""Building what the loop needs: device, networks, loss, augmentation, and the weights the
networks start from when a run transfers (`--resume-from`).

Kept apart from the loop so that gen/train/trainer.py reads as the training schedule only.

Transfer (`--resume-from`): the source may be one of our snapshots (`.pt`), one of our
generator exports (`.safetensors`), a reference StyleGAN2-ADA `.pkl` (read by the engine's
restricted unpickler, which executes nothing from the file), or an http(s) URL of any of these
(downloaded once into the cache, `gen.core.download`). The new run *adopts* the source's
architecture (z/w dims, mapping depth, channel base/max, conv clamp, resolution, channels):
no architecture flags are needed, and a flag that contradicts the source is an error naming
both values. ADA's p is carried over unless `--p` is given. What was copied, re-initialised
(label layers, when the class count changes) and frozen (FreezeD) is printed and saved in
the run (`transfer.json`, and in every generator export's info).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from stylegan2_ada import AugmentPipe, Discriminator, DiscriminatorConfig, Generator, GeneratorConfig
from stylegan2_ada.augment.diffaug import DiffAugment
from stylegan2_ada.loss import StyleGAN2Loss
from stylegan2_ada.pkl.importer import load_reference_pkl

from classify.core.clitools import parse_device
from classify.core.errors import UserError
from classify.core.memory import keep_freed_memory
from gen.core.download import fetch, is_url
from gen.core.errors import as_user_error
from gen.core.generator_file import read_generator_metadata, read_generator_weights
from gen.train.config import GanTrainConfig, as_stored
from gen.train.snapshot import load_snapshot


@dataclass
class Networks:
    G: torch.nn.Module
    D: torch.nn.Module
    G_ema: torch.nn.Module
    augment_pipe: torch.nn.Module | None


def resolve_device(cfg: GanTrainConfig, rank: int) -> torch.device:
    dev = torch.device(parse_device(cfg.device))
    if dev.type == "cuda":
        if dev.index is None:  # one process per GPU: rank r uses GPU r
            dev = torch.device("cuda", rank % torch.cuda.device_count())
        torch.cuda.set_device(dev)
        # TF32 matmuls/convs: ~free speed on Ampere+, precision ample for GAN training.
        torch.backends.cuda.matmul.allow_tf32 = cfg.tf32
        torch.backends.cudnn.allow_tf32 = cfg.tf32
        torch.backends.cudnn.benchmark = True
    if dev.type == "cpu" and cfg.keep_freed_memory:
        keep_freed_memory()
    if cfg.precision == "bf16" and dev.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UserError("--precision bf16 needs a GPU with bfloat16 support; use --precision fp16 or fp32")
    return dev


def network_configs(cfg: GanTrainConfig, c_dim: int, channels: int) -> tuple[Any, Any]:
    reduced = cfg.precision != "fp32"
    common = dict(
        c_dim=c_dim, img_resolution=cfg.res, img_channels=channels, channel_base=cfg.channel_base,
        channel_max=cfg.channel_max, conv_clamp=cfg.conv_clamp,
        num_fp16_res=cfg.num_fp16_res if reduced else 0,
        fp16_dtype="bfloat16" if cfg.precision == "bf16" else "float16", channels_last=cfg.channels_last,
    )
    g_cfg = GeneratorConfig(z_dim=cfg.z_dim, w_dim=cfg.w_dim, mapping_layers=cfg.map_layers, **common)
    d_cfg = DiscriminatorConfig(mbstd_group_size=cfg.mbstd_group, **common)
    return g_cfg, d_cfg


def build_training_networks(cfg: GanTrainConfig, c_dim: int, channels: int, device: torch.device) -> Networks:
    """Fresh G, D (random init from the current torch seed), G_ema = copy of G, ADA pipe."""
    g_cfg, d_cfg = network_configs(cfg, c_dim, channels)
    G = Generator.from_config(g_cfg).train().requires_grad_(False).to(device)
    D = Discriminator.from_config(d_cfg).train().requires_grad_(False).to(device)
    G_ema = copy.deepcopy(G).eval()
    pipe = None
    if cfg.aug in ("ada", "fixed"):
        pipe = (AugmentPipe(num_channels=channels, pipeline=cfg.augpipe)
                .train().requires_grad_(False).to(device))
        pipe.p.copy_(torch.as_tensor(cfg.p))
    elif cfg.aug == "diffaug":
        pipe = DiffAugment().train().to(device)
    return Networks(G, D, G_ema, pipe)


def build_loss(cfg: GanTrainConfig, nets: Networks):
    return StyleGAN2Loss(
        nets.G, nets.D, augment_pipe=nets.augment_pipe, r1_gamma=cfg.gamma,
        style_mixing_prob=cfg.style_mixing, pl_weight=cfg.pl_weight, pl_batch_shrink=cfg.pl_batch_shrink,
        pl_decay=cfg.pl_decay,
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
    return StyleGAN2Loss(
        CompiledGenerator(nets.G), torch.compile(nets.D), augment_pipe=nets.augment_pipe, r1_gamma=cfg.gamma,
        style_mixing_prob=cfg.style_mixing, pl_weight=cfg.pl_weight, pl_batch_shrink=cfg.pl_batch_shrink,
        pl_decay=cfg.pl_decay,
    )


# --- transfer (--resume-from) ----------------------------------------------------
# Label-dependent layers: their shapes change with the class count, so a transfer between
# different class counts re-initialises them. G: the label embedding and the first mapping
# FC (its input grows by w_dim with a label). D: its label mapping and the output FC.
LABEL_LAYERS = {"G": ("mapping.embed.", "mapping.fc0."), "D": ("mapping.", "b4.out.")}
# GeneratorConfig field -> GanTrainConfig field, for the architecture a run adopts.
ADOPTED = {"z_dim": "z_dim", "w_dim": "w_dim", "mapping_layers": "map_layers", "channel_base": "channel_base",
           "channel_max": "channel_max", "conv_clamp": "conv_clamp", "img_resolution": "res",
           "img_channels": "channels"}


def local_source(resume_from: str) -> str:
    """The local file of `--resume-from` (a URL is downloaded into the cache first)."""
    return str(fetch(resume_from)) if is_url(resume_from) else resume_from


def read_source(path: Path) -> dict[str, Any]:
    """{"states": {G, D?, G_ema}, "generator": GeneratorConfig dict, "p": ADA p or None}.
    `path` is local: `local_source` first for a URL."""
    if not path.is_file():
        raise UserError(f"--resume-from {path} does not exist; "
                        "pass a .pt snapshot, a .safetensors generator, a .pkl or an http(s) URL of one")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        # Both raise UserError for a truncated or damaged file (and NaN/inf weights).
        config, info = read_generator_metadata(path)
        g = read_generator_weights(path)
        return {"states": {"G": g, "G_ema": g}, "generator": config, "p": info.get("augment_p")}
    if suffix == ".pt":
        snap = load_snapshot(path)
        generator = _generator_of_snapshot(snap)
        return {"states": {k: snap[k] for k in ("G", "D", "G_ema")}, "generator": generator,
                "p": (snap.get("ada") or {}).get("p")}
    if suffix == ".pkl":
        with as_user_error():
            ckpt = load_reference_pkl(path)  # restricted unpickler: executes nothing from the file
        found = {"G": ckpt.G_state, "D": ckpt.D_state, "G_ema": ckpt.G_ema_state}
        return {"states": {k: v for k, v in found.items() if v is not None},
                "generator": ckpt.G_config.to_dict(), "p": ckpt.augment_p}
    raise UserError(f"--resume-from {path}: unknown file type {suffix!r}; "
                    "use .pt, .safetensors, .pkl or a URL")


def _generator_of_snapshot(snap: dict[str, Any]) -> dict[str, Any]:
    """The GeneratorConfig of one of our snapshots, rebuilt from its saved run config and weights."""
    cfg = GanTrainConfig.from_dict(as_stored(snap["config"]))
    g = snap["G"]
    c_dim = g["mapping.embed.weight"].shape[1] if "mapping.embed.weight" in g else 0
    channels = g[f"synthesis.b{cfg.res}.torgb.weight"].shape[0]
    return network_configs(cfg, c_dim, channels)[0].to_dict()


def adopted_fields(source: dict[str, Any], explicit: dict[str, Any], path: str) -> dict[str, Any]:
    """The config fields a run takes from its source: the architecture (a field the user gave
    explicitly must agree) and ADA's p (unless --p was given)."""
    generator, out = source["generator"], {}
    for src_key, key in ADOPTED.items():
        value = generator.get(src_key)
        if explicit.get(key) is not None and explicit[key] != value:
            flag = "--map" if key == "map_layers" else "--" + key.replace("_", "-")
            raise UserError(f"{flag} {explicit[key]} contradicts the checkpoint's {src_key} {value} "
                            f"({path}); drop {flag}: a transferred run keeps the source's architecture")
        out[key] = value
    if explicit.get("p") is None and source.get("p") is not None:
        out["p"] = float(source["p"])
    return out


def _copy_matching(module: torch.nn.Module, source: dict[str, torch.Tensor], label_prefixes: tuple[str, ...],
                   what: str, path: Path) -> tuple[list[str], list[str]]:
    """Copy same-shaped tensors; label layers may differ (kept fresh); anything else is an error.
    Returns (copied, re-initialised) tensor names."""
    own = module.state_dict()
    copied, reinit, bad = [], [], []
    for key, value in own.items():
        src = source.get(key)
        if src is not None and tuple(src.shape) == tuple(value.shape):
            value.copy_(src.to(value.dtype))
            copied.append(key)
        elif key.startswith(label_prefixes):
            reinit.append(key)
        else:
            bad.append(f"{key} {tuple(value.shape)} vs {None if src is None else tuple(src.shape)}")
    if bad:
        raise UserError(f"--resume-from {path}: {what} does not fit this run ({bad[0]}, {len(bad)} "
                        "mismatch(es)); the architecture is adopted from the source, so the file's weights "
                        "contradict its own settings")
    return copied, reinit


def apply_transfer(nets, path: Path, freeze_d: int, log) -> dict[str, Any]:
    """Initialise `nets` from the source; says and returns what was copied, re-initialised, frozen."""
    states = read_source(path)["states"]
    report: dict[str, Any] = {"source": str(path), "copied": {}, "reinitialised": {}, "kept_random": [],
                              "frozen_d_blocks": freeze_d}
    for name, module in (("G", nets.G), ("G_ema", nets.G_ema), ("D", nets.D)):
        if name not in states:
            report["kept_random"].append(name)
            continue
        copied, reinit = _copy_matching(module, states[name], LABEL_LAYERS[name[0]], name, path)
        report["copied"][name] = len(copied)
        if reinit:
            report["reinitialised"][name] = reinit
    notes = [f"{name} {n} tensors copied" for name, n in report["copied"].items()]
    notes += [f"{name} label layers re-initialised for the new class count ({len(r)} tensors)"
              for name, r in report["reinitialised"].items()]
    notes += [f"{name} kept its random init (not in the file)" for name in report["kept_random"]]
    if freeze_d:
        notes.append(f"D's first {freeze_d} block(s) frozen (FreezeD)")
    log(f"transfer: initialised from {path}; " + "; ".join(notes))
    return report
