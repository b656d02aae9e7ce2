"""`gen sample RUN_DIR|G.safetensors --out SAMPLES_DIR --n N ...`: thin CLI over gen.sample.runner.run_sample."""

from __future__ import annotations

from pathlib import Path

import click

from classify.core.clitools import claim_cores, parse_device
from classify.core.errors import UserError
from gen.core.errors import user_errors
from gen.sample.filters import ORDER, FilterConfig


def parse_filters(text: str) -> list[str]:
    """`judge,realism` -> ['judge', 'realism']; `none` or '' -> []."""
    names = [] if text.strip().lower() in ("", "none") else [t.strip() for t in text.split(",") if t.strip()]
    bad = [n for n in names if n not in ORDER]
    if bad:
        raise UserError(f"unknown --filters {', '.join(bad)}; choose from {', '.join(ORDER)} (or none)")
    return names


@click.command("sample")
@click.argument("generator", type=click.Path())
@click.option("--out", required=True, type=click.Path(file_okay=False), help="SAMPLES_DIR to write (or resume).")
@click.option("--n", "n", type=int, default=None, help="Number of samples (seeds 0..N-1) unless --seeds is given.")
@click.option("--seeds", default=None, help="Seeds: A-B (inclusive), A,B,C or 0-9,20.")
@click.option("--class", "class_name", default=None,
              help="Class to sample; all: every class in proportion to its real train images (a conditional "
                   "generator; what --synthetic-classes all draws from); default: round-robin over the classes.")
@click.option("--trunc", type=float, default=1.0, show_default=True, help="Truncation psi.")
@click.option("--snapshot", default="best", show_default=True, help="best, latest or a kimg number (run folders).")
@click.option("--batch", type=int, default=32, show_default=True, help="Images per generator and judge pass.")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto (cuda when available).")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32", show_default=True)
@click.option("--judge", default=None, type=click.Path(), help="model.pt from `classify train` (train split only).")
@click.option("--inception-weights", default=None, type=click.Path(), help="Local Inception .pth for fid/kid.")
@click.option("--features", type=click.Choice(["judge", "inception"]), default=None,
              help="Features for realism/memorisation/metrics (default: judge if given).")
@click.option("--data", default=None, type=click.Path(), help="Data folder of the generator (default: from its info).")
@click.option("--resize-to", default=None, help="Also write samples resized to WxH (e.g. 300x300) for training.")
@click.option("--filters", "filters", default="judge,realism,memorisation,duplicates", show_default=True,
              help=f"Comma list from {', '.join(ORDER)}, or none.")
@click.option("--min-confidence", type=float, default=0.5, show_default=True,
              help="judge filter: keep samples whose judge probability for their class is at least this.")
@click.option("--max-confidence", type=float, default=None, help="Also reject 'too easy' samples above this.")
@click.option("--realism-k", type=int, default=3, show_default=True,
              help="realism filter: the k of the reals' k-nearest-neighbour radii.")
@click.option("--min-realism", type=float, default=1.0, show_default=True,
              help="realism filter: keep samples whose realism score is at least this (>= 1: inside a real's k-NN ball).")
@click.option("--memorisation-percentile", type=float, default=1.0, show_default=True,
              help="Reject samples closer to a real than this percentile of real-to-real NN distances.")
@click.option("--outlier-percentile", type=float, default=99.0, show_default=True,
              help="outlier filter: reject samples whose IsolationForest and OneClassSVM scores both exceed this "
                   "percentile of the class's real train images' own scores.")
@click.option("--stats-margin", type=float, default=0.05, show_default=True,
              help="stats filter: widen the reals' brightness/contrast/feature-distance range by this share of it.")
@click.option("--twosample-percentile", type=float, default=90.0, show_default=True,
              help="twosample filter: reject samples that look more synthetic than this percentile of the real "
                   "images (out-of-fold P(synthetic) of a pixel logistic regression).")
@click.option("--fid-select-max-drop", type=float, default=0.2, show_default=True,
              help="fid_select filter: drop at most this fraction of the samples the other filters kept.")
@click.option("--keep", type=int, default=None, help="Keep the top-K by combined judge/realism rank instead.")
@click.option("--exclude", default=None, type=click.Path(dir_okay=False),
              help="Samples ruled out by hand: one seed or sample file per line (browse.html's exclude.txt); "
                   "they are rejected as 'manual' in samples.csv and counted in the filter report.")
@user_errors
def sample(device: str, filters: str, **options) -> None:
    """Generate seeded samples, score every filter into samples.csv, write grids and index.html."""
    claim_cores()  # this command owns the cores it may use (GANBALANCE_THREADS overrides)
    from dataclasses import fields

    from gen.sample.runner import SampleConfig, run_sample

    # Option names are config field names: the filter thresholds go to FilterConfig, the rest
    # to SampleConfig, so a new flag needs only its click decorator and its dataclass field.
    filter_fields = {f.name for f in fields(FilterConfig)}
    fcfg = FilterConfig(filters=parse_filters(filters), **{k: v for k, v in options.items() if k in filter_fields})
    rest = {k: v for k, v in options.items() if k not in filter_fields}
    cfg = SampleConfig(**rest, device=parse_device(device), filters=fcfg)
    try:
        run_sample(cfg, log=click.echo)
    except KeyboardInterrupt:
        images = Path(cfg.out) / "images"
        n = sum(1 for _ in images.rglob("seed*.png")) if images.is_dir() else 0
        click.echo(f"interrupted: the {n} images in {images} are kept; rerun the same command to continue "
                   "(only the missing seeds are generated)", err=True)
        raise SystemExit(130) from None
