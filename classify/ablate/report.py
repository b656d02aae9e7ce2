"""`classify report ABLATE_DIR...`: tables, paired comparisons, plots and plain-words answers.

Reads only `cells/*.json`, so it can run at any time (mid-grid, after a shard, on a laptop
with a copied folder). Writes report.md, report.html (images inlined), results.csv,
results.json and plots/*.png into ABLATE_DIR, or into --out when several folders (say, one
per minority fraction) are combined into one report (classify.ablate.report_sources).
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from classify.ablate.analysis import (
    HEADLINE,
    METRICS,
    arm_is_gan,
    arm_stats,
    best_non_gan,
    comparisons,
    paired,
    values_by_arm,
)
from classify.ablate.config import default_setting, train_keys
from classify.ablate.figures import figure_blocks
from classify.ablate.report_sources import load_records, prepared_info, prepared_minority_fraction
from classify.ablate.runner import failed_cells
from classify.ablate.stats import sentence, summarize
from classify.core import reportdoc as doc
from classify.core.errors import UserError
from classify.core.fileio import atomic_write_json, atomic_write_text


def _f(x: float, digits: int = 3) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def stats_table(rows: list[dict[str, Any]]) -> doc.Table:
    return doc.Table(
        ["model", "minority fraction", "strategy @ ratio", "seeds", "mean ± std", "95% CI (t)"],
        [[r["model"], f"{r['fraction']:g}", r["arm"], str(r["n"]), f"{_f(r['mean'])} ± {_f(r['std'])}",
          f"[{_f(r['ci_low'])}, {_f(r['ci_high'])}]"] for r in rows])


def comparison_table(rows: list[dict[str, Any]]) -> doc.Table:
    return doc.Table(
        ["model", "fraction", "A", "B", "pairs", "mean A−B", "95% CI (paired t)", "bootstrap CI",
         "Wilcoxon p", "Holm p", "verdict"],
        [[r["model"], f"{r['fraction']:g}", c.a, f"{c.b} ({r['kind']})" if r["kind"] != "baseline" else c.b,
          str(c.n), f"{c.diff:+.3f}" if math.isfinite(c.diff) else "n/a",
          f"[{_f(c.ci_low)}, {_f(c.ci_high)}]", f"[{_f(c.boot_low)}, {_f(c.boot_high)}]",
          _f(c.wilcoxon_p, 3), _f(r["holm_p"], 3), c.verdict]
         for r in rows for c in [r["cmp"]]])


def _signed_mean(by_seed: dict[int, float], higher_is_better: bool) -> float:
    mean = summarize(list(by_seed.values())).mean
    return -math.inf if not math.isfinite(mean) else (mean if higher_is_better else -mean)


# Below this test ROC-AUC (or with a CI that reaches 0.5) the reference arm has barely learned the
# task, and differences between arms say more about noise in a threshold than about the arms.
LEARNS_ROC_AUC = 0.7


def learning_warnings(records: list[dict]) -> list[str]:
    """One warning per (model, fraction) whose reference arm (oversample, else baseline, else the
    first non-GAN arm) is near chance on test ROC-AUC: a verdict needs a classifier that learns."""
    out = []
    for (model, fraction), arms in sorted(values_by_arm(records, "roc_auc").items()):
        plain = [a for a in arms if not arm_is_gan(a)]
        ref = next((a for a in ("oversample", "baseline") if a in arms), plain[0] if plain else None)
        if ref is None:
            continue
        s = summarize(list(arms[ref].values()), bounds=(0.0, 1.0))
        if math.isfinite(s.mean) and (s.mean < LEARNS_ROC_AUC or s.ci_low <= 0.5):
            out.append(f"WARNING [{model}, minority fraction {fraction:g}]: the classifier barely learns "
                       f"this task at these settings ({ref}: test ROC-AUC {s.mean:.3f}, "
                       f"95% CI [{_f(s.ci_low)}, {_f(s.ci_high)}]; "
                       f"below {LEARNS_ROC_AUC} or reaching 0.5); the comparison below says little — raise "
                       "--res/--epochs until the reference arm learns.")
    return out


def answer_blocks(records: list[dict]) -> list[doc.Block]:
    """The user's question first: does the best GAN arm beat the best cheap alternative? (Preceded by
    a warning where the classifier barely learns the task: then no comparison means much.)"""
    blocks: list[doc.Block] = [doc.Heading("Answer")]
    items = learning_warnings(records)
    for m in HEADLINE:
        for (model, fraction), arms in sorted(values_by_arm(records, m.key).items()):
            where = f"[{model}, minority fraction {fraction:g}]"
            gan = [a for a in arms if arm_is_gan(a)]
            best = best_non_gan(arms, m)
            if not gan or best is None:
                items.append(f"{where} {_best_arm_only(arms, m, 'GAN' if not gan else 'non-GAN')}")
                continue
            top = max(gan, key=lambda a: _signed_mean(arms[a], m.higher_is_better))
            items.append(f"{where} best GAN arm vs best non-GAN arm: "
                         f"{sentence(paired(arms, top, best, m), m.label)}")
    blocks.append(doc.Bullets(items))
    return blocks


def _best_arm_only(arms: dict[str, dict[int, float]], m, missing: str) -> str:
    """A grid without GAN (or without non-GAN) arms: still name the best arm and test it against baseline."""
    top = max(arms, key=lambda a: _signed_mean(arms[a], m.higher_is_better))
    head = (f"no {missing} strategy in this grid, so no GAN-vs-alternative answer on {m.label}; "
            f"best mean: {top}.")
    if top != "baseline" and "baseline" in arms:
        return f"{head} {sentence(paired(arms, top, 'baseline', m), m.label)}"
    return head


TERMS = [
    "arm: a strategy at one synthetic ratio, written strategy@ratio for GAN strategies (gan_filtered@1 = as "
    "many accepted synthetic images as real minority train images); strategies joined by + are applied "
    "together.",
    "minority F1: F1 of the minority class at the threshold chosen on the validation split.",
    "AP: average precision, the area under the precision-recall curve of the minority class "
    "(threshold-free).",
    "ROC-AUC: probability that a random minority image scores above a random majority one.",
    "balanced accuracy: the mean of per-class recalls at the chosen threshold.",
    "ECE: expected calibration error (lower is better): the gap between predicted confidence and accuracy.",
    "minority fraction: the share of the full data's real minority train images a cell kept.",
]


def caveat_blocks(records: list[dict], notes: list[str] = ()) -> list[doc.Block]:
    items = [
        "Seeds repeat training (init, minority subsample, synthetic draw); the test split is the same for "
        "every cell, so the intervals describe training variability, not test-set sampling error.",
        "Verdicts use the 95% paired t-interval over seeds; a CI that includes 0 is reported as "
        "'no detectable difference'. The percentile bootstrap is shown but not used: with few seeds it is "
        "about [min, max] of the differences. With <= 5 seeds a two-sided Wilcoxon p cannot fall below "
        "0.0625. The per-arm intervals in the tables are clipped to [0, 1], the range of every metric.",
        "Many comparisons are made; 'Holm p' adjusts the Wilcoxon p-values within each metric. Verdicts are "
        "not adjusted, so expect some false 'beats' in a large grid.",
        "The Answer compares the best GAN arm with the best non-GAN arm, each picked on the same test data "
        "it is then compared on; picking the best of several noisy arms inflates each side's mean "
        "(winner's curse). The comparisons with baseline below do not involve such a choice.",
    ]
    by_hand = max((int((r.get("train") or {}).get("n_synthetic_excluded") or 0) for r in records), default=0)
    if by_hand:
        lists = sorted({str((r.get("train_config") or {}).get("synthetic_exclude")) for r in records
                        if (r.get("train_config") or {}).get("synthetic_exclude")})
        items.insert(0, f"{by_hand} sample(s) were excluded by hand from the GAN arms' sample pool "
                        f"(--synthetic-exclude {', '.join(lists)}).")
    leaks = sorted({r["id"] for r in records if r.get("generator_leak")})
    if leaks:
        items.insert(0, f"WARNING: {len(leaks)} cell(s) used a generator that saw more real minority images "
                        f"than the cell allows (--allow-generator-leak): {', '.join(leaks[:8])}"
                        f"{' …' if len(leaks) > 8 else ''}. "
                        "Their results overstate what the GAN can do with scarce data.")
    items += [f"Sample set note: {w}"
              for w in sorted({w for r in records
                               for w in ((r.get("sample_check") or {}).get("warnings") or [])})]
    sources = sorted({r["source_dir"] for r in records if r.get("source_dir")})
    if len(sources) > 1:
        items.append(f"This report combines {len(sources)} ablation folders ({', '.join(sources)}); "
                     "arms are paired by seed only within one minority fraction, whose cells all come "
                     "from one folder.")
    items += minority_majority_notes(records)
    items += list(notes)
    return [doc.Heading("Caveats"), doc.Bullets(items)]


def minority_majority_notes(records: list[dict]) -> list[str]:
    """One line per data folder whose named minority class is the majority of its val or test
    split: 'minority' metrics then describe the common class, and imbalance tools aim the wrong way."""
    out = []
    for data_dir, minority in sorted({((r.get("train_config") or {}).get("data_dir"),
                                       (r.get("train_config") or {}).get("minority_class"))
                                      for r in records}):
        counts = (prepared_info(data_dir) or {}).get("counts") or {}
        for split in ("val", "test"):
            mine = int((counts.get(minority) or {}).get(split, 0))
            others = sum(int(c.get(split, 0)) for name, c in counts.items() if name != minority)
            if minority in counts and mine > others:
                out.append(f"WARNING: the minority class {minority!r} is the majority of the {split} split "
                           f"of {data_dir} ({mine} vs {others} other images): check --minority-class")
    return out


def _gpu(record: dict) -> str:
    name = (record.get("train") or {}).get("device_name")
    return f", GPU {name}" if name else ""


def _data_note(data_dir: str | None, minority: str | None) -> str:
    """What the prepared train split holds, and how the report's minority fraction relates to it."""
    try:
        n_train = int(prepared_info(data_dir)["counts"][minority]["train"])
    except (KeyError, TypeError, ValueError):
        return ""
    kept = prepared_minority_fraction(data_dir) or 1.0
    note = f"; its train split holds {n_train} real {minority} images"
    if kept < 1.0:
        note += (f" (prepare kept {kept:g} of them; the report's minority fraction is of the full data: "
                 f"{kept:g} × the cell's own fraction)")
    return note


