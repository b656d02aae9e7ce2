"""`classify eval MODEL --data DIR --split test`: metrics JSON, plots and a summary."""

from __future__ import annotations

from pathlib import Path

import click

from classify.core.clitools import claim_cores, parse_device, user_errors
from classify.model.tta import TTA_MODES


@click.command("eval")
@click.argument("model", type=click.Path())
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False),
              help="Prepared data folder.")
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "val", "test"]))
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Where eval.json and the plots go (default: the model's folder).")
@click.option("--threshold", default=None, type=float,
              help="Override the validation-chosen threshold (two-class models); results go to "
                   "eval_<split>_thr<T>.json so the default evaluation is kept.")
@click.option("--tta", default="none", show_default=True, type=click.Choice(TTA_MODES),
              help="Test-time augmentation: average the probabilities of the image and its flips "
                   "(results go to eval_<split>_tta<MODE>.json).")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto.")
@user_errors
def evaluate(model, data_dir, split, out_dir, threshold, tta, device) -> None:
    """Evaluate MODEL (a model.pt or its run folder) on one split of a prepared folder."""
    claim_cores()  # this command owns the cores it may use (GANBALANCE_THREADS overrides)
    from classify.core.fileio import atomic_write_json, refuse_output_over_inputs
    from classify.data.manifest import refuse_output_in_prepared
    from classify.evaluate.evaluation import evaluate_checkpoint, summary_text
    from classify.evaluate.plots import write_eval_plots

    model_path = Path(model)
    out = Path(out_dir) if out_dir else (model_path if model_path.is_dir() else model_path.parent)
    refuse_output_in_prepared(out)  # also the default: a model.pt kept inside a data folder
    refuse_output_over_inputs(out / "eval.json",
                              [model_path / "model.pt" if model_path.is_dir() else model_path])
    m = evaluate_checkpoint(model, data_dir, split=split, device=parse_device(device), threshold=threshold,
                            tta=tta)
    # A threshold experiment must not overwrite the evaluation at the validation-chosen threshold.
    suffix = "" if threshold is None else f"_thr{threshold!r}"  # repr: 0.3 and 0.3000001 stay apart
    suffix += "" if tta == "none" else f"_tta{tta}"
    name = "eval.json" if split == "test" and not suffix else f"eval_{split}{suffix}.json"
    atomic_write_json(out / name, m)
    plots = write_eval_plots(m, out, suffix)
    click.echo(summary_text(m))
    click.echo(f"wrote {out / name} and {', '.join(p.name for p in plots)}")
