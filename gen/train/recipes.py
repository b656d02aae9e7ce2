"""Recipes: what a GAN learns from when the rare class has only a few hundred images.

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
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from classify.core.errors import UserError
from classify.core.fileio import atomic_write_json
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
    """Run (or continue) every stage of `cfg.recipe`; returns the last stage's summary."""
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
        from gen.train.transfer import adopted_fields, read_source

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
