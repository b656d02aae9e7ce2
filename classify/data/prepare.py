"""`classify prepare`: list a source, decode every file, split, write the prepared folder.

Output (see docs/FORMATS.md): manifest.csv, classes.json, report.md, and for `elpv` the
exported PNGs. Unusable files are rejected with a reason in report.md; only problems that
make the whole dataset unusable (missing path, empty class, one-image class...) stop it.

Write order: report.md, classes.json, then manifest.csv as the commit point. classes.json
records the manifest's hash, and `open_prepared` refuses a folder where they disagree (a
run that stopped in between).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from classify.core.configs import Config, setting
from classify.core.errors import UserError
from classify.core.fileio import atomic_write_json, atomic_write_text
from classify.data.aspect import aspect_summary, manifest_aspect_ratios
from classify.data.images import MAX_PIXELS, ImageRejected, decode_image, file_md5
from classify.data.manifest import (
    CLASSES_NAME,
    MANIFEST_NAME,
    REPORT_NAME,
    is_utf8,
    manifest_text,
    printable,
    stored_path,
    text_hash,
    write_manifest,
)
from classify.data.prepare_report import build_prepare_report, prepare_warnings
from classify.data.sources import SourceItem, list_source, parse_source
from classify.data.splits import (
    SPLITS,
    apply_minority_fraction,
    assign_splits,
    check_fractions,
    duplicate_groups,
)


@dataclass
class PrepareConfig(Config):
    """Every setting of `classify prepare`; its options are built from these fields."""

    config_name = "prepare config keys"
    renamed = {"out": "out_dir"}  # classes.json of a folder prepared before the field was out_dir

    source: str  # folder:PATH, csv:FILE or elpv (the command's SOURCE argument)
    out_dir: str = setting(help="Prepared data folder to write.", flag="--out", path="dir")
    val: float = setting(0.15, "Validation fraction per class.")
    test: float = setting(0.20, "Test fraction per class.")
    seed: int = setting(0, "Seed of the split shuffle.")
    minority_class: str | None = setting(None, "Class to make scarce with --minority-fraction.")
    minority_fraction: float = setting(1.0, "Fraction of the minority class's train images to keep; the rest "
                                       "go to split 'unused'.")
    elpv_threshold: float = setting(0.5, "ELPV only: defect probability at or above which a cell is "
                                    "'defective'.")
    force: bool = setting(False, "Replace an existing, different manifest in --out.")
    # The decode budget per image (width x height), checked from the header.
    max_pixels: int = setting(MAX_PIXELS, "Refuse images of more pixels (width x height) than this, from "
                              "their header, before decoding.")

    def validate(self) -> None:
        if not str(self.out_dir).strip():
            raise UserError("--out is empty; name the folder to write the prepared data to, e.g. --out data/mine")
        parse_source(self.source)
        check_fractions(self.val, self.test)
        if not 0 < self.minority_fraction <= 1:
            raise UserError(f"--minority-fraction must be in (0, 1], got {self.minority_fraction}")
        if not self.max_pixels >= 1:
            raise UserError(f"--max-pixels must be at least 1, got {self.max_pixels}")
        if self.minority_fraction < 1 and not self.minority_class:
            raise UserError("--minority-fraction needs --minority-class NAME (which class to make scarce)")


@dataclass
class PrepareResult:
    out: Path
    manifest_hash: str
    rows: int
    rejected: int
    counts: dict[str, dict[str, int]]  # class -> split -> count
    warnings: list[str]  # also at the top of report.md
    aspect: dict[str, Any]  # classify.data.aspect.aspect_summary of the usable images


def prepare_dataset(cfg: PrepareConfig, show_progress: bool = False) -> PrepareResult:
    """Write DATA_DIR (cfg.out_dir); `show_progress` draws a tqdm bar on stderr while decoding."""
    cfg.validate()
    out = Path(cfg.out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder; choose another path")
    listing = list_source(cfg.source, out_dir=out, elpv_threshold=cfg.elpv_threshold, show_progress=show_progress)
    rows, rejected = _decode_all(listing.items, out, show_progress, cfg.max_pixels)
    # Names the OS gave us may hold bytes that are not UTF-8; report.md is UTF-8 text.
    rejected = [(printable(path), printable(reason)) for path, reason in listing.rejected + rejected]
    _check_class_sizes(rows, cfg.source, rejected)
    _assign(rows, cfg)
    text = manifest_text(rows, listing.extra_columns)
    digest = text_hash(text)
    _refuse_foreign_manifest(out / MANIFEST_NAME, text, cfg.force)
    counts = _counts(rows)
    aspect = aspect_summary(manifest_aspect_ratios(rows))
    warnings = vanished_classes(listing.items, rows) + prepare_warnings(rows, counts, cfg.minority_class, aspect)
    atomic_write_text(out / REPORT_NAME, build_prepare_report(cfg.to_dict(), rows, rejected, counts, digest, aspect,
                                                              warnings))
    atomic_write_json(out / CLASSES_NAME, _classes_json(cfg, counts, rows, digest))
    # The manifest goes last: it is what every stage reads, so a kill before this line
    # leaves the previous manifest (and its cache) in force, and classes.json's hash then
    # disagrees with it, which open_prepared refuses.
    write_manifest(out / MANIFEST_NAME, text)
    return PrepareResult(out=out, manifest_hash=digest, rows=len(rows), rejected=len(rejected), counts=counts,
                         warnings=warnings, aspect=aspect)


def _decode_all(
    items: list[SourceItem], out: Path, show_progress: bool, max_pixels: int = MAX_PIXELS
) -> tuple[list[dict[str, str]], list[tuple[str, str]]]:
    rows: list[dict[str, str]] = []
    rejected: list[tuple[str, str]] = []
    for item in tqdm(items, desc="checking images", unit="img", disable=not show_progress, leave=False):
        if not is_utf8(item.label):
            raise UserError(f"class name '{printable(item.label)}' is not valid UTF-8 (manifest.csv is UTF-8 text); "
                            "rename its folder or fix the label")
        if not is_utf8(stored_path(out, item.path)):
            rejected.append((str(item.path), "file name is not valid UTF-8 (manifest.csv is UTF-8 text); rename it"))
            continue
        try:
            decoded = decode_image(item.path, max_pixels)
        except ImageRejected as exc:
            rejected.append((str(item.path), str(exc)))
            continue
        row = image_row(out, item.path, item.label, decoded)
        row.update(item.extras)
        rows.append(row)
    return rows, rejected


def image_row(root: Path, path: Path, label: str, decoded, split: str = "", note: str = "") -> dict[str, str]:
    """The manifest row of one decoded image (prepare, and pseudo-labelling, which adds rows)."""
    return {
        "path": stored_path(root, path),
        "label": label,
        "split": split,
        "md5": file_md5(path),
        "width": str(decoded.width),
        "height": str(decoded.height),
        "mode": decoded.mode,
        "channels": str(decoded.channels),
        "bytes": str(path.stat().st_size),
        "dup_group": "",
        "note": "; ".join(n for n in (decoded.note, note) if n),
    }


def vanished_classes(items: list[SourceItem], rows: list[dict[str, str]]) -> list[str]:
    """A class every one of whose files was rejected would vanish from the data without a word."""
    listed = Counter(item.label for item in items)
    kept = {r["label"] for r in rows}
    return [f"class {label!r}: all {n} of its files were rejected, so it is not in the prepared data (reasons in "
            "report.md)" for label, n in sorted(listed.items()) if label not in kept]


def _check_class_sizes(rows: list[dict[str, str]], source: str, rejected: list[tuple[str, str]]) -> None:
    if not rows:
        first = f"; the first: {rejected[0][0]}: {rejected[0][1]}" if rejected else ""
        raise UserError(f"source {source} has no usable images: all {len(rejected)} files were rejected{first}")
    per_class = Counter(r["label"] for r in rows)
    # Exact copies count once: two identical files cannot be split into a train and a test image.
    distinct = Counter(label for label, _ in {(r["label"], r["md5"]) for r in rows})
    for label, n in sorted(distinct.items()):
        if n < 2:
            raise UserError(
                f"class {label!r} in {source} has {n} usable image ({per_class[label]} files counting exact "
                "copies); a class needs at least 2 distinct images (one to train, one to test) — "
                "add images or remove the class"
            )
    if len(per_class) < 2:
        raise UserError(f"source {source} has only one class {list(per_class)}; a classifier needs at least 2")


def _assign(rows: list[dict[str, str]], cfg: PrepareConfig) -> None:
    labels = [r["label"] for r in rows]
    md5s = [r["md5"] for r in rows]
    splits = assign_splits(labels, md5s, cfg.val, cfg.test, cfg.seed)
    if cfg.minority_class:
        splits = apply_minority_fraction(splits, labels, md5s, cfg.minority_class, cfg.minority_fraction, cfg.seed)
    group_id = 0
    for members in duplicate_groups(md5s).values():
        if len(members) > 1:
            group_id += 1
            for i in members:
                rows[i]["dup_group"] = str(group_id)
    for row, split in zip(rows, splits):
        row["split"] = split


def _refuse_foreign_manifest(path: Path, new_text: str, force: bool) -> None:
    if force or not path.exists():
        return
    if path.read_text(encoding="utf-8") != new_text:
        raise UserError(
            f"{path} already exists with a different manifest; use another --out or pass --force to replace it"
        )


def _counts(rows: list[dict[str, str]]) -> dict[str, dict[str, int]]:
    counts = {label: dict.fromkeys(SPLITS, 0) for label in sorted({r["label"] for r in rows})}
    for r in rows:
        counts[r["label"]][r["split"]] += 1
    return counts


def _classes_json(cfg: PrepareConfig, counts, rows, digest: str) -> dict[str, Any]:
    channels = 1 if all(r["channels"] == "1" for r in rows) else 3
    return {
        "classes": sorted(counts),
        "counts": counts,
        "channels": channels,
        "manifest_hash": digest,
        "config": cfg.to_dict(),
    }
