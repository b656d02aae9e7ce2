"""Ensembles (mean and rank) and pseudo-labelling into a copy of a prepared folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from classify_helpers import make_square_dataset, write_square_images

from classify.core.errors import UserError
from classify.data.dataset import open_prepared
from classify.evaluate.ensemble import EnsembleConfig, build_ensemble
from classify.model.loading import load_classifier
from classify.train.config import ClassifierTrainConfig
from classify.train.trainer import train_classifier


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("ens")
    data = make_square_dataset(root)
    runs = []
    for seed in (0, 1):
        out = root / f"run{seed}"
        train_classifier(ClassifierTrainConfig(data_dir=str(data), out_dir=str(out), epochs=2, res=16,
                                               batch=8, seed=seed, device="cpu", progress=False))
        runs.append(out)
    return data, runs, root


@pytest.mark.parametrize("combine", ["mean", "rank"])
def test_ensemble_combines_members_and_is_a_model_like_any_other(trained, tmp_path, combine):
    from classify.evaluate.evaluation import evaluate_checkpoint

    data, runs, _ = trained
    r = build_ensemble(EnsembleConfig([str(p) for p in runs], str(tmp_path / "ens"), combine=combine))
    ens = load_classifier(tmp_path / "ens" / "model.pt")
    x = torch.randint(0, 256, (6, 1, 16, 16), dtype=torch.uint8)
    members = [load_classifier(p / "model.pt").predict_proba(x) for p in runs]
    probs = ens.predict_proba(x)
    assert torch.allclose(probs.sum(dim=1), torch.ones(6), atol=1e-5)
    if combine == "mean":
        assert torch.allclose(probs, (members[0] + members[1]) / 2, atol=1e-6)
    assert r["threshold"] is not None and 0 <= r["threshold"] <= 1
    m = evaluate_checkpoint(tmp_path / "ens" / "model.pt", data, split="test")
    assert m["n"] == len(open_prepared(data).select(split="test"))
    assert ens.features(x).shape[1] == 2 * 512  # the members' features side by side
    assert torch.allclose(ens.probs_from_features(ens.features(x)), probs, atol=1e-5)


def test_ensemble_refuses_members_of_other_tasks(trained, tmp_path):
    data, runs, root = trained
    other = make_square_dataset(root / "other", n_good=20, n_bad=10)
    # relabel: a model whose positive class differs is another task
    out = root / "other_run"
    train_classifier(ClassifierTrainConfig(data_dir=str(other), out_dir=str(out), epochs=1, res=16, batch=8,
                                           minority_class="good", device="cpu", progress=False))
    with pytest.raises(UserError, match="ensemble models of one task"):
        build_ensemble(EnsembleConfig([str(runs[0]), str(out)], str(tmp_path / "e")))
    with pytest.raises(UserError, match="at least 2 models"):
        build_ensemble(EnsembleConfig([str(runs[0])], str(tmp_path / "e")))


def test_pseudo_labels_join_train_only_and_refuse_val_test_copies(trained, tmp_path):
    from classify.evaluate.pseudo_label import PseudoLabelConfig, pseudo_label

    data, runs, _ = trained
    pool = tmp_path / "unlabelled"
    write_square_images(pool, 6, defect=True, seed=77, size=32)
    write_square_images(pool, 6, defect=False, seed=78, size=32)
    prepared = open_prepared(data)
    val_file = prepared.select(split="val").paths[0]
    shutil.copy(val_file, pool / "copy_of_a_val_image.png")  # same md5 as a val image
    counts = pseudo_label(PseudoLabelConfig(str(runs[0]), str(pool), str(data), str(tmp_path / "new"),
                                            threshold=0.5))
    assert counts["refused_val_test_md5"] == 1 and counts["scored"] == 13
    new = open_prepared(tmp_path / "new")  # a valid prepared folder: classes.json tied to the manifest
    for split in ("val", "test"):
        assert sorted(new.select(split=split).paths) == sorted(prepared.select(split=split).paths)
    added = len(new.select(split="train")) - len(prepared.select(split="train"))
    assert added == sum(counts["added"].values()) > 0
    assert "refused: same md5 as a val/test image | 1" in (tmp_path / "new" / "report.md").read_text()
    with pytest.raises(UserError, match="new folder"):
        pseudo_label(PseudoLabelConfig(str(runs[0]), str(pool), str(data), str(data), threshold=0.5))


def test_cli_ensemble_and_pseudo_label(trained, tmp_path):
    from click.testing import CliRunner

    from classify.cli import main

    data, runs, _ = trained
    r = CliRunner().invoke(main, ["ensemble", str(runs[0]), str(runs[1]), "--out", str(tmp_path / "e"),
                                  "--device", "cpu"])
    assert r.exit_code == 0 and "2 members, mean" in r.output, r.output
    r = CliRunner().invoke(main, ["predict", str(tmp_path / "e"), str(Path(data).parent / "square_images"),
                                  "--out", str(tmp_path / "p.csv"), "--device", "cpu", "--tta", "flip"])
    assert r.exit_code == 0, r.output
