"""Recipes and transfer: what a GAN learns from, and which weights it starts from.

- `minority`: the rare class alone (one unconditional model of `--class`).
- `conditional`: one class-conditional model of every train class, sampled at `--class`. The
  common classes teach the domain (a cell's busbars, a surface's texture) that the rare class
  shares, through the same weights.
- `transfer`: pre-train one unconditional model on every train image (all classes pooled),
  then fine-tune it on `--class` from those weights with the first discriminator blocks frozen
  (FreezeD, Mo et al. 2020). The two runs are stages: OUT/pretrain, then OUT itself.

No recipe ever sees val or test images: every stage reads the train split only, and each
generator records the md5 of every image it saw, per class (the ablation's leak guard checks
them). A rerun of the same `gen train --recipe ...` command continues where it stopped.

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

import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from classify.core.errors import UserError
from classify.core.fileio import atomic_write_json
from classify.core.runlock import folder_lock
from classify.data.manifest import refuse_output_in_prepared
from gen.core.download import fetch, is_url
from gen.core.errors import as_user_error
from gen.train.config import GanTrainConfig
from gen.train.snapshot import ResumePoint, list_snapshots

# FreezeD's default when the recipe fine-tunes and --freeze-d is not given: the first (highest
# resolution) discriminator blocks keep their pre-trained low-level features.
TRANSFER_FREEZE_D = 2
DONE = "stage_done.json"


def training_classes(cfg: GanTrainConfig, data_classes: list[str]) -> tuple[list[str], bool]:
    """(classes the run's stage learns, pooled?) for the recipe."""
    if cfg.recipe == "conditional" or (cfg.recipe == "transfer" and cfg.stage == "pretrain"):
        return list(data_classes), cfg.recipe == "transfer"
    return list(cfg.classes), False


def plan_stages(cfg: GanTrainConfig) -> list[GanTrainConfig]:
    """The runs the recipe makes, in order (one, except transfer's pretrain + fine-tune)."""
    if cfg.recipe != "transfer" or cfg.stage == "pretrain":
        return [cfg]
    share = cfg.pretrain_share
    budget = cfg.budget_seconds
    pre = dataclasses.replace(
        cfg, stage="pretrain", out_dir=str(Path(cfg.out_dir) / "pretrain"), freeze_d=0, resume=None,
        kimg=cfg.kimg * share, budget=None if budget is None else f"{budget * share:.3f}s")
    main = dataclasses.replace(
        cfg, resume_from=str(Path(pre.out_dir) / "final.pt"),  # ignored by a resume, which has its own state
        freeze_d=cfg.freeze_d or TRANSFER_FREEZE_D, kimg=cfg.kimg * (1 - share),
        budget=None if budget is None else f"{budget * (1 - share):.3f}s")
    return [pre, main]


def run_recipe(cfg: GanTrainConfig, log: Callable[[str], None] = print,
               resume: ResumePoint | None = None) -> dict[str, Any]:
    """Run (or continue) every stage of `cfg.recipe`; returns the last stage's summary. One run per
    folder: the first process (rank 0 under torchrun) holds OUT's lock for the whole recipe."""
    refuse_output_in_prepared(cfg.out_dir)  # snapshots and grids inside the data folder would mix with it
    if os.environ.get("RANK", "0") != "0":
        return _run_stages(cfg, log, resume)
    with folder_lock(cfg.out_dir, "gen train", log):
        return _run_stages(cfg, log, resume)


def _run_stages(cfg: GanTrainConfig, log: Callable[[str], None], resume: ResumePoint | None) -> dict[str, Any]:
    from gen.train.trainer import train_gan

    stages = plan_stages(cfg)
    result: dict[str, Any] = {}
    for stage in stages[:-1]:
        result = _run_earlier_stage(stage, log, train_gan)
        if result["status"] != "done":
            return result
    final = stages[-1]
    if len(stages) > 1:
        # The fine-tune starts where pre-training ended, its ADA p too. Applied on a resume as
        # well (the pre-trained file does not change), so the config matches the snapshot's.
        from gen.train.recipes import adopted_fields, read_source

        source = Path(final.resume_from)
        final = dataclasses.replace(final, **adopted_fields(read_source(source), {}, str(source)))
    return train_gan(final, log=log, resume=resume)


def _run_earlier_stage(stage: GanTrainConfig, log, train_gan) -> dict[str, Any]:
    """A stage before the last: skipped when done, continued when it has snapshots; once done,
    its latest snapshot is copied to final.pt for the next stage's --resume-from."""
    out = Path(stage.out_dir)
    if (out / DONE).is_file():
        log(f"recipe {stage.recipe}: stage {stage.stage} done earlier ({out})")
        return json.loads((out / DONE).read_text())
    if list_snapshots(out):
        stage = dataclasses.replace(stage, resume=str(out))
    log(f"recipe {stage.recipe}: stage {stage.stage} -> {out}")
    result = train_gan(stage, log=log)
    if result["status"] == "done":
        _publish_final(out, result)
    return result


def _publish_final(out: Path, result: dict[str, Any]) -> None:
    import shutil

    snaps = list_snapshots(out)
    if not snaps:
        raise UserError(f"{out}: the stage finished without a snapshot; delete the folder and rerun")
    tmp = out / ".final.pt.tmp"
    shutil.copyfile(snaps[-1], tmp)
    tmp.replace(out / "final.pt")
    atomic_write_json(out / DONE, {**result, "final": "final.pt", "from": snaps[-1].name})


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
        raise UserError(f"--resume-from {path} does not exist; pass a .pt snapshot, a .safetensors generator, a .pkl "
                        "or an http(s) URL of one")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from gen.core.generator_file import read_generator_metadata, read_generator_weights

        # Both raise UserError for a truncated or damaged file (and NaN/inf weights).
        config, info = read_generator_metadata(path)
        g = read_generator_weights(path)
        return {"states": {"G": g, "G_ema": g}, "generator": config, "p": info.get("augment_p")}
    if suffix == ".pt":
        from gen.train.setup import network_configs
        from gen.train.snapshot import load_snapshot

        snap = load_snapshot(path)
        generator = _generator_of_snapshot(snap, network_configs)
        return {"states": {k: snap[k] for k in ("G", "D", "G_ema")}, "generator": generator,
                "p": (snap.get("ada") or {}).get("p")}
    if suffix == ".pkl":
        from stylegan2_ada.pkl.importer import load_reference_pkl

        with as_user_error():
            ckpt = load_reference_pkl(path)  # restricted unpickler: executes nothing from the file
        found = {"G": ckpt.G_state, "D": ckpt.D_state, "G_ema": ckpt.G_ema_state}
        return {"states": {k: v for k, v in found.items() if v is not None}, "generator": ckpt.G_config.to_dict(),
                "p": ckpt.augment_p}
    raise UserError(f"--resume-from {path}: unknown file type {suffix!r}; use .pt, .safetensors, .pkl or a URL")


def _generator_of_snapshot(snap: dict[str, Any], network_configs) -> dict[str, Any]:
    """The GeneratorConfig of one of our snapshots, rebuilt from its saved run config and weights."""
    from gen.train.config import GanTrainConfig, as_stored

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
            raise UserError(f"{flag} {explicit[key]} contradicts the checkpoint's {src_key} {value} ({path}); drop "
                            f"{flag}: a transferred run keeps the source's architecture")
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
        raise UserError(f"--resume-from {path}: {what} does not fit this run ({bad[0]}, {len(bad)} mismatch(es)); "
                        "the architecture is adopted from the source, so the file's weights contradict its own settings")
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
