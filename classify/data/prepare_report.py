"""report.md for a prepared folder: what a person checks before training on it.

Counts per class and split, imbalance ratio, duplicate groups, every rejected file with
its reason, every conversion note, a size/mode histogram, and the aspect-ratio spread with
what `--fit auto` resolves to.
"""

from __future__ import annotations

import html

from collections import Counter, defaultdict
from typing import Any

from classify.data.aspect import AUTO_PAD_SHARE, AUTO_RATIO, crop_warning
from classify.data.images import LOW_RANGE_NOTE
from classify.data.splits import SPLITS

# Long per-file lists are cut here so report.md stays readable; rejections are never cut.
MAX_LISTED = 50


def md_text(text: str) -> str:
    """User data (class names, warnings quoting them) as Markdown text: no raw HTML, no table breaks."""
    return html.escape(str(text), quote=False).replace("|", "\\|")


def build_prepare_report(config: dict[str, Any], rows, rejected: list[tuple[str, str]], counts,
                         manifest_hash: str, aspect: dict[str, Any], warnings: list[str] | None = None) -> str:
    """report.md; `warnings` (default: prepare_warnings) open it."""
    if warnings is None:
        warnings = prepare_warnings(rows, counts, config.get("minority_class"), aspect)
    parts = [
        "# Prepared dataset report\n",
        *(["## Warnings\n\n" + "\n".join(f"- {md_text(w)}" for w in warnings) + "\n"] if warnings else []),
        _settings(config, rows, rejected, manifest_hash),
        _count_table(counts),
        _imbalance(counts),
        _aspect(aspect),
        _duplicates(rows),
        _rejections(rejected),
        _notes(rows),
        _histograms(rows),
    ]
    return "\n".join(parts)


# Why each split must hold every class: named in the warning so the user knows what breaks.
SPLIT_NEEDS = {
    "train": "classify train needs it",
    "val": "classify train needs it to pick the epoch and the threshold",
    "test": "classify eval and ablations cannot measure it",
}


def split_warnings(counts: dict[str, dict[str, int]]) -> list[str]:
    """One line per (class, split) with no images."""
    return [f"class {label} has no {split} images ({need}); add images of it or change --val/--test"
            for label, per in counts.items() for split, need in SPLIT_NEEDS.items() if per.get(split, 0) == 0]


def prepare_warnings(rows, counts: dict[str, dict[str, int]], minority_class: str | None = None,
                     aspect: dict[str, Any] | None = None) -> list[str]:
    """What the user must hear before training on the folder (top of report.md and the CLI)."""
    return (split_warnings(counts) + minority_warnings(counts, minority_class) + decode_warnings(rows)
            + crop_warning(aspect or {}))


def minority_warnings(counts: dict[str, dict[str, int]], minority_class: str | None) -> list[str]:
    """One line when the class named --minority-class holds most of val or of test."""
    if not minority_class or minority_class not in counts:
        return []
    where = []
    for split in ("val", "test"):
        mine = counts[minority_class].get(split, 0)
        total = sum(per.get(split, 0) for per in counts.values())
        if mine > total - mine:
            where.append(f"{split} ({mine} of {total} images)")
    if not where:
        return []
    return [f"--minority-class {minority_class} is the majority of {' and '.join(where)}: it is not the rare class "
            "here — check the class name (the minority metrics would describe the common class)"]


def decode_warnings(rows) -> list[str]:
    """Conversions that likely destroyed the signal (see images.LOW_RANGE_NOTE)."""
    dark = sum(1 for r in rows if LOW_RANGE_NOTE in r["note"])
    if not dark:
        return []
    return [f"{dark} 16-bit image(s) use only values below 4096 and are nearly black after the fixed 16-to-8-bit "
            "scaling; convert them to 8 bit with your camera's real bit depth before `classify prepare`"]


def _settings(config: dict[str, Any], rows, rejected, manifest_hash: str) -> str:
    lines = ["## Settings\n"]
    keys = ["source", "val", "test", "seed", "minority_class", "minority_fraction"]
    if str(config.get("source", "")).startswith("elpv"):  # the threshold means nothing for other sources
        keys.append("elpv_threshold")
    for key in keys:
        lines.append(f"- {key}: `{config.get(key)}`")
    lines.append(f"- usable images: {len(rows)}; rejected files: {len(rejected)}")
    lines.append(f"- manifest hash: `{manifest_hash}` (classes.json records the same; a folder where they differ "
                 "is refused)")
    return "\n".join(lines) + "\n"


