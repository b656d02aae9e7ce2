"""`classify outliers` and the `gen sample` outlier filter: planted odd images come out on top."""

import csv
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import write_class_images
from gen_helpers import prepared_bad_good, tiny_generator, tiny_judge
from helpers import one_line_error
from PIL import Image

from classify.cli import main
from classify.core.errors import UserError
from classify.data.prepare import PrepareConfig, prepare_dataset
from classify.evaluate.outliers import (
    MIN_IMAGES,
    OutlierConfig,
    combined_rank,
    fit_outlier_scorer,
    run_outliers,
)
from gen.sample.filters import FilterConfig, FilterInputs, RealSet, run_filters
from gen.sample.runner import SampleConfig, run_sample


def test_both_detectors_rank_planted_points_above_the_cluster():
    rng = np.random.default_rng(0)
    normal = rng.normal(size=(40, 16))
    planted = rng.normal(size=(2, 16)) + 6.0
    feats = np.concatenate([normal[:20], planted[:1], normal[20:], planted[1:]])
    scorer = fit_outlier_scorer(feats, "a class", "")
    iso, svm = scorer.scores(feats)
    odd = [20, 41]
    assert set(np.argsort(-iso)[:2]) == set(odd) and set(np.argsort(-svm)[:2]) == set(odd)
    rank = combined_rank(iso, svm)
    assert sorted(rank[odd]) == [1, 2] and sorted(rank) == list(range(1, 43))
    again = fit_outlier_scorer(feats, "a class", "").scores(feats)
    assert np.array_equal(again[0], iso) and np.array_equal(again[1], svm)  # seeded: the same scores


def test_too_few_images_for_the_scorer_is_a_clear_error():
    with pytest.raises(UserError,
                       match=f"class 'x' has 3 image\\(s\\); the outlier scorer needs at least {MIN_IMAGES}"):
        fit_outlier_scorer(np.zeros((3, 4)), "class 'x'", "add some")


@pytest.fixture
def planted(tmp_path):
    """All-train data: 'good' holds 24 noisy grey images plus a blank and an inverted one."""
    images = tmp_path / "img"
    paths = write_class_images(images / "good", 24, defect=False, rgb=False, seed=1)
    write_class_images(images / "bad", 10, defect=True, rgb=False, seed=2)
    Image.fromarray(np.zeros((32, 40), np.uint8), mode="L").save(images / "good" / "zz_blank.png")
    inverted = 255 - np.asarray(Image.open(paths[0]))
    Image.fromarray(inverted.astype(np.uint8), mode="L").save(images / "good" / "zz_inverted.png")
    data = tmp_path / "data"
    prepare_dataset(PrepareConfig(source=f"folder:{images}", out_dir=str(data), val=0.0, test=0.0))
    return data


