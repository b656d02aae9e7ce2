"""The six sections of OUT/index.html, one function per pipeline stage.

Each returns a list of HTML fragments built only from files that exist, with links relative
to OUT, so the page never shows a broken link or image (an empty list reads "not run yet").
File names follow what the commands write (docs/FORMATS.md).
"""

from __future__ import annotations

import html
import json
import math
import statistics
from pathlib import Path
from typing import Any

from classify.core.reportdoc import Bullets, Heading, parse_markdown, render_html_body
from gen.pipeline.curves import plot_training_curves
from gen.sample.domain_gap import gap_lines


def rel(path: Path, out: Path) -> str:
    return html.escape(path.relative_to(out).as_posix(), quote=True)


def img(path: Path, out: Path, caption: str, wide: bool = False) -> str:
    text, cls = html.escape(caption), ' class="wide"' if wide else ""
    return f'<figure{cls}><img src="{rel(path, out)}" alt="{text}"><figcaption>{text}</figcaption></figure>'


def link(path: Path, out: Path, text: str) -> str:
    return f'<a href="{rel(path, out)}">{html.escape(text)}</a>'


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if not math.isfinite(value) else f"{value:.4g}"
    return html.escape(str(value))


def table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{fmt(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _read_json(path: Path) -> Any:
    # A half-written or foreign file must not break the page; it is just not summarised.
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _links(folder: Path, out: Path, names: list[str]) -> list[str]:
    found = [link(folder / n, out, n) for n in names if (folder / n).is_file()]
    return ["<p>files: " + " · ".join(found) + "</p>"] if found else []


def _images(folder: Path, out: Path, items: list[tuple[str, str]]) -> list[str]:
    return [img(folder / n, out, c) for n, c in items if (folder / n).is_file()]


MAX_LISTED = 100


def data_section(out: Path) -> list[str]:
    data = out / "data"
    body = _links(data, out, ["report.md", "manifest.csv", "classes.json"])
    if (data / "report.md").is_file():
        # The report's own title repeats this section's; its ## sections nest under our <h2>.
        # report.md lists every rejected file; the page shows the first MAX_LISTED of each list.
        blocks = [Bullets(b.items[:MAX_LISTED] + [f"… {len(b.items) - MAX_LISTED} more in report.md"])
                  if isinstance(b, Bullets) and len(b.items) > MAX_LISTED else b
                  for b in parse_markdown((data / "report.md").read_text(errors="replace"))
                  if not (isinstance(b, Heading) and b.level == 1)]
        body.append(render_html_body(blocks, data, heading_offset=1))
    return body


JUDGE_METRICS = ["n", "roc_auc", "average_precision", "balanced_accuracy", "minority_f1", "ece", "threshold"]


def judge_section(out: Path) -> list[str]:
    judge = out / "judge"
    body = []
    ev = _read_json(judge / "eval_val.json") or (_read_json(judge / "metrics.json") or {}).get("val")
    if isinstance(ev, dict):
        body.append("<p>Validation metrics of the judge (it never sees test):</p>")
        body.append(table(JUDGE_METRICS, [[ev.get(k, "") for k in JUDGE_METRICS]]))
    body += _images(judge, out, [("confusion_val.png", "confusion matrix (val)"),
                                 ("pr_val.png", "precision-recall (val)"), ("roc_val.png", "ROC (val)")])
    return body + _links(judge, out, ["metrics.json", "eval_val.json", "metrics.jsonl", "config.json"])


def _latest(folder: Path, pattern: str) -> Path | None:
    found = sorted(folder.glob(pattern))
    return found[-1] if found else None


def gan_section(out: Path) -> list[str]:
    gan = out / "gan"
    if not gan.is_dir():
        return []
    curves = gan / "training_curves.png"
    if (gan / "metrics.jsonl").is_file():
        plot_training_curves(gan / "metrics.jsonl", curves)
    body = []
    best = _read_json(gan / "best.json")
    if isinstance(best, dict):
        body.append(f"<p>best snapshot {fmt(best.get('snapshot'))} at kimg {fmt(best.get('kimg'))}: "
                    f"{fmt(best.get('metric'))} = {fmt(best.get('value'))}</p>")
    latest = _latest(gan, "fakes[0-9]*.png")
    if curves.is_file():
        body.append(img(curves, out, "training curves: FD, KD and ADA p against kimg", wide=True))
    body += _images(gan, out, [("reals.png", "real training images"),
                               ("fakes_init.png", "fixed-seed grid at start")])
    if latest is not None:
        body.append(img(latest, out, f"fixed-seed grid, latest ({latest.stem})"))
    return body + _links(gan, out, ["metrics.jsonl", "best.json", "training_options.json"])


def _filter_summary(report: dict) -> list[str]:
    rejected = ", ".join(f"{k} {v}" for k, v in (report.get("rejected_by") or {}).items()) or "none"
    body = [f"<p>{fmt(report.get('n_accepted'))} of {fmt(report.get('n_samples'))} samples accepted; "
            f"rejected by (first failing filter): {html.escape(rejected)}</p>"]
    rows = []
    for cls, pc in (report.get("per_class") or {}).items():
        for reals, block in (("train (in-sample)", pc), ("val (held out)", pc.get("heldout") or {})):
            for which in ("all_vs_real", "all_same_n_vs_real", "accepted_vs_real"):
                if which in block:
                    rows.append([cls, reals, which[: -len("_vs_real")].replace("_", " "),
                                 *_set_cells(block[which])])
    if rows:
        body.append(table(["class", "reals", "set", "n", "Fréchet distance", "kernel distance",
                           "precision"], rows))
        if report.get("set_metrics_note"):
            body.append(f"<p>{html.escape(report['set_metrics_note'])}</p>")
    return body


def _set_cells(stats: dict) -> list[str]:
    metric = next((k for k in stats if k.startswith(("fd", "fid"))), None)
    kd = next((k for k in stats if k.startswith(("kd", "kid")) and not k.endswith(("_std", "_subset"))), None)
    return [stats.get("n", ""), f"{metric}={fmt(stats[metric])}" if metric else "",
            f"{kd}={fmt(stats[kd])}" if kd else "", fmt(stats["precision"]) if "precision" in stats else ""]


def samples_section(out: Path) -> list[str]:
    samples = out / "samples"
    body = []
    if (samples / "browse.html").is_file():
        label = ("sample browser (every sample beside its scores and nearest real; "
                 "mark and export exclude.txt)")
        body.append(f"<p><b>{link(samples / 'browse.html', out, label)}</b></p>")
    if (samples / "index.html").is_file():
        body.append(f"<p>{link(samples / 'index.html', out, 'sample filter page (every score, sortable)')}"
                    "</p>")
    report = _read_json(samples / "filter_report.json")
    if isinstance(report, dict):
        body += _filter_summary(report)
    body += _images(samples, out, [("accepted.png", "accepted samples"),
                                   ("rejected.png", "rejected samples, one row per filter"),
                                   ("nearest_real.png", "samples nearest a train image, beside it"),
                                   ("per_class.png", "accepted samples per class")])
    return body + _links(samples, out, ["samples.csv", "filter_report.json", "sample_info.json"])


OUTLIERS_LISTED = 5  # per class in the page's table; outliers.csv has every image


def explain_section(out: Path) -> list[str]:
    """`classify explain` grids (OUT/explain) and `classify outliers` (OUT/outliers) of the judge."""
    explain, outliers = out / "explain", out / "outliers"
    body = []
    info = _read_json(explain / "explain.json")
    sources = info.get("sources", {}) if isinstance(info, dict) else {}
    if isinstance(info, dict):
        note = f" {info['ensemble_note']}." if info.get("ensemble_note") else ""
        body.append(f"<p>Grad-CAM and Grad-CAM++ heatmaps of {fmt(info.get('model_name'))} "
                    f"at {fmt(info.get('res'))}px, read at layer {fmt(info.get('layer'))} "
                    f"({fmt(info.get('map_size'))} map: {fmt(info.get('layer_rule'))})."
                    f"{html.escape(note)}</p>")
    for src in sources.values():
        if isinstance(src, dict) and (explain / str(src.get("png"))).is_file():
            groups = ", ".join(f"{name} ({g.get('shown')} of {g.get('n')})"
                               for name, g in (src.get("groups") or {}).items())
            body.append(img(explain / str(src["png"]), out, f"{src.get('title')}: {groups}", wide=True))
    body += _links(explain, out, ["explain.csv", "explain.json"])
    report = _read_json(outliers / "outliers.json")
    if isinstance(report, dict) and isinstance(report.get("top"), dict):
        body.append(f"<p>Suspected outliers of the {fmt(report.get('split'))} split: IsolationForest and "
                    "OneClassSVM fitted per class on the judge's penultimate features of the train images "
                    "(higher = odder, rank 1 = the oddest of its class; p = the judge's probability of the "
                    "labelled class).</p>")
        rows = [[c, r.get("rank"), Path(str(r.get("file"))).name, r.get("iforest_score"),
                 r.get("ocsvm_score"), r.get("p_class"), r.get("predicted")]
                for c, top in report["top"].items() if isinstance(top, list) for r in top[:OUTLIERS_LISTED]]
        body.append(table(["class", "rank", "file", "IsolationForest", "OneClassSVM", "p(class)",
                           "predicted"], rows))
    body += _images(outliers, out, [("outliers.png", "the oddest images of each class")])
    return body + _links(outliers, out, ["outliers.csv", "outliers.json"])


ABLATE_METRICS = ["average_precision", "minority_f1", "roc_auc", "balanced_accuracy"]


def _ablation_means(rows: list[dict]) -> str:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r.get("model"), r.get("minority_fraction"), r.get("arm")), []).append(r)
    out_rows = []
    for (model, frac, arm), cells in sorted(groups.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
        means = []
        for m in ABLATE_METRICS:
            vals = [c[m] for c in cells if isinstance(c.get(m), (int, float)) and math.isfinite(c[m])]
            sd = f" ± {statistics.stdev(vals):.3f}" if len(vals) > 1 else ""
            means.append(f"{statistics.fmean(vals):.3f}{sd}" if vals else "n/a")
        out_rows.append([model, frac, arm, len(cells), *means])
    return table(["model", "fraction", "arm", "seeds", *[f"{m} (mean ± sd)" for m in ABLATE_METRICS]],
                 out_rows)


def _answer(report_md: Path) -> list[str]:
    """The bullets under '## Answer' in report.md: the one-paragraph verdict."""
    lines, inside = [], False
    for line in report_md.read_text(errors="replace").splitlines():
        if line.startswith("## "):
            inside = line.strip() == "## Answer"
        elif inside and line.startswith("- "):
            lines.append(f"<li>{html.escape(line[2:])}</li>")
    return [f"<ul>{''.join(lines)}</ul>"] if lines else []


def verdict_section(out: Path) -> list[str]:
    """What the page opens with: the ablation's answer and how far the samples are from real images."""
    body = []
    if (out / "ablate" / "report.md").is_file():
        body += (["<p>Does GAN augmentation help? The ablation's answer:</p>"]
                 + _answer(out / "ablate" / "report.md"))
    report = _read_json(out / "samples" / "filter_report.json")
    gap = report.get("domain_gap") if isinstance(report, dict) else None
    if isinstance(gap, dict) and gap.get("per_class"):
        body.append("<p>Can a classifier tell the synthetic images from real ones (two-sample AUC, "
                    "held-out folds; 0.5 = indistinguishable, 1 = always)?</p>")
        body.append("<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in gap_lines(gap)) + "</ul>")
    return body


def ablate_section(out: Path) -> list[str]:
    ablate = out / "ablate"
    body = []
    if (ablate / "report.html").is_file():
        label = "full ablation report (CIs, paired tests, plots)"
        body.append(f"<p><b>{link(ablate / 'report.html', out, label)}</b></p>")
    if (ablate / "report.md").is_file():
        body += _answer(ablate / "report.md")
    rows = _read_json(ablate / "results.json")
    if isinstance(rows, list) and rows:
        body.append("<p>Test-split metrics per arm over seeds:</p>" + _ablation_means(rows))
    plots = sorted((ablate / "plots").glob("bar_*.png")) + sorted((ablate / "plots").glob("pr_*.png"))
    body += [img(p, out, p.stem.replace("_", " ")) for p in plots[:6]]
    body += [img(p, out, "feature maps of real and synthetic images: PCA (left) and t-SNE (right)", wide=True)
             for p in sorted((ablate / "plots").glob("feature_map*.png"))]
    return body + _links(ablate, out, ["report.md", "results.csv", "results.json", "study.json"])
