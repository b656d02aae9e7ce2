"""The ablation runner and report with an injected fake cell function (no training).

The fake is a parameter of the runner, not a patched global, and its metrics are a fixed
function of the cell, so the report's statistics can be checked against constructed effects.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from classify_helpers import (
    FACTS,
    broken_cell,
    config,
    fake_facts,
    make_samples,
    oversample_helps,
    run,
)

from classify.ablate.config import AblationConfig
from classify.ablate.design import Shard, build_grid
from classify.ablate.report import write_report
from classify.ablate.runner import format_plan, plan_ablation
from classify.ablate.sample_check import DataFacts
from classify.core.errors import UserError


def test_grid_multiplies_only_gan_strategies_by_ratio():
    grid = build_grid(["baseline", "gan", "gan_filtered+classic"], ["resnet18"], [0, 1], [0.5, 1, 2],
                      [1, 0.25])
    assert len(grid) == 2 * 2 * (1 + 3 + 3)
    ids = [c.id for c in grid]
    assert len(set(ids)) == len(ids)
    assert "baseline__resnet18__frac0.25__seed1" in ids
    assert "gan_filtered+classic__resnet18__frac1__ratio0.5__seed0" in ids
    with pytest.raises(UserError, match="twice"):
        build_grid(["baseline", "baseline"], ["resnet18"], [0], [1], [1])


def test_shards_cover_grid_without_overlap(tmp_path):
    grid = build_grid(["baseline", "gan"], ["resnet18", "vgg11_bn"], [0, 1, 2], [1, 2], [1])
    for n in (1, 2, 3, 5):
        parts = [Shard(i, n).select(grid) for i in range(n)]
        ids = [c.id for p in parts for c in p]
        assert sorted(ids) == sorted(c.id for c in grid) and len(set(ids)) == len(grid)
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert Shard.parse("1/2") == Shard(1, 2)
    assert Shard.from_env({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4",
                           "SLURM_ARRAY_TASK_MIN": "1"}) == Shard(2, 4)
    assert Shard.from_env({}) is None
    for bad in ("2/2", "x", "1/0"):
        with pytest.raises(UserError):
            Shard.parse(bad)


def test_run_resume_and_rerun_of_one_deleted_cell(tmp_path):
    cfg = config(tmp_path)
    _, first = run(cfg)
    assert len(first.ran) == 4 and not first.failed
    cells = tmp_path / "abl" / "cells"
    assert len(list(cells.glob("*.json"))) == 4
    record = json.loads((cells / "oversample__resnet18__frac1__seed1.json").read_text())
    assert record["train_config"]["minority_fraction"] == 1.0 and record["versions"]["python"]
    _, second = run(cfg)
    assert second.ran == [] and len(second.skipped) == 4
    assert "estimated cost: nothing to run" in format_plan(plan_ablation(cfg, inspect=fake_facts))
    (cells / "baseline__resnet18__frac1__seed0.json").unlink()
    _, third = run(cfg)
    assert third.ran == ["baseline__resnet18__frac1__seed0"]


def test_two_shards_together_run_the_grid_once(tmp_path):
    cfg = config(tmp_path, seeds=[0, 1, 2])
    _, a = run(cfg, Shard(0, 2))
    _, b = run(cfg, Shard(1, 2))
    assert not set(a.ran) & set(b.ran)
    assert len(a.ran) + len(b.ran) == 6 and b.skipped == []


def test_parallel_jobs_write_every_cell(tmp_path):
    _, summary = run(config(tmp_path), jobs=2)
    assert sorted(summary.ran) == sorted(p.stem for p in (tmp_path / "abl" / "cells").glob("*.json"))
    assert len(summary.ran) == 4


def test_failed_cell_is_recorded_and_retried(tmp_path):
    cfg = config(tmp_path)
    _, summary = run(cfg, cell_fn=broken_cell)
    assert set(summary.failed) == {"baseline__resnet18__frac1__seed1", "oversample__resnet18__frac1__seed1"}
    assert "exploded on purpose" in summary.failed["baseline__resnet18__frac1__seed1"]
    assert (tmp_path / "abl" / "failed" / "baseline__resnet18__frac1__seed1.json").is_file()
    _, retry = run(cfg)
    assert sorted(retry.ran) == sorted(summary.failed)
    assert not list((tmp_path / "abl" / "failed").glob("*.json"))


def test_report_states_constructed_effect_and_writes_all_outputs(tmp_path):
    samples = make_samples(tmp_path, real_seen=40)
    cfg = config(tmp_path, strategies=["baseline", "oversample", "gan_filtered"], seeds=[0, 1, 2],
                 samples={"all": samples})
    run(cfg)
    write_report(cfg.out_dir)
    out = Path(cfg.out_dir)
    md = (out / "report.md").read_text()
    assert "gan_filtered@1 beats baseline by +0.1" in md  # the built-in +0.10 effect
    assert "No detectable difference between oversample and baseline on minority F1" in md
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3 and "plots/" not in (
        html.split("<body>")[1].split("src=")[0])
    for name in ("bar_minority_f1.png", "bar_average_precision.png", "pr_resnet18_frac1.png"):
        assert (out / "plots" / name).stat().st_size > 1000
    lines = (out / "results.csv").read_text().splitlines()
    assert len(lines) == 1 + 9 and lines[0].startswith("id,arm,strategy")
    assert len(json.loads((out / "results.json").read_text())) == 9


def test_gan_cells_get_only_train_side_samples_and_leak_guard(tmp_path):
    leaky = make_samples(tmp_path, real_seen=40)
    cfg = config(tmp_path, strategies=["baseline", "gan"], minority_fractions=[1.0, 0.25],
                 samples={"all": leaky})
    with pytest.raises(UserError, match="saw 40 real 'defective' images but this cell may see only 10"):
        plan_ablation(cfg, inspect=fake_facts)
    ok = make_samples(tmp_path, real_seen=10)
    plan = plan_ablation(config(tmp_path, strategies=["baseline", "gan"], minority_fractions=[1.0, 0.25],
                                samples={"all": leaky, "0.25": ok}), inspect=fake_facts)
    by_id = {t.cell.id: t for t in plan.todo}
    assert by_id["gan__resnet18__frac0.25__ratio1__seed0"].train["synthetic_dir"] == ok
    assert by_id["baseline__resnet18__frac0.25__seed0"].train["synthetic_dir"] is None
    # the minority subsample is the trainer's job, keyed only by seed and fraction: same for every strategy
    same = {(t.train["seed"], t.train["minority_fraction"], t.train["minority_class"]) for t in plan.todo}
    assert len(same) == 4


def test_allowed_leak_is_flagged_in_cells_and_report(tmp_path):
    leaky = make_samples(tmp_path, real_seen=40)
    cfg = config(tmp_path, strategies=["baseline", "gan"], seeds=[0, 1, 2], minority_fractions=[0.25],
                 samples={"all": leaky}, allow_generator_leak=True)
    run(cfg)
    cell = json.loads(
        (Path(cfg.out_dir) / "cells" / "gan__resnet18__frac0.25__ratio1__seed0.json").read_text())
    assert cell["generator_leak"] is True
    write_report(cfg.out_dir)
    assert "WARNING: 3 cell(s) used a generator that saw more real minority images" in (
        Path(cfg.out_dir) / "report.md").read_text()


@pytest.mark.parametrize("kw, message", [
    (dict(strategies=["baseline", "gan"]), "need a sample set"),
    (dict(strategies=["baseline", "warp"]), "valid strategies: baseline"),
    (dict(models=["resnet999"]), "valid models: resnet18"),
    (dict(models=["resnet18", "vgg11_bn"]), "vgg11_bn needs --res >= 32"),  # would fail in every cell
    (dict(strategies=["oversample+classic", "classic+oversample"]), "same combination; list it once"),
    (dict(seeds=list(range(300))), "more than --max-cells"),
    (dict(minority_class="cracked"), "classes: defective, ok"),
])
def test_bad_requests_are_user_errors(tmp_path, kw, message):
    with pytest.raises(UserError, match=message):
        plan_ablation(config(tmp_path, **kw), inspect=fake_facts)


def test_too_small_sample_set_fails_before_any_training(tmp_path):
    small = make_samples(tmp_path, real_seen=40, n=48)  # 48 rows, 36 accepted; the cell keeps 40 real
    plan_ablation(config(tmp_path, strategies=["gan"], samples={"all": small}), inspect=fake_facts)
    with pytest.raises(UserError, match="36 accepted.*needs 40 .gan. / 40 .gan_filtered."):
        plan_ablation(config(tmp_path, strategies=["gan", "gan_filtered"], samples={"all": small}),
                      inspect=fake_facts)
    with pytest.raises(UserError, match="needs 80 .gan."):
        plan_ablation(config(tmp_path, strategies=["gan"], synthetic_ratios=[2], samples={"all": small}),
                      inspect=fake_facts)


def test_sample_set_for_other_class_or_lower_resolution_is_refused(tmp_path):
    other = make_samples(tmp_path, real_seen=5, classes=("ok",))
    with pytest.raises(UserError, match="not the minority class"):
        plan_ablation(config(tmp_path, strategies=["gan"], samples={"all": other}), inspect=fake_facts)
    small = make_samples(tmp_path, real_seen=5, res=8)
    with pytest.raises(UserError, match="8px samples"):
        plan_ablation(config(tmp_path, strategies=["gan"], samples={"all": small}), inspect=fake_facts)


def test_changed_training_settings_refuse_the_old_folder(tmp_path):
    run(config(tmp_path))
    with pytest.raises(UserError, match="--epochs 1 .now 2."):
        plan_ablation(config(tmp_path, epochs=2), inspect=fake_facts)
    plan_ablation(config(tmp_path, seeds=[0, 1, 2]), inspect=fake_facts)  # growing the grid is fine
    with pytest.raises(UserError, match="--cpu-bf16 False .now True."):
        plan_ablation(config(tmp_path, cpu_bf16=True), inspect=fake_facts)
    other_data = lambda _d: DataFacts(FACTS.classes, FACTS.train_counts, manifest_hash="h2")  # noqa: E731
    with pytest.raises(UserError, match="other prepared data .manifest hash h1, now h2"):
        plan_ablation(config(tmp_path), inspect=other_data)


def test_gan_arms_can_join_a_finished_grid_but_samples_cannot_change(tmp_path):
    """Baselines first, GAN arms once a GAN exists: adding a sample set reuses every finished cell."""
    run(config(tmp_path))
    first, second = make_samples(tmp_path / "a", real_seen=40), make_samples(tmp_path / "b", real_seen=40)
    plan, _ = run(config(tmp_path, strategies=["baseline", "oversample", "gan"], samples={"all": first}))
    assert len(plan.done) == 4 and [t.cell.strategy for t in plan.todo] == ["gan", "gan"]
    with pytest.raises(UserError, match=f"--samples all={first} .now {second}."):
        plan_ablation(config(tmp_path, strategies=["gan"], samples={"all": second}), inspect=fake_facts)


def test_only_the_feature_map_cell_keeps_its_model_without_keep_checkpoints(tmp_path):
    plan = plan_ablation(config(tmp_path, keep_checkpoints=False, minority_fractions=[0.5, 1]),
                         inspect=fake_facts)
    kept = [t.cell for t in plan.todo if t.keep_checkpoint]
    assert [(c.strategy, c.seed, c.minority_fraction) for c in kept] == [("baseline", 0, 1.0)]
    assert all(t.keep_checkpoint for t in plan_ablation(config(tmp_path), inspect=fake_facts).todo)


def test_study_from_before_a_setting_existed_still_resumes(tmp_path):
    """A study.json written before `cpu_bf16` existed holds cells made without it (its default)."""
    run(config(tmp_path))
    path = tmp_path / "abl" / "study.json"
    old = json.loads(path.read_text())
    del old["cpu_bf16"]
    path.write_text(json.dumps(old))
    assert plan_ablation(config(tmp_path), inspect=fake_facts).todo == []
    with pytest.raises(UserError, match="--cpu-bf16 False .now True."):
        plan_ablation(config(tmp_path, cpu_bf16=True), inspect=fake_facts)


def test_toml_config_round_trip_and_unknown_keys(tmp_path):
    path = tmp_path / "ablation.toml"
    path.write_text('data_dir = "d"\nout_dir = "o"\nstrategies = ["baseline", "gan_filtered"]\n'
                    'seeds = [0, 1]\nsynthetic_ratios = [1, 2]\nsamples = "s"\n')
    cfg = AblationConfig.from_dict(AblationConfig.read_toml(path), source=str(path))
    assert cfg.synthetic_ratios == [1.0, 2.0] and cfg.samples_for(0.25) == "s"
    assert AblationConfig.from_dict(cfg.to_dict()) == cfg
    path.write_text('data_dir = "d"\nout_dir = "o"\nepoch = 3\n')
    with pytest.raises(UserError, match="unknown key.*epoch"):
        AblationConfig.from_dict(AblationConfig.read_toml(path), source=str(path))


@pytest.mark.parametrize("toml, expected", [
    ('strategies = "baseline"', {"strategies": ["baseline"]}),  # one value, as on the command line
    ('strategies = "baseline, oversample"\nseeds = "0,1"',
     {"strategies": ["baseline", "oversample"], "seeds": [0, 1]}),
    ("seeds = 3\nsynthetic_ratios = 1", {"seeds": [3], "synthetic_ratios": [1.0]}),
    ('epochs = "4"\nlr = 1\ndevice = "cpu"', {"epochs": 4, "lr": 1.0, "device": "cpu"}),
])
def test_toml_values_are_read_like_flags(tmp_path, toml, expected):
    path = tmp_path / "s.toml"
    path.write_text('data_dir = "d"\nout_dir = "o"\n' + toml + "\n")
    cfg = AblationConfig.from_dict(AblationConfig.read_toml(path), source="s.toml")
    assert {k: cfg.setting(k) for k in expected} == expected


@pytest.mark.parametrize("toml, message", [
    ('epochs = "x"', "s.toml: --epochs must be a whole number, not 'x'"),
    ("epochs = 1.5", "--epochs must be a whole number"),
    ('seeds = [0, "a"]', "--seeds must be a whole number, not 'a'"),
    ('deterministic = "yes"', "--deterministic must be true or false"),
    ("res = true", "--res must be a number"),
    ('strategies = ""', "--strategies is empty"),
    ('device = "gpu"', "unknown --device 'gpu'"),
    ("minority_fractions = 1.5", "--minority-fraction .minority_fractions. .1.5.: each must lie in"),
    ("res = 4", "--res 4 must be >= 8"),
])
def test_bad_toml_values_name_their_key(tmp_path, toml, message):
    path = tmp_path / "s.toml"
    path.write_text('data_dir = "d"\nout_dir = "o"\n' + toml + "\n")
    with pytest.raises(UserError, match=message):
        AblationConfig.from_dict(AblationConfig.read_toml(path), source="s.toml")


def test_ratio_and_fraction_plots_appear_only_when_they_vary(tmp_path):
    samples = {"1": make_samples(tmp_path, real_seen=40), "0.5": make_samples(tmp_path, real_seen=20)}
    cfg = config(tmp_path, strategies=["baseline", "gan"], seeds=[0, 1, 2], synthetic_ratios=[0.5, 1],
                 minority_fractions=[1, 0.5], samples=samples)
    run(cfg)
    write_report(cfg.out_dir)
    plots = {p.name for p in (Path(cfg.out_dir) / "plots").glob("*.png")}
    assert {"ratio_minority_f1.png", "fraction_minority_f1.png", "pr_resnet18_frac0.5.png"} <= plots
    md = (Path(cfg.out_dir) / "report.md").read_text()
    assert "| resnet18 | 0.5 | gan@0.5 | 3 |" in md  # one row per arm, ratio kept apart


def test_markdown_and_html_say_the_same_and_escape():
    from classify.core import reportdoc as doc
    blocks = [doc.Heading("A <b>"), doc.Para("x | y"), doc.Table(["k", "v"], [["a|b", "<i>"]])]
    md = doc.render_markdown(blocks)
    html = doc.render_html(blocks, Path("."), "t")
    assert "## A <b>" in md and "a\\|b" in md
    assert "&lt;b&gt;" in html and "<td>&lt;i&gt;</td>" in html and "<b>" not in html.split("<body>")[1]


def test_markdown_parses_back_into_the_same_blocks_and_inline_marks_render():
    from classify.core import reportdoc as doc
    blocks = [doc.Heading("Report", 1), doc.Para("kept `a.png` and **all**"), doc.Heading("Counts", 3),
              doc.Bullets(["one", "two | three"]),
              doc.Table(["class", "n|m"], [["good", "a|b"], ["bad", ""]]),
              doc.Image("plots/bar.png", "a bar chart"), doc.Para("after the image")]
    assert doc.parse_markdown(doc.render_markdown(blocks)) == blocks
    html = doc.render_html_body(blocks, Path("."), heading_offset=1)
    assert "<h2>Report</h2>" in html and "<h4>Counts</h4>" in html
    assert "<code>a.png</code>" in html and "<strong>all</strong>" in html and "`" not in html


def _study(tmp_path: Path, name: str, prepare_fraction: float, **kw) -> str:
    """An ablation on a data folder whose classes.json says prepare kept `prepare_fraction`."""
    data = tmp_path / f"data_{name}"
    data.mkdir()
    (data / "classes.json").write_text(json.dumps({"config": {"minority_fraction": prepare_fraction},
                                                   "counts": {"defective": {"train": 40}}}))
    cfg = config(tmp_path, data_dir=str(data), out_dir=str(tmp_path / name), seeds=[0, 1, 2], **kw)
    run(cfg)
    return cfg.out_dir


def test_report_combines_folders_on_one_fraction_axis(tmp_path):
    full, quarter = _study(tmp_path, "full", 1.0), _study(tmp_path, "quarter", 0.25)
    out = tmp_path / "combined"
    write_report([full, quarter], out)
    rows = json.loads((out / "results.json").read_text())
    assert sorted({r["minority_fraction"] for r in rows}) == [0.25, 1.0]
    assert {r["ablation_minority_fraction"] for r in rows} == {1.0} and len(rows) == 12
    assert {r["source"] for r in rows if r["minority_fraction"] == 0.25} == {quarter}
    md = (out / "report.md").read_text()
    assert "combines 2 ablation folders" in md and "prepare kept 0.25 of them" in md
    assert (out / "plots" / "fraction_minority_f1.png").stat().st_size > 1000
    assert not (Path(full) / "report.md").exists()  # the studies' own folders are left alone


def test_report_refuses_ambiguous_combinations(tmp_path):
    a = _study(tmp_path, "a", 1.0)
    b = _study(tmp_path, "b", 1.0)  # same fraction, same arms and seeds: tables would collide
    with pytest.raises(UserError, match="both hold baseline seed 0 at minority fraction 1"):
        write_report([a, b], tmp_path / "out")
    with pytest.raises(UserError, match="named twice"):
        write_report([a, a], tmp_path / "out")
    with pytest.raises(UserError, match="needs --out"):
        write_report([a, b])
    c = _study(tmp_path, "c", 0.25, epochs=2)  # another fraction, but trained longer: not comparable
    with pytest.raises(UserError, match="different settings .epochs=2 vs 1."):
        write_report([a, c], tmp_path / "out")


def test_report_says_which_cells_it_leaves_out(tmp_path):
    cfg = config(tmp_path, seeds=[0, 1, 2])
    run(cfg, Shard(0, 2), cell_fn=broken_cell)  # 3 of 6 cells; the seed-1 one among them fails
    md = Path(write_report(cfg.out_dir)).read_text()
    assert "1 cell(s) of" in md and "failed and are not in this report" in md
    assert "3 of the 6 cells planned" in md and "have not run yet" in md
    run(cfg, Shard(1, 2))
    run(cfg, Shard(0, 2))  # retries the failed cell
    md = Path(write_report(cfg.out_dir)).read_text()
    assert "failed and are not" not in md and "have not run yet" not in md


def test_report_on_a_folder_where_every_cell_failed_points_at_failed(tmp_path):
    cfg = config(tmp_path, seeds=[1])
    run(cfg, cell_fn=broken_cell)
    with pytest.raises(UserError,
                       match="no cell of .* finished; 2 failed .first .*exploded on purpose.*failed/"):
        write_report(cfg.out_dir)


def test_the_documented_study_file_is_valid(tmp_path):
    text = (Path(__file__).parents[2] / "docs" / "FORMATS.md").read_text()
    block = text.split("```toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "s.toml").write_text(block)
    cfg = AblationConfig.from_dict(AblationConfig.read_toml(tmp_path / "s.toml"), source="FORMATS.md")
    documented = {line.split("=")[0].strip().lstrip("# ") for line in block.splitlines() if "=" in line}
    own = set(cfg.to_dict()) - {"train"}  # the training settings are documented as a group
    assert documented >= own, "FORMATS.md's study file should show every AblationConfig key"
    assert "every `classify train` setting" in text


def test_report_without_gan_arms_still_names_the_best_arm(tmp_path):
    cfg = config(tmp_path, seeds=[0, 1, 2])
    run(cfg, cell_fn=oversample_helps)
    md = Path(write_report(cfg.out_dir)).read_text()
    answer = md.split("## Answer")[1].split("## ")[0]
    assert "no GAN strategy in this grid" in answer and "best mean: oversample" in answer
    assert "oversample beats baseline by +0.0" in answer  # tested against baseline, not just named
    assert "## Terms" in md and "ECE: expected calibration error" in md


def test_cell_progress_bars_only_on_a_terminal_with_one_job(tmp_path, monkeypatch):
    import sys

    assert not any(t.train["progress"] for t in plan_ablation(config(tmp_path), inspect=fake_facts).todo)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert all(t.train["progress"] for t in plan_ablation(config(tmp_path), inspect=fake_facts).todo)
    assert not any(t.train["progress"]
                   for t in plan_ablation(config(tmp_path), jobs=2, inspect=fake_facts).todo)


def test_feature_map_draws_every_group_on_principal_axes():
    from classify.ablate import plots

    rng = np.random.default_rng(0)
    png = plots.feature_map({"real train": rng.normal(size=(30, 8)), "synthetic": rng.normal(size=(1, 8)) + 3,
                             "empty": np.zeros((0, 8))}, "title")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
    single = plots.feature_map({"one": rng.normal(size=(1, 4))}, "one point")  # a single point still draws
    assert single[:8] == b"\x89PNG\r\n\x1a\n"


def test_estimate_uses_only_cells_timed_on_this_machine(tmp_path):
    """A time is given only from cells this machine timed (per image pass); else none at all."""
    cfg = config(tmp_path, seeds=[0])
    run(cfg)  # fake cells, timed here; give them the trainer's image counts
    cells = list((Path(cfg.out_dir) / "cells").glob("*.json"))
    for path in cells:
        record = json.loads(path.read_text())
        path.write_text(json.dumps(record | {"train": {"epochs_run": 1, "n_train_real": 240}}))
    cfg2 = config(tmp_path, seeds=[0, 1, 2])
    text = format_plan(plan_ablation(cfg2, inspect=fake_facts))
    assert "ms per image pass" in text and "timed on this machine" in text
    for path in cells:  # the same cells, timed elsewhere
        record = json.loads(path.read_text())
        path.write_text(json.dumps(record | {"host": "another-machine"}))
    text = format_plan(plan_ablation(cfg2, inspect=fake_facts))
    assert "no time estimate until a cell has finished on this machine" in text and " min " not in text


def test_report_warns_when_the_minority_is_the_majority_of_val_or_test(tmp_path):
    from classify.ablate.report import minority_majority_notes

    data = tmp_path / "data"
    data.mkdir()
    (data / "classes.json").write_text(json.dumps({"counts": {
        "defective": {"train": 10, "val": 30, "test": 5}, "ok": {"train": 90, "val": 20, "test": 40}}}))
    records = [{"train_config": {"data_dir": str(data), "minority_class": "defective"}}]
    notes = minority_majority_notes(records)
    assert len(notes) == 1 and "majority of the val split" in notes[0] and "30 vs 20" in notes[0]
    records = [{"train_config": {"data_dir": str(data), "minority_class": "ok"}}]
    assert len(minority_majority_notes(records)) == 1  # 'ok' outnumbers in test (40 vs 5)
