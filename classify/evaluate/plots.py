"""PNG plots for `classify eval`: confusion matrix, precision-recall and ROC curves."""

from __future__ import annotations

import io
from pathlib import Path

from classify.core.fileio import atomic_write_bytes


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt  # noqa: PLC0415 — matplotlib: heavy, only for figures

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def _figure():
    import matplotlib  # noqa: PLC0415 — matplotlib: heavy, only for figures

    matplotlib.use("Agg")  # headless: eval runs on servers without a display
    import matplotlib.pyplot as plt  # noqa: PLC0415 — matplotlib: heavy, only for figures

    return plt.subplots(figsize=(4.2, 3.8))


def plot_confusion(m: dict, path: Path) -> None:
    fig, ax = _figure()
    cm = m["confusion"]
    ax.imshow(cm, cmap="Blues")
    k, top = len(cm), max(max(row) for row in cm) or 1
    for i in range(k):
        for j in range(k):  # white digits on the dark half of the colour map, or they vanish
            ax.text(j, i, str(cm[i][j]), ha="center", va="center",
                    color="white" if cm[i][j] > top / 2 else "black")
    ax.set_xticks(range(k), m["classes"], rotation=30)
    ax.set_yticks(range(k), m["classes"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    thr = "argmax" if m.get("threshold") is None else f"threshold {m['threshold']:.3g}"
    ax.set_title(f"{m['split']} confusion (n={m['n']}, {thr})")
    _save(fig, path)


def plot_pr(m: dict, path: Path) -> None:
    fig, ax = _figure()
    ax.plot(m["pr"]["recall"], m["pr"]["precision"], drawstyle="steps-post")
    ax.set_xlabel(f"recall ({m['positive_class']})")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.01)
    ax.set_title(f"{m['split']} PR, AP={m['average_precision']:.3f}")
    _save(fig, path)


def plot_roc(m: dict, path: Path) -> None:
    fig, ax = _figure()
    ax.plot(m["roc"]["fpr"], m["roc"]["tpr"])
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel(f"true positive rate ({m['positive_class']})")
    ax.set_title(f"{m['split']} ROC, AUC={m['roc_auc']:.3f}")
    _save(fig, path)


def write_eval_plots(m: dict, out_dir: Path, suffix: str = "") -> list[Path]:
    """confusion/pr/roc_<split><suffix>.png; the suffix keeps e.g. a threshold experiment apart."""
    out_dir = Path(out_dir)
    paths = [out_dir / f"{kind}_{m['split']}{suffix}.png" for kind in ("confusion", "pr", "roc")]
    for fn, p in zip((plot_confusion, plot_pr, plot_roc), paths):
        fn(m, p)
    return paths
