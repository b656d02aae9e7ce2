"""`classify report ABLATE_DIR`: rebuild report.md/.html, results.csv/.json and plots from cells/."""

from __future__ import annotations

import click

from classify.clitools import user_errors


@click.command("report")
@click.argument("ablate_dir", type=click.Path(file_okay=False))
@user_errors
def report(ablate_dir: str) -> None:
    """Write the ablation report of ABLATE_DIR from its finished cells (safe to run mid-grid)."""
    from classify.report_ablation import write_report

    click.echo(f"report: {write_report(ablate_dir)}")
