"""One default per setting: every option of a `gen` or `classify` command whose name is a field of
the config that command builds defaults to that field's default (or, where a preset or TOML file
supplies the value when the flag is absent, says it in its help), and every config reads and writes
dicts through the one base, `classify.core.configs.Config`."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import sys

import click
import pytest
from click.testing import CliRunner

from classify.ablate.config import AblationConfig
from classify.cli import main as classify_main
from classify.core.configs import Config, SettingOption, cli_default, config_option, setting, shown_default
from classify.core.errors import UserError
from classify.data.prepare import PrepareConfig
from classify.evaluate.ensemble import EnsembleConfig
from classify.evaluate.explain import ExplainConfig
from classify.evaluate.outliers import OutlierConfig
from classify.evaluate.pseudo_label import PseudoLabelConfig
from classify.train.config import ClassifierTrainConfig
from gen.cli import main as gen_main
from gen.core.metrics import ExtractorConfig
from gen.pipeline.runner import PipelineConfig
from gen.sample.config import SampleConfig
from gen.sample.filters import FilterConfig
from gen.train.config import GanTrainConfig

# The configs each command builds from its options (the first one named wins a shared field name).
COMMAND_CONFIGS: dict[str, tuple[type, ...]] = {
    "gen train": (GanTrainConfig,),
    "gen sample": (FilterConfig, SampleConfig),  # --filters is FilterConfig's (SampleConfig nests it)
    "gen pipeline": (PipelineConfig,),
    "classify prepare": (PrepareConfig,),
    "classify train": (ClassifierTrainConfig,),
    "classify ablate": (AblationConfig, ClassifierTrainConfig),
    "classify ensemble": (EnsembleConfig,),
    "classify explain": (ExplainConfig,),
    "classify outliers": (OutlierConfig,),
    "classify pseudo-label": (PseudoLabelConfig,),
}
# Commands that build no config: their options are function arguments or run-time switches.
NO_CONFIG = {"gen grid", "gen import-pkl", "gen merge-samples", "classify report", "classify eval",
             "classify predict", "classify models"}
# Every config dataclass: one shared to_dict/from_dict (PipelineConfig reads its TOML itself).
CONFIGS = sorted({c for cs in COMMAND_CONFIGS.values() for c in cs} - {PipelineConfig} | {ExtractorConfig},
                 key=lambda c: c.__name__)


def all_commands() -> dict[str, click.Command]:
    """'gen sample' -> its command, for every leaf command under both groups, sub-groups included."""
    found: dict[str, click.Command] = {}

    def walk(command: click.Command, path: str) -> None:
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk(sub, f"{path} {name}")
        else:
            found[path] = command

    walk(gen_main, "gen")
    walk(classify_main, "classify")
    return found


def _default(param: click.Option):
    """The option's default as the command receives it when the flag is absent (None: no value)."""
    if param.default is getattr(click.core, "UNSET", None):  # none given (click >= 8.2 marks it UNSET)
        return False if param.is_flag else None
    return None if param.default == () else param.default


def setting_problems(command: click.Command, configs: tuple[type, ...]) -> list[str]:
    """One line per option of `command` named like a field of `configs` whose default is not the
    field's: a different value, or a None default (the preset or file decides) whose help does not
    show the field's default (or, for an option built from the field, the note it shows instead)."""
    fields: dict[str, tuple[type, dataclasses.Field]] = {}
    for cls in reversed(configs):
        fields |= {f.name: (cls, f) for f in dataclasses.fields(cls)}
    problems = []
    for param in command.params:
        if not isinstance(param, click.Option) or param.name not in fields or param.required:
            continue
        owner, f = fields[param.name]
        if isinstance(param, SettingOption) and param.setting_of[0] in configs:  # built from this very field
            owner, name = param.setting_of
            f = next(g for g in dataclasses.fields(owner) if g.name == name)
        expected = cli_default(f)
        default = _default(param)
        where = f"{param.opts[0]} ({owner.__name__}.{f.name})"
        if isinstance(expected, list) and not param.multiple:
            expected = ",".join(map(str, expected))  # a list field is a comma list on the command line
        if default == expected:
            continue
        if default is not None:
            problems.append(f"{where}: the option defaults to {default!r}, the field to {expected!r}")
            continue
        shown = shown_default(expected)
        notes = [f"[default: {shown}]"] if shown is not None else []
        if isinstance(param, SettingOption) and param.default_note:
            notes.append(f"[default: {param.default_note}]")
        if notes and not any(note in (param.help or "") for note in notes):
            problems.append(f"{where}: defaults to None, and its help does not show {notes[0]}")
    return problems


