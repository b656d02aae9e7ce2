"""`classify pseudo-label MODEL --images FOLDER --threshold T --data DATA --out NEWDATA`."""

from __future__ import annotations

import click

from classify.core.clitools import claim_cores, parse_device, user_errors
from classify.core.configs import config_option, config_options
from classify.evaluate.pseudo_label import PseudoLabelConfig


@click.command("pseudo-label")
@click.argument("model_path", metavar="MODEL", type=click.Path())
@config_option(PseudoLabelConfig, "images", required=True, type=click.Path(exists=True))
@config_option(PseudoLabelConfig, "threshold")
@config_options(PseudoLabelConfig, ("data_dir", "out_dir"), required=True)
@config_options(PseudoLabelConfig, ("tta", "device"))
@user_errors
def pseudo_label(threshold, out_dir, device, **fields) -> None:
    """Add confidently labelled unlabelled images to the TRAIN split of a copy of DATA (never to val
    or test; images whose md5 is a val/test image are refused and counted in the report)."""
    claim_cores()  # this command owns the cores it may use (GANBALANCE_THREADS overrides)
    from classify.evaluate.pseudo_label import pseudo_label as run

    c = run(PseudoLabelConfig(threshold=threshold, out_dir=out_dir, device=parse_device(device), **fields))
    added = ", ".join(f"{n} {k}" for k, n in c["added"].items())
    click.echo(f"scored {c['scored']}: added {added} to train; {c['below_threshold']} below {threshold}, "
               f"{c['refused_val_test_md5']} refused (val/test md5), "
               f"{c['already_in_data']} already in the data, "
               f"{c['unreadable']} unreadable; wrote {out_dir}")
