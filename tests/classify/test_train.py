"""Trainer end to end on tiny prepared data: every strategy, learnability, determinism,
minority subsampling, synthetic images (train only), checkpoint + judge API, eval outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from classify_helpers import make_samples_folder, make_square_dataset

from classify.core.errors import UserError
from classify.data.dataset import open_prepared
from classify.evaluate.evaluation import evaluate_checkpoint
from classify.model.loading import load_classifier
from classify.train.data import load_classifier_train_data
from classify.train.strategies import list_strategies
from classify.train.trainer import ClassifierTrainConfig, train_classifier


@pytest.fixture(scope="module")
def square_data(tmp_path_factory) -> Path:
    """Small (about 21 train images): enough for mechanics, not for learning."""
    return make_square_dataset(tmp_path_factory.mktemp("sq"), n_good=20, n_bad=10, size=32)


@pytest.fixture(scope="module")
def square_data_learnable(tmp_path_factory) -> Path:
    """Large enough that val/test AP is not decided by one or two images."""
    return make_square_dataset(tmp_path_factory.mktemp("sq_big"), n_good=80, n_bad=40, size=32)


@pytest.fixture(scope="module")
def samples_dir(tmp_path_factory) -> Path:
    return make_samples_folder(tmp_path_factory.mktemp("samples") / "samples", n_accepted=12, n_rejected=12)


def _cfg(data: Path, out: Path, **kw) -> ClassifierTrainConfig:
    base = dict(data_dir=str(data), out_dir=str(out), res=16, batch=8, epochs=1, progress=False, seed=0)
    base.update(kw)
    return ClassifierTrainConfig(**base)


# oversample+classic is trained by the CLI test; one three-part combination covers composition here.
@pytest.mark.parametrize("strategy", list_strategies() + ["gan_filtered+classic+cutmix"])
def test_every_strategy_trains_one_epoch(strategy, square_data, samples_dir, tmp_path) -> None:
    r = train_classifier(_cfg(square_data, tmp_path / "run", strategy=strategy,
                              synthetic_dir=str(samples_dir), synthetic_ratio=0.5))
    assert Path(r["checkpoint"]).is_file()
    assert r["epochs_run"] == 1 and 0.0 <= r["val"]["average_precision"] <= 1.0
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["train_loss"] > 0
    expected_syn = round(0.5 * r["n_train_real_minority"]) if "gan" in strategy else 0
    assert r["n_train_synthetic"] == expected_syn


def test_learns_bright_square(square_data_learnable, tmp_path) -> None:
    """The pipeline learns: resnet18 at res 32 separates 'bad' (bright square) on TEST."""
    data = square_data_learnable
    r = train_classifier(_cfg(data, tmp_path / "run", res=32, batch=16, epochs=5, lr=3e-3))
    m = evaluate_checkpoint(r["checkpoint"], data, split="test")
    assert m["n"] >= 20
    assert m["positive_class"] == "bad"
    assert m["average_precision"] > 0.9, m["average_precision"]


def test_same_seed_same_metrics(square_data, tmp_path) -> None:
    runs = []
    for name in ("a", "b"):
        train_classifier(_cfg(square_data, tmp_path / name, strategy="oversample+classic+mixup", epochs=1,
                              deterministic=True))
        runs.append((tmp_path / name / "metrics.jsonl").read_text().splitlines())
    strip = [[{k: v for k, v in json.loads(line).items() if k != "epoch_time_s"} for line in run]
             for run in runs]
    assert strip[0] == strip[1]
    w_a = torch.load(tmp_path / "a" / "model.pt", weights_only=True)["state_dict"]
    w_b = torch.load(tmp_path / "b" / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(w_a[k], w_b[k]) for k in w_a)


def test_minority_fraction_same_rows_for_every_strategy(square_data) -> None:
    picks = {}
    for strategy in ("baseline", "oversample+classic"):
        cfg = _cfg(square_data, "unused", strategy=strategy, minority_fraction=0.5, seed=3)
        picks[strategy] = load_classifier_train_data(cfg, None).train_paths
    assert picks["baseline"] == picks["oversample+classic"]
    full = load_classifier_train_data(_cfg(square_data, "unused"), None)
    half = load_classifier_train_data(_cfg(square_data, "unused", minority_fraction=0.5, seed=3), None)
    n_bad_full = int((full.y_train == full.positive).sum())
    assert int((half.y_train == half.positive).sum()) == round(0.5 * n_bad_full)
    assert int((half.y_train != half.positive).sum()) == int((full.y_train != full.positive).sum())
    other_seed = load_classifier_train_data(_cfg(square_data, "unused", minority_fraction=0.5, seed=4), None)
    assert other_seed.train_paths != half.train_paths


def test_synthetic_only_in_train_and_filtered_means_accepted(square_data, samples_dir) -> None:
    real = load_classifier_train_data(_cfg(square_data, "unused"), None)
    n_min = int((real.y_train == real.positive).sum())
    filt = load_classifier_train_data(_cfg(square_data, "unused", synthetic_dir=str(samples_dir),
                                           synthetic_ratio=0.5),
                                      "accepted")
    n_syn = round(0.5 * n_min)
    assert filt.n_train_synthetic == n_syn and filt.x_train.shape[0] == real.x_train.shape[0] + n_syn
    added = filt.x_train[real.x_train.shape[0]:]
    assert (added == 255).all()  # only the white (accepted) samples
    assert (filt.y_train[real.x_train.shape[0]:] == filt.positive).all()
    # Validation is exactly the real val split; no synthetic file is in the manifest.
    assert torch.equal(filt.x_val, real.x_val) and torch.equal(filt.y_val, real.y_val)
    listed = {str(p) for p in open_prepared(square_data).paths}
    assert not listed & set(filt.synthetic_files)
    unfilt = load_classifier_train_data(_cfg(square_data, "unused", synthetic_dir=str(samples_dir),
                                             synthetic_ratio=1.0), "all")
    assert unfilt.n_train_synthetic == n_min
    with pytest.raises(UserError, match="usable samples"):
        load_classifier_train_data(_cfg(square_data, "unused", synthetic_dir=str(samples_dir),
                                        synthetic_ratio=5.0), "accepted")
    with pytest.raises(UserError, match="--synthetic"):
        load_classifier_train_data(_cfg(square_data, "unused"), "accepted")


def test_checkpoint_is_plain_and_judge_api_works(square_data, tmp_path) -> None:
    r = train_classifier(_cfg(square_data, tmp_path / "run"))
    ckpt = torch.load(r["checkpoint"], weights_only=True)
    assert ckpt["classes"] == ["bad", "good"] and ckpt["res"] == 16 and ckpt["in_chans"] == 1
    assert ckpt["config"]["model_name"] == "resnet18" and ckpt["format_version"] == 1
    clf = load_classifier(r["checkpoint"])
    assert (clf.classes, clf.res, clf.in_chans, clf.threshold) == (["bad", "good"], 16, 1, r["threshold"])
    x = torch.randint(0, 256, (5, 3, 40, 40), dtype=torch.uint8)  # other size and channel count
    probs = clf.predict_proba(x)
    assert probs.shape == (5, 2)
    torch.testing.assert_close(probs.sum(1), torch.ones(5))
    assert clf.features(x).shape == (5, 512)
    # gen sample's one-pass route: head(features) gives the same probabilities
    torch.testing.assert_close(clf.probs_from_features(clf.features(x)), probs, atol=1e-5, rtol=1e-4)
    with pytest.raises(UserError, match="not found"):
        load_classifier(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot read"):
        load_classifier(tmp_path / "junk.pt")


def test_config_round_trip_and_unknown_keys() -> None:
    cfg = ClassifierTrainConfig(model_name="vgg11_bn", strategy="focal", target_recall=0.9)
    assert ClassifierTrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(UserError, match="unknown ClassifierTrainConfig key.*epochz"):
        ClassifierTrainConfig.from_dict({"epochz": 3})


def test_cpu_bf16_is_opt_in_and_still_learns(square_data_learnable, tmp_path) -> None:
    """--cpu-bf16 autocasts the CPU step to bf16; the default stays fp32; weights stay fp32."""
    from classify.train.loop import build_step
    from classify.train.strategies import build_strategy

    data = load_classifier_train_data(_cfg(square_data_learnable, tmp_path / "x"), None)
    for flag, dtype in ((False, None), (True, torch.bfloat16)):
        st, net = build_step(_cfg(square_data_learnable, tmp_path / "x", cpu_bf16=flag),
                             build_strategy("baseline"), data, torch.device("cpu"))
        assert st.amp_dtype == dtype
        # channels_last on the CPU only with bf16 (where it measured faster); fp32 stays contiguous
        conv = [m.weight for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1][-1]
        assert st.channels_last == flag == conv.is_contiguous(memory_format=torch.channels_last)
    r = train_classifier(_cfg(square_data_learnable, tmp_path / "run", res=32, batch=16, epochs=5, lr=3e-3,
                              cpu_bf16=True))
    state = torch.load(r["checkpoint"], weights_only=True)["state_dict"]
    assert all(v.dtype in (torch.float32, torch.int64) for v in state.values())
    m = evaluate_checkpoint(r["checkpoint"], square_data_learnable, split="test")
    assert m["average_precision"] > 0.9, m["average_precision"]


def test_samples_csv_may_not_point_outside_its_folder_or_at_held_out_images(square_data, tmp_path) -> None:
    """Synthetic files lie in the sample folder, and none is a val/test image."""
    import shutil

    from classify_helpers import make_samples_folder

    data = open_prepared(square_data)
    outside = make_samples_folder(tmp_path / "outside", n_accepted=12, n_rejected=0)
    test_image = data.select(split="test", classes=["bad"]).paths[0]
    table = (outside / "samples.csv").read_text().replace("images/seed0000.png", str(test_image))
    (outside / "samples.csv").write_text(table)
    with pytest.raises(UserError, match="outside the sample folder"):
        load_classifier_train_data(_cfg(square_data, "unused", synthetic_dir=str(outside),
                                        synthetic_ratio=1.0), "all")
    copied = make_samples_folder(tmp_path / "copied", n_accepted=12, n_rejected=0)
    for png in (copied / "images").glob("*.png"):
        shutil.copyfile(test_image, png)  # a held-out image smuggled in under a sample's name
    with pytest.raises(UserError, match="byte-identical to a test image"):
        load_classifier_train_data(_cfg(square_data, "unused", synthetic_dir=str(copied),
                                        synthetic_ratio=1.0), "all")
