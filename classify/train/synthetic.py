"""Read a `gen sample` folder (samples.csv + PNGs) as extra TRAIN images.

The trainer only ever appends these to the train split; validation and test stay real.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from classify.core.errors import UserError

_REQUIRED = ("file", "class", "accepted")


@dataclass
class SyntheticSet:
    root: Path
    files: list[Path]  # absolute
    classes: list[str]  # class name per file
    rows: list[dict[str, str]]
    info: dict = field(default_factory=dict)  # sample_info.json, {} when absent
    excluded: int = 0  # rows left out because an exclude list named them

    def __len__(self) -> int:
        return len(self.files)


@dataclass
class ExcludeList:
    """Samples a person ruled out (browse.html's exclude.txt): one seed or sample file per line;
    blank lines and lines starting with '#' are ignored."""

    seeds: set[int] = field(default_factory=set)
    files: set[str] = field(default_factory=set)
    source: str = ""

    def matches(self, row: dict[str, str]) -> bool:
        seed = str(row.get("seed", "")).strip()
        return (seed.isdigit() and int(seed) in self.seeds) or any(
            str(row.get(key, "")).strip() in self.files for key in ("file", "native_file") if row.get(key))


def read_exclude_list(path: str | Path) -> ExcludeList:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UserError(f"exclude list {path} does not exist; "
                        "pass the exclude.txt the sample browser saved") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read exclude list {path} ({type(exc).__name__}); "
                        "save it as UTF-8 text") from None
    out = ExcludeList(source=str(path))
    for line in (raw.strip() for raw in lines):
        if not line or line.startswith("#"):
            continue
        if line.isdigit():
            out.seeds.add(int(line))
        else:
            out.files.add(line)
    return out


def load_synthetic(samples_dir: str | Path, accepted_only: bool,
                   exclude: ExcludeList | None = None) -> SyntheticSet:
    """List the samples of a folder; with accepted_only, those that passed every filter; never the
    rows an exclude list names (`excluded` counts them)."""
    root = Path(samples_dir)
    table = root / "samples.csv"
    if not table.is_file():
        raise UserError(f"no samples.csv in {root}; pass a folder written by `gen sample`")
    with open(table, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in _REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise UserError(f"{table} lacks column(s) {', '.join(missing)}; regenerate it with `gen sample`")
        rows = list(reader)
    if accepted_only:
        rows = [r for r in rows if r["accepted"].strip() in ("1", "true", "True")]
    excluded = 0
    if exclude is not None:
        kept = [r for r in rows if not exclude.matches(r)]
        excluded, rows = len(rows) - len(kept), kept
    info_path = root / "sample_info.json"
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
    files = [_inside(root, r["file"], table) for r in rows]
    return SyntheticSet(root, files, [r["class"] for r in rows], rows, info, excluded)


def _inside(root: Path, relative: str, table: Path) -> Path:
    """A samples.csv file must lie in its sample folder: pointing the column at other images (the
    data's val/test ones, say) would train on them as if they were synthetic."""
    path = (root / relative).resolve()
    if root.resolve() not in path.parents:
        raise UserError(f"{table} names {relative!r}, which lies outside the sample folder {root}; "
                        "synthetic images must be files `gen sample` wrote there")
    return path


def file_md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def refuse_held_out(files: list[Path], held_out_md5: dict[str, str], samples_dir: str) -> None:
    """No synthetic file may be byte-identical to a val/test image (`held_out_md5`: md5 -> split)."""
    for path in files:
        split = held_out_md5.get(file_md5(path))
        if split is not None:
            raise UserError(f"{path} in {samples_dir} is byte-identical to a {split} image of the data; "
                            "a sample set must not carry held-out images — regenerate it with `gen sample`")


def choose_synthetic(synth: SyntheticSet, class_name: str, count: int, seed: int) -> list[Path]:
    """Draw `count` files of one class at random without replacement (same seed, same draw)."""
    pool = [f for f, c in zip(synth.files, synth.classes) if c == class_name]
    if count > len(pool):
        raise UserError(
            f"{synth.root}/samples.csv has {len(pool)} usable samples of class {class_name!r} "
            f"but {count} are needed; lower --synthetic-ratio or sample more images with `gen sample`"
        )
    order = np.random.default_rng(seed).permutation(len(pool))[:count]
    return [pool[i] for i in sorted(order)]


def read_images(files: list[Path], res: int, channels: int) -> torch.Tensor:
    """Decode PNGs once into uint8 [N, C, res, res] (resized if the generator's res differs)."""
    out = torch.empty((len(files), channels, res, res), dtype=torch.uint8)
    mode = "L" if channels == 1 else "RGB"
    for i, path in enumerate(files):
        try:
            with Image.open(path) as im:
                arr = np.asarray(im.convert(mode), dtype=np.uint8)
        except (OSError, UnidentifiedImageError) as exc:
            raise UserError(f"cannot read synthetic image {path} ({exc.__class__.__name__}); "
                            "regenerate the sample folder or remove the row from samples.csv") from None
        t = torch.from_numpy(arr.copy()).reshape(arr.shape[0], arr.shape[1], channels).permute(2, 0, 1)
        if t.shape[-1] != res or t.shape[-2] != res:
            t = F.interpolate(t[None].float(), size=(res, res), mode="bilinear", antialias=True,
                              align_corners=False)
            t = t[0].round().clamp(0, 255).to(torch.uint8)
        out[i] = t
    return out
