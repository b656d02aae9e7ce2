"""`classify explain MODEL --data DATA --split test --out DIR` (and/or `--images FOLDER`)."""

from __future__ import annotations

import click

from classify.core.clitools import claim_cores, parse_device, user_errors


@click.command("explain")
@click.argument("model", type=click.Path())
@click.option("--data", "data", default=None, type=click.Path(file_okay=False),
              help="Prepared folder: explain the true positives, false negatives and false positives of --split.")
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "val", "test"]))
@click.option("--images", default=None, type=click.Path(file_okay=False),
              help="A `gen sample` folder (accepted vs rejected samples) or any folder of images.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for the grids, explain.csv/json.")
@click.option("--layer", default=None,
              help="Backbone layer the heatmaps read (e.g. layer3); default: the last stage whose map is >= 4x4.")
@click.option("--methods", default="gradcam,gradcam++", show_default=True,
              help="Comma list from gradcam, gradcam++ (checked by classify.evaluate.cam).")
@click.option("--per-group", default=8, show_default=True, type=int, help="Images shown per group.")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto.")
@user_errors
def explain(model, data, split, images, out, layer, methods, per_group, device) -> None:
    """Grad-CAM and Grad-CAM++ heatmaps of MODEL (a model.pt or its run folder; an ensemble is
    explained through its first member) over the images it scored, one grid per source."""
    claim_cores()  # this command owns the cores it may use (GANBALANCE_THREADS overrides)
    from classify.evaluate.explain import ExplainConfig, run_explain

    names = [m.strip() for m in methods.split(",") if m.strip()]
    run_explain(ExplainConfig(model=model, out=out, data=data, split=split, images=images, layer=layer,
                              methods=names, per_group=per_group, device=parse_device(device)), log=click.echo)
    click.echo(f"wrote {out}/explain.csv and explain.json")
