"""The ablation against the real data layer and trainer: tiny data (res 16), resnet18, 1 epoch.

`tiny_prepared` (tests/conftest.py) has classes 'bad' (minority) and 'good'. The sample sets
are hand-made PNGs with a samples.csv/sample_info.json in the `gen sample` format.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import one_line_error
from PIL import Image

from classify.ablate.config import AblationConfig
from classify.ablate.runner import plan_ablation
from classify.ablate.sample_check import inspect_prepared
from classify.cli import main
from classify.data.dataset import open_prepared
from classify.train.data import kept_minority_count


def make_sample_set(root: Path, name: str, real_seen: int, n: int = 12, res: int = 16) -> str:
    """n 'bad' samples, every third one rejected; files are PNGs like `gen sample` writes."""
    d = root / name
    (d / "img").mkdir(parents=True)
    rng = np.random.default_rng(len(name))
    lines = ["file,seed,class,trunc,snapshot,judge_confidence,accepted,rejected_by"]
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (res, res), dtype=np.uint8), mode="L").save(
            d / "img" / f"{i:04d}.png")
        accepted = int(i % 3 != 0)
        lines.append(f"img/{i:04d}.png,{i},bad,1.0,net.pt,0.9,{accepted},{'' if accepted else 'judge'}")
    (d / "samples.csv").write_text("\n".join(lines) + "\n")
    (d / "sample_info.json").write_text(json.dumps({"classes": ["bad"], "res": res, "channels": 1,
                                                    "real_counts": {"bad": real_seen}}))
    Image.new("L", (32, 32), 200).save(d / "accepted.png")
    Image.new("L", (32, 32), 50).save(d / "rejected.png")
    return str(d)


def test_inspect_prepared_counts_train_images(tiny_prepared):
    facts = inspect_prepared(str(tiny_prepared))
    data = open_prepared(tiny_prepared)
    assert facts.classes == ["bad", "good"]
    for cls in facts.classes:
        assert facts.train_counts[cls] == len(data.select(split="train", classes=[cls]))
    assert facts.train_counts["bad"] < facts.train_counts["good"]


def test_cells_give_the_trainer_identical_subsets_and_train_only_synthetics(tiny_prepared, tmp_path):
    from classify.train.data import load_classifier_train_data
    from classify.train.strategies import build_strategy
    from classify.train.trainer import ClassifierTrainConfig

    data = open_prepared(tiny_prepared)
    n_bad = len(data.select(split="train", classes=["bad"]))
    half = kept_minority_count(n_bad, 0.5)
    samples = {"1": make_sample_set(tmp_path, "full", n_bad), "0.5": make_sample_set(tmp_path, "half", half)}
    cfg = AblationConfig(data_dir=str(tiny_prepared), out_dir=str(tmp_path / "abl"),
                         train={"res": 16, "epochs": 1, "batch": 8},
                         strategies=["baseline", "oversample", "gan", "gan_filtered"], seeds=[0, 1],
                         minority_fractions=[1.0, 0.5], synthetic_ratios=[0.5], samples=samples)
    plan = plan_ablation(cfg)
    held_out = {str(p) for p in data.select(split=["val", "test"]).paths}
    n_val = len(data.select(split="val"))
    subsets: dict[tuple, set] = {}
    for task in plan.todo:
        td = load_classifier_train_data(ClassifierTrainConfig(**task.train),
                                        build_strategy(task.cell.strategy).synthetic)
        bad_real = {p for p, y in zip(td.train_paths, td.y_train[: td.n_train_real].tolist())
                    if y == td.positive}
        assert len(bad_real) == kept_minority_count(n_bad, task.cell.minority_fraction)  # guard == trainer
        subsets.setdefault((task.cell.seed, task.cell.minority_fraction), set()).add(frozenset(bad_real))
        assert td.y_val.numel() == n_val  # validation stays real
        assert not set(td.synthetic_files) & held_out and not set(td.train_paths) & held_out
        if task.cell.strategy.startswith("gan"):
            expected_dir = samples[f"{task.cell.minority_fraction:g}"]
            assert td.n_train_synthetic == round(0.5 * len(bad_real)) > 0
            assert all(f.startswith(expected_dir) for f in td.synthetic_files)
        if task.cell.strategy == "gan_filtered":  # rejected samples (every third) never used
            assert all(int(Path(f).stem) % 3 != 0 for f in td.synthetic_files)
    assert len(subsets) == 4 and all(len(s) == 1 for s in subsets.values())


def test_tiny_real_ablation_writes_cells_report_and_reruns_nothing(tiny_prepared, tmp_path):
    samples = make_sample_set(tmp_path, "full", 10**6)  # a generator that saw everything: must be refused...
    out = tmp_path / "abl"
    argv = ["ablate", "--data", str(tiny_prepared), "--out", str(out), "--samples", samples,
            "--strategies", "baseline,gan_filtered", "--models", "resnet18", "--seeds", "0,1",
            "--epochs", "1", "--res", "16", "--batch", "32", "--device", "cpu"]
    runner = CliRunner()
    refused = runner.invoke(main, argv)
    assert refused.exit_code != 0 and "--allow-generator-leak" in refused.output
    samples_ok = make_sample_set(tmp_path, "ok",
                                 len(open_prepared(tiny_prepared).select(split="train", classes=["bad"])))
    argv[argv.index(samples)] = samples_ok
    dry = runner.invoke(main, argv + ["--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert dry.output.count("  todo  ") == 4 and not (out / "cells").exists()
    first = runner.invoke(main, argv)
    assert first.exit_code == 0, first.output
    assert "ran 4 cell(s), skipped 0" in first.output
    for name in ("report.md", "report.html", "results.csv", "plots/bar_minority_f1.png",
                 "plots/feature_map.png", "plots/samples0_accepted.png", "plots/samples0_rejected.png"):
        assert (out / name).is_file(), name
    cell = json.loads((out / "cells" / "gan_filtered__resnet18__frac1__ratio1__seed1.json").read_text())
    assert cell["train"]["n_train_synthetic"] > 0 and 0.0 <= cell["metrics"]["minority_f1"] <= 1.0
    assert cell["metrics"]["n"] == len(open_prepared(tiny_prepared).select(split="test"))
    # a rerun trains nothing; deleting one cell reruns exactly it is covered with a fake cell in
    # test_ablate.py
    assert "ran 0 cell(s), skipped 4" in runner.invoke(main, argv + ["--no-report"]).output
    report = runner.invoke(main, ["report", str(out)])
    assert report.exit_code == 0 and "## Answer" in (out / "report.md").read_text()
    two = runner.invoke(main, ["report", str(out), str(tmp_path / "other")])
    one_line_error(two, "needs --out")
    assert (out / "report.html").read_text().count("data:image/png;base64,") >= 4


@pytest.mark.parametrize("extra, message", [
    (["--strategies", "baseline,gan"], "need a sample set"),
    (["--strategies", "nope"], "valid strategies"),
    (["--models", "resnet999"], "valid models"),
    (["--seeds", "0,x"], "--seeds must be a whole number, not 'x'"),
    (["--strategies", ""], "--strategies is empty"),
    (["--device", "gpu"], "unknown --device 'gpu'"),
    (["--res", "4"], "--res 4 must be >= 8"),
    (["--shard", "3/2"], "shard 3/2"),
])
def test_cli_bad_input_is_one_line(tiny_prepared, tmp_path, extra, message):
    argv = ["ablate", "--data", str(tiny_prepared), "--out", str(tmp_path / "o"), "--res", "16",
            "--dry-run"] + extra
    one_line_error(CliRunner().invoke(main, argv), message)


def test_cli_toml_config_flag_override_and_slurm_shard(tiny_prepared, tmp_path):
    study = tmp_path / "ablation.toml"
    study.write_text(f'data_dir = "{tiny_prepared}"\nout_dir = "{tmp_path / "abl"}"\n'
                     'strategies = ["baseline", "oversample", "class_weight"]\n'
                     'seeds = [0, 1]\nres = 16\nepochs = 1\n')
    env = {"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "2", "SLURM_ARRAY_TASK_MIN": "1"}
    result = CliRunner(env=env).invoke(main, ["ablate", "--config", str(study), "--seeds", "0", "--dry-run"])
    assert result.exit_code == 0, result.output
    # --seeds 0 overrides the file's two seeds: 3 cells; SLURM task 2 of 1..2 is shard 1/2 -> cell index 1
    assert "ablation grid: 3 cells; shard 1/2 has 1" in result.output
    assert "todo  oversample__resnet18__frac1__seed0" in result.output
    bad = CliRunner().invoke(main, ["ablate", "--config", str(tmp_path / "missing.toml")])
    assert bad.exit_code != 0 and "does not exist" in bad.output


def test_cli_interrupt_says_what_is_kept_and_exits_130(tiny_prepared, tmp_path, monkeypatch):
    import classify.ablate.runner

    def interrupted(plan, **kw):
        (Path(plan.config.out_dir) / "cells").mkdir(parents=True)
        (Path(plan.config.out_dir) / "cells" / "one.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(classify.ablate.runner, "run_ablation", interrupted)
    out = tmp_path / "o"
    result = CliRunner().invoke(main, ["ablate", "--data", str(tiny_prepared), "--out", str(out),
                                       "--res", "16"])
    assert result.exit_code == 130
    assert f"interrupted: 1 finished cell(s) are kept in {out}/cells" in result.output
    assert "rerun the same command to continue" in result.output
