"""The whole pipeline end to end at micro scale, through gen.pipeline.runner and the real CLIs.

It runs the shipped scripts/demo-cpu.toml itself (so a broken flag there fails here), with
its [vars] swapped for micro values: 40 tiny images made here (the 'bad' ones carry a
bright square), 16x16, one epoch, a few GAN images. Then it checks every stage's key
outputs, the resume behaviour, and index.html on disk and in headless Chromium.

Each step's command line goes to the real `classify`/`gen` click group *in this process*:
seven fresh interpreters would spend most of the test importing torch. Launching steps as
subprocesses (and their exit codes) is covered by tests/gen/test_pipeline.py.
"""

import csv
import json
from contextlib import contextmanager
from pathlib import Path

import click
import pytest
import torch
from conftest import write_class_images
from helpers import broken_links, probe_images

from classify.cli import main as classify_main
from gen.cli import main as gen_main
from gen.pipeline import attempts
from gen.pipeline.runner import PipelineConfig, run_pipeline
from gen.pipeline.site import write_site_index

ROOT = Path(__file__).resolve().parents[2]
STEPS = ["prepare", "judge", "judge_eval", "gan", "sample", "explain", "outliers", "ablate", "report"]

MICRO = {
    "minority": "bad", "fraction": "0.75", "device": "cpu", "res": "16", "batch": "8", "judge_epochs": "1",
    "gan_kimg": "0.02", "gan_batch": "4", "gan_tick": "0.02", "n_samples": "24", "n_keep": "12",
    "seeds": "0", "ablate_epochs": "1", "strategies": "baseline,gan,gan_filtered+classic",
    "recipe": "transfer", "gan_aug": "ada",  # the demo's recipe
}


def _micro_config(images: Path) -> PipelineConfig:
    cfg = PipelineConfig.load(ROOT / "scripts" / "demo-cpu.toml")
    assert set(MICRO) | {"source"} == set(cfg.vars), "demo-cpu.toml [vars] changed: update MICRO"
    cfg.vars.update(MICRO, source=f"folder:{images}")
    return cfg


class InProcess:
    """Stands in for the `subprocess` module inside gen.pipeline.attempts: `call(argv)` runs the
    console script named by argv[0] through its click group and returns its exit code."""

    GROUPS = {"classify": classify_main, "gen": gen_main}

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def call(self, argv: list[str]) -> int:
        self.calls.append(list(argv))
        group = self.GROUPS[Path(argv[0]).name]
        try:
            group.main(args=list(argv[1:]), prog_name=Path(argv[0]).name, standalone_mode=False)
        except click.ClickException as exc:
            exc.show()
            return exc.exit_code
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else 1
        return 0


@contextmanager
def one_thread():
    """One intra-op thread: on a shared 2-core box two threads per process oversubscribe the
    cores and run about 2x slower (measured); the results do not depend on it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def in_process():
    runner = InProcess()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(attempts, "subprocess", runner)
        yield runner


@pytest.fixture(scope="module")
def micro_run(tmp_path_factory, in_process):
    root = tmp_path_factory.mktemp("e2e")
    write_class_images(root / "images" / "good", 24, defect=False, rgb=False, seed=1)
    write_class_images(root / "images" / "bad", 16, defect=True, rgb=False, seed=2)
    out = root / "run"
    cfg = _micro_config(root / "images")
    with one_thread():
        timings = run_pipeline(cfg, out)
    assert [Path(c[0]).name + " " + c[1] for c in in_process.calls] == [
        "classify prepare", "classify train", "classify eval", "gen train", "gen sample", "classify explain",
        "classify outliers", "classify ablate", "classify report"]
    return cfg, out, timings, write_site_index(out, timings)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_every_stage_writes_its_key_outputs(micro_run):
    _, out, timings, _ = micro_run
    assert list(timings) == STEPS and all((out / ".steps" / f"{s}.done").is_file() for s in STEPS)
    manifest = _rows(out / "data" / "manifest.csv")
    # fraction 0.75 leaves some unused
    assert {r["split"] for r in manifest} == {"train", "val", "test", "unused"}
    assert (out / "judge" / "model.pt").is_file() and (
        json.loads((out / "judge" / "eval_val.json").read_text())["n"] > 0)
    gan = out / "gan"
    assert list(gan.glob("network-snapshot-*.pt")) and list(gan.glob("*.G_ema.safetensors"))
    assert (gan / "reals.png").is_file() and list(gan.glob("fakes[0-9]*.png"))
    assert any("fd_judge" in json.loads(line) for line in (gan / "metrics.jsonl").read_text().splitlines())
    samples = _rows(out / "samples" / "samples.csv")
    assert len(samples) == 24 and sum(r["accepted"] == "1" for r in samples) == 12
    assert {"judge_confidence", "realism_score", "nearest_real_distance"} <= set(samples[0])
    assert all((out / "samples" / r["file"]).is_file() for r in samples)
    cells = sorted(p.stem for p in (out / "ablate" / "cells").glob("*.json"))
    assert [c.split("__")[0] for c in cells] == ["baseline", "gan", "gan_filtered+classic"]
    for name in ("report.md", "report.html", "results.csv"):
        assert (out / "ablate" / name).is_file()
    explain = json.loads((out / "explain" / "explain.json").read_text())
    # resnet18 at 16 px: 4x4
    assert set(explain["sources"]) == {"val", "samples"} and explain["layer"] == "layer1"
    outliers = _rows(out / "outliers" / "outliers.csv")
    assert {r["class"] for r in outliers} == {"bad", "good"} and all(r["split"] == "train" for r in outliers)
    report = (out / "ablate" / "report.md").read_text()
    assert "t-SNE (right; perplexity" in report and "plots/explain/explain_test.png" in report


def test_index_links_every_report_and_renders_clean(micro_run, tmp_path):
    _, out, _, index = micro_run
    page = index.read_text()
    assert "not run yet" not in page
    for ref in ("data/report.md", "judge/confusion_val.png", "gan/training_curves.png", "gan/reals.png",
                "samples/index.html", "samples/accepted.png", "samples/rejected.png", "ablate/report.html",
                "explain/explain_val.png", "explain/explain_samples.png", "explain/explain.csv",
                "outliers/outliers.png", "outliers/outliers.csv", "ablate/plots/feature_map.png"):
        assert f'"{ref}"' in page, ref
    # Follows into samples/index.html and ablate/report.html, which the commands wrote.
    assert broken_links(index, out) == []
    probe = probe_images(index, tmp_path)
    assert probe["broken"] == 0 and probe["images"] >= 8, probe


def test_rerun_skips_everything_and_a_lost_marker_resumes_the_gan(micro_run, in_process, capfd):
    cfg, out, _, _ = micro_run
    mtime = (out / "ablate" / "report.md").stat().st_mtime
    n_calls = len(in_process.calls)
    run_pipeline(cfg, out)
    assert capfd.readouterr().out.count("done earlier, skipped") == len(STEPS)
    assert len(in_process.calls) == n_calls and (out / "ablate" / "report.md").stat().st_mtime == mtime
    # As if killed after the GAN's last snapshot but before its marker: only that step
    # reruns, with --resume latest; kimg is already reached, so it ends without training.
    (out / ".steps" / "gan.done").unlink()
    snapshots = sorted((out / "gan").glob("network-snapshot-*.pt"))
    with one_thread():
        run_pipeline(cfg, out)
    (rerun,) = in_process.calls[n_calls:]
    assert rerun[1] == "train" and rerun[-2:] == ["--resume", "latest"]
    assert sorted((out / "gan").glob("network-snapshot-*.pt")) == snapshots
