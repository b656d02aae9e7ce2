"""Sources: folder listing rules, CSV parsing, the ELPV export (with a stand-in loader), config."""

from __future__ import annotations

import numpy as np
import pytest

from classify.core.errors import UserError
from classify.data.prepare import PrepareConfig, prepare_dataset
from classify.data.sources import list_csv, list_folder, list_source, parse_source, source_kinds


def test_parse_source():
    assert parse_source("folder:/a/b") == ("folder", "/a/b")
    assert parse_source("csv:x.csv") == ("csv", "x.csv")
    assert parse_source("elpv") == ("elpv", "")
    assert source_kinds() == ["csv", "elpv", "folder"]
    with pytest.raises(UserError, match="needs a path"):
        parse_source("folder:")
    with pytest.raises(UserError, match="unknown source"):
        parse_source("s3://bucket")


def test_folder_nested_hidden_and_foreign_files(make_image_folder):
    root = make_image_folder(counts={"good": 3, "bad": 2})
    nested = root / "good" / "batch2"
    nested.mkdir()
    (nested / "x.PNG").write_bytes((root / "good" / "img000.png").read_bytes())
    (root / "good" / ".DS_Store").write_bytes(b"junk")
    (root / ".hidden_class").mkdir()
    (root / "bad" / "notes.txt").write_text("hi")
    listing = list_folder(str(root))
    names = sorted(f"{i.label}/{i.path.relative_to(root / i.label).as_posix()}" for i in listing.items)
    assert names == ["bad/img000.png", "bad/img001.png", "good/batch2/x.PNG",
                     "good/img000.png", "good/img001.png", "good/img002.png"]
    assert [(p.rsplit("/", 1)[-1], r) for p, r in listing.rejected] == [
        ("notes.txt", "extension .txt is not an image type")
    ]
    with pytest.raises(UserError, match="not a folder"):
        list_folder(str(root / "good" / "img000.png"))


def test_csv_rules(tmp_path, make_image_folder):
    make_image_folder(counts={"good": 2, "bad": 2})
    bad_header = tmp_path / "h.csv"
    bad_header.write_text("file,class\na.png,x\n")
    with pytest.raises(UserError, match="'path' and 'label'"):
        list_csv(str(bad_header))
    empty = tmp_path / "e.csv"
    empty.write_text("path,label\n")
    with pytest.raises(UserError, match="no rows"):
        list_csv(str(empty))
    mixed = tmp_path / "m.csv"
    absolute = (tmp_path / "images" / "bad" / "img001.png").resolve()
    mixed.write_text(f"path,label\nimages/good/img000.png,good\n{absolute},bad\n,good\nimages/nope.png,bad\n")
    listing = list_csv(str(mixed))
    assert [(i.path.name, i.label) for i in listing.items] == [("img000.png", "good"), ("img001.png", "bad")]
    reasons = [r for _, r in listing.rejected]
    assert reasons[0] == "row has an empty path or label" and "line 5 not found" in reasons[1]


def _fake_elpv(n=12):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, size=(n, 20, 20), dtype=np.uint8)
    probs = np.array([0.0, 1 / 3, 2 / 3, 1.0] * (n // 4))
    types = np.array(["mono", "poly"] * (n // 2))
    return images, probs, types


def test_elpv_export_threshold_and_reuse(tmp_path, monkeypatch):
    utils = pytest.importorskip("elpv_dataset.utils")
    monkeypatch.setattr(utils, "load_dataset", _fake_elpv)
    out = tmp_path / "elpv"
    listing = list_source("elpv", out_dir=out, elpv_threshold=0.5)
    assert [i.label for i in listing.items[:4]] == ["functional", "functional", "defective", "defective"]
    assert listing.items[5].extras == {"source_index": "5", "elpv_probability": "0.333333",
                                       "elpv_type": "poly"}
    first = listing.items[0].path
    assert first.parent == out / "elpv_images" and first.exists()
    stamp = first.stat().st_mtime_ns
    strict = list_source("elpv", out_dir=out, elpv_threshold=0.9)  # exported once: files are reused
    assert first.stat().st_mtime_ns == stamp
    assert [i.label for i in strict.items].count("defective") == 3
    with pytest.raises(UserError, match="elpv-threshold"):
        list_source("elpv", out_dir=out, elpv_threshold=0.0)
    result = prepare_dataset(PrepareConfig(source="elpv", out_dir=str(out)))
    assert result.rows == 12 and sum(result.counts["defective"].values()) == 6
    assert (out / "manifest.csv").read_text().splitlines()[1].startswith("elpv_images/cell0000.png,")


def test_prepare_config_roundtrip():
    cfg = PrepareConfig(source="elpv", out_dir="d", minority_class="defective", minority_fraction=0.25)
    assert PrepareConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(UserError, match="unknown prepare config keys"):
        PrepareConfig.from_dict({**cfg.to_dict(), "colour": "red"})
