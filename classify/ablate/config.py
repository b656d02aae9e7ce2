"""`AblationConfig`: one reproducible study (the grid plus the classifier settings every cell shares).

It loads from a TOML file (`--config ablation.toml`, keys as in `to_dict()`); CLI flags
override single fields. Run-time choices that do not change results (shard, jobs, dry run)
are deliberately not part of it, so that every shard of a study reads the same file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from classify.ablate.design import SyntheticAxes
from classify.core.clitools import parse_device
from classify.core.configs import Config, base_type, check_known_keys, field_default, flag_name, setting
from classify.core.errors import UserError
from classify.train.config import ClassifierTrainConfig, check_synthetic_settings, resolution_settings

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10 uses the tomli backport
    import tomli as tomllib  # type: ignore[no-redef]

# The grid's axes. Lists also take one value or "a,b,c" (as the flags do).
LIST_FIELDS = {"strategies": str, "models": str, "seeds": int, "synthetic_ratios": float,
               "minority_fractions": float, "synthetic_classes": str, "synthetic_weights": float,
               "synthetic_schedules": str}
# The study's own scalars; every study-wide classifier setting comes from ClassifierTrainConfig.
OWN_SCALARS = {"data_dir": str, "out_dir": str, "minority_class": str, "device": str, "max_cells": int,
               "allow_generator_leak": bool, "keep_checkpoints": bool}


def train_keys() -> list[str]:
    """The study-wide classifier settings: every ClassifierTrainConfig field a cell does not set."""
    return ClassifierTrainConfig.study_fields()


def result_train_keys() -> list[str]:
    """The classifier settings that change what a cell measures (all but the speed-only ones)."""
    return [k for k in train_keys() if k not in ClassifierTrainConfig.SPEED_ONLY]


def scalar_kinds() -> dict[str, type]:
    """Field -> type for reading TOML values and flags: the study's own plus the training settings'."""
    hints = typing.get_type_hints(ClassifierTrainConfig)
    # List settings (res_schedule) come from --res "64,128" via resolution_settings, not cast here.
    kinds = {k: base_type(hints[k]) for k in train_keys() if typing.get_origin(hints[k]) is not list}
    return OWN_SCALARS | kinds


def option_name(key: str) -> str:
    """'--minority-fraction (minority_fractions)': the flag and the TOML key, for messages."""
    fields = {f.name: f for cls in (ClassifierTrainConfig, AblationConfig) for f in dataclasses.fields(cls)}
    flag = flag_name(fields[key]) if key in fields else "--" + key.replace("_", "-")
    return flag if flag[2:].replace("-", "_") == key else f"{flag} ({key})"


def default_setting(key: str) -> Any:
    """The default of a study key: AblationConfig's own, or ClassifierTrainConfig's for a
    training setting (None for required fields)."""
    if key in train_keys():
        return ClassifierTrainConfig.default(key)
    for f in dataclasses.fields(AblationConfig):
        if f.name == key:
            return field_default(f)
    raise KeyError(key)


@dataclass
class AblationConfig(Config):
    # The study's own settings; `classify ablate` builds its options from these fields (flags
    # default to None there, so that a TOML key stands when its flag is not given).
    data_dir: str = setting(help="Prepared data folder (classify prepare).", flag="--data")
    out_dir: str = setting(help="Ablation folder: cells/, report.md, report.html.", flag="--out")
    strategies: list[str] = setting(
        help="Comma list, e.g. baseline,oversample,classic,gan_filtered,gan_filtered+classic.",
        default_factory=lambda: ["baseline", "oversample"])
    models: list[str] = setting(help="Comma list of models, e.g. resnet18,vgg11_bn.",
                                default_factory=lambda: ["resnet18"])
    seeds: list[int] = setting(help="Comma list of seeds, e.g. 0,1,2.", default_factory=lambda: [0, 1, 2])
    synthetic_ratios: list[float] = setting(
        help="Comma list of synthetic:real-minority ratios for GAN strategies.", flag="--synthetic-ratio",
        default_factory=lambda: [1.0])
    minority_fractions: list[float] = setting(
        help="Comma list of fractions of real minority train images to keep.", flag="--minority-fraction",
        default_factory=lambda: [1.0])
    # The other synthetic axes (GAN strategies only; see classify.train.config for their meaning).
    synthetic_classes: list[str] = setting(
        help="Comma list of minority,all: which classes GAN strategies add synthetic images to (all: each at "
             "the ratio times its own train images).", default_factory=lambda: ["minority"])
    synthetic_weights: list[float] = setting(
        help="Comma list of loss weights of synthetic images, each in (0, 1].", flag="--synthetic-weight",
        default_factory=lambda: [1.0])
    synthetic_schedules: list[str] = setting(
        help="Comma list of mixed,warmup (warmup: real only in the last third of the epochs).",
        flag="--synthetic-schedule", default_factory=lambda: ["mixed"])
    # gen sample folder per minority fraction ("0.25" -> dir); key "all" serves every fraction.
    samples: dict[str, str] = setting(help="gen sample folder, or FRACTION=DIR per minority fraction "
                                      "(repeatable).", default_factory=dict)
    minority_class: str | None = setting(None, "Minority class.")
    # Resolved on construction: cuda when available, else cpu.
    device: str = setting("auto", "cpu, cuda, cuda:N or auto (cuda when available).")
    max_cells: int = setting(500, "Refuse grids larger than this.")
    allow_generator_leak: bool = setting(False, "Use sample sets whose GAN saw more real minority images "
                                         "than a cell allows (flagged).")
    keep_checkpoints: bool = setting(True, "Keep every cell's model.pt (off: only the one the report's "
                                     "feature map uses).")
    # The classifier settings every cell trains with: ClassifierTrainConfig's study-wide fields
    # (`train_keys()`), completed with its defaults on construction. In TOML files and on the
    # command line they are plain keys (`epochs = 10`, `--epochs 10`), like the study's own.
    train: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_known_keys(ClassifierTrainConfig, self.train, "training setting(s)")
        per_cell = sorted(set(self.train) & set(ClassifierTrainConfig.PER_CELL))
        if per_cell:
            raise UserError(f"{', '.join(per_cell)} is set per cell by the grid, not study-wide; "
                            "use the grid's options")
        self.train = {k: self.train.get(k, ClassifierTrainConfig.default(k)) for k in train_keys()}
        self.validate()
        self.device = parse_device(self.device)  # 'auto' -> cuda/cpu; 'gpu' etc. fail here, not per cell

    def validate(self) -> None:
        for name in LIST_FIELDS:
            if not getattr(self, name):
                raise UserError(f"{option_name(name)} is empty; list at least one value")
        if any(not 0 < f <= 1 for f in self.minority_fractions):
            raise UserError(f"{option_name('minority_fractions')} {self.minority_fractions}: "
                            "each must lie in (0, 1]")
        if any(r <= 0 for r in self.synthetic_ratios):
            raise UserError(f"{option_name('synthetic_ratios')} {self.synthetic_ratios}: each must be > 0")
        for classes in self.synthetic_classes:
            for weight in self.synthetic_weights:
                for schedule in self.synthetic_schedules:
                    check_synthetic_settings(classes, weight, schedule)
        if self.max_cells < 1:
            raise UserError(f"--max-cells {self.max_cells} must be >= 1")
        # The trainer's own checks, once for the whole study (each model's res is checked in the plan).
        ClassifierTrainConfig(**self.train).validate()

    def setting(self, key: str) -> Any:  # (the fields above use classify.core.configs.setting, not this)
        """A study key's value, whether it is the study's own or a training setting."""
        return self.train[key] if key in self.train else getattr(self, key)

    def cell_train_config(self, **per_cell: Any) -> dict[str, Any]:
        """ClassifierTrainConfig keyword arguments of one cell: the study's settings plus the cell's."""
        return {"data_dir": self.data_dir, "device": self.device, "minority_class": self.minority_class,
                **self.train, **per_cell}

    def result_settings(self) -> dict[str, Any]:
        """What a cell's numbers depend on, as flat keys (study.json): folders must agree on them."""
        out = {"data_dir": self.data_dir, "samples": self.samples, "minority_class": self.minority_class,
               **{k: self.train[k] for k in result_train_keys()}}
        if self.train.get("synthetic_exclude"):  # the list's content, not only its path, decides what trains
            out["synthetic_exclude_md5"] = _file_md5(self.train["synthetic_exclude"])
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> AblationConfig:
        """From TOML keys or flags: training settings may be plain keys or a [train] table."""
        d = dict(d)
        train = dict(d.pop("train", None) or {})
        train |= {k: d.pop(k) for k in list(d) if k in train_keys()}
        if isinstance(train.get("res"), str | list):  # "64,128": progressive resizing, as on `classify train`
            train |= resolution_settings(train["res"])
        known = {f.name for f in dataclasses.fields(cls)} - {"train"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UserError(f"{source}: unknown key(s) {', '.join(unknown)}; "
                            f"valid: {', '.join(sorted(known))} "
                            f"and the training settings {', '.join(train_keys())}")
        if isinstance(d.get("samples"), str):
            d["samples"] = {"all": d["samples"]}
        for key in ("data_dir", "out_dir"):
            if not d.get(key):
                raise UserError(f"{source}: {option_name(key)} is required "
                                "(give it as a flag or in the file)")
        try:
            d = _coerce(d | train)
        except ValueError as exc:
            raise UserError(f"{source}: {exc}") from None
        own = {k: v for k, v in d.items() if k not in train}
        return super().from_dict({**own, "train": {k: d[k] for k in train}})

    @classmethod
    def read_toml(cls, path: str | Path) -> dict[str, Any]:
        """The raw table of a TOML study file (merged with CLI flags before `from_dict`)."""
        try:
            with open(path, "rb") as fh:
                return tomllib.load(fh)
        except FileNotFoundError:
            raise UserError(f"ablation config {path} does not exist; check --config") from None
        except tomllib.TOMLDecodeError as exc:
            raise UserError(f"ablation config {path} is not valid TOML ({exc}); fix the file") from None

    def synthetic_axes(self):
        return SyntheticAxes(tuple(self.synthetic_ratios), tuple(self.synthetic_classes),
                             tuple(self.synthetic_weights), tuple(self.synthetic_schedules))

    def samples_for(self, fraction: float) -> str | None:
        """The sample folder serving `fraction`: an exact key first, then 'all'."""
        for key, path in self.samples.items():
            if key != "all" and abs(float(key) - fraction) < 1e-9:
                return path
        return self.samples.get("all")


def _file_md5(path: str) -> str:
    try:
        return hashlib.md5(Path(path).read_bytes()).hexdigest()
    except OSError:
        raise UserError(f"--synthetic-exclude {path} cannot be read; "
                        "pass the exclude.txt the sample browser saved") from None


def _coerce(d: dict[str, Any]) -> dict[str, Any]:
    """Field values from TOML or flags in their field's type; a bad value names its key."""
    out = dict(d)
    for key, kind in LIST_FIELDS.items():
        if key in out:
            value = out[key]
            items = (value.split(",") if isinstance(value, str)
                     else value if isinstance(value, list) else [value])
            out[key] = [_cast(key, x, kind) for x in items if not (isinstance(x, str) and not x.strip())]
    for key, kind in scalar_kinds().items():
        if out.get(key) is not None:
            out[key] = _cast(key, out[key], kind)
    if "samples" in out:
        if not isinstance(out["samples"], dict):
            raise ValueError("samples must be a folder or a table of FRACTION = folder")
        for key in out["samples"]:
            if key != "all":
                try:
                    float(key)
                except ValueError:
                    raise ValueError(f"samples key {key!r} must be a minority fraction or 'all'") from None
        out["samples"] = {str(k): str(v) for k, v in out["samples"].items()}
    return out


def _cast(key: str, value: Any, kind: type) -> Any:
    name = option_name(key)
    if kind is bool or isinstance(value, bool):  # bool is an int in Python: keep them apart
        if kind is bool and isinstance(value, bool):
            return value
        raise ValueError(f"{name} must be {'true or false' if kind is bool else 'a number'}, not {value!r}")
    if kind is str:
        if isinstance(value, str) and value.strip():
            return value.strip()
        raise ValueError(f"{name} must be a non-empty string, not {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = None
    if number is None or (kind is int and not number.is_integer()):
        raise ValueError(f"{name} must be {'a whole number' if kind is int else 'a number'}, not {value!r}")
    return int(number) if kind is int else number


def parse_samples(values: tuple[str, ...] | list[str]) -> dict[str, str]:
    """--samples DIR (every fraction) or --samples FRACTION=DIR, repeatable."""
    out: dict[str, str] = {}
    for value in values:
        key, sep, path = value.partition("=")
        if not sep:
            out["all"] = value
            continue
        try:
            out[f"{float(key):g}"] = path
        except ValueError:
            raise UserError(f"--samples {value!r}: "
                            "use DIR or FRACTION=DIR (e.g. 0.25=runs/samples_q)") from None
    return out


def merge_overrides(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Flags given on the command line (not None) win over the config file."""
    return base | {k: v for k, v in overrides.items() if v is not None}
