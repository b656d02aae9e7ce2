"""`classify prepare SOURCE --out DIR`: flags -> PrepareConfig -> prepare_dataset."""

from __future__ import annotations

import sys

import click

from classify.core.clitools import user_errors
from classify.core.configs import config_option, config_options
from classify.data.prepare import PrepareConfig


@click.command("prepare")
@click.argument("source")
@config_option(PrepareConfig, "out_dir", required=True)
@config_options(PrepareConfig, ("val", "test", "seed", "minority_class", "minority_fraction",
                                "elpv_threshold"))
@config_option(PrepareConfig, "force", is_flag=True)
@config_option(PrepareConfig, "max_pixels")
@user_errors
def prepare(source: str, **fields) -> None:
    """Build a prepared data folder from SOURCE: folder:PATH, csv:FILE or elpv.

    Writes manifest.csv (one row per usable image with its split), classes.json and
    report.md (counts, duplicates, rejected files with reasons).
    """
    from classify.data.aspect import aspect_line
    from classify.data.prepare import prepare_dataset

    cfg = PrepareConfig(source=source, **fields)  # every option is a PrepareConfig field of its name
    # A bar only on a terminal: in logs and CI it would be carriage-return noise.
    result = prepare_dataset(cfg, show_progress=sys.stderr.isatty())
    for label, per in result.counts.items():
        click.echo(f"{label}: " + ", ".join(f"{s} {n}" for s, n in per.items()))
    click.echo(f"{result.rows} images in {result.out / 'manifest.csv'}; {result.rejected} rejected "
               f"(reasons in {result.out / 'report.md'})")
    click.echo(aspect_line(result.aspect))
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
