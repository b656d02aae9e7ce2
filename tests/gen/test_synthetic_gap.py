"""Synthetic images that carry no label, on tiny data: the two-sample test, the stats and twosample filters,
symmetric synthesis, the synthetic loss weight and warm-up schedule, `gen sample --class all`
and the ablation's synthetic axes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from classify_helpers import make_class_samples_folder, make_square_dataset

from classify.ablate.config import AblationConfig
from classify.ablate.design import Cell, SyntheticAxes, build_grid
from classify.core.errors import UserError
from classify.evaluate.twosample import image_stats, pixel_features, two_sample_test
from classify.train.config import ClassifierTrainConfig, real_only_epochs
from classify.train.data import load_classifier_train_data
from classify.train.loop import sample_weights, train_rows
from classify.train.losses import soft_cross_entropy
from gen.sample.files import plan
from gen.sample.filters import FilterConfig, FilterInputs, RealSet, build, run_filters


def textured(n: int, seed: int, size: int = 16, level: float = 0.3) -> torch.Tensor:
    """uint8 [n, 1, size, size] grey images around `level` of full scale, with smooth texture."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 1, 4, 4, generator=g) * 0.2 - 0.1
    x = torch.nn.functional.interpolate(coarse, size=size, mode="bilinear", align_corners=False) + level
    x = x + torch.randn(n, 1, size, size, generator=g) * 0.02
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


# ---- the two-sample test -----------------------------------------------------------------


def test_two_sample_auc_is_near_half_for_two_real_draws_and_near_one_for_noise():
    a, b = pixel_features(textured(120, 0)), pixel_features(textured(120, 1))
    same = two_sample_test(a, b)
    assert 0.35 < same.auc < 0.65 and same.folds == 5
    noise = pixel_features(torch.randint(0, 256, (120, 1, 16, 16), generator=torch.Generator().manual_seed(2),
                                         dtype=torch.uint8))
    assert two_sample_test(a, noise).auc > 0.95
    # Every row gets an out-of-fold score; the test refuses sets it cannot split.
    assert np.isfinite(same.real_scores).all() and np.isfinite(same.synthetic_scores).all()
    with pytest.raises(UserError, match="at least 2"):
        two_sample_test(a[:1], b)


def test_two_sample_catches_a_brightness_shift_that_the_eye_would_miss():
    a, b = textured(150, 0, level=0.30), textured(150, 1, level=0.36)
    assert two_sample_test(pixel_features(a), pixel_features(b)).auc > 0.9
    stats = image_stats(b)
    assert stats["brightness"].mean() == pytest.approx(0.36, abs=0.01) and (stats["bright_share"] == 0).all()


# ---- filters -----------------------------------------------------------------------------


def _inputs(images: torch.Tensor, reals: torch.Tensor, feats=None, real_feats=None) -> FilterInputs:
    return FilterInputs(feats, images, np.zeros(len(images), int), {0: RealSet(real_feats, reals)})


def test_stats_filter_rejects_planted_blank_saturated_and_inverted_samples_and_passes_reals():
    reals = textured(60, 0)
    good = textured(10, 1)  # other draws of the same distribution
    blank = torch.zeros(1, 1, 16, 16, dtype=torch.uint8)
    saturated = torch.full((1, 1, 16, 16), 255, dtype=torch.uint8)
    inverted = 255 - textured(1, 3)
    samples = torch.cat([reals[:10], good, blank, saturated, inverted])
    res = build("stats")(_inputs(samples, reals), np.ones(len(samples), bool))
    assert res.accept[:10].all(), "every real image must pass"
    assert res.accept[10:20].mean() >= 0.8
    assert not res.accept[20:].any(), "blank, saturated and inverted must all be rejected"
    assert {"brightness", "contrast"} <= set(res.columns)


