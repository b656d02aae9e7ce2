"""filter_report.json: how each filter voted and what the set looks like before vs after.

Set metrics per class: FD/KD named by the extractor (gen/core/metrics.py) and precision/recall/
density/coverage, each against two sets of reals of that class:

- the TRAIN reals (`all_vs_real`, `accepted_vs_real`): in-sample. The realism, memorisation
  and fid_select filters decided with these very reals, so "accepted" looks better against
  them by construction (fid_select minimises exactly this FD; with realism k <= PRDC_K the
  accepted set's precision is 1).
- the VAL reals (`heldout`): no filter saw them (the judge only chose its epoch and threshold
  on val), so a gain that holds there is not the filters grading their own work.

FD is biased upwards for small sets, so "accepted" (fewer images) is also compared with a
seeded random subset of all samples of the same size (`all_same_n_vs_real`). A set too small
for a metric gets `null` plus the reason, never a made-up number.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from classify.core.errors import UserError
from gen.core.metrics import metrics_from_features
from gen.core.setmetrics import prdc
from gen.sample.filters import ORDER, FilterOutcome

PRDC_K = 5
# Below this many samples FD's covariance and KD's subsets are mostly noise (FD of 2 images can
# read 1e4, and the unbiased KD goes negative): report the reason instead of such a number.
MIN_SET_FOR_FD_KD = 10


def set_metrics(fake: torch.Tensor, real: torch.Tensor, label: str) -> dict[str, Any]:
    out: dict[str, Any] = {"n": len(fake)}
    try:
        if min(len(fake), len(real)) < MIN_SET_FOR_FD_KD:
            raise UserError(f"FD/KD need at least {MIN_SET_FOR_FD_KD} images per set "
                            f"(got {len(fake)} samples, {len(real)} reals)")
        out.update(metrics_from_features(fake, real, label))
    except UserError as exc:
        out["fd_kd_skipped"] = str(exc)
    try:
        out.update(prdc(fake, real, k=min(PRDC_K, len(real) - 1)))
    except UserError as exc:
        out["prdc_skipped"] = str(exc)
    return out


SET_METRICS_NOTE = (
    "all_vs_real/accepted_vs_real use the train reals the filters decided with (in-sample: fid_select "
    "minimises that FD, and realism makes accepted precision ~1); compare accepted with all_same_n_vs_real "
    "(FD grows as sets shrink) and trust the heldout block (val reals no filter saw; the judge chose its "
    "epoch on them)."
)


def compare_sets(feats: torch.Tensor, rows: np.ndarray, accepted: np.ndarray, real: torch.Tensor, label: str,
                 seed: int = 0) -> dict[str, Any]:
    """All samples, a same-size random subset of them, and the accepted ones, each vs `real`."""
    out = {"all_vs_real": set_metrics(feats[rows], real, label)}
    idx, n_acc = np.nonzero(rows)[0], int((rows & accepted).sum())
    if 0 < n_acc < len(idx):
        subset = np.sort(np.random.default_rng(seed).choice(idx, n_acc, replace=False))
        out["all_same_n_vs_real"] = set_metrics(feats[subset], real, label)
    out["accepted_vs_real"] = set_metrics(feats[rows & accepted], real, label)
    return out


def build_filter_report(
    outcome: FilterOutcome, class_idx: np.ndarray, classes: list[str],
    feats: torch.Tensor | None, real_feats: dict[int, torch.Tensor], label: str | None,
    heldout_feats: dict[int, torch.Tensor] | None = None,
) -> dict[str, Any]:
    n = len(class_idx)
    report: dict[str, Any] = {
        "n_samples": n,
        "n_accepted": int(outcome.accepted.sum()),
        "accepted_fraction": float(outcome.accepted.mean()) if n else 0.0,
        "extractor": label,
        "rejected_by": {name: outcome.rejected_by.count(name) for name in (*ORDER, "keep_rank", "manual")
                        if outcome.rejected_by.count(name)},
        "filters": outcome.info,
        "decisions": filter_decisions(outcome),
        "set_metrics_note": SET_METRICS_NOTE,
        "per_class": {},
    }
    for c in np.unique(class_idx):
        rows = class_idx == c
        entry: dict[str, Any] = {"n": int(rows.sum()), "n_accepted": int((rows & outcome.accepted).sum())}
        if feats is not None and label is not None and int(c) in real_feats:
            entry.update(compare_sets(feats, rows, outcome.accepted, real_feats[int(c)], label))
            held = (heldout_feats or {}).get(int(c))
            if held is not None:
                entry["heldout"] = {"n_real": len(held),
                                    **compare_sets(feats, rows, outcome.accepted, held, label)}
        report["per_class"][classes[int(c)]] = entry
    return report


def _fmt_metrics(m: dict[str, Any]) -> str:
    keys = [k for k in m if k.startswith(("fd_", "fid_", "kd_", "kid_")) and isinstance(m[k], float)
            and not k.endswith(("_std", "_subset"))]
    keys += [k for k in ("precision", "recall", "density", "coverage") if k in m]
    return " ".join(f"{k}={m[k]:.4g}" for k in keys) or "(too few samples for set metrics)"


def filter_decisions(outcome: FilterOutcome) -> dict[str, Any]:
    """In plain terms, what each filter did to the set: removed samples (how many were
    rejected by it first), or removed none, or only ranked them (its score feeds --keep)."""
    removed = {name: outcome.rejected_by.count(name) for name in (*ORDER, "keep_rank", "manual")
               if outcome.rejected_by.count(name)}
    ranked = [name for name, info in outcome.info.items()
              if isinstance(info, dict) and not info.get("decides", True)]
    ran = [name for name, info in outcome.info.items() if isinstance(info, dict) and "pass_alone" in info]
    return {"removed": removed, "removed_none": [n for n in ran if n not in removed and n not in ranked],
            "ranked_only": ranked}


def decision_line(decisions: dict[str, Any]) -> str:
    removed = ", ".join(f"{n} {c}" for n, c in decisions["removed"].items()) or "none"
    parts = [f"removed samples: {removed}"]
    if decisions["removed_none"]:
        parts.append(f"ran but removed none: {', '.join(decisions['removed_none'])}")
    if decisions["ranked_only"]:
        parts.append(f"only ranked (scores for --keep): {', '.join(decisions['ranked_only'])}")
    return "; ".join(parts)


def summary_lines(report: dict[str, Any]) -> list[str]:
    """What `gen sample` prints: what each filter did, counts per filter, then before/after set
    metrics per class."""
    lines = [f"accepted {report['n_accepted']}/{report['n_samples']} "
             f"({100 * report['accepted_fraction']:.1f}%)"]
    if "decisions" in report:
        lines.append("  " + decision_line(report["decisions"]))
    for name, info in report["filters"].items():
        if isinstance(info, dict) and "pass_alone" in info:
            extra = "" if info.get("decides", True) else " (score only: --keep ranks by it)"
            lines.append(f"  {name:<13} passes alone {100 * info['pass_alone']:.1f}%, "
                         f"rejected first {report['rejected_by'].get(name, 0)}{extra}")
    if "keep_rank" in report["rejected_by"]:
        lines.append(f"  keep_rank     rejected {report['rejected_by']['keep_rank']}")
    for cls, entry in report["per_class"].items():
        blocks = [("train reals, in-sample", entry)]
        if "heldout" in entry:
            blocks.append((f"{entry['heldout']['n_real']} val reals, held out", entry["heldout"]))
        for title, block in blocks:
            if "all_vs_real" not in block:
                continue
            lines.append(f"  [{cls}] vs {title}:")
            for key, name in (("all_vs_real", "all"), ("all_same_n_vs_real", "all, same n"),
                              ("accepted_vs_real", "accepted")):
                if key in block:
                    lines.append(f"    {name:<12} n={block[key]['n']}: {_fmt_metrics(block[key])}")
    return lines
