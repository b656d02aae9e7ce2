"""Where the images come from: `folder:PATH`, `csv:FILE` or the built-in `elpv` set.

A source only lists files and labels; decoding and rejection happen in `prepare`, so
every source gets the same checks and the same report. Files a source cannot use (wrong
extension, a CSV row pointing nowhere) are returned as rejections, never dropped.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from classify.core.errors import UserError
from classify.core.fileio import atomic_write_bytes
from classify.data.images import IMAGE_SUFFIXES
from classify.data.manifest import link_path


@dataclass
class SourceItem:
    path: Path  # absolute
    label: str
    extras: dict[str, str] = field(default_factory=dict)  # extra manifest columns


@dataclass
class SourceListing:
    items: list[SourceItem]
    rejected: list[tuple[str, str]]  # (file, reason)
    extra_columns: list[str]


def has_control_characters(text: str) -> bool:
    """Newlines, tabs and other control characters: in a path or a label they break CSV rows,
    report lines and file names, and can smuggle markup into a report."""
    return any(ord(ch) < 32 or ord(ch) == 127 for ch in text)


def check_class_name(name: str, where: str) -> str:
    """A class name becomes a folder name (gen sample writes images/<class>/): no path separators,
    no '.' or '..', no control characters. Refused with the row or folder it came from."""
    bad = ("a path separator" if ("/" in name or "\\" in name) else "'.' or '..'" if name in (".", "..")
           else "a control character" if has_control_characters(name) else None)
    if bad:
        raise UserError(f"class name {name!r} ({where}) contains {bad}; class names become folder names: "
                        "use letters, digits, '-', '_' or spaces")
    return name


def parse_source(spec: str) -> tuple[str, str]:
    """'folder:PATH' -> ('folder', 'PATH'); 'elpv' -> ('elpv', '')."""
    kind, _, arg = spec.partition(":")
    if kind not in _SOURCES:
        hint = ""
        if Path(spec).expanduser().is_dir():
            hint = f" (for this folder: folder:{spec})"
        elif Path(spec).expanduser().is_file():
            hint = f" (for this file: csv:{spec})"
        raise UserError(f"unknown source {spec!r}; use one of: folder:PATH, csv:FILE, elpv{hint}")
    if kind == "elpv" and arg:
        raise UserError(f"source {spec!r}: elpv takes no path (the images come from the elpv-dataset package)")
    if kind != "elpv" and not arg:
        raise UserError(f"source {spec!r} needs a path, e.g. {kind}:/path/to/data")
    return kind, arg


def list_source(spec: str, out_dir: Path, elpv_threshold: float = 0.5, show_progress: bool = False) -> SourceListing:
    """The files and labels of one SOURCE (`folder:PATH`, `csv:FILE`, `elpv`), by its kind's `list_*`."""
    kind, arg = parse_source(spec)
    return _SOURCES[kind](arg, out_dir=out_dir, elpv_threshold=elpv_threshold, show_progress=show_progress)


def is_hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _inside(path: Path, out: Path | None) -> bool:
    """Whether `path` lies in the prepare output folder `out` (resolved); a symlink loop does not."""
    if out is None:
        return False
    try:
        target = path.resolve()
    except (RuntimeError, OSError):  # a symlink loop (RuntimeError on Python < 3.13)
        return False
    return target == out or out in target.parents


def _class_files(class_dir: Path, out: Path | None) -> list[Path]:
    """Files under a class folder, less hidden ones and those in `out` (the prepare output);
    broken or looping symlinks are included so that they are rejected with a reason."""
    return [path for path in sorted(class_dir.rglob("*"))
            if not is_hidden(path, class_dir) and not _inside(path, out)
            and (path.is_file() or (path.is_symlink() and not path.exists()))]


def list_folder(arg: str, out_dir: Path | None = None, **_: object) -> SourceListing:
    root = Path(arg).expanduser()
    if not root.exists():
        raise UserError(f"source folder {root} does not exist; check the path after 'folder:'")
    if not root.is_dir():
        raise UserError(f"source {root} is not a folder; use csv:FILE for a CSV list")
    out = Path(out_dir).resolve() if out_dir is not None else None
    if out is not None and out == root.resolve():
        raise UserError(f"--out {out_dir} is the source folder itself; write the prepared folder elsewhere")
    # --out inside the source folder (root/prepared, root/runs/data) must not become a class on the
    # next run, nor may any other prepared folder there (it has a manifest.csv).
    candidates = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                        and not _inside(p, out) and not (p / "manifest.csv").is_file())
    # A symlinked class folder that leads out of the source (`ln -s .. SRC/up`) would pull in every
    # image above it under a made-up class: not followed, and said so in the report.
    escaping = [p for p in candidates if p.is_symlink() and not p.resolve().is_relative_to(root.resolve())]
    class_dirs = [p for p in candidates if p not in escaping]
    if not class_dirs:
        raise UserError(f"source folder {root} has no class sub-folders; put each class's images in root/<class>/")
    items: list[SourceItem] = []
    rejected: list[tuple[str, str]] = [(str(p), f"symbolic link to {p.resolve()}, outside the source folder: not "
                                                "followed") for p in escaping]
    for class_dir in class_dirs:
        found = 0
        # Nested folders inside a class folder are allowed (ImageFolder convention, recursive).
        for path in _class_files(class_dir, out):
            if not path.exists():
                rejected.append((str(link_path(path)), "broken symbolic link (its target is missing or loops)"))
                continue
            if has_control_characters(str(path.relative_to(root)) if path.is_relative_to(root) else path.name):
                rejected.append((repr(str(path)), "file name contains a newline or other control character"))
                continue
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                rejected.append((str(link_path(path)), f"extension {path.suffix or '(none)'} is not an image type"))
                continue
            items.append(SourceItem(path=link_path(path), label=check_class_name(class_dir.name, f"folder {class_dir}")))
            found += 1
        if found == 0 and out is not None and class_dir.resolve() in out.parents:
            continue  # only our own output lives here (--out root/runs/data): not a class
        if found == 0:
            raise UserError(
                f"class folder {class_dir} holds no image files ({', '.join(IMAGE_SUFFIXES)}); "
                "add images or remove the folder"
            )
    return SourceListing(items=items, rejected=rejected, extra_columns=[])


