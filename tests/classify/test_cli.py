"""`classify train / eval / models` through click: outputs and one-line user errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from classify_helpers import make_square_dataset, write_square_images
from click.testing import CliRunner
from helpers import one_line_error

from classify.cli import main
from classify.data.prepare import PrepareConfig, prepare_dataset


def _run(args: list[str]):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def test_models_lists_registry() -> None:
    r = _run(["models"])
    assert r.exit_code == 0
    for name in ("resnet18", "vgg16_bn", "efficientnet_b0", "oversample", "gan_filtered"):
        assert name in r.output


def test_train_eval_round_trip_and_mismatch(tmp_path: Path) -> None:
    data = make_square_dataset(tmp_path, n_good=20, n_bad=10, size=32)
    run = tmp_path / "run"
    r = _run(["train", "--data", str(data), "--out", str(run), "--res", "16", "--batch", "8", "--epochs", "1",
              "--device", "cpu", "--strategy", "oversample+classic", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "best epoch 1/1" in r.output and (run / "model.pt").is_file()
    r = _run(["eval", str(run / "model.pt"), "--data", str(data), "--split", "test", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "ROC-AUC" in r.output and "minority P/R/F1" in r.output
    ev = json.loads((run / "eval.json").read_text())
    assert ev["split"] == "test" and len(ev["y_true"]) == ev["n"] == len(ev["y_score"])
    for png in ("confusion_test.png", "pr_test.png", "roc_test.png"):
        assert (run / png).read_bytes()[:4] == b"\x89PNG"
    other = tmp_path / "other_images"
    write_square_images(other / "cracked", 10, defect=True, seed=5)
    write_square_images(other / "ok", 20, defect=False, seed=6)
    other_data = tmp_path / "other_data"
    prepare_dataset(PrepareConfig(source=f"folder:{other}", out_dir=str(other_data)))
    one_line_error(_run(["eval", str(run), "--data", str(other_data)]), "trained on classes", "retrain")


def test_user_errors_are_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    base = ["train", "--out", str(tmp_path / "run"), "--device", "cpu"]
    one_line_error(_run(base + ["--data", str(empty)]), str(empty))
    one_line_error(_run(base + ["--data", str(empty), "--model", "resnet9"]), "unknown model", "resnet18")
    one_line_error(_run(base + ["--data", str(empty), "--strategy", "oversample+smote"]), "unknown strategy",
                   "classic")
    one_line_error(_run(["eval", str(tmp_path / "none.pt"), "--data", str(empty)]), "not found")
    if not torch.cuda.is_available():
        one_line_error(_run(["train", "--data", str(empty), "--out", str(tmp_path / "r"),
                             "--device", "cuda"]),
                       "no CUDA GPU")


def test_single_class_split_says_auc_undefined(tmp_path: Path) -> None:
    images = tmp_path / "images"
    write_square_images(images / "good", 12, defect=False, seed=1)
    write_square_images(images / "bad", 2, defect=True, seed=2)  # one to train, one to test: val has none
    data = tmp_path / "data"
    prepare_dataset(PrepareConfig(source=f"folder:{images}", out_dir=str(data)))
    r = _run(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--device", "cpu", "--res", "16"])
    one_line_error(r, "split", "undefined")


@pytest.mark.parametrize("flag, needle", [
    (["--epochs", "0"], "--epochs 0 must be >= 1"), (["--batch", "1"], "--batch 1 must be >= 2"),
    (["--synthetic-ratio", "-1"], ">= 0"),
    (["--res", "100000"], "--res 100000 is larger than 4096"),
    (["--model", "vgg11_bn", "--res", "16"], "or pick one that takes 16px"),
    (["--lr", "nan"], "--lr nan must be a finite number > 0"),
    (["--backbone-lr-mult", "nan"], "--backbone-lr-mult nan must be > 0")])
def test_bad_numbers(flag, needle, tmp_path: Path) -> None:
    r = _run(["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--device", "cpu"] + flag)
    one_line_error(r, needle)


@pytest.mark.parametrize("native, warned", [(False, True), (True, False), (None, False)])
def test_cpu_bf16_warns_only_where_bf16_is_emulated(native, warned, monkeypatch, capsys) -> None:
    from classify.core import clitools
    monkeypatch.setattr(clitools, "cpu_native_bf16", lambda: native)
    clitools.warn_if_slow_cpu_bf16("cpu", True)
    clitools.warn_if_slow_cpu_bf16("cpu", False)  # not asked: never a note
    clitools.warn_if_slow_cpu_bf16("cuda", True)  # the flag only concerns the CPU
    err = capsys.readouterr().err
    assert ("emulated" in err) == warned and err.count("note:") == int(warned)


def test_cpu_native_bf16_reads_cpu_flags() -> None:
    from classify.core.clitools import cpu_native_bf16

    flags = Path("/proc/cpuinfo")
    expected = None if not flags.exists() else any(
        f in flags.read_text() for f in ("avx512_bf16", "amx_bf16"))
    assert cpu_native_bf16() == expected


def test_cpu_avx512_reads_cpu_flags() -> None:
    from classify.core.clitools import cpu_avx512

    flags = Path("/proc/cpuinfo")
    expected = None if not flags.exists() else " avx512f" in flags.read_text()
    assert cpu_avx512() == expected


@pytest.mark.parametrize("package", ["classify", "gen"])
def test_python_dash_m_runs_the_cli(package) -> None:
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", package, "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.startswith(f"Usage: {package} "), r.stdout + r.stderr


def _train_args(data: Path, run: Path) -> list[str]:
    return ["train", "--data", str(data), "--out", str(run), "--res", "16", "--batch", "8", "--epochs", "1",
            "--device", "cpu", "--quiet"]


def test_train_keeps_a_finished_run_and_never_writes_into_data(tmp_path: Path) -> None:
    data = make_square_dataset(tmp_path, n_good=20, n_bad=10, size=32)
    run = tmp_path / "run"
    assert _run(_train_args(data, run)).exit_code == 0
    before = (run / "model.pt").read_bytes()
    one_line_error(_run(_train_args(data, run)), "finished run", "--force")
    assert (run / "model.pt").read_bytes() == before
    one_line_error(_run(_train_args(data, data)), "prepared data folder")
    (run / "metrics.json").unlink()  # an unfinished run (stopped before metrics.json) starts again
    assert _run(_train_args(data, run)).exit_code == 0
    assert _run(_train_args(data, run) + ["--force", "--seed", "1"]).exit_code == 0
    assert json.loads((run / "config.json").read_text())["train"]["seed"] == 1


def test_train_interrupt_says_what_is_kept_and_exits_130(tmp_path: Path, monkeypatch) -> None:
    import classify.train.trainer

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(classify.train.trainer, "fit", stop)  # Ctrl-C before the first epoch ends
    data = make_square_dataset(tmp_path, n_good=20, n_bad=10, size=32)
    run = tmp_path / "run"
    r = CliRunner().invoke(main, _train_args(data, run))
    assert r.exit_code == 130 and "interrupted: no epoch of this run finished" in r.output
    run.mkdir(exist_ok=True)
    old = ("metrics.json", "eval.json", "eval_val.json", "pr_test.png", "model.pt")
    for name in old:
        (run / name).write_text("old")
    # bad input with --force loses nothing: the old results go only once training starts
    one_line_error(_run(_train_args(data, run) + ["--force", "--model", "resnet9"]), "unknown model")
    one_line_error(_run(_train_args(tmp_path / "nowhere", run) + ["--force"]), "nowhere")
    assert all((run / name).read_text() == "old" for name in old)
    # a forced replacement stopped before its first checkpoint leaves the old run whole (never the old
    # model beside the new run's config)
    r = CliRunner().invoke(main, _train_args(data, run) + ["--force"])
    assert r.exit_code == 130 and "the previous run in" in r.output and "kept whole" in r.output
    assert all((run / name).read_text() == "old" for name in old) and not (run / "config.json").exists()


def test_a_forced_rerun_that_fails_before_its_first_checkpoint_keeps_the_old_run(
        tmp_path: Path, monkeypatch) -> None:
    """A full disk at the new run's first checkpoint leaves the finished run as it was."""
    import errno

    import classify.train.loop

    data = make_square_dataset(tmp_path, n_good=20, n_bad=10, size=32)
    run = tmp_path / "run"
    assert _run(_train_args(data, run)).exit_code == 0
    before = {name: (run / name).read_bytes()
              for name in ("config.json", "model.pt", "metrics.json", "metrics.jsonl")}

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(classify.train.loop, "save_checkpoint", disk_full)
    with pytest.raises(OSError, match="No space left"):
        CliRunner().invoke(main, _train_args(data, run) + ["--force", "--lr", "0.01"], catch_exceptions=False)
    assert {name: (run / name).read_bytes() for name in before} == before
    assert json.loads((run / "config.json").read_text())["train"]["lr"] != 0.01 and (
        not (run / ".replaced").exists())
    # a replacement killed between the two (a stash left behind) is undone when the folder is next used
    from classify.train.replace import RunReplacement

    RunReplacement(run, {}).begin()
    assert not (run / "model.pt").exists()
    RunReplacement(run, {})
    assert {name: (run / name).read_bytes() for name in before} == before