def _other_settings(tc: dict) -> str:
    """The cells' other training settings that differ from the defaults, e.g. '; also fit=pad'."""
    shown = {"epochs", "res", "batch", "lr"}
    changed = [f"{k}={tc[k]}" for k in train_keys()
               if k not in shown and k in tc and tc[k] != default_setting(k)]
    return "; also " + ", ".join(changed) if changed else ""


def settings_blocks(records: list[dict]) -> list[doc.Block]:
    first = records[0]
    tc = first.get("train_config", {})
    arms = sorted({r["arm"] for r in records})
    seeds = sorted({int(r["cell"]["seed"]) for r in records})
    total = sum(float(r.get("wall_time_s", 0.0)) for r in records)
    v = first.get("versions", {})
    data_dirs = sorted({str((r.get("train_config") or {}).get("data_dir")) for r in records})
    items = [f"data: {d} — minority class {tc.get('minority_class')!r}"
             + _data_note(d, tc.get("minority_class"))
             for d in data_dirs]
    items += [
        f"cells: {len(records)} finished; arms: {', '.join(arms)}; seeds: {', '.join(map(str, seeds))}",
        f"training: epochs={tc.get('epochs')}, res={tc.get('res')}, batch={tc.get('batch')}, "
        f"lr={tc.get('lr')}, device={tc.get('device')}" + _other_settings(tc),
        f"summed cell wall time: {total / 60:.1f} min (cells may have run in parallel)",
        f"machine: {v.get('platform', 'unknown')}{_gpu(first)}; python {v.get('python')}, "
        f"torch {v.get('torch')}, ganbalance {v.get('ganbalance')}",
    ]
    return [doc.Heading("Settings"), doc.Bullets(items), doc.Heading("Terms"), doc.Bullets(TERMS)]


