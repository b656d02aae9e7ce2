"""The report's figures: draw them into ABLATE_DIR/plots/ and return the blocks that show them.

Plots that would carry no information are skipped rather than drawn empty: metric vs ratio
needs more than one synthetic ratio, metric vs fraction more than one minority fraction.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from classify.ablate import plots
from classify.ablate.analysis import METRICS, arm_is_gan, arm_stats, best_non_gan, values_by_arm
from classify.ablate.feature_map import explanation_blocks, feature_map_blocks
from classify.core import reportdoc as doc
from classify.core.errors import UserError
from classify.core.fileio import atomic_write_bytes


def _save(out_dir: Path, name: str, png: bytes, caption: str) -> doc.Image:
    atomic_write_bytes(out_dir / "plots" / name, png)
    return doc.Image(f"plots/{name}", caption)


def _series_label(r: dict[str, Any], many_panels: bool, base: str) -> str:
    return f"{base} ({r['model']}, frac {r['fraction']:g})" if many_panels else base


def _without_ratio(arm: str) -> str:
    """'gan@2/all/w0.5' -> 'gan/all/w0.5': one line per strategy and synthetic variant."""
    strategy, _, rest = arm.partition("@")
    tags = rest.split("/")[1:]
    return "/".join([strategy, *tags])


def ratio_figure(rows: list[dict[str, Any]], records: list[dict], key: str, label: str) -> bytes | None:
    gan = [r for r in rows if arm_is_gan(r["arm"]) and r["ratio"] is not None]
    if len({r["ratio"] for r in gan}) < 2:
        return None
    panels = {(r["model"], r["fraction"]) for r in rows}
    many = len(panels) > 1
    series = [dict(r, series=_series_label(r, many, _without_ratio(r["arm"]))) for r in gan]
    refs = []
    if not many:
        # One panel: show the cheap alternatives as reference lines the GAN has to clear.
        ((model, fraction),) = panels
        arms = values_by_arm(records, key)[(model, fraction)]
        metric = next(m for m in METRICS if m.key == key)
        names = {"baseline", best_non_gan(arms, metric)} & set(arms)
        refs = [{"label": n, "mean": r["mean"]} for n in sorted(names) for r in rows if r["arm"] == n]
    return plots.metric_vs(series, "ratio", "synthetic images per real minority image", label, refs)


def fraction_figure(rows: list[dict[str, Any]], label: str) -> bytes | None:
    if len({r["fraction"] for r in rows}) < 2:
        return None
    many_models = len({r["model"] for r in rows}) > 1
    series = [dict(r, series=f"{r['arm']} ({r['model']})" if many_models else r["arm"]) for r in rows]
    return plots.metric_vs(series, "fraction", "fraction of real minority train images kept", label)


def pr_figures(records: list[dict], out_dir: Path) -> list[doc.Image]:
    """PR curves of the best seed (by test AP) per arm, one figure per (model, fraction)."""
    best: dict[tuple[str, float], dict[str, dict]] = {}
    for r in records:
        pr = r["metrics"].get("pr") or {}
        if not pr.get("precision") or not pr.get("recall"):
            continue
        panel = best.setdefault((r["cell"]["model"], float(r["cell"]["minority_fraction"])), {})
        ap = float(r["metrics"].get("average_precision", float("-inf")))
        if (r["arm"] not in panel
                or ap > float(panel[r["arm"]]["metrics"].get("average_precision", float("-inf")))):
            panel[r["arm"]] = r
    images = []
    for (model, fraction), arms in sorted(best.items()):
        curves = [(f"{arm} (seed {r['cell']['seed']}, "
                   f"AP {r['metrics'].get('average_precision', float('nan')):.3f})",
                   r["metrics"]["pr"]["recall"], r["metrics"]["pr"]["precision"])
                  for arm, r in sorted(arms.items())]
        name = f"pr_{model}_frac{fraction:g}.png"
        title = (f"{model}, minority fraction {fraction:g}: "
                 "best seed per strategy (optimistic by construction)")
        images.append(_save(out_dir, name, plots.pr_curves(curves, title), title))
    return images


def sample_grid_images(records: list[dict], out_dir: Path) -> list[doc.Image]:
    """Copy accepted.png / rejected.png of every sample set the cells used next to the report."""
    dirs = sorted({(r.get("sample_check") or {}).get("samples_dir") for r in records} - {None})
    images = []
    for k, samples in enumerate(dirs):
        for name in ("accepted.png", "rejected.png"):
            src = Path(samples) / name
            if src.is_file():
                dest = f"samples{k}_{name}"
                atomic_write_bytes(out_dir / "plots" / dest, src.read_bytes())
                images.append(doc.Image(f"plots/{dest}", f"{name[:-4]} samples of {samples}"))
    return images


def _auc_text(test: dict | None) -> str:
    return "n/a" if not test or test.get("auc") is None else f"{test['auc']:.3f}"


def domain_gap_table(records: list[dict]) -> doc.Table | None:
    """Per sample set and class: the two-sample AUCs of its filter_report.json (0.5 = a classifier
    cannot tell the samples from the real train images) and the mean brightness beside the reals'."""
    dirs = sorted({(r.get("sample_check") or {}).get("samples_dir") for r in records} - {None})
    rows = []
    for samples in dirs:
        try:
            gap = json.loads((Path(samples) / "filter_report.json").read_text()).get("domain_gap") or {}
        except (OSError, ValueError):
            continue
        for cls, entry in gap.get("per_class", {}).items():
            st = entry.get("stats", {})
            bright = [st.get(k, {}).get("brightness", {}).get("mean")
                      for k in ("real_train", "all", "accepted")]
            for space in ("pixels", "features"):
                t = entry.get(space)
                if t:
                    rows.append([str(samples), cls, space, _auc_text(t.get("all")),
                                 _auc_text(t.get("accepted")), _auc_text(t.get("real_train_vs_val")),
                                 " / ".join("n/a" if b is None else f"{b:.3f}" for b in bright)])
    if not rows:
        return None
    return doc.Table(["sample set", "class", "on", "two-sample AUC: all", "accepted",
                      "real train vs val (floor)", "mean brightness: reals / all / accepted"], rows)


