"""PNG plots for `classify eval`: confusion matrix, precision-recall and ROC curves."""

from __future__ import annotations

import io
from pathlib import Path

from classify.fileio import atomic_write_bytes


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def _figure():
    import matplotlib

    matplotlib.use("Agg")  # headless: eval runs on servers without a display
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(4.2, 3.8))


def plot_confusion(m: dict, path: Path) -> None:
    fig, ax = _figure()
    cm = m["confusion"]
    ax.imshow(cm, cmap="Blues")
    k = len(cm)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(cm[i][j]), ha="center", va="center", color="black")
    ax.set_xticks(range(k), m["classes"], rotation=30)
    ax.set_yticks(range(k), m["classes"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{m['split']} confusion (n={m['n']})")
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


def write_eval_plots(m: dict, out_dir: Path) -> list[Path]:
    out_dir = Path(out_dir)
    paths = [out_dir / f"confusion_{m['split']}.png", out_dir / f"pr_{m['split']}.png", out_dir / f"roc_{m['split']}.png"]
    for fn, p in zip((plot_confusion, plot_pr, plot_roc), paths):
        fn(m, p)
    return paths
