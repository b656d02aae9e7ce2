"""Recipes: the config a run resolves to, what a GAN learns from, and the stages it runs.

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

`resolve_config` turns the command line's flags into the run's config: dataclass defaults <
preset (`gen.train.presets`) < the `--resume-from` source's architecture < explicit flags.
How a source is read and copied into the networks (transfer): `gen.train.setup`. This module
sits on top of the package: the trainer runs each stage and knows nothing of recipes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from classify.core import clitools
from classify.core.errors import UserError
from classify.core.fileio import atomic_write_json
from classify.core.runlock import folder_lock
from classify.data.manifest import refuse_output_in_prepared
from gen.train.config import GanTrainConfig, as_stored, check_resume_config
from gen.train.presets import PRESETS, preset_fields
from gen.train.setup import adopted_fields, local_source, read_source
from gen.train.snapshot import ResumePoint, list_snapshots
from gen.train.trainer import train_gan

# FreezeD's default when the recipe fine-tunes and --freeze-d is not given: the first (highest
# resolution) discriminator blocks keep their pre-trained low-level features.
TRANSFER_FREEZE_D = 2
DONE = "stage_done.json"


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


def _run_stages(cfg: GanTrainConfig, log: Callable[[str], None],
                resume: ResumePoint | None) -> dict[str, Any]:
    stages = plan_stages(cfg)
    result: dict[str, Any] = {}
    for stage in stages[:-1]:
        result = _run_earlier_stage(stage, log)
        if result["status"] != "done":
            return result
    final = stages[-1]
    if len(stages) > 1:
        # The fine-tune starts where pre-training ended, its ADA p too. Applied on a resume as
        # well (the pre-trained file does not change), so the config matches the snapshot's.
        source = Path(final.resume_from)
        final = dataclasses.replace(final, **adopted_fields(read_source(source), {}, str(source)))
    return train_gan(final, log=log, resume=resume)


def _run_earlier_stage(stage: GanTrainConfig, log) -> dict[str, Any]:
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
    snaps = list_snapshots(out)
    if not snaps:
        raise UserError(f"{out}: the stage finished without a snapshot; delete the folder and rerun")
    tmp = out / ".final.pt.tmp"
    shutil.copyfile(snaps[-1], tmp)
    tmp.replace(out / "final.pt")
    atomic_write_json(out / DONE, {**result, "final": "final.pt", "from": snaps[-1].name})


def resolve_config(overrides: dict[str, Any], base: dict[str, Any] | None = None,
                   snapshot: Any = "snapshot") -> GanTrainConfig:
    """Build the run's config from a preset plus explicit flags (`overrides`, no Nones).

    With `base` (the config stored in the `snapshot` being resumed) the preset is not
    re-applied: the snapshot's values stand, flags may change only the fields listed in
    `gen.train.config.RESUMABLE_CHANGES`, and anything else is a clear error.
    """
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if base is not None:
        base = as_stored(base)
        merged = dict(base, **overrides)
        check_resume_config(base, merged, snapshot)
        return GanTrainConfig.from_dict(merged)
    preset = overrides.get("preset", "auto")
    gpus = int(overrides.get("gpus", 1))
    adopted = _adopted(overrides)
    res = int(overrides.get("res", 0)) or int(adopted.get("res", 0)) or _preset_res(preset)
    # dataclass defaults < preset < the transfer source's architecture < explicit flags
    merged = dict(GanTrainConfig().to_dict(), **preset_fields(preset, res, gpus))
    merged.update(adopted)
    merged.update(overrides)
    device = str(merged.get("device", "cpu"))
    if "precision" not in overrides:
        merged["precision"] = default_precision(device)
    if "channels_last" not in overrides:
        merged["channels_last"] = default_channels_last(device)
    if "keep_freed_memory" not in overrides:
        # On a CPU the step's own allocations otherwise cost ~2% of it in page faults
        # (classify.core.memory); on CUDA the host allocations are few and small.
        merged["keep_freed_memory"] = device == "cpu"
    return GanTrainConfig.from_dict(merged)


def default_precision(device: str) -> str:
    """bf16 on the top resolutions on CPUs with native bf16 (AVX512-BF16/AMX), where it measured
    faster: x1.08 at 32², x1.20 at 64², x2.21 at 128² (docs/BENCHMARKS.md). fp32 elsewhere: where
    bf16 would be emulated it is slower, and on the H100 the engine's bf16 measured x0.69-0.76 of
    fp32+TF32 at 64²-128², so CUDA keeps fp32 until a faster bf16 is measured there."""
    if device == "cpu" and clitools.cpu_native_bf16():  # through the module: a test stands in another CPU
        return "bf16"
    return "fp32"


def default_channels_last(device: str) -> bool:
    """channels_last on CPUs with AVX512, where oneDNN's convolutions run faster in it: the
    training step x1.27 on an AVX512 Xeon; on an AMD EPYC without AVX512 it measured x0.87, so
    it stays off there, and on CUDA, where it has not been measured (docs/BENCHMARKS.md)."""
    return device == "cpu" and bool(clitools.cpu_avx512())  # through the module: tests stand in a CPU


def _adopted(overrides: dict[str, Any]) -> dict[str, Any]:
    """A new run from --resume-from takes the source's architecture (and ADA p); a URL is
    downloaded first and the run records the local copy."""
    if not overrides.get("resume_from"):
        return {}
    overrides["resume_from"] = local_source(overrides["resume_from"])
    return adopted_fields(read_source(Path(overrides["resume_from"])), overrides, overrides["resume_from"])


def _preset_res(preset: str) -> int:
    # The preset's own resolution when it has one (cpu-tiny), else the dataclass default.
    return int(PRESETS[preset](64, 1).get("res", GanTrainConfig().res))
