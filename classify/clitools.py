"""Helpers shared by the click commands of both `classify` and `gen`."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from classify.errors import UserError


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn `UserError` (and a few OS errors users cause) into one-line click errors."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            raise click.ClickException(str(exc)) from None
        except FileNotFoundError as exc:
            raise click.ClickException(f"file not found: {exc.filename}") from None
        except PermissionError as exc:
            raise click.ClickException(f"permission denied: {exc.filename}") from None

    return wrapper


def parse_device(name: str) -> str:
    """Validate --device: 'cpu', 'cuda', 'cuda:N' or 'auto' (cuda when available)."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {name} was requested but this machine has no CUDA GPU; use --device cpu")
    if name != "cpu" and not name.startswith("cuda"):
        raise UserError(f"unknown --device {name!r}; use cpu, cuda, cuda:N or auto")
    return name
