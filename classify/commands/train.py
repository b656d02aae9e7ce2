"""`classify train --data DIR --out RUN_DIR ...`: flags -> ClassifierTrainConfig -> train_classifier."""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import click

from classify.core.clitools import claim_cores, parse_device, user_errors, warn_if_slow_cpu_bf16
from classify.core.configs import config_option, config_options
from classify.core.errors import UserError
from classify.train.config import ClassifierTrainConfig, resolution_settings


def check_out_dir(out: Path, force: bool) -> None:
    """A finished run is not replaced by accident, and a data folder never receives a run.
    (With --force the old run stays whole until the new one writes its first checkpoint:
    classify.train.replace.)"""
    if (out / "manifest.csv").is_file():
        raise UserError(f"--out {out} is a prepared data folder (it has manifest.csv); "
                        "write the run elsewhere")
    if (out / "metrics.json").is_file() and not force:
        raise UserError(f"--out {out} holds a finished run (metrics.json, model.pt); "
                        "pick another --out or pass --force to replace it")


def interrupted_message(out: Path, started: float) -> str:
    model = out / "model.pt"
    if (out / "metrics.json").is_file() and not (model.is_file() and model.stat().st_mtime >= started):
        return (f"interrupted before this run's first checkpoint: the previous run in {out} is kept whole "
                "(rerun with --force to replace it)")
    kept = (f"{model} holds the best validation epoch so far (see metrics.jsonl)"
            if model.is_file() and model.stat().st_mtime >= started
            else "no epoch of this run finished, so it saved no model")
    return (f"interrupted: {kept}; the run is unfinished (no metrics.json), "
            "so the same command starts it again")


# Every TrainConfig field is an option (help and default from the dataclass); these come apart:
# --res (also a schedule: res_schedule), --device (auto, resolved here) and the plain flag
# --compile are listed last, and the CLI derives `progress` from --quiet.
_OWN_OPTIONS = ("device", "compile", "progress", "res", "res_schedule")
_REQUIRED = ("data_dir", "out_dir")


@click.command("train")
@config_options(ClassifierTrainConfig, _REQUIRED, required=True, default=None, show_default=False)
@config_options(ClassifierTrainConfig, [f.name for f in dataclasses.fields(ClassifierTrainConfig)
                                        if f.name not in _OWN_OPTIONS + _REQUIRED])
@config_option(ClassifierTrainConfig, "res", type=str)
@config_option(ClassifierTrainConfig, "device")  # `auto` (its cli_default) is resolved below
@config_option(ClassifierTrainConfig, "compile", is_flag=True)
@click.option("--quiet", is_flag=True, help="No progress bar (there is none when stderr is not a terminal).")
@click.option("--force", is_flag=True, help="Replace a finished run in --out.")
@user_errors
def train(device: str, quiet: bool, force: bool, res: str, **fields) -> None:
    """Train a classifier; keeps the best validation epoch in OUT/model.pt."""
    claim_cores()  # this command owns the cores it may use (GANBALANCE_THREADS overrides)
    from classify.train.trainer import train_classifier

    # Every other option's name is a ClassifierTrainConfig field, so the flags map onto it one to one.
    # A bar only on a terminal: redirected to a log it is carriage-return noise (metrics.jsonl has
    # the epochs).
    cfg = ClassifierTrainConfig(**fields, **resolution_settings(res), device=parse_device(device),
                                progress=not quiet and sys.stderr.isatty())
    check_out_dir(Path(cfg.out_dir), force)
    warn_if_slow_cpu_bf16(cfg.device, cfg.cpu_bf16)
    started = time.time()
    try:
        r = train_classifier(cfg)
    except KeyboardInterrupt:
        click.echo(interrupted_message(Path(cfg.out_dir), started), err=True)
        raise SystemExit(130) from None
    v = r["val"]
    # Binary runs choose the best epoch by val AP; multi-class runs by macro F1
    # (classify.train.loop.score_of).
    head = (f"val AP {v['average_precision']:.4f}, ROC-AUC {v['roc_auc']:.4f}, "
            f"minority F1 {v['minority_f1']:.4f}"
            if r["threshold"] is not None else f"val macro F1 {v['macro_f1']:.4f}, minority F1 "
            f"{v['minority_f1']:.4f}")
    click.echo(f"best epoch {r['best_epoch']}/{r['epochs_run']}: {head} at threshold "
               + ("argmax" if r["threshold"] is None else f"{r['threshold']:.4f}"))
    click.echo(f"train images: {r['n_train_real']} real + {r['n_train_synthetic']} synthetic; "
               f"{r['wall_time_s']:.1f} s; wrote {r['checkpoint']}")