def _aspect(aspect: dict[str, Any]) -> str:
    lines = ["## Aspect ratios\n"]
    if not aspect.get("n"):
        return "\n".join(lines + ["No usable images.", ""])
    lines += [
        "Long side / short side of the usable images (1.00 is square). A centre crop (`--fit crop`) keeps "
        "short/long of each image; above 4/3 it cuts away more than a quarter.\n",
        f"- min {aspect['min']:.2f}, median {aspect['median']:.2f}, max {aspect['max']:.2f}",
        f"- above 4/3: {aspect['share_above_4_3']:.1%} ({aspect['quarter_cut']} images); above 2: "
        f"{aspect['share_above_2']:.1%}",
        f"- `--fit auto` resolves to **{aspect['auto_fit']}** for this folder. Rule: pad when more than "
        f"{AUTO_PAD_SHARE:.0%} of the images have long/short > {AUTO_RATIO} (a centre crop would take about a "
        "tenth of their area or more), otherwise crop (for square images both give the same result).",
    ]
    return "\n".join(lines) + "\n"


def _count_table(counts: dict[str, dict[str, int]]) -> str:
    lines = ["## Counts per class and split\n", "| class | " + " | ".join(SPLITS) + " | total |"]
    lines.append("|---" * (len(SPLITS) + 2) + "|")
    for label, per in counts.items():
        cells = " | ".join(str(per[s]) for s in SPLITS)
        lines.append(f"| {md_text(label)} | {cells} | {sum(per.values())} |")
    totals = [sum(per[s] for per in counts.values()) for s in SPLITS]
    lines.append("| **all** | " + " | ".join(map(str, totals)) + f" | {sum(totals)} |")
    return "\n".join(lines) + "\n"


def _imbalance(counts: dict[str, dict[str, int]]) -> str:
    def ratio(split_names: tuple[str, ...]) -> str:
        sizes = {c: sum(per[s] for s in split_names) for c, per in counts.items()}
        small = min(sizes, key=sizes.get)
        if sizes[small] == 0:
            return f"undefined ({md_text(small)} has 0)"
        return f"{max(sizes.values()) / sizes[small]:.2f} (largest / smallest; smallest is {md_text(small)})"

    return (
        "## Imbalance\n\n"
        f"- all usable images: {ratio(('train', 'val', 'test', 'unused'))}\n"
        f"- train split: {ratio(('train',))}\n"
    )


def _duplicates(rows) -> str:
    groups: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        if r["dup_group"]:
            groups[r["dup_group"]].append(r)
    lines = ["## Exact duplicates (md5)\n"]
    n_rows = sum(len(g) for g in groups.values())
    conflicts = [g for g in groups.values() if len({r["label"] for r in g}) > 1]
    lines.append(f"{len(groups)} duplicate groups covering {n_rows} rows; each group sits in one split.")
    lines.append(f"Groups whose copies carry different labels: {len(conflicts)}.\n")
    for gid, members in list(groups.items())[:MAX_LISTED]:
        desc = ", ".join(f"`{r['path']}` ({md_text(r['label'])})" for r in members)
        lines.append(f"- group {gid} [{members[0]['split']}]: {desc}")
    if len(groups) > MAX_LISTED:
        lines.append(f"- ... {len(groups) - MAX_LISTED} more groups (see the dup_group column of manifest.csv)")
    return "\n".join(lines) + "\n"


def _rejections(rejected: list[tuple[str, str]]) -> str:
    lines = ["## Rejected files\n", f"{len(rejected)} files were not used.\n"]
    lines += [f"- `{path}`: {reason}" for path, reason in sorted(rejected)]
    return "\n".join(lines) + "\n"


def _notes(rows) -> str:
    noted = [r for r in rows if r["note"]]
    lines = ["## Conversions\n", f"{len(noted)} images were converted when decoded.\n"]
    for note, n in Counter(r["note"] for r in noted).most_common():
        lines.append(f"- {note}: {n}")
    lines.append("")
    lines += [f"- `{r['path']}`: {r['note']}" for r in noted[:MAX_LISTED]]
    if len(noted) > MAX_LISTED:
        lines.append(f"- ... {len(noted) - MAX_LISTED} more (see the note column of manifest.csv)")
    return "\n".join(lines) + "\n"


def _histograms(rows) -> str:
    sizes = Counter(f"{r['width']}x{r['height']}" for r in rows)
    modes = Counter(f"{r['mode']} -> {r['channels']} channel(s)" for r in rows)
    lines = ["## Sizes and modes\n", "| size (WxH) | images |", "|---|---|"]
    lines += [f"| {s} | {n} |" for s, n in sizes.most_common(20)]
    if len(sizes) > 20:
        lines.append(f"| ({len(sizes) - 20} more sizes) | {sum(n for _, n in sizes.most_common()[20:])} |")
    lines += ["", "| mode | images |", "|---|---|"]
    lines += [f"| {m} | {n} |" for m, n in modes.most_common()]
    return "\n".join(lines) + "\n"
