"""Training curves from `metrics.jsonl`: FD, KD and ADA p against kimg."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

from classify.core.fileio import atomic_write_bytes

# Keys that are not curves: bookkeeping written on every line.
_SKIP = {"kimg", "tick", "time", "timestamp", "step", "nimg"}


def read_metrics(path: Path) -> list[dict]:
    """Parse metrics.jsonl, skipping a torn last line (a kill can cut the final write)."""
    rows = []
    for line in Path(path).read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def _metric_keys(rows: list[dict], prefixes: tuple[str, ...]) -> list[str]:
    # kd_judge_std / kd_judge_subset ride along with kd_judge; they are not curves of their own.
    return sorted({k for r in rows for k in r
                   if k.startswith(prefixes) and not k.endswith(("_std", "_subset"))})


def _plot_metric(ax, rows: list[dict], keys: list[str], title: str) -> None:
    for key in keys:
        pts = [(r["kimg"], r[key]) for r in rows
               if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
        if pts:
            ax.plot(*zip(*pts), marker="o", label=key)
    ax.set_xlabel("kimg")
    ax.set_title(title)
    if keys:
        ax.legend()


def plot_training_curves(metrics_path: Path, png_path: Path) -> None:
    """Plot Fréchet distances, kernel distances and ADA p against kimg, one panel each
    (FD and KD differ by orders of magnitude, so they do not share an axis)."""
    import matplotlib  # noqa: PLC0415 — matplotlib: heavy, only for this figure

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415 — after use("Agg")

    rows = [r for r in read_metrics(metrics_path) if "kimg" in r]
    fig, (ax_fd, ax_kd, ax_p) = plt.subplots(1, 3, figsize=(13, 3.5))
    _plot_metric(ax_fd, rows, _metric_keys(rows, ("fd", "fid")),
                 "Fréchet distance to reals (lower is better)")
    _plot_metric(ax_kd, rows, _metric_keys(rows, ("kd", "kid")), "kernel distance to reals (lower is better)")
    p_key = next((k for k in ("ada_p", "augment_p", "p") if any(k in r for r in rows)), None)
    if p_key:
        ax_p.plot([r["kimg"] for r in rows if p_key in r], [r[p_key] for r in rows if p_key in r])
    ax_p.set_xlabel("kimg")
    ax_p.set_title("ADA augmentation probability p")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    atomic_write_bytes(png_path, buf.getvalue())
