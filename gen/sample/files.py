"""Files of a sample set: the plan (seed → class → file), PNGs written/resumed, reals, CSV.

Resuming is per seed: a seed whose PNG is already on disk and decodes is read back instead
of generated, so a killed `gen sample` loses at most the batch in flight (each PNG is written
atomically, so a half-written file never exists).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from classify.core.errors import UserError
from classify.core.fileio import atomic_save_image, atomic_write_csv
from classify.data.dataset import open_prepared
from classify.data.sources import check_class_name

PNG_OVERHEAD = 1024  # bytes per file beyond the raw pixels, generous (headers, filesystem block)


@dataclass
class PlanRow:
    seed: int
    class_idx: int
    class_name: str
    file: str  # relative to SAMPLES_DIR; what classify trains on
    native_file: str  # relative; native resolution (the same as `file` unless --resize-to)


ALL_CLASSES = "all"


def plan(seeds: list[int], classes: list[str], class_name: str | None, resized: bool,
         class_counts: dict[str, int] | None = None) -> list[PlanRow]:
    """Which class each seed makes: `class_name` for all; 'all' in proportion to the classes' real
    train counts (`class_counts`), so the set mirrors the real class balance and every class can
    get synthetic images at the same share of its own; None round-robin over the classes."""
    if class_name is not None and class_name != ALL_CLASSES and class_name not in classes:
        raise UserError(f"unknown --class {class_name!r}; this generator makes: {', '.join(classes)} "
                        "(or all)")
    for name in classes:  # a class becomes a folder name below --out: refuse one that would leave it
        check_class_name(name, "in the generator's class list")
    if class_name == ALL_CLASSES and ALL_CLASSES in classes:
        raise UserError("this generator has a class named 'all', so --class all is ambiguous; rename the "
                        "class (classify prepare) or sample without --class (round-robin over the classes)")
    names = _assign_classes(len(seeds), classes, class_name, class_counts)
    rows = []
    for s, name in zip(seeds, names):
        native = f"images/{name}/seed{s:07d}.png"
        rows.append(PlanRow(s, classes.index(name), name,
                            native.replace("images/", "resized/", 1) if resized else native, native))
    return rows


def _assign_classes(n: int, classes: list[str], class_name: str | None,
                    counts: dict[str, int] | None) -> list[str]:
    if class_name is not None and class_name != ALL_CLASSES:
        return [class_name] * n
    if class_name is None or not counts or sum(counts.get(c, 0) for c in classes) == 0:
        return [classes[i % len(classes)] for i in range(n)]
    total = sum(counts.get(c, 0) for c in classes)
    share = {c: counts.get(c, 0) / total for c in classes}
    given = dict.fromkeys(classes, 0)
    names = []
    for i in range(n):
        # The class furthest behind its share so far: deterministic, and any prefix of the seeds
        # is balanced too (a resumed or extended set keeps its classes).
        name = max(classes, key=lambda c: (share[c] * (i + 1) - given[c], -classes.index(c)))
        given[name] += 1
        names.append(name)
    return names


def check_disk(out: Path, n_new: int, channels: int, res: int, resize: tuple[int, int] | None) -> None:
    """Refuse up front when the PNGs cannot fit, rather than fill the disk halfway through."""
    per = channels * res * res + PNG_OVERHEAD
    if resize:
        per += channels * resize[0] * resize[1] + PNG_OVERHEAD
    need = n_new * per
    out.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(out).free
    if need > free:
        raise UserError(
            f"{n_new} new samples need up to {need / 2**20:.1f} MiB but {out} has {free / 2**20:.1f} MiB "
            "free; lower --n or pick another --out"
        )


def to_pil(img: torch.Tensor) -> Image.Image:
    arr = img.numpy().transpose(1, 2, 0)
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[arr.shape[2]]
    return Image.fromarray(arr[..., 0] if mode == "L" else arr, mode=mode)


def save_png(img: torch.Tensor, path: Path, resize: tuple[int, int] | None = None) -> None:
    pil = to_pil(img)
    if resize is not None:
        pil = pil.resize(resize, Image.Resampling.LANCZOS)
    atomic_save_image(pil, path)


def read_png(path: Path, channels: int, res: int) -> torch.Tensor | None:
    """A previously written sample, or None when it is missing, unreadable or the wrong shape."""
    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert({1: "L", 3: "RGB", 4: "RGBA"}[channels]))
    except (OSError, ValueError):
        return None
    t = torch.from_numpy(arr.copy())
    t = t[None] if t.ndim == 2 else t.permute(2, 0, 1)
    return t if tuple(t.shape) == (channels, res, res) else None


def parse_resize(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(f"cannot read --resize-to {text!r}; write it as WxH, e.g. 300x300") from None
    if w < 1 or h < 1:
        raise UserError(f"--resize-to {text!r} must be positive")
    return w, h


def load_reals(data_dir: str, class_names: list[str], res: int, channels: int, fit: str,
               split: str = "train") -> dict[str, tuple]:
    """Reals of one split per class: {name: (uint8 images [M, C, res, res], relative file names)}.

    The filters use the train split (what the generator saw). The val split is read only for
    the held-out check of the report (classes without val images are left out there)."""
    if not data_dir or not Path(data_dir).is_dir():
        raise UserError(
            f"the generator's data folder {data_dir!r} is not here; pass --data DATA_DIR "
            "(the folder `gen train` used)"
        )
    data = open_prepared(data_dir)
    out = {}
    for name in class_names:
        if name not in data.classes:
            raise UserError(f"class {name!r} is not in {data_dir}/manifest.csv "
                            f"(has {', '.join(data.classes)}); pass the right --data")
        # Duplicate files would sit at distance ~0 from each other (up to float noise in their
        # features) and pull the near-copy threshold and the k-NN radii down: count each once.
        sel = data.select(split=split, classes=[name]).unique_files()
        if len(sel) == 0:
            if split != "train":
                continue
            raise UserError(f"{data_dir} has no train images of class {name!r}; "
                            "realism and memorisation need them")
        files = [str(p.relative_to(data.root)) if p.is_relative_to(data.root) else str(p) for p in sel.paths]
        out[name] = (sel.images(res=res, channels=channels, fit=fit), files)
    return out


def fmt_cell(v) -> str:
    if isinstance(v, (float, np.floating)):
        return "" if np.isnan(v) else f"{float(v):.6g}"
    return str(v)


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    atomic_write_csv(path, header, ([fmt_cell(v) for v in r] for r in rows))