def test_eval_threshold_override_keeps_the_default_result_and_other_data_is_noted(tmp_path: Path) -> None:
    data = make_square_dataset(tmp_path, n_good=20, n_bad=10, size=32)
    run = tmp_path / "run"
    assert _run(_train_args(data, run)).exit_code == 0
    assert _run(["eval", str(run), "--data", str(data), "--device", "cpu"]).exit_code == 0
    default = (run / "eval.json").read_bytes()
    one_line_error(_run(["eval", str(run), "--data", str(data), "--threshold", "1.5"]), "[0, 1]")
    r = _run(["eval", str(run), "--data", str(data), "--threshold", "0.3", "--device", "cpu"])
    assert r.exit_code == 0 and "(from --threshold)" in r.output
    assert (run / "eval.json").read_bytes() == default
    override = json.loads((run / "eval_test_thr0.3.json").read_text())
    assert override["threshold"] == 0.3 and override["threshold_source"] == "--threshold"
    assert (run / "confusion_test_thr0.3.png").is_file() and json.loads(default)["data_note"] is None
    # The same images prepared with another seed: the model's train images may now be test images.
    reprepared = tmp_path / "reprepared"
    prepare_dataset(PrepareConfig(source=f"folder:{tmp_path / 'square_images'}", out_dir=str(reprepared),
                                  seed=7))
    r = _run(["eval", str(run), "--data", str(reprepared), "--out", str(tmp_path / "ev"), "--device", "cpu"])
    assert r.exit_code == 0 and "note: the model was trained on another prepared folder" in r.output
    assert "optimistic" in json.loads((tmp_path / "ev" / "eval.json").read_text())["data_note"]


