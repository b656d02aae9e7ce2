"""`gen pipeline --config F --out DIR`: run every step of a pipeline TOML, then write index.html."""

from __future__ import annotations

import time
from pathlib import Path

import click

from gen.core.errors import user_errors


@click.command("pipeline")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="Pipeline TOML (scripts/demo-cpu.toml, scripts/demo-gpu.toml).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder for every step.")
@click.option("--set", "assignments", multiple=True, metavar="NAME=VALUE",
              help="Replace a [vars] value of the TOML for this run (repeatable), e.g. --set seeds=0,1,2.")
@user_errors
def pipeline(config_path: str, out: str, assignments: tuple[str, ...]) -> None:
    """Run the whole suite from one TOML file; finished steps are skipped on a rerun."""
    from gen.pipeline.runner import PipelineConfig, run_pipeline
    from gen.pipeline.site import write_site_index

    config = PipelineConfig.load(config_path).with_vars(list(assignments))
    t0 = time.time()
    try:
        timings = run_pipeline(config, Path(out))
    except KeyboardInterrupt:  # Ctrl-C reaches the running step too; it saves and stops by itself
        click.echo("interrupted; rerun the same command to continue — finished steps are kept", err=True)
        raise SystemExit(130) from None
    index = write_site_index(Path(out), timings)
    click.echo(f"[pipeline] all steps done: {sum(timings.values()):.0f}s of step wall time over every "
               f"attempt (this invocation {time.time() - t0:.0f}s); report: {index.resolve()}")
