"""`classify explain MODEL --data DATA --split test --out DIR` (and/or `--images FOLDER`)."""

from __future__ import annotations

import click

from classify.core.clitools import claim_cores, parse_device, user_errors
from classify.core.configs import config_option, config_options
from classify.evaluate.explain import ExplainConfig


@click.command("explain")
@click.argument("model_path", metavar="MODEL", type=click.Path())
@config_options(ExplainConfig, ("data_dir", "split", "images"))
@config_option(ExplainConfig, "out_dir", required=True)
@config_options(ExplainConfig, ("layer", "methods", "per_group", "device"))
@user_errors
def explain(out_dir, methods, device, **fields) -> None:
    """Grad-CAM and Grad-CAM++ heatmaps of MODEL (a model.pt or its run folder; an ensemble is
    explained through its first member) over the images it scored, one grid per source."""
    claim_cores()  # this command owns the cores it may use (GANBALANCE_THREADS overrides)
    from classify.evaluate.explain import run_explain

    names = [m.strip() for m in methods.split(",") if m.strip()]
    run_explain(ExplainConfig(out_dir=out_dir, methods=names, device=parse_device(device), **fields),
                log=click.echo)
    click.echo(f"wrote {out_dir}/explain.csv and explain.json")
