"""Filters on constructed features with answers known in advance."""

import numpy as np
import pytest
import torch

from classify.core.errors import UserError
from gen.core.setmetrics import frechet_distance
from gen.sample.fid_select import greedy_fd_selection
from gen.sample.filters import (
    FilterConfig,
    FilterInputs,
    RealSet,
    build,
    explain_empty,
    list_filters,
    near_copy_threshold,
    realism_scores,
    run_filters,
)


def _reals(n=40, d=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(n, d, generator=g, dtype=torch.float64)
    images = torch.randint(0, 256, (n, 1, 4, 4), generator=g, dtype=torch.uint8)
    return RealSet(feats, images)


def _core(feats, k=3):
    """Indices of reals whose k-NN radius is at most the median: the ones realism counts."""
    from gen.core.setmetrics import knn_radii

    radii = knn_radii(feats, k)
    return torch.nonzero(radii <= radii.median()).flatten()


def _inputs(feats, images, reals, conf=None):
    return FilterInputs(torch.as_tensor(feats, dtype=torch.float64), images,
                        np.zeros(len(feats), int), {0: reals},
                        None if conf is None else np.asarray(conf, float))


def test_realism_inside_manifold_at_least_one_outside_below_one():
    real = _reals().feats
    inside = real[_core(real)[:5]] + 1e-3  # right next to (non-outlier) reals: well inside their k-NN balls
    outside = torch.full((3, 2), 50.0, dtype=torch.float64)
    s = realism_scores(torch.cat([inside, outside]), real, k=3)
    assert (s[:5] >= 1).all() and (s[5:] < 1).all()
    # Realism filter agrees with the raw score and the default threshold 1.
    res = build("realism")(_inputs(torch.cat([inside, outside]), torch.zeros(8, 1, 4, 4, dtype=torch.uint8),
                                   _reals()),
                           np.ones(8, bool))
    assert res.accept.tolist() == [True] * 5 + [False] * 3


def test_memorisation_rejects_exact_copy_of_a_real():
    reals = _reals()
    feats = torch.cat([reals.feats[7:8], reals.feats[:1] + torch.tensor([[4.0, 4.0]], dtype=torch.float64)])
    images = torch.stack([reals.images[7], torch.zeros(1, 4, 4, dtype=torch.uint8)])
    res = build("memorisation")(_inputs(feats, images, reals), np.ones(2, bool))
    assert res.accept.tolist() == [False, True]
    assert res.columns["nearest_real_distance"][0] == 0.0
    assert res.columns["nearest_real_pixel_distance"][0] == pytest.approx(0.0, abs=1e-6)
    assert res.columns["nearest_real_pixel_distance"][1] > 0.0
    assert res.columns["nearest_real_index"][0] == 7
    assert res.info["0"]["threshold"] > 0


@pytest.mark.parametrize("p,min_c,max_c,ok", [(0.6, 0.5, None, True), (0.6, 0.7, None, False),
                                              (0.6, 0.5, 0.55, False), (0.5, 0.5, None, True)])
def test_fixed_probability_judge_follows_threshold(p, min_c, max_c, ok):
    reals = _reals()
    inp = _inputs(reals.feats[:4] + 0.01, torch.zeros(4, 1, 4, 4, dtype=torch.uint8), reals, conf=[p] * 4)
    res = build("judge", min_confidence=min_c, max_confidence=max_c)(inp, np.ones(4, bool))
    assert res.accept.tolist() == [ok] * 4
    assert np.allclose(res.columns["judge_confidence"], p)


def test_judge_filter_without_judge_is_a_user_error():
    reals = _reals()
    with pytest.raises(UserError, match="--judge"):
        build("judge")(_inputs(reals.feats[:2], reals.images[:2], reals), np.ones(2, bool))


def test_fid_select_lowers_fd_monotonically_and_reports_true_fd():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(200, 5))
    fake = np.concatenate([rng.normal(size=(80, 5)), rng.normal(size=(20, 5)) + 4.0])  # 20 bad ones
    res = greedy_fd_selection(fake, real, max_drop=30)
    h = np.array(res.history)
    assert len(h) > 10 and np.all(np.diff(h) < 0)
    assert h[-1] < 0.5 * h[0]
    # Reported numbers are the real FD of the kept set (incremental stats did not drift).
    assert h[0] == pytest.approx(frechet_distance(torch.tensor(fake), torch.tensor(real)), rel=1e-6)
    assert h[-1] == pytest.approx(frechet_distance(torch.tensor(fake[res.keep]), torch.tensor(real)),
                                  rel=1e-5)
    assert sorted(res.removed_order[:20]) == list(range(80, 100))  # the shifted ones go first


def test_duplicates_exact_and_near_keep_the_first():
    reals = _reals()
    base = reals.feats[:3] + torch.tensor([[10.0, 0.0]], dtype=torch.float64)
    feats = torch.cat([base, base[:1], base[1:2] + 1e-9])
    imgs = torch.randint(0, 256, (5, 1, 4, 4), dtype=torch.uint8)
    imgs[3] = imgs[0]
    res = build("duplicates")(_inputs(feats, imgs, reals), np.ones(5, bool))
    assert res.accept.tolist() == [True, True, True, False, False]
    assert res.columns["duplicate_of_row"].tolist() == [-1, -1, -1, 0, 1]


