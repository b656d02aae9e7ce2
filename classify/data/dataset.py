"""The PreparedData API every later stage reads images through, plus its uint8 cache.

`open_prepared(dir)` checks the manifest against the files (existence and byte size, which
is cheap; md5 is not recomputed). `images(res, channels, fit)` decodes the whole manifest
once per (manifest hash, res, channels, fit) into a .npy file under DATA_DIR/cache/ and
memory-maps it afterwards, so later epochs and runs skip decoding. A changed manifest has a
new hash, so its cache file has a new name; stale files are removed when a new one is built.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from classify.core.errors import UserError
from classify.core.fileio import atomic_open, atomic_write_json
from classify.data.aspect import manifest_aspect_ratios, resolve_fit
from classify.data.images import (
    MAX_PIXELS,
    SQUARE_FITS,
    ImageRejected,
    check_fit,
    decode_image,
    file_md5,
    fit_square,
    to_channels,
)
from classify.data.manifest import CLASSES_NAME, MANIFEST_NAME, read_manifest, resolve_path
from classify.data.splits import SPLITS

CACHE_DIR = "cache"
# cache/verified.json: manifest path -> [mtime_ns, bytes] of the file when its md5 last matched the
# manifest's. A file whose stamp changed since is hashed again before anything uses it.
VERIFIED_NAME = "verified.json"


class PreparedData:
    """A view of a prepared folder: all rows, or a selection made with `select()`."""

    def __init__(self, root: Path, all_rows: list[dict[str, str]], manifest_hash: str, indices: list[int]):
        self.root = root
        self.manifest_hash = manifest_hash
        self.classes: list[str] = sorted({r["label"] for r in all_rows})
        self._all_rows = all_rows
        self._indices = indices

    def __len__(self) -> int:
        return len(self._indices)

    def __repr__(self) -> str:
        return f"PreparedData({self.root}, n={len(self)}, classes={self.classes})"

    @property
    def indices(self) -> list[int]:
        """Positions of the selected rows in manifest.csv (0-based, header excluded)."""
        return list(self._indices)

    @property
    def rows(self) -> list[dict[str, str]]:
        return [self._all_rows[i] for i in self._indices]

    @property
    def labels(self) -> torch.Tensor:
        index = {name: i for i, name in enumerate(self.classes)}
        return torch.tensor([index[self._all_rows[i]["label"]] for i in self._indices], dtype=torch.int64)

    @property
    def paths(self) -> list[Path]:
        return [resolve_path(self.root, self._all_rows[i]["path"]) for i in self._indices]

    @property
    def channels(self) -> int:
        """1 if every image of the selection decodes to one channel, else 3."""
        return 1 if all(self._all_rows[i]["channels"] == "1" for i in self._indices) else 3

    def select(self, split: str | list[str] | None = None, classes: list[str] | str | None = None) -> PreparedData:
        splits = _as_set(split, SPLITS, "split")
        wanted = _as_set(classes, self.classes, "class")
        keep = [
            i
            for i in self._indices
            if (splits is None or self._all_rows[i]["split"] in splits)
            and (wanted is None or self._all_rows[i]["label"] in wanted)
        ]
        return PreparedData(self.root, self._all_rows, self.manifest_hash, keep)

    def unique_files(self) -> PreparedData:
        """The selection with one row per md5 (the first): exact duplicate files count once."""
        seen: set[str] = set()
        keep = []
        for i in self._indices:
            md5 = self._all_rows[i]["md5"]
            if md5 not in seen:
                seen.add(md5)
                keep.append(i)
        return PreparedData(self.root, self._all_rows, self.manifest_hash, keep)

    def resolve_fit(self, fit: str) -> str:
        """`fit`, with `auto` resolved from the aspect ratios of the whole folder (not the
        selection), so every stage and split of one folder gets the same fit."""
        return resolve_fit(fit, manifest_aspect_ratios(self._all_rows))

    def images(self, res: int, channels: int | None = None, fit: str = "crop") -> torch.Tensor:
        """uint8 [N, C, res, res] for the selected rows, read from (and built into) the cache.
        `fit="auto"` is resolved first (`resolve_fit`); the cache only knows concrete fits."""
        channels = self.channels if channels is None else channels
        _check_image_args(res, channels, fit)
        fit = self.resolve_fit(fit)
        cache = build_cache(self.root, self._all_rows, self.manifest_hash, res, channels, fit)
        store = np.load(cache, mmap_mode="r")
        picked = np.ascontiguousarray(store[np.asarray(self._indices, dtype=np.int64)])
        return torch.from_numpy(picked).reshape(len(self._indices), channels, res, res)


def _as_set(value: str | list[str] | None, valid, what: str) -> set[str] | None:
    if value is None:
        return None
    names = {value} if isinstance(value, str) else set(value)
    unknown = sorted(names - set(valid))
    if unknown:
        raise UserError(f"unknown {what} {unknown}; valid: {list(valid)}")
    return names


def _check_image_args(res: int, channels: int, fit: str) -> None:
    if not isinstance(res, int) or res < 1:
        raise UserError(f"image resolution must be a positive integer, got {res!r}")
    if channels not in (1, 3):
        raise UserError(f"channels must be 1 or 3, got {channels!r}")
    check_fit(fit)


def open_prepared(root: str | Path) -> PreparedData:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise UserError(f"prepared data folder {root} does not exist; run `classify prepare SOURCE --out {root}`")
    rows, digest = read_manifest(root / MANIFEST_NAME)
    check_classes_json(root, digest)
    stamps = {}
    for row in rows:
        path = resolve_path(root, row["path"])
        try:
            stat = path.stat()
        except OSError:
            raise UserError(
                f"{root / MANIFEST_NAME} lists {path}, which is missing; restore it or rerun `classify prepare --force`"
            ) from None
        if str(stat.st_size) != row["bytes"]:
            raise UserError(
                f"{path} changed since {root / MANIFEST_NAME} was written ({stat.st_size} bytes, manifest says "
                f"{row['bytes']}); rerun `classify prepare --force`"
            )
        stamps[row["path"]] = [stat.st_mtime_ns, stat.st_size]
    verify_content(root, rows, stamps)
    return PreparedData(root, rows, digest, list(range(len(rows))))


def verify_content(root: Path, rows: list[dict[str, str]], stamps: dict[str, list[int]]) -> None:
    """Hash every file whose (mtime, size) differs from when it last matched its manifest md5:
    an image replaced by another of the same size (another class's, or garbage) is refused with its
    name instead of being used silently. Unchanged files cost one stat."""
    record = root / CACHE_DIR / VERIFIED_NAME
    try:
        known = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    known = known if isinstance(known, dict) else {}
    changed = False
    for row in rows:
        if known.get(row["path"]) == stamps[row["path"]]:
            continue
        path = resolve_path(root, row["path"])
        if row.get("md5") and file_md5(path) != row["md5"]:
            raise UserError(f"{path} changed since {root / MANIFEST_NAME} was written (same size, other content: its "
                            "md5 differs); restore it or rerun `classify prepare --force`")
        known[row["path"]] = stamps[row["path"]]
        changed = True
    if changed:
        try:
            atomic_write_json(record, known)
        except OSError:  # a read-only data folder: verified again next time, which is only slower
            pass


def check_classes_json(root: Path, manifest_hash: str) -> dict:
    """classes.json must record the hash of the manifest beside it: `classify prepare` writes the
    manifest last, so a run that failed in between leaves classes.json (and report.md) of
    another split. Returns classes.json's content."""
    path = root / CLASSES_NAME
    redo = f"rerun the `classify prepare` that wrote {root} (with --force to replace its manifest)"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{root} has a {MANIFEST_NAME} but no {CLASSES_NAME} (an interrupted `classify prepare`?); "
                        f"{redo}") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} is unreadable ({type(exc).__name__}); {redo}") from None
    recorded = info.get("manifest_hash") if isinstance(info, dict) else None
    if recorded != manifest_hash:
        raise UserError(f"{path} describes another manifest (hash {str(recorded)[:12]}) than {root / MANIFEST_NAME} "
                        f"({manifest_hash[:12]}): `classify prepare` stopped between its files; {redo}")
    return info


