"""`classify prepare SOURCE --out DIR`: flags -> PrepareConfig -> prepare_dataset."""

from __future__ import annotations

import sys

import click

from classify.core.clitools import user_errors


@click.command("prepare")
@click.argument("source")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Prepared data folder to write.")
@click.option("--val", default=0.15, show_default=True, type=float, help="Validation fraction per class.")
@click.option("--test", default=0.20, show_default=True, type=float, help="Test fraction per class.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the split shuffle.")
@click.option("--minority-class", default=None, help="Class to make scarce with --minority-fraction.")
@click.option("--minority-fraction", default=1.0, show_default=True, type=float,
              help="Fraction of the minority class's train images to keep; the rest go to split 'unused'.")
@click.option("--elpv-threshold", default=0.5, show_default=True, type=float,
              help="ELPV only: defect probability at or above which a cell is 'defective'.")
@click.option("--force", is_flag=True, help="Replace an existing, different manifest in --out.")
@click.option("--max-pixels", default=40_000_000, show_default=True, type=int,
              help="Refuse images of more pixels (width x height) than this, from their header, before decoding.")
@user_errors
def prepare(source: str, out: str, val: float, test: float, seed: int, minority_class: str | None,
            minority_fraction: float, elpv_threshold: float, force: bool, max_pixels: int) -> None:
    """Build a prepared data folder from SOURCE: folder:PATH, csv:FILE or elpv.

    Writes manifest.csv (one row per usable image with its split), classes.json and
    report.md (counts, duplicates, rejected files with reasons).
    """
    from classify.data.aspect import aspect_line
    from classify.data.prepare import PrepareConfig, prepare_dataset

    cfg = PrepareConfig(source=source, out=out, val=val, test=test, seed=seed, minority_class=minority_class,
                        minority_fraction=minority_fraction, elpv_threshold=elpv_threshold, force=force,
                        max_pixels=max_pixels)
    # A bar only on a terminal: in logs and CI it would be carriage-return noise.
    result = prepare_dataset(cfg, show_progress=sys.stderr.isatty())
    for label, per in result.counts.items():
        click.echo(f"{label}: " + ", ".join(f"{s} {n}" for s, n in per.items()))
    click.echo(f"{result.rows} images in {result.out / 'manifest.csv'}; {result.rejected} rejected "
               f"(reasons in {result.out / 'report.md'})")
    click.echo(aspect_line(result.aspect))
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
