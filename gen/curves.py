"""Training curves from `metrics.jsonl`: metric values and ADA p against kimg."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

from classify.fileio import atomic_write_bytes

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


def plot_training_curves(metrics_path: Path, png_path: Path) -> None:
    """Plot FD/KID-like metrics (left) and ADA p (right) against kimg."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in read_metrics(metrics_path) if "kimg" in r]
    fig, (ax_m, ax_p) = plt.subplots(1, 2, figsize=(10, 3.5))
    metric_keys = sorted({k for r in rows for k in r if k.startswith(("fd", "fid", "kd", "kid"))})
    for key in metric_keys:
        pts = [(r["kimg"], r[key]) for r in rows if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
        if pts:
            ax_m.plot(*zip(*pts), marker="o", label=key)
    ax_m.set_xlabel("kimg")
    ax_m.set_title("distance to real (lower is better)")
    if metric_keys:
        ax_m.legend()
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
