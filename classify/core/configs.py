"""Helpers for the typed config dataclasses: `from_dict` key checks and click options built
from the fields themselves (one source for each default and help text)."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Iterable
from typing import Any

import click

from classify.core.errors import UserError


def check_known_keys(cls: type, d: dict[str, Any], what: str) -> None:
    """Refuse keys that are not fields of dataclass `cls`, naming them and the valid ones.

    A typo in a saved config or TOML file must be an error, not a silently ignored setting.
    `what` names the config in the message, e.g. "prepare config keys".
    """
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise UserError(f"unknown {what} {', '.join(unknown)}; valid: {', '.join(sorted(known))}")


# --- click options from a config dataclass ----------------------------------------------------
# A field states its own flag help (`metadata={"help": ...}`) and, where the values are a
# fixed set, `choices` (a tuple, or a function returning the registry's names). The commands
# build their options from the fields, so the default a user is shown is the dataclass's, and a
# new setting is one field, not a field plus an option plus a help text that can drift apart.


def setting(default: Any = dataclasses.MISSING, help: str = "", choices: Any = None, flag: str | None = None,
            path: str | None = None, default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field that carries its CLI help (and choices, flag name, or `path`: "dir" or
    "file" for a path option) as metadata."""
    meta = {"help": help, "choices": choices, "flag": flag, "path": path}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def field_default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None if f.default is dataclasses.MISSING else f.default


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


_PATHS = {"dir": click.Path(file_okay=False), "file": click.Path(dir_okay=False)}


def config_option(cls: type, name: str, *, none_default: bool = False, default_note: str | None = None,
                  **overrides: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A click option for field `name` of dataclass `cls`.

    `none_default=True` gives the option a default of None, so that a config file or preset
    can supply the value when the flag is absent; the help then shows the dataclass default
    (or `default_note`) in the same `[default: ...]` form click uses.
    """
    f = {fld.name: fld for fld in dataclasses.fields(cls)}[name]
    kind = base_type(typing.get_type_hints(cls)[name])
    default = field_default(f)
    flag = flag_name(f)
    choices = f.metadata.get("choices")
    choices = choices() if callable(choices) else choices
    kw: dict[str, Any] = {"help": f.metadata.get("help", "")}
    if kind is bool:
        decls = [f"{flag}/--no-{flag[2:]}", name]
    else:
        decls = [flag, name]
        kw["type"] = click.Choice(list(choices)) if choices else _PATHS.get(f.metadata.get("path"), kind)
    if none_default:
        shown = default_note if default_note is not None else (
            ",".join(map(str, default)) if isinstance(default, list) else default)
        kw["default"] = None
        if shown not in (None, ""):
            kw["help"] = (kw["help"] + f"  [default: {shown}]").strip()
    else:
        kw["default"], kw["show_default"] = default, default is not None
    kw.update(overrides)
    return click.option(*decls, **kw)


def config_options(cls: type, names: Iterable[str], **kw: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`config_option` for each of `names`, in that order in --help."""
    names = list(names)

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        for name in reversed(names):
            fn = config_option(cls, name, **kw)(fn)
        return fn

    return decorate
