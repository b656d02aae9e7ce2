"""`gen sample RUN_DIR|G.safetensors --out SAMPLES_DIR --n N ...`: thin CLI over
gen.sample.runner.run_sample."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import click

from classify.core.clitools import claim_cores, parse_device
from classify.core.configs import config_option, config_options
from classify.core.errors import UserError
from gen.core.errors import user_errors
from gen.sample.config import SampleConfig
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
@config_option(SampleConfig, "out_dir", required=True)
@config_options(SampleConfig, ("n", "seeds", "class_name", "trunc", "snapshot", "batch", "device",
                               "precision", "judge", "inception_weights", "features", "data_dir",
                               "resize_to"))
@config_options(FilterConfig, [f.name for f in fields(FilterConfig)])
@config_option(SampleConfig, "exclude")
@user_errors
def sample(device: str, filters: str, **options) -> None:
    """Generate seeded samples, score every filter into samples.csv, write grids and index.html."""
    claim_cores()  # this command owns the cores it may use (GANBALANCE_THREADS overrides)
    from gen.sample.runner import run_sample

    # Option names are config field names (the options are built from the fields): the filter
    # settings go to FilterConfig, the rest to SampleConfig, so a new flag is one dataclass field.
    filter_fields = {f.name for f in fields(FilterConfig)}
    fcfg = FilterConfig(filters=parse_filters(filters),
                        **{k: v for k, v in options.items() if k in filter_fields})
    rest = {k: v for k, v in options.items() if k not in filter_fields}
    cfg = SampleConfig(**rest, device=parse_device(device), filters=fcfg)
    try:
        run_sample(cfg, log=click.echo)
    except KeyboardInterrupt:
        images = Path(cfg.out_dir) / "images"
        n = sum(1 for _ in images.rglob("seed*.png")) if images.is_dir() else 0
        click.echo(f"interrupted: the {n} images in {images} are kept; rerun the same command to continue "
                   "(only the missing seeds are generated)", err=True)
        raise SystemExit(130) from None
