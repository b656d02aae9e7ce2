"""Shared helper for the typed config dataclasses' `from_dict`."""

from __future__ import annotations

import dataclasses
from typing import Any

from classify.errors import UserError


def check_known_keys(cls: type, d: dict[str, Any], what: str) -> None:
    """Refuse keys that are not fields of dataclass `cls`, naming them and the valid ones.

    A typo in a saved config or TOML file must be an error, not a silently ignored setting.
    `what` names the config in the message, e.g. "prepare config keys".
    """
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise UserError(f"unknown {what} {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
