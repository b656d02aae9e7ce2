"""PreparedData: selection, labels, channels, image batches and the on-disk cache."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest
import torch
from PIL import Image

import classify.data.dataset as dataset_mod
from classify.core.errors import UserError
from classify.data.dataset import open_prepared
from classify.data.prepare import PrepareConfig, prepare_dataset


def test_select_labels_paths(tiny_prepared):
    data = open_prepared(tiny_prepared)
    assert data.classes == ["bad", "good"]
    assert len(data) == 32
    assert data.channels == 1
    train_bad = data.select(split="train", classes=["bad"])
    assert train_bad.classes == ["bad", "good"]  # label ids stay global after select
    assert set(train_bad.labels.tolist()) == {0}
    assert all(r["split"] == "train" and r["label"] == "bad" for r in train_bad.rows)
    assert all(p.is_absolute() and p.exists() for p in train_bad.paths)
    both = data.select(split=["val", "test"])
    assert {r["split"] for r in both.rows} == {"val", "test"}
    assert len(data.select(split="train")) + len(both) == 32
    assert data.labels.dtype == torch.int64
    assert len(data.manifest_hash) == 64
    counts = {(c, s): len(data.select(split=s, classes=[c]))
              for c in data.classes for s in ("train", "val", "test")}
    assert counts == {("good", "train"): 15, ("good", "val"): 4, ("good", "test"): 5,
                      ("bad", "train"): 5, ("bad", "val"): 1, ("bad", "test"): 2}  # as conftest documents


def test_unique_files_keeps_the_first_of_each_duplicate(make_image_folder, tmp_path):
    root = make_image_folder(counts={"good": 10, "bad": 6})
    for k in range(3):  # three copies of one good image
        (root / "good" / f"copy{k}.png").write_bytes((root / "good" / "img000.png").read_bytes())
    out = tmp_path / "data"
    prepare_dataset(PrepareConfig(source=f"folder:{root}", out_dir=str(out)))
    data = open_prepared(out)
    unique = data.unique_files()
    assert len(data) == 19 and len(unique) == 16
    assert len({r["md5"] for r in unique.rows}) == 16 and unique.indices == sorted(unique.indices)
    assert len(data.select(classes=["bad"]).unique_files()) == 6


def test_select_unknown_names(tiny_prepared):
    data = open_prepared(tiny_prepared)
    with pytest.raises(UserError, match="unknown split"):
        data.select(split="training")
    with pytest.raises(UserError, match="unknown class"):
        data.select(classes=["cat"])


def test_images_match_files_and_bad_has_bright_square(tiny_prepared):
    data = open_prepared(tiny_prepared)
    x = data.images(res=16)
    assert x.shape == (32, 1, 16, 16) and x.dtype == torch.uint8
    # The 'bad' images have a 250-valued square; after a 32->16 downscale the max stays far above 'good'.
    is_bad = data.labels == data.classes.index("bad")
    assert x[is_bad].amax(dim=(1, 2, 3)).min() > x[~is_bad].amax(dim=(1, 2, 3)).max()
    rgb = data.select(split="test").images(res=8, channels=3, fit="stretch")
    assert rgb.shape[1:] == (3, 8, 8)
    assert torch.equal(rgb[:, 0], rgb[:, 1])  # gray replicated into three channels


def test_native_rgb_channels(tiny_prepared_rgb):
    data = open_prepared(tiny_prepared_rgb)
    assert data.channels == 3
    x = data.images(res=8)
    assert x.shape == (32, 3, 8, 8)
    assert (x[:, 0].float().mean() > x[:, 2].float().mean())  # fixture makes R > B
    assert data.images(res=8, channels=1).shape == (32, 1, 8, 8)


def test_cache_hit_skips_decoding(tiny_prepared, monkeypatch):
    data = open_prepared(tiny_prepared)
    first = data.select(split="train").images(res=12, fit="pad")
    files = list((tiny_prepared / "cache").glob("*.npy"))
    assert len(files) == 1 and "r12-c1-pad" in files[0].name

    def no_decode(*_a, **_k):
        raise AssertionError("cache hit must not decode images")

    monkeypatch.setattr(dataset_mod, "decode_image", no_decode)
    again = open_prepared(tiny_prepared).select(split="train").images(res=12, fit="pad")
    assert torch.equal(first, again)
    with pytest.raises(AssertionError, match="must not decode"):
        data.images(res=10)  # a new resolution is a miss


def test_cache_invalidated_when_manifest_changes(tiny_image_folder, tiny_prepared):
    data = open_prepared(tiny_prepared)
    data.images(res=8)
    old = {p.name for p in (tiny_prepared / "cache").glob("*.npy")}
    prepare_dataset(PrepareConfig(source=f"folder:{tiny_image_folder}", out_dir=str(tiny_prepared), seed=1,
                                  force=True))
    data2 = open_prepared(tiny_prepared)
    assert data2.manifest_hash != data.manifest_hash
    data2.images(res=8)
    new = {p.name for p in (tiny_prepared / "cache").glob("*.npy")}
    assert new.isdisjoint(old), "stale cache of the old manifest must be removed"
    assert len(new) == 1 and new.pop().startswith(data2.manifest_hash[:16])


def test_corrupt_cache_is_rebuilt(tiny_prepared):
    data = open_prepared(tiny_prepared)
    good = data.images(res=8)
    (cache,) = (tiny_prepared / "cache").glob("*.npy")
    cache.write_bytes(b"not a numpy file")
    assert torch.equal(open_prepared(tiny_prepared).images(res=8), good)
    assert np.load(cache).shape == (32, 1, 8, 8)


def test_open_prepared_errors(tiny_prepared, tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        open_prepared(tmp_path / "nope")
    with pytest.raises(UserError, match="no manifest.csv"):
        open_prepared(tmp_path)  # a folder without a manifest
    raw = tmp_path / "raw"
    (raw / "bad").mkdir(parents=True)
    Image.new("L", (8, 8)).save(raw / "bad" / "a.png")
    with pytest.raises(UserError,
                       match=f"holds class folders of images.*prepare folder:{raw} --out DATA_DIR"):
        open_prepared(raw)  # the image tree itself: prepare must not write into it
    rows = list(csv.DictReader(open(tiny_prepared / "manifest.csv")))
    victim = rows[3]["path"]
    with open(victim, "ab") as fh:
        fh.write(b"x")
    with pytest.raises(UserError, match="changed since"):
        open_prepared(tiny_prepared)
    os.unlink(victim)
    with pytest.raises(UserError, match="missing"):
        open_prepared(tiny_prepared)


def test_bad_image_args(tiny_prepared):
    data = open_prepared(tiny_prepared)
    with pytest.raises(UserError, match="fit"):
        data.images(res=8, fit="zoom")
    with pytest.raises(UserError, match="channels"):
        data.images(res=8, channels=2)
    with pytest.raises(UserError, match="resolution"):
        data.images(res=0)



def test_unwritable_cache_is_a_user_error(tiny_prepared, monkeypatch):
    def denied(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(dataset_mod, "atomic_open", denied)
    with pytest.raises(UserError, match="permission denied"):
        open_prepared(tiny_prepared).images(res=8)
