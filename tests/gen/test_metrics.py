"""gen.core.metrics with a real judge checkpoint: names by extractor, torch-fidelity agreement, no
downloads."""

import pytest
import torch
import torch_fidelity
from gen_helpers import tiny_judge

from classify.core.errors import UserError
from gen.core.metrics import ExtractorConfig, build_extractor, compute_metrics


class _Images(torch.utils.data.Dataset):
    def __init__(self, x):
        self.x = x

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i]


@pytest.fixture(scope="module")
def judge_path(tmp_path_factory):
    return tiny_judge(tmp_path_factory.mktemp("judge") / "model.pt", ["bad", "good"])


def _images(seed, n, bright=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 150, (n, 1, 16, 16), generator=g) + bright).clamp(0, 255).to(torch.uint8)


def test_compute_metrics_with_judge_matches_torch_fidelity(judge_path):
    fake, real = _images(0, 24, bright=80), _images(1, 30)
    ours = compute_metrics(fake, real, names=("fd", "kd"),
                           extractor=ExtractorConfig("judge", str(judge_path)))
    assert set(ours) == {"fd_judge", "kd_judge", "kd_judge_std", "kd_judge_subset"}
    assert ours["kd_judge_subset"] == 24
    theirs = torch_fidelity.calculate_metrics(
        input1=_Images(fake), input2=_Images(real), fid=True, kid=True, cuda=False, verbose=False,
        cache=False, feature_extractor="ganbalance-judge", feature_extractor_weights_path=str(judge_path),
        kid_subset_size=24, kid_subsets=100, rng_seed=0, save_cpu_ram=True,
    )
    assert ours["fd_judge"] == pytest.approx(theirs["frechet_inception_distance"], rel=1e-4)
    assert ours["kd_judge"] == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-3, abs=1e-6)
    same = compute_metrics(real[:15], real[15:],
                           extractor=build_extractor("judge", weights_path=str(judge_path)))
    assert same["fd_judge"] < ours["fd_judge"]


def test_judge_extractor_refuses_other_channel_counts(judge_path):
    ex = build_extractor("judge", weights_path=str(judge_path))
    with pytest.raises(UserError, match="1-channel"):
        ex.features(torch.zeros(2, 3, 16, 16, dtype=torch.uint8))


def test_inception_only_from_a_local_file(tmp_path, monkeypatch):
    def no_network(*a, **k):
        raise AssertionError("tried to download")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    with pytest.raises(UserError, match="local weights"):
        build_extractor("inception")
    with pytest.raises(UserError, match="do not exist"):
        build_extractor("inception", weights_path=str(tmp_path / "missing.pth"))
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(UserError, match="plain-tensor"):
        build_extractor("inception", weights_path=str(bad))
    with pytest.raises(UserError, match="unknown feature extractor"):
        build_extractor("clip")


def test_set_metrics_skip_fd_kd_below_ten_images():
    from gen.sample.filter_report import set_metrics

    g = torch.Generator().manual_seed(0)
    real = torch.randn(12, 8, generator=g, dtype=torch.float64)
    full = set_metrics(torch.randn(12, 8, generator=g, dtype=torch.float64), real, "judge")
    assert full["fd_judge"] > 0 and "kd_judge" in full and "fd_kd_skipped" not in full
    small = set_metrics(torch.randn(7, 8, generator=g, dtype=torch.float64), real, "judge")
    assert "fd_judge" not in small and "at least 10 images" in small["fd_kd_skipped"] and "precision" in small


