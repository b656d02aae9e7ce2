"""`classify report ABLATE_DIR...`: rebuild report.md/.html, results.csv/.json and plots from cells/."""

from __future__ import annotations

import click

from classify.core.clitools import user_errors


@click.command("report")
@click.argument("ablate_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder for the report; required when combining several ablation folders.")
@user_errors
def report(ablate_dirs: tuple[str, ...], out: str | None) -> None:
    """Write the ablation report from the finished cells (safe to run mid-grid).

    Several folders (e.g. one per minority fraction, each with its own GAN) are combined on one
    minority-fraction axis: prepare's fraction times each cell's.
    """
    from classify.ablate.report import report_warnings, write_report

    path = write_report(list(ablate_dirs), out)
    click.echo(f"report: {path}")
    for line in report_warnings(path):
        click.echo(line)
