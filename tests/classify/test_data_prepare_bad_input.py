"""`classify prepare` under hostile input and interruptions; aspect ratios and `--fit auto`.

Write order, one-line errors, --out "", and the data side of "fit that keeps the
defect" (aspect-ratio report, crop warning, resolve_fit, minority-class warning).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import write_class_images
from helpers import one_line_error
from PIL import Image

from classify.cli import main
from classify.core.errors import UserError
from classify.data import prepare as prepare_mod
from classify.data.aspect import aspect_summary, prepared_aspect_ratios, resolve_fit
from classify.data.dataset import build_cache, open_prepared
from classify.data.images import check_fit, fit_square
from classify.data.prepare import PrepareConfig, prepare_dataset


def _run(*args):
    return CliRunner().invoke(main, ["prepare", *map(str, args)])


# ---- write order: classes.json and the manifest are tied by the hash ----------------------------

def test_failure_before_the_manifest_leaves_a_folder_that_is_refused(tiny_image_folder, tmp_path,
                                                                     monkeypatch):
    out = tmp_path / "data"
    prepare_dataset(PrepareConfig(source=f"folder:{tiny_image_folder}", out_dir=str(out), seed=0))
    before = open_prepared(out).manifest_hash

    def crash(path, text):
        raise OSError("killed before the manifest")

    monkeypatch.setattr(prepare_mod, "write_manifest", crash)
    with pytest.raises(OSError):
        prepare_dataset(PrepareConfig(source=f"folder:{tiny_image_folder}", out_dir=str(out), seed=1,
                                      force=True))
    monkeypatch.undo()
    assert json.loads((out / "classes.json").read_text())["config"]["seed"] == 1  # the half-written state
    with pytest.raises(UserError,
                       match=r"classes.json describes another manifest .*stopped between its files"):
        open_prepared(out)
    # Rerunning the command that wrote the folder repairs it.
    prepare_dataset(PrepareConfig(source=f"folder:{tiny_image_folder}", out_dir=str(out), seed=0))
    assert open_prepared(out).manifest_hash == before


def test_manifest_without_classes_json_is_refused(tiny_prepared):
    (tiny_prepared / "classes.json").unlink()
    with pytest.raises(UserError, match="has a manifest.csv but no classes.json"):
        open_prepared(tiny_prepared)
    (tiny_prepared / "classes.json").write_text("{not json")
    with pytest.raises(UserError, match="classes.json is unreadable"):
        open_prepared(tiny_prepared)


def test_report_names_the_manifest_hash(tiny_prepared):
    digest = json.loads((tiny_prepared / "classes.json").read_text())["manifest_hash"]
    assert f"manifest hash: `{digest}`" in (tiny_prepared / "report.md").read_text()


# ---- one-line errors instead of tracebacks ------------------------------------------------------

def test_non_utf8_csv_is_one_line(make_image_folder, tmp_path):
    root = make_image_folder(counts={"good": 3, "bad": 3})
    lines = ["path,label,comment"] + [f"{p},{p.parent.name},caf\xe9" for p in sorted(root.rglob("*.png"))]
    src = tmp_path / "list.csv"
    src.write_bytes("\n".join(lines).encode("latin-1"))
    one_line_error(_run(f"csv:{src}", "--out", tmp_path / "out"), "is not UTF-8 text", "0xe9", "CSV UTF-8")
    assert not (tmp_path / "out" / "manifest.csv").exists()


@pytest.mark.skipif(os.name != "posix", reason="byte file names are POSIX")
def test_file_name_that_is_not_utf8_is_rejected_with_a_reason(make_image_folder, tmp_path):
    root = make_image_folder(counts={"good": 4, "bad": 4})
    bad_name = os.path.join(os.fsencode(root / "bad"), b"caf\xe9.png")
    with open(bad_name, "wb") as fh:
        Image.new("L", (40, 32), 128).save(fh, format="PNG")
    out = tmp_path / "out"
    result = _run(f"folder:{root}", "--out", out)
    assert result.exit_code == 0, result.output
    assert "8 images in" in result.stdout and "1 rejected" in result.output
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "caf\\xe9.png`: file name is not valid UTF-8" in report
    assert len(open_prepared(out)) == 8


@pytest.mark.parametrize("flags, needles", [
    (["--val", "nan"], ["--val nan", "must be numbers in [0, 1)"]),
    (["--test", "nan"], ["--test nan"]),
    (["--val", "inf"], ["--val inf"]),
])
def test_non_finite_fractions_are_one_line(tiny_image_folder, tmp_path, flags, needles):
    one_line_error(_run(f"folder:{tiny_image_folder}", "--out", tmp_path / "out", *flags), *needles)


def test_empty_out_says_so(tiny_image_folder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    one_line_error(_run(f"folder:{tiny_image_folder}", "--out", ""), "--out is empty")
    assert not (tmp_path / "manifest.csv").exists()


# ---- aspect ratios and --fit auto --------------------------------------------------------------

def _mixed_folder(root, wide: int, square: int):
    """good: `square` 32x32 images; bad: `wide` 96x32 (ratio 3) images."""
    write_class_images(root / "good", square, defect=False, rgb=False, size=(32, 32), seed=1)
    write_class_images(root / "bad", wide, defect=True, rgb=False, size=(96, 32), seed=2)
    return root


def test_report_and_cli_give_the_aspect_spread_and_warn_about_crop(tmp_path):
    root = _mixed_folder(tmp_path / "images", wide=6, square=14)
    result = _run(f"folder:{root}", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert ("aspect ratio (long/short side): min 1.00, median 1.00, max 3.00; 30% above 4/3, 30% above 2; "
            "--fit auto resolves to pad") in result.stdout
    assert "warning: --fit crop would cut more than a quarter of 6 of 20 image(s)" in result.stderr
    report = (tmp_path / "out" / "report.md").read_text()
    warnings = report.split("## Settings")[0]
    assert "## Warnings" in warnings and "--fit crop would cut more than a quarter of 6 of 20" in warnings
    assert "## Aspect ratios" in report and "- min 1.00, median 1.00, max 3.00" in report
    assert "`--fit auto` resolves to **pad** for this folder" in report


def test_square_images_get_no_crop_warning_and_auto_is_crop(tmp_path):
    root = _mixed_folder(tmp_path / "images", wide=0, square=8)
    write_class_images(root / "bad", 8, defect=True, rgb=False, size=(32, 32), seed=3)
    result = _run(f"folder:{root}", "--out", tmp_path / "out")
    assert result.exit_code == 0 and "would cut" not in result.stderr
    assert "--fit auto resolves to crop" in result.stdout
    assert "**crop**" in (tmp_path / "out" / "report.md").read_text()


@pytest.mark.parametrize("ratios, expected", [
    ([1.0] * 100, "crop"),
    ([1.0] * 95 + [1.5] * 5, "crop"),      # exactly 5% above 1.1: not more than 5%
    ([1.0] * 94 + [1.5] * 6, "pad"),
    ([1.1] * 100, "crop"),                 # 1.1 itself is not above the threshold
    ([1.12] * 100, "pad"),
    ([], "crop"),
])
def test_resolve_fit_auto_rule(ratios, expected):
    assert resolve_fit("auto", ratios) == expected


def test_resolve_fit_keeps_a_concrete_request_and_checks_names():
    assert resolve_fit("stretch", [3.0] * 10) == "stretch" and resolve_fit("crop", [3.0] * 10) == "crop"
    assert check_fit("auto") == "auto"
    with pytest.raises(UserError, match="'zoom' is not one of crop, pad, stretch, auto"):
        resolve_fit("zoom", [1.0])
    with pytest.raises(ValueError, match="fit must be one of"):
        fit_square(np.zeros((4, 4, 1), np.uint8), 4, "auto")


def test_images_fit_auto_resolves_with_the_folders_own_ratios(tmp_path):
    root = _mixed_folder(tmp_path / "images", wide=6, square=14)
    out = tmp_path / "data"
    prepare_dataset(PrepareConfig(source=f"folder:{root}", out_dir=str(out)))
    data = open_prepared(out)
    assert data.resolve_fit("auto") == "pad" and (
        aspect_summary(prepared_aspect_ratios(out))["auto_fit"] == "pad")
    # A selection of square images only still gets the folder's fit (one fit per folder).
    good = data.select(classes="good")
    assert good.resolve_fit("auto") == "pad"
    auto = data.images(res=16, fit="auto")
    assert torch.equal(auto, data.images(res=16, fit="pad"))
    assert not torch.equal(auto, data.images(res=16, fit="crop"))
    assert not list((out / "cache").glob("*-auto.npy"))
    with pytest.raises(ValueError, match="resolve 'auto' first"):
        build_cache(out, data.rows, data.manifest_hash, 16, 1, "auto")


# ---- the named minority class must be rare in val and test ---------------------------------------

def test_minority_class_that_is_the_majority_of_val_and_test_is_warned(tiny_image_folder, tmp_path):
    result = _run(f"folder:{tiny_image_folder}", "--out", tmp_path / "out", "--minority-class", "good")
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.stderr.splitlines() if "--minority-class good" in ln]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("warning: --minority-class good is the majority of val (4 of 5 images) "
                               "and test (5 of 7 images): it is not the rare class here")
    top = (tmp_path / "out" / "report.md").read_text().split("## Settings")[0]
    assert "--minority-class good is the majority of val (4 of 5 images) and test" in top


def test_a_real_minority_class_gets_no_such_warning(tiny_image_folder, tmp_path):
    result = _run(f"folder:{tiny_image_folder}", "--out", tmp_path / "out", "--minority-class", "bad")
    assert result.exit_code == 0 and "majority" not in result.stderr
    assert "majority" not in (tmp_path / "out" / "report.md").read_text()


# ---- labels that leave a folder, paths with control characters ---------

@pytest.mark.parametrize("label, why", [("../../../x", "a path separator"), ("a\\b", "a path separator"),
                                        ("..", "'.' or '..'"), ("bad\ncls", "a control character")])
def test_a_csv_label_that_would_leave_a_folder_is_one_line_naming_the_row(make_image_folder, tmp_path,
                                                                          label, why):
    root = make_image_folder(counts={"good": 3, "bad": 3})
    files = sorted(root.rglob("*.png"))
    import csv
    import io

    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["path", "label"])
    writer.writerows([[str(p), p.parent.name] for p in files[:-1]] + [[str(files[-1]), label]])
    src = tmp_path / "list.csv"
    src.write_text(text.getvalue())
    one_line_error(_run(f"csv:{src}", "--out", tmp_path / "out"), why, "list.csv line 7")
    assert not (tmp_path / "out" / "manifest.csv").exists()


def test_a_csv_path_with_a_newline_is_rejected_with_a_reason(make_image_folder, tmp_path):
    root = make_image_folder(counts={"good": 3, "bad": 3})
    files = sorted(root.rglob("*.png"))
    rows = [f"{p},{p.parent.name}" for p in files]
    rows.append('"x.png\n![p](/etc/passwd)",bad')  # the embedding trick of the second probe
    src = tmp_path / "list.csv"
    src.write_text("path,label\n" + "\n".join(rows) + "\n")
    out = tmp_path / "out"
    result = _run(f"csv:{src}", "--out", out)
    assert result.exit_code == 0, result.output
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "control character" in report and "![p](/etc/passwd)" not in report.replace("\\n", "")


def test_gen_sample_refuses_a_class_that_would_leave_its_folder():
    from gen.sample.files import plan

    with pytest.raises(UserError, match="path separator"):
        plan([0, 1], ["good", "../../../x"], None, False)


def test_a_symlinked_class_folder_leading_out_of_the_source_is_not_followed(make_image_folder, tmp_path):
    root = make_image_folder(counts={"good": 3, "bad": 3})
    write_class_images(root.parent / "elsewhere", 4, defect=False, rgb=False, seed=9)
    (root / "up").symlink_to(root.parent)  # `ln -s .. SRC/up`
    out = tmp_path / "out"
    result = _run(f"folder:{root}", "--out", out)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "classes.json").read_text())["classes"] == ["bad", "good"]
    assert "outside the source folder: not followed" in (out / "report.md").read_text(encoding="utf-8")


def test_small_files_that_declare_huge_images_are_refused_from_the_header(make_image_folder, tmp_path):
    """A few-KB PNG of thousands of pixels a side must not be decoded."""
    root = make_image_folder(counts={"good": 3, "bad": 3})
    big = Image.new("I;16", (3000, 2000))
    big.save(root / "bad" / "huge16.png")
    Image.new("P", (2500, 2500)).save(root / "bad" / "huge_palette.png")
    assert (root / "bad" / "huge16.png").stat().st_size < 200_000
    out = tmp_path / "out"
    result = _run(f"folder:{root}", "--out", out, "--max-pixels", 5_000_000)
    assert result.exit_code == 0, result.output
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "3000x2000 is 6 M pixels, above the decode budget of 5 M" in report and "2500x2500" in report


def test_sixteen_bit_images_decode_without_a_wide_copy():
    from classify.data.images import _convert_mode

    img = Image.fromarray(np.array([[0, 257, 65535]], dtype=np.uint16))
    pixels, note = _convert_mode(img)
    assert pixels.tolist() == [[0, 1, 255]] and pixels.dtype == np.uint8 and "16-bit" in note


def test_an_image_replaced_by_another_of_the_same_size_is_refused_by_name(make_image_folder, tmp_path):
    """Content, not only size, is checked after prepare (md5 when the mtime moved,
    and always when the cache is built)."""
    root = make_image_folder(counts={"good": 4, "bad": 4})
    out = tmp_path / "out"
    assert _run(f"folder:{root}", "--out", out).exit_code == 0
    data = open_prepared(out)
    data.images(res=8, channels=1)  # cache built from the original files
    victim = data.paths[0]
    original = victim.read_bytes()
    garbage = bytes(b ^ 0x55 for b in original)  # the same size, other bytes
    victim.write_bytes(garbage)
    with pytest.raises(UserError, match=rf"{victim.name} changed since .* md5 differs"):
        open_prepared(out)
    victim.write_bytes(original)
    assert len(open_prepared(out).images(res=8, channels=1)) == 8  # restored: accepted again


# ---- smaller guards -------------------------------------------------------------------

def test_one_file_under_two_labels_is_refused_and_a_repeated_row_is_kept_once(make_image_folder, tmp_path):
    root = make_image_folder(counts={"good": 3, "bad": 3})
    files = sorted(root.rglob("*.png"))
    rows = [f"{p},{p.parent.name}" for p in files]
    src = tmp_path / "list.csv"
    src.write_text("path,label\n" + "\n".join(rows + [rows[0]]) + "\n")
    out = tmp_path / "out"
    result = _run(f"csv:{src}", "--out", out)
    assert result.exit_code == 0 and "6 images in" in result.output
    assert "listed again: kept once" in (out / "report.md").read_text(encoding="utf-8")
    other = "good" if files[0].parent.name == "bad" else "bad"
    src.write_text("path,label\n" + "\n".join(rows + [f"{files[0]},{other}"]) + "\n")
    one_line_error(_run(f"csv:{src}", "--out", tmp_path / "out2"), "twice with different labels",
                   "line 2", "line 8")


def test_a_class_whose_files_all_fail_is_named_and_an_empty_source_names_a_reason(
        make_image_folder, tmp_path):
    root = make_image_folder(counts={"good": 3, "bad": 3})
    (root / "broken").mkdir()
    for i in range(2):
        (root / "broken" / f"x{i}.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    result = _run(f"folder:{root}", "--out", out)
    assert result.exit_code == 0 and "class 'broken': all 2 of its files were rejected" in result.output
    assert "class 'broken': all 2" in (out / "report.md").read_text(encoding="utf-8")
    only_broken = tmp_path / "only"
    (only_broken / "a").mkdir(parents=True)
    (only_broken / "a" / "x.png").write_bytes(b"not a png")
    one_line_error(_run(f"folder:{only_broken}", "--out", tmp_path / "out3"), "all 1 files were rejected",
                   "the first:", "x.png")


def test_class_names_reach_report_md_as_text_not_html(make_image_folder, tmp_path):
    root = make_image_folder(counts={"good": 3, "<b>x": 3})
    out = tmp_path / "out"
    assert _run(f"folder:{root}", "--out", out).exit_code == 0
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "<b>" not in report and "&lt;b&gt;x" in report


def test_sample_page_links_are_percent_encoded(tmp_path):
    from gen.sample.pages import write_sample_index

    page = write_sample_index(tmp_path, ["a b.png"], ["file", "accepted"],
                              [["images/c d/seed1#.png", "1"]], [])
    text = page.read_text()
    assert 'href="images/c%20d/seed1%23.png"' in text and 'src="a%20b.png"' in text
