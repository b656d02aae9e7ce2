"""Set metrics on constructed feature sets with answers known by hand."""

import numpy as np
import pytest
import torch

from classify.core.errors import UserError
from gen.core.metrics import metric_name, metrics_from_features
from gen.core.setmetrics import frechet_distance, kernel_distance, kid_subset_size, knn_radii, prdc


def _hand_fd(a: np.ndarray, b: np.ndarray) -> float:
    # Independent route: symmetric square roots via eigh, tr((S1^½ S2 S1^½)^½).
    m1, m2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(s1)
    r1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(r1 @ s2 @ r1)
    return float(((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2)
                 - 2 * np.sqrt(np.clip(inner, 0, None)).sum())


def test_fd_matches_hand_computation_for_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 6))
    b = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6)) * 0.7 + 2.0
    assert frechet_distance(torch.tensor(a), torch.tensor(b)) == pytest.approx(_hand_fd(a, b), rel=1e-6)


def test_fd_closed_forms_shift_and_scale():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 4))
    shift = np.array([3.0, -1.0, 0.5, 0.0])
    # Same covariance, shifted mean: FD = |shift|^2 exactly.
    assert frechet_distance(torch.tensor(x + shift), torch.tensor(x)) == pytest.approx(
        (shift**2).sum(), rel=1e-6)
    # Scaled by 2 around the mean: FD = tr(S) + 4 tr(S) - 2*2 tr(S) = tr(S).
    xc = x - x.mean(0)
    tr = np.trace(np.cov(xc, rowvar=False))
    assert frechet_distance(torch.tensor(2 * xc), torch.tensor(xc)) == pytest.approx(tr, rel=1e-6)
    assert frechet_distance(torch.tensor(x), torch.tensor(x)) == pytest.approx(0.0, abs=1e-6)


def test_kid_near_zero_for_same_distribution_and_large_for_shift():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(60, 8)), rng.normal(size=(50, 8))
    same = kernel_distance(torch.tensor(a), torch.tensor(b), subsets=20)
    far = kernel_distance(torch.tensor(a + 3.0), torch.tensor(b), subsets=20)
    assert same["subset_size"] == 50 == kid_subset_size(60, 50)
    assert abs(same["mean"]) < 0.2 * far["mean"]
    assert far["mean"] > 1.0
    assert kid_subset_size(5000, 3000) == 1000


def test_prdc_on_hand_built_sets():
    real = torch.arange(10, dtype=torch.float64)[:, None]  # 0..9, 1-NN radius 1 everywhere
    fake = torch.tensor([[0.5], [100.0]], dtype=torch.float64)
    m = prdc(fake, real, k=1)
    assert m["precision"] == pytest.approx(0.5)  # 0.5 inside, 100 outside
    assert m["density"] == pytest.approx(1.0)  # (2 balls + 0) / 2 fakes / k
    assert m["coverage"] == pytest.approx(0.2)  # reals 0 and 1 have a fake in their ball
    assert m["recall"] == pytest.approx(1.0)  # fake radius 99.5 covers every real
    far = prdc(fake + 1000, real, k=1)
    assert far["precision"] == far["density"] == far["coverage"] == 0.0


def test_knn_radii_excludes_self_and_needs_enough_points():
    pts = torch.tensor([[0.0], [1.0], [3.0]])
    assert knn_radii(pts, 1).tolist() == [1.0, 1.0, 2.0]
    with pytest.raises(UserError):
        knn_radii(pts, 3)


def test_metric_names_never_mix_extractors():
    assert metric_name("fd", "judge") == "fd_judge"
    assert metric_name("kid", "judge") == "kd_judge"
    assert metric_name("fd", "inception") == "fid_inception"
    assert metric_name("kd", "inception") == "kid_inception"
    rng = np.random.default_rng(3)
    out = metrics_from_features(torch.tensor(rng.normal(size=(20, 3))),
                                torch.tensor(rng.normal(size=(30, 3))), "judge")
    assert {"fd_judge", "kd_judge", "kd_judge_std", "kd_judge_subset"} == set(out)
    assert out["kd_judge_subset"] == 20
    with pytest.raises(UserError):
        metrics_from_features(torch.zeros(5, 2), torch.zeros(5, 2), "judge", names=("is",))


def _prdc_by_definition(fake: np.ndarray, real: np.ndarray, k: int) -> dict[str, float]:
    """Precision, recall, density and coverage written out from their published definitions
    (Kynkäänniemi et al. 2019; Naeem et al. 2020, eqs. for density and coverage), with plain
    loops: ball(x, S) = distance from x to its k-th nearest other point of S."""
    def radius(points: np.ndarray, i: int) -> float:
        d = sorted(float(np.linalg.norm(points[i] - points[j])) for j in range(len(points)) if j != i)
        return d[k - 1]

    r_real = [radius(real, i) for i in range(len(real))]
    r_fake = [radius(fake, j) for j in range(len(fake))]
    dist = lambda a, b: float(np.linalg.norm(a - b))  # noqa: E731
    in_real_ball = [[dist(y, real[i]) <= r_real[i] for i in range(len(real))] for y in fake]
    return {
        "precision": float(np.mean([any(row) for row in in_real_ball])),
        "recall": float(np.mean([any(dist(x, fake[j]) <= r_fake[j] for j in range(len(fake)))
                                 for x in real])),
        "density": float(sum(sum(row) for row in in_real_ball) / (k * len(fake))),
        "coverage": float(np.mean([any(in_real_ball[j][i] for j in range(len(fake)))
                                   for i in range(len(real))])),
    }


@pytest.mark.parametrize("k, shift", [(1, 0.0), (3, 0.5), (5, 2.0)])
def test_prdc_matches_the_published_definitions(k, shift):
    rng = np.random.default_rng(k)
    real = rng.normal(size=(40, 6))
    fake = rng.normal(size=(30, 6)) * 1.3 + shift
    ours = prdc(torch.from_numpy(fake), torch.from_numpy(real), k=k)
    expected = _prdc_by_definition(fake, real, k)
    for key, value in expected.items():
        assert ours[key] == pytest.approx(value, abs=1e-6), key  # torch-fidelity reports float32
