"""`classify ablate`: flags (and/or --config ablation.toml) -> AblationConfig -> plan, run, report."""

from __future__ import annotations

import os

import click

from classify.clitools import parse_device, user_errors, warn_if_slow_cpu_bf16

# Flags whose value is a comma list: option name -> (AblationConfig field, element type).
LIST_OPTIONS = {"strategies": ("strategies", str), "models": ("models", str), "seeds": ("seeds", int),
                "synthetic_ratio": ("synthetic_ratios", float), "minority_fraction": ("minority_fractions", float)}


def config_overrides(options: dict) -> dict:
    """The study options as AblationConfig fields (None = not given, the TOML or default stands).

    Every option is named after its field, except the comma lists (plural fields)."""
    from classify.ablate_config import parse_list, parse_samples

    out = {}
    for name, value in options.items():
        if name in LIST_OPTIONS:
            key, cast = LIST_OPTIONS[name]
            out[key] = parse_list(value, cast, "--" + name.replace("_", "-")) if value else None
        else:
            out[name] = value
    out["samples"] = parse_samples(out["samples"]) or None
    out["device"] = parse_device(out["device"]) if out["device"] else None
    return out


@click.command("ablate")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="TOML study file; flags override its keys.")
@click.option("--data", "data_dir", help="Prepared data folder (classify prepare).")
@click.option("--out", "out_dir", help="Ablation folder: cells/, report.md, report.html.")
@click.option("--samples", multiple=True, help="gen sample folder, or FRACTION=DIR per minority fraction (repeatable).")
@click.option("--strategies", help="Comma list, e.g. baseline,oversample,classic,gan_filtered,gan_filtered+classic.")
@click.option("--models", help="Comma list of models, e.g. resnet18,vgg11_bn.")
@click.option("--seeds", help="Comma list of seeds, e.g. 0,1,2.")
@click.option("--synthetic-ratio", help="Comma list of synthetic:real-minority ratios for GAN strategies.")
@click.option("--minority-fraction", help="Comma list of fractions of real minority train images to keep.")
@click.option("--minority-class", default=None, help="Minority class (default: the rarest train class).")
@click.option("--epochs", type=int)
@click.option("--res", type=int)
@click.option("--batch", type=int)
@click.option("--lr", type=float)
@click.option("--device", default=None, help="cpu, cuda, cuda:N or auto.")
@click.option("--deterministic/--no-deterministic", default=None)
@click.option("--cpu-bf16/--no-cpu-bf16", default=None,
              help="bf16 autocast on the CPU: faster only with native bf16 (AVX512-BF16, AMX).")
@click.option("--keep-checkpoints/--no-keep-checkpoints", default=None, help="Keep each cell's model.pt.")
@click.option("--max-cells", type=int, help="Refuse grids larger than this (default 500).")
@click.option("--allow-generator-leak", is_flag=True, default=None,
              help="Use sample sets whose GAN saw more real minority images than a cell allows (flagged).")
@click.option("--shard", default=None, help="i/n: run only slice i of n (default: SLURM array vars, else 0/1).")
@click.option("--jobs", default=1, show_default=True, type=int, help="Cells run in parallel processes.")
@click.option("--dry-run", is_flag=True, help="Print the grid and estimated cost, run nothing.")
@click.option("--no-report", is_flag=True, help="Skip writing the report after the run.")
@user_errors
def ablate(config_path, shard, jobs, dry_run, no_report, **options) -> None:
    """Train and evaluate every strategy x model x seed x ratio x fraction cell, then report."""
    from classify.ablate import format_plan, plan_ablation, run_ablation
    from classify.ablate_config import AblationConfig, merge_overrides
    from classify.ablate_grid import Shard
    from classify.errors import UserError
    from classify.report_ablation import write_report

    base = AblationConfig.read_toml(config_path) if config_path else {}
    cfg = AblationConfig.from_dict(merge_overrides(base, config_overrides(options)), source=config_path or "command line")
    warn_if_slow_cpu_bf16(cfg.device, cfg.cpu_bf16)
    if jobs < 1:
        raise UserError(f"--jobs {jobs} must be >= 1")
    chosen = Shard.parse(shard) if shard else Shard.from_env(os.environ)
    plan = plan_ablation(cfg, chosen, jobs=jobs)
    click.echo(format_plan(plan, jobs))
    if dry_run:
        return
    summary = run_ablation(plan, jobs=jobs, progress=click.echo)
    click.echo(f"ran {len(summary.ran)} cell(s), skipped {len(summary.skipped)}, failed {len(summary.failed)} "
               f"in {summary.wall_time_s:.1f}s")
    if not no_report and (summary.ran or summary.skipped):
        click.echo(f"report: {write_report(cfg.out_dir)}")
    if summary.failed:
        first, message = next(iter(summary.failed.items()))
        raise UserError(f"{len(summary.failed)} cell(s) failed (first {first}: {message}); "
                        f"details in {cfg.out_dir}/failed/; rerun the same command to retry them")
