"""`classify outliers MODEL --data DATA --out DIR`: per-class anomaly scores for mislabel review."""

from __future__ import annotations

import click

from classify.core.clitools import claim_cores, parse_device, user_errors
from classify.core.configs import config_options
from classify.evaluate.outliers import OutlierConfig


@click.command("outliers")
@click.argument("model_path", metavar="MODEL", type=click.Path())
@config_options(OutlierConfig, ("data_dir", "out_dir"), required=True)
@config_options(OutlierConfig, ("split", "per_class", "seed", "device"))
@user_errors
def outliers(out_dir, device, **fields) -> None:
    """Score every image of a split against its own class with IsolationForest and OneClassSVM
    on MODEL's penultimate features (a model.pt, its run folder or an ensemble), so the oddest
    images of each class (suspected mislabels) can be reviewed first."""
    claim_cores()  # this command owns the cores it may use (GANBALANCE_THREADS overrides)
    from classify.evaluate.outliers import run_outliers

    run_outliers(OutlierConfig(out_dir=out_dir, device=parse_device(device), **fields), log=click.echo)
    click.echo(f"wrote {out_dir}/outliers.csv, outliers.png and outliers.json")
