"""Numbers behind the ablation report: per-arm summaries and paired comparisons over seeds.

An "arm" is what is compared: a strategy, plus the synthetic ratio for GAN strategies
("gan_filtered@2"). Within one (model, minority fraction) arms are paired by seed, because a
seed fixes the minority subsample and the initialisation for every strategy alike.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from classify.ablate.design import uses_synthetic
from classify.ablate.stats import PairedComparison, holm_adjust, paired_compare, summarize


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    higher_is_better: bool


METRICS = (
    Metric("minority_f1", "minority F1", True),
    Metric("average_precision", "AP", True),
    Metric("roc_auc", "ROC-AUC", True),
    Metric("balanced_accuracy", "balanced accuracy", True),
    Metric("ece", "ECE", False),
)
HEADLINE = METRICS[:2]  # plain-words sentences for these; tables for all
# Every metric above lies in [0, 1]; per-arm CIs are clipped to it (see stats.summarize).
METRIC_RANGE = (0.0, 1.0)


def arm_is_gan(arm: str) -> bool:
    return uses_synthetic(arm.split("@")[0])


def values_by_arm(records: list[dict], metric: str) -> dict[tuple[str, float], dict[str, dict[int, float]]]:
    """(model, fraction) -> arm -> seed -> metric value (NaN when the cell lacks it)."""
    out: dict[tuple[str, float], dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for r in records:
        c = r["cell"]
        value = r["metrics"].get(metric)
        out[(c["model"], float(c["minority_fraction"]))][r["arm"]][int(c["seed"])] = (
            float(value) if isinstance(value, (int, float)) else math.nan)
    return out


def arm_stats(records: list[dict], metric: str) -> list[dict[str, Any]]:
    """One row per (model, fraction, arm): n, mean, std and the 95% t-interval over seeds (within [0, 1])."""
    ratio_of = {r["arm"]: r["cell"].get("synthetic_ratio") for r in records}
    rows = []
    for (model, fraction), arms in sorted(values_by_arm(records, metric).items()):
        for arm in sorted(arms, key=lambda a: (arm_is_gan(a), a != "baseline", a)):
            s = summarize(list(arms[arm].values()), bounds=METRIC_RANGE)
            rows.append({"model": model, "fraction": fraction, "arm": arm, "ratio": ratio_of.get(arm),
                         "n": s.n, "mean": s.mean, "std": s.std, "ci_low": s.ci_low, "ci_high": s.ci_high})
    return rows


def paired(arms: dict[str, dict[int, float]], a: str, b: str, m: Metric) -> PairedComparison:
    seeds = sorted(set(arms[a]) & set(arms[b]))
    return paired_compare([arms[a][s] for s in seeds], [arms[b][s] for s in seeds],
                          a=a, b=b, metric=m.key, higher_is_better=m.higher_is_better)


def best_non_gan(arms: dict[str, dict[int, float]], m: Metric) -> str | None:
    """The non-GAN arm with the best mean; picked on the same test data, see the caveats."""
    scored = [(summarize(list(v.values())).mean, a) for a, v in arms.items() if not arm_is_gan(a)]
    scored = [(s, a) for s, a in scored if math.isfinite(s)]
    if not scored:
        return None
    return (max if m.higher_is_better else min)(scored)[1]


def comparisons(records: list[dict], m: Metric) -> list[dict[str, Any]]:
    """Paired differences vs baseline (every arm) and vs the best non-GAN arm (GAN arms)."""
    out = []
    for (model, fraction), arms in sorted(values_by_arm(records, m.key).items()):
        best = best_non_gan(arms, m)
        for arm in sorted(arms):
            refs = []
            if "baseline" in arms and arm != "baseline":
                refs.append(("baseline", "baseline"))
            if arm_is_gan(arm) and best and best != "baseline":
                refs.append((best, "best non-GAN"))
            for ref, kind in refs:
                out.append({"model": model, "fraction": fraction, "kind": kind,
                            "cmp": paired(arms, arm, ref, m)})
    adjusted = holm_adjust([row["cmp"].wilcoxon_p for row in out])
    for row, p in zip(out, adjusted):
        row["holm_p"] = p
    return out
