"""`classify prepare` through click: bad inputs, one-line errors, sources, refusal/--force."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import one_line_error
from PIL import Image

from classify.cli import main
from classify.data.dataset import open_prepared


def _run(*args):
    return CliRunner().invoke(main, ["prepare", *map(str, args)])


def _manifest(out):
    return list(csv.DictReader(open(out / "manifest.csv")))


def test_bad_inputs_are_reported_not_fatal(make_image_folder, tmp_path):
    root = make_image_folder(counts={"good": 6, "bad": 4})
    good = root / "good"
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (48, 48), dtype=np.uint8)).save(buf, "JPEG")
    (good / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (good / "zero.png").write_bytes(b"")
    (good / "notes.png").write_text("this is text, not a PNG\n")
    Image.new("CMYK", (40, 32), (0, 200, 200, 0)).save(good / "cmyk.jpg")
    Image.fromarray(np.full((32, 40), 40000, dtype=np.uint16)).save(good / "deep.png")
    Image.new("RGBA", (40, 32), (90, 90, 90, 128)).save(root / "bad" / "alpha.png")
    out = tmp_path / "data"
    result = _run(f"folder:{root}", "--out", out)
    assert result.exit_code == 0, result.output
    report = (out / "report.md").read_text()
    rows = {"/".join(r["path"].split("/")[-2:]): r for r in _manifest(out)}
    # 10 plain images + cmyk + 16-bit + rgba kept; the three broken files rejected, nothing else lost.
    assert len(rows) == 13
    for name in ("truncated.jpg", "zero.png", "notes.png"):
        assert f"good/{name}" not in rows
    assert "3 files were not used" in report
    assert "truncated.jpg`: corrupt or truncated" in report
    assert "zero.png`: empty file (0 bytes)" in report
    assert "notes.png`: not an image" in report
    assert rows["good/cmyk.jpg"]["note"] == "CMYK converted to RGB" and (
        rows["good/cmyk.jpg"]["channels"] == "3")
    assert "16-bit scaled to 8-bit" in rows["good/deep.png"]["note"] and (
        rows["good/deep.png"]["channels"] == "1")
    assert "alpha dropped" in rows["bad/alpha.png"]["note"]
    assert "CMYK converted to RGB: 1" in report and "3 images were converted" in report
    data = open_prepared(out)
    assert data.channels == 3  # mixed modes -> RGB
    x = data.images(res=16, fit="stretch")
    assert x.shape == (13, 3, 16, 16)
    deep = data.indices[[r["path"].endswith("deep.png") for r in data.rows].index(True)]
    assert abs(int(x[deep].float().mean()) - 40000 // 257) <= 1


def test_pipeline_index_shows_the_prepare_report_as_html(make_image_folder, tmp_path):
    from gen.pipeline.site import write_site_index

    root = make_image_folder(counts={"good": 6, "bad": 4})
    (root / "good" / "notes.png").write_text("this is text, not a PNG\n")
    assert _run(f"folder:{root}", "--out", tmp_path / "data").exit_code == 0
    page = write_site_index(tmp_path, {}).read_text()
    section = page.split("Dataset (classify prepare)")[1]
    assert "<h3>Rejected files</h3>" in section and "<code>" in section and (
        "notes.png</code>: not an image" in section)
    assert "<th>class</th>" in section and "## " not in section and "<pre>" not in section


def test_symlinks_output_inside_source_and_missing_splits(make_image_folder, tmp_path):
    root = make_image_folder(counts={"good": 12, "bad": 2})
    first = sorted((root / "good").iterdir())[0]
    (root / "good" / "link.png").symlink_to(first)
    (root / "good" / "dangling.png").symlink_to(root / "good" / "gone.png")
    out = root / "prepared"  # inside the source folder: must not become a class on the rerun
    result = _run(f"folder:{root}", "--out", out)
    assert result.exit_code == 0, result.output
    n_rows = len(_manifest(out))
    rows = {"/".join(r["path"].split("/")[-2:]): r for r in _manifest(out)}
    assert "good/link.png" in rows and (
        rows["good/link.png"]["dup_group"] == rows[f"good/{first.name}"]["dup_group"] != "")
    report = (out / "report.md").read_text()
    assert "dangling.png`: broken symbolic link" in report
    # 2 bad images cannot fill train, val and test: the user hears it now, not at training time
    assert "warning: class bad has no val images" in result.output
    assert report.index("## Warnings") < report.index("## Settings")
    rerun = _run(f"folder:{root}", "--out", out)
    assert rerun.exit_code == 0, rerun.output
    assert len(_manifest(out)) == n_rows
    # a symlink loop: rejected, not a crash
    (root / "good" / "loop.png").symlink_to(root / "good" / "loop.png")
    deep = root / "runs" / "data"  # --out two levels down: "runs" must not become a class on the rerun
    for _ in range(2):
        again = _run(f"folder:{root}", "--out", deep)
        assert again.exit_code == 0, again.output
    assert "loop.png`: broken symbolic link" in (deep / "report.md").read_text()
    assert {r["label"] for r in _manifest(deep)} == {"good", "bad"}
    one_line_error(_run(f"folder:{root}", "--out", root), "is the source folder itself")


def test_twelve_bit_data_in_sixteen_bit_files_is_flagged(make_image_folder, tmp_path):
    root = make_image_folder(counts={"good": 8, "bad": 6})
    twelve = np.random.default_rng(0).integers(0, 4096, (32, 40)).astype(np.uint16)
    Image.fromarray(twelve).save(root / "good" / "camera12.png")
    Image.fromarray(twelve * 16).save(root / "good" / "camera16.png")  # the full 16-bit range: no warning
    result = _run(f"folder:{root}", "--out", tmp_path / "data")
    assert result.exit_code == 0, result.output
    assert "warning: 1 16-bit image(s) use only values below 4096" in result.output
    rows = {r["path"].split("/")[-1]: r for r in _manifest(tmp_path / "data")}
    assert "nearly black" in rows["camera12.png"]["note"] and (
        "nearly black" not in rows["camera16.png"]["note"])
    assert "real bit depth" in (tmp_path / "data" / "report.md").read_text()


def test_counts_classes_json_and_rerun(tiny_image_folder, tmp_path):
    out = tmp_path / "d"
    assert _run(f"folder:{tiny_image_folder}", "--out", out).exit_code == 0
    info = json.loads((out / "classes.json").read_text())
    assert info["classes"] == ["bad", "good"] and info["channels"] == 1
    assert sum(info["counts"]["bad"].values()) == 8 and sum(info["counts"]["good"].values()) == 24
    assert info["manifest_hash"] == open_prepared(out).manifest_hash
    rows = _manifest(out)
    assert all(Path(r["path"]).is_absolute() for r in rows)  # sources outside --out: absolute paths
    before = (out / "manifest.csv").read_text()
    again = _run(f"folder:{tiny_image_folder}", "--out", out)  # same settings: allowed, same manifest
    assert again.exit_code == 0 and (out / "manifest.csv").read_text() == before


def test_refuses_different_manifest_unless_force(tiny_image_folder, tmp_path):
    out = tmp_path / "d"
    assert _run(f"folder:{tiny_image_folder}", "--out", out).exit_code == 0
    before = (out / "manifest.csv").read_text()
    res = _run(f"folder:{tiny_image_folder}", "--out", out, "--seed", "5")
    one_line_error(res, "different manifest", "--force", str(out / "manifest.csv"))
    assert (out / "manifest.csv").read_text() == before
    assert _run(f"folder:{tiny_image_folder}", "--out", out, "--seed", "5", "--force").exit_code == 0
    assert (out / "manifest.csv").read_text() != before


def test_minority_fraction_cli(tiny_image_folder, tmp_path):
    out = tmp_path / "d"
    res = _run(f"folder:{tiny_image_folder}", "--out", out, "--minority-class", "bad",
               "--minority-fraction", "0.4")
    assert res.exit_code == 0, res.output
    rows = _manifest(out)
    bad = [r for r in rows if r["label"] == "bad"]
    assert len(bad) == 8  # dropped rows stay in the manifest
    assert {r["split"] for r in bad} == {"train", "val", "test", "unused"}
    assert sum(r["split"] == "train" for r in bad) == 2  # 5 train * 0.4
    assert all(r["split"] != "unused" for r in rows if r["label"] == "good")
    assert "unused" in (out / "report.md").read_text()
    assert len(open_prepared(out).select(split="unused")) == 3


def test_csv_source(tiny_image_folder, tmp_path):
    listing = tmp_path / "list.csv"
    lines = ["path,label,site"]
    for p in sorted(tiny_image_folder.rglob("*.png")):
        lines.append(f"{p.relative_to(tmp_path)},{p.parent.name},plantA")
    lines.append("images/good/missing.png,good,plantA")
    listing.write_text("\n".join(lines) + "\n")
    out = tmp_path / "d"
    res = _run(f"csv:{listing}", "--out", out)
    assert res.exit_code == 0, res.output
    rows = _manifest(out)
    assert len(rows) == 32 and {r["src_site"] for r in rows} == {"plantA"}
    assert "missing.png" in (out / "report.md").read_text()


def test_duplicates_grouped_and_reported(make_image_folder, tmp_path):
    root = make_image_folder(counts={"good": 10, "bad": 6})
    for k in range(3):  # three extra copies of one image
        (root / "good" / f"copy{k}.png").write_bytes((root / "good" / "img000.png").read_bytes())
    out = tmp_path / "d"
    assert _run(f"folder:{root}", "--out", out).exit_code == 0
    rows = _manifest(out)
    group = [r for r in rows if r["dup_group"]]
    assert len(group) == 4 and len({r["split"] for r in group}) == 1
    assert "1 duplicate groups covering 4 rows" in (out / "report.md").read_text()


@pytest.mark.parametrize(
    "setup,args,needles",
    [
        ("none", ["folder:{tmp}/nowhere"], ["does not exist", "nowhere"]),
        ("none", ["imagenet"], ["unknown source", "folder:PATH"]),
        ("ok", ["{tmp}/images"], ["unknown source", "for this folder: folder:"]),
        ("none", ["elpv:xyz"], ["elpv takes no path"]),
        ("none", ["csv:{tmp}/nope.csv"], ["does not exist", "nope.csv"]),
        ("empty_class", ["folder:{tmp}/images"], ["no image files", "bad"]),
        ("one_image", ["folder:{tmp}/images"], ["'bad'", "1 usable image", "at least 2"]),
        ("two_copies", ["folder:{tmp}/images"], ["'bad'", "1 usable image (2 files", "distinct"]),
        ("ok", ["folder:{tmp}/images", "--val", "0.5", "--test", "0.5"], ["--val", "< 1"]),
        ("ok", ["folder:{tmp}/images", "--minority-fraction", "0.5"], ["--minority-class"]),
        ("ok", ["folder:{tmp}/images", "--minority-class", "cat", "--minority-fraction", "0.5"], ["'cat'"]),
        ("no_classes", ["folder:{tmp}/images"], ["no class sub-folders"]),
    ],
)
def test_one_line_errors(make_image_folder, tmp_path, setup, args, needles):
    if setup == "ok":
        make_image_folder()
    elif setup == "empty_class":
        make_image_folder()
        (tmp_path / "images" / "bad").mkdir(exist_ok=True)
        for p in (tmp_path / "images" / "bad").iterdir():
            p.unlink()
        (tmp_path / "images" / "bad" / "readme.txt").write_text("x")
    elif setup == "one_image":
        make_image_folder(counts={"good": 5, "bad": 1})
    elif setup == "two_copies":
        root = make_image_folder(counts={"good": 5, "bad": 1})
        (root / "bad" / "again.png").write_bytes((root / "bad" / "img000.png").read_bytes())
    elif setup == "no_classes":
        (tmp_path / "images").mkdir()
        (tmp_path / "images" / "loose.png").write_bytes(b"")
    args = [a.format(tmp=tmp_path) for a in args]
    one_line_error(_run(*args, "--out", tmp_path / "out"), *needles)
    assert not (tmp_path / "out" / "manifest.csv").exists()