def figure_blocks(records: list[dict], out_dir: Path, metrics: list[tuple[str, str]]) -> list[doc.Block]:
    blocks: list[doc.Block] = [doc.Heading("Plots")]
    for key, label in metrics:
        rows = arm_stats(records, key)
        blocks.append(_save(out_dir, f"bar_{key}.png", plots.bar_chart(rows, label, arm_is_gan),
                            f"{label}: mean and 95% CI over seeds per strategy "
                            "(orange: GAN, grey: baseline)"))
        ratio = ratio_figure(rows, records, key, label)
        if ratio is not None:
            blocks.append(_save(out_dir, f"ratio_{key}.png", ratio, f"{label} vs synthetic ratio"))
        fraction = fraction_figure(rows, label)
        if fraction is not None:
            blocks.append(_save(out_dir, f"fraction_{key}.png", fraction, f"{label} vs minority fraction"))
    blocks += pr_figures(records, out_dir)
    grids = sample_grid_images(records, out_dir)
    gap = domain_gap_table(records)
    if grids or gap:
        blocks.append(doc.Heading("Sample sets used"))
    if gap is not None:
        blocks += [doc.Para("Domain gap: can a logistic regression tell the samples from the real train "
                            "images of their class (held-out folds)? 0.5 = indistinguishable, 1 = always; "
                            "the floor is the same test between two real sets."), gap]
    blocks += grids
    browsers = sorted({str(Path(d) / "browse.html") for d in
                       {(r.get("sample_check") or {}).get("samples_dir") for r in records} - {None}
                       if (Path(d) / "browse.html").is_file()})
    if browsers:
        blocks.append(doc.Para("Every sample beside its scores and nearest real image (open in a browser): "
                               + ", ".join(f"`{b}`" for b in browsers)))
    # One map per ablation folder: each has its own data folder and sample set.
    sources = sorted({str(r.get("source_dir")) for r in records})
    maps: list[doc.Block] = []
    for k, source in enumerate(sources):
        name = "feature_map.png" if len(sources) == 1 else f"feature_map{k}.png"
        mine = [r for r in records if str(r.get("source_dir")) == source]
        try:
            maps += feature_map_blocks(mine, out_dir, name)
        except UserError as exc:  # a moved data folder must not cost the whole report
            maps.append(doc.Para(f"No feature map for {source}: {exc}"))
        try:
            maps += explanation_blocks(mine, out_dir, "" if len(sources) == 1 else str(k))
        except UserError as exc:
            maps.append(doc.Para(f"No heatmaps or outlier table for {source}: {exc}"))
    return blocks + ([doc.Heading("Feature map, heatmaps and outliers")] + maps if maps else [])
