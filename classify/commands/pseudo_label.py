"""`classify pseudo-label MODEL --images FOLDER --threshold T --data DATA --out NEWDATA`."""

from __future__ import annotations

import click

from classify.core.clitools import claim_cores, parse_device, user_errors
from classify.model.tta import TTA_MODES


@click.command("pseudo-label")
@click.argument("model", type=click.Path())
@click.option("--images", required=True, type=click.Path(exists=True), help="Unlabelled images (file or folder).")
@click.option("--threshold", default=0.95, show_default=True, type=float,
              help="Add an image when its most likely class has at least this probability.")
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False), help="Prepared folder to copy.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="New prepared folder to write.")
@click.option("--tta", default="none", show_default=True, type=click.Choice(TTA_MODES), help="Test-time augmentation.")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto.")
@user_errors
def pseudo_label(model, images, threshold, data_dir, out, tta, device) -> None:
    """Add confidently labelled unlabelled images to the TRAIN split of a copy of DATA (never to val
    or test; images whose md5 is a val/test image are refused and counted in the report)."""
    claim_cores()  # this command owns the cores it may use (GANBALANCE_THREADS overrides)
    from classify.evaluate.pseudo_label import PseudoLabelConfig
    from classify.evaluate.pseudo_label import pseudo_label as run

    c = run(PseudoLabelConfig(model, images, data_dir, out, threshold, parse_device(device), tta))
    added = ", ".join(f"{n} {k}" for k, n in c["added"].items())
    click.echo(f"scored {c['scored']}: added {added} to train; {c['below_threshold']} below {threshold}, "
               f"{c['refused_val_test_md5']} refused (val/test md5), {c['already_in_data']} already in the data, "
               f"{c['unreadable']} unreadable; wrote {out}")