def test_every_command_is_mapped_to_the_configs_it_builds():
    commands = all_commands()
    assert set(commands) == set(COMMAND_CONFIGS) | NO_CONFIG, "classify the new or removed command here"
    assert not set(COMMAND_CONFIGS) & NO_CONFIG
    # The config classes a command's module uses in its code are the ones mapped to it (none for NO_CONFIG).
    for name, command in commands.items():
        tree = ast.parse(inspect.getsource(sys.modules[command.callback.__module__]))
        used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        used |= {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
        named = {u for u in used if u.endswith("Config") and u[:1].isupper()}
        assert named == {c.__name__ for c in COMMAND_CONFIGS.get(name, ())}, name


@pytest.mark.parametrize("name", sorted(COMMAND_CONFIGS))
def test_every_option_of_a_config_field_has_the_fields_default(name):
    command = all_commands()[name]
    assert setting_problems(command, COMMAND_CONFIGS[name]) == []


def test_the_commands_build_their_options_from_the_fields():
    """The options named like a field are built from it (`config_option`), not written by hand,
    except the ones a command reads differently from the field (a comma list, a flag pair)."""
    hand_written = {}
    for name, configs in COMMAND_CONFIGS.items():
        fields = {f.name for cls in configs for f in dataclasses.fields(cls)}
        hand_written[name] = sorted(p.name for p in all_commands()[name].params if isinstance(p, click.Option)
                                    and p.name in fields and not isinstance(p, SettingOption))
    assert hand_written == {name: [] for name in COMMAND_CONFIGS}


def test_the_checker_reports_a_restated_default_that_drifted():
    @click.command()
    @click.option("--val", type=float, default=0.3, show_default=True)  # PrepareConfig.val is 0.15
    @click.option("--test", type=float, default=None, help="Test fraction.")  # says nothing of 0.2
    @click.option("--seed", type=int, default=0, show_default=True)  # the field's default: fine
    @click.option("--force", is_flag=True)  # False, as the field
    @config_option(PrepareConfig, "minority_fraction", none_default=True)  # help shows 1.0
    def command(**kw):
        pass

    problems = setting_problems(command, (PrepareConfig,))
    assert problems == [
        "--val (PrepareConfig.val): the option defaults to 0.3, the field to 0.15",
        "--test (PrepareConfig.test): defaults to None, and its help does not show [default: 0.2]",
    ]

    @click.command()
    @click.option("--test", type=float, default=None, help="Test fraction.  [default: 0.2]")  # now says it
    @config_option(PrepareConfig, "val", default=0.3)  # built from the field, then overridden
    def half_fixed(**kw):
        pass

    assert setting_problems(half_fixed, (PrepareConfig,)) == [
        "--val (PrepareConfig.val): the option defaults to 0.3, the field to 0.15"]


def test_a_flag_shows_its_cli_default_and_a_list_its_comma_form():
    train = all_commands()["classify train"]
    device = next(p for p in train.params if p.name == "device")
    assert (device.default, ClassifierTrainConfig().device) == ("auto", "cpu")  # the CLI resolves `auto`
    sample = all_commands()["gen sample"]
    filters = next(p for p in sample.params if p.name == "filters")
    assert filters.default == ",".join(FilterConfig().filters)
    ablate = all_commands()["classify ablate"]
    seeds = next(p for p in ablate.params if p.name == "seeds")
    assert seeds.default is None and seeds.help.endswith("[default: 0,1,2]")
    assert "[default" not in next(p for p in ablate.params if p.name == "samples").help  # {}: nothing to show


def test_registry_choices_are_read_when_first_needed():
    calls = []

    def names():
        calls.append(1)
        return ["small", "large"]

    @dataclasses.dataclass
    class Tiny(Config):
        size: str = setting("small", "How big.", choices=names)

    @click.command()
    @config_option(Tiny, "size")
    def command(size):
        click.echo(size)

    assert calls == []  # building the option imported and called nothing
    assert CliRunner().invoke(command, ["--size", "large"]).output == "large\n"
    bad = CliRunner().invoke(command, ["--size", "huge"])
    assert bad.exit_code == 2 and "'small', 'large'" in bad.output
    assert "[small|large]" in CliRunner().invoke(command, ["--help"]).output
    assert len(calls) == 1  # read once, then kept


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_every_config_reads_and_writes_dicts_through_the_shared_base(cls):
    assert issubclass(cls, Config) and "to_dict" not in vars(cls)
    required = {f.name: "x" for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    if cls is AblationConfig:  # resolves its device and fills its training settings on construction
        cfg = AblationConfig.from_dict({"data_dir": "d", "out_dir": "o", "device": "cpu"})
    else:
        cfg = cls(**required)
    d = cfg.to_dict()
    assert cls.from_dict(d) == cfg
    with pytest.raises(UserError, match="unknown .*colour"):
        cls.from_dict({**d, "colour": "red"})


def test_nested_and_stored_configs_still_load():
    """SampleConfig reads its filters as a FilterConfig; GanTrainConfig takes click's tuples as
    lists; a stored config from before a field existed takes that field's default."""
    cfg = SampleConfig.from_dict({"generator": "g", "out_dir": "o",
                                  "filters": {"filters": ["judge"], "keep": 3}})
    assert cfg.filters == FilterConfig(filters=["judge"], keep=3) and cfg.to_dict()["filters"]["keep"] == 3
    with pytest.raises(UserError, match="unknown filter settings min_conf"):
        SampleConfig.from_dict({"generator": "g", "out_dir": "o", "filters": {"min_conf": 1}})
    gan = GanTrainConfig.from_dict({"classes": ("a", "b")})
    assert gan.classes == ["a", "b"]
    old = PrepareConfig(source="s", out_dir="o").to_dict()
    del old["max_pixels"]  # a report.md config written before --max-pixels
    assert PrepareConfig.from_dict(old).max_pixels == PrepareConfig(source="s", out_dir="o").max_pixels


@pytest.mark.parametrize("cls", [c for c in CONFIGS if c.renamed], ids=lambda c: c.__name__)
def test_a_dict_stored_before_a_field_was_renamed_loads(cls):
    """config.json, model.pt, classes.json written under a field's former name (`out`, `data`,
    `model`, `runs`) load as the field it is now; a dict with both names is refused."""
    names = {f.name for f in dataclasses.fields(cls)}
    assert set(cls.renamed.values()) <= names and not set(cls.renamed) & names
    required = {f.name: "x" for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    now = {**cls(**required).to_dict(), **{new: f"value of {old}" for old, new in cls.renamed.items()}}
    stored = {({v: k for k, v in cls.renamed.items()}).get(k, k): v for k, v in now.items()}
    assert set(cls.renamed) <= set(stored) and cls.from_dict(stored) == cls.from_dict(now)
    old, new = next(iter(cls.renamed.items()))
    with pytest.raises(UserError, match=f"{old} and {new} are one setting"):
        cls.from_dict({**now, old: "twice"})


def test_an_old_classifier_run_config_and_prepare_record_load():
    """The two stored configs written most: a model.pt/config.json TrainConfig dict naming the
    registry model `model`, and a classes.json prepare config naming its folder `out`."""
    train = ClassifierTrainConfig(model_name="vgg11_bn").to_dict()
    train["model"] = train.pop("model_name")
    assert ClassifierTrainConfig.from_dict(train).model_name == "vgg11_bn"
    prepare = PrepareConfig(source="elpv", out_dir="data/elpv").to_dict()
    prepare["out"] = prepare.pop("out_dir")
    assert PrepareConfig.from_dict(prepare) == PrepareConfig(source="elpv", out_dir="data/elpv")
