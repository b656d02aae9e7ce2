"""`AblationConfig`: one reproducible study (the grid plus the shared training settings).

It loads from a TOML file (`--config ablation.toml`, keys as in `to_dict()`); CLI flags
override single fields. Run-time choices that do not change results (shard, jobs, dry run)
are deliberately not part of it, so that every shard of a study reads the same file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from classify.configs import check_known_keys
from classify.errors import UserError

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10 uses the tomli backport
    import tomli as tomllib  # type: ignore[no-redef]

# Settings that change what a cell measures. A folder of cells must agree on all of them,
# or the report would average runs that are not comparable.
RESULT_KEYS = ("data_dir", "samples", "minority_class", "epochs", "res", "batch", "lr", "deterministic", "cpu_bf16")


def default_setting(key: str) -> Any:
    """AblationConfig's default for `key` (None for required fields)."""
    for f in dataclasses.fields(AblationConfig):
        if f.name == key:
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
            return None if f.default is dataclasses.MISSING else f.default
    raise KeyError(key)


@dataclass
class AblationConfig:
    data_dir: str
    out_dir: str
    strategies: list[str] = field(default_factory=lambda: ["baseline", "oversample"])
    models: list[str] = field(default_factory=lambda: ["resnet18"])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    synthetic_ratios: list[float] = field(default_factory=lambda: [1.0])
    minority_fractions: list[float] = field(default_factory=lambda: [1.0])
    # gen sample folder per minority fraction ("0.25" -> dir); key "all" serves every fraction.
    samples: dict[str, str] = field(default_factory=dict)
    minority_class: str | None = None
    epochs: int = 10
    res: int = 128
    batch: int = 64
    lr: float = 1e-3
    device: str = "cpu"
    deterministic: bool = False
    cpu_bf16: bool = False  # TrainConfig.cpu_bf16 for every cell
    max_cells: int = 500
    allow_generator_leak: bool = False
    keep_checkpoints: bool = True

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        for name in ("strategies", "models", "seeds", "synthetic_ratios", "minority_fractions"):
            if not getattr(self, name):
                raise UserError(f"ablation config: '{name}' is empty; list at least one value")
        if any(not 0 < f <= 1 for f in self.minority_fractions):
            raise UserError(f"ablation config: minority_fractions {self.minority_fractions} must lie in (0, 1]")
        if any(r <= 0 for r in self.synthetic_ratios):
            raise UserError(f"ablation config: synthetic_ratios {self.synthetic_ratios} must be > 0")
        if self.epochs < 1 or self.res < 8 or self.batch < 1 or self.max_cells < 1:
            raise UserError("ablation config: epochs, batch and max_cells must be >= 1 and res >= 8")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def result_settings(self) -> dict[str, Any]:
        d = self.to_dict()
        return {k: d[k] for k in RESULT_KEYS}

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> AblationConfig:
        try:
            check_known_keys(cls, d, "key(s)")
        except UserError as exc:
            raise UserError(f"{source}: {exc}") from None
        d = dict(d)
        if isinstance(d.get("samples"), str):
            d["samples"] = {"all": d["samples"]}
        for key in ("data_dir", "out_dir"):
            if not d.get(key):
                raise UserError(f"{source}: '{key}' is required (give it in the file or as a flag)")
        try:
            return cls(**_coerce(d))
        except (TypeError, ValueError) as exc:
            raise UserError(f"{source}: {exc}; check the value types") from None

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

    def samples_for(self, fraction: float) -> str | None:
        """The sample folder serving `fraction`: an exact key first, then 'all'."""
        for key, path in self.samples.items():
            if key != "all" and abs(float(key) - fraction) < 1e-9:
                return path
        return self.samples.get("all")


def _coerce(d: dict[str, Any]) -> dict[str, Any]:
    # TOML and click both hand over ints where floats are meant (ratio 1, fraction 1).
    out = dict(d)
    for key in ("synthetic_ratios", "minority_fractions"):
        if key in out:
            out[key] = [float(x) for x in out[key]]
    if "seeds" in out:
        out["seeds"] = [int(x) for x in out["seeds"]]
    for key in ("strategies", "models"):
        if key in out:
            out[key] = [str(x).strip() for x in out[key]]
    if "samples" in out:
        for key in out["samples"]:
            if key != "all":
                try:
                    float(key)
                except ValueError:
                    raise ValueError(f"samples key {key!r} must be a minority fraction or 'all'") from None
        out["samples"] = {str(k): str(v) for k, v in out["samples"].items()}
    if "lr" in out:
        out["lr"] = float(out["lr"])
    return out


def parse_list(text: str, cast: type, flag: str) -> list:
    """'0,1,2' -> [0, 1, 2]; a bad item is a one-line user error naming the flag."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    try:
        return [cast(t) for t in items]
    except ValueError:
        raise UserError(f"{flag} {text!r}: every comma-separated item must be a {cast.__name__}") from None


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
            raise UserError(f"--samples {value!r}: use DIR or FRACTION=DIR (e.g. 0.25=runs/samples_q)") from None
    return out


def merge_overrides(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Flags given on the command line (not None) win over the config file."""
    return base | {k: v for k, v in overrides.items() if v is not None}