def test_run_filters_records_first_rejecting_filter_and_keep_k():
    reals = _reals()
    feats = torch.cat([reals.feats[_core(reals.feats)[:4]] + 1e-3,
                       torch.full((2, 2), 60.0, dtype=torch.float64)])
    conf = [0.9, 0.2, 0.8, 0.7, 0.95, 0.1]
    imgs = torch.randint(0, 256, (6, 1, 4, 4), dtype=torch.uint8)
    cfg = FilterConfig(filters=["judge", "realism"])
    out = run_filters(_inputs(feats, imgs, reals, conf), cfg)
    assert out.rejected_by == ["", "judge", "", "", "realism", "judge"]
    assert out.accepted.tolist() == [True, False, True, True, False, False]
    assert out.info["judge"]["pass_alone"] == pytest.approx(4 / 6)
    kept = run_filters(_inputs(feats, imgs, reals, conf), FilterConfig(filters=["judge", "realism"], keep=2))
    assert kept.accepted.sum() == 2 and kept.accepted[0]  # row 0: high confidence and inside
    assert set(kept.rejected_by) == {"", "keep_rank"}


def test_empty_accepted_set_explains_which_filter():
    reals = _reals()
    out = run_filters(_inputs(reals.feats[:3] + 0.01, reals.images[:3], reals, [0.1, 0.2, 0.3]),
                      FilterConfig(filters=["judge", "realism"]))
    assert not out.accepted.any()
    msg = explain_empty(out)
    assert "'judge'" in msg and "judge_confidence" in msg and "max 0.3" in msg


def test_registry_lists_and_rejects_unknown():
    assert list_filters()[0] == "stats" and {"judge", "twosample", "fid_select"} <= set(list_filters())
    with pytest.raises(UserError, match="unknown filter"):
        build("sharpness")
    assert FilterConfig.from_dict(FilterConfig(keep=3).to_dict()).keep == 3
    with pytest.raises(UserError):
        FilterConfig.from_dict({"min_conf": 1})


def test_fid_select_with_fewer_samples_than_dimensions_is_exact_and_monotone():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(120, 40))
    fake = np.concatenate([rng.normal(size=(24, 40)), rng.normal(size=(6, 40)) + 2.5])  # n=30 < D=40
    res = greedy_fd_selection(fake, real, max_drop=10)
    h = np.array(res.history)
    assert np.all(np.diff(h) < 0) and len(h) > 6
    assert sorted(res.removed_order[:6]) == list(range(24, 30))
    assert h[-1] == pytest.approx(frechet_distance(torch.tensor(fake[res.keep]), torch.tensor(real)),
                                  rel=1e-6)


def test_duplicated_reals_do_not_zero_the_near_copy_threshold():
    """prepare keeps exact duplicates (grouped in one split); their zero NN distances must not
    pull the memorisation threshold to 0 and let near-copies of train images through."""
    reals = _reals(n=100, d=8)
    dup = RealSet(torch.cat([reals.feats, reals.feats[:4]]), torch.cat([reals.images, reals.images[:4]]))
    near_copies = dup.feats[10:15] + 1e-6
    res = build("memorisation")(_inputs(near_copies, dup.images[10:15], dup), np.ones(5, bool))
    assert res.info["0"]["threshold"] > 0
    assert not res.accept.any()
    # the same copies with float noise in their features (as other GPU kernels can give)
    noisy = RealSet(torch.cat([reals.feats, reals.feats[:4] + 1e-9]), dup.images)
    assert near_copy_threshold(noisy.feats, 1.0) == pytest.approx(near_copy_threshold(reals.feats, 1.0),
                                                                  rel=0.05)
    assert build("memorisation")(_inputs(near_copies, dup.images[10:15], noisy),
                                 np.ones(5, bool)).accept.sum() == 0


def test_fid_select_kept_is_empty_for_samples_it_never_saw():
    reals = _reals()
    feats = reals.feats[:8] + 0.05
    conf = [0.9, 0.1, 0.9, 0.9, 0.1, 0.9, 0.9, 0.9]  # rows 1 and 4 fall to the judge first
    imgs = torch.randint(0, 256, (8, 1, 4, 4), dtype=torch.uint8)
    out = run_filters(_inputs(feats, imgs, reals, conf), FilterConfig(filters=["judge", "fid_select"]))
    kept = out.columns["fid_select_kept"]
    assert np.isnan(kept[[1, 4]]).all() and set(kept[[0, 2, 3, 5, 6, 7]].tolist()) <= {0.0, 1.0}
    assert out.accepted[[0, 2, 3, 5, 6, 7]].tolist() == (kept[[0, 2, 3, 5, 6, 7]] == 1.0).tolist()
