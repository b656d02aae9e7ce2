"""scripts/demo-*.toml: every step parses against the real click command (no unknown flag,
no bad choice, no undefined placeholder), without running anything. The GPU config cannot
run on a CPU test box, so this is what keeps it in step with the commands."""

from pathlib import Path

import click
import pytest

from classify.cli import main as classify_main
from gen.cli import main as gen_main
from gen.pipeline.runner import PipelineConfig

ROOT = Path(__file__).resolve().parents[2]
GROUPS = {"classify": classify_main, "gen": gen_main}
CONFIGS = sorted((ROOT / "scripts").glob("demo-*.toml"))


def _parse(argv: list[str]) -> click.Context:
    group = GROUPS[argv[0]]
    command = group.commands[argv[1]]
    return command.make_context(f"{argv[0]} {argv[1]}", list(argv[2:]))


def parsed_steps(path: Path, cfg: PipelineConfig, values: dict):
    """(step, click context) for every step, each parsed against its real command without running
    it (a `python` step against its script's parser, context None); fails on an unknown flag, a bad
    choice or a stray argument. A path that a previous step creates does not exist yet: that
    BadParameter is expected (context None); any other is a real error."""
    for step in cfg.steps:
        argv = [a.format(**values) for a in step.argv + step.resume_args]
        if argv[0] == "python":
            _study_parser(argv[1]).parse_args(argv[2:])  # exits (SystemExit) on an unknown flag
            yield step, None
            continue
        try:
            ctx = _parse(argv)
        except click.BadParameter as exc:
            assert "does not exist" in str(exc), f"{path.name} step {step.name}: {exc}"
            yield step, None
            continue
        assert not ctx.args, f"{path.name} step {step.name}: stray arguments {ctx.args}"
        yield step, ctx


def test_both_scales_exist():
    assert [p.name for p in CONFIGS] == ["demo-cpu.toml", "demo-gpu.toml"]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_step_parses_with_its_command(path, tmp_path):
    cfg = PipelineConfig.load(path)
    values = dict(cfg.vars, out=str(tmp_path / "out"))
    names = [s.name for s in cfg.steps]
    assert names == ["prepare", "judge", "judge_eval", "gan", "sample", "explain", "outliers", "ablate",
                     "report"]
    for step, ctx in parsed_steps(path, cfg, values):
        if step.name == "gan" and ctx is not None:
            assert ctx.params["resume"] == "latest" and ctx.params["judge"].endswith("judge/model.pt")
    (gan,) = [s for s in cfg.steps if s.name == "gan"]
    assert gan.resume_if.format(**values).endswith("gan/network-snapshot-*.pt")


def test_cpu_demo_runs_the_issue_grid():
    cfg = PipelineConfig.load(ROOT / "scripts" / "demo-cpu.toml")
    (ablate,) = [s for s in cfg.steps if s.name == "ablate"]
    assert ablate.argv[ablate.argv.index("--strategies") + 1] == "{strategies}"
    # Plain oversample and plain gan_filtered too: filtering must not be confounded with classic augmentation.
    assert cfg.vars["strategies"].split(",") == ["baseline", "oversample", "oversample+classic", "gan",
                                                 "gan_filtered", "gan_filtered+classic"]
    assert cfg.vars["seeds"] == "0,1,2" and cfg.vars["minority"] == "defective" and (
        cfg.vars["fraction"] == "0.25")


def test_a_bad_flag_is_caught(tmp_path):
    with pytest.raises(click.NoSuchOption):
        _parse(["classify", "train", "--data", "d", "--out", "o", "--epochz", "3"])


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_demo_configs_promise_no_unmeasured_durations(path):
    """Durations come from a measurement on the machine at hand (the pipeline prints and records
    every step's wall time), never from a comment written on another machine."""
    import re

    text = path.read_text()
    assert not re.search(r"~?\d+(\.\d+)?(-\d+(\.\d+)?)? ?(min|minutes|h|hours?)\b", text), path.name
    assert "laptop" not in text and "hours on" not in text


# --- the studies (scripts/studies/*.toml): every step parses against its command or script ---------
STUDIES = sorted((ROOT / "scripts" / "studies").glob("*.toml"))


def _study_parser(script: str):
    """The argparse parser of a study helper script, loaded from its file (scripts/ is no package)."""
    import importlib.util

    path = ROOT / script
    assert path.is_file(), f"{script} does not exist"
    spec = importlib.util.spec_from_file_location(f"study_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.parser()


def test_the_studies_are_pipelines():
    assert {p.stem for p in STUDIES} == {"synthetic", "synthetic_core", "gan_recipes", "classifier_elpv",
                                         "elpv_cpu", "elpv_gpu"}
    assert not list((ROOT / "scripts").glob("study_*")) and not list((ROOT / "scripts").glob("ablation_*"))


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.name)
def test_every_study_step_parses_with_its_command(path, tmp_path):
    cfg = PipelineConfig.load(path)
    values = dict(cfg.vars, out=str(tmp_path / "out"))
    for step, ctx in parsed_steps(path, cfg, values):
        if step.argv[:2] == ["gen", "train"] and ctx is not None:
            assert step.resume_if and ctx.params["resume"] == "latest", (
                f"{path.name} {step.name} cannot resume")


def test_the_synthetic_study_runs_the_issue_arms():
    cfg = PipelineConfig.load(ROOT / "scripts" / "studies" / "synthetic.toml")
    names = [s.name for s in cfg.steps]
    for g in ("conditional", "transfer"):
        assert {f"gan_{g}", f"samples_{g}_judge", f"samples_{g}_gapkeep"} <= set(names)
        assert {f"ablate_{g}_{q}" for q in ("ratio", "weight", "warmup", "gapkeep")} <= set(names)
    verdict = cfg.steps[names.index("verdict")]
    # every ablation folder reaches the verdict, and every sample set's two-sample AUCs too
    assert {a.split("/")[-1] for a in verdict.argv if a.startswith("{out}/ablate_")} == \
        {n for n in names if n.startswith("ablate_")}
    assert {a.split("/")[-1] for a in verdict.argv if a.startswith("{out}/samples_")} == \
        {n for n in names if n.startswith("samples_")}
    assert cfg.vars["seeds"] == "0,1,2,3,4" and cfg.vars["budget"] == "45m"
    # the two 45-minute generators run side by side, and nothing else with them
    assert [s.name for s in cfg.steps if s.group == "gans"] == ["gan_conditional", "gan_transfer"]
    assert [s.name for s in cfg.steps if s.group == "samples"] == \
        [n for n in names if n.startswith("samples_")]


def test_a_bad_flag_in_a_study_script_step_is_caught():
    with pytest.raises(SystemExit):
        _study_parser("scripts/studies/verdict.py").parse_args(["--base", "b", "--out", "o",
                                                                "--refrence", "x"])