def cache_path(root: Path, manifest_hash: str, res: int, channels: int, fit: str) -> Path:
    return root / CACHE_DIR / f"{manifest_hash[:16]}-r{res}-c{channels}-{fit}.npy"


def build_cache(root: Path, rows: list[dict[str, str]], manifest_hash: str, res: int, channels: int, fit: str) -> Path:
    """Return the cache file for these settings, decoding every manifest row if it is absent."""
    if fit not in SQUARE_FITS:
        raise ValueError(f"the image cache needs a concrete fit {SQUARE_FITS}, got {fit!r} (resolve 'auto' first)")
    path = cache_path(root, manifest_hash, res, channels, fit)
    if path.exists() and _cache_ok(path, (len(rows), channels, res, res)):
        return path
    shape = (len(rows), channels, res, res)
    # Stream rows into a .npy through an atomic temporary file: memory stays at one image,
    # and a kill mid-build never leaves a half-written cache under the final name.
    try:
        with atomic_open(path) as fh:
            header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False, "shape": shape}
            np.lib.format.write_array_header_1_0(fh, header)
            for row in rows:
                fh.write(_decode_row(root, row, res, channels, fit).tobytes())
    except PermissionError:
        raise UserError(
            f"cannot write the image cache in {path.parent} (permission denied); make {root} writable "
            "or copy the prepared folder somewhere writable"
        ) from None
    _remove_stale(path.parent, keep_prefix=manifest_hash[:16])
    return path


def _decode_row(root: Path, row: dict[str, str], res: int, channels: int, fit: str) -> np.ndarray:
    source = resolve_path(root, row["path"])
    # What goes into the cache is checked against the manifest, whatever the file's mtime says.
    if row.get("md5") and file_md5(source) != row["md5"]:
        raise UserError(f"{source} changed since {root / MANIFEST_NAME} was written (its md5 differs); restore it "
                        "or rerun `classify prepare --force`")
    try:
        # The file passed prepare's decode budget (which --max-pixels may have raised): its own size is
        # the budget here, so a large accepted image is not refused now.
        decoded = decode_image(source, max_pixels=max(MAX_PIXELS, int(row.get("width") or 0) * int(row.get("height") or 0)))
    except ImageRejected as exc:
        raise UserError(f"{source} no longer decodes ({exc}); rerun `classify prepare --force`") from None
    square = fit_square(to_channels(decoded.pixels, channels), res, fit)
    return np.ascontiguousarray(square.transpose(2, 0, 1))


def _cache_ok(path: Path, shape: tuple[int, ...]) -> bool:
    try:
        store = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return False
    return store.shape == shape and store.dtype == np.uint8


def _remove_stale(cache_dir: Path, keep_prefix: str) -> None:
    """Caches of earlier manifests can never be hit again; delete them to free the disk."""
    for old in cache_dir.glob("*.npy"):
        if not old.name.startswith(keep_prefix):
            old.unlink(missing_ok=True)