def test_threshold_is_refused_for_multi_class_models() -> None:
    from types import SimpleNamespace

    from classify.core.errors import UserError
    from classify.evaluate.evaluation import check_threshold

    three = SimpleNamespace(classes=["a", "b", "c"], positive_class="a")
    with pytest.raises(UserError, match="two-class"):
        check_threshold(three, 0.5)
    check_threshold(three, None)


def test_predict_scores_match_eval_and_bad_files_keep_their_row(tmp_path: Path) -> None:
    import csv

    data = make_square_dataset(tmp_path, n_good=20, n_bad=10, size=32)
    run = tmp_path / "run"
    assert _run(_train_args(data, run)).exit_code == 0
    assert _run(["eval", str(run), "--data", str(data), "--device", "cpu"]).exit_code == 0
    ev = json.loads((run / "eval.json").read_text())
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    out = tmp_path / "pred.csv"
    r = _run(["predict", str(run), *ev["paths"], str(broken), "--out", str(out), "--batch", "3",
              "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert f"scored {len(ev['paths'])} of {len(ev['paths']) + 1} images" in r.output and (
        "1 unreadable" in r.output)
    rows = list(csv.DictReader(open(out)))
    assert [row["path"] for row in rows] == ev["paths"] + [str(broken)]  # input order, nothing dropped
    scores = [float(row["score"]) for row in rows[:-1]]
    assert scores == pytest.approx(ev["y_score"], abs=1e-5)  # the same decode + resize as prepare/eval
    thr = ev["threshold"]
    assert all((row["predicted"] == "bad") == (float(row["score"]) >= thr) for row in rows[:-1])
    assert rows[-1]["predicted"] == "" and rows[-1]["error"]
    one_line_error(_run(["predict", str(run), str(tmp_path / "nowhere"), "--out", str(out)]),
                   "does not exist")
    one_line_error(_run(["predict", str(run), str(broken), "--out", str(out), "--threshold", "2"]), "[0, 1]")


def test_predict_reports_non_finite_model_output_as_an_error(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from PIL import Image

    from classify.evaluate.predict import predict_files

    Image.new("L", (20, 20), 90).save(tmp_path / "a.png")
    broken = SimpleNamespace(in_chans=1, res=16, fit="crop",
                             predict_proba=lambda x, batch, tta="none": torch.full((len(x), 2), float("nan")))
    (pred,) = predict_files(broken, [tmp_path / "a.png"])
    assert pred.probs is None and "non-finite" in pred.error


def test_a_settled_replacement_killed_mid_delete_never_comes_back(tmp_path: Path) -> None:
    """Review fix: settling renames the stash before deleting it, so a kill in between cannot later
    move the old run's files back over the new run."""
    from classify.train.replace import DISCARD, RunReplacement

    run = tmp_path / "run"
    run.mkdir()
    (run / "model.pt").write_text("old")
    rep = RunReplacement(run, {"new": True})
    rep.begin()
    (run / "model.pt").write_text("new")
    (run / ".replaced").rename(run / DISCARD)  # as if killed between the rename and the delete
    RunReplacement(run, {})  # the next run opens the folder
    assert (run / "model.pt").read_text() == "new" and not (run / DISCARD).exists()


def test_the_shared_one_line_check_refuses_what_a_user_should_not_see() -> None:
    """tests/helpers.one_line_error, which every CLI error test uses: it must fail on a success,
    a traceback, a second line, an unexpected exception or a missing word."""
    from types import SimpleNamespace as Result

    stop = SystemExit(1)
    good = Result(exit_code=1, output="Error: --res 4 must be >= 8\n", exception=stop)
    assert one_line_error(good, "--res 4", ">= 8") == "Error: --res 4 must be >= 8"
    logged = Result(exit_code=1, output="reading data\n\nError: no class\n", exception=stop)
    assert one_line_error(logged, "no class", after_output=True) == "Error: no class"
    failing = [
        lambda: one_line_error(Result(exit_code=0, output="Error: x\n", exception=None)),
        lambda: one_line_error(logged, "no class"),  # output before the error, not allowed by default
        lambda: one_line_error(Result(exit_code=1, output="Traceback (most recent call last):\nError: x\n",
                                      exception=stop), after_output=True),
        lambda: one_line_error(Result(exit_code=1, output="Error: x\nError: y\n", exception=stop),
                               after_output=True),
        lambda: one_line_error(Result(exit_code=1, output="Error: x\n", exception=ValueError("x"))),
        lambda: one_line_error(Result(exit_code=1, output="x went wrong\n", exception=stop)),
        lambda: one_line_error(good, "--res 5"),
    ]
    for check in failing:
        with pytest.raises(AssertionError):
            check()
