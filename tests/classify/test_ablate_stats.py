"""Statistics helpers against values computed independently (by hand or by scipy directly)."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from classify.ablate.stats import (
    bootstrap_ci,
    holm_adjust,
    paired_compare,
    sentence,
    summarize,
    t_interval,
    wilcoxon_p,
)


def test_t_interval_of_fixed_sample_matches_hand_value_and_scipy():
    lo, hi = t_interval([1, 2, 3, 4, 5])
    # mean 3, s = sqrt(2.5), t(0.975, 4) = 2.7764451 -> half-width 1.963243
    assert lo == pytest.approx(3 - 1.963243, abs=1e-5)
    assert hi == pytest.approx(3 + 1.963243, abs=1e-5)
    ref = sps.t.interval(0.95, df=4, loc=3, scale=sps.sem([1, 2, 3, 4, 5]))
    assert (lo, hi) == pytest.approx(ref)


def test_summary_mean_std_and_degenerate_sizes():
    s = summarize([0.2, 0.4, 0.6])
    assert (s.n, s.mean, s.std) == (3, pytest.approx(0.4), pytest.approx(0.2))
    assert s.ci_low < 0.4 < s.ci_high
    one = summarize([0.7])
    assert one.mean == 0.7 and math.isnan(one.std) and math.isnan(one.ci_low)
    # NaN metrics (e.g. ROC-AUC with one class in test) are dropped, not averaged in
    assert summarize([0.5, float("nan"), 0.7]).n == 2
    with pytest.raises(ValueError):
        summarize([1, 2], method="magic")


def test_summary_ci_clipped_to_bounds_only_where_it_crosses_them():
    near_one = [0.99, 0.93, 1.0]
    raw = summarize(near_one)
    assert raw.ci_high > 1.0  # the plain t-interval leaves the metric's range
    clipped = summarize(near_one, bounds=(0.0, 1.0))
    assert clipped.ci_high == 1.0 and clipped.ci_low == pytest.approx(raw.ci_low)
    assert clipped.mean == raw.mean and clipped.std == raw.std
    low = summarize([0.2, 0.4, 0.6], bounds=(0.0, 1.0))  # t-interval [-0.097, 0.897]
    assert low.ci_low == 0.0 and low.ci_high == pytest.approx(0.896828, abs=1e-6)
    inside = [0.4, 0.5, 0.6]
    assert (summarize(inside, bounds=(0.0, 1.0)).ci_low, summarize(inside, bounds=(0.0, 1.0)).ci_high) == \
        pytest.approx((summarize(inside).ci_low, summarize(inside).ci_high))
    assert math.isnan(summarize([0.7], bounds=(0.0, 1.0)).ci_low)


def test_bootstrap_is_reproducible_and_collapses_to_min_max_with_three_values():
    assert bootstrap_ci([0.1, 0.5, 0.2, 0.9], seed=3) == bootstrap_ci([0.1, 0.5, 0.2, 0.9], seed=3)
    # with 3 values P(all resamples = min) = 1/27 > 2.5%, so the interval is [min, max]:
    # the reason the verdict uses the t-interval instead
    assert bootstrap_ci([0.01, 0.02, 0.04]) == pytest.approx((0.01, 0.04))


def test_wilcoxon_exact_values_for_all_positive_differences():
    assert wilcoxon_p([0.1, 0.2, 0.3]) == pytest.approx(0.25)  # 2 / 2**3
    assert wilcoxon_p([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]) == pytest.approx(2 / 2**6)
    assert wilcoxon_p([0.0, 0.0, 0.0]) == 1.0


def test_paired_compare_detects_a_constructed_improvement():
    rng = np.random.default_rng(0)
    b = rng.uniform(0.4, 0.6, size=8)
    a = b + 0.05 + rng.normal(0, 0.005, size=8)
    c = paired_compare(a, b, a="gan_filtered", b="oversample", metric="minority_f1")
    assert c.verdict == "better"
    assert c.diff == pytest.approx(float(np.mean(a - b)))
    assert 0.03 < c.ci_low < c.diff < c.ci_high < 0.07
    assert c.wilcoxon_p == pytest.approx(2 / 2**8)
    text = sentence(c, "minority F1")
    assert text.startswith("gan_filtered beats oversample by +0.0") and "95% CI [" in text


def test_paired_compare_says_no_difference_when_ci_crosses_zero():
    b = np.array([0.50, 0.52, 0.48, 0.51, 0.49])
    a = b + np.array([0.03, -0.02, 0.01, -0.03, 0.02])
    c = paired_compare(a, b, a="gan", b="baseline", metric="minority_f1")
    assert c.verdict == "no detectable difference"
    assert c.ci_low < 0 < c.ci_high
    assert sentence(c).startswith("No detectable difference between gan and baseline")


def test_lower_is_better_metric_flips_the_verdict():
    b = np.array([0.10, 0.12, 0.11, 0.13])
    a = b - np.array([0.05, 0.051, 0.049, 0.05])
    c = paired_compare(a, b, a="focal", b="baseline", metric="ece", higher_is_better=False)
    assert c.diff < 0 and c.verdict == "better"
    worse = paired_compare(b, a, a="baseline", b="focal", metric="ece", higher_is_better=False)
    assert worse.verdict == "worse" and "is worse than" in sentence(worse)
    low = paired_compare(a, b, a="focal", b="baseline", metric="ap")  # higher is better: focal is worse
    text = sentence(low, "AP")
    assert text.startswith("focal is worse than baseline by 0.050 AP (difference -0.050)"), text


def test_too_few_pairs_gives_no_verdict_and_mismatched_lengths_fail():
    c = paired_compare([0.9, 0.8], [0.1, 0.2], a="x", b="y", metric="m")
    assert c.verdict == "too few pairs" and "too few" in sentence(c)
    with pytest.raises(ValueError):
        paired_compare([1, 2, 3], [1, 2], a="x", b="y", metric="m")


def test_holm_adjustment_known_values():
    assert holm_adjust([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    out = holm_adjust([0.5, float("nan")])
    assert out[0] == pytest.approx(0.5) and math.isnan(out[1])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-1, 1, allow_nan=False), min_size=2, max_size=12))
def test_t_interval_contains_the_mean_and_widens_with_confidence(values):
    mean = float(np.mean(values))
    lo95, hi95 = t_interval(values, 0.95)
    lo99, hi99 = t_interval(values, 0.99)
    assert lo95 <= mean + 1e-12 and mean - 1e-12 <= hi95
    assert lo99 <= lo95 + 1e-12 and hi95 <= hi99 + 1e-12
