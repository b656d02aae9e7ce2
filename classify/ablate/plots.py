"""Matplotlib figures for the ablation report, returned as PNG bytes.

Figures are built on `matplotlib.figure.Figure` with an Agg canvas rather than pyplot, so no
global figure state or backend switch leaks into the caller (and nothing needs a display).
Inputs are plain rows: {"arm", "model", "fraction", "ratio", "mean", "ci_low", "ci_high", ...}.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

GAN_COLOUR, OTHER_COLOUR, BASE_COLOUR = "#d95f02", "#7570b3", "#999999"


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def _yerr(rows: Sequence[dict]) -> np.ndarray:
    # Asymmetric error bars from the CI; NaN CIs (one seed) draw no bar instead of a fake one.
    lo = [r["mean"] - r["ci_low"] if math.isfinite(r["ci_low"]) else 0.0 for r in rows]
    hi = [r["ci_high"] - r["mean"] if math.isfinite(r["ci_high"]) else 0.0 for r in rows]
    return np.array([lo, hi])


def _panels(rows: Sequence[dict]) -> list[tuple[str, float]]:
    return sorted({(r["model"], r["fraction"]) for r in rows})


def bar_chart(rows: Sequence[dict], metric_label: str, is_gan) -> bytes:
    """Mean with 95% CI per arm; one panel per (model, minority fraction)."""
    panels = _panels(rows)
    fig = Figure(figsize=(max(5.0, 0.6 * len(rows) / max(1, len(panels)) + 2) * len(panels), 4.2))
    for k, (model, fraction) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1)
        sub = [r for r in rows if (r["model"], r["fraction"]) == (model, fraction)]
        colours = [BASE_COLOUR if r["arm"] == "baseline" else GAN_COLOUR if is_gan(r["arm"]) else OTHER_COLOUR
                   for r in sub]
        ax.bar(range(len(sub)), [r["mean"] for r in sub], yerr=_yerr(sub), color=colours, capsize=3)
        ax.set_xticks(range(len(sub)), [r["arm"] for r in sub], rotation=45, ha="right", fontsize=8)
        ax.set_title(f"{model}, minority fraction {fraction:g}", fontsize=9)
        ax.set_ylabel(f"{metric_label} (mean, 95% CI)")
        ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def metric_vs(rows: Sequence[dict], x_key: str, x_label: str, metric_label: str,
              reference: Sequence[dict] = ()) -> bytes:
    """One line (mean ± CI) per series; `reference` rows are drawn as dashed horizontal lines.

    rows: {"series", x_key, "mean", "ci_low", "ci_high"}; reference: {"label", "mean"}.
    """
    fig = Figure(figsize=(6.5, 4.2))
    ax = fig.add_subplot(1, 1, 1)
    for series in sorted({r["series"] for r in rows}):
        sub = sorted((r for r in rows if r["series"] == series), key=lambda r: r[x_key])
        ax.errorbar([r[x_key] for r in sub], [r["mean"] for r in sub], yerr=_yerr(sub),
                    marker="o", capsize=3, label=series)
    for ref in reference:
        ax.axhline(ref["mean"], linestyle="--", linewidth=1, color=BASE_COLOUR)
        ax.annotate(ref["label"], (ax.get_xlim()[0], ref["mean"]), fontsize=7, color="#555",
                    xytext=(2, 2), textcoords="offset points")
    ax.set_xlabel(x_label)
    ax.set_ylabel(f"{metric_label} (mean, 95% CI)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return _png(fig)


def pr_curves(curves: Sequence[tuple[str, Sequence[float], Sequence[float]]], title: str) -> bytes:
    """Precision-recall curves: (label, recall, precision) per line."""
    fig = Figure(figsize=(5.5, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    for label, recall, precision in curves:
        ax.plot(recall, precision, linewidth=1.2, label=label)
    ax.set_xlabel("recall (minority)")
    ax.set_ylabel("precision (minority)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    return _png(fig)


def _groups(points: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
    return [(name, np.asarray(x, dtype=float)) for name, x in points.items() if len(x)]


def pca_projection(stacked: np.ndarray) -> np.ndarray:
    """[N, 1 or 2]: two principal axes where the data allow them; a lone point sits at 0."""
    from sklearn.decomposition import PCA  # noqa: PLC0415 — scikit-learn: heavy, only this step needs it

    if len(stacked) <= 1:
        return np.zeros((len(stacked), 1))
    return PCA(n_components=min(2, *stacked.shape), svd_solver="full").fit_transform(stacked)


TSNE_MIN_POINTS = 5


def tsne_perplexity(n: int) -> float:
    """sklearn's default 30, lowered for small sets (it must stay below the number of points)."""
    return float(min(30, max(1, (n - 1) // 3)))


def tsne_projection(stacked: np.ndarray, seed: int = 0, perplexity: float | None = None) -> np.ndarray:
    """[N, 2] t-SNE embedding: the same points and seed give the same map. With the PCA start used
    here the seed did not change the map in a check (50 points, seeds 0 and 1); it is fixed and
    stated anyway, since with a random start it would."""
    from sklearn.manifold import TSNE  # noqa: PLC0415 — scikit-learn: heavy, only this step needs it

    perplexity = tsne_perplexity(len(stacked)) if perplexity is None else perplexity
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(stacked)


_MARKERS = (("real train", "o"), ("real test", "^"), ("synthetic accepted", "s"), ("synthetic rejected", "x"))


def _scatter(ax, groups: list[tuple[str, np.ndarray]], proj: np.ndarray, xlabel: str, ylabel: str) -> None:
    start = 0
    for name, x in groups:
        part = proj[start:start + len(x)]
        start += len(x)
        marker = next((m for prefix, m in _MARKERS if name.startswith(prefix)), "o")
        ax.scatter(part[:, 0], part[:, 1] if part.shape[1] > 1 else np.zeros(len(part)), s=8, alpha=0.6,
                   marker=marker, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)


def feature_map(points: dict[str, np.ndarray], title: str) -> bytes:
    """2-D PCA of feature vectors, one colour per group ('real train', 'real test', 'synthetic')."""
    groups = _groups(points)
    fig = Figure(figsize=(5.5, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    _scatter(ax, groups, pca_projection(np.concatenate([x for _, x in groups])), "PC 1", "PC 2")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return _png(fig)


def feature_maps(points: dict[str, np.ndarray], title: str, seed: int = 0) -> tuple[bytes, float | None]:
    """PCA (left) beside t-SNE (right) of the same points; returns the PNG and the perplexity used
    (None when there are too few points for t-SNE, whose panel then says so)."""
    groups = _groups(points)
    stacked = np.concatenate([x for _, x in groups])
    fig = Figure(figsize=(11.5, 4.8))
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    _scatter(left, groups, pca_projection(stacked), "PC 1", "PC 2")
    left.set_title("PCA", fontsize=9)
    perplexity = None
    if len(stacked) >= TSNE_MIN_POINTS:
        perplexity = tsne_perplexity(len(stacked))
        _scatter(right, groups, tsne_projection(stacked, seed, perplexity), "t-SNE 1", "t-SNE 2")
        right.set_title(f"t-SNE (perplexity {perplexity:g}, seed {seed})", fontsize=9)
    else:
        right.text(0.5, 0.5, f"t-SNE needs at least {TSNE_MIN_POINTS} points", ha="center", va="center")
        right.set_axis_off()
    left.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    return _png(fig), perplexity
