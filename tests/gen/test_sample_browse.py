"""browse.html: the JSON it embeds, escaping of user data, and the page itself in
headless Chromium (rows, sorting, a filter, marking for exclude.txt); exclude lists in gen sample
and classify train."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import _run, broken_links

from gen.sample.browse import browse_data, image_statistics, write_browser

HEADER = ["file", "seed", "class", "trunc", "snapshot", "judge_confidence", "twosample_score", "nearest_real",
          "accepted", "rejected_by"]
EVIL = '</script><script>alert("x")</script>'


def _set(tmp_path: Path, n: int = 6) -> tuple[Path, list[list], torch.Tensor]:
    """A tiny sample folder: images whose brightness rises with the seed; odd seeds rejected; one
    class name and one file name carrying markup."""
    from gen.sample.files import save_png

    out = tmp_path / "samples"
    table, images = [], []
    for seed in range(n):
        cls = "bad" if seed < n - 1 else EVIL
        img = torch.full((1, 8, 8), 30 * seed + 20, dtype=torch.uint8)
        name = f"images/{'bad' if seed < n - 1 else 'x'}/seed{seed:07d}{' <b>' if seed == 2 else ''}.png"
        save_png(img, out / name)
        images.append(img)
        table.append([name, seed, cls, 1.0, "net.pt", 0.9 - 0.1 * seed, 0.2 + 0.1 * seed, "real/0.png",
                      int(seed % 2 == 0), "" if seed % 2 == 0 else "judge"])
    return out, table, torch.stack(images)


def test_the_embedded_json_has_every_row_and_its_statistics(tmp_path):
    out, table, images = _set(tmp_path)
    data = browse_data(HEADER, table, image_statistics(images), [None] * 6, {"bad": []})
    assert len(data["rows"]) == 6 and (
        {"judge_confidence", "twosample_score", "brightness"} <= set(data["columns"]))
    assert "seed" not in data["columns"] and data["rows"][3]["accepted"] == 0
    assert data["rows"][3]["rejected_by"] == "judge"
    assert data["rows"][5]["scores"]["brightness"] == pytest.approx((30 * 5 + 20) / 255, abs=1e-4)


def test_user_data_cannot_close_the_script_or_inject_markup(tmp_path):
    out, table, images = _set(tmp_path)
    page = write_browser(out, HEADER, table, images, {"bad": images[:2]},
                         np.array([0, 1, -1, 0, 1, 0])).read_text()
    assert EVIL not in page and "<b>" not in page.split('id="data">')[1]
    block = page.split('<script type="application/json" id="data">')[1].split("</script>")[0]
    assert json.loads(block)["rows"][5]["class"] == EVIL  # the data survives, as data
    assert "innerHTML" not in page  # the page builds its DOM from text nodes only
    assert not broken_links(out / "browse.html", out, follow_html=False) or all(
        "samples.csv" in b or "index.html" in b
        for b in broken_links(out / "browse.html", out, follow_html=False))


def _dom(page: Path, tmp_path: Path, fragment: str) -> str:
    done = _run(["--dump-dom", page.resolve().as_uri() + fragment], tmp_path)
    assert "data-ready-ms" in done.stdout, done.stderr[-2000:]
    return done.stdout


def _grid(dom: str) -> tuple[int, list[str]]:
    m = re.search(r'id="grid" data-shown="(\d+)" data-order="([^"]*)"', dom)
    assert m, dom[:2000]
    return int(m[1]), [s for s in m[2].split(",") if s]


def test_the_page_sorts_filters_and_exports_in_chromium(tmp_path):
    out, table, images = _set(tmp_path)
    page = write_browser(out, HEADER, table, images, {"bad": images[:2]}, np.array([0, 1, -1, 0, 1, 0]))
    shown, order = _grid(_dom(page, tmp_path, ""))
    assert shown == 6 and order == ["0", "1", "2", "3", "4", "5"]
    _, order = _grid(_dom(page, tmp_path, "#sort=brightness&dir=desc"))
    assert order == ["5", "4", "3", "2", "1", "0"]
    shown, order = _grid(_dom(page, tmp_path, "#status=accepted"))
    assert shown == 3 and order == ["0", "2", "4"]
    shown, order = _grid(_dom(page, tmp_path, "#class=bad&sort=twosample_score&dir=desc"))
    assert order == ["4", "3", "2", "1", "0"]  # seed 5 is of the other class
    shown, order = _grid(_dom(page, tmp_path, "#score=twosample_score&min=0.35&max=0.55"))
    assert order == ["2", "3"]
    dom = _dom(page, tmp_path, "#status=rejected&markall=1")
    exclude = re.search(r'<pre id="exclude" hidden="">([^<]*)</pre>', dom)
    assert exclude and exclude[1].split() == ["images/bad/seed0000001.png", "images/bad/seed0000003.png",
                                              "images/x/seed0000005.png"]


def test_gen_sample_exclude_rejects_the_listed_samples_as_manual_before_keep(tmp_path):
    from gen.sample.files import plan
    from gen.sample.filters import FilterConfig, FilterInputs, RealSet, run_filters
    from gen.sample.runner import _excluded_by_hand

    rows = plan([0, 1, 2, 3], ["bad"], "bad", False)
    listed = tmp_path / "exclude.txt"
    listed.write_text("# ruled out in the browser\n1\nimages/bad/seed0000003.png\n99\n")
    notes = []
    manual = _excluded_by_hand(rows, str(listed), notes.append)
    assert manual.tolist() == [False, True, False, True] and notes and "1 line(s)" in notes[0]
    feats = torch.zeros(4, 2, dtype=torch.float64)
    inp = FilterInputs(feats, torch.zeros(4, 1, 4, 4, dtype=torch.uint8), np.zeros(4, int),
                       {0: RealSet(feats, torch.zeros(4, 1, 4, 4, dtype=torch.uint8))},
                       np.array([0.9, 0.95, 0.8, 0.99]))
    out = run_filters(inp, FilterConfig(filters=["judge"], keep=2), manual)
    # --keep 2 fills both places from the samples nobody ruled out
    assert out.accepted.tolist() == [True, False, True, False]
    assert out.rejected_by == ["", "manual", "", "manual"] and out.info["manual"]["excluded"] == 2


def test_synthetic_exclude_removes_exactly_the_listed_samples_from_training(tmp_path):
    from classify_helpers import make_samples_folder, make_square_dataset

    from classify.train.data import load_classifier_train_data
    from classify.train.trainer import ClassifierTrainConfig

    data = make_square_dataset(tmp_path / "d", n_good=16, n_bad=12, size=16)
    samples = make_samples_folder(tmp_path / "s", n_accepted=12, n_rejected=0, size=16)
    listed = tmp_path / "exclude.txt"
    listed.write_text("images/seed0000.png\n5\n")
    cfg = dict(data_dir=str(data), out_dir="unused", res=16, batch=4, epochs=1, progress=False,
               synthetic_dir=str(samples), synthetic_ratio=1.0)
    every = load_classifier_train_data(ClassifierTrainConfig(**cfg), "accepted")
    fewer = load_classifier_train_data(ClassifierTrainConfig(**cfg, synthetic_exclude=str(listed)),
                                       "accepted")
    assert fewer.synthetic_excluded == 2 and every.synthetic_excluded == 0
    names = {Path(f).name for f in fewer.synthetic_files}
    assert not names & {"seed0000.png", "seed0005.png"}
