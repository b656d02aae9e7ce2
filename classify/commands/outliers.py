"""`classify outliers MODEL --data DATA --out DIR`: per-class anomaly scores for mislabel review."""

from __future__ import annotations

import click

from classify.core.clitools import claim_cores, parse_device, user_errors


@click.command("outliers")
@click.argument("model", type=click.Path())
@click.option("--data", "data", required=True, type=click.Path(file_okay=False), help="Prepared data folder.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for outliers.csv/png/json.")
@click.option("--split", default="train", show_default=True, type=click.Choice(["train", "val", "test"]),
              help="Images to score; the detectors are always fitted on each class's train images.")
@click.option("--per-class", default=8, show_default=True, type=int, help="Images per class in outliers.png.")
@click.option("--seed", default=0, show_default=True, type=int, help="IsolationForest's random state.")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto.")
@user_errors
def outliers(model, data, out, split, per_class, seed, device) -> None:
    """Score every image of a split against its own class with IsolationForest and OneClassSVM
    on MODEL's penultimate features (a model.pt, its run folder or an ensemble), so the oddest
    images of each class (suspected mislabels) can be reviewed first."""
    claim_cores()  # this command owns the cores it may use (GANBALANCE_THREADS overrides)
    from classify.evaluate.outliers import OutlierConfig, run_outliers

    run_outliers(OutlierConfig(model=model, data=data, out=out, split=split, per_class=per_class,
                               device=parse_device(device), seed=seed), log=click.echo)
    click.echo(f"wrote {out}/outliers.csv, outliers.png and outliers.json")
