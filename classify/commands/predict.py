"""`classify predict MODEL IMAGES... --out predictions.csv`: score new images with a trained model."""

from __future__ import annotations

import sys

import click

from classify.core.clitools import claim_cores, parse_device, user_errors
from classify.model.tta import TTA_MODES


@click.command("predict")
@click.argument("model", type=click.Path())
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="predictions.csv to write.")
@click.option("--threshold", default=None, type=float,
              help="Minority probability that flags an image "
                   "(two-class models; default: the validation-chosen one).")
@click.option("--batch", default=64, show_default=True, type=int, help="Images per forward pass.")
@click.option("--tta", default="none", show_default=True, type=click.Choice(TTA_MODES),
              help="Test-time augmentation: average the probabilities of the image and its flips.")
@click.option("--device", default="auto", show_default=True,
              help="cpu, cuda, cuda:N or auto (cuda when available).")
@user_errors
def predict(model, images, out, threshold, batch, tta, device) -> None:
    """Score image files or folders (searched recursively) with MODEL (a model.pt or its run folder).

    Writes one row per file: the predicted class, the minority-class score and every class
    probability; a file that does not decode keeps its row with the reason in `error`.
    """
    claim_cores()  # this command owns the cores it may use (GANBALANCE_THREADS overrides)
    from tqdm import tqdm

    from classify.core.errors import UserError
    from classify.core.fileio import atomic_write_text, refuse_output_over_inputs
    from classify.data.manifest import refuse_output_in_prepared
    from classify.evaluate.evaluation import check_threshold
    from classify.evaluate.predict import list_images, predict_files, predictions_csv
    from classify.model.loading import load_classifier

    if batch < 1:
        raise UserError(f"--batch must be at least 1, got {batch}")
    refuse_output_over_inputs(out, [model, *images])
    refuse_output_in_prepared(out)
    clf = load_classifier(model, device=parse_device(device))
    check_threshold(clf, threshold)
    files = list_images(list(images))
    thr = clf.threshold if threshold is None else threshold
    with tqdm(total=len(files), unit="img", disable=not sys.stderr.isatty()) as bar:
        preds = predict_files(clf, files, batch=batch, progress=bar.update, tta=tta)
    atomic_write_text(out, predictions_csv(clf, preds, thr))
    scored = [p for p in preds if p.probs is not None]
    flagged = sum(1 for p in scored if thr is not None and p.probs[clf.positive_index] >= thr)
    rule = f"{flagged} flagged {clf.positive_class} at threshold {thr:.4f}" if thr is not None else "argmax"
    click.echo(f"scored {len(scored)} of {len(files)} images ({rule}); "
               f"{len(files) - len(scored)} unreadable; wrote {out}")
