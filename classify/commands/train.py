"""`classify train --data DIR --out RUN_DIR ...`: flags -> TrainConfig -> train_classifier."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from classify.clitools import parse_device, user_errors, warn_if_slow_cpu_bf16
from classify.errors import UserError


def check_out_dir(out: Path, force: bool) -> None:
    """A finished run is not replaced by accident, and a data folder never receives a run.
    (With --force the old results go only once training starts: see train.clear_results.)"""
    if (out / "manifest.csv").is_file():
        raise UserError(f"--out {out} is a prepared data folder (it has manifest.csv); write the run elsewhere")
    if (out / "metrics.json").is_file() and not force:
        raise UserError(f"--out {out} holds a finished run (metrics.json, model.pt); pick another --out or pass "
                        "--force to replace it")


def interrupted_message(out: Path, started: float) -> str:
    model = out / "model.pt"
    kept = (f"{model} holds the best validation epoch so far (see metrics.jsonl)"
            if model.is_file() and model.stat().st_mtime >= started else "no epoch of this run finished, so it saved no model")
    return f"interrupted: {kept}; the run is unfinished (no metrics.json), so the same command starts it again"


@click.command("train")
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False), help="Prepared data folder.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Run folder to write.")
@click.option("--model", default="resnet18", show_default=True, help="Registry model (see `classify models`).")
@click.option("--strategy", default="baseline", show_default=True, help="Strategy, parts joined by '+'.")
@click.option("--epochs", default=10, show_default=True, type=int, help="Passes over the train split.")
@click.option("--res", default=128, show_default=True, type=int, help="Training resolution (square).")
@click.option("--batch", default=64, show_default=True, type=int, help="Images per optimizer step.")
@click.option("--lr", default=1e-3, show_default=True, type=float, help="Peak learning rate.")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Seeds init, batch order, augmentation and the minority subsample.")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--pretrained", default=None, type=click.Path(dir_okay=False), help="Local backbone state-dict file.")
@click.option("--synthetic", "synthetic_dir", default=None, type=click.Path(file_okay=False),
              help="`gen sample` folder for the gan / gan_filtered strategies.")
@click.option("--synthetic-ratio", default=1.0, show_default=True, type=float,
              help="Synthetic images added = round(ratio x real minority train images).")
@click.option("--minority-class", default=None, help="Class to treat as minority (default: rarest in train).")
@click.option("--minority-fraction", default=1.0, show_default=True, type=float,
              help="Keep this fraction of the real minority train images (seeded).")
@click.option("--optimizer", type=click.Choice(["adamw", "sgd"]), default="adamw", show_default=True)
@click.option("--weight-decay", default=0.05, show_default=True, type=float)
@click.option("--warmup-epochs", default=1.0, show_default=True, type=float, help="Linear LR warm-up length.")
@click.option("--label-smoothing", default=0.0, show_default=True, type=float)
@click.option("--target-recall", default=None, type=float, help="Choose the threshold reaching this val recall.")
@click.option("--patience", default=0, show_default=True, type=int, help="Early-stop patience in epochs; 0 = off.")
@click.option("--fit", type=click.Choice(["crop", "pad", "stretch"]), default="crop", show_default=True)
@click.option("--amp/--no-amp", default=True, show_default=True, help="bf16 autocast (CUDA only).")
@click.option("--cpu-bf16", is_flag=True,
              help="bf16 autocast on the CPU too: faster only where the CPU has native bf16 (AVX512-BF16, AMX).")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the model (CUDA only).")
@click.option("--deterministic", is_flag=True, help="Deterministic kernels (slower; for exact reruns).")
@click.option("--quiet", is_flag=True, help="No progress bar (there is none when stderr is not a terminal).")
@click.option("--force", is_flag=True, help="Replace a finished run in --out.")
@user_errors
def train(device: str, compile_: bool, quiet: bool, force: bool, **fields) -> None:
    """Train a classifier; keeps the best validation epoch in OUT/model.pt."""
    from classify.train import TrainConfig, train_classifier

    # Every other option's name is a TrainConfig field, so the flags map onto it one to one.
    # A bar only on a terminal: redirected to a log it is carriage-return noise (metrics.jsonl has the epochs).
    cfg = TrainConfig(**fields, device=parse_device(device), compile=compile_,
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
    # Binary runs choose the best epoch by val AP; multi-class runs by macro F1 (trainloop.score_of).
    head = (f"val AP {v['average_precision']:.4f}, ROC-AUC {v['roc_auc']:.4f}, minority F1 {v['minority_f1']:.4f}"
            if r["threshold"] is not None else f"val macro F1 {v['macro_f1']:.4f}, minority F1 "
            f"{v['minority_f1']:.4f}")
    click.echo(f"best epoch {r['best_epoch']}/{r['epochs_run']}: {head} at threshold "
               + ("argmax" if r["threshold"] is None else f"{r['threshold']:.4f}"))
    click.echo(f"train images: {r['n_train_real']} real + {r['n_train_synthetic']} synthetic; "
               f"{r['wall_time_s']:.1f} s; wrote {r['checkpoint']}")
