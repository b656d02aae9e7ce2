"""`classify predict`: score new, unlabelled images with a trained model.pt.

The images go through exactly the decoding `classify prepare` applies and the resize the
model was trained with (decode_image -> to_channels -> fit_square at the model's res/fit),
so a prediction here equals the score `classify eval` gives the same file. A file that does
not decode is kept in the output with its reason instead of stopping the run: one bad file
in a production batch must not hide the scores of the other thousand.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from classify.core.errors import UserError
from classify.data.images import IMAGE_SUFFIXES, ImageRejected, decode_image, fit_square, to_channels
from classify.data.manifest import printable
from classify.data.sources import is_hidden
from classify.model.checkpoint import Classifier


@dataclass
class Prediction:
    path: str
    probs: list[float] | None  # per class, in the model's class order; None when unreadable
    note: str = ""  # decoding conversions, as in manifest.csv
    error: str = ""  # why the file could not be scored


def list_images(inputs: list[str]) -> list[Path]:
    """Files as given, folders searched recursively for image files (sorted, hidden ones skipped)."""
    if not inputs:
        raise UserError("give at least one image file or folder to score")
    files: list[Path] = []
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*")
                           if p.suffix.lower() in IMAGE_SUFFIXES and not is_hidden(p, path))
            if not found:
                raise UserError(f"{path} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
            files += found
        elif path.exists() or path.is_symlink():
            files.append(path)
        else:
            raise UserError(f"{path} does not exist; give image files or folders")
    return files


def _decoded(files: list[Path], clf: Classifier) -> Iterator[tuple[np.ndarray | None, str, str]]:
    """(uint8 [C, res, res] or None, decoding note, error) per file."""
    for path in files:
        try:
            img = decode_image(path)
        except (ImageRejected, OSError) as exc:
            yield None, "", str(exc) or type(exc).__name__
            continue
        square = fit_square(to_channels(img.pixels, clf.in_chans), clf.res, clf.fit)
        yield np.ascontiguousarray(square.transpose(2, 0, 1)), img.note, ""


def predict_files(clf: Classifier, files: list[Path], batch: int = 64, progress=None,
                  tta: str = "none") -> list[Prediction]:
    """Class probabilities for every file (in input order), `batch` images per forward pass,
    test-time augmented by `tta`; `progress(n)` after each pass."""
    out: list[Prediction] = [Prediction(str(p), None) for p in files]
    pending: list[tuple[int, np.ndarray]] = []

    def flush() -> None:
        if pending:
            x = torch.from_numpy(np.stack([pixels for _, pixels in pending]))
            for (i, _), probs in zip(pending, clf.predict_proba(x, batch=batch, tta=tta).tolist()):
                if all(math.isfinite(p) for p in probs):
                    out[i].probs = probs
                else:  # a damaged model: say so rather than let NaN fall to one class
                    out[i].error = "the model gave non-finite probabilities for this image"
            if progress is not None:
                progress(len(pending))
            pending.clear()

    for i, (pixels, note, error) in enumerate(_decoded(files, clf)):
        out[i].note, out[i].error = note, error
        if pixels is not None:
            pending.append((i, pixels))
            if len(pending) == batch:
                flush()
    flush()
    return out


def decide(clf: Classifier, probs: list[float], threshold: float | None) -> str:
    """The predicted class: minority probability >= threshold for two-class models, else argmax."""
    if threshold is not None and len(clf.classes) == 2:
        pos = clf.positive_index
        return clf.classes[pos] if probs[pos] >= threshold else clf.classes[1 - pos]
    return clf.classes[int(np.argmax(probs))]


def predictions_csv(clf: Classifier, preds: list[Prediction], threshold: float | None) -> str:
    """path, predicted, score (minority probability), p_<class>..., note, error."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["path", "predicted", "score", *(f"p_{c}" for c in clf.classes), "note", "error"])
    for p in preds:
        path = printable(p.path)  # a file name that is not UTF-8 is shown with \xNN escapes
        if p.probs is None:
            writer.writerow([path, "", "", *([""] * len(clf.classes)), printable(p.note), printable(p.error)])
            continue
        writer.writerow([path, decide(clf, p.probs, threshold), f"{p.probs[clf.positive_index]:.6f}",
                         *(f"{v:.6f}" for v in p.probs), printable(p.note), ""])
    return buf.getvalue()
