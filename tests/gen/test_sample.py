"""`gen sample` end to end on a tiny generator, a tiny judge and the tiny prepared data."""

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from gen_helpers import prepared_bad_good, tiny_generator, tiny_judge
from PIL import Image

from classify.core.errors import UserError
from classify.data.prepare import PrepareConfig, prepare_dataset
from classify.train.synthetic import load_synthetic
from gen.cli import main
from gen.core.generator_file import load_generator
from gen.sample.filters import FilterConfig
from gen.sample.runner import SampleConfig, run_sample
from gen.sample.sampling import generate, parse_seeds


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Data, generators and judges built once per module: a resnet18 checkpoint is 45 MB."""
    root = tmp_path_factory.mktemp("sample")
    data = prepared_bad_good(root)
    return {
        "data": data,
        "run": tiny_generator(root / "run", data, ["bad"]),
        "cond": tiny_generator(root / "cond", data, ["bad", "good"]),
        "judge": tiny_judge(root / "judge.pt", ["bad", "good"]),
        "judge32": tiny_judge(root / "judge32.pt", ["bad", "good"], res=32),
        "other": tiny_judge(root / "other.pt", ["cat", "dog"]),
        "rgb": tiny_judge(root / "rgb.pt", ["bad", "good"], in_chans=3),
    }


@pytest.fixture
def setup(files):
    return files["run"], files["judge"]


def _rows(out: Path) -> list[dict]:
    with open(out / "samples.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _quiet(_msg: str) -> None:
    pass


def test_sample_writes_n_images_consistent_csv_report_and_pages(setup, tmp_path):
    run, judge = setup
    out = tmp_path / "s"
    cfg = SampleConfig(generator=str(run), out_dir=str(out), n=12, judge=str(judge), batch=5,
                       filters=FilterConfig(filters=["judge", "realism", "memorisation", "duplicates",
                                                     "fid_select"],
                                            min_confidence=0.0, min_realism=0.0))
    report = run_sample(cfg, log=_quiet)
    rows = _rows(out)
    assert len(rows) == 12 and [int(r["seed"]) for r in rows] == list(range(12))
    for r in rows:
        img = Image.open(out / r["file"])
        assert img.size == (16, 16) and img.mode == "L"
        assert r["accepted"] in ("0", "1") and (r["accepted"] == "1") == (r["rejected_by"] == "")
        assert 0.0 <= float(r["judge_confidence"]) <= 1.0
        assert r["nearest_real"] and float(r["nearest_real_distance"]) >= 0
    assert report["n_accepted"] == sum(r["accepted"] == "1" for r in rows)
    synth = load_synthetic(out, accepted_only=True)  # what classify's gan_filtered strategy reads
    assert len(synth) == report["n_accepted"] and all(f.is_file() for f in synth.files)
    info = json.loads((out / "sample_info.json").read_text())
    assert info["status"] == "done"
    assert info["real_counts"] == {"bad": 5} and info["classes"] == ["bad"] and info["channels"] == 1
    fr = json.loads((out / "filter_report.json").read_text())
    metrics = fr["per_class"]["bad"]["all_vs_real"]
    # 5 train reals: too few for FD/KD, so the reason stands where a noisy number would
    assert "fd_judge" not in metrics and "got 12 samples, 5 reals" in metrics["fd_kd_skipped"]
    assert not any(k.startswith("fid_") for k in metrics) and "precision" in metrics
    html = (out / "index.html").read_text()
    refs = re.findall(r'(?:src|href)="([^"]+)"', html) + re.findall(r"href='([^']+)'", html)
    assert "accepted.png" in refs and "nearest_real.png" in refs
    for ref in refs:
        assert (out / ref).is_file(), ref


def test_same_seed_same_image_and_batch_layout_only_moves_last_bit(setup):
    run, _ = setup
    G, _ = load_generator(run)
    a = generate(G, [3, 7, 11], [0, 0, 0])
    b = generate(G, [3, 7, 11], [0, 0, 0])
    assert torch.equal(a, b)
    single = torch.cat([generate(G, [s], [0]) for s in (3, 7, 11)])
    assert (a.int() - single.int()).abs().max() <= 1
    assert not torch.equal(a[0], a[1])


def test_rerun_resumes_and_extends(setup, tmp_path):
    run, judge = setup
    out = tmp_path / "s"
    msgs = []
    cfg = SampleConfig(generator=str(run), out_dir=str(out), n=6, judge=str(judge),
                       filters=FilterConfig(filters=["judge"], min_confidence=0.0))
    run_sample(cfg, log=msgs.append)
    first = (out / "images/bad/seed0000002.png").read_bytes()
    cfg.n = 9
    run_sample(cfg, log=msgs.append)
    assert any("generated 6 samples, reused 0" in m for m in msgs)
    assert any("generated 3 samples, reused 6" in m for m in msgs)
    assert (out / "images/bad/seed0000002.png").read_bytes() == first
    assert len(_rows(out)) == 9
    with pytest.raises(UserError, match="trunc"):
        run_sample(SampleConfig(generator=str(run), out_dir=str(out), n=3, trunc=0.5,
                                filters=FilterConfig(filters=[])), log=_quiet)


def test_conditional_per_class_grid_and_resize(files, tmp_path):
    run, judge = files["cond"], files["judge32"]
    out = tmp_path / "s"
    msgs = []
    cfg = SampleConfig(generator=str(run), out_dir=str(out), n=8, judge=str(judge), resize_to="24x20",
                       filters=FilterConfig(filters=["judge", "memorisation"], min_confidence=0.0))
    run_sample(cfg, log=msgs.append)
    rows = _rows(out)
    assert [r["class"] for r in rows] == ["bad", "good"] * 4
    assert Image.open(out / rows[0]["file"]).size == (24, 20)
    assert Image.open(out / rows[0]["native_file"]).size == (16, 16)
    assert (out / "per_class.png").is_file()
    assert any("resized to 32px" in m for m in msgs)


def test_judge_on_other_classes_or_channels_is_a_clear_error(files, tmp_path):
    run, other, rgb = files["run"], files["other"], files["rgb"]
    with pytest.raises(UserError, match=r"trained on classes .*cat"):
        run_sample(SampleConfig(generator=str(run), out_dir=str(tmp_path / "a"), n=4, judge=str(other)),
                   log=_quiet)
    with pytest.raises(UserError, match="3-channel"):
        run_sample(SampleConfig(generator=str(run), out_dir=str(tmp_path / "b"), n=4, judge=str(rgb)),
                   log=_quiet)
    # both refused before generating: no image, no half-written sample_info.json
    assert not (tmp_path / "a" / "images").exists() and not (tmp_path / "b" / "sample_info.json").exists()
    (tmp_path / "junk.pt").write_bytes(b"truncated")
    with pytest.raises(UserError, match="cannot read"):
        run_sample(SampleConfig(generator=str(run), out_dir=str(tmp_path / "c"), n=4,
                                judge=str(tmp_path / "junk.pt")), log=_quiet)
    assert not (tmp_path / "c" / "images").exists()


def test_empty_accepted_set_names_the_filter_and_still_writes_scores(setup, tmp_path):
    run, judge = setup
    out = tmp_path / "s"
    cfg = SampleConfig(generator=str(run), out_dir=str(out), n=5, judge=str(judge),
                       filters=FilterConfig(filters=["judge"], min_confidence=1.01))
    with pytest.raises(UserError, match=r"filter 'judge'.*judge_confidence min"):
        run_sample(cfg, log=_quiet)
    assert len(_rows(out)) == 5 and (out / "rejected.png").is_file()


def test_filters_without_judge_are_refused_before_generating(setup, tmp_path):
    run, _ = setup
    out = tmp_path / "s"
    with pytest.raises(UserError, match="--judge MODEL"):
        run_sample(SampleConfig(generator=str(run), out_dir=str(out), n=3), log=_quiet)
    assert not (out / "images").exists()
    report = run_sample(SampleConfig(generator=str(run), out_dir=str(out), n=3,
                                     filters=FilterConfig(filters=[])), log=_quiet)
    assert report["n_accepted"] == 3 and report["extractor"] is None
    assert (out / "accepted.png").is_file() and not (out / "rejected.png").exists()


def test_n_larger_than_disk_allows(setup, tmp_path):
    run, _ = setup
    with pytest.raises(UserError, match="MiB free"):
        run_sample(SampleConfig(generator=str(run), out_dir=str(tmp_path / "s"), n=10**12,
                                filters=FilterConfig(filters=[])), log=_quiet)


def test_parse_seeds():
    assert parse_seeds("0-3,7", None) == [0, 1, 2, 3, 7]
    assert parse_seeds(None, 3) == [0, 1, 2]
    for bad in ("5-2", "a-b", "1,1"):
        with pytest.raises(UserError):
            parse_seeds(bad, None)


def test_cli_sample_and_grid(setup, tmp_path):
    run, judge = setup
    r = CliRunner().invoke(main, ["sample", str(run), "--out", str(tmp_path / "s"), "--seeds", "0-5",
                                  "--judge", str(judge), "--filters", "judge,realism", "--keep", "3"])
    assert r.exit_code == 0, r.output
    assert "accepted 3/6" in r.output
    rows = _rows(tmp_path / "s")
    assert sum(x["accepted"] == "1" for x in rows) == 3 and "combined_rank" in rows[0]
    r = CliRunner().invoke(main, ["grid", str(run), "--seeds", "0-7", "--trunc", "0.7",
                                  "--out", str(tmp_path / "g.png")])
    assert r.exit_code == 0, r.output and (tmp_path / "g.png").is_file()
    r = CliRunner().invoke(main, ["sample", str(run), "--out", str(tmp_path / "x"), "--n", "2",
                                  "--filters", "blur"])
    assert r.exit_code != 0 and "unknown --filters blur" in r.output and "Traceback" not in r.output
    assert np.asarray(Image.open(tmp_path / "g.png")).shape[2] == 3
    r = CliRunner().invoke(main, ["grid", str(run), "--seeds", "0-3", "--out", str(tmp_path / "g.jpg")])
    assert r.exit_code != 0 and "name the file *.png" in r.output and not (tmp_path / "g.jpg").exists()


def test_grid_of_conditional_generator_has_one_row_per_class(files, tmp_path):
    r = CliRunner().invoke(main, ["grid", str(files["cond"]), "--seeds", "0-3",
                                  "--out", str(tmp_path / "c.png")])
    assert r.exit_code == 0, r.output
    one = CliRunner().invoke(main, ["grid", str(files["cond"]), "--seeds", "0-3", "--class", "good",
                                    "--out", str(tmp_path / "g.png")])
    assert one.exit_code == 0, one.output
    both, single = Image.open(tmp_path / "c.png"), Image.open(tmp_path / "g.png")
    assert both.size[1] > single.size[1] and both.size[0] > single.size[0]  # 2 rows + a label strip
    bad = CliRunner().invoke(main, ["grid", str(files["cond"]), "--class", "cat",
                                    "--out", str(tmp_path / "x.png")])
    assert bad.exit_code != 0 and "unknown --class 'cat'" in bad.output
    # 2 classes x 600 seeds = 1200 tiles: refused before any image is generated
    big = CliRunner().invoke(main, ["grid", str(files["cond"]), "--seeds", "0-599",
                                    "--out", str(tmp_path / "b.png")])
    assert big.exit_code != 0 and "1200 images" in big.output and "gen sample" in big.output
    assert not (tmp_path / "b.png").exists()


def test_grid_of_a_classifier_checkpoint_says_it_is_not_a_generator(setup, tmp_path):
    _, judge = setup
    r = CliRunner().invoke(main, ["grid", str(judge), "--out", str(tmp_path / "g.png")])
    assert r.exit_code != 0 and "is not a generator" in r.output and "Traceback" not in r.output


def test_cli_interrupt_says_the_images_are_kept(setup, tmp_path, monkeypatch):
    import gen.sample.runner

    def interrupted(cfg, log):
        (Path(cfg.out_dir) / "images").mkdir(parents=True)
        (Path(cfg.out_dir) / "images" / "seed0000.png").write_bytes(b"png")
        raise KeyboardInterrupt

    monkeypatch.setattr(gen.sample.runner, "run_sample", interrupted)
    run, _ = setup
    r = CliRunner().invoke(main, ["sample", str(run), "--out", str(tmp_path / "s"), "--n", "4",
                                  "--filters", "none"])
    assert r.exit_code == 130 and "interrupted: the 1 images in" in r.output and (
        "rerun the same command" in r.output)


def test_other_data_than_the_generators_is_noted(files, tmp_path):
    other = tmp_path / "other"
    prepare_dataset(PrepareConfig(source=f"folder:{files['data'].parent / 'img'}", out_dir=str(other),
                                  seed=5))
    msgs: list[str] = []
    run_sample(SampleConfig(generator=str(files["run"]), out_dir=str(tmp_path / "s"), n=3,
                            judge=str(files["judge"]), data_dir=str(other),
                            filters=FilterConfig(filters=["realism"], min_realism=0)), log=msgs.append)
    assert any("is not the data the generator was trained on" in m for m in msgs), msgs
    msgs.clear()
    run_sample(SampleConfig(generator=str(files["run"]), out_dir=str(tmp_path / "t"), n=3,
                            judge=str(files["judge"]), data_dir=str(files["data"]),
                            filters=FilterConfig(filters=["realism"], min_realism=0)),
               log=msgs.append)
    assert not any("is not the data" in m for m in msgs)
    assert any(m.startswith("generator: ") for m in msgs)
