"""`OUT/index.html`: one self-contained page that links every report a pipeline wrote.

It works from file:// (relative links only, no server, no scripts, nothing fetched) and
shows only what exists: a step that has not run yet reads "not run yet" instead of
carrying a broken link. The per-stage sections live in `gen.pipeline.sections`.
"""

from __future__ import annotations

import html
from pathlib import Path

from classify.core.fileio import atomic_write_text
from gen.pipeline import sections as s
from gen.pipeline.attempts import read_attempts

STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:.2em} section{border-top:1px solid #ddd;margin-top:1.5em}
img{max-width:100%;border:1px solid #ccc;margin:.3em 0} .missing{color:#999}
figure{display:inline-block;margin:.3em 1em .3em 0;vertical-align:top;max-width:520px}
figure.wide{max-width:100%} figcaption{font-size:90%;color:#555}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}
pre{background:#f6f6f6;padding:.8em;overflow-x:auto;max-height:30em}"""

SECTIONS = [
    ("1. Dataset (classify prepare)", s.data_section),
    ("2. Judge classifier (classify train, eval on val)", s.judge_section),
    ("3. GAN training (gen train)", s.gan_section),
    ("4. Synthetic samples and filters (gen sample)", s.samples_section),
    ("5. What the judge looks at: heatmaps and outliers (classify explain / outliers)", s.explain_section),
    ("6. Ablation: does GAN augmentation help? (classify ablate / report)", s.ablate_section),
]


def _section(title: str, body: list[str]) -> str:
    inner = "\n".join(body) if body else '<p class="missing">not run yet</p>'
    return f"<section><h2>{html.escape(title)}</h2>\n{inner}\n</section>"


def _timings(out: Path, timings: dict[str, float] | None) -> str:
    if not timings:
        return ""
    rows = []
    for name, seconds in timings.items():
        attempts = read_attempts(out / ".steps", name)
        cut = sum(1 for a in attempts if a.get("outcome") != "done")
        rows.append([name, f"{seconds:.0f}",
                     str(len(attempts) or 1) + (f" ({cut} interrupted or failed)" if cut else "")])
    rows.append(["total", f"{sum(timings.values()):.0f}", ""])
    return ("<p>Wall time of each step (seconds, on the machine that ran it), summed over every attempt: "
            "a step that was interrupted and resumed counts the time of both runs.</p>"
            + s.table(["step", "wall s", "attempts"], rows))


def write_site_index(out: Path, timings: dict[str, float] | None = None) -> Path:
    """Write OUT/index.html from whatever the pipeline has produced so far."""
    out = Path(out)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>ganbalance report</title>"
        f"<style>{STYLE}</style></head><body>",
        "<h1>ganbalance report</h1><p>Data → judge → StyleGAN2-ADA → filtered samples → ablation.</p>",
        _section("Verdict", s.verdict_section(out)),
        *(_section(title, build(out)) for title, build in SECTIONS),
        _timings(out, timings),
        "</body></html>",
    ]
    index = out / "index.html"
    atomic_write_text(index, "\n".join(p for p in parts if p))
    return index
