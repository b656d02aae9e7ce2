"""Helpers every test folder shares.

- `one_line_error`: a command that fails the way a user should see it, in one `Error: ...` line.
  Every command turns a UserError (and the engine's errors) into click's one-line error
  (`classify.core.clitools.user_errors`); a traceback, a second line or a success exit code means
  a problem reached the user half-explained.
- An HTML report checked the way a reader sees it: links on disk, images in headless Chromium.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest


def one_line_error(result, *needles: str, after_output: bool = False) -> str:
    """Assert that the click `result` failed with exactly one line `Error: ...` holding every
    needle, and no traceback; returns that line. With `after_output`, lines the command printed
    before it failed (progress, a plan) may precede the error; otherwise the error is all there is."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [ln for ln in result.output.splitlines() if ln.strip()]  # stdout and stderr together
    errors = [ln for ln in lines if ln.startswith("Error:")]
    assert len(errors) == 1, result.output
    if not after_output:
        assert lines == errors, result.output
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--virtual-time-budget=10000"]

# Marks broken images and records counts in a div that --dump-dom prints.
PROBE = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var broken = imgs.filter(function (i) { return !i.complete || i.naturalWidth === 0; });
  broken.forEach(function (i) { i.setAttribute('data-broken', '1'); });
  var d = document.createElement('div');
  d.id = 'probe'; d.setAttribute('data-images', imgs.length); d.setAttribute('data-broken', broken.length);
  d.setAttribute('data-broken-src', broken.map(function (i) { return i.getAttribute('src'); }).join('|'));
  document.body.appendChild(d);
});
</script>"""


def chromium_or_skip() -> str:
    """The Chromium binary; a skip only outside scripts/test.sh (which installs it), else a failure."""
    path = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if path:
        return path
    if os.environ.get("GANBALANCE_TEST_SH"):
        pytest.fail("chromium is missing although scripts/test.sh should have installed it "
                    "(apt-get install chromium)")
    pytest.skip("Debian chromium is not installed (/usr/bin/chromium); "
                "scripts/test.sh installs it with apt-get")


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for key, value in attrs:
            if key in ("href", "src") and value is not None:
                self.refs.append(value)


def page_refs(page: Path) -> list[str]:
    parser = _Refs()
    parser.feed(page.read_text(errors="replace"))
    return parser.refs


def broken_links(page: Path, root: Path, follow_html: bool = True,
                 seen: set[Path] | None = None) -> list[str]:
    """Every href/src of `page` (and of the local .html pages it links) that does not resolve
    to a file inside `root`. data: URIs and in-page #anchors are fine; anything with a scheme
    or an absolute path is reported, because the report must work when the folder moves."""
    seen = set() if seen is None else seen
    page = page.resolve()
    if page in seen:
        return []
    seen.add(page)
    bad = []
    for ref in page_refs(page):
        parts = urlsplit(ref)
        if ref.startswith(("data:", "#")):
            continue
        if parts.scheme or parts.netloc or ref.startswith("/"):
            bad.append(f"{page.name}: non-relative link {ref}")
            continue
        target = (page.parent / unquote(parts.path)).resolve()
        if not target.is_file() or not target.is_relative_to(root.resolve()):
            bad.append(f"{page.name}: {ref} does not resolve to a file in {root}")
        elif follow_html and target.suffix == ".html":
            bad += broken_links(target, root, follow_html, seen)
    return bad


def _run(args: list[str], tmp: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    profile = tmp / "chromium-profile"
    profile.mkdir(parents=True, exist_ok=True)
    return subprocess.run([chromium_or_skip(), *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=timeout)


def probe_images(page: Path, tmp: Path) -> dict[str, object]:
    """Load a copy of `page` (same folder, so relative links behave the same) with PROBE
    appended; return {'images': n, 'broken': m, 'broken_src': [...]} after the load event."""
    probe = page.with_name(f".probe-{page.name}")
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    try:
        done = _run(["--dump-dom", probe.resolve().as_uri()], tmp)
    finally:
        probe.unlink()
    m = re.search(r'<div id="probe" data-images="(\d+)" data-broken="(\d+)" data-broken-src="([^"]*)"',
                  done.stdout)
    assert m, f"chromium printed no probe result (exit {done.returncode}): {done.stderr[-2000:]}"
    return {"images": int(m[1]), "broken": int(m[2]), "broken_src": [s for s in m[3].split("|") if s]}


def screenshot(page: Path, png: Path, tmp: Path, size: str = "1200,2400") -> Path:
    done = _run([f"--screenshot={png}", f"--window-size={size}", page.resolve().as_uri()], tmp)
    assert png.is_file(), f"chromium wrote no screenshot (exit {done.returncode}): {done.stderr[-2000:]}"
    return png