def list_csv(arg: str, show_progress: bool = False, **_: object) -> SourceListing:
    csv_path = Path(arg).expanduser()
    if not csv_path.is_file():
        raise UserError(f"source CSV {csv_path} does not exist; check the path after 'csv:'")
    columns, rows = _read_csv(csv_path)
    if not rows:
        raise UserError(f"{csv_path} has a header but no rows; add one row per image")
    extra = [c for c in columns if c not in ("path", "label")]
    extra_names = {c: f"src_{c}" for c in extra}  # prefixed so they never clash with manifest columns
    items: list[SourceItem] = []
    rejected: list[tuple[str, str]] = []
    first_seen: dict[Path, tuple[int, str]] = {}  # resolved file -> (line, label) where it was first listed
    # A CSV of a million rows takes a while to check file by file: a bar says so (on a terminal).
    for lineno, row in enumerate(tqdm(rows, desc="listing files", unit="row", disable=not show_progress,
                                      leave=False), start=2):
        rel, label = (row.get("path") or "").strip(), (row.get("label") or "").strip()
        if not rel or not label:
            rejected.append((f"{csv_path}:{lineno}", "row has an empty path or label"))
            continue
        check_class_name(label, f"{csv_path} line {lineno}")
        if has_control_characters(rel):
            rejected.append((f"{csv_path}:{lineno}", "path contains a newline or other control character"))
            continue
        path = Path(rel) if Path(rel).is_absolute() else csv_path.parent / rel
        if not path.is_file():
            rejected.append((str(path), f"file listed in {csv_path.name} line {lineno} not found"))
            continue
        seen = first_seen.setdefault(path.resolve(), (lineno, label))
        if seen[0] != lineno:
            if seen[1] != label:
                raise UserError(f"{csv_path} lists {rel} twice with different labels (line {seen[0]}: {seen[1]!r}, "
                                f"line {lineno}: {label!r}); give each file one label")
            rejected.append((f"{csv_path}:{lineno}", f"the same file as line {seen[0]}, listed again: kept once"))
            continue
        extras = {extra_names[c]: row.get(c) or "" for c in extra}
        items.append(SourceItem(path=link_path(path), label=label, extras=extras))
    return SourceListing(items=items, rejected=rejected, extra_columns=list(extra_names.values()))


def _read_csv(csv_path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """(header, rows) of a UTF-8 CSV with `path` and `label` columns; anything else is a UserError."""
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = reader.fieldnames or []
            if "path" not in columns or "label" not in columns:
                raise UserError(f"{csv_path} must have a header with columns 'path' and 'label' (found {columns})")
            return columns, list(reader)
    except UnicodeDecodeError as exc:
        raise UserError(f"{csv_path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
                        "save it as UTF-8 (in Excel: 'CSV UTF-8') and rerun") from None
    except csv.Error as exc:
        raise UserError(f"{csv_path} is not a readable CSV ({exc}); check the file") from None


ELPV_EXPORT_DIR = "elpv_images"


def list_elpv(arg: str, out_dir: Path, elpv_threshold: float = 0.5, **_: object) -> SourceListing:
    """Export the ELPV cells as PNG under out_dir once, then list them like any folder."""
    if not 0.0 < elpv_threshold <= 1.0:
        raise UserError(f"--elpv-threshold must be in (0, 1], got {elpv_threshold}")
    try:
        from elpv_dataset.utils import load_dataset  # noqa: PLC0415 — optional extra (ganbalance[elpv])
    except ImportError:
        raise UserError("the elpv source needs the elpv-dataset package; run: pip install 'ganbalance[elpv]'") from None
    images, probs, types = load_dataset()
    export = Path(out_dir) / ELPV_EXPORT_DIR
    items = []
    for i, (pixels, prob, cell_type) in enumerate(zip(images, probs, types)):
        path = export / f"cell{i:04d}.png"
        if not path.exists():  # exported once; a rerun reuses the files (PNG encoding is deterministic)
            buf = io.BytesIO()
            # Lossless either way; level 1 encodes ~2.5x faster than the default 6 for ~16% more bytes.
            Image.fromarray(pixels).save(buf, format="PNG", compress_level=1)
            atomic_write_bytes(path, buf.getvalue())
        label = "defective" if float(prob) >= elpv_threshold else "functional"
        extras = {"source_index": str(i), "elpv_probability": f"{float(prob):.6g}", "elpv_type": str(cell_type)}
        items.append(SourceItem(path=path.resolve(), label=label, extras=extras))
    return SourceListing(items=items, rejected=[], extra_columns=["source_index", "elpv_probability", "elpv_type"])


# A fixed table of listing functions; the CLI and tests pick one through `list_source`.
_SOURCES: dict[str, Callable[..., SourceListing]] = {"folder": list_folder, "csv": list_csv, "elpv": list_elpv}


def source_kinds() -> list[str]:
    """The kinds a SOURCE names before its ':' (folder, csv, elpv)."""
    return sorted(_SOURCES)
