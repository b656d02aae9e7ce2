"""Downloads a user asked for (`--resume-from https://...`): cached, resumable, size-checked.

Nothing in the suite downloads unless a user passes a URL. The file lands once in the cache
folder (`GANBALANCE_CACHE`, default `~/.cache/ganbalance`) under a name derived from the URL,
with a progress bar; an interrupted download continues from the bytes it has (HTTP Range);
the result must have the size the server announced. Offline, one line says how to pass a
local file instead.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from tqdm import tqdm

from classify.core.errors import UserError

CHUNK = 1 << 20


def is_url(text: str | None) -> bool:
    return bool(text) and str(text).lower().startswith(("http://", "https://"))


def cache_dir() -> Path:
    return Path(os.environ.get("GANBALANCE_CACHE") or Path.home() / ".cache" / "ganbalance")


def cached_path(url: str) -> Path:
    """Where `url` is kept: a short hash of the whole URL (two URLs never share a file) plus
    the URL's own file name (so people recognise it)."""
    name = Path(urlparse(url).path).name or "download"
    return cache_dir() / "downloads" / f"{hashlib.sha256(url.encode()).hexdigest()[:16]}-{name}"


def fetch(url: str, flag: str = "--resume-from", progress: bool = True, timeout: float = 30.0) -> Path:
    """The local copy of `url`, downloading (or finishing) it first when needed."""
    target = cached_path(url)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    have = partial.stat().st_size if partial.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            _receive(response, partial, have, url, progress, flag)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to send: the partial file is complete
            partial.replace(target)
            return target
        raise UserError(f"{flag} {url}: the server answered HTTP {exc.code} ({exc.reason}); "
                        "check the URL") from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(f"{flag} {url}: cannot download ({reason}); download the file on a machine that "
                        f"is online and pass the local copy: {flag} PATH") from None
    partial.replace(target)
    return target


def _receive(response, partial: Path, have: int, url: str, progress: bool,
             flag: str = "--resume-from") -> None:
    """Append the body to `partial` (restarting when the server ignored the Range request)
    and check the final size against Content-Length."""
    resumed = have and response.status == 206
    length = response.headers.get("Content-Length")
    expected = (int(length) + (have if resumed else 0)) if length is not None else None
    mode = "ab" if resumed else "wb"
    with open(partial, mode) as fh, tqdm(total=expected, initial=have if resumed else 0, unit="B",
                                         unit_scale=True, desc=f"downloading {Path(urlparse(url).path).name}",
                                         disable=not progress) as bar:
        while chunk := response.read(CHUNK):
            fh.write(chunk)
            bar.update(len(chunk))
    size = partial.stat().st_size
    if expected is not None and size != expected:
        raise UserError(f"{flag} {url}: got {size} bytes, the server announced {expected}; the download was "
                        "cut short, run the command again to continue it")
