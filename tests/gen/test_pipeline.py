"""The TOML pipeline runner: steps run in order, finished steps are skipped, a failure stops it."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from classify.core.errors import UserError
from gen.core.grids import grid_image, save_grid, to_uint8
from gen.pipeline.runner import PipelineConfig, run_pipeline
from gen.pipeline.site import write_site_index

CONFIG = """
[vars]
word = "hello"

[[step]]
name = "first"
argv = ["python", "-c", \
"import pathlib,sys; p=pathlib.Path(sys.argv[1]); p.write_text(p.read_text()+'x' if p.exists() else 'x')", \
"{out}/count.txt"]

[[step]]
name = "second"
argv = ["python", "-c", "import pathlib,sys; pathlib.Path(sys.argv[1]).write_text(sys.argv[2])", \
"{out}/word.txt", "{word}"]
resume_if = "{out}/word.txt"
resume_args = ["--resumed"]
"""


def _config(tmp_path: Path, text: str = CONFIG) -> PipelineConfig:
    path = tmp_path / "p.toml"
    path.write_text(text)
    return PipelineConfig.load(path)


def test_steps_run_once_and_are_skipped_on_rerun(tmp_path):
    out = tmp_path / "out"
    cfg = _config(tmp_path)
    timings = run_pipeline(cfg, out)
    assert set(timings) == {"first", "second"}
    assert (out / "count.txt").read_text() == "x"
    assert (out / "word.txt").read_text() == "hello"
    run_pipeline(cfg, out)  # everything marked done: nothing runs again
    assert (out / "count.txt").read_text() == "x"


def test_killed_step_reruns_with_resume_args(tmp_path):
    out = tmp_path / "out"
    cfg = _config(tmp_path)
    run_pipeline(cfg, out)
    (out / ".steps" / "second.done").unlink()  # as if killed before the marker was written
    # The resume glob matches now, so the step gets --resumed appended; our tiny script
    # treats that as argv[3] and ignores it, so the output is unchanged.
    run_pipeline(cfg, out)
    assert (out / "word.txt").read_text() == "hello"


def test_failing_step_stops_with_user_error(tmp_path):
    cfg = _config(tmp_path, '[[step]]\nname = "bad"\nargv = ["python", "-c", "raise SystemExit(3)"]\n')
    with pytest.raises(UserError, match="bad failed with exit code 3"):
        run_pipeline(cfg, tmp_path / "out")
    assert not (tmp_path / "out" / ".steps" / "bad.done").exists()


def test_interrupted_step_is_not_marked_done(tmp_path):
    """gen train exits 130/143 after saving on SIGINT/SIGTERM: the step must rerun, not count as done."""
    cfg = _config(tmp_path, '[[step]]\nname = "gan"\nargv = ["python", "-c", "raise SystemExit(143)"]\n')
    with pytest.raises(UserError, match="step gan was interrupted; rerun the same command to continue"):
        run_pipeline(cfg, tmp_path / "out")
    assert not (tmp_path / "out" / ".steps" / "gan.done").exists()


def test_undefined_placeholder_is_a_user_error(tmp_path):
    cfg = _config(tmp_path, '[[step]]\nname = "s"\nargv = ["python", "{nope}"]\n')
    with pytest.raises(UserError, match="nope"):
        run_pipeline(cfg, tmp_path / "out")


def test_index_lists_only_existing_outputs(tmp_path):
    out = tmp_path / "out"
    (out / "gan").mkdir(parents=True)
    save_grid(torch.zeros(4, 1, 8, 8, dtype=torch.uint8), out / "gan" / "reals.png", nrow=2)
    (out / "gan" / "metrics.jsonl").write_text(
        json.dumps({"kimg": 1, "fd_judge": 5.0, "ada_p": 0.1}) + "\n"
        + json.dumps({"kimg": 2, "fd_judge": 3.0, "ada_p": 0.2}) + "\n{torn"
    )
    index = write_site_index(out, {"prepare": 3.0})
    page = index.read_text()
    assert 'src="gan/reals.png"' in page and 'src="gan/training_curves.png"' in page
    assert (out / "gan" / "training_curves.png").is_file()
    assert "not run yet" in page  # the other sections


def test_grid_layout_and_labels():
    imgs = torch.full((5, 3, 6, 6), 200, dtype=torch.uint8)
    plain = grid_image(imgs, nrow=3)
    labelled = grid_image(imgs, nrow=3, labels=["judge", "realism"])
    assert plain.size[1] == labelled.size[1] == 2 * (6 + 2) + 2  # two rows
    assert labelled.size[0] > plain.size[0]  # a label strip, tiles not covered
    assert to_uint8(torch.tensor([-1.5, -1.0, 0.0, 1.0, 2.0])).tolist() == [0, 0, 128, 255, 255]
    with pytest.raises(ValueError, match="uint8"):
        grid_image(imgs.float(), nrow=2)


def test_a_done_step_whose_command_changed_is_pointed_out(tmp_path, capsys):
    out = tmp_path / "out"
    run_pipeline(_config(tmp_path), out)
    run_pipeline(_config(tmp_path, CONFIG.replace('word = "hello"', 'word = "bye"')), out)
    said = capsys.readouterr().out
    assert "step 2/2 second: done earlier, skipped — its command changed since" in said
    assert "step 1/2 first: done earlier, skipped\n" in said
    (out / ".steps" / "first.done").write_text("3.5\n")  # a marker from an older version
    assert run_pipeline(_config(tmp_path), out)["first"] == 3.5


def test_saved_grids_enlarge_small_tiles_by_a_whole_factor(tmp_path):
    from PIL import Image

    imgs = torch.arange(2 * 16 * 16, dtype=torch.int64).reshape(2, 1, 16, 16).remainder(256).to(torch.uint8)
    save_grid(imgs, tmp_path / "g.png", nrow=2)
    arr = torch.from_numpy(np.array(Image.open(tmp_path / "g.png")))
    assert arr.shape[:2] == (64 + 4, 2 * (64 + 2) + 2)  # 16 px tiles drawn at 64 px
    tile = arr[2:66, 2:66, 0]
    # nearest, exact
    assert torch.equal(tile[::4, ::4], imgs[0, 0]) and torch.equal(tile[1::4, 3::4], imgs[0, 0])
    big = torch.zeros(1, 1, 80, 80, dtype=torch.uint8)
    save_grid(big, tmp_path / "b.png", nrow=1)
    assert Image.open(tmp_path / "b.png").size == (84, 84)  # large tiles untouched


INTERRUPTED_ONCE = """
[[step]]
name = "gan"
argv = ["python", "-c", "import pathlib,sys,time; f=pathlib.Path(sys.argv[1]); time.sleep(0.4); \
first=not f.exists(); f.write_text('x'); raise SystemExit(130 if first else 0)", "{out}/started"]
"""


def test_interrupted_then_resumed_step_counts_both_attempts(tmp_path, capsys):
    out = tmp_path / "out"
    cfg = _config(tmp_path, INTERRUPTED_ONCE)
    with pytest.raises(UserError, match="interrupted"):
        run_pipeline(cfg, out)
    timings = run_pipeline(cfg, out)
    attempts = json.loads((out / ".steps" / "gan.attempts.json").read_text())
    assert [a["outcome"] for a in attempts] == ["interrupted", "done"]
    assert all(a["seconds"] >= 0.4 for a in attempts)
    assert timings["gan"] == pytest.approx(sum(a["seconds"] for a in attempts)) and timings["gan"] >= 0.8
    assert json.loads((out / ".steps" / "gan.done").read_text())["seconds"] == pytest.approx(
        timings["gan"], abs=0.1)
    assert re.search(r"step 1/1 gan: finished in \d+s over 2 attempts", capsys.readouterr().out)
    # A later run that skips the step reports the same total, and the page shows the attempts.
    assert run_pipeline(cfg, out)["gan"] == pytest.approx(timings["gan"], abs=0.1)
    page = write_site_index(out, timings).read_text()
    assert "summed over every attempt" in page and "2 (1 interrupted or failed)" in page


# ---- malformed pipeline TOMLs are one-line errors naming the step -------------

@pytest.mark.parametrize("text, needle", [
    ('[[step]]\nname = "a"\nargv = ["echo"]\n'
     '[[step]]\nname = "a"\nargv = ["echo"]\n', "two steps are named 'a'"),
    ('[[step]]\nname = "../../x"\nargv = ["echo"]\n', "name '../../x' must be letters"),
    ('[[step]]\nargv = ["echo"]\n', "step 1: name None"),
    ('[[step]]\nname = "e"\nargv = []\n', "step e: argv is empty"),
    ('[[step]]\nname = "i"\nargv = ["echo", 5]\n', "step i: argv must be a list of strings"),
    ("step = 5\n", "step must be an array of tables"),
    ('vars = ["a"]\n[[step]]\nname = "s"\nargv = ["echo"]\n', "vars must be a table"),
    ('colour = "red"\n[[step]]\nname = "s"\nargv = ["echo"]\n', "unknown top-level key(s) colour"),
])
def test_malformed_pipeline_files_are_refused_when_loaded(tmp_path, text, needle):
    with pytest.raises(UserError) as exc:
        _config(tmp_path, text)
    assert needle in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize("placeholder", ["{0}", "{out.__class__.__mro__}", "{out:>3000000}", "{out[0]}"])
def test_placeholders_are_plain_names_only(tmp_path, placeholder):
    cfg = _config(tmp_path, f'[[step]]\nname = "s"\nargv = ["echo", "{placeholder}"]\n')
    with pytest.raises(UserError, match=r"step s: placeholder .* is not a plain \{name\}"):
        run_pipeline(cfg, tmp_path / "out")
    assert not (tmp_path / "out" / ".steps" / "s.done").exists()


def test_a_non_utf8_pipeline_file_is_one_line(tmp_path):
    (tmp_path / "p.toml").write_bytes('[vars]\nword = "caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(UserError, match="is not UTF-8 text"):
        PipelineConfig.load(tmp_path / "p.toml")


def test_literal_braces_are_written_doubled(tmp_path):
    from gen.pipeline.runner import _fill

    assert _fill("{{x}} {word}", {"word": "w"}, "s") == "{x} w"


def test_set_replaces_a_declared_var_and_refuses_an_unknown_one(tmp_path):
    out = tmp_path / "out"
    cfg = _config(tmp_path).with_vars(["word=bye=now"])  # the value keeps everything after the first '='
    run_pipeline(cfg, out)
    assert (out / "word.txt").read_text() == "bye=now"
    with pytest.raises(UserError, match=r"--set wrod: not a \[vars\] name of this pipeline; it has word"):
        _config(tmp_path).with_vars(["wrod=x"])
    with pytest.raises(UserError, match="give NAME=VALUE"):
        _config(tmp_path).with_vars(["word"])


def test_the_command_line_set_reaches_the_steps(tmp_path):
    from click.testing import CliRunner

    from gen.cli import main

    path = tmp_path / "p.toml"
    path.write_text(CONFIG)
    result = CliRunner().invoke(main, ["pipeline", "--config", str(path), "--out", str(tmp_path / "o"),
                                       "--set", "word=cli"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "o" / "word.txt").read_text() == "cli"
    bad = CliRunner().invoke(main, ["pipeline", "--config", str(path), "--out", str(tmp_path / "o2"),
                                    "--set", "x=1"])
    assert bad.exit_code != 0 and "not a [vars] name" in bad.output and not (tmp_path / "o2").exists()


# ---- a group of steps runs side by side ------------------------------------------------------
# Each step announces itself, then waits (up to 30 s) for the other's announcement: run one after
# the other, the first would time out and fail. Each also records the threads it was given.
SIDE_BY_SIDE = """
[[step]]
name = "first"
group = "gans"
argv = ["python", "-c", "{wait}", "{out}", "a", "b"]

