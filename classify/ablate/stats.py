"""Statistics for the ablation: summaries over seeds, confidence intervals, paired comparisons.

Everything here is a pure function of plain numbers so that it is easy to check against known
values. Two honesty rules shape the API:

- A verdict ("A beats B") is issued only when the 95% CI of the paired mean difference
  excludes 0. Otherwise the sentence says "no detectable difference" and still shows the
  estimate and its interval, so a reader sees how large an effect could hide in the noise.
- The decision CI is the paired t-interval. The percentile bootstrap is reported beside it but
  is not trusted for the verdict: with a handful of seeds it collapses to roughly
  [min, max] of the differences (with 3 pairs exactly that), which is far too narrow.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as sps

# Fewer pairs than this and no verdict is issued at all: a t-interval from 2 points has
# 12.7 standard errors of half-width and says nothing useful.
MIN_PAIRS_FOR_VERDICT = 3


@dataclass(frozen=True)
class Summary:
    """Mean ± sample std and a CI of the mean over independent repeats (seeds)."""

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float
    method: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PairedComparison:
    """A vs B on one metric, paired by seed. `diff` is mean(A - B)."""

    a: str
    b: str
    metric: str
    n: int
    diff: float
    ci_low: float
    ci_high: float
    boot_low: float
    boot_high: float
    wilcoxon_p: float
    higher_is_better: bool
    verdict: str  # "better" | "worse" | "no detectable difference" | "too few pairs"

    def to_dict(self) -> dict:
        return asdict(self)


def _as_array(values) -> np.ndarray:
    arr = np.asarray(list(values), dtype=float)
    if arr.ndim != 1:
        raise ValueError("expected a flat sequence of numbers")
    return arr[np.isfinite(arr)]


def t_interval(values, confidence: float = 0.95) -> tuple[float, float]:
    """Student-t CI of the mean; (nan, nan) with fewer than 2 finite values."""
    arr = _as_array(values)
    n = arr.size
    if n < 2:
        return (math.nan, math.nan)
    mean = float(arr.mean())
    sem = float(arr.std(ddof=1)) / math.sqrt(n)
    half = float(sps.t.ppf(0.5 + confidence / 2.0, df=n - 1)) * sem
    return (mean - half, mean + half)


def bootstrap_ci(values, confidence: float = 0.95, n_resamples: int = 10000,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean, reproducible through `seed`."""
    arr = _as_array(values)
    n = arr.size
    if n < 2:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = arr[rng.integers(0, n, size=(n_resamples, n))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return (float(lo), float(hi))


def summarize(values, confidence: float = 0.95, method: str = "t",
              bounds: tuple[float, float] | None = None) -> Summary:
    """Mean, sample std (ddof=1) and a CI by `method` ('t' or 'bootstrap').

    `bounds` clips the CI to the metric's range: a t-interval of AP values near 1 can reach
    past 1.0, which no mean of such values can, and a reader takes it for a bug.
    """
    arr = _as_array(values)
    if method not in ("t", "bootstrap"):
        raise ValueError(f"unknown CI method {method!r}; use 't' or 'bootstrap'")
    n = arr.size
    mean = float(arr.mean()) if n else math.nan
    std = float(arr.std(ddof=1)) if n >= 2 else math.nan
    lo, hi = t_interval(arr, confidence) if method == "t" else bootstrap_ci(arr, confidence)
    if bounds is not None and n >= 2:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return Summary(n=n, mean=mean, std=std, ci_low=lo, ci_high=hi, method=method)


def wilcoxon_p(diffs) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired differences.

    All-zero differences mean no evidence of any difference, so p = 1. Exact for small n
    (scipy's default without ties), which keeps small-seed p-values honest: with n <= 5
    pairs a two-sided p can never go below 0.0625.
    """
    arr = _as_array(diffs)
    if arr.size == 0:
        return math.nan
    if np.all(arr == 0):
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(sps.wilcoxon(arr, alternative="two-sided").pvalue)


def paired_compare(
    a_values,
    b_values,
    *,
    a: str,
    b: str,
    metric: str,
    higher_is_better: bool = True,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedComparison:
    """Compare A and B on values paired by position (same seed -> same index)."""
    av, bv = np.asarray(list(a_values), dtype=float), np.asarray(list(b_values), dtype=float)
    if av.shape != bv.shape:
        raise ValueError(f"paired comparison needs equal lengths, got {av.size} and {bv.size}")
    diffs = _as_array(av - bv)
    n = diffs.size
    diff = float(diffs.mean()) if n else math.nan
    lo, hi = t_interval(diffs, confidence)
    blo, bhi = bootstrap_ci(diffs, confidence, seed=seed)
    return PairedComparison(
        a=a, b=b, metric=metric, n=n, diff=diff, ci_low=lo, ci_high=hi, boot_low=blo, boot_high=bhi,
        wilcoxon_p=wilcoxon_p(diffs), higher_is_better=higher_is_better,
        verdict=_verdict(n, diff, lo, hi, higher_is_better),
    )


def _verdict(n: int, diff: float, lo: float, hi: float, higher_is_better: bool) -> str:
    if n < MIN_PAIRS_FOR_VERDICT or math.isnan(lo):
        return "too few pairs"
    # A zero-width interval at exactly 0 (identical results) is "no difference", not a win.
    if lo > 0 or hi < 0:
        a_larger = diff > 0
        return "better" if a_larger == higher_is_better else "worse"
    return "no detectable difference"


def sentence(c: PairedComparison, metric_label: str | None = None, digits: int = 3) -> str:
    """One plain-words sentence, e.g. 'gan_filtered beats oversample by +0.041 minority F1, ...'."""
    label = metric_label or c.metric
    f = f"{{:+.{digits}f}}"
    g = f"{{:.{digits}f}}"
    ci = f"95% CI [{g.format(c.ci_low)}, {g.format(c.ci_high)}]"
    tail = f"paired over {c.n} seeds; Wilcoxon p={c.wilcoxon_p:.3g}"
    if c.verdict == "too few pairs":
        return (f"{c.a} vs {c.b} on {label}: only {c.n} paired seed(s), too few for a verdict (it needs "
                f"{MIN_PAIRS_FOR_VERDICT}); mean difference {f.format(c.diff)}.")
    if c.verdict == "no detectable difference":
        return (f"No detectable difference between {c.a} and {c.b} on {label}: "
                f"{f.format(c.diff)}, {ci} includes 0 ({tail}).")
    if c.verdict == "better":
        return f"{c.a} beats {c.b} by {f.format(c.diff)} {label}, {ci} ({tail})."
    # "worse by -0.3" reads as a double negative: the size in words, the signed difference after it.
    return (f"{c.a} is worse than {c.b} by {g.format(abs(c.diff))} {label} (difference {f.format(c.diff)}), "
            f"{ci} ({tail}).")


def holm_adjust(pvalues) -> list[float]:
    """Holm–Bonferroni adjusted p-values (same order as the input; NaN stays NaN).

    The report makes many comparisons at once; the adjusted values show which survive that.
    """
    p = np.asarray(list(pvalues), dtype=float)
    out = np.full(p.shape, math.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    order = ok[np.argsort(p[ok], kind="stable")]
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[idx]))
        out[idx] = running
    return [float(x) for x in out]
