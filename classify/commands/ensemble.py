"""`classify ensemble RUN... --out DIR`: one model.pt that averages several trained models."""

from __future__ import annotations

import click

from classify.core.clitools import claim_cores, parse_device, user_errors
from classify.model.ensemble import COMBINES


@click.command("ensemble")
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for the ensemble's model.pt.")
@click.option("--combine", default="mean", show_default=True, type=click.Choice(COMBINES),
              help="mean of the probabilities, or mean of each member's validation percentiles (rank).")
@click.option("--data", "data_dir", default=None, type=click.Path(file_okay=False),
              help="Prepared folder whose val split picks the threshold (default: the first member's data).")
@click.option("--target-recall", default=None, type=float, help="Choose the threshold reaching this val recall.")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto.")
@user_errors
def ensemble(runs, out, combine, data_dir, target_recall, device) -> None:
    """Combine RUNS (model.pt files or their run folders) into OUT/model.pt, which `classify
    eval`, `classify predict` and `gen sample --judge` accept like any model."""
    claim_cores()  # this command owns the cores it may use (GANBALANCE_THREADS overrides)
    from classify.evaluate.ensemble import EnsembleConfig, build_ensemble

    r = build_ensemble(EnsembleConfig(list(runs), out, combine, data_dir, target_recall, parse_device(device)))
    v = r["val"]
    thr = "argmax" if r["threshold"] is None else f"{r['threshold']:.4f}"
    click.echo(f"{len(runs)} members, {combine}: val AP {v['average_precision']:.4f}, ROC-AUC {v['roc_auc']:.4f}, "
               f"minority F1 {v['minority_f1']:.4f} at threshold {thr}; wrote {r['model']}")
