"""Atomic writes: a temporary file in the same folder, fsync, then `os.replace`.

A kill at any moment leaves either the old file or the new one, never a torn file. A
full disk, a full quota or a file-size limit (`ulimit -f`, EFBIG) removes the temporary
file, keeps the old file, and raises `UserError` naming the file.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import torch

from classify.core.errors import UserError


def _umask() -> int:
    # Linux reports it without changing it; setting and restoring it (the portable way) would
    # briefly give files created by other threads (e.g. TensorBoard's writer) a 0 umask.
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike,
                before_replace: Callable[[], None] | None = None) -> Iterator[BinaryIO]:
    """Yield a binary file handle; on clean exit it atomically replaces `path`.

    `before_replace` runs once the new content is safely on disk, just before it takes the
    name (e.g. to remove a companion file that only matched the old content).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600; give the final file the mode a plain open() would (0666 minus
        # the umask), or reports and plots end up unreadable to anyone else who serves them.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno in _NO_ROOM:
            raise UserError(f"{_NO_ROOM[exc.errno]} while writing {path}; the previous file is intact — "
                            f"{_WAY_OUT[exc.errno]} and rerun") from exc
        raise


# Write failures that mean "no room for this file" rather than a bug: what to tell the user.
_NO_ROOM = {errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded",
            errno.EFBIG: "file too large for the file-size limit (ulimit -f) or the file system"}
_WAY_OUT = {errno.ENOSPC: "free space", errno.EDQUOT: "free space or raise the quota",
            errno.EFBIG: "raise the limit (ulimit -f unlimited) or write to another file system"}


def atomic_write_bytes(path: str | os.PathLike, data: bytes,
                       before_replace: Callable[[], None] | None = None) -> None:
    with atomic_open(path, before_replace) as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def csv_text(header: list[str], rows: Iterable[list]) -> str:
    """A CSV document: one header row, then `rows`, with \\n line ends."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def atomic_write_csv(path: str | os.PathLike, header: list[str], rows: Iterable[list]) -> None:
    atomic_write_text(path, csv_text(header, rows))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike,
                      before_replace: Callable[[], None] | None = None) -> None:
    """`torch.save` through a temporary file. Save only tensors and plain values."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue(), before_replace)


def atomic_save_image(image, path: str | os.PathLike, format: str = "PNG") -> None:
    """Save a PIL image atomically."""
    buf = io.BytesIO()
    image.save(buf, format=format)
    atomic_write_bytes(path, buf.getvalue())


def _json_default(obj: Any) -> Any:
    # numpy scalars/arrays and paths show up in metrics; write them as plain JSON.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def refuse_output_over_inputs(out: str | os.PathLike, inputs: Iterable[str | os.PathLike],
                              flag: str = "--out") -> None:
    """An output path must not be one of the command's inputs, nor lie inside an input folder
    (`classify predict ... --out model.pt` would replace the model with CSV text)."""
    target = Path(out).expanduser().resolve()
    for item in inputs:
        src = Path(item).expanduser().resolve()
        if target == src or (src.is_dir() and src in target.parents):
            raise UserError(f"{flag} {out} would overwrite an input of this command ({item}); "
                            "write the output elsewhere")
