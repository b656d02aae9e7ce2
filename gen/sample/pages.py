"""Grids and index.html of a sample set, for a person deciding whether the filters are right.

- accepted.png: accepted samples;
- rejected.png: one row per rejecting filter, the filter named at the left of its row;
- nearest_real.png: the samples closest to a train image beside that image (closest first),
  which is where memorisation shows;
- per_class.png: accepted samples, one row per class (conditional generators only);
- index.html: the grids plus the score table (click a header to sort), all relative links.
"""

from __future__ import annotations

import html
from pathlib import Path
from urllib.parse import quote

import numpy as np
import torch

from classify.core.fileio import atomic_write_text
from gen.core.grids import save_grid

NROW = 8
MAX_ACCEPTED = 64
MAX_PAIRS = 16


def _pad_row(tiles: torch.Tensor, like: torch.Tensor, n: int = NROW) -> torch.Tensor:
    """Fill a short row with white tiles so that the next row starts at its own label."""
    if len(tiles) >= n:
        return tiles[:n]
    blank = torch.full((n - len(tiles), *like.shape[1:]), 255, dtype=torch.uint8)
    return torch.cat([tiles, blank])


def write_grids(out: Path, images: torch.Tensor, accepted: np.ndarray, rejected_by: list[str],
                class_idx: np.ndarray, classes: list[str], nearest: tuple | None) -> list[str]:
    """Write the PNGs that apply; returns their file names (relative to `out`)."""
    written = []
    acc = np.flatnonzero(accepted)[:MAX_ACCEPTED]
    if len(acc):
        save_grid(images[acc], out / "accepted.png", NROW)
        written.append("accepted.png")
    names = [n for n in dict.fromkeys(rejected_by) if n]
    if names:
        rows = [_pad_row(images[[i for i, r in enumerate(rejected_by) if r == n]], images) for n in names]
        save_grid(torch.cat(rows), out / "rejected.png", NROW, labels=names)
        written.append("rejected.png")
    if nearest is not None:
        written += _nearest_grid(out, images, *nearest)
    if len(classes) > 1:
        rows, labels = [], []
        for c, name in enumerate(classes):
            sel = np.flatnonzero(accepted & (class_idx == c))
            if len(sel):
                rows.append(_pad_row(images[sel], images))
                labels.append(name)
        if rows:
            save_grid(torch.cat(rows), out / "per_class.png", NROW, labels=labels)
            written.append("per_class.png")
    return written


def _nearest_grid(out: Path, images: torch.Tensor, distance: np.ndarray,
                  real_images: list[torch.Tensor | None], seeds: list[int]) -> list[str]:
    order = [i for i in np.argsort(distance, kind="stable") if real_images[i] is not None][:MAX_PAIRS]
    if not order:
        return []
    tiles = torch.stack([t for i in order for t in (images[i], real_images[i])])
    labels = [f"seed {seeds[i]} d={distance[i]:.3g}" for i in order]
    save_grid(tiles, out / "nearest_real.png", 2, labels=labels)
    return ["nearest_real.png"]


_STYLE = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
img{image-rendering:pixelated;border:1px solid #ccc;max-width:100%}
table{border-collapse:collapse;font-size:13px} th{cursor:pointer;background:#eee}
td,th{border:1px solid #ccc;padding:2px 6px} tr.rej{color:#a00} pre{background:#f6f6f6;padding:.6em}"""

_SORT_JS = """function sortBy(c){const t=document.getElementById('scores'),b=t.tBodies[0];
const r=[...b.rows],a=t.dataset.col==c&&t.dataset.dir=='a';t.dataset.col=c;t.dataset.dir=a?'d':'a';
const v=x=>{const s=x.cells[c].innerText,n=parseFloat(s);return isNaN(n)?s:n};
r.sort((x,y)=>{const p=v(x),q=v(y);return (p>q?1:p<q?-1:0)*(a?-1:1)});r.forEach(x=>b.appendChild(x));}"""


def write_sample_index(out: Path, grids: list[str], header: list[str], rows: list[list[str]],
                       summary: list[str], gap: list[str] = ()) -> Path:
    """A self-contained page (inline CSS/JS, relative links) showing the domain gap, grids and every score."""
    figs = "\n".join(f'<h2>{html.escape(g[:-4].replace("_", " "))}</h2><img src="{html.escape(quote(g))}" '
                     f'alt="{html.escape(g)}">' for g in grids)
    file_col = header.index("file")
    acc_col = header.index("accepted")
    head = "".join(f'<th onclick="sortBy({i})">{html.escape(h)}</th>' for i, h in enumerate(header))
    body = []
    for r in rows:
        cells = "".join(
            f'<td><a href="{html.escape(quote(v))}">{html.escape(v)}</a></td>' if i == file_col
            else f"<td>{html.escape(v)}</td>"
            for i, v in enumerate(r)
        )
        body.append(f'<tr{"" if r[acc_col] == "1" else " class=rej"}>{cells}</tr>')
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>gen sample</title>"
            f"<style>{_STYLE}</style>"
            f"<script>{_SORT_JS}</script></head><body><h1>Sample set</h1>"
            f"<p><b><a href='browse.html'>sample browser</a></b> (every sample, sortable and filterable, "
            f"beside its nearest real) · <a href='filter_report.json'>filter_report.json</a> · "
            f"<a href='samples.csv'>samples.csv</a> · "
            f"<a href='sample_info.json'>sample_info.json</a></p>"
            + (f"<h2>Domain gap: can a classifier tell these samples from real images?</h2>"
               f"<pre>{html.escape(chr(10).join(gap))}</pre>" if gap else "")
            + f"<h2>Filters</h2><pre>{html.escape(chr(10).join(summary))}</pre>"
            f"{figs}<h2>scores</h2><table id='scores'><thead><tr>{head}</tr></thead><tbody>"
            + "\n".join(body) + "</tbody></table></body></html>\n")
    path = out / "index.html"
    atomic_write_text(path, page)
    return path
