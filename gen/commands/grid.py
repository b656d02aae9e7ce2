"""`gen grid RUN_DIR --seeds 0-15 --trunc 0.7 --out grid.png`: look at a generator without a sample set."""

from __future__ import annotations

import click

from classify.core.clitools import claim_cores, parse_device
from classify.core.errors import UserError
from gen.core.errors import user_errors


@click.command("grid")
@click.argument("generator", type=click.Path())
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PNG to write.")
@click.option("--seeds", default="0-15", show_default=True,
              help="A-B, A,B,C or 0-9,20 (at most 1024 images).")
@click.option("--trunc", type=float, default=1.0, show_default=True, help="Truncation psi (1 = none).")
@click.option("--class", "class_name", default=None,
              help="One class (default: one row per class if conditional).")
@click.option("--snapshot", default="best", show_default=True,
              help="best, latest or a kimg number (run folders).")
@click.option("--nrow", type=int, default=8, show_default=True, help="Images per row (one class).")
@click.option("--device", default="auto", show_default=True,
              help="cpu, cuda, cuda:N or auto (cuda when available).")
@user_errors
def grid(generator, out, seeds, trunc, class_name, snapshot, nrow, device) -> None:
    """Write a grid of generated images for the given seeds."""
    claim_cores()  # this command owns the cores it may use (GANBALANCE_THREADS overrides)
    from gen.sample.seed_grid import write_seed_grid

    if not str(out).lower().endswith(".png"):
        raise UserError(f"--out {out}: grids are written as PNG; name the file *.png")
    path = write_seed_grid(generator, out, seeds, trunc, class_name, snapshot, nrow, parse_device(device))
    click.echo(f"wrote {path}")