def test_outliers_rank_planted_blank_and_inverted_images_first(planted, tmp_path):
    judge = tiny_judge(tmp_path / "judge.pt", ["bad", "good"], res=32)
    out = tmp_path / "out"
    summary = run_outliers(OutlierConfig(model_path=str(judge), data_dir=str(planted), out_dir=str(out),
                                         per_class=4),
                           log=lambda _m: None)
    with open(out / "outliers.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    good = [r for r in rows if r["class"] == "good"]
    assert len(good) == 26 and sorted(int(r["rank"]) for r in good) == list(range(1, 27))
    top = {r["file"].rsplit("/", 1)[-1] for r in good if int(r["rank"]) <= 2}
    assert top == {"zz_blank.png", "zz_inverted.png"}
    planted_rows = [r for r in good if r["file"].endswith(("zz_blank.png", "zz_inverted.png"))]
    others = [r for r in good if r not in planted_rows]
    for key in ("iforest_score", "ocsvm_score"):  # each detector on its own puts them above the normal ones
        assert min(float(r[key]) for r in planted_rows) > np.median([float(r[key]) for r in others])
    assert summary["counts"] == {"bad": 10, "good": 26} and summary["top"]["good"][0]["rank"] == 1
    assert Image.open(out / "outliers.png").format == "PNG"
    assert json.loads((out / "outliers.json").read_text())["split"] == "train"


def test_cli_outliers_and_its_errors(tiny_prepared, tmp_path):
    judge = tiny_judge(tmp_path / "judge.pt", ["bad", "good"], res=32)
    runner = CliRunner()
    ok = runner.invoke(main, ["outliers", str(judge), "--data", str(tiny_prepared),
                              "--out", str(tmp_path / "o"), "--device", "cpu"])
    assert ok.exit_code == 0, ok.output
    assert "bad: 5 train images scored" in ok.output and (tmp_path / "o" / "outliers.csv").is_file()
    # val has 1 bad image: scored against the 5 train images it is fitted on, that is fine
    val = runner.invoke(main, ["outliers", str(judge), "--data", str(tiny_prepared),
                               "--out", str(tmp_path / "v"), "--split", "val", "--device", "cpu"])
    assert val.exit_code == 0 and "bad: 1 val images scored" in val.output, val.output
    other = tiny_judge(tmp_path / "other.pt", ["cat", "dog"], res=32)
    bad = runner.invoke(main, ["outliers", str(other), "--data", str(tiny_prepared),
                               "--out", str(tmp_path / "x")])
    one_line_error(bad, "was trained on classes ['cat', 'dog']")


def test_a_class_too_small_for_the_scorer_is_named(make_image_folder, tmp_path):
    data = tmp_path / "small"
    prepare_dataset(PrepareConfig(source=f"folder:{make_image_folder(counts={'good': 20, 'bad': 4})}",
                                  out_dir=str(data), val=0.0, test=0.0))
    judge = tiny_judge(tmp_path / "judge.pt", ["bad", "good"], res=32)
    result = CliRunner().invoke(main, ["outliers", str(judge), "--data", str(data),
                                       "--out", str(tmp_path / "o")])
    one_line_error(result, f"class 'bad' of the train split of {data} has 4 image(s); "
                           "the outlier scorer needs at least 5")


def _reals(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return RealSet(torch.randn(n, 8, generator=g, dtype=torch.float64),
                   torch.randint(0, 256, (n, 1, 4, 4), generator=g, dtype=torch.uint8))


def test_outlier_filter_rejects_samples_far_from_the_reals_and_keeps_near_ones():
    reals = _reals()
    g = torch.Generator().manual_seed(1)
    near = reals.feats[:6] + 0.05 * torch.randn(6, 8, generator=g, dtype=torch.float64)
    far = torch.full((2, 8), 7.0, dtype=torch.float64)
    feats = torch.cat([near[:3], far[:1], near[3:], far[1:]])
    inp = FilterInputs(feats, torch.zeros(8, 1, 4, 4, dtype=torch.uint8), np.zeros(8, int), {0: reals})
    out = run_filters(inp, FilterConfig(filters=["outlier"]))
    assert out.rejected_by == ["", "", "", "outlier", "", "", "", "outlier"]
    iso, svm = out.columns["outlier_iforest"], out.columns["outlier_ocsvm"]
    info = out.info["outlier"]["0"]
    assert (iso[[3, 7]] > info["iforest_threshold"]).all() and (svm[[3, 7]] > info["ocsvm_threshold"]).all()
    assert info["percentile"] == 99.0 and info["n_real"] == 40
    # the percentile moves the line: at 1 (odder than 1% of the reals) near copies go too
    strict = run_filters(inp, FilterConfig(filters=["outlier"], outlier_percentile=1.0))
    assert strict.rejected_by.count("outlier") > 2
    with pytest.raises(UserError, match="needs at least 5"):
        run_filters(FilterInputs(feats, inp.images, inp.class_idx, {0: _reals(3)}),
                    FilterConfig(filters=["outlier"]))


@pytest.fixture(scope="module")
def sample_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("outlier_sample")
    data = prepared_bad_good(root)
    return {"data": data, "run": tiny_generator(root / "run", data, ["bad"]),
            "judge": tiny_judge(root / "judge.pt", ["bad", "good"])}


def test_gen_sample_outlier_filter_writes_both_scores_and_decides(sample_files, tmp_path):
    out = tmp_path / "s"
    cfg = SampleConfig(generator=str(sample_files["run"]), out_dir=str(out), n=10,
                       judge=str(sample_files["judge"]),
                       filters=FilterConfig(filters=["judge", "outlier"], min_confidence=0.0))
    report = run_sample(cfg, log=lambda _m: None)
    with open(out / "samples.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {"outlier_iforest", "outlier_ocsvm"} <= set(rows[0]) and len(rows) == 10
    thr = report["filters"]["outlier"]["0"]
    for r in rows:  # rejected exactly when both scores pass their thresholds
        both = float(r["outlier_iforest"]) > thr["iforest_threshold"] and \
            float(r["outlier_ocsvm"]) > thr["ocsvm_threshold"]
        assert (r["rejected_by"] == "outlier") == both and (r["accepted"] == "1") == (not both)


def test_gen_sample_refuses_the_outlier_filter_with_too_few_reals_before_generating(tmp_path):
    write_class_images(tmp_path / "img" / "bad", 4, defect=True, rgb=False, seed=1)
    write_class_images(tmp_path / "img" / "good", 12, defect=False, rgb=False, seed=2)
    data = tmp_path / "data"
    prepare_dataset(PrepareConfig(source=f"folder:{tmp_path / 'img'}", out_dir=str(data)))
    run = tiny_generator(tmp_path / "run", data, ["bad"])
    judge = tiny_judge(tmp_path / "judge.pt", ["bad", "good"])
    cfg = SampleConfig(generator=str(run), out_dir=str(tmp_path / "s"), n=4, judge=str(judge),
                       filters=FilterConfig(filters=["outlier"]))
    with pytest.raises(UserError, match="the outlier filter needs at least 5 real train images per "
                                        "sampled class \\('bad' has [0-4]\\)"):
        run_sample(cfg, log=lambda _m: None)
    assert not (tmp_path / "s" / "images").exists()
