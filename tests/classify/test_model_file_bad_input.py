"""A damaged or crafted model.pt, and file names that are not UTF-8, give one line, not a traceback."""

from __future__ import annotations

import math
import os
import sys

import pytest
import torch
from classify_helpers import make_square_dataset, write_square_images
from click.testing import CliRunner

from classify.cli import main
from classify.core.errors import UserError
from classify.model.loading import load_classifier
from classify.train.config import ClassifierTrainConfig
from classify.train.trainer import train_classifier


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("hard")
    data = make_square_dataset(root, n_good=16, n_bad=8)
    train_classifier(ClassifierTrainConfig(data_dir=str(data), out_dir=str(root / "run"), epochs=1, res=16,
                                           batch=8, device="cpu", progress=False))
    return root / "run" / "model.pt", data


@pytest.mark.parametrize("field, value, needle", [
    ("res", 10**9, "res 1000000000"),
    ("res", "big", "res 'big'"),
    ("classes", ["only"], "at least 2 distinct"),
    ("positive_class", "nope", "positive class 'nope'"),
    ("norm", {"mean": [0.5], "std": [0.0]}, "normalisation"),
    ("norm", {"mean": [math.nan], "std": [0.5]}, "normalisation"),
    ("threshold", math.nan, "threshold nan"),
    ("threshold", 3.0, "threshold 3.0"),
    ("in_chans", 7, "in_chans 7"),
    ("fit", "auto", "fit 'auto'"),
])
def test_crafted_fields_are_one_line_errors(model, tmp_path, field, value, needle):
    path, data = model
    ckpt = torch.load(path, weights_only=True)
    ckpt[field] = value
    bad = tmp_path / "model.pt"
    torch.save(ckpt, bad)
    with pytest.raises(UserError, match=needle):
        load_classifier(bad)
    for args in (["eval", str(bad), "--data", str(data), "--device", "cpu"],
                 ["predict", str(bad), str(data.parent / "square_images"), "--out", str(tmp_path / "p.csv"),
                  "--device", "cpu"]):
        r = CliRunner().invoke(main, args)
        assert r.exit_code != 0 and "Traceback" not in r.output and needle.split()[0] in r.output, r.output


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file names are bytes")
def test_predict_with_a_file_name_that_is_not_utf8(model, tmp_path):
    path, _ = model
    folder = tmp_path / "new"
    write_square_images(folder, 2, defect=True, seed=5, size=16)
    odd = os.path.join(os.fsencode(folder), b"caf\xe9.png")  # latin-1 bytes: not valid UTF-8
    os.rename(os.fsencode(folder / "bad000.png"), odd)
    out = tmp_path / "p.csv"
    r = CliRunner().invoke(main, ["predict", str(path), str(folder), "--out", str(out), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    text = out.read_text(encoding="utf-8")
    assert "caf\\xe9.png" in text and text.count("\n") == 3  # header + both images scored


# ---- outputs that would overwrite inputs -------------------------------------

def test_predict_and_eval_refuse_outputs_over_their_inputs(tmp_path):
    from classify_helpers import make_square_dataset
    from click.testing import CliRunner

    from classify.cli import main
    from classify.train.trainer import ClassifierTrainConfig, train_classifier

    data = make_square_dataset(tmp_path / "d", n_good=8, n_bad=6, size=16)
    run = tmp_path / "run"
    train_classifier(ClassifierTrainConfig(data_dir=str(data), out_dir=str(run), res=16, batch=4, epochs=1,
                                           progress=False))
    model = run / "model.pt"
    before = model.read_bytes()
    image = next(data.parent.rglob("*.png"))
    for out, needle in ((model, "would overwrite an input"), (image, "would overwrite an input"),
                        (data / "manifest.csv", "prepared data folder")):
        r = CliRunner().invoke(main, ["predict", str(model), str(image), "--out", str(out)])
        assert r.exit_code != 0 and needle in r.output, r.output
    assert model.read_bytes() == before and image.stat().st_size > 0
    r = CliRunner().invoke(main, ["eval", str(model), "--data", str(data), "--out", str(data / "evals")])
    assert r.exit_code != 0 and "prepared data folder" in r.output and not (data / "evals").exists()
    with pytest.raises(UserError, match="prepared data folder"):
        train_classifier(ClassifierTrainConfig(data_dir=str(data), out_dir=str(data / "run"), res=16, batch=4,
                                               epochs=1, progress=False))