def result_rows(records: list[dict]) -> list[dict[str, Any]]:
    """Flat per-cell rows (scalar metrics only; curves and scores stay in cells/<id>.json)."""
    rows = []
    for r in records:
        c = r["cell"]
        row = {"id": r["id"], "arm": r["arm"], "strategy": c["strategy"], "model": c["model"],
               "seed": c["seed"], "minority_fraction": c["minority_fraction"],
               "ablation_minority_fraction": c.get("ablation_minority_fraction", c["minority_fraction"]),
               "source": r.get("source_dir"), "synthetic_ratio": c.get("synthetic_ratio"),
               "generator_leak": bool(r.get("generator_leak")), "wall_time_s": r.get("wall_time_s")}
        row |= {k: v for k, v in sorted(r["metrics"].items())
                if isinstance(v, (int, float)) and not isinstance(v, bool)}
        rows.append(row)
    return rows


def _csv_text(rows: list[dict[str, Any]]) -> str:
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def build_blocks(records: list[dict], out_dir: Path, notes: list[str] = ()) -> list[doc.Block]:
    blocks: list[doc.Block] = [doc.Heading("Ablation report", 1)]
    blocks += answer_blocks(records) + caveat_blocks(records, notes) + settings_blocks(records)
    for m in METRICS:
        direction = "higher is better" if m.higher_is_better else "lower is better"
        blocks.append(doc.Heading(f"{m.label} ({direction})"))
        blocks.append(stats_table(arm_stats(records, m.key)))
        rows = comparisons(records, m)
        if rows:
            blocks.append(doc.Heading(f"Paired differences on {m.label}", 3))
            if m in HEADLINE:
                blocks.append(doc.Bullets([f"[{r['model']}, fraction {r['fraction']:g}] "
                                           + sentence(r["cmp"], m.label)
                                           for r in rows]))
            blocks.append(comparison_table(rows))
    blocks += figure_blocks(records, out_dir, [(m.key, m.label) for m in HEADLINE])
    sources = sorted({str(r.get("source_dir") or out_dir) for r in records})
    blocks.append(doc.Para("Every cell: results.csv / results.json; full records with curves: "
                           + ", ".join(f"{d}/cells/<id>.json" for d in sources) + "."))
    return blocks


