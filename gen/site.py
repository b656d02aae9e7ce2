"""`OUT/index.html`: one self-contained page that links every report a pipeline wrote.

It works from file:// (relative links only, no server, no scripts fetched) and shows what
exists: a step that has not run yet is listed as "not run yet" instead of a broken link.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from classify.fileio import atomic_write_text

STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:.2em} section{border-top:1px solid #ddd;margin-top:1.5em}
img{max-width:100%;border:1px solid #ccc;margin:.3em 0} .missing{color:#999}
table{border-collapse:collapse} td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}
pre{background:#f6f6f6;padding:.8em;overflow-x:auto;max-height:30em}"""


def _rel(path: Path, out: Path) -> str:
    return html.escape(path.relative_to(out).as_posix(), quote=True)


def _img(path: Path, out: Path, caption: str) -> str:
    return f'<figure><img src="{_rel(path, out)}" alt="{html.escape(caption)}"><figcaption>{html.escape(caption)}</figcaption></figure>'


def _link(path: Path, out: Path, text: str) -> str:
    return f'<a href="{_rel(path, out)}">{html.escape(text)}</a>'


def _latest(folder: Path, pattern: str) -> Path | None:
    found = sorted(folder.glob(pattern))
    return found[-1] if found else None


def _section(title: str, body: list[str]) -> str:
    inner = "\n".join(body) if body else '<p class="missing">not run yet</p>'
    return f"<section><h2>{html.escape(title)}</h2>\n{inner}\n</section>"


def _data_section(out: Path) -> list[str]:
    report = out / "data" / "report.md"
    if not report.is_file():
        return []
    text = report.read_text(errors="replace")
    return [_link(report, out, "dataset report (report.md)"), f"<pre>{html.escape(text[:20000])}</pre>"]


def _gan_section(out: Path) -> list[str]:
    gan = out / "gan"
    if not gan.is_dir():
        return []
    body = []
    curves = gan / "training_curves.png"
    if (gan / "metrics.jsonl").is_file():
        from gen.curves import plot_training_curves

        plot_training_curves(gan / "metrics.jsonl", curves)
    for path, caption in [
        (curves, "training curves: FD/KID and ADA p against kimg"),
        (gan / "reals.png", "real training images"),
        (_latest(gan, "fakes[0-9]*.png"), "latest fixed-seed grid"),
    ]:
        if path is not None and path.is_file():
            body.append(_img(path, out, caption))
    return body


def _samples_section(out: Path) -> list[str]:
    samples = out / "samples"
    body = []
    if (samples / "index.html").is_file():
        body.append(_link(samples / "index.html", out, "sample filter page (scores of every sample)"))
    report = samples / "filter_report.json"
    if report.is_file():
        body.append(f"<pre>{html.escape(json.dumps(json.loads(report.read_text()), indent=1)[:8000])}</pre>")
    for name, caption in [("accepted.png", "accepted samples"), ("rejected.png", "rejected samples, by filter")]:
        if (samples / name).is_file():
            body.append(_img(samples / name, out, caption))
    return body


def _judge_section(out: Path) -> list[str]:
    judge = out / "judge"
    body = []
    for name in ("eval.json", "metrics.jsonl"):
        if (judge / name).is_file():
            body.append(_link(judge / name, out, f"judge {name}"))
    return body


def _ablate_section(out: Path) -> list[str]:
    ablate = out / "ablate"
    body = []
    for name, text in [("report.html", "ablation report"), ("report.md", "ablation report (markdown)"),
                       ("results.csv", "every cell (CSV)")]:
        if (ablate / name).is_file():
            body.append(_link(ablate / name, out, text))
    for png in sorted(ablate.glob("*.png"))[:4]:
        body.append(_img(png, out, png.stem.replace("_", " ")))
    return body


def write_index(out: Path, timings: dict[str, float] | None = None) -> Path:
    """Write OUT/index.html from whatever the pipeline has produced so far."""
    out = Path(out)
    rows = "".join(f"<tr><td style='text-align:left'>{html.escape(k)}</td><td>{v:.0f}</td></tr>"
                   for k, v in (timings or {}).items())
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>ganbalance report</title><style>{STYLE}</style></head><body>",
        "<h1>ganbalance report</h1><p>Data → judge → StyleGAN2-ADA → filtered samples → ablation.</p>",
        f"<table><tr><th>step</th><th>wall s</th></tr>{rows}</table>" if rows else "",
        _section("1. Dataset", _data_section(out)),
        _section("2. Judge classifier", _judge_section(out)),
        _section("3. GAN training", _gan_section(out)),
        _section("4. Synthetic samples and filters", _samples_section(out)),
        _section("5. Ablation: does GAN augmentation help?", _ablate_section(out)),
        "</body></html>",
    ]
    index = out / "index.html"
    atomic_write_text(index, "\n".join(p for p in parts if p))
    return index