[[step]]
name = "second"
group = "gans"
argv = ["python", "-c", "{wait}", "{out}", "b", "a"]

[[step]]
name = "after"
argv = ["python", "-c", "import pathlib,sys; pathlib.Path(sys.argv[1], 'after').write_text('x')", "{out}"]
"""
WAIT = ("import os,pathlib,sys,time; d=pathlib.Path(sys.argv[1]); d.mkdir(parents=True, exist_ok=True); "
        "(d/sys.argv[2]).write_text(os.environ.get('GANBALANCE_THREADS', '')); t=time.time(); "
        "[time.sleep(0.05) for _ in range(600) if not (d/sys.argv[3]).exists()]; "
        "print('saw', sys.argv[3]); sys.exit(0 if (d/sys.argv[3]).exists() else 3)")


def test_steps_of_one_group_run_side_by_side_with_their_share_of_the_cores(tmp_path, monkeypatch):
    from gen.pipeline import attempts

    monkeypatch.delenv("GANBALANCE_THREADS", raising=False)
    monkeypatch.setattr(attempts, "usable_cores", lambda: 4)
    cfg = _config(tmp_path, SIDE_BY_SIDE.replace("{wait}", WAIT.replace('"', '\\\\"')))
    out = tmp_path / "out"
    timings = run_pipeline(cfg, out)
    assert set(timings) == {"first", "second", "after"}
    assert (out / "a").read_text() == "2" and (out / "b").read_text() == "2"  # 4 cores / 2 steps
    assert "saw b" in (out / ".steps" / "first.log").read_text()  # its output went to its log
    assert (out / "after").exists() and all((out / ".steps" / f"{n}.done").exists() for n in timings)


def test_a_failing_step_of_a_group_keeps_the_finished_one(tmp_path):
    text = SIDE_BY_SIDE.replace("{wait}", "import sys; sys.exit(int(sys.argv[2] == 'b'))")
    with pytest.raises(UserError, match="step second failed with exit code 1"):
        run_pipeline(_config(tmp_path, text), tmp_path / "out")
    marks = tmp_path / "out" / ".steps"
    assert (marks / "first.done").exists() and not (marks / "second.done").exists()
    assert not (tmp_path / "out" / "after").exists()  # nothing after a failed group runs


def test_a_group_name_must_be_a_string(tmp_path):
    with pytest.raises(UserError, match="group must be a non-empty string"):
        _config(tmp_path, '[[step]]\nname = "a"\ngroup = 3\nargv = ["true"]\n')


def test_a_step_of_a_group_is_charged_only_its_own_time(tmp_path):
    from gen.pipeline.attempts import read_attempts

    text = SIDE_BY_SIDE.replace("{wait}", "import sys, time; time.sleep(2.0 if sys.argv[2] == 'b' else 0)")
    run_pipeline(_config(tmp_path, text), tmp_path / "out")
    marks = tmp_path / "out" / ".steps"
    fast, slow = read_attempts(marks, "first")[0]["seconds"], read_attempts(marks, "second")[0]["seconds"]
    assert slow >= 2.0 and fast < slow - 1.0
