"""manifest.csv: one row per usable image, the single source of truth for a prepared folder.

Columns (fixed order, then source extras): see `BASE_COLUMNS` and docs/FORMATS.md.
Paths inside the prepared folder are stored relative to it (the folder can move);
paths elsewhere are stored absolute.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from pathlib import Path

from classify.core.errors import UserError
from classify.core.fileio import atomic_write_text
from classify.data.images import IMAGE_SUFFIXES

MANIFEST_NAME = "manifest.csv"
CLASSES_NAME = "classes.json"
REPORT_NAME = "report.md"

BASE_COLUMNS = ("path", "label", "split", "md5", "width", "height", "mode", "channels", "bytes", "dup_group", "note")


def manifest_text(rows: list[dict[str, str]], extra_columns: list[str]) -> str:
    """Serialise rows to CSV text (the hash is taken over exactly this text)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[*BASE_COLUMNS, *extra_columns], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in writer.fieldnames})
    return buf.getvalue()


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_manifest(path: str | Path, text: str) -> None:
    atomic_write_text(path, text)


def read_manifest(path: str | Path) -> tuple[list[dict[str, str]], str]:
    """Return (rows, sha256 of the file's text)."""
    path = Path(path)
    if not path.is_file():
        folder = path.parent
        if _holds_class_folders(folder):  # a raw ImageFolder tree: prepare must write elsewhere
            raise UserError(f"{folder} holds class folders of images, not prepared data; run `classify prepare "
                            f"folder:{folder} --out DATA_DIR` (a new folder) and pass DATA_DIR instead")
        raise UserError(f"no {MANIFEST_NAME} in {folder}; run `classify prepare SOURCE --out {folder}` first")
    text = path.read_text(encoding="utf-8")
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in BASE_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise UserError(f"{path} lacks columns {missing}; it was not written by `classify prepare` — rerun it with --force")
    rows = list(reader)
    if not rows:
        raise UserError(f"{path} has no rows; rerun `classify prepare`")
    return rows, text_hash(text)


def resolve_path(root: Path, stored: str) -> Path:
    p = Path(stored)
    return p if p.is_absolute() else root / p


def link_path(path: str | Path) -> Path:
    """Absolute with its folders resolved but not the file itself: a symlinked file stays its
    own row (an md5 duplicate of its target) instead of silently becoming a second row of the
    target, while paths through symlinked folders read as they always did."""
    path = Path(os.path.abspath(Path(path).expanduser()))
    return path.parent.resolve() / path.name


def stored_path(root: Path, path: Path) -> str:
    """Relative (POSIX) when inside `root`, so the prepared folder can be moved."""
    p = link_path(path)
    try:
        return p.relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(p)


def printable(text: str | os.PathLike) -> str:
    """A name as UTF-8-safe text: bytes that are not UTF-8 (kept by Python as surrogates in
    file names) appear as \\xNN escapes, so reports and messages can always be written."""
    text = os.fspath(text)
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that no file name decoding produced
        raw = text.encode("utf-8", "backslashreplace")
    return raw.decode("utf-8", "backslashreplace")


def is_utf8(text: str) -> bool:
    """Whether `text` (e.g. a file name from the OS) can be written as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _holds_class_folders(folder: Path) -> bool:
    try:
        return any(sub.is_dir() and any(f.suffix.lower() in IMAGE_SUFFIXES for f in sub.iterdir())
                   for sub in folder.iterdir())
    except OSError:
        return False


def refuse_output_in_prepared(out: str | Path, flag: str = "--out") -> None:
    """A command's output must not land in a prepared data folder (one holding a manifest.csv, at
    `out` or above it): it would sit beside, or replace, the images and the manifest that every
    later command trusts."""
    target = Path(out).expanduser().resolve()
    for folder in (target, *target.parents):
        if (folder / MANIFEST_NAME).is_file():
            raise UserError(f"{flag} {out} lies in the prepared data folder {folder} (it has a {MANIFEST_NAME}); "
                            "write the output to a folder of its own, e.g. beside it")
