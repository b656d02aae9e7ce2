"""Picture grids for `classify explain` and `classify outliers`: rows of captioned image tiles.

The tiles are display copies of the images a model judged: the same decoding and fit as the
prepared data (or the sample PNGs), drawn at DISPLAY_RES so that a thin crack stays visible
even when the model itself saw 32 px. Figures are drawn on `matplotlib.figure.Figure` with an
Agg canvas (no pyplot state, no display needed) and returned as PNG bytes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from classify.core.errors import UserError
from classify.data.images import ImageRejected, decode_image, fit_square, to_channels

DISPLAY_RES = 128


@dataclass
class TileRow:
    label: str  # shown at the left of the row
    tiles: list[np.ndarray] = field(default_factory=list)  # uint8 [H, W, 3] each
    captions: list[str] = field(default_factory=list)  # under each tile


def display_res(model_res: int) -> int:
    return max(int(model_res), DISPLAY_RES)


def decode_for_display(paths: Sequence[Path], res: int, channels: int, fit: str) -> torch.Tensor:
    """uint8 [N, C, res, res] of image files through prepare's decoding and the given fit."""
    out = torch.empty((len(paths), channels, res, res), dtype=torch.uint8)
    for i, path in enumerate(paths):
        try:
            pixels = decode_image(path).pixels
        except (ImageRejected, OSError) as exc:
            raise UserError(f"cannot read {path} ({exc}); "
                            "restore the file (or re-prepare the data)") from None
        square = fit_square(to_channels(pixels, channels), res, fit)
        out[i] = torch.from_numpy(np.array(square.transpose(2, 0, 1)))
    return out


def to_rgb(x_uint8: torch.Tensor) -> np.ndarray:
    """uint8 [N, C, H, W] (C = 1 or 3) -> uint8 [N, H, W, 3]."""
    x = x_uint8[:, :3]
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return x.permute(0, 2, 3, 1).contiguous().numpy()


def tile_figure(rows: Sequence[TileRow], ncols: int, title: str) -> bytes:
    """One PNG: each row's tiles left to right under its label; an empty row reads 'none'."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415 — matplotlib: heavy, only for figures
    from matplotlib.figure import Figure  # noqa: PLC0415 — matplotlib: heavy, only for figures

    ncols = max(1, ncols, *(len(r.tiles) for r in rows)) if rows else max(1, ncols)
    width, height = 1.6 + 1.15 * ncols, 1.2 + 1.35 * max(1, len(rows))  # inches
    fig = Figure(figsize=(width, height))
    grid = fig.add_gridspec(max(1, len(rows)), ncols, left=1.5 / width, right=0.99, top=1 - 0.7 / height,
                            bottom=0.4 / height, wspace=0.08, hspace=0.4)
    for r, row in enumerate(rows):
        for c in range(ncols):
            ax = fig.add_subplot(grid[r, c])
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(row.tiles):
                ax.imshow(row.tiles[c], interpolation="bilinear")
                if c < len(row.captions) and row.captions[c]:
                    ax.set_xlabel(row.captions[c], fontsize=6, labelpad=1)
            else:
                ax.axis("off")
                if c == 0:
                    ax.text(0.5, 0.5, "none", ha="center", va="center", fontsize=8, color="#777")
            if c == 0:
                box = ax.get_position()
                fig.text(0.01, (box.y0 + box.y1) / 2, row.label, ha="left", va="center", fontsize=7,
                         wrap=True)
    fig.suptitle(title, fontsize=8)
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()