def write_report(ablate_dirs: str | Path | list[str | Path], out: str | Path | None = None) -> Path:
    """Write report.md, report.html, results.csv/json and plots/; returns the report.md path.

    One folder: the report goes into it. Several: `out` is required (no study's own report is
    overwritten by a combined one).
    """
    dirs = [ablate_dirs] if isinstance(ablate_dirs, (str, Path)) else list(ablate_dirs)
    if not dirs:
        raise UserError("name at least one ablation folder")
    if len({Path(d).resolve() for d in dirs}) < len(dirs):
        raise UserError("an ablation folder is named twice; name each folder once")
    if out is None and len(dirs) > 1:
        raise UserError("combining several ablation folders needs --out REPORT_DIR for the combined report")
    out = Path(out if out is not None else dirs[0])
    records, notes = load_records(dirs)
    if not records:
        failed = sum(len(failed_cells(d)) for d in dirs)
        hint = f"{failed} failed (see failed/ beside cells/)" if failed else "run `classify ablate` first"
        raise UserError(f"{', '.join(map(str, dirs))}: no finished cells yet; {hint}")
    rows = result_rows(records)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "results.csv", _csv_text(rows))
    atomic_write_json(out / "results.json", rows)
    blocks = build_blocks(records, out, notes)
    atomic_write_text(out / "report.md", doc.render_markdown(blocks))
    atomic_write_text(out / "report.html",
                      doc.render_html(blocks, out, title=f"ganbalance ablation — {out.name}"))
    atomic_write_json(out / "warnings.json", learning_warnings(records))
    return out / "report.md"


def report_warnings(report_md: Path) -> list[str]:
    """The warnings written beside a report (the commands print them under the report's path)."""
    path = Path(report_md).parent / "warnings.json"
    return json.loads(path.read_text()) if path.is_file() else []