def test_stats_filter_also_rejects_samples_far_from_the_class_in_feature_space():
    reals = textured(40, 0)
    real_feats = torch.randn(40, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    feats = torch.cat([real_feats[:3], torch.full((1, 8), 20.0, dtype=torch.float64)])
    res = build("stats")(_inputs(reals[:4], reals, feats, real_feats), np.ones(4, bool))
    assert res.accept.tolist() == [True, True, True, False]
    assert np.isfinite(res.columns["centroid_distance"]).all()


def test_twosample_filter_keeps_real_looking_samples_and_rejects_the_giveaways():
    reals = textured(80, 0)
    real_like = textured(60, 1)
    bright = textured(20, 2, level=0.6)
    res = build("twosample")(_inputs(torch.cat([real_like, bright]), reals), np.ones(80, bool))
    score = res.columns["twosample_score"]
    assert np.isfinite(score).all() and score[60:].min() > np.median(score[:60])
    assert not res.accept[60:].any() and res.accept[:60].mean() > 0.6


def test_filter_pipeline_reports_which_new_filter_rejected():
    reals = textured(40, 0)
    samples = torch.cat([textured(6, 1), torch.zeros(2, 1, 16, 16, dtype=torch.uint8)])
    out = run_filters(_inputs(samples, reals), FilterConfig(filters=["stats", "twosample"]))
    assert out.rejected_by[-2:] == ["stats", "stats"] and "twosample_score" in out.columns


# ---- symmetric synthesis, weight and schedule --------------------------------------------


@pytest.fixture(scope="module")
def square_data(tmp_path_factory) -> Path:
    return make_square_dataset(tmp_path_factory.mktemp("sym"), n_good=24, n_bad=12, size=32)


@pytest.fixture(scope="module")
def both_classes(tmp_path_factory) -> Path:
    return make_class_samples_folder(tmp_path_factory.mktemp("both") / "samples", {"bad": 30, "good": 40})


def _cfg(data: Path, **kw) -> ClassifierTrainConfig:
    return ClassifierTrainConfig(**{"data_dir": str(data), "out_dir": "unused", "res": 16, "batch": 8,
                                    "epochs": 3, "progress": False, "seed": 0, **kw})


def test_symmetric_synthesis_gives_every_class_the_same_share(square_data, both_classes):
    real = load_classifier_train_data(_cfg(square_data), None)
    counts = torch.bincount(real.y_train, minlength=2).tolist()
    sym = load_classifier_train_data(_cfg(square_data, synthetic_dir=str(both_classes), synthetic_ratio=0.5,
                                          synthetic_classes="all"), "accepted")
    added = sym.y_train[sym.n_train_real:]
    assert torch.bincount(added, minlength=2).tolist() == [round(0.5 * n) for n in counts]
    # Each added image is of its own class (the test folder paints class k with 40 + 50 k).
    painted = {"bad": 40, "good": 90}
    for k, name in enumerate(sym.classes):
        assert sym.x_train[sym.n_train_real:][added == k].float().mean().item() == pytest.approx(
            painted[name], abs=0.5)
    minority_only = load_classifier_train_data(_cfg(square_data, synthetic_dir=str(both_classes),
                                                    synthetic_ratio=0.5), "accepted")
    assert (minority_only.y_train[minority_only.n_train_real:] == minority_only.positive).all()
    # The minority draw is the one it always was for this seed, with or without the other classes.
    assert [f for f in sym.synthetic_files if "/bad/" in f] == minority_only.synthetic_files


def test_synthetic_weight_scales_only_the_synthetic_images_loss(square_data, both_classes):
    data = load_classifier_train_data(_cfg(square_data, synthetic_dir=str(both_classes), synthetic_ratio=1.0),
                                      "accepted")
    cfg = _cfg(square_data, synthetic_weight=0.5)
    idx = torch.tensor([0, 1, data.n_train_real, data.n_train_real + 1])
    w = sample_weights(cfg, data, idx)
    assert w.tolist() == [1.0, 1.0, 0.5, 0.5]
    assert sample_weights(_cfg(square_data), data, idx) is None
    logits, target = torch.randn(4, 2), torch.eye(2)[[0, 1, 1, 0]]
    per_image = -(target * torch.log_softmax(logits, 1)).sum(1)
    expected = (per_image * torch.tensor([1.0, 1.0, 0.5, 0.5])).mean()
    assert soft_cross_entropy(logits, target, sample_weights=w) == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(UserError, match="--synthetic-weight"):
        _cfg(square_data, synthetic_weight=0.0).validate()


def test_warmup_schedule_trains_the_last_third_on_real_images_only(square_data, both_classes):
    data = load_classifier_train_data(_cfg(square_data, synthetic_dir=str(both_classes), synthetic_ratio=1.0),
                                      "accepted")
    n_all, n_real = data.y_train.numel(), data.n_train_real
    assert real_only_epochs(9, "warmup") == 3 and real_only_epochs(9, "mixed") == 0 and (
        real_only_epochs(2, "warmup") == 1)
    cfg = _cfg(square_data, epochs=3, synthetic_schedule="warmup")
    assert [train_rows(cfg, data, e).numel() for e in (1, 2, 3)] == [n_all, n_all, n_real]
    mixed = _cfg(square_data, epochs=3)
    assert [train_rows(mixed, data, e).numel() for e in (1, 2, 3)] == [n_all] * 3


def test_weight_and_schedule_train_end_to_end(square_data, both_classes, tmp_path):
    from classify.train.trainer import train_classifier

    r = train_classifier(_cfg(square_data, out_dir=str(tmp_path / "run"), strategy="gan_filtered",
                              synthetic_dir=str(both_classes), synthetic_classes="all", synthetic_weight=0.5,
                              synthetic_schedule="warmup", epochs=2))
    assert r["synthetic_per_class"] == {"bad": r["n_train_real_minority"],
                                        "good": r["n_train_real"] - r["n_train_real_minority"]}


# ---- gen sample --class all ----------------------------------------------------------------


def test_class_all_follows_the_real_class_balance_and_is_stable_under_extension():
    rows = plan(list(range(100)), ["bad", "good"], "all", False, {"bad": 25, "good": 75})
    names = [r.class_name for r in rows]
    assert names.count("bad") == 25 and names.count("good") == 75
    longer = plan(list(range(200)), ["bad", "good"], "all", False, {"bad": 25, "good": 75})
    assert [r.class_name for r in longer[:100]] == names
    assert [r.class_name for r in plan([0, 1, 2, 3], ["a", "b"], None, False)] == ["a", "b", "a", "b"]
    with pytest.raises(UserError, match="or all"):
        plan([0], ["a", "b"], "c", False)


# ---- the ablation's synthetic axes ---------------------------------------------------------


def test_synthetic_axes_multiply_gan_cells_only_and_name_them():
    axes = SyntheticAxes(ratios=(1.0,), classes=("minority", "all"), weights=(1.0, 0.5), schedules=("mixed",))
    grid = build_grid(["oversample", "gan"], ["resnet18"], [0], axes, [1.0])
    arms = sorted({c.arm for c in grid})
    assert arms == ["gan@1", "gan@1/all", "gan@1/all/w0.5", "gan@1/w0.5", "oversample"]
    ids = {c.id for c in grid}
    assert "gan__resnet18__frac1__ratio1__seed0" in ids  # the default variant keeps its old id
    assert "gan__resnet18__frac1__ratio1__all__w0.5__seed0" in ids
    back = Cell.from_dict(next(c for c in grid if c.arm == "gan@1/all/w0.5").to_dict())
    assert back.synthetic_classes == "all" and back.synthetic_weight == 0.5


def test_ablation_config_reads_and_checks_the_synthetic_axes(tmp_path):
    cfg = AblationConfig.from_dict({"data_dir": "d", "out_dir": str(tmp_path), "device": "cpu",
                                    "synthetic_classes": "minority,all", "synthetic_weights": "1,0.5",
                                    "synthetic_schedules": ["mixed", "warmup"]})
    assert cfg.synthetic_classes == ["minority", "all"] and cfg.synthetic_weights == [1.0, 0.5]
    with pytest.raises(UserError, match="--synthetic-weight"):
        AblationConfig.from_dict({"data_dir": "d", "out_dir": str(tmp_path), "device": "cpu",
                                  "synthetic_weights": "2"})
    with pytest.raises(UserError, match="--synthetic-classes"):
        AblationConfig.from_dict({"data_dir": "d", "out_dir": str(tmp_path), "device": "cpu",
                                  "synthetic_classes": "some"})


# ---- gen train --orient auto ---------------------------------------------------------------


def _mixed_layout_data(root: Path) -> Path:
    """Class 'bad': 8 landscape (40x24) and 4 portrait (24x40) images, each with a bright bar along
    its long side; class 'good': landscape only, dark."""
    from PIL import Image

    from classify.data.prepare import PrepareConfig, prepare_dataset

    for cls, layouts in (("bad", ["landscape"] * 8 + ["portrait"] * 4), ("good", ["landscape"] * 12)):
        folder = root / "images" / cls
        folder.mkdir(parents=True)
        for i, layout in enumerate(layouts):
            img = np.full((24, 40), 60 if cls == "bad" else 20, np.uint8)
            img[10:14, 4:36] = 250  # the bar, along the long side
            if layout == "portrait":
                img = np.ascontiguousarray(img.T)
            Image.fromarray(img + i % 3, mode="L").save(folder / f"{layout}{i}.png")
    prepare_dataset(PrepareConfig(source=f"folder:{root / 'images'}", out_dir=str(root / "data"), val=0.0,
                                  test=0.0))
    return root / "data"


def test_orient_auto_turns_the_fewer_layout_and_records_it(tmp_path):
    from gen_helpers import tiny_cfg

    from gen.train.data import load_gan_train_data

    data_dir = _mixed_layout_data(tmp_path)
    cfg = tiny_cfg(data_dir, tmp_path / "run", classes=["bad"], res=16, fit="pad")
    turned = load_gan_train_data(cfg)
    assert turned.orient == {"bad": {"turned": "portrait", "n_turned": 4, "portrait": 4, "landscape": 8,
                                     "turned_share": round(4 / 12, 6)}}
    # Every image now has its bar horizontal: rows 7-8 bright across the middle, not the columns.
    rows_bright = turned.images[:, 0, 7:9, 4:12].float().mean(dim=(1, 2))
    cols_bright = turned.images[:, 0, 4:12, 7:9].float().mean(dim=(1, 2))
    assert (rows_bright > cols_bright).all()
    kept = load_gan_train_data(tiny_cfg(data_dir, tmp_path / "run2", classes=["bad"], res=16, fit="pad",
                                        orient="none"))
    assert kept.orient == {} and ((kept.images[:, 0, 7:9, 4:12].float().mean(dim=(1, 2)) >
                                   kept.images[:, 0, 4:12, 7:9].float().mean(dim=(1, 2))).sum() == 8)
    assert "4 portrait turned a quarter" in turned.summary()


def test_sampling_turns_back_in_the_reals_proportion():
    from gen.sample.sampling import turn_back

    img = torch.arange(16, dtype=torch.uint8).reshape(1, 4, 4)
    orient = {"bad": {"turned_share": 0.25}}
    back = [not torch.equal(turn_back(img, "bad", seed, orient), img) for seed in range(2000)]
    assert np.mean(back) == pytest.approx(0.25, abs=0.03)
    assert torch.equal(turn_back(img, "good", 3, orient), img) and (
        torch.equal(turn_back(img, "bad", 3, None), img))
    turned = next(turn_back(img, "bad", s, orient) for s in range(50)
                  if not torch.equal(turn_back(img, "bad", s, orient), img))
    # a clockwise quarter undoes training's turn
    assert torch.equal(torch.rot90(turned, 1, dims=(1, 2)), img)


# ---- gen merge-samples: one generator per class ----------------------------------------------


def _one_class_folder(root: Path, cls: str, n: int, value: int) -> Path:
    import json

    folder = make_class_samples_folder(root, {cls: n})
    if value != 40:  # repaint: this folder's class is told apart by its grey value
        from PIL import Image

        for png in (folder / "images" / cls).glob("*.png"):
            Image.fromarray(np.full((32, 32), value, np.uint8), mode="L").save(png)
    info = {"classes": [cls], "res": 32, "channels": 1, "fit": "crop", "manifest_hash": "h",
            "real_counts": {cls: n}, "seen_md5": {cls: [f"{cls}{i}" for i in range(n)]}, "recipe": "minority",
            "data_dir": "d"}
    (folder / "sample_info.json").write_text(json.dumps(info))
    return folder


def test_merge_samples_unites_one_folder_per_class_and_keeps_the_inputs(tmp_path, square_data):
    import json

    from click.testing import CliRunner

    from gen.cli import main

    bad = _one_class_folder(tmp_path / "bad", "bad", 12, 40)
    good = _one_class_folder(tmp_path / "good", "good", 30, 90)
    before = (bad / "samples.csv").read_text()
    r = CliRunner().invoke(main, ["merge-samples", str(bad), str(good), "--out", str(tmp_path / "both")])
    assert r.exit_code == 0, r.output
    info = json.loads((tmp_path / "both" / "sample_info.json").read_text())
    assert info["classes"] == ["bad", "good"] and info["real_counts"] == {"bad": 12, "good": 30}
    assert set(info["seen_md5"]) == {"bad", "good"} and (bad / "samples.csv").read_text() == before
    data = load_classifier_train_data(_cfg(square_data, synthetic_dir=str(tmp_path / "both"),
                                           synthetic_ratio=0.5, synthetic_classes="all"), "accepted")
    assert set(data.synthetic_per_class) == {"bad", "good"}
    again = CliRunner().invoke(main, ["merge-samples", str(bad), str(bad), "--out", str(tmp_path / "twice")])
    assert again.exit_code != 0 and "sampled in both" in again.output


def test_merge_samples_refuses_a_path_that_leaves_the_folder(tmp_path):
    from gen.sample.merge import merge_sample_folders

    bad = _one_class_folder(tmp_path / "bad", "bad", 2, 40)
    good = _one_class_folder(tmp_path / "good", "good", 2, 90)
    table = (good / "samples.csv").read_text().replace("images/good/seed0000.png", "../../escape.png")
    (good / "samples.csv").write_text(table)
    with pytest.raises(UserError, match="outside"):
        merge_sample_folders([bad, good], tmp_path / "out")
    assert not (tmp_path.parent / "escape.png").exists() and not (tmp_path / "out" / "images").exists()


def test_a_run_stored_before_orient_and_augpipe_resumes_as_it_trained(tmp_path):
    from gen_helpers import make_prepared, tiny_cfg

    from gen.train.config import config_differences
    from gen.train.recipes import resolve_config

    data = make_prepared(tmp_path)
    stored = tiny_cfg(data, tmp_path / "run").to_dict()
    for key in ("orient", "augpipe"):
        stored.pop(key)
    cfg = resolve_config({"kimg": 1.0}, base=stored)
    assert cfg.orient == "none" and cfg.augpipe == "bgc"
    assert config_differences(stored, cfg.to_dict()) == []
    assert config_differences(stored, {**cfg.to_dict(), "orient": "auto"}) == ["orient: 'none' -> 'auto'"]


def test_merged_leak_facts_come_from_the_generator_that_sampled_each_class(tmp_path):
    import json

    from gen.sample.merge import merge_sample_folders

    bad = _one_class_folder(tmp_path / "bad", "bad", 3, 40)
    good = _one_class_folder(tmp_path / "good", "good", 3, 90)
    info = json.loads((bad / "sample_info.json").read_text())  # a conditional generator: it saw both classes
    info["real_counts"] = {"bad": 12, "good": 30}
    info["seen_md5"] = {"bad": ["b1"], "good": ["g1", "g2"]}
    (bad / "sample_info.json").write_text(json.dumps(info))
    merged = merge_sample_folders([bad, good], tmp_path / "both")
    assert merged["real_counts"] == {"bad": 12, "good": 3}  # each from the folder that sampled it
    # the sampling generator's, as its count
    assert set(merged["seen_md5"]["good"]) == {"good0", "good1", "good2"}


def test_ratio_figure_draws_one_line_per_strategy_and_variant():
    from classify.ablate.figures import _without_ratio

    assert _without_ratio("gan@2") == "gan" and _without_ratio("gan@1/all/w0.5") == "gan/all/w0.5"


def test_keep_ranks_by_the_two_sample_score_when_nothing_passes_its_threshold():
    """Where a classifier tells every sample from real (AUC ~1, as on ELPV at 78 kimg), the
    threshold rejects all; --keep K instead keeps the K samples that look least synthetic."""
    reals = textured(60, 0)
    samples = torch.cat([textured(10, 1, level=0.34), textured(30, 2, level=0.6)])
    out = run_filters(_inputs(samples, reals), FilterConfig(filters=["twosample"], keep=10))
    assert out.accepted[:10].sum() >= 8 and out.accepted.sum() == 10
    assert out.info["twosample"]["decides"] is False and "combined_rank" in out.columns
