"""`classify ensemble RUN... --out DIR`: one model.pt that averages several trained models."""

from __future__ import annotations

import click

from classify.core.clitools import claim_cores, parse_device, user_errors
from classify.core.configs import config_option, config_options
from classify.evaluate.ensemble import EnsembleConfig


@click.command("ensemble")
@click.argument("model_paths", metavar="RUNS...", nargs=-1, required=True, type=click.Path())
@config_option(EnsembleConfig, "out_dir", required=True)
@config_options(EnsembleConfig, ("combine", "data_dir", "target_recall", "device"))
@user_errors
def ensemble(model_paths, combine, device, **fields) -> None:
    """Combine RUNS (model.pt files or their run folders) into OUT/model.pt, which `classify
    eval`, `classify predict` and `gen sample --judge` accept like any model."""
    claim_cores()  # this command owns the cores it may use (GANBALANCE_THREADS overrides)
    from classify.evaluate.ensemble import build_ensemble

    r = build_ensemble(EnsembleConfig(list(model_paths), combine=combine, device=parse_device(device),
                                      **fields))
    v = r["val"]
    thr = "argmax" if r["threshold"] is None else f"{r['threshold']:.4f}"
    click.echo(f"{len(model_paths)} members, {combine}: val AP {v['average_precision']:.4f}, "
               f"ROC-AUC {v['roc_auc']:.4f}, minority F1 {v['minority_f1']:.4f} at threshold {thr}; "
               f"wrote {r['model']}")
