"""`classify ablate`: flags (and/or --config ablation.toml) -> AblationConfig -> plan, run, report."""

from __future__ import annotations

import os
import signal
from contextlib import contextmanager
from pathlib import Path

import click

from classify.ablate.config import AblationConfig, train_keys
from classify.core.clitools import claim_cores, user_errors, warn_if_slow_cpu_bf16
from classify.core.configs import config_option, config_options
from classify.train.config import ClassifierTrainConfig

# The grid's axes, as their flags (singular names: --synthetic-ratio) list them in --help.
GRID_AXES = ("strategies", "models", "seeds", "synthetic_ratios", "minority_fractions", "synthetic_classes",
             "synthetic_weights", "synthetic_schedules")


def config_overrides(options: dict) -> dict:
    """The study options as AblationConfig fields (None = not given: the TOML or default stands).

    Option names are the field names; values stay as typed ("0,1,2"): AblationConfig.from_dict
    reads flags and TOML alike."""
    from classify.ablate.config import parse_samples

    out = dict(options)
    out["samples"] = parse_samples(out["samples"]) or None
    return out


@click.command("ablate")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="TOML study file; flags override its keys.")
@config_options(AblationConfig, ("data_dir", "out_dir"), none_default=True)
@config_option(AblationConfig, "samples", none_default=True, multiple=True)
@config_options(AblationConfig, GRID_AXES, none_default=True)
@config_option(AblationConfig, "minority_class", none_default=True, default_note="the rarest train class")
@config_option(AblationConfig, "device", none_default=True)
@config_option(ClassifierTrainConfig, "res", none_default=True, type=str)
@config_options(ClassifierTrainConfig, [k for k in train_keys() if k not in ("res", "res_schedule")],
                none_default=True)
@config_options(AblationConfig, ("keep_checkpoints", "max_cells"), none_default=True)
@config_option(AblationConfig, "allow_generator_leak", none_default=True, is_flag=True)
@click.option("--shard", default=None,
              help="i/n: run only slice i of n (default: SLURM array vars, else 0/1).")
@click.option("--jobs", default=1, show_default=True, type=int, help="Cells run in parallel processes.")
@click.option("--dry-run", is_flag=True, help="Print the grid and estimated cost, run nothing.")
@click.option("--no-report", is_flag=True, help="Skip writing the report after the run.")
@user_errors
def ablate(config_path, shard, jobs, dry_run, no_report, **options) -> None:
    """Train and evaluate every strategy x model x seed x ratio x fraction cell, then report."""
    claim_cores()  # this command owns the cores it may use (GANBALANCE_THREADS overrides)
    from classify.ablate.config import merge_overrides
    from classify.ablate.design import Shard
    from classify.ablate.runner import format_plan, plan_ablation
    from classify.core.errors import UserError

    base = AblationConfig.read_toml(config_path) if config_path else {}
    cfg = AblationConfig.from_dict(merge_overrides(base, config_overrides(options)),
                                   source=config_path or "command line")
    warn_if_slow_cpu_bf16(cfg.device, cfg.train["cpu_bf16"])
    if jobs < 1:
        raise UserError(f"--jobs {jobs} must be >= 1")
    chosen = Shard.parse(shard) if shard else Shard.from_env(os.environ)
    plan = plan_ablation(cfg, chosen, jobs=jobs)
    click.echo(format_plan(plan, jobs))
    if not dry_run:
        _run(plan, jobs, report=not no_report)


def _run(plan, jobs: int, report: bool) -> None:
    from classify.ablate.report import report_warnings, write_report
    from classify.ablate.runner import run_ablation
    from classify.core.errors import UserError

    out = plan.config.out_dir
    try:
        with _sigterm_as_interrupt():
            summary = run_ablation(plan, jobs=jobs, progress=click.echo)
    except KeyboardInterrupt:
        saved = len(list((Path(out) / "cells").glob("*.json")))
        click.echo(f"interrupted: {saved} finished cell(s) are kept in {out}/cells "
                   "(the running one is lost); rerun the same command to continue", err=True)
        raise SystemExit(130) from None
    click.echo(f"ran {len(summary.ran)} cell(s), skipped {len(summary.skipped)}, "
               f"failed {len(summary.failed)} in {summary.wall_time_s:.1f}s")
    if report and (summary.ran or summary.skipped):
        path = write_report(out)
        click.echo(f"report: {path}")
        for line in report_warnings(path):
            click.echo(line)
    if summary.failed:
        first, message = next(iter(summary.failed.items()))
        raise UserError(f"{len(summary.failed)} cell(s) failed (first {first}: {message}); tracebacks in "
                        f"{out}/failed/; fix the cause and rerun the same command (finished cells are kept)")


@contextmanager
def _sigterm_as_interrupt():
    """A scheduler's SIGTERM (SLURM, systemd, docker stop) ends the run like Ctrl-C does."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        old = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (an embedding app): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
