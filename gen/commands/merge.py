"""`gen merge-samples A B ... --out C`: thin CLI over gen.sample.merge.merge_sample_folders."""

from __future__ import annotations

import click

from gen.core.errors import user_errors


@click.command("merge-samples")
@click.argument("folders", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="New folder for the merged sample set.")
@user_errors
def merge_samples(folders: tuple[str, ...], out: str) -> None:
    """Merge sample folders of one generator per class into one set (for --synthetic-classes all)."""
    from gen.sample.merge import merge_sample_folders

    info = merge_sample_folders(list(folders), out)
    click.echo(f"merged {info['n']} samples of classes {', '.join(info['classes'])} into {out}")