def test_filter_report_compares_at_equal_size_and_against_held_out_reals():
    import numpy as np

    from gen.sample.filter_report import build_filter_report, summary_lines
    from gen.sample.filters import FilterOutcome

    g = torch.Generator().manual_seed(0)
    feats = torch.randn(60, 8, generator=g, dtype=torch.float64)
    train_reals = torch.randn(40, 8, generator=g, dtype=torch.float64)
    # far away: held-out FD must show it
    val_reals = torch.randn(30, 8, generator=g, dtype=torch.float64) + 5.0
    accepted = np.zeros(60, dtype=bool)
    accepted[:20] = True
    outcome = FilterOutcome({}, accepted, ["" if a else "realism" for a in accepted], {})
    report = build_filter_report(outcome, np.zeros(60, dtype=int), ["bad"], feats, {0: train_reals}, "judge",
                                 {0: val_reals})
    entry = report["per_class"]["bad"]
    assert entry["all_same_n_vs_real"]["n"] == entry["accepted_vs_real"]["n"] == 20
    assert entry["all_vs_real"]["n"] == 60 and entry["heldout"]["n_real"] == 30
    assert entry["heldout"]["all_same_n_vs_real"]["n"] == 20
    assert entry["heldout"]["all_vs_real"]["fd_judge"] > 10 * entry["all_vs_real"]["fd_judge"]
    again = build_filter_report(outcome, np.zeros(60, dtype=int), ["bad"], feats, {0: train_reals}, "judge",
                                {0: val_reals})
    # seeded subset
    assert again["per_class"]["bad"]["all_same_n_vs_real"] == entry["all_same_n_vs_real"]
    assert "in-sample" in report["set_metrics_note"]
    lines = "\n".join(summary_lines(report))
    assert "vs train reals, in-sample" in lines and "vs 30 val reals, held out" in lines and (
        "all, same n" in lines)


def test_filter_summary_says_which_filters_removed_and_which_only_ranked():
    import numpy as np

    from gen.sample.filter_report import decision_line, filter_decisions
    from gen.sample.filters import FilterOutcome

    accepted = np.array([True, False, False, True, False])
    info = {"judge": {"pass_alone": 0.8, "decides": False}, "realism": {"pass_alone": 0.6, "decides": False},
            "memorisation": {"pass_alone": 1.0, "decides": True},
            "duplicates": {"pass_alone": 0.8, "decides": True}}
    outcome = FilterOutcome({}, accepted, ["", "keep_rank", "duplicates", "", "keep_rank"], info)
    decisions = filter_decisions(outcome)
    assert decisions == {"removed": {"duplicates": 1, "keep_rank": 2}, "removed_none": ["memorisation"],
                         "ranked_only": ["judge", "realism"]}
    line = decision_line(decisions)
    assert "removed samples: duplicates 1, keep_rank 2" in line and (
        "ran but removed none: memorisation" in line)
    assert "only ranked (scores for --keep): judge, realism" in line


def test_inception_weights_file_is_read_once_and_only_restricted(tmp_path, monkeypatch):
    """torch-fidelity loads its weights with weights_only=False: it must get our in-memory copy
    of the tensors, never the user's file (read once, with weights_only=True)."""
    import io

    import torch_fidelity.feature_extractor_inceptionv3 as fi

    with monkeypatch.context() as m:  # a randomly initialised net, to have a valid weights file offline
        m.setattr(fi, "load_state_dict_from_url", lambda *a, **k: {})
        m.setattr(fi.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
        net = fi.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    path = tmp_path / "inception.pth"
    torch.save(net.state_dict(), path)
    calls, real_load = [], torch.load

    def spy(f, *args, **kwargs):
        calls.append((f, kwargs.get("weights_only")))
        return real_load(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    ex = build_extractor("inception", weights_path=str(path))
    monkeypatch.undo()
    on_file = [w for f, w in calls if not isinstance(f, io.BytesIO)]
    assert on_file == [True], calls
    assert all(w is not False or isinstance(f, io.BytesIO) for f, w in calls)
    assert torch.equal(ex.module.state_dict()["fc.weight"], net.state_dict()["fc.weight"])


def test_tensor_file_that_is_not_inception_is_one_clear_error(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"weight": torch.zeros(3)}, path)
    with pytest.raises(UserError, match="not torch-fidelity's Inception weights"):
        build_extractor("inception", weights_path=str(path))
    torch.save([torch.zeros(3)], path)
    with pytest.raises(UserError, match="not a state dict of tensors"):
        build_extractor("inception", weights_path=str(path))
