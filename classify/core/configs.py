"""Helpers for the typed config dataclasses: `from_dict` key checks and click options built
from the fields themselves (one source for each default and help text)."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import click

from classify.core.errors import UserError


def check_known_keys(cls: type, d: Mapping[str, Any], what: str) -> None:
    """Refuse keys that are not fields of dataclass `cls`, naming them and the valid ones.

    A typo in a saved config or TOML file must be an error, not a silently ignored setting.
    `what` names the config in the message, e.g. "prepare config keys".
    """
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise UserError(f"unknown {what} {', '.join(unknown)}; valid: {', '.join(sorted(known))}")


C = TypeVar("C", bound="Config")


class Config:
    """The base of the config dataclasses: `to_dict()` as plain values (nested configs as dicts)
    and `from_dict()`, which refuses keys that are not fields (`config_name` names the config in
    that message). A config with its own reading rules (nested configs, type fixes) overrides
    `from_dict` and ends in this one.

    `renamed` maps a field's former name to its name now (`{"out": "out_dir"}`): `from_dict` reads
    a dict stored before the rename (config.json, model.pt, classes.json) under the new name."""

    config_name = "config key(s)"
    renamed: typing.ClassVar[Mapping[str, str]] = {}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]  # subclasses are dataclasses

    @classmethod
    def from_dict(cls: type[C], d: Mapping[str, Any]) -> C:
        d = current_keys(cls, d)
        check_known_keys(cls, d, cls.config_name)
        return cls(**d)


def current_keys(cls: type[Config], d: Mapping[str, Any]) -> dict[str, Any]:
    """`d` with the keys of `cls.renamed` under their names now; a dict holding both names is refused."""
    both = sorted(old for old, new in cls.renamed.items() if old in d and new in d)
    if both:
        raise UserError(f"{cls.config_name} {', '.join(both)} and {', '.join(cls.renamed[k] for k in both)} "
                        "are one setting (the first is its former name); give it once")
    return {cls.renamed.get(k, k): v for k, v in d.items()}


# --- click options from a config dataclass ----------------------------------------------------
# A field states its own flag help (`metadata={"help": ...}`) and, where the values are a
# fixed set, `choices` (a tuple, or a function returning the registry's names). The commands
# build their options from the fields, so the default a user is shown is the dataclass's, and a
# new setting is one field, not a field plus an option plus a help text that can drift apart.


def setting(default: Any = dataclasses.MISSING, help: str = "", choices: Any = None, flag: str | None = None,
            path: str | None = None, default_factory: Any = dataclasses.MISSING,
            cli_default: Any = dataclasses.MISSING) -> Any:
    """A dataclass field that carries its CLI help (and choices, flag name, or `path`: "dir",
    "file" or "any" for a path option) as metadata. `cli_default` is what the flag defaults to where that
    differs from the field's own default and the command resolves it (`--device auto` -> cuda/cpu)."""
    meta = {"help": help, "choices": choices, "flag": flag, "path": path, "cli_default": cli_default}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def field_default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None if f.default is dataclasses.MISSING else f.default


def cli_default(f: dataclasses.Field) -> Any:
    """The default of the field's flag: its `cli_default` if it states one, else the field's default."""
    value = f.metadata.get("cli_default", dataclasses.MISSING)
    return field_default(f) if value is dataclasses.MISSING else value


def shown_default(value: Any) -> Any:
    """A default as --help shows it: lists comma-joined; None and empty values not at all (None)."""
    if isinstance(value, (list, tuple)):
        value = ",".join(map(str, value))
    return None if value is None or (isinstance(value, (str, dict)) and not value) else value


def flag_name(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def base_type(hint: Any) -> Any:
    """int | None -> int; list[str] -> str (lists are typed as comma lists); bool stays bool."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is list:
        return str
    if args and typing.get_origin(hint) is not list:
        return base_type(args[0])
    return hint


_PATHS = {"dir": click.Path(file_okay=False), "file": click.Path(dir_okay=False), "any": click.Path()}


class RegistryChoice(click.Choice):
    """A click.Choice whose names a registry function gives when they are first needed (--help,
    parsing): building the option does not import the registry's module."""

    def __init__(self, names: Callable[[], Iterable[str]]) -> None:
        self._names = names
        self.case_sensitive = True

    def __getattr__(self, attr: str) -> Any:
        if attr != "choices":
            raise AttributeError(attr)
        self.choices = tuple(self._names())
        return self.choices


class SettingOption(click.Option):
    """A click option built from a config field by `config_option`: it keeps which field
    (`setting_of`: the config class and field name) and the note its help shows in place of the
    field's default (`default_note`), so a test can hold the two together."""

    def __init__(self, *args: Any, setting_of: tuple[type, str] | None = None,
                 default_note: str | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.setting_of = setting_of
        self.default_note = default_note


def config_option(cls: type, name: str, *, none_default: bool = False, default_note: str | None = None,
                  **overrides: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A click option for field `name` of dataclass `cls`.

    `none_default=True` gives the option a default of None, so that a config file or preset
    can supply the value when the flag is absent; the help then shows the dataclass default
    (or `default_note`) in the same `[default: ...]` form click uses. A bool field is a
    `--x/--no-x` switch, or a plain `--x` flag with `is_flag=True`. A list field is typed as a
    comma list; its default shows comma-joined.
    """
    f = {fld.name: fld for fld in dataclasses.fields(cls)}[name]
    kind = base_type(typing.get_type_hints(cls)[name])
    default = cli_default(f)
    flag = flag_name(f)
    choices = f.metadata.get("choices")
    kw: dict[str, Any] = {"help": f.metadata.get("help", ""), "cls": SettingOption, "setting_of": (cls, name)}
    if kind is bool:
        decls = [flag if overrides.get("is_flag") else f"{flag}/--no-{flag[2:]}", name]
    else:
        decls = [flag, name]
        kw["type"] = (RegistryChoice(choices) if callable(choices) else click.Choice(list(choices)) if choices
                      else _PATHS.get(f.metadata.get("path"), kind))
    if none_default:
        shown = default_note if default_note is not None else shown_default(default)
        kw["default"], kw["default_note"] = None, default_note
        if shown not in (None, ""):
            kw["help"] = (kw["help"] + f"  [default: {shown}]").strip()
    else:
        default = ",".join(map(str, default)) if isinstance(default, list) else default
        kw["default"], kw["show_default"] = default, default is not None
    kw.update(overrides)
    return click.option(*decls, **kw)


def config_options(cls: type, names: Iterable[str],
                   **kw: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`config_option` for each of `names`, in that order in --help."""
    names = list(names)

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        for name in reversed(names):
            fn = config_option(cls, name, **kw)(fn)
        return fn

    return decorate
