"""One writer per run folder: an advisory lock file holding who writes there.

Two `classify train`, `gen sample` or `gen train` into one --out would otherwise both run and
leave a mix (one run's config.json beside the other's model.pt). Each takes an exclusive
`fcntl` lock on `OUT/.lock` for as long as it writes; a second one fails at once, in one line
naming the holder (pid, host, command, start time). The kernel drops a lock when its process
dies, however it dies, so a lock file left by a killed run is simply taken over (with a note).
Ablation cells use the same kind of lock per cell (`claim`), so parallel jobs, shards and a
second process never train one cell twice.

On a system without `fcntl` (Windows) the locks are no-ops.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from classify.core.errors import UserError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".lock"


def _holder(what: str) -> str:
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": what,
                       "since": time.strftime("%Y-%m-%d %H:%M:%S")})


def _try_lock(path: Path) -> IO[str] | None:
    """The open, locked file, or None when another process holds the lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a+", encoding="utf-8")
    if fcntl is None:
        return fh
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        return None
    return fh


def _describe(path: Path) -> str:
    try:
        d = json.loads(path.read_text(encoding="utf-8") or "{}")
        return f"pid {d['pid']} on {d['host']}, `{d['command']}` since {d['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


def _release(fh: IO[str]) -> None:
    fh.seek(0)
    fh.truncate()  # an empty file: nobody holds it (a non-empty unlocked one was left by a dead run)
    fh.flush()
    if fcntl is not None:
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    fh.close()


@contextmanager
def folder_lock(folder: str | Path, what: str, log: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the folder's lock while the block runs; a second holder is a one-line UserError."""
    path = Path(folder) / LOCK_NAME
    fh = _try_lock(path)
    if fh is None:
        raise UserError(f"{folder} is in use by {_describe(path)}; "
                        "wait for it to finish, or write to another --out")
    fh.seek(0)
    left = fh.read().strip()
    if left and log is not None:
        log(f"note: took over the lock of a run that ended without releasing it ({_describe(path)})")
    fh.seek(0)
    fh.truncate()
    fh.write(_holder(what))
    fh.flush()
    try:
        yield
    finally:
        _release(fh)


@contextmanager
def claim(path: str | Path, what: str) -> Iterator[bool]:
    """Try to claim one unit of work (an ablation cell): yields True while held, False when another
    process holds it (the caller then skips the work)."""
    fh = _try_lock(Path(path))
    if fh is None:
        yield False
        return
    fh.seek(0)
    fh.truncate()
    fh.write(_holder(what))
    fh.flush()
    try:
        yield True
    finally:
        _release(fh)
